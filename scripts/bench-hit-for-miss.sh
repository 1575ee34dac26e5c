#!/usr/bin/env bash
# bench-hit-for-miss.sh — concurrent requests for a URL the origin marks `private`, with and
# without hit-for-miss (`cache.hit_for_miss`), alternated: client latency, throughput and how
# the misses reached the origin (coalesced waits vs hit-for-miss fetches).
#
#   scripts/bench-hit-for-miss.sh
#
# Environment: ROUNDS (2 per setting), DUR (8 s), CONNS (50 wrk connections), DELAY_MS (100:
# the origin's time to answer), PORT (18080: origin; +1 edge HTTP, +2 edge admin). Uses the
# release binaries (target/release/edge, target/release/demo-origin; built when missing) and
# wrk (apt-get install wrk). Everything listens on 127.0.0.1 and is stopped at the end.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
: "${ROUNDS:=2}" "${DUR:=8}" "${CONNS:=50}" "${DELAY_MS:=100}" "${PORT:=18080}"
command -v wrk >/dev/null || { echo "bench-hit-for-miss: needs wrk" >&2; exit 1; }
EDGE=$REPO/target/release/edge ORIGIN=$REPO/target/release/demo-origin
[[ -x $EDGE && -x $ORIGIN ]] || (cd "$REPO" && cargo build --release --bin edge --bin demo-origin)
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

"$ORIGIN" --listen "127.0.0.1:$PORT" >"$WORK/origin.log" 2>&1 &
pids+=($!)
url="http://127.0.0.1:$((PORT + 1))/obj/1k/api?cc=private&delay_ms=$DELAY_MS"
echo "load before: $(uptime)"
echo "| hit_for_miss | req/s | p50 ms | p99 ms | origin requests | fill waits | hit-for-miss fetches |"
echo "|---|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
    for hfm in 0s 120s; do
        cat >"$WORK/edge.toml" <<EOF
[edge]
id = "e1"
region = "r1"
[http]
listen = ["127.0.0.1:$((PORT + 1))"]
workers = 2
[admin]
listen = "127.0.0.1:$((PORT + 2))"
[cache]
memory = "64 MiB"
hit_for_miss = "$hfm"
[[hosts]]
name = "example.test"
origin = "http://127.0.0.1:$PORT"
EOF
        "$EDGE" --config "$WORK/edge.toml" >"$WORK/edge.log" 2>&1 &
        ep=$!
        for _ in $(seq 1 50); do
            curl -sf -o /dev/null "http://127.0.0.1:$((PORT + 2))/healthz" && break
            sleep 0.1
        done
        before=$(curl -s "http://127.0.0.1:$PORT/_stats" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')
        # The first request learns that the answer may not be stored.
        curl -s -o /dev/null -H 'Host: example.test' "$url"
        out=$(wrk -t2 -c"$CONNS" -d"${DUR}s" -H 'Host: example.test' --latency "$url")
        after=$(curl -s "http://127.0.0.1:$PORT/_stats" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')
        m=$(curl -s "http://127.0.0.1:$((PORT + 2))/metrics")
        waits=$(awk '/^cdn_edge_fill_waits_total/ {s += $2} END {print s + 0}' <<<"$m")
        fetches=$(awk '/^cdn_edge_hit_for_miss_total/ {s += $2} END {print s + 0}' <<<"$m")
        rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
        p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
        echo "| $hfm | $rps | $p50 | $p99 | $((after - before)) | $waits | $fetches |"
        kill "$ep"
        wait "$ep" 2>/dev/null || true
    done
done
echo "load after: $(uptime)"
