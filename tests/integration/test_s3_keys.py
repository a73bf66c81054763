"""S3 access keys (issue 14, part "s3-keys"; docs/s3.md "Access keys").

One fabric from `dynostore up`. dyno-auth's key.* RPCs are driven over MQTT as a service (the
gateway's identity: only services may publish RPCs, lib/acl.h), the REST routes and the CLI as
users:

  - create returns a 20-character id and a 40-character secret once; list never shows a secret;
    key.lookup (what the gateway asks) answers the owner and the same secret;
  - the secret is not in the auth database's bytes (it is sealed under keys/s3-master.key);
  - another user can neither list nor revoke your keys; revoke publishes the key id on
    dyno/v1/auth/keys/revoked and lookup answers not_found at once;
  - bad input is refused and creates nothing; the per-user limit holds;
  - a restarted dyno-auth keeps the keys; with another master key the secrets do not open,
    and without the master key file dyno-auth refuses to start rather than make a new one.
"""
import base64
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import unittest

from fabric import FabricCase, wait_exit

AWS = "/usr/bin/aws"  # Debian's awscli
DEBIAN_PY = "/usr/bin/python3"  # Debian's boto3 (the python3 on PATH may be another)
REVOKE_BOUND = 5.0  # seconds: issue 14, "revocation reaches every endpoint within 5 s"
ID_RE = re.compile(r"^DK[A-Z0-9]{18}$")
SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{40}$")


class Sub:
    """A mosquitto_sub whose '-v' lines a thread collects."""

    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.t.join(timeout=5)
        self.p.stdout.close()


