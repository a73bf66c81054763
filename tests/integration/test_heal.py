"""Issue 5: integrity and self-healing (docs/healing.md). Each class breaks its own fabric.

 1  a container lost for good: after the grace period every object is back to n healthy
    fragments on live containers; then two more die and every object still reads back
 2  a flipped byte in a data fragment: found by a read, the fragment is rebuilt elsewhere and
    the bad copy is collected; 2b the same found by the scrubber with no read at all
 3  the metadata database deleted: `dynostore admin rebuild-metadata` brings back every
    object's key, name, catalog, size and digest from the fragments
 4  a drained container ends up with no fragment; every object stays readable
 6  afterwards, no orphan: every fragment file belongs to a committed object, and every
    committed object's fragments exist
"""

import glob
import json
import os
import sys
import time
import unittest

from fabric import KiB, MiB, FabricCase, flip_byte, fragment_files, random_bytes, sha256_bytes

HDR = 1024          # fragment header size (lib/frag.h)
REC_PREFIX = 4      # u32 record length before each record's payload
GRACE = 5           # --repair-grace of these fabrics
HEAL_TIMEOUT = 120  # s to wait for repairs (grace + planner ticks + the work itself)

# small (replicated), one stripe, several stripes (k = 3, unit 1 MiB: a stripe is 3 MiB)
SIZES = [0, 1, 3000, 64 * KiB, 64 * KiB + 1, 1 * MiB + 7, 3 * MiB, 7 * MiB + 5, 10 * MiB + 123]


def put_ok(tc, catalog, data, name):
    r = tc.fab.put_bytes(catalog, data, name=name)
    tc.assertEqual(r.status, 201, "put %s: %d %r" % (name, r.status, r.body))
    return r.json()["key"]


def get_same(tc, key, data, what=""):
    r = tc.fab.get_object(key)
    tc.assertEqual(r.status, 200, "get %s %s: %d %r" % (what, key, r.status, r.body[:300]))
    tc.assertEqual(len(r.body), len(data), "get %s %s: size" % (what, key))
    tc.assertTrue(r.body == data, "get %s %s: WRONG BYTES (sha %s, want %s)"
                  % (what, key, sha256_bytes(r.body), sha256_bytes(data)))


def meta(fab, key):
    r = fab.http("GET", "/v1/objects/%s/meta" % key)
    return r.json() if r.status == 200 else None


def n_of(m):
    return m["m"] + 1 if m.get("replica") else m["k"] + m["m"]


def healthy(m, dead=()):
    """n fragments, distinct indexes and containers, all ok, online and on no dead container."""
    if not m:
        return False
    frs = m.get("fragments") or []
    n = n_of(m)
    return (len(frs) == n and sorted(f["index"] for f in frs) == list(range(n))
            and len({f["container"] for f in frs}) == n
            and all(f.get("state", "ok") == "ok" and f.get("online", True)
                    and f["container"] not in dead for f in frs))


def wait_healthy(tc, keys, dead=(), timeout=HEAL_TIMEOUT, what="repair"):
    deadline = time.monotonic() + timeout
    left = list(keys)
    while left:
        left = [k for k in left if not healthy(meta(tc.fab, k), dead)]
        if not left:
            break
        if time.monotonic() > deadline:
            st = tc.fab.http("GET", "/v1/admin/repair")
            tc.fail("%s: %d objects not healthy after %d s, e.g. %r; repair status %d %r"
                    % (what, len(left), timeout, meta(tc.fab, left[0]), st.status, st.body[:500]))
        time.sleep(0.5)


def fragment_of(m, index):
    for f in m["fragments"]:
        if f["index"] == index:
            return f
    raise AssertionError("no fragment %d in %r" % (index, m))


def metric(fab, name):
    return sum(v for k, v in fab.metrics().items() if k.split("{")[0] == name)


