#!/usr/bin/env bash
# The generated TypeScript client (issue 12), run by .ci/run after the cargo tests:
#   1. `erpos openapi` prints the OpenAPI document (no server needed);
#   2. openapi-typescript generates clients/typescript/src/api.d.ts from it;
#   3. tsc (strict) type-checks and compiles src/smoke.ts, written against those types, so
#      an API change that breaks a client breaks here;
#   4. the compiled script runs on node against a fresh `erpos demo`: a nurse logs in,
#      creates a leave request, starts its process and submits it; a bad field gets 422.
# npm installs exactly clients/typescript/package-lock.json (`npm ci`).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
project=clients/typescript
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
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
echo "typescript client: node $(node --version), npm $(npm --version)"

"$bin" openapi >"$project/openapi.json"
(
  cd "$project"
  npm ci --no-audit --no-fund --loglevel=error
  npm run --silent generate
  npm run --silent typecheck
  npm run --silent build
)

# A fresh demo on a port the kernel picks; its first line says where.
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
  echo "typescript client: the demo did not start" >&2
  cat "$work/demo.out" "$work/demo.log" >&2
  exit 1
fi
status=0
(cd "$project" && ERPOS_URL=$url npm run --silent smoke) || status=$?
if [ "$status" != 0 ]; then
  echo "typescript client: the demo's log:" >&2
  tail -30 "$work/demo.log" >&2
fi
echo "typescript client: $([ "$status" = 0 ] && echo passed || echo FAILED) in $((SECONDS - started)) s"
exit "$status"
