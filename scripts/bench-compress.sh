#!/bin/bash
# bench-compress.sh — server CPU per compressed hit and compression ratio of the edge
# ([hosts.compress]) against nginx `gzip on` (compresses on every request) and nginx
# `gzip_static on` (serves a .gz made ahead of time), for a typical JavaScript and JSON body.
#
#   scripts/bench-compress.sh            # ROUNDS (5) interleaved rounds of N (4000) requests
#
# Bodies: JS = rustdoc's minified search JS (~90 KB, from the Rust toolchain docs), JSON =
# the url crate's urltestdata.json (~218 KB, from the cargo registry); override with JS=, JSON=.
# Targets, all on 127.0.0.1, 2 workers each, HTTP/1.1 keep-alive, 16 connections (h2load --h1):
#   edge-br / edge-zstd / edge-gzip / edge-identity: the release edge in front of a python
#     static origin (one fill; hits served from the stored encoded variant)
#   nginx-gzip: nginx static files with gzip on, gzip_comp_level 6 (the edge's gzip level)
#   nginx-gzip-static: nginx with gzip_static on (a .gz written with gzip -6 beforehand)
# CPU = utime+stime of the server's processes (edge: its one process; nginx: master+workers)
# over the run, divided by the requests: µs per request. Medians over the rounds are printed.
# Every process is started here and stopped by its recorded PID. `uptime` before and after.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=${RUN:-/tmp/compress-bench}
ROUNDS=${ROUNDS:-5}
N=${N:-4000}
CONNS=${CONNS:-16}
EDGE_BIN=${EDGE_BIN:-$ROOT/target/release/edge}
JS=${JS:-$(ls /root/.rustup/toolchains/*/share/doc/rust/html/static.files/search-*.js | head -1)}
JSON=${JSON:-$(ls /root/.cargo/registry/src/*/url-2.*/tests/urltestdata.json | head -1)}
P_ORIGIN=19701 P_EDGE=19702 P_ADMIN=19703 P_NGZ=19704 P_NGS=19705
command -v nginx >/dev/null && command -v h2load >/dev/null || {
    echo "needs nginx and h2load (apt-get install nginx nghttp2-client)" >&2; exit 1; }
[ -x "$EDGE_BIN" ] || (cd "$ROOT" && cargo build --release -p cdn-edge -j 2)

