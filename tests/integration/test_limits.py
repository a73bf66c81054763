"""Unauthenticated exhaustion (issue 9, class 9): the gateway limits connections per client
address and login attempts per address and per username, answering 429 with Retry-After.

Each test restarts the gateway with its limits set low (max_connections_per_ip,
login_per_ip_per_min, login_per_user_per_min); everything else is the real fabric. Before
issue 9 one client could hold every connection slot and try passwords (a 200k-iteration
PBKDF2 each in dyno-auth) as fast as it liked."""

import http.client
import json
import time
import unittest

from fabric import FabricCase

PASSWORD = "password-" + "x" * 8


def create_user(fab, name):
    r = fab.http("POST", "/v1/users", body=json.dumps({"username": name, "password": PASSWORD}),
                 headers={"Content-Type": "application/json"})
    assert r.status in (200, 201, 409), (name, r.status, r.body)


class LimitsTest(FabricCase):
    CONTAINERS = 3

    def restart_gateway(self, *args):
        f = self.fab
        gw = f.names("gateway")[0]
        f.kill(gw)
        f.restart(gw, extra_args=list(args))

    def login(self, user, password=PASSWORD):
        return self.fab.http("POST", "/v1/auth/login", token=None,
                             body=json.dumps({"username": user, "password": password}),
                             headers={"Content-Type": "application/json"})

    def auth_log_logins(self):
        text = self.fab.log_text(self.fab.names("auth")[0])
        return text.count('msg="login"') + text.count('msg="login refused"')

    def hold(self, n):
        """n keep-alive connections to the gateway, each with a request answered 200, left
        open (the caller closes them)."""
        host, port = self.fab.host_port
        held = []
        for _ in range(n):
            c = http.client.HTTPConnection(host, port, timeout=60)
            held.append(c)
            c.request("GET", "/healthz")
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
        return held

    def assertLimited(self, r, what):
        self.assertEqual(r.status, 429, "%s: %d %r" % (what, r.status, r.body))
        self.assertEqual(r.json()["error"]["code"], "too_many_requests", r.body)
        retry = r.header("retry-after")
        self.assertIsNotNone(retry, "%s: 429 without Retry-After" % what)
        self.assertGreaterEqual(int(retry), 1)

    def test_connections_per_client_address_are_capped(self):
        f = self.fab
        self.restart_gateway("--max-connections-per-ip", "4")
        host, port = f.host_port
        held = []
        try:
            # Four keep-alive connections, each with a request answered: all four stay open.
            held = self.hold(4)
            # A fifth from the same address is answered 429 and closed.
            c = http.client.HTTPConnection(host, port, timeout=30)
            c.request("GET", "/healthz")
            r = c.getresponse()
            body = r.read()
            self.assertEqual(r.status, 429, body)
            self.assertEqual(json.loads(body)["error"]["code"], "too_many_requests")
            self.assertGreaterEqual(int(r.getheader("Retry-After")), 1)
            self.assertEqual((r.getheader("Connection") or "").lower(), "close")
            c.close()
            # The held connections still work, and a slot freed is a slot for a newcomer.
            held[0].request("GET", "/healthz")
            r = held[0].getresponse()
            r.read()
            self.assertEqual(r.status, 200)
            held.pop(0).close()
            deadline = time.monotonic() + 10
            while True:
                r = f.http("GET", "/healthz", token=None)
                if r.status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)  # the server sees the close a moment after we make it
            self.assertEqual(r.status, 200, r.body)
        finally:
            for c in held:
                c.close()

    def test_default_limits_hold_without_configuration(self):
        """The defaults (64 connections per address, 20 login attempts a minute per
        username) hold on a gateway started with no limit set."""
        f = self.fab
        self.restart_gateway()
        create_user(f, "erin")
        held = []
        try:
            held = self.hold(64)
            r = f.http("GET", "/healthz", token=None)
            self.assertLimited(r, "the 65th connection from one address")
        finally:
            for c in held:
                c.close()
        # 20 attempts at once, then one every 3 s: on a slow machine a few more get
        # through while the first 20 are checked, never more than the refill allows.
        t0, through, r = time.monotonic(), 0, None
        for _ in range(60):
            r = self.login("erin", "wrong-" + PASSWORD)
            if r.status != 401:
                break
            through += 1
        self.assertLimited(r, "attempts for one username past 20 a minute")
        self.assertLessEqual(through, 20 + int((time.monotonic() - t0) / 3) + 1)

    def test_logins_are_throttled_per_username_and_per_address(self):
        f = self.fab
        for u in ("alice", "bob", "carol", "dave"):
            create_user(f, u)
        self.restart_gateway("--login-per-user-per-min", "3", "--login-per-ip-per-min", "7")
        before = self.auth_log_logins()
        passed = 0
        # Three wrong passwords for alice are checked (401); the fourth attempt is not
        # even sent to dyno-auth, and neither is the right password now.
        for _ in range(3):
            self.assertEqual(self.login("alice", "wrong-" + PASSWORD).status, 401)
            passed += 1
        self.assertLimited(self.login("alice", "wrong-" + PASSWORD), "4th attempt for alice")
        self.assertLimited(self.login("alice"), "5th attempt for alice, right password")
        # Other usernames have budgets of their own, until the address has used its seven.
        self.assertEqual(self.login("bob").status, 200)
        self.assertEqual(self.login("carol").status, 200)
        passed += 2
        # The 8th attempt from this address is refused (a slow machine may have refilled
        # one attempt by then, never more than a few).
        for _ in range(4):
            r = self.login("dave")
            if r.status == 429:
                break
            passed += 1
        self.assertLimited(r, "attempts past 7 a minute from this address")
        # dyno-auth saw exactly the attempts that were let through.
        deadline = time.monotonic() + 5
        while self.auth_log_logins() - before < passed and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.auth_log_logins() - before, passed)
        # Bad input is still a plain 400 and costs no attempt.
        r = f.http("POST", "/v1/auth/login", token=None, body="{not json",
                   headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 400, r.body)


if __name__ == "__main__":
    unittest.main()
