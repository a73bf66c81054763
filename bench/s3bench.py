"""S3 rows of bench/run.sh (issue 14): put then get of one object size through the fabric's S3
door with boto3, one client, printing dyno-bench's RESULT line format so that run.sh's table
shows them beside the REST rows of the same run:

    RESULT dyno-s3 <put|get> <size> 1 <ops> <MB/s> <ops/s> <p50 ms> <p99 ms> <cpu ms/op>

Run it with Debian's /usr/bin/python3 (python3-boto3):

    /usr/bin/python3 bench/s3bench.py --endpoint URL --key ID --secret-file F --bucket B \
        --size BYTES --ops N [--cpu-pids 1,2,3]

The bucket is created when missing; the objects are deleted at the end. Standard library and
boto3 only.
"""
import argparse
import io
import os
import sys
import time

import boto3
from botocore.config import Config

MiB = 1 << 20


def cpu_ticks(pids):
    """User + system CPU ticks of the processes (those gone count nothing)."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def pct(lat, q):
    s = sorted(lat)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--secret-file", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--ops", type=int, required=True)
    ap.add_argument("--cpu-pids", default="")
    a = ap.parse_args()
    with open(a.secret_file) as fh:
        secret = fh.read().strip()
    pids = [int(p) for p in a.cpu_pids.split(",") if p.strip()]
    hz = os.sysconf("SC_CLK_TCK")
    # One object body for every put; multipart above boto3's threshold like any S3 client
    # (its default: 8 MiB parts), so a 64 MiB put is 8 parts and a Complete.
    s3 = boto3.client("s3", endpoint_url=a.endpoint, region_name="us-east-1", aws_access_key_id=a.key,
                      aws_secret_access_key=secret,
                      config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                    read_timeout=600))
    try:
        s3.head_bucket(Bucket=a.bucket)
    except Exception:  # noqa: BLE001 (missing: create it)
        s3.create_bucket(Bucket=a.bucket)
    body = os.urandom(a.size)
    names = ["s3bench-%d-%d" % (a.size, i) for i in range(a.ops)]
    status = 0
    for phase in ("put", "get"):
        lat = []
        c0 = cpu_ticks(pids)
        t0 = time.monotonic()
        for n in names:
            t = time.monotonic()
            if phase == "put":
                s3.upload_fileobj(io.BytesIO(body), a.bucket, n)
            else:
                got = s3.get_object(Bucket=a.bucket, Key=n)["Body"].read()
                if got != body:
                    print("s3bench: %s read back different bytes" % n, file=sys.stderr)
                    status = 1
            lat.append((time.monotonic() - t) * 1000.0)
        secs = max(time.monotonic() - t0, 1e-9)
        cpu = (cpu_ticks(pids) - c0) * 1000.0 / hz / a.ops if pids else -1
        print("RESULT dyno-s3 %s %d 1 %d %.2f %.2f %.3f %.3f %.3f" % (
            phase, a.size, a.ops, a.size * a.ops / MiB / secs, a.ops / secs, pct(lat, 0.5), pct(lat, 0.99), cpu))
        sys.stdout.flush()
    for i in range(0, len(names), 1000):
        s3.delete_objects(Bucket=a.bucket, Delete={"Objects": [{"Key": n} for n in names[i:i + 1000]],
                                                   "Quiet": True})
    return status


if __name__ == "__main__":
    sys.exit(main())
