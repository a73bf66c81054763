"""Issue 11: two gateways on one fabric. Whatever a gateway keeps to make gets cheaper, a get
after an acknowledged evict or overwrite never returns the old bytes, through the gateway that
evicted or overwrote nor through another one (docs/architecture.md, "What the gateway keeps").

Every case first reads the object through the second gateway (so anything it could keep about
the object is warm), then changes it through the first, then reads through the second right
after the acknowledgement: 404 for the old key, the new bytes for the new one. Small objects
(replicas) and erasure-coded ones; the hardest case keeps a fragment behind: a container
holding one is down while the evict runs, so its copy outlives the acknowledgement, and it
comes back before the read.
"""

import http.client
import json
import unittest
import urllib.parse

from fabric import KiB, MiB, FabricCase, random_bytes, sha256_bytes

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
