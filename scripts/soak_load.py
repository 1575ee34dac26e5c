#!/usr/bin/env python3
"""Fleet measurements on the local fleet (the `fleet` binary): purge latency and a soak test.

Python 3 standard library only (plus `dnsperf` for the soak's background DNS volume).
Run through the wrappers, which build the release binaries first:

    scripts/purge-latency.sh [--purges 200]     # issue 7 point 5
    scripts/soak.sh [--duration 180]            # issue 7 point 10

or directly: `python3 scripts/soak_load.py purge --help`, `... soak --help`.

Both subcommands start `target/release/fleet --no-build` on loopback addresses of their own
(edges on 127.0.4x.1, every port 0 = chosen by the OS and read back from the fleet's
printout), so they do not collide with a README fleet or with the tests. Every loop is
bounded in count and in time; the fleet and any edge this script restarted are stopped on
exit (also on Ctrl-C). Results are printed as Markdown (for docs/bench/fleet.md) and, with
`--json FILE`, written as JSON.
"""

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

SERVICE = "www.cdn.example.test"
ZONE = "cdn.example.test"
# First demo-map prefix of each region (tests/src/fleet/spec.rs DEMO_NETWORKS).
REGION_SUBNETS = {
    "us-east": "8.8.8.0/24",
    "eu-west": "81.2.69.0/24",
    "ap-northeast": "1.0.16.0/24",
}
DEFAULT_EDGE_IPS = {
    "us-east": "127.0.41.1",
    "eu-west": "127.0.42.1",
    "ap-northeast": "127.0.43.1",
}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


# ------------------------------------------------------------------------------------ DNS


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def dns_query(name, qtype=1, subnet=None, qid=None):
    """A DNS query (no RD) with EDNS0 and, given `subnet` ("a.b.c.d/len"), ECS."""
    qid = random.randrange(65536) if qid is None else qid
    header = struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 1)
    question = encode_name(name) + struct.pack("!HH", qtype, 1)
    opt_data = b""
    if subnet:
        addr, plen = subnet.split("/")
        plen = int(plen)
        raw = socket.inet_aton(addr)[: (plen + 7) // 8]
        ecs = struct.pack("!HBB", 1, plen, 0) + raw
        opt_data = struct.pack("!HH", 8, len(ecs)) + ecs
    opt = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, len(opt_data)) + opt_data
    return qid, header + question + opt


