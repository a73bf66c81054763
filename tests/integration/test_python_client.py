"""Issue 6: the Python client (dynostore.client) and the ProxyStore connector
(dynostore.proxystore), standard library only, against a real fabric from `dynostore up`.

1. put/get/exists/evict round trips, byte-identical: empty, small and 100 MiB objects, the
   large one through put_file/get_to_file while the client's own memory stays far below the
   object size (tracemalloc peak);
2. the connector: put_batch/get_batch of 100 objects, get of a missing key -> None,
   config()/from_config() giving a working connector, deferred keys (new_key/set), and a
   round trip through a small stand-in for ProxyStore's Store (pickle, proxies resolved in
   another process from the connector's config);
3. errors: a wrong token -> UnauthorizedError, a missing object -> NotFoundError, a closed
   port -> UnavailableError, each a distinct class.

RetryUnit needs no fabric: the retry/backoff logic against a tiny http.server on 127.0.0.1.
PythonClientTLS runs a second fabric with `dynostore up --tls`: https with cafile or an
ssl_context, and an untrusted certificate giving DynoError(code="tls"), not retried.

The client is imported from $DYNO_SRC/client/python (no pip install needed).
"""

import hashlib
import http.client
import http.server
import io
import json
import os
import pickle
import ssl
import subprocess
import sys
import threading
import time
import tracemalloc
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.join(os.environ.get("DYNO_SRC") or os.path.join(HERE, "..", ".."),
                     "client", "python")
if PYDIR not in sys.path:
    sys.path.insert(0, os.path.abspath(PYDIR))

from dynostore.client import Client, RetryPolicy  # noqa: E402
from dynostore.errors import (BadRequestError, ConflictError, DynoError,  # noqa: E402
                              ForbiddenError, NotFoundError, TooLargeError,
                              UnauthorizedError, UnavailableError)
from dynostore.proxystore import DynoConnector, DynoKey  # noqa: E402

from fabric import (HTTP_TIMEOUT, KiB, MiB, Fabric, FabricCase, free_port,  # noqa: E402
                    random_bytes, sha256_file, write_random_file)

CAT = "admin/pyclient"
PROXY_CAT = "admin/pyproxy"
BIG = 100 * MiB
# The client streams in 1 MiB chunks: its Python allocations while moving 100 MiB stay a
# few MiB. Anything near the object size means it buffered the object.
STREAM_PEAK_MAX = 16 * MiB
MISSING_KEY = "0123456789abcdef0123456789abcdef"
ERROR_CLASSES = (BadRequestError, UnauthorizedError, ForbiddenError, NotFoundError,
                 ConflictError, TooLargeError, UnavailableError)


def closed_port():
    """A 127.0.0.1 port with nothing listening (bound then released)."""
    return free_port()


# ---------------------------------------------------------------------------------------
# a stand-in for ProxyStore's calling side


class _Factory:
    """What a ProxyStore proxy carries: the connector's class and config and the key.
    Called (in any process) it rebuilds the connector and resolves the object."""

    def __init__(self, connector_cls, config, key):
        self.connector_cls = connector_cls
        self.config = config
        self.key = key

    def __call__(self):
        conn = self.connector_cls.from_config(self.config)
        try:
            data = conn.get(self.key)
        finally:
            conn.close()
        if data is None:
            raise LookupError("proxy target %r is missing" % (self.key,))
        return pickle.loads(data)


class FakeStore:
    """The part of proxystore.store.Store that talks to a connector: serialize with pickle,
    put/get/exists/evict/put_batch through the connector, proxies as picklable factories
    that rebuild the connector from config(), futures through new_key/set."""

    def __init__(self, name, connector):
        self.name = name
        self.connector = connector

    def put(self, obj):
        return self.connector.put(pickle.dumps(obj))

    def put_batch(self, objs):
        return self.connector.put_batch([pickle.dumps(o) for o in objs])

    def get(self, key, default=None):
        data = self.connector.get(key)
        return default if data is None else pickle.loads(data)

    def get_batch(self, keys):
        return [None if d is None else pickle.loads(d) for d in self.connector.get_batch(keys)]

    def exists(self, key):
        return self.connector.exists(key)

    def evict(self, key):
        self.connector.evict(key)

    def proxy(self, obj):
        return _Factory(type(self.connector), self.connector.config(), self.put(obj))

    def future(self):
        key = self.connector.new_key()
        return key, _Factory(type(self.connector), self.connector.config(), key)

    def set_result(self, key, obj):
        self.connector.set(key, pickle.dumps(obj))

    def close(self):
        self.connector.close()


