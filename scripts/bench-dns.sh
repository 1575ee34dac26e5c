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
# LAT_QPS (1000), ROUTER_PORT (15310), SKIP_BUILD=1, SKIP_GDNSD=1 (router only), SKIP_ROUNDS=1
# (only the server-CPU runs of step 4b), EFF_ROUNDS (3).
#
# Query mixes of the server-CPU runs (MIX, default "repeat cold static"):
#   repeat  the yardstick's queries.bin: 200 000 queries over ~65 000 prefixes, replayed in a
#           loop, so a server sees each client prefix again every ~2 s (caches warm);
#   cold    every query a different ECS prefix: COLD_N (1 000 000) distinct /24 (85 %) and /48
#           (15 %) prefixes drawn from the GeoLite2 City networks that have a location (each
#           located network equally likely, then a random /24 or /48 inside it), www/img,
#           A 70 % / AAAA 30 %; generated once into $BENCH_DIR/cold.bin (cold.tsv: prefix and
#           nearest region by great-circle distance). A run of DUR s at ~100k q/s uses fewer
#           queries than the file holds, so no prefix repeats within a run;
#   static  static.cdn.example.test A without ECS (the no-geo floor).
# After the CPU runs, AGREE_N (3000) cold prefixes are asked of every server (A, over UDP) and
# the answered region compared with the nearest region and between servers (geo accuracy).
# ROUTER_BIN_BEFORE=path adds a second router binary ("router-before", e.g. a build of the
# previous commit) on ROUTER_PORT+1 to every run, for a before/after comparison in one run.
# BENCH_DOC=file writes the results there instead of docs/bench/dns.md (trial runs).
# The scratch directory holds the mmdb (never committed), the generated queries, configs, logs.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
: "${BENCH:=/work/shared/bench/dns}" "${BENCH_DIR:=/tmp/dnsbench}" "${ROUNDS:=3}" "${DUR:=8}"
: "${LAT_QPS:=1000}" "${ROUTER_PORT:=15310}" "${SRV_CPUS:=0}" "${DNSPERF_CPUS:=1}"
: "${MIX:=repeat cold static}" "${COLD_N:=1000000}" "${AGREE_N:=3000}" "${EFF_ROUNDS:=3}"
export BENCH_DIR SRV_CPUS DNSPERF_CPUS ROUNDS DUR LAT_QPS
. "$BENCH/env.sh"
mkdir -p "$BENCH_DIR"
ROUTER_LOG=$BENCH_DIR/router.log
ROUTER_PID=$BENCH_DIR/router.pid
BEFORE_PID=$BENCH_DIR/router-before.pid
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

# The cold mix (see the header): distinct ECS prefixes from located GeoLite2 networks.
cat > "$BENCH_DIR/cold_queries.py" <<'PY'
import math, random, struct, sys, time, ipaddress, maxminddb
mmdb, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
R = {"us-east": (39.0, -77.5), "eu-west": (53.3, -6.3), "ap-northeast": (35.7, 139.7)}
def km(a, b):
    r = math.pi / 180
    h = math.sin((b[0]-a[0])*r/2)**2 + math.cos(a[0]*r)*math.cos(b[0]*r)*math.sin((b[1]-a[1])*r/2)**2
    return 2 * 6371.0088 * math.asin(math.sqrt(min(1.0, h)))
SKIP6 = [ipaddress.ip_network(x) for x in ("::/96", "::ffff:0:0/96", "2001::/32", "2002::/16")]
t0 = time.time(); nets = {4: [], 6: []}
for net, rec in maxminddb.open_database(mmdb):
    loc = (rec or {}).get("location") or {}
    if loc.get("latitude") is None or loc.get("longitude") is None: continue
    if net.version == 4 and net.prefixlen <= 24:
        nets[4].append((int(net.network_address), net.prefixlen, loc["latitude"], loc["longitude"]))
    elif net.version == 6 and net.prefixlen <= 48 and not any(net.subnet_of(s) for s in SKIP6):
        nets[6].append((int(net.network_address), net.prefixlen, loc["latitude"], loc["longitude"]))
print(f"located networks: {len(nets[4])} IPv4 (/24 or shorter), {len(nets[6])} IPv6 (/48 or shorter), {time.time()-t0:.0f}s", file=sys.stderr)
rnd = random.Random(7871); seen = set(); rows = []
want = {4: int(n * 0.85), 6: n - int(n * 0.85)}
for fam, plen, width in ((4, 24, 32), (6, 48, 128)):
    pool = nets[fam]; got = 0
    while got < want[fam]:
        base, length, lat, lon = pool[rnd.randrange(len(pool))]
        sub = base + (rnd.randrange(1 << (plen - length)) << (width - plen))
        if (fam, sub) in seen: continue
        seen.add((fam, sub)); got += 1
        rows.append((fam, sub, plen, lat, lon))
