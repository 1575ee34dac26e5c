#!/usr/bin/env python3
"""Fleet-bus benchmarks (issue 15): purge latency direct vs NATS, and report fan-in over NATS.

  scripts/bench-bus.py purge [--edges 30] [--purges 100] [--rounds 2] [--json FILE]
  scripts/bench-bus.py fanin [--edges 300] [--routers 3] [--seconds 60] [--json FILE]

`purge`: 2 routers and N edge processes (small memory caches, no disk) on loopback
(edges on 127.0.60.1.., every port free at start), a demo origin in this process, and in NATS
mode one `nats-server` (JetStream, store in the work dir). Each round starts the fleet in one
mode, warms one object per purge on every edge, then sends the purges one after another to
router 0 (`POST /api/v1/purge` naming one URL, hard) and times the API call: the router answers
when every edge answered (direct) or acknowledged (NATS, `pending` must be empty), so that time
is "API call → every edge has applied it". Rounds alternate direct, NATS, direct, NATS… so both
modes see the same machine load. A purge whose answer is not 200 with every edge `purged: 1`
counts as an error (exit 1).

`fanin`: one `nats-server` and R routers configured with E edges (no edge processes; probes go
to a closed port every 30 s), and a load generator in this process that publishes one
`HealthReport` per edge per second on `cdn.reports.<region>.<edge>`, spread evenly over the
second, on one NATS connection. Measured per router: CPU (utime+stime from /proc over the
window) with the generator off (baseline), then on; reports accepted (`cdn_reports_ingested_total`
delta); and the report age at the router (`last_report_received_ms - last_report.sent_at_ms`
for every edge, sampled once a second after the CPU window; same clock, loopback).

Binaries: target/release/{dns-router,edge} (`--bin-dir`); `nats-server` from PATH or /usr/sbin.
Everything it starts is stopped on exit. `uptime` is printed before and after. Figures are
written down in docs/bench/bus.md.
"""

import argparse
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "bench-token"
ZONE = "cdn.bench.test"
SERVICE = f"www.{ZONE}"
REGIONS = [("r0", 39.0, -77.5), ("r1", 53.3, -6.3), ("r2", 35.7, 139.7)]


def log(msg):
    print(f"[bench-bus] {msg}", file=sys.stderr, flush=True)


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summary(values):
    return {
        "n": len(values),
        "p50": round(pct(values, 50), 2),
        "p90": round(pct(values, 90), 2),
        "p99": round(pct(values, 99), 2),
        "max": round(max(values), 2) if values else None,
        "mean": round(statistics.fmean(values), 2) if values else None,
    }


def free_port(ip="127.0.0.1"):
    s = socket.socket()
    s.bind((ip, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_request(addr, method, path, host=None, body=None, headers=None, timeout=5.0):
    c = http.client.HTTPConnection(addr[0], addr[1], timeout=timeout)
    try:
        h = dict(headers or {})
        if host:
            h["Host"] = host
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def is_hit(headers):
    cs = headers.get("cache-status", "")
    return any(p.strip() == "hit" for p in cs.split(";"))


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def nats_binary():
    p = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not os.path.exists(p):
        raise SystemExit("nats-server not found (apt-get install nats-server)")
    return p


# ------------------------------------------------------------------------------- processes


class Procs:
    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, name, argv):
        out = open(os.path.join(self.workdir, f"{name}.log"), "w")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CDN_")}
        p = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env)
        p.bench_name = name
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.procs = []


def wait_http(addr, path="/healthz", timeout=30.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{proc.bench_name} exited {proc.returncode}; see its log")
        try:
            st, _, _ = http_request(addr, "GET", path, timeout=0.5)
            if st == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.05)
    raise SystemExit(f"{addr}{path} not answering after {timeout}s")


def start_nats(procs, workdir):
    port = free_port()
    store = os.path.join(workdir, "nats-store")
    os.makedirs(store, exist_ok=True)
    p = procs.start("nats", [nats_binary(), "-js", "-a", "127.0.0.1", "-p", str(port),
                             "-sd", store])
    path = os.path.join(workdir, "nats.log")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with open(path) as f:
            if "Server is ready" in f.read():
                return p, f"nats://127.0.0.1:{port}"
        time.sleep(0.05)
    raise SystemExit("nats-server did not start; see nats.log")


