"""Catalogs (issue 4): stable pagination under concurrent puts, nested catalogs with info
counts and bytes, the catalog list with relations, shares and subscriptions, and delete
(refused when not empty unless recursive; recursive evicts and emits the events)."""

import json
import threading
import unittest
from concurrent.futures import ThreadPoolExecutor

from fabric import FabricCase, quote_seg
from test_events import MqttSub, is_event, new_user, require_mosquitto_clients, sub_ready

JSON = {"Content-Type": "application/json"}


class CatalogsTest(FabricCase):
    CONTAINERS = 5

    @classmethod
    def setUpClass(cls):
        require_mosquitto_clients()
        super().setUpClass()

    def put(self, catalog, name, data=b"x", token=None):
        r = self.fab.put_bytes(catalog, data, name=name, token=token or self.fab.token)
        self.assertEqual(r.status, 201, r.body)
        return r.json()

    def page(self, catalog, after, limit):
        q = "?limit=%d" % limit + ("" if after is None else "&after=" + quote_seg(after))
        r = self.fab.http("GET", "/v1/catalogs/%s/~/objects%s" % (catalog, q))
        self.assertEqual(r.status, 200, r.body)
        return r.json()

    def test_pagination_is_stable_under_puts(self):
        f = self.fab
        f.create_catalog("admin/big")
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda i: self.put("admin/big", "o-%04d" % i, b"%d" % i), range(1000)))
        before = set("o-%04d" % i for i in range(1000))
        stop = threading.Event()
        added = []

        def writer():
            i = 0
            while not stop.is_set():
                # names that sort before, between and after the old ones
                for prefix in ("a-", "o-%04d-" % (i * 7 % 1000), "z-"):
                    name = "%s%05d" % (prefix, i)
                    r = f.put_bytes("admin/big", b"new", name=name)
                    if r.status == 201:
                        added.append(name)
                i += 1

        t = threading.Thread(target=writer)
        t.start()
        seen = []
        try:
            after = None
            for _ in range(10000):
                doc = self.page("admin/big", after, 100)
                self.assertLessEqual(len(doc["objects"]), 100)
                seen += [o["name"] for o in doc["objects"]]
                after = doc.get("next")
                if not after:
                    break
        finally:
            stop.set()
            t.join()
        self.assertTrue(added, "the writer put nothing during the listing")
        counts = {}
        for n in seen:
            counts[n] = counts.get(n, 0) + 1
        self.assertEqual([n for n in before if counts.get(n) != 1], [], "old objects not listed exactly once")
        self.assertEqual([n for n, c in counts.items() if c > 1], [], "objects listed twice")
        self.assertEqual(seen, sorted(seen), "not in name order")

    def test_nested_info_and_list(self):
        f = self.fab
        for c in ("admin/n", "admin/n/a", "admin/n/a/b"):
            f.create_catalog(c)
        self.put("admin/n", "one", b"12345")
        self.put("admin/n/a", "two", b"1234567890")
        self.put("admin/n/a", "three", b"123")
        info = f.http("GET", "/v1/catalogs/admin/n/a").json()
        self.assertEqual((info["objects"], info["bytes"]), (2, 13))
        info = f.http("GET", "/v1/catalogs/admin/n").json()
        self.assertEqual((info["objects"], info["bytes"]), (1, 5))
        info = f.http("GET", "/v1/catalogs/admin/n/a/b").json()
        self.assertEqual(info["objects"], 0)
        cats = {c["catalog"]: c for c in f.http("GET", "/v1/catalogs").json()["catalogs"]}
        for c in ("admin/n", "admin/n/a", "admin/n/a/b"):
            self.assertEqual(cats[c]["relation"], "owner")

    def test_shares_and_subscriptions(self):
        f = self.fab
        alice = new_user(f, "alice2")
        bob = new_user(f, "bob2")
        f.create_catalog("alice2/data", token=alice)
        self.put("alice2/data", "d1", b"data", token=alice)
        self.assertEqual(f.http("GET", "/v1/catalogs/alice2/data", token=bob).status, 403)
        r = f.http("POST", "/v1/catalogs/alice2/data/~/shares", body=json.dumps({"user": "bob2", "access": "read"}),
                   headers=JSON, token=bob)
        self.assertEqual(r.status, 403, "a stranger shared someone else's catalog")
        r = f.http("POST", "/v1/catalogs/alice2/data/~/shares", body=json.dumps({"user": "bob2", "access": "read"}),
                   headers=JSON, token=alice)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(f.http("GET", "/v1/catalogs/alice2/data", token=bob).status, 200)
        self.assertEqual(f.put_bytes("alice2/data", b"no", name="x", token=bob).status, 403)
        r = f.http("POST", "/v1/catalogs/alice2/data/~/subscription", token=bob)
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(r.json()["subscribed"])
        cats = {c["catalog"]: c for c in f.http("GET", "/v1/catalogs", token=bob).json()["catalogs"]}
        self.assertEqual(cats["alice2/data"]["relation"], "shared")
        r = f.http("DELETE", "/v1/catalogs/alice2/data/~/shares/bob2", token=alice)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(f.http("GET", "/v1/catalogs/alice2/data", token=bob).status, 403)
        r = f.http("DELETE", "/v1/catalogs/alice2/data/~/subscription", token=bob)
        self.assertEqual(r.status, 200, r.body)
        r = f.http("POST", "/v1/catalogs/alice2/data/~/shares", body=json.dumps({"access": "read"}),
                   headers=JSON, token=alice)
        self.assertEqual(r.status, 400)

    def test_delete(self):
        f = self.fab
        f.create_catalog("admin/del")
        f.create_catalog("admin/del/sub")
        f.create_catalog("admin/empty")
        keys = [self.put("admin/del", "k%d" % i)["key"] for i in range(3)]
        keys.append(self.put("admin/del/sub", "deep")["key"])
        self.assertJsonError(f.http("DELETE", "/v1/catalogs/admin/del/sub"), 409, "conflict")
        self.assertJsonError(f.http("DELETE", "/v1/catalogs/admin/del"), 409, "conflict")
        self.assertEqual(f.http("GET", "/v1/objects/" + keys[0]).status, 200, "a refused delete evicted")
        r = f.http("DELETE", "/v1/catalogs/admin/empty")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(f.http("GET", "/v1/catalogs/admin/empty").status, 404)

        sub = MqttSub(f, "admin", f.token, ["dyno/v1/events/admin/del", "dyno/v1/events/admin/del/#"])
        try:
            sub_ready(self, f, sub, "admin/del")
            r = f.http("DELETE", "/v1/catalogs/admin/del?recursive=1")
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(set(r.json()["deleted"]), {"admin/del", "admin/del/sub"})
            for k in keys:
                self.assertEqual(f.http("GET", "/v1/objects/" + k).status, 404)
                self.assertIsNotNone(sub.wait_for(is_event("object.evicted", k)), "no object.evicted for " + k)
        finally:
            sub.close()
        self.assertEqual(f.http("GET", "/v1/catalogs/admin/del").status, 404)
        self.assertEqual(f.http("GET", "/v1/catalogs/admin/del/sub").status, 404)
        # the CLI
        f.create_catalog("admin/cli")
        self.put("admin/cli", "c1")
        self.assertEqual(f.cli("catalog", "rm", "admin/cli", check=False).returncode, 1)
        f.cli("catalog", "rm", "admin/cli", "--recursive")


if __name__ == "__main__":
    unittest.main()
