"""Issue 11, the put path: small objects placed ahead in batches (object.reserve) and committed
through metadata's group commit. What must hold whatever the speed:

- every put acknowledged before metadata is killed with SIGKILL (16 clients, right after their
  acknowledgements) is listed and reads back byte-identical once metadata is back;
- the puts really went through reservations (the gateway's "put committed ... reserved=1");
- a gateway killed with SIGKILL leaks no reservation: its next incarnation's first
  object.reserve sends the old ones to deleting; a gateway stopped cleanly releases its
  unused ones (no pending reservation left in metadata's database).
"""

import glob
import os
import signal
import sqlite3
import threading
import time
import unittest

from fabric import KiB, FabricCase, random_bytes

CAT = "admin/putpath"


def reservations(fab, holder="gw1"):
    """Keys of the pending reservations of holder in metadata's database (read-only)."""
    path = glob.glob(os.path.join(fab.data, "metadata", "*.db"))[0]
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    try:
        rows = db.execute("SELECT key FROM objects WHERE state = 'pending' AND catalog = ''"
                          " AND owner = ?", (holder,)).fetchall()
        return {r[0] for r in rows}
    finally:
        db.close()


def object_state(fab, key):
    path = glob.glob(os.path.join(fab.data, "metadata", "*.db"))[0]
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    try:
        row = db.execute("SELECT state FROM objects WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None
    finally:
        db.close()


class PutPath(FabricCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fab.create_catalog(CAT)
        cls.md = cls.fab.names("metadata")[0]
        cls.gw = cls.fab.names("gateway")[0]

    def wait_reserved(self, timeout=60):
        deadline = time.monotonic() + timeout
        while not reservations(self.fab):
            if time.monotonic() > deadline:
                self.fail("the gateway holds no reservation %d s after start" % timeout)
            time.sleep(0.2)

    def wait_answering(self, timeout=90):
        deadline = time.monotonic() + timeout
        while self.fab.http("GET", self.fab.cat_path(CAT, "objects") + "?limit=1").status != 200:
            if time.monotonic() > deadline:
                self.fail("metadata does not answer %d s after its restart" % timeout)
            time.sleep(0.3)

    def test_1_acknowledged_survive_metadata_kill9(self):
        f = self.fab
        self.wait_reserved()
        acked = {}  # key -> bytes
        lock = threading.Lock()
        stop = threading.Event()
        enough = threading.Event()

        def client(c):
            i = 0
            while not stop.is_set():
                i += 1
                data = random_bytes(4 * KiB + (i % 7), seed=c * 100000 + i)
                try:
                    r = f.put_bytes(CAT, data, name="c%d-%d" % (c, i))
                except OSError:
                    continue
                if r.status == 201:
                    with lock:
                        acked[r.json()["key"]] = data
                        if len(acked) >= 300:
                            enough.set()

        threads = [threading.Thread(target=client, args=(c,)) for c in range(16)]
        for t in threads:
            t.start()
        try:
            self.assertTrue(enough.wait(300), "300 puts not acknowledged in 300 s")
            # SIGKILL while the clients keep putting: whatever was acknowledged up to here
            # (and whatever gets acknowledged before the kill lands) must survive.
            f.kill(self.md)
            with lock:
                snapshot = dict(acked)
        finally:
            stop.set()
            for t in threads:
                t.join(600)
        with lock:
            snapshot.update(acked)  # acknowledged after the snapshot: before the kill too
        f.restart(self.md)
        self.wait_answering()
        listed = {o["key"] for o in f.list_catalog(CAT)}
        missing = [k for k in snapshot if k not in listed]
        self.assertEqual(missing, [], "%d of %d acknowledged objects not listed after the restart"
                         % (len(missing), len(snapshot)))
        for key, data in snapshot.items():
            r = f.get_object(key)
            self.assertEqual(r.status, 200, "GET %s: %d %r" % (key, r.status, r.body[:200]))
            self.assertTrue(r.body == data, "%s: wrong bytes after the restart" % key)
        log = f.log_text(self.gw)
        self.assertIn("reserved=1", log, "no put went through a reservation")
        print("acknowledged before the kill: %d, all listed and whole; reserved puts: %d"
              % (len(snapshot), log.count("reserved=1")))

    def test_2_gateway_kill9_leaks_no_reservation(self):
        f = self.fab
        self.wait_reserved()
        old = reservations(f)
        self.assertTrue(old)
        f.kill(self.gw)
        self.assertEqual(reservations(f), old, "the reservations are the dead gateway's still")
        f.restart(self.gw)
        # The new incarnation's first object.reserve sends every old one to deleting.
        deadline = time.monotonic() + 60
        while reservations(f) & old:
            if time.monotonic() > deadline:
                self.fail("%d reservations of the killed gateway still pending"
                          % len(reservations(f) & old))
            time.sleep(0.2)
        for key in old:
            self.assertIn(object_state(f, key), ("deleting", None), key)
        r = f.put_bytes(CAT, random_bytes(3000, seed=5), name="after-gw-kill")
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(f.get_object(r.json()["key"]).body, random_bytes(3000, seed=5))

    def test_3_gateway_stop_releases_unused(self):
        f = self.fab
        self.wait_reserved()
        held = reservations(f)
        f.kill(self.gw, sig=signal.SIGTERM, timeout=60)
        left = reservations(f) & held
        self.assertEqual(left, set(), "a cleanly stopped gateway left %d reservations" % len(left))
        for key in held:
            self.assertIsNone(object_state(f, key), "released %s still has a row" % key)
        f.restart(self.gw)
        r = f.put_bytes(CAT, random_bytes(100, seed=6), name="after-gw-stop")
        self.assertEqual(r.status, 201, r.body)


if __name__ == "__main__":
    unittest.main()
