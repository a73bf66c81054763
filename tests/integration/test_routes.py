"""The REST route grammar is unambiguous (issue 9, class 8; docs/protocol.md §9).

A catalog's sub-resources follow the segment "~", which no catalog name can contain, so a
catalog named like a sub-resource ("alice/a/shares/bob", "alice/a/objects") is a catalog like
any other: DELETE /v1/catalogs/alice/a/shares/bob deletes that catalog and leaves the share of
bob on alice/a alone, and DELETE /v1/catalogs/alice/a/~/shares/bob removes the share and leaves
the catalog alone. Each sub-resource is exercised through the real gateway, and through the C
CLI and the Python client, which build their paths with the same grammar."""

import json
import os
import sys
import unittest

from fabric import FabricCase, src_dir
from test_events import new_user, token_file

JSON = {"Content-Type": "application/json"}

PYDIR = os.path.join(src_dir(), "client", "python")
if PYDIR not in sys.path:
    sys.path.insert(0, os.path.abspath(PYDIR))


class RouteGrammar(FabricCase):
    CONTAINERS = 5

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        f = cls.fab
        cls.alice = new_user(f, "alice")
        cls.bob = new_user(f, "bob")
        # alice/a and, inside it, catalogs whose last segment is a sub-resource's name
        for c in ("alice/a", "alice/a/shares/bob", "alice/a/shares", "alice/a/objects",
                  "alice/a/subscription", "alice/objects"):
            f.create_catalog(c, token=cls.alice)

    def share(self, catalog, user, access="read", token=None):
        return self.fab.http("POST", "/v1/catalogs/%s/~/shares" % catalog, token=token or self.alice,
                             body=json.dumps({"user": user, "access": access}), headers=JSON)

    def shares_of(self, catalog):
        r = self.fab.http("GET", "/v1/catalogs/" + catalog, token=self.alice)
        self.assertEqual(r.status, 200, r.body)
        return sorted(s["principal"] for s in r.json().get("shares", []))

    def exists(self, catalog):
        return self.fab.http("GET", "/v1/catalogs/" + catalog, token=self.alice).status == 200

    def test_delete_of_a_catalog_named_like_a_share_is_the_catalog(self):
        f = self.fab
        self.assertEqual(self.share("alice/a", "bob").status, 200)
        self.assertEqual(self.shares_of("alice/a"), ["bob"])
        # the catalog alice/a/shares/bob, not the share
        r = f.http("GET", "/v1/catalogs/alice/a/shares/bob", token=self.alice)
        self.assertEqual((r.status, r.json().get("catalog")), (200, "alice/a/shares/bob"), r.body)
        r = f.http("DELETE", "/v1/catalogs/alice/a/shares/bob", token=self.alice)
        self.assertEqual(r.status, 200, r.body)
        self.assertFalse(self.exists("alice/a/shares/bob"), "the catalog alice/a/shares/bob is still there")
        self.assertEqual(self.shares_of("alice/a"), ["bob"], "deleting a catalog removed a share")
        self.assertEqual(f.http("GET", "/v1/catalogs/alice/a", token=self.bob).status, 200)
        # the share, not the catalog
        f.create_catalog("alice/a/shares/bob", token=self.alice)
        r = f.http("DELETE", "/v1/catalogs/alice/a/~/shares/bob", token=self.alice)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.shares_of("alice/a"), [])
        self.assertTrue(self.exists("alice/a/shares/bob"), "removing a share deleted a catalog")
        self.assertTrue(self.exists("alice/a/shares"))
        self.assertEqual(f.http("GET", "/v1/catalogs/alice/a", token=self.bob).status, 403)
        # a share that is not there
        r = f.http("DELETE", "/v1/catalogs/alice/a/~/shares/bob", token=self.alice)
        self.assertJsonError(r, 404, "not_found")

    def test_objects_of_a_catalog_named_objects(self):
        f = self.fab
        r = f.http("POST", "/v1/catalogs/alice/a/objects/~/objects?name=n1", body=b"in a/objects",
                   token=self.alice)
        self.assertEqual(r.status, 201, r.body)
        key = r.json()["key"]
        meta = f.http("GET", "/v1/objects/%s/meta" % key, token=self.alice).json()
        self.assertEqual(meta["catalog"], "alice/a/objects")
        names = lambda c: [o["name"] for o in f.list_catalog(c, token=self.alice)]
        self.assertEqual(names("alice/a/objects"), ["n1"])
        self.assertEqual(names("alice/a"), [])
        # GET without "~" is the catalog's info, not a listing
        r = f.http("GET", "/v1/catalogs/alice/a/objects", token=self.alice)
        self.assertEqual((r.status, r.json().get("catalog"), r.json().get("objects")),
                         (200, "alice/a/objects", 1), r.body)
        r = f.http("GET", "/v1/catalogs/alice/objects", token=self.alice)
        self.assertEqual((r.status, r.json().get("catalog")), (200, "alice/objects"), r.body)
        # an old-style put (no "~") names a catalog, where a POST is not allowed
        r = f.http("POST", "/v1/catalogs/alice/a/objects?name=n2", body=b"x", token=self.alice)
        self.assertJsonError(r, 405, "method_not_allowed")
        self.assertEqual(names("alice/a"), [])
        self.assertEqual(f.http("DELETE", "/v1/objects/" + key, token=self.alice).status, 204)

    def test_subscription_and_a_catalog_named_subscription(self):
        f = self.fab
        self.assertEqual(self.share("alice/a", "bob").status, 200)
        r = f.http("POST", "/v1/catalogs/alice/a/~/subscription", token=self.bob)
        self.assertEqual((r.status, r.json().get("subscribed")), (200, True), r.body)
        subs = [c["catalog"] for c in f.http("GET", "/v1/catalogs", token=self.bob).json()["catalogs"]]
        self.assertIn("alice/a", subs)
        r = f.http("DELETE", "/v1/catalogs/alice/a/~/subscription", token=self.bob)
        self.assertEqual((r.status, r.json().get("subscribed")), (200, False), r.body)
        self.assertTrue(self.exists("alice/a/subscription"))
        # without "~" it is the catalog alice/a/subscription, which bob may not delete
        r = f.http("DELETE", "/v1/catalogs/alice/a/subscription", token=self.bob)
        self.assertJsonError(r, (403, 404))
        self.assertTrue(self.exists("alice/a/subscription"))
        f.http("DELETE", "/v1/catalogs/alice/a/~/shares/bob", token=self.alice)

    def test_unknown_sub_resources_and_methods(self):
        f = self.fab
        for path in ("/v1/catalogs/alice/a/~", "/v1/catalogs/alice/a/~/nothing",
                     "/v1/catalogs/alice/a/~/objects/x", "/v1/catalogs/alice/a/~/shares/bob/x",
                     "/v1/catalogs/alice/a/~/~/objects"):
            with self.subTest(path=path):
                self.assertJsonError(f.http("GET", path, token=self.alice), 404, "not_found")
        for path in ("/v1/catalogs/alice/~/objects", "/v1/catalogs/~/objects", "/v1/catalogs/alice/a%2Fb",
                     "/v1/catalogs/alice/a/~/shares/b%20b"):
            with self.subTest(path=path):
                self.assertJsonError(f.http("DELETE", path, token=self.alice), 400, "bad_request")
        for method, path in (("PUT", "/v1/catalogs/alice/a/~/objects"), ("DELETE", "/v1/catalogs/alice/a/~/shares"),
                             ("GET", "/v1/catalogs/alice/a/~/shares/bob"),
                             ("GET", "/v1/catalogs/alice/a/~/subscription"),
                             ("POST", "/v1/catalogs/alice/a/shares")):
            with self.subTest(method=method, path=path):
                self.assertJsonError(f.http(method, path, token=self.alice, body=b"{}" if method != "GET" else None,
                                            headers=JSON), 405, "method_not_allowed")
        self.assertEqual(self.shares_of("alice/a"), [])

    def test_clients_use_the_grammar(self):
        """The CLI (libdynostore) and the Python client share and unshare through ~/shares."""
        f = self.fab
        from dynostore.client import Client
        py = Client(f.gateway)
        try:
            py.share_catalog("alice/a", self.alice, user="bob", access="write")
            self.assertEqual(self.shares_of("alice/a"), ["bob"])
            py.unshare_catalog("alice/a", self.alice, user="bob")
            self.assertEqual(self.shares_of("alice/a"), [])
            self.assertTrue(self.exists("alice/a/shares"))
            key = py.put(b"py", self.alice, "alice/a/shares", name="p")
            self.assertEqual([o["name"] for o in py.list_objects("alice/a/shares", self.alice)], ["p"])
            py.evict(key, self.alice)
            py.share_catalog("alice/a", self.alice, user="bob")
            self.assertTrue(py.subscribe_catalog("alice/a", self.bob)["subscribed"])
            self.assertFalse(py.unsubscribe_catalog("alice/a", self.bob)["subscribed"])
            py.unshare_catalog("alice/a", self.alice, user="bob")
            f.create_catalog("alice/a/subscription/x", token=self.alice)
            py.delete_catalog("alice/a/subscription/x", self.alice)
            self.assertFalse(self.exists("alice/a/subscription/x"))
            self.assertTrue(self.exists("alice/a/subscription"))
        finally:
            py.close()
        tf = token_file(f, "alice", self.alice)
        cli = lambda *a, **kw: f.cli("--gateway", f.gateway, "--token-file", tf, *a, settings=False, **kw)
        cli("catalog", "share", "alice/a", "--user", "bob", "--access", "read")
        self.assertEqual(self.shares_of("alice/a"), ["bob"])
        cli("catalog", "unshare", "alice/a", "--user", "bob")
        self.assertEqual(self.shares_of("alice/a"), [])
        self.assertTrue(self.exists("alice/a/shares"))
        cp = cli("catalog", "unshare", "alice/a", "--user", "bob", check=False)
        self.assertNotEqual(cp.returncode, 0, "unshare of a share that is not there succeeded")


if __name__ == "__main__":
    unittest.main()
