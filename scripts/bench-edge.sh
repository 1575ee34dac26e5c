#!/bin/bash
# bench-edge.sh — run the shared HTTP edge-cache yardstick (../shared/bench/http) against our
# edge, side by side with nginx (static files and proxy_cache) and Varnish, on this machine.
#
#   scripts/bench-edge.sh [quick|full]
#
#   quick (default): hot hits 1k/100k/1m (wrk + h2load, 1 round x 5 s), the 200-client cold
#                    burst (2 rounds), the long tail (1 round, 10 s warm + 20 s), stale-if-error
#                    and a restart with a warm disk cache (edge only, 2 s after the last store).
#                    Then the RSS growth while one client streams a cold 1 GiB object.
#   full:            the yardstick's own run_all.sh with the edge added (ATS included if installed).
#   rss:             only the 1 GiB streaming RSS check.
#   stale:           only the stale-if-error scenario, edge only.
#   hot:             only the hot-hit throughput runs (HOT_ROUNDS, default 3).
#   longtail:        only the long-tail Zipf run (LT_ROUNDS, LT_WARM, LT_DUR as in quick).
#   coalesce:        only the 200-client cold burst (CO_ROUNDS, default 3; CO_CLIENTS, default 200).
#   stalled:         RSS while STALLED_N (200) clients request one cached 1 MiB object and read
#                    nothing (scripts/stalled-clients.py), for the edge and nginx-cache.
#   syscalls:        syscalls per hot hit (perf stat) and their split by kind (strace -c), for
#                    nginx-static, $TARGETS and the edge, per size in CPU_SIZES.
#   cpu:             server CPU per hot hit (µs of user+system time of the target's processes
#                    per request) for nginx-static, $TARGETS and the edge: CPU_ROUNDS (default 5)
#                    interleaved runs of CPU_DUR seconds (default 3) per size in CPU_SIZES
#                    (default 1k,100k,1m) with h2load; medians printed. Unlike req/s, this does
#                    not depend on how much of the 2 shared cores the load generator takes.
#
# env: BENCH (yardstick dir, default /work/shared/bench/http), RUN (scratch, /tmp/httpbench/run),
#      RESULTS_DIR (default $RUN/results-edge), EDGE_BIN (default target/release/edge; built if
#      missing), TARGETS (baselines, default nginx-cache,varnish-malloc; empty: the edge alone),
#      EDGE_CACHE_EXTRA (lines added to the edge's [cache], e.g. 'disk_reinsert_hits = 1'),
#      EDGE_MALLOC_MMAP_THRESHOLD (131072, as the deploy units set it; empty: glibc's default),
#      EDGE_ACCESS_LOG (a file: the edge writes its JSON access log there, e.g. to replay the
#      long tail it served with `cache-sim --trace log:FILE`).
# The edge listens on 127.0.0.1:18130 (admin 18131) with 128 MiB memory + 128 MiB disk, like
# the baselines' 128 MiB limit. Every process is started and stopped by the yardstick's
# servers.sh by recorded PID. `uptime` is printed before and after (the machine may be shared).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH:-/work/shared/bench/http}
RUN=${RUN:-/tmp/httpbench/run}
MODE=${1:-quick}
EDGE_BIN=${EDGE_BIN:-$ROOT/target/release/edge}
TARGETS=${TARGETS-nginx-cache,varnish-malloc}  # TARGETS= (empty): the edge alone
# PORT_SHIFT=N: run a copy of the yardstick with every port moved up by N (e.g. 600 when a
# test fleet holds 18080); default 0 = the yardstick as is.
SHIFT=${PORT_SHIFT:-0}
export RUN RESULTS_DIR=${RESULTS_DIR:-$RUN/results-edge}
mkdir -p "$RUN" "$RESULTS_DIR"

if [ ! -x "$EDGE_BIN" ]; then
    (cd "$ROOT" && cargo build --release -p cdn-edge -j 2)
fi

