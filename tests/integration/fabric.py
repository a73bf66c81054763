"""Test harness: runs a whole DynoStore fabric with `dynostore up` for integration tests.

Python 3 standard library only. Everything binds 127.0.0.1 with ephemeral ports and lives in
a temp folder that is removed on close() (set DYNO_KEEP=1 to keep it for a post-mortem).
Only processes this harness started (the `up` supervisor, the pids recorded in fabric.json,
and processes it re-spawned itself) are ever signalled.

    f = Fabric(containers=5)          # starts and waits until ready
    f.cli("put", path, "--catalog", "admin/x", "--json")
    f.http("GET", "/v1/containers")
    f.kill("container-c1"); f.restart("container-c1", ["--capacity", "200M"])
    f.close()
"""

import collections
import contextlib
import glob
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
MiB = 1024 * 1024
KiB = 1024
GiB = 1024 * MiB

# Generous waits: these are liveness bounds, not performance assertions.
READY_TIMEOUT = float(os.environ.get("DYNO_READY_TIMEOUT", "90"))
STOP_TIMEOUT = 60.0
HTTP_TIMEOUT = 600.0

_DEFAULT = object()


def bin_dir():
    """The build's bin/ folder: $DYNO_BIN (set by ctest), else ../../build/bin."""
    d = os.environ.get("DYNO_BIN")
    if not d:
        d = os.path.normpath(os.path.join(HERE, "..", "..", "build", "bin"))
    return d


def src_dir():
    return os.environ.get("DYNO_SRC") or os.path.normpath(os.path.join(HERE, "..", ".."))


def require_binaries(*names):
    """A missing binary is a broken build (not a reason to skip): fail loudly."""
    d = bin_dir()
    missing = [n for n in names if not os.access(os.path.join(d, n), os.X_OK)]
    if missing:
        raise RuntimeError("missing binaries in %s: %s (set DYNO_BIN to the build's bin/)"
                           % (d, ", ".join(missing)))


# ---------------------------------------------------------------------------------------
# processes


def pid_alive(pid):
    """True while pid exists and is not a zombie."""
    if not pid or pid <= 0:
        return False
    return pid_state(pid) not in (None, "Z", "X")


def pid_state(pid):
    """The one-letter state of pid from /proc (R, S, D, T stopped, Z...), or None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            stat = fh.read()
        return stat[stat.rindex(")") + 2]
    except (OSError, ValueError, IndexError):
        return None


def pid_cmd0(pid):
    """Basename of argv[0] of pid, or None."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            argv = fh.read().split(b"\0")
        return os.path.basename(argv[0].decode(errors="replace")) if argv and argv[0] else None
    except OSError:
        return None


def wait_pid_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def proc_status(pid, field):
    """A field of /proc/<pid>/status in bytes (VmHWM, VmRSS), or None."""
    try:
        with open("/proc/%d/status" % pid) as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    parts = line.split()
                    return int(parts[1]) * 1024  # kB
    except OSError:
        return None
    return None


class RssSampler:
    """Samples VmRSS and VmHWM of a pid in a thread; .peak is the largest seen (bytes)."""

    def __init__(self, pid, interval=0.05):
        self.pid = pid
        self.interval = interval
        self.peak_rss = 0
        self.hwm = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def _sample(self):
        rss = proc_status(self.pid, "VmRSS")
        hwm = proc_status(self.pid, "VmHWM")
        if rss:
            self.peak_rss = max(self.peak_rss, rss)
        if hwm:
            self.hwm = max(self.hwm, hwm)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self._sample()
        return False

    @property
    def peak(self):
        return max(self.peak_rss, self.hwm)


# ---------------------------------------------------------------------------------------
# files


def write_random_file(path, size, seed=0):
    """Writes size pseudo-random bytes to path and returns their SHA-256 (hex).

    Small files come straight from a seeded PRNG. Large ones repeat one random 1 MiB block,
    rotated by a per-MiB offset and stamped with the MiB counter, so that no two MiB (and no
    two stripes) are equal while generating 1 GiB takes about a second.
    """
    rnd = random.Random(seed)
    h = hashlib.sha256()
    with open(path, "wb") as fh:
        if size <= 16 * MiB:
            data = rnd.randbytes(size)
            fh.write(data)
            h.update(data)
        else:
            base = rnd.randbytes(MiB)
            left, i = size, 0
            while left > 0:
                off = (i * 7919 + seed * 104729) % MiB
                blk = struct.pack("<QQ", i, seed) + base[off + 16:] + base[:off]
                blk = blk[:MiB]
                if left < MiB:
                    blk = blk[:left]
                fh.write(blk)
                h.update(blk)
                left -= len(blk)
                i += 1
    return h.hexdigest()


def random_bytes(size, seed=0):
    return random.Random(seed).randbytes(size)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(4 * MiB)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


def flip_byte(path, offset, mask=0x5A):
    """XORs the byte at offset of the file with mask, durably (a bit rot on disk)."""
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        if len(b) != 1:
            raise ValueError("%s has no byte at offset %d" % (path, offset))
        fh.seek(offset)
        fh.write(bytes([b[0] ^ mask]))
        fh.flush()
        os.fsync(fh.fileno())


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------------------
# HTTP

Response = collections.namedtuple("Response", "status reason headers body")


