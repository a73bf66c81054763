"""Issue 13 acceptance 4: a broker per site, bridged to the core broker, and a site cut off.

`dynostore up --sites 2 --site-brokers` starts a mosquitto (with the dyno_auth plugin) per
site, bridged to the core broker with mosquitto's own bridge (docs/architecture.md, "A broker
per site"). Here site-2's bridge reaches the core through tests/tools/netproxy.py with 40 ms
each way. An MQTT-only device (a raw MQTT v5 client, QoS 1) publishes a named reading every
PERIOD seconds to site-2's broker; one subscriber follows the catalog's events on site-2's
broker, another on the core broker.

SiteCut.test_1: the link is cut for 30 s in hold mode (a partition: no byte crosses, nothing
is reset) while the device keeps publishing; its site broker acknowledges each reading and the
bridge queues it. During the cut the site keeps enforcing what it knew: bob (no share) is
refused, a token revoked at the core meanwhile still logs in at the cut site, and nothing the
device published reaches the core. After the heal every acknowledged reading is stored exactly
once (one object per name, its bytes, also the readings the device sent twice, as QoS 1 allows),
both subscribers receive every object.created exactly once, and the revocation reaches the site
(the token is refused there).

SiteCut.test_2: the bound. site-2's broker restarted with max_queued_messages 5: a cut, 40
readings, a heal: what the bridge dropped is counted in $SYS/broker/publish/messages/dropped
(readable by services) and logged, at most 5 + 20 (the in-flight window) crossed, and stored +
dropped = acknowledged (nothing else is lost, nothing stored twice).
"""

import os
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))

from fabric import FabricCase, sha256_bytes  # noqa: E402
from mqttraw import connect_packet, jti_of  # noqa: E402
from netproxy import NetProxy  # noqa: E402
from test_events import MqttSub, new_user, require_mosquitto_clients  # noqa: E402
from test_ingest_burst import publish_packet, read_packet  # noqa: E402

CATALOG = "alice/sitecut"
DELAY_MS = 40
CUT_S = 30
PERIOD = 0.25  # seconds between readings
WAIT = 30
STORE_TIMEOUT = 180  # after the heal: the bridge reconnects (back-off up to 10 s), then ingest


def payload_of(name):
    return ("%s: t=21.%s" % (name, name[-2:])).encode()


class SiteDevice(threading.Thread):
    """An MQTT-only device: one connection to its site broker, a QoS 1 reading named
    <tag>NNN every PERIOD s, each waited for (PUBACK). Records the readings the broker
    acknowledged (a success code) and those it refused. set() on stop ends it.

    again_every: every so many readings, the reading is published a second time, as a device
    does that lost a PUBACK (QoS 1 is at least once); such a copy must not be stored again."""

    def __init__(self, port, user, token, tag, limit=None, period=PERIOD, again_every=0):
        super().__init__(daemon=True)
        self.port, self.user, self.token, self.tag = port, user, token, tag
        self.limit, self.period, self.again_every = limit, period, again_every
        self.sent_again = []
        self.stop = threading.Event()
        self.acked, self.refused, self.error = [], [], None
        self.lock = threading.Lock()

    def snapshot(self):
        with self.lock:
            return list(self.acked)

    def run(self):
        try:
            self._run()
        except Exception as e:  # reported by the test
            self.error = repr(e)

    def _run(self):
        cid = ("device-%d-%s" % (os.getpid(), self.tag)).encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as s:
            s.sendall(connect_packet(cid, self.user.encode(), self.token.encode()))
            first, body = read_packet(s)
            if first != 0x20 or body[1] != 0:
                raise ConnectionError("CONNACK %r" % body)
            topic = "dyno/v1/ingest/" + CATALOG
            i, pid = 0, 0
            while not self.stop.is_set() and (self.limit is None or i < self.limit):
                name = "%s%03d" % (self.tag, i)
                copies = 2 if self.again_every and i % self.again_every == self.again_every // 2 else 1
                for copy in range(copies):
                    pid = pid % 60000 + 1
                    s.sendall(publish_packet(topic, pid, name, payload_of(name)))
                    while True:
                        first, body = read_packet(s)
                        if first >> 4 == 4 and struct.unpack("!H", body[:2])[0] == pid:
                            break
                    reason = body[2] if len(body) > 2 else 0
                    with self.lock:
                        # 0x10: "no matching subscribers" is still accepted (never expected:
                        # the bridge subscribes locally, connected or not)
                        if copy > 0:
                            self.sent_again.append(name)
                        elif reason >= 0x80:
                            self.refused.append(name)
                        else:
                            self.acked.append(name)
                i += 1
                self.stop.wait(self.period)
            s.sendall(b"\xe0\x00")  # DISCONNECT