def skip_name(msg, i):
    while True:
        n = msg[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += n + 1


def parse_answer(msg):
    """(id, rcode, [A addresses]) of a response."""
    qid, flags, qd, an, _ns, _ar = struct.unpack("!HHHHHH", msg[:12])
    i = 12
    for _ in range(qd):
        i = skip_name(msg, i) + 4
    ips = []
    for _ in range(an):
        i = skip_name(msg, i)
        rtype, _cls, _ttl, rdlen = struct.unpack("!HHIH", msg[i : i + 10])
        i += 10
        if rtype == 1 and rdlen == 4:
            ips.append(socket.inet_ntoa(msg[i : i + 4]))
        i += rdlen
    return qid, flags & 0xF, ips


def resolve(server, subnet, timeout=1.0):
    """Ask `server` for the service's A records with ECS `subnet`; (rcode, ips)."""
    qid, q = dns_query(SERVICE, 1, subnet)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(q, server)
        deadline = time.monotonic() + timeout
        while True:
            s.settimeout(max(0.001, deadline - time.monotonic()))
            data, _ = s.recvfrom(4096)
            rid, rcode, ips = parse_answer(data)
            if rid == qid:
                return rcode, ips
    finally:
        s.close()


# ------------------------------------------------------------------------------------ HTTP


def http_request(addr, method, path, host=None, body=None, headers=None, timeout=2.0):
    """One request on a fresh connection: (status, headers dict (lower-case), body bytes)."""
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


def addr_of(url):
    m = re.match(r"http://([0-9.]+):(\d+)", url)
    return (m.group(1), int(m.group(2)))


# ------------------------------------------------------------------------------------ fleet


class Fleet:
    """The `fleet` binary as a child process, with what its printout says."""

    last_workdir = None

    def __init__(self, args):
        self.args = args
        self.workdir = tempfile.mkdtemp(prefix="cdn-soak-")
        Fleet.last_workdir = self.workdir
        self.fleet_log = open(os.path.join(self.workdir, "fleet.log"), "w")
        self.proc = None
        self.restarted = []  # edges this script started (Popen)
        self.helpers = []  # other children (dnsperf), stopped with the fleet
        self.edges = {}  # id -> dict(region, http, admin, ip)
        self.origin = None
        self.dns = None
        self.admin = None
        self.token = args.token

    def start(self):
        fleet_bin = os.path.join(self.args.bin_dir, "fleet")
        cmd = [
            fleet_bin,
            "--no-build",
            "--dns", "127.0.0.1:0",
            "--admin", "127.0.0.1:0",
            "--origin", "127.0.0.1:0",
            "--edge-port", "0",
            "--edge-admin-port", "0",
            "--workdir", self.workdir,
            "--token", self.token,
        ]
        if getattr(self.args, "fleet_verbose", False):
            cmd.append("--verbose")
        for region, ip in self.args.edge_ips.items():
            cmd += ["--edge-ip", f"{region}={ip}"]
        self.cmd = cmd
        env = {k: v for k, v in os.environ.items() if not k.startswith("CDN_")}
        log("starting: " + " ".join(cmd))
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=self.fleet_log, stdin=subprocess.DEVNULL,
            text=True, env=env,
        )
        lines = []
        done = threading.Event()

        def reader():
            for line in self.proc.stdout:
                lines.append(line.rstrip("\n"))
                if "Ctrl-C stops everything" in line:
                    done.set()
            done.set()

        threading.Thread(target=reader, daemon=True).start()
        if not done.wait(self.args.start_timeout) or self.proc.poll() is not None:
            self.stop()
            with open(os.path.join(self.workdir, "fleet.log")) as f:
                tail = f.read()[-3000:]
            raise SystemExit(f"fleet did not come up: exit {self.proc.returncode}\n{tail}")
        self.printout = "\n".join(lines)
        for line in lines:
            m = re.match(r"\s+origin\s+(http://\S+)", line)
            if m:
                self.origin = addr_of(m.group(1))
            m = re.match(r"\s+dns-router\s+DNS (\S+) \(UDP\+TCP\), admin (http://\S+)", line)
            if m:
                ip, port = m.group(1).rsplit(":", 1)
                self.dns = (ip, int(port))
                self.admin = addr_of(m.group(2))
            m = re.match(r"\s+edge (\S+)\s+(\S+)\s+(http://\S+)\s+admin (http://\S+)", line)
            if m:
                http_addr = addr_of(m.group(3))
                self.edges[m.group(1)] = {
                    "id": m.group(1),
                    "region": m.group(2),
                    "http": http_addr,
                    "admin": addr_of(m.group(4)),
                    "ip": http_addr[0],
                    "config": os.path.join(self.workdir, f"edge-{m.group(1)}.toml"),
                }
        if not (self.origin and self.dns and self.admin and len(self.edges) == 3):
            self.stop()
            raise SystemExit("could not parse the fleet printout:\n" + self.printout)
        self.router_config = os.path.join(self.workdir, "router-0.toml")
        log(f"fleet up in {self.workdir}: dns {self.dns}, admin {self.admin}, "
            f"edges {[(e['id'], e['http']) for e in self.edges.values()]}")

    def edge_by_ip(self, ip):
        for e in self.edges.values():
            if e["ip"] == ip:
                return e
        return None

    def edge_by_region(self, region):
        for e in self.edges.values():
            if e["region"] == region:
                return e
        raise KeyError(region)

    def pid_of(self, pattern):
        """PID of the newest live process whose command line contains `pattern` (like
        `pgrep -n -f`, without regex)."""
        found = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if pattern in cmd and stat.rsplit(")", 1)[1].split()[0] != "Z":
                found.append(int(d))
        return max(found) if found else None

    def router_pid(self):
        return self.pid_of(f"--config {self.router_config}")

    def edge_pid(self, edge_id):
        return self.pid_of(f"--config {self.edges[edge_id]['config']}")

    def health_timing(self):
        """probe_interval, fall, probe_jitter, rise (seconds / counts) from the router config."""
        with open(self.router_config) as f:
            text = f.read()

        def ms(key):
            return int(re.search(rf'^{key} = "(\d+)ms"', text, re.M).group(1)) / 1000.0

        def num(key):
            return int(re.search(rf"^{key} = (\d+)", text, re.M).group(1))

        return {
            "probe_interval": ms("probe_interval"),
            "probe_timeout": ms("probe_timeout"),
            "probe_jitter": ms("probe_jitter"),
            "fall": num("fall"),
            "rise": num("rise"),
        }

    def wait_all_up(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                st, _, body = http_request(self.admin, "GET", "/api/v1/edges")
                v = json.loads(body)
                edges = v if isinstance(v, list) else v.get("edges", [])
                states = {e.get("id") or e.get("edge"): e.get("state") for e in edges}
                if st == 200 and len(states) == 3 and all(s == "up" for s in states.values()):
                    return True
            except (OSError, ValueError, http.client.HTTPException):
                pass
            time.sleep(0.1)
        raise SystemExit(f"not every edge is up after {timeout}s: {states}")

    def purge(self, body, timeout=5.0):
        """POST /api/v1/purge on the router: (client wall ms, status, json)."""
        t0 = time.monotonic()
        st, _, data = http_request(
            self.admin, "POST", "/api/v1/purge", body=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            timeout=timeout,
        )
        wall = (time.monotonic() - t0) * 1000.0
        return wall, st, json.loads(data)

    def restart_edge(self, edge_id, cmdline):
        """Start the edge again with the command line it had; wait until its admin /healthz is 200."""
        out = open(os.path.join(self.workdir, f"edge-{edge_id}.restart.log"), "w")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CDN_")}
        p = subprocess.Popen(cmdline, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env)
        self.restarted.append(p)
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise SystemExit(f"restarted edge {edge_id} exited {p.returncode}; see {out.name}")
            try:
                st, _, _ = http_request(self.edges[edge_id]["admin"], "GET", "/healthz", timeout=0.5)
                if st == 200:
                    return p
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.02)
        raise SystemExit(f"restarted edge {edge_id} not healthy within 30 s")

    def stop(self):
        for p in self.helpers:
            if p.poll() is None:
                p.kill()
                p.wait(5)
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for p in self.restarted:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        self.fleet_log.flush()


