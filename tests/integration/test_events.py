"""Catalog events (issue 4): object.created / object.evicted reach Debian's mosquitto_sub
(logged in with a token), through a # subscription for sub-catalogs, and the gateway's
server-sent events (GET /v1/events).

Helpers here (users, mosquitto_sub/pub) are shared by test_ingest, test_mirror, test_catalogs.
"""

import http.client
import json
import os
import queue
import shutil
import subprocess
import threading
import time
import unittest

from fabric import FabricCase, random_bytes, sha256_bytes

WAIT = 20.0


# ---------------------------------------------------------------------------------------
# shared helpers


def require_mosquitto_clients():
    for b in ("mosquitto_sub", "mosquitto_pub"):
        if not shutil.which(b):
            raise RuntimeError("%s is missing (Debian package mosquitto-clients)" % b)


def new_user(fab, name, password="password-" + "x" * 8, org=None):
    """Creates a user (admin call) and logs it in; returns its token."""
    body = {"username": name, "password": password}
    if org:
        body["org"] = org
    r = fab.http("POST", "/v1/users", body=json.dumps(body), headers={"Content-Type": "application/json"})
    if r.status not in (200, 201) and not (r.status == 409):
        raise AssertionError("create user %s: %d %r" % (name, r.status, r.body))
    r = fab.http("POST", "/v1/auth/login", body=json.dumps({"username": name, "password": password}),
                 headers={"Content-Type": "application/json"}, token=None)
    if r.status != 200:
        raise AssertionError("login %s: %d %r" % (name, r.status, r.body))
    return r.json()["token"]


def token_file(fab, name, token):
    p = os.path.join(fab.work, name + ".token")
    with open(p, "w") as fh:
        fh.write(token + "\n")
    os.chmod(p, 0o600)
    return p


def broker_args(fab):
    b = fab.fabric["broker"]
    args = ["-h", str(b.get("host", "127.0.0.1")), "-p", str(b["port"])]
    if b.get("tls") and fab.fabric.get("cacert"):
        args += ["--cafile", fab.fabric["cacert"]]
    return args