if [ "$SHIFT" != 0 ]; then
    copy=$RUN/yardstick
    rm -rf "$copy" && mkdir -p "$copy"
    cp -r "$BENCH"/*.sh "$BENCH"/*.py "$BENCH"/conf "$BENCH"/lua "$copy"/
    python3 - "$copy" "$SHIFT" <<'PY'
import re, sys, pathlib
d, shift = pathlib.Path(sys.argv[1]), int(sys.argv[2])
for f in ["servers.sh", "bench.py", "origin.py"]:
    p = d / f
    p.write_text(re.sub(r"\b18(0[89]\d|1[0-3]\d)\b", lambda m: str(int(m.group(0)) + shift), p.read_text()))
PY
    BENCH=$copy
    export ORIGIN=127.0.0.1:$((18080 + SHIFT))
fi

cat > "$RUN/edge.toml" <<TOML
[edge]
id = "bench"
region = "local"
[http]
listen = ["127.0.0.1:$((18130 + SHIFT))"]
workers = ${WORKERS:-2}
[admin]
listen = "127.0.0.1:$((18131 + SHIFT))"
[cache]
memory = "128 MiB"
disk_path = "$RUN/edge-cache"
disk = "128 MiB"
fill_wait_timeout = "15s"
${EDGE_CACHE_EXTRA:-}
[lifecycle]
shutdown_grace = "2s"
$(if [ -n "${EDGE_ACCESS_LOG:-}" ]; then printf '[access_log]\nenabled = true\npath = "%s"\nformat = "json"\n' "$EDGE_ACCESS_LOG"; fi)
[[hosts]]
name = "localhost"
origin = "http://127.0.0.1:$((18140 + SHIFT))"
first_byte_timeout = "15s"
[[hosts]]
name = "127.0.0.1"
origin = "http://127.0.0.1:$((18080 + SHIFT))"
first_byte_timeout = "15s"
# Like the baselines' configs (Varnish grace 24h, nginx proxy_cache_use_stale): stale
# serving on origin errors even when the origin sends no stale-if-error.
grace = "24h"
TOML
"$EDGE_BIN" --config "$RUN/edge.toml" --check-config >/dev/null

export EDGE_ADDR=127.0.0.1:$((18130 + SHIFT))
# Started as the deploy units start it (deploy/systemd/cdn-edge.service): glibc's mmap
# threshold pinned at 128 KiB. EDGE_MALLOC_MMAP_THRESHOLD= (empty) runs it with glibc's default.
malloc_env=""
if [ -n "${EDGE_MALLOC_MMAP_THRESHOLD-131072}" ]; then
    malloc_env="env MALLOC_MMAP_THRESHOLD_=${EDGE_MALLOC_MMAP_THRESHOLD-131072}"
fi
export EDGE_START="exec $malloc_env $EDGE_BIN --config $RUN/edge.toml --log-level warn"
export EDGE_WIPE="rm -rf $RUN/edge-cache"

# The yardstick uses fixed ports; refuse to run next to something else holding them.
busy=""
for p in 18080 18081 18090 18100 18110 18111 18112 18130 18131 18140; do
    p=$((p + SHIFT))
    if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then busy="$busy $p"; fi
done
if [ -n "$busy" ]; then
    echo "ports in use:$busy (another benchmark or test is running; try PORT_SHIFT=600); not starting" >&2
    exit 1
fi

echo "== $(date -u +%FT%TZ) start: $(uptime)" | tee -a "$RESULTS_DIR/uptime.txt"
cd "$BENCH"
stop_all() { for t in ${TARGETS//,/ } edge nginx-static; do ./servers.sh "$t" stop >/dev/null 2>&1 || true; done; }
trap 'stop_all; ./servers.sh origin stop >/dev/null 2>&1 || true' EXIT

# RSS growth of the edge while one client streams a cold 1 GiB object (issue target: < 64 MiB).
# The yardstick's origin caps objects at 64 MiB: the 1 GiB object comes from our demo-origin
# (host `localhost` in the edge config).
rss_stream() {
    local demo=${DEMO_ORIGIN_BIN:-$ROOT/target/release/demo-origin}
    [ -x "$demo" ] || (cd "$ROOT" && cargo build --release -p cdn-tests --bin demo-origin -j 2)
    setsid "$demo" --listen "127.0.0.1:$((18140 + SHIFT))" --log-level warn > "$RUN/demo-origin.log" 2>&1 &
    local dpid=$!
    ./servers.sh edge stop >/dev/null 2>&1 || true
    ./servers.sh edge wipe
    ./servers.sh edge start
    local pid peak rss0 rss t0 out
    pid=$(cat "$RUN/edge.pidf")
    rss0=$(awk '/VmRSS/{print $2}' "/proc/$pid/status")
    peak=$rss0
    t0=$(date +%s.%N)
    curl -s -o /dev/null -H 'host: localhost' -w '%{http_code} %{size_download}' "http://$EDGE_ADDR/obj/1g/rss-$(date +%s)" > "$RUN/rss-curl.out" &
    local cpid=$!
    while kill -0 "$cpid" 2>/dev/null; do
        rss=$(awk '/VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        [ "${rss:-0}" -gt "$peak" ] && peak=$rss
        sleep 0.1
    done
    wait "$cpid" || true
    out=$(cat "$RUN/rss-curl.out")
    printf 'rss_stream_1g: curl=%s secs=%.1f rss_start_mib=%d rss_peak_mib=%d growth_mib=%d load1=%s\n' \
        "$out" "$(echo "$(date +%s.%N) - $t0" | bc)" $((rss0 / 1024)) $((peak / 1024)) $(((peak - rss0) / 1024)) \
        "$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$RESULTS_DIR/rss.txt"
    ./servers.sh edge stop
    kill "$dpid" 2>/dev/null || true
}

# Server CPU per request: user+system ticks of every process in the target's session
# (servers.sh starts each with setsid) across one h2load run over the 16 hot objects.
cpu_per_request() {
    local t=$1 size=$2 sid pids c0 c1 w0 w1 req urls="" addr
    addr=$(./servers.sh "$t" addr)
    sid=$(cat "$RUN/$t.pidf")
    pids=$(ps -o pid= -s "$sid")
    ticks() { local s=0 p f; for p in $pids; do [ -r "/proc/$p/stat" ] || continue
        read -r -a f < <(sed 's/.*) //' "/proc/$p/stat"); s=$((s + f[11] + f[12])); done; echo "$s"; }
    for i in $(seq 0 15); do urls="$urls http://$addr/obj/$size/hot$i"; done
    c0=$(ticks); w0=$(date +%s.%N)
    # shellcheck disable=SC2086
    req=$(h2load --h1 -t2 -c64 -D "${CPU_DUR:-3}" $urls 2>&1 | awk '/requests:/{print $8}')
    c1=$(ticks); w1=$(date +%s.%N)
    printf '%s %s %d %.0f %.1f\n' "$t" "$size" "$req" "$(echo "$req / ($w1 - $w0)" | bc -l)" \
        "$(echo "($c1 - $c0) * 1000000 / $(getconf CLK_TCK) / $req" | bc -l)"
}

# Start the origin and the targets `$1` (the edge with a wiped cache), then warm the 16 hot
# objects of every size in CPU_SIZES on each cache with CPU_WARM (140) requests per object (the
# edge moves a disk chunk into memory on its 128th hit, `[cache] promote_after`), so every size
# is measured as a hot hit from memory.
start_hot() {
    local t size i r
    ./servers.sh edge wipe
    ./servers.sh origin start 2>/dev/null || true
    for t in $1; do ./servers.sh "$t" start >/dev/null; done
    sleep 2
    for t in $1; do
        [ "$t" = nginx-static ] && continue
        for size in ${CPU_SIZES//,/ }; do for i in $(seq 0 15); do for r in $(seq "${CPU_WARM:-140}"); do
            echo "url=http://$(./servers.sh "$t" addr)/obj/$size/hot$i"; echo "output=/dev/null"
        done; done; done > "$RUN/cpu-warm.cfg"
        curl -s -K "$RUN/cpu-warm.cfg"
    done
}

# Syscalls per request: `perf stat` counts every syscall the target's processes enter during one
# h2load run over the 16 hot objects of one size (low overhead, unlike strace), then
# `strace -c -f` over a second, shorter run gives the split by syscall (strace slows the server,
# so read that split for its proportions, not its totals).
syscalls_mode() {
    local ts="nginx-static ${TARGETS//,/ } edge" t size sid pids urls req n
    start_hot "$ts"
    for size in ${CPU_SIZES//,/ }; do for t in $ts; do
        sid=$(cat "$RUN/$t.pidf")
        pids=$(ps -o pid= -s "$sid" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
        urls=""
        for i in $(seq 0 15); do urls="$urls http://$(./servers.sh "$t" addr)/obj/$size/hot$i"; done
        perf stat -e raw_syscalls:sys_enter -x, -o "$RUN/syscalls-$t.perf" -p "$pids" &
        local ppid=$!
        sleep 0.3
        # shellcheck disable=SC2086
        req=$(h2load --h1 -t2 -c64 -D "${CPU_DUR:-3}" $urls 2>&1 | awk '/requests:/{print $8}')
        kill -INT "$ppid"; wait "$ppid" || true
        n=$(awk -F, '/raw_syscalls/{print $1}' "$RUN/syscalls-$t.perf")
        printf '%-14s %-5s requests=%d syscalls=%d per_request=%.2f\n' "$t" "$size" "$req" "$n" \
            "$(echo "$n / $req" | bc -l)" | tee -a "$RESULTS_DIR/syscalls.txt"
        # shellcheck disable=SC2086
        timeout 4 strace -c -f -o "$RUN/strace-$t.txt" $(for p in ${pids//,/ }; do echo -p "$p"; done) &
        local spid=$!
        sleep 0.5
        # shellcheck disable=SC2086
        h2load --h1 -t2 -c64 -D 2 $urls >/dev/null 2>&1
        wait "$spid" || true
        head -14 "$RUN/strace-$t.txt" | tee -a "$RESULTS_DIR/syscalls.txt"
    done; done
    stop_all
}

cpu_mode() {
    local ts="nginx-static ${TARGETS//,/ } edge" t size r i
    start_hot "$ts"
    echo "# target size requests req/s server_us_per_request" > "$RESULTS_DIR/cpu.txt"
    for r in $(seq "${CPU_ROUNDS:-5}"); do
        for size in ${CPU_SIZES//,/ }; do
            for t in $ts; do cpu_per_request "$t" "$size" | tee -a "$RESULTS_DIR/cpu.txt"; done
        done
    done
    echo "medians (server µs per request; req/s):"
    for size in ${CPU_SIZES//,/ }; do for t in $ts; do
        awk -v t="$t" -v s="$size" '$1==t && $2==s {print $5, $4}' "$RESULTS_DIR/cpu.txt" | sort -n |
            awk -v t="$t" -v s="$size" '{u[NR]=$1; q[NR]=$2} END {m=int((NR+1)/2);
                printf "%-15s %-5s %7.1f us/req (min %.1f max %.1f) %6d req/s n=%d\n", t, s, u[m], u[1], u[NR], q[m], NR}'
    done; done | tee -a "$RESULTS_DIR/cpu.txt"
    stop_all
}
CPU_SIZES=${CPU_SIZES:-1k,100k,1m}

case $MODE in
syscalls)
    syscalls_mode ;;
cpu)
    cpu_mode ;;
rss)
    rss_stream ;;
hot)
    ./servers.sh origin start 2>/dev/null || true
    python3 bench.py hot --targets "nginx-static,${TARGETS:+$TARGETS,}edge" --rounds "${HOT_ROUNDS:-3}" --dur "${HOT_DUR:-5}"
    stop_all ;;
longtail)
    ./servers.sh edge wipe
    python3 bench.py longtail --targets "${TARGETS:+$TARGETS,}edge" --rounds "${LT_ROUNDS:-1}" --warm "${LT_WARM:-10}" --dur "${LT_DUR:-20}"
    stop_all ;;
stalled)
    ./servers.sh edge wipe
    ./servers.sh origin start 2>/dev/null || true
    for t in edge nginx-cache; do
        ./servers.sh "$t" start >/dev/null
        sleep 1
        echo -n "$t "
        python3 "$ROOT/scripts/stalled-clients.py" "$(python3 -c "import bench; print(bench.addr('$t'))")" \
            "$(cat "$RUN/$t.pidf")" "${STALLED_N:-200}" | tee -a "$RESULTS_DIR/stalled.txt"
        ./servers.sh "$t" stop >/dev/null
    done
    ;;
coalesce)
    ./servers.sh edge wipe
    ./servers.sh origin start 2>/dev/null || true
    python3 bench.py coalesce --targets "${TARGETS:+$TARGETS,}edge" --rounds "${CO_ROUNDS:-3}" --clients "${CO_CLIENTS:-200}"
    stop_all ;;
stale)
    ./servers.sh origin start 2>/dev/null || true
    python3 bench.py stale --targets "edge"
    stop_all ;;
full)
    TARGETS_EXTRA=edge ./run_all.sh ;;
quick)
    ./servers.sh edge wipe
    ./servers.sh origin start 2>/dev/null || true
    python3 bench.py hot --targets "nginx-static,${TARGETS:+$TARGETS,}edge" --rounds "${HOT_ROUNDS:-1}" --dur "${HOT_DUR:-5}"
    stop_all
    python3 bench.py coalesce --targets "${TARGETS:+$TARGETS,}edge" --rounds "${CO_ROUNDS:-2}"
    python3 bench.py stale --targets "edge"
    stop_all
    ./servers.sh edge wipe
    python3 bench.py longtail --targets "${TARGETS:+$TARGETS,}edge" --rounds "${LT_ROUNDS:-1}" --warm "${LT_WARM:-10}" --dur "${LT_DUR:-20}"
    stop_all
    python3 bench.py restart --targets edge --settle "${RESTART_SETTLE:-2}" --wait "${RESTART_WAIT:-5}"
    stop_all
    rss_stream
    ;;
*) echo "usage: $0 [quick|full|rss|stale|hot|longtail|coalesce|stalled|cpu|syscalls]" >&2; exit 2 ;;
esac

python3 bench.py report --out "$RESULTS_DIR/tables.md"
echo "== $(date -u +%FT%TZ) end: $(uptime)" | tee -a "$RESULTS_DIR/uptime.txt"
echo "tables: $RESULTS_DIR/tables.md"
