"""Issue 13 acceptance 3, a gateway per site: two gateways (site-1 and site-2) serve one fabric
of three sites (6 containers, c1 c4 at site-1, c2 c5 at site-2, c3 c6 at site-3, k=3 m=2, at
most 2 fragments of an object on a site).

- An object put through one gateway reads back through the other, both ways, and each
  gateway fetches from its own site's containers first: the containers' fragment GET
  counters (`dyno_container_gets_total`) of that site grow by exactly the fragments it holds.
- With a 40 ms link (tests/tools/netproxy.py) in front of site-2's containers, the site-1
  gateway, whose own site never holds the 3 fragments a read needs, measures the containers
  (time to first byte of its fragment GETs, docs/architecture.md "Read order") and then takes
  the missing fragments from the fast site-3, never from site-2: even parity on site-3 (and a
  decode) beats data across the slow link. Within a request it still falls back to site-2
  when site-3 is gone.
"""

import http.client
import json
import os
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))

from fabric import MiB, FabricCase, random_bytes  # noqa: E402
from netproxy import NetProxy  # noqa: E402

SITES = 3
CONTAINERS = 6
K = 3
DELAY_MS = 40


def site_of(cid):
    """Round robin: c1 site-1, c2 site-2, c3 site-3, c4 site-1, ..."""
    return "site-%d" % ((int(cid[1:]) - 1) % SITES + 1)


