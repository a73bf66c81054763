"""Run by test_s3.py under /usr/bin/python3 (Debian's boto3/botocore; the python3 on PATH may
have another). Executes the Python snippet in argv[1] with these names defined, then prints
the JSON of its variable `out` on stdout:

  URL, KEY, SECRET          the endpoint and the access key (env S3_URL, S3_KEY, S3_SECRET)
  client(**cfg)             a boto3 S3 client (path style, no retries)
  code(fn)                  runs fn(): "ok" and its result, or the S3 error code and status
  signed(method, path, body=b"", headers=None, payload=None, host=None, when=None,
         send_body=None, body_fn=None)
                            a request signed by botocore's S3 SigV4 signer (payload: the
                            x-amz-content-sha256 to declare; host: the Host header; when: the
                            signing time) and sent with http.client, with send_body instead
                            of body, or body_fn(seed signature, x-amz-date): (status, headers,
                            body)
  chunked(seed, amz_date, data, chunk)
                            an aws-chunked body with chained chunk signatures
"""
import datetime
import hashlib
import hmac
import http.client
import json
import os
import sys
from unittest import mock
from urllib.parse import urlsplit

import boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

URL = os.environ["S3_URL"]
KEY = os.environ["S3_KEY"]
SECRET = os.environ["S3_SECRET"]
REGION = "us-east-1"
EMPTY_SHA = hashlib.sha256(b"").hexdigest()


def client(**cfg):
    c = Config(retries={"max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"},
               connect_timeout=10, read_timeout=120, **cfg)
    return boto3.client("s3", endpoint_url=URL, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                        region_name=REGION, config=c)


def code(fn):
    try:
        return {"code": "ok", "result": fn()}
    except ClientError as e:
        return {"code": e.response.get("Error", {}).get("Code"),
                "status": e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")}


class _Declared(S3SigV4Auth):
    def __init__(self, creds, decl):
        super().__init__(creds, "s3", REGION)
        self.decl = decl

    def payload(self, request):
        return self.decl if self.decl is not None else super().payload(request)


def signed(method, path, body=b"", headers=None, payload=None, host=None, when=None, send_body=None,
           body_fn=None):
    u = urlsplit(URL)
    netloc = host or u.netloc
    req = AWSRequest(method=method, url="http://%s%s" % (netloc, path), headers=dict(headers or {}), data=body)
    auth = _Declared(Credentials(KEY, SECRET), payload)
    with mock.patch("botocore.auth.datetime") as dt:
        dt.datetime.utcnow.return_value = when or datetime.datetime.utcnow()
        auth.add_auth(req)
    p = req.prepare()
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    hdrs = dict(p.headers.items())
    hdrs["Host"] = netloc
    data = send_body if send_body is not None else body
    if body_fn is not None:  # a body made from the seed signature (aws-chunked)
        data = body_fn(hdrs["Authorization"].split("Signature=")[1], hdrs["X-Amz-Date"])
    hdrs["Content-Length"] = str(len(data))
    conn.request(method, urlsplit(p.url).path + ("?" + urlsplit(p.url).query if urlsplit(p.url).query else ""),
                 body=data, headers=hdrs)
    r = conn.getresponse()
    out = (r.status, dict(r.getheaders()), r.read().decode("utf-8", "replace"))
    conn.close()
    return out


def chunked(seed, amz_date, data, chunk):
    k = hmac.new(("AWS4" + SECRET).encode(), amz_date[:8].encode(), hashlib.sha256).digest()
    for part in (REGION, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    scope = "%s/%s/s3/aws4_request" % (amz_date[:8], REGION)
    prev, body = seed, b""
    for piece in [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]:
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY_SHA,
                         hashlib.sha256(piece).hexdigest()])
        prev = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        body += ("%x;chunk-signature=%s\r\n" % (len(piece), prev)).encode() + piece + b"\r\n"
    return body


if __name__ == "__main__":
    scope = dict(globals())
    exec(sys.argv[1], scope)
    print(json.dumps(scope.get("out"), default=str))
