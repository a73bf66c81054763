"""The compose deployment running on a private Docker daemon (issue 15, acceptance 1-3), as an
operator and an IoT node use it: only through the published ports on 127.0.0.1, with the host's
CLI (DYNO_BIN/dynostore) and Debian's mosquitto_pub/mosquitto_sub.

Not a test_*.py: scripts/compose-test.sh starts the daemon and the stack, runs this module and
removes everything afterwards (test_compose.py runs that script). It exports DYNO_COMPOSE (the
compose command with its -p and -f), DYNO_DOCKER, DOCKER_HOST, DYNO_GATEWAY_PORT,
DYNO_BROKER_PORT and DYNO_COMPOSE_TMP (a temp folder for the files). The steps run in order
(test_1 .. test_6) on one stack; each later one reads back everything the earlier ones stored."""

import http.client
import json
import os
import subprocess
import time
import unittest

from fabric import MiB, bin_dir, sha256_file, src_dir, write_random_file

WAIT = 120.0  # seconds a stack (re)start may take on a loaded 2-core machine


def need(name):
    v = os.environ.get(name)
    if not v:
        raise unittest.SkipTest("%s is not set: run scripts/compose-test.sh, not this module" % name)
    return v


def run(argv, timeout=300, check=True, **kw):
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and cp.returncode != 0:
        raise AssertionError("%s exited %d\nstdout: %s\nstderr: %s"
                             % (" ".join(argv), cp.returncode, cp.stdout[-2000:], cp.stderr[-2000:]))
    return cp


