#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/<name>/.

The seeds are checked in; this script says how they were made and remakes them. Each
seed is a valid input in the target's own input format (see the comment at the top of
tests/fuzz/fuzz_<name>.c). The valid raw token needs the `cryptography` package and the
fixed key seed of fuzz_token.c; without the package that one seed is skipped.
"""
import base64
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "00112233445566778899aabbccddeeff"


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def frag_header(k, m, index, replica, unit, catalog, name, key=KEY):
    """lib/frag.h header layout; 1024 bytes, CRC32C last."""
    cat, nm = catalog.encode(), name.encode()
    h = bytearray(1024)
    h[0:8] = b"DYNOFRAG"
    struct.pack_into("<HBBBBHIHH", h, 8, 1, k, m, index, 1 if replica else 0, len(cat), unit, len(nm), 0)
    h[24:56] = key.encode()
    h[56:56 + len(cat)] = cat
    h[56 + len(cat):56 + len(cat) + len(nm)] = nm
    struct.pack_into("<I", h, 1020, crc32c(bytes(h[:1020])))
    return bytes(h)


def frag_trailer(size, records):
    t = bytearray(64)
    t[0:8] = b"DYNOTAIL"
    struct.pack_into("<Q", t, 8, size)
    t[16:48] = bytes(range(32))
    struct.pack_into("<QI", t, 48, records, 0)
    struct.pack_into("<I", t, 60, crc32c(bytes(t[:60])))
    return bytes(t)


def frag_records(payloads, records_total):
    out = bytearray()
    for p in payloads:
        out += struct.pack("<I", len(p)) + p + struct.pack("<I", crc32c(p))
    out += struct.pack("<I", 0)
    out += frag_trailer(sum(len(p) for p in payloads), records_total)
    return bytes(out)


def parser_cfg(with_header, reseal, fix_count, max_unit, first, stop_at=0xFF):
    flags = (1 if with_header else 0) | (2 if reseal else 0) | (4 if fix_count else 0)
    return bytes([flags]) + struct.pack("<H", max_unit - 1) + bytes([first, stop_at])


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def claims(**over):
    c = {"sub": "alice", "org": "lab/ct", "adm": False, "role": "user", "exp": 1767225600, "jti": KEY,
         "iat": 1767139200}
    c.update(over)
    return json.dumps(c, separators=(",", ":")).encode()


def signed_token(claims_json):
    try:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    except ImportError:
        return None
    seed = b"dynostore-fuzz-key\x00" + bytes(range(1, 14))  # fuzz_token.c's seed
    assert len(seed) == 32
    signing_input = b"dyn1." + b64url(claims_json)
    sig = Ed25519PrivateKey.from_private_bytes(seed).sign(signing_input)
    return signing_input + b"." + b64url(sig)


def policy(catalog, public=False, shares=()):
    return json.dumps({"catalog": catalog, "owner": catalog.split("/")[0], "public": public,
                       "shares": [{"principal": p, "kind": k, "access": a} for p, k, a in shares]},
                      separators=(",", ":")).encode()


def acl_input(flags, a, b, topic, sub, org):
    return bytes([flags]) + b"\0".join([a, b, topic.encode(), sub.encode(), org.encode()])


def ingest_input(flags, length, maximum, topic, resp=None, corr=None, props=()):
    """fuzz_ingest.c: flags, payload length, ingest_max, then NUL-separated parts."""
    parts = [topic.encode()]
    if flags & 1:
        parts.append(resp.encode())
    if flags & 2:
        parts.append(corr)
    for n, v in props:
        parts += [n.encode(), v.encode()]
    return bytes([flags]) + struct.pack("<II", length, maximum) + b"\0".join(parts)


def seeds():
    hdr_ec = frag_header(3, 2, 4, False, 1 << 20, "alice/projects/ct-scans", "scan \u00e9 001.tiff")
    hdr_small = frag_header(1, 2, 0, True, 16, "bob/x", "a")
    yield "frag_hdr", "ec-3-2", hdr_ec
    yield "frag_hdr", "replica", hdr_small
    yield "frag_hdr", "trailer", frag_trailer(1234, 3)

    recs = [bytes(range(16)), bytes(range(16, 32)), b"tail!"]
    stream = hdr_small + frag_records(recs, 3)
    yield "frag_parser", "header-3-records", parser_cfg(True, False, False, 16, 0) + stream
    yield "frag_parser", "header-resealed", parser_cfg(True, True, True, 64, 0) + stream
    yield "frag_parser", "header-stop-at-2", parser_cfg(True, False, False, 16, 0, 0x02) + stream
    yield "frag_parser", "header-stop-in-payload", parser_cfg(True, False, False, 16, 0, 0x11) + stream
    yield "frag_parser", "header-stop-at-header", parser_cfg(True, False, False, 16, 0, 0x20) + stream
    yield "frag_parser", "header-stop-at-trailer", parser_cfg(True, False, False, 16, 0, 0x30) + stream
    yield "frag_parser", "header-empty-object", parser_cfg(True, False, False, 16, 0) + hdr_small + \
        frag_records([], 0)
    yield "frag_parser", "range-from-2", parser_cfg(False, False, False, 256, 2) + \
        frag_records([b"x" * 16, b"y" * 7], 4)

    yield "token", "claims-user", b"\x01" + claims()
    yield "token", "claims-service-admin", b"\x01" + claims(sub="metadata-1", org="", adm=True, role="service")
    yield "token", "shape-only", b"\x00dyn1.eyJzdWIiOiJhIn0." + b"A" * 86
    yield "token", "b64url", b"\x02aGVsbG8td29ybGQ_"
    tok = signed_token(claims())
    if tok is not None:
        yield "token", "valid-token", b"\x00" + tok

    pol_x = policy("alice/x", shares=[("bob", "user", "read"), ("lab", "org", "write")])
    pol_y = policy("alice/x/y", public=True)
    yield "acl", "events-read", acl_input(0, pol_x, pol_y, "dyno/v1/events/alice/x", "bob", "lab/ct")
    yield "acl", "ingest-org-write", acl_input(0, pol_x, pol_y, "dyno/v1/ingest/alice/x", "carol", "lab")
    yield "acl", "subscribe-shared-wild", acl_input(0, pol_x, pol_y, "$share/g/dyno/v1/events/alice/+", "bob",
                                                    "")
    yield "acl", "reply", acl_input(4, pol_x, b"", "dyno/v1/reply/bob/1234", "bob", "")
    yield "acl", "service-rpc", acl_input(2, pol_y, pol_x, "dyno/v1/rpc/metadata/put", "metadata-1", "")
    yield "acl", "feed", acl_input(1, pol_x, b"", "dyno/v1/acl/alice/x", "root", "")

    yield "revoked", "two", json.dumps({"revoked": [{"jti": KEY, "exp": 1767225600},
                                                    {"jti": KEY[::-1], "exp": 1}]}).encode()
    yield "revoked", "empty", b'{"revoked":[]}'
    yield "revoked", "epochs", json.dumps({"revoked": [{"jti": KEY, "exp": 1767225600}],
                                           "epochs": [{"sub": "alice", "before": 1767139200},
                                                      {"sub": "lab.bob", "before": 1}]}).encode()

    # rest: mode 0 paths, 1 size + Range, 2 query values, 3 header values (fuzz_rest.c)
    for name, path in [("catalog", "/v1/catalogs/alice/a/b"), ("objects", "/v1/catalogs/alice/a/~/objects"),
                       ("shares", "/v1/catalogs/alice/a/~/shares"),
                       ("share-org", "/v1/catalogs/alice/a/~/shares/lab%2Fct"),
                       ("subscription", "/v1/catalogs/alice/a/~/subscription"),
                       ("named-like-share", "/v1/catalogs/o/a/shares/x"),
                       ("object-meta", "/v1/objects/%s/meta" % KEY), ("token", "/v1/tokens/" + KEY),
                       ("drain", "/v1/containers/c1/drain"), ("escaped", "/v1/catalogs/al%69ce/a%7E/%7E/objects"),
                       ("healthz", "/healthz"),
                       # the SPEC form beside "~" (reserved words at the end; docs/protocol.md §9)
                       ("spec-objects", "/v1/catalogs/alice/a/objects"),
                       ("spec-subscription", "/v1/catalogs/alice/a/b/subscription"),
                       ("spec-share-named-shares", "/v1/catalogs/o/a/shares/shares"),
                       ("spec-share-escaped", "/v1/catalogs/o/a/%73hares/lab%2Fct"),
                       ("spec-reserved-inside", "/v1/catalogs/o/objects/x"),
                       ("catalog-tilde", "/v1/catalogs/alice/a/shares/~")]:
        yield "rest", "path-" + name, b"\x00" + path.encode()
    for name, size, rng in [("a-b", 1000, "bytes=0-499"), ("open", 1000, "bytes=500-"), ("suffix", 1000, "bytes=-10"),
                            ("beyond", 10, "bytes=20-30"), ("multi", 1000, "bytes=0-1,5-6"), ("empty", 0, "bytes=0-0")]:
        yield "rest", "range-" + name, b"\x01" + struct.pack("<Q", size) + rng.encode()
    for name, v in [("limit", "1000"), ("flag", "true"), ("escapes", "a%2Bb%23c%C3%A9"), ("nul", "a%00b")]:
        yield "rest", "query-" + name, b"\x02" + v.encode()
    for name, v in [("resilience", "3,2"), ("resilience-max", "32,16"), ("length", "18446744073709551615"),
                    ("bearer", "Bearer  dyn1.abc.def"), ("bearer-case", "bEARER x")]:
        yield "rest", "header-" + name, b"\x03" + v.encode()

    stamps = [("dyno-user", "alice"), ("dyno-org", "lab/ct"), ("dyno-admin", "false")]
    yield "ingest", "stamped-named", ingest_input(0, 21, 262144, "dyno/v1/ingest/alice/sensors",
                                                  props=stamps + [("name", "r1")])
    yield "ingest", "reply-corr", ingest_input(3, 4, 262144, "dyno/v1/ingest/alice/x/y", resp="dyno/v1/reply/alice/7",
                                               corr=b"\x01\x02", props=[("name", "t \u00e9")] + stamps)
    yield "ingest", "oversize", ingest_input(0, 300000, 262144, "dyno/v1/ingest/bob/inbox", props=stamps)
    yield "ingest", "forged-twice", ingest_input(0, 1, 262144, "dyno/v1/ingest/alice/sensors",
                                                 props=stamps + [("DYNO-USER", "mallory")])
    yield "ingest", "bad-name", ingest_input(0, 1, 16, "dyno/v1/ingest/alice/sensors",
                                             props=stamps + [("name", "a/b")])
    yield "ingest", "bad-topic", ingest_input(0, 1, 16, "dyno/v1/ingest/../x", props=stamps)


def main():
    for target, name, data in seeds():
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