class LostContainer(FabricCase):
    """1: a container dies for good; repair brings every object back to n fragments."""

    CONTAINERS = 6  # k + m = 5 fragments, so a repair target exists
    UP_ARGS = ("--repair-grace", str(GRACE))
    CAT = "admin/heal-lost"

    def test_repair_after_container_loss(self):
        f = self.fab
        f.create_catalog(self.CAT)
        objs = {}
        for i, size in enumerate(SIZES):
            data = random_bytes(size, seed=500 + i)
            objs[put_ok(self, self.CAT, data, "o%d" % i)] = data
        for k in objs:
            self.assertTrue(healthy(meta(f, k)), meta(f, k))
        # the container holding the most fragments dies for good
        count = {}
        for k in objs:
            for fr in meta(f, k)["fragments"]:
                count[fr["container"]] = count.get(fr["container"], 0) + 1
        victim = max(count, key=count.get)
        repairs_before = metric(f, "dyno_gateway_repairs_total")
        f.kill("container-" + victim)
        t0 = time.monotonic()
        wait_healthy(self, objs, dead=(victim,))
        took = time.monotonic() - t0
        sys.stderr.write("[%d objects repaired off %s in %.1f s] " % (len(objs), victim, took))
        self.assertGreaterEqual(took, GRACE - 1, "repaired before the grace period ended")
        self.assertGreater(metric(f, "dyno_gateway_repairs_total"), repairs_before)
        self.assertGreater(metric(f, "dyno_gateway_repair_bytes_total"), 0)
        for k, data in objs.items():
            get_same(self, k, data, "after repair")
        # the repair status says nothing is left to do
        st = f.http("GET", "/v1/admin/repair")
        self.assertEqual(st.status, 200, st.body)
        self.assertEqual(st.json().get("degraded_objects"), 0, st.json())
        self.assertGreater(st.json().get("repaired_total", 0), 0, st.json())
        # `dynostore status` shows it
        out = f.cli("status").stdout
        self.assertIn("degraded objects: 0", out, out)
        # two more die: every object still reads back, which needs the repaired fragments
        alive = sorted(c for c in f.container_ids() if c != victim)
        for cid in alive[:2]:
            f.kill("container-" + cid)
        for k, data in objs.items():
            get_same(self, k, data, "with three containers dead")

    def test_repair_needs_an_admin_to_see(self):
        f = self.fab
        r = f.http("GET", "/v1/admin/repair", token=None)
        self.assertJsonError(r, 401)
        r = f.http("POST", "/v1/admin/rebuild-metadata", token=None)
        self.assertJsonError(r, 401)
        r = f.http("POST", "/v1/containers/c1/drain", token=None)
        self.assertJsonError(r, 401)
        r = f.http("POST", "/v1/containers/..%2F/drain")
        self.assertJsonError(r, (400, 404))
        r = f.http("POST", "/v1/containers/nosuch/drain")
        self.assertJsonError(r, 404)
        r = f.http("GET", "/v1/containers/c1/drain")
        self.assertJsonError(r, 405)


