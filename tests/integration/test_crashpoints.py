"""Issue 9, crash points (lib/crashpoint.h): every named point is crossed by the operation it
sits in, the process dies there (DYNO_CRASH_AT, _exit at once), comes back, and the invariant
is checked each time:

  - every acknowledged object reads back byte-identical;
  - nothing is half-visible: every listed object reads back whole, with its listed digest, and
    an object whose put was never answered is either not listed or holds exactly what was sent;
  - no orphan: once GC has run, the fragment files on the containers' disks are exactly the
    fragments metadata lists for visible objects (metadata's pending timeout and repair lease
    are a few seconds here, so GC gets to everything quickly).

One fabric is walked through every point in order (unittest runs the tests by name); only the
crashed process is restarted. The two drains come last: they leave 5 containers for n = 5.
"""

import glob
import os
import sqlite3
import subprocess
import threading
import time
import unittest

from fabric import (CRASH_EXIT, FabricCase, KiB, MiB, fragment_files, placement_problems,
                    random_bytes, restart_with_env, sha256_bytes, unreadable_listed, wait_exit)
from test_events import broker_args, require_mosquitto_clients

CAT = "admin/crash"
PENDING_TIMEOUT = 6   # s: a put that never commits becomes garbage this fast
REPAIR_LEASE = 6      # s: a repair whose worker died is handed out again this fast
CONVERGE = 150        # s: repairs, lease expiry, pending timeout and GC together
SIZES = [0, 3000, 64 * KiB + 1, 1 * MiB + 7, 7 * MiB + 5]


