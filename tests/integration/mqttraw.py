"""Hand-built MQTT v5 packets for the tests that feed the broker's plugin what no client
library would send (invalid UTF-8, oversized strings, truncated payloads). Standard library
only."""

import base64
import json
import socket
import struct


def jti_of(token):
    """The jti claim of a dyn1.<claims>.<sig> token."""
    claims = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))["jti"]


def mqtt_str(b):
    return struct.pack("!H", len(b)) + b


def varint(n):
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(client_id, username=None, password=None, raw_payload_tail=b""):
    """An MQTT v5 CONNECT with raw bytes for the strings (so they may be invalid);
    raw_payload_tail is appended as is (for malformed packets)."""
    flags = 0x02
    payload = mqtt_str(client_id)
    if username is not None:
        flags |= 0x80
        payload += mqtt_str(username)
    if password is not None:
        flags |= 0x40
        payload += mqtt_str(password)
    payload += raw_payload_tail
    var = mqtt_str(b"MQTT") + bytes([5, flags]) + struct.pack("!H", 60) + varint(0)
    body = var + payload
    return bytes([0x10]) + varint(len(body)) + body


def raw_connect(port, packet):
    """Sends packet (a CONNECT) to 127.0.0.1:port; the CONNACK reason code, or None when the
    broker just closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            s.sendall(packet)
            head = s.recv(2)
            if len(head) < 2 or head[0] != 0x20:
                return None
            rest = b""
            while len(rest) < head[1]:
                chunk = s.recv(head[1] - len(rest))
                if not chunk:
                    break
                rest += chunk
            return rest[1] if len(rest) >= 2 else None
        except (ConnectionResetError, BrokenPipeError, socket.timeout):
            return None
