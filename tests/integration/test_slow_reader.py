"""A slow reader is not corruption (issue 9, class 7).

A client that stops reading makes the gateway stop reading its fragment streams, and each
container closes a stream that moved no byte for its `stream_timeout` (2 s here instead of
120 s, so the test is quick). The client then gets a failed or a complete transfer, but the
cut streams are unavailability, never corruption: no fragment is reported to metadata, no CRC
counter moves, and the object stays committed and readable. Only a CRC or SHA-256 mismatch is
corruption (test_faults.CorruptFragment keeps showing that one is still reported)."""

import os
import socket
import sys
import time
import unittest

from fabric import MiB, FabricCase, sha256_file, write_random_file

STREAM_TIMEOUT = 2  # seconds, the containers' stream_timeout in this test
SIZE = 96 * MiB     # fragments of 32 MiB: far more than the socket buffers between them


class SlowReader(FabricCase):
    CONTAINERS = 5
    CAT = "admin/slow-reader"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        f = cls.fab
        for name in f.container_names():
            f.kill(name)
            f.restart(name, ["--stream-timeout", str(STREAM_TIMEOUT)])
        f.wait_containers_online(cls.CONTAINERS, exact=True)

    def crc_counters(self):
        """(the gateway's, the sum of the containers') CRC error counters."""
        f = self.fab
        gw = f.metrics().get("dyno_gateway_fragment_crc_errors_total", 0)
        cont = 0
        for c in f.containers_info():
            m = f.metrics(c["url"])
            cont += m.get("dyno_container_crc_errors_total", 0) + m.get("dyno_container_scrub_errors_total", 0)
        return gw, cont

    def cut_lines(self, key):
        """Gateway log lines about a failed fragment stream of key."""
        text = self.fab.log_text(self.fab.names("gateway")[0])
        return sum(1 for ln in text.splitlines()
                   if key in ln and ("fragment read failed" in ln or "fragment corrupt" in ln))

    def slow_get(self, key, first_read, pause, pauses):
        """GET of the object over a socket with a small receive buffer: reads first_read
        bytes, then stops reading for pause seconds, pauses times in all, then reads to the
        end. Returns (status, body bytes received, declared length)."""
        host, port = self.fab.host_port
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.settimeout(120)
        s.connect((host, port))
        try:
            s.sendall(("GET /v1/objects/%s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
                       "Connection: close\r\n\r\n" % (key, host, port, self.fab.token)).encode())
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
            head, _, body = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            length = None
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            got = len(body)
            h = None
            left = pauses
            while True:
                if left and got >= first_read:
                    time.sleep(pause)
                    left -= 1
                    first_read = got + 4 * MiB
                try:
                    chunk = s.recv(256 * 1024)
                except (ConnectionResetError, socket.timeout):
                    break
                if not chunk:
                    break
                got += len(chunk)
            return status, got, length
        finally:
            s.close()

    def test_slow_reader_reports_no_corruption(self):
        f = self.fab
        f.create_catalog(self.CAT)
        path = os.path.join(f.work, "big.bin")
        write_random_file(path, SIZE, seed=77)
        key = f.put_file(path, self.CAT, name="big")["key"]
        before = self.crc_counters()
        gw_log_before = self.cut_lines(key)

        status, got, length = self.slow_get(key, 1 * MiB, 3 * STREAM_TIMEOUT, 2)
        self.assertEqual(status, 200)
        self.assertEqual(length, SIZE)
        sys.stderr.write("[slow reader got %d of %d bytes] " % (got, SIZE))

        # The scenario happened: the containers cut the stalled streams, and the gateway saw
        # it (whatever it made of it), else this test would prove nothing.
        self.assertGreater(self.cut_lines(key), gw_log_before,
                           "no fragment stream of the slow read was cut: the containers never stalled")

        # Reports are notifications: give one time to land before looking for its effect.
        time.sleep(2)
        meta = f.http("GET", "/v1/objects/%s/meta" % key).json()
        self.assertEqual(meta.get("state"), "committed", "a slow reader degraded the object: %r" % meta)
        states = {fr["index"]: fr.get("state") for fr in meta["fragments"]}
        self.assertEqual(set(states.values()), {"ok"}, "fragments marked after a slow read: %r" % states)
        self.assertEqual(self.crc_counters(), before, "CRC counters moved without any bad byte")
        for name, text in f.all_logs_text():
            self.assertNotIn("fragment corrupt", text, "%s logged a corrupt fragment" % name)
        rep = f.http("GET", "/v1/admin/repair").json()
        self.assertEqual(rep.get("degraded_objects", 0), 0, rep)
        self.assertEqual(rep.get("unrecoverable", 0), 0, rep)

        # and the object reads back whole
        out = os.path.join(f.work, "big.out")
        f.cli("get", key, "-o", out)
        self.assertEqual(sha256_file(out), sha256_file(path))


if __name__ == "__main__":
    unittest.main()
