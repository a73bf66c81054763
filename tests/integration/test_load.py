"""Issue 5: load under faults. 16 client threads put, get and evict objects of mixed sizes
(4 KiB .. 8 MiB) while the test kills and restarts (by pid) containers, the broker and
metadata in turn. Every acknowledged put (201) that was not evicted must read back
byte-identical at the end, and no read may ever return wrong bytes. Errors while a fault is
on are allowed: they are counted and printed with the client-visible error rate.

DYNO_LOAD_SECONDS (default 180: "a few minutes") bounds the load phase.
"""

import hashlib
import http.client
import os
import random
import sys
import threading
import time
import unittest

from fabric import KiB, MiB, FabricCase

SECONDS = float(os.environ.get("DYNO_LOAD_SECONDS", "180"))
THREADS = 16
# (size, weight): mostly small, some multi-stripe
SIZES = [(4 * KiB, 30), (60 * KiB, 15), (256 * KiB, 15), (1 * MiB, 15), (3 * MiB + 11, 10),
         (5 * MiB, 8), (8 * MiB, 7)]
REQ_TIMEOUT = 120  # s: a request that hangs longer fails (and, at the end, counts as lost)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}
        self.wrong = []

    def inc(self, name, n=1):
        with self.lock:
            self.c[name] = self.c.get(name, 0) + n

    def get(self, name):
        with self.lock:
            return self.c.get(name, 0)


