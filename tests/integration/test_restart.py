"""Issue 2, acceptance 9: Ctrl-C stops the whole fabric, and `dynostore up` again on the same
data folder serves every object put before, byte-identical."""

import os
import signal
import subprocess
import tempfile
import time
import unittest

from fabric import (KiB, MiB, Fabric, FabricCase, bin_dir, pid_alive, random_bytes, sha256_file,
                    wait_pid_gone, write_random_file)

CAT = "admin/restart"


class Restart(FabricCase):

    def test_sigint_stops_all_and_data_survives_restart(self):
        f = self.fab
        f.cli("catalog", "create", CAT)
        objs = {}
        for i, size in enumerate([0, 1, 4 * KiB, 64 * KiB + 1, 3 * MiB, 9 * MiB + 77]):
            src = os.path.join(f.work, "r%d" % i)
            digest = write_random_file(src, size, seed=900 + i)
            doc = f.put_file(src, CAT, name="r%d" % i)
            objs[doc["key"]] = (src, digest, "r%d" % i)
        pids = f.recorded_pids()
        url_before = f.gateway
        self.assertNotRegex(url_before, r":0$", "fabric.json names the port the gateway bound")
        self.assertEqual(len(pids), 5 + f.containers, pids)  # broker, auth, metadata, pubsub, gateway
        for name, pid in pids.items():
            self.assertTrue(pid_alive(pid), "%s (pid %s) not running before Ctrl-C" % (name, pid))

        # Ctrl-C: up forwards it to every child and exits
        rc = f.interrupt_up(signal.SIGINT, timeout=60)
        self.assertIsNotNone(rc, "dynostore up did not exit within 60 s of SIGINT")
        still = {n: p for n, p in pids.items() if not wait_pid_gone(p, 10)}
        self.assertEqual(still, {}, "children still running after Ctrl-C of up")
        self.assertEqual(rc, 0, "exit code of up after Ctrl-C")

        # up again, same data folder
        f.start()
        f.wait_containers_online(f.containers, timeout=90)
        new = f.recorded_pids()
        self.assertEqual(f.gateway, url_before, "the gateway keeps its URL across restarts")
        self.assertFalse(set(new.values()) & set(pids.values()) - {None},
                         "fabric.json still lists old pids")
        listed = {o["key"]: o["name"] for o in f.list_catalog(CAT)}
        for key, (src, digest, name) in objs.items():
            with self.subTest(name=name):
                self.assertEqual(listed.get(key), name, "listing after restart")
                out = src + ".out"
                f.cli("get", key, "-o", out)
                self.assertEqual(os.path.getsize(out), os.path.getsize(src))
                self.assertEqual(sha256_file(out), digest, "bytes after restart")
        # and it takes new objects
        data = random_bytes(2 * MiB, seed=999)
        r = f.put_bytes(CAT, data, name="after-restart")
        self.assertEqual(r.status, 201, r.body)
        self.assertTrue(f.get_object(r.json()["key"]).body == data)

        # a gateway killed and started again from its recorded command line binds the same port
        f.kill("gateway-gw1")
        f.restart("gateway-gw1")  # waits for /healthz on the recorded URL
        f.wait_containers_online(f.containers, timeout=60)
        self.assertEqual(f.get_object(r.json()["key"]).body, data)

    def test_sigterm_stops_all(self):
        g = Fabric(containers=3, name="sigterm")
        try:
            pids = g.recorded_pids()
            rc = g.interrupt_up(signal.SIGTERM, timeout=60)
            self.assertIsNotNone(rc, "dynostore up did not exit within 60 s of SIGTERM")
            still = {n: p for n, p in pids.items() if not wait_pid_gone(p, 10)}
            self.assertEqual(still, {}, "children still running after SIGTERM of up")
        except BaseException:
            g.dump_logs(self.id())
            raise
        finally:
            g.close()


class ContainerRestart(FabricCase):
    """A fabric of its own: the harness's re-spawned container is no child of `up`, so
    Restart's Ctrl-C test must not share it."""

    CONTAINERS = 3

    def test_container_restarted_from_its_command_line_keeps_its_url(self):
        """A container killed -9 and started again from the command line that fabric.json
        records comes back on the URL it had, as the gateway does: a read or repair that
        began before the restart (or a fragment location not refreshed yet) still reaches
        it, and no other container can come back on its port and answer for it."""
        f = self.fab
        name = f.container_names()[0]
        cid = f.proc(name)["id"]

        def url_of():
            return {c.get("id"): c.get("url") for c in f.containers_info()}.get(cid)

        port_file = os.path.join(f.container_dir(cid), "port")
        with open(port_file) as fh:
            port_before = fh.read().strip()
        url_before = url_of()
        self.assertTrue(url_before, "GET /v1/containers names no URL for %s" % cid)
        f.kill(name)
        os.unlink(port_file)  # the restarted container writes the port it bound
        f.restart(name)
        deadline = time.monotonic() + 60
        while not os.path.exists(port_file) and time.monotonic() < deadline:
            time.sleep(0.1)
        with open(port_file) as fh:
            self.assertEqual(fh.read().strip(), port_before, "port of %s after its restart" % cid)
        f.wait_containers_online(f.containers, timeout=60)
        self.assertEqual(url_of(), url_before, "URL of %s in GET /v1/containers" % cid)


if __name__ == "__main__":
    unittest.main()


class UpFlags(unittest.TestCase):
    """`dynostore up` reads its numbers with the library's strict decimal parser (the one the
    gateway uses for Content-Length): a sign, a space or trailing text is a usage error
    (exit 2) with the flag named, before anything is created. Starts no fabric: the data
    folder is never made and --bin points nowhere, so a value wrongly taken fails otherwise."""

    BAD = (("--containers", "+3"), ("--containers", " 3"), ("--containers", "3 "),
           ("--containers", "0"), ("--containers", "65"), ("--port", "+0"), ("--port", "-0"),
           ("--port", "65536"), ("--port", "80x"), ("--repair-grace", "-0"),
           ("--repair-grace", "+5"), ("--repair-grace", "5s"), ("--repair-grace", ""))

    def test_bad_numbers_are_usage_errors_and_create_nothing(self):
        exe = os.path.join(bin_dir(), "dynostore")
        for flag, value in self.BAD:
            with self.subTest(flag=flag, value=value), tempfile.TemporaryDirectory() as tmp:
                data = os.path.join(tmp, "fabric")
                env = dict(os.environ, HOME=tmp, XDG_CONFIG_HOME=os.path.join(tmp, "config"))
                r = subprocess.run([exe, "up", "--data", data, "--bin", os.path.join(tmp, "nobin"),
                                    flag, value], capture_output=True, text=True, timeout=60,
                                   env=env, stdin=subprocess.DEVNULL)
                self.assertEqual(r.returncode, 2, "exit code; stderr: %s" % r.stderr)
                self.assertIn(flag + " must be", r.stderr)
                self.assertFalse(os.path.exists(data), "the data folder was made")
