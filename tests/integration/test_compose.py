"""The Docker deployment of compose/ (issue 15).

File: the compose file parses and is valid for Debian's docker-compose 1.29 (its own `config`),
with no top-level `name:` or `version:` (so compose v2 takes it as it is); each service runs a
binary this build produces with flags that binary accepts; the data container service is written
once; every data container has a volume of its own; the image's runtime stage has no compilers
and runs as a non-root user.

Running (as root, as CI runs): scripts/compose-test.sh starts a private Docker daemon, makes the
debian:12 base image with debootstrap, builds the image, starts the stack on free ports of
127.0.0.1 and runs tests/integration/compose_stack.py against it (acceptance 1-3); then it must
leave nothing behind: not its daemon, the processes in its cgroups, its bridges, its mounts,
its cgroups or its temp folder. The same holds when it fails part way (DYNO_COMPOSE_FAIL_AFTER)."""
import glob
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import unittest

try:
    import yaml
except ImportError:  # Debian's python3-yaml, when the interpreter is not Debian's
    sys.path.append("/usr/lib/python3/dist-packages")
    import yaml

SRC = os.environ.get("DYNO_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("DYNO_BIN", os.path.join(SRC, "build", "bin"))
COMPOSE_FILE = os.path.join(SRC, "compose", "docker-compose.yml")
SCRIPT = os.path.join(SRC, "scripts", "compose-test.sh")
# One run of compose-test.sh at most (ctest's TIMEOUT for this file, tests/CMakeLists.txt, leaves
# room for two of them and their clean-up).
RUN_TIMEOUT = 900


def command_words(cmd):
    if isinstance(cmd, list) and cmd[:2] == ["sh", "-c"]:
        words = shlex.split(cmd[2].split("exec ", 1)[1])
    elif isinstance(cmd, list):
        words = cmd
    else:
        words = shlex.split(cmd)
    return words


class ComposeFile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(COMPOSE_FILE) as f:
            cls.text = f.read()
        cls.doc = yaml.safe_load(cls.text)

    def test_services(self):
        names = set(self.doc["services"])
        for want in ("auth", "broker", "metadata", "pubsub", "gateway"):
            self.assertIn(want, names)
        self.assertEqual(sorted(n for n in names if n.startswith("container")),
                         ["container%d" % i for i in range(1, 6)])
        for name, svc in self.doc["services"].items():
            for dep in svc.get("depends_on", {}):
                self.assertIn(dep, names, f"{name} depends on unknown {dep}")

    def test_valid_for_compose_1_29_and_v2(self):
        # 1.29 refuses a top-level name:, v2 warns that version: is obsolete; -p names the project
        self.assertNotIn("name", self.doc)
        self.assertNotIn("version", self.doc)
        dc = shutil.which("docker-compose")
        if not dc:
            self.skipTest("docker-compose is not installed (scripts/install-deps.sh installs it)")
        cp = subprocess.run([dc, "-p", "dynocheck", "-f", COMPOSE_FILE, "config", "-q"],
                            capture_output=True, text=True, timeout=60)
        self.assertEqual(cp.returncode, 0, cp.stderr)

    def test_container_service_written_once(self):
        # one command for the five data containers (an anchor), not five copies
        self.assertEqual(self.text.count("dyno-container"), 1, "the data container command is repeated")
        cmds = {repr(self.doc["services"]["container%d" % i]["command"]) for i in range(1, 6)}
        self.assertEqual(len(cmds), 1)
        ids = {self.doc["services"]["container%d" % i]["environment"]["DYNO_ID"] for i in range(1, 6)}
        self.assertEqual(ids, {"c1", "c2", "c3", "c4", "c5"})

    def test_own_volumes(self):
        # every service that keeps state has /data on a named volume no other service mounts
        data = {}
        for name, svc in self.doc["services"].items():
            for v in svc.get("volumes", []):
                src, dst = v.split(":")[:2]
                self.assertIn(src, self.doc["volumes"], f"{name}: {src} is not a named volume")
                if dst == "/data":
                    data.setdefault(src, []).append(name)
        for vol, users in data.items():
            self.assertEqual(len(users), 1, f"{vol} is the /data of {users}")
        for want in ["auth", "broker", "metadata", "pubsub"] + ["container%d" % i for i in range(1, 6)]:
            self.assertIn(want, [u for us in data.values() for u in us], f"{want} has no volume of its own")
        # the private signing key stays in auth's own volume, never in the shared one
        auth = command_words(self.doc["services"]["auth"]["command"])
        self.assertTrue(auth[auth.index("--private_key_file") + 1].startswith("/data/"))
        for name, svc in self.doc["services"].items():
            if name != "auth":
                self.assertIn("shared:/shared:ro", svc.get("volumes", []), f"{name} may write /shared")

    def test_flags_are_accepted(self):
        checked = 0
        for name, svc in self.doc["services"].items():
            words = command_words(svc["command"])
            prog = words[0]
            if prog == "mosquitto":
                continue
            path = os.path.join(BIN, prog)
            self.assertTrue(os.access(path, os.X_OK), f"{name}: {prog} is not built")
            help_text = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10).stdout
            known = set(re.findall(r"--([a-z0-9_-]+)", help_text))
            known |= {k.replace("_", "-") for k in known}
            for w in words[1:]:
                if w.startswith("--"):
                    self.assertIn(w[2:], known, f"{name}: {prog} does not take {w}")
                    checked += 1
        self.assertGreater(checked, 40)

    def test_broker_conf_loads_plugin(self):
        with open(os.path.join(SRC, "compose", "mosquitto.conf")) as f:
            conf = f.read()
        self.assertIn("allow_anonymous false", conf)
        self.assertRegex(conf, r"(?m)^plugin .*dyno_auth\.so$")
        self.assertNotRegex(conf, r"(?m)^user ", "the broker runs as the image's user, not root")

    def test_dockerfile_stages(self):
        with open(os.path.join(SRC, "compose", "Dockerfile")) as f:
            stages = re.split(r"(?m)^FROM ", f.read())[1:]
        self.assertEqual(len(stages), 2, "a build stage and a runtime stage")
        runtime = stages[1]
        self.assertNotRegex(runtime, r"\b(gcc|clang|cmake|make|build-essential|[a-z0-9.+-]+-dev)\b",
                            "compilers or -dev packages in the runtime stage")
        users = re.findall(r"(?m)^USER\s+(\S+)", runtime)
        self.assertTrue(users and users[-1] not in ("root", "0"), "the runtime stage runs as root")


