#!/usr/bin/env bash
# The web console in a real headless Chromium (issue 15), run by .ci/run after the cargo
# tests:
#   1. Debian's chromium (and a CJK font, so the screenshots show the clinic's Chinese) are
#      installed with apt when missing;
#   2. the console's lint (eslint) and type check run from its lock file (`npm ci`);
#   3. the binary the tests built — with the console embedded by applications/build.rs —
#      serves a fresh `erpos demo`;
#   4. tests/browser.mjs drives Chromium through playwright-core against it and saves a
#      screenshot of every page to target/console-screenshots/ (CI keeps it as an artefact).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
project=applications/console
shots=${ERPOS_SCREENSHOTS:-$PWD/${CARGO_TARGET_DIR:-target}/console-screenshots}
# shellcheck source=.ci/demo-server.sh
source .ci/demo-server.sh

need=()
command -v chromium >/dev/null || need+=(chromium)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need+=(fonts-noto-cjk)
if [ "${#need[@]}" -gt 0 ]; then
  echo "console: installing ${need[*]} with apt"
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q "${need[@]}" >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }
  else sudo apt-get install -y -q "${need[@]}" >/dev/null; fi
fi
echo "console: $(chromium --version 2>/dev/null | head -1), node $(node --version)"

build_erpos
(
  cd "$project"
  [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
  npm run --silent lint
  npm run --silent typecheck
)

start_demo console
rm -rf "$shots"
status=0
(cd "$project" && ERPOS_URL=$url ERPOS_SCREENSHOTS=$shots CHROMIUM=$(command -v chromium) npm run --silent test:browser) || status=$?
if [ "$status" != 0 ]; then
  echo "console: the demo's log:" >&2
  tail -30 "$work/demo.log" >&2
fi
echo "console: $([ "$status" = 0 ] && echo passed || echo FAILED) in $((SECONDS - started)) s; screenshots in $shots"
exit "$status"
