"""MQTT ingest under a burst (issue 9, class 10): readings the broker accepted are never
dropped. 16 publishers at QoS 1, each with 32 readings in flight, publish N readings in
all (DYNO_INGEST_BURST, default 20,000); afterwards every reading is an object of its
catalog, with its name, and reads back byte for byte: 0 lost.

Before issue 9 the gateway took every message its subscription delivered into a queue of
64 jobs and dropped the rest ("queue full") after the broker had already acknowledged
them to the publisher: about 450 of 20,000 readings vanished in every run. Now the
gateway's ingest sessions announce a small Receive Maximum and acknowledge a message only
once it is stored, so the backlog waits in the broker (docs/pubsub.md)."""

import http.client
import os
import socket
import struct
import threading
import time
import unittest
import urllib.parse

from fabric import FabricCase
from mqttraw import connect_packet, mqtt_str, varint
from test_events import new_user

PUBLISHERS = 16
IN_FLIGHT = 32
TOTAL = int(os.environ.get("DYNO_INGEST_BURST", "20000"))
CATALOG = "alice/burst"
# Without progress for this long the gateway is taken to have stopped storing.
STALL_S = 120.0


def reading(p, i, tag="p"):
    """The name and payload of publisher p's i-th reading."""
    name = "%s%02d-r%05d" % (tag, p, i)
    return name, ("%s=%d.%03d" % (name, 20 + i % 10, (p * 7919 + i) % 1000)).encode()


def read_packet(sock):
    """One MQTT packet: (first byte, body)."""
    def exact(n):
        b = b""
        while len(b) < n:
            c = sock.recv(n - len(b))
            if not c:
                raise ConnectionError("broker closed the connection")
            b += c
        return b
    first = exact(1)[0]
    n, mult = 0, 1
    while True:
        byte = exact(1)[0]
        n += (byte & 0x7F) * mult
        mult *= 128
        if not byte & 0x80:
            break
    return first, exact(n)


def publish_packet(topic, pid, name, payload):
    """PUBLISH, QoS 1, with the user property name=<name>."""
    prop = b"\x26" + mqtt_str(b"name") + mqtt_str(name.encode())
    body = mqtt_str(topic.encode()) + struct.pack("!H", pid) + varint(len(prop)) + prop + payload
    return bytes([0x32]) + varint(len(body)) + body


class Publisher(threading.Thread):
    """A raw MQTT v5 publisher that keeps up to IN_FLIGHT QoS 1 readings unacknowledged
    (less when the broker's Receive Maximum is lower). Records the readings the broker
    acknowledged with a success code and those it refused."""

    def __init__(self, port, user, token, index, count, catalog=CATALOG, tag="p"):
        super().__init__(daemon=True)
        self.port, self.user, self.token, self.index, self.count = port, user, token, index, count
        self.catalog, self.tag = catalog, tag
        self.acked, self.refused, self.error = [], [], None

    def run(self):
        try:
            self._run()
        except Exception as e:  # reported by the test
            self.error = repr(e)

    def _run(self):
        cid = ("burst-%d-%s%d" % (os.getpid(), self.tag, self.index)).encode()
        with socket.create_connection(("127.0.0.1", self.port), timeout=120) as s:
            s.sendall(connect_packet(cid, self.user.encode(), self.token.encode()))
            first, body = read_packet(s)
            if first != 0x20 or body[1] != 0:
                raise ConnectionError("CONNACK %r" % body)
            window = IN_FLIGHT
            plen, i, mult = 0, 2, 1  # CONNACK: flags, reason, then the properties' length
            while True:
                plen += (body[i] & 0x7F) * mult
                mult *= 128
                i += 1
                if not body[i - 1] & 0x80:
                    break
            props = body[i:i + plen]
            j = 0
            while j < len(props):  # only Receive Maximum (0x21) matters here; skip the rest
                pid = props[j]
                if pid == 0x21:
                    window = min(window, struct.unpack("!H", props[j + 1:j + 3])[0])
                    j += 3
                elif pid in (0x24, 0x25, 0x28, 0x29, 0x2A, 0x01, 0x17, 0x19):
                    j += 2
                elif pid in (0x13, 0x22):
                    j += 3
                elif pid in (0x11, 0x27):
                    j += 5
                elif pid in (0x12, 0x1A, 0x1C, 0x1F, 0x03, 0x15, 0x08):
                    j += 3 + struct.unpack("!H", props[j + 1:j + 3])[0]
                elif pid == 0x26:
                    k = j + 1
                    for _ in range(2):
                        k += 2 + struct.unpack("!H", props[k:k + 2])[0]
                    j = k
                else:
                    break
            topic = "dyno/v1/ingest/" + self.catalog
            pending = {}
            nxt = 0
            while nxt < self.count or pending:
                while nxt < self.count and len(pending) < window:
                    pid = nxt % 60000 + 1
                    name, payload = reading(self.index, nxt, self.tag)
                    s.sendall(publish_packet(topic, pid, name, payload))
                    pending[pid] = name
                    nxt += 1
                first, body = read_packet(s)
                if first >> 4 != 4:  # PUBACK; nothing else is expected
                    continue
                pid = struct.unpack("!H", body[:2])[0]
                reason = body[2] if len(body) > 2 else 0
                name = pending.pop(pid, None)
                if name is None:
                    continue
                (self.refused if reason >= 0x80 else self.acked).append(name)
            s.sendall(b"\xe0\x00")  # DISCONNECT


