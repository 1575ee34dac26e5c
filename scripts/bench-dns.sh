#!/bin/bash
# bench-dns.sh — the router against gdnsd on the GeoDNS yardstick of ../shared/bench/dns
# (real GeoLite2 prefixes from ~250 countries as per-query ECS, 5% NXDOMAIN, 5% SOA).
#
#   scripts/bench-dns.sh            # set up what is missing, run ROUNDS alternating rounds,
#                                   # append the results to docs/bench/dns.md
#
# Both servers get ONE server thread pinned to CPU $SRV_CPUS (default 0); dnsperf runs pinned to
# CPU $DNSPERF_CPUS (default 1). Rounds alternate router/gdnsd back to back so machine load
# hits both alike: quote the ratios. Environment: BENCH (yardstick dir, default
# /work/shared/bench/dns), BENCH_DIR (scratch, default /tmp/dnsbench), ROUNDS (3), DUR (8 s),
# LAT_QPS (1000), ROUTER_PORT (15310), SKIP_BUILD=1, SKIP_GDNSD=1 (router only).
# The scratch directory holds the mmdb (never committed), the generated queries, configs, logs.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
: "${BENCH:=/work/shared/bench/dns}" "${BENCH_DIR:=/tmp/dnsbench}" "${ROUNDS:=3}" "${DUR:=8}"
: "${LAT_QPS:=1000}" "${ROUTER_PORT:=15310}" "${SRV_CPUS:=0}" "${DNSPERF_CPUS:=1}"
export BENCH_DIR SRV_CPUS DNSPERF_CPUS ROUNDS DUR LAT_QPS
. "$BENCH/env.sh"
mkdir -p "$BENCH_DIR"
ROUTER_LOG=$BENCH_DIR/router.log
ROUTER_PID=$BENCH_DIR/router.pid
HEALTH_PID=$BENCH_DIR/router-health.pid

need() { command -v "$1" >/dev/null 2>&1; }

# 1. Tools and data (each step skipped when already done).
if ! need dnsperf || ! need dig; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dnsperf dnsutils >/dev/null
fi
python3 -c 'import dns, maxminddb' 2>/dev/null || pip install -q dnspython maxminddb
[ -s "$MMDB" ] || "$BENCH/fetch_mmdb.sh" "$BENCH_DIR"
[ -s "$BENCH_DIR/geo/prefixes.tsv" ] || python3 "$BENCH/tools/mmdb_extract.py" --mmdb "$MMDB" --out "$BENCH_DIR/geo"
[ -s "$BENCH_DIR/queries.bin" ] || python3 "$BENCH/gen_queries.py" --geo "$BENCH_DIR/geo" --out "$BENCH_DIR/queries"

# 2. The router, release build.
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  (cd "$REPO" && cargo build --release -p cdn-dns-router -j 2)
fi
BIN=$REPO/target/release/dns-router

# Health endpoints for the router's probes (HTTP 200 on /healthz; gdnsd's extmon uses the
# TCP listeners of ctl.sh edges on 15391-15393).
cat > "$BENCH_DIR/health200.py" <<'PY'
import http.server, socketserver, sys, threading
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", "7"); self.end_headers(); self.wfile.write(b"serving")
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer): daemon_threads = True; allow_reuse_address = True
for p in sys.argv[1:]:
    threading.Thread(target=S(("127.0.0.1", int(p)), H).serve_forever, daemon=True).start()
threading.Event().wait()
PY

