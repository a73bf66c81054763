#!/usr/bin/python3
"""Generates tests/unit/sigv4_vectors.h: AWS SigV4 test vectors for test_sigv4.c, computed by
an implementation independent of lib/sigv4.c.

Header and presigned signatures come from botocore (Debian's python3-botocore, run with
/usr/bin/python3: the `python3` on PATH may be another one) with its clock patched. botocore
has no signer for aws-chunked bodies, so the chunk signatures of the streaming vectors are
computed here from AWS's published rules with hashlib/hmac (the seed signature is still
botocore's). The file is committed with this script; regenerate with

    /usr/bin/python3 tests/unit/gen_sigv4_vectors.py > tests/unit/sigv4_vectors.h
"""
import datetime
import hashlib
import hmac
import sys
from unittest import mock
from urllib.parse import quote, urlsplit

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

KEY_ID = "AKIDEXAMPLE0000000001"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REGION = "us-east-1"
NOW = datetime.datetime(2026, 12, 7, 20, 0, 0)
NOW_UNIX = int(NOW.replace(tzinfo=datetime.timezone.utc).timestamp())
EMPTY_SHA = hashlib.sha256(b"").hexdigest()


class StreamingAuth(S3SigV4Auth):
    """botocore's S3 signer with the payload declared as aws-chunked (seed signature)."""

    def __init__(self, creds, decl):
        super().__init__(creds, "s3", REGION)
        self.decl = decl

    def payload(self, request):
        return self.decl


def sign(method, url, headers=None, body=b"", auth=None, presign_expires=None):
    creds = Credentials(KEY_ID, SECRET)
    req = AWSRequest(method=method, url=url, headers=dict(headers or {}), data=body)
    if auth is None:
        if presign_expires is not None:
            auth = S3SigV4QueryAuth(creds, "s3", REGION, expires=presign_expires)
        else:
            auth = S3SigV4Auth(creds, "s3", REGION)
    with mock.patch("botocore.auth.datetime") as dt:
        dt.datetime.utcnow.return_value = NOW
        auth.add_auth(req)
    p = req.prepare()
    parts = urlsplit(p.url)
    hdrs = [(k.lower(), v) for k, v in p.headers.items()]
    hdrs.append(("host", parts.netloc))
    return parts.path, parts.query, hdrs, req


def c_str(b):
    if isinstance(b, str):
        b = b.encode()
    out = []
    for ch in b:
        if ch in (0x22, 0x5C):
            out.append("\\" + chr(ch))
        elif 0x20 <= ch < 0x7F and ch != 0x3F:  # no '?' (trigraphs)
            out.append(chr(ch))
        else:
            out.append("\\%03o" % ch)
    return '"' + "".join(out) + '"'


def hm(key, msg):
    return hmac.new(key, msg.encode() if isinstance(msg, str) else msg, hashlib.sha256).digest()


def signing_key(date):
    k = hm(("AWS4" + SECRET).encode(), date)
    k = hm(k, REGION)
    k = hm(k, "s3")
    return hm(k, "aws4_request")


def chunked_body(seed_sig, amz_date, data, chunk):
    """The aws-chunked encoding of data with chained chunk signatures (AWS's rules)."""
    key = signing_key(amz_date[:8])
    scope = "%s/%s/s3/aws4_request" % (amz_date[:8], REGION)
    prev = seed_sig
    out = b""
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    for piece in pieces:
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY_SHA,
                         hashlib.sha256(piece).hexdigest()])
        sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        out += ("%x;chunk-signature=%s\r\n" % (len(piece), sig)).encode() + piece + b"\r\n"
        prev = sig
    return out


VECTORS = []


def add(name, path, query, hdrs, body=b"", decoded=b"", presigned=False):
    VECTORS.append(dict(name=name, path=path, query=query, hdrs=hdrs, body=body, decoded=decoded,
                        presigned=presigned))


