#!/usr/bin/env bash
# Soak test of the local fleet (issue 7 point 10), bounded: --duration seconds (default 180,
# at most 900), every loop bounded in count and time.
#
#   scripts/soak.sh [--duration 180] [--http-rps 60] [--dns-qps 100] [--dnsperf-qps 300] [--json FILE]
#
# Builds the release binaries (skip with NO_BUILD=1), starts `target/release/fleet` on its own
# loopback addresses, warms 200 objects on every edge, then runs steady load:
#   * DNS: a python loop asking for www.cdn.example.test A with ECS for the three regions'
#     demo subnets (answers recorded), plus dnsperf at a fixed rate over a mixed name file
#     (service A/AAAA, static, CNAME, wildcard, truncated TXT, NXDOMAIN);
#   * HTTP: clients that resolve (ECS, a random region) and GET from the answered edge with
#     Host: www.cdn.example.test (curl --resolve style), mostly cached objects + 5 % long tail;
# and meanwhile: a fleet purge by tag (all edges up), SIGKILL of the us-east edge, a purge
# while it is down (expected 502 naming it failed), a restart with its original command line
# and warm disk cache, a purge by URL after it is back.
# Afterwards it counts errors — none are expected outside the failover window
# (kill .. kill + probe_interval x fall + jitter; only requests to the killed edge may fail
# there) — and compares router/edge RSS (VmRSS) before and after. Exit status 1 when anything
# unexpected was counted. Figures are written down in docs/bench/fleet.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${NO_BUILD:-0}" != 1 ]]; then
  cargo build --release -j 2 -p cdn-tests -p cdn-dns-router -p cdn-edge --bins
fi
echo "uptime before: $(uptime)" >&2
status=0
python3 scripts/soak_load.py soak "$@" || status=$?
echo "uptime after: $(uptime)" >&2
exit "$status"
