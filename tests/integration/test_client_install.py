"""Issue 10, acceptance 2: install into a temporary prefix, build client/examples against it
with pkg-config, and run it against a running fabric.

1. `cmake --install BUILD --prefix TMP` installs the agents, the CLI, dyno-mint, the broker
   plugin, libdynostore (libdynostore.so -> .so.1 -> .so.1.0.0, and libdynostore.a), the
   public headers, lib/pkgconfig/dynostore.pc and share/man/man1/dynostore.1; the man page
   renders without warnings and names every command of `dynostore help`.
2. client/examples is copied out of the source tree and built with its Makefile, which only
   knows `pkg-config dynostore` (PKG_CONFIG_PATH=TMP/lib/pkgconfig): once against the shared
   library (which must resolve to TMP's libdynostore.so.1) and once against libdynostore.a
   with `pkg-config --static` (which must then need no libdynostore.so at all).
3. The fabric is started from the installed tree (TMP/bin/dynostore up finds the installed
   agents and TMP/lib/dyno_auth.so), and each example build puts a file, gets it back
   identical, and receives the object.created event of its object from the broker. The
   object is then read back with the CLI, byte for byte.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from fabric import KiB, Fabric, bin_dir, sha256_file, src_dir, test_failed, write_random_file

CAT = "admin/examples"
EVENT_TIMEOUT_S = 120  # a liveness bound for the example, not a performance assertion


def build_dir():
    return os.path.dirname(os.path.abspath(bin_dir()))


def run(argv, env=None, cwd=None, timeout=600):
    cp = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    if cp.returncode != 0:
        raise AssertionError("%s exited %d\nstdout: %s\nstderr: %s"
                             % (" ".join(argv), cp.returncode, cp.stdout, cp.stderr))
    return cp


def needed(path):
    out = run(["readelf", "-d", "-W", path]).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


class InstalledClient(unittest.TestCase):
    fab = None
    prefix = None
    old_bin = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="dyno-it-install-")
        cls.prefix = os.path.join(cls.tmp, "prefix")
        cmake = shutil.which("cmake")
        if not cmake:
            raise AssertionError("cmake is not on PATH")
        run([cmake, "--install", build_dir(), "--prefix", cls.prefix])
        cls.pc_env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(cls.prefix, "lib", "pkgconfig"))
        cls.pc_env.pop("PKG_CONFIG_LIBDIR", None)
        # The examples, built outside the source tree from the installed files only.
        cls.exdir = os.path.join(cls.tmp, "examples")
        shutil.copytree(os.path.join(src_dir(), "client", "examples"), cls.exdir)
        run(["make", "all", "static", "CFLAGS=-O2 -g -Wall -Wextra -Werror"], env=cls.pc_env,
            cwd=cls.exdir)
        # The fabric runs from the installed tree: Fabric and its helpers read DYNO_BIN.
        cls.old_bin = os.environ.get("DYNO_BIN")
        os.environ["DYNO_BIN"] = os.path.join(cls.prefix, "bin")
        try:
            cls.fab = Fabric(containers=5, name="install")
            cls.fab.cli("catalog", "create", CAT)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.fab is not None:
            cls.fab.close()
            cls.fab = None
        if cls.old_bin is None:
            os.environ.pop("DYNO_BIN", None)
        else:
            os.environ["DYNO_BIN"] = cls.old_bin
        if os.environ.get("DYNO_KEEP") != "1":
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def tearDown(self):
        if test_failed(self) and self.fab is not None:
            self.fab.dump_logs(self.id())

    # -- the installed tree ---------------------------------------------------------------

    def test_installed_files(self):
        p = self.prefix
        for rel in ("bin/dynostore", "bin/dyno-auth", "bin/dyno-metadata", "bin/dyno-pubsub",
                    "bin/dyno-container", "bin/dyno-gateway", "bin/dyno-mint"):
            self.assertTrue(os.access(os.path.join(p, rel), os.X_OK), rel)
        for rel in ("lib/dyno_auth.so", "lib/libdynostore.a", "include/dynostore/client.h",
                    "include/dynostore/error.h", "lib/pkgconfig/dynostore.pc",
                    "share/man/man1/dynostore.1"):
            self.assertTrue(os.path.isfile(os.path.join(p, rel)), rel)
        lib = os.path.join(p, "lib")
        self.assertEqual(os.readlink(os.path.join(lib, "libdynostore.so")), "libdynostore.so.1")
        self.assertTrue(os.readlink(os.path.join(lib, "libdynostore.so.1")).startswith("libdynostore.so.1."))
        self.assertIn("Library soname: [libdynostore.so.1]",
                      run(["readelf", "-d", os.path.join(lib, "libdynostore.so")]).stdout)

    def test_pkg_config(self):
        cflags = run(["pkg-config", "--cflags", "dynostore"], env=self.pc_env).stdout.split()
        libs = run(["pkg-config", "--libs", "dynostore"], env=self.pc_env).stdout.split()
        inc = [os.path.realpath(f[2:]) for f in cflags if f.startswith("-I")]
        self.assertIn(os.path.realpath(os.path.join(self.prefix, "include")), inc)
        libdirs = [os.path.realpath(f[2:]) for f in libs if f.startswith("-L")]
        self.assertIn(os.path.realpath(os.path.join(self.prefix, "lib")), libdirs)
        self.assertIn("-ldynostore", libs)
        static = run(["pkg-config", "--static", "--libs", "dynostore"], env=self.pc_env).stdout.split()
        for lib in ("-lcurl", "-lmosquitto", "-lcrypto", "-lcjson"):
            self.assertIn(lib, static)
        for server in ("-lmicrohttpd", "-lsqlite3", "-lisal"):
            self.assertNotIn(server, libs + static)

    def test_man_page(self):
        man = os.path.join(self.prefix, "share", "man", "man1", "dynostore.1")
        cp = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", man], capture_output=True,
                            text=True, timeout=60)
        self.assertEqual((cp.returncode, cp.stderr), (0, ""), "groff warnings")
        with open(man) as fh:
            text = fh.read()
        usage = run([os.path.join(self.prefix, "bin", "dynostore"), "help"]).stdout
        commands = set(re.findall(r"^  ([a-z]+)\b", usage, re.M))
        self.assertGreaterEqual(len(commands), 15, usage)
        for cmd in sorted(commands):
            self.assertRegex(text, r'(?m)^\.B[IR]? "?%s\b' % re.escape(cmd),
                             "dynostore(1) does not document `%s`" % cmd)

    def test_fabric_runs_from_the_install(self):
        procs = {p["name"]: (p.get("argv") or [""])[0] for p in self.fab.fabric["processes"]}
        # every process but the system's mosquitto (which loads the installed plugin)
        agents = {n: a for n, a in procs.items() if os.path.basename(a) != "mosquitto"}
        self.assertGreaterEqual(len(agents), 9, procs)  # auth, metadata, pubsub, gateway, 5 containers
        bindir = os.path.realpath(os.path.join(self.prefix, "bin"))
        for name, argv0 in agents.items():
            self.assertEqual(os.path.dirname(os.path.realpath(argv0)), bindir, "%s runs %s" % (name, argv0))
        # and the broker loads the installed plugin
        broker = [p.get("argv") or [] for p in self.fab.fabric["processes"]
                  if os.path.basename((p.get("argv") or [""])[0]) == "mosquitto"]
        self.assertEqual(len(broker), 1, procs)
        conf = broker[0][broker[0].index("-c") + 1]
        with open(conf) as fh:
            plugins = re.findall(r"(?m)^plugin\s+(\S+)", fh.read())
        self.assertEqual([os.path.realpath(p) for p in plugins],
                         [os.path.realpath(os.path.join(self.prefix, "lib", "dyno_auth.so"))])

    # -- the example against the fabric ---------------------------------------------------

    def run_example(self, exe, size, seed):
        src = os.path.join(self.fab.work, "reading-%d.bin" % seed)
        sha = write_random_file(src, size, seed=seed)
        b = self.fab.fabric["broker"]
        broker = "mqtt://%s:%d" % (b["host"], b["port"])
        env = dict(os.environ, DYNOSTORE_TOKEN=self.fab.token)
        env.pop("LD_LIBRARY_PATH", None)
        cp = subprocess.run([os.path.join(self.exdir, exe), self.fab.gateway, broker, CAT, src,
                             str(EVENT_TIMEOUT_S)], capture_output=True, text=True, env=env,
                            timeout=EVENT_TIMEOUT_S + 60)
        self.assertEqual(cp.returncode, 0, "%s: stdout %r stderr %r" % (exe, cp.stdout, cp.stderr))
        lines = cp.stdout.splitlines()
        self.assertEqual(len(lines), 3, cp.stdout)
        m = re.fullmatch(r"key ([0-9a-f]{32})", lines[0])
        self.assertIsNotNone(m, lines[0])
        key = m.group(1)
        self.assertEqual(lines[1], "get %d bytes identical" % size)
        self.assertTrue(lines[2].startswith("event "), lines[2])
        ev = json.loads(lines[2][len("event "):])
        self.assertEqual(ev.get("type"), "object.created", ev)
        self.assertEqual(ev.get("catalog"), CAT, ev)
        obj = ev.get("object") or {}
        self.assertEqual((obj.get("key"), obj.get("name"), obj.get("size"), obj.get("sha256")),
                         (key, os.path.basename(src), size, sha), ev)
        # The object is there for everyone else too: the CLI gets the same bytes.
        out = os.path.join(self.fab.work, "back-%d.bin" % seed)
        self.fab.cli("get", key, "-o", out)
        self.assertEqual(sha256_file(out), sha, "the CLI got other bytes")
        return key

    def test_example_shared(self):
        exe = os.path.join(self.exdir, "put_subscribe")
        resolved = run(["ldd", exe]).stdout
        m = re.search(r"libdynostore\.so\.1 => (\S+)", resolved)
        self.assertIsNotNone(m, resolved)
        self.assertEqual(os.path.realpath(m.group(1)),
                         os.path.realpath(os.path.join(self.prefix, "lib", "libdynostore.so.1")))
        self.run_example("put_subscribe", 300 * KiB + 7, seed=10)

    def test_example_static(self):
        exe = os.path.join(self.exdir, "put_subscribe_static")
        deps = needed(exe)
        self.assertFalse([d for d in deps if d.startswith("libdynostore")], deps)
        self.run_example("put_subscribe_static", 5 * KiB, seed=11)


if __name__ == "__main__":
    unittest.main()
