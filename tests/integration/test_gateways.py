"""Issue 11: two gateways on one fabric. Whatever a gateway keeps to make gets cheaper, a get
after an acknowledged evict or overwrite never returns the old bytes, through the gateway that
evicted or overwrote nor through another one (docs/architecture.md, "What the gateway keeps").

Every case first reads the object through the second gateway (so anything it could keep about
the object is warm), then changes it through the first, then reads through the second right
after the acknowledgement: 404 for the old key, the new bytes for the new one. Small objects
(replicas) and erasure-coded ones; the hardest case keeps a fragment behind: a container
holding one is down while the evict runs, so its copy outlives the acknowledgement, and it
comes back before the read.

Also MQTT ingest across the two gateways (issue 13): copies of a named reading published at
once are taken by ingest sessions of both gateways (one shared subscription), and are stored
once: metadata decides it in the commit (object.commit "dedupe"), one commit after another,
and the copies' fragments are deleted.
"""

import http.client
import json
import os
import subprocess
import time
import unittest
import urllib.parse

from fabric import KiB, MiB, FabricCase, fragment_files, random_bytes, sha256_bytes
from test_events import MqttSub, broker_args, new_user, require_mosquitto_clients, sub_ready

CAT = "admin/twogw"


class TwoGateways(FabricCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.gw2 = cls.fab.start_gateway("gw2")
        cls.fab.create_catalog(CAT)

    def at(self, base, method, path, body=None):
        """One request to the gateway at base, as admin."""
        u = urllib.parse.urlsplit(base)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
        hdrs = {"Authorization": "Bearer " + self.fab.token}
        if body is not None:
            hdrs["Content-Length"] = str(len(body))
        try:
            c.request(method, path, body=body, headers=hdrs)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def put(self, base, data, name):
        st, body = self.at(base, "POST", "/v1/catalogs/%s/~/objects?name=%s" % (CAT, name), data)
        self.assertEqual(st, 201, "put %s: %d %r" % (name, st, body[:300]))
        return json.loads(body)["key"]

    def get_same(self, base, key, data, what):
        st, body = self.at(base, "GET", "/v1/objects/" + key)
        self.assertEqual(st, 200, "%s: get %s: %d %r" % (what, key, st, body[:300]))
        self.assertTrue(body == data, "%s: WRONG BYTES (sha %s, want %s)"
                        % (what, sha256_bytes(body), sha256_bytes(data)))

    def gone(self, base, key, old, what):
        for method in ("GET", "HEAD"):
            st, body = self.at(base, method, "/v1/objects/" + key)
            self.assertTrue(body != old or not old, "%s: %s %s returned the OLD BYTES" % (what, method, key))
            self.assertEqual(st, 404, "%s: %s %s after it was acknowledged gone: %d %r"
                             % (what, method, key, st, body[:200]))
        st, body = self.at(base, "GET", "/v1/objects/%s/meta" % key)
        self.assertEqual(st, 404, "%s: meta %s: %d %r" % (what, key, st, body[:200]))

    def test_copies_of_a_reading_on_both_gateways_are_stored_once(self):
        require_mosquitto_clients()
        f = self.fab
        tok = new_user(f, "dana")
        cat = "dana/twogw-ingest"
        f.create_catalog(cat, token=tok)
        rounds, copies = 6, 12  # 12: a round spans sessions of both gateways (the broker deals
        # the copies to the group's 32 sessions in turn, 16 a gateway)

        def dups():
            return sum(f.metrics(url=u).get("dyno_gateway_ingest_duplicates_total", 0)
                       for u in (f.gateway, self.gw2))

        def handled():
            """Readings each gateway took (stored or duplicate)."""
            return [sum(f.metrics(url=u).get(m, 0) for m in
                        ("dyno_gateway_ingested_total", "dyno_gateway_ingest_duplicates_total"))
                    for u in (f.gateway, self.gw2)]

        def pub(line, name, n=1):
            """n copies of the reading line, sent back to back by one client: with -l
            mosquitto_pub does not wait for a copy's PUBACK (its store) before the next, as
            --repeat does, so the copies are handled at once."""
            argv = ["mosquitto_pub", "-V", "mqttv5"] + broker_args(f) + [
                "-u", "dana", "-P", tok, "-q", "1", "-t", "dyno/v1/ingest/" + cat, "-l",
                "-D", "publish", "user-property", "name", name]
            cp = subprocess.run(argv, input=(line + b"\n") * n, capture_output=True, timeout=60)
            self.assertEqual(cp.returncode, 0, cp.stderr)

        base = set(fragment_files(f))
        before = dups()
        took = handled()
        sub = MqttSub(f, "dana", tok, ["dyno/v1/events/" + cat])
        try:
            sub_ready(self, f, sub, cat, token=tok)
            want = {}
            for i in range(rounds):
                data = random_bytes(1500, seed=700 + i).hex().encode()
                want["r%d" % i] = sha256_bytes(data)
                pub(data, "r%d" % i, n=copies)  # the copies at once: many sessions, both gateways
            pub(b"control", "control")
            seen = []
            got = sub.wait_for(lambda t, d: seen.append(d) or (
                isinstance(d, dict) and (d.get("object") or {}).get("name") == "control"), timeout=60)
            self.assertIsNotNone(got, "no event for the control reading")
            # every copy handled: all of them counted as stored or duplicate
            deadline = time.monotonic() + 60
            while dups() < before + rounds * (copies - 1) and time.monotonic() < deadline:
                time.sleep(0.3)
            time.sleep(2.0)
            while True:
                more = sub.wait_for(lambda t, d: True, timeout=0.5)
                if more is None:
                    break
                seen.append(more[1])
        finally:
            sub.close()
        created = {}
        for d in seen:
            if isinstance(d, dict) and d.get("type") == "object.created":
                o = d.get("object") or {}
                created.setdefault(o.get("name"), []).append(o.get("key"))
        for name in want:
            self.assertEqual(len(created.get(name, [])), 1,
                             "%d copies of %s made %d events" % (copies, name, len(created.get(name, []))))
        self.assertEqual(dups() - before, rounds * (copies - 1))
        # the race this is about needs copies on both gateways
        self.assertTrue(all(a > b for a, b in zip(handled(), took)), (took, handled()))
        objs = {o["name"]: o for o in f.list_catalog(cat, token=tok)}
        for name, sha in want.items():
            self.assertEqual(objs[name]["sha256"], sha)
            self.assertEqual(objs[name]["key"], created[name][0], "a copy replaced " + name)
        # the discarded copies leave no fragment behind: every new fragment is a listed object's
        live = {o["key"] for o in objs.values()}
        deadline = time.monotonic() + 60
        while True:
            extra = {k for (_, k, _) in set(fragment_files(f)) - base if k not in live}
            if not extra or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(extra, set(), "fragments of discarded copies left on the containers")
        held = {k for (_, k, _) in fragment_files(f)}
        self.assertTrue(live <= held, "a stored reading lost its fragments")

    def test_overwrite_and_evict_seen_by_the_other_gateway(self):
        gw1 = self.fab.gateway
        for size in (4 * KiB, 200 * KiB, 3 * MiB + 5):
            for rnd in range(3):
                name = "n%d-%d" % (size, rnd)
                what = "%d bytes, round %d" % (size, rnd)
                a = random_bytes(size, seed=size + rnd)
                b = random_bytes(size, seed=size + rnd + 1000)
                ka = self.put(gw1, a, name)
                self.get_same(self.gw2, ka, a, what + ", before")
                self.get_same(self.gw2, ka, a, what + ", before (again)")
                # overwrite through gw1: the old key is gone at once through gw2
                kb = self.put(gw1, b, name)
                self.assertNotEqual(ka, kb)
                self.gone(self.gw2, ka, a, what + ", overwritten through gw1")
                self.get_same(self.gw2, kb, b, what + ", new version")
                # evict through gw1: gone through gw2 (and gw1)
                st, body = self.at(gw1, "DELETE", "/v1/objects/" + kb)
                self.assertEqual(st, 204, "evict: %d %r" % (st, body))
                self.gone(self.gw2, kb, b, what + ", evicted through gw1")
                self.gone(gw1, kb, b, what + ", evicted, through gw1")

    def test_the_other_way_round(self):
        """Put and evict through gw2, read through gw1 (the fabric's own gateway)."""
        gw1 = self.fab.gateway
        a = random_bytes(5 * KiB, seed=77)
        ka = self.put(self.gw2, a, "other")
        self.get_same(gw1, ka, a, "before")
        st, _ = self.at(self.gw2, "DELETE", "/v1/objects/" + ka)
        self.assertEqual(st, 204)
        self.gone(gw1, ka, a, "evicted through gw2")

    def test_evict_while_a_container_is_down(self):
        """A container holding a fragment is down while the evict runs, so its copy is not
        deleted before the acknowledgement; it comes back before the read: still 404."""
        f = self.fab
        gw1 = f.gateway
        for size in (3 * KiB, 2 * MiB):
            a = random_bytes(size, seed=900 + size)
            ka = self.put(gw1, a, "down-%d" % size)
            self.get_same(self.gw2, ka, a, "before")
            r = f.http("GET", "/v1/objects/%s/meta" % ka)
            self.assertEqual(r.status, 200)
            holder = sorted(fr["container"] for fr in r.json()["fragments"])[0]
            name = "container-" + holder
            self.assertIn(name, f.container_names())
            f.kill(name)
            try:
                st, body = self.at(gw1, "DELETE", "/v1/objects/" + ka)
                self.assertEqual(st, 204, "evict with %s down: %d %r" % (holder, st, body))
            finally:
                f.restart(name)
            f.wait_containers_online(5, exact=True, timeout=90)
            self.gone(self.gw2, ka, a, "%d bytes evicted while %s was down" % (size, holder))
            self.gone(gw1, ka, a, "%d bytes evicted while %s was down, through gw1" % (size, holder))


if __name__ == "__main__":
    unittest.main()