class IngestBurstTest(FabricCase):
    CONTAINERS = 5

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.alice = new_user(cls.fab, "alice")

    def publish(self, catalog, total, tag, publishers=PUBLISHERS, during=None):
        """total readings of catalog from publishers raw publishers at QoS 1; during() (if
        given) runs while they publish. The names the broker acknowledged, and every
        reading's payload by name."""
        port = int(self.fab.fabric["broker"]["port"])
        per = [total // publishers + (1 if p < total % publishers else 0) for p in range(publishers)]
        pubs = [Publisher(port, "alice", self.alice, p, per[p], catalog, tag) for p in range(publishers)]
        for p in pubs:
            p.start()
        if during is not None:
            during()
        for p in pubs:
            p.join(900)
        for p in pubs:
            self.assertFalse(p.is_alive(), "publisher %d still runs" % p.index)
            self.assertIsNone(p.error, "publisher %d failed: %s" % (p.index, p.error))
            self.assertEqual(p.refused, [], "the broker refused readings of publisher %d" % p.index)
        acked = {n for p in pubs for n in p.acked}
        self.assertEqual(len(acked), total, "the broker acknowledged %d of %d readings" % (len(acked), total))
        expected = {}
        for p in range(publishers):
            for i in range(per[p]):
                name, payload = reading(p, i, tag)
                expected[name] = payload
        return acked, expected

    def wait_stored(self, catalog, acked, stall_s=STALL_S):
        """Waits until every acknowledged reading is an object, or until the gateway stops
        making progress for stall_s; fails with the readings that were lost. The objects by
        name."""
        f = self.fab
        seen, last_n, last_change = {}, -1, time.monotonic()
        while True:
            seen = {o.get("name"): o for o in f.list_catalog(catalog, token=self.alice)}
            if acked <= set(seen):
                break
            if len(seen) != last_n:
                last_n, last_change = len(seen), time.monotonic()
            elif time.monotonic() - last_change > stall_s:
                break
            time.sleep(2)
        lost = sorted(acked - set(seen))
        self.assertEqual(lost, [], "%d of %d acknowledged readings were never stored (first: %s)"
                         % (len(lost), len(acked), lost[:5]))
        return seen

    def assert_read_back(self, seen, expected):
        """Every reading reads back byte for byte (8 readers, keep-alive)."""
        f = self.fab
        names = sorted(expected)
        wrong, errors = [], []

        def reader(part):
            h, prt = f.host_port
            c = http.client.HTTPConnection(h, prt, timeout=60)
            try:
                for name in part:
                    key = seen[name]["key"]
                    c.request("GET", "/v1/objects/" + urllib.parse.quote(key, safe="/"),
                              headers={"Authorization": "Bearer " + self.alice})
                    r = c.getresponse()
                    body = r.read()
                    if r.status != 200:
                        errors.append((name, r.status, body[:200]))
                    elif body != expected[name]:
                        wrong.append(name)
            except Exception as e:
                errors.append(("reader", repr(e)))
            finally:
                c.close()

        threads = [threading.Thread(target=reader, args=(names[k::8],)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [], "reads failed")
        self.assertEqual(wrong, [], "readings read back with other bytes")

    def test_burst_of_qos1_readings_loses_none(self):
        self.fab.create_catalog(CATALOG, token=self.alice)
        acked, expected = self.publish(CATALOG, TOTAL, "p")
        seen = self.wait_stored(CATALOG, acked)
        self.assert_read_back(seen, expected)

    def test_gateway_killed_mid_burst_loses_none(self):
        """The gateway is killed (SIGKILL) while it stores a burst and started again: what
        it had not stored waits in the broker for its ingest sessions."""
        f = self.fab
        catalog = "alice/killed"
        f.create_catalog(catalog, token=self.alice)
        gw = f.names("gateway")[0]
        before = f.metrics().get("dyno_gateway_ingested_total", 0)

        def kill_when_busy():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if f.metrics().get("dyno_gateway_ingested_total", 0) >= before + 300:
                    break
                time.sleep(0.2)
            f.kill(gw)
            time.sleep(1)
            f.restart(gw)

        acked, expected = self.publish(catalog, 3000, "k", during=kill_when_busy)
        seen = self.wait_stored(catalog, acked)
        self.assert_read_back(seen, expected)

    def test_readings_wait_while_the_gateway_is_down(self):
        """Readings published while the gateway is down wait in the broker for its ingest
        sessions (persistent) and are stored once it is back."""
        f = self.fab
        catalog = "alice/gwdown"
        f.create_catalog(catalog, token=self.alice)
        gw = f.names("gateway")[0]
        f.kill(gw)
        try:
            acked, expected = self.publish(catalog, 200, "g", publishers=4)
        finally:
            f.restart(gw)
        seen = self.wait_stored(catalog, acked)
        self.assert_read_back(seen, expected)

    def test_readings_wait_while_metadata_is_down(self):
        """Readings published while dyno-metadata is down are stored once it is back,
        instead of being refused (and lost) as failed puts."""
        f = self.fab
        catalog = "alice/outage"
        f.create_catalog(catalog, token=self.alice)
        md = f.names("metadata")[0]
        f.kill(md)
        try:
            acked, expected = self.publish(catalog, 40, "m", publishers=2)
            time.sleep(3)  # the gateway tries them meanwhile, and fails
        finally:
            f.restart(md)
        seen = self.wait_stored(catalog, acked)
        self.assert_read_back(seen, expected)


if __name__ == "__main__":
    unittest.main()
