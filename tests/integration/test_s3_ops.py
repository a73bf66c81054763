"""Issue 14 (s3-ops): listing, DeleteObjects, CopyObject and multipart uploads of the S3 door,
driven by the real clients from Debian: boto3 under /usr/bin/python3 (run as a subprocess:
the `python3` on PATH may be another interpreter), against a real fabric whose gateway
serves S3 on an ephemeral port, with an access key made through REST.

DYNO_S3_MPU_BIG=<MiB> adds a multipart upload of that size (5120 for the 5 GiB case).
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from fabric import FabricCase  # noqa: E402

MiB = 1 << 20
PY = "/usr/bin/python3"

# Prepended to every boto3 snippet: a client from the environment, and out() for results.
BOTO_PRELUDE = r'''
import json, os, sys, hashlib
import boto3, botocore
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["S3_URL"], region_name="us-east-1",
                  aws_access_key_id=os.environ["S3_KEY"], aws_secret_access_key=os.environ["S3_SECRET"],
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                read_timeout=600, connect_timeout=30))
def out(v):
    sys.stdout.write(json.dumps(v))
def code_of(e):
    return e.response.get("Error", {}).get("Code")
'''


class S3Ops(FabricCase):
    USER, PASSWORD = "alice", "alice-pass-1234"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        f = cls.fab
        r = f.http("POST", "/v1/users", body=json.dumps({"username": cls.USER, "password": cls.PASSWORD}))
        assert r.status == 201, (r.status, r.body)
        r = f.http("POST", "/v1/auth/login", token=None,
                   body=json.dumps({"username": cls.USER, "password": cls.PASSWORD}))
        assert r.status == 200, (r.status, r.body)
        cls.tok = r.json()["token"]
        r = f.http("POST", "/v1/keys", body="{}", headers={"Content-Type": "application/json"}, token=cls.tok)
        assert r.status in (200, 201), (r.status, r.body)
        k = r.json()
        cls.key_id, cls.secret = k["access_key_id"], k["secret_access_key"]
        # `dynostore up` serves S3 on the gateway (fabric.json "s3"); else a gateway of our own.
        cls.s3_url = (f.fabric or {}).get("s3") or cls.start_s3("s3", {})

    @classmethod
    def start_s3(cls, gid, extra):
        """A gateway of this fabric with the S3 door on an ephemeral port; its S3 URL."""
        pf = os.path.join(cls.fab.tmp, "s3port-" + gid)
        cfg = {"s3_port": 0, "s3_port_file": pf}
        cfg.update(extra)
        cls.fab.start_gateway(gid, extra=cfg)
        with open(pf) as fh:
            return "http://127.0.0.1:%d" % int(fh.read().strip())

    def stop_gateway(self, name):
        """Stops a gateway this test started (start_gateway records its Popen), by its pid."""
        pop = self.fab._spawned[name]["popen"]
        if pop.poll() is None:
            pop.send_signal(signal.SIGTERM)
            pop.wait(60)

    # ---- helpers -------------------------------------------------------------------------

    def boto(self, code, url=None, timeout=900, check=True):
        env = dict(os.environ, S3_URL=url or self.s3_url, S3_KEY=self.key_id, S3_SECRET=self.secret,
                   AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
        cp = subprocess.run([PY, "-c", BOTO_PRELUDE + code], capture_output=True, text=True, env=env,
                            timeout=timeout)
        if check:
            self.assertEqual(cp.returncode, 0, cp.stderr[-3000:])
        return json.loads(cp.stdout) if cp.stdout.strip() else None

    def bucket(self, name):
        self.fab.create_catalog("%s/%s" % (self.USER, name), token=self.tok)
        return name

    def rest_put(self, bucket, name, data):
        r = self.fab.put_bytes("%s/%s" % (self.USER, bucket), data, name=name, token=self.tok)
        self.assertEqual(r.status, 201, r.body)
        return r.json()

    def rest_get_name(self, bucket, name):
        """The bytes of the object named name, through REST (not the S3 door)."""
        objs = [o for o in self.fab.list_catalog("%s/%s" % (self.USER, bucket), token=self.tok)
                if o["name"] == name]
        self.assertEqual(len(objs), 1, name)
        r = self.fab.get_object(objs[0]["key"], token=self.tok)
        self.assertEqual(r.status, 200)
        return r.body, objs[0]

    def put_many(self, bucket, names, data=b"x"):
        errs = []
        todo = list(names)
        lock = threading.Lock()

        def work():
            while True:
                with lock:
                    if not todo:
                        return
                    n = todo.pop()
                try:
                    r = self.fab.put_bytes("%s/%s" % (self.USER, bucket), data, name=n, token=self.tok)
                    if r.status != 201:
                        errs.append((n, r.status))
                except Exception as e:  # noqa: BLE001 (reported below)
                    errs.append((n, repr(e)))
        ts = [threading.Thread(target=work) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errs, [])

    # ---- listing -------------------------------------------------------------------------

    def test_list_v2_paging_2500_with_delimiter(self):
        b = self.bucket("lst")
        # Names as S3 keys: 2,000 under "d/" (one common prefix), 500 at the top.
        names = ["d/%04d" % i for i in range(2000)] + ["top%04d" % i for i in range(500)]
        self.put_many(b, names)
        res = self.boto(r'''
keys, pages = [], 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="lst", PaginationConfig={"PageSize": 300}):
    pages += 1
    keys += [o["Key"] for o in page.get("Contents", [])]
out({"keys": keys, "pages": pages})
''')
        self.assertEqual(res["keys"], sorted(names))
        self.assertEqual(res["pages"], 9)
        res = self.boto(r'''
keys, prefixes, pages = [], [], 0
for page in s3.get_paginator("list_objects_v2").paginate(Bucket="lst", Delimiter="/",
                                                           PaginationConfig={"PageSize": 100}):
    pages += 1
    keys += [o["Key"] for o in page.get("Contents", [])]
    prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
r = s3.list_objects_v2(Bucket="lst", Prefix="d/", MaxKeys=5, StartAfter="d/0100")
v1 = s3.list_objects(Bucket="lst", Delimiter="/", MaxKeys=3)
v1b = s3.list_objects(Bucket="lst", Delimiter="/", MaxKeys=3, Marker=v1["NextMarker"])
enc = s3.list_objects_v2(Bucket="lst", Prefix="top000", EncodingType="url")
try:
    s3.list_objects_v2(Bucket="lst", ContinuationToken="not-a-token!")
    bad = None
except botocore.exceptions.ClientError as e:
    bad = code_of(e)
out({"keys": keys, "prefixes": prefixes, "pages": pages,
     "after": [o["Key"] for o in r["Contents"]], "truncated": r["IsTruncated"],
     "v1": [o["Key"] for o in v1.get("Contents", [])] + [p["Prefix"] for p in v1.get("CommonPrefixes", [])],
     "v1b": [o["Key"] for o in v1b.get("Contents", [])], "v1_next": v1["NextMarker"],
     "enc": [o["Key"] for o in enc["Contents"]], "bad": bad})
''')
        # The 2,000 d/ keys are one entry: 500 keys + 1 prefix = 501 entries, 6 pages of 100.
        self.assertEqual(res["prefixes"], ["d/"])
        self.assertEqual(res["keys"], ["top%04d" % i for i in range(500)])
        self.assertEqual(res["pages"], 6)
        self.assertEqual(res["after"], ["d/%04d" % i for i in range(101, 106)])
        self.assertTrue(res["truncated"])
        self.assertEqual(res["v1"], ["top0000", "top0001", "d/"])
        self.assertEqual(res["v1_next"], "top0001")
        self.assertEqual(res["v1b"], ["top0002", "top0003", "top0004"])
        self.assertEqual(res["enc"], ["top%04d" % i for i in range(10)])
        self.assertEqual(res["bad"], "InvalidArgument")

        # DeleteObjects of 1,000 keys (Content-MD5 sent by boto3), then 1,000 more quietly.
        res = self.boto(r'''
r1 = s3.delete_objects(Bucket="lst", Delete={"Objects": [{"Key": "d/%04d" % i} for i in range(1000)]})
r2 = s3.delete_objects(Bucket="lst", Delete={"Quiet": True,
                                            "Objects": [{"Key": "d/%04d" % i} for i in range(1000, 2000)]})
left = sum(len(p.get("Contents", [])) for p in s3.get_paginator("list_objects_v2").paginate(Bucket="lst"))
out({"deleted": len(r1.get("Deleted", [])), "errors": r1.get("Errors", []) + r2.get("Errors", []),
     "quiet_deleted": len(r2.get("Deleted", [])), "left": left})
''')
        self.assertEqual(res, {"deleted": 1000, "errors": [], "quiet_deleted": 0, "left": 500})
        listed = self.fab.list_catalog("%s/lst" % self.USER, token=self.tok)
        self.assertEqual(sorted(o["name"] for o in listed), ["top%04d" % i for i in range(500)])

    def test_delete_objects_bad_requests_change_nothing(self):
        b = self.bucket("mdel")
        self.put_many(b, ["k1", "k2"])
        res = self.boto(r'''
import base64
body = b'<Delete><Object><Key>k1</Key></Object></Delete>'
def send(body, md5=True, bad_md5=False):
    h = {}
    if md5:
        d = hashlib.md5(b"other" if bad_md5 else body).digest()
        h["Content-MD5"] = base64.b64encode(d).decode()
    req = botocore.awsrequest.AWSRequest(method="POST", url=os.environ["S3_URL"] + "/mdel?delete", data=body,
                                         headers=h)
    creds = botocore.credentials.Credentials(os.environ["S3_KEY"], os.environ["S3_SECRET"])
    botocore.auth.S3SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
    import urllib.request
    r = urllib.request.Request(req.url, data=body, headers=dict(req.headers), method="POST")
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
out({"nomd5": send(body, md5=False), "badmd5": send(body, bad_md5=True),
     "malformed": send(b"<Delete><Object><Key>k1</Key></Delete>"),
     "toomany": send(b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>"),
     "ok": send(body)})
''')
        self.assertEqual(res["nomd5"][0], 400)
        self.assertIn("<Code>InvalidRequest</Code>", res["nomd5"][1])
        self.assertEqual(res["badmd5"][0], 400)
        self.assertIn("<Code>BadDigest</Code>", res["badmd5"][1])
        self.assertIn("<Code>MalformedXML</Code>", res["malformed"][1])
        self.assertIn("<Code>MalformedXML</Code>", res["toomany"][1])
        self.assertEqual(res["ok"][0], 200)
        self.assertIn("<Deleted><Key>k1</Key></Deleted>", res["ok"][1])
        # Only the good request deleted anything, and only k1.
        listed = self.fab.list_catalog("%s/mdel" % self.USER, token=self.tok)
        self.assertEqual([o["name"] for o in listed], ["k2"])

    # ---- copy ----------------------------------------------------------------------------

    def test_copy_object_within_and_across_buckets(self):
        self.bucket("csrc")
        self.bucket("cdst")
        data = os.urandom(3 * MiB + 17)
        self.rest_put("csrc", "orig", data)
        res = self.boto(r'''
a = s3.copy_object(Bucket="cdst", Key="copy1", CopySource={"Bucket": "csrc", "Key": "orig"})
b = s3.copy_object(Bucket="csrc", Key="copy2", CopySource="csrc/orig", MetadataDirective="REPLACE",
                   ContentType="text/plain", Metadata={"color": "blue"})
try:
    s3.copy_object(Bucket="csrc", Key="orig", CopySource="csrc/orig")
    self_copy = None
except botocore.exceptions.ClientError as e:
    self_copy = code_of(e)
try:
    s3.copy_object(Bucket="cdst", Key="x", CopySource="csrc/missing")
    missing = None
except botocore.exceptions.ClientError as e:
    missing = code_of(e)
l = s3.list_objects_v2(Bucket="cdst")
import time
out({"etag1": a["CopyObjectResult"]["ETag"], "etag2": b["CopyObjectResult"]["ETag"], "self": self_copy,
     "lm_age": time.time() - a["CopyObjectResult"]["LastModified"].timestamp(),
     "missing": missing, "listed_etag": l["Contents"][0]["ETag"]})
''')
        md5 = '"%s"' % hashlib.md5(data).hexdigest()
        self.assertEqual(res["etag1"], md5)
        self.assertEqual(res["etag2"], md5)
        self.assertEqual(res["listed_etag"], md5)
        self.assertLess(abs(res["lm_age"]), 120)  # LastModified is wall-clock time, now
        self.assertEqual(res["self"], "InvalidRequest")
        self.assertEqual(res["missing"], "NoSuchKey")
        got, meta = self.rest_get_name("cdst", "copy1")
        self.assertEqual(got, data)
        got, meta = self.rest_get_name("csrc", "copy2")
        self.assertEqual(got, data)
        attrs = meta.get("attrs", {})
        self.assertEqual(attrs.get("content_type"), "text/plain")
        self.assertEqual(attrs.get("meta"), {"color": "blue"})

    # ---- multipart -----------------------------------------------------------------------

    def multipart(self, bucket, key, total_mib, part_mib=8):
        """boto3 multipart upload of total_mib MiB of a repeatable pattern, 8 MiB parts; its
        ETag, and the ListParts seen before completing."""
        return self.boto(r'''
total, part = %d << 20, %d << 20
u = s3.create_multipart_upload(Bucket="%s", Key="%s", ContentType="application/x-test",
                                Metadata={"origin": "boto3"})
uid = u["UploadId"]
parts, n, off = [], 1, 0
md5s = []
while off < total:
    size = min(part, total - off)
    body = hashlib.sha256(b"%%d" %% n).digest() * (size // 32) + b"z" * (size %% 32)
    r = s3.upload_part(Bucket="%s", Key="%s", UploadId=uid, PartNumber=n, Body=body)
    parts.append({"PartNumber": n, "ETag": r["ETag"]})
    md5s.append(hashlib.md5(body).digest())
    n += 1
    off += size
lp = s3.list_parts(Bucket="%s", Key="%s", UploadId=uid)
ups = s3.list_multipart_uploads(Bucket="%s")
c = s3.complete_multipart_upload(Bucket="%s", Key="%s", UploadId=uid, MultipartUpload={"Parts": parts})
out({"etag": c["ETag"], "expect": '"%%s-%%d"' %% (hashlib.md5(b"".join(md5s)).hexdigest(), len(parts)),
     "listed_parts": [p["PartNumber"] for p in lp["Parts"]],
     "part_etags_ok": [p["ETag"] for p in lp["Parts"]] == [p["ETag"] for p in parts],
     "uploads": [x["UploadId"] for x in ups.get("Uploads", [])], "uid": uid})
''' % (total_mib, part_mib, bucket, key, bucket, key, bucket, key, bucket, bucket, key))

    @staticmethod
    def pattern(total, part):
        out, n, off = [], 1, 0
        while off < total:
            size = min(part, total - off)
            out.append(hashlib.sha256(b"%d" % n).digest() * (size // 32) + b"z" * (size % 32))
            n += 1
            off += size
        return b"".join(out)

    def test_multipart_100mib_in_8mib_parts(self):
        self.bucket("mpu")
        res = self.multipart("mpu", "big.bin", 100)
        self.assertEqual(res["etag"], res["expect"])
        self.assertEqual(res["listed_parts"], list(range(1, 14)))
        self.assertTrue(res["part_etags_ok"])
        self.assertIn(res["uid"], res["uploads"])
        got, meta = self.rest_get_name("mpu", "big.bin")
        self.assertEqual(hashlib.sha256(got).hexdigest(),
                         hashlib.sha256(self.pattern(100 * MiB, 8 * MiB)).hexdigest())
        self.assertEqual(meta["attrs"]["etag"], res["expect"].strip('"'))  # stored bare
        self.assertEqual(meta["attrs"]["content_type"], "application/x-test")
        self.assertEqual(meta["attrs"]["meta"], {"origin": "boto3"})
        # The parts are gone, and so is the upload; nothing of them is listed anywhere.
        res = self.boto(r'''
out({"uploads": s3.list_multipart_uploads(Bucket="mpu").get("Uploads", []),
     "keys": [o["Key"] for o in s3.list_objects_v2(Bucket="mpu").get("Contents", [])]})
''')
        self.assertEqual(res, {"uploads": [], "keys": ["big.bin"]})

    def test_multipart_errors_and_abort(self):
        self.bucket("mpe")
        res = self.boto(r'''
def err(f):
    try:
        f()
        return None
    except botocore.exceptions.ClientError as e:
        return code_of(e)
uid = s3.create_multipart_upload(Bucket="mpe", Key="k")["UploadId"]
small = s3.upload_part(Bucket="mpe", Key="k", UploadId=uid, PartNumber=1, Body=b"a" * 1000)["ETag"]
big = s3.upload_part(Bucket="mpe", Key="k", UploadId=uid, PartNumber=2, Body=b"b" * (5 << 20))["ETag"]
last = s3.upload_part(Bucket="mpe", Key="k", UploadId=uid, PartNumber=3, Body=b"c" * 10)["ETag"]
done = lambda parts: s3.complete_multipart_upload(Bucket="mpe", Key="k", UploadId=uid,
                                                  MultipartUpload={"Parts": parts})
res = {
  "too_small": err(lambda: done([{"PartNumber": 1, "ETag": small}, {"PartNumber": 2, "ETag": big}])),
  "order": err(lambda: done([{"PartNumber": 2, "ETag": big}, {"PartNumber": 1, "ETag": small}])),
  "bad_etag": err(lambda: done([{"PartNumber": 2, "ETag": small}])),
  "no_part": err(lambda: done([{"PartNumber": 7, "ETag": big}])),
  "bad_number": err(lambda: s3.upload_part(Bucket="mpe", Key="k", UploadId=uid, PartNumber=10001, Body=b"x")),
  "no_upload": err(lambda: s3.upload_part(Bucket="mpe", Key="k", UploadId="0" * 32, PartNumber=1, Body=b"x")),
  "other_key": err(lambda: s3.list_parts(Bucket="mpe", Key="other", UploadId=uid)),
}
res["parts_after_errors"] = [p["PartNumber"] for p in s3.list_parts(Bucket="mpe", Key="k", UploadId=uid)["Parts"]]
ok = done([{"PartNumber": 2, "ETag": big}, {"PartNumber": 3, "ETag": last}])
res["ok_etag"] = ok["ETag"]
uid2 = s3.create_multipart_upload(Bucket="mpe", Key="k2")["UploadId"]
s3.upload_part(Bucket="mpe", Key="k2", UploadId=uid2, PartNumber=1, Body=b"q" * 100)
s3.abort_multipart_upload(Bucket="mpe", Key="k2", UploadId=uid2)
res["after_abort"] = err(lambda: s3.list_parts(Bucket="mpe", Key="k2", UploadId=uid2))
res["keys"] = [o["Key"] for o in s3.list_objects_v2(Bucket="mpe").get("Contents", [])]
out(res)
''')
        self.assertEqual(res["too_small"], "EntityTooSmall")
        self.assertEqual(res["order"], "InvalidPartOrder")
        self.assertEqual(res["bad_etag"], "InvalidPart")
        self.assertEqual(res["no_part"], "InvalidPart")
        self.assertEqual(res["bad_number"], "InvalidArgument")
        self.assertEqual(res["no_upload"], "NoSuchUpload")
        self.assertEqual(res["other_key"], "NoSuchUpload")
        self.assertEqual(res["parts_after_errors"], [1, 2, 3])
        self.assertTrue(res["ok_etag"].endswith('-2"'), res["ok_etag"])
        self.assertEqual(res["after_abort"], "NoSuchUpload")
        self.assertEqual(res["keys"], ["k"])
        got, _ = self.rest_get_name("mpe", "k")
        self.assertEqual(got, b"b" * (5 << 20) + b"c" * 10)

    def test_long_operations_stream_their_answer(self):
        """A gateway whose long operations answer at once (s3_long_grace_ms 0): the 200 is
        streamed (chunked: XML declaration, keep-alive spaces, then the document), clients read
        it as usual, and a failure found while working arrives as an <Error> in that 200."""
        self.bucket("slow")
        url = self.start_s3("s3slow", {"s3_long_grace_ms": 0, "max_body": 6 * MiB})
        self.addCleanup(self.stop_gateway, "gateway-s3slow")
        res = self.boto(r"""
