"""Issue 2, acceptance 3, 4, 5 and 6: faults. Each class breaks its own fabric.

 3  two of five containers killed: every object still reads back byte-identical
 4  a flipped byte in a stored fragment: right bytes, and the corruption is reported
 5  below quorum / too few containers: a clear 503 and nothing visible; a put cut short by a
    gateway crash leaves nothing visible
 6  the broker restarts under a running fabric: agents reconnect by themselves
    and GETs never hang: a container stalled (SIGSTOP) under many concurrent multi-stripe
    reads, and a client that stops reading mid-object, both end in the right bytes in time
"""

import http.client
import os
import signal
import socket
import sys
import threading
import time
import unittest

from fabric import (KiB, MiB, FabricCase, flip_byte, fragment_location, random_bytes, sha256_bytes,
                    sha256_file)

HDR = 1024          # fragment header size (lib/frag.h)
REC_PREFIX = 4      # u32 record length before each stripe unit's payload


def put_ok(tc, catalog, data, name, **kw):
    r = tc.fab.put_bytes(catalog, data, name=name, **kw)
    tc.assertEqual(r.status, 201, "put %s: %d %r" % (name, r.status, r.body))
    return r.json()["key"]


def get_same(tc, key, data, what=""):
    r = tc.fab.get_object(key)
    tc.assertEqual(r.status, 200, "get %s %s: %d %r" % (what, key, r.status, r.body[:300]))
    tc.assertEqual(len(r.body), len(data), "get %s: size" % what)
    tc.assertTrue(r.body == data, "get %s: WRONG BYTES (sha %s, want %s)"
                  % (what, sha256_bytes(r.body), sha256_bytes(data)))


def fragment_container(meta, index):
    for f in meta["fragments"]:
        if f["index"] == index:
            return f["container"]
    raise AssertionError("no fragment %d in %r" % (index, meta))


class TwoContainersKilled(FabricCase):
    """Acceptance 3: any m = 2 lost containers are survived, with and without decoding."""

    CAT = "admin/faults-kill"

    def test_reads_survive_two_dead_containers(self):
        f = self.fab
        f.create_catalog(self.CAT)
        objs = {}
        for i, size in enumerate([1, 3000, 64 * KiB, 64 * KiB + 1, 1 * MiB + 7,
                                  5 * MiB, 10 * MiB + 123]):
            data = random_bytes(size, seed=300 + i)
            objs[put_ok(self, self.CAT, data, "o%d" % i)] = data
        # kill the containers that hold data fragments 0 and 1 of the biggest object, so that
        # its reads must decode from parity
        big = max(objs, key=lambda k: len(objs[k]))
        meta = f.http("GET", "/v1/objects/%s/meta" % big).json()
        victims = [fragment_container(meta, 0), fragment_container(meta, 1)]
        for cid in victims:
            f.kill("container-" + cid)
        # right away (the gateway finds them dead by itself) ...
        for key, data in objs.items():
            get_same(self, key, data, "right after the kill")
        # ... and once metadata knows they are offline
        f.wait_containers_online(3, exact=True)
        for key, data in objs.items():
            get_same(self, key, data, "with 2 containers offline")
        # through the CLI too, for the big one
        out = os.path.join(f.work, "big.out")
        f.cli("get", big, "-o", out)
        with open(out, "rb") as fh:
            self.assertTrue(fh.read() == objs[big], "CLI get of the big object: wrong bytes")
        # a range that needs parity decoding
        r = f.get_object(big, headers={"Range": "bytes=1000-4000000"})
        self.assertEqual(r.status, 206)
        self.assertTrue(r.body == objs[big][1000:4000001], "degraded Range: wrong bytes")


