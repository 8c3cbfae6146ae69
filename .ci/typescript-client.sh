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
# shellcheck source=.ci/demo-server.sh
source .ci/demo-server.sh
build_erpos
echo "typescript client: node $(node --version), npm $(npm --version)"

"$bin" openapi >"$project/openapi.json"
(
  cd "$project"
  npm ci --no-audit --no-fund --loglevel=error
  npm run --silent generate
  npm run --silent typecheck
  npm run --silent build
)

start_demo "typescript client"
status=0
(cd "$project" && ERPOS_URL=$url npm run --silent smoke) || status=$?
if [ "$status" != 0 ]; then
  echo "typescript client: the demo's log:" >&2
  tail -30 "$work/demo.log" >&2
fi
echo "typescript client: $([ "$status" = 0 ] && echo passed || echo FAILED) in $((SECONDS - started)) s"
exit "$status"