class MqttSub:
    """Debian's mosquitto_sub (MQTT v5, QoS 1, -v) in the background; lines go to a queue."""

    def __init__(self, fab, user, token, topics, client_id=None):
        argv = ["mosquitto_sub", "-V", "mqttv5"] + broker_args(fab) + ["-u", user, "-P", token, "-q", "1", "-v"]
        if client_id:
            argv += ["-i", client_id]
        for t in topics:
            argv += ["-t", t]
        self.q = queue.Queue()
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, start_new_session=True)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            line = line.decode("utf-8", "replace").rstrip("\n")
            topic, _, payload = line.partition(" ")
            try:
                doc = json.loads(payload)
            except ValueError:
                doc = payload
            self.q.put((topic, doc))

    def wait_for(self, pred, timeout=WAIT):
        """The first (topic, doc) with pred true; others are dropped. None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                topic, doc = self.q.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.p.poll() is not None and self.q.empty():
                    return None
                continue
            if pred(topic, doc):
                return topic, doc

    def stderr(self):
        if self.p.poll() is None:
            return ""
        return self.p.stderr.read().decode("utf-8", "replace")

    def close(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.p.stdout.close()
        self.p.stderr.close()


def is_event(type_, key=None):
    def pred(topic, doc):
        return isinstance(doc, dict) and doc.get("type") == type_ and (
            key is None or (doc.get("object") or {}).get("key") == key)
    return pred


def sub_ready(case, fab, sub, catalog, token=None):
    """Puts warm-up objects until sub sees one (a SUBSCRIBE is asynchronous)."""
    for i in range(40):
        r = fab.put_bytes(catalog, b"warm-up %d" % i, name="warmup-%d" % i,
                          token=token if token else fab.token)
        case.assertEqual(r.status, 201, r.body)
        if sub.wait_for(is_event("object.created", r.json()["key"]), timeout=0.5):
            return
    case.fail("mosquitto_sub never got an event: %s" % sub.stderr())


class SSE:
    """GET /v1/events?catalog=C read in a thread: (event, data) pairs in a queue."""

    def __init__(self, fab, catalog, token):
        self.c = fab.conn(timeout=60)
        self.c.request("GET", "/v1/events?catalog=" + catalog, headers={"Authorization": "Bearer " + token})
        self.r = self.c.getresponse()
        self.q = queue.Queue()
        self.comments = queue.Queue()
        if self.r.status == 200:
            self.t = threading.Thread(target=self._read, daemon=True)
            self.t.start()

    def _read(self):
        ev, data = None, []
        try:
            while True:
                line = self.r.readline()
                if not line:
                    break
                line = line.decode("utf-8").rstrip("\r\n")
                if line == "":
                    if ev or data:
                        self.q.put((ev, json.loads("\n".join(data)) if data else None))
                    ev, data = None, []
                elif line.startswith(":"):
                    self.comments.put(line)
                elif line.startswith("event:"):
                    ev = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            pass  # closed under us

    def wait_for(self, type_, key, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ev, doc = self.q.get(timeout=0.5)
            except queue.Empty:
                continue
            if ev == type_ and doc and (doc.get("object") or {}).get("key") == key:
                return doc
        return None

    def close(self):
        try:
            if self.c.sock is not None:
                self.c.sock.shutdown(2)
        except OSError:
            pass
        self.r.close()
        self.c.close()


# ---------------------------------------------------------------------------------------


class EventsTest(FabricCase):
    CONTAINERS = 5

    @classmethod
    def setUpClass(cls):
        require_mosquitto_clients()
        super().setUpClass()
        cls.fab.create_catalog("admin/ev")
        cls.fab.create_catalog("admin/ev/sub")

    def test_mosquitto_sub_created_evicted_and_subcatalogs(self):
        f = self.fab
        sub = MqttSub(f, "admin", f.token, ["dyno/v1/events/admin/ev", "dyno/v1/events/admin/ev/#"])
        try:
            sub_ready(self, f, sub, "admin/ev")
            data = random_bytes(5000, seed=1)
            r = f.put_bytes("admin/ev", data, name="hello.bin")
            self.assertEqual(r.status, 201, r.body)
            key = r.json()["key"]
            got = sub.wait_for(is_event("object.created", key))
            self.assertIsNotNone(got, "no object.created for %s" % key)
            topic, doc = got
            self.assertEqual(topic, "dyno/v1/events/admin/ev")
            self.assertEqual(doc["catalog"], "admin/ev")
            self.assertEqual(doc["object"], {"key": key, "name": "hello.bin", "size": len(data),
                                             "sha256": sha256_bytes(data)})
            self.assertIsInstance(doc["time"], int)

            r = f.http("DELETE", "/v1/objects/" + key)
            self.assertEqual(r.status, 204, r.body)
            got = sub.wait_for(is_event("object.evicted", key))
            self.assertIsNotNone(got, "no object.evicted for %s" % key)
            self.assertEqual(got[1]["object"]["name"], "hello.bin")
            self.assertEqual(got[1]["object"]["sha256"], sha256_bytes(data))

            # a sub-catalog's events come through the # subscription
            r = f.put_bytes("admin/ev/sub", b"deep", name="deep.txt")
            self.assertEqual(r.status, 201, r.body)
            got = sub.wait_for(is_event("object.created", r.json()["key"]))
            self.assertIsNotNone(got, "no sub-catalog event")
            self.assertEqual(got[0], "dyno/v1/events/admin/ev/sub")
            self.assertEqual(got[1]["catalog"], "admin/ev/sub")
        finally:
            sub.close()
        # the fabric's event recorder saw them too (and validates them at the end)
        rec = f.event_recorder
        if rec is not None:
            self.assertTrue(any(key in p for _, p in rec.messages()), "the recorder missed the events")

    def test_user_with_read_share_gets_events_and_stranger_does_not(self):
        f = self.fab
        carol = new_user(f, "carol")
        dave = new_user(f, "dave")
        f.create_catalog("carol/pics", token=carol)
        r = f.http("POST", "/v1/catalogs/carol/pics/~/shares", body=json.dumps({"user": "erin", "access": "read"}),
                   headers={"Content-Type": "application/json"}, token=carol)
        self.assertEqual(r.status, 200, r.body)
        erin = new_user(f, "erin")
        sub = MqttSub(f, "erin", erin, ["dyno/v1/events/carol/pics"])
        stranger = MqttSub(f, "dave", dave, ["dyno/v1/events/carol/pics"])
        try:
            sub_ready(self, f, sub, "carol/pics", token=carol)
            r = f.put_bytes("carol/pics", b"photo", name="p1.jpg", token=carol)
            key = r.json()["key"]
            self.assertIsNotNone(sub.wait_for(is_event("object.created", key)))
            self.assertIsNone(stranger.wait_for(is_event("object.created", key), timeout=2),
                              "a user without read access got the event")
        finally:
            sub.close()
            stranger.close()

    def test_server_sent_events(self):
        f = self.fab
        sse = SSE(f, "admin/ev", f.token)
        try:
            self.assertEqual(sse.r.status, 200)
            self.assertTrue(sse.r.getheader("Content-Type", "").startswith("text/event-stream"))
            self.assertIsNotNone(sse.comments.get(timeout=10), "no opening comment")
            # the gateway's own subscription is in place long before; one put is enough
            data = b"sse payload"
            r = f.put_bytes("admin/ev", data, name="sse.txt")
            key = r.json()["key"]
            doc = sse.wait_for("object.created", key)
            self.assertIsNotNone(doc, "no SSE object.created")
            self.assertEqual(doc["object"]["sha256"], sha256_bytes(data))
            self.assertEqual(f.http("DELETE", "/v1/objects/" + key).status, 204)
            self.assertIsNotNone(sse.wait_for("object.evicted", key), "no SSE object.evicted")
        finally:
            sse.close()

    def test_server_sent_events_access(self):
        f = self.fab
        frank = new_user(f, "frank")
        sse = SSE(f, "admin/ev", frank)
        try:
            self.assertEqual(sse.r.status, 403)
        finally:
            sse.close()
        sse = SSE(f, "admin/nope", f.token)
        try:
            self.assertEqual(sse.r.status, 404)
        finally:
            sse.close()
        r = f.http("GET", "/v1/events?catalog=admin/ev", token=None)
        self.assertEqual(r.status, 401)
        r = f.http("GET", "/v1/events?catalog=bad/../x")
        self.assertEqual(r.status, 400)


if __name__ == "__main__":
    unittest.main()
