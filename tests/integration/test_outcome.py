"""Issue 9 class 1: an unknown outcome never destroys data.

The put's object.commit is left without an answer in the two ways a fabric does it: metadata
frozen (SIGSTOP) across the commit, and the broker killed and restarted while metadata holds
the commit in its socket. Either the put is acknowledged and reads back, or it failed and the
object it would have replaced still reads back under its name; never both gone, never a
listed object without its bytes.
"""

import time
import unittest

from fabric import (FabricCase, Frozen, MiB, placement_problems, put_streamed, random_bytes,
                    read_by_name, sha256_bytes, unreadable_listed)

RPC_TIMEOUT_MS = 3000
BIG = 40 * MiB
# With a Content-Length the gateway runs object.begin before it reads any body byte, so once
# more has been sent than the loopback socket buffers hold (a few MiB), begin has answered.
FREEZE_AT = 20  # chunks of 1 MiB


class UnknownCommit(FabricCase):
    CAT = "admin/outcome"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        f = cls.fab
        f.create_catalog(cls.CAT)
        # A short RPC timeout, so that a commit outlives several of them within the test.
        gw = f.names("gateway")[0]
        f.kill(gw)
        f.restart(gw, ["--rpc-timeout-ms", str(RPC_TIMEOUT_MS)])

    def put_old(self, name, seed):
        old = random_bytes(2 * MiB + 11, seed=seed)
        r = self.fab.put_bytes(self.CAT, old, name=name)
        self.assertEqual(r.status, 201, "put of the old version: %d %r" % (r.status, r.body))
        return old

    def check(self, name, old, new, r, how):
        """The invariant after a put whose commit had an unknown outcome."""
        f = self.fab
        if r.status == 201:
            self.assertEqual(r.json()["sha256"], sha256_bytes(new), how)
        else:
            self.assertIn(r.status, (503, 504), "%s: %d %r" % (how, r.status, r.body[:300]))
        # Metadata may still be working through what it got while frozen or cut off.
        deadline = time.monotonic() + 60
        while True:
            try:
                got = read_by_name(f, self.CAT, name)
                bad = unreadable_listed(f, self.CAT)
                if not bad:
                    break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                bad = None
            if time.monotonic() > deadline:
                self.fail("%s: listed objects without their bytes: %r" % (how, bad))
            time.sleep(1)
        self.assertIsNotNone(got, "%s: both versions of %s are gone (put answered %d)"
                             % (how, name, r.status))
        if r.status == 201:
            self.assertTrue(got == new, "%s: acknowledged put does not read back" % how)
        else:
            self.assertTrue(got in (old, new), "%s: %s reads back neither version" % (how, name))
        print("%s: put answered %d; %s reads back the %s version"
              % (how, r.status, name, "new" if got == new else "old"))
        if r.status == 201:
            # The version it replaced was dropped by metadata; a retried commit does not name
            # it, so GC (not the put) deletes its fragments. No orphan is left.
            deadline = time.monotonic() + 60
            while True:
                problems = placement_problems(f, [self.CAT])
                if not problems:
                    break
                if time.monotonic() > deadline:
                    self.fail("%s: %s" % (how, "\n  ".join(problems[:10])))
                time.sleep(1)

    def test_metadata_frozen_across_commit(self):
        f = self.fab
        old = self.put_old("frozen", seed=91)
        new = random_bytes(BIG, seed=92)
        md = f.names("metadata")[0] if f.names("metadata") else "metadata"
        frozen = {}

        def between(i):
            if i == FREEZE_AT:  # object.begin has answered: freeze metadata for the rest
                frozen["f"] = Frozen(f, md).__enter__()
            elif i is None:
                # The gateway stores the fragments and sends object.commit into the silence;
                # stay frozen across more than two RPC timeouts.
                time.sleep(2.5 * RPC_TIMEOUT_MS / 1000)
                frozen["f"].thaw()

        try:
            r = put_streamed(f, self.CAT, new, "frozen", between)
        finally:
            if "f" in frozen:
                frozen["f"].thaw()
        self.check("frozen", old, new, r, "metadata frozen across the commit")

    def test_broker_restart_across_commit(self):
        f = self.fab
        old = self.put_old("cut", seed=93)
        new = random_bytes(BIG, seed=94)
        md = f.names("metadata")[0] if f.names("metadata") else "metadata"
        frozen = {}

        def between(i):
            if i == FREEZE_AT:
                frozen["f"] = Frozen(f, md).__enter__()
            elif i is None:
                # The commit reaches metadata's socket while it is frozen; the broker dies
                # before metadata can answer, then metadata runs the commit with nobody to
                # answer to, and the broker comes back.
                time.sleep(1.5)
                f.kill("mosquitto")
                frozen["f"].thaw()
                time.sleep(0.5)
                f.restart("mosquitto")

        try:
            r = put_streamed(f, self.CAT, new, "cut", between)
        finally:
            if "f" in frozen:
                frozen["f"].thaw()
        self.check("cut", old, new, r, "broker restarted across the commit")




if __name__ == "__main__":
    unittest.main()