def bus_section(url):
    return (f'\n[bus]\nservers = ["{url}"]\nstartup_timeout = "5s"\n'
            f'purge_ack_timeout = "3s"\n')


def router_toml(dns_port, admin_port, edges, probe_interval, bus_url):
    t = [f'[dns]\nlisten = ["127.0.0.1:{dns_port}"]\nudp_threads = 1\n',
         f'[admin]\nlisten = "127.0.0.1:{admin_port}"\ntoken = "{TOKEN}"\n',
         f'[geo]\ndefault_region = "r0"\n',
         f'[health]\nprobe_interval = "{probe_interval}"\nprobe_timeout = "300ms"\n'
         f'probe_jitter = "50ms"\nrise = 1\nfall = 3\nreport_max_age = "5s"\n']
    for name, lat, lon in REGIONS:
        t.append(f'[[regions]]\nname = "{name}"\nlat = {lat}\nlon = {lon}\n')
    for e in edges:
        t.append(f'[[edges]]\nid = "{e["id"]}"\nregion = "{e["region"]}"\nipv4 = ["{e["ip"]}"]\n'
                 f'probe_url = "{e["probe"]}"\nadmin_url = "{e["admin_url"]}"\n')
    t.append(f'[[zones]]\nname = "{ZONE}"\nns = ["ns1.{ZONE}"]\nttl = 3600\n')
    t.append('[zones.soa]\nserial = 1\nminimum = 60\n')
    t.append(f'[[zones.records]]\nname = "ns1"\ntype = "A"\ndata = ["127.0.0.1"]\n')
    t.append(f'[[services]]\nname = "{SERVICE}"\nttl = 30\nanswers = 1\n')
    text = "\n".join(t)
    if bus_url:
        text += bus_section(bus_url)
    return text


def edge_toml(e, origin, routers, bus_url):
    r = ", ".join(f'"http://127.0.0.1:{p}"' for p in routers)
    text = (f'[edge]\nid = "{e["id"]}"\nregion = "{e["region"]}"\n\n'
            f'[http]\nlisten = ["{e["ip"]}:{e["http"]}"]\nworkers = 1\n\n'
            f'[admin]\nlisten = "{e["ip"]}:{e["admin"]}"\ntoken = "{TOKEN}"\n\n'
            f'[cache]\nmemory = "4 MiB"\n\n'
            f'[report]\nrouters = [{r}]\ninterval = "1s"\ntimeout = "1s"\ntoken = "{TOKEN}"\n\n'
            f'[[hosts]]\nname = "{SERVICE}"\norigin = "{origin}"\n')
    if bus_url:
        text += bus_section(bus_url)
    return text


# ---------------------------------------------------------------------------------- origin


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = b"x" * 1024

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("Cache-Control", "public, max-age=3600")
        self.send_header("ETag", '"v1"')
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *a):
        pass


def start_origin():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


# ----------------------------------------------------------------------------------- purge


