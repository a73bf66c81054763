"""`dynostore up --tls` (issue 3, SPEC §7): the gateway speaks HTTPS and the broker only TLS,
both with a certificate of the CA generated in DATA/tls; every agent reaches the broker over
TLS (the fabric would never get ready otherwise), and the CLI, libdynostore (under the CLI),
Python's ssl and Debian's mosquitto clients verify against that CA, so a client that trusts
another CA, or only the system's, is refused before any byte of data moves.
"""
import http.client
import json
import os
import select
import shutil
import ssl
import subprocess
import tempfile
import time
import unittest

from fabric import HTTP_TIMEOUT, Fabric, FabricCase, write_random_file, sha256_file, MiB

NOT_AUTHORIZED = 135
SUB_TIMED_OUT = 27


class TlsFabric(Fabric):
    """The harness over HTTPS, verifying the gateway against DATA/tls/ca.crt."""

    @property
    def cafile(self):
        return os.path.join(self.data, "tls", "ca.crt")

    def conn(self, timeout=HTTP_TIMEOUT):
        h, p = self.host_port
        if not self.gateway.startswith("https://"):
            raise AssertionError("gateway is not https: %s" % self.gateway)
        ctx = ssl.create_default_context(cafile=self.cafile)
        return http.client.HTTPSConnection(h, p, timeout=timeout, context=ctx)


def make_other_ca(folder):
    """A CA (self-signed certificate) that signed nothing of the fabric's."""
    key, crt = os.path.join(folder, "other-ca.key"), os.path.join(folder, "other-ca.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/O=Elsewhere/CN=other CA",
                    "-addext", "basicConstraints=critical,CA:TRUE"],
                   check=True, capture_output=True)
    return crt