def request(url, method, path, token, body=None):
    """One request to a gateway by URL; (status, body bytes)."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    try:
        c.request(method, path, body=body, headers={"Authorization": "Bearer " + token})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class SiteGateways(FabricCase):
    CONTAINERS = CONTAINERS
    UP_ARGS = ("--sites", str(SITES))

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.px = NetProxy()
        f = cls.fab
        cls.gw = {"site-1": f.start_gateway("gw-site1", extra={"site": "site-1"}),
                  "site-2": f.start_gateway("gw-site2", extra={"site": "site-2"})}
        # the containers' own addresses, for their counters (never through the proxy)
        cls.direct = {c["id"]: c["url"] for c in f.containers_info()}
        f.create_catalog("admin/sgw")

    @classmethod
    def tearDownClass(cls):
        cls.px.stop()
        super().tearDownClass()

    # -- helpers ---------------------------------------------------------------------------

    def gets(self, cids=None):
        cids = cids or sorted(self.direct)
        return {c: self.fab.metrics(self.direct[c]).get("dyno_container_gets_total", 0) for c in cids}

    def grown(self, before):
        after = self.gets(list(before))
        return {c: after[c] - before[c] for c in before if after[c] != before[c]}

    def put(self, site, data, name):
        st, body = request(self.gw[site], "POST", "/v1/catalogs/admin/sgw/~/objects?name=" + name,
                           self.fab.token, data)
        self.assertEqual(st, 201, "put through the %s gateway: %d %r" % (site, st, body[:300]))
        return json.loads(body)["key"]

    def read(self, site, key, data, what=""):
        st, got = request(self.gw[site], "GET", "/v1/objects/" + key, self.fab.token)
        self.assertEqual(st, 200, "read %s at %s %s: %r" % (key, site, what, got[:300]))
        self.assertTrue(got == data, "read %s at %s %s: WRONG BYTES" % (key, site, what))

    def layout(self, key):
        """{index: container} of key's fragments."""
        r = self.fab.http("GET", "/v1/objects/%s/meta" % key)
        self.assertEqual(r.status, 200, r.body[:300])
        m = r.json()
        self.assertEqual((m["k"], m["m"]), (K, 2), m)
        return {fr["index"]: fr["container"] for fr in m["fragments"]}

    # -- the tests -------------------------------------------------------------------------

    def test_1_put_at_one_site_read_at_the_other(self):
        """Both ways, and each read takes all of its own site's fragments first."""
        for i, (put_at, read_at) in enumerate([("site-1", "site-2"), ("site-2", "site-1")] * 3):
            data = random_bytes(2 * MiB + 17 * i, seed=1300 + i)
            key = self.put(put_at, data, "x%d" % i)
            lay = self.layout(key)
            own = [c for c in lay.values() if site_of(c) == read_at]
            before = self.gets()
            self.read(read_at, key, data, "(put at %s)" % put_at)
            grown = self.grown(before)
            # every fragment of the reading gateway's site was read, once; the rest of the k
            # from the other sites
            for c in own:
                self.assertEqual(grown.get(c), 1, "%s gateway, layout %r: GETs %r" % (read_at, lay, grown))
            self.assertEqual(sum(grown.values()), K, "layout %r: GETs %r" % (lay, grown))

    def rtts(self, url):
        """The gateway's measured latencies {container: microseconds}."""
        pre = 'dyno_gateway_container_rtt_microseconds{container="'
        return {k[len(pre):-2]: v for k, v in self.fab.metrics(url).items() if k.startswith(pre)}

    def index_order_reads(self, lay, site):
        """What a read at site takes when every container answers alike: its own site's
        fragments, then data before parity (index order) elsewhere."""
        own = [i for i, c in lay.items() if site_of(c) == site]
        return own + sorted(i for i in lay if i not in own)[:K - len(own)]

    def test_2_slow_site_avoided_by_measured_latency(self):
        f = self.fab
        slow = sorted(c for c in self.direct if site_of(c) == "site-2")
        fast = sorted(c for c in self.direct if site_of(c) == "site-3")
        # a fresh site-1 gateway, every container near: it reads (and so measures) its own
        # site, then the data fragments elsewhere
        gw1 = self.gw["site-1w"] = f.start_gateway("gw-site1-wan", extra={"site": "site-1"})
        objs = {}
        for i in range(12):
            data = random_bytes(1 * MiB + 13 * i, seed=2600 + i)
            key = self.put("site-1", data, "w%d" % i)
            objs[key] = (data, self.layout(key))
            self.read("site-1w", key, data, "(all near)")
        # objects a read at site-1 would take partly from site-2 by index order, while site-1
        # and site-3 hold k of their fragments (always, at most m = 2 a site)
        tests = [k for k, (_, lay) in objs.items()
                 if any(site_of(lay[i]) == "site-2" for i in self.index_order_reads(lay, "site-1"))]
        self.assertTrue(tests, "no object with index-order reads on site-2: %r" % objs)

        # site-2's containers now at the far end of a 40 ms link
        for cid in slow:
            port = int(urllib.parse.urlsplit(self.direct[cid]).port)
            purl = "http://127.0.0.1:%d" % self.px.add_link(cid, "127.0.0.1", port, delay_ms=DELAY_MS)
            f.kill("container-" + cid)
            f.restart("container-" + cid, extra_args=["--url", purl])
            f.wait_containers(lambda cs, cid=cid, purl=purl: any(
                c["id"] == cid and c.get("url") == purl and c.get("state") == "online" for c in cs),
                what="%s online behind the proxy" % cid)

        def crossed():
            return sum(self.px.stats(c)["bytes"] for c in slow)

        def read_round(what):
            """Reads every test object at site-1; the site-2 fragment GETs it took."""
            before = self.gets(slow)
            for key in tests:
                data, _ = objs[key]
                self.read("site-1w", key, data, what)
            return sum(self.grown(before).values())

        # the gateway learns: the reads that cross the link measure it; once the site-2
        # containers' low floor from before the proxy has aged out (about 10 s, so that one
        # slow answer of a near container does not make it far), the reads take site-3's
        # fragments instead (parity and a decode where site-2 had data). Two rounds in a row
        # without a site-2 read, within 60 s.
        learned, clean, deadline = False, 0, time.monotonic() + 60
        while time.monotonic() < deadline:
            clean = clean + 1 if read_round("(learning site-2 is slow)") == 0 else 0
            if clean == 2:
                learned = True
                break
        rt = self.rtts(gw1)
        self.assertTrue(learned, "reads at site-1 keep going to site-2; latencies %r" % rt)
        self.assertGreater(crossed(), 0, "the reads never crossed the slow link")
        # both site-3 containers measured by now (the ones not measured go with the near
        # ones, before those measured slow), both below the site-2 ones read across the link
        self.assertTrue(set(fast) <= set(rt), rt)
        across = [c for c in slow if self.px.stats(c)["bytes"] > 0 and c in rt]
        self.assertTrue(across, rt)
        self.assertGreater(min(rt[c] for c in across), max(rt[c] for c in fast), rt)
        # and again, counted by the containers and by the link
        before, sent = self.gets(), crossed()
        self.assertEqual(read_round("(site-2 slow)"), 0, "latencies before %r, after %r, GETs %r"
                         % (rt, self.rtts(gw1), self.grown(before)))
        grown = self.grown(before)
        self.assertEqual(sum(grown.values()), K * len(tests), grown)
        self.assertTrue(set(grown) <= {c for c in self.direct if site_of(c) != "site-2"}, grown)
        self.assertEqual(crossed(), sent, "bytes crossed the slow link")

        # site-3 gone: the reads fall back to site-2 within the request
        for cid in fast:
            f.kill("container-" + cid)
        for key in tests[:3]:
            data, _ = objs[key]
            self.read("site-1w", key, data, "(site-3 down)")
        self.assertGreater(crossed(), sent)


if __name__ == "__main__":
    unittest.main()