class Heal(FabricCase):
    """2, 3, 4, 6 on one fabric, in this order (unittest runs them by name)."""

    CONTAINERS = 7  # drain needs room: n = 5 plus a target that holds no fragment of the object
    UP_ARGS = ("--repair-grace", str(GRACE))
    CAT = "admin/heal"
    objs = {}    # key -> bytes
    names = {}   # key -> name

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        f = cls.fab
        f.create_catalog(cls.CAT)
        f.create_catalog(cls.CAT + "/sub")
        cls.objs, cls.names = {}, {}
        for i, size in enumerate(SIZES):
            cat = cls.CAT if i % 2 == 0 else cls.CAT + "/sub"
            data = random_bytes(size, seed=700 + i)
            name = "obj-%d.bin" % i
            r = f.put_bytes(cat, data, name=name)
            assert r.status == 201, (r.status, r.body)
            cls.objs[r.json()["key"]] = data
            cls.names[r.json()["key"]] = (cat, name)

    def check_all_readable(self, what):
        for k, data in self.objs.items():
            get_same(self, k, data, what)

    def test_2_corrupt_fragment_is_repaired(self):
        f = self.fab
        big = max(self.objs, key=lambda k: len(self.objs[k]))
        m = meta(f, big)
        fr0 = fragment_of(m, 0)
        cid = fr0["container"]
        path = os.path.join(f.container_dir(cid), "frags", big[:2], "%s.0" % big)
        self.assertTrue(os.path.exists(path), path)
        f.kill("container-" + cid)
        flip_byte(path, HDR + REC_PREFIX + 4321, 0xA5)
        f.restart("container-" + cid)  # a cold cache: the damage cannot hide
        f.wait_containers_online(self.CONTAINERS, exact=True)
        # a read finds it (and still answers the right bytes)
        get_same(self, big, self.objs[big], "with a corrupt data fragment")
        # repaired: fragment 0 is ok again, on another container, and the bad copy goes
        deadline = time.monotonic() + HEAL_TIMEOUT
        while True:
            m = meta(f, big)
            fr = fragment_of(m, 0)
            if healthy(m) and fr["container"] != cid and not os.path.exists(path):
                break
            if time.monotonic() > deadline:
                self.fail("fragment 0 not repaired (or the corrupt copy not collected): %r, "
                          "corrupt file still there: %s" % (m, os.path.exists(path)))
            time.sleep(0.5)
        get_same(self, big, self.objs[big], "after the repair")
        # the rebuilt fragment is a good one: read it with the others' help gone
        self.assertGreater(metric(f, "dyno_gateway_gc_deleted_total"), 0)

    def test_2b_scrubber_finds_corruption(self):
        """2, by the scrubber alone: nobody reads the object; the container's scrubber finds
        the flipped byte, reports it, and repair rebuilds the fragment elsewhere."""
        f = self.fab
        big = max(self.objs, key=lambda k: len(self.objs[k]))
        victim = max((k for k in self.objs if k != big), key=lambda k: len(self.objs[k]))
        m = meta(f, victim)
        self.assertTrue(healthy(m), m)
        fr1 = fragment_of(m, 1)
        cid = fr1["container"]
        path = os.path.join(f.container_dir(cid), "frags", victim[:2], "%s.1" % victim)
        self.assertTrue(os.path.exists(path), path)
        reads_before = metric(f, "dyno_gateway_fragment_crc_errors_total")
        f.kill("container-" + cid)
        flip_byte(path, HDR + REC_PREFIX + 777)
        # the same container, scrubbing every second at a high rate
        f.restart("container-" + cid, ["--scrub-interval", "1", "--scrub-rate", "256M"])
        f.wait_containers_online(self.CONTAINERS, exact=True)
        url = [c for c in f.containers_info() if c["id"] == cid][0]["url"]
        deadline = time.monotonic() + HEAL_TIMEOUT
        found = 0
        while True:
            if not found:
                found = sum(v for k, v in f.metrics(url).items()
                            if k.startswith("dyno_container_scrub_errors_total"))
            m = meta(f, victim)
            fr = fragment_of(m, 1)
            if found and healthy(m) and fr["container"] != cid and not os.path.exists(path):
                break
            if time.monotonic() > deadline:
                self.fail("scrubber: errors counted %s; fragment 1 %r; corrupt file still there: "
                          "%s" % (found, fr, os.path.exists(path)))
            time.sleep(0.5)
        self.assertGreater(found, 0, "dyno_container_scrub_errors_total")
        self.assertIn("source=scrub", f.log_text("container-" + cid))
        # no read was needed to find it
        self.assertEqual(metric(f, "dyno_gateway_fragment_crc_errors_total"), reads_before)
        get_same(self, victim, self.objs[victim], "after the scrubber-driven repair")

    def test_3_drain(self):
        f = self.fab
        # the container with the most fragments
        count = {}
        for k in self.objs:
            for fr in meta(f, k)["fragments"]:
                count[fr["container"]] = count.get(fr["container"], 0) + 1
        victim = max(count, key=count.get)
        self.assertGreater(count[victim], 0)
        r = f.cli_json("container", "drain", victim)
        self.assertEqual(r.get("id"), victim, r)
        frags_dir = os.path.join(f.container_dir(victim), "frags")
        deadline = time.monotonic() + HEAL_TIMEOUT
        while True:
            left = [p for (c, _, _), p in fragment_files(f).items() if c == victim]
            on_meta = [k for k in self.objs
                       if any(fr["container"] == victim for fr in meta(f, k)["fragments"])]
            # metadata's own count too: small objects the gateway reserved there before the
            # drain (docs/architecture.md) are released within reserve_ttl_ms
            info = [c for c in f.containers_info() if c["id"] == victim][0]
            if not left and not on_meta and info.get("fragments", 0) == 0:
                break
            if time.monotonic() > deadline:
                self.fail("drain of %s: %d fragment files left in %s, %d objects still placed "
                          "there, %d fragments counted" % (victim, len(left), frags_dir, len(on_meta),
                                                          info.get("fragments", 0)))
            time.sleep(0.5)
        # its own health agrees
        info = [c for c in f.containers_info() if c["id"] == victim][0]
        self.assertEqual(info.get("state"), "draining", info)
        self.assertEqual(info.get("fragments", 0), 0, info)
        for k in self.objs:
            self.assertTrue(healthy(meta(f, k), dead=(victim,)), meta(f, k))
        self.check_all_readable("after the drain")

    def test_4_rebuild_metadata(self):
        f = self.fab
        name = f.names("metadata")[0]
        f.kill(name)
        dbs = glob.glob(os.path.join(f.data, "metadata", "*.db*"))
        self.assertTrue(dbs, "no metadata database under %s" % os.path.join(f.data, "metadata"))
        for p in dbs:
            os.remove(p)
        f.restart(name)
        # metadata knows nothing now
        deadline = time.monotonic() + 60
        while True:
            r = f.http("GET", "/v1/objects/%s/meta" % next(iter(self.objs)))
            if r.status == 404:
                break
            if time.monotonic() > deadline:
                self.fail("metadata still answers after losing its database: %d %r"
                          % (r.status, r.body[:200]))
            time.sleep(0.3)
        f.wait_containers_online(self.CONTAINERS)
        out = f.cli_json("admin", "rebuild-metadata")
        sys.stderr.write("[rebuild-metadata: %s] " % json.dumps(out))
        self.assertEqual(out.get("objects"), len(self.objs), out)
        self.assertEqual(out.get("corrupt"), 0, out)
        for k, data in self.objs.items():
            m = meta(f, k)
            self.assertIsNotNone(m, "object %s not restored" % k)
            cat, name = self.names[k]
            self.assertEqual(m["key"], k)
            self.assertEqual(m["catalog"], cat, m)
            self.assertEqual(m["name"], name, m)
            self.assertEqual(m["size"], len(data), m)
            self.assertEqual(m["sha256"], sha256_bytes(data), m)
            self.assertTrue(healthy(m), m)
        self.check_all_readable("after rebuild-metadata")
        # listed by name in their catalogs again
        listed = {o["key"] for o in f.list_catalog(self.CAT)} | \
                 {o["key"] for o in f.list_catalog(self.CAT + "/sub")}
        self.assertEqual(listed, set(self.objs))
        # idempotent: a second run restores nothing new
        again = f.cli_json("admin", "rebuild-metadata")
        self.assertEqual(again.get("objects"), 0, again)
        self.assertEqual(again.get("skipped"), len(self.objs), again)

    def test_5_rebuild_is_admin_only(self):
        f = self.fab
        r = f.http("POST", "/v1/admin/rebuild-metadata", token="dyn1.bad.token")
        self.assertJsonError(r, 401)
        cp = f.cli("admin", "bogus", check=False)
        self.assertEqual(cp.returncode, 2, cp.stderr)

    def test_6_no_orphans(self):
        f = self.fab
        # evict one object: its fragments must go too
        victim = next(k for k in self.objs if len(self.objs[k]) > 1 * MiB)
        r = f.http("DELETE", "/v1/objects/" + victim)
        self.assertIn(r.status, (200, 204), r.body)
        live = {k: v for k, v in self.objs.items() if k != victim}
        deadline = time.monotonic() + HEAL_TIMEOUT
        problems = None
        while True:
            files = fragment_files(f)
            problems = []
            expected = set()
            for k in live:
                m = meta(f, k)
                if not m:
                    problems.append("object %s not found" % k)
                    continue
                for fr in m["fragments"]:
                    expected.add((fr["container"], k, fr["index"]))
            for ent in expected - set(files):
                problems.append("missing fragment file %s/%s.%d" % ent)
            for ent in set(files) - expected:
                problems.append("orphan fragment file %s" % files[ent])
            if not problems:
                break
            if time.monotonic() > deadline:
                self.fail("%d problems, e.g.:\n  %s" % (len(problems), "\n  ".join(problems[:20])))
            time.sleep(0.5)
        st = f.http("GET", "/v1/admin/repair").json()
        self.assertEqual(st.get("degraded_objects"), 0, st)


if __name__ == "__main__":
    unittest.main()