class SiteBroker:
    """Enough of a Fabric for MqttSub: a site broker's address."""

    def __init__(self, entry):
        self.fabric = {"broker": entry}


class SiteCut(FabricCase):
    CONTAINERS = 4
    UP_ARGS = ("--sites", "2", "--site-brokers")

    @classmethod
    def setUpClass(cls):
        require_mosquitto_clients()
        super().setUpClass()
        f = cls.fab
        with open(f.fabric["service_token_file"]) as fh:
            cls.svc = fh.read().strip()
        cls.alice = new_user(f, "alice")
        cls.bob = new_user(f, "bob")
        r = f.create_catalog(CATALOG, token=cls.alice)
        assert r.status in (200, 201), (r.status, r.body)
        cls.px = NetProxy()
        cls.link = cls.px.add_link("site-2", "127.0.0.1", f.fabric["broker"]["port"], delay_ms=DELAY_MS)
        # site-2's bridge now goes through the 40 ms link
        f.start_site_broker("site-2", core_port=cls.link)
        cls.site = SiteBroker(f.site_broker("site-2"))

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "px", None):
            cls.px.stop()
        super().tearDownClass()

    # -- helpers ----------------------------------------------------------------------

    def poll(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            v = cond()
            if v:
                return v
            if time.monotonic() > deadline:
                self.fail("timed out (%d s) waiting until %s" % (timeout, what))
            time.sleep(0.3)

    def site_port(self):
        return self.fab.site_broker("site-2")["port"]

    def sys_value(self, topic):
        """A $SYS value of site-2's broker, read as a service (the plugin lets services read
        $SYS/broker/...): the text, or None when nothing came."""
        cid = "bridge-probe%d" % os.getpid()
        cp = subprocess.run(["mosquitto_sub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(self.site_port()),
                             "-u", cid, "-P", self.svc, "-i", cid, "-t", topic, "-C", "1", "-W", "12"],
                            capture_output=True, text=True, timeout=60)
        return cp.stdout.strip() if cp.returncode == 0 else None

    def bridge_connected(self):
        return all(self.sys_value("$SYS/broker/connection/%s/state" % self.fab.site_broker("site-2")[k]) == "1"
                   for k in ("bridge_out", "bridge_in"))

    def site_pub(self, user, token, name):
        """One reading with mosquitto_pub to site-2's broker; (returncode, stderr)."""
        cp = subprocess.run(["mosquitto_pub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(self.site_port()),
                             "-u", user, "-P", token, "-q", "1", "-t", "dyno/v1/ingest/" + CATALOG,
                             "-D", "publish", "user-property", "name", name, "-m", "x"],
                            capture_output=True, text=True, timeout=60)
        return cp.returncode, cp.stderr

    def site_pub_ok(self, user, token, name):
        rc, err = self.site_pub(user, token, name)
        return rc == 0 and "not authori" not in err.lower()

    def site_login(self, user, token):
        """True when site-2's broker lets user log in with token."""
        cp = subprocess.run(["mosquitto_sub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(self.site_port()),
                             "-u", user, "-P", token, "-t", "dyno/v1/reply/%s/#" % user, "-W", "1", "-C", "1"],
                            capture_output=True, text=True, timeout=30)
        return cp.returncode == 27  # timed out waiting for a message: it was logged in

    def stored(self, prefix):
        """name -> object of CATALOG for the names starting with prefix."""
        out = {}
        after = None
        while True:
            q = "/v1/catalogs/%s/~/objects?limit=1000&prefix=%s" % (CATALOG, prefix)
            if after:
                q += "&after=" + after
            r = self.fab.http("GET", q, token=self.alice)
            self.assertEqual(r.status, 200, r.body)
            doc = r.json()
            for o in doc["objects"]:
                self.assertNotIn(o["name"], out, "a name listed twice")
                out[o["name"]] = o
            after = doc.get("next")
            if not after:
                return out

    def start_subscribers(self):
        """One events subscriber on the core broker, one on site-2's, both seeing a warm-up."""
        topic = "dyno/v1/events/" + CATALOG
        core = MqttSub(self.fab, "alice", self.alice, [topic])
        site = MqttSub(self.site, "alice", self.alice, [topic])
        for i in range(60):
            r = self.fab.put_bytes(CATALOG, b"warm-up", name="warmup-%d" % i, token=self.alice)
            self.assertEqual(r.status, 201, r.body)
            key = r.json()["key"]
            if all(s.wait_for(lambda t, d: isinstance(d, dict) and (d.get("object") or {}).get("key") == key,
                              timeout=1.0) for s in (core, site)):
                return core, site
        self.fail("the subscribers never both saw an event: %s | %s" % (core.stderr(), site.stderr()))

    def created(self, sub, names, timeout):
        """object.created events of sub for names (name -> [events]), until each name was
        seen or timeout; then 3 s more for late copies."""
        seen = {}
        deadline = time.monotonic() + timeout
        while not names <= set(seen) and time.monotonic() < deadline:
            got = sub.wait_for(lambda t, d: True, timeout=1.0)
            if got and isinstance(got[1], dict) and got[1].get("type") == "object.created":
                seen.setdefault(got[1]["object"]["name"], []).append(got[1])
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            got = sub.wait_for(lambda t, d: True, timeout=0.5)
            if got and isinstance(got[1], dict) and got[1].get("type") == "object.created":
                seen.setdefault(got[1]["object"]["name"], []).append(got[1])
        return seen

    def assert_events_once(self, which, seen, objects):
        missing = sorted(set(objects) - set(seen))
        self.assertEqual(missing, [], "%s subscriber never got object.created for %s" % (which, missing))
        twice = {n: len(v) for n, v in seen.items() if n in objects and len(v) != 1}
        self.assertEqual(twice, {}, "%s subscriber got object.created more than once" % which)
        for n, o in objects.items():
            self.assertEqual(seen[n][0]["object"]["key"], o["key"], "%s: event of %s names another key" % (which, n))

    # -- the tests --------------------------------------------------------------------

    def test_1_readings_of_a_cut_site_are_stored_once_after_the_heal(self):
        f = self.fab
        self.poll(self.bridge_connected, 60, "site-2's bridge is connected through the proxy")
        self.assertGreaterEqual(self.px.stats("site-2")["connections"], 1)
        # the policy came over the bridge: alice may publish at site-2 (retry while it comes)
        self.poll(lambda: self.site_pub_ok("alice", self.alice, "probe"), 60,
                  "site-2's broker lets alice publish to %s" % CATALOG)
        # an API token of alice's, revoked during the cut
        r = f.http("POST", "/v1/tokens", token=self.alice, body='{"ttl": 3600}')
        self.assertEqual(r.status, 201, r.body)
        doomed, doomed_jti = r.json()["token"], jti_of(r.json()["token"])
        self.assertTrue(self.site_login("alice", doomed))
        core, site = self.start_subscribers()
        dev = SiteDevice(self.site_port(), "alice", self.alice, "r", again_every=10)
        try:
            dev.start()
            self.poll(lambda: len(self.stored("r")) >= 5, 60, "readings before the cut are stored")

            self.px.cut("site-2")
            t_cut = time.monotonic()
            at_cut = len(dev.snapshot())
            # during the cut: the site enforces the policy it knew (bob may not write)
            rc, err = self.site_pub("bob", self.bob, "bob-during-cut")
            self.assertIn("not authori", err.lower(), "bob published at the cut site: %r" % err)
            # a token revoked at the core now is unknown at the cut site until the heal
            r = f.http("DELETE", "/v1/tokens/" + doomed_jti, token=self.alice)
            self.assertEqual(r.status, 200, r.body)
            # objects put at the core during the cut: their events wait for the site's bridge
            at_core = {}
            for i in range(3):
                r = f.put_bytes(CATALOG, b"core %d" % i, name="c-during-%d" % i, token=self.alice)
                self.assertEqual(r.status, 201, r.body)
                at_core["c-during-%d" % i] = r.json()
            time.sleep(max(0.0, CUT_S / 2 - (time.monotonic() - t_cut)))
            self.assertTrue(self.site_login("alice", doomed),
                            "the revocation crossed a cut link: the cut is not real")
            time.sleep(max(0.0, CUT_S - (time.monotonic() - t_cut)))
            during = dev.snapshot()[at_cut:]
            self.assertGreaterEqual(len(during), int(CUT_S / PERIOD / 3),
                                    "the device could not keep publishing during the cut (%d readings)"
                                    % len(during))
            # nothing published during the cut reached the core (one reading may have been on
            # its way when the cut came)
            crossed = set(self.stored("r")) & set(during)
            self.assertLessEqual(len(crossed), 1, "readings crossed a cut link: %s" % sorted(crossed))
            self.px.heal("site-2")
            time.sleep(3.0)
        finally:
            dev.stop.set()
            dev.join(60)
        self.assertIsNone(dev.error, dev.error)
        self.assertEqual(dev.refused, [], "the site broker refused readings")
        acked = dev.snapshot()
        self.assertGreater(len(acked), len(during))
        self.assertGreaterEqual(len(dev.sent_again), 3, "the device sent too few readings twice")

        # every acknowledged reading stored, exactly once, with its bytes
        self.poll(lambda: set(acked) <= set(self.stored("r")), STORE_TIMEOUT,
                  "every reading acknowledged by site-2's broker is stored")
        objects = self.stored("r")
        self.assertEqual(sorted(objects), sorted(acked), "objects that no reading made")
        for name, o in objects.items():
            self.assertEqual(o["sha256"], sha256_bytes(payload_of(name)), name)
        for name in during[:3] + during[-3:]:
            g = f.get_object(objects[name]["key"], token=self.alice)
            self.assertEqual((g.status, g.body), (200, payload_of(name)))
        self.assertEqual(f.metrics().get("dyno_gateway_ingest_refused_total", 0), 0)

        # every object.created exactly once on both sides, also those made at the core during
        # the cut (the core kept them for the bridge's session)
        for name, o in at_core.items():
            objects[name] = dict(o, name=name)
        try:
            self.assert_events_once("core", self.created(core, set(objects), WAIT), objects)
            self.assert_events_once("site-2", self.created(site, set(objects), WAIT), objects)
        finally:
            core.close()
            site.close()

        # the revocation made at the core during the cut reaches the site after the heal
        self.poll(lambda: not self.site_login("alice", doomed), 60,
                  "site-2's broker refuses the token revoked during the cut")
        self.assertEqual(self.sys_value("$SYS/broker/publish/messages/dropped"), "0",
                         "site-2's broker dropped messages under its bound")

    def test_2_the_bridge_queue_is_bounded_and_its_drops_counted(self):
        f = self.fab
        self.poll(self.bridge_connected, 60, "site-2's bridge is connected")
        f.start_site_broker("site-2", core_port=self.link, conf_lines=["max_queued_messages 5"])
        self.poll(self.bridge_connected, 60, "site-2's bridge is connected again")
        self.poll(lambda: self.site_pub_ok("alice", self.alice, "probe2"), 60, "alice may publish")
        dropped0 = int(self.poll(lambda: self.sys_value("$SYS/broker/publish/messages/dropped"), 30,
                                 "the drop counter is published"))
        self.px.cut("site-2")
        try:
            # let the bridge notice the cut (keepalive 10 s: at most 15 s), so that what follows
            # is queued, not in flight
            time.sleep(18)
            dev = SiteDevice(self.site_port(), "alice", self.alice, "q", limit=40, period=0.05)
            dev.start()
            dev.join(120)
            self.assertIsNone(dev.error, dev.error)
            self.assertEqual(len(dev.acked), 40, dev.refused)
            # the counter is published every sys_interval (5 s): wait until it moved and held
            last = [None]

            def settled():
                v = int(self.sys_value("$SYS/broker/publish/messages/dropped") or 0) - dropped0
                done = v > 0 and v == last[0]
                last[0] = v
                return done
            self.poll(settled, 60, "the drops are counted")
            time.sleep(6)
            self.assertTrue(settled(), "the drop counter still moves")
            dropped = last[0]
        finally:
            self.px.heal("site-2")
        self.poll(lambda: len(self.stored("q")) >= 40 - dropped, STORE_TIMEOUT, "the queued readings are stored")
        time.sleep(5)
        objects = self.stored("q")
        # the bound: max_queued_messages, plus what was in flight on the bridge's connection
        # (at most the core's Receive Maximum, mosquitto's max_inflight_messages: 20)
        self.assertLessEqual(len(objects), 5 + 20, "more readings crossed than the queue holds: %d" % len(objects))
        self.assertEqual(len(objects) + dropped, 40, "stored %d + dropped %d" % (len(objects), dropped))
        self.assertTrue(set(objects) <= set(dev.acked))
        dropped_log = f.log_text("mosquitto-site-2")
        self.assertIn("dropped", dropped_log.lower())


if __name__ == "__main__":
    unittest.main()