# ---------------------------------------------------------------------------------------
# unit level: retries against a local http.server


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers from server.script: a list of (status, headers, body) used one per request
    (the last one repeats). Records every request in server.seen."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _handle(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(parts)
        elif n:
            body = self.rfile.read(n)
        srv = self.server
        with srv.lock:
            srv.seen.append({"method": self.command, "path": self.path, "body": body,
                             "headers": dict(self.headers), "t": time.monotonic()})
            i = min(len(srv.seen) - 1, len(srv.script) - 1)
            status, headers, reply = srv.script[i]
        if callable(reply):
            reply = reply(body)
        if isinstance(reply, (dict, list)):
            reply = json.dumps(reply).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(reply)))
        if reply and "Content-Type" not in (headers or {}):
            self.send_header("Content-Type", "application/json")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


class ScriptedServer:
    def __init__(self, script):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
        self.httpd.daemon_threads = True
        self.httpd.script = script
        self.httpd.seen = []
        self.httpd.lock = threading.Lock()
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.t = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.t.start()

    @property
    def seen(self):
        return self.httpd.seen

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _unavailable(retry_after="0"):
    h = {"Retry-After": retry_after} if retry_after is not None else {}
    return (503, h, {"error": {"code": "unavailable",
                               "message": "need 5 containers online, 2 are"}})