import base64, urllib.parse, urllib.request
s3.put_object(Bucket="slow", Key="src", Body=b"s" * (3 << 20))
c = s3.copy_object(Bucket="slow", Key="dst", CopySource="slow/src")
uid = s3.create_multipart_upload(Bucket="slow", Key="m")["UploadId"]
e1 = s3.upload_part(Bucket="slow", Key="m", UploadId=uid, PartNumber=1, Body=b"1" * (5 << 20))["ETag"]
e2 = s3.upload_part(Bucket="slow", Key="m", UploadId=uid, PartNumber=2, Body=b"2" * 100)["ETag"]
# Raw Completes, signed by botocore, to see the streamed form itself (boto3 1.26 reads a 200
# with an <Error> body as a retry, and with retries off returns it as a success).
def complete(key, uid, parts):
    body = ("<CompleteMultipartUpload>" + "".join(
        "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>" % (n, e) for n, e in parts) +
        "</CompleteMultipartUpload>").encode()
    req = botocore.awsrequest.AWSRequest(method="POST", url=os.environ["S3_URL"] + "/slow/%s?uploadId=%s" % (key, uid),
                                         data=body, headers={"x-amz-content-sha256": hashlib.sha256(body).hexdigest()})
    creds = botocore.credentials.Credentials(os.environ["S3_KEY"], os.environ["S3_SECRET"])
    botocore.auth.S3SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
    r = urllib.request.urlopen(urllib.request.Request(req.url, data=body, headers=dict(req.headers), method="POST"))
    return r.status, r.headers.get("Transfer-Encoding"), r.read().decode()