class LoadUnderFaults(FabricCase):
    CONTAINERS = 6                     # one down still leaves n = 5 for placement
    UP_ARGS = ("--repair-grace", "8")  # long container outages are repaired under load
    CAT = "admin/load"

    def setUp(self):
        self.stats = Stats()
        self.acked = {}        # key -> (sha256, size), acknowledged and not evicted
        self.uncertain = set()  # evicts that did not answer: may or may not be gone
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.faults = []

    # -- clients ----------------------------------------------------------------------------

    def pick_size(self, rnd):
        total = sum(w for _, w in SIZES)
        x = rnd.uniform(0, total)
        for s, w in SIZES:
            x -= w
            if x <= 0:
                return s
        return SIZES[-1][0]

    def do_put(self, rnd, tid, seq):
        size = self.pick_size(rnd)
        data = rnd.randbytes(size)
        sha = hashlib.sha256(data).hexdigest()
        try:
            r = self.fab.http("POST", "/v1/catalogs/%s/~/objects?name=t%d-%d" % (self.CAT, tid, seq),
                              body=data, timeout=REQ_TIMEOUT)
        except (OSError, http.client.HTTPException):
            self.stats.inc("puts_failed")
            return None
        if r.status != 201:
            self.stats.inc("puts_failed")
            return None
        doc = r.json() or {}
        key = doc.get("key")
        if doc.get("sha256") != sha or doc.get("size") != size:
            self.stats.inc("puts_wrong")
            self.stats.wrong.append("put %s answered %r, sent sha %s size %d" % (key, doc, sha, size))
        self.stats.inc("puts_ok")
        with self.lock:
            self.acked[key] = (sha, size)
        return key

    def check_get(self, key, sha, size, phase):
        """One GET; returns 'ok', 'failed' or 'wrong' (wrong is recorded)."""
        try:
            r = self.fab.http("GET", "/v1/objects/" + key, timeout=REQ_TIMEOUT)
        except (OSError, http.client.HTTPException):
            return "failed"
        if r.status != 200:
            return "failed"
        got = hashlib.sha256(r.body).hexdigest()
        if got != sha or len(r.body) != size:
            # a cut stream is an error the client sees (short body), never silently wrong
            # bytes: a full-length body with another digest is wrong
            if len(r.body) != size:
                return "failed"
            self.stats.wrong.append("%s: get %s returned %d bytes sha %s, want %s"
                                    % (phase, key, len(r.body), got, sha))
            return "wrong"
        return "ok"

    def do_get(self, rnd, own):
        with self.lock:
            cands = [k for k in own if k in self.acked]
            if not cands:
                return
            key = rnd.choice(cands)
            sha, size = self.acked[key]
        res = self.check_get(key, sha, size, "load")
        self.stats.inc("gets_" + res)

    def do_evict(self, rnd, own):
        with self.lock:
            cands = [k for k in own if k in self.acked]
            if not cands:
                return
            key = rnd.choice(cands)
            del self.acked[key]
            self.uncertain.add(key)
        try:
            r = self.fab.http("DELETE", "/v1/objects/" + key, timeout=REQ_TIMEOUT)
            ok = r.status in (200, 204)
        except (OSError, http.client.HTTPException):
            ok = False
        if ok:
            self.stats.inc("evicts_ok")
            with self.lock:
                self.uncertain.discard(key)
        else:
            self.stats.inc("evicts_failed")

    def client(self, tid):
        rnd = random.Random(1000 + tid)
        own = []
        seq = 0
        while not self.stop.is_set():
            x = rnd.random()
            failed = sum(self.stats.get(n) for n in ("puts_failed", "gets_failed", "evicts_failed"))
            try:
                if x < 0.5 or len(own) < 2:
                    seq += 1
                    k = self.do_put(rnd, tid, seq)
                    if k:
                        own.append(k)
                elif x < 0.85:
                    self.do_get(rnd, own)
                else:
                    self.do_evict(rnd, own)
            except Exception as e:  # a harness bug must not hide: count it as a failure
                self.stats.inc("client_exceptions")
                self.stats.wrong.append("client %d: %r" % (tid, e))
            # like a real client, back off a little after an error (a fault is on)
            if sum(self.stats.get(n) for n in ("puts_failed", "gets_failed", "evicts_failed")) > failed:
                self.stop.wait(0.25)

    # -- faults -----------------------------------------------------------------------------

    def fault_cycle(self):
        f = self.fab
        conts = f.container_names()
        broker = (f.names("broker") or ["mosquitto"])[0]
        # kill -9 of every kind of process: a container every other fault, and in between
        # the broker, metadata, the gateway, pubsub and auth in turn
        others = [("broker", broker, 2), ("metadata", f.names("metadata")[0], 2),
                  ("gateway", f.names("gateway")[0], 2), ("pubsub", f.names("pubsub")[0], 2),
                  ("auth", f.names("auth")[0], 2)]
        plan = []
        for i in range(100):
            plan.append(("container", conts[i % len(conts)], 12 if i % 3 == 2 else 4))
            plan.append(others[i % len(others)])
        rnd = random.Random(7)
        time.sleep(5)  # some objects first
        for kind, name, down in plan:
            if self.stop.is_set():
                break
            t0 = time.monotonic()
            f.kill(name)
            self.faults.append("%s down %ds" % (name, down))
            self.stop.wait(down)
            f.restart(name)
            self.stats.inc("faults")
            # let the fabric settle a little before the next fault
            self.stop.wait(3 + rnd.random() * 3)
            del t0

    # -- the test ---------------------------------------------------------------------------

    def test_load_with_faults(self):
        f = self.fab
        f.create_catalog(self.CAT)
        clients = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(THREADS)]
        faults = threading.Thread(target=self.fault_cycle, daemon=True)
        t0 = time.monotonic()
        for t in clients:
            t.start()
        faults.start()
        time.sleep(SECONDS)
        self.stop.set()
        faults.join(120)
        for t in clients:
            t.join(REQ_TIMEOUT * 2)
        load_s = time.monotonic() - t0
        # everything back up, then the verdict
        for name in f.names():
            if name != "gateway" and not f.alive(name):
                f.restart(name)
        f.wait_containers_online(self.CONTAINERS, timeout=120)
        f.wait_healthz()

        lost, wrong_end, flaky = [], 0, 0
        with self.lock:
            final = dict(self.acked)
        final_deadline = time.monotonic() + 600  # the whole check; past it, unverified = lost
        for key, (sha, size) in final.items():
            if time.monotonic() > final_deadline:
                lost.append(key)
                continue
            deadline = time.monotonic() + 60
            while True:
                res = self.check_get(key, sha, size, "final")
                if res == "ok":
                    break
                if res == "wrong":
                    wrong_end += 1
                    break
                if time.monotonic() > deadline:
                    lost.append(key)
                    break
                flaky += 1
                time.sleep(1)
        s = self.stats
        ops = sum(s.get(n) for n in ("puts_ok", "puts_failed", "gets_ok", "gets_failed",
                                      "gets_wrong", "evicts_ok", "evicts_failed"))
        errors = s.get("puts_failed") + s.get("gets_failed") + s.get("evicts_failed")
        report = ("\n[load %.0f s, %d threads, %d faults (%s)]\n"
                  "  puts ok %d failed %d | gets ok %d failed %d wrong %d | evicts ok %d failed %d\n"
                  "  client-visible error rate %.2f%% (%d of %d ops)\n"
                  "  final check: %d acknowledged objects, %d lost, %d wrong, %d retries, "
                  "%d evicts of unknown outcome\n"
                  % (load_s, THREADS, s.get("faults"), ", ".join(self.faults[:12]),
                     s.get("puts_ok"), s.get("puts_failed"), s.get("gets_ok"), s.get("gets_failed"),
                     s.get("gets_wrong"), s.get("evicts_ok"), s.get("evicts_failed"),
                     100.0 * errors / max(ops, 1), errors, ops,
                     len(final), len(lost), wrong_end, flaky, len(self.uncertain)))
        sys.stderr.write(report)
        self.assertGreater(s.get("puts_ok"), 0, report)
        self.assertGreater(s.get("faults"), 0, report)
        self.assertEqual(s.get("client_exceptions"), 0, "\n".join(s.wrong[:10]))
        self.assertEqual(s.wrong, [], "WRONG BYTES:\n  " + "\n  ".join(s.wrong[:20]))
        self.assertEqual(lost, [], "%d acknowledged objects lost, e.g. %s%s"
                         % (len(lost), lost[:5], report))


if __name__ == "__main__":
    unittest.main()