class CorruptFragment(FabricCase):
    """Acceptance 4: a flipped byte is caught by the CRCs, the client still gets the right
    bytes, and the bad fragment is reported (log line and counter)."""

    CAT = "admin/faults-crc"

    def corrupt(self, key, index, cid, offset):
        """Flips one byte of fragment <key>.<index> on container cid at offset. The container
        is stopped while it happens and restarted after, so that its memory cache cannot
        hide the damage."""
        f = self.fab
        f.kill("container-" + cid)
        # its own file, or its record in a volume file when it is small
        loc = fragment_location(f, cid, key, index)
        self.assertTrue(loc, "fragment %s.%d not found on %s" % (key, index, cid))
        path, base = loc
        size = os.path.getsize(path)
        self.assertGreater(size, base + offset, "fragment %s too small (%d)" % (path, size))
        flip_byte(path, base + offset)
        f.restart("container-" + cid)
        f.wait_containers_online(5, exact=True)

    def crc_counters(self):
        f = self.fab
        gw = sum(v for k, v in f.metrics().items()
                 if k.startswith("dyno_gateway_fragment_crc_errors_total"))
        cont = 0.0
        for c in f.containers_info():
            if c.get("url"):
                try:
                    cont += sum(v for k, v in f.metrics(c["url"]).items()
                                if k.startswith("dyno_container_crc_errors_total"))
                except OSError:
                    pass
        return gw, cont

    def corrupt_lines(self):
        return sum(t.count("fragment corrupt") for _, t in self.fab.all_logs_text())

    def test_flipped_byte_in_data_fragment(self):
        f = self.fab
        f.create_catalog(self.CAT)
        data = random_bytes(7 * MiB + 5, seed=41)
        key = put_ok(self, self.CAT, data, "ec")
        meta = f.http("GET", "/v1/objects/%s/meta" % key).json()
        cid = fragment_container(meta, 0)
        # inside the payload of the first record of data fragment 0
        self.corrupt(key, 0, cid, HDR + REC_PREFIX + 12345)
        logged_before = self.corrupt_lines()
        counted_before = sum(self.crc_counters())
        get_same(self, key, data, "with a corrupt data fragment")
        r = f.get_object(key, headers={"Range": "bytes=12000-13000"})
        self.assertEqual(r.status, 206)
        self.assertEqual(r.body, data[12000:13001], "Range over the corrupt unit")
        # reported: a log line and a counter (gateway or container, whichever caught it)
        deadline = time.monotonic() + 20
        while self.corrupt_lines() <= logged_before and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertGreater(self.corrupt_lines(), logged_before,
                           "no new 'fragment corrupt' line in any log")
        gw, cont = self.crc_counters()
        sys.stderr.write("[crc errors: gateway %g, containers %g; logged by %s] "
                         % (gw, cont, ", ".join(n for n, t in f.all_logs_text()
                                                if "fragment corrupt" in t)))
        self.assertGreater(gw + cont, counted_before,
                                "dyno_gateway_fragment_crc_errors_total=%s "
                                "dyno_container_crc_errors_total=%s" % (gw, cont))
        out = os.path.join(f.work, "crc.out")
        f.cli("get", key, "-o", out)
        self.assertEqual(sha256_file(out), sha256_bytes(data), "CLI get with a corrupt fragment")

    def test_corrupt_fragment_reported_to_metadata(self):
        """The reader reports the bad fragment (protocol.md §3 object.report, problem "crc"):
        metadata marks it bad and the object degraded, which is what repair starts from
        (SPEC §6)."""
        f = self.fab
        f.create_catalog(self.CAT)
        data = random_bytes(4 * MiB + 1, seed=43)
        key = put_ok(self, self.CAT, data, "reported")
        meta = f.http("GET", "/v1/objects/%s/meta" % key).json()
        self.corrupt(key, 1, fragment_container(meta, 1), HDR + REC_PREFIX + 4242)
        get_same(self, key, data, "with a corrupt data fragment")
        deadline = time.monotonic() + 20
        while True:
            meta = f.http("GET", "/v1/objects/%s/meta" % key).json()
            bad = [fr for fr in meta["fragments"] if fr["index"] == 1 and fr.get("state") != "ok"]
            if bad or meta.get("state") == "degraded":
                break
            if time.monotonic() > deadline:
                self.fail("the corrupt fragment 1 was not reported to metadata: %r" % meta)
            time.sleep(0.25)

    def test_flipped_bytes_in_two_replicas(self):
        f = self.fab
        f.create_catalog(self.CAT)
        data = random_bytes(40 * KiB, seed=42)
        key = put_ok(self, self.CAT, data, "replicated")
        meta = f.http("GET", "/v1/objects/%s/meta" % key).json()
        self.assertEqual(len(meta["fragments"]), 3, meta)
        # two of the three replicas damaged: the third one must be found and served
        for fr in sorted(meta["fragments"], key=lambda x: x["index"])[:2]:
            self.corrupt(key, fr["index"], fr["container"], HDR + REC_PREFIX + 777)
        get_same(self, key, data, "with two corrupt replicas")