st, chunked, raw = complete("m", uid, [(1, e1), (2, e2)])
# Too big for this gateway's max_body: found while assembling, after the 200 went out.
uid2 = s3.create_multipart_upload(Bucket="slow", Key="big")["UploadId"]
p1 = s3.upload_part(Bucket="slow", Key="big", UploadId=uid2, PartNumber=1, Body=b"a" * (5 << 20))["ETag"]
p2 = s3.upload_part(Bucket="slow", Key="big", UploadId=uid2, PartNumber=2, Body=b"b" * (2 << 20))["ETag"]
bst, _, braw = complete("big", uid2, [(1, p1), (2, p2)])
still = [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="slow").get("Uploads", [])]
# A client that leaves as soon as its Complete is sent: the completion still ends, and the
# gateway goes on serving.
import http.client, time
uid3 = s3.create_multipart_upload(Bucket="slow", Key="left")["UploadId"]
q1 = s3.upload_part(Bucket="slow", Key="left", UploadId=uid3, PartNumber=1, Body=b"L" * (5 << 20))["ETag"]
q2 = s3.upload_part(Bucket="slow", Key="left", UploadId=uid3, PartNumber=2, Body=b"R" * 10)["ETag"]
body = ("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag></Part><Part><PartNumber>2"
        "</PartNumber><ETag>%s</ETag></Part></CompleteMultipartUpload>" % (q1, q2)).encode()
