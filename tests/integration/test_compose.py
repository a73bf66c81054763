"""compose/docker-compose.yml is written, not run (no Docker engine here): check it parses, that
every service runs a binary this build produces, and that every flag it passes is one that
binary accepts (its --help lists its options)."""
import os
import re
import shlex
import subprocess
import sys
import unittest

try:
    import yaml
except ImportError:  # Debian's python3-yaml, when the interpreter is not Debian's
    sys.path.append("/usr/lib/python3/dist-packages")
    import yaml

SRC = os.environ.get("DYNO_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("DYNO_BIN", os.path.join(SRC, "build", "bin"))


def command_words(cmd):
    if isinstance(cmd, list) and cmd[:2] == ["sh", "-c"]:
        words = shlex.split(cmd[2].split("exec ", 1)[1])
    elif isinstance(cmd, list):
        words = cmd
    else:
        words = shlex.split(cmd)
    return words


class Compose(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(SRC, "compose", "docker-compose.yml")) as f:
            cls.doc = yaml.safe_load(f)

    def test_services(self):
        names = set(self.doc["services"])
        for want in ("auth", "broker", "metadata", "pubsub", "gateway"):
            self.assertIn(want, names)
        self.assertEqual(len([n for n in names if n.startswith("container")]), 5)
        for name, svc in self.doc["services"].items():
            for dep in svc.get("depends_on", {}):
                self.assertIn(dep, names, f"{name} depends on unknown {dep}")

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
        self.assertGreater(checked, 20)

    def test_broker_conf_loads_plugin(self):
        with open(os.path.join(SRC, "compose", "mosquitto.conf")) as f:
            conf = f.read()
        self.assertIn("allow_anonymous false", conf)
        self.assertRegex(conf, r"(?m)^plugin .*dyno_auth\.so$")


if __name__ == "__main__":
    unittest.main()