# 3. The router's config for the same scenario as zones/base.zone + gdnsd's DYNA records.
big=$(for i in $(seq 0 9); do printf '"%03d-%s",' "$i" "$(printf 'a%.0s' $(seq 1 120))"; done)
cat > "$BENCH_DIR/router.toml" <<EOF
[dns]
listen = ["$HOST:$ROUTER_PORT"]
udp_threads = 1
[admin]
listen = "127.0.0.1:0"
[geo]
database = "$MMDB"
default_region = "us-east"
[[regions]]
name = "us-east"
lat = 39.0
lon = -77.5
[[regions]]
name = "eu-west"
lat = 53.3
lon = -6.3
[[regions]]
name = "ap-northeast"
lat = 35.7
lon = 139.7
[[edges]]
id = "use1"
region = "us-east"
ipv4 = ["192.0.2.10"]
ipv6 = ["2001:db8::10"]
probe_url = "http://127.0.0.1:15381/healthz"
[[edges]]
id = "euw1"
region = "eu-west"
ipv4 = ["192.0.2.20"]
ipv6 = ["2001:db8::20"]
probe_url = "http://127.0.0.1:15382/healthz"
[[edges]]
id = "apne1"
region = "ap-northeast"
ipv4 = ["192.0.2.30"]
ipv6 = ["2001:db8::30"]
probe_url = "http://127.0.0.1:15383/healthz"
[[zones]]
name = "cdn.example.test"
ns = ["ns1.cdn.example.test", "ns2.cdn.example.test"]
soa = { serial = 2024010101, refresh = 3600, retry = 600, expire = 604800, minimum = 300, ttl = 3600 }
records = [
  { name = "ns1", type = "A", data = ["192.0.2.53"] },
  { name = "ns2", type = "A", data = ["192.0.2.54"] },
  { name = "static", type = "A", ttl = 30, data = ["192.0.2.99"] },
  { name = "big", type = "TXT", data = [${big%,}] },
]
[[services]]
name = "www.cdn.example.test"
ttl = 30
[[services]]
name = "img.cdn.example.test"
ttl = 30
EOF
"$BIN" --config "$BENCH_DIR/router.toml" --check-config

stop_pid() { [ -s "$1" ] && kill "$(cat "$1")" 2>/dev/null; rm -f "$1"; }
cleanup() {
  stop_pid "$ROUTER_PID"; stop_pid "$HEALTH_PID"
  if [ "${SKIP_GDNSD:-0}" != 1 ]; then "$BENCH/ctl.sh" gdnsd stop || true; "$BENCH/ctl.sh" edges stop || true; fi
}
trap cleanup EXIT

python3 "$BENCH_DIR/health200.py" 15381 15382 15383 & echo $! > "$HEALTH_PID"
taskset -c "$SRV_CPUS" "$BIN" --config "$BENCH_DIR/router.toml" --log-level warn >"$ROUTER_LOG" 2>&1 &
echo $! > "$ROUTER_PID"
for _ in $(seq 1 100); do
  dig +time=1 +tries=1 -p "$ROUTER_PORT" @"$HOST" cdn.example.test SOA +short >/dev/null 2>&1 && break
  sleep 0.2
done
EU_NET=$(awk -F'\t' '$5=="eu-west" && $2=="A" {print $3; exit}' "$BENCH_DIR/queries.tsv")
dig -p "$ROUTER_PORT" @"$HOST" www.cdn.example.test A +subnet="$EU_NET" +norec +short | grep -q 192.0.2.20 \
  || { echo "router does not answer the geo scenario ($EU_NET should go to eu-west):"; tail "$ROUTER_LOG"; exit 1; }
sleep 2  # first probes in: edges Up

TARGETS=("router=$HOST:$ROUTER_PORT")
if [ "${SKIP_GDNSD:-0}" != 1 ]; then
  [ -d "$BENCH_DIR/gdnsd/etc" ] || bash "$BENCH/setup/gdnsd.sh"
  "$BENCH/ctl.sh" edges start
  "$BENCH/ctl.sh" gdnsd start
  TARGETS+=("gdnsd=$HOST:$PORT_GDNSD")
fi

# 4. Alternating rounds.
LOAD_BEFORE=$(uptime)
OUT=$(bash "$BENCH/bench.sh" "${TARGETS[@]}" 2>&1 | tee /dev/stderr)
LOAD_AFTER=$(uptime)
SUMMARY=$(echo "$OUT" | sed -n '/^| server/,/^$/p')
RAW=$(echo "$OUT" | awk '/^raw: /{print $2}')

