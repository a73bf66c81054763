"""Issue 13 acceptance 2: sites as a first-class idea, and a whole site lost (6 containers, and
9 in SiteLostNine).

`dynostore up --sites 3` with 6 containers lays them round robin over site-1..site-3 (two
each); `GET /v1/containers`, `dynostore status` and each fragment of an object's meta show the
site. Placement puts at most m fragments of an object on one site (docs/architecture.md,
"Placement"), so killing every process of one site loses nothing: every object reads back.

Which resilience gives full redundancy after the loss: k=2, m=2 (n = 4). Two sites of two
containers are left, and 2 + 2 = n under the cap of m = 2 a site, so repair rebuilds every
lost fragment there. The default k=3, m=2 (n = 5) spreads 2+2+1 while all three sites are up;
with one lost, the two left can hold only 4 of its 5 fragments under the cap: a new put is
refused (503 naming the rule) and repair rebuilds what fits (4 fragments, 2 a site), leaving
the object degraded until a site comes back. Small objects (m + 1 = 3 replicas) fit either way.

When the lost site comes back (its containers restarted on their folders), the degraded 3+2
objects get their fifth fragment again, and the copies the returned containers still hold of
fragments rebuilt elsewhere meanwhile are garbage, deleted by GC: in the end every object has
its n fragments, at most m a site, and every fragment file on any disk is one metadata lists.
"""

import http.client
import json
import time
import unittest
import urllib.parse

from fabric import KiB, MiB, FabricCase, placement_problems, random_bytes, sha256_bytes

GRACE = 5
HEAL_TIMEOUT = 180
SITES = 3
CONTAINERS = 6
# small (replicated), one stripe, several stripes
SIZES = [0, 1, 3000, 64 * KiB + 1, 1 * MiB + 7, 5 * MiB + 3]


def site_of(cid):
    """Round robin: c1 site-1, c2 site-2, c3 site-3, c4 site-1, ..."""
    return "site-%d" % ((int(cid[1:]) - 1) % SITES + 1)


def n_of(m):
    return m["m"] + 1 if m.get("replica") else m["k"] + m["m"]


def live_frags(m, dead):
    return [f for f in m.get("fragments") or []
            if f.get("state", "ok") == "ok" and f.get("online", True) and f["container"] not in dead]


def per_site(frags):
    out = {}
    for f in frags:
        out[f["site"]] = out.get(f["site"], 0) + 1
    return out


