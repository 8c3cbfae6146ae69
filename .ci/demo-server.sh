# Sourced by the scripts that test the binary from outside (.ci/typescript-client.sh,
# .ci/console.sh): the binary the tests built, and a fresh `erpos demo` on a port the kernel
# picks, stopped when the script exits. After `start_demo`, $url is where it serves and
# $server its pid; $work is a temporary directory removed on exit.
work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The binary the tests built; built (or brought up to date: a stale one would test old code)
# here otherwise, a no-op after `cargo test`. Sets $bin to its absolute path.
build_erpos() {
  bin=${CARGO_TARGET_DIR:-target}/debug/erpos
  cargo build --workspace --locked --quiet --bin erpos
  bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
}

# Starts a fresh demo (its first line says where it serves); fails, showing its output, if
# it does not start. $1 names the caller in messages.
start_demo() {
  ERPOS_LOG=${ERPOS_LOG:-warn} "$bin" demo --listen 127.0.0.1:0 --file "$work/demo.db" \
    >"$work/demo.out" 2>"$work/demo.log" &
  server=$!
  url=""
  for _ in $(seq 1 300); do
    url=$(sed -n 's/^erpos demo: serving the clinic on \(http:[^ ]*\).*/\1/p' "$work/demo.out" | head -1)
    [ -n "$url" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.2
  done
  if [ -z "$url" ]; then
    echo "$1: the demo did not start" >&2
    cat "$work/demo.out" "$work/demo.log" >&2
    exit 1
  fi
}
