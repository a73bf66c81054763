"""Issue 13 (backends): one fabric whose containers store on posix folders, on a real local S3
server (s3rver, tests/s3/node_modules, scripts/install-deps.sh) and in memory (`Backends`), and
one fabric per backend where every container uses it (`AllS3`, `AllMemory`): acceptance 1 asks
for the sizes "with every backend and with a mix". All posix is the default backend, which
test_roundtrip.RoundTrip runs with the same sizes (1 GiB included).

 1  status shows each container's backend (REST containers list and `dynostore status`)
 2  objects of 0 B, 1 B, 64 KiB + 1 B, 10 MiB (and 1 GiB unless DYNO_IT_SKIP_1G=1) read back
    byte-identical, on each fabric (the mix: with fragments on every backend)
 (in the mix only)
 3  a flipped byte in an S3-held fragment (edited in s3rver's folder) is detected on read,
    served around, and repaired onto another container
 4  a memory container restarted comes back empty, and repair refills what it held

s3rver runs on an ephemeral port of 127.0.0.1 with a temp folder and is stopped by pid.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

from fabric import (GiB, KiB, MiB, FabricCase, flip_byte, random_bytes, sha256_bytes, sha256_file, src_dir,
                    write_random_file)

HDR = 1024       # fragment header size (lib/frag.h)
REC_PREFIX = 4   # u32 record length before each record's payload
GRACE = 5
HEAL_TIMEOUT = 180
MIX = {"c1": "s3", "c2": "s3", "c3": "memory", "c4": "posix", "c5": "posix", "c6": "memory"}
CAT = "admin/backends"
SIZES = [0, 1, 64 * KiB + 1, 10 * MiB]   # and 1 GiB, a test of its own (DYNO_IT_SKIP_1G)


class S3rver:
    """A real s3rver with bucket "frags", on an ephemeral port, stopped by pid."""

    def __init__(self):
        self.bin = os.path.join(src_dir(), "tests", "s3", "node_modules", ".bin", "s3rver")
        if not os.access(self.bin, os.X_OK):
            raise AssertionError("s3rver is not installed at %s: run scripts/install-deps.sh" % self.bin)
        self.tmp = tempfile.mkdtemp(prefix="dyno-it-s3-")
        self.dir = os.path.join(self.tmp, "data")
        os.makedirs(self.dir)
        self.secret = os.path.join(self.tmp, "secret")
        with open(self.secret, "w") as fh:
            fh.write("S3RVER\n")
        self.log = open(os.path.join(self.tmp, "s3rver.log"), "wb")
        env = dict(os.environ)
        # s3rver's continuation tokens need node 20's legacy OpenSSL provider (tests/s3/README.md)
        env["NODE_OPTIONS"] = "--openssl-legacy-provider"
        self.proc = subprocess.Popen([self.bin, "-d", self.dir, "-a", "127.0.0.1", "-p", "0",
                                      "--configure-bucket", "frags"], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.url = None
        deadline = time.monotonic() + 60
        while not self.url:
            with open(self.log.name, "rb") as fh:
                for line in fh.read().decode(errors="replace").splitlines():
                    if "listening on " in line:
                        self.url = "http://" + line.split("listening on ")[1].strip()
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("s3rver did not start: %s" % open(self.log.name).read())
            time.sleep(0.1)

    def object_path(self, cid, fid):
        return os.path.join(self.dir, "frags", cid, fid + "._S3rver_object")

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        if os.environ.get("DYNO_KEEP"):  # like the fabric's folder, for a post-mortem
            sys.stderr.write("DYNO_KEEP: s3rver folder kept in %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def meta(fab, key):
    r = fab.http("GET", "/v1/objects/%s/meta" % key)
    return r.json() if r.status == 200 else None


def healthy(m):
    if not m:
        return False
    frs = m.get("fragments") or []
    n = m["m"] + 1 if m.get("replica") else m["k"] + m["m"]
    return (len(frs) == n and sorted(f["index"] for f in frs) == list(range(n))
            and all(f.get("state", "ok") == "ok" and f.get("online", True) for f in frs))


class BackendCase(FabricCase):
    """One fabric whose containers use the backends of BACKENDS (container id -> backend), given
    to `up` as SPEC (default: one item a container); an s3rver when any container is s3. The
    sizes of acceptance 1 (0 B .. 10 MiB, and 1 GiB) are tests of this class, so each subclass
    runs them on its own fabric, shared between the sizes. Not run itself (deleted below)."""
    BACKENDS = {}
    SPEC = None
    GATEWAY_ARGS = ()  # the gateway restarted with these, when given
    SEED = 1300
    s3 = None
    objs = {}

    @classmethod
    def setUpClass(cls):
        cls.CONTAINERS = len(cls.BACKENDS)
        spec = cls.SPEC or ",".join("%s=%s" % kv for kv in sorted(cls.BACKENDS.items()))
        args = ["--repair-grace", str(GRACE), "--backend", spec]
        if "s3" in cls.BACKENDS.values():
            cls.s3 = S3rver()
            args += ["--s3-endpoint", cls.s3.url, "--s3-bucket", "frags", "--s3-access-key", "S3RVER",
                     "--s3-secret-file", cls.s3.secret]
        cls.UP_ARGS = tuple(args)
        try:
            super().setUpClass()
            if cls.GATEWAY_ARGS:
                gw = cls.fab.names("gateway")[0]
                cls.fab.kill(gw)
                cls.fab.restart(gw, extra_args=list(cls.GATEWAY_ARGS))
            cls.fab.create_catalog(CAT)
        except BaseException:
            super().tearDownClass()
            if cls.s3:
                cls.s3.close()
                cls.s3 = None
            raise
        cls.objs = {}

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        if cls.s3:
            cls.s3.close()
            cls.s3 = None

    def kinds(self, key):
        """The backends, as the containers report them, holding fragments of key."""
        real = {c["id"]: c.get("backend") for c in self.fab.containers_info()}
        return {real[f["container"]] for f in meta(self.fab, key)["fragments"]}

    def test_1_status_shows_backends(self):
        # each container really runs the backend asked for (a bare `--backend s3` included),
        # so the sizes below are read back from that backend, not from a posix default
        cs = {c["id"]: c for c in self.fab.wait_containers(
            lambda cs: len(cs) == len(self.BACKENDS) and all(c.get("backend") for c in cs),
            what="backends shown")}
        self.assertEqual({cid: c["backend"] for cid, c in cs.items()}, self.BACKENDS)
        out = self.fab.cli("status").stdout
        self.assertIn("BACKEND", out)
        for cid, b in self.BACKENDS.items():
            line = [ln for ln in out.splitlines() if ln.split() and ln.split()[0] == cid]
            self.assertEqual(len(line), 1, out)
            self.assertEqual(line[0].split()[2], b, out)

    def test_2_sizes_byte_identical(self):
        used = set()
        for i, size in enumerate(SIZES):
            with self.subTest(size=size):
                data = random_bytes(size, seed=self.SEED + i)
                key = self.put_ok(data, "size-%d" % size)
                self.get_same(key, data)
                used |= self.kinds(key)
        # every kind of the fabric holds some fragments (for the mix: 5 fragments on 6
        # containers of three kinds)
        self.assertEqual(used, set(self.BACKENDS.values()))
        # the S3 objects are really in the bucket (s3rver's folder), one per fragment
        s3_frags = [(f["container"], k, f["index"]) for k in self.objs for f in meta(self.fab, k)["fragments"]
                    if self.BACKENDS[f["container"]] == "s3"]
        self.assertEqual(bool(s3_frags), "s3" in used)
        for cid, k, ix in s3_frags:
            self.assertTrue(os.path.exists(self.s3.object_path(cid, "%s.%d" % (k, ix))), (cid, k, ix))

    # Last of each class: after it the gateway has measured the s3 containers slow (s3rver's
    # first byte of a ~342 MiB fragment) and reads around them for a minute (wait_read_in_order).
    @unittest.skipIf(os.environ.get("DYNO_IT_SKIP_1G"), "DYNO_IT_SKIP_1G set")
    def test_9_1gib_byte_identical(self):
        f = self.fab
        src = os.path.join(f.work, "src-1g")
        dst = os.path.join(f.work, "dst-1g")
        digest = write_random_file(src, GiB, seed=self.SEED + 99)
        try:
            t0 = time.monotonic()
            doc = f.put_file(src, CAT, name="one-gib")
            t1 = time.monotonic()
            self.assertEqual(doc["sha256"], digest)
            # fragments of about 342 MiB: multipart uploads on the s3 containers
            self.assertEqual(self.kinds(doc["key"]), set(self.BACKENDS.values()))
            f.cli("get", doc["key"], "-o", dst)
            sys.stderr.write("[%s: 1 GiB put %.1f s, get %.1f s] "
                             % (type(self).__name__, t1 - t0, time.monotonic() - t1))
            self.assertEqual(os.path.getsize(dst), GiB)
            self.assertEqual(sha256_file(dst), digest)
            # the memory containers' RAM goes back: the object is evicted
            f.cli("evict", doc["key"])
        finally:
            for p in (src, dst):
                if os.path.exists(p):
                    os.unlink(p)

    def put_ok(self, data, name):
        r = self.fab.put_bytes(CAT, data, name=name)
        self.assertEqual(r.status, 201, "put %s: %d %r" % (name, r.status, r.body))
        key = r.json()["key"]
        self.objs[key] = data
        return key

    def get_same(self, key, data, what=""):
        r = self.fab.get_object(key)
        self.assertEqual(r.status, 200, "get %s %s: %d %r" % (what, key, r.status, r.body[:300]))
        self.assertTrue(r.body == data, "get %s %s: WRONG BYTES (%d bytes, sha %s, want %d sha %s)"
                        % (what, key, len(r.body), sha256_bytes(r.body), len(data), sha256_bytes(data)))

    def wait_healthy(self, keys, what, extra=lambda: True):
        deadline = time.monotonic() + HEAL_TIMEOUT
        while True:
            left = [k for k in keys if not healthy(meta(self.fab, k))]
            if not left and extra():
                return
            if time.monotonic() > deadline:
                st = self.fab.http("GET", "/v1/admin/repair")
                self.fail("%s: %d objects not healthy after %d s, e.g. %r; repair %r"
                          % (what, len(left), HEAL_TIMEOUT, meta(self.fab, left[0]) if left else None,
                             st.body[:400]))
            time.sleep(0.5)


class Backends(BackendCase):
    """The mix: posix, s3 and memory containers in one fabric."""
    BACKENDS = MIX

    def test_0_bad_backend_settings_are_refused_clearly(self):
        f = self.fab
        data = os.path.join(f.work, "never")
        for args, says in [(["--backend", "tape"], "--backend"),
                           (["--backend", "c9=memory"], "--backend"),   # no c9 of 6 containers
                           (["--backend", "c1=s3"], "--s3-endpoint"),   # s3 without a service
                           (["--backend", "c1=s3", "--s3-endpoint", self.s3.url, "--s3-bucket", "frags",
                             "--s3-access-key", "S3RVER", "--s3-secret-file", "/nonexistent"], "secret")]:
            cp = f.cli("up", "--data", data, "--containers", "6", "--port", "0", *args, check=False,
                       settings=False, timeout=60)
            self.assertNotEqual(cp.returncode, 0, args)
            self.assertIn(says, cp.stderr, args)
            self.assertFalse(os.path.exists(os.path.join(data, "fabric.json")), args)
        # a container refuses a backend it does not know, and an s3 one that cannot list its
        # bucket, with one error line each and exit status 1
        conf = os.path.join(f.data, "containers", "c4", "config.json")
        for extra, says in [(["--backend", "tape"], "backend must be posix, s3 or memory"),
                            (["--backend", "s3", "--s3-endpoint", self.s3.url, "--s3-bucket", "nosuch",
                              "--s3-access-key", "S3RVER", "--s3-secret-file", self.s3.secret, "--port", "0",
                              "--port-file", os.path.join(f.work, "p")], "cannot list s3 bucket nosuch")]:
            cp = subprocess.run([os.path.join(f.bin, "dyno-container"), "--config", conf, "--id", "cx"] + extra,
                                capture_output=True, text=True, timeout=60)
            self.assertEqual(cp.returncode, 1, (extra, cp.stdout, cp.stderr))
            self.assertIn(says, cp.stdout + cp.stderr)

    def test_3_flipped_byte_in_s3_fragment_is_found_served_around_and_repaired(self):
        # an object with a data fragment (index < k: read by every GET) on an s3 container;
        # placement spreads by free space, so a few tries find one
        for attempt in range(12):
            data = random_bytes(10 * MiB + 77, seed=1301 + attempt)
            key = self.put_ok(data, "s3-victim-%d" % attempt)
            m = meta(self.fab, key)
            frs = [f for f in m["fragments"] if self.BACKENDS[f["container"]] == "s3" and f["index"] < m["k"]]
            if frs:
                break
        self.assertTrue(frs, "no data fragment on s3 in 12 puts: %r" % m)
        fr = frs[0]
        cid, ix = fr["container"], fr["index"]
        path = self.s3.object_path(cid, "%s.%d" % (key, ix))
        self.assertTrue(os.path.exists(path), path)
        flip_byte(path, HDR + REC_PREFIX + 4321, 0xA5)
        self.wait_read_in_order(cid)
        crc_before = self.container_metric(cid, "dyno_container_crc_errors_total")
        self.get_same(key, data, "with a corrupt S3-held fragment")
        self.assertGreater(self.container_metric(cid, "dyno_container_crc_errors_total"), crc_before,
                           "the container did not detect the flipped byte")

        def moved():
            f = [x for x in meta(self.fab, key)["fragments"] if x["index"] == ix][0]
            return f["container"] != cid and not os.path.exists(path)
        self.wait_healthy([key], "repair of the corrupt S3 fragment", moved)
        self.get_same(key, data, "after the repair")

    def wait_read_in_order(self, cid):
        """Waits until the gateway reads cid in data-first order. It orders a read's fragments
        by measured latency (agents/gateway/rtt.c): s3rver answers a fragment's first byte later
        than a posix or memory container, often by more than gw_rtt_far's margin (2 x the best
        + GW_RTT_NEAR_US), and then every GET decodes from the others and never reads the corrupt
        fragment. An estimate is forgotten GW_RTT_TTL_MS (60 s) after its last sample, and an
        unknown container is read in data-first order."""
        near_us = 10000  # agents/gateway/dp.h GW_RTT_NEAR_US
        deadline = time.monotonic() + 90
        while True:
            est = {k.split('container="')[1].split('"')[0]: v for k, v in self.fab.metrics().items()
                   if k.startswith("dyno_gateway_container_rtt_microseconds{")}
            if cid not in est or est[cid] <= 2 * min(est.values()) + near_us:
                return
            if time.monotonic() > deadline:
                self.fail("the gateway still measures %s far: %r" % (cid, est))
            time.sleep(1)

    def container_metric(self, cid, name):
        url = [c for c in self.fab.containers_info() if c["id"] == cid][0]["url"]
        return sum(v for k, v in self.fab.metrics(url).items() if k.split("{")[0] == name)

    def test_4_memory_container_restarted_comes_back_empty_and_is_refilled(self):
        f = self.fab
        for i in range(6):
            self.put_ok(random_bytes(200 * KiB + i, seed=1400 + i), "mem-%d" % i)
        on_c3 = [k for k in self.objs if any(x["container"] == "c3" for x in meta(f, k)["fragments"])]
        self.assertTrue(on_c3, "no object on the memory container c3")
        f.kill("container-c3")
        f.restart("container-c3")
        cs = f.wait_containers(lambda cs: any(c["id"] == "c3" and c["online"] for c in cs),
                               what="c3 back")
        url = [c for c in cs if c["id"] == "c3"][0]["url"]
        # empty: the memory backend keeps nothing across a restart
        self.assertEqual(sum(v for k, v in f.metrics(url).items()
                             if k.split("{")[0] == "dyno_container_fragments"), 0)
        # every object still reads back
        for k in self.objs:
            self.get_same(k, self.objs[k], "with c3 emptied")

        # repair restores full redundancy: every fragment metadata places on c3 is on c3
        # again (the parity ones too, which no read touches)
        def c3_holds_what_metadata_says():
            want = sum(1 for k in self.objs for x in meta(f, k)["fragments"] if x["container"] == "c3")
            got = sum(v for k, v in f.metrics(url).items() if k.split("{")[0] == "dyno_container_fragments")
            return got == want and "fragments missing" in f.log_text("metadata-md1")
        self.wait_healthy(list(self.objs), "refill after the memory container restart",
                          c3_holds_what_metadata_says)
        for k in self.objs:
            self.get_same(k, self.objs[k], "after the refill")


class AllS3(BackendCase):
    """Every container on s3 (one bucket, a prefix each), given as a bare `--backend s3`."""
    BACKENDS = {"c%d" % i: "s3" for i in range(1, 6)}
    SPEC = "s3"
    # Every fragment stream of the 1 GiB put goes through the one s3rver (a Node process) here:
    # on this loaded 2-core machine it stalled every stream past the gateway's default 10 s
    # no-progress timeout at once in about 3 of 10 runs (put: "0 of 5 fragment streams
    # succeeded ... no progress in time"; never with the mix, whose s3 containers are 2 of 6).
    # A longer timeout keeps this test about the bytes; the stall is the test server's.
    GATEWAY_ARGS = ("--fragment_timeout_ms", "60000")
    SEED = 1500


class AllMemory(BackendCase):
    """Every container in memory, given as a bare `--backend memory`."""
    BACKENDS = {"c%d" % i: "memory" for i in range(1, 6)}
    SPEC = "memory"
    SEED = 1600


del BackendCase  # a base only: unittest runs its tests through the subclasses


if __name__ == "__main__":
    unittest.main()