rm -rf "$RUN" && mkdir -p "$RUN/www" "$RUN/gz" "$RUN/nginx-tmp"
cp "$JS" "$RUN/www/app.js" && cp "$JSON" "$RUN/www/data.json"
cp "$RUN/www/app.js" "$RUN/www/data.json" "$RUN/gz/"
gzip -6 -k "$RUN/gz/app.js" "$RUN/gz/data.json"
# An old Last-Modified: the edge's heuristic freshness (10% of its age, at most 1 day) keeps
# the objects fresh for the whole run (a fresh mtime would expire them within seconds).
touch -d 2020-01-01 "$RUN"/www/* "$RUN"/gz/*

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

python3 -m http.server --bind 127.0.0.1 "$P_ORIGIN" --directory "$RUN/www" >"$RUN/origin.log" 2>&1 &
PIDS+=($!)

cat >"$RUN/edge.toml" <<TOML
[edge]
id = "bench"
region = "local"
[http]
listen = ["127.0.0.1:$P_EDGE"]
workers = 2
[admin]
listen = "127.0.0.1:$P_ADMIN"
[cache]
memory = "128 MiB"
[[hosts]]
name = "bench.test"
origin = "http://127.0.0.1:$P_ORIGIN"
default_ttl = "1h"
[hosts.compress]
TOML
"$EDGE_BIN" --config "$RUN/edge.toml" --log-level warn >"$RUN/edge.log" 2>&1 &
EDGE_PID=$!
PIDS+=($EDGE_PID)

nginx_conf() { # port root extra
    cat <<CONF
worker_processes 2;
pid $RUN/nginx-$1.pid;
error_log $RUN/nginx-$1.err warn;
events { worker_connections 1024; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path $RUN/nginx-tmp; proxy_temp_path $RUN/nginx-tmp;
    fastcgi_temp_path $RUN/nginx-tmp; uwsgi_temp_path $RUN/nginx-tmp; scgi_temp_path $RUN/nginx-tmp;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:$1; root $2; $3 }
}
CONF
}
nginx_conf $P_NGZ "$RUN/www" "gzip on; gzip_comp_level 6; gzip_vary on; gzip_min_length 1024; gzip_types application/javascript text/javascript application/json;" >"$RUN/nginx-gzip.conf"
nginx_conf $P_NGS "$RUN/gz" "gzip_static on; gzip_vary on;" >"$RUN/nginx-static.conf"
nginx -c "$RUN/nginx-gzip.conf" -g "daemon off; user root;" >"$RUN/nginx-gzip.log" 2>&1 &
NGZ_PID=$!
PIDS+=($NGZ_PID)
nginx -c "$RUN/nginx-static.conf" -g "daemon off; user root;" >"$RUN/nginx-static.log" 2>&1 &
NGS_PID=$!
PIDS+=($NGS_PID)

for i in $(seq 1 100); do
    curl -sf -o /dev/null -H 'Host: bench.test' "http://127.0.0.1:$P_EDGE/app.js" &&
        curl -sf -o /dev/null "http://127.0.0.1:$P_NGZ/app.js" &&
        curl -sf -o /dev/null "http://127.0.0.1:$P_NGS/app.js" && break
    sleep 0.1
done

# µs of CPU of a process tree (the pid and its children).
cpu_ticks() {
    local t=0 p
    for p in $1 $(pgrep -P "$1" || true); do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo $t
}
hz=$(getconf CLK_TCK)

declare -A TARGET_PORT=([edge-br]=$P_EDGE [edge-zstd]=$P_EDGE [edge-gzip]=$P_EDGE [edge-identity]=$P_EDGE [nginx-gzip]=$P_NGZ [nginx-gzip-static]=$P_NGS)
declare -A TARGET_AE=([edge-br]=br [edge-zstd]=zstd [edge-gzip]=gzip [edge-identity]=identity [nginx-gzip]=gzip [nginx-gzip-static]=gzip)
declare -A TARGET_PID=([edge-br]=$EDGE_PID [edge-zstd]=$EDGE_PID [edge-gzip]=$EDGE_PID [edge-identity]=$EDGE_PID [nginx-gzip]=$NGZ_PID [nginx-gzip-static]=$NGS_PID)
TARGETS="edge-br edge-zstd edge-gzip edge-identity nginx-gzip nginx-gzip-static"

echo "== sizes (bytes on the wire per response) and ratio (identity / encoded)"
for f in app.js data.json; do
    id=$(stat -c %s "$RUN/www/$f")
    for t in $TARGETS; do
        sz=$(curl -s -H 'Host: bench.test' -H "Accept-Encoding: ${TARGET_AE[$t]}" \
            "http://127.0.0.1:${TARGET_PORT[$t]}/$f" | wc -c)
        sz=$(curl -s -H 'Host: bench.test' -H "Accept-Encoding: ${TARGET_AE[$t]}" \
            "http://127.0.0.1:${TARGET_PORT[$t]}/$f" | wc -c)   # second: the edge's stored variant
        printf '%-8s %-18s %8d  ratio %.2f\n' "$f" "$t" "$sz" "$(echo "$id / $sz" | bc -l)"
    done
done

echo "== uptime before: $(uptime)"
OUT="$RUN/cpu.tsv"
: >"$OUT"
for r in $(seq 1 "$ROUNDS"); do
    for f in app.js data.json; do
        for t in $TARGETS; do
            pid=${TARGET_PID[$t]}
            before=$(cpu_ticks "$pid")
            # :authority becomes the Host header (a second Host would be a 400 from nginx).
            res=$(h2load --h1 -n "$N" -c "$CONNS" -H ':authority: bench.test' \
                -H "Accept-Encoding: ${TARGET_AE[$t]}" "http://127.0.0.1:${TARGET_PORT[$t]}/$f" 2>&1)
            after=$(cpu_ticks "$pid")
            ok=$(echo "$res" | awk '/^requests:/{print $8}')
            [ "$ok" = "$N" ] || { echo "$t $f: only $ok of $N succeeded" >&2; echo "$res" >&2; exit 1; }
            rps=$(echo "$res" | awk '/^finished in/{print $4}')
            us=$(echo "($after - $before) * 1000000 / $hz / $N" | bc -l)
            printf '%s\t%s\t%s\t%.1f\t%s\t%s\n' "$r" "$f" "$t" "$us" "$rps" "$ok" >>"$OUT"
        done
    done
done
echo "== uptime after: $(uptime)"
echo "== median server CPU µs per request (and req/s) over $ROUNDS rounds of $N requests, $CONNS conns"
python3 - "$OUT" <<'PY'
import sys, statistics, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
d = collections.defaultdict(list); rps = collections.defaultdict(list); ok = collections.defaultdict(list)
for r, f, t, us, rs, succ in rows:
    d[(f, t)].append(float(us)); rps[(f, t)].append(float(rs)); ok[(f, t)].append(int(succ or 0))
for (f, t), v in d.items():
    print(f"{f:9} {t:18} cpu/req {statistics.median(v):7.1f} µs  (min {min(v):.1f} max {max(v):.1f})  "
          f"req/s {statistics.median(rps[(f, t)]):9.0f}  ok {min(ok[(f, t)])}")
PY
echo "== edge metrics"
curl -s "http://127.0.0.1:$P_ADMIN/metrics" | grep -E '^cdn_edge_compress' || true