def purge_round(args, mode, round_no, origin_url):
    workdir = tempfile.mkdtemp(prefix=f"cdn-bench-bus-{mode}-")
    procs = Procs(workdir)
    rows, errors = [], []
    try:
        bus_url = None
        if mode == "nats":
            _, bus_url = start_nats(procs, workdir)
        edges = []
        for i in range(args.edges):
            ip = f"127.0.60.{i + 1}"
            e = {"id": f"b{i:02d}", "region": REGIONS[i % 3][0], "ip": ip,
                 "http": free_port(ip), "admin": free_port(ip)}
            e["probe"] = f"http://{ip}:{e['http']}/healthz"
            e["admin_url"] = f"http://{ip}:{e['admin']}"
            edges.append(e)
        routers = [(free_port(), free_port()) for _ in range(2)]
        router_procs = []
        for k, (dns, admin) in enumerate(routers):
            path = os.path.join(workdir, f"router-{k}.toml")
            with open(path, "w") as f:
                f.write(router_toml(dns, admin, edges, "1s", bus_url))
            router_procs.append(procs.start(f"router-{k}", [
                os.path.join(args.bin_dir, "dns-router"), "--config", path,
                "--log-level", "warn"]))
        for (dns, admin), p in zip(routers, router_procs):
            wait_http(("127.0.0.1", admin), proc=p)
        admins = [a for _, a in routers]
        for e in edges:
            path = os.path.join(workdir, f"edge-{e['id']}.toml")
            with open(path, "w") as f:
                f.write(edge_toml(e, origin_url, admins, bus_url))
            e["proc"] = procs.start(f"edge-{e['id']}", [
                os.path.join(args.bin_dir, "edge"), "--config", path, "--log-level", "warn"])
        for e in edges:
            wait_http((e["ip"], e["admin"]), proc=e["proc"])
        paths = [f"/o/r{round_no}-p{n}" for n in range(args.purges)]
        log(f"{mode} round {round_no}: {args.edges} edges up; warming {len(paths)} objects")
        not_cached = 0
        for e in edges:
            for p in paths:
                for _ in range(3):
                    st, h, _ = http_request((e["ip"], e["http"]), "GET", p, host=SERVICE)
                    if st == 200 and is_hit(h):
                        break
                else:
                    not_cached += 1
        if not_cached:
            errors.append(f"{not_cached} objects not cached after warming")
        # Quiet period: let start-up work settle.
        time.sleep(2)
        router0 = ("127.0.0.1", admins[0])
        for n, p in enumerate(paths):
            body = json.dumps({"urls": [f"http://{SERVICE}{p}"]}).encode()
            t0 = time.monotonic()
            try:
                st, _, data = http_request(router0, "POST", "/api/v1/purge", body=body, headers={
                    "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
            except (OSError, http.client.HTTPException) as e:
                errors.append(f"purge {n}: {e!r}")
                continue
            wall = (time.monotonic() - t0) * 1000.0
            v = json.loads(data)
            results = v.get("results", [])
            ok = (st == 200 and len(results) == args.edges
                  and all(r.get("ok") and r.get("purged") == 1 for r in results)
                  and not v.get("pending"))
            if not ok:
                errors.append(f"purge {n}: {st} {json.dumps(v)[:300]}")
                continue
            rows.append({"wall": wall, "router": v.get("ms"),
                         "slowest_edge": max(r.get("ms", 0) for r in results),
                         "fastest_edge": min(r.get("ms", 0) for r in results)})
    finally:
        procs.stop_all()
        if not errors and not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"work dir kept: {workdir}")
    return rows, errors


def purge_cmd(args):
    before = uptime()
    log(f"uptime before: {before}")
    origin, origin_url = start_origin()
    per_mode = {"direct": [], "nats": []}
    per_round = []
    errors = []
    started = time.monotonic()
    for r in range(args.rounds):
        for mode in ("direct", "nats"):
            rows, errs = purge_round(args, mode, r, origin_url)
            per_mode[mode] += rows
            errors += [f"{mode} round {r}: {e}" for e in errs]
            per_round.append({"mode": mode, "round": r, "loadavg_after": os.getloadavg(),
                              "wall": summary([row["wall"] for row in rows])})
            log(f"{mode} round {r}: {len(rows)} purges, {len(errs)} errors; "
                f"load {os.getloadavg()}")
    after = uptime()
    log(f"uptime after: {after}")
    origin.shutdown()
    result = {"uptime_before": before, "uptime_after": after, "edges": args.edges,
              "purges_per_round": args.purges, "rounds": args.rounds,
              "seconds": round(time.monotonic() - started, 1), "errors": errors,
              "per_round": per_round}
    for mode, rows in per_mode.items():
        result[mode] = {k: summary([row[k] for row in rows if row[k] is not None])
                        for k in ("wall", "router", "slowest_edge", "fastest_edge")}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    for e in errors[:10]:
        log(f"error: {e}")
    return 1 if errors else 0


# ----------------------------------------------------------------------------------- fan-in


class Publisher:
    """A raw NATS client: CONNECT, then PUB; answers the server's PINGs."""

    def __init__(self, url):
        host, port = url.removeprefix("nats://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.rfile = self.sock.makefile("rb")
        info = self.rfile.readline()
        if not info.startswith(b"INFO"):
            raise SystemExit(f"not a NATS server: {info!r}")
        self.lock = threading.Lock()
        connect = {"verbose": False, "pedantic": False, "name": "bench-bus fanin",
                   "lang": "python", "version": "0", "protocol": 1}
        self.send(f"CONNECT {json.dumps(connect)}\r\nPING\r\n".encode())
        self.errors = []
        threading.Thread(target=self.read, daemon=True).start()

    def send(self, data):
        with self.lock:
            self.sock.sendall(data)

    def read(self):
        try:
            for line in self.rfile:
                if line.startswith(b"PING"):
                    self.send(b"PONG\r\n")
                elif line.startswith(b"-ERR"):
                    self.errors.append(line.decode().strip())
        except OSError:
            pass  # the server stopped (end of the run)

    def publish(self, subject, payload):
        self.send(f"PUB {subject} {len(payload)}\r\n".encode() + payload + b"\r\n")


def report(e, seq, boot):
    return json.dumps({
        "version": 1, "edge_id": e["id"], "region": e["region"], "seq": seq, "boot_id": boot,
        "sent_at_ms": int(time.time() * 1000), "status": "serving",
        "load": {"active_connections": 10, "requests_per_sec": 100.0,
                 "egress_bytes_per_sec": 1e6, "cpu": 0.1},
        "capacity": {"requests_per_sec": 10000.0},
        "cache": {"objects": 1000, "bytes": 10000000, "hit_ratio": 0.9},
    }, separators=(",", ":")).encode()


def generate(pub, edges, stop, sent):
    """One report per edge per second, spread evenly over the second."""
    boot = int(time.time())
    n = len(edges)
    t0 = time.monotonic()
    tick = 0
    while not stop.is_set():
        for i, e in enumerate(edges):
            due = t0 + tick + i / n
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if stop.is_set():
                return
            pub.publish(f"cdn.reports.{e['region']}.{e['id']}", report(e, tick + 1, boot))
            sent[0] += 1
        tick += 1


def accepted_reports(admin):
    _, _, body = http_request(("127.0.0.1", admin), "GET", "/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("cdn_reports_ingested_total") and 'result="accepted"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def report_ages(admin):
    _, _, body = http_request(("127.0.0.1", admin), "GET", "/api/v1/edges", timeout=10)
    ages = []
    for e in json.loads(body)["edges"]:
        rep, got = e.get("last_report"), e.get("last_report_received_ms")
        if rep and got:
            ages.append(got - rep["sent_at_ms"])
    return ages


def fanin_cmd(args):
    before = uptime()
    log(f"uptime before: {before}")
    workdir = tempfile.mkdtemp(prefix="cdn-bench-fanin-")
    procs = Procs(workdir)
    result = {"uptime_before": before, "edges": args.edges, "routers": args.routers,
              "seconds": args.seconds}
    status = 0
    try:
        nats, url = start_nats(procs, workdir)
        edges = [{"id": f"s{i:03d}", "region": REGIONS[i % 3][0],
                  "ip": f"127.1.{i // 250}.{i % 250 + 1}",
                  "probe": "http://127.0.0.1:9/healthz", "admin_url": "http://127.0.0.1:9"}
                 for i in range(args.edges)]
        routers = []
        for k in range(args.routers):
            dns, admin = free_port(), free_port()
            path = os.path.join(workdir, f"router-{k}.toml")
            with open(path, "w") as f:
                f.write(router_toml(dns, admin, edges, "30s", url))
            p = procs.start(f"router-{k}", [os.path.join(args.bin_dir, "dns-router"),
                                            "--config", path, "--log-level", "warn"])
            routers.append((p, admin))
        for p, admin in routers:
            wait_http(("127.0.0.1", admin), proc=p)
        time.sleep(3)
        hz = os.sysconf("SC_CLK_TCK")

        def cpu_window(seconds):
            t0 = time.monotonic()
            c0 = {p.pid: cpu_ticks(p.pid) for p, _ in routers}
            n0 = cpu_ticks(nats.pid)
            time.sleep(seconds)
            dt = time.monotonic() - t0
            per = [round(100.0 * (cpu_ticks(p.pid) - c0[p.pid]) / hz / dt, 2) for p, _ in routers]
            return per, round(100.0 * (cpu_ticks(nats.pid) - n0) / hz / dt, 2)

        log(f"baseline: {args.routers} routers, {args.edges} edges configured, no reports "
            f"({args.baseline}s)")
        result["baseline_cpu_pct"], result["baseline_nats_cpu_pct"] = cpu_window(args.baseline)
        pub = Publisher(url)
        stop = threading.Event()
        sent = [0]
        gen = threading.Thread(target=generate, args=(pub, edges, stop, sent), daemon=True)
        gen.start()
        time.sleep(5)  # every edge reported at least a few times
        acc0 = [accepted_reports(a) for _, a in routers]
        sent0 = sent[0]
        log(f"generator on: {args.edges} reports/s; measuring {args.seconds}s")
        load_during = os.getloadavg()
        result["cpu_pct"], result["nats_cpu_pct"] = cpu_window(args.seconds)
        acc1 = [accepted_reports(a) for _, a in routers]
        result["published_per_s"] = round((sent[0] - sent0) / args.seconds, 1)
        result["accepted_per_s"] = [round((b - a) / args.seconds, 1) for a, b in zip(acc0, acc1)]
        ages = [[] for _ in routers]
        for _ in range(args.age_samples):
            for k, (_, a) in enumerate(routers):
                ages[k] += report_ages(a)
            time.sleep(1)
        stop.set()
        gen.join(5)
        result["report_age_ms"] = [summary(a) for a in ages]
        result["report_age_ms_all"] = summary([x for a in ages for x in a])
        result["publisher_errors"] = pub.errors[:5]
        result["loadavg_during"] = load_during
        if pub.errors or any(abs(x - result["published_per_s"]) > 0.05 * args.edges
                             for x in result["accepted_per_s"]):
            status = 1
    finally:
        procs.stop_all()
        if status == 0 and not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"work dir kept: {workdir}")
    result["uptime_after"] = uptime()
    log(f"uptime after: {result['uptime_after']}")
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return status


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "release"))
    common.add_argument("--json", help="also write the figures to this JSON file")
    common.add_argument("--keep-workdir", action="store_true")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("purge", parents=[common], help="purge latency, direct vs NATS")
    p.add_argument("--edges", type=int, default=30)
    p.add_argument("--purges", type=int, default=100, help="per round")
    p.add_argument("--rounds", type=int, default=2, help="each round runs both modes")
    f = sub.add_parser("fanin", parents=[common], help="report fan-in over NATS")
    f.add_argument("--edges", type=int, default=300)
    f.add_argument("--routers", type=int, default=3)
    f.add_argument("--seconds", type=int, default=60, help="CPU window with reports")
    f.add_argument("--baseline", type=int, default=30, help="CPU window without reports")
    f.add_argument("--age-samples", type=int, default=10)
    args = ap.parse_args()
    if args.cmd == "purge":
        if not 1 <= args.edges <= 250 or not 1 <= args.purges <= 1000 or not 1 <= args.rounds <= 10:
            raise SystemExit("bounds: --edges 1..250, --purges 1..1000, --rounds 1..10")
        return purge_cmd(args)
    if not 1 <= args.edges <= 2000 or not 1 <= args.routers <= 5 or not 5 <= args.seconds <= 600:
        raise SystemExit("bounds: --edges 1..2000, --routers 1..5, --seconds 5..600")
    return fanin_cmd(args)


if __name__ == "__main__":
    sys.exit(main())
