#!/bin/bash
# bench-tls.sh — server CPU per TLS request, edge vs nginx, same certificate, same machine.
#
#   scripts/bench-tls.sh
#
# Two measurements, each in ROUNDS (default 5) interleaved rounds (nginx, edge, nginx, …);
# medians printed and written to $RUN/tls-results.txt:
#   hit:       keep-alive HTTPS requests for one cached 1 KiB object: h2load -t1 -c16 -D $DUR
#              over HTTP/1.1 (--h1) and over HTTP/2 (ALPN h2, -m8 streams per connection).
#   handshake: a full TLS 1.3 handshake per request (no resumption): openssl s_time -new
#              -time $DUR -www /obj/1k (one client, connections one after another).
# Server CPU = user+system ticks (/proc/<pid>/stat) of the server's processes over the run,
# divided by the requests (hit) or connections (handshake) completed; so it does not depend on
# how much of the 2 shared cores the load generator takes.
#
# nginx: the yardstick's static nginx (/work/shared/bench/http/conf/nginx-static.conf.tmpl)
# given TLS: the same ECDSA P-256 certificate, TLS 1.2+1.3, http2 on, 2 workers, serving the
# 1 KiB file from the page cache. It also serves the file over plain HTTP as the edge's origin.
# edge: target/release/edge (EDGE_BIN), 2 workers, [tls] with that certificate; the object is
# fetched once before measuring, every measured request is a cache hit.
# Processes are started with setsid, their PIDs recorded and stopped by PID at exit.
# env: RUN (/tmp/tlsbench), EDGE_BIN, ROUNDS (5), DUR (3 seconds).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=${RUN:-/tmp/tlsbench}
EDGE_BIN=${EDGE_BIN:-$ROOT/target/release/edge}
ROUNDS=${ROUNDS:-5}
DUR=${DUR:-3}
NGINX_TLS=127.0.0.1:18190 ORIGIN=127.0.0.1:18191 EDGE_HTTP=127.0.0.1:18192 EDGE_TLS=127.0.0.1:18193
EDGE_ADMIN=127.0.0.1:18194
mkdir -p "$RUN/static/obj" "$RUN/nginx-tmp"
cd "$RUN"

[ -x "$EDGE_BIN" ] || (cd "$ROOT" && cargo build --release -p cdn-edge --bin edge)
command -v h2load >/dev/null || { echo "needs h2load (apt-get install nghttp2-client)" >&2; exit 1; }

# One certificate for both servers.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout key.pem -out cert.pem 2>/dev/null
head -c 1024 /dev/urandom > static/obj/1k

