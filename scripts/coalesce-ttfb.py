#!/usr/bin/env python3
"""Cold burst with first-byte and last-byte times per client.

    coalesce-ttfb.py HOST PORT [N] [DELAY_MS]

N (200) clients request one uncached 1 MiB object of the yardstick's origin
(/obj/1m/<unique>?delay_ms=DELAY_MS, 500) at once, then the same burst again (cached).
Prints p50/p99/max of each client's time to first byte and to last byte for both bursts:
the cold burst's first bytes show when followers got the leader's head; its last bytes minus
the origin delay, next to the cached burst's, show what handing the body to them cost.
Talks only to HOST:PORT (use 127.0.0.1)."""
import asyncio, time, sys, urllib.request, json
host, port = sys.argv[1], int(sys.argv[2])
n = int(sys.argv[3]) if len(sys.argv) > 3 else 200
delay = int(sys.argv[4]) if len(sys.argv) > 4 else 500
async def one(path, evt, out):
    r, w = await asyncio.open_connection(host, port)
    await evt.wait()
    t0 = time.perf_counter()
    w.write(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n" % (path, host, port)).encode())
    await w.drain()
    first = await r.read(1)
    t1 = time.perf_counter()
    total = len(first)
    while True:
        b = await r.read(1 << 20)
        if not b: break
        total += len(b)
    t2 = time.perf_counter()
    w.close()
    out.append(((t1 - t0) * 1000, (t2 - t0) * 1000, total))
async def burst(path):
    evt = asyncio.Event(); out = []
    ts = [asyncio.create_task(one(path, evt, out)) for _ in range(n)]
    await asyncio.sleep(0.5); evt.set()
    await asyncio.gather(*ts)
    return out
def q(xs, p): xs = sorted(xs); return xs[min(len(xs)-1, int(len(xs)*p))]
path = "/obj/1m/ttfb-%d?delay_ms=%d" % (time.time()*1000, delay)
for label in ("cold", "cached"):
    out = asyncio.run(burst(path))
    ttfb = [o[0] for o in out]; tot = [o[1] for o in out]
    print(label, "ttfb p50 %.0f p99 %.0f max %.0f | total p50 %.0f p99 %.0f max %.0f | bytes ok %d" % (
        q(ttfb,.5), q(ttfb,.99), max(ttfb), q(tot,.5), q(tot,.99), max(tot), sum(1 for o in out if o[2] > 1048576)))
