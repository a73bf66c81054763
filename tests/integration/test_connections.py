"""Issue 11, the per-request cost of fragment transfers: the gateway keeps its connections to
the containers across requests, so a stream of small puts and gets adds HTTP requests at the
containers, not TCP connections (a connect, an accept and a new MHD thread per fragment is
what the persistent connections save). Each container counts the connections it accepted
(`dyno_container_connections_total` on its /metrics).

The client here opens a new connection to the gateway for every request, the worst case for
reuse: the gateway's connection thread ends after each one, and its container connections
must survive it (parked for the next client connection, agents/gateway/xfer_curl.c).
"""

import unittest

from fabric import KiB, FabricCase, random_bytes

CAT = "admin/conns"
PUTS = 40


class ContainerConnections(FabricCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fab.create_catalog(CAT)
        cls.urls = {c["id"]: c["url"] for c in cls.fab.containers_info()}

    def accepted(self):
        """Connections each container accepted so far; the scrape's own counts (it is one)."""
        return {cid: self.fab.metrics(u).get("dyno_container_connections_total", 0)
                for cid, u in self.urls.items()}

    def test_puts_and_gets_reuse_container_connections(self):
        # One round first, so that every container connection the gateway will keep is open.
        warm = [random_bytes(4 * KiB, seed=i) for i in range(8)]
        for d in warm:
            self.assertEqual(self.fab.put_bytes(CAT, d).status, 201)
        before = self.accepted()
        self.assertTrue(all(v >= 1 for v in before.values()), before)

        keys = {}
        for i in range(PUTS):
            d = random_bytes(4 * KiB, seed=100 + i)
            r = self.fab.put_bytes(CAT, d, name="o%d" % i)
            self.assertEqual(r.status, 201, r.body)
            keys[r.json()["key"]] = d
        for key, d in keys.items():
            r = self.fab.http("GET", "/v1/objects/" + key)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, d)
        after = self.accepted()

        # PUTS small puts store 3 replicas each and the gets read one: about 160 fragment
        # requests over the containers. Reused connections add none; allow a few (a
        # connection a container timed out, the parallel streams of a put needing a second
        # one to the same container): far fewer than one per request.
        new = {cid: after[cid] - before[cid] - 1 for cid in after}  # -1: the scrape itself
        requests = PUTS * 3 + PUTS
        self.assertLessEqual(sum(new.values()), 10,
                             "containers accepted %s new connections for about %d fragment "
                             "requests" % (new, requests))


if __name__ == "__main__":
    unittest.main()
