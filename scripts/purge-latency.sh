#!/usr/bin/env bash
# Purge-to-all-edges-acknowledged latency on the local fleet (issue 7 point 5).
#
#   scripts/purge-latency.sh [--purges 200] [--json FILE] [...]   (see --help)
#
# Builds the release binaries (skip with NO_BUILD=1), starts `target/release/fleet` on its own
# loopback addresses (edges 127.0.41.1-43.1, every port chosen by the OS), warms 40 tagged
# objects on all three edges, then sends N `POST /api/v1/purge` to the router cycling through
# URL / prefix / tag, hard / soft, and prints p50/p95/p99 of the client's time to the router's
# answer (which returns when every edge answered), the router's own `ms` and each edge's `ms`.
# Exit status 1 when a purge failed or the client p99 is not below 150 ms.
# Figures are written down in docs/bench/fleet.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${NO_BUILD:-0}" != 1 ]]; then
  cargo build --release -j 2 -p cdn-tests -p cdn-dns-router -p cdn-edge --bins
fi
echo "uptime before: $(uptime)" >&2
status=0
python3 scripts/soak_load.py purge "$@" || status=$?
echo "uptime after: $(uptime)" >&2
exit "$status"
