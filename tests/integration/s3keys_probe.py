"""Run by test_s3_keys.py under /usr/bin/python3 (Debian's boto3; the python3 on PATH may have
another). Signs ListBuckets with an access key against S3 endpoints and reports what they
answer, as JSON lines on stdout:

  s3keys_probe.py once KEY_ID SECRET URL...
      {"URL": "ok" | "<S3 error code>"} for one request to each endpoint
  s3keys_probe.py until-refused KEY_ID SECRET TIMEOUT URL...
      first {"ready": {URL: code}} after one request each (the gateways' caches now hold the
      key), then waits for a line on stdin, then sends requests to every endpoint until each
      answers InvalidAccessKeyId: {"refused_after": {URL: seconds or null}}
"""
import json
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def client(url, key_id, secret):
    cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"},
                 connect_timeout=5, read_timeout=10)
    return boto3.client("s3", endpoint_url=url, aws_access_key_id=key_id, aws_secret_access_key=secret,
                        region_name="us-east-1", config=cfg)


def answer(c):
    try:
        c.list_buckets()
        return "ok"
    except ClientError as e:
        return e.response.get("Error", {}).get("Code") or str(e.response.get("ResponseMetadata", {}).get(
            "HTTPStatusCode"))


def main(argv):
    mode, key_id, secret = argv[1], argv[2], argv[3]
    if mode == "once":
        print(json.dumps({u: answer(client(u, key_id, secret)) for u in argv[4:]}), flush=True)
        return 0
    timeout, urls = float(argv[4]), argv[5:]
    clients = {u: client(u, key_id, secret) for u in urls}
    print(json.dumps({"ready": {u: answer(c) for u, c in clients.items()}}), flush=True)
    sys.stdin.readline()
    t0 = time.monotonic()
    refused = {u: None for u in urls}
    while time.monotonic() - t0 < timeout and any(v is None for v in refused.values()):
        for u, c in clients.items():
            if refused[u] is None and answer(c) == "InvalidAccessKeyId":
                refused[u] = time.monotonic() - t0
        time.sleep(0.05)
    print(json.dumps({"refused_after": refused}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
