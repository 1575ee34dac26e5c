#!/usr/bin/env bash
# The status page's cost to the router (docs/bench/ui.md): start the local fleet, then measure
# the router's CPU time (/proc/<pid>/stat utime+stime) and its admin requests (the
# cdn_admin_requests_total counter) over the same window twice: with no page open, and with
# N copies of the page open in headless Chromium. Also prints the page's size.
#
# Usage: scripts/bench-ui.sh [seconds=60] [pages=1]
#   needs: the fleet, dns-router and edge binaries built (PROFILE=release|debug, default
#   release: cargo build --release -p cdn-dns-router -p cdn-edge -p cdn-tests --bins),
#   chromium, curl. Ports: ADMIN (default 127.0.0.1:18053), DNS 127.0.0.1:18553, origin
#   127.0.0.1:18080, edges 18081 / 19081 on 127.0.{1,2,3}.1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs="${1:-60}"
pages="${2:-1}"
profile="${PROFILE:-release}"
target="${CARGO_TARGET_DIR:-target}/$profile"
admin="${ADMIN:-127.0.0.1:18053}"
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$target/fleet" --no-build --workdir "$work/fleet" --admin "$admin" --dns 127.0.0.1:18553 \
    --origin 127.0.0.1:18080 --edge-port 18081 --edge-admin-port 19081 >"$work/fleet.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
    grep -q 'Ctrl-C stops everything' "$work/fleet.log" 2>/dev/null && break
    sleep 0.2
done
grep -q 'Ctrl-C stops everything' "$work/fleet.log" || { cat "$work/fleet.log"; exit 1; }
# The router is the dns-router process whose command line names this fleet's work directory.
router=""
for d in /proc/[0-9]*; do
    if tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -q "dns-router.*$work/fleet"; then
        router="${d#/proc/}"
    fi
done
[[ -n "$router" ]] || { echo "router process not found" >&2; exit 1; }
hz="$(getconf CLK_TCK)"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$router/stat"; }
admin_requests() {
    curl -s "http://$admin/metrics" |
        awk '/^cdn_admin_requests_total/ && !/endpoint="\/metrics"/ { n += $NF } END { print n + 0 }'
}
measure() { # label
    local c0 r0 c1 r1
    c0="$(cpu_ticks)"; r0="$(admin_requests)"
    sleep "$secs"
    c1="$(cpu_ticks)"; r1="$(admin_requests)"
    awk -v l="$1" -v c="$((c1 - c0))" -v r="$((r1 - r0))" -v s="$secs" -v hz="$hz" 'BEGIN {
        printf "%-22s router CPU %6.2f s in %d s (%5.2f %% of a core), admin requests %5d (%.2f/s)\n",
            l, c / hz, s, 100 * c / hz / s, r, r / s }'
}

sizes() {
    local total=0 n
    for p in / /ui/app.js /ui/app.css /ui/world.svg; do
        n="$(curl -s "http://$admin$p" | wc -c)"
        total=$((total + n))
        printf '  %-14s %6d bytes (gzip -9: %5d)\n' "$p" "$n" "$(curl -s "http://$admin$p" | gzip -9 | wc -c)"
    done
    printf '  %-14s %6d bytes\n' total "$total"
    printf '  one poll of /api/v1/edges: %d bytes\n' "$(curl -s "http://$admin/api/v1/edges" | wc -c)"
}

echo "page size:"
sizes
sleep 5 # let start-up settle
measure "no page open"
for i in $(seq 1 "$pages"); do
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$work/chrome-$i" --remote-debugging-port=0 \
        "http://$admin/" >/dev/null 2>&1 &
    pids+=($!)
done
sleep 5
measure "$pages page(s) open"