req = botocore.awsrequest.AWSRequest(method="POST", url=os.environ["S3_URL"] + "/slow/left?uploadId=" + uid3,
                                     data=body)
botocore.auth.S3SigV4Auth(botocore.credentials.Credentials(os.environ["S3_KEY"], os.environ["S3_SECRET"]),
                          "s3", "us-east-1").add_auth(req)
u = urllib.parse.urlparse(req.url)
hc = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
hc.request("POST", u.path + "?" + u.query, body=body, headers=dict(req.headers))
hc.sock.close()
left_size = None
for _ in range(100):
    try:
        left_size = s3.head_object(Bucket="slow", Key="left")["ContentLength"]
        break
    except botocore.exceptions.ClientError:
        time.sleep(0.2)
keys = [o["Key"] for o in s3.list_objects_v2(Bucket="slow").get("Contents", [])]
out({"copy_etag": c["CopyObjectResult"]["ETag"], "status": st, "chunked": chunked, "raw": raw,
     "big_status": bst, "big": braw, "still": still, "uid2": uid2, "keys": keys, "left_size": left_size})
""", url=url)
        self.assertEqual(res["copy_etag"], '"%s"' % hashlib.md5(b"s" * (3 << 20)).hexdigest())
        self.assertEqual(res["status"], 200)
        self.assertEqual(res["chunked"], "chunked")
        raw = res["raw"]
        self.assertTrue(raw.startswith('<?xml version="1.0" encoding="UTF-8"?>\n'), raw[:100])
        rest = raw.split("\n", 1)[1]
        self.assertEqual(rest.lstrip(" "), rest[len(rest) - len(rest.lstrip(" ")):])
        self.assertTrue(rest.lstrip(" ").startswith("<CompleteMultipartUploadResult"), rest[:200])
        self.assertIn("-2&quot;</ETag>", rest)
        self.assertEqual(res["big_status"], 200)
        self.assertTrue(res["big"].split("\n", 1)[1].lstrip(" ").startswith("<Error><Code>EntityTooLarge</Code>"),
                        res["big"][:300])
        self.assertEqual(res["still"], [res["uid2"]])
        # The failed completion wrote nothing; its upload stays, to be retried or aborted.
        self.assertEqual(res["left_size"], (5 << 20) + 10)
        self.assertEqual(sorted(res["keys"]), ["dst", "left", "m", "src"])
        got, _ = self.rest_get_name("slow", "m")
        self.assertEqual(got, b"1" * (5 << 20) + b"2" * 100)

    def hidden_parts(self, uid):
        """The part objects of upload uid in alice's hidden catalog, asked of metadata itself
        (object.list over MQTT as the gateway's service identity: no REST route reaches it)."""
        f = self.fab
        with open(f.fabric["service_token_file"]) as fh:
            svc = fh.read().strip()
        cid = "gateway-s3ops%d" % os.getpid()
        argv = ["mosquitto_rr", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(f.fabric["broker"]["port"]),
                "-u", cid, "-P", svc, "-i", cid, "-t", "dyno/v1/rpc/metadata/object.list",
                "-e", "dyno/v1/reply/" + cid, "-W", "10",
                "-m", json.dumps({"catalog": "service/s3mpu/" + self.USER, "prefix": uid + ".", "limit": 1000})]
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        doc = json.loads(cp.stdout)
        self.assertTrue(doc.get("ok"), doc)
        return [o["name"] for o in doc["result"]["objects"]]

    def test_part_streaming_across_an_abort_is_not_left_behind(self):
        self.bucket("race")
        res = self.boto(r"""
import http.client, urllib.parse, time
uid = s3.create_multipart_upload(Bucket="race", Key="k")["UploadId"]
s3.upload_part(Bucket="race", Key="k", UploadId=uid, PartNumber=1, Body=b"1" * 1000)
body = b"2" * (1 << 20)
url = os.environ["S3_URL"] + "/race/k?partNumber=2&uploadId=" + uid
req = botocore.awsrequest.AWSRequest(method="PUT", url=url, data=body)
creds = botocore.credentials.Credentials(os.environ["S3_KEY"], os.environ["S3_SECRET"])
botocore.auth.S3SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
u = urllib.parse.urlparse(url)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
c.putrequest("PUT", u.path + "?" + u.query, skip_accept_encoding=True)
for k, v in req.headers.items():
    c.putheader(k, v)
c.putheader("Content-Length", str(len(body)))
c.endheaders()
c.send(body[:1000])
time.sleep(0.5)
s3.abort_multipart_upload(Bucket="race", Key="k", UploadId=uid)
c.send(body[1000:])
r = c.getresponse()
out({"uid": uid, "status": r.status, "body": r.read().decode()})
""")
        self.assertEqual(res["status"], 404, res["body"])
        self.assertIn("<Code>NoSuchUpload</Code>", res["body"])
        # Part 1 went with the abort; part 2, committed after it, went on its own.
        self.assertEqual(self.hidden_parts(res["uid"]), [])

    def test_abandoned_upload_cleaned_after_ttl(self):
        self.bucket("mpt")
        url = self.start_s3("s3ttl", {"s3_upload_ttl_s": 2})
        # Its cleaner ends every upload of the fabric older than 2 s: gone after this test.
        self.addCleanup(self.stop_gateway, "gateway-s3ttl")
        res = self.boto(r'''
uid = s3.create_multipart_upload(Bucket="mpt", Key="left")["UploadId"]
s3.upload_part(Bucket="mpt", Key="left", UploadId=uid, PartNumber=1, Body=b"p" * 4096)
out({"uid": uid, "before": [u["UploadId"] for u in s3.list_multipart_uploads(Bucket="mpt").get("Uploads", [])]})
''', url=url)
        self.assertEqual(res["before"], [res["uid"]])
        deadline = time.time() + 60
        while time.time() < deadline:
            left = self.boto(r'''
out([u["UploadId"] for u in s3.list_multipart_uploads(Bucket="mpt").get("Uploads", [])])
''', url=url)
            if not left:
                break
            time.sleep(1)
        self.assertEqual(left, [])
        with open(os.path.join(self.fab.data, "logs", "gateway-s3ttl.log")) as fh:
            log = fh.read()
        self.assertIn("s3 abandoned upload cleaned", log)
        self.assertIn(res["uid"], log)

    def test_boto3_metadata_round_trip_and_ranged_gets(self):
        self.bucket("meta")
        res = self.boto(r"""
body = bytes(range(256)) * 4096  # 1 MiB
p = s3.put_object(Bucket="meta", Key="dir/a b.bin", Body=body, ContentType="application/x-a",
                  Metadata={"Site": "lab-2", "run": "17"})
h = s3.head_object(Bucket="meta", Key="dir/a b.bin")
rng = s3.get_object(Bucket="meta", Key="dir/a b.bin", Range="bytes=1000-1999")["Body"].read()
tail = s3.get_object(Bucket="meta", Key="dir/a b.bin", Range="bytes=-10")["Body"].read()
c = s3.copy_object(Bucket="meta", Key="dir/copy", CopySource={"Bucket": "meta", "Key": "dir/a b.bin"})
hc = s3.head_object(Bucket="meta", Key="dir/copy")
ls = s3.list_objects_v2(Bucket="meta", Prefix="dir/", Delimiter="/")
out({"etag": p["ETag"], "md5": '"%s"' % hashlib.md5(body).hexdigest(), "meta": h["Metadata"],
     "ct": h["ContentType"], "range_ok": rng == body[1000:2000], "tail_ok": tail == body[-10:],
     "copy_meta": hc["Metadata"], "copy_ct": hc["ContentType"], "copy_etag": c["CopyObjectResult"]["ETag"],
     "listed": [(o["Key"], o["ETag"], o["Size"]) for o in ls["Contents"]]})
""")
        self.assertEqual(res["etag"], res["md5"])
        self.assertEqual(res["meta"], {"site": "lab-2", "run": "17"})
        self.assertEqual(res["ct"], "application/x-a")
        self.assertTrue(res["range_ok"])
        self.assertTrue(res["tail_ok"])
        self.assertEqual(res["copy_meta"], res["meta"])
        self.assertEqual(res["copy_ct"], "application/x-a")
        self.assertEqual(res["copy_etag"], res["md5"])
        self.assertEqual(res["listed"], [["dir/a b.bin", res["md5"], 1 << 20], ["dir/copy", res["md5"], 1 << 20]])

    def test_copy_source_conditions(self):
        """x-amz-copy-source-if-match / -if-none-match / -if-modified-since /
        -if-unmodified-since on CopyObject and UploadPartCopy: a failed test is 412
        PreconditionFailed and copies nothing; a test that holds copies."""
        self.bucket("cond")
        res = self.boto(r'''
import datetime
def err(f):
    try:
        f()
        return None
    except botocore.exceptions.ClientError as e:
        return code_of(e)
etag = s3.put_object(Bucket="cond", Key="src", Body=b"s" * 1000)["ETag"]
src = {"Bucket": "cond", "Key": "src"}
past = datetime.datetime(1990, 1, 1, tzinfo=datetime.timezone.utc)
future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)
cp = lambda key, **kw: s3.copy_object(Bucket="cond", Key=key, CopySource=src, **kw)
uid = s3.create_multipart_upload(Bucket="cond", Key="mp")["UploadId"]
out({"match_wrong": err(lambda: cp("a", CopySourceIfMatch='"0123456789abcdef0123456789abcdef"')),
     "match_right": err(lambda: cp("b", CopySourceIfMatch=etag)),
     "none_match_same": err(lambda: cp("c", CopySourceIfNoneMatch=etag)),
     "modified_since_future": err(lambda: cp("d", CopySourceIfModifiedSince=future)),
     "modified_since_past": err(lambda: cp("e", CopySourceIfModifiedSince=past)),
     "unmodified_since_past": err(lambda: cp("f", CopySourceIfUnmodifiedSince=past)),
     "part_match_wrong": err(lambda: s3.upload_part_copy(Bucket="cond", Key="mp", UploadId=uid, PartNumber=1,
                                                         CopySource=src, CopySourceIfMatch='"00"')),
     "parts": s3.list_parts(Bucket="cond", Key="mp", UploadId=uid).get("Parts", []),
     "keys": sorted(o["Key"] for o in s3.list_objects_v2(Bucket="cond").get("Contents", []))})
s3.abort_multipart_upload(Bucket="cond", Key="mp", UploadId=uid)
''')
        for k in ("match_wrong", "none_match_same", "modified_since_future", "unmodified_since_past",
                  "part_match_wrong"):
            self.assertEqual(res[k], "PreconditionFailed", k)
        self.assertIsNone(res["match_right"])
        self.assertIsNone(res["modified_since_past"])
        self.assertEqual(res["parts"], [])
        self.assertEqual(res["keys"], ["b", "e", "src"])

    def test_oversized_attributes_refused_on_every_path(self):
        """PutObject, CopyObject (REPLACE) and CreateMultipartUpload read Content-Type and
        x-amz-meta-* with one parser: over 2 KiB of metadata is MetadataTooLarge, a Content-Type
        over 256 bytes InvalidArgument, and nothing is stored or started."""
        self.bucket("attrs")
        res = self.boto(r'''
def err(f):
    try:
        f()
        return None
    except botocore.exceptions.ClientError as e:
        return code_of(e)
big = {"m%d" % i: "v" * 100 for i in range(25)}  # 25 x ~103 bytes > 2 KiB
s3.put_object(Bucket="attrs", Key="src", Body=b"x" * 100, Metadata={"ok": "1"})
out({"put": err(lambda: s3.put_object(Bucket="attrs", Key="p", Body=b"x", Metadata=big)),
     "put_ct": err(lambda: s3.put_object(Bucket="attrs", Key="p", Body=b"x", ContentType="a/" + "b" * 300)),
     "copy": err(lambda: s3.copy_object(Bucket="attrs", Key="c", CopySource={"Bucket": "attrs", "Key": "src"},
                                        MetadataDirective="REPLACE", Metadata=big)),
     "mpu": err(lambda: s3.create_multipart_upload(Bucket="attrs", Key="m", Metadata=big)),
     "keys": [o["Key"] for o in s3.list_objects_v2(Bucket="attrs").get("Contents", [])],
     "uploads": s3.list_multipart_uploads(Bucket="attrs").get("Uploads", []),
     "src_meta": s3.head_object(Bucket="attrs", Key="src")["Metadata"]})
''')
        self.assertEqual(res["put"], "MetadataTooLarge")
        self.assertEqual(res["put_ct"], "InvalidArgument")
        self.assertEqual(res["copy"], "MetadataTooLarge")
        self.assertEqual(res["mpu"], "MetadataTooLarge")
        self.assertEqual(res["keys"], ["src"])
        self.assertEqual(res["uploads"], [])
        self.assertEqual(res["src_meta"], {"ok": "1"})

    # ---- the command-line tools ----------------------------------------------------------

    def tree(self, root, n=500):
        """n small files in nested folders under root; {relative path: bytes}."""
        files = {}
        for i in range(n):
            rel = os.path.join("d%d" % (i % 7), "s%d" % (i % 3), "f%03d.dat" % i)
            data = (b"%d:" % i) * (1 + i % 50)
            os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(root, rel), "wb") as fh:
                fh.write(data)
            # Written a while ago, as files being synced are: LastModified has the second
            # granularity of S3's (and of metadata's commit time), and `aws s3 sync` uploads
            # again a file whose mtime is later than its object's, which one written in the
            # same second as its upload would be.
            os.utime(os.path.join(root, rel), (time.time() - 60, time.time() - 60))
            files[rel] = data
        return files

    @staticmethod
    def read_tree(root):
        got = {}
        for d, _, fs in os.walk(root):
            for f in fs:
                p = os.path.join(d, f)
                with open(p, "rb") as fh:
                    got[os.path.relpath(p, root)] = fh.read()
        return got

    def aws(self, *args, check=True):
        tmp = self.fab.tmp
        cfg = os.path.join(tmp, "aws-config")
        with open(cfg, "w") as fh:
            fh.write("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=self.key_id, AWS_SECRET_ACCESS_KEY=self.secret,
                   AWS_CONFIG_FILE=cfg, AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_PAGER="",
                   AWS_EC2_METADATA_DISABLED="true", HOME=tmp)
        env.pop("PYTHONPATH", None)
        env.pop("AWS_CA_BUNDLE", None)  # plain HTTP here; a bundle from the host only confuses
        cp = subprocess.run(["/usr/bin/aws", "--endpoint-url", self.s3_url] + list(args), capture_output=True,
                            text=True, env=env, timeout=900)
        if check:
            self.assertEqual(cp.returncode, 0, "aws %s: %s %s" % (args, cp.stdout[-2000:], cp.stderr[-2000:]))
        return cp

    def test_aws_sync_both_ways_and_rm_recursive(self):
        self.bucket("awss")
        src = os.path.join(self.fab.tmp, "aws-src")
        files = self.tree(src)
        self.aws("s3", "sync", src, "s3://awss/tree", "--only-show-errors")
        # Nothing changed: a second sync sends nothing.
        again = self.aws("s3", "sync", src, "s3://awss/tree")
        self.assertNotIn("upload:", again.stdout)
        dst = os.path.join(self.fab.tmp, "aws-dst")
        self.aws("s3", "sync", "s3://awss/tree", dst, "--only-show-errors")
        self.assertEqual(self.read_tree(dst), files)
        ls = self.aws("s3", "ls", "s3://awss/tree/", "--recursive").stdout.splitlines()
        self.assertEqual(len(ls), 500)
        self.aws("s3", "rm", "s3://awss/tree", "--recursive", "--only-show-errors")
        self.assertEqual(self.fab.list_catalog("%s/awss" % self.USER, token=self.tok), [])

    def test_multipart_copy_upload_part_copy(self):
        """UploadPartCopy: `aws s3 cp` between buckets copies an object above its 8 MiB
        threshold as a multipart upload of copied parts; boto3 with explicit ranges."""
        self.bucket("upc1")
        self.bucket("upc2")
        src = os.path.join(self.fab.tmp, "upc.bin")
        data = os.urandom(20 * MiB + 5)
        with open(src, "wb") as fh:
            fh.write(data)
        self.aws("s3", "cp", src, "s3://upc1/big.bin", "--only-show-errors")
        self.aws("s3", "cp", "s3://upc1/big.bin", "s3://upc2/copy.bin", "--only-show-errors")
        got, meta = self.rest_get_name("upc2", "copy.bin")
        self.assertEqual(got, data)
        self.assertTrue(meta["attrs"]["etag"].endswith("-3"), meta["attrs"])  # 8 + 8 + 4 MiB parts
        res = self.boto(r"""
uid = s3.create_multipart_upload(Bucket="upc2", Key="pieces")["UploadId"]
a = s3.upload_part_copy(Bucket="upc2", Key="pieces", UploadId=uid, PartNumber=1,
                        CopySource={"Bucket": "upc1", "Key": "big.bin"}, CopySourceRange="bytes=0-5242879")
b = s3.upload_part_copy(Bucket="upc2", Key="pieces", UploadId=uid, PartNumber=2,
                        CopySource={"Bucket": "upc1", "Key": "big.bin"}, CopySourceRange="bytes=20971520-20971524")
def err(f):
    try:
        f()
    except botocore.exceptions.ClientError as e:
        return code_of(e)
bad = err(lambda: s3.upload_part_copy(Bucket="upc2", Key="pieces", UploadId=uid, PartNumber=3,
                                      CopySource={"Bucket": "upc1", "Key": "big.bin"},
                                      CopySourceRange="bytes=0-999999999"))
missing = err(lambda: s3.upload_part_copy(Bucket="upc2", Key="pieces", UploadId=uid, PartNumber=3,
                                          CopySource={"Bucket": "upc1", "Key": "nope"}))
s3.complete_multipart_upload(Bucket="upc2", Key="pieces", UploadId=uid, MultipartUpload={"Parts": [
    {"PartNumber": 1, "ETag": a["CopyPartResult"]["ETag"]}, {"PartNumber": 2, "ETag": b["CopyPartResult"]["ETag"]}]})
out({"bad": bad, "missing": missing, "etag_a": a["CopyPartResult"]["ETag"]})
""")
        self.assertEqual(res["bad"], "InvalidArgument")
        self.assertEqual(res["missing"], "NoSuchKey")
        self.assertEqual(res["etag_a"], '"%s"' % hashlib.md5(data[:5 * MiB]).hexdigest())
        got, _ = self.rest_get_name("upc2", "pieces")
        self.assertEqual(got, data[:5 * MiB] + data[20 * MiB:])

    def test_rclone_sync_then_check(self):
        self.bucket("rcl")
        src = os.path.join(self.fab.tmp, "rclone-src")
        files = self.tree(src, 500)
        conf = os.path.join(self.fab.tmp, "rclone.conf")
        with open(conf, "w") as fh:
            fh.write("[dyno]\ntype = s3\nprovider = Other\naccess_key_id = %s\nsecret_access_key = %s\n"
                     "endpoint = %s\nregion = us-east-1\nforce_path_style = true\n"
                     % (self.key_id, self.secret, self.s3_url))

        env = dict(os.environ, HOME=self.fab.tmp)
        env.pop("AWS_CA_BUNDLE", None)  # rclone refuses a custom bundle on its own transport

        def rclone(*args):
            cp = subprocess.run(["/usr/bin/rclone", "--config", conf, "--retries", "1"] + list(args),
                                capture_output=True, text=True, timeout=900, env=env)
            self.assertEqual(cp.returncode, 0, "rclone %s: %s" % (args, cp.stderr[-3000:]))
            return cp
        rclone("sync", src, "dyno:rcl/tree")
        chk = rclone("check", src, "dyno:rcl/tree")
        self.assertIn("0 differences found", chk.stderr)
        self.assertIn("500 matching files", chk.stderr)
        # A changed file is a difference rclone check sees, and sync repairs.
        first = sorted(files)[0]
        with open(os.path.join(src, first), "ab") as fh:
            fh.write(b"more")
        cp = subprocess.run(["/usr/bin/rclone", "--config", conf, "check", src, "dyno:rcl/tree"],
                            capture_output=True, text=True, timeout=900, env=env)
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("1 differences found", cp.stderr)
        rclone("sync", src, "dyno:rcl/tree")
        rclone("check", src, "dyno:rcl/tree")
        dst = os.path.join(self.fab.tmp, "rclone-dst")
        rclone("sync", "dyno:rcl/tree", dst)
        files[first] += b"more"
        self.assertEqual(self.read_tree(dst), files)

    @unittest.skipUnless(os.environ.get("DYNO_S3_MPU_BIG"), "DYNO_S3_MPU_BIG=<MiB> for the big case")
    def test_multipart_big(self):
        mib = int(os.environ["DYNO_S3_MPU_BIG"])
        self.bucket("mpbig")
        t0 = time.time()
        res = self.multipart("mpbig", "huge.bin", mib, part_mib=64)
        gw = [p for p in self.fab.fabric["processes"] if p.get("kind") == "gateway"][0]["pid"]
        with open("/proc/%d/status" % gw) as fh:
            hwm = int([ln for ln in fh if ln.startswith("VmHWM:")][0].split()[1]) // 1024
        print("multipart %d MiB in 64 MiB parts: %.1f s, gateway peak RSS %d MiB"
              % (mib, time.time() - t0, hwm), file=sys.stderr)
        self.assertEqual(res["etag"], res["expect"])
        # The assembly streams: the gateway never holds a part, whatever the size.
        self.assertLess(hwm, 300)
        objs = [o for o in self.fab.list_catalog("%s/mpbig" % self.USER, token=self.tok) if o["name"] == "huge.bin"]
        self.assertEqual(objs[0]["size"], mib * MiB)


if __name__ == "__main__":
    unittest.main()
