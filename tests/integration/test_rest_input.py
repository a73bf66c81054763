"""Issue 2, acceptance 10: hostile and malformed REST input gets a clear JSON error, changes
nothing, and never takes a process down.

Every error reply is {"error":{"code","message"}} (SPEC §4), except the 431 for oversized
headers, which libmicrohttpd sends itself before the gateway sees the request.
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from fabric import KiB, MiB, FabricCase, random_bytes

CAT = "admin/rest-input"
KEY_RE = r"^[0-9a-f]{32}$"


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64url_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def raw_request(host, port, data, read_timeout=30):
    """Sends raw bytes, reads until the peer closes (or timeout); returns (status, bytes).
    status is None when no status line came back (connection closed or reset)."""
    s = socket.create_connection((host, port), timeout=read_timeout)
    got = b""
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        while True:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            got += b
    finally:
        s.close()
    status = None
    if got.startswith(b"HTTP/1."):
        try:
            status = int(got.split(b" ", 2)[1])
        except (IndexError, ValueError):
            pass
    return status, got


class RestInput(FabricCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fab.create_catalog(CAT)
        r = cls.fab.put_bytes(CAT, random_bytes(100 * KiB, seed=1), name="existing")
        assert r.status == 201, r.body
        cls.key = r.json()["key"]
        cls.pids = {n: cls.fab.pid(n) for n in cls.fab.names()}

    def setUp(self):
        self.objects_before = self.listing()
        self.catalogs_before = self.catalogs()

    def tearDown(self):
        try:
            if not self.fab_dead():
                # bad input changes nothing
                self.assertEqual(self.listing(), self.objects_before,
                                 "the catalog listing changed")
                self.assertEqual(self.catalogs(), self.catalogs_before,
                                 "the list of catalogs changed")
        finally:
            super().tearDown()

    def fab_dead(self):
        return any(not self.fab.alive(n) for n in self.pids)

    def listing(self):
        return sorted((o["key"], o["name"]) for o in self.fab.list_catalog(CAT))

    def catalogs(self):
        r = self.fab.http("GET", "/v1/catalogs")
        self.assertEqual(r.status, 200, r.body)
        doc = r.json()
        cats = doc.get("catalogs", []) if isinstance(doc, dict) else doc
        return sorted(json.dumps(c.get("catalog", c) if isinstance(c, dict) else c,
                                 sort_keys=True) for c in cats)

    def err(self, method, path, status, code=None, body=None, headers=None, **kw):
        r = self.fab.http(method, path, body=body, headers=headers, **kw)
        if method == "HEAD":
            self.assertIn(r.status, status if isinstance(status, tuple) else (status,),
                          "HEAD %s" % path)
            return r
        self.assertJsonError(r, status, code, "%s %s" % (method, path))
        return r

    # -- routes and methods -----------------------------------------------------------

    def test_unknown_routes_404(self):
        for p in ["/nope", "/v1", "/v1/", "/v1/nope", "/v2/objects/" + self.key,
                  "/v1/objects/%s/nope" % self.key, "/healthz/x", "/metrics/x",
                  "/v1/containers/x/y/z", "/v1/auth", "/v1/catalogsx"]:
            with self.subTest(path=p):
                self.err("GET", p, 404, "not_found")
        # routes that exist only with more segments, or end in a reserved segment
        for p in ["/v1/objects", "/v1/catalogs/admin/rest-input/~/objects/extra"]:
            with self.subTest(path=p):
                self.err("GET", p, (400, 404, 405))

    def test_wrong_methods_405(self):
        cases = [("PATCH", "/v1/objects/" + self.key), ("PUT", "/v1/objects/" + self.key),
                 ("POST", "/v1/objects/" + self.key), ("DELETE", "/healthz"),
                 ("POST", "/healthz"), ("POST", "/metrics"), ("POST", "/v1/containers"),
                 ("DELETE", "/v1/containers"), ("POST", "/v1/objects/%s/meta" % self.key),
                 ("DELETE", "/v1/objects/%s/meta" % self.key), ("PATCH", "/v1/catalogs")]
        for method, p in cases:
            with self.subTest(method=method, path=p):
                self.err(method, p, 405, "method_not_allowed")
        # ~/objects is a sub-resource (lib/rest.h): not a catalog to create or delete
        for method in ("PUT", "DELETE"):
            with self.subTest(method=method, path="objects"):
                self.err(method, "/v1/catalogs/%s/~/objects" % CAT, (400, 405))
        # the object is untouched
        self.assertEqual(self.fab.http("HEAD", "/v1/objects/" + self.key).status, 200)

    # -- keys ----------------------------------------------------------------------

    def test_bad_keys(self):
        bad = ["xyz", "../../etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e", self.key.upper(),
               self.key[:31], self.key + "0", self.key[:31] + "g", "%00" + self.key[1:],
               self.key[:16] + "%20" + self.key[17:], "+", "%23", "*"]
        for k in bad:
            for method in ("GET", "HEAD", "DELETE"):
                with self.subTest(key=k, method=method):
                    self.err(method, "/v1/objects/" + k, (400, 404))
            with self.subTest(key=k, route="meta"):
                self.err("GET", "/v1/objects/%s/meta" % k, (400, 404))
        # raw traversal, not normalized by the client library
        self.err("GET", "/v1/objects/../../etc/passwd", (400, 404))
        self.err("GET", "/v1/../v1/objects/" + self.key, (400, 404))
        self.assertEqual(self.fab.http("HEAD", "/v1/objects/" + self.key).status, 200)

    # -- catalog and object names ---------------------------------------------------

    def test_bad_catalog_names(self):
        bad = ["admin/..", "admin/%2e%2e", "admin/%2E%2E/x", "admin/a/../b", "admin/a/%2e%2e/b",
               "admin/.", "admin/a+b", "admin/a%2Bb", "admin/%2B", "admin/a%23b", "admin/%23",
               "admin/a%2Fb", "admin/a%00b", "admin/a%20b", "admin/" + "x" * 65,
               "admin/" + "/".join(["d"] * 9), "%2B/x", "%23/x", "../x", "admin/*",
               "admin/a%252e%252e"]
        for c in bad:
            with self.subTest(catalog=c):
                r = self.fab.http("PUT", "/v1/catalogs/" + c, body="{}",
                                  headers={"Content-Type": "application/json"})
                self.assertJsonError(r, (400, 403, 404), msg="PUT catalog " + c)
                r = self.fab.put_bytes(c, b"abc", name="n")
                self.assertJsonError(r, (400, 403, 404), msg="POST object into " + c)
        # MQTT wildcards can never become a topic: raw '+' and '#' in the path
        for c in ["admin/a+b", "admin/+", "admin/#", "admin/a#b"]:
            with self.subTest(raw=c):
                r = self.fab.http("PUT", "/v1/catalogs/" + c, body="{}")
                self.assertJsonError(r, (400, 403, 404), msg="PUT catalog raw " + c)

    def test_bad_object_names(self):
        # '/' may separate the segments of a name (S3 keys, issue 14), never lead, and no
        # segment may be "." or ".."
        bad = ["..", "%2e%2e", "%2E%2E", ".", "a/../b", "a%2F..%2Fb", "%2Fa", "a%2F.", "..%2F..%2Fx",
               "a%5Cb", "%00", "a%0Ab", "a%0Db", "x" * 256, "%FF%FE", "%C0%AE%C0%AE"]
        for n in bad:
            with self.subTest(name=n):
                r = self.fab.http("POST", "/v1/catalogs/%s/~/objects?name=%s" % (CAT, n),
                                  body=b"hello")
                self.assertJsonError(r, 400, msg="put name %r" % n)

    def test_slash_in_object_name(self):
        """A name with '/' (an S3 key) is stored as sent; the object is removed again."""
        r = self.fab.http("POST", "/v1/catalogs/%s/~/objects?name=%s" % (CAT, "dir%2Fsub%2Fa.txt"), body=b"s")
        self.assertEqual(r.status, 201, r.body)
        doc = r.json()
        self.assertEqual(doc["name"], "dir/sub/a.txt")
        d = self.fab.http("DELETE", "/v1/objects/" + doc["key"])
        self.assertIn(d.status, (200, 204), d.body)

    def test_wildcard_characters_in_object_name_are_kept_literally(self):
        """'+' and '#' are legal in object names (lib/names.h): stored exactly as sent, or
        refused with a JSON error; never mangled. The object is removed again so that the
        listing check of tearDown holds."""
        for raw, want in [("a%2Bb%23c", "a+b#c"), ("%2B", "+"), ("%23", "#")]:
            with self.subTest(name=want):
                r = self.fab.http("POST", "/v1/catalogs/%s/~/objects?name=%s" % (CAT, raw),
                                  body=b"wild")
                if r.status == 201:
                    doc = r.json()
                    self.assertEqual(doc["name"], want)
                    names = [o["name"] for o in self.fab.list_catalog(CAT)]
                    self.assertIn(want, names)
                    d = self.fab.http("DELETE", "/v1/objects/" + doc["key"])
                    self.assertIn(d.status, (200, 204), d.body)
                else:
                    self.assertJsonError(r, 400, msg="put name %r" % want)

    # -- headers and bodies -----------------------------------------------------------

    def test_oversized_header(self):
        host, port = self.fab.host_port
        req = ("GET /v1/objects/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "X-Big: %s\r\n\r\n" % (self.key, self.fab.token, "a" * (64 * KiB))).encode()
        status, _ = raw_request(host, port, req)
        # 431 from MHD; a reset before the reply is tolerated, a success never
        if status is not None:
            self.assertTrue(400 <= status < 500, "64 KiB header: status %d" % status)
        # many headers whose total is over the limit
        many = "".join("X-H%d: %s\r\n" % (i, "b" * 100) for i in range(200))
        status, _ = raw_request(host, port, ("GET /healthz HTTP/1.1\r\nHost: x\r\n%s\r\n"
                                             % many).encode())
        if status is not None:
            self.assertTrue(400 <= status < 500, "200 headers: status %d" % status)
        # a 64 KiB URL
        status, _ = raw_request(host, port, ("GET /v1/objects/%s HTTP/1.1\r\nHost: x\r\n\r\n"
                                             % ("k" * 64 * KiB)).encode())
        if status is not None:
            self.assertTrue(400 <= status < 500, "64 KiB URL: status %d" % status)
        self.assertEqual(self.fab.http("GET", "/healthz", token=None).status, 200)

    def test_garbage_requests(self):
        host, port = self.fab.host_port
        for junk in [b"\x00\x01\x02\r\n\r\n", b"GET\r\n\r\n", b"HELLO / SMTP/1.0\r\n\r\n",
                     b"GET / HTTP/9.9\r\n\r\n", os.urandom(4096),
                     b"POST /v1/catalogs/admin/rest-input/~/objects HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: -5\r\n\r\n",
                     b"POST /v1/catalogs/admin/rest-input/~/objects HTTP/1.1\r\nHost: x\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"]:
            status, _ = raw_request(host, port, junk, read_timeout=15)
            if status is not None:
                self.assertTrue(400 <= status < 600, "junk %r: %d" % (junk[:30], status))
        self.assertEqual(self.fab.http("GET", "/healthz", token=None).status, 200)

    def test_bad_tokens_401(self):
        tok = self.fab.token
        parts = tok.split(".")
        self.assertEqual(len(parts), 3, "token format dyn1.<claims>.<sig>")
        sig = bytearray(b64url_dec(parts[2]))
        sig[5] ^= 1
        tampered_sig = ".".join(parts[:2] + [b64url(bytes(sig))])
        claims = json.loads(b64url_dec(parts[1]))
        claims["sub"] = "root"
        tampered_claims = ".".join([parts[0], b64url(json.dumps(claims).encode()), parts[2]])
        bad = {"garbage": "garbage", "empty-parts": "dyn1..", "tampered-signature": tampered_sig,
               "tampered-claims": tampered_claims, "truncated": tok[:-10],
               "long": "dyn1." + "A" * 5000 + ".B", "wrong-prefix": "dyn2" + tok[4:]}
        other = self.token_from_other_key(claims)
        if other:
            bad["other-key"] = other
        routes = [("GET", "/v1/objects/" + self.key), ("GET", "/v1/containers"),
                  ("GET", "/v1/catalogs"), ("PUT", "/v1/catalogs/admin/should-not-exist"),
                  ("POST", "/v1/catalogs/%s/~/objects?name=evil" % CAT),
                  ("DELETE", "/v1/objects/" + self.key),
                  ("GET", "/v1/catalogs/%s/~/objects" % CAT)]
        for method, path in routes:
            with self.subTest(route=path, token="none"):
                self.err(method, path, 401, "unauthorized", token=None, body=b"x"
                         if method in ("PUT", "POST") else None)
            for label, t in bad.items():
                with self.subTest(route=path, token=label):
                    self.err(method, path, 401, "unauthorized", token=t,
                             body=b"x" if method in ("PUT", "POST") else None)
        for hdr in ["Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer  ", "bearer" + tok, tok]:
            with self.subTest(authorization=hdr):
                r = self.fab.http("GET", "/v1/catalogs", token=None,
                                  headers={"Authorization": hdr})
                self.assertJsonError(r, 401, "unauthorized", "Authorization: %r" % hdr[:20])
        # a token in the URL is never accepted
        r = self.fab.http("GET", "/v1/objects/%s?token=%s" % (self.key, tok), token=None)
        self.assertJsonError(r, 401, msg="token in the URL")
        # the object survived the DELETE attempts
        self.assertEqual(self.fab.http("HEAD", "/v1/objects/" + self.key).status, 200)

    def token_from_other_key(self, claims):
        """Same claims, signed by a fresh Ed25519 key (openssl(1)); None without openssl."""
        openssl = shutil.which("openssl")
        if not openssl:
            return None
        d = tempfile.mkdtemp(dir=self.fab.work)
        key, msg, sig = (os.path.join(d, n) for n in ("k.pem", "msg", "sig"))
        head = "dyn1." + b64url(json.dumps(claims, separators=(",", ":")).encode())
        with open(msg, "w") as fh:
            fh.write(head)
        try:
            subprocess.run([openssl, "genpkey", "-algorithm", "ed25519", "-out", key],
                           check=True, capture_output=True)
            subprocess.run([openssl, "pkeyutl", "-sign", "-rawin", "-inkey", key, "-in", msg,
                            "-out", sig], check=True, capture_output=True)
        except subprocess.CalledProcessError:
            return None
        with open(sig, "rb") as fh:
            return head + "." + b64url(fh.read())

    def test_truncated_bodies(self):
        host, port = self.fab.host_port
        for i, (declared, sent) in enumerate([(1 * MiB, 1000), (10 * MiB, 3 * MiB + 5),
                                              (64 * KiB, 64 * KiB - 1)]):
            s = socket.create_connection((host, port), timeout=60)
            try:
                s.sendall(("POST /v1/catalogs/%s/~/objects?name=truncated-%d HTTP/1.1\r\n"
                           "Host: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n"
                           % (CAT, i, self.fab.token, declared)).encode())
                s.sendall(random_bytes(sent, seed=i))
            finally:
                s.close()
        # give the gateway a moment to notice the closed connections, then check: nothing
        # visible (tearDown compares the listing) and the gateway still serves
        time.sleep(1)
        self.assertEqual(self.fab.http("GET", "/healthz", token=None).status, 200)
        r = self.fab.put_bytes(CAT, b"fine", name="after-truncated")
        self.assertEqual(r.status, 201, r.body)
        self.assertIn(self.fab.http("DELETE", "/v1/objects/" + r.json()["key"]).status,
                      (200, 204))

    def test_bad_json_bodies(self):
        for body in [b"{", b"[]", b"null", b"\xff\xfe", b'{"public": "yes"}',
                     b'{"resilience": {"k": 0, "m": 2}}', b'{"resilience": {"k": 300, "m": 2}}',
                     b'{"resilience": "3,2"}', b"{" * 100000]:
            with self.subTest(body=body[:30]):
                r = self.fab.http("PUT", "/v1/catalogs/admin/badjson", body=body,
                                  headers={"Content-Type": "application/json"})
                self.assertJsonError(r, (400, 413), msg="PUT catalog body %r" % body[:30])
        for hdr in ["0,2", "3", "a,b", "3,-1", "300,2", "3,2,1", "3,2x"]:
            with self.subTest(resilience=hdr):
                r = self.fab.put_bytes(CAT, b"abc" * 30000, name="bad-res",
                                       headers={"X-Dyno-Resilience": hdr})
                self.assertJsonError(r, 400, msg="X-Dyno-Resilience %r" % hdr)

    def test_bad_query_arguments(self):
        for q in ["limit=-1", "limit=abc", "after=%ZZ"]:
            with self.subTest(query=q):
                r = self.fab.http("GET", "/v1/catalogs/%s/~/objects?%s" % (CAT, q))
                self.assertJsonError(r, 400, msg="list ?%s" % q)
        for rng in ["bytes=abc", "bytes=5-1", "items=0-1", "bytes=0-1,5-6"]:
            with self.subTest(range=rng):
                r = self.fab.get_object(self.key, headers={"Range": rng})
                # malformed or multi-range: either ignored (200, whole object) or refused
                if r.status == 200:
                    self.assertEqual(len(r.body), 100 * KiB)
                else:
                    self.assertJsonError(r, (400, 416), msg="Range %r" % rng)

    def test_zz_every_process_still_alive(self):
        # runs last (alphabetical order): nothing above took a process down
        for n, pid in self.pids.items():
            with self.subTest(process=n):
                self.assertTrue(self.fab.alive(n), "%s (pid %d) died" % (n, pid))
                self.assertEqual(self.fab.pid(n), pid)
        self.assertEqual(self.fab.http("GET", "/healthz", token=None).status, 200)
        self.assertEqual(self.fab.http("HEAD", "/v1/objects/" + self.key).status, 200)


if __name__ == "__main__":
    unittest.main()
