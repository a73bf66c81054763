"""MQTT ingest (issue 4): Debian's mosquitto_pub publishing to dyno/v1/ingest/<catalog>
makes an object owned by the publisher; a forged dyno-user is ignored; an oversized
message is refused and stores nothing; a Response Topic gets {"key"} (or the error)."""

import json
import os
import subprocess
import time
import unittest

from fabric import FabricCase, random_bytes, sha256_bytes
from test_events import MqttSub, broker_args, new_user, require_mosquitto_clients

WAIT = 20.0


class IngestTest(FabricCase):
    CONTAINERS = 5

    @classmethod
    def setUpClass(cls):
        require_mosquitto_clients()
        super().setUpClass()
        cls.alice = new_user(cls.fab, "alice")
        cls.bob = new_user(cls.fab, "bob")
        cls.fab.create_catalog("alice/sensors", token=cls.alice)

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
        self.assertEqual(meta["owner"], "alice")
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
        self.assertEqual(meta["owner"], "alice")

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

            # oversized: refused, reported on the response topic, nothing stored
            before = self.fab.metrics().get("dyno_gateway_ingest_refused_total", 0)
            big = self.write("big.bin", random_bytes(256 * 1024 + 1, seed=3))
            cp = self.pub("alice", self.alice, "alice/sensors", big, props=[("name", "too-big")],
                          extra=["-D", "publish", "response-topic", reply])
            self.assertEqual(cp.returncode, 0, cp.stderr)
            got = sub.wait_for(lambda t, d: t == reply)
            self.assertIsNotNone(got, "no error reply for the oversized message")
            self.assertEqual((got[1].get("error") or {}).get("code"), "too_large", got[1])
            self.assertIsNone(self.find("alice/sensors", "too-big", self.alice, timeout=1.0))
            after = self.fab.metrics().get("dyno_gateway_ingest_refused_total", 0)
            self.assertGreater(after, before)
        finally:
            sub.close()

    def test_no_write_access_stores_nothing(self):
        # bob may not write alice/sensors: the broker drops the publish (and the gateway
        # would refuse it), nothing is stored
        p = self.write("r4.bin", b"intruder")
        self.pub("bob", self.bob, "alice/sensors", p, props=[("name", "r4")])
        self.assertIsNone(self.find("alice/sensors", "r4", self.alice, timeout=2.0))


if __name__ == "__main__":
    unittest.main()
