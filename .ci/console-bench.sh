#!/usr/bin/env bash
# The web console's bench (issue 15's acceptance): time to interactive of the staff
# workspace and of the dashboard on the demo data, and the delay from a transition to its
# row on the dashboard (p50/p99 over ERPOS_BENCH_TRANSITIONS, 1,000 by default), each with
# its ratio to a baseline measured in the same run. A bench, not a test: it prints figures
# and asserts no time, so .ci/run does not run it. Run it by hand:
#   .ci/console-bench.sh                        # builds erpos (cargo build), then benches
#   ERPOS_BIN=target/debug/erpos .ci/console-bench.sh   # an erpos already built: no cargo
# Options (applications/console/tests/bench.mjs): ERPOS_BENCH_LOADS (10 loads per page),
# ERPOS_BENCH_TRANSITIONS (1000), ERPOS_BENCH_PACE_MS (15: one transition every 15 ms).
set -euo pipefail
cd "$(dirname "$0")/.."
project=applications/console
# shellcheck source=.ci/demo-server.sh
source .ci/demo-server.sh

# Chromium and the CJK font, as the browser run has them (the font is part of what the
# pages cost to lay out).
need=()
command -v chromium >/dev/null || need+=(chromium)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need+=(fonts-noto-cjk)
if [ "${#need[@]}" -gt 0 ]; then
  echo "console bench: installing ${need[*]} with apt"
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q "${need[@]}" >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }
  else sudo apt-get install -y -q "${need[@]}" >/dev/null; fi
fi

if [ -n "${ERPOS_BIN:-}" ]; then
  bin=$(cd "$(dirname "$ERPOS_BIN")" && pwd)/$(basename "$ERPOS_BIN")
else
  build_erpos
fi
(cd "$project" && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; })

start_demo "console bench"
status=0
(cd "$project" && ERPOS_URL=$url CHROMIUM=$(command -v chromium) npm run --silent bench) || status=$?
if [ "$status" != 0 ]; then
  echo "console bench: failed; the demo's log:" >&2
  tail -30 "$work/demo.log" >&2
fi
exit "$status"