class S3KeysTest(FabricCase):
    CONTAINERS = 3
    USERS = {"alice": "alice-pass-1234", "bob": "bob-pass-12345"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        f = cls.fab
        cls.port = f.fabric["broker"]["port"]
        with open(f.fabric["service_token_file"]) as fh:
            cls.svc = fh.read().strip()
        cls.tok = {"admin": f.token}
        for user, pw in cls.USERS.items():
            r = f.http("POST", "/v1/users", body=json.dumps({"username": user, "password": pw}))
            assert r.status == 201, (r.status, r.body)
            r = f.http("POST", "/v1/auth/login", token=None, body=json.dumps({"username": user, "password": pw}))
            assert r.status == 200, (r.status, r.body)
            cls.tok[user] = r.json()["token"]

    # ---- helpers -------------------------------------------------------------------------

    @classmethod
    def mq(cls, cid):
        return ["-V", "mqttv5", "-h", "127.0.0.1", "-p", str(cls.port), "-u", cid, "-P", cls.svc, "-i", cid]

    @classmethod
    def rpc(cls, method, params, caller=None):
        """An auth RPC as the gateway's service identity; the reply document."""
        cid = "gateway-s3k%d" % os.getpid()
        if caller is not None:
            params = dict(params, caller={"sub": caller, "org": "", "admin": caller == "admin"})
        argv = ["mosquitto_rr"] + cls.mq(cid) + ["-t", "dyno/v1/rpc/auth/" + method, "-e",
                                                  "dyno/v1/reply/" + cid, "-m", json.dumps(params), "-W", "10"]
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert cp.returncode == 0, (method, cp.returncode, cp.stderr)
        return json.loads(cp.stdout)

    def ok(self, doc):
        self.assertTrue(doc.get("ok"), doc)
        return doc["result"]

    def err(self, doc, code):
        self.assertFalse(doc.get("ok"), doc)
        self.assertEqual(doc["error"]["code"], code, doc)
        return doc["error"]["message"]

    def create(self, user, description=None):
        params = {} if description is None else {"description": description}
        res = self.ok(self.rpc("key.create", params, caller=user))
        self.assertRegex(res["access_key_id"], ID_RE)
        self.assertRegex(res["secret_access_key"], SECRET_RE)
        self.assertEqual(res["user"], user)
        return res

    def listed(self, who, **params):
        return [k["access_key_id"] for k in self.ok(self.rpc("key.list", params, caller=who))["keys"]]

    def watch_revocations(self):
        cid = "gateway-s3kw%d" % os.getpid()
        s = Sub(["mosquitto_sub"] + self.mq(cid) + ["-v", "-t", "dyno/v1/auth/keys/revoked"])
        self.addCleanup(s.stop)
        time.sleep(0.5)  # subscribed before what it must see
        return s

    def user_cli(self, user, *args, check=True):
        """`dynostore` as user (a token file of theirs)."""
        tf = os.path.join(self.fab.work, user + ".token")
        if not os.path.exists(tf):
            with open(tf, "w") as fh:
                fh.write(self.tok[user])
        return self.fab.cli("--gateway", self.fab.gateway, "--token-file", tf, *args, settings=False, check=check)

    def auth_name(self):
        return self.fab.names("auth")[0]

    def restart_auth(self, *extra):
        """dyno-auth killed (-9) and started again from its command line plus extra."""
        name = self.auth_name()
        self.fab.kill(name)
        self.fab.restart(name, list(extra))
        # serving again: an RPC is answered
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if "ok" in self.rpc("key.list", {}, caller="admin"):
                    return
            except AssertionError:
                pass
            time.sleep(0.2)
        self.fail("dyno-auth does not answer after its restart")

    def master_file(self):
        return os.path.join(self.fab.data, "keys", "s3-master.key")

    def auth_files(self):
        """The auth database and its WAL/SHM companions."""
        return sorted(glob.glob(os.path.join(self.fab.data, "auth", "auth.db*")))

    # ---- RPC level -------------------------------------------------------------------------

    def test_create_lookup_list(self):
        k = self.create("alice", "laptop rclone")
        res = self.ok(self.rpc("key.lookup", {"access_key_id": k["access_key_id"]}))
        self.assertEqual(res["user"], "alice")
        self.assertEqual(res["secret_access_key"], k["secret_access_key"])
        self.assertIs(res["admin"], False)
        keys = self.ok(self.rpc("key.list", {}, caller="alice"))["keys"]
        mine = [x for x in keys if x["access_key_id"] == k["access_key_id"]]
        self.assertEqual(len(mine), 1, keys)
        self.assertEqual(mine[0]["description"], "laptop rclone")
        self.assertNotIn(k["secret_access_key"], json.dumps(keys), "list shows no secret")
        self.assertNotIn("secret_access_key", mine[0])
        # the secret is in no byte of the database files
        secret = k["secret_access_key"].encode()
        raw = base64.urlsafe_b64decode(secret)  # the 30 random bytes it encodes
        files = self.auth_files()
        self.assertTrue(any(p.endswith("auth.db") for p in files), files)
        for path in files:
            with open(path, "rb") as fh:
                data = fh.read()
            self.assertNotIn(secret, data, path)
            self.assertNotIn(raw, data, path)
        # two keys never share an id or a secret
        k2 = self.create("alice")
        self.assertNotEqual(k2["access_key_id"], k["access_key_id"])
        self.assertNotEqual(k2["secret_access_key"], k["secret_access_key"])

    def test_other_user_cannot_list_or_revoke(self):
        k = self.create("alice")
        self.assertNotIn(k["access_key_id"], self.listed("bob"))
        self.err(self.rpc("key.list", {"user": "alice"}, caller="bob"), "forbidden")
        self.err(self.rpc("key.list", {"all": True}, caller="bob"), "forbidden")
        self.err(self.rpc("key.revoke", {"access_key_id": k["access_key_id"]}, caller="bob"), "forbidden")
        res = self.ok(self.rpc("key.lookup", {"access_key_id": k["access_key_id"]}))
        self.assertEqual(res["secret_access_key"], k["secret_access_key"], "bob's revoke changed nothing")
        # an admin sees and may revoke anyone's
        self.assertIn(k["access_key_id"], self.listed("admin", user="alice"))
        self.assertIn(k["access_key_id"], self.listed("admin", all=True))

    def test_revoke_publishes_and_lookup_fails(self):
        k = self.create("alice")
        kid = k["access_key_id"]
        sub = self.watch_revocations()
        res = self.ok(self.rpc("key.revoke", {"access_key_id": kid}, caller="alice"))
        self.assertIs(res["revoked"], True)
        self.err(self.rpc("key.lookup", {"access_key_id": kid}), "not_found")
        self.assertNotIn(kid, self.listed("alice"))
        deadline = time.monotonic() + REVOKE_BOUND
        while time.monotonic() < deadline and not any(kid in line for line in sub.lines):
            time.sleep(0.1)
        line = [x for x in sub.lines if kid in x]
        self.assertTrue(line, "no revocation message for %s within %.0f s: %r" % (kid, REVOKE_BOUND, sub.lines))
        topic, payload = line[0].split(" ", 1)
        self.assertEqual(topic, "dyno/v1/auth/keys/revoked")
        self.assertEqual(json.loads(payload), {"revoked": [kid]})
        # a repeated revoke is answered (and published again); an unknown id is not_found
        self.ok(self.rpc("key.revoke", {"access_key_id": kid}, caller="alice"))
        self.err(self.rpc("key.revoke", {"access_key_id": "DK" + "0" * 18}, caller="alice"), "not_found")
        self.err(self.rpc("key.lookup", {"access_key_id": "DK" + "0" * 18}), "not_found")

    def test_bad_input_changes_nothing(self):
        before = self.listed("alice")
        for params, what in (({"description": "a\nb"}, "control character"),
                             ({"description": "x" * 257}, "too long"),
                             ({"description": 5}, "not a string")):
            self.err(self.rpc("key.create", params, caller="alice"), "bad_request")
        for bad in ("", "dk" + "0" * 18, "DK" + "0" * 17, "DK" + "0" * 19, "AKIA" + "0" * 16, "DK" + "a" * 18,
                    "DK00000000000000000/", 7, None):
            self.err(self.rpc("key.revoke", {"access_key_id": bad}, caller="alice"), "bad_request")
            self.err(self.rpc("key.lookup", {"access_key_id": bad}), "bad_request")
        self.err(self.rpc("key.create", {}), "unauthorized")  # no caller
        self.err(self.rpc("key.list", {"user": "../x"}, caller="alice"), "bad_request")
        self.assertEqual(self.listed("alice"), before, "nothing created or revoked")

    def test_users_cannot_reach_lookup_or_the_feed(self):
        """key.lookup hands out secrets: only services reach dyno/v1/rpc/... (the broker plugin's
        topic rule, lib/acl.h), and the revocation feed is theirs too."""
        k = self.create("alice")
        user = ["-V", "mqttv5", "-h", "127.0.0.1", "-p", str(self.port), "-u", "alice", "-P", self.tok["alice"],
                "-i", "alice-s3k%d" % os.getpid()]
        cp = subprocess.run(["mosquitto_rr"] + user + ["-t", "dyno/v1/rpc/auth/key.lookup", "-e",
                                                       "dyno/v1/reply/alice/s3k", "-m",
                                                       json.dumps({"access_key_id": k["access_key_id"]}), "-W", "3"],
                            capture_output=True, text=True, timeout=30)
        self.assertNotEqual(cp.returncode, 0, "alice got an answer: %r" % cp.stdout)
        self.assertNotIn(k["secret_access_key"], cp.stdout + cp.stderr)
        cp = subprocess.run(["mosquitto_sub"] + user + ["-t", "dyno/v1/auth/keys/revoked", "-W", "2", "-C", "1"],
                            capture_output=True, text=True, timeout=30)
        self.assertNotEqual(cp.returncode, 27, "alice subscribed to the key revocations (%s)" % cp.stderr)
        self.assertIn("denied", cp.stderr)

    # ---- REST and CLI ----------------------------------------------------------------------

    def test_rest_create_list_revoke(self):
        f = self.fab
        r = f.http("POST", "/v1/keys", body=json.dumps({"description": "boto3 on the cluster"}), token=self.tok["alice"])
        self.assertEqual(r.status, 201, r.body)
        k = r.json()
        self.assertRegex(k["access_key_id"], ID_RE)
        self.assertRegex(k["secret_access_key"], SECRET_RE)
        self.assertIsInstance(k["created"], int)
        self.assertEqual(k["user"], "alice")
        kid = k["access_key_id"]
        r = f.http("POST", "/v1/keys", token=self.tok["alice"])  # an empty body is {}
        self.assertEqual(r.status, 201, r.body)
        r = f.http("GET", "/v1/keys", token=self.tok["alice"])
        self.assertEqual(r.status, 200, r.body)
        self.assertIn(kid, [x["access_key_id"] for x in r.json()["keys"]])
        self.assertNotIn(k["secret_access_key"].encode(), r.body, "GET /v1/keys shows no secret")
        self.assertNotIn(b"secret", r.body)
        # the secret reaches the gateway's lookup
        res = self.ok(self.rpc("key.lookup", {"access_key_id": kid}))
        self.assertEqual((res["user"], res["secret_access_key"]), ("alice", k["secret_access_key"]))
        # bob: neither list nor revoke alice's keys
        r = f.http("GET", "/v1/keys", token=self.tok["bob"])
        self.assertEqual(r.status, 200, r.body)
        self.assertNotIn(kid.encode(), r.body)
        self.assertJsonError(f.http("GET", "/v1/keys?user=alice", token=self.tok["bob"]), 403, "forbidden")
        self.assertJsonError(f.http("GET", "/v1/keys?all=1", token=self.tok["bob"]), 403, "forbidden")
        self.assertJsonError(f.http("DELETE", "/v1/keys/" + kid, token=self.tok["bob"]), 403, "forbidden")
        self.ok(self.rpc("key.lookup", {"access_key_id": kid}))
        r = f.http("GET", "/v1/keys?user=alice")  # the admin
        self.assertEqual(r.status, 200, r.body)
        self.assertIn(kid.encode(), r.body)
        # bad input: clear errors, nothing created
        before = self.listed("alice")
        for body in ("[]", "{", json.dumps({"description": 3}), json.dumps({"description": "a\u0001"})):
            self.assertJsonError(f.http("POST", "/v1/keys", body=body, token=self.tok["alice"]), 400, "bad_request",
                                 msg=body)
        self.assertJsonError(f.http("DELETE", "/v1/keys/nope", token=self.tok["alice"]), 400, "bad_request")
        self.assertJsonError(f.http("DELETE", "/v1/keys/" + "DK" + "1" * 18, token=self.tok["alice"]), 404,
                             "not_found")
        self.assertJsonError(f.http("PUT", "/v1/keys", token=self.tok["alice"]), 405)
        self.assertJsonError(f.http("GET", "/v1/keys", token=None), 401, "unauthorized")
        self.assertJsonError(f.http("POST", "/v1/keys", token=None), 401, "unauthorized")
        self.assertEqual(self.listed("alice"), before, "nothing created")
        # revoke: gone from the list, lookup fails
        r = f.http("DELETE", "/v1/keys/" + kid, token=self.tok["alice"])
        self.assertEqual(r.status, 200, r.body)
        self.assertIs(r.json()["revoked"], True)
        self.err(self.rpc("key.lookup", {"access_key_id": kid}), "not_found")
        r = f.http("GET", "/v1/keys", token=self.tok["alice"])
        self.assertNotIn(kid, [x["access_key_id"] for x in r.json()["keys"]])

    def test_cli_create_list_revoke(self):
        cp = self.user_cli("bob", "key", "create", "--description", "rclone at site B")
        lines = dict(line.split(None, 1) for line in cp.stdout.strip().splitlines())
        kid, secret = lines["access_key_id"], lines["secret_access_key"]
        self.assertRegex(kid, ID_RE)
        self.assertRegex(secret, SECRET_RE)
        self.assertNotIn(secret, cp.stderr, "the secret only on stdout")
        self.assertIn("dynostore key revoke " + kid, cp.stderr)
        self.assertEqual(self.ok(self.rpc("key.lookup", {"access_key_id": kid}))["secret_access_key"], secret)
        doc = json.loads(self.user_cli("bob", "--json", "key", "create").stdout)
        self.assertRegex(doc["secret_access_key"], SECRET_RE)
        cp = self.user_cli("bob", "key", "list")
        self.assertIn(kid, cp.stdout)
        self.assertIn("rclone at site B", cp.stdout)
        self.assertNotIn(secret, cp.stdout)
        listed = json.loads(self.user_cli("bob", "--json", "key", "list").stdout)["keys"]
        self.assertIn(kid, [x["access_key_id"] for x in listed])
        self.assertNotIn(secret, json.dumps(listed))
        # alice cannot revoke or list bob's: a clear error, and the key still works
        cp = self.user_cli("alice", "key", "revoke", kid, check=False)
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("not yours", cp.stderr)
        cp = self.user_cli("alice", "key", "list", "--user", "bob", check=False)
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("admin", cp.stderr)
        self.ok(self.rpc("key.lookup", {"access_key_id": kid}))
        # usage errors are caught before any request
        for args in (("key", "revoke", "nope"), ("key", "revoke"), ("key", "create", "extra"), ("key", "frob"),
                     ("key", "list", "--user", "bob", "--all")):
            cp = self.user_cli("bob", *args, check=False)
            self.assertEqual(cp.returncode, 2, (args, cp.stdout, cp.stderr))
        # the admin lists everyone's
        self.assertIn(kid, self.fab.cli("key", "list", "--all").stdout)
        cp = self.user_cli("bob", "key", "revoke", kid)
        self.assertIn("revoked", cp.stdout)
        self.err(self.rpc("key.lookup", {"access_key_id": kid}), "not_found")
        self.assertNotIn(kid, self.user_cli("bob", "key", "list").stdout)

    # ---- through the gateways' S3 listeners (agents/gateway/s3.c) ----------------------

    def s3_gateways(self):
        """Two more gateways with an S3 listener each (class-wide, started once): their URLs."""
        cls = type(self)
        if getattr(cls, "s3_urls", None) is None:
            urls = []
            for gid in ("s3a", "s3b"):
                pf = os.path.join(self.fab.tmp, "gateway-%s.s3port" % gid)
                self.fab.start_gateway(gid, extra={"s3_port": 0, "s3_port_file": pf})
                deadline = time.monotonic() + 30
                port = 0
                while time.monotonic() < deadline and not port:
                    try:
                        with open(pf) as fh:
                            port = int(fh.read().strip() or 0)
                    except (OSError, ValueError):
                        time.sleep(0.1)
                self.assertTrue(port, "no S3 port written by gateway-" + gid)
                urls.append("http://127.0.0.1:%d" % port)
            cls.s3_urls = urls
        return cls.s3_urls

    def probe(self, *args, stdin=None):
        """tests/integration/s3keys_probe.py under Debian's python3 (boto3)."""
        if not os.access(DEBIAN_PY, os.X_OK):
            self.skipTest("%s (with python3-boto3) is needed" % DEBIAN_PY)
        here = os.path.dirname(os.path.abspath(__file__))
        return subprocess.Popen([DEBIAN_PY, os.path.join(here, "s3keys_probe.py")] + [str(a) for a in args],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def probe_once(self, kid, secret, urls):
        p = self.probe("once", kid, secret, *urls)
        out, err = p.communicate(timeout=120)
        self.assertEqual(p.returncode, 0, err)
        return json.loads(out)

    def test_s3_revocation_reaches_both_gateways(self):
        urls = self.s3_gateways()
        r = self.fab.http("POST", "/v1/keys", body=json.dumps({"description": "s3"}), token=self.tok["alice"])
        self.assertEqual(r.status, 201, r.body)
        k = r.json()
        kid, secret = k["access_key_id"], k["secret_access_key"]
        # a wrong secret and an unknown id are refused as S3 refuses them
        got = self.probe_once(kid, secret[:-1] + ("A" if secret[-1] != "A" else "B"), urls)
        self.assertEqual(set(got.values()), {"SignatureDoesNotMatch"}, got)
        got = self.probe_once("DK" + "9" * 18, secret, urls)
        self.assertEqual(set(got.values()), {"InvalidAccessKeyId"}, got)
        # the key works at both (ListBuckets)
        p = self.probe("until-refused", kid, secret, 30, *urls)
        try:
            ready = json.loads(p.stdout.readline())["ready"]
            self.assertEqual(set(ready.values()), {"ok"}, "ListBuckets with the key: %r" % ready)
            # both gateways hold it in their caches now; revoke through the first gateway's REST
            r = self.fab.http("DELETE", "/v1/keys/" + kid, token=self.tok["alice"])
            self.assertEqual(r.status, 200, r.body)
            p.stdin.write("go\n")
            p.stdin.flush()
            out, err = p.communicate(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        after = json.loads(out.strip().splitlines()[-1])["refused_after"]
        for u in urls:
            self.assertIsNotNone(after[u], "%s still accepts the revoked key after 30 s (%s)" % (u, err[-500:]))
            self.assertLess(after[u], REVOKE_BOUND, "%s refused the revoked key only after %.1f s" % (u, after[u]))
        # by the feed, not only by the cache's life: both evicted the key when it came
        for gid in ("s3a", "s3b"):
            log = self.fab.log_text("gateway-" + gid)
            self.assertTrue('msg="access key revoked: evicted" id=%s' % kid in log,
                            "gateway-%s did not evict %s when the revocation came:\n%s" % (gid, kid, log[-1500:]))

    def test_aws_cli_with_a_key_from_the_cli(self):
        """What a user does: `dynostore key create`, then Debian's aws with that key; after
        `dynostore key revoke` the same command is refused as S3 refuses an unknown key."""
        if not os.access(AWS, os.X_OK):
            self.skipTest("%s (awscli) is needed" % AWS)
        url = self.s3_gateways()[1]
        cp = self.user_cli("alice", "key", "create", "--description", "aws cli")
        lines = dict(line.split(None, 1) for line in cp.stdout.strip().splitlines())
        kid, secret = lines["access_key_id"], lines["secret_access_key"]
        conf = os.path.join(self.fab.work, "aws-config")
        with open(conf, "w") as fh:
            fh.write("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=kid, AWS_SECRET_ACCESS_KEY=secret, AWS_CONFIG_FILE=conf,
                   AWS_SHARED_CREDENTIALS_FILE=os.path.join(self.fab.work, "no-credentials"), AWS_MAX_ATTEMPTS="1",
                   HOME=self.fab.home)
        argv = [AWS, "--endpoint-url", url, "s3api", "list-buckets", "--output", "json"]
        cp = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertIn("Buckets", json.loads(cp.stdout))
        self.user_cli("alice", "key", "revoke", kid)
        # the 5 s bound itself is timed by test_s3_revocation_reaches_both_gateways (aws takes
        # a second or more to start on a busy machine)
        deadline = time.monotonic() + 30
        while True:
            cp = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
            if cp.returncode != 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertNotEqual(cp.returncode, 0, "aws still lists buckets with a key revoked 30 s ago")
        self.assertIn("InvalidAccessKeyId", cp.stderr)

    # ---- restarts and the master key (last: they restart dyno-auth) -----------------------

    def test_z1_restart_keeps_keys_and_limit_holds(self):
        k = self.create("bob", "kept")
        live = len(self.listed("bob"))
        self.restart_auth("--s3_keys_per_user", str(live + 1))
        res = self.ok(self.rpc("key.lookup", {"access_key_id": k["access_key_id"]}))
        self.assertEqual(res["secret_access_key"], k["secret_access_key"], "a restart keeps the keys")
        self.create("bob")
        msg = self.err(self.rpc("key.create", {}, caller="bob"), "too_large")
        self.assertIn("revoke one", msg)
        self.assertEqual(len(self.listed("bob")), live + 1, "the refused create made nothing")
        # a revoked key makes room
        self.ok(self.rpc("key.revoke", {"access_key_id": k["access_key_id"]}, caller="bob"))
        self.create("bob")
        self.restart_auth()

    def test_z2_other_master_key_opens_nothing(self):
        k = self.create("alice")
        mf = self.master_file()
        st = os.stat(mf)
        self.assertEqual(st.st_mode & 0o777, 0o600, "the master key file is private")
        self.assertNotIn(os.path.dirname(mf), [os.path.dirname(p) for p in self.auth_files()],
                         "the master key does not sit in the database's folder")
        saved = mf + ".saved"
        shutil.copy2(mf, saved)
        try:
            with open(mf, "w") as fh:
                fh.write(os.urandom(32).hex() + "\n")
            self.restart_auth()
            msg = self.err(self.rpc("key.lookup", {"access_key_id": k["access_key_id"]}), "internal")
            self.assertIn("does not decrypt", msg)
            self.assertNotIn(k["secret_access_key"], msg)
        finally:
            shutil.copy2(saved, mf)
            os.unlink(saved)
        self.restart_auth()
        res = self.ok(self.rpc("key.lookup", {"access_key_id": k["access_key_id"]}))
        self.assertEqual(res["secret_access_key"], k["secret_access_key"])

    def test_z3_missing_master_key_refuses_to_start(self):
        k = self.create("alice")
        mf = self.master_file()
        name = self.auth_name()
        os.rename(mf, mf + ".away")
        try:
            self.fab.kill(name)
            self.fab.restart(name, wait=False)
            self.assertIsNotNone(wait_exit(self.fab, name, timeout=60), "dyno-auth started without its master key")
            self.assertIn("s3_master_key_file is missing but the database holds access keys",
                          self.fab.log_text(name))
            self.assertFalse(os.path.exists(mf), "no new master key replaced the lost one")
        finally:
            os.rename(mf + ".away", mf)
        self.fab.restart(name)
        self.restart_auth()
        self.ok(self.rpc("key.lookup", {"access_key_id": k["access_key_id"]}))


if __name__ == "__main__":
    unittest.main()