class Quorum(FabricCase):
    """Acceptance 5: below the write quorum or with too few containers for placement, a put
    fails clearly and leaves nothing behind; a put cut short by a gateway crash too."""

    CAT = "admin/faults-quorum"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fab.create_catalog(cls.CAT)

    def names_in_catalog(self):
        return sorted(o["name"] for o in self.fab.list_catalog(self.CAT))

    def test_a_stalled_containers_write_quorum(self):
        """SIGSTOP keeps a container 'online' for metadata while it answers nothing, so the
        put really meets the write quorum (k + 1 = 4 acks of n = 5) in the gateway."""
        f = self.fab
        before = self.names_in_catalog()
        data = random_bytes(4 * MiB + 11, seed=51)
        stalled = ["container-c1", "container-c2"]
        try:
            for n in stalled:
                os.kill(f.pid(n), signal.SIGSTOP)
            r = f.put_bytes(self.CAT, data, name="below-quorum")
            self.assertJsonError(r, (502, 503, 504), msg="put with 3 of 5 fragments possible")
        finally:
            for n in stalled:
                os.kill(f.pid(n), signal.SIGCONT)
        self.assertEqual(self.names_in_catalog(), before, "a failed put is visible")
        # the broker may have given up on the stalled ones meanwhile (MQTT keepalive): wait
        # until they are back before the next step
        f.wait_containers_online(5, exact=True)
        # one stalled: 4 acks meet the quorum, the object commits (degraded) and reads back
        try:
            os.kill(f.pid("container-c3"), signal.SIGSTOP)
            r = f.put_bytes(self.CAT, data, name="at-quorum")
            self.assertEqual(r.status, 201, "put with 4 of 5 fragments: %d %r" % (r.status, r.body))
            key = r.json()["key"]
            get_same(self, key, data, "at quorum, one container stalled")
        finally:
            os.kill(f.pid("container-c3"), signal.SIGCONT)
        meta = f.http("GET", "/v1/objects/%s/meta" % key).json()
        self.assertIn(meta.get("state"), ("degraded", "committed"), meta)
        get_same(self, key, data, "at quorum, all back")

    def test_b_interrupted_put_gateway_killed(self):
        f = self.fab
        before = self.names_in_catalog()
        host, port = f.host_port
        s = socket.create_connection((host, port), timeout=60)
        try:
            s.sendall(("POST /v1/catalogs/%s/~/objects?name=interrupted HTTP/1.1\r\n"
                       "Host: %s:%d\r\nAuthorization: Bearer %s\r\n"
                       "Content-Type: application/octet-stream\r\n"
                       "Content-Length: %d\r\n\r\n"
                       % (self.CAT, host, port, f.token, 64 * MiB)).encode())
            chunk = random_bytes(256 * KiB, seed=52)
            for _ in range(40):  # 10 MiB of 64, a bit at a time
                s.sendall(chunk)
                time.sleep(0.01)
            f.kill(f.names("gateway")[0])
        finally:
            s.close()
        f.restart(f.names("gateway")[0])
        f.wait_containers_online(5)
        self.assertEqual(self.names_in_catalog(), before,
                         "a put cut short by a gateway crash is visible")
        # and the fabric still works
        data = random_bytes(2 * MiB, seed=53)
        key = put_ok(self, self.CAT, data, "after-gateway-restart")
        get_same(self, key, data, "after the gateway restart")

    def test_c_too_few_containers_503(self):
        f = self.fab
        before = self.names_in_catalog()
        f.kill("container-c4")
        f.kill("container-c5")
        f.wait_containers_online(3, exact=True)
        data = random_bytes(1 * MiB, seed=54)
        r = f.put_bytes(self.CAT, data, name="too-few")
        err = self.assertJsonError(r, 503, "unavailable", "put with 3 of 5 containers online")
        # the message says why: how many containers are needed (n = 5) and how many there are
        self.assertRegex(err["message"], r"5", "503 message does not say 5 are needed: %r" % err)
        self.assertRegex(err["message"], r"3", "503 message does not say 3 are online: %r" % err)
        self.assertTrue(r.header("retry-after"), "503 without Retry-After")
        # the CLI says so with exit code 1
        src = os.path.join(f.work, "too-few")
        with open(src, "wb") as fh:
            fh.write(data)
        cp = f.cli("put", src, "--catalog", self.CAT, "--name", "too-few-cli", check=False)
        self.assertEqual(cp.returncode, 1, "CLI put with 3 containers: %r" % cp.stderr)
        self.assertEqual(self.names_in_catalog(), before, "a refused put is visible")


class BrokerRestart(FabricCase):
    """Acceptance 6: the broker restarts under a running fabric; agents reconnect by
    themselves and put/get work again."""

    CAT = "admin/faults-broker"

    def test_broker_restart(self):
        f = self.fab
        f.create_catalog(self.CAT)
        old = random_bytes(3 * MiB, seed=61)
        old_key = put_ok(self, self.CAT, old, "before")
        f.kill("mosquitto")
        f.restart("mosquitto")
        data = random_bytes(2 * MiB + 3, seed=62)
        deadline = time.monotonic() + 120
        last = None
        while time.monotonic() < deadline:
            try:
                r = f.put_bytes(self.CAT, data, name="after")
                if r.status == 201:
                    break
                last = (r.status, r.body[:200])
            except OSError as e:
                last = repr(e)
            time.sleep(0.5)
        else:
            self.fail("no successful put within 120 s of the broker restart; last: %r"
                      % (last,))
        get_same(self, r.json()["key"], data, "after the broker restart")
        get_same(self, old_key, old, "old object after the broker restart")
        f.wait_containers_online(5, exact=True, timeout=60)
        for n in f.names():
            self.assertTrue(f.alive(n), "%s died across the broker restart" % n)


