"""`dynostore subscribe C --mirror DIR` (issue 4): snapshot then live, killed with -9 halfway
and restarted, ends with every object present and byte-identical in DIR, each downloaded at
most once (the mirror prints one JSON line per download), and evicted objects removed. Cut
off from the broker (kill -9 and restart of mosquitto), the same mirror process reconnects by
itself and catches up on what was put meanwhile. With --recursive, the sub-catalogs C/a/b go
to DIR/a/b, a sub-catalog created while it runs is picked up, and a DIR mirrored with
--recursive is refused without it; without --recursive, sub-catalogs stay out."""

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

    def mirror_argv(self, d, catalog, extra=()):
        # no --broker: it must come from the settings `dynostore up` wrote
        return [os.path.join(self.fab.bin, "dynostore"), "--gateway", self.fab.gateway,
                "--token-file", self.fab.admin_token_file, "subscribe", catalog, "--mirror", d,
                *extra]

    def start_mirror(self, d, out_path, catalog="admin/mirror", extra=()):
        argv = self.mirror_argv(d, catalog, extra)
        with open(out_path, "ab") as out, open(out_path + ".err", "ab") as err:
            return subprocess.Popen(argv, cwd=self.fab.work, env=self.fab.env(), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, start_new_session=True)

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

    @staticmethod
    def tree(d):
        """{path relative to d: sha256} of every file under d, dot files and folders (the
        state, temp files) left out."""
        have = {}
        for root, dirs, files in os.walk(d):
            dirs[:] = [n for n in dirs if not n.startswith(".")]
            for n in files:
                if n.startswith("."):
                    continue
                p = os.path.join(root, n)
                try:
                    have[os.path.relpath(p, d)] = sha256_file(p)
                except FileNotFoundError:
                    pass  # removed (an eviction) between the listing and the read
        return have

    def wait_files(self, d, expect, timeout=WAIT, recursive=False):
        """Waits until DIR holds exactly the files of expect {name: sha256} (recursive: every
        file under DIR, {relative path: sha256})."""
        deadline = time.monotonic() + timeout
        have = {}
        while time.monotonic() < deadline:
            if recursive:
                have = self.tree(d)
            else:
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

    def test_mirror_recursive(self):
        f = self.fab
        top = "admin/mirror-rec"
        for c in (top, top + "/a", top + "/a/b"):
            f.create_catalog(c)
        d = os.path.join(f.work, "mirror-rec")
        outs = [os.path.join(f.work, "mirror-rec1.out"), os.path.join(f.work, "mirror-rec2.out")]
        expect, keys = {}, {}  # by path relative to DIR
        seq = iter(range(1000))

        def put(sub):
            i = next(seq)
            data = random_bytes(700 + 29 * i, seed=500 + i)
            name = "rec-%03d.bin" % i
            r = f.put_bytes(top + ("/" + sub if sub else ""), data, name=name)
            self.assertEqual(r.status, 201, r.body)
            rel = sub + "/" + name if sub else name
            expect[rel] = sha256_bytes(data)
            keys[rel] = r.json()["key"]
            return rel

        def evict(rel):
            r = f.http("DELETE", "/v1/objects/" + keys[rel])
            self.assertEqual(r.status, 204, r.body)
            del expect[rel]

        for sub in ("", "a", "a/b"):  # the snapshot
            for _ in range(3):
                put(sub)
        m = self.start_mirror(d, outs[0], catalog=top, extra=["--recursive"])
        try:
            self.wait_files(d, dict(expect), recursive=True)
            # while it runs: a new sub-catalog, more objects, an eviction
            f.create_catalog(top + "/c")
            for _ in range(3):
                put("c")
            for _ in range(3):
                put("a/b")
            evict(sorted(r for r in expect if r.startswith("a/") and r.count("/") == 1)[0])
            self.wait_files(d, dict(expect), recursive=True)

            # kill -9, put while it is away, and restart it
            os.kill(m.pid, signal.SIGKILL)
            m.wait(10)
            for _ in range(4):
                put("a")
            # a state file edited by hand must not make it touch files outside DIR
            victim = os.path.join(f.work, "mirror-rec-victim")
            with open(victim, "w") as fh:
                fh.write("keep me")
            state_path = os.path.join(d, ".dynostore-mirror")
            with open(state_path) as fh:
                state = json.load(fh)
            state["objects"]["../mirror-rec-victim"] = "0" * 32
            state["objects"]["a/../../mirror-rec-victim"] = "1" * 32
            with open(state_path, "w") as fh:
                json.dump(state, fh)
            m = self.start_mirror(d, outs[1], catalog=top, extra=["--recursive"])
            self.wait_files(d, dict(expect), recursive=True)
        finally:
            self.stop(m)

        self.assertTrue(os.path.exists(victim), "a state entry reached outside DIR")
        notes = [o for o in self.lines(outs) if isinstance(o, dict) and "mirror" in o]
        downloads = collections.Counter(o["key"] for o in notes if o["mirror"] == "downloaded")
        self.assertEqual({k: n for k, n in downloads.items() if n > 1}, {}, "downloaded more than once")
        fetched = set(o["key"] for o in notes if o["mirror"] in ("downloaded", "adopted"))
        self.assertEqual(set(keys.values()) - fetched, set(), "objects never fetched")
        # the sub-catalog made while it ran came in before the kill (no reconnect needed)
        first = {o.get("path") for o in self.lines(outs[:1]) if isinstance(o, dict) and "mirror" in o}
        self.assertEqual({r for r in keys if r.startswith("c/")} - first, set(), "c/ not picked up live")
        with open(state_path) as fh:
            state = json.load(fh)
        self.assertIs(state.get("recursive"), True)
        self.assertEqual(state["catalog"], top)
        self.assertEqual(set(state["objects"]), set(expect))

        # the same DIR without --recursive is refused, with a message that says why
        r = subprocess.run(self.mirror_argv(d, top), cwd=f.work, env=f.env(), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"--recursive", r.stderr)
        # --recursive alone (no --mirror) is a usage error
        r = subprocess.run(self.mirror_argv(d, top)[:-2] + ["--recursive"], cwd=f.work, env=f.env(),
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 2, r.stderr)

        # a fresh DIR without --recursive mirrors the top catalog only
        d2 = os.path.join(f.work, "mirror-rec-flat")
        out2 = os.path.join(f.work, "mirror-rec3.out")

        def flat():
            return {r: h for r, h in expect.items() if "/" not in r}

        m = self.start_mirror(d2, out2, catalog=top)
        try:
            self.wait_files(d2, flat(), recursive=True)
            put("a")  # live, in a sub-catalog: stays out
            put("")  # live, in the catalog: comes in
            self.wait_files(d2, flat(), recursive=True)
            time.sleep(1.0)
            self.assertEqual(self.tree(d2), flat())
        finally:
            self.stop(m)
        self.assertFalse(any(os.path.isdir(os.path.join(d2, n)) for n in os.listdir(d2)), "a folder was made")
        with open(os.path.join(d2, ".dynostore-mirror")) as fh:
            state = json.load(fh)
        self.assertNotIn("recursive", state)
        self.assertEqual(set(state["objects"]), set(flat()))
        r = subprocess.run(self.mirror_argv(d2, top, ["--recursive"]), cwd=f.work, env=f.env(),
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(b"without its sub-catalogs", r.stderr)


if __name__ == "__main__":
    unittest.main()
