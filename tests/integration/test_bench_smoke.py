"""The benchmark must not rot: bench/run.sh --smoke starts its own fabric and redis-server,
does 3 puts and gets of 4 KiB against each, and prints its table."""

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
        for system in ("dynostore", "redis"):
            for op in ("put", "get"):
                self.assertRegex(out, r"(?m)^%s\s+%s\s+4 KiB\s+1\s+3\s+[0-9.]+" % (system, op),
                                 "no %s %s row in:\n%s" % (system, op, out))
        self.assertRegex(out, r"gateway peak RSS \(VmHWM of pid \d+\): \d+ MiB", out)
        # measured, or skipped with the reason (no events published), never failed
        self.assertRegex(out, r"put-to-event latency( \(4 KiB, 1 client, 3 events\): p50 "
                              r"[0-9.]+ ms|: skipped: .+)", out)
        # no process of the bench outlives it: the fabric's pids are gone
        for pid in re.findall(r"VmHWM of pid (\d+)", out):
            self.assertFalse(os.path.exists("/proc/%s/status" % pid)
                             and "zombie" not in open("/proc/%s/status" % pid).read(),
                             "gateway pid %s still running after run.sh" % pid)


if __name__ == "__main__":
    unittest.main()