def _json_or_none(body):
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None


class Resp(Response):
    def json(self):
        return _json_or_none(self.body)

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)


def quote_seg(s):
    return urllib.parse.quote(s, safe="")


# ---------------------------------------------------------------------------------------
# the fabric


class FabricError(RuntimeError):
    pass


class Fabric:
    """A running fabric from `dynostore up`, in its own temp folder.

    containers:     how many data containers (`--containers N`)
    extra_up_args:  more arguments for `dynostore up`
    start:          start now (default) or leave it to start()
    """

    def __init__(self, containers=5, extra_up_args=(), start=True, name="fabric"):
        require_binaries("dynostore")
        self.bin = bin_dir()
        self.containers = containers
        self.extra_up_args = list(extra_up_args)
        self.tmp = tempfile.mkdtemp(prefix="dyno-it-%s-" % name)
        self.data = os.path.join(self.tmp, "data")
        self.home = os.path.join(self.tmp, "home")
        self.work = os.path.join(self.tmp, "work")  # scratch files of the tests
        for d in (self.home, self.work):
            os.makedirs(d, exist_ok=True)
        self.up = None
        self.up_log_path = os.path.join(self.tmp, "up.log")
        self._up_log = None
        self.fabric = None
        self.gateway = None
        self.s3 = None
        self.token = None
        self.admin_token_file = None
        # name -> {"pid":..., "popen": Popen or None, "argv": [...]} for processes re-spawned here
        self._spawned = {}
        # every pid ever recorded (fabric.json or own spawns): candidates for the final sweep
        self._known = {}
        self._lock = threading.Lock()
        # pid -> name of every process frozen by pause() and not yet resumed
        self._paused = {}
        # optional hook (schemacheck.py): record every catalog event and validate it at stop()
        self.record_events = os.environ.get("DYNO_RECORD_EVENTS", "1") != "0"
        self.event_recorder = None
        self.event_problems = []
        if start:
            try:
                self.start()
            except BaseException:
                self.dump_logs("fabric failed to start")
                self.close()
                raise

    # -- lifecycle ------------------------------------------------------------------

    def env(self, extra=None):
        e = dict(os.environ)
        for k in ("DYNOSTORE_GATEWAY", "DYNOSTORE_TOKEN"):
            e.pop(k, None)
        e["HOME"] = self.home
        if extra:
            e.update(extra)
        return e

    def start(self, timeout=READY_TIMEOUT):
        """Starts `dynostore up` (again, on the same data folder) and waits until it is ready."""
        if self.up is not None and self.up.poll() is None:
            raise FabricError("already running")
        # a fabric.json of a previous run stays (up reuses its ports); it names another pid
        self._spawned = {}
        self.fabric = None
        argv = [os.path.join(self.bin, "dynostore"), "up", "--data", self.data,
                "--containers", str(self.containers), "--port", "0"] + self.extra_up_args
        if self._up_log:
            self._up_log.close()
        self._up_log = open(self.up_log_path, "ab")
        self._up_log.write(("\n=== %s\n" % " ".join(argv)).encode())
        self._up_log.flush()
        self.up = subprocess.Popen(argv, cwd=self.tmp, env=self.env(), stdin=subprocess.DEVNULL,
                                   stdout=self._up_log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.up.poll() is not None:
                raise FabricError("dynostore up exited with %s before it was ready"
                                  % self.up.returncode)
            doc = self._read_fabric_json()
            if doc and doc.get("ready") and doc.get("pid") == self.up.pid:
                self.fabric = doc
                break
            if time.monotonic() > deadline:
                raise FabricError("fabric.json not ready after %.0f s" % timeout)
            time.sleep(0.1)
        self._remember(doc)
        self.gateway = doc["gateway"].rstrip("/")
        # the gateway's S3 endpoint (docs/s3.md), which `dynostore up` turns on
        self.s3 = (doc.get("s3") or "").rstrip("/") or None
        self.admin_token_file = doc.get("admin_token_file") or os.path.join(
            self.data, "secrets", "admin.token")
        with open(self.admin_token_file) as fh:
            self.token = fh.read().strip()
        self.wait_healthz(deadline - time.monotonic())
        if self.record_events and self.event_recorder is None:
            import schemacheck
            self.event_recorder = schemacheck.EventRecorder(self).start()
        return self

    def _read_fabric_json(self):
        try:
            with open(os.path.join(self.data, "fabric.json")) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return None

    def _remember(self, doc):
        for p in doc.get("processes", []):
            if p.get("pid"):
                self._known[p["pid"]] = list(p.get("argv") or [])

    def refresh(self):
        """Re-reads fabric.json (up may rewrite it)."""
        doc = self._read_fabric_json()
        if doc:
            self.fabric = doc
            self._remember(doc)
        return self.fabric

    def wait_healthz(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + max(timeout, 5)
        last = None
        while time.monotonic() < deadline:
            try:
                r = self.http("GET", "/healthz", token=None, timeout=5)
                # "revocations": false until the gateway applied the revocation document (it
                # answers user tokens 503 until then: it fails closed)
                if r.status == 200 and (r.json() or {}).get("revocations", True):
                    return r
                last = "status %d %r" % (r.status, r.body[:200])
            except OSError as e:
                last = repr(e)
            time.sleep(0.1)
        raise FabricError("gateway %s not healthy: %s" % (self.gateway, last))

    def interrupt_up(self, sig=signal.SIGINT, timeout=STOP_TIMEOUT):
        """Sends sig to `dynostore up` (as Ctrl-C would) and waits; returns its exit code or
        None if it did not exit in time."""
        if self.up is None or self.up.poll() is not None:
            return self.up.returncode if self.up else None
        try:
            os.kill(self.up.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return self.up.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def recorded_pids(self):
        """{name: pid} of every process of the current fabric.json, with own re-spawns."""
        out = {}
        for p in (self.fabric or {}).get("processes", []):
            out[p["name"]] = p.get("pid")
        for name, s in self._spawned.items():
            out[name] = s["pid"]
        return out

    def stop(self):
        """SIGINT to `up`, wait, then SIGKILL whatever recorded process is left."""
        self.resume_all()  # a frozen child would hold `up` until its stop grace runs out
        if self.event_recorder is not None:
            self.event_problems += self.event_recorder.stop()
            self.event_recorder = None
        rc = self.interrupt_up()
        if rc is None and self.up is not None:
            try:
                os.kill(self.up.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.up.wait()
        for name, s in list(self._spawned.items()):
            if s["popen"].poll() is None:
                s["popen"].send_signal(signal.SIGTERM)
                try:
                    s["popen"].wait(10)
                except subprocess.TimeoutExpired:
                    s["popen"].kill()
                    s["popen"].wait()
        for pid, argv in list(self._known.items()):
            if pid_alive(pid) and argv and pid_cmd0(pid) == os.path.basename(argv[0]):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                wait_pid_gone(pid, 10)
        if self._up_log:
            self._up_log.close()
            self._up_log = None
        return rc

    def close(self):
        try:
            self.stop()
        finally:
            if os.environ.get("DYNO_KEEP"):
                sys.stderr.write("DYNO_KEEP: fabric kept in %s\n" % self.tmp)
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)
        if self.event_problems:
            problems, self.event_problems = self.event_problems, []
            raise AssertionError("%d invalid catalog event(s) (schemas/event-<type>.schema.json):\n  %s"
                                 % (len(problems), "\n  ".join(problems[:20])))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            self.dump_logs("exception: %r" % (exc[1],))
        self.close()
        return False

    # -- processes -------------------------------------------------------------------

    def proc(self, name):
        """The fabric.json entry of a process (pid updated after restart()); KeyError if none."""
        for p in (self.fabric or {}).get("processes", []):
            if p["name"] == name:
                q = dict(p)
                if name in self._spawned:
                    q["pid"] = self._spawned[name]["pid"]
                    q["argv"] = self._spawned[name]["argv"]
                return q
        raise KeyError("no process %r in fabric.json (have: %s)"
                       % (name, ", ".join(self.names())))

    def names(self, kind=None):
        return [p["name"] for p in (self.fabric or {}).get("processes", [])
                if kind is None or p.get("kind") == kind]

    def container_names(self):
        return sorted(self.names("container"))

    def container_ids(self):
        return sorted(p.get("id") for p in (self.fabric or {}).get("processes", [])
                      if p.get("kind") == "container")

    def pid(self, name):
        return self.proc(name)["pid"]

    def alive(self, name):
        return pid_alive(self.pid(name))

    def kill(self, name, sig=signal.SIGKILL, timeout=30):
        """Signals a process by its recorded pid and waits until it is gone."""
        p = self.proc(name)
        pid = p["pid"]
        if not pid_alive(pid):
            return
        os.kill(pid, sig)
        s = self._spawned.get(name)
        if s is not None:
            try:
                s["popen"].wait(timeout)
            except subprocess.TimeoutExpired:
                raise FabricError("%s (pid %d) did not exit after signal %d" % (name, pid, sig))
            return
        if not wait_pid_gone(pid, timeout):
            raise FabricError("%s (pid %d) did not exit after signal %d" % (name, pid, sig))

    def restart(self, name, extra_args=(), wait=True, argv=None):
        """Re-spawns the recorded argv of a (dead) process plus extra_args, logging to the same
        log file (argv: another command line instead, kept for later restarts). The new pid
        replaces the old in proc(); stop() kills it too."""
        p = self.proc(name)
        if pid_alive(p["pid"]):
            raise FabricError("%s is still running (pid %d): kill it first" % (name, p["pid"]))
        if argv is not None:
            base = list(argv)
        else:
            base = self._spawned[name]["base_argv"] if name in self._spawned else list(p["argv"])
        argv = base + list(extra_args)
        log_path = p.get("log") or os.path.join(self.data, "logs", name + ".log")
        log = open(log_path, "ab")
        log.write(("\n=== test harness restart: %s\n" % " ".join(argv)).encode())
        log.flush()
        pop = subprocess.Popen(argv, cwd=self.tmp, env=self.env(), stdin=subprocess.DEVNULL,
                               stdout=log, stderr=log, start_new_session=True)
        log.close()
        self._spawned[name] = {"pid": pop.pid, "popen": pop, "argv": argv, "base_argv": base}
        self._known[pop.pid] = argv
        if wait:
            time.sleep(0.2)
            if pop.poll() is not None:
                raise FabricError("%s exited with %d right after restart" % (name, pop.returncode))
            if p.get("kind") == "gateway":
                self.wait_healthz()
        return pop.pid

    def start_gateway(self, gid, timeout=READY_TIMEOUT, extra=None):
        """Starts one more dyno-gateway on this fabric (same broker, keys and service token,
        its own id and ephemeral port, no repair workers; extra: more config keys, e.g. its
        "site") and returns its URL once healthy. It is recorded as "gateway-<gid>" among the
        own spawns, so stop() ends it by pid."""
        with open(os.path.join(self.data, "gateway", "config.json")) as fh:
            cfg = json.load(fh)
        d = os.path.join(self.tmp, "gateway-" + gid)
        os.makedirs(d, exist_ok=True)
        cfg.update({"id": gid, "port": 0, "port_file": os.path.join(d, "port"), "repair_workers": 0})
        cfg.update(extra or {})
        conf = os.path.join(d, "config.json")
        with open(conf, "w") as fh:
            json.dump(cfg, fh)
        name = "gateway-" + gid
        argv = [os.path.join(self.bin, "dyno-gateway"), "--config", conf]
        log = open(os.path.join(self.data, "logs", name + ".log"), "ab")
        pop = subprocess.Popen(argv, cwd=self.tmp, env=self.env(), stdin=subprocess.DEVNULL,
                               stdout=log, stderr=log, start_new_session=True)
        log.close()
        self._spawned[name] = {"pid": pop.pid, "popen": pop, "argv": argv, "base_argv": argv}
        self._known[pop.pid] = argv
        deadline = time.time() + timeout
        url = None
        while time.time() < deadline:
            if pop.poll() is not None:
                raise FabricError("%s exited with %d at start" % (name, pop.returncode))
            try:
                with open(cfg["port_file"]) as fh:
                    port = int(fh.read().strip() or 0)
            except (OSError, ValueError):
                port = 0
            if port:
                url = "http://127.0.0.1:%d" % port
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    c.request("GET", "/healthz")
                    r = c.getresponse()
                    body = _json_or_none(r.read()) or {}
                    c.close()
                    if r.status == 200 and body.get("revocations", True):
                        return url
                except (OSError, http.client.HTTPException):
                    pass
            time.sleep(0.1)
        raise FabricError("%s not healthy at %s" % (name, url))

    # -- a broker per site (issue 13, `up --site-brokers`) ------------------------------

    def site_broker(self, site):
        """fabric.json's entry of a site's broker: {"host", "port", "tls", "bridge_out", "bridge_in"}
        (the client ids of its bridge connections: readings out, events and feeds in)."""
        return self.fabric["site_brokers"][site]

    def site_broker_conf(self, site):
        return os.path.join(self.data, "sites", site, "broker", "mosquitto.conf")

    def start_site_broker(self, site, core_port=None, conf_lines=(), timeout=READY_TIMEOUT):
        """Restarts site's broker ("mosquitto-<site>") from the config `up` wrote, its bridge
        going to 127.0.0.1:core_port (e.g. a netproxy link to the core broker) when given, and
        conf_lines ("key value") replacing the lines of the same keys or added. The running
        one is stopped first with SIGTERM, so it saves its persistence. Returns the new pid
        once the site's port accepts connections."""
        name = "mosquitto-" + site
        with open(self.site_broker_conf(site)) as fh:
            lines = fh.read().splitlines()
        repl = {}
        if core_port is not None:
            repl["address"] = "address 127.0.0.1:%d" % core_port
        for ln in conf_lines:
            repl[ln.split()[0]] = ln
        out, done = [], set()
        for ln in lines:
            key = ln.split()[0] if ln.strip() and not ln.startswith("#") else None
            if key in repl:
                out.append(repl[key])
                done.add(key)
            else:
                out.append(ln)
        # global options must come before the bridge's "connection" section
        extra = [v for k, v in repl.items() if k not in done]
        at = next((i for i, ln in enumerate(out) if ln.startswith("connection ")), len(out))
        out[at:at] = extra
        conf = os.path.join(self.tmp, name + ".conf")
        with open(conf, "w") as fh:
            fh.write("\n".join(out) + "\n")
        os.chmod(conf, 0o600)
        self.kill(name, sig=signal.SIGTERM)
        argv = list(self.proc(name)["argv"])
        argv[-1] = conf
        pid = self.restart(name, argv=argv)
        port = self.site_broker(site)["port"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return pid
            except OSError:
                time.sleep(0.1)
        raise FabricError("%s does not listen on %d" % (name, port))

    # -- pauses (issue 9, "pauses beside kills") ---------------------------------------
    # A frozen process keeps its sockets, locks, leases and broker session but runs nothing:
    # the fault of a stalled VM, a long GC or a hung disk, which a kill never shows (a dead
    # peer refuses at once; a frozen one accepts and then says nothing). SIGSTOP cannot be
    # caught, so the process cannot tidy up first. Every pause is undone: paused() resumes
    # in a finally block and stop() resumes whatever is left. Only recorded pids are touched.

    def pause(self, name, timeout=10):
        """SIGSTOPs the recorded pid of name and waits until the kernel shows it stopped.
        Returns the pid; resume(pid) (or resume_all()) continues it."""
        pid = self.pid(name)
        if not pid_alive(pid):
            raise FabricError("%s (pid %s) is not running: nothing to pause" % (name, pid))
        with self._lock:
            self._paused[pid] = name
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:  # it died meanwhile (killed by another thread of the test)
            with self._lock:
                self._paused.pop(pid, None)
            raise FabricError("%s (pid %d) exited before it could be paused" % (name, pid))
        deadline = time.monotonic() + timeout
        while pid_state(pid) not in ("T", "t", None) and time.monotonic() < deadline:
            time.sleep(0.01)
        return pid

    def resume(self, pid):
        """SIGCONTs a pid that pause() froze (no-op for any other pid, or if it is gone).
        Returns True when a signal was sent."""
        with self._lock:
            name = self._paused.pop(pid, None)
            argv = self._known.get(pid)
        if name is None or not pid_alive(pid):
            return False
        # a frozen process cannot exit by itself, but a kill() of it may have let its pid be
        # reused: continue only the program that was frozen
        if argv and pid_cmd0(pid) != os.path.basename(argv[0]):
            return False
        os.kill(pid, signal.SIGCONT)
        return True

    def resume_all(self):
        """Resumes every process still frozen by pause(); returns their names."""
        with self._lock:
            pids = list(self._paused.items())
        return [name for pid, name in pids if self.resume(pid)]

    @contextlib.contextmanager
    def paused(self, name):
        """with f.paused("metadata"): ... -- name is frozen inside the block, resumed after it
        whatever happens in it."""
        pid = self.pause(name)
        try:
            yield pid
        finally:
            self.resume(pid)

    # -- end of pauses -----------------------------------------------------------------

    # -- logs --------------------------------------------------------------------------

    def log_path(self, name):
        try:
            p = self.proc(name).get("log")
        except KeyError:
            p = None
        return p or os.path.join(self.data, "logs", name + ".log")

    def log_text(self, name):
        try:
            with open(self.log_path(name), "rb") as fh:
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def all_logs_text(self):
        out = []
        d = os.path.join(self.data, "logs")
        if os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                try:
                    with open(os.path.join(d, f), "rb") as fh:
                        out.append((f, fh.read().decode("utf-8", "replace")))
                except OSError:
                    pass
        return out

    def dump_logs(self, why="", lines=40):
        w = sys.stderr.write
        w("\n===== fabric logs (%s) in %s =====\n" % (why, self.tmp))
        files = [("up.log", self.up_log_path)]
        d = os.path.join(self.data, "logs")
        if os.path.isdir(d):
            files += [(f, os.path.join(d, f)) for f in sorted(os.listdir(d))]
        for label, path in files:
            try:
                with open(path, "rb") as fh:
                    fh.seek(0, os.SEEK_END)
                    n = fh.tell()
                    fh.seek(max(0, n - 64 * 1024))
                    tail = fh.read().decode("utf-8", "replace").splitlines()[-lines:]
            except OSError:
                continue
            w("----- %s (last %d lines)\n" % (label, len(tail)))
            for line in tail:
                w("  " + line + "\n")
        w("===== end of logs =====\n")

    # -- CLI ------------------------------------------------------------------------------

    def cli(self, *args, check=True, settings=True, input=None, timeout=900, env=None):
        """Runs `dynostore [--gateway URL --token-file F] args...`; returns CompletedProcess
        (stdout/stderr as text). check: raise with both outputs when the exit code is not 0.
        settings=False runs it bare, so that it must find the fabric by itself."""
        argv = [os.path.join(self.bin, "dynostore")]
        if settings:
            argv += ["--gateway", self.gateway, "--token-file", self.admin_token_file]
        argv += [str(a) for a in args]
        cp = subprocess.run(argv, cwd=self.work, env=self.env(env), input=input,
                            capture_output=True, timeout=timeout,
                            text=not isinstance(input, bytes))
        if check and cp.returncode != 0:
            raise AssertionError("%s exited %d\nstdout: %s\nstderr: %s"
                                 % (" ".join(argv[:1] + [str(a) for a in args]), cp.returncode,
                                    cp.stdout, cp.stderr))
        return cp

    def cli_json(self, *args, **kw):
        cp = self.cli("--json", *args, **kw)
        try:
            return json.loads(cp.stdout)
        except ValueError:
            raise AssertionError("not JSON from dynostore %s: %r" % (" ".join(args), cp.stdout))

    def put_file(self, path, catalog, name=None, resilience=None):
        """`dynostore --json put` of one file; returns the {key,name,size,sha256,k,m} dict."""
        args = ["put", path, "--catalog", catalog]
        if name is not None:
            args += ["--name", name]
        if resilience is not None:
            args += ["--resilience", resilience]
        doc = self.cli_json(*args)
        if isinstance(doc, list):
            assert len(doc) == 1, doc
            doc = doc[0]
        if "key" not in doc and "objects" in doc:
            doc = doc["objects"][0]
        return doc

    # -- HTTP -------------------------------------------------------------------------------

    @property
    def host_port(self):
        u = urllib.parse.urlsplit(self.gateway)
        return u.hostname, u.port

    def conn(self, timeout=HTTP_TIMEOUT):
        h, p = self.host_port
        return http.client.HTTPConnection(h, p, timeout=timeout)

    def http(self, method, path, body=None, headers=None, token=_DEFAULT, timeout=HTTP_TIMEOUT,
             out=None):
        """One request to the gateway with http.client; token: admin by default, None for none.
        body: bytes, str or a file object (then give Content-Length in headers). out: a file
        object that receives the response body instead of .body. Returns a Resp whose
        headers are a dict with lowercase names."""
        hdrs = dict(headers or {})
        if token is _DEFAULT:
            token = self.token
        if token is not None:
            hdrs["Authorization"] = "Bearer " + token
        if isinstance(body, str):
            body = body.encode()
        if isinstance(body, (bytes, bytearray)) and "Content-Length" not in hdrs:
            hdrs["Content-Length"] = str(len(body))
        if body is None and method in ("POST", "PUT") and "Content-Length" not in hdrs:
            hdrs["Content-Length"] = "0"
        c = self.conn(timeout)
        try:
            try:
                c.request(method, path, body=body, headers=hdrs)
            except (BrokenPipeError, ConnectionResetError) as e:
                # the server answered (and closed) before taking the whole body: an early
                # error reply is still in the socket; read it if it is there
                try:
                    r = c.getresponse()
                except (OSError, http.client.HTTPException, AttributeError):
                    # AttributeError: http.client already dropped the socket (sock is None)
                    raise e
                data = r.read()
                return Resp(r.status, r.reason, {k.lower(): v for k, v in r.getheaders()},
                            data)
            r = c.getresponse()
            if out is not None:
                while True:
                    b = r.read(1 * MiB)
                    if not b:
                        break
                    out.write(b)
                data = b""
            else:
                data = r.read()
            return Resp(r.status, r.reason, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            c.close()

    @staticmethod
    def cat_path(catalog, sub=None, principal=None):
        """The REST path of a catalog, or of its sub-resource sub ("objects", "shares",
        "subscription", after the "~" segment: docs/protocol.md §9; principal: a share's
        principal, an org's '/' escaped)."""
        p = "/v1/catalogs/" + catalog
        if sub:
            p += "/~/" + sub
        if principal is not None:
            p += "/" + quote_seg(principal)
        return p

    def create_catalog(self, catalog, body=None, token=_DEFAULT):
        r = self.http("PUT", "/v1/catalogs/" + catalog, body=json.dumps(body or {}),
                      headers={"Content-Type": "application/json"}, token=token)
        if r.status not in (200, 201):
            raise AssertionError("create catalog %s: %d %r" % (catalog, r.status, r.body))
        return r

    def put_bytes(self, catalog, data, name=None, headers=None, token=_DEFAULT):
        """POST of an object; returns the Resp (201 with {key,...} on success)."""
        q = "" if name is None else "?name=" + urllib.parse.quote(name, safe="")
        return self.http("POST", "/v1/catalogs/%s/~/objects%s" % (catalog, q), body=data,
                         headers=headers, token=token)

    def get_object(self, key, headers=None, token=_DEFAULT):
        return self.http("GET", "/v1/objects/" + key, headers=headers, token=token)

    def list_catalog(self, catalog, token=_DEFAULT):
        """Every object of a catalog, following pagination."""
        objs, after = [], None
        for _ in range(10000):
            q = "?limit=1000" + ("" if after is None else "&after=" + quote_seg(after))
            r = self.http("GET", "/v1/catalogs/%s/~/objects%s" % (catalog, q), token=token)
            if r.status != 200:
                raise AssertionError("list %s: %d %r" % (catalog, r.status, r.body))
            doc = r.json()
            page = doc.get("objects", []) if isinstance(doc, dict) else doc
            objs += page
            after = doc.get("next") if isinstance(doc, dict) else None
            if not after or not page:
                break
        return objs

    def containers_info(self):
        r = self.http("GET", "/v1/containers")
        if r.status != 200:
            raise AssertionError("GET /v1/containers: %d %r" % (r.status, r.body))
        doc = r.json()
        return doc.get("containers", []) if isinstance(doc, dict) else doc

    def wait_containers(self, pred, timeout=90, what="containers condition"):
        """Polls GET /v1/containers until pred(list) is true; returns the list."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.containers_info()
                if pred(last):
                    return last
            except (OSError, AssertionError) as e:
                last = repr(e)
            time.sleep(0.25)
        raise AssertionError("timed out waiting for %s; last: %s" % (what, last))

    def wait_containers_online(self, n, timeout=90, exact=False):
        """Waits until at least (or exactly) n containers are online."""
        def ok(cs):
            k = sum(1 for c in cs if c.get("state") == "online")
            return k == n if exact else k >= n
        return self.wait_containers(ok, timeout, "%s%d containers online"
                                    % ("exactly " if exact else "", n))

    def metrics(self, url=None):
        """Parses a Prometheus text page into {name: value} (labels kept in the name)."""
        if url is None:
            r = self.http("GET", "/metrics", token=None)
            text = r.body.decode("utf-8", "replace")
            if r.status == 401:  # maybe /metrics wants a token
                text = self.http("GET", "/metrics").body.decode("utf-8", "replace")
        else:
            u = urllib.parse.urlsplit(url)
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
            try:
                c.request("GET", "/metrics", headers={"Authorization": "Bearer " + self.token})
                text = c.getresponse().read().decode("utf-8", "replace")
            finally:
                c.close()
        out = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(None, 1)
            if len(parts) == 2:
                try:
                    out[parts[0]] = float(parts[1])
                except ValueError:
                    pass
        return out

    def gateway_pid(self):
        return self.pid(self.names("gateway")[0])

    def container_dir(self, cid):
        return os.path.join(self.data, "containers", cid)

    def find_fragment_files(self, key):
        """{index: path} of every fragment file of key under DATA/containers/*/frags/."""
        out = {}
        root = os.path.join(self.data, "containers")
        for cid in sorted(os.listdir(root)) if os.path.isdir(root) else []:
            for sub in ("frags", ""):
                d = os.path.join(root, cid, sub, key[:2]) if sub else os.path.join(root, cid, key[:2])
                if not os.path.isdir(d):
                    continue
                for f in os.listdir(d):
                    if f.startswith(key + "."):
                        try:
                            idx = int(f.rsplit(".", 1)[1])
                        except ValueError:
                            continue
                        out.setdefault(idx, []).append(os.path.join(d, f))
        return out


# ---------------------------------------------------------------------------------------
# unittest helpers


def test_failed(case):
    """True when the running test of case has failed so far (used in tearDown)."""
    outcome = getattr(case, "_outcome", None)
    if outcome is None:
        return False
    # Python >= 3.11 reports failures to the result as they happen (and resets
    # outcome.success around tearDown); older ones keep them in outcome.errors
    result = getattr(outcome, "result", None)
    for t, _ in (getattr(result, "failures", []) + getattr(result, "errors", [])):
        if t is case or getattr(t, "test_case", None) is case:
            return True
    return any(exc for _, exc in getattr(outcome, "errors", []) or [])


class FabricCase(unittest.TestCase):
    """Base class: one fabric per class (setUpClass), logs dumped when a test fails.
    Subclasses set CONTAINERS / UP_ARGS."""

    CONTAINERS = 5
    UP_ARGS = ()
    fab = None

    @classmethod
    def setUpClass(cls):
        cls.fab = Fabric(containers=cls.CONTAINERS, extra_up_args=cls.UP_ARGS,
                         name=cls.__name__.lower())

    @classmethod
    def tearDownClass(cls):
        if cls.fab is not None:
            cls.fab.close()
            cls.fab = None

    def tearDown(self):
        if test_failed(self) and self.fab is not None:
            self.fab.dump_logs(self.id())

    # assertions shared by the areas

    def assertJsonError(self, r, status=None, code=None, msg=""):
        """r is an error reply: the status (int or tuple) and {"error":{"code","message"}}."""
        where = "%s -> %d %r" % (msg, r.status, r.body[:300])
        if status is not None:
            sts = status if isinstance(status, (tuple, list, range)) else (status,)
            self.assertIn(r.status, sts, where)
        self.assertGreaterEqual(r.status, 400, where)
        doc = r.json()
        self.assertIsInstance(doc, dict, "error body is not JSON: " + where)
        err = doc.get("error")
        self.assertIsInstance(err, dict, "no error object: " + where)
        self.assertIsInstance(err.get("code"), str, "no error.code: " + where)
        self.assertTrue(err.get("code"), "empty error.code: " + where)
        self.assertIsInstance(err.get("message"), str, "no error.message: " + where)
        if code is not None:
            codes = code if isinstance(code, (tuple, list)) else (code,)
            self.assertIn(err["code"], codes, where)
        return err

    def assertFilesEqual(self, a, b, msg=""):
        sa, sb = os.path.getsize(a), os.path.getsize(b)
        self.assertEqual(sa, sb, "%s: sizes differ %d != %d" % (msg, sa, sb))
        self.assertEqual(sha256_file(a), sha256_file(b), "%s: contents differ" % msg)


# ---------------------------------------------------------------------------------------
# Outcome and crash-point helpers (issue 9 class 1; test_outcome.py, test_crashpoints.py).
# Kept in one block of their own: other helpers of the same issue add theirs elsewhere.

CRASH_EXIT = 86  # lib/crashpoint.h DYNO_CRASH_EXIT


def restart_with_env(fab, name, env, extra_args=(), wait=True):
    """fab.restart(name, extra_args) with env added to the new process's environment (for
    example {"DYNO_CRASH_AT": "gateway.put.before_commit"}). Returns the new pid."""
    base_env = Fabric.env.__get__(fab)
    fab.env = lambda extra=None: base_env(dict(env, **(extra or {})))
    try:
        return fab.restart(name, extra_args, wait=wait)
    finally:
        del fab.env


def wait_exit(fab, name, timeout=60):
    """Waits until the re-spawned process name exits; returns its exit status (None when it
    is still running at the timeout)."""
    s = fab._spawned.get(name)
    if s is None:
        raise FabricError("%s was not re-spawned by this harness" % name)
    try:
        return s["popen"].wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def put_streamed(fab, catalog, data, name, between, chunk=1 * MiB, token=_DEFAULT):
    """POST of data with a Content-Length, sent chunk by chunk; between(i) runs before chunk
    i (i >= 1: object.begin has run by then) and between(None) after the last byte, before
    the answer is read. Returns the Resp."""
    q = "?name=" + urllib.parse.quote(name, safe="")
    c = fab.conn()
    try:
        c.putrequest("POST", Fabric.cat_path(catalog, "objects") + q)
        c.putheader("Content-Length", str(len(data)))
        c.putheader("Authorization", "Bearer " + (fab.token if token is _DEFAULT else token))
        c.endheaders()
        for i, off in enumerate(range(0, len(data), chunk)):
            if i:
                between(i)
            c.send(data[off:off + chunk])
        between(None)
        r = c.getresponse()
        return Resp(r.status, r.reason, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        c.close()


def unreadable_listed(fab, catalog):
    """Every listed object of catalog that does not read back whole with its listed sha256:
    [(name, key, why)]. Empty when nothing is half-visible."""
    bad = []
    for o in fab.list_catalog(catalog):
        r = fab.get_object(o["key"])
        if r.status != 200:
            bad.append((o.get("name"), o["key"], "GET %d %r" % (r.status, r.body[:120])))
        elif sha256_bytes(r.body) != o.get("sha256") or len(r.body) != o.get("size"):
            bad.append((o.get("name"), o["key"], "wrong bytes"))
    return bad


def read_by_name(fab, catalog, name):
    """The bytes of the listed object called name in catalog, or None when none is listed
    (an object listed without its bytes raises)."""
    for o in fab.list_catalog(catalog):
        if o.get("name") == name:
            r = fab.get_object(o["key"])
            if r.status != 200:
                raise AssertionError("%s/%s (key %s) is listed but GET answers %d %r"
                                     % (catalog, name, o["key"], r.status, r.body[:200]))
            return r.body
    return None


VOL_MAGIC = 0x31525644  # agents/container/store_volume.c: a record's first 4 bytes
VOL_HDR = 64


def volume_records(store_dir):
    """{id: (path, payload_offset, length)} of the live small fragments in the volume files of
    a container's store (STORE/vol/*.vol, agents/container/store_volume.c): the newest record
    of each id by sequence number, tombstones applied. Records are read as the container
    would, up to the first header that is not one (the CRCs are not checked here)."""
    best = {}
    for path in sorted(glob.glob(os.path.join(store_dir, "vol", "*.vol"))):
        with open(path, "rb") as fh:
            data = fh.read()
        off = 0
        while off + VOL_HDR <= len(data):
            magic, _, seq, ln, flags, idlen = struct.unpack_from("<IIQIBB", data, off)
            if magic != VOL_MAGIC or idlen > 36 or off + VOL_HDR + ln > len(data):
                break
            fid = data[off + 24:off + 24 + idlen].decode("ascii", "replace")
            if fid not in best or seq >= best[fid][0]:
                best[fid] = (seq, flags & 1, path, off + VOL_HDR, ln)
            off += VOL_HDR + ln
    return {fid: (p, o, n) for fid, (_, tomb, p, o, n) in best.items() if not tomb}


def fragment_location(fab, cid, key, index):
    """(path, offset) where the bytes of fragment key.index start on container cid: its own
    file (offset 0) or its record in a volume file; None when it has neither."""
    store = os.path.join(fab.container_dir(cid), "frags")
    fid = "%s.%d" % (key, index)
    path = os.path.join(store, key[:2], fid)
    if os.path.isfile(path):
        return path, 0
    rec = volume_records(store).get(fid)
    return (rec[0], rec[1]) if rec else None


def fragment_files(fab):
    """{(container, key, index): path} of every fragment under DATA/containers/*/frags: its
    file, or "VOLUME#OFFSET" for a small fragment held in a volume file (files of puts in
    progress, in frags/tmp, are not fragments yet)."""
    out = {}
    for store in glob.glob(os.path.join(fab.data, "containers", "*", "frags")):
        cid = store.split(os.sep)[-2]
        for fid, (path, off, _) in volume_records(store).items():
            key, _, idx = fid.rpartition(".")
            out[(cid, key, int(idx))] = "%s#%d" % (path, off)
    for path in glob.glob(os.path.join(fab.data, "containers", "*", "frags", "*", "*")):
        parts = path.split(os.sep)
        if parts[-2] == "tmp" or not os.path.isfile(path):
            continue
        key, _, idx = os.path.basename(path).rpartition(".")
        if len(key) != 32 or not idx.isdigit():
            continue
        out[(parts[-4], key, int(idx))] = path
    return out


def placement_problems(fab, catalogs):
    """Disk against metadata for every listed object of catalogs: ["orphan fragment file
    ...", "missing fragment file ..."]. Empty when each fragment file on a container's disk
    is a fragment metadata lists for a visible object, and each listed fragment is there."""
    files = fragment_files(fab)
    expected, problems = set(), []
    for cat in catalogs:
        for o in fab.list_catalog(cat):
            r = fab.http("GET", "/v1/objects/%s/meta" % o["key"])
            if r.status != 200:
                problems.append("listed object %s has no meta (%d)" % (o["key"], r.status))
                continue
            for fr in r.json().get("fragments") or []:
                expected.add((fr["container"], o["key"], fr["index"]))
    problems += ["missing fragment file %s/%s.%d" % e for e in sorted(expected - set(files))]
    problems += ["orphan fragment file %s" % files[e] for e in sorted(set(files) - expected)]
    return problems

# End of the outcome and crash-point helpers.
