"""Issue 12: the web console, in a real browser and over plain HTTP.

The browser tests are tests/browser/console.test.mjs (playwright-core driving Debian's
/usr/bin/chromium headless; tests/browser/install.sh installs the driver, never a browser):
one node run per issue test against one fabric made here, with its users and data. The
HTTP tests check what a browser cannot show: path resolution of the static files, the
headers, the CSRF rule, and the device-login codes.

Screenshots of every page at 1280x800 and 390x844 go to <build>/browser-screenshots.
"""
import concurrent.futures
import http.client
import json
import os
import shutil
import subprocess
import unittest

from fabric import FabricCase, bin_dir, src_dir, write_random_file

BROWSER_DIR = os.path.join(src_dir(), "tests", "browser")
CHROMIUM = "/usr/bin/chromium"
USERS = {"ops": "ops-pass-1234", "alice": "alice-pass-1234"}
XSS_NAME = "<img src=x onerror=alert(1)>.txt"


def browser_ready():
    """Installs playwright-core if it is not there yet; the reason when it cannot run."""
    if not shutil.which("node"):
        return "node is not installed (scripts/install-deps.sh)"
    if not os.path.exists(CHROMIUM):
        return "%s is not installed (scripts/install-deps.sh)" % CHROMIUM
    cp = subprocess.run([os.path.join(BROWSER_DIR, "install.sh")], capture_output=True, text=True)
    if cp.returncode != 0:
        return "tests/browser/install.sh failed: %s" % cp.stderr[-2000:]
    return None