def main():
    host = "127.0.0.1:9000"
    # 1. GET of an object, header auth, empty payload hash
    p, q, h, _ = sign("GET", "http://%s/photos/cat.jpg" % host)
    add("get_object", p, q, h)
    # 2. PUT with a signed body, a key with spaces, '+', '=', unicode and '~'
    key = quote("dir one/a+b=c é~.txt", safe="/~")
    body = b"hello, dynostore\n" * 10
    p, q, h, _ = sign("PUT", "http://%s/bucket/%s" % (host, key), {"Content-Type": "text/plain"}, body)
    add("put_unicode_key", p, q, h, body, body)
    # 3. ListObjectsV2 with encoded query values
    p, q, h, _ = sign("GET", "http://%s/bucket?list-type=2&prefix=a%%2Fb&delimiter=%%2F&max-keys=10" % host)
    add("list_query", p, q, h)
    # 4. a query parameter without a value (?uploads)
    p, q, h, _ = sign("POST", "http://%s/bucket/big.bin?uploads" % host)
    add("create_mpu", p, q, h)
    # 5. presigned GET, one hour
    p, q, h, _ = sign("GET", "http://%s/bucket/report%%20v2.pdf" % host, presign_expires=3600)
    h = [x for x in h if x[0] in ("host",)]
    add("presigned_get", p, q, h, presigned=True)
    # 6. UNSIGNED-PAYLOAD (boto3 over https does this; any client may)
    creds = Credentials(KEY_ID, SECRET)
    body6 = b"x" * 1000
    p, q, h, _ = sign("PUT", "http://%s/bucket/unsigned" % host, body=body6,
                      auth=StreamingAuth(creds, "UNSIGNED-PAYLOAD"))
    add("unsigned_payload", p, q, h, body6, body6)
    # 7. aws-chunked with chunk signatures: 2 chunks of 8 KiB and a short one (the payload is
    #    (i * 7) & 0xFF, made again by the test)
    data = bytes((i * 7) & 0xFF for i in range(2 * 8192 + 100))
    decl = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    enc_len = len(chunked_body("0" * 64, "20261207T200000Z", data, 8192))
    p, q, h, req = sign("PUT", "http://%s/bucket/streamed" % host,
                        {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
                         "Content-Length": str(enc_len)},
                        auth=StreamingAuth(creds, decl))
    seed = dict(h)["authorization"].split("Signature=")[1]
    body7 = chunked_body(seed, dict(h)["x-amz-date"], data, 8192)
    assert len(body7) == enc_len
    add("streaming_signed", p, q, h, body7, data)
    # 8. STREAMING-UNSIGNED-PAYLOAD-TRAILER: unsigned chunks, a checksum trailer
    crc = __import__("base64").b64encode(__import__("zlib").crc32(data).to_bytes(4, "big")).decode()
    body8 = b"".join(b"%x\r\n" % len(data[i:i + 8192]) + data[i:i + 8192] + b"\r\n"
                     for i in range(0, len(data), 8192))
    body8 += b"0\r\nx-amz-checksum-crc32:" + crc.encode() + b"\r\n\r\n"
    p, q, h, _ = sign("PUT", "http://%s/bucket/trailer" % host,
                      {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
                       "x-amz-trailer": "x-amz-checksum-crc32", "Content-Length": str(len(body8))},
                      auth=StreamingAuth(creds, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"))
    add("streaming_trailer", p, q, h, body8, data)

    print("/* Generated by tests/unit/gen_sigv4_vectors.py (botocore %s): do not edit. */\n"
          "/* clang-format off */"
          % __import__("botocore").__version__)
    print("#define SIGV4_VEC_KEY_ID %s" % c_str(KEY_ID))
    print("#define SIGV4_VEC_SECRET %s" % c_str(SECRET))
    print("#define SIGV4_VEC_REGION %s" % c_str(REGION))
    print("#define SIGV4_VEC_NOW %dLL" % NOW_UNIX)
    print("struct sigv4_vec_hdr { const char *name, *value; };")
    print("struct sigv4_vec {")
    print("    const char *name, *method, *path, *query;")
    print("    struct sigv4_vec_hdr hdrs[12];")
    print("    const char *body; size_t body_len;")
    print("    size_t decoded_len; /* the payload: the body, or (i * 7) & 0xFF for a streaming body */")
    print("    int presigned;")
    print("};")
    for i, v in enumerate(VECTORS):
        # byte arrays, not string literals: C limits the length a compiler must take
        data = v["body"] or b"\0"
        print("static const char sigv4_body_%d[] = {" % i)
        for j in range(0, len(data), 24):
            print("    " + ", ".join("%d" % (b if b < 128 else b - 256) for b in data[j:j + 24]) + ",")
        print("};")
    print("static const struct sigv4_vec sigv4_vecs[] = {")
    methods = {"get_object": "GET", "put_unicode_key": "PUT", "list_query": "GET", "create_mpu": "POST",
               "presigned_get": "GET", "unsigned_payload": "PUT", "streaming_signed": "PUT",
               "streaming_trailer": "PUT"}
    for i, v in enumerate(VECTORS):
        hs = ", ".join("{%s, %s}" % (c_str(k), c_str(val)) for k, val in v["hdrs"])
        print("    {%s, %s, %s, %s, {%s}, %s, %d, %d, %d}," % (
            c_str(v["name"]), c_str(methods[v["name"]]), c_str(v["path"]), c_str(v["query"]), hs,
            "sigv4_body_%d" % i, len(v["body"]), len(v["decoded"]),
            1 if v["presigned"] else 0))
    print("};")


if __name__ == "__main__":
    sys.exit(main())
