"""The broker plugin (broker/plugin.c, lib/acl.c) inside Debian's mosquitto 2.0.

Starts /usr/sbin/mosquitto on 127.0.0.1 with an ephemeral port and dyno_auth.so from
DYNO_LIBDIR, mints tokens with DYNO_BIN/dyno-mint, and drives it with mosquitto_pub and
mosquitto_sub (MQTT v5) plus raw CONNECT packets for input the clients will not send.
Only the broker this test started is stopped, by its pid.
"""
import base64
import getpass
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from fabric import free_port
from mqttraw import connect_packet, jti_of, raw_connect

BIN = os.environ.get("DYNO_BIN", "")
LIBDIR = os.environ.get("DYNO_LIBDIR", "")
MOSQUITTO = "/usr/sbin/mosquitto"
NOT_AUTHORIZED = 0x87  # MQTT v5 CONNACK / PUBACK reason "Not authorized"
INGEST_MAX = 4096  # plugin_opt_ingest_max of this broker
EMPTY_REVOKED = '{"revoked":[]}'
BRIDGE_ID = "bridge-site-9-in"  # plugin_opt_bridge_client_id of this broker


class BrokerPluginTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool in (MOSQUITTO, shutil.which("mosquitto_pub"), shutil.which("mosquitto_sub")):
            if not tool or not os.path.exists(tool):
                raise unittest.SkipTest("mosquitto and mosquitto-clients are needed")
        cls.plugin = os.path.join(LIBDIR, "dyno_auth.so")
        cls.mint_bin = os.path.join(BIN, "dyno-mint")
        if not os.path.exists(cls.plugin) or not os.path.exists(cls.mint_bin):
            raise AssertionError("build dyno_auth and dyno-mint first (DYNO_LIBDIR, DYNO_BIN)")
        cls.tmp = tempfile.mkdtemp(prefix="dyno-broker-")
        cls.key = os.path.join(cls.tmp, "auth.key")
        cls.pub_key = os.path.join(cls.tmp, "auth.pub")
        subprocess.run([cls.mint_bin, "--keygen", cls.key, cls.pub_key], check=True)
        cls.other_key = os.path.join(cls.tmp, "other.key")
        subprocess.run([cls.mint_bin, "--keygen", cls.other_key, os.path.join(cls.tmp, "other.pub")], check=True)
        cls.port = free_port()
        conf = os.path.join(cls.tmp, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(
                # as root, mosquitto would switch to the "mosquitto" user, who cannot read
                # our temp folder; as anyone else this line changes nothing
                f"user {getpass.getuser()}\n"
                "per_listener_settings false\n"
                f"listener {cls.port} 127.0.0.1\n"
                "allow_anonymous false\n"
                f"plugin {cls.plugin}\n"
                f"plugin_opt_public_key_file {cls.pub_key}\n"
                f"plugin_opt_ingest_max {INGEST_MAX}\n"
                # as on a site broker (up --site-brokers): the bridge's local client id
                f"plugin_opt_bridge_client_id {BRIDGE_ID}\n"
                "sys_interval 1\n"
                "log_dest stderr\n"
                "log_type all\n"
            )
        cls.log_path = os.path.join(cls.tmp, "mosquitto.log")
        cls.log = open(cls.log_path, "w")
        cls.broker = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=cls.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", cls.port), timeout=1).close()
                break
            except OSError:
                if cls.broker.poll() is not None or time.time() > deadline:
                    log = cls.read_log()
                    cls.tearDownClass()
                    raise AssertionError("mosquitto did not start: " + log)
                time.sleep(0.05)
        cls.svc = cls.mint("service", role="service")
        # Fail closed (issue 9, class 3): until a revocation document has been applied since
        # the broker started, a valid user token is refused and a service token is not;
        # test_fail_closed_until_revocation_list checks what happened here.
        cls.user_before_feed = cls.connect_rc_cls("alice-early", "alice", cls.mint("alice"))
        cls.service_before_feed = cls.connect_rc_cls("gateway-early", "gateway-early", cls.svc)
        cls.feed_revoked(EMPTY_REVOKED)

    @classmethod
    def tearDownClass(cls):
        if cls.broker.poll() is None:
            cls.broker.terminate()
            try:
                cls.broker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                cls.broker.kill()
                cls.broker.wait()
        cls.log.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- helpers ---------------------------------------------------------------------------

    @classmethod
    def read_log(cls):
        with open(cls.log_path, errors="replace") as f:
            return f.read()

    @classmethod
    def mint(cls, sub, role="user", ttl=3600, org=None, admin=False, key=None):
        argv = [cls.mint_bin, "--key", key or cls.key, "--sub", sub, "--role", role, "--ttl", str(ttl)]
        if org:
            argv += ["--org", org]
        if admin:
            argv.append("--admin")
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()

    @classmethod
    def connect_rc_cls(cls, cid, user, token):
        return raw_connect(cls.port, connect_packet(cid.encode(), user.encode(), token.encode()))

    @classmethod
    def feed_revoked(cls, doc):
        """Publishes the revocation document as dyno-auth does (retained, QoS 1: the PUBACK
        comes after the plugin applied it)."""
        subprocess.run(["mosquitto_pub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(cls.port), "-u", "auth-auth1",
                        "-P", cls.svc, "-i", "auth-auth1", "-t", "dyno/v1/auth/revoked", "-q", "1", "-r",
                        "-m", doc], check=True, capture_output=True, timeout=15)

    def wait_log(self, pattern, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pattern, self.read_log(), re.M):
                return
            time.sleep(0.05)
        self.fail(f"broker never logged /{pattern}/")

    def pub(self, user, token, cid, topic, message, props=(), retain=False, qos=1):
        argv = ["mosquitto_pub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(self.port), "-u", user, "-P", token,
                "-i", cid, "-t", topic, "-q", str(qos), "-m", message]
        if retain:
            argv.append("-r")
        for name, value in props:
            argv += ["-D", "publish", "user-property", name, value] if name != "response-topic" else [
                "-D", "publish", "response-topic", value]
        return subprocess.run(argv, capture_output=True, text=True, timeout=15)

    def svc_pub(self, topic, message, props=(), retain=False):
        r = self.pub("pubsub-ps1", self.svc, "pubsub-ps1", topic, message, props, retain)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("Not authorized", r.stderr)

    def policy(self, catalog, public=False, shares=()):
        doc = {"catalog": catalog, "owner": catalog.split("/")[0], "public": public,
               "shares": [{"principal": p, "kind": k, "access": a} for p, k, a in shares]}
        # QoS 1: the PUBACK comes after the plugin applied the message
        self.svc_pub("dyno/v1/acl/" + catalog, json.dumps(doc), retain=True)

    def sub(self, user, token, cid, topics, fmt="%t %p %P", count=1, wait=5):
        argv = ["mosquitto_sub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(self.port), "-u", user, "-P", token,
                "-i", cid, "-F", fmt, "-W", str(wait)]
        if count:
            argv += ["-C", str(count)]
        for t in topics:
            argv += ["-t", t]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def subscribed(self, cid, topic):
        self.wait_log(r"^\d+: " + re.escape(cid) + r" \d " + re.escape(topic) + "$")

    def raw_connect(self, packet):
        return raw_connect(self.port, packet)

    def connect_rc(self, cid, user, token):
        return self.raw_connect(connect_packet(cid.encode(), user.encode() if isinstance(user, str) else user,
                                               token.encode() if isinstance(token, str) else token))

    def assertBrokerAlive(self):
        self.assertIsNone(self.broker.poll(), "mosquitto died")
        self.assertEqual(self.connect_rc("alive-check", "alive", self.mint("alive")), 0)

    # ---- login -----------------------------------------------------------------------------

    def test_login_valid_and_refused(self):
        alice = self.mint("alice")
        self.assertEqual(self.connect_rc("alice-login", "alice", alice), 0)
        # logged in, but a user may not call services directly
        r = self.pub("alice", alice, "alice-login", "dyno/v1/rpc/metadata/object.begin", "{}")
        self.assertNotIn("Connection error", r.stderr)
        self.assertIn("Not authorized", r.stderr)
        expired = self.mint("alice", ttl=-10)
        foreign = self.mint("alice", key=self.other_key)
        claims, sig = alice.split(".")[1:]
        forged = "dyn1." + base64.urlsafe_b64encode(
            json.dumps({"sub": "alice", "org": "", "adm": True, "role": "user", "exp": 9999999999,
                        "jti": "0" * 32, "iat": 1}).encode()).decode().rstrip("=") + "." + sig
        for bad in (expired, foreign, forged, "garbage", "dyn1.x.y", "dyn1..", alice + "x", alice[:-3], " " + alice):
            self.assertEqual(self.connect_rc("alice-bad", "alice", bad), NOT_AUTHORIZED, bad[:12])
        r = self.pub("alice", expired, "alice-bad", "dyno/v1/ingest/alice/x", "v")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Not authorized", r.stderr)
        # username must be the token's sub; no token, no login
        self.assertEqual(self.connect_rc("bob-as-alice", "bob", alice), NOT_AUTHORIZED)
        self.assertEqual(self.connect_rc("nouser", None, None), NOT_AUTHORIZED)
        self.assertEqual(self.raw_connect(connect_packet(b"nopass", b"alice")), NOT_AUTHORIZED)
        # client ids and usernames with wildcards or '/' are refused
        for cid in ("a+b", "a#", "a/b", "x" * 65):
            self.assertEqual(self.connect_rc(cid, "alice", alice), NOT_AUTHORIZED, cid)
        for user in ("ali+ce", "alice#", "alice/x"):
            self.assertEqual(self.connect_rc("alice-u", user, self.mint("alice")), NOT_AUTHORIZED, user)
        # services: any <kind>-<id> username, nothing else
        self.assertEqual(self.connect_rc("gateway-gw1", "gateway-gw1", self.svc), 0)
        self.assertEqual(self.connect_rc("svc-bad", "service", self.svc), NOT_AUTHORIZED)
        self.assertEqual(self.connect_rc("svc-bad", "Gateway-gw1", self.svc), NOT_AUTHORIZED)
        self.assertNotIn(alice, self.read_log(), "a token was logged")
        self.assertBrokerAlive()

    def test_no_takeover_of_other_principals(self):
        alice, bob = self.mint("alice"), self.mint("bob")
        svc = self.sub("gateway-gw7", self.svc, "gateway-gw7", ["dyno/v1/reply/gateway-gw7"], count=1, wait=8)
        usr = self.sub("bob", bob, "bob-laptop", ["dyno/v1/reply/bob"], count=1, wait=8)
        self.subscribed("gateway-gw7", "dyno/v1/reply/gateway-gw7")
        self.subscribed("bob-laptop", "dyno/v1/reply/bob")
        self.assertEqual(self.connect_rc("gateway-gw7", "alice", alice), NOT_AUTHORIZED)
        self.assertEqual(self.connect_rc("bob-laptop", "alice", alice), NOT_AUTHORIZED)
        self.svc_pub("dyno/v1/reply/gateway-gw7", "still-here")
        self.svc_pub("dyno/v1/reply/bob", "still-here")
        self.assertIn("still-here", svc.communicate(timeout=15)[0])
        self.assertIn("still-here", usr.communicate(timeout=15)[0])
        # the same principal may take its own id over (a reconnect), and a free id is free
        self.assertEqual(self.connect_rc("gateway-gw7", "gateway-gw7", self.svc), 0)
        self.assertEqual(self.connect_rc("bob-laptop", "bob", self.mint("bob")), 0)

    def test_hostile_connects(self):
        alice = self.mint("alice")
        # a 64 KiB - 1 username (the MQTT maximum), a 10 KiB and a 64 KiB password
        self.assertEqual(self.connect_rc("h1", "a" * 65535, alice), NOT_AUTHORIZED)
        self.assertEqual(self.connect_rc("h2", "alice", "p" * 10240), NOT_AUTHORIZED)
        self.assertEqual(self.connect_rc("h3", "alice", alice + "." + "p" * 65000), NOT_AUTHORIZED)
        # 100 KiB where the username should be: its length field cannot describe it
        rc = self.raw_connect(connect_packet(b"h4", None, None, b"\xff\xff" + b"a" * 102400))
        self.assertNotEqual(rc, 0)
        rc = self.raw_connect(connect_packet(b"h5", b"a" * 65535, b"p" * 65535))
        self.assertNotEqual(rc, 0)
        # invalid UTF-8, NUL and controls in the username and the client id
        for user in (b"\xff\xfealice", b"alice\x00", b"al\x01ice", b"\xc0\xaf", b"\xed\xa0\x80"):
            self.assertNotEqual(self.raw_connect(connect_packet(b"h6", user, alice.encode())), 0, user)
        self.assertNotEqual(self.raw_connect(connect_packet(b"\xff\xfe", b"alice", alice.encode())), 0)
        # a token with a NUL inside
        self.assertEqual(self.raw_connect(connect_packet(b"h7", b"alice", b"dyn1.\x00" + alice.encode())),
                         NOT_AUTHORIZED)
        self.assertBrokerAlive()

    # ---- topics ----------------------------------------------------------------------------

    def test_events_follow_the_policy(self):
        self.policy("alice/x", shares=[("bob", "user", "read")])
        alice, bob, carol = self.mint("alice"), self.mint("bob"), self.mint("carol")
        subs = {
            "alice": self.sub("alice", alice, "alice-ev", ["dyno/v1/events/alice/x"]),
            "bob": self.sub("bob", bob, "bob-ev", ["dyno/v1/events/alice/x/#"]),
            # a wildcard over catalogs: allowed, but every message passes the READ check
            "carol": self.sub("carol", carol, "carol-ev", ["dyno/v1/events/#"], count=0, wait=3),
        }
        self.subscribed("alice-ev", "dyno/v1/events/alice/x")
        self.subscribed("bob-ev", "dyno/v1/events/alice/x/#")
        self.subscribed("carol-ev", "dyno/v1/events/#")
        self.svc_pub("dyno/v1/events/alice/x", '{"type":"object.created"}', props=[("type", "object.created")])
        out = {who: p.communicate(timeout=10) for who, p in subs.items()}
        self.assertIn('dyno/v1/events/alice/x {"type":"object.created"} type:object.created', out["alice"][0])
        self.assertIn("dyno/v1/events/alice/x", out["bob"][0])
        self.assertNotIn("alice/x", out["carol"][0])
        # carol may not subscribe to the catalog itself
        p = self.sub("carol", carol, "carol-ev2", ["dyno/v1/events/alice/x"])
        o, e = p.communicate(timeout=10)
        self.assertIn("denied", o + e)
        # retained events are checked too
        self.svc_pub("dyno/v1/events/alice/x", "retained-event", retain=True)
        p = self.sub("carol", carol, "carol-ev3", ["dyno/v1/events/alice/#"], count=1, wait=2)
        o, _ = p.communicate(timeout=10)
        self.assertNotIn("retained-event", o)
        p = self.sub("bob", bob, "bob-ev3", ["dyno/v1/events/alice/x"], count=1, wait=5)
        o, _ = p.communicate(timeout=10)
        self.assertIn("retained-event", o)
        self.svc_pub("dyno/v1/events/alice/x", "", retain=True)

    def test_public_org_and_removed_catalogs(self):
        self.policy("alice/pub", public=True)
        self.policy("alice/labdata", shares=[("lab", "org", "read")])
        carol = self.mint("carol")
        erin = self.mint("erin", org="lab/ct")
        xavier = self.mint("xavier", org="labx")
        self.svc_pub("dyno/v1/events/alice/pub", "pub-event", retain=True)
        self.svc_pub("dyno/v1/events/alice/labdata", "lab-event", retain=True)
        o, _ = self.sub("carol", carol, "carol-pub", ["dyno/v1/events/alice/pub"]).communicate(timeout=10)
        self.assertIn("pub-event", o)
        o, _ = self.sub("erin", erin, "erin-lab", ["dyno/v1/events/alice/labdata"]).communicate(timeout=10)
        self.assertIn("lab-event", o)
        o, e = self.sub("xavier", xavier, "xavier-lab", ["dyno/v1/events/alice/labdata"]).communicate(timeout=10)
        self.assertIn("denied", o + e)
        # an empty retained policy removes the catalog: nobody but services may follow it
        self.svc_pub("dyno/v1/acl/alice/pub", "", retain=True)
        o, e = self.sub("carol", carol, "carol-pub2", ["dyno/v1/events/alice/pub"]).communicate(timeout=10)
        self.assertIn("denied", o + e)
        for t in ("dyno/v1/events/alice/pub", "dyno/v1/events/alice/labdata"):
            self.svc_pub(t, "", retain=True)

    def test_users_may_not_feed_the_policy(self):
        alice = self.mint("alice", admin=True)
        for topic, msg in (("dyno/v1/acl/carol/stolen", json.dumps({"catalog": "carol/stolen", "owner": "carol",
                                                                      "public": True})),
                           ("dyno/v1/auth/revoked", '{"revoked":[]}'),
                           ("dyno/v1/rpc/metadata/object.begin", "{}"),
                           ("dyno/v1/agents/container/c1/status", "{}"),
                           ("dyno/v1/events/alice/x", "{}")):
            r = self.pub("alice", alice, "alice-feed", topic, msg)
            self.assertIn("Not authorized", r.stderr, topic)
        o, e = self.sub("alice", alice, "alice-rpc", ["dyno/v1/rpc/#"]).communicate(timeout=10)
        self.assertIn("denied", o + e)
        self.svc_pub("dyno/v1/events/carol/stolen", "secret", retain=True)
        dave = self.mint("dave")
        o, e = self.sub("dave", dave, "dave-stolen", ["dyno/v1/events/carol/stolen"]).communicate(timeout=10)
        self.assertIn("denied", o + e)
        self.svc_pub("dyno/v1/events/carol/stolen", "", retain=True)

    def test_ingest_write_share_and_stamp(self):
        self.policy("alice/w", shares=[("bob", "user", "read")])
        bob = self.mint("bob")
        gw = self.sub("gateway-gw1", self.svc, "gateway-gw1", ["dyno/v1/ingest/#"], count=0, wait=6)
        self.subscribed("gateway-gw1", "dyno/v1/ingest/#")
        r = self.pub("bob", bob, "bob-ing", "dyno/v1/ingest/alice/w", "before-share")
        self.assertIn("Not authorized", r.stderr)
        self.policy("alice/w", shares=[("bob", "user", "write")])
        r = self.pub("bob", bob, "bob-ing", "dyno/v1/ingest/alice/w", "after-share",
                     props=[("dyno-user", "alice"), ("DYNO-USER", "alice"), ("Dyno-Org", "lab"),
                            ("DYNO-ADMIN", "true"), ("name", "r1"),
                            ("response-topic", "dyno/v1/reply/bob/r1")])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("Not authorized", r.stderr)
        # a Response Topic in someone else's reply tree drops the message
        r = self.pub("bob", bob, "bob-ing", "dyno/v1/ingest/alice/w", "hijack",
                     props=[("response-topic", "dyno/v1/reply/alice/r1")])
        self.assertIn("Not authorized", r.stderr)
        o, _ = gw.communicate(timeout=10)
        lines = [line for line in o.splitlines() if line]
        self.assertNotIn("before-share", o)
        self.assertNotIn("hijack", o)
        self.assertEqual(len(lines), 1, o)
        self.assertEqual(lines[0],
                         "dyno/v1/ingest/alice/w after-share name:r1 dyno-user:bob dyno-org: dyno-admin:false")
        # the other properties survive the stamp
        gw = self.sub("gateway-gw1", self.svc, "gateway-gw1", ["dyno/v1/ingest/alice/w"], fmt="%j", wait=5)
        self.subscribed("gateway-gw1", "dyno/v1/ingest/alice/w")
        subprocess.run(["mosquitto_pub", "-V", "mqttv5", "-p", str(self.port), "-u", "bob", "-P", bob, "-i", "bob-ing",
                        "-t", "dyno/v1/ingest/alice/w", "-q", "1", "-m", "props",
                        "-D", "publish", "content-type", "text/plain",
                        "-D", "publish", "correlation-data", "c0ffee",
                        "-D", "publish", "payload-format-indicator", "1",
                        "-D", "publish", "user-property", "dyno-user", "mallory",
                        "-D", "publish", "user-property", "dyno-admin", "true"], check=True, timeout=15)
        o, _ = gw.communicate(timeout=10)
        msg = json.loads(o.strip().splitlines()[0])
        self.assertEqual(msg["properties"]["user-properties"],
                         {"dyno-user": "bob", "dyno-org": "", "dyno-admin": "false"})
        self.assertEqual(msg["properties"]["content-type"], "text/plain")
        self.assertEqual(msg["properties"]["correlation-data"], "c0ffee")
        self.assertEqual(msg["properties"]["payload-format-indicator"], 1)

    def test_reply_tree(self):
        alice = self.mint("alice")
        p = self.sub("alice", alice, "alice-reply", ["dyno/v1/reply/alice/#"])
        self.subscribed("alice-reply", "dyno/v1/reply/alice/#")
        self.svc_pub("dyno/v1/reply/alice/r9", '{"key":"k"}')
        o, _ = p.communicate(timeout=10)
        self.assertIn('dyno/v1/reply/alice/r9 {"key":"k"}', o)
        for t in ("dyno/v1/reply/bob/#", "dyno/v1/reply/+", "dyno/v1/reply/#"):
            o, e = self.sub("alice", alice, "alice-reply2", [t]).communicate(timeout=10)
            self.assertIn("denied", o + e, t)

    def test_wills(self):
        """The broker checks a Will after the disconnect event: a service's Will goes out, a
        user's Will on ingest never does (it would miss the dyno-user stamp)."""
        self.policy("alice/will", shares=[])
        alice = self.mint("alice")
        watch = self.sub("metadata-md9", self.svc, "metadata-md9",
                         ["dyno/v1/agents/#", "dyno/v1/ingest/alice/will"], count=0, wait=8)
        self.subscribed("metadata-md9", "dyno/v1/ingest/alice/will")
        dying = []
        for user, token, cid, topic in (("container-c9", self.svc, "container-c9", "dyno/v1/agents/container/c9/status"),
                                        ("alice", alice, "alice-will", "dyno/v1/ingest/alice/will")):
            p = subprocess.Popen(["mosquitto_sub", "-V", "mqttv5", "-p", str(self.port), "-u", user, "-P", token,
                                  "-i", cid, "-t", "dyno/v1/reply/" + user + "/x", "--will-topic", topic,
                                  "--will-payload", "gone:" + user, "--will-qos", "1"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            dying.append(p)
            self.subscribed(cid, "dyno/v1/reply/" + user + "/x")
        for p in dying:
            p.kill()  # no DISCONNECT packet: the broker sends the Will
            p.wait()
        o, _ = watch.communicate(timeout=15)
        self.assertIn("dyno/v1/agents/container/c9/status gone:container-c9", o)
        self.assertNotIn("gone:alice", o)

    # ---- token life --------------------------------------------------------------------------

    def test_revocation_kicks(self):
        self.policy("alice/rv", shares=[])
        doomed = self.mint("alice")
        other = self.mint("alice")
        live = self.sub("alice", doomed, "alice-doomed", ["dyno/v1/events/alice/rv"], count=0, wait=60)
        self.subscribed("alice-doomed", "dyno/v1/events/alice/rv")
        start = time.time()
        self.svc_pub("dyno/v1/auth/revoked", json.dumps({"revoked": [{"jti": jti_of(doomed), "exp": 9999999999}]}),
                     retain=True)
        live.communicate(timeout=5)
        self.assertLess(time.time() - start, 5)
        self.assertEqual(self.connect_rc("alice-doomed", "alice", doomed), NOT_AUTHORIZED)
        # her other token still works
        self.assertEqual(self.connect_rc("alice-other", "alice", other), 0)
        # a malformed document makes the revocation state unknown: users are refused (never
        # the older, possibly shorter, list) until a good one arrives; services are not
        self.svc_pub("dyno/v1/auth/revoked", '{"revoked":[{"jti":"nope"}]}')
        self.assertEqual(self.connect_rc("alice-other", "alice", other), NOT_AUTHORIZED)
        self.assertEqual(self.connect_rc("gateway-gw5", "gateway-gw5", self.svc), 0)
        self.feed_revoked(EMPTY_REVOKED)
        self.assertEqual(self.connect_rc("alice-other", "alice", other), 0)
        # the document is the whole state: doomed is no longer listed, so it works again
        self.assertEqual(self.connect_rc("alice-doomed", "alice", doomed), 0)

    def test_fail_closed_until_revocation_list(self):
        self.assertEqual(self.user_before_feed, NOT_AUTHORIZED,
                         "a user logged in before any revocation list was applied")
        self.assertEqual(self.service_before_feed, 0, "services must log in to deliver the list")
        self.assertIn("no revocation list received since start", self.read_log())

    def test_epoch_revokes_every_older_token(self):
        self.policy("erin/ep", shares=[])
        old = self.mint("erin")
        live = self.sub("erin", old, "erin-old", ["dyno/v1/events/erin/ep"], count=0, wait=60)
        self.subscribed("erin-old", "dyno/v1/events/erin/ep")
        time.sleep(1.1)  # the epoch is "issued before T": T must be after old's iat
        before = int(time.time())
        time.sleep(1.1)
        fresh = self.mint("erin")
        self.feed_revoked(json.dumps({"revoked": [], "epochs": [{"sub": "erin", "before": before}]}))
        live.communicate(timeout=5)  # kicked
        self.assertEqual(self.connect_rc("erin-old", "erin", old), NOT_AUTHORIZED)
        self.assertEqual(self.connect_rc("erin-new", "erin", fresh), 0)
        self.assertEqual(self.connect_rc("frank", "frank", self.mint("frank")), 0)
        self.feed_revoked(EMPTY_REVOKED)

    def test_unparseable_policy_denies(self):
        """A policy update that cannot be parsed must not leave the older, wider, policy."""
        self.policy("alice/bad", public=True)
        carol = self.mint("carol")
        self.svc_pub("dyno/v1/events/alice/bad", "bad-event", retain=True)
        o, _ = self.sub("carol", carol, "carol-bad", ["dyno/v1/events/alice/bad"]).communicate(timeout=10)
        self.assertIn("bad-event", o)
        self.svc_pub("dyno/v1/acl/alice/bad", '{"catalog":"alice/bad","owner":"alice","public":"yes"}', retain=True)
        o, e = self.sub("carol", carol, "carol-bad2", ["dyno/v1/events/alice/bad"]).communicate(timeout=10)
        self.assertIn("denied", o + e)
        self.assertNotIn("bad-event", o)
        for t in ("dyno/v1/events/alice/bad", "dyno/v1/acl/alice/bad"):
            self.svc_pub(t, "", retain=True)

    def test_users_may_not_retain_or_publish_big(self):
        """A user's retained message would be kept, and persisted, forever: refused on every
        topic, as is a payload over the ingest limit; services are not concerned."""
        self.policy("gina/r", shares=[])
        gina = self.mint("gina")
        for retain, size in ((True, 10), (False, INGEST_MAX + 1), (True, INGEST_MAX + 1)):
            r = self.pub("gina", gina, "gina-r", "dyno/v1/ingest/gina/r", "x" * size, retain=retain)
            self.assertIn("Not authorized", r.stderr, (retain, size))
        r = self.pub("gina", gina, "gina-r", "dyno/v1/ingest/gina/r", "x" * INGEST_MAX)
        self.assertNotIn("Not authorized", r.stderr)
        # nothing was retained: a new subscriber (a service, who may read it) gets nothing
        o, _ = self.sub("gateway-gw3", self.svc, "gateway-gw3", ["dyno/v1/ingest/gina/r"], count=1,
                        wait=2).communicate(timeout=10)
        self.assertEqual(o.strip(), "")
        self.svc_pub("dyno/v1/ingest/gina/svc", "y" * (INGEST_MAX * 4), retain=True)
        self.svc_pub("dyno/v1/ingest/gina/svc", "", retain=True)

    def test_service_names_are_no_user_names(self):
        """A user named like a service would own its reply topic (dyno/v1/reply/<name>)."""
        for name in ("gateway-gw1", "pubsub-ps1", "auth-auth1", "container-c1", "metadata-md1", "service"):
            self.assertEqual(self.connect_rc("u-" + name, name, self.mint(name)), NOT_AUTHORIZED, name)
        self.assertEqual(self.connect_rc("gw-fan", "gateway", self.mint("gateway")), 0)

    def test_the_bridge_client_id_is_nobodys_login(self):
        # A site broker's bridge context brings the policy and revocation feeds in: a client
        # logging in with its id would take its session (and be trusted for the feeds), so
        # nobody may, not even with the service token; bridge-* names are services'.
        self.assertEqual(self.connect_rc(BRIDGE_ID, BRIDGE_ID, self.svc), NOT_AUTHORIZED)
        self.assertEqual(self.connect_rc(BRIDGE_ID, "alice", self.mint("alice")), NOT_AUTHORIZED)
        self.assertEqual(self.connect_rc("bridge-x", "alice", self.mint("alice")), NOT_AUTHORIZED)
        self.assertEqual(self.connect_rc("alice-1", "bridge-x", self.mint("bridge-x")), NOT_AUTHORIZED)
        self.assertEqual(self.connect_rc("bridge-site-9", "bridge-site-9", self.svc), 0)
        self.assertIn("the bridge's client id", self.read_log())

    def test_services_read_sys_users_do_not(self):
        # $SYS/broker/... is how a site broker's drops and bridge state are watched
        def sys_sub(cid, user, token):
            return subprocess.run(["mosquitto_sub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(self.port),
                                   "-u", user, "-P", token, "-i", cid, "-t", "$SYS/broker/uptime",
                                   "-C", "1", "-W", "5"], capture_output=True, text=True, timeout=30)
        svc = sys_sub("metadata-sys", "metadata-sys", self.svc)
        self.assertEqual(svc.returncode, 0, svc.stderr)
        self.assertRegex(svc.stdout, r"\d+ seconds")
        user = sys_sub("alice-sys", "alice", self.mint("alice"))
        self.assertEqual(user.stdout, "", "a user read $SYS")
        self.assertIn("denied", user.stderr.lower())

    def test_expired_token_is_kicked(self):
        self.policy("alice/exp", shares=[])
        short = self.mint("alice", ttl=2)
        live = self.sub("alice", short, "alice-short", ["dyno/v1/events/alice/exp"], count=0, wait=60)
        self.subscribed("alice-short", "dyno/v1/events/alice/exp")
        live.communicate(timeout=6)
        self.wait_log(r"kicking alice-short")


if __name__ == "__main__":
    unittest.main()