FRAGMENT_TIMEOUT_S = 10  # the gateway's fragment_timeout_ms default, as `dynostore up` runs it


class StalledGets(FabricCase):
    """GETs are bounded: a fragment without progress for fragment_timeout_ms is replaced by
    parity (past m failures the response is cut), whatever its transfer's pause state; and
    the time a slow client keeps the gateway from reading is not counted against a fragment."""

    CAT = "admin/faults-stall"
    THREADS = 12
    BOUND = 3 * FRAGMENT_TIMEOUT_S + 30  # s: one replacement per stripe at most, plus slack

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fab.create_catalog(cls.CAT)

    def get_timed(self, key, bound):
        """GET with a socket timeout of bound; returns (status, body, seconds)."""
        t0 = time.monotonic()
        c = self.fab.conn(timeout=bound)
        try:
            c.request("GET", "/v1/objects/" + key,
                      headers={"Authorization": "Bearer " + self.fab.token})
            r = c.getresponse()
            body = r.read()
            return r.status, body, time.monotonic() - t0
        finally:
            c.close()

    def test_a_concurrent_gets_survive_a_stalled_container(self):
        f = self.fab
        objs = {}
        for i in range(4):  # 3 stripes each (k = 3, unit 1 MiB), the last one short
            data = random_bytes(8 * MiB + 11 * i + 5, seed=700 + i)
            objs[put_ok(self, self.CAT, data, "stall-%d" % i)] = data
        keys = sorted(objs)
        stalled = "container-" + fragment_container(
            f.http("GET", "/v1/objects/%s/meta" % keys[0]).json(), 0)
        problems, done = [], []
        lock = threading.Lock()
        start = threading.Event()

        def reader(t):
            start.wait()
            for j in range(3):
                key = keys[(t + j) % len(keys)]
                try:
                    status, body, secs = self.get_timed(key, self.BOUND)
                except (OSError, http.client.HTTPException) as e:
                    with lock:
                        problems.append("get %s: %r (hung or cut)" % (key, e))
                    continue
                with lock:
                    done.append(secs)
                    if status != 200 or body != objs[key]:
                        problems.append("get %s: status %d, %d bytes, right bytes: %s"
                                        % (key, status, len(body), body == objs[key]))

        threads = [threading.Thread(target=reader, args=(t,), daemon=True)
                   for t in range(self.THREADS)]
        for t in threads:
            t.start()
        os.kill(f.pid(stalled), signal.SIGSTOP)
        try:
            start.set()
            # stalled past the fragment timeout while the reads are in flight
            time.sleep(FRAGMENT_TIMEOUT_S + 3)
        finally:
            os.kill(f.pid(stalled), signal.SIGCONT)
        for t in threads:
            t.join(3 * self.BOUND)
        self.assertFalse(any(t.is_alive() for t in threads), "a GET never returned")
        self.assertEqual(problems, [], "\n".join(problems[:10]))
        self.assertEqual(len(done), 3 * self.THREADS)
        self.assertLess(max(done), self.BOUND)
        f.wait_containers_online(5, exact=True, timeout=60)

    def test_b_slow_client_is_not_a_fragment_failure(self):
        """A client that stops reading for longer than the fragment timeout gets the whole
        object, without any fragment being failed for the time the gateway could not send."""
        f = self.fab
        data = random_bytes(32 * MiB + 17, seed=710)
        key = put_ok(self, self.CAT, data, "slow-client")
        before = f.metrics().get("dyno_gateway_degraded_reads_total", 0)
        c = f.conn(timeout=120)
        try:
            c.request("GET", "/v1/objects/" + key, headers={"Authorization": "Bearer " + f.token})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            head = r.read(256 * KiB)
            time.sleep(FRAGMENT_TIMEOUT_S + 2)
            body = head + r.read()
        finally:
            c.close()
        self.assertEqual(len(body), len(data), "response cut after the client paused")
        self.assertTrue(body == data, "WRONG BYTES after the client paused")
        self.assertEqual(f.metrics().get("dyno_gateway_degraded_reads_total", 0), before,
                         "fragments failed while the client was not reading")
        failed = [ln for ln in f.log_text(f.names("gateway")[0]).splitlines()
                  if "fragment read failed" in ln and "key=%s " % key in ln]
        self.assertEqual(failed, [], "fragments failed while the client was not reading")


if __name__ == "__main__":
    unittest.main()