def parse_run(out):
    """What compose-test.sh said it made: folder, daemon pid, bridges."""
    folder = re.search(r"^compose-test: folder (\S+)$", out, re.M)
    pid = re.search(r"^compose-test: dockerd pid (\d+) ", out, re.M)
    bridges = re.findall(r"^compose-test: bridge (br-[0-9a-f]+)$", out, re.M)
    return (folder.group(1) if folder else None, int(pid.group(1)) if pid else None, sorted(set(bridges)))


@unittest.skipUnless(os.geteuid() == 0, "starts a Docker daemon: needs root (CI runs as root)")
class ComposeRun(unittest.TestCase):
    def run_script(self, env_extra=None):
        env = dict(os.environ, DYNO_BIN=BIN)
        env.update(env_extra or {})
        t0 = time.monotonic()
        # Its own session, so that a run that hangs is stopped with SIGTERM to all of it: the
        # script's trap then removes what it made (a SIGKILL would leave its daemon behind).
        p = subprocess.Popen(["bash", SCRIPT], cwd=SRC, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
        try:
            out, _ = p.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGTERM)
            out, _ = p.communicate(timeout=300)
            out += "compose-test.sh: stopped after %d s\n" % RUN_TIMEOUT
        sys.stdout.write(out)
        sys.stdout.write("compose-test.sh: exit %d in %.0f s\n" % (p.returncode, time.monotonic() - t0))
        sys.stdout.flush()
        return subprocess.CompletedProcess(p.args, p.returncode, out)

    def assert_nothing_left(self, out):
        folder, pid, bridges = parse_run(out)
        self.assertIsNotNone(folder, "no folder line")
        self.assertIsNotNone(pid, "no daemon line")
        self.assertFalse(os.path.exists(folder), f"{folder} is left")
        self.assertFalse(os.path.exists("/proc/%d" % pid) and
                         "dockerd" in open("/proc/%d/cmdline" % pid, "rb").read().decode(errors="replace"),
                         "dockerd %d still runs" % pid)
        for p in glob.glob("/proc/[0-9]*/cmdline"):
            try:
                with open(p, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            self.assertNotIn(folder + "/", cmd, f"{p}: a process of the run is left: {cmd}")
        with open("/proc/self/mounts") as f:
            left = [ln.split()[1] for ln in f if ln.split()[1].startswith(folder + "/")]
        self.assertEqual(left, [], "mounts left")
        for br in bridges:
            cp = subprocess.run(["ip", "link", "show", br], capture_output=True)
            self.assertNotEqual(cp.returncode, 0, f"bridge {br} is left")
        tag = folder.rsplit(".", 1)[1]
        left = glob.glob("/sys/fs/cgroup/dyno-compose-%s" % tag) + glob.glob("/sys/fs/cgroup/*/dyno-compose-%s" % tag)
        self.assertEqual(left, [], "cgroups left")
        return bridges

    def test_failure_cleans_up(self):
        """Failing part way, with a container running on a bridge: everything is removed."""
        cp = self.run_script({"DYNO_COMPOSE_FAIL_AFTER": "base"})
        self.assertEqual(cp.returncode, 3, "not the deliberate failure")
        self.assertIn("failing on purpose with a container running", cp.stdout)
        bridges = self.assert_nothing_left(cp.stdout)
        self.assertEqual(len(bridges), 1, "the probe network's bridge was not seen")

    def test_stack(self):
        """Acceptance 1-4: built, started, checked through the published ports, removed."""
        cp = self.run_script()
        self.assertEqual(cp.returncode, 0, "compose-test.sh failed")
        self.assertRegex(cp.stdout, r"(?m)^Ran 7 tests in ")
        self.assertIn("compose-test: all checks passed", cp.stdout)
        self.assertGreaterEqual(len(self.assert_nothing_left(cp.stdout)), 1, "no compose network seen")


if __name__ == "__main__":
    unittest.main()