class TlsTest(FabricCase):
    CONTAINERS = 3

    @classmethod
    def setUpClass(cls):
        for tool in ("openssl", "mosquitto_sub", "mosquitto_pub"):
            if not shutil.which(tool):
                raise AssertionError("%s is needed" % tool)
        cls.fab = TlsFabric(containers=cls.CONTAINERS, extra_up_args=["--tls"], name="tlstest")
        f = cls.fab
        cls.other_ca = make_other_ca(f.work)
        cls.port = f.fabric["broker"]["port"]
        with open(f.fabric["service_token_file"]) as fh:
            cls.svc = fh.read().strip()
        r = f.http("POST", "/v1/users", body=json.dumps({"username": "alice", "password": "alice-pass-1234"}))
        assert r.status == 201, (r.status, r.body)
        r = f.http("POST", "/v1/auth/login", token=None,
                   body=json.dumps({"username": "alice", "password": "alice-pass-1234"}))
        assert r.status == 200, (r.status, r.body)
        cls.alice = r.json()["token"]
        cls.alice_file = os.path.join(f.work, "alice.token")
        with open(cls.alice_file, "w") as fh:
            fh.write(cls.alice + "\n")
        f.create_catalog("alice/tls", token=cls.alice)

    def mq(self, user, token, cafile, cid=None):
        a = ["-V", "mqttv5", "-h", "127.0.0.1", "-p", str(self.port), "-u", user, "-P", token]
        if cafile:
            a += ["--cafile", cafile]
        if cid:
            a += ["-i", cid]
        return a

    def test_layout(self):
        f = self.fab
        self.assertTrue(f.gateway.startswith("https://127.0.0.1:"), f.gateway)
        self.assertTrue(f.fabric["broker"].get("tls"))
        self.assertEqual(f.fabric.get("cacert"), f.cafile)
        with open(os.path.join(f.data, "broker", "mosquitto.conf")) as fh:
            conf = fh.read()
        for line in ("certfile ", "keyfile ", "allow_anonymous false", "plugin "):
            self.assertIn(line, conf)
        self.assertEqual(conf.count("listener "), 1, "a plain listener besides the TLS one")
        for name in ("ca.key", "server.key"):
            self.assertEqual(os.stat(os.path.join(f.data, "tls", name)).st_mode & 0o077, 0, name)
        # every agent logged into the TLS broker: their configs say so and the fabric is up
        for agent in ("gateway", "metadata", "pubsub", "auth"):
            with open(os.path.join(f.data, agent, "config.json")) as fh:
                self.assertEqual(json.load(fh).get("broker_cafile"), f.cafile, agent)
        self.assertEqual(len([c for c in f.containers_info() if c["state"] == "online"]), self.CONTAINERS)
        self.assertIs(f.http("GET", "/healthz", token=None).json().get("broker"), True)
        # the CLI settings written by up carry the CA
        with open(os.path.join(f.home, ".config", "dynostore", "config.json")) as fh:
            self.assertEqual(json.load(fh).get("cacert"), f.cafile)

    def test_plain_http_refused(self):
        h, p = self.fab.host_port
        c = http.client.HTTPConnection(h, p, timeout=10)
        try:
            with self.assertRaises((http.client.HTTPException, ConnectionError, OSError)):
                c.request("GET", "/healthz")
                r = c.getresponse()
                r.read()
                if r.status:
                    raise AssertionError("plain HTTP answered %d on the HTTPS port" % r.status)
        finally:
            c.close()

    def test_https_roundtrip_python(self):
        f = self.fab
        data = os.urandom(300 * 1024)
        r = f.put_bytes("alice/tls", data, name="py", token=self.alice)
        self.assertEqual(r.status, 201, r.body)
        g = f.get_object(r.json()["key"], token=self.alice)
        self.assertEqual((g.status, g.body), (200, data))
        ctx = ssl.create_default_context(cafile=self.other_ca)
        h, p = f.host_port
        c = http.client.HTTPSConnection(h, p, timeout=10, context=ctx)
        try:
            with self.assertRaises(ssl.SSLCertVerificationError):
                c.request("GET", "/healthz")
        finally:
            c.close()

    def test_cli_roundtrip_and_wrong_ca(self):
        f = self.fab
        src = os.path.join(f.work, "in.bin")
        digest = write_random_file(src, 3 * MiB + 17, seed=7)
        # bare: the CLI finds the gateway, the token and the CA in its settings
        f.create_catalog("admin/tlscli")
        cp = f.cli("--json", "put", src, "--catalog", "admin/tlscli", settings=False)
        doc = json.loads(cp.stdout)
        doc = doc[0] if isinstance(doc, list) else doc
        out = os.path.join(f.work, "out.bin")
        f.cli("get", doc["key"], "-o", out, settings=False)
        self.assertEqual(sha256_file(out), digest)
        # explicit flags, as alice
        cp = f.cli("--gateway", f.gateway, "--token-file", self.alice_file, "--cacert", f.cafile, "--json",
                   "put", src, "--catalog", "alice/tls", "--name", "cli", settings=False)
        key = json.loads(cp.stdout)
        key = (key[0] if isinstance(key, list) else key)["key"]
        os.unlink(out)
        f.cli("--gateway", f.gateway, "--token-file", self.alice_file, "--cacert", f.cafile,
              "get", key, "-o", out, settings=False)
        self.assertEqual(sha256_file(out), digest)

        # another CA: refused before anything is sent
        n_before = len(f.list_catalog("alice/tls", token=self.alice))
        for extra in (["--cacert", self.other_ca], []):
            empty_home = tempfile.mkdtemp(dir=f.work)  # no settings, so no cacert: system CAs only
            env = {"HOME": empty_home, "XDG_CONFIG_HOME": os.path.join(empty_home, ".config")}
            cp = f.cli("--gateway", f.gateway, "--token-file", self.alice_file, *extra,
                       "put", src, "--catalog", "alice/tls", "--name", "nope", settings=False, check=False,
                       env=env)
            self.assertNotEqual(cp.returncode, 0, "put with %r succeeded" % (extra,))
            self.assertRegex(cp.stderr.lower(), "certificate|tls|ssl", cp.stderr)
            self.assertNotIn(self.alice, cp.stderr)
            cp = f.cli("--gateway", f.gateway, "--token-file", self.alice_file, *extra,
                       "get", key, "-o", os.path.join(f.work, "nope.bin"), settings=False, check=False, env=env)
            self.assertNotEqual(cp.returncode, 0)
            self.assertFalse(os.path.exists(os.path.join(f.work, "nope.bin")))
        self.assertEqual(len(f.list_catalog("alice/tls", token=self.alice)), n_before)

    def test_mqtt_over_tls(self):
        f = self.fab
        sub = subprocess.Popen(["mosquitto_sub"] + self.mq("alice", self.alice, f.cafile)
                               + ["-t", "dyno/v1/events/alice/tls", "-v"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        got = None
        try:
            deadline = time.monotonic() + 15
            n = 0
            while time.monotonic() < deadline and got is None:
                n += 1
                cp = subprocess.run(["mosquitto_pub"] + self.mq("pubsub-tlsit", self.svc, f.cafile, "pubsub-tlsit")
                                    + ["-t", "dyno/v1/events/alice/tls", "-q", "1", "-m", json.dumps(
                                        {"type": "object.created", "catalog": "alice/tls",
                                         "time": int(time.time() * 1000),
                                         "object": {"key": "0" * 32, "name": "tls-%d" % n, "size": 0,
                                                    "sha256": "0" * 64}})],
                                    capture_output=True, text=True, timeout=30)
                self.assertEqual(cp.returncode, 0, cp.stderr)
                time.sleep(0.3)
                if sub.poll() is not None:
                    break
                # non-blocking check: the subscriber prints one line per message
                r, _, _ = select.select([sub.stdout], [], [], 0.2)
                if r:
                    got = sub.stdout.readline().strip()
        finally:
            sub.terminate()
            try:
                _, err = sub.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                sub.kill()
                _, err = sub.communicate()
        self.assertTrue(got and got.startswith("dyno/v1/events/alice/tls {") and '"tls-' in got,
                        "no event over TLS (got %r, stderr %r)" % (got, err))

        def login(extra_args, cafile):
            return subprocess.run(["mosquitto_sub"] + self.mq("alice", self.alice, cafile) + extra_args
                                  + ["-t", "dyno/v1/reply/alice/#", "-W", "2", "-C", "1"],
                                  capture_output=True, text=True, timeout=30)
        cp = login([], f.cafile)
        self.assertEqual(cp.returncode, SUB_TIMED_OUT, cp.stderr)  # control: logged in, waited
        cp = login([], self.other_ca)
        self.assertNotIn(cp.returncode, (0, SUB_TIMED_OUT), "broker accepted a CA it is not signed by")
        cp = login([], None)  # plain MQTT to the TLS listener
        self.assertNotIn(cp.returncode, (0, SUB_TIMED_OUT), "plain MQTT accepted on the TLS listener")
        cp = subprocess.run(["mosquitto_sub"] + self.mq("alice", "dyn1.bad.token", f.cafile)
                            + ["-t", "dyno/v1/reply/alice/#", "-W", "2", "-C", "1"],
                            capture_output=True, text=True, timeout=30)
        self.assertEqual(cp.returncode, NOT_AUTHORIZED, "the plugin still checks tokens over TLS")


class TlsSiteBrokers(FabricCase):
    """`up --tls --sites 3 --site-brokers` (issue 13: the bridge uses TLS when --tls): a site
    broker listens with TLS only, its bridge reaches the core over TLS, so a reading published
    at site-2 is stored at the core and its event comes back to a subscriber at site-2."""
    CONTAINERS = 5

    @classmethod
    def setUpClass(cls):
        cls.fab = TlsFabric(containers=cls.CONTAINERS, extra_up_args=["--tls", "--sites", "3", "--site-brokers"],
                            name="tlssites")
        f = cls.fab
        r = f.http("POST", "/v1/users", body=json.dumps({"username": "alice", "password": "alice-pass-1234"}))
        assert r.status == 201, (r.status, r.body)
        r = f.http("POST", "/v1/auth/login", token=None,
                   body=json.dumps({"username": "alice", "password": "alice-pass-1234"}))
        assert r.status == 200, (r.status, r.body)
        cls.alice = r.json()["token"]
        f.create_catalog("alice/edge", token=cls.alice)

    def site_mq(self, cafile):
        sb = self.fab.site_broker("site-2")
        a = ["-V", "mqttv5", "-h", "127.0.0.1", "-p", str(sb["port"]), "-u", "alice", "-P", self.alice]
        return a + (["--cafile", cafile] if cafile else [])

    def test_reading_crosses_a_tls_bridge_and_its_event_comes_back(self):
        f = self.fab
        sb = f.site_broker("site-2")
        self.assertTrue(sb["tls"], sb)
        with open(f.site_broker_conf("site-2")) as fh:
            conf = fh.read()
        self.assertIn("bridge_cafile", conf)  # both bridge connections verify the core's certificate
        # plain MQTT to the site's TLS listener is refused
        cp = subprocess.run(["mosquitto_sub"] + self.site_mq(None) + ["-t", "dyno/v1/events/alice/edge",
                                                                       "-W", "2", "-C", "1"],
                            capture_output=True, text=True, timeout=30)
        self.assertNotIn(cp.returncode, (0, SUB_TIMED_OUT), "plain MQTT accepted on the site's TLS listener")
        sub = subprocess.Popen(["mosquitto_sub"] + self.site_mq(f.cafile)
                               + ["-t", "dyno/v1/events/alice/edge", "-q", "1", "-C", "1", "-W", "90"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(1)  # the subscription is in place before the reading
            cp = subprocess.run(["mosquitto_pub"] + self.site_mq(f.cafile)
                                + ["-t", "dyno/v1/ingest/alice/edge", "-q", "1", "-m", "t=21.5",
                                   "-D", "publish", "user-property", "name", "tls-r1"],
                                capture_output=True, text=True, timeout=30)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            deadline = time.monotonic() + 90
            objs = []
            while time.monotonic() < deadline:
                objs = [o for o in f.list_catalog("alice/edge", token=self.alice) if o["name"] == "tls-r1"]
                if objs:
                    break
                time.sleep(0.5)
            self.assertEqual(len(objs), 1, "the reading published at site-2 was not stored at the core")
            r = f.get_object(objs[0]["key"], token=self.alice)
            self.assertEqual((r.status, r.body), (200, b"t=21.5"))
            out, err = sub.communicate(timeout=100)
        finally:
            if sub.poll() is None:
                sub.kill()
                sub.communicate()
        ev = json.loads(out.strip().splitlines()[0]) if out.strip() else None
        self.assertTrue(ev and ev.get("type") == "object.created" and ev["object"]["name"] == "tls-r1",
                        "no object.created at site-2 over the TLS bridge: %r %r" % (out, err))


if __name__ == "__main__":
    unittest.main()