class Stack(unittest.TestCase):
    objects = {}  # name -> (key, local path, sha256)

    @classmethod
    def setUpClass(cls):
        cls.compose = need("DYNO_COMPOSE")
        cls.docker = need("DYNO_DOCKER")
        cls.gw_port = int(need("DYNO_GATEWAY_PORT"))
        cls.broker_port = int(need("DYNO_BROKER_PORT"))
        cls.work = os.path.join(need("DYNO_COMPOSE_TMP"), "work")
        os.makedirs(cls.work, exist_ok=True)
        cls.gateway = "http://127.0.0.1:%d" % cls.gw_port
        cls.cli_bin = os.path.join(bin_dir(), "dynostore")
        # The admin token dyno-auth wrote into its own volume on first start.
        deadline = time.monotonic() + WAIT
        while True:
            cp = cls.dc("exec", "-T", "auth", "cat", "/data/admin.token", check=False)
            if cp.returncode == 0 and cp.stdout.strip():
                break
            if time.monotonic() > deadline:
                raise AssertionError("no admin token in the auth volume: %s" % cp.stderr)
            time.sleep(1)
        cls.token = cp.stdout.strip()
        cls.token_file = os.path.join(cls.work, "admin.token")
        with open(cls.token_file, "w") as f:
            f.write(cls.token + "\n")
        os.chmod(cls.token_file, 0o600)
        cls.wait_gateway()
        cls.user = cls.http("GET", "/v1/auth/whoami")[1]["user"]

    # -- helpers ---------------------------------------------------------------------------

    @classmethod
    def dc(cls, *args, check=True, timeout=300):
        return run([cls.compose] + list(args), check=check, timeout=timeout)

    @classmethod
    def container_id(cls, service):
        cid = cls.dc("ps", "-q", service).stdout.strip()
        assert cid, "no container for service %s" % service
        return cid

    @classmethod
    def http(cls, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", cls.gw_port, timeout=30)
        try:
            headers = {"Authorization": "Bearer " + cls.token}
            if body is not None:
                headers["Content-Type"] = "application/json"
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            try:
                doc = json.loads(data) if data else None
            except ValueError:
                doc = data
            return r.status, doc
        finally:
            c.close()

    @classmethod
    def wait_gateway(cls):
        """The gateway serves authenticated requests on its published port (through
        docker-proxy). /healthz answers earlier, before the revocation feed has reached the
        gateway; until then an authenticated route is 503 (it fails closed), so wait for one."""
        deadline = time.monotonic() + WAIT
        last = None
        while time.monotonic() < deadline:
            try:
                status, doc = cls.http("GET", "/v1/auth/whoami")
                if status == 200:
                    return doc
                last = (status, doc)
            except OSError as e:
                last = repr(e)
            time.sleep(0.5)
        raise AssertionError("the gateway does not answer on 127.0.0.1:%d: %s" % (cls.gw_port, last))

    def online(self):
        status, doc = self.http("GET", "/v1/containers")
        self.assertEqual(status, 200, doc)
        cs = doc.get("containers", []) if isinstance(doc, dict) else doc
        return sorted(c["id"] for c in cs if c.get("state") == "online")

    def wait_online(self, want):
        deadline = time.monotonic() + WAIT
        got = None
        while time.monotonic() < deadline:
            try:
                got = self.online()
                if got == want:
                    return
            except (OSError, AssertionError) as e:
                got = repr(e)
            time.sleep(0.5)
        self.fail("containers online: want %s, last seen %s" % (want, got))

    def cli(self, *args, check=True, timeout=600):
        argv = [self.cli_bin, "--gateway", self.gateway, "--token-file", self.token_file]
        return run(argv + [str(a) for a in args], check=check, timeout=timeout, cwd=self.work)

    def put(self, path, catalog, name):
        doc = json.loads(self.cli("--json", "put", path, "--catalog", catalog, "--name", name).stdout)
        if isinstance(doc, list):
            doc = doc[0]
        return doc["key"]

    def assert_reads_back(self, what):
        """Every object stored so far comes back byte-identical through the CLI."""
        self.assertTrue(self.objects, "nothing was stored by the earlier steps")
        for name, (key, path, digest) in sorted(self.objects.items()):
            out = os.path.join(self.work, "got-" + name)
            cp = self.cli("get", key, "-o", out, check=False)
            self.assertEqual(cp.returncode, 0, "%s: get %s (%s): %s" % (what, name, key, cp.stderr))
            self.assertEqual(sha256_file(out), digest, "%s: %s differs" % (what, name))
            os.unlink(out)

    def running(self, service):
        cid = self.container_id(service)
        cp = run([self.docker, "inspect", "-f", "{{.State.Running}}", cid])
        return cp.stdout.strip() == "true"

    # -- the steps -----------------------------------------------------------------------------

    def test_0_image(self):
        """Runtime image without compilers, every process as the non-root user, and each data
        container on a volume of its own."""
        cp = run([self.docker, "run", "--rm", "--network", "none", "dynostore:latest", "sh", "-c",
                  "id -u; for c in cc gcc clang cmake make ld; do command -v $c || true; done"])
        lines = cp.stdout.split()
        self.assertNotEqual(lines[0], "0", "the image runs as root")
        self.assertEqual(lines[1:], [], "compilers in the runtime image: %s" % lines[1:])
        for svc in ("auth", "broker", "metadata", "pubsub", "gateway", "container1"):
            uid = self.dc("exec", "-T", svc, "id", "-u").stdout.strip()
            self.assertNotEqual(uid, "0", "%s runs as root" % svc)
        vols = set()
        for i in range(1, 6):
            cp = run([self.docker, "inspect", "-f",
                      '{{range .Mounts}}{{if eq .Destination "/data"}}{{.Name}}{{end}}{{end}}',
                      self.container_id("container%d" % i)])
            vols.add(cp.stdout.strip())
        self.assertEqual(len(vols), 5, "data containers share volumes: %s" % vols)

    def test_1_online(self):
        """Acceptance 1: the gateway answers on its published port; all five containers online;
        the web console, when the tree has one (agents/frontend), is served at /."""
        self.wait_gateway()
        self.wait_online(["c1", "c2", "c3", "c4", "c5"])
        index = os.path.join(src_dir(), "agents", "frontend", "index.html")
        if os.path.exists(index):
            c = http.client.HTTPConnection("127.0.0.1", self.gw_port, timeout=30)
            try:
                c.request("GET", "/")
                r = c.getresponse()
                body = r.read()
            finally:
                c.close()
            with open(index, "rb") as f:
                self.assertEqual((r.status, body), (200, f.read()), "the console is not served at /")

    def test_2_roundtrip(self):
        """Acceptance 2: 1 B, 10 MiB and 200 MiB put and got back byte-identical with the CLI."""
        self.cli("catalog", "create", "%s/compose" % self.user)
        for name, size in (("one-byte", 1), ("ten-mib", 10 * MiB), ("two-hundred-mib", 200 * MiB)):
            path = os.path.join(self.work, name)
            write_random_file(path, size, seed=size)
            t0 = time.monotonic()
            key = self.put(path, "%s/compose" % self.user, name)
            t1 = time.monotonic()
            self.objects[name] = (key, path, sha256_file(path))
            print("  put %s (%d B) in %.1f s" % (name, size, t1 - t0), flush=True)
        self.assert_reads_back("round trip")

    def test_3_mqtt(self):
        """Acceptance 2: an MQTT-only client publishes a reading; a subscriber gets its event,
        and the reading is an object of the catalog."""
        catalog = "%s/sensors" % self.user
        self.cli("catalog", "create", catalog)
        mq = ["-V", "mqttv5", "-h", "127.0.0.1", "-p", str(self.broker_port), "-u", self.user,
              "-P", self.token, "-q", "1"]
        sub = subprocess.Popen(["mosquitto_sub"] + mq + ["-v", "-C", "1", "-W", str(int(WAIT)),
                                                          "-t", "dyno/v1/events/%s/#" % catalog],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # An event is not retained: publish until the subscriber (connecting meanwhile)
            # has one, each reading under a name of its own.
            published = {}
            deadline = time.monotonic() + WAIT
            while sub.poll() is None and time.monotonic() < deadline:
                name = "r%d" % len(published)
                value = "21.%d" % len(published)
                cp = run(["mosquitto_pub"] + mq + ["-t", "dyno/v1/ingest/" + catalog, "-D", "publish",
                                                    "user-property", "name", name, "-m", value],
                         check=False, timeout=60)
                if cp.returncode == 0:
                    published[name] = value
                for _ in range(20):
                    if sub.poll() is not None:
                        break
                    time.sleep(0.1)
            out, err = sub.communicate(timeout=30)
        finally:
            if sub.poll() is None:
                sub.kill()
                sub.wait()
        self.assertEqual(sub.returncode, 0, "no event: %s" % err)
        topic, _, payload = out.strip().partition(" ")
        self.assertEqual(topic, "dyno/v1/events/" + catalog)
        ev = json.loads(payload)
        self.assertEqual(ev["type"], "object.created", ev)
        name = ev["object"]["name"]
        self.assertIn(name, published)
        path = os.path.join(self.work, "reading-" + name)
        with open(path, "w") as f:
            f.write(published[name])
        self.objects["reading-" + name] = (ev["object"]["key"], path, sha256_file(path))
        self.assert_reads_back("after the MQTT reading")

    def test_4_kill_two(self):
        """Acceptance 3: two data containers killed (docker kill): every object still reads back."""
        victims = ("container2", "container4")
        ids = [self.container_id(s) for s in victims]
        run([self.docker, "kill"] + ids)
        for s in victims:
            self.assertFalse(self.running(s), "%s was restarted: the reads would not be degraded" % s)
        self.assert_reads_back("two containers killed")
        self.dc("start", *victims)
        self.wait_online(["c1", "c2", "c3", "c4", "c5"])

    def test_5_broker_restart(self):
        """Acceptance 3: docker restart of the broker: puts work again (the agents reconnect)."""
        run([self.docker, "restart", self.container_id("broker")])
        path = os.path.join(self.work, "after-broker-restart")
        write_random_file(path, 3 * MiB, seed=5)
        deadline = time.monotonic() + WAIT
        while True:
            try:
                key = self.put(path, "%s/compose" % self.user, "after-broker-restart")
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        self.objects["after-broker-restart"] = (key, path, sha256_file(path))
        self.assert_reads_back("after the broker restart")

    def test_6_down_up(self):
        """Acceptance 3: `down` then `up` on the same volumes: every object is still there, and
        the keys and tokens are the ones made on the first start (the old admin token works)."""
        self.dc("down", timeout=300)
        self.dc("up", "-d", timeout=300)
        self.wait_gateway()
        self.wait_online(["c1", "c2", "c3", "c4", "c5"])
        token = self.dc("exec", "-T", "auth", "cat", "/data/admin.token").stdout.strip()
        self.assertEqual(token, self.token, "the admin token changed across down/up")
        self.assert_reads_back("after down and up")


if __name__ == "__main__":
    unittest.main()