rnd.shuffle(rows)
ZONE = [b"cdn", b"example", b"test"]
def qname(host):
    return b"".join(bytes([len(l)]) + l for l in [host] + ZONE) + b"\0"
NAMES = {h: qname(h) for h in (b"www", b"img")}
with open(out + ".bin", "wb") as fb, open(out + ".tsv", "w") as ft:
    for fam, sub, plen, lat, lon in rows:
        host = b"www" if rnd.random() < 0.5 else b"img"
        qtype = 28 if rnd.random() < 0.30 else 1
        addr = sub.to_bytes(4 if fam == 4 else 16, "big")[: (plen + 7) // 8]
        opt = struct.pack("!HHHBB", 8, 4 + len(addr), 1 if fam == 4 else 2, plen, 0) + addr
        msg = (struct.pack("!HHHHHH", 0, 0, 1, 0, 0, 1) + NAMES[host] + struct.pack("!HH", qtype, 1)
               + b"\0" + struct.pack("!HHIH", 41, 1232, 0, len(opt)) + opt)
        fb.write(struct.pack("!H", len(msg)) + msg)
        net = ipaddress.ip_network((sub, plen))
        ft.write(f"{net}\t{min(R, key=lambda k: km((lat, lon), R[k]))}\n")
print(f"{len(rows)} cold queries, {len(seen)} distinct prefixes, {time.time()-t0:.0f}s", file=sys.stderr)
PY
if [[ " $MIX " == *" cold "* ]] && [ ! -s "$BENCH_DIR/cold.bin" ]; then
  python3 "$BENCH_DIR/cold_queries.py" "$MMDB" "$BENCH_DIR/cold" "$COLD_N"
fi

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
if [ -n "${ROUTER_BIN_BEFORE:-}" ]; then
  sed "s/$HOST:$ROUTER_PORT/$HOST:$((ROUTER_PORT + 1))/" "$BENCH_DIR/router.toml" > "$BENCH_DIR/router-before.toml"
fi

stop_pid() { [ -s "$1" ] && kill "$(cat "$1")" 2>/dev/null; rm -f "$1"; }
cleanup() {
  stop_pid "$ROUTER_PID"; stop_pid "$BEFORE_PID"; stop_pid "$HEALTH_PID"
  if [ "${SKIP_GDNSD:-0}" != 1 ]; then "$BENCH/ctl.sh" gdnsd stop || true; "$BENCH/ctl.sh" edges stop || true; fi
}
trap cleanup EXIT

# Start a router binary pinned like gdnsd and wait until it answers the geo scenario and its
# precompiled geo map is built (the "geo-precompile" thread is gone), so no measurement
# includes the build.
start_router() { # bin config port pidfile log
  local bin=$1 conf=$2 port=$3 pidf=$4 log=$5 pid
  taskset -c "$SRV_CPUS" "$bin" --config "$conf" --log-level warn >"$log" 2>&1 &
  echo $! > "$pidf"; pid=$(cat "$pidf")
  for _ in $(seq 1 100); do
    dig +time=1 +tries=1 -p "$port" @"$HOST" cdn.example.test SOA +short >/dev/null 2>&1 && break
    sleep 0.2
  done
  for _ in $(seq 1 600); do
    grep -qx geo-precompile /proc/"$pid"/task/*/comm 2>/dev/null || break
    sleep 0.1
  done
  local eu_net
  eu_net=$(awk -F'\t' '$5=="eu-west" && $2=="A" {print $3; exit}' "$BENCH_DIR/queries.tsv")
  dig -p "$port" @"$HOST" www.cdn.example.test A +subnet="$eu_net" +norec +short | grep -q 192.0.2.20 \
    || { echo "$bin does not answer the geo scenario ($eu_net should go to eu-west):"; tail "$log"; exit 1; }
}

python3 "$BENCH_DIR/health200.py" 15381 15382 15383 & echo $! > "$HEALTH_PID"
start_router "$BIN" "$BENCH_DIR/router.toml" "$ROUTER_PORT" "$ROUTER_PID" "$ROUTER_LOG"
TARGETS=("router=$HOST:$ROUTER_PORT")
if [ -n "${ROUTER_BIN_BEFORE:-}" ]; then
  start_router "$ROUTER_BIN_BEFORE" "$BENCH_DIR/router-before.toml" "$((ROUTER_PORT + 1))" "$BEFORE_PID" "$BENCH_DIR/router-before.log"
  TARGETS+=("router-before=$HOST:$((ROUTER_PORT + 1))")
fi
sleep 2  # first probes in: edges Up

if [ "${SKIP_GDNSD:-0}" != 1 ]; then
  [ -d "$BENCH_DIR/gdnsd/etc" ] || bash "$BENCH/setup/gdnsd.sh"
  "$BENCH/ctl.sh" edges start
  "$BENCH/ctl.sh" gdnsd start
  TARGETS+=("gdnsd=$HOST:$PORT_GDNSD")
fi
pid_of() { case $1 in router) cat "$ROUTER_PID";; router-before) cat "$BEFORE_PID";; *) cat "$BENCH_DIR/$1.pid";; esac; }

# 4. Alternating rounds (the yardstick's bench.sh: repeating mix, static, latency).
LOAD_BEFORE=$(uptime)
SUMMARY="" RAW=""
if [ "${SKIP_ROUNDS:-0}" != 1 ]; then
  OUT=$(bash "$BENCH/bench.sh" "${TARGETS[@]}" 2>&1 | tee /dev/stderr)
  SUMMARY=$(echo "$OUT" | sed -n '/^| server/,/^$/p')
  RAW=$(echo "$OUT" | awk '/^raw: /{print $2}')
fi

# 4b. Server CPU per query. dnsperf on one core can be the bottleneck (the server then idles
# between batches and QPS measures the client), so each server's CPU time (all threads,
# /proc/PID/stat utime+stime, ticks of 10 ms) is read around saturating runs: queries per
# server CPU-second is the capacity of one server core, independent of the client and of load.
# The servers and mixes alternate within each of EFF_ROUNDS rounds.
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
eff_run() { # name pid port file kind -> one row
  local name=$1 pid=$2 port=$3 file=$4 kind=$5 u0 s0 u1 s1 n
  read -r u0 s0 < <(ticks "$pid")
  n=$(taskset -c "$DNSPERF_CPUS" dnsperf -B -d "$file" -s "$HOST" -p "$port" -c 4 -q 100 -t 2 -l "$DUR" 2>&1 \
      | awk '/Queries completed/{print $3}')
  read -r u1 s1 < <(ticks "$pid")
  awk -v r="$name" -v k="$kind" -v n="$n" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v d="$DUR" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
    'BEGIN { c = (u + s) / 100; printf "%s,%s,%d,%.0f,%.2f,%.0f,%.2f,%.2f,%.2f,%s\n", r, k, n, n / d, c / d, n / c, u * 1e4 / n, s * 1e4 / n, (u + s) * 1e4 / n, l }'
}
mix_file() { case $1 in repeat) echo "$BENCH_DIR/queries.bin";; cold) echo "$BENCH_DIR/cold.bin";; static) echo "$BENCH_DIR/static.bin";; esac; }
mkdir -p "$BENCH_DIR/results"
EFF_CSV=$BENCH_DIR/results/eff-$(date +%Y%m%d-%H%M%S).csv
echo "server,kind,completed,qps,server_cpu_util,queries_per_cpu_s,user_us_per_q,sys_us_per_q,cpu_us_per_q,load1" > "$EFF_CSV"
for r in $(seq 1 "$EFF_ROUNDS"); do
  for kind in $MIX; do
    for t in "${TARGETS[@]}"; do
      name=${t%%=*}; port=${t##*:}
      eff_run "$name" "$(pid_of "$name")" "$port" "$(mix_file "$kind")" "$kind" | tee -a "$EFF_CSV"
    done
  done
done
LOAD_AFTER=$(uptime)
# Median CPU µs per query by server and mix, and each router's ratio to gdnsd.
RATIOS=$(awk -F, 'NR > 1 { v[$1","$2] = v[$1","$2] " " $9; s[$1] = 1; k[$2] = 1 }
  function med(list,   a, n, i, j, t) { n = split(list, a, " "); for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  END { for (kind in k) for (srv in s) if ((srv","kind) in v) m[srv","kind] = med(v[srv","kind])
    for (kind in k) for (srv in s) if (srv != "gdnsd" && (srv","kind) in m)
      printf "| %s | %s | %.2f | %s | %s |\n", kind, srv, m[srv","kind], (("gdnsd,"kind) in m) ? sprintf("%.2f", m["gdnsd,"kind]) : "-",
        (("gdnsd,"kind) in m) ? sprintf("**%.2f**", m[srv","kind] / m["gdnsd,"kind]) : "-" }' "$EFF_CSV" | sort)
echo "$RATIOS"

# 4c. Geo accuracy on the cold mix: the region each server answers for AGREE_N prefixes, against
# the nearest region by great-circle distance (from the prefix's GeoLite2 location) and each other.
AGREE=""
if [[ " $MIX " == *" cold "* ]]; then
  cat > "$BENCH_DIR/agree.py" <<'PY'
import socket, struct, sys
n = int(sys.argv[1]); targets = [t.split("=") for t in sys.argv[3:]]
REG = {"192.0.2.10": "us-east", "192.0.2.20": "eu-west", "192.0.2.30": "ap-northeast"}
rows = [l.rstrip("\n").split("\t") for _, l in zip(range(n), open(sys.argv[2]))]
def ask(hp, net, qid):
    host, port = hp.rsplit(":", 1); addr, plen = net.split("/"); plen = int(plen)
    fam = 2 if ":" in addr else 1
    raw = socket.inet_pton(socket.AF_INET6 if fam == 2 else socket.AF_INET, addr)[: (plen + 7) // 8]
    opt = struct.pack("!HHHBB", 8, 4 + len(raw), fam, plen, 0) + raw
    q = (struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1) + b"\3www\3cdn\7example\4test\0" + struct.pack("!HH", 1, 1)
         + b"\0" + struct.pack("!HHIH", 41, 1232, 0, len(opt)) + opt)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2); u.sendto(q, (host, int(port)))
    m = u.recv(4096); u.close()
    an = struct.unpack("!H", m[6:8])[0]; i = 12
    while m[i]: i += m[i] + 1
    i += 5
    for _ in range(an):
        while m[i] and m[i] & 0xC0 != 0xC0: i += m[i] + 1
        i += 2 if m[i] & 0xC0 == 0xC0 else 1
        t, _, _, ln = struct.unpack("!HHIH", m[i:i + 10]); i += 10
        if t == 1: return REG.get(socket.inet_ntoa(m[i:i + 4]), socket.inet_ntoa(m[i:i + 4]))
        i += ln
    return "-"
got = {name: [ask(hp, r[0], k & 0xffff) for k, r in enumerate(rows)] for name, hp in targets}
names = [t[0] for t in targets]
print("| server | answered the nearest region | " + " | ".join(f"same as {o}" for o in names) + " |")
print("|---" * (2 + len(names)) + "|")
for a in names:
    near = sum(g == r[1] for g, r in zip(got[a], rows))
    same = [sum(x == y for x, y in zip(got[a], got[b])) for b in names]
    print(f"| {a} | {near}/{len(rows)} ({100 * near / len(rows):.2f} %) | " + " | ".join(f"{c}/{len(rows)}" for c in same) + " |")
PY
  AGREE=$(python3 "$BENCH_DIR/agree.py" "$AGREE_N" "$BENCH_DIR/cold.tsv" "${TARGETS[@]}")
  echo "$AGREE"
fi

# 5. Write down.
DOC=${BENCH_DOC:-$REPO/docs/bench/dns.md}
{
  echo
  echo "## Run $(date -u +%Y-%m-%dT%H:%MZ) ($(git -C "$REPO" rev-parse --short HEAD))"
  echo
  echo "\`ROUNDS=$ROUNDS DUR=$DUR LAT_QPS=$LAT_QPS SRV_CPUS=$SRV_CPUS DNSPERF_CPUS=$DNSPERF_CPUS EFF_ROUNDS=$EFF_ROUNDS MIX=\"$MIX\" scripts/bench-dns.sh\`;"
  echo "router: 1 UDP thread (\`udp_threads = 1\`), release build, pinned with taskset like gdnsd (1 udp thread)."
  [ -n "${ROUTER_BIN_BEFORE:-}" ] && echo "router-before: \`$ROUTER_BIN_BEFORE\`, same config and pinning."
  echo
  echo "* load before: \`$LOAD_BEFORE\`"
  echo "* load after:  \`$LOAD_AFTER\`"
  echo
  if [ -n "$SUMMARY" ]; then echo "$SUMMARY"; echo; fi
  echo "Server CPU per query, median of the $EFF_ROUNDS saturating runs per server and mix (µs of server CPU,"
  echo "user + system, per query answered), and the ratio to gdnsd:"
  echo
  echo "| mix | server | CPU µs/q | gdnsd CPU µs/q | ratio |"
  echo "|---|---|---|---|---|"
  echo "$RATIOS"
  echo
  echo "Every run (queries per server CPU-second = the capacity of one server core; util < 1 means dnsperf was the limit):"
  echo
  echo "| server | mix | completed | QPS | server CPU util | queries per CPU-s | user µs/q | sys µs/q | CPU µs/q | load1 |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  tail -n +2 "$EFF_CSV" | awk -F, '{printf "| %s | %s | %s | %s | %s | **%s** | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10}'
  if [ -n "$AGREE" ]; then
    echo
    echo "Geo accuracy on $AGREE_N cold prefixes (A, the region of the answered address):"
    echo
    echo "$AGREE"
  fi
  if [ -n "$RAW" ]; then
    echo
    echo "Raw rows (round, server, kind, qps, avg ms, p50, p99, sent, completed, lost, load1):"
    echo
    echo '```'
    cat "$RAW"
    echo '```'
  fi
} >> "$DOC"
echo "appended to $DOC"
