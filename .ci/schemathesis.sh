#!/usr/bin/env bash
# The property-based API test (issue 12), run by .ci/run after the cargo tests: schemathesis
# generates requests from erpos's own OpenAPI document and sends them to a live `erpos demo`
# (the clinic loaded), logged in as `admin`, over every operation, positive and negative
# data, with the checks and limits in .ci/api-test/schemathesis.toml. Exits non-zero on any
# failure or error; prints the counts (operations, requests, failures).
#
# Two passes against one fresh demo:
#   1. every operation but logging out, with admin's session A;
#   2. logging out (`DELETE /api/v1/sessions/current`) alone, with a session B of its own
#      (a nurse's): it ends the session it is sent with, so in pass 1 it would turn the
#      rest into 401s.
# Both sessions are opened before pass 1 (which also fuzzes `POST /sessions` with wrong
# passwords, and so gets this address throttled for logins).
#
# schemathesis comes from PyPI at the versions and hashes locked in
# .ci/api-test/requirements.txt. To move to a newer one: change .ci/api-test/requirements.in,
# then in a throwaway venv `pip install pip-tools` and run in .ci/api-test/
#   pip-compile --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
#     --no-emit-find-links --output-file requirements.txt requirements.in
#
# Environment: ERPOS_API_TEST_OUT (default $CARGO_TARGET_DIR/api-test, else target/api-test) keeps the reports (NDJSON, and
# the demo's log) for a look after a failure; PYTHON picks the interpreter (3.10 or newer).
set -euo pipefail
cd "$(dirname "$0")/.."
here=.ci/api-test
started=$SECONDS

out=${ERPOS_API_TEST_OUT:-${CARGO_TARGET_DIR:-target}/api-test}
rm -rf "$out/schemathesis"
mkdir -p "$out/schemathesis"
out=$(cd "$out/schemathesis" && pwd)
work=$(mktemp -d)
server=""
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

bin=${CARGO_TARGET_DIR:-target}/debug/erpos
# The binary the tests built; built (or brought up to date: a stale one would test old code)
# here otherwise, a no-op after `cargo test`.
cargo build --workspace --locked --quiet --bin erpos

# Python and schemathesis, from the lock file only.
py=${PYTHON:-}
if [ -z "$py" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then py=$candidate; break; fi
  done
fi
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
  echo "schemathesis: needs Python 3.10 or newer, found $("$py" --version 2>&1)" >&2; exit 1; }
"$py" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
  -r "$here/requirements.txt"
st="$work/venv/bin/schemathesis"
# Hypothesis (under schemathesis) keeps a cache; not in the work tree.
export HYPOTHESIS_STORAGE_DIRECTORY="$work/hypothesis"
echo "schemathesis: $("$st" --version) on $("$py" --version)"

# A fresh demo on a free port.
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
ERPOS_LOG=${ERPOS_LOG:-warn} "$bin" demo --listen "127.0.0.1:$port" --file "$work/demo.db" \
  >"$out/demo.log" 2>&1 &
server=$!
"$py" "$here/demo.py" wait "$base" 60 || { cat "$out/demo.log" >&2; exit 1; }
token_a=$("$py" "$here/demo.py" login "$base" admin erpos-demo)
# Pass 2's session is a clinic nurse's (王静), whom pass 1 leaves alone: pass 1 changes the
# passwords of the users in schemathesis.toml's `users` dictionary, and a password change
# ends every other session of that user (admin's own included, but the one it is sent with).
token_b=$("$py" "$here/demo.py" login "$base" wangjing erpos-demo)
# The demo's record ids, for the dictionaries of schemathesis.toml.
while IFS='=' read -r key value; do export "$key=$value"; done < <("$py" "$here/demo.py" ids "$base" "$token_a")

status=0
run_pass() {  # label, token, extra schemathesis arguments...
  local label=$1 token=$2; shift 2
  local rc=0
  ERPOS_TOKEN=$token "$st" --config-file "$here/schemathesis.toml" --no-color run \
    "$base/api/v1/openapi.json" --report ndjson --report-ndjson-path "$out/$label.ndjson" \
    "$@" >"$out/$label.txt" 2>&1 || rc=$?
  # schemathesis's own summary (failures with the curl lines to reproduce them).
  sed -n '/^=* \(FAILURES\|ERRORS\|WARNINGS\|SUMMARY\) =*$/,$p' "$out/$label.txt" | grep -v '^\s*$' | head -150
  "$py" "$here/summary.py" "$out/$label.ndjson" "schemathesis $label" || rc=1
  [ "$rc" = 0 ] || status=1
}
run_pass main "$token_a" --exclude-name "DELETE /api/v1/sessions/current"
run_pass logout "$token_b" --include-name "DELETE /api/v1/sessions/current"

# The demo must still be up and healthy after all of it.
if ! "$py" "$here/demo.py" wait "$base" 10; then
  echo "schemathesis: the demo is no longer healthy after the run" >&2
  status=1
fi
if ! kill -0 "$server" 2>/dev/null; then
  echo "schemathesis: the demo died during the run; its log:" >&2
  tail -50 "$out/demo.log" >&2
  status=1
fi
if grep -q "panicked" "$out/demo.log"; then
  echo "schemathesis: the demo panicked during the run:" >&2
  grep -A5 "panicked" "$out/demo.log" | head -40 >&2
  status=1
fi
echo "schemathesis: $([ "$status" = 0 ] && echo passed || echo FAILED) in $((SECONDS - started)) s (reports in $out)"
exit "$status"
