"""Issue 10, acceptance 1: libdynostore is made for clients.

The shared library of the build tree ($DYNO_LIBDIR/libdynostore.so) must depend on none of
libmicrohttpd, libsqlite3 and libisal, and on nothing a client does not need: its DT_NEEDED
entries (readelf -d) are a subset of libcurl, libmosquitto, libcjson, libcrypto and the C
runtime. The checker is also run on the five agents, which between them must show all three
server libraries, so a checker that cannot see a dependency fails here rather than passing.

Also: the SONAME is libdynostore.so.1; the library exports exactly the functions declared in
include/dynostore/*.h (no lib/ helper leaks into a program's namespace); and every symbol
that the static archive libdynostore.a leaves undefined is defined by one of the libraries
its pkg-config file names, so linking the archive never needs a server library either.

No fabric is started: this reads files of the build tree only.
"""

import os
import re
import subprocess
import unittest

from fabric import bin_dir, src_dir

FORBIDDEN = ("libmicrohttpd", "libsqlite3", "libisal")
# What a client may need; libasan/libubsan appear only in a sanitizer build.
ALLOWED = ("libcurl", "libmosquitto", "libcjson", "libcrypto", "libc", "libm", "libpthread",
           "libdl", "ld-linux", "libasan", "libubsan")
SONAME = "libdynostore.so.1"
AGENTS = ("dyno-auth", "dyno-metadata", "dyno-pubsub", "dyno-container", "dyno-gateway")


def lib_dir():
    d = os.environ.get("DYNO_LIBDIR")
    if not d:
        d = os.path.join(os.path.dirname(bin_dir()), "lib")
    return d


def run(argv):
    cp = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if cp.returncode != 0:
        raise AssertionError("%s exited %d: %s" % (" ".join(argv), cp.returncode, cp.stderr))
    return cp.stdout


def needed(path):
    """The DT_NEEDED entries of an ELF file, as readelf -d shows them."""
    out = run(["readelf", "-d", "-W", path])
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def soname(path):
    m = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", run(["readelf", "-d", "-W", path]))
    return m.group(1) if m else None


def base(lib):
    """libcurl.so.4 -> libcurl; ld-linux-x86-64.so.2 -> ld-linux."""
    name = lib.split(".so")[0]
    return "ld-linux" if name.startswith("ld-linux") else name


def server_deps(path):
    """The forbidden libraries among path's DT_NEEDED."""
    return sorted(n for n in needed(path) if base(n) in FORBIDDEN)


def public_functions():
    """Function names declared in include/dynostore/*.h (comments stripped)."""
    names = set()
    inc = os.path.join(src_dir(), "include", "dynostore")
    for fn in sorted(os.listdir(inc)):
        if not fn.endswith(".h"):
            continue
        with open(os.path.join(inc, fn)) as fh:
            text = re.sub(r"/\*.*?\*/", " ", fh.read(), flags=re.S)
        names.update(re.findall(r"\b(dyno_[a-z0-9_]+)\s*\(", text))
    return names


def dynamic_exports(path):
    out = run(["nm", "-D", "--defined-only", path])
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in "TtWDdBbRriV":
            syms.add(parts[2].split("@")[0])
    return syms


class SharedLibraryDeps(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.so = os.path.join(lib_dir(), "libdynostore.so")
        if not os.path.exists(cls.so):
            raise AssertionError("%s is missing: the build makes no shared libdynostore" % cls.so)

    def test_no_server_library(self):
        self.assertEqual(server_deps(self.so), [],
                         "libdynostore.so depends on server libraries: %s" % needed(self.so))

    def test_only_client_libraries(self):
        deps = needed(self.so)
        for want in ("libcurl", "libmosquitto", "libcjson", "libcrypto"):
            self.assertIn(want, [base(n) for n in deps], "DT_NEEDED %s" % deps)
        extra = [n for n in deps if base(n) not in ALLOWED]
        self.assertEqual(extra, [], "libdynostore.so needs more than a client does: %s" % deps)

    def test_checker_sees_server_libraries(self):
        # The agents link the server core (the gateway and the container MHD and ISA-L, the
        # services SQLite): the same check must find each of the three in them.
        found, seen = set(), {}
        for agent in AGENTS:
            path = os.path.join(bin_dir(), agent)
            seen[agent] = needed(path)
            found.update(base(n) for n in server_deps(path))
        self.assertEqual(sorted(found), sorted(FORBIDDEN), "DT_NEEDED of the agents: %s" % seen)

    def test_soname_and_links(self):
        self.assertEqual(soname(self.so), SONAME)
        self.assertTrue(os.path.basename(os.path.realpath(self.so)).startswith(SONAME + "."),
                        "libdynostore.so -> %s" % os.path.realpath(self.so))
        self.assertTrue(os.path.exists(os.path.join(lib_dir(), SONAME)), "no %s link" % SONAME)

    def test_exports_exactly_the_public_api(self):
        api = public_functions()
        self.assertIn("dyno_client_new", api)
        self.assertIn("dyno_strerror", api)
        exported = {s for s in dynamic_exports(self.so) if s.startswith("dyno")}
        self.assertEqual(sorted(api - exported), [], "declared in include/dynostore but not exported")
        self.assertEqual(sorted(exported - api), [], "exported but not public API")


class StaticArchiveDeps(unittest.TestCase):

    def test_archive_needs_only_client_libraries(self):
        ar = os.path.join(lib_dir(), "libdynostore.a")
        self.assertTrue(os.path.exists(ar), "%s is missing" % ar)
        defined, undefined = set(), set()
        for line in run(["nm", "-g", ar]).splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "U":
                undefined.add(parts[1])
            elif len(parts) == 3 and parts[1] != "U":
                defined.add(parts[2])
        missing = undefined - defined
        # Every symbol the archive leaves open must come from the libraries the shared library
        # (and dynostore.pc) names: resolve them against those libraries' dynamic symbols.
        provided = set()
        for path in resolved_needed(os.path.join(lib_dir(), "libdynostore.so")):
            provided |= dynamic_exports(path)
        unresolved = sorted(s for s in missing if s not in provided and not s.startswith("__"))
        self.assertEqual(unresolved, [], "libdynostore.a needs symbols no client library defines")


def resolved_needed(path):
    """Paths of path's DT_NEEDED libraries, as the dynamic loader finds them (ldd)."""
    paths = []
    for line in run(["ldd", path]).splitlines():
        m = re.match(r"\s*(\S+) => (/\S+)", line)
        if m:
            paths.append(m.group(2))
    return paths


if __name__ == "__main__":
    unittest.main()
