"""The REST route grammar: SPEC §4's paths and the "~" form, one route each (issue 9, class 8;
docs/protocol.md §9).

Two forms reach a catalog's sub-resources. The "~" form (/v1/catalogs/alice/a/~/shares/bob)
is canonical: the clients send it and it reaches every catalog. SPEC §4's form
(/v1/catalogs/alice/a/shares/bob), which users and scripts rely on, works too: "objects",
"shares" and "subscription" at the end of a path name the sub-resource, so no new catalog may
have a segment so named, in either form. A catalog created before that rule (put in pubsub's
database here, as an older version left it) keeps working, reached through "~". Every check
goes through the real gateway, and through the C CLI and the Python client."""

import json
import os
import sqlite3
import subprocess
import sys
import time
import unittest

from fabric import FabricCase, src_dir
from test_events import broker_args, new_user, require_mosquitto_clients, token_file

JSON = {"Content-Type": "application/json"}
RESERVED_MSG = "objects, shares and subscription"

PYDIR = os.path.join(src_dir(), "client", "python")
if PYDIR not in sys.path:
    sys.path.insert(0, os.path.abspath(PYDIR))

# Catalogs of alice named with a reserved word, as a version before the rule created them.
LEGACY = ("alice/a/shares/bob", "alice/a/shares", "alice/a/objects", "alice/a/subscription",
          "alice/objects", "alice/a/subscription/x", "alice/r/objects")


def change_pubsub_db(f, sql, rows):
    """Runs sql for each of rows on pubsub's database while pubsub is stopped, then restarts it."""
    name = f.names("pubsub")[0]
    f.kill(name)
    db = sqlite3.connect(os.path.join(f.data, "pubsub", "pubsub.db"))
    try:
        with db:
            db.executemany(sql, rows)
    finally:
        db.close()
    f.restart(name)


def add_legacy_catalogs(f, paths, owner):
    """Writes catalogs into pubsub's database as an older version that allowed any name would
    have: the fixture of "created before the words were reserved"."""
    change_pubsub_db(f, "INSERT INTO catalogs(path, owner, public, k, m, created_at) VALUES(?, ?, 0, 3, 2, ?)",
                     [(p, owner, int(time.time())) for p in paths])