class CrashPoints(FabricCase):
    CONTAINERS = 7  # n = 5, plus room for repair targets and two drains
    acked = {}      # key -> bytes: acknowledged and never replaced or evicted
    unanswered = {}  # name -> bytes of a put that got no answer (may or may not exist)
    either = {}     # name -> (old, new): an unanswered put replaced an acknowledged object
    extra = {}      # process name -> the extra arguments it always runs with
    seq = [0]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        f = cls.fab
        cls.md = f.names("metadata")[0]
        cls.gw = f.names("gateway")[0]
        cls.extra = {cls.md: ["--pending-timeout", str(PENDING_TIMEOUT),
                              "--repair-lease", str(REPAIR_LEASE)],
                     # reservations are released well before the short pending timeout
                     # would reap them under a put (docs/architecture.md)
                     cls.gw: ["--rpc-timeout-ms", "2000", "--repair-poll-ms", "200",
                              "--reserve-ttl-ms", "2000"]}
        for name in (cls.md, cls.gw):
            f.kill(name)
            f.restart(name, cls.extra[name])
        f.create_catalog(CAT)
        cls.acked, cls.unanswered, cls.either = {}, {}, {}
        for i, size in enumerate(SIZES * 2):
            data = random_bytes(size, seed=900 + i)
            r = f.put_bytes(CAT, data, name="base-%d" % i)
            assert r.status == 201, (r.status, r.body)
            cls.acked[r.json()["key"]] = data

    # -- the crash machinery ----------------------------------------------------------------

    def arm(self, name, point):
        """Restarts name so that it dies at point. The gateway is waited for until it answers,
        unless it reaches its point first (GC may have work at once)."""
        f = self.fab
        if f.alive(name):
            f.kill(name)
        restart_with_env(f, name, {"DYNO_CRASH_AT": point}, self.extra.get(name, ()), wait=False)
        if name != self.gw:
            time.sleep(0.2)
            return
        deadline = time.monotonic() + 60
        while f._spawned[name]["popen"].poll() is None:
            try:
                if f.http("GET", "/healthz", token=None, timeout=5).status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.fail("the gateway armed with %s does not answer" % point)
            time.sleep(0.1)

    def crashed(self, name, point, timeout=90):
        st = wait_exit(self.fab, name, timeout)
        self.assertEqual(st, CRASH_EXIT, "%s did not die at crash point %s (exit %r)"
                         % (name, point, st))

    def revive(self, name):
        f = self.fab
        f.restart(name, self.extra.get(name, ()))
        if name.startswith("container-"):
            f.wait_containers_online(len(f.container_names()) - self.drained(), timeout=60)
        elif name == self.md:
            self.wait_answering()

    def drained(self):
        return sum(1 for c in self.fab.containers_info() if c.get("state") == "draining")

    def wait_answering(self, timeout=60):
        """Until metadata answers through the gateway again."""
        deadline = time.monotonic() + timeout
        while self.fab.http("GET", self.fab.cat_path(CAT, "objects") + "?limit=1").status != 200:
            if time.monotonic() > deadline:
                self.fail("metadata does not answer %d s after its restart" % timeout)
            time.sleep(0.3)

    def put(self, size, tag, name=None):
        """A put of fresh bytes (under a fresh name unless given); recorded as acknowledged or
        unanswered."""
        self.seq[0] += 1
        name = name or "%s-%d" % (tag, self.seq[0])
        data = random_bytes(size, seed=10000 + self.seq[0])
        try:
            r = self.fab.put_bytes(CAT, data, name=name)
        except OSError as e:  # the gateway died under the request
            r = e
        if getattr(r, "status", None) == 201:
            self.assertEqual(r.json()["sha256"], sha256_bytes(data))
            self.acked[r.json()["key"]] = data
        else:
            self.unanswered[name] = data
        return r

    def put_in_thread(self, size, tag):
        out = {}
        th = threading.Thread(target=lambda: out.setdefault("r", self.put(size, tag)))
        th.start()
        return th, out

    # -- the invariant ----------------------------------------------------------------------

    def check_invariant(self, what):
        f = self.fab
        for key, data in self.acked.items():
            r = f.get_object(key)
            self.assertEqual(r.status, 200, "%s: acknowledged %s: GET %d %r"
                             % (what, key, r.status, r.body[:200]))
            self.assertTrue(r.body == data, "%s: acknowledged %s: WRONG BYTES" % (what, key))
        listed = {o["name"]: o for o in f.list_catalog(CAT)}
        for name, data in self.unanswered.items():
            if name in listed:
                self.assertEqual(listed[name]["sha256"], sha256_bytes(data),
                                 "%s: unanswered put %s is listed with other bytes" % (what, name))
        for name, versions in self.either.items():
            self.assertIn(name, listed, "%s: %s is gone, old and new version" % (what, name))
            r = f.get_object(listed[name]["key"])
            self.assertEqual(r.status, 200, "%s: %s: GET %d" % (what, name, r.status))
            self.assertIn(r.body, versions, "%s: %s reads back neither version" % (what, name))
        deadline = time.monotonic() + CONVERGE
        while True:
            bad = unreadable_listed(f, CAT)
            problems = ["half-visible %s (%s): %s" % b for b in bad] + placement_problems(f, [CAT])
            if not problems:
                break
            if time.monotonic() > deadline:
                st = f.http("GET", "/v1/admin/repair")
                self.fail("%s: %d problems after %d s, e.g.:\n  %s\nrepair status: %r"
                          % (what, len(problems), CONVERGE, "\n  ".join(problems[:15]),
                             st.body[:400]))
            time.sleep(1)
        print("%s: invariant holds (%d acknowledged, %d unanswered, %d listed)"
              % (what, len(self.acked), len(self.unanswered), len(listed)))

    def container_with_most(self):
        count = {}
        for key in self.acked:
            r = self.fab.http("GET", "/v1/objects/%s/meta" % key)
            for fr in r.json()["fragments"]:
                count[fr["container"]] = count.get(fr["container"], 0) + 1
        return max(count, key=count.get)

    # -- the points, in order ---------------------------------------------------------------

    def container_point(self, point, size=3 * MiB + 1):
        f = self.fab
        cname = "container-" + self.container_with_most()
        self.arm(cname, point)
        f.wait_containers_online(len(f.container_names()), timeout=60)
        # placement picks n of 7: soon one lands on it. Small objects take placements the
        # gateway reserved ahead (some while it was down, without it): those expire within
        # reserve_ttl_ms, so the puts go on for a while (a liveness bound, not a timing).
        deadline = time.monotonic() + 120
        i = 0
        while f.alive(cname) and (i < 12 or time.monotonic() < deadline):
            self.put(size, "c%d" % i)
            i += 1
            if size <= 64 * KiB:
                time.sleep(0.2)
        self.crashed(cname, point)
        self.revive(cname)
        self.check_invariant(point)

    def test_01_container_before_rename(self):
        self.container_point("container.put.before_rename")

    def test_02_container_before_reply(self):
        self.container_point("container.put.before_reply")

    # Small fragments (3000 B objects: fragments of about 1 KiB) are records in volume files
    # (agents/container/store_volume.c): the same invariant at each step of their commit.
    def test_02b_volume_after_append(self):
        self.container_point("container.volume.after_append", size=3000)

    def test_02c_volume_after_sync(self):
        self.container_point("container.volume.after_sync", size=3000)

    def test_02d_volume_small_before_reply(self):
        self.container_point("container.put.before_reply", size=3000)

    def test_02e_volume_compaction_before_unlink(self):
        """Compaction dies with the live records copied and synced, the old volume still
        there: both copies are found at the restart, the newest wins, nothing is lost."""
        f = self.fab
        cid = self.container_with_most()
        cname = "container-" + cid
        args = ["--compact-min", "1"]  # any dead record makes a volume worth compacting
        f.kill(cname)
        restart_with_env(f, cname, {"DYNO_CRASH_AT": "container.volume.before_unlink"},
                         args, wait=False)
        time.sleep(0.2)
        f.wait_containers_online(len(f.container_names()), timeout=60)
        # small objects, most evicted: volumes with more dead than live records
        for i in range(40):
            self.put(3000, "v%d" % i)
            if not f.alive(cname):
                break
        for key in [k for k, v in self.acked.items() if len(v) == 3000][:-4]:
            if not f.alive(cname):
                break
            r = f.http("DELETE", "/v1/objects/" + key)
            self.assertIn(r.status, (200, 204), r.body)
            del self.acked[key]
        self.crashed(cname, "container.volume.before_unlink")
        self.revive(cname)
        self.check_invariant("container.volume.before_unlink")

    def test_03_metadata_commit_before_reply(self):
        point = "metadata.commit.before_reply"
        self.arm(self.md, point)
        self.wait_answering()
        th, out = self.put_in_thread(5 * MiB + 3, "md")
        self.crashed(self.md, point)
        self.revive(self.md)
        th.join(120)
        self.assertFalse(th.is_alive(), "the put did not end after metadata came back")
        r = out.get("r")
        print("%s: the put answered %s" % (point, getattr(r, "status", r)))
        self.check_invariant(point)

    def test_03b_ingest_metadata_commit_before_reply(self):
        # MQTT ingest stores through the same put path: metadata commits the reading and dies
        # before answering; the gateway must not delete what metadata may have committed.
        require_mosquitto_clients()
        point = "metadata.commit.before_reply"
        f = self.fab
        user = f.http("GET", "/v1/auth/whoami").json()["user"]
        data = random_bytes(200 * KiB + 5, seed=777)
        path = os.path.join(f.work, "reading.bin")
        with open(path, "wb") as fh:
            fh.write(data)
        self.arm(self.md, point)
        self.wait_answering()
        # a retry of the put after the unknown commit finds the reading stored (same name and
        # bytes): then it is counted as a duplicate, not stored again
        handled = ("dyno_gateway_ingested_total", "dyno_gateway_ingest_refused_total",
                   "dyno_gateway_ingest_duplicates_total")
        before = sum(f.metrics().get(m, 0) for m in handled)
        argv = ["mosquitto_pub", "-V", "mqttv5"] + broker_args(f) + [
            "-u", user, "-P", f.token, "-q", "1", "-t", "dyno/v1/ingest/" + CAT, "-f", path,
            "-D", "publish", "user-property", "name", "reading-1"]
        cp = subprocess.run(argv, capture_output=True, timeout=60)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.crashed(self.md, point)
        self.revive(self.md)
        self.unanswered["reading-1"] = data  # MQTT gave no answer; listed, it must be whole
        # The gateway is done with the message (stored or refused) before the check: what it
        # does after an unknown commit is what is checked.
        deadline = time.monotonic() + 90
        while sum(f.metrics().get(m, 0) for m in handled) <= before:
            if time.monotonic() > deadline:
                self.fail("the gateway neither stored nor refused the reading in 90 s")
            time.sleep(0.3)
        print("%s: ingested %s" % (point, f.metrics().get(handled[0], 0)))
        self.check_invariant("ingest: " + point)

    # -- issue 11: small objects are placed ahead (object.reserve) ---------------------------

    def reservations(self):
        """Keys of the gateway's pending reservations in metadata's database (read-only)."""
        path = glob.glob(os.path.join(self.fab.data, "metadata", "*.db"))[0]
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
        try:
            return {r[0] for r in db.execute(
                "SELECT key FROM objects WHERE state = 'pending' AND catalog = ''")}
        finally:
            db.close()

    def wait_reserved(self, timeout=60):
        deadline = time.monotonic() + timeout
        while not self.reservations():
            if time.monotonic() > deadline:
                self.fail("the gateway holds no reservation %d s after its start" % timeout)
            time.sleep(0.2)

    def test_03c_metadata_commit_before_reply_reserved(self):
        # A small put takes a reserved placement and commits it with its catalog and name;
        # metadata dies after that commit is durable, before answering: the gateway's retried
        # commit finds it committed, and the put is acknowledged.
        point = "metadata.commit.before_reply"
        self.arm(self.md, point)
        self.wait_answering()
        self.wait_reserved()
        th, out = self.put_in_thread(3000, "mdr")
        self.crashed(self.md, point)
        self.revive(self.md)
        th.join(120)
        self.assertFalse(th.is_alive(), "the put did not end after metadata came back")
        r = out.get("r")
        print("%s (reserved): the put answered %s" % (point, getattr(r, "status", r)))
        if getattr(r, "status", None) == 201:
            self.assertRegex(self.fab.log_text(self.gw),
                             r'"put committed" key=%s .*reserved=1' % r.json()["key"])
        self.check_invariant(point + " (reserved)")

    def test_03d_metadata_reserve_before_reply(self):
        # object.reserve done, never answered: the gateway holds none of those keys; puts go
        # on (object.begin meanwhile), and the rows become garbage at the pending timeout.
        point = "metadata.reserve.before_reply"
        f = self.fab
        self.arm(self.md, point)
        self.crashed(self.md, point, timeout=120)  # the pool refills within reserve_ttl_ms
        orphans = self.reservations()
        self.revive(self.md)
        for i in range(3):
            self.put(2000 + i, "rsv")
        deadline = time.monotonic() + PENDING_TIMEOUT * 4 + 60
        while self.reservations() & orphans:
            if time.monotonic() > deadline:
                self.fail("%s: %d unanswered reservations still pending"
                          % (point, len(self.reservations() & orphans)))
            time.sleep(1)
        self.check_invariant(point)

    def test_03e_gateway_reserve_after_reply(self):
        # The gateway dies holding a fresh batch of reservations: its next incarnation's first
        # object.reserve sends them to deleting, so none leaks or is used twice.
        point = "gateway.reserve.after_reply"
        self.arm(self.gw, point)
        self.crashed(self.gw, point)
        held = self.reservations()
        self.assertTrue(held, "no reservation was made before the crash")
        self.revive(self.gw)
        deadline = time.monotonic() + 60
        while self.reservations() & held:
            if time.monotonic() > deadline:
                self.fail("%s: %d reservations of the dead gateway still pending"
                          % (point, len(self.reservations() & held)))
            time.sleep(0.2)
        self.put(3000, "after-rsv-crash")
        self.check_invariant(point)

    def test_03f_metadata_batch_before_commit(self):
        # Metadata runs its writes in batches, one transaction each (md_writer.h): it dies
        # with a whole batch run and not committed. Whatever that batch held (a reservation,
        # an object.begin, a commit), none of it was answered: the puts under way are retried
        # or refused, nothing acknowledged is lost, nothing is half-visible.
        point = "metadata.batch.before_commit"
        self.arm(self.md, point)
        puts = [self.put_in_thread(size, "mdb") for size in (3000, 5 * MiB + 9, 3001)]
        self.crashed(self.md, point, timeout=120)
        self.revive(self.md)
        for th, out in puts:
            th.join(120)
            self.assertFalse(th.is_alive(), "a put did not end after metadata came back")
        print("%s: the puts answered %s" % (point, [getattr(o.get("r"), "status", o.get("r"))
                                                    for _, o in puts]))
        self.put(3002, "after-batch-crash")
        self.check_invariant(point)

    def test_04b_gateway_before_commit_reserved(self):
        # A small put on a reservation sends its replicas and dies before its commit: the next
        # incarnation sends that reservation to deleting, and GC deletes its fragments.
        point = "gateway.put.before_commit"
        self.arm(self.gw, point)
        self.wait_reserved()
        self.put(3000, "gwcr")
        self.crashed(self.gw, point)
        self.revive(self.gw)
        self.check_invariant(point + " (reserved)")

    def test_04_gateway_before_commit_then_gc(self):
        # The put dies after its write quorum: a pending object, reaped at the pending timeout,
        # whose fragments GC deletes. The gateway that does that GC dies between its deletes
        # and gc.complete; the one after it finishes the job.
        point = "gateway.put.before_commit"
        self.arm(self.gw, point)
        self.put(4 * MiB + 9, "gwc")
        self.crashed(self.gw, point)
        self.arm(self.gw, "gc.before_complete")
        self.crashed(self.gw, "gc.before_complete", timeout=PENDING_TIMEOUT * 4 + 60)
        self.revive(self.gw)
        self.check_invariant(point + " + gc.before_complete")

    def test_05_gateway_before_reply(self):
        # A new version of an acknowledged name, committed, then the gateway dies before it
        # answers: the name reads back one version or the other, whole, and the replaced
        # version's fragments are collected.
        point = "gateway.put.before_reply"
        f = self.fab
        old_key = next(k for k, v in self.acked.items() if len(v) > MiB)
        name = f.http("GET", "/v1/objects/%s/meta" % old_key).json()["name"]
        old = self.acked.pop(old_key)
        self.arm(self.gw, point)
        r = self.put(2 * MiB + 1, "gwr", name=name)
        self.assertNotEqual(getattr(r, "status", None), 201, "the gateway answered past its crash")
        self.either[name] = (old, self.unanswered.pop(name))
        self.crashed(self.gw, point)
        self.revive(self.gw)
        self.check_invariant(point)

    def test_06_evict_with_a_container_down(self):
        # Not a crash point: evict crossed by a container crash (SIGKILL). Its fragment there
        # stays as garbage until the container is back, then GC deletes it.
        f = self.fab
        victim = next(k for k, v in self.acked.items() if len(v) > MiB)
        meta = f.http("GET", "/v1/objects/%s/meta" % victim).json()
        cname = "container-" + meta["fragments"][0]["container"]
        f.kill(cname)
        r = f.http("DELETE", "/v1/objects/" + victim)
        self.assertIn(r.status, (200, 204), r.body)
        del self.acked[victim]
        self.revive(cname)
        self.check_invariant("evict with %s down" % cname)

    def drain_point(self, point):
        f = self.fab
        victim = self.container_with_most()
        self.arm(self.gw, point)
        r = f.http("POST", "/v1/containers/%s/drain" % victim)
        self.assertIn(r.status, (200, 202), r.body)
        self.crashed(self.gw, point)
        self.revive(self.gw)
        deadline = time.monotonic() + CONVERGE
        while any(c == victim for (c, _, _) in fragment_files(f)):
            if time.monotonic() > deadline:
                self.fail("%s: drain of %s did not finish" % (point, victim))
            time.sleep(1)
        self.check_invariant(point)

    def test_07_repair_before_complete(self):
        self.drain_point("repair.before_complete")

    def test_08_drain_mid_move(self):
        self.drain_point("repair.mid_move")


if __name__ == "__main__":
    unittest.main()