# 4b. Server CPU per query. dnsperf on one core can be the bottleneck (the server then idles
# between batches and QPS measures the client), so each server's CPU time (all threads,
# /proc/PID/stat utime+stime, ticks of 10 ms) is read around saturating runs: queries per
# server CPU-second is the capacity of one server core, independent of the client and of load.
: "${EFF_ROUNDS:=2}"
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
eff_run() { # name pid port file -> one row
  local name=$1 pid=$2 port=$3 file=$4 kind=$5 u0 s0 u1 s1 n
  read -r u0 s0 < <(ticks "$pid")
  n=$(taskset -c "$DNSPERF_CPUS" dnsperf -B -d "$file" -s "$HOST" -p "$port" -c 4 -q 100 -t 2 -l "$DUR" 2>&1 \
      | awk '/Queries completed/{print $3}')
  read -r u1 s1 < <(ticks "$pid")
  awk -v r="$name" -v k="$kind" -v n="$n" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v d="$DUR" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
    'BEGIN { c = (u + s) / 100; printf "%s,%s,%d,%.0f,%.2f,%.0f,%.2f,%.2f,%s\n", r, k, n, n / d, c / d, n / c, u * 1e4 / n, s * 1e4 / n, l }'
}
EFF_CSV=$BENCH_DIR/results/eff-$(date +%Y%m%d-%H%M%S).csv
echo "server,kind,completed,qps,server_cpu_util,queries_per_cpu_s,user_us_per_q,sys_us_per_q,load1" > "$EFF_CSV"
for r in $(seq 1 "$EFF_ROUNDS"); do
  for t in "${TARGETS[@]}"; do
    name=${t%%=*}; port=${t##*:}
    if [ "$name" = router ]; then pid=$(cat "$ROUTER_PID"); else pid=$(cat "$BENCH_DIR/gdnsd.pid"); fi
    eff_run "$name" "$pid" "$port" "$BENCH_DIR/queries.bin" geo >> "$EFF_CSV"
    eff_run "$name" "$pid" "$port" "$BENCH_DIR/static.bin" static >> "$EFF_CSV"
  done
done
cat "$EFF_CSV"
LOAD_AFTER=$(uptime)

# 5. Write down.
DOC=$REPO/docs/bench/dns.md
{
  echo
  echo "## Run $(date -u +%Y-%m-%dT%H:%MZ) ($(git -C "$REPO" rev-parse --short HEAD))"
  echo
  echo "\`ROUNDS=$ROUNDS DUR=$DUR LAT_QPS=$LAT_QPS SRV_CPUS=$SRV_CPUS DNSPERF_CPUS=$DNSPERF_CPUS scripts/bench-dns.sh\`;"
  echo "router: 1 UDP thread (\`udp_threads = 1\`), release build, pinned with taskset like gdnsd (1 udp thread)."
  echo
  echo "* load before: \`$LOAD_BEFORE\`"
  echo "* load after:  \`$LOAD_AFTER\`"
  echo
  echo "$SUMMARY"
  echo
  echo "Server CPU per query (saturating runs of DUR s after the rounds, $EFF_ROUNDS per server and kind;"
  echo "queries per server CPU-second = the capacity of one server core; util < 1 means dnsperf was the limit):"
  echo
  echo "| server | kind | completed | QPS | server CPU util | queries per CPU-s | user µs/q | sys µs/q | load1 |"
  echo "|---|---|---|---|---|---|---|---|---|"
  tail -n +2 "$EFF_CSV" | awk -F, '{printf "| %s | %s | %s | %s | %s | **%s** | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9}'
  echo
  echo "Raw rows (round, server, kind, qps, avg ms, p50, p99, sent, completed, lost, load1):"
  echo
  echo '```'
  [ -n "$RAW" ] && cat "$RAW"
  echo '```'
} >> "$DOC"
echo "appended to $DOC"
