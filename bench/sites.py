#!/usr/bin/env python3
"""The wide-area rows of the benchmark (`bench/run.sh --sites`, issue 13 acceptance 5).

64 MiB puts and gets with one client through a gateway at site 1, on three fabrics of the same
run, so the rows sit side by side:

  one-site      `dynostore up --containers 6`: every container on one site, no delay
  3-sites-0ms   `dynostore up --containers 6 --sites 3`, the gateway at site-1 (config key
                "site"), the same machine: placement spreads 2/2/1 (at most m a site), no delay
  3-sites-Nms   the same fabric with a delay-and-cut proxy (tests/tools/netproxy.py) in front
                of every container of site-2 and site-3: N ms each way (default 40) on every
                byte between the site-1 gateway and those containers, as over a wide-area
                link. Control traffic (broker, metadata) is not delayed.

It reuses the integration harness (tests/integration/fabric.py) to start, rewire and stop the
fabrics: temp folders, 127.0.0.1 and ephemeral ports, only its own processes stopped, by pid.
Prints dyno-bench's RESULT lines as a table; exits 1 when a row failed.
"""

import argparse
import os
import subprocess
import sys
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.environ.get("DYNO_BIN") or os.path.join(ROOT, "build", "bin"))
    ap.add_argument("--delay-ms", type=int, default=40, help="one-way delay of each inter-site link")
    ap.add_argument("--size", default="64M")
    ap.add_argument("--ops", type=int, default=6, help="puts (then gets) per row")
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="1 MiB, 2 ops: checks that the mode works")
    a = ap.parse_args()
    if a.smoke:
        a.size, a.ops = "1M", 2
    os.environ["DYNO_BIN"] = os.path.abspath(a.bin)
    os.environ.setdefault("DYNO_RECORD_EVENTS", "0")  # the harness's event checker: not here
    from fabric import Fabric  # noqa: E402  (after DYNO_BIN: it reads it)
    from netproxy import NetProxy  # noqa: E402

    results, failed = [], []

    def bench(fab, gateway, label):
        print("sites.py: %s, %s x %d clients, %d ops ..." % (label, a.size, a.clients, a.ops),
              file=sys.stderr, flush=True)
        # every process of the fabric, by its current pid (containers restarted behind the
        # links have new ones), and the site-1 gateway started here
        pids = [fab.pid(n) for n in fab.names()] + [s["pid"] for n, s in fab._spawned.items()
                                                    if n not in fab.names()]
        pids = ",".join(str(p) for p in pids if p)
        cp = subprocess.run([os.path.join(a.bin, "dyno-bench"), "--system", "dyno", "--label", label,
                             "--gateway", gateway, "--token-file", fab.admin_token_file,
                             "--catalog", "admin/bench-sites", "--size", a.size, "--clients",
                             str(a.clients), "--ops", str(a.ops), "--evict", "--cpu-pids", pids],
                            capture_output=True, text=True, timeout=1800)
        rows = [ln.split() for ln in cp.stdout.splitlines() if ln.startswith("RESULT ")]
        results.extend(rows)
        if cp.returncode != 0 or not rows:
            failed.append(label)
            print("sites.py: %s FAILED (%d): %s" % (label, cp.returncode, cp.stderr[-2000:]),
                  file=sys.stderr)

    # one site
    with Fabric(containers=6, name="bench-1site") as fab:
        bench(fab, fab.gateway, "one-site")

    # three sites, the gateway at site-1
    px = NetProxy()
    try:
        with Fabric(containers=6, extra_up_args=("--sites", "3"), name="bench-3sites") as fab:
            gw = fab.start_gateway("site1", extra={"site": "site-1"})
            bench(fab, gw, "3-sites-0ms")
            remote = [c for c in fab.containers_info() if c.get("site") != "site-1"]
            for c in remote:
                port = urllib.parse.urlsplit(c["url"]).port
                purl = "http://127.0.0.1:%d" % px.add_link(c["id"], "127.0.0.1", port, delay_ms=a.delay_ms)
                fab.kill("container-" + c["id"])
                fab.restart("container-" + c["id"], extra_args=["--url", purl])
            want = {c["id"]: "http://127.0.0.1:%d" % px.port(c["id"]) for c in remote}
            fab.wait_containers(lambda cs: all(
                any(c["id"] == cid and c.get("url") == u and c.get("state") == "online" for c in cs)
                for cid, u in want.items()), timeout=120, what="site-2 and site-3 behind the links")
            bench(fab, gw, "3-sites-%dms" % a.delay_ms)
            crossed = sum(px.stats(cid)["bytes"] for cid in want)
    finally:
        px.stop()

    print("%-14s %-4s %8s %7s %5s %9s %8s %9s %9s %10s" % ("fabric", "op", "size", "clients", "ops", "MB/s",
                                                            "ops/s", "p50 ms", "p99 ms", "cpu ms/op"))
    for r in results:
        # RESULT <system> <op> <size> <clients> <ops> <MB/s> <ops/s> <p50> <p99> <cpu ms/op>
        size = int(r[3])
        human = "%d MiB" % (size >> 20) if size >= 1 << 20 and size % (1 << 20) == 0 else "%d B" % size
        cpu = "-" if float(r[10]) < 0 else "%.1f" % float(r[10])
        print("%-14s %-4s %8s %7s %5s %9.1f %8.2f %9.1f %9.1f %10s" % (r[1], r[2], human, r[4], r[5], float(r[6]),
                                                                   float(r[7]), float(r[8]), float(r[9]), cpu))
    print("(one gateway at site-1; k=3 m=2, so a put sends 5 fragments of size/3, 3 of them to the other")
    print(" sites (at most m=2 on one site), and a get reads its site's fragments and the rest from the")
    print(" nearest; %d ms each way on every link to site-2 and site-3 (netproxy, Python, in the path);"
          % a.delay_ms)
    print(" %.1f MiB crossed the links in the last fabric)" % (crossed / float(1 << 20)))
    return 1 if failed else 0


if __name__ == "__main__":
    t0 = time.monotonic()
    rc = main()
    print("sites.py: done in %.0f s" % (time.monotonic() - t0), file=sys.stderr)
    sys.exit(rc)
