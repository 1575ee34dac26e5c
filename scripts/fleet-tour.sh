#!/usr/bin/env bash
# Walk the README's local-fleet tour with the real tools (dig, curl) and check every step:
# nearest-edge answers for three client subnets, TCP fallback for a large TXT RRset, a cached
# fetch (MISS then HIT), a private answer (not stored, hit-for-miss), the explain API, a drain and undrain, and a fleet purge.
#
# Usage: scripts/fleet-tour.sh             start the fleet (cargo run --release … --bin fleet),
#                                          run the tour, stop the fleet
#        scripts/fleet-tour.sh --running   use a fleet already running on the README addresses
#
# Needs dig (dnsutils / bind9-dnsutils) and curl. Exits non-zero at the first step that does
# not show what the README says it shows.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
for tool in dig curl; do
    command -v "$tool" >/dev/null || { echo "fleet-tour: needs $tool" >&2; exit 1; }
done

DNS_IP=127.0.0.1 DNS_PORT=8553 ADMIN=127.0.0.1:8053 ORIGIN=127.0.0.1:8080
TOKEN=fleet-demo-token HOST=www.cdn.example.test
path=/obj/1k/hello

fleet_pid=
cleanup() {
    if [[ -n "$fleet_pid" ]]; then
        kill -INT "$fleet_pid" 2>/dev/null || true
        wait "$fleet_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

if [[ "${1:-}" == --running ]]; then
    # An already-used fleet may have the README's object cached: use a fresh one.
    path="/obj/1k/tour-$$-$RANDOM"
else
    log="$(mktemp)"
    echo "starting the fleet (log: $log)…"
    cargo run --release --bin fleet >"$log" 2>&1 &
    fleet_pid=$!
    for _ in $(seq 1 1800); do
        grep -q 'Ctrl-C stops everything' "$log" && break
        kill -0 "$fleet_pid" 2>/dev/null || { cat "$log"; echo "fleet-tour: the fleet exited" >&2; exit 1; }
        sleep 0.5
    done
    grep -q 'Ctrl-C stops everything' "$log" || { echo "fleet-tour: the fleet did not start" >&2; exit 1; }
fi

step() { printf '\n$ %s\n' "$*"; }
fail() { echo "fleet-tour: FAILED: $*" >&2; exit 1; }

echo "1. nearest edge per client subnet"
for pair in 8.8.8.0/24=127.0.1.1 81.2.69.0/24=127.0.2.1 1.0.16.0/24=127.0.3.1; do
    subnet=${pair%=*} want=${pair#*=}
    step dig @$DNS_IP -p $DNS_PORT $HOST A +subnet=$subnet +short
    got="$(dig @$DNS_IP -p $DNS_PORT $HOST A +subnet="$subnet" +short)"
    echo "$got"
    [[ "$got" == "$want" ]] || fail "expected $want for $subnet"
done
step dig @$DNS_IP -p $DNS_PORT big.cdn.example.test TXT
out="$(dig @$DNS_IP -p $DNS_PORT big.cdn.example.test TXT)"
echo "$out" | grep -E 'Truncated|MSG SIZE|ANSWER:' || true
echo "$out" | grep -q 'Truncated, retrying in TCP mode' || fail "no truncation/TCP retry"

echo; echo "2. a cached fetch through the us-east edge"
fetch() {
    curl -sv --resolve $HOST:8081:127.0.1.1 "http://$HOST:8081$path" -o /dev/null 2>&1 |
        grep -i '^< cache-status' | tr -d '\r'
}
step curl -sv --resolve $HOST:8081:127.0.1.1 "http://$HOST:8081$path"
first="$(fetch)"; echo "$first"
[[ "$first" != *"; hit"* ]] || fail "first fetch should be a MISS"
sleep 0.2
step curl -sv --resolve $HOST:8081:127.0.1.1 "http://$HOST:8081$path"
second="$(fetch)"; echo "$second"
[[ "$second" == *"; hit"* ]] || fail "second fetch should be a HIT"
step curl -s "http://$ORIGIN/_stats"
curl -s "http://$ORIGIN/_stats"; echo

echo; echo "2b. an answer the origin marks private: not stored, and not coalesced next time"
ppath="${path/hello/private}?cc=private"
hfm() {
    curl -s http://127.0.1.1:9081/metrics | awk '/^cdn_edge_hit_for_miss_total\{how="fetch"\}/ {print $2}'
}
before="$(hfm)"; before="${before:-0}"
for k in 1 2; do
    step curl -sv --resolve $HOST:8081:127.0.1.1 "http://$HOST:8081$ppath"
    got="$(curl -sv --resolve $HOST:8081:127.0.1.1 "http://$HOST:8081$ppath" -o /dev/null 2>&1 |
        grep -i '^< cache-status' | tr -d '\r')"
    echo "$got"
    [[ "$got" == *"detail=private"* && "$got" != *"stored"* ]] || fail "a private answer must not be stored"
done
step "curl -s http://127.0.1.1:9081/metrics | grep '^cdn_edge_hit_for_miss_total'"
after="$(hfm)"; echo "cdn_edge_hit_for_miss_total{how=\"fetch\"} $after"
[[ "${after:-0}" -gt "$before" ]] || fail "the second miss should skip coalescing (hit-for-miss)"

echo; echo "3. the explain API"
step curl -s "http://$ADMIN/api/v1/explain?name=$HOST&ecs=81.2.69.0/24"
out="$(curl -s "http://$ADMIN/api/v1/explain?name=$HOST&ecs=81.2.69.0/24")"
echo "${out:0:400}…"
[[ "$out" == *'"answer":["127.0.2.1"]'* ]] || fail "explain does not show the eu-west answer"

echo; echo "4. drain us-east, see its clients move, undrain"
step curl -s -X POST -H "Authorization: Bearer $TOKEN" http://$ADMIN/api/v1/edges/use1/drain
curl -sf -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" "http://$ADMIN/api/v1/edges/use1/drain" || fail "drain refused"
step dig @$DNS_IP -p $DNS_PORT $HOST A +subnet=8.8.8.0/24 +short
got="$(dig @$DNS_IP -p $DNS_PORT $HOST A +subnet=8.8.8.0/24 +short)"; echo "$got"
[[ "$got" == 127.0.2.1 ]] || fail "a drained us-east should send its clients to eu-west"
step curl -s -X POST -H "Authorization: Bearer $TOKEN" http://$ADMIN/api/v1/edges/use1/undrain
curl -sf -o /dev/null -X POST -H "Authorization: Bearer $TOKEN" "http://$ADMIN/api/v1/edges/use1/undrain" || fail "undrain refused"
got="$(dig @$DNS_IP -p $DNS_PORT $HOST A +subnet=8.8.8.0/24 +short)"; echo "$got"
[[ "$got" == 127.0.1.1 ]] || fail "undrained us-east should be answered again"

echo; echo "5. purge everywhere"
body="{\"urls\":[\"http://$HOST$path\"]}"
step curl -s -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d "'$body'" http://$ADMIN/api/v1/purge
out="$(curl -s -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d "$body" "http://$ADMIN/api/v1/purge")"
echo "$out"
[[ "$(grep -o '"ok":true' <<<"$out" | wc -l)" == 3 ]] || fail "not every edge acknowledged"
after="$(fetch)"; echo "$after"
[[ "$after" != *"; hit"* ]] || fail "a purged object should be fetched again"

echo; echo "fleet-tour: every step showed what the README says."
