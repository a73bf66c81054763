"""Issue 11, the containers' small-fragment path (agents/container/store_volume.c): small
fragments are records appended to volume files with group commit, reclaimed by compaction.

  - A stream of small puts from several clients while EVERY container is killed with
    kill -9, again and again, and restarted: every acknowledged object reads back
    byte-identical, and nothing listed is unreadable.
  - The same stream from 16 clients while metadata, which commits their writes in batches
    (agents/metadata/md_writer.c: one transaction and one fsync for all the commits queued
    together), is killed with kill -9 in the middle of it, again and again: no acknowledged
    object is lost with the batch that was running.
  - Compaction under concurrent puts, evicts and reads: every read has the right bytes, and
    once the evicted objects' fragments are collected the containers' folders take less
    disk (du) than before.
"""

import os
import random
import threading
import time
import unittest

from fabric import FabricCase, KiB, random_bytes, sha256_bytes, unreadable_listed, volume_records

CLIENTS = 4


def du_bytes(path):
    """Disk blocks under path, in bytes (what du counts)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


class SmallPutStream:
    """Clients that put small objects of fresh bytes until stopped; acked maps the key of
    every acknowledged put to its bytes."""

    def __init__(self, case, cat, clients):
        self.case, self.cat = case, cat
        self.acked, self.lock, self.stop = {}, threading.Lock(), threading.Event()
        self.counts = {"acked": 0, "failed": 0}
        self.threads = [threading.Thread(target=self.client, args=(c,)) for c in range(clients)]

    def client(self, c):
        f = self.case.fab
        rnd = random.Random(c)
        i = 0
        while not self.stop.is_set():
            i += 1
            data = random_bytes(rnd.choice([0, 1, 100, 3000, 4 * KiB, 20 * KiB, 60 * KiB]),
                                seed=c * 100000 + i)
            try:
                r = f.put_bytes(self.cat, data, name="c%d-%d" % (c, i))
            except OSError:
                r = None
            with self.lock:
                if r is not None and r.status == 201:
                    self.case.assertEqual(r.json()["sha256"], sha256_bytes(data))
                    self.acked[r.json()["key"]] = data
                    self.counts["acked"] += 1
                else:
                    self.counts["failed"] += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()

    def check(self, what):
        """Every acknowledged object reads back byte-identical; nothing listed is unreadable."""
        f, case = self.case.fab, self.case
        print("%s: %d acknowledged, %d refused or cut" % (what, self.counts["acked"],
                                                          self.counts["failed"]))
        case.assertGreater(self.counts["acked"], 20, "too few puts were acknowledged to prove anything")
        for key, data in self.acked.items():
            r = f.get_object(key)
            case.assertEqual(r.status, 200, "acknowledged %s: GET %d %r" % (key, r.status, r.body[:200]))
            case.assertTrue(r.body == data, "acknowledged %s: WRONG BYTES" % key)
        case.assertEqual(unreadable_listed(f, self.cat), [])


class SmallPutsWhileEveryContainerDies(FabricCase):
    CAT = "admin/small-kill"
    ROUNDS = 3

    def test_every_acknowledged_object_survives(self):
        f = self.fab
        f.create_catalog(self.CAT)
        with SmallPutStream(self, self.CAT, CLIENTS) as stream:
            for rnd in range(self.ROUNDS):
                time.sleep(2.0)
                # every container, one right after the other, in the middle of the stream
                for name in f.container_names():
                    f.kill(name)
                time.sleep(0.5)
                for name in f.container_names():
                    f.restart(name)
                f.wait_containers_online(len(f.container_names()), timeout=90)
            time.sleep(2.0)
        stream.check("small puts")
        # the small fragments are in volume files, not files of their own
        recs = sum(len(volume_records(os.path.join(f.container_dir(c), "frags")))
                   for c in f.container_ids())
        self.assertGreater(recs, 0, "no small fragment was stored as a volume record")


class SmallPutsWhileMetadataDies(FabricCase):
    CAT = "admin/small-md-kill"
    CLIENTS = 16
    ROUNDS = 3

    def wait_answering(self, timeout=60):
        deadline = time.monotonic() + timeout
        while self.fab.http("GET", self.fab.cat_path(self.CAT, "objects") + "?limit=1").status != 200:
            self.assertLess(time.monotonic(), deadline, "metadata does not answer after its restart")
            time.sleep(0.3)

    def test_every_acknowledged_object_survives(self):
        f = self.fab
        md = f.names("metadata")[0]
        f.create_catalog(self.CAT)
        with SmallPutStream(self, self.CAT, self.CLIENTS) as stream:
            for rnd in range(self.ROUNDS + 1):
                # the stream flows again (a liveness bound, not a timing): then the kill lands
                # in the middle of it, with batches of commits running or queued
                before = stream.counts["acked"]
                deadline = time.monotonic() + 120
                while stream.counts["acked"] < before + 50:
                    self.assertLess(time.monotonic(), deadline, "the puts do not go on (round %d)" % rnd)
                    time.sleep(0.2)
                print("round %d: the stream goes on (%d acknowledged)" % (rnd, stream.counts["acked"]))
                if rnd == self.ROUNDS:
                    break
                f.kill(md)
                time.sleep(0.5)
                f.restart(md)
                self.wait_answering()
        stream.check("small puts, metadata killed")


class CompactionUnderLoad(FabricCase):
    CAT = "admin/small-compact"
    FIRST = 600
    SIZE = 16 * KiB

    def frags_du(self):
        f = self.fab
        return sum(du_bytes(os.path.join(f.container_dir(c), "frags")) for c in f.container_ids())

    def test_space_reclaimed_bytes_right(self):
        f = self.fab
        # small volumes and a low bar, so that compaction has whole volumes to reclaim here
        for name in f.container_names():
            f.kill(name)
            f.restart(name, ["--volume-max", "1M", "--compact-min", "64K"])
        f.wait_containers_online(len(f.container_names()), timeout=90)
        f.create_catalog(self.CAT)
        objs = {}
        for i in range(self.FIRST):
            data = random_bytes(self.SIZE, seed=5000 + i)
            r = f.put_bytes(self.CAT, data, name="o%d" % i)
            self.assertEqual(r.status, 201, r.body)
            objs[r.json()["key"]] = data
        du_full = self.frags_du()
        keys = sorted(objs)
        doomed, kept = keys[:int(len(keys) * 0.85)], keys[int(len(keys) * 0.85):]
        errors, stop, lock = [], threading.Event(), threading.Lock()
        added = {}

        def putter():
            for i in range(60):
                data = random_bytes(self.SIZE, seed=90000 + i)
                r = f.put_bytes(self.CAT, data, name="new%d" % i)
                if r.status != 201:
                    errors.append("put new%d: %d" % (i, r.status))
                    continue
                with lock:
                    added[r.json()["key"]] = data

        def evicter():
            for k in doomed:
                r = f.http("DELETE", "/v1/objects/" + k)
                if r.status not in (200, 204):
                    errors.append("evict %s: %d" % (k, r.status))

        def reader():
            while not stop.is_set():
                for k in kept[:40]:
                    r = f.get_object(k)
                    if r.status != 200 or r.body != objs[k]:
                        errors.append("read %s: %d%s" % (k, r.status,
                                                         "" if r.status != 200 else " WRONG BYTES"))

        threads = [threading.Thread(target=t) for t in (putter, evicter)]
        rd = threading.Thread(target=reader)
        rd.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # the evicted fragments are deleted by GC, then compaction reclaims the volumes
        deadline = time.monotonic() + 180
        du_now = self.frags_du()
        while du_now > du_full * 0.6 and time.monotonic() < deadline:
            time.sleep(1)
            du_now = self.frags_du()
        stop.set()
        rd.join()
        self.assertEqual(errors, [])
        print("containers' folders: %d KiB full, %d KiB after evicts and compaction"
              % (du_full // 1024, du_now // 1024))
        self.assertLess(du_now, du_full * 0.6, "compaction did not give the space back")
        for k in kept:
            r = f.get_object(k)
            self.assertEqual(r.status, 200, "kept %s: %d" % (k, r.status))
            self.assertTrue(r.body == objs[k], "kept %s: WRONG BYTES" % k)
        for k, data in added.items():
            r = f.get_object(k)
            self.assertEqual(r.status, 200, "added %s: %d" % (k, r.status))
            self.assertTrue(r.body == data, "added %s: WRONG BYTES" % k)
        for k in doomed[:50]:
            self.assertEqual(f.get_object(k).status, 404)
        # and the same after every container restarts from its volumes
        for name in f.container_names():
            f.kill(name)
            f.restart(name)
        f.wait_containers_online(len(f.container_names()), timeout=90)
        for k in kept + list(added):
            r = f.get_object(k)
            want = objs.get(k, added.get(k))
            self.assertTrue(r.status == 200 and r.body == want, "after restart %s: %d" % (k, r.status))


if __name__ == "__main__":
    unittest.main()