def _created(body):
    return {"key": "a" * 32, "name": "n", "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(), "k": 3, "m": 2}


class RetryUnit(unittest.TestCase):
    TOKEN = "dyn1.test-token.sig"

    def server(self, script):
        s = ScriptedServer(script)
        self.addCleanup(s.close)
        return s

    def client(self, url, **kw):
        c = Client(url, **kw)
        self.addCleanup(c.close)
        return c

    def test_put_retried_on_503_honouring_retry_after(self):
        s = self.server([_unavailable("0"), _unavailable("0"), (201, {}, _created)])
        # a long backoff: only Retry-After: 0 makes this fast
        c = self.client(s.url, retry=RetryPolicy(attempts=5, backoff=30.0, backoff_max=30.0))
        data = os.urandom(100 * KiB)
        t0 = time.monotonic()
        key = c.put(data, self.TOKEN, "alice/x y", name="a b&c=d/é")
        self.assertLess(time.monotonic() - t0, 10.0, "Retry-After: 0 was not honoured")
        self.assertEqual(key, "a" * 32)
        self.assertEqual(len(s.seen), 3, "two 503 then 201: three attempts")
        for req in s.seen:
            self.assertEqual(req["method"], "POST")
            self.assertEqual(req["body"], data, "the body is sent whole on every attempt")
            self.assertEqual(req["headers"].get("Authorization"), "Bearer " + self.TOKEN)
            self.assertEqual(req["headers"].get("Content-Length"), str(len(data)))
            self.assertNotIn(self.TOKEN, req["path"], "the token travels in a URL")
            # catalog segments and the name are percent-encoded
            self.assertEqual(req["path"], "/v1/catalogs/alice/x%20y/~/objects"
                                          "?name=a%20b%26c%3Dd%2F%C3%A9")

    def test_seekable_file_rewound_between_attempts(self):
        s = self.server([_unavailable("0"), (201, {}, _created)])
        c = self.client(s.url, retry=RetryPolicy(attempts=3, backoff=0.01))
        data = os.urandom(3 * MiB + 5)
        f = io.BytesIO(b"HEADER" + data)
        f.seek(6)     # streamed from the current position
        c.put(f, self.TOKEN, "alice/x")
        self.assertEqual(len(s.seen), 2)
        self.assertEqual(s.seen[0]["body"], data)
        self.assertEqual(s.seen[1]["body"], data)

    def test_non_replayable_stream_is_tried_once(self):
        s = self.server([_unavailable("0"), (201, {}, _created)])
        c = self.client(s.url, retry=RetryPolicy(attempts=5, backoff=0.01))
        r, w = os.pipe()
        data = os.urandom(200 * KiB)

        def writer():
            with os.fdopen(w, "wb") as fh:
                fh.write(data)
        t = threading.Thread(target=writer)
        t.start()
        with os.fdopen(r, "rb") as fh:
            with self.assertRaises(UnavailableError) as cm:
                c.put(fh, self.TOKEN, "alice/x")
        t.join()
        self.assertEqual(cm.exception.status, 503)
        self.assertEqual(len(s.seen), 1, "a pipe cannot be replayed: no retry")
        self.assertEqual(s.seen[0]["headers"].get("Transfer-Encoding"), "chunked")
        self.assertEqual(s.seen[0]["body"], data)

    def test_attempts_bounded_then_unavailable(self):
        s = self.server([_unavailable("0")])
        c = self.client(s.url, retry=RetryPolicy(attempts=4, backoff=0.01))
        with self.assertRaises(UnavailableError) as cm:
            c.get(MISSING_KEY, self.TOKEN)
        e = cm.exception
        self.assertEqual((e.status, e.code, e.retry_after), (503, "unavailable", 0.0))
        self.assertIn("containers", e.message)
        self.assertEqual(len(s.seen), 4)

    def test_backoff_without_retry_after_grows(self):
        s = self.server([_unavailable(None), _unavailable(None), (200, {}, b"ok")])
        c = self.client(s.url, retry=RetryPolicy(attempts=3, backoff=0.2, jitter=False))
        self.assertEqual(c.get(MISSING_KEY, self.TOKEN), b"ok")
        t = [r["t"] for r in s.seen]
        self.assertGreaterEqual(t[1] - t[0], 0.18)
        self.assertGreaterEqual(t[2] - t[1], 0.38, "the second wait doubles")

    def test_retry_after_and_backoff_arithmetic(self):
        p = RetryPolicy(backoff=0.5, backoff_max=3.0, retry_after_max=10.0, jitter=False)
        self.assertEqual([p.delay(n) for n in (1, 2, 3, 4, 5)], [0.5, 1.0, 2.0, 3.0, 3.0])
        self.assertEqual(p.delay(1, retry_after=7), 7.0)
        self.assertEqual(p.delay(1, retry_after=99), 10.0, "Retry-After is capped")
        j = RetryPolicy(backoff=1.0)
        for _ in range(50):
            self.assertTrue(0.5 <= j.delay(1) <= 1.0)

    def test_client_errors_not_retried_and_mapped(self):
        cases = [(400, BadRequestError, "bad_request"), (401, UnauthorizedError, "unauthorized"),
                 (403, ForbiddenError, "forbidden"), (404, NotFoundError, "not_found"),
                 (409, ConflictError, "conflict"), (413, TooLargeError, "too_large"),
                 (500, DynoError, "internal")]
        for status, cls, code in cases:
            with self.subTest(status=status):
                s = self.server([(status, {}, {"error": {"code": code, "message": "m%d" % status}})])
                c = self.client(s.url, retry=RetryPolicy(attempts=5, backoff=0.01))
                with self.assertRaises(cls) as cm:
                    c.meta(MISSING_KEY, self.TOKEN)
                e = cm.exception
                self.assertIs(type(e), cls)
                self.assertEqual((e.status, e.code, e.message), (status, code, "m%d" % status))
                self.assertEqual(len(s.seen), 1, "only 503 is retried")

    def test_exists_head(self):
        s = self.server([(200, {}, b""), (404, {}, b""), (401, {}, b"")])
        c = self.client(s.url)
        self.assertTrue(c.exists(MISSING_KEY, self.TOKEN))
        self.assertFalse(c.exists(MISSING_KEY, self.TOKEN))
        with self.assertRaises(UnauthorizedError):
            c.exists(MISSING_KEY, self.TOKEN)
        self.assertEqual([r["method"] for r in s.seen], ["HEAD"] * 3)

    def test_list_objects_follows_pages(self):
        pages = [(200, {}, {"objects": [{"key": "k%d" % i, "name": "n%d" % i}
                                        for i in range(3 * p, 3 * p + 3)],
                            "next": "n%d" % (3 * p + 2) if p < 2 else None})
                 for p in range(3)]
        s = self.server(pages)
        c = self.client(s.url)
        names = [o["name"] for o in c.list_objects("alice/x", self.TOKEN, limit=3)]
        self.assertEqual(names, ["n%d" % i for i in range(9)])
        self.assertEqual([r["path"] for r in s.seen],
                         ["/v1/catalogs/alice/x/~/objects?limit=3",
                          "/v1/catalogs/alice/x/~/objects?limit=3&after=n2",
                          "/v1/catalogs/alice/x/~/objects?limit=3&after=n5"])

    def test_unreachable_is_unavailable_after_bounded_retries(self):
        c = self.client("127.0.0.1:%d" % closed_port(), retry=RetryPolicy(attempts=3, backoff=0.01))
        t0 = time.monotonic()
        with self.assertRaises(UnavailableError) as cm:
            c.get(MISSING_KEY, self.TOKEN)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIsNone(cm.exception.status)
        self.assertEqual(cm.exception.code, "unreachable")


# ---------------------------------------------------------------------------------------
# against the real fabric


class PythonClient(FabricCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.token = cls.fab.token
        cls.client = Client(cls.fab.gateway)
        cls.client.create_catalog(CAT, cls.token)

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "client", None):
            cls.client.close()
        super().tearDownClass()

    def connector(self, **kw):
        c = DynoConnector(self.fab.gateway, self.token, PROXY_CAT, **kw)
        self.addCleanup(c.close)
        return c

    # -- 1. round trips ------------------------------------------------------------------

    def roundtrip(self, data, **kw):
        c = self.client
        doc = c.put_object(data, self.token, CAT, **kw)
        key = doc["key"]
        self.assertRegex(key, r"^[0-9a-f]{32}$")
        raw = bytes(data)
        self.assertEqual(int(doc["size"]), len(raw))
        self.assertEqual(doc["sha256"], hashlib.sha256(raw).hexdigest())
        self.assertTrue(c.exists(key, self.token))
        got = c.get(key, self.token)
        self.assertIsInstance(got, bytes)
        self.assertEqual(got, raw, "bytes read back differ")
        meta = c.meta(key, self.token)
        self.assertEqual(int(meta["size"]), len(raw))
        self.assertEqual(meta["catalog"], CAT)
        c.evict(key, self.token)
        self.assertFalse(c.exists(key, self.token))
        with self.assertRaises(NotFoundError):
            c.get(key, self.token)
        return key

    def test_roundtrip_empty_and_small(self):
        cases = [("empty", b""), ("one", b"x"), ("4k", random_bytes(4 * KiB, seed=1)),
                 ("64k+1", random_bytes(64 * KiB + 1, seed=2)),
                 ("bytearray", bytearray(random_bytes(10000, seed=3))),
                 ("memoryview", memoryview(random_bytes(3 * MiB + 7, seed=4)))]
        for label, data in cases:
            with self.subTest(label):
                self.roundtrip(data)
        with self.subTest("named, with resilience"):
            # over 64 KiB: erasure-coded (smaller objects are stored as m + 1 replicas, k = 1)
            key = self.client.put(random_bytes(100 * KiB, seed=5), self.token, CAT,
                                  name="py named é&=?.txt", resilience=(2, 1))
            meta = self.client.meta(key, self.token)
            self.assertEqual(meta["name"], "py named é&=?.txt")
            self.assertEqual((int(meta["k"]), int(meta["m"])), (2, 1))
            self.client.evict(key, self.token)

    def test_large_streamed_put_file_get_to_file(self):
        work = self.fab.work
        src, dst = os.path.join(work, "py-big.src"), os.path.join(work, "py-big.dst")
        digest = write_random_file(src, BIG, seed=66)
        self.addCleanup(lambda: [os.unlink(p) for p in (src, dst) if os.path.exists(p)])
        c = Client(self.fab.gateway)
        self.addCleanup(c.close)

        started = not tracemalloc.is_tracing()
        if started:
            tracemalloc.start()
        try:
            # peaks are measured above what is already allocated (when the interpreter runs
            # with -X tracemalloc, tracing started long before this test)
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            t0 = time.monotonic()
            key = c.put_file(src, self.token, CAT, name="py-big")
            t_put = time.monotonic() - t0
            put_peak = tracemalloc.get_traced_memory()[1] - base
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            t0 = time.monotonic()
            n = c.get_to_file(key, self.token, dst)
            t_get = time.monotonic() - t0
            get_peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            if started:
                tracemalloc.stop()
        sys.stderr.write("\n  100 MiB: put_file %.2f s, peak %.1f MiB; get_to_file %.2f s, "
                         "peak %.1f MiB\n" % (t_put, put_peak / MiB, t_get, get_peak / MiB))
        self.assertLess(put_peak, STREAM_PEAK_MAX, "put_file buffered the object")
        self.assertLess(get_peak, STREAM_PEAK_MAX, "get_to_file buffered the object")
        self.assertEqual(n, BIG)
        self.assertEqual(os.path.getsize(dst), BIG)
        self.assertEqual(sha256_file(dst), digest)
        self.assertEqual(c.meta(key, self.token)["sha256"], digest)
        leftovers = [f for f in os.listdir(work) if f.endswith(".part")]
        self.assertEqual(leftovers, [], "temp files left behind")
        self.assertTrue(c.exists(key, self.token))
        c.evict(key, self.token)
        self.assertFalse(c.exists(key, self.token))

    def test_get_to_file_missing_leaves_nothing(self):
        dst = os.path.join(self.fab.work, "py-missing.dst")
        with open(dst, "wb") as fh:
            fh.write(b"previous")
        with self.assertRaises(NotFoundError):
            self.client.get_to_file(MISSING_KEY, self.token, dst)
        with open(dst, "rb") as fh:
            self.assertEqual(fh.read(), b"previous", "a failed get replaced the file")
        self.assertEqual([f for f in os.listdir(self.fab.work) if f.endswith(".part")], [])

    def test_put_streams_file_objects(self):
        data = random_bytes(5 * MiB + 3, seed=9)
        with self.subTest("seekable file object"):
            with open(os.path.join(self.fab.work, "py-fo"), "wb+") as fh:
                fh.write(data)
                fh.seek(0)
                key = self.client.put(fh, self.token, CAT)
            self.assertEqual(self.client.get(key, self.token), data)
            self.client.evict(key, self.token)
        with self.subTest("pipe (chunked, unknown size)"):
            r, w = os.pipe()

            def writer():
                with os.fdopen(w, "wb") as out:
                    out.write(data)
            t = threading.Thread(target=writer)
            t.start()
            with os.fdopen(r, "rb") as fh:
                key = self.client.put(fh, self.token, CAT)
            t.join()
            self.assertEqual(self.client.get(key, self.token), data)
            self.client.evict(key, self.token)

    def test_catalogs_and_listing(self):
        c, tok = self.client, self.token
        cat = "admin/pylist"
        c.create_catalog(cat, tok, resilience=(2, 1))
        c.create_catalog(cat, tok, resilience=(2, 1))   # idempotent
        names = [c2["catalog"] if isinstance(c2, dict) else c2 for c2 in c.list_catalogs(tok)]
        self.assertIn(cat, names)
        want = {}
        for i in range(23):
            name = "obj %02d ü&x=y" % i
            want[name] = c.put(b"%d" % i, tok, cat, name=name)
        got = list(c.iter_objects(cat, tok, limit=5))      # 5 pages
        self.assertEqual([o["name"] for o in got], sorted(want), "all pages, ordered by name")
        self.assertEqual({o["name"]: o["key"] for o in got}, want)
        self.assertEqual(len(c.list_objects(cat, tok)), 23)
        big = c.put(random_bytes(200 * KiB, seed=6), tok, cat)   # erasure-coded, not replicas
        meta = c.meta(big, tok)
        self.assertEqual((int(meta["k"]), int(meta["m"])), (2, 1), "the catalog's resilience")
        c.create_catalog("admin/pypublic", tok, public=True)
        self.assertIn("admin/pypublic", [x.get("catalog") for x in c.list_catalogs(tok)])

    # -- 2. the ProxyStore connector ----------------------------------------------------

    def test_connector_batches_missing_and_config(self):
        conn = self.connector()
        objs = [random_bytes((i * 997) % (70 * KiB), seed=1000 + i) for i in range(100)]
        keys = conn.put_batch(objs)
        self.assertEqual(len(keys), 100)
        self.assertTrue(all(isinstance(k, DynoKey) and k.dyno_key for k in keys))
        self.assertEqual(len(set(keys)), 100)
        self.assertEqual(conn.get_batch(keys), objs, "get_batch returns the objects in order")
        self.assertTrue(all(conn.exists(k) for k in keys[:5]))

        missing = DynoKey(MISSING_KEY, None, PROXY_CAT)
        self.assertIsNone(conn.get(missing))
        self.assertFalse(conn.exists(missing))
        conn.evict(missing)     # no error, as in ProxyStore
        self.assertEqual(conn.get_batch([keys[0], missing, keys[1]]), [objs[0], None, objs[1]])

        cfg = conn.config()
        self.assertEqual(json.loads(json.dumps(cfg)), cfg, "config is JSON-serializable")
        other = DynoConnector.from_config(cfg)
        self.addCleanup(other.close)
        self.assertEqual(other.config(), cfg)
        self.assertEqual(other.get(keys[42]), objs[42])
        k = other.put(b"from the rebuilt connector")
        self.assertEqual(conn.get(k), b"from the rebuilt connector")
        # keys pickle (they travel inside proxies)
        self.assertEqual(pickle.loads(pickle.dumps(keys[7])), keys[7])

        for key in keys[:10]:
            conn.evict(key)
        self.assertEqual(conn.get_batch(keys[:10]), [None] * 10)
        self.assertFalse(conn.exists(keys[0]))
        for key in keys[10:] + [k]:
            conn.evict(key)

    def test_connector_deferred_keys(self):
        conn = self.connector()
        key = conn.new_key()
        self.assertIsNone(key.dyno_key)
        self.assertRegex(key.name, r"^[0-9a-f]{32}$")
        self.assertFalse(conn.exists(key))
        self.assertIsNone(conn.get(key))
        conn.set(key, b"later")
        self.assertTrue(conn.exists(key))
        self.assertEqual(conn.get(key), b"later")
        # another process knows only the config and the key: it resolves the name by listing
        other = DynoConnector.from_config(conn.config())
        self.addCleanup(other.close)
        self.assertEqual(other.get(key), b"later")
        # many names in the catalog: the lookup still finds the right one
        more = [conn.new_key() for _ in range(30)]
        for i, k in enumerate(more):
            conn.set(k, b"v%d" % i)
        fresh = DynoConnector.from_config(conn.config())
        self.addCleanup(fresh.close)
        self.assertEqual(fresh.get_batch(more), [b"v%d" % i for i in range(30)])
        other.evict(key)
        self.assertFalse(conn.exists(key))
        self.assertIsNone(fresh.get(key))
        for k in more:
            fresh.evict(k)
        self.assertFalse(any(conn.exists(k) for k in more))

    def test_fake_store_round_trip(self):
        store = FakeStore("dyno", self.connector())
        obj = {"array": list(range(1000)), "text": "résumé", "blob": os.urandom(300 * KiB)}
        key = store.put(obj)
        self.assertTrue(store.exists(key))
        self.assertEqual(store.get(key), obj)
        keys = store.put_batch([obj, [1, 2, 3], None])
        self.assertEqual(store.get_batch(keys), [obj, [1, 2, 3], None])

        # a proxy is resolved in another process, from the connector's config alone
        factory = store.proxy(obj)
        self.assertEqual(pickle.loads(pickle.dumps(factory))(), obj)
        out = self.resolve_elsewhere(factory)
        self.assertEqual(out, obj)

        # a future: the key exists before the object, the result is set later
        fkey, ffactory = store.future()
        self.assertFalse(store.exists(fkey))
        store.set_result(fkey, ("done", 42))
        self.assertEqual(self.resolve_elsewhere(ffactory), ("done", 42))

        for k in [key, fkey, factory.key] + keys:
            store.evict(k)
        self.assertIsNone(store.get(key))
        self.assertFalse(store.exists(fkey))
        store.close()

    def resolve_elsewhere(self, factory):
        code = ("import pickle, sys; sys.path[:0] = [%r, %r]; f = pickle.load(sys.stdin.buffer);"
                " sys.stdout.buffer.write(pickle.dumps(f()))" % (HERE, os.path.abspath(PYDIR)))
        cp = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(factory),
                            capture_output=True, timeout=120, cwd=HERE)
        self.assertEqual(cp.returncode, 0, cp.stderr.decode(errors="replace"))
        return pickle.loads(cp.stdout)

    # -- 3. errors -----------------------------------------------------------------------

    def test_errors_are_distinct(self):
        key = self.client.put(b"secret", self.token, CAT)
        self.addCleanup(self.client.evict, key, self.token)

        bad = "dyn1.AAAA.BBBB"
        for what, call in [("get", lambda: self.client.get(key, bad)),
                           ("exists", lambda: self.client.exists(key, bad)),
                           ("put", lambda: self.client.put(b"x", bad, CAT)),
                           ("list", lambda: self.client.list_objects(CAT, bad)),
                           ("no token", lambda: self.client.get(key, None))]:
            with self.subTest(what):
                with self.assertRaises(UnauthorizedError) as cm:
                    call()
                self.assertEqual(cm.exception.status, 401)

        with self.assertRaises(NotFoundError) as cm:
            self.client.get(MISSING_KEY, self.token)
        nf = cm.exception
        self.assertEqual((nf.status, nf.code), (404, "not_found"))
        with self.assertRaises(NotFoundError):
            self.client.meta(MISSING_KEY, self.token)
        with self.assertRaises(NotFoundError):
            self.client.evict(MISSING_KEY, self.token)
        self.assertFalse(self.client.exists(MISSING_KEY, self.token))

        dead = Client("127.0.0.1:%d" % closed_port(), retry=RetryPolicy(attempts=2, backoff=0.01))
        with self.assertRaises(UnavailableError) as cm:
            dead.put(b"x", self.token, CAT)
        un = cm.exception
        self.assertIsNone(un.status)
        self.assertEqual(un.code, "unreachable")
        with self.assertRaises(UnavailableError):
            DynoConnector("127.0.0.1:%d" % closed_port(), self.token, PROXY_CAT,
                          retries=1).get(DynoKey(MISSING_KEY))

        with self.assertRaises(BadRequestError):
            self.client.put(b"x", self.token, CAT, name="a/../b")  # no "." or ".." segment (S3 keys may hold '/')

        # each one is caught by its own class only
        for e, cls in [(nf, NotFoundError), (un, UnavailableError)]:
            self.assertIsInstance(e, DynoError)
            others = [c for c in ERROR_CLASSES if c is not cls]
            self.assertFalse(any(isinstance(e, c) for c in others), repr(e))

    def test_token_never_in_a_url(self):
        # the gateway logs every request's path: the token must not be in any of them
        self.client.exists(MISSING_KEY, self.token)
        for name, text in self.fab.all_logs_text():
            self.assertNotIn(self.token, text, "token in %s" % name)



