"""In-tree PEP 517 backend: setuptools, with a stdlib fallback for building the wheel.

setuptools (before 70.1) needs the separate `wheel` package to build a wheel. Where it is
missing (a bare pyenv or venv Python without network access to fetch it), `pip install
--no-build-isolation ./client/python` would fail with "invalid command 'bdist_wheel'". This
backend hands everything to setuptools.build_meta when `wheel` is importable and otherwise
builds the (pure-Python, dependency-free) wheel itself with zipfile, from pyproject.toml.
"""

import base64
import hashlib
import os
import zipfile

from setuptools import build_meta as _st
from setuptools.build_meta import *  # noqa: F401,F403  (build_sdist and the rest)

try:
    import wheel  # noqa: F401
    HAVE_WHEEL = True
except ImportError:
    HAVE_WHEEL = False

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _project():
    try:
        import tomllib
    except ImportError:  # Python < 3.11 without `wheel`: nothing we can do
        raise RuntimeError("building this wheel needs the `wheel` package (or Python >= 3.11)")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        doc = tomllib.load(fh)
    return doc["project"], doc.get("tool", {}).get("setuptools", {}).get("packages", [])


def _dist_info_files():
    proj, _ = _project()
    name, version = proj["name"], proj["version"]
    meta = ["Metadata-Version: 2.1", "Name: %s" % name, "Version: %s" % version]
    if proj.get("description"):
        meta.append("Summary: %s" % proj["description"])
    if proj.get("requires-python"):
        meta.append("Requires-Python: %s" % proj["requires-python"])
    for c in proj.get("classifiers", []):
        meta.append("Classifier: %s" % c)
    for d in proj.get("dependencies", []):
        meta.append("Requires-Dist: %s" % d)
    body = ""
    readme = proj.get("readme")
    if isinstance(readme, str) and os.path.exists(os.path.join(ROOT, readme)):
        meta.append("Description-Content-Type: text/markdown")
        with open(os.path.join(ROOT, readme), encoding="utf-8") as fh:
            body = "\n" + fh.read()
    files = {
        "METADATA": "\n".join(meta) + "\n" + body,
        "WHEEL": "Wheel-Version: 1.0\nGenerator: dyno_build\nRoot-Is-Purelib: true\n"
                 "Tag: py3-none-any\n",
    }
    eps = proj.get("entry-points", {})
    if eps:
        files["entry_points.txt"] = "".join(
            "[%s]\n%s\n" % (group, "".join("%s = %s\n" % kv for kv in items.items()))
            for group, items in eps.items())
    return name, version, files


def _dist_info_name():
    name, version, _ = _dist_info_files()
    return "%s-%s.dist-info" % (name.replace("-", "_"), version)


def _prepare(metadata_directory):
    _, _, files = _dist_info_files()
    d = os.path.join(metadata_directory, _dist_info_name())
    os.makedirs(d, exist_ok=True)
    for fn, text in files.items():
        with open(os.path.join(d, fn), "w", encoding="utf-8") as fh:
            fh.write(text)
    return os.path.basename(d)


def _wheel(wheel_directory, editable):
    name, version, files = _dist_info_files()
    _, packages = _project()
    dist = "%s-%s" % (name.replace("-", "_"), version)
    whl = os.path.join(wheel_directory, "%s-py3-none-any.whl" % dist)
    entries = []
    if editable:
        entries.append(("__editable__.%s.pth" % dist, (ROOT + "\n").encode()))
    else:
        for pkg in packages:
            base = os.path.join(ROOT, *pkg.split("."))
            for fn in sorted(os.listdir(base)):
                if fn.endswith(".py"):
                    with open(os.path.join(base, fn), "rb") as fh:
                        entries.append(("%s/%s" % (pkg.replace(".", "/"), fn), fh.read()))
    di = "%s.dist-info" % dist
    for fn, text in files.items():
        entries.append(("%s/%s" % (di, fn), text.encode("utf-8")))
    record = []
    with zipfile.ZipFile(whl, "w", zipfile.ZIP_DEFLATED) as z:
        for arc, data in entries:
            z.writestr(arc, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append("%s,sha256=%s,%d" % (arc, digest.decode(), len(data)))
        record.append("%s/RECORD,," % di)
        z.writestr("%s/RECORD" % di, "\n".join(record) + "\n")
    return os.path.basename(whl)


if not HAVE_WHEEL:
    def get_requires_for_build_wheel(config_settings=None):  # noqa: F811
        return []

    def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):  # noqa
        return _prepare(metadata_directory)

    def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):  # noqa
        return _wheel(wheel_directory, editable=False)

    def get_requires_for_build_editable(config_settings=None):  # noqa: F811
        return []

    def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):  # noqa
        return _prepare(metadata_directory)

    def build_editable(wheel_directory, config_settings=None, metadata_directory=None):  # noqa
        return _wheel(wheel_directory, editable=True)
else:
    build_wheel = _st.build_wheel