class Console(FabricCase):
    @classmethod
    def setUpClass(cls):
        why = browser_ready()
        if why:  # a failure, not a skip: CI installs both
            raise RuntimeError(why)
        super().setUpClass()
        f = cls.fab
        for user, pw in USERS.items():
            r = f.http("POST", "/v1/users",
                       body=json.dumps({"username": user, "password": pw, "admin": user == "ops"}))
            assert r.status == 201, (r.status, r.body)
        for cat in ("ops/xss", "ops/up", "ops/live", "ops/big", "ops/nav", "ops/nav/sub", "ops/shared"):
            r = f.http("PUT", "/v1/catalogs/%s/~" % cat, body=b"{}")
            assert r.status in (200, 201), (cat, r.status, r.body)
        cls.put_bytes("ops/xss", XSS_NAME, b"hostile name\n")
        cls.put_bytes("ops/shared", "shared.txt", b"for alice\n")
        # 2,000 small objects (pagination and prefix), four connections at a time
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            list(ex.map(lambda i: cls.put_bytes("ops/big", "obj-%04d" % i, b"%d\n" % i), range(2000)))
        os.makedirs(os.path.join(f.work, "browser"), exist_ok=True)
        with open(os.path.join(f.work, "browser", "small-a.txt"), "w") as fh:
            fh.write("small file a\n")
        write_random_file(os.path.join(f.work, "browser", "small-b.bin"), 300 * 1024, seed=2)
        write_random_file(os.path.join(f.work, "browser", "big-50m.bin"), 50 << 20, seed=3)

    @classmethod
    def put_bytes(cls, catalog, name, data):
        import urllib.parse
        path = "/v1/catalogs/%s/~/objects?name=%s" % (catalog, urllib.parse.quote(name, safe=""))
        for _ in range(3):
            r = cls.fab.http("POST", path, body=data)
            if r.status == 201:
                return r.json()
        raise AssertionError("put %s/%s: %d %r" % (catalog, name, r.status, r.body))

    def node(self, test, extra_env=None):
        f = self.fab
        env = dict(os.environ)
        env.update({
            "DYNO_GW": f.gateway,
            "DYNO_CLI": os.path.join(bin_dir(), "dynostore"),
            "DYNO_CLI_HOME": f.home,
            "DYNO_ADMIN_TOKEN": f.token,
            "DYNO_USERS": json.dumps(USERS),
            "DYNO_WORK": os.path.join(f.work, "browser"),
            "DYNO_SHOTS": os.path.join(os.path.dirname(bin_dir()), "browser-screenshots"),
        })
        env.update(extra_env or {})
        cp = subprocess.run(["node", os.path.join(BROWSER_DIR, "console.test.mjs"), test],
                            cwd=BROWSER_DIR, env=env, capture_output=True, text=True, timeout=900)
        print(cp.stdout)
        self.assertEqual(cp.returncode, 0, "browser test %s failed:\n%s\n%s" % (test, cp.stdout, cp.stderr))
        return cp.stdout

    # ---- in the browser (issue tests 1..8) ----

    def test_1_login(self):
        self.node("login")

    def test_2_upload_download_delete(self):
        self.node("upload")

    def test_3_live(self):
        self.node("live")

    def test_4_browse_paginate_share(self):
        self.node("browse")

    def test_5_hostile_name(self):
        self.node("xss")

    def test_6_admin_users_tokens(self):
        self.node("admin")

    def test_7_device_login(self):
        self.node("device")

    def test_8_screenshots(self):
        self.node("screenshots")

    def test_9_dashboard_kill(self):
        # last: it kills a container (issue test 6)
        name = self.fab.container_names()[-1]
        proc = self.fab.proc(name)
        self.node("dashboard", {"DYNO_KILL_PID": str(proc["pid"]), "DYNO_KILL_ID": proc.get("id") or name})

    # ---- over HTTP ----

    def raw(self, method, path, headers=None, body=None):
        """A request with the path exactly as given (http.client does not normalize it)."""
        c = self.fab.conn()
        try:
            c.putrequest(method, path, skip_accept_encoding=True)
            for k, v in (headers or {}).items():
                c.putheader(k, v)
            if body is not None:
                c.putheader("Content-Length", str(len(body)))
            c.endheaders(body)
            r = c.getresponse()
            hdrs = {}
            for k, v in r.getheaders():  # Set-Cookie comes once per cookie: joined by newlines
                hdrs[k.lower()] = hdrs[k.lower()] + "\n" + v if k.lower() in hdrs else v
            return r.status, hdrs, r.read()
        finally:
            c.close()

    def test_static_files_and_headers(self):
        st, h, body = self.raw("GET", "/")
        self.assertEqual(st, 200)
        self.assertTrue(h["content-type"].startswith("text/html"))
        csp = h["content-security-policy"]
        self.assertIn("script-src 'self'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertNotIn("unsafe-eval", csp)
        self.assertEqual(h["x-content-type-options"], "nosniff")
        self.assertIn(b'type="module"', body)
        self.assertNotIn(b"<script>", body)  # no inline script anywhere in the page
        st, h, _ = self.raw("GET", "/js/app.js")
        self.assertEqual((st, h["content-type"]), (200, "text/javascript; charset=utf-8"))
        st, h, _ = self.raw("HEAD", "/app.css")
        self.assertEqual((st, h["content-type"]), (200, "text/css; charset=utf-8"))
        # nothing outside frontend_dir, no hidden file, no odd path, no other method
        for bad in ("/../CMakeLists.txt", "/js/../../gateway/web.c", "/%2e%2e/CMakeLists.txt",
                    "/js/%2e%2e/index.html", "//etc/passwd", "/.gitignore", "/js/", "/nope.html",
                    "/index.html%00.js", "/a\\b.js", "/README.md"):
            st, h, body = self.raw("GET", bad)
            self.assertEqual(st, 404, bad)
            self.assertEqual(json.loads(body)["error"]["code"], "not_found", bad)
        st, _, _ = self.raw("POST", "/index.html", body=b"x")
        self.assertEqual(st, 405)
        # the REST API is untouched
        st, _, _ = self.raw("GET", "/v1/nothing")
        self.assertEqual(st, 404)
        st, _, _ = self.raw("GET", "/healthz")
        self.assertEqual(st, 200)

    def session(self, user="ops"):
        body = json.dumps({"username": user, "password": USERS[user]}).encode()
        st, h, b = self.raw("POST", "/v1/auth/session", {"Content-Type": "application/json"}, body)
        self.assertEqual(st, 200, b)
        doc = json.loads(b)
        self.assertNotIn("token", doc)  # only in the HttpOnly cookie
        cookies = {}
        for line in h.get("set-cookie", "").split("\n"):
            name, _, rest = line.partition("=")
            cookies[name] = rest.split(";")[0]
        return cookies, doc["csrf"], h["set-cookie"]

    def test_session_cookie_and_csrf(self):
        cookies, csrf, raw = self.session()
        sess = [c for c in raw.split("\n") if c.startswith("dyno_session=")][0]
        self.assertIn("; HttpOnly", sess)
        self.assertIn("; SameSite=Strict", sess)
        self.assertEqual(cookies["dyno_csrf"], csrf)
        cookie = "dyno_session=%s; dyno_csrf=%s" % (cookies["dyno_session"], cookies["dyno_csrf"])
        st, _, b = self.raw("GET", "/v1/auth/whoami", {"Cookie": cookie})
        self.assertEqual((st, json.loads(b)["user"]), (200, "ops"))
        # a change with the cookie needs the header, equal to the cookie
        for hdrs in ({}, {"X-Dyno-CSRF": "0" * 32}, {"X-Dyno-CSRF": csrf[:-1]}):
            st, _, b = self.raw("PUT", "/v1/catalogs/ops/csrf/~", dict(hdrs, Cookie=cookie), b"{}")
            self.assertEqual(st, 403, (hdrs, b))
        st, _, _ = self.raw("GET", "/v1/catalogs/ops/csrf/~", {"Cookie": cookie})
        self.assertEqual(st, 404)  # nothing was created
        st, _, b = self.raw("PUT", "/v1/catalogs/ops/csrf/~", {"Cookie": cookie, "X-Dyno-CSRF": csrf}, b"{}")
        self.assertIn(st, (200, 201), b)
        # logout revokes the token and clears the cookies
        st, h, _ = self.raw("DELETE", "/v1/auth/session", {"Cookie": cookie, "X-Dyno-CSRF": csrf})
        self.assertEqual(st, 200)
        self.assertIn("dyno_session=; Path=/; Max-Age=0", h["set-cookie"])
        import time
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st, _, _ = self.raw("GET", "/v1/auth/whoami", {"Cookie": cookie})
            if st == 401:
                break
            time.sleep(0.2)
        self.assertEqual(st, 401, "a logged-out session token still works")
        # a wrong password sets no cookie
        st, h, _ = self.raw("POST", "/v1/auth/session", {"Content-Type": "application/json"},
                            json.dumps({"username": "ops", "password": "nope"}).encode())
        self.assertEqual(st, 401)
        self.assertNotIn("set-cookie", h)

    def test_device_codes(self):
        st, _, b = self.raw("POST", "/v1/auth/device", body=b"")
        self.assertEqual(st, 200, b)
        dev = json.loads(b)
        self.assertRegex(dev["user_code"], r"^[A-Z]{4}-[A-Z]{4}$")
        self.assertEqual(dev["expires_in"], 600)
        poll = json.dumps({"device_code": dev["device_code"]}).encode()
        st, _, b = self.raw("POST", "/v1/auth/device/token", body=poll)
        self.assertEqual((st, json.loads(b)["status"]), (202, "pending"))
        for bad in (b'{"device_code":"' + b"0" * 32 + b'"}', b"{}", b"not json"):
            st, _, _ = self.raw("POST", "/v1/auth/device/token", body=bad)
            self.assertIn(st, (400, 404), bad)
        # approving needs a user: none, and a session without CSRF, are refused
        appr = json.dumps({"user_code": dev["user_code"]}).encode()
        st, _, _ = self.raw("POST", "/v1/auth/device/approve", body=appr)
        self.assertEqual(st, 401)
        cookies, csrf, _ = self.session("alice")
        cookie = "dyno_session=%s; dyno_csrf=%s" % (cookies["dyno_session"], cookies["dyno_csrf"])
        st, _, _ = self.raw("POST", "/v1/auth/device/approve", {"Cookie": cookie}, appr)
        self.assertEqual(st, 403)
        st, _, b = self.raw("POST", "/v1/auth/device/approve", {"Cookie": cookie, "X-Dyno-CSRF": csrf},
                            json.dumps({"user_code": dev["user_code"].lower().replace("-", "")}).encode())
        self.assertEqual(st, 200, b)
        st, _, b = self.raw("POST", "/v1/auth/device/token", body=poll)
        self.assertEqual(st, 200, b)
        tok = json.loads(b)["token"]
        r = self.fab.http("GET", "/v1/auth/whoami", token=tok)
        self.assertEqual((r.status, r.json()["user"]), (200, "alice"))
        # once: the token is handed out a single time, the code cannot be approved again
        st, _, _ = self.raw("POST", "/v1/auth/device/token", body=poll)
        self.assertEqual(st, 404)
        st, _, _ = self.raw("POST", "/v1/auth/device/approve", {"Cookie": cookie, "X-Dyno-CSRF": csrf}, appr)
        self.assertEqual(st, 404)

    def test_device_code_expires(self):
        """A code nobody approved in time is refused, to the CLI and to the approver: the
        gateway restarted with device_code_ttl_s 3 (600 by default)."""
        import time
        f = self.fab
        gw = f.names("gateway")[0]
        f.kill(gw)
        f.restart(gw, extra_args=["--device-code-ttl-s", "3"])
        try:
            self.check_expiry()
        finally:  # the other tests expect the default life
            f.kill(gw)
            f.restart(gw)

    def check_expiry(self):
        import time
        f = self.fab
        home = os.path.join(f.work, "devhome-expired")
        os.makedirs(home, exist_ok=True)
        cli = subprocess.Popen([os.path.join(bin_dir(), "dynostore"), "--gateway", f.gateway, "login",
                                "--device"], env=f.env({"HOME": home}), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        try:
            out, err = cli.communicate(timeout=120)
        finally:
            if cli.poll() is None:
                cli.kill()
        self.assertNotEqual(cli.returncode, 0, "an expired code must not log in: %s %s" % (out, err))
        self.assertIn("expired", err)
        code = __import__("re").search(r"code: ([A-Z]{4}-[A-Z]{4})", err).group(1)
        self.assertFalse(os.path.exists(os.path.join(home, ".config", "dynostore", "token")))
        cookies, csrf, _ = self.session("alice")
        cookie = "dyno_session=%s; dyno_csrf=%s" % (cookies["dyno_session"], cookies["dyno_csrf"])
        st, _, b = self.raw("POST", "/v1/auth/device/approve", {"Cookie": cookie, "X-Dyno-CSRF": csrf},
                            json.dumps({"user_code": code}).encode())
        self.assertEqual(st, 404, b)
        # and a fresh code approved in time still works with the short life
        st, _, b = self.raw("POST", "/v1/auth/device", body=b"")
        dev = json.loads(b)
        self.assertEqual(dev["expires_in"], 3)
        time.sleep(3.5)
        st, _, _ = self.raw("POST", "/v1/auth/device/token",
                            body=json.dumps({"device_code": dev["device_code"]}).encode())
        self.assertEqual(st, 404)

    def test_prefix_listing(self):
        r = self.fab.http("GET", "/v1/catalogs/ops/big/~/objects?prefix=obj-199&limit=1000")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual([o["name"] for o in r.json()["objects"]], ["obj-%04d" % i for i in range(1990, 2000)])
        self.assertEqual({o["state"] for o in r.json()["objects"]}, {"committed"})  # the table's State
        r = self.fab.http("GET", "/v1/catalogs/ops/big/~/objects?prefix=obj-1&after=obj-1997")
        self.assertEqual([o["name"] for o in r.json()["objects"]], ["obj-1998", "obj-1999"])
        # names may hold '/' (S3 keys, issue 14), so a prefix may too; a prefix that is not
        # text (a control character, bad UTF-8) is refused
        r = self.fab.http("GET", "/v1/catalogs/ops/big/~/objects?prefix=a%2Fb")
        self.assertEqual((r.status, r.json()["objects"]), (200, []), r.body)
        for bad in ("a%01b", "%FF"):
            r = self.fab.http("GET", "/v1/catalogs/ops/big/~/objects?prefix=" + bad)
            self.assertEqual(r.status, 400, (bad, r.body))
        # the Python client follows the pages of a prefix
        import sys
        sys.path.insert(0, os.path.join(src_dir(), "client", "python"))
        from dynostore.client import Client
        names = [o["name"] for o in Client(self.fab.gateway).list_objects("ops/big", self.fab.token, limit=7,
                                                                         prefix="obj-01")]
        self.assertEqual(names, ["obj-%04d" % i for i in range(100, 200)])


class ConsoleTls(FabricCase):
    """The console over `dynostore up --tls` (issue 12: "works over --tls too")."""
    UP_ARGS = ("--tls",)

    @classmethod
    def setUpClass(cls):
        why = browser_ready()
        if why:
            raise RuntimeError(why)
        from test_tls import TlsFabric
        cls.fab = TlsFabric(containers=cls.CONTAINERS, extra_up_args=cls.UP_ARGS, name="consoletls")
        f = cls.fab
        r = f.http("POST", "/v1/users", body=json.dumps({"username": "ops", "password": USERS["ops"],
                                                          "admin": True}))
        assert r.status == 201, (r.status, r.body)
        r = f.http("PUT", "/v1/catalogs/ops/tls/~", body=b"{}")
        assert r.status in (200, 201), (r.status, r.body)
        os.makedirs(os.path.join(f.work, "browser"), exist_ok=True)
        write_random_file(os.path.join(f.work, "browser", "small-b.bin"), 300 * 1024, seed=2)

    def test_console_over_tls(self):
        Console.node(self, "tls", {"NODE_EXTRA_CA_CERTS": self.fab.cafile})


if __name__ == "__main__":
    unittest.main()
