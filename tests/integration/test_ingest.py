"""MQTT ingest (issue 4): Debian's mosquitto_pub publishing to dyno/v1/ingest/<catalog>
makes an object whose "publisher" is the stamped user; a forged dyno-user is ignored; an oversized
message is refused and stores nothing; a Response Topic gets {"key"} (or the error).

The gateway decides write access as the principal the broker plugin stamped (dyno-user,
dyno-org, dyno-admin): a member of an org with a write share and an admin may ingest into
another user's catalog; forged stamps from a user grant nothing (the plugin replaces them)
and a message without exactly one of each stamp is refused."""

import json
import os
import subprocess
import time
import unittest

from fabric import FabricCase, random_bytes, sha256_bytes
from test_events import MqttSub, broker_args, is_event, new_user, require_mosquitto_clients, sub_ready

WAIT = 20.0


class IngestTest(FabricCase):
    CONTAINERS = 5

    @classmethod
    def setUpClass(cls):
        require_mosquitto_clients()
        super().setUpClass()
        f = cls.fab
        with open(f.fabric["service_token_file"]) as fh:
            cls.svc = fh.read().strip()
        cls.alice = new_user(f, "alice")
        cls.bob = new_user(f, "bob")
        f.create_catalog("alice/sensors", token=cls.alice)
        # carl is in org plant, which may write alice/shared; bob (no org) may not
        cls.svc_rpc("auth", "org.create", {"org": "plant"})
        cls.carl = new_user(f, "carl", org="plant")
        f.create_catalog("alice/shared", token=cls.alice)
        r = f.http("POST", "/v1/catalogs/alice/shared/~/shares", token=cls.alice,
                   body=json.dumps({"org": "plant", "access": "write"}))
        assert r.status in (200, 201), (r.status, r.body)
        f.create_catalog("bob/inbox", token=cls.bob)  # no shares: only bob and admins write
        who = f.http("GET", "/v1/auth/whoami").json()
        assert who.get("admin") is True, who
        cls.admin_user = who["user"]

    @classmethod
    def svc_rpc(cls, service, method, params):
        """An RPC as a service with mosquitto_rr (no REST route creates orgs)."""
        cid = "gateway-ing%d" % os.getpid()
        argv = ["mosquitto_rr", "-V", "mqttv5"] + broker_args(cls.fab) + [
            "-u", cid, "-P", cls.svc, "-i", cid,
            "-t", "dyno/v1/rpc/%s/%s" % (service, method), "-e", "dyno/v1/reply/" + cid,
            "-m", json.dumps(dict(params, caller={"sub": "admin", "org": "", "admin": True})), "-W", "10"]
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert cp.returncode == 0, (method, cp.returncode, cp.stderr)
        doc = json.loads(cp.stdout)
        assert doc.get("ok") or (doc.get("error") or {}).get("code") in ("conflict", "exists"), doc
        return doc

    def pub(self, user, token, catalog, path, props=(), extra=()):
        argv = ["mosquitto_pub", "-V", "mqttv5"] + broker_args(self.fab) + [
            "-u", user, "-P", token, "-q", "1", "-t", "dyno/v1/ingest/" + catalog, "-f", path]
        for name, value in props:
            argv += ["-D", "publish", "user-property", name, value]
        argv += list(extra)
        cp = subprocess.run(argv, capture_output=True, timeout=60)
        return cp

    def find(self, catalog, name, token, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for o in self.fab.list_catalog(catalog, token=token):
                if o.get("name") == name:
                    return o
            time.sleep(0.2)
        return None

    def write(self, name, data):
        p = os.path.join(self.fab.work, name)
        with open(p, "wb") as fh:
            fh.write(data)
        return p

    def pub_until_allowed(self, user, token, catalog, name, data, timeout=WAIT):
        """Publishes until the broker takes it (its policy table follows pubsub's retained
        feed, so a share just made may not be there yet); the mosquitto_pub result."""
        p = self.write(name + ".bin", data)
        deadline = time.monotonic() + timeout
        while True:
            cp = self.pub(user, token, catalog, p, props=[("name", name)])
            if cp.returncode == 0 and b"Not authorized" not in cp.stderr:
                return cp
            if time.monotonic() > deadline:
                self.fail("the broker never let %s publish to %s: %r" % (user, catalog, cp.stderr))
            time.sleep(0.3)

    def assert_stored(self, catalog, name, data, owner, token):
        """The object name of catalog holds data, is owned by owner, and reads back
        byte-identical through the CLI (admin) and HTTP with token."""
        f = self.fab
        o = self.find(catalog, name, token)
        self.assertIsNotNone(o, "%s/%s was never stored (the gateway refused the ingest)" % (catalog, name))
        self.assertEqual(o["sha256"], sha256_bytes(data))
        meta = f.http("GET", "/v1/objects/%s/meta" % o["key"], token=token).json()
        self.assertEqual((meta["publisher"], meta["catalog"]), (owner, catalog))
        out = os.path.join(f.work, name + ".out")
        f.cli("get", o["key"], "-o", out)
        with open(out, "rb") as fh:
            self.assertEqual(fh.read(), data)
        g = f.get_object(o["key"], token=token)
        self.assertEqual((g.status, g.body), (200, data))
        return o

    def refused_total(self):
        return self.fab.metrics().get("dyno_gateway_ingest_refused_total", 0)

    def wait_refused(self, before, n, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while self.refused_total() < before + n:
            if time.monotonic() > deadline:
                self.fail("the gateway refused %d ingest messages, not %d" % (self.refused_total() - before, n))
            time.sleep(0.2)

    def svc_ingest(self, catalog, name, user_props):
        """Publishes to ingest as a service (the plugin stamps nothing on a service's message)."""
        cid = "pubsub-ing%d" % os.getpid()
        argv = ["mosquitto_pub", "-V", "mqttv5"] + broker_args(self.fab) + [
            "-u", cid, "-P", self.svc, "-i", cid, "-q", "1", "-t", "dyno/v1/ingest/" + catalog,
            "-m", "from a service", "-D", "publish", "user-property", "name", name]
        for k, v in user_props:
            argv += ["-D", "publish", "user-property", k, v]
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertNotIn("Not authorized", cp.stderr)

    def test_ingest_roundtrip_owner_and_get(self):
        f = self.fab
        data = random_bytes(3000, seed=7)
        p = self.write("r1.bin", data)
        cp = self.pub("alice", self.alice, "alice/sensors", p, props=[("name", "r1")])
        self.assertEqual(cp.returncode, 0, cp.stderr)
        o = self.find("alice/sensors", "r1", self.alice)
        self.assertIsNotNone(o, "the ingested object never appeared")
        self.assertEqual(o["sha256"], sha256_bytes(data))
        out = os.path.join(f.work, "r1.out")
        f.cli("get", o["key"], "-o", out)
        with open(out, "rb") as fh:
            self.assertEqual(fh.read(), data)
        meta = f.http("GET", "/v1/objects/%s/meta" % o["key"], token=self.alice).json()
        self.assertEqual(meta["publisher"], "alice")
        self.assertEqual(meta["catalog"], "alice/sensors")

    def test_forged_user_property_is_ignored(self):
        data = b"reading 42"
        p = self.write("r2.bin", data)
        cp = self.pub("alice", self.alice, "alice/sensors", p,
                      props=[("dyno-user", "mallory"), ("Dyno-User", "admin"), ("name", "r2")])
        self.assertEqual(cp.returncode, 0, cp.stderr)
        o = self.find("alice/sensors", "r2", self.alice)
        self.assertIsNotNone(o)
        meta = self.fab.http("GET", "/v1/objects/%s/meta" % o["key"], token=self.alice).json()
        self.assertEqual(meta["publisher"], "alice")

    def test_response_topic_gets_key(self):
        reply = "dyno/v1/reply/alice/ingest-test"
        sub = MqttSub(self.fab, "alice", self.alice, [reply])
        try:
            time.sleep(1.0)  # let the SUBSCRIBE land
            p = self.write("r3.bin", b"with reply")
            cp = self.pub("alice", self.alice, "alice/sensors", p, props=[("name", "r3")],
                          extra=["-D", "publish", "response-topic", reply,
                                 "-D", "publish", "correlation-data", "c-1"])
            self.assertEqual(cp.returncode, 0, cp.stderr)
            got = sub.wait_for(lambda t, d: t == reply)
            self.assertIsNotNone(got, "no reply on the response topic")
            doc = got[1]
            self.assertIsInstance(doc, dict)
            self.assertRegex(doc.get("key", ""), r"^[0-9a-f]{32}$")
            o = self.find("alice/sensors", "r3", self.alice)
            self.assertEqual(o["key"], doc["key"])

            # oversized: the broker refuses it already (its plugin holds users to the
            # gateway's ingest_max, issue 9 class 6): the publisher's PUBACK says so, nothing
            # is stored, nothing reaches the gateway
            big = self.write("big.bin", random_bytes(256 * 1024 + 1, seed=3))
            cp = self.pub("alice", self.alice, "alice/sensors", big, props=[("name", "too-big")],
                          extra=["-D", "publish", "response-topic", reply])
            self.assertIn(b"Not authorized", cp.stderr)
            self.assertIsNone(self.find("alice/sensors", "too-big", self.alice, timeout=1.0))
        finally:
            sub.close()

    def test_no_write_access_stores_nothing(self):
        # bob may not write alice/sensors: the broker drops the publish (and the gateway
        # would refuse it), nothing is stored
        p = self.write("r4.bin", b"intruder")
        self.pub("bob", self.bob, "alice/sensors", p, props=[("name", "r4")])
        self.assertIsNone(self.find("alice/sensors", "r4", self.alice, timeout=2.0))

    def test_org_write_share_lets_a_member_ingest(self):
        # carl's token says org plant; alice/shared has a write share for org plant: the
        # broker lets the publish through and the gateway must decide alike
        data = random_bytes(5000, seed=11)
        self.pub_until_allowed("carl", self.carl, "alice/shared", "from-carl", data)
        self.assert_stored("alice/shared", "from-carl", data, "carl", self.carl)

    def test_admin_ingests_into_another_users_catalog(self):
        data = random_bytes(4000, seed=12)
        self.pub_until_allowed(self.admin_user, self.fab.token, "bob/inbox", "from-admin", data)
        self.assert_stored("bob/inbox", "from-admin", data, self.admin_user, self.bob)

    def test_forged_org_and_admin_grant_nothing(self):
        f = self.fab
        # bob has no org and is no admin: claiming both in user properties does not let him
        # into alice/shared (the broker refuses; nothing reaches the store)
        p = self.write("forged.bin", b"forged")
        cp = self.pub("bob", self.bob, "alice/shared", p,
                      props=[("dyno-org", "plant"), ("dyno-admin", "true"), ("DYNO-ADMIN", "true"),
                             ("Dyno-Org", "plant"), ("dyno-user", "carl"), ("name", "forged")])
        self.assertIn(b"Not authorized", cp.stderr)
        # a control publish by carl, after bob's: once it is stored bob's had its turn
        self.pub_until_allowed("carl", self.carl, "alice/shared", "after-forged", b"control")
        self.assertIsNotNone(self.find("alice/shared", "after-forged", self.carl))
        time.sleep(1.0)  # two workers: let a message taken alongside the control finish
        self.assertIsNone(self.find("alice/shared", "forged", self.alice, timeout=1.0))

        # what the gateway receives from a plain user who forges the stamps: exactly the
        # plugin's own (a service sees the message as delivered to the gateway)
        spy_id = "metadata-ingspy%d" % os.getpid()
        spy = subprocess.Popen(["mosquitto_sub", "-V", "mqttv5"] + broker_args(f) + [
            "-u", spy_id, "-P", self.svc, "-i", spy_id, "-q", "1", "-t", "dyno/v1/ingest/alice/sensors",
            "-F", "%t %P", "-C", "1", "-W", str(int(WAIT))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            p = self.write("forged2.bin", b"forged by alice")
            for i in range(int(WAIT / 2)):  # the SUBSCRIBE is asynchronous: publish until seen
                cp = self.pub("alice", self.alice, "alice/sensors", p,
                              props=[("dyno-admin", "true"), ("Dyno-Admin", "true"), ("DYNO-ORG", "plant"),
                                     ("dyno-org", "plant"), ("name", "forged-%d" % i)])
                self.assertEqual(cp.returncode, 0, cp.stderr)
                try:
                    out, err = spy.communicate(timeout=2)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                self.fail("the spy never saw an ingest message")
        finally:
            if spy.poll() is None:
                spy.kill()
                spy.communicate()
        line = out.strip().splitlines()[0] if out.strip() else ""
        self.assertTrue(line.startswith("dyno/v1/ingest/alice/sensors "), (out, err))
        stamps = [pair.partition(":")[::2] for pair in line.split(" ")[1:]
                  if pair.lower().startswith("dyno-")]
        self.assertEqual(sorted(stamps), [("dyno-admin", "false"), ("dyno-org", ""), ("dyno-user", "alice")],
                         line)
        # and the gateway stores those messages as alice's
        o = self.find("alice/sensors", "forged-0", self.alice)
        self.assertIsNotNone(o)
        meta = f.http("GET", "/v1/objects/%s/meta" % o["key"], token=self.alice).json()
        self.assertEqual(meta["publisher"], "alice")

    def test_a_named_reading_sent_again_is_stored_once(self):
        # QoS 1 is at least once: a reading comes again when an acknowledgement was lost (a
        # site's link cut, a gateway abandoning its session). The same name with the same
        # bytes is that reading again: one object, one key, one object.created; the same
        # name with other bytes is a new version, as before (issue 13).
        f = self.fab
        f.create_catalog("alice/dedupe", token=self.alice)
        sub = MqttSub(f, "alice", self.alice, ["dyno/v1/events/alice/dedupe"])
        try:
            sub_ready(self, f, sub, "alice/dedupe", token=self.alice)
            data = random_bytes(2000, seed=21)
            p = self.write("again.bin", data)
            before = f.metrics().get("dyno_gateway_ingest_duplicates_total", 0)
            for _ in range(3):
                cp = self.pub("alice", self.alice, "alice/dedupe", p, props=[("name", "again")])
                self.assertEqual(cp.returncode, 0, cp.stderr)
            # a control reading after the copies; once its event is here and a moment more
            # has passed, every copy has been handled (each takes a session of its own)
            self.pub("alice", self.alice, "alice/dedupe", self.write("ctl.bin", b"control"),
                     props=[("name", "control")])
            seen = []
            got = sub.wait_for(lambda t, d: seen.append(d) or (
                isinstance(d, dict) and (d.get("object") or {}).get("name") == "control"))
            self.assertIsNotNone(got, "no event for the control reading")
            time.sleep(3.0)
            while True:
                more = sub.wait_for(lambda t, d: True, timeout=0.5)
                if more is None:
                    break
                seen.append(more[1])
            again = [d for d in seen if isinstance(d, dict) and d.get("type") == "object.created" and
                     (d.get("object") or {}).get("name") == "again"]
            self.assertEqual(len(again), 1, "the copies of one reading made %d events: %r" % (len(again), again))
            objs = [o for o in f.list_catalog("alice/dedupe", token=self.alice) if o.get("name") == "again"]
            self.assertEqual(len(objs), 1, objs)
            self.assertEqual((objs[0]["key"], objs[0]["sha256"]), (again[0]["object"]["key"], sha256_bytes(data)),
                             "a copy replaced the reading")
            self.assertEqual(f.metrics().get("dyno_gateway_ingest_duplicates_total", 0), before + 2)
            # other bytes under the name: a new version (and its event)
            p2 = self.write("again2.bin", b"changed")
            self.pub("alice", self.alice, "alice/dedupe", p2, props=[("name", "again")])
            got = sub.wait_for(lambda t, d: isinstance(d, dict) and d.get("type") == "object.created" and
                               (d.get("object") or {}).get("name") == "again")
            self.assertIsNotNone(got, "changed bytes under the same name were not stored")
            self.assertEqual(got[1]["object"]["sha256"], sha256_bytes(b"changed"))
        finally:
            sub.close()

    def test_missing_or_duplicate_stamps_are_refused(self):
        # A service's message is not stamped by the plugin, so a service can hand the gateway
        # any set of stamps: short of exactly one valid copy of each, nothing is stored.
        before = self.refused_total()
        cases = {
            "no-org": [("dyno-user", "alice"), ("dyno-admin", "false")],
            "no-admin": [("dyno-user", "alice"), ("dyno-org", "")],
            "two-orgs": [("dyno-user", "alice"), ("dyno-org", ""), ("dyno-org", "plant"), ("dyno-admin", "false")],
            "two-admins": [("dyno-user", "alice"), ("dyno-org", ""), ("dyno-admin", "false"),
                           ("Dyno-Admin", "true")],
            "bad-admin": [("dyno-user", "alice"), ("dyno-org", ""), ("dyno-admin", "yes")],
            "bad-org": [("dyno-user", "alice"), ("dyno-org", "../plant"), ("dyno-admin", "false")],
        }
        for name, props in cases.items():
            self.svc_ingest("alice/sensors", "svc-" + name, props)
        self.wait_refused(before, len(cases))
        names = {o.get("name") for o in self.fab.list_catalog("alice/sensors", token=self.alice)}
        self.assertEqual(names & {"svc-" + n for n in cases}, set())
        # the same message with exactly one of each is taken (so the refusals above are the stamps')
        self.svc_ingest("alice/sensors", "svc-ok", [("dyno-user", "alice"), ("dyno-org", ""),
                                                    ("dyno-admin", "false")])
        self.assertIsNotNone(self.find("alice/sensors", "svc-ok", self.alice))


if __name__ == "__main__":
    unittest.main()