def warm(fleet, paths, rounds=2):
    """Fetch every path on every edge until it is cached (bounded: `rounds` tries each)."""
    misses = 0
    for e in fleet.edges.values():
        for p in paths:
            for _ in range(rounds):
                st, h, _ = http_request(e["http"], "GET", p, host=SERVICE)
                if st == 200 and is_hit(h):
                    break
            else:
                misses += 1
    return misses


def summary(values):
    return {
        "n": len(values),
        "p50": round(pct(values, 50), 2),
        "p95": round(pct(values, 95), 2),
        "p99": round(pct(values, 99), 2),
        "max": round(max(values), 2),
        "mean": round(statistics.fmean(values), 2),
    }


# ------------------------------------------------------------------------------------ purge


def purge_bench(args):
    fleet = Fleet(args)
    try:
        fleet.start()
        fleet.wait_all_up()
        groups = args.groups
        per = args.objects_per_group

        def path(g, i):
            return f"/obj/1k/purge-g{g}-o{i}?max_age=3600&tag=g{g},all"

        def group_paths(g):
            return [path(g, i) for i in range(per)]

        all_paths = [p for g in range(groups) for p in group_paths(g)]
        load_before = loadavg()
        log(f"warming {len(all_paths)} objects on 3 edges (load {load_before})")
        warm(fleet, all_paths)

        kinds = ["url-hard", "url-soft", "prefix-hard", "prefix-soft", "tag-hard", "tag-soft"]
        rows = []
        errors = []
        wrong_purged = 0
        still_hit = 0
        deadline = time.monotonic() + args.max_seconds
        for n in range(args.purges):
            if time.monotonic() > deadline:
                log(f"stopping after {n} purges: --max-seconds {args.max_seconds} reached")
                break
            kind = kinds[n % len(kinds)]
            g = (n // len(kinds)) % groups
            soft = kind.endswith("soft")
            if kind.startswith("url"):
                target = [path(g, n % per)]
                body = {"urls": [f"http://{SERVICE}{target[0]}"], "soft": soft}
            elif kind.startswith("prefix"):
                target = group_paths(g)
                body = {"prefixes": [f"{SERVICE}/obj/1k/purge-g{g}-"], "soft": soft}
            else:
                target = group_paths(g)
                body = {"tags": [f"g{g}"], "soft": soft}
            try:
                wall, st, v = fleet.purge(body)
            except (OSError, ValueError, http.client.HTTPException) as e:
                errors.append(f"purge {n} {kind}: {e!r}")
                continue
            results = v.get("results", [])
            if st != 200 or len(results) != 3 or not all(r.get("ok") for r in results):
                errors.append(f"purge {n} {kind}: {st} {v}")
                continue
            edge_ms = {r["edge"]: r["ms"] for r in results}
            for r in results:
                if r.get("purged") != len(target):
                    wrong_purged += 1
            rows.append({
                "kind": kind,
                "wall_ms": wall,
                "router_ms": v.get("ms"),
                "edge_ms": edge_ms,
                "max_edge_ms": max(edge_ms.values()),
            })
            # The next fetch of a purged object must not be a plain hit (hard: miss; soft:
            # stale, revalidated); this also re-warms the group for the next purge.
            for e in fleet.edges.values():
                for p in target:
                    st2, h, _ = http_request(e["http"], "GET", p, host=SERVICE)
                    if st2 != 200 or is_hit(h) and not soft:
                        still_hit += 1
            if soft:
                warm(fleet, target, rounds=3)
        load_after = loadavg()
    finally:
        fleet.stop()

    result = {
        "command": "scripts/purge-latency.sh " + " ".join(sys.argv[2:]),
        "purges": len(rows),
        "errors": errors,
        "purged_count_mismatches": wrong_purged,
        "hit_after_hard_purge_or_non_200": still_hit,
        "load_before": load_before,
        "load_after": load_after,
        "objects": len(all_paths),
        "wall_ms": summary([r["wall_ms"] for r in rows]) if rows else None,
        "router_ms": summary([r["router_ms"] for r in rows]) if rows else None,
        "max_edge_ms": summary([r["max_edge_ms"] for r in rows]) if rows else None,
        "per_edge_ms": {
            e: summary([r["edge_ms"][e] for r in rows]) for e in sorted(fleet.edges)
        } if rows else {},
        "per_kind_wall_ms": {
            k: summary([r["wall_ms"] for r in rows if r["kind"] == k])
            for k in kinds if any(r["kind"] == k for r in rows)
        },
    }
    print_purge_markdown(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    target_ok = result["wall_ms"] and result["wall_ms"]["p99"] < 150.0
    return 0 if rows and not errors and target_ok else 1


def md_row(name, s):
    return f"| {name} | {s['n']} | {s['p50']} | {s['p95']} | {s['p99']} | {s['max']} | {s['mean']} |"


def print_purge_markdown(r):
    out = [
        f"Purges: {r['purges']} over {r['objects']} warm objects per edge; "
        f"errors: {len(r['errors'])}; `purged` count mismatches: {r['purged_count_mismatches']}; "
        f"plain hit (or non-200) after a hard purge: {r['hit_after_hard_purge_or_non_200']}.",
        f"Load average (1/5/15 min) before: {r['load_before']}, after: {r['load_after']}.",
        "",
        "| measure (ms) | n | p50 | p95 | p99 | max | mean |",
        "|---|---|---|---|---|---|---|",
    ]
    if r["wall_ms"]:
        out.append(md_row("client: POST → 200 with all 3 acks", r["wall_ms"]))
        out.append(md_row("router `ms` (fan-out, all edges)", r["router_ms"]))
        out.append(md_row("slowest edge's `ms` per purge", r["max_edge_ms"]))
        for e, s in r["per_edge_ms"].items():
            out.append(md_row(f"edge {e} `ms`", s))
        for k, s in r["per_kind_wall_ms"].items():
            out.append(md_row(f"client, {k}", s))
    for e in r["errors"][:10]:
        out.append(f"\nerror: {e}")
    print("\n".join(out))


# ------------------------------------------------------------------------------------ soak


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.dns = []  # (t, region, rcode|None, ips, err)
        self.http = []  # (t_resolved, region, ip, status|None, hit, err, ms)
        self.events = {}  # name -> t

    def add_dns(self, row):
        with self.lock:
            self.dns.append(row)

    def add_http(self, row):
        with self.lock:
            self.http.append(row)

    def event(self, name, t):
        with self.lock:
            self.events[name] = t


def soak_paths(n):
    """A fixed object set: mostly 1 KiB, some 16 KiB and 256 KiB, tagged by group."""
    out = []
    for i in range(n):
        size = "256k" if i % 10 == 0 else "16k" if i % 3 == 0 else "1k"
        out.append(f"/obj/{size}/soak-{i}?max_age=600&tag=grp{i % 8},soak")
    return out


SIZE = {"1k": 1024, "16k": 16384, "256k": 262144}


def dns_worker(fleet, rec, t0, stop_at, qps, rng):
    regions = list(REGION_SUBNETS)
    interval = 1.0 / qps
    nxt = time.monotonic()
    n = 0
    while time.monotonic() < stop_at:
        region = regions[n % len(regions)]
        n += 1
        t = time.monotonic()
        try:
            rcode, ips = resolve(fleet.dns, REGION_SUBNETS[region])
            rec.add_dns((t - t0, region, rcode, ips, None))
        except OSError as e:
            rec.add_dns((t - t0, region, None, [], type(e).__name__))
        nxt += interval
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            nxt = time.monotonic()


def http_worker(fleet, rec, t0, stop_at, rps, paths, rng, tail_ratio):
    regions = list(REGION_SUBNETS)
    interval = 1.0 / rps
    nxt = time.monotonic()
    while time.monotonic() < stop_at:
        region = rng.choice(regions)
        if rng.random() < tail_ratio:
            path = f"/obj/1k/tail-{rng.randrange(10**9)}?max_age=600"
        else:
            path = rng.choice(paths)
        t = time.monotonic()
        ip, status, hit, err, detail = None, None, False, None, None
        try:
            rcode, ips = resolve(fleet.dns, REGION_SUBNETS[region])
            if rcode != 0 or not ips:
                err = f"dns rcode {rcode} ips {ips}"
            else:
                ip = ips[0]
                edge = fleet.edge_by_ip(ip)
                if edge is None:
                    err = f"answer {ip} is no edge"
                else:
                    t = time.monotonic()
                    status, h, body = http_request(edge["http"], "GET", path, host=SERVICE)
                    hit = is_hit(h)
                    want = SIZE.get(path.split("/")[2])
                    if status != 200:
                        err = f"status {status}"
                        detail = {"path": path, "cache-status": h.get("cache-status"),
                                  "date": h.get("date"), "body": body[:200].decode(errors="replace")}
                    elif want is not None and len(body) != want:
                        err = f"short body {len(body)} of {want}"
        except (OSError, http.client.HTTPException, ValueError) as e:
            err = type(e).__name__
        if err and detail is None:
            detail = {"path": path}
        rec.add_http((t - t0, region, ip, status, hit, err, (time.monotonic() - t) * 1000.0,
                      detail, time.strftime("%H:%M:%S")))
        nxt += interval
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            nxt = time.monotonic()


def write_dnsperf_input(workdir):
    names = [
        (SERVICE, "A"), (SERVICE, "AAAA"), (f"static.{ZONE}", "A"), (f"alias.{ZONE}", "A"),
        (f"big.{ZONE}", "TXT"), (f"x1.img.{ZONE}", "A"), (f"nope.{ZONE}", "A"),
    ]
    p = os.path.join(workdir, "dnsperf.txt")
    with open(p, "w") as f:
        for name, t in names:
            f.write(f"{name} {t}\n")
    return p, len(names)


def parse_dnsperf(text):
    out = {}
    for key, pat in [
        ("sent", r"Queries sent:\s+(\d+)"),
        ("completed", r"Queries completed:\s+(\d+)"),
        ("lost", r"Queries lost:\s+(\d+)"),
        ("qps", r"Queries per second:\s+([\d.]+)"),
        ("avg_latency_s", r"Average Latency \(s\):\s+([\d.]+)"),
    ]:
        m = re.search(pat, text)
        out[key] = float(m.group(1)) if m else None
    m = re.search(r"Response codes:\s+(.*)", text)
    out["rcodes"] = m.group(1).strip() if m else None
    return out


def soak(args):
    fleet = Fleet(args)
    rec = Recorder()
    rng = random.Random(args.seed)
    rss = {"before": {}, "after": {}, "samples": []}
    try:
        fleet.start()
        fleet.wait_all_up()
        timing = fleet.health_timing()
        victim = fleet.edge_by_region(args.kill_region)
        paths = soak_paths(args.objects)
        log(f"warming {len(paths)} objects on every edge")
        warm(fleet, paths)
        pids = {"router": fleet.router_pid()}
        for eid in fleet.edges:
            pids[eid] = fleet.edge_pid(eid)
        if not all(pids.values()):
            raise SystemExit(f"could not find every process: {pids}")
        for k, pid in pids.items():
            rss["before"][k] = rss_kib(pid)
        load_before = loadavg()
        victim_cmdline = open(f"/proc/{pids[victim['id']]}/cmdline").read().split("\0")[:-1]

        d = args.duration
        t0 = time.monotonic()
        stop_at = t0 + d
        plan = {
            "purge_all_up_tag_hard": 0.25 * d,
            "kill": 0.40 * d,
            "purge_edge_down_prefix_soft": 0.40 * d + 5.0,
            "restart": 0.40 * d + args.down_seconds,
            "purge_retry_after_restart_prefix_soft": 0.40 * d + args.down_seconds + 5.0,
            "purge_after_restart_url_hard": 0.85 * d,
        }
        log(f"soak: {d:.0f} s, DNS {args.dns_qps} q/s (ECS, 3 regions) + dnsperf "
            f"{args.dnsperf_qps} q/s + HTTP {args.http_rps} req/s; plan {plan}; load {load_before}")

        dnsperf = None
        if args.dnsperf_qps > 0:
            dp_in, dp_names = write_dnsperf_input(fleet.workdir)
            dnsperf = subprocess.Popen(
                ["dnsperf", "-s", fleet.dns[0], "-p", str(fleet.dns[1]), "-d", dp_in,
                 "-l", str(int(d)), "-Q", str(args.dnsperf_qps), "-c", "2", "-t", "2"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            fleet.helpers.append(dnsperf)

        threads = [threading.Thread(
            target=dns_worker, args=(fleet, rec, t0, stop_at, args.dns_qps, random.Random(1)))]
        per_thread = args.http_rps / args.http_threads
        for i in range(args.http_threads):
            threads.append(threading.Thread(
                target=http_worker,
                args=(fleet, rec, t0, stop_at, per_thread, paths,
                      random.Random(args.seed + i), args.tail_ratio)))
        for t in threads:
            t.daemon = True
            t.start()

        purges = []

        def do_purge(name, body):
            try:
                wall, st, v = fleet.purge(body)
                purges.append({"name": name, "t": time.monotonic() - t0, "status": st,
                               "wall_ms": round(wall, 1), "results": v.get("results")})
                log(f"{name}: {st} in {wall:.1f} ms: {v.get('results')}")
            except (OSError, ValueError, http.client.HTTPException) as e:
                purges.append({"name": name, "t": time.monotonic() - t0, "error": repr(e)})

        done = set()
        next_sample = t0
        while time.monotonic() < stop_at:
            now = time.monotonic() - t0
            if time.monotonic() >= next_sample:
                cur = {"t": round(now)}
                for k, pid in pids.items():
                    cur[k] = rss_kib(pid)
                rss["samples"].append(cur)
                next_sample += 15.0
            for name, at in plan.items():
                if name in done or now < at:
                    continue
                done.add(name)
                if name == "kill":
                    os.kill(pids[victim["id"]], signal.SIGKILL)
                    rec.event("kill", time.monotonic() - t0)
                    log(f"SIGKILL edge {victim['id']} (pid {pids[victim['id']]})")
                elif name == "restart":
                    rec.event("restart_begin", time.monotonic() - t0)
                    p = fleet.restart_edge(victim["id"], victim_cmdline)
                    rec.event("restart_ready", time.monotonic() - t0)
                    pids[victim["id"]] = p.pid
                    log(f"restarted edge {victim['id']} (pid {p.pid}) in "
                        f"{(rec.events['restart_ready'] - rec.events['restart_begin']) * 1000:.0f} ms")
                elif name == "purge_all_up_tag_hard":
                    do_purge(name, {"tags": ["grp1"]})
                elif name in ("purge_edge_down_prefix_soft",
                              "purge_retry_after_restart_prefix_soft"):
                    # The second is what an operator does after a 502: send it again.
                    do_purge(name, {"prefixes": [f"{SERVICE}/obj/16k/"], "soft": True})
                elif name == "purge_after_restart_url_hard":
                    do_purge(name, {"urls": [f"http://{SERVICE}{paths[0]}"]})
            time.sleep(0.05)
        for t in threads:
            t.join(timeout=10)
        dp = None
        if dnsperf:
            try:
                out, _ = dnsperf.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                dnsperf.kill()
                out, _ = dnsperf.communicate()
            dp = parse_dnsperf(out)
            dp["names"] = dp_names
        for k, pid in pids.items():
            rss["after"][k] = rss_kib(pid)
        load_after = loadavg()
        try:
            _, _, body = http_request(fleet.origin, "GET", "/_stats")
            origin_total = json.loads(body).get("total")
        except (OSError, ValueError, http.client.HTTPException) as e:
            origin_total = repr(e)
    finally:
        fleet.stop()

    result = analyse(args, rec, timing, victim, fleet, purges, rss, dp, load_before, load_after,
                     origin_total)
    print_soak_markdown(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0 if result["unexpected_total"] == 0 else 1


def analyse(args, rec, timing, victim, fleet, purges, rss, dp, load_before, load_after,
            origin_total):
    kill = rec.events["kill"]
    ready = rec.events["restart_ready"]
    # The kill can land just after a successful probe; each of the next `fall` probes starts
    # probe_interval + up to probe_jitter after the previous one (dns-router health/probe.rs)
    # and fails at once (connection refused); the last one takes the edge out of answers.
    bound = timing["fall"] * (timing["probe_interval"] + timing["probe_jitter"])
    window_end = kill + bound
    vip = victim["ip"]

    dns_rows = rec.dns
    dns_err = [r for r in dns_rows if r[2] != 0 or not r[3]]
    naming = [r for r in dns_rows if vip in r[3]]
    last_naming_after_kill = max((r[0] for r in naming if kill <= r[0] < ready), default=None)
    dns_late = [r for r in naming if window_end < r[0] < ready]
    back = min((r[0] for r in naming if r[0] >= ready), default=None)
    # Clients of the victim's region: which edge they got while it was down.
    spill = {}
    for r in dns_rows:
        if r[1] == victim["region"] and window_end < r[0] < ready and r[3]:
            e = fleet.edge_by_ip(r[3][0])
            spill[e["id"] if e else r[3][0]] = spill.get(e["id"] if e else r[3][0], 0) + 1

    http_rows = rec.http
    http_err = [r for r in http_rows if r[5]]
    expected, unexpected = [], []
    for r in http_err:
        # In the failover window: aimed at the killed edge, sent between (kill - request
        # timeout) and the end of the window.
        if r[2] == vip and kill - 2.0 <= r[0] <= window_end:
            expected.append(r)
        else:
            unexpected.append(r)
    hits = sum(1 for r in http_rows if r[4])
    lat = [r[6] for r in http_rows if not r[5]]
    per_edge = {}
    for r in http_rows:
        e = fleet.edge_by_ip(r[2]) if r[2] else None
        per_edge[e["id"] if e else "-"] = per_edge.get(e["id"] if e else "-", 0) + 1

    after = [r for r in http_rows if r[2] == vip and r[0] >= ready and not r[5]]
    victim_after = {"requests": len(after), "hits": sum(1 for r in after if r[4])}

    purge_unexpected = []
    for p in purges:
        if "error" in p:
            purge_unexpected.append(p)
            continue
        down = p["name"] == "purge_edge_down_prefix_soft"
        for r in p["results"] or []:
            want_ok = not (down and r["edge"] == victim["id"])
            if bool(r.get("ok")) != want_ok:
                purge_unexpected.append(p)
                break
        if p["status"] != (502 if down else 200):
            purge_unexpected.append(p)

    dnsperf_unexpected = 0
    if dp and dp.get("lost"):
        dnsperf_unexpected = int(dp["lost"])

    unexpected_total = (len(dns_err) + len(dns_late) + len(unexpected) + len(purge_unexpected)
                        + dnsperf_unexpected)
    return {
        "command": "scripts/soak.sh " + " ".join(sys.argv[2:]),
        "duration_s": args.duration,
        "load_before": load_before,
        "load_after": load_after,
        "timing": timing,
        "victim": victim["id"],
        "events": {k: round(v, 3) for k, v in rec.events.items()},
        "failover_bound_s": round(bound, 3),
        "last_dns_naming_victim_after_kill_s": None if last_naming_after_kill is None
        else round(last_naming_after_kill - kill, 3),
        "victim_back_in_dns_after_ready_s": None if back is None else round(back - ready, 3),
        "victim_region_answers_while_down": spill,
        "dns_queries": len(dns_rows),
        "dns_errors": len(dns_err),
        "dns_errors_sample": dns_err[:5],
        "dns_naming_victim_outside_window": len(dns_late),
        "http_requests": len(http_rows),
        "http_hits": hits,
        "http_per_edge": per_edge,
        "http_latency_ms": summary(lat) if lat else None,
        "victim_after_restart": victim_after,
        "origin_requests": origin_total,
        "http_errors_in_window": len(expected),
        "http_errors_in_window_after_kill_s": [round(min(r[0] for r in expected) - kill, 3),
                                               round(max(r[0] for r in expected) - kill, 3)]
        if expected else None,
        "http_errors_outside_window": len(unexpected),
        "http_errors_sample": [r for r in unexpected[:5]] + [r for r in expected[:3]],
        "purges": purges,
        "purge_unexpected": len(purge_unexpected),
        "dnsperf": dp,
        "rss_kib": rss,
        "unexpected_total": unexpected_total,
    }


def print_soak_markdown(r):
    ev = r["events"]
    t = r["timing"]
    lines = [
        f"Duration {r['duration_s']:.0f} s; load average before {r['load_before']}, after {r['load_after']}.",
        f"Router health: probe_interval {t['probe_interval'] * 1000:.0f} ms, fall {t['fall']}, "
        f"rise {t['rise']}, jitter {t['probe_jitter'] * 1000:.0f} ms → failover window = "
        f"fall × (interval + jitter) = {r['failover_bound_s'] * 1000:.0f} ms after the kill.",
        f"Timeline (s from load start): kill {r['victim']} at {ev.get('kill')}, restart begun "
        f"{ev.get('restart_begin')}, ready {ev.get('restart_ready')}.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| last DNS answer naming the killed edge, after the kill | "
        f"{fmt_ms(r['last_dns_naming_victim_after_kill_s'])} (window {r['failover_bound_s'] * 1000:.0f} ms) |",
        f"| DNS answers naming it outside the window (while down) | {r['dns_naming_victim_outside_window']} |",
        f"| its region's answers while it was down | {r['victim_region_answers_while_down']} |",
        f"| back in answers after its restart was ready | {fmt_ms(r['victim_back_in_dns_after_ready_s'])} |",
        f"| ECS DNS queries (python, 3 regions) / errors | {r['dns_queries']} / {r['dns_errors']} |",
    ]
    dp = r["dnsperf"]
    if dp:
        lines.append(
            f"| dnsperf ({dp['names']} names, no ECS): sent / lost / q/s / avg latency | "
            f"{dp['sent']:.0f} / {dp['lost']:.0f} / {dp['qps']} / "
            f"{(dp['avg_latency_s'] or 0) * 1000:.2f} ms; rcodes {dp['rcodes']} |")
    lines += [
        f"| HTTP requests (resolve + GET) / cache hits | {r['http_requests']} / {r['http_hits']} |",
        f"| HTTP requests per edge | {r['http_per_edge']} |",
        f"| requests to the restarted edge after it was back / hits (warm disk cache) | "
        f"{r['victim_after_restart']['requests']} / {r['victim_after_restart']['hits']} |",
        f"| origin requests during the whole run (incl. warm-up) | {r['origin_requests']} |",
    ]
    if r["http_latency_ms"]:
        s = r["http_latency_ms"]
        lines.append(f"| HTTP latency p50 / p99 / max | {s['p50']} / {s['p99']} / {s['max']} ms |")
    lines += [
        f"| HTTP errors to the killed edge inside the window | {r['http_errors_in_window']}"
        f" (sent {r['http_errors_in_window_after_kill_s']} s after the kill) |",
        f"| HTTP errors outside the window | {r['http_errors_outside_window']} |",
    ]
    for p in r["purges"]:
        if "error" in p:
            lines.append(f"| purge {p['name']} | error {p['error']} |")
        else:
            res = ", ".join(
                f"{x['edge']} {'ok' if x.get('ok') else 'FAILED'} {x.get('ms')} ms"
                for x in p["results"] or [])
            lines.append(f"| purge {p['name']} at {p['t']:.0f} s | {p['status']} in "
                         f"{p['wall_ms']} ms: {res} |")
    lines.append(f"| unexpected (errors outside the window, wrong purge results, lost) | "
                 f"**{r['unexpected_total']}** |")
    lines += ["", "RSS (VmRSS, MiB) before the load / after it:", "",
              "| process | before | after |", "|---|---|---|"]
    for k in r["rss_kib"]["before"]:
        b = r["rss_kib"]["before"][k]
        a = r["rss_kib"]["after"].get(k)
        note = " (restarted: a new process)" if k == r["victim"] else ""
        lines.append(f"| {k}{note} | {mib(b)} | {mib(a)} |")
    lines += ["", "RSS samples every 15 s (MiB): " + "; ".join(
        f"{s['t']} s: " + ", ".join(f"{k} {mib(v)}" for k, v in s.items() if k != "t")
        for s in r["rss_kib"]["samples"])]
    for e in r["http_errors_sample"]:
        lines.append(f"\nHTTP error sample: {e}")
    for e in r["dns_errors_sample"]:
        lines.append(f"\nDNS error sample: {e}")
    print("\n".join(lines))


def fmt_ms(s):
    return "-" if s is None else f"{s * 1000:.0f} ms"


def mib(kib):
    return "-" if kib is None else f"{kib / 1024:.1f}"


# ------------------------------------------------------------------------------------ main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "release"),
                        help="where fleet, dns-router and edge are (default target/release)")
    common.add_argument("--token", default="soak-token")
    common.add_argument("--start-timeout", type=float, default=60.0)
    common.add_argument("--json", help="also write the figures to this JSON file")
    common.add_argument("--fleet-verbose", action="store_true",
                        help="run the fleet with -v: every log line (access logs too) in fleet.log")
    common.add_argument("--keep-workdir", action="store_true",
                        help="keep the fleet's configs, logs and caches (kept anyway on failure)")
    common.add_argument("--edge-ip", action="append", default=[], metavar="REGION=IP",
                        help="edge address per region (default 127.0.41.1/42.1/43.1)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("purge", parents=[common], help="purge-to-all-edges-acknowledged latency")
    p.add_argument("--purges", type=int, default=200)
    p.add_argument("--groups", type=int, default=8, help="object groups (one tag/prefix each)")
    p.add_argument("--objects-per-group", type=int, default=5)
    p.add_argument("--max-seconds", type=float, default=240.0, help="stop purging after this")

    s = sub.add_parser("soak", parents=[common], help="mixed DNS + HTTP load with an edge killed and restarted")
    s.add_argument("--duration", type=float, default=180.0)
    s.add_argument("--dns-qps", type=float, default=100.0, help="python ECS queries/s")
    s.add_argument("--dnsperf-qps", type=int, default=300, help="dnsperf queries/s (0 = off)")
    s.add_argument("--http-rps", type=float, default=60.0)
    s.add_argument("--http-threads", type=int, default=4)
    s.add_argument("--objects", type=int, default=200)
    s.add_argument("--tail-ratio", type=float, default=0.05, help="share of uncacheable-once URLs")
    s.add_argument("--kill-region", default="us-east")
    s.add_argument("--down-seconds", type=float, default=15.0)
    s.add_argument("--seed", type=int, default=7)

    args = ap.parse_args()
    args.edge_ips = dict(DEFAULT_EDGE_IPS)
    for m in args.edge_ip:
        region, ip = m.split("=", 1)
        args.edge_ips[region] = ip
    if args.cmd == "soak":
        if args.duration > 900:
            ap.error("--duration is bounded to 900 s")
        # Every event (kill, purge while down, restart, retry, last purge) must fit.
        if 0.40 * args.duration + args.down_seconds + 6.0 > 0.85 * args.duration:
            ap.error(f"--duration {args.duration} is too short for --down-seconds "
                     f"{args.down_seconds}: need at least {(args.down_seconds + 6.0) / 0.45:.0f}")
        if args.down_seconds < 6.0:
            ap.error("--down-seconds must be at least 6 (the purge while down runs at +5 s)")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    code = 1
    try:
        code = purge_bench(args) if args.cmd == "purge" else soak(args)
    except KeyboardInterrupt:
        log("interrupted")
        code = 130
    finally:
        workdir = Fleet.last_workdir
        if workdir and code == 0 and not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        elif workdir:
            log(f"configs, logs (fleet.log, edge-*.restart.log) and caches kept in {workdir}")
    sys.exit(code)


if __name__ == "__main__":
    main()