class RouteGrammar(FabricCase):
    CONTAINERS = 5

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        f = cls.fab
        cls.alice = new_user(f, "alice")
        cls.bob = new_user(f, "bob")
        f.create_catalog("alice/a", token=cls.alice)  # the SPEC form of the catalog itself
        add_legacy_catalogs(f, LEGACY, "alice")
        deadline = time.time() + 60  # pubsub answers again
        while f.http("GET", "/v1/catalogs/alice/a", token=cls.alice).status != 200:
            if time.time() > deadline:
                raise AssertionError("pubsub did not come back after the restart")
            time.sleep(0.2)

    def tearDown(self):
        # each test starts with alice/a shared with no one
        self.fab.http("DELETE", "/v1/catalogs/alice/a/~/shares/bob", token=self.alice)
        super().tearDown()

    # -- helpers ----------------------------------------------------------------------------

    def info(self, catalog, token=None):
        return self.fab.http("GET", "/v1/catalogs/%s/~" % catalog, token=token or self.alice)

    def exists(self, catalog):
        r = self.info(catalog)
        self.assertIn(r.status, (200, 404), r.body)
        return r.status == 200

    def shares_of(self, catalog):
        r = self.info(catalog)
        self.assertEqual(r.status, 200, r.body)
        return sorted(s["principal"] for s in r.json().get("shares", []))

    def names(self, catalog):
        return [o["name"] for o in self.fab.list_catalog(catalog, token=self.alice)]

    def alice_catalogs(self):
        r = self.fab.http("GET", "/v1/catalogs", token=self.alice)
        self.assertEqual(r.status, 200, r.body)
        return sorted(c["catalog"] for c in r.json()["catalogs"])

    # -- SPEC §4 ----------------------------------------------------------------------------

    def test_spec_form_routes(self):
        """Each route of SPEC §4 without "~": put, list, share, unshare, subscribe, unsubscribe."""
        f = self.fab
        r = f.http("POST", "/v1/catalogs/alice/a/objects?name=s1", body=b"spec put", token=self.alice)
        self.assertEqual(r.status, 201, r.body)
        key = r.json()["key"]
        meta = f.http("GET", "/v1/objects/%s/meta" % key, token=self.alice).json()
        self.assertEqual((meta["catalog"], meta["name"]), ("alice/a", "s1"))
        self.assertEqual(f.get_object(key, token=self.alice).body, b"spec put")
        r = f.http("GET", "/v1/catalogs/alice/a/objects?limit=10", token=self.alice)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual([o["name"] for o in r.json()["objects"]], ["s1"])
        self.assertEqual(self.names("alice/a"), ["s1"])  # the same through "~"
        self.assertEqual(self.names("alice/a/objects"), [], "the put went to the catalog alice/a/objects")

        r = f.http("POST", "/v1/catalogs/alice/a/shares", token=self.alice,
                   body=json.dumps({"user": "bob", "access": "read"}), headers=JSON)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.shares_of("alice/a"), ["bob"])
        self.assertEqual(self.shares_of("alice/a/shares"), [], "the share went to the catalog alice/a/shares")
        self.assertEqual(f.http("GET", "/v1/catalogs/alice/a", token=self.bob).status, 200)

        r = f.http("POST", "/v1/catalogs/alice/a/subscription", token=self.bob)
        self.assertEqual((r.status, r.json().get("subscribed")), (200, True), r.body)
        bobs = {c["catalog"]: c["relation"] for c in f.http("GET", "/v1/catalogs", token=self.bob).json()["catalogs"]}
        self.assertIn("alice/a", bobs)
        self.assertNotIn("alice/a/subscription", bobs)
        r = f.http("DELETE", "/v1/catalogs/alice/a/subscription", token=self.bob)
        self.assertEqual((r.status, r.json().get("subscribed"), r.json().get("removed")), (200, False, True), r.body)
        self.assertTrue(self.exists("alice/a/subscription"), "unsubscribing deleted a catalog")

        r = f.http("DELETE", "/v1/catalogs/alice/a/shares/bob", token=self.alice)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.shares_of("alice/a"), [])
        self.assertTrue(self.exists("alice/a/shares"), "removing a share deleted a catalog")
        self.assertEqual(f.http("GET", "/v1/catalogs/alice/a", token=self.bob).status, 403)
        r = f.http("DELETE", "/v1/catalogs/alice/a/shares/bob", token=self.alice)
        self.assertJsonError(r, 404, "not_found")

        self.assertEqual(f.http("DELETE", "/v1/objects/" + key, token=self.alice).status, 204)
        self.assertEqual(self.names("alice/a"), [])

    def test_reserved_words_name_no_new_catalog(self):
        """PUT in either form, the CLI and the Python client: 400 naming the words, nothing made."""
        f = self.fab
        from dynostore.client import Client, DynoError
        before = self.alice_catalogs()
        for c in ("alice/b/objects", "alice/b/shares", "alice/b/subscription", "alice/b/shares/x",
                  "alice/objects/b", "alice/subscription", "alice/b/objects/c"):
            for path in ("/v1/catalogs/" + c, "/v1/catalogs/%s/~" % c):
                with self.subTest(path=path):
                    r = f.http("PUT", path, token=self.alice, body=b"{}", headers=JSON)
                    self.assertJsonError(r, 400, "bad_request")
                    self.assertIn(RESERVED_MSG, r.json()["error"]["message"])
            with self.subTest(catalog=c, client="python"):
                py = Client(f.gateway)
                try:
                    with self.assertRaises(DynoError) as cm:
                        py.create_catalog(c, self.alice)
                    self.assertEqual(cm.exception.status, 400)
                finally:
                    py.close()
            with self.subTest(catalog=c, client="cli"):
                tf = token_file(f, "alice", self.alice)
                cp = f.cli("--gateway", f.gateway, "--token-file", tf, "catalog", "create", c,
                           settings=False, check=False)
                self.assertNotEqual(cp.returncode, 0)
                self.assertIn(RESERVED_MSG, cp.stderr + cp.stdout)
        # an admin may not either
        r = f.http("PUT", "/v1/catalogs/alice/b/objects/~", body=b"{}", headers=JSON)
        self.assertJsonError(r, 400, "bad_request")
        self.assertEqual(self.alice_catalogs(), before)
        self.assertFalse(self.exists("alice/b"))
        # a word inside a name, or in another case, is a name like any other
        for c in ("alice/my-shares", "alice/b/Objects"):
            f.create_catalog(c, token=self.alice)
            self.assertTrue(self.exists(c))
            self.assertEqual(f.http("DELETE", "/v1/catalogs/%s/~" % c, token=self.alice).status, 200)

    def test_tilde_alone_is_the_catalog_itself(self):
        f = self.fab
        r = f.http("PUT", "/v1/catalogs/alice/t/~", token=self.alice, body=b"{}", headers=JSON)
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.json()["catalog"], "alice/t")
        for path in ("/v1/catalogs/alice/t/~", "/v1/catalogs/alice/t", "/v1/catalogs/alice/t/%7E"):
            with self.subTest(path=path):
                r = f.http("GET", path, token=self.alice)
                self.assertEqual((r.status, r.json().get("catalog"), r.json().get("objects")),
                                 (200, "alice/t", 0), r.body)
        r = f.http("DELETE", "/v1/catalogs/alice/t/~", token=self.alice)
        self.assertEqual((r.status, r.json().get("deleted")), (200, ["alice/t"]), r.body)
        self.assertJsonError(f.http("GET", "/v1/catalogs/alice/t/~", token=self.alice), 404, "not_found")

    # -- catalogs created before the words were reserved -----------------------------------

    def test_existing_catalog_named_like_a_share(self):
        """alice/a/shares/bob: "~" reaches the catalog, the SPEC form the share of alice/a."""
        f = self.fab
        r = f.http("POST", "/v1/catalogs/alice/a/~/shares", token=self.alice,
                   body=json.dumps({"user": "bob", "access": "read"}), headers=JSON)
        self.assertEqual(r.status, 200, r.body)
        r = self.info("alice/a/shares/bob")
        self.assertEqual((r.status, r.json().get("catalog")), (200, "alice/a/shares/bob"), r.body)
        self.assertIn("alice/a/shares/bob", self.alice_catalogs())
        # GET of the SPEC path is the share's route, which has no GET: never the catalog
        r = f.http("GET", "/v1/catalogs/alice/a/shares/bob", token=self.alice)
        self.assertJsonError(r, 405, "method_not_allowed")
        self.assertIn("/v1/catalogs/<catalog>/~", r.json()["error"]["message"])
        # DELETE of the SPEC path removes the share of alice/a, never the catalog
        r = f.http("DELETE", "/v1/catalogs/alice/a/shares/bob", token=self.alice)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.shares_of("alice/a"), [])
        self.assertTrue(self.exists("alice/a/shares/bob"), "removing a share deleted a catalog")
        r = f.http("POST", "/v1/catalogs/alice/a/shares", token=self.alice,
                   body=json.dumps({"user": "bob", "access": "read"}), headers=JSON)
        self.assertEqual(r.status, 200, r.body)
        # a share of the old catalog, then its deletion through "~": the share of alice/a stays
        r = f.http("POST", "/v1/catalogs/alice/a/shares/bob/~/shares", token=self.alice,
                   body=json.dumps({"user": "bob", "access": "write"}), headers=JSON)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.shares_of("alice/a/shares/bob"), ["bob"])
        r = f.http("DELETE", "/v1/catalogs/alice/a/shares/bob/~", token=self.alice)
        self.assertEqual((r.status, r.json().get("deleted")), (200, ["alice/a/shares/bob"]), r.body)
        self.assertFalse(self.exists("alice/a/shares/bob"))
        self.assertEqual(self.shares_of("alice/a"), ["bob"], "deleting a catalog removed a share")
        self.assertTrue(self.exists("alice/a/shares"))
        # and it cannot come back
        r = f.http("PUT", "/v1/catalogs/alice/a/shares/bob/~", token=self.alice, body=b"{}", headers=JSON)
        self.assertJsonError(r, 400, "bad_request")
        self.assertFalse(self.exists("alice/a/shares/bob"))

    def test_existing_catalog_named_objects(self):
        f = self.fab
        r = f.http("POST", "/v1/catalogs/alice/a/objects/~/objects?name=n1", body=b"in a/objects",
                   token=self.alice)
        self.assertEqual(r.status, 201, r.body)
        key = r.json()["key"]
        meta = f.http("GET", "/v1/objects/%s/meta" % key, token=self.alice).json()
        self.assertEqual(meta["catalog"], "alice/a/objects")
        self.assertEqual(self.names("alice/a/objects"), ["n1"])
        self.assertEqual(self.names("alice/a"), [])
        r = self.info("alice/a/objects")
        self.assertEqual((r.status, r.json().get("catalog"), r.json().get("objects")),
                         (200, "alice/a/objects", 1), r.body)
        # without "~", GET .../a/objects lists alice/a, and a path through the old catalog is
        # refused with a pointer to "~"
        r = f.http("GET", "/v1/catalogs/alice/a/objects", token=self.alice)
        self.assertEqual((r.status, r.json().get("objects")), (200, []), r.body)
        for path in ("/v1/catalogs/alice/objects", "/v1/catalogs/alice/a/objects/shares",
                     "/v1/catalogs/alice/a/objects/objects"):
            with self.subTest(path=path):
                r = f.http("GET", path, token=self.alice)
                self.assertJsonError(r, 400, "bad_request")
                self.assertIn("/~", r.json()["error"]["message"])
        self.assertEqual(self.info("alice/objects").json().get("catalog"), "alice/objects")
        self.assertEqual(f.http("DELETE", "/v1/objects/" + key, token=self.alice).status, 204)

    def test_existing_catalog_named_subscription(self):
        f = self.fab
        r = f.http("POST", "/v1/catalogs/alice/a/subscription/~/shares", token=self.alice,
                   body=json.dumps({"user": "bob", "access": "read"}), headers=JSON)
        self.assertEqual(r.status, 200, r.body)
        r = f.http("POST", "/v1/catalogs/alice/a/subscription/~/subscription", token=self.bob)
        self.assertEqual((r.status, r.json().get("subscribed")), (200, True), r.body)
        bobs = [c["catalog"] for c in f.http("GET", "/v1/catalogs", token=self.bob).json()["catalogs"]]
        self.assertIn("alice/a/subscription", bobs)
        r = f.http("DELETE", "/v1/catalogs/alice/a/subscription/~/subscription", token=self.bob)
        self.assertEqual((r.status, r.json().get("subscribed")), (200, False), r.body)
        # bob's DELETE of the SPEC path is an unsubscribe from alice/a, never a deletion
        r = f.http("DELETE", "/v1/catalogs/alice/a/subscription", token=self.bob)
        self.assertEqual((r.status, r.json().get("catalog")), (200, "alice/a"), r.body)
        self.assertTrue(self.exists("alice/a/subscription"))
        f.http("DELETE", "/v1/catalogs/alice/a/subscription/~/shares/bob", token=self.alice)

    def test_over_mqtt(self):
        """The catalog.create RPC itself refuses the words (every creation path passes it), and
        MQTT ingest into a catalog created before the rule works as for any catalog."""
        require_mosquitto_clients()
        f = self.fab
        with open(f.fabric["service_token_file"]) as fh:
            svc = fh.read().strip()
        cid = "gateway-routes%d" % os.getpid()
        argv = ["mosquitto_rr", "-V", "mqttv5"] + broker_args(f) + [
            "-u", cid, "-P", svc, "-i", cid, "-t", "dyno/v1/rpc/pubsub/catalog.create",
            "-e", "dyno/v1/reply/" + cid, "-W", "10",
            "-m", json.dumps({"catalog": "alice/m/subscription", "caller": {"sub": "alice", "admin": False}})]
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        doc = json.loads(cp.stdout)
        self.assertEqual((doc.get("ok"), doc.get("error", {}).get("code")), (False, "bad_request"), doc)
        self.assertIn(RESERVED_MSG, doc["error"]["message"])
        self.assertNotIn("alice/m/subscription", self.alice_catalogs())

        path = os.path.join(f.work, "reading")
        with open(path, "wb") as fh:
            fh.write(b"21.5")
        cp = subprocess.run(["mosquitto_pub", "-V", "mqttv5"] + broker_args(f) + [
            "-u", "alice", "-P", self.alice, "-q", "1", "-t", "dyno/v1/ingest/alice/a/objects", "-f", path,
            "-D", "publish", "user-property", "name", "r1"], capture_output=True, timeout=60)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        deadline = time.time() + 20
        while "r1" not in self.names("alice/a/objects") and time.time() < deadline:
            time.sleep(0.2)
        objs = [o for o in f.list_catalog("alice/a/objects", token=self.alice) if o["name"] == "r1"]
        self.assertEqual(len(objs), 1, "ingest into alice/a/objects")
        self.assertEqual(f.get_object(objs[0]["key"], token=self.alice).body, b"21.5")
        self.assertEqual(f.http("DELETE", "/v1/objects/" + objs[0]["key"], token=self.alice).status, 204)

    def test_rebuild_brings_back_an_existing_catalog(self):
        """A metadata rebuild recreates a catalog its objects name, reserved segment or not
        (pubsub's catalog.create with restore, for admins): it existed, it is no new catalog."""
        f = self.fab
        r = f.http("POST", "/v1/catalogs/alice/r/objects/~/objects?name=keep", body=b"kept", token=self.alice)
        self.assertEqual(r.status, 201, r.body)
        key = r.json()["key"]
        change_pubsub_db(f, "DELETE FROM catalogs WHERE path = ?", [("alice/r/objects",)])
        deadline = time.time() + 60
        while True:
            r = f.http("GET", "/v1/catalogs", token=self.alice)
            if r.status == 200 and "alice/a" in [c["catalog"] for c in r.json()["catalogs"]]:
                break
            if time.time() > deadline:
                self.fail("pubsub did not come back: %d %r" % (r.status, r.body))
            time.sleep(0.2)
        self.assertNotIn("alice/r/objects", self.alice_catalogs())
        f.wait_containers_online(self.CONTAINERS)
        out = f.cli_json("admin", "rebuild-metadata")
        self.assertIn("alice/r/objects", self.alice_catalogs(), out)
        self.assertEqual(self.names("alice/r/objects"), ["keep"])
        self.assertEqual(f.get_object(key, token=self.alice).body, b"kept")
        self.assertEqual(f.http("DELETE", "/v1/objects/" + key, token=self.alice).status, 204)

    # -- errors -----------------------------------------------------------------------------

    def test_unknown_sub_resources_and_methods(self):
        f = self.fab
        for path in ("/v1/catalogs/alice/a/~/nothing", "/v1/catalogs/alice/a/~/objects/x",
                     "/v1/catalogs/alice/a/~/shares/bob/x", "/v1/catalogs/alice/a/~/~/objects",
                     "/v1/catalogs/alice/a/~/~"):
            with self.subTest(path=path):
                self.assertJsonError(f.http("GET", path, token=self.alice), 404, "not_found")
        for path in ("/v1/catalogs/alice/~/objects", "/v1/catalogs/~/objects", "/v1/catalogs/alice/a%2Fb",
                     "/v1/catalogs/alice/a/~/shares/b%20b", "/v1/catalogs/alice/a/shares/b%20b",
                     "/v1/catalogs/alice/~", "/v1/catalogs/shares/bob"):
            with self.subTest(path=path):
                self.assertJsonError(f.http("DELETE", path, token=self.alice), 400, "bad_request")
        for method, path in (("PUT", "/v1/catalogs/alice/a/~/objects"), ("DELETE", "/v1/catalogs/alice/a/~/shares"),
                             ("DELETE", "/v1/catalogs/alice/a/shares"),
                             ("GET", "/v1/catalogs/alice/a/~/shares/bob"),
                             ("GET", "/v1/catalogs/alice/a/~/subscription"),
                             ("GET", "/v1/catalogs/alice/a/subscription"),
                             ("POST", "/v1/catalogs/alice/a/~")):
            with self.subTest(method=method, path=path):
                self.assertJsonError(f.http(method, path, token=self.alice, body=b"{}" if method != "GET" else None,
                                            headers=JSON), 405, "method_not_allowed")
        self.assertEqual(self.shares_of("alice/a"), [])

    # -- clients ----------------------------------------------------------------------------

    def test_clients_reach_every_catalog(self):
        """The CLI (libdynostore) and the Python client send the "~" form: catalogs with a
        reserved segment are reached like any other."""
        f = self.fab
        from dynostore.client import Client
        py = Client(f.gateway)
        try:
            py.share_catalog("alice/a", self.alice, user="bob", access="write")
            self.assertEqual(self.shares_of("alice/a"), ["bob"])
            py.unshare_catalog("alice/a", self.alice, user="bob")
            self.assertEqual(self.shares_of("alice/a"), [])
            self.assertEqual(py.catalog_info("alice/a/shares", self.alice)["catalog"], "alice/a/shares")
            key = py.put(b"py", self.alice, "alice/a/shares", name="p")
            self.assertEqual([o["name"] for o in py.list_objects("alice/a/shares", self.alice)], ["p"])
            py.evict(key, self.alice)
            py.share_catalog("alice/a", self.alice, user="bob")
            self.assertTrue(py.subscribe_catalog("alice/a", self.bob)["subscribed"])
            self.assertFalse(py.unsubscribe_catalog("alice/a", self.bob)["subscribed"])
            py.unshare_catalog("alice/a", self.alice, user="bob")
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
        cp = cli("catalog", "unshare", "alice/a", "--user", "bob", check=False)
        self.assertNotEqual(cp.returncode, 0, "unshare of a share that is not there succeeded")
        info = json.loads(cli("--json", "catalog", "info", "alice/objects").stdout)
        self.assertEqual(info["catalog"], "alice/objects")
        cli("catalog", "share", "alice/objects", "--user", "bob", "--access", "read")
        self.assertEqual(self.shares_of("alice/objects"), ["bob"])
        cli("catalog", "unshare", "alice/objects", "--user", "bob")
        self.assertEqual(self.shares_of("alice/objects"), [])


if __name__ == "__main__":
    unittest.main()
