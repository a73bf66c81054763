"""The S3 door (issue 14, part s3-front; docs/s3.md) with the real tools from Debian.

One fabric from `dynostore up` (which turns the gateway's S3 listener on). alice, bob and carol
each have an access key (POST /v1/keys). The tools get their settings from env and temp files:
/usr/bin/aws (AWS_CONFIG_FILE with path addressing), /usr/bin/s3cmd (-c temp config), boto3
and botocore only under /usr/bin/python3 (s3_probe.py), curl for presigned URLs.

  - aws s3 cp of 1 GiB up (one streamed PutObject) and down, byte-identical
    (DYNO_IT_SKIP_1G=1: 64 MiB); aws s3 ls of buckets and keys;
  - s3cmd mb/put/get/ls/del/rb;
  - a presigned GET fetched with curl; an expired one refused;
  - a wrong secret: SignatureDoesNotMatch; a request signed 20 minutes off:
    RequestTimeTooSkewed; a user without a share: AccessDenied; with a read share the bucket is
    <owner>--<name> and writing is still refused;
  - an object put through S3 is read through REST and the CLI and raised object.created;
  - attributes (Content-Type, x-amz-meta-*, ETag = MD5), Range/416, If-Match/If-None-Match/
    If-Modified-Since/If-Unmodified-Since; Content-MD5 wrong: BadDigest, nothing stored; a body
    that is not what x-amz-content-sha256 signed: XAmzContentSHA256Mismatch, nothing stored;
    x-amz-checksum-crc32/crc32c/sha1/sha256 headers verified (BadDigest, nothing stored);
    aws-chunked bodies with chunk signatures, one tampered chunk refused; virtual-host-style
    requests; DeleteObject 204 even when missing; DeleteBucket of a non-empty bucket
    BucketNotEmpty; an unsupported sub-resource 501 NotImplemented in S3 XML.
"""
import hashlib
import json
import os
import re
import subprocess
import time
import unittest
import urllib.parse

from fabric import FabricCase
from test_events import MqttSub, is_event, new_user, sub_ready, token_file

AWS = "/usr/bin/aws"
S3CMD = "/usr/bin/s3cmd"
DEBIAN_PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
BIG = (64 << 20) if os.environ.get("DYNO_IT_SKIP_1G") else (1 << 30)


def need(*paths):
    for p in paths:
        if not os.access(p, os.X_OK):
            raise unittest.SkipTest("%s is needed (scripts/install-deps.sh)" % p)