class SiteLost(FabricCase):
    CONTAINERS = CONTAINERS
    UP_ARGS = ("--sites", str(SITES), "--repair-grace", str(GRACE))

    def meta(self, key):
        r = self.fab.http("GET", "/v1/objects/%s/meta" % key)
        self.assertEqual(r.status, 200, "meta %s: %d %r" % (key, r.status, r.body[:300]))
        return r.json()

    def put(self, cat, data, name):
        r = self.fab.put_bytes(cat, data, name=name)
        self.assertEqual(r.status, 201, "put %s/%s: %d %r" % (cat, name, r.status, r.body[:300]))
        return r.json()["key"]

    def get_same(self, key, data, what):
        r = self.fab.get_object(key)
        self.assertEqual(r.status, 200, "get %s %s: %d %r" % (what, key, r.status, r.body[:300]))
        self.assertTrue(r.body == data, "get %s %s: WRONG BYTES (%d B, sha %s, want %d B %s)"
                        % (what, key, len(r.body), sha256_bytes(r.body), len(data),
                           sha256_bytes(data)))

    def assertSpread(self, key, dead=()):
        """Every fragment shows its container's site, and no site holds more than m (unless
        the object's catalog is "site_spread": "relaxed": placement may then put more on one
        site, as it did with 9 containers)."""
        m = self.meta(key)
        for fr in m["fragments"]:
            self.assertEqual(fr.get("site"), site_of(fr["container"]), "fragment site: %r" % m)
        if m.get("site_spread") == "relaxed":
            return m
        counts = per_site(live_frags(m, dead))
        self.assertLessEqual(max(counts.values()), m["m"],
                             "more than m=%d fragments on one site: %r in %r" % (m["m"], counts, m))
        return m

    def test_1_sites_are_shown(self):
        f = self.fab
        self.assertEqual(f.fabric.get("sites"), SITES, f.fabric)
        cs = f.containers_info()
        self.assertEqual(sorted((c["id"] for c in cs), key=lambda i: int(i[1:])),
                         ["c%d" % i for i in range(1, self.CONTAINERS + 1)])
        for c in cs:
            self.assertEqual(c.get("site"), site_of(c["id"]), c)
        out = f.cli("status").stdout
        for c in cs:
            line = [ln for ln in out.splitlines() if ln.split()[:1] == [c["id"]]]
            self.assertTrue(line and site_of(c["id"]) in line[0], "status has no site for %s:\n%s"
                            % (c["id"], out))

    def test_2_sites_flag_is_checked(self):
        # more sites than containers is a usage error (exit 2) before anything starts
        for bad in ("0", "7", "-1", "3x"):
            r = self.fab.cli("up", "--data", self.fab.work + "/never", "--containers", "6",
                             "--sites", bad, check=False, settings=False, timeout=60)
            self.assertEqual(r.returncode, 2, "--sites %s: %d %s" % (bad, r.returncode, r.stderr))

    def test_3_a_site_lost(self):
        f = self.fab
        f.create_catalog("admin/sites22", {"resilience": {"k": 2, "m": 2}})
        f.create_catalog("admin/sites32")  # the default, k=3 m=2
        # the same, but its policy lets placement and repair exceed m a site when it must
        r = f.create_catalog("admin/sites32r", {"site_spread": "relaxed"})
        self.assertEqual(r.json().get("site_spread"), "relaxed", r.body)
        info = f.http("GET", "/v1/catalogs/admin/sites32r/~").json()
        self.assertEqual(info.get("site_spread"), "relaxed", info)
        info = f.http("GET", "/v1/catalogs/admin/sites32/~").json()
        self.assertEqual(info.get("site_spread"), "strict", info)
        r = f.http("PUT", "/v1/catalogs/admin/sites-bad", body='{"site_spread":"loose"}')
        self.assertJsonError(r, 400, "bad_request", "site_spread loose")
        self.assertEqual(f.http("GET", "/v1/catalogs/admin/sites-bad/~").status, 404)
        objs = {}  # key -> (catalog, data)
        for c, cat in enumerate(("admin/sites22", "admin/sites32", "admin/sites32r")):
            for i, size in enumerate(SIZES):
                data = random_bytes(size, seed=1300 + i + 50 * c)
                objs[self.put(cat, data, "o%d" % i)] = (cat, data)
        held = {}  # site -> fragments of all objects
        for key in objs:
            m = self.assertSpread(key)
            self.assertEqual(len(m["fragments"]), n_of(m), m)
            for fr in m["fragments"]:
                held[fr["site"]] = held.get(fr["site"], 0) + 1

        # k=5, m=1 would need 6 sites of one fragment each: refused with every container up,
        # with a message naming the rule, and nothing listed
        before = f.list_catalog("admin/sites22")
        r = f.put_bytes("admin/sites22", random_bytes(300 * KiB, seed=6), name="too-few-sites",
                        headers={"X-Dyno-Resilience": "5,1"})
        err = self.assertJsonError(r, 503, "unavailable", "put 5+1 on three sites")
        self.assertIn("site", err["message"], err)
        self.assertEqual(f.list_catalog("admin/sites22"), before)
        # the relaxed catalog takes it (its objects then survive a site loss only by luck)
        relaxed = random_bytes(300 * KiB, seed=6)
        r = f.put_bytes("admin/sites32r", relaxed, name="five-plus-one",
                        headers={"X-Dyno-Resilience": "5,1"})
        self.assertEqual(r.status, 201, r.body)
        relaxed_key = r.json()["key"]
        self.get_same(relaxed_key, relaxed, "5+1 relaxed")
        f.http("DELETE", "/v1/objects/" + relaxed_key)

        # every process of the site holding the most fragments dies
        lost = max(sorted(held), key=held.get)
        dead = sorted(c for c in f.container_ids() if site_of(c) == lost)
        self.assertEqual(len(dead), self.CONTAINERS // SITES)
        for cid in dead:
            f.kill("container-" + cid)
        for key, (cat, data) in objs.items():
            self.get_same(key, data, "with %s lost" % lost)

        # the default 3+2 cannot have its 5 fragments on the 4 containers left: refused,
        # clearly, leaving nothing behind; a small one (3 replicas) and a 2+2 one still go in
        f.wait_containers(lambda cs: sum(1 for c in cs if c.get("state") == "online")
                          == self.CONTAINERS - len(dead), what="the lost site seen offline")
        before = f.list_catalog("admin/sites32")
        r = f.put_bytes("admin/sites32", random_bytes(200 * KiB, seed=7), name="refused")
        err = self.assertJsonError(r, 503, "unavailable", "put 3+2 with a site lost")
        if self.CONTAINERS - len(dead) >= 5:  # enough containers: refused by the site rule,
            self.assertIn("site", err["message"], err)  # which the relaxed catalog waives
            big = random_bytes(200 * KiB, seed=10)
            objs[self.put("admin/sites32r", big, "relaxed-after")] = ("admin/sites32r", big)
        self.assertEqual(f.list_catalog("admin/sites32"), before)
        small = random_bytes(100, seed=8)
        objs[self.put("admin/sites32", small, "small-after")] = ("admin/sites32", small)
        big = random_bytes(2 * MiB + 1, seed=9)
        objs[self.put("admin/sites22", big, "big-after")] = ("admin/sites22", big)

        # repair: what the remaining sites can hold under the cap of m a site
        live_sites = sorted({site_of(c) for c in f.container_ids() if c not in dead})
        deadline = time.monotonic() + HEAL_TIMEOUT
        pending = dict(objs)
        while pending and time.monotonic() < deadline:
            for key in list(pending):
                m = self.meta(key)
                cap = sum(min(m["m"], self.CONTAINERS // SITES) for _ in live_sites)
                if m.get("site_spread") == "relaxed":
                    cap = len(live_sites) * (self.CONTAINERS // SITES)
                want = min(n_of(m), cap)
                if len(live_frags(m, dead)) == want:
                    del pending[key]
            time.sleep(0.5)
        self.assertFalse(pending, "not repaired within %d s: %r"
                         % (HEAL_TIMEOUT, [self.meta(k) for k in list(pending)[:2]]))
        # a little longer: nothing goes over the cap later
        time.sleep(2 * GRACE)
        for key, (cat, data) in objs.items():
            if cat == "admin/sites32r":
                m = self.meta(key)
                self.assertEqual(m.get("site_spread"), "relaxed", m)
                want = min(n_of(m), self.CONTAINERS - len(dead))
                self.assertEqual(len(live_frags(m, dead)), want, m)
                self.get_same(key, data, "after repair (relaxed)")
                continue
            m = self.assertSpread(key, dead)
            self.assertEqual(m.get("site_spread"), "strict", m)
            live = live_frags(m, dead)
            if n_of(m) <= 2 * m["m"]:  # fits on the two sites left: full redundancy
                self.assertEqual(len(live), n_of(m), m)
                self.assertEqual(m.get("state"), "committed", m)
            else:  # 3+2 erasure-coded: 4 of 5, two a site, still degraded
                self.assertEqual(len(live), 4, m)
                self.assertEqual(m.get("state"), "degraded", m)
            self.get_same(key, data, "after repair")

        # the site comes back (its containers restarted on their old folders, with the
        # fragments they held when they died): nothing breaks; the 3+2 objects get their
        # fifth fragment again, every object is whole under the cap of m a site, and the
        # returned containers' stale copies (rebuilt elsewhere meanwhile) are garbage that GC
        # deletes: in the end every fragment file on any disk is one metadata lists
        for cid in dead:
            f.restart("container-" + cid)
        f.wait_containers_online(self.CONTAINERS)
        cats = ("admin/sites22", "admin/sites32", "admin/sites32r")
        deadline = time.monotonic() + HEAL_TIMEOUT
        left = ["not checked yet"]
        while left and time.monotonic() < deadline:
            left = []
            for key in objs:
                m = self.meta(key)
                if len(live_frags(m, ())) != n_of(m) or m.get("state") != "committed":
                    left.append("%s: %s, %d of %d" % (key, m.get("state"), len(live_frags(m, ())), n_of(m)))
            if not left:
                left = placement_problems(f, cats)
            if left:
                time.sleep(1)
        self.assertFalse(left, "after %s came back, within %d s: %r" % (lost, HEAL_TIMEOUT, left[:5]))
        for key, (cat, data) in objs.items():
            self.assertSpread(key)
            self.get_same(key, data, "with %s back" % lost)
        garbage = {c["id"]: c.get("garbage") for c in f.containers_info()}
        self.assertEqual(set(garbage.values()), {0}, garbage)


class SiteLostNine(SiteLost):
    """The same with three containers a site: there placement has a choice to make (after one
    fragment on each site, two more could go to one site), and repair too (six containers are
    left for a 3+2 object: a fifth fragment would fit a container, but not the rule)."""
    CONTAINERS = 9


def request(url, method, path, token, body=None):
    """One request to another gateway than the fabric's own; (status, body bytes)."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    try:
        c.request(method, path, body=body, headers={"Authorization": "Bearer " + token})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class SiteReads(FabricCase):
    """Issue 13 acceptance 3: a second gateway at site-2 (config key "site"): an object put
    through one gateway reads back through the other, and the site-2 gateway fetches from
    site-2's containers first (their GET counters), where the gateway without a site reads
    the data fragments wherever they are."""
    CONTAINERS = CONTAINERS
    UP_ARGS = ("--sites", str(SITES), "--backend", "site-3=memory,c6=posix")

    def gets(self, urls):
        return {cid: self.fab.metrics(u).get("dyno_container_gets_total", 0) for cid, u in urls.items()}

    def test_backend_by_site(self):
        """--backend site-3=memory: the containers of site-3 store in memory, but c6 (also
        site-3) is named posix, which wins; a site beyond --sites is a usage error."""
        want = {"c1": "posix", "c2": "posix", "c3": "memory", "c4": "posix", "c5": "posix", "c6": "posix"}
        got = {c["id"]: c.get("backend") for c in self.fab.containers_info()}
        self.assertEqual(got, want)
        r = self.fab.cli("up", "--data", self.fab.work + "/never", "--containers", "6", "--sites", "3",
                         "--backend", "site-4=memory", check=False, settings=False, timeout=60)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("site-S=NAME", r.stderr)

    def test_reads_prefer_the_gateways_site(self):
        f = self.fab
        gw2 = f.start_gateway("gw-site2", extra={"site": "site-2"})
        f.create_catalog("admin/reads", {"resilience": {"k": 2, "m": 2}})
        urls = {c["id"]: c["url"] for c in f.containers_info()}
        site2 = {cid: u for cid, u in urls.items() if site_of(cid) == "site-2"}
        # an object whose site-2 fragments are all parity: the fabric's gateway (no site)
        # reads data fragments 0 and 1 elsewhere; the site-2 gateway starts at site-2
        chosen = None
        for i in range(40):
            data = random_bytes(1 * MiB + 11 * i, seed=4000 + i)
            st, body = request(gw2, "POST", "/v1/catalogs/admin/reads/~/objects?name=r%d" % i, f.token,
                               data)
            self.assertEqual(st, 201, body)
            key = json.loads(body)["key"]
            st, got = request(f.gateway, "GET", "/v1/objects/" + key, f.token)
            self.assertEqual((st, got == data), (200, True), "put at site-2, read at the core")
            frs = self.meta(key)["fragments"]
            mine = [fr["index"] for fr in frs if fr["site"] == "site-2"]
            if mine and min(mine) >= 2:
                chosen = (key, data, len(mine))
                break
        self.assertIsNotNone(chosen, "no object with only parity fragments on site-2 in 40 puts")
        key, data, nlocal = chosen
        before = self.gets(site2)
        st, got = request(f.gateway, "GET", "/v1/objects/" + key, f.token)
        self.assertEqual((st, got == data), (200, True))
        self.assertEqual(self.gets(site2), before, "the siteless gateway read parity from site-2")
        st, got = request(gw2, "GET", "/v1/objects/" + key, f.token)
        self.assertEqual((st, got == data), (200, True), "read at site-2 (decoded from parity)")
        after = self.gets(site2)
        self.assertEqual(sum(after.values()) - sum(before.values()), nlocal,
                         "site-2 gateway: %r -> %r" % (before, after))
        # falls back within the request: site-2's containers gone, the read still works
        for cid in site2:
            f.kill("container-" + cid)
        st, got = request(gw2, "GET", "/v1/objects/" + key, f.token)
        self.assertEqual((st, got == data), (200, True), "read at site-2 with its containers down")

    def meta(self, key):
        r = self.fab.http("GET", "/v1/objects/%s/meta" % key)
        self.assertEqual(r.status, 200, r.body)
        return r.json()


if __name__ == "__main__":
    unittest.main()
