"""A container whose disk fills up (a small tmpfs under its fragment folder) answers 507, and
placement stops choosing it while the other containers take the puts."""
import json
import os
import subprocess
import time
import unittest

from fabric import FabricCase, MiB

TMPFS_BYTES = 8 * MiB


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % size, "tmpfs", path],
                       capture_output=True, text=True)
    return r.returncode == 0, r.stderr.strip()


class DiskFull(FabricCase):
    CONTAINERS = 6  # five fragments per object (k=3, m=2) still fit when one disk is full

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.small = os.path.join(cls.fab.tmp, "small-disk")
        ok, err = mount_tmpfs(cls.small, TMPFS_BYTES)
        if not ok:
            cls.tearDownClass()
            raise unittest.SkipTest("cannot mount a tmpfs here (needs root): " + err)
        # c1 moves onto the small disk; its configured capacity (10G) is far above the disk's.
        cls.fab.kill("container-c1")
        cls.fab.restart("container-c1", ["--dir", cls.small])

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()  # stops the fabric first: nothing holds the mount then
        if getattr(cls, "small", None) and os.path.ismount(cls.small):
            subprocess.run(["umount", cls.small], check=False)

    def container(self, cid):
        cs = self.fab.http("GET", "/v1/containers").json()
        cs = cs.get("containers", cs) if isinstance(cs, dict) else cs
        return next(c for c in cs if c["id"] == cid)

    def wait_for(self, what, cond, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            v = cond()
            if v:
                return v
            time.sleep(0.25)
        self.fail("timed out waiting for " + what)

    def test_full_disk_answers_507_and_is_avoided(self):
        fab = self.fab
        self.wait_for("c1 online on the small disk",
                      lambda: self.container("c1")["state"] == "online" and
                      self.container("c1")["free"] <= TMPFS_BYTES)
        # Fill the disk, leaving less than one fragment of a 3 MiB object (1 MiB + headers).
        with open(os.path.join(self.small, "filler"), "wb") as f:
            try:
                f.write(b"\0" * (TMPFS_BYTES - 256 * 1024))
            except OSError:
                pass
        url = self.container("c1")["url"]
        with open(os.path.join(fab.data, "secrets", "service.token")) as f:
            svc = f.read().strip()
        import http.client
        import urllib.parse
        u = urllib.parse.urlsplit(url)
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        c.request("PUT", "/v1/fragments/" + "ab" * 16 + ".0", body=b"\0" * (1 * MiB),
                  headers={"Authorization": "Bearer " + svc})
        r = c.getresponse()
        body = r.read()
        c.close()
        self.assertEqual(r.status, 507, body)
        self.assertEqual(json.loads(body)["error"]["code"], "no_space")

        # Metadata learns it from c1's status (every 5 s) and placement leaves c1 out.
        self.wait_for("metadata to see c1 full", lambda: self.container("c1")["free"] < 1 * MiB)
        fab.create_catalog("admin/full")
        keys = []
        for i in range(12):
            data = os.urandom(3 * MiB + i)
            r = fab.put_bytes("admin/full", data, name="o%d" % i)
            self.assertEqual(r.status, 201, r.body)
            keys.append((r.json()["key"], data))
        for key, data in keys:
            meta = fab.http("GET", "/v1/objects/%s/meta" % key).json()
            where = [f["container"] for f in meta["fragments"]]
            self.assertNotIn("c1", where, "a fragment was placed on the full container")
            self.assertEqual(len(set(where)), 5)
            self.assertEqual(fab.get_object(key).body, data)


if __name__ == "__main__":
    unittest.main()