cat > nginx.conf <<EOF
worker_processes 2;
pid $RUN/nginx.pid;
error_log $RUN/nginx.err warn;
events { worker_connections 8192; }
http {
    access_log off;
    sendfile on; tcp_nopush on; tcp_nodelay on;
    keepalive_requests 1000000; keepalive_timeout 120s;
    open_file_cache max=20000 inactive=60s;
    client_body_temp_path $RUN/nginx-tmp/body; proxy_temp_path $RUN/nginx-tmp/proxy;
    fastcgi_temp_path $RUN/nginx-tmp/fcgi; uwsgi_temp_path $RUN/nginx-tmp/uwsgi; scgi_temp_path $RUN/nginx-tmp/scgi;
    default_type application/octet-stream;
    server {
        listen $NGINX_TLS ssl http2 backlog=4096;
        ssl_certificate $RUN/cert.pem; ssl_certificate_key $RUN/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        root $RUN/static; etag on;
        add_header Cache-Control "public, max-age=3600";
    }
    server {
        listen $ORIGIN backlog=4096;
        root $RUN/static; etag on;
        add_header Cache-Control "public, max-age=3600";
    }
}
EOF
cat > edge.toml <<EOF
[edge]
id = "tlsbench"
region = "local"
[http]
listen = ["$EDGE_HTTP"]
workers = 2
[admin]
listen = "$EDGE_ADMIN"
[tls]
listen = ["$EDGE_TLS"]
cert = "$RUN/cert.pem"
key = "$RUN/key.pem"
[cache]
memory = "64 MiB"
[lifecycle]
shutdown_grace = "1s"
[[hosts]]
name = "localhost"
aliases = ["127.0.0.1"]
origin = "http://$ORIGIN"
EOF

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
setsid nginx -c "$RUN/nginx.conf" -g "daemon off;" > nginx.log 2>&1 &
NGINX_SID=$!
PIDS+=("$NGINX_SID")
setsid "$EDGE_BIN" --config edge.toml --log-level warn > edge.log 2>&1 &
EDGE_SID=$!
PIDS+=("$EDGE_SID")
for hp in $NGINX_TLS $EDGE_TLS; do
    for _ in $(seq 100); do (exec 3<>/dev/tcp/${hp%:*}/${hp#*:}) 2>/dev/null && break; sleep 0.1; done
done
curl -sk -o /dev/null "https://$EDGE_TLS/obj/1k"
[ "$(curl -sk -D - -o /dev/null "https://$EDGE_TLS/obj/1k" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache"{print $2}')" = HIT ] ||
    { echo "the edge does not serve a hit" >&2; exit 1; }

ticks() {  # user+system ticks of every process in session $1
    local s=0 p f
    for p in $(ps -o pid= -s "$1"); do
        [ -r "/proc/$p/stat" ] || continue
        read -r -a f < <(sed 's/.*) //' "/proc/$p/stat")
        s=$((s + f[11] + f[12]))
    done
    echo "$s"
}
HZ=$(getconf CLK_TCK)
us_per() { echo "($2 - $1) * 1000000 / $HZ / $3" | bc -l; }

hit() {  # hit name sid addr h1|h2
    local c0 c1 n proto=""
    [ "$4" = h1 ] && proto=--h1
    c0=$(ticks "$2")
    n=$(h2load $proto -t1 -c16 -m8 -D "$DUR" "https://$3/obj/1k" 2>&1 | awk '/requests:/{print $8}')
    c1=$(ticks "$2")
    printf 'hit-%s %s %d %.1f\n' "$4" "$1" "$n" "$(us_per "$c0" "$c1" "$n")"
}
handshake() {  # handshake name sid addr
    local c0 c1 n
    c0=$(ticks "$2")
    n=$(openssl s_time -connect "$3" -new -time "$DUR" -www /obj/1k 2>/dev/null |
        awk '/connections in .* real seconds/{print $1; exit}')
    c1=$(ticks "$2")
    printf 'handshake %s %d %.1f\n' "$1" "$n" "$(us_per "$c0" "$c1" "$n")"
}

echo "# uptime before: $(uptime)" | tee tls-results.txt
echo "# kind server requests server_us_per_request" | tee -a tls-results.txt
for _ in $(seq "$ROUNDS"); do
    for t in nginx edge; do
        if [ $t = nginx ]; then sid=$NGINX_SID addr=$NGINX_TLS; else sid=$EDGE_SID addr=$EDGE_TLS; fi
        hit $t $sid $addr h1 | tee -a tls-results.txt
        hit $t $sid $addr h2 | tee -a tls-results.txt
        handshake $t $sid $addr | tee -a tls-results.txt
    done
done
echo "# uptime after: $(uptime)" | tee -a tls-results.txt
echo "# medians (server µs per request; requests/connections per run)" | tee -a tls-results.txt
for k in hit-h1 hit-h2 handshake; do for t in nginx edge; do
    awk -v k=$k -v t=$t '$1==k && $2==t {print $4, $3}' tls-results.txt | sort -n |
        awk -v k=$k -v t=$t '{v[NR]=$1; r[NR]=$2} END {m=int((NR+1)/2); printf "median %s %s %.1f us (%d per run)\n", k, t, v[m], r[m]}'
done; done | tee -a tls-results.txt
