"""`dynostore subscribe C --mirror DIR` (issue 4): snapshot then live, killed with -9 halfway
and restarted, ends with every object present and byte-identical in DIR, each downloaded at
most once (the mirror prints one JSON line per download), and evicted objects removed. Cut
off from the broker (kill -9 and restart of mosquitto), the same mirror process reconnects by
itself and catches up on what was put meanwhile."""

import collections
import json
import os
import signal
import subprocess
import threading
import time
import unittest

from fabric import FabricCase, random_bytes, sha256_bytes, sha256_file
from test_events import require_mosquitto_clients

N = 100
WAIT = 60.0


class MirrorTest(FabricCase):
    CONTAINERS = 5

    @classmethod
    def setUpClass(cls):
        require_mosquitto_clients()
        super().setUpClass()
        cls.fab.create_catalog("admin/mirror")
        cls.fab.create_catalog("admin/mirror-cut")

    def start_mirror(self, d, out_path, catalog="admin/mirror"):
        # no --broker: it must come from the settings `dynostore up` wrote
        argv = [os.path.join(self.fab.bin, "dynostore"), "--gateway", self.fab.gateway,
                "--token-file", self.fab.admin_token_file, "subscribe", catalog, "--mirror", d]
        out = open(out_path, "ab")
        p = subprocess.Popen(argv, cwd=self.fab.work, env=self.fab.env(), stdin=subprocess.DEVNULL,
                             stdout=out, stderr=open(out_path + ".err", "ab"), start_new_session=True)
        out.close()
        return p

    def lines(self, paths):
        out = []
        for p in paths:
            try:
                with open(p) as fh:
                    for line in fh:
                        try:
                            out.append(json.loads(line))
                        except ValueError:
                            pass
            except OSError:
                pass
        return out

    def wait_files(self, d, expect, timeout=WAIT):
        """Waits until DIR holds exactly the files of expect {name: sha256}."""
        deadline = time.monotonic() + timeout
        have = {}
        while time.monotonic() < deadline:
            names = [n for n in os.listdir(d) if not n.startswith(".")] if os.path.isdir(d) else []
            have = {}
            for n in names:
                try:
                    have[n] = sha256_file(os.path.join(d, n))
                except FileNotFoundError:
                    pass  # removed (an eviction) between the listing and the read
            if have == expect:
                return have
            time.sleep(0.3)
        missing = sorted(set(expect) - set(have))
        extra = sorted(set(have) - set(expect))
        wrong = sorted(n for n in expect if n in have and have[n] != expect[n])
        self.fail("mirror differs: missing %s, extra %s, wrong %s" % (missing[:10], extra[:10], wrong[:10]))

    def stop(self, m):
        if m.poll() is None:
            m.send_signal(signal.SIGTERM)
            try:
                m.wait(10)
            except subprocess.TimeoutExpired:
                m.kill()
                m.wait()

    def test_mirror_survives_broker_restart(self):
        f = self.fab
        cat = "admin/mirror-cut"
        d = os.path.join(f.work, "mirror-cut")
        out = os.path.join(f.work, "mirror-cut.out")
        expect, keys = {}, {}

        def put(i, retry_s=0):
            data = random_bytes(2000 + 11 * i, seed=300 + i)
            name = "cut-%03d.bin" % i
            deadline = time.monotonic() + retry_s
            while True:
                try:
                    r = f.put_bytes(cat, data, name=name)
                    if r.status == 201:
                        break
                    last = (r.status, r.body[:200])
                except OSError as e:
                    last = repr(e)
                if time.monotonic() > deadline:
                    self.fail("put %s: %r" % (name, last))
                time.sleep(0.5)
            expect[name] = sha256_bytes(data)
            keys[name] = r.json()["key"]

        for i in range(5):
            put(i)
        m = self.start_mirror(d, out, catalog=cat)
        try:
            self.wait_files(d, dict(expect))
            f.kill("mosquitto")
            f.restart("mosquitto")
            # the fabric's agents reconnect by themselves; so must the mirror
            put(5, retry_s=120)
            for i in range(6, 20):
                put(i)
            self.wait_files(d, dict(expect), timeout=120)
            self.assertIsNone(m.poll(), "the mirror exited when the broker went away")
            f.wait_containers_online(self.CONTAINERS, exact=True, timeout=60)
        finally:
            self.stop(m)
        notes = [o for o in self.lines([out]) if isinstance(o, dict) and "mirror" in o]
        downloads = collections.Counter(o["key"] for o in notes if o["mirror"] == "downloaded")
        self.assertEqual({k: n for k, n in downloads.items() if n > 1}, {}, "downloaded more than once")
        fetched = set(o["key"] for o in notes if o["mirror"] in ("downloaded", "adopted"))
        self.assertEqual(set(keys.values()) - fetched, set(), "objects never fetched")

    def test_mirror_survives_kill_and_catches_up(self):
        f = self.fab
        d = os.path.join(f.work, "mirror")
        outs = [os.path.join(f.work, "mirror1.out"), os.path.join(f.work, "mirror2.out")]
        expect, keys = {}, {}

        def put(i):
            data = random_bytes(1000 + 37 * i, seed=100 + i)
            name = "obj-%03d.bin" % i
            r = f.put_bytes("admin/mirror", data, name=name)
            self.assertEqual(r.status, 201, r.body)
            expect[name] = sha256_bytes(data)
            keys[name] = r.json()["key"]

        for i in range(10):  # the snapshot
            put(i)
        m = self.start_mirror(d, outs[0])
        try:
            self.wait_files(d, dict(expect))
            for i in range(10, 50):  # live
                put(i)
                time.sleep(0.02)
            # kill -9 while it works, then put the rest while it is away
            os.kill(m.pid, signal.SIGKILL)
            m.wait(10)
            for i in range(50, N):
                put(i)
            m = self.start_mirror(d, outs[1])
            self.wait_files(d, dict(expect))

            # evictions while it runs are removed from DIR
            for i in range(0, N, 20):
                name = "obj-%03d.bin" % i
                r = f.http("DELETE", "/v1/objects/" + keys[name])
                self.assertEqual(r.status, 204, r.body)
                del expect[name]
            self.wait_files(d, dict(expect))
        finally:
            self.stop(m)

        notes = [o for o in self.lines(outs) if isinstance(o, dict) and "mirror" in o]
        downloads = collections.Counter(o["key"] for o in notes if o["mirror"] == "downloaded")
        fetched = set(o["key"] for o in notes if o["mirror"] in ("downloaded", "adopted"))
        twice = {k: n for k, n in downloads.items() if n > 1}
        self.assertEqual(twice, {}, "downloaded more than once")
        self.assertEqual(set(keys.values()) - fetched, set(), "objects never fetched")
        events = [o for o in self.lines(outs) if isinstance(o, dict) and "type" in o]
        self.assertTrue(any(e["type"] == "object.evicted" for e in events), "no event lines printed")
        with open(os.path.join(d, ".dynostore-mirror")) as fh:
            state = json.load(fh)
        self.assertEqual(set(state["objects"]), set(expect))


if __name__ == "__main__":
    unittest.main()