class S3Test(FabricCase):
    CONTAINERS = 3
    USERS = ("alice", "bob", "carol")

    @classmethod
    def setUpClass(cls):
        need(AWS, S3CMD, DEBIAN_PY, "/usr/bin/curl")
        super().setUpClass()
        f = cls.fab
        assert f.s3, "dynostore up did not start the S3 endpoint (fabric.json has no s3)"
        cls.tok, cls.keys = {}, {}
        for u in cls.USERS:
            cls.tok[u] = new_user(f, u)
            r = f.http("POST", "/v1/keys", body=json.dumps({"description": "test_s3"}), token=cls.tok[u])
            assert r.status == 201, (r.status, r.body)
            cls.keys[u] = (r.json()["access_key_id"], r.json()["secret_access_key"])
        cls.cfgdir = os.path.join(f.tmp, "s3tools")
        os.makedirs(cls.cfgdir, exist_ok=True)
        # one PutObject and one GetObject for any size up to 5 GiB: this test is about the
        # streamed single put (multipart has its own tests)
        with open(os.path.join(cls.cfgdir, "aws.config"), "w") as fh:
            fh.write("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n"
                     "    multipart_threshold = 5GB\n    max_concurrent_requests = 4\n")

    # ---- tools ---------------------------------------------------------------------------

    def aws_env(self, user, secret=None):
        kid, sec = self.keys[user]
        return dict(os.environ, AWS_ACCESS_KEY_ID=kid, AWS_SECRET_ACCESS_KEY=secret or sec,
                    AWS_CONFIG_FILE=os.path.join(self.cfgdir, "aws.config"),
                    AWS_SHARED_CREDENTIALS_FILE=os.path.join(self.cfgdir, "none"),
                    AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="", HOME=self.cfgdir)

    def aws(self, user, *args, check=True, secret=None, timeout=1800):
        cp = subprocess.run([AWS, "--endpoint-url", self.fab.s3] + [str(a) for a in args],
                            env=self.aws_env(user, secret), capture_output=True, text=True, timeout=timeout)
        if check:
            self.assertEqual(cp.returncode, 0, "aws %s\nstdout: %s\nstderr: %s" % (args, cp.stdout, cp.stderr))
        return cp

    def s3cmd(self, user, *args, check=True):
        kid, sec = self.keys[user]
        hostport = urllib.parse.urlsplit(self.fab.s3).netloc
        conf = os.path.join(self.cfgdir, "s3cmd-%s.cfg" % user)
        with open(conf, "w") as fh:
            fh.write("[default]\naccess_key = %s\nsecret_key = %s\nhost_base = %s\nhost_bucket = %s\n"
                     "use_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n"
                     "check_ssl_certificate = False\n" % (kid, sec, hostport, hostport))
        cp = subprocess.run([S3CMD, "-c", conf] + [str(a) for a in args], capture_output=True, text=True,
                            timeout=600, env=dict(os.environ, HOME=self.cfgdir))
        if check:
            self.assertEqual(cp.returncode, 0, "s3cmd %s\nstdout: %s\nstderr: %s" % (args, cp.stdout, cp.stderr))
        return cp

    def probe(self, user, snippet, secret=None):
        kid, sec = self.keys[user]
        env = dict(os.environ, S3_URL=self.fab.s3, S3_KEY=kid, S3_SECRET=secret or sec)
        cp = subprocess.run([DEBIAN_PY, os.path.join(HERE, "s3_probe.py"), snippet], env=env,
                            capture_output=True, text=True, timeout=600)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        return json.loads(cp.stdout.strip().splitlines()[-1])

    def bucket(self, user, name):
        self.aws(user, "s3", "mb", "s3://" + name)
        return name

    def file_of(self, name, size):
        path = os.path.join(self.fab.work, name)
        h = hashlib.sha256()
        with open(path, "wb") as fh:
            left = size
            while left:
                b = os.urandom(min(left, 4 << 20))
                fh.write(b)
                h.update(b)
                left -= len(b)
        return path, h.hexdigest()

    @staticmethod
    def sha_of(path):
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for b in iter(lambda: fh.read(4 << 20), b""):
                h.update(b)
        return h.hexdigest()

    def s3_error(self, body):
        m = re.search(r"<Code>([^<]*)</Code>", body or "")
        return m.group(1) if m else None

    # ---- the tools ----------------------------------------------------------------------

    def test_up_prints_the_endpoint(self):
        with open(self.fab.up_log_path, encoding="utf-8", errors="replace") as fh:
            log = fh.read()
        self.assertIn("S3 endpoint:      %s " % self.fab.s3, log)
        # the listener answers S3 (XML errors) and not the REST API
        r = self.probe("alice", "out = signed('GET', '/v1/catalogs')")
        self.assertEqual((r[0], self.s3_error(r[2])), (404, "NoSuchBucket"), r)

    def test_aws_cp_big_roundtrip_and_ls(self):
        b = self.bucket("alice", "big")
        src, sha = self.file_of("big.bin", BIG)
        try:
            self.aws("alice", "s3", "cp", src, "s3://big/data/big.bin")
            ls = self.aws("alice", "s3", "ls").stdout
            self.assertRegex(ls, r"(?m) big$")
            ls = self.aws("alice", "s3", "ls", "s3://big/", "--recursive").stdout
            self.assertRegex(ls, r"(?m)\s%d data/big\.bin$" % BIG)
            dst = os.path.join(self.fab.work, "big.down")
            self.aws("alice", "s3", "cp", "s3://big/data/big.bin", dst)
            self.assertEqual(os.path.getsize(dst), BIG)
            self.assertEqual(self.sha_of(dst), sha)
            os.unlink(dst)
            # the same bytes through REST: the name is the key
            r = self.fab.http("GET", "/v1/catalogs/alice/big/~/objects?prefix=data/", token=self.tok["alice"])
            self.assertEqual(r.status, 200, r.body)
            objs = r.json()["objects"]
            self.assertEqual([o["name"] for o in objs], ["data/big.bin"])
            self.assertEqual(objs[0]["sha256"], sha)
            self.aws("alice", "s3", "rm", "s3://big/data/big.bin")
            self.aws("alice", "s3", "rb", "s3://" + b)
        finally:
            os.unlink(src)

    def test_s3cmd_put_get_ls_del(self):
        self.s3cmd("bob", "mb", "s3://bobs")
        src, sha = self.file_of("s3cmd.bin", 3 * 1024 * 1024 + 17)
        self.s3cmd("bob", "put", src, "s3://bobs/in/s3cmd.bin")
        ls = self.s3cmd("bob", "ls", "s3://bobs/in/").stdout
        self.assertIn("s3://bobs/in/s3cmd.bin", ls)
        self.assertIn(str(3 * 1024 * 1024 + 17), ls)
        dst = os.path.join(self.fab.work, "s3cmd.down")
        # s3cmd compares the MD5 of what it got with the ETag: a mismatch is a warning on stderr
        cp = self.s3cmd("bob", "get", "--force", "s3://bobs/in/s3cmd.bin", dst)
        self.assertNotIn("MD5 signatures do not match", cp.stderr + cp.stdout)
        self.assertEqual(self.sha_of(dst), sha)
        self.assertIn("bobs", self.s3cmd("bob", "ls").stdout)
        self.s3cmd("bob", "del", "s3://bobs/in/s3cmd.bin")
        self.assertNotIn("s3cmd.bin", self.s3cmd("bob", "ls", "--recursive", "s3://bobs").stdout)
        self.s3cmd("bob", "rb", "s3://bobs")
        self.assertNotIn("s3://bobs", self.s3cmd("bob", "ls").stdout)

    # ---- authentication -----------------------------------------------------------------

    def test_presigned_get_and_expiry(self):
        self.bucket("alice", "pre")
        src, sha = self.file_of("pre.bin", 100000)
        self.aws("alice", "s3", "cp", src, "s3://pre/report v2.bin")
        url = self.aws("alice", "s3", "presign", "s3://pre/report v2.bin", "--expires-in", "600").stdout.strip()
        dst = os.path.join(self.fab.work, "pre.down")
        cp = subprocess.run(["curl", "-sS", "-o", dst, "-w", "%{http_code}", url], capture_output=True, text=True,
                            timeout=60)
        self.assertEqual(cp.stdout, "200", cp.stderr)
        self.assertEqual(self.sha_of(dst), sha)
        # a URL whose signature was changed is refused
        bad = re.sub(r"X-Amz-Signature=([0-9a-f])", lambda m: "X-Amz-Signature=" + ("0" if m.group(1) != "0"
                                                                                    else "1"), url)
        cp = subprocess.run(["curl", "-sS", url.replace("X-Amz-Expires=600", "X-Amz-Expires=601")],
                            capture_output=True, text=True, timeout=60)
        self.assertEqual(self.s3_error(cp.stdout), "SignatureDoesNotMatch", cp.stdout)
        cp = subprocess.run(["curl", "-sS", bad], capture_output=True, text=True, timeout=60)
        self.assertEqual(self.s3_error(cp.stdout), "SignatureDoesNotMatch", cp.stdout)
        # expired
        url = self.aws("alice", "s3", "presign", "s3://pre/report v2.bin", "--expires-in", "1").stdout.strip()
        time.sleep(2.5)
        cp = subprocess.run(["curl", "-sS", "-w", "\n%{http_code}", url], capture_output=True, text=True,
                            timeout=60)
        body, _, status = cp.stdout.rpartition("\n")
        self.assertEqual(status, "403", cp.stdout)
        self.assertEqual(self.s3_error(body), "AccessDenied", body)
        self.assertIn("expired", body)

    def test_wrong_secret_and_skew(self):
        kid, sec = self.keys["carol"]
        wrong = sec[:-1] + ("A" if sec[-1] != "A" else "B")
        cp = self.aws("carol", "s3", "ls", check=False, secret=wrong)
        self.assertNotEqual(cp.returncode, 0)
        self.assertIn("SignatureDoesNotMatch", cp.stderr)
        got = self.probe("carol", "import datetime\n"
                         "when = datetime.datetime.utcnow() + datetime.timedelta(minutes=20)\n"
                         "out = signed('GET', '/', when=when)\n")
        self.assertEqual(got[0], 403, got)
        self.assertEqual(self.s3_error(got[2]), "RequestTimeTooSkewed", got)
        got = self.probe("carol", "import datetime\n"
                         "when = datetime.datetime.utcnow() - datetime.timedelta(minutes=20)\n"
                         "out = signed('GET', '/', when=when)\n")
        self.assertEqual(self.s3_error(got[2]), "RequestTimeTooSkewed", got)
        # and an unknown key id
        got = self.probe("carol", "out = code(lambda: client().list_buckets() and None)", secret=sec)
        self.assertEqual(got["code"], "ok", got)
        cp = subprocess.run([AWS, "--endpoint-url", self.fab.s3, "s3", "ls"], capture_output=True, text=True,
                            env=dict(self.aws_env("carol"), AWS_ACCESS_KEY_ID="DK" + "7" * 18), timeout=120)
        self.assertIn("InvalidAccessKeyId", cp.stderr)

    def test_access_is_the_catalog_policy(self):
        self.bucket("alice", "shared")
        src, sha = self.file_of("shared.bin", 5000)
        self.aws("alice", "s3", "cp", src, "s3://shared/a.bin")
        # carol has no share: her own bucket "shared" does not exist, alice's is refused
        got = self.probe("carol", "out = code(lambda: client().get_object(Bucket='alice--shared', Key='a.bin')"
                                  "['Body'].read() and None)")
        self.assertEqual((got["code"], got["status"]), ("AccessDenied", 403), got)
        got = self.probe("carol", "out = code(lambda: client().head_bucket(Bucket='alice--shared'))")
        self.assertEqual(got["status"], 403, got)
        got = self.probe("carol", "out = code(lambda: client().get_object(Bucket='shared', Key='a.bin'))")
        self.assertEqual((got["code"], got["status"]), ("NoSuchBucket", 404), got)
        # bob gets a read share through REST: he reads alice--shared, cannot write to it
        r = self.fab.http("POST", "/v1/catalogs/alice/shared/~/shares",
                          body=json.dumps({"user": "bob", "access": "read"}), token=self.tok["alice"])
        self.assertIn(r.status, (200, 201), r.body)
        deadline = time.monotonic() + 10
        while True:
            got = self.probe("bob", "import hashlib\nout = code(lambda: hashlib.sha256(client().get_object("
                                    "Bucket='alice--shared', Key='a.bin')['Body'].read()).hexdigest())")
            if got["code"] == "ok" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(got, {"code": "ok", "result": sha})
        ls = self.aws("bob", "s3", "ls").stdout
        self.assertRegex(ls, r"(?m) alice--shared$")
        got = self.probe("bob", "out = code(lambda: client().put_object(Bucket='alice--shared', Key='b.bin', "
                                "Body=b'no') and None)")
        self.assertEqual((got["code"], got["status"]), ("AccessDenied", 403), got)
        got = self.probe("bob", "out = code(lambda: client().head_object(Bucket='alice--shared', Key='b.bin'))")
        self.assertEqual(got["status"], 404, got)

    # ---- events, REST and the CLI ----------------------------------------------------------

    def test_s3_put_is_an_ordinary_object(self):
        f = self.fab
        self.bucket("alice", "evb")
        sub = MqttSub(f, "alice", self.tok["alice"], ["dyno/v1/events/alice/evb"])
        try:
            sub_ready(self, f, sub, "alice/evb", token=self.tok["alice"])
            src, sha = self.file_of("ev.bin", 200000)
            self.aws("alice", "s3", "cp", src, "s3://evb/photos/2026/ev.bin")
            got = sub.wait_for(lambda t, d: is_event("object.created")(t, d) and
                               (d.get("object") or {}).get("name") == "photos/2026/ev.bin")
            self.assertIsNotNone(got, "no object.created for the S3 put: %s" % sub.stderr())
            key = got[1]["object"]["key"]
            self.assertEqual(got[1]["object"]["sha256"], sha)
            self.assertEqual(got[1]["object"]["size"], 200000)
            # REST: the object's bytes and its meta, with the S3 attributes
            r = f.http("GET", "/v1/objects/" + key, token=self.tok["alice"])
            self.assertEqual(r.status, 200)
            self.assertEqual(hashlib.sha256(r.body).hexdigest(), sha)
            r = f.http("GET", "/v1/objects/%s/meta" % key, token=self.tok["alice"])
            meta = r.json()
            self.assertEqual(meta["name"], "photos/2026/ev.bin")
            with open(src, "rb") as fh:
                self.assertEqual(meta["attrs"]["etag"], hashlib.md5(fh.read()).hexdigest())
            # the CLI
            tf = token_file(f, "alice", self.tok["alice"])
            dst = os.path.join(f.work, "ev.cli")
            f.cli("--gateway", f.gateway, "--token-file", tf, "get", key, "-o", dst, settings=False)
            self.assertEqual(self.sha_of(dst), sha)
            # and a delete through S3 is object.evicted
            self.aws("alice", "s3", "rm", "s3://evb/photos/2026/ev.bin")
            self.assertIsNotNone(sub.wait_for(is_event("object.evicted", key)))
        finally:
            sub.close()

    # ---- objects ------------------------------------------------------------------------

    def test_attributes_ranges_conditions(self):
        self.bucket("alice", "attrs")
        got = self.probe("alice", r"""
import hashlib
c = client()
body = bytes(range(256)) * 40
r = c.put_object(Bucket='attrs', Key='dir/x.bin', Body=body, ContentType='image/png',
                 Metadata={'Owner-Name': 'Ada', 'run': '7'})
etag = r['ETag']
h = c.head_object(Bucket='attrs', Key='dir/x.bin')
g = c.get_object(Bucket='attrs', Key='dir/x.bin', Range='bytes=100-199')
part = g['Body'].read()
tail = c.get_object(Bucket='attrs', Key='dir/x.bin', Range='bytes=-10')['Body'].read()
lm = h['LastModified']
import datetime
out = {
  'etag': etag, 'md5': '"%s"' % hashlib.md5(body).hexdigest(),
  'head': [h['ContentLength'], h['ContentType'], h['Metadata'], h['ETag']],
  'range': [g['ResponseMetadata']['HTTPStatusCode'], g['ContentRange'], part == body[100:200]],
  'tail': tail == body[-10:],
  'bad_range': code(lambda: c.get_object(Bucket='attrs', Key='dir/x.bin', Range='bytes=20000-')),
  'if_none_match': code(lambda: c.get_object(Bucket='attrs', Key='dir/x.bin', IfNoneMatch=etag)),
  'if_match_other': code(lambda: c.get_object(Bucket='attrs', Key='dir/x.bin', IfMatch='"0123"')),
  'if_match': code(lambda: c.get_object(Bucket='attrs', Key='dir/x.bin', IfMatch=etag)['ContentLength']),
  'if_modified_since': code(lambda: c.get_object(Bucket='attrs', Key='dir/x.bin',
                                                 IfModifiedSince=lm + datetime.timedelta(seconds=5))),
  'if_unmodified_since': code(lambda: c.get_object(Bucket='attrs', Key='dir/x.bin',
                                                   IfUnmodifiedSince=lm - datetime.timedelta(days=1))),
  'modified': code(lambda: c.get_object(Bucket='attrs', Key='dir/x.bin',
                                        IfModifiedSince=lm - datetime.timedelta(days=1))['ContentLength']),
  'no_key': code(lambda: c.get_object(Bucket='attrs', Key='nope')),
  'no_bucket': code(lambda: c.get_object(Bucket='nobucket', Key='nope')),
  'head_missing': code(lambda: c.head_object(Bucket='attrs', Key='nope')),
  'delete_missing': code(lambda: c.delete_object(Bucket='attrs', Key='never-there')['ResponseMetadata']['HTTPStatusCode']),
  'not_empty': code(lambda: c.delete_bucket(Bucket='attrs')),
  'location': code(lambda: c.get_bucket_location(Bucket='attrs')['LocationConstraint']),
  'head_bucket': code(lambda: c.head_bucket(Bucket='attrs')['ResponseMetadata']['HTTPStatusCode']),
  'again': code(lambda: c.create_bucket(Bucket='attrs')),
}
""")
        self.assertEqual(got["etag"], got["md5"])
        self.assertEqual(got["head"], [10240, "image/png", {"owner-name": "Ada", "run": "7"}, got["md5"]])
        self.assertEqual(got["range"], [206, "bytes 100-199/10240", True])
        self.assertTrue(got["tail"])
        self.assertEqual(got["bad_range"], {"code": "InvalidRange", "status": 416})
        self.assertEqual(got["if_none_match"]["status"], 304)
        self.assertEqual(got["if_match_other"], {"code": "PreconditionFailed", "status": 412})
        self.assertEqual(got["if_match"], {"code": "ok", "result": 10240})
        self.assertEqual(got["if_modified_since"]["status"], 304)
        self.assertEqual(got["if_unmodified_since"], {"code": "PreconditionFailed", "status": 412})
        self.assertEqual(got["modified"], {"code": "ok", "result": 10240})
        self.assertEqual(got["no_key"], {"code": "NoSuchKey", "status": 404})
        self.assertEqual(got["no_bucket"], {"code": "NoSuchBucket", "status": 404})
        self.assertEqual(got["head_missing"]["status"], 404)
        self.assertEqual(got["delete_missing"], {"code": "ok", "result": 204})
        self.assertEqual(got["not_empty"], {"code": "BucketNotEmpty", "status": 409})
        self.assertEqual(got["location"], {"code": "ok", "result": None})
        self.assertEqual(got["head_bucket"], {"code": "ok", "result": 200})
        self.assertEqual(got["again"], {"code": "BucketAlreadyOwnedByYou", "status": 409})

    def test_bad_bodies_store_nothing(self):
        self.bucket("alice", "bodies")
        got = self.probe("alice", r"""
import base64, hashlib
c = client()
wrong_md5 = base64.b64encode(hashlib.md5(b'other').digest()).decode()
out = {
  'bad_digest': code(lambda: c.put_object(Bucket='bodies', Key='md5', Body=b'payload', ContentMD5=wrong_md5)),
  'md5_head': code(lambda: c.head_object(Bucket='bodies', Key='md5')),
  'good_digest': code(lambda: c.put_object(Bucket='bodies', Key='md5ok', Body=b'payload',
                       ContentMD5=base64.b64encode(hashlib.md5(b'payload').digest()).decode())['ETag']),
  'sha_mismatch': signed('PUT', '/bodies/sha', body=b'signed bytes', send_body=b'other bytes!'),
  'sha_head': code(lambda: c.head_object(Bucket='bodies', Key='sha')),
}
# x-amz-checksum-* headers, computed here apart from the gateway
import zlib
def crc32c(b):
    crc = 0xffffffff
    for x in b:
        crc ^= x
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff
b64 = lambda raw: base64.b64encode(raw).decode()
body = b'checksummed payload ' * 50
good = {'crc32': b64(zlib.crc32(body).to_bytes(4, 'big')), 'crc32c': b64(crc32c(body).to_bytes(4, 'big')),
        'sha1': b64(hashlib.sha1(body).digest()), 'sha256': b64(hashlib.sha256(body).digest())}
for algo, v in good.items():
    out['ck_' + algo] = signed('PUT', '/bodies/ck-' + algo, body=body, headers={'x-amz-checksum-' + algo: v})[0]
    wrong = signed('PUT', '/bodies/bad-' + algo, body=body + b'!',
                   headers={'x-amz-checksum-' + algo: v})
    out['bad_' + algo] = [wrong[0], wrong[2]]
    out['bad_head_' + algo] = code(lambda: c.head_object(Bucket='bodies', Key='bad-' + algo))
out['ck_malformed'] = signed('PUT', '/bodies/ck-x', body=body, headers={'x-amz-checksum-crc32': 'abc'})[0]
""")
        self.assertEqual(got["bad_digest"], {"code": "BadDigest", "status": 400})
        self.assertEqual(got["md5_head"]["status"], 404)
        self.assertEqual(got["good_digest"]["code"], "ok")
        self.assertEqual(got["sha_mismatch"][0], 400, got["sha_mismatch"])
        self.assertEqual(self.s3_error(got["sha_mismatch"][2]), "XAmzContentSHA256Mismatch")
        self.assertEqual(got["sha_head"]["status"], 404)
        for algo in ("crc32", "crc32c", "sha1", "sha256"):
            self.assertEqual(got["ck_" + algo], 200, algo)
            self.assertEqual(got["bad_" + algo][0], 400, got["bad_" + algo])
            self.assertEqual(self.s3_error(got["bad_" + algo][1]), "BadDigest", algo)
            self.assertEqual(got["bad_head_" + algo]["status"], 404, algo)
        self.assertEqual(got["ck_malformed"], 400)

    def test_aws_chunked_and_virtual_host(self):
        self.bucket("alice", "chunks")
        got = self.probe("alice", r"""
import hashlib
data = bytes((i * 13) & 0xff for i in range(3 * 65536 + 777))
enc = len(chunked('0' * 64, '20260101T000000Z', data, 65536))
hdrs = {'Content-Encoding': 'aws-chunked', 'x-amz-decoded-content-length': str(len(data)),
        'Content-Length': str(enc)}
ok = signed('PUT', '/chunks/streamed.bin', headers=hdrs, payload='STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
            body_fn=lambda seed, d: chunked(seed, d, data, 65536))
def tampered(seed, d):
    b = bytearray(chunked(seed, d, data, 65536))
    b[70000] ^= 1
    return bytes(b)
bad = signed('PUT', '/chunks/tampered.bin', headers=hdrs, payload='STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
             body_fn=tampered)
c = client()
back = hashlib.sha256(c.get_object(Bucket='chunks', Key='streamed.bin')['Body'].read()).hexdigest()
host = URL.split('//')[1]
vput = signed('PUT', '/v/key.txt', body=b'virtual', host='chunks.localhost:' + host.split(':')[1])
vget = signed('GET', '/v/key.txt', host='chunks.localhost:' + host.split(':')[1])
out = {'ok': ok[0], 'back': back == hashlib.sha256(data).hexdigest(), 'bad': [bad[0], bad[2]],
       'bad_head': code(lambda: c.head_object(Bucket='chunks', Key='tampered.bin')),
       'vput': vput[0], 'vget': [vget[0], vget[2]],
       'path_get': c.get_object(Bucket='chunks', Key='v/key.txt')['Body'].read().decode(),
       'acl': signed('GET', '/chunks?acl')}
""")
        self.assertEqual(got["ok"], 200)
        self.assertTrue(got["back"])
        self.assertEqual(got["bad"][0], 403, got["bad"])
        self.assertEqual(self.s3_error(got["bad"][1]), "SignatureDoesNotMatch")
        self.assertEqual(got["bad_head"]["status"], 404)
        self.assertEqual(got["vput"], 200)
        self.assertEqual(got["vget"], [200, "virtual"])
        self.assertEqual(got["path_get"], "virtual")
        self.assertEqual(got["acl"][0], 501, got["acl"])
        self.assertEqual(self.s3_error(got["acl"][2]), "NotImplemented")


if __name__ == "__main__":
    unittest.main()
