#!/usr/bin/env python3
"""RSS of a server while N clients request one cached large object and do not read it.

    stalled-clients.py HOST:PORT PID [N] [PATH]

Fetches PATH once (so it is cached), reads the server's VmRSS, opens N connections with a
4 KiB receive buffer that each send one GET for PATH and then read nothing for 2 s, reads
VmRSS (summed over PID's session) again, closes them. What a server holds per stalled response is (after - before) / N.
Talks only to the address given (use 127.0.0.1)."""
import os
import socket
import sys
import time


def rss_kib(pid):
    """VmRSS summed over the processes of PID's session (nginx's workers with their master)."""
    sid = os.getsid(int(pid))
    total = 0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if os.getsid(int(p)) != sid:
                continue
            for line in open("/proc/%s/status" % p):
                if line.startswith("VmRSS"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    pid = sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    path = sys.argv[4] if len(sys.argv) > 4 else "/obj/1m/stalled-%d" % time.time()
    req = ("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host)).encode()
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(req.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
    got = 0
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        got += len(b)
    s.close()
    time.sleep(0.5)
    before = rss_kib(pid)
    socks = []
    for _ in range(n):
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.settimeout(10)
        c.connect((host, int(port)))
        c.sendall(req)
        socks.append(c)
    time.sleep(2)
    after = rss_kib(pid)
    for c in socks:
        c.close()
    print("stalled_clients: n=%d object_bytes=%d rss_before_mib=%d rss_after_mib=%d per_client_kib=%d"
          % (n, got, before // 1024, after // 1024, (after - before) // max(1, n)))


if __name__ == "__main__":
    main()
