"""Access to objects is decided by their catalog's policy, never by who published them
(issue 9, class 4).

alice shares alice/lab with bob (write); bob stores objects there over MQTT ingest and over
REST; alice removes the share. From then on bob can neither read, HEAD, see the metadata of
nor evict those objects (403, as docs/protocol.md documents for a caller the policy does not
allow), while alice still can. The object's metadata names bob as its "publisher", a field
of its own that grants nothing."""

import json
import os
import subprocess
import time
import unittest

from fabric import FabricCase, random_bytes, sha256_bytes
from test_events import broker_args, new_user, require_mosquitto_clients

WAIT = 20.0
CAT = "alice/lab"


class PolicyNotOwnership(FabricCase):
    CONTAINERS = 5

    @classmethod
    def setUpClass(cls):
        require_mosquitto_clients()
        super().setUpClass()
        f = cls.fab
        cls.alice = new_user(f, "alice")
        cls.bob = new_user(f, "bob")
        f.create_catalog(CAT, token=cls.alice)

    # -- helpers -------------------------------------------------------------------------

    def share(self, user, access):
        r = self.fab.http("POST", self.fab.cat_path(CAT, "shares"), token=self.alice,
                          body=json.dumps({"user": user, "access": access}),
                          headers={"Content-Type": "application/json"})
        self.assertIn(r.status, (200, 201), r.body)

    def unshare(self, user):
        r = self.fab.http("DELETE", self.fab.cat_path(CAT, "shares", user), token=self.alice)
        self.assertIn(r.status, (200, 204), r.body)

    def ingest(self, user, token, name, data):
        """Publishes data to the catalog's ingest topic until the broker takes it (its
        policy follows pubsub's retained feed, so a new share may not be there yet), then
        waits for the object to be listed; its listing entry."""
        path = os.path.join(self.fab.work, name + ".bin")
        with open(path, "wb") as fh:
            fh.write(data)
        deadline = time.monotonic() + WAIT
        while True:
            argv = ["mosquitto_pub", "-V", "mqttv5"] + broker_args(self.fab) + [
                "-u", user, "-P", token, "-q", "1", "-t", "dyno/v1/ingest/" + CAT, "-f", path,
                "-D", "publish", "user-property", "name", name]
            cp = subprocess.run(argv, capture_output=True, timeout=60)
            if cp.returncode == 0 and b"Not authorized" not in cp.stderr:
                break
            if time.monotonic() > deadline:
                self.fail("the broker never let %s publish to %s: %r" % (user, CAT, cp.stderr))
            time.sleep(0.3)
        while time.monotonic() < deadline + WAIT:
            for o in self.fab.list_catalog(CAT, token=self.alice):
                if o.get("name") == name:
                    return o
            time.sleep(0.2)
        self.fail("the ingested object %s never appeared" % name)

    def wait_denied(self, key, token):
        """The gateway caches catalog records until pubsub republishes the policy, so the
        removal reaches it within a moment: wait until a read is refused."""
        deadline = time.monotonic() + WAIT
        while True:
            r = self.fab.http("GET", "/v1/objects/%s/meta" % key, token=token)
            if r.status in (403, 404):
                return
            if time.monotonic() > deadline:
                self.fail("bob still reads %s after the share was removed: %d" % (key, r.status))
            time.sleep(0.2)

    def assert_denied(self, key, what):
        f = self.fab
        for method, path in (("GET", "/v1/objects/" + key), ("HEAD", "/v1/objects/" + key),
                             ("GET", "/v1/objects/%s/meta" % key), ("DELETE", "/v1/objects/" + key)):
            r = f.http(method, path, token=self.bob)
            self.assertIn(r.status, (403, 404), "%s %s of %s by bob after the share was removed: %d %r"
                          % (method, path, what, r.status, r.body))
            if method != "HEAD":
                self.assertJsonError(r, msg="%s %s of %s" % (method, path, what))

    # -- the scenario --------------------------------------------------------------------

    def test_removed_share_ends_access_to_what_the_principal_published(self):
        f = self.fab
        self.share("bob", "write")
        mq_data = random_bytes(5000, seed=91)
        rest_data = random_bytes(200 * 1024 + 3, seed=92)
        mq = self.ingest("bob", self.bob, "by-mqtt", mq_data)
        r = f.put_bytes(CAT, rest_data, name="by-rest", token=self.bob)
        self.assertEqual(r.status, 201, r.body)
        objs = {"mqtt": (mq["key"], mq_data), "rest": (r.json()["key"], rest_data)}

        # while shared, bob reads both, and the metadata names him as the publisher
        for what, (key, data) in objs.items():
            g = f.get_object(key, token=self.bob)
            self.assertEqual((g.status, sha256_bytes(g.body)), (200, sha256_bytes(data)), what)
            meta = f.http("GET", "/v1/objects/%s/meta" % key, token=self.bob).json()
            self.assertEqual(meta.get("publisher"), "bob", (what, meta))
            self.assertEqual(meta.get("catalog"), CAT, (what, meta))
            self.assertNotIn("owner", meta, "an object has no owner of its own: %r" % meta)

        self.unshare("bob")
        for what, (key, _) in objs.items():
            self.wait_denied(key, self.bob)
        for what, (key, _) in objs.items():
            self.assert_denied(key, what)

        # nothing was evicted by bob's attempts, and alice (the catalog's owner) still has all
        for what, (key, data) in objs.items():
            g = f.get_object(key, token=self.alice)
            self.assertEqual((g.status, sha256_bytes(g.body)), (200, sha256_bytes(data)), what)
            h = f.http("HEAD", "/v1/objects/" + key, token=self.alice)
            self.assertEqual(h.status, 200, what)
            m = f.http("GET", "/v1/objects/%s/meta" % key, token=self.alice)
            self.assertEqual(m.status, 200, what)

        # a read share gives reads back, never evict
        self.share("bob", "read")
        deadline = time.monotonic() + WAIT
        key, data = objs["mqtt"]
        while f.get_object(key, token=self.bob).status != 200:
            if time.monotonic() > deadline:
                self.fail("a read share did not give bob his reads back")
            time.sleep(0.2)
        r = f.http("DELETE", "/v1/objects/" + key, token=self.bob)
        self.assertEqual(r.status, 403, r.body)
        self.unshare("bob")

        # alice evicts what bob published
        for what, (key, _) in objs.items():
            r = f.http("DELETE", "/v1/objects/" + key, token=self.alice)
            self.assertEqual(r.status, 204, (what, r.body))
            self.assertEqual(f.get_object(key, token=self.alice).status, 404, what)


if __name__ == "__main__":
    unittest.main()