class _TlsFabric(Fabric):
    """The shared harness speaks plain HTTP to the gateway; with `up --tls` its own calls
    (health checks) need HTTPS with the fabric's CA."""

    def conn(self, timeout=HTTP_TIMEOUT):
        h, p = self.host_port
        ctx = ssl.create_default_context(cafile=os.path.join(self.data, "tls", "ca.crt"))
        return http.client.HTTPSConnection(h, p, timeout=timeout, context=ctx)


class PythonClientTLS(FabricCase):
    """An https gateway (`dynostore up --tls`): cafile and ssl_context, and a clear error
    for a certificate the client cannot verify."""

    @classmethod
    def setUpClass(cls):
        cls.fab = _TlsFabric(containers=5, extra_up_args=["--tls"], name="pyclienttls")
        cls.ca = os.path.join(cls.fab.data, "tls", "ca.crt")

    def test_https_round_trip(self):
        self.assertTrue(self.fab.gateway.startswith("https://"), self.fab.gateway)
        tok = self.fab.token
        c = Client(self.fab.gateway, cafile=self.ca)
        self.addCleanup(c.close)
        c.create_catalog(CAT, tok)
        data = random_bytes(5 * MiB + 1, seed=77)
        key = c.put(data, tok, CAT)
        self.assertEqual(c.get(key, tok), data)
        dst = os.path.join(self.fab.work, "tls.dst")
        self.assertEqual(c.get_to_file(key, tok, dst), len(data))
        with open(dst, "rb") as fh:
            self.assertEqual(fh.read(), data)
        ctx = ssl.create_default_context(cafile=self.ca)
        c2 = Client(self.fab.gateway, ssl_context=ctx)
        self.addCleanup(c2.close)
        self.assertTrue(c2.exists(key, tok))
        conn = DynoConnector(self.fab.gateway, tok, PROXY_CAT, cafile=self.ca)
        self.addCleanup(conn.close)
        k = conn.put(b"over tls")
        self.assertEqual(DynoConnector.from_config(conn.config()).get(k), b"over tls")
        c.evict(key, tok)

    def test_untrusted_certificate(self):
        c = Client(self.fab.gateway, retry=RetryPolicy(attempts=3, backoff=0.01))
        with self.assertRaises(DynoError) as cm:
            c.get(MISSING_KEY, self.fab.token)
        self.assertEqual(cm.exception.code, "tls")
        self.assertNotIsInstance(cm.exception, UnavailableError)


if __name__ == "__main__":
    unittest.main()
