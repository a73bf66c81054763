"""The benchmark must not rot: bench/run.sh --smoke starts its own fabric and two redis-servers
(plain and durable), does 3 puts and gets of 4 KiB against each, a disk-limit row and an MQTT
ingest row, and prints its table with the fabric's CPU per operation."""

import os
import re
import shutil
import subprocess
import unittest

from fabric import bin_dir, src_dir


class BenchSmoke(unittest.TestCase):

    def test_run_sh_smoke(self):
        if not shutil.which("redis-server"):
            self.skipTest("redis-server is not installed (Debian package redis-server)")
        script = os.path.join(src_dir(), "bench", "run.sh")
        self.assertTrue(os.access(script, os.X_OK), "%s is not executable" % script)
        env = dict(os.environ, DYNO_BIN=bin_dir())
        cp = subprocess.run([script, "--smoke", "--bin", bin_dir()], env=env,
                            capture_output=True, text=True, timeout=300)
        out = cp.stdout
        self.assertEqual(cp.returncode, 0, "run.sh --smoke exited %d\nstdout:\n%s\nstderr:\n%s"
                         % (cp.returncode, out, cp.stderr))
        num = r"[0-9]+(?:\.[0-9]+)?"
        # columns: system op size clients ops MB/s ops/s p50 p99 vs-redis vs-aof cpu-ms/op
        def row(system, op, size, clients, ops, vs_redis, vs_aof, cpu):
            return (r"(?m)^%s\s+%s\s+%s\s+%d\s+%d\s+%s\s+%s\s+%s\s+%s\s+%s\s+%s\s+%s\s*$"
                    % (system, op, size, clients, ops, num, num, num, num, vs_redis, vs_aof, cpu))
        for op in ("put", "get"):
            # DynoStore: both ratios and its fabric's CPU per operation are numbers
            self.assertRegex(out, row("dynostore", op, "4 KiB", 1, 3, num, num, num),
                             "no dynostore %s row with numbers in:\n%s" % (op, out))
            self.assertRegex(out, row("redis", op, "4 KiB", 1, 3, r"1\.00", "-", num),
                             "no redis %s row in:\n%s" % (op, out))
            # durable Redis (appendfsync always), measured in the same run
            self.assertRegex(out, row("redis-aof", op, "4 KiB", 1, 3, num, r"1\.00", num),
                             "no redis-aof %s row in:\n%s" % (op, out))
        # the disk's limit: 5 writers, fragment bytes of 3 objects, no network
        self.assertRegex(out, row("disk-limit", "put", "4 KiB", 5, 3, "-", "-", "-"),
                         "no disk-limit row in:\n%s" % out)
        # MQTT ingest: 40 readings of 200 B from 4 publishers, every one announced
        self.assertRegex(out, row("dynostore", "ingest", "200 B", 4, 40, "-", "-", num),
                         "no ingest row in:\n%s" % out)
        m = re.search(r"(?m)^dynostore\s+ingest\s+200 B\s+4\s+40\s+(%s)\s+(%s)" % (num, num), out)
        self.assertGreater(float(m.group(2)), 0, "ingest readings/s is 0:\n%s" % out)
        self.assertRegex(out, r"gateway peak RSS \(VmHWM of pid \d+\): \d+ MiB", out)
        # measured, or skipped with the reason (no events published), never failed
        self.assertRegex(out, r"put-to-event latency( \(4 KiB, 1 client, 3 events\): p50 "
                              r"[0-9.]+ ms|: skipped: .+)", out)
        # no process of the bench outlives it: the fabric's pids are gone
        for pid in re.findall(r"VmHWM of pid (\d+)", out):
            self.assertFalse(os.path.exists("/proc/%s/status" % pid)
                             and "zombie" not in open("/proc/%s/status" % pid).read(),
                             "gateway pid %s still running after run.sh" % pid)

    def test_run_sh_sites_smoke(self):
        """--sites (bench/sites.py): the wide-area rows, one put and get row per fabric: one
        site, three sites, three sites 40 ms apart (issue 13 acceptance 5)."""
        script = os.path.join(src_dir(), "bench", "run.sh")
        env = dict(os.environ, DYNO_BIN=bin_dir())
        cp = subprocess.run([script, "--sites", "--smoke", "--bin", bin_dir()], env=env,
                            capture_output=True, text=True, timeout=600)
        out = cp.stdout
        self.assertEqual(cp.returncode, 0, "run.sh --sites --smoke exited %d\nstdout:\n%s\nstderr:\n%s"
                         % (cp.returncode, out, cp.stderr))
        num = r"[0-9]+(?:\.[0-9]+)?"
        for fabric in ("one-site", "3-sites-0ms", "3-sites-40ms"):
            for op in ("put", "get"):
                # fabric op size clients ops MB/s ops/s p50 p99 cpu-ms/op
                self.assertRegex(out, r"(?m)^%s\s+%s\s+1 MiB\s+1\s+2(\s+%s){4}\s+%s\s*$"
                                 % (fabric, op, num, num), "no %s %s row in:\n%s" % (fabric, op, out))
        m = re.search(r"(%s) MiB crossed the links" % num, out)
        self.assertTrue(m and float(m.group(1)) > 0, "nothing crossed the links:\n%s" % out)
        # 40 ms each way: a get of 1 MiB waits at least for one round trip to site-2 or 3
        m = re.search(r"(?m)^3-sites-40ms\s+get\s+1 MiB\s+1\s+2\s+%s\s+%s\s+(%s)" % (num, num, num), out)
        self.assertGreaterEqual(float(m.group(1)), 80.0, out)


if __name__ == "__main__":
    unittest.main()
