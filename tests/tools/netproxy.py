#!/usr/bin/env python3
"""A delay-and-cut TCP proxy for wide-area tests (issue 13).

The kernel of the test machines has no netem, so the tests put this proxy between sites instead.
Python 3 standard library only; threads (two per forwarded connection, plenty for tests).

Each *link* is one listener on 127.0.0.1 (ephemeral port unless given) that forwards every
accepted connection to one target host:port.

- Delay: every chunk read on one side is written to the other side `delay_ms` after it was read,
  in both directions, in order. It is a time shift, not a throughput cap: a stream keeps its
  bandwidth, each byte just arrives later (a round trip gains 2 x delay).
- Bandwidth cap (optional, `rate_bps`, bytes a second, 0 = none): each direction of each
  connection sends no faster than that (a per-connection cap, not shared by the link's
  connections); the delay comes on top.
- Cut, `hold` mode (the default, like a partition): bytes of existing connections stop moving;
  what is read meanwhile is held (up to HOLD_CHUNKS chunks a direction, then the reader stops
  reading, so TCP's own window pushes back on the sender) and delivered in order after `heal`.
  New connections are accepted by the kernel but not forwarded (no connection to the target)
  until `heal`; then they are forwarded as usual. Nothing is reset: a peer sees silence, and its
  own timeouts decide what happens, as over a real cut link.
- Cut, `reset` mode: existing connections are closed with an RST (SO_LINGER 0) on both sides,
  and new connections are reset as soon as they are accepted, until `heal`.
- A chunk already past its delay when `cut` is called may still be written (at most one chunk a
  direction): the cut takes effect between chunks.
- `stop()` closes the listeners and every connection. The proxy never signals or kills any
  process.

Use from tests:

    import sys, os; sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
    from netproxy import NetProxy
    with NetProxy() as px:
        port = px.add_link("site-2", "127.0.0.1", target_port, delay_ms=40)
        ...
        px.cut("site-2")            # or px.cut("site-2", mode="reset")
        px.heal("site-2")

From the shell:

    python3 tests/tools/netproxy.py --link site-2=127.0.0.1:9000:40 [--control-port 0]

prints one JSON line ({"links": {"site-2": PORT}, "control": PORT}) and runs until SIGINT or
SIGTERM. The control port takes one command a line and answers "ok ..." or "error ...":
`cut NAME [hold|reset]`, `heal NAME`, `delay NAME MS`, `list`.
"""

import argparse
import json
import queue
import signal
import socket
import struct
import sys
import threading
import time

CHUNK = 64 * 1024
HOLD_CHUNKS = 256  # per direction of a connection: at most 16 MiB held or in flight
POLL = 0.2  # seconds: how often blocked threads look at the stop flag

HOLD = "hold"
RESET = "reset"
_EOF = object()


def _reset_close(sock):
    """Close with an RST (SO_LINGER 0): what `reset` mode means. The shutdown before it wakes a
    thread blocked in recv on this socket (its reference would keep the socket open), so the
    peer may see a FIN just before the RST: either way its connection is gone."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    _quiet_close(sock)


def _quiet_close(sock):
    try:
        # shutdown first: it wakes a thread blocked in recv/send on this socket, close alone
        # does not on Linux
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Conn:
    """One forwarded connection: a client socket, its upstream socket, two directions."""

    def __init__(self, link, client):
        self.link = link
        self.client = client
        self.upstream = None
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.dirs_done = 0

    def start(self):
        threading.Thread(target=self._run, daemon=True, name="netproxy-conn").start()

    def _run(self):
        link = self.link
        # hold mode: a new connection waits here, accepted but not forwarded, until heal
        with link.cond:
            link.cond.wait_for(lambda: not link.is_cut or self.closed.is_set() or link.stopped)
        if self.closed.is_set() or link.stopped:
            self.close()
            return
        try:
            self.upstream = socket.create_connection((link.host, link.port), timeout=10)
            self.upstream.settimeout(None)
        except OSError:
            self.close()
            return
        for src, dst in ((self.client, self.upstream), (self.upstream, self.client)):
            q = queue.Queue(maxsize=HOLD_CHUNKS)
            threading.Thread(target=self._read, args=(src, q), daemon=True,
                             name="netproxy-read").start()
            threading.Thread(target=self._write, args=(q, dst), daemon=True,
                             name="netproxy-write").start()

    def _put(self, q, item):
        while not self.closed.is_set():
            try:
                q.put(item, timeout=POLL)
                return True
            except queue.Full:
                continue
        return False

    def _read(self, src, q):
        while not self.closed.is_set():
            try:
                data = src.recv(CHUNK)
            except OSError:
                data = b""
            # the time it was read is the time it left the sender's side of the link
            item = (time.monotonic(), data if data else _EOF)
            if not self._put(q, item) or not data:
                return

    def _wait_due(self, due):
        """Wait until `due` (monotonic) and until the link is not cut; False once closed."""
        link = self.link
        while not self.closed.is_set():
            with link.cond:
                link.cond.wait_for(lambda: not link.is_cut or self.closed.is_set(), timeout=POLL)
                if link.is_cut:
                    continue
                # the delay is read now, so a changed delay applies to what has not left yet
                left = due + link.delay_ms / 1000.0 - time.monotonic()
            if left <= 0:
                return True
            self.closed.wait(min(left, POLL))
        return False

    def _pace(self, pace, n):
        """Bandwidth cap: wait until this direction may send n more bytes."""
        rate = self.link.rate_bps
        if rate <= 0:
            return True
        start = max(time.monotonic(), pace[0])
        pace[0] = start + n / rate
        while not self.closed.is_set():
            left = start - time.monotonic()
            if left <= 0:
                return True
            self.closed.wait(min(left, POLL))
        return False

    def _write(self, q, dst):
        pace = [0.0]  # when this direction may send again under the bandwidth cap
        while not self.closed.is_set():
            try:
                t0, data = q.get(timeout=POLL)
            except queue.Empty:
                continue
            if not self._wait_due(t0):
                return
            if data is not _EOF and not self._pace(pace, len(data)):
                return
            if data is _EOF:
                # pass the half close on, and close all once both directions have ended
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                with self.lock:
                    self.dirs_done += 1
                    both = self.dirs_done == 2
                if both:
                    self.close()
                return
            try:
                dst.sendall(data)
            except OSError:
                self.close()
                return
            self.link.count_bytes(len(data))

    def reset(self):
        if self.closed.is_set():
            return
        self.closed.set()
        for s in (self.client, self.upstream):
            if s is not None:
                _reset_close(s)
        self.link.forget(self)

    def close(self):
        if self.closed.is_set():
            return
        self.closed.set()
        for s in (self.client, self.upstream):
            if s is not None:
                _quiet_close(s)
        self.link.forget(self)


class _Link:
    def __init__(self, name, host, port, delay_ms, listen_port, rate_bps=0):
        self.name = name
        self.host = host
        self.port = port
        self.delay_ms = float(delay_ms)
        self.rate_bps = float(rate_bps)
        self.cond = threading.Condition()
        self.is_cut = False
        self.mode = HOLD
        self.stopped = False
        self.conns = set()
        self.bytes = 0
        self.accepted = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", listen_port))
        self.sock.listen(128)
        self.sock.settimeout(POLL)
        self.listen_port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True, name="netproxy-accept")
        self.thread.start()

    def count_bytes(self, n):
        with self.cond:
            self.bytes += n

    def forget(self, conn):
        with self.cond:
            self.conns.discard(conn)
            self.cond.notify_all()

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self.cond:
                if self.stopped or (self.is_cut and self.mode == RESET):
                    _reset_close(client)
                    continue
                conn = _Conn(self, client)
                self.conns.add(conn)
                self.accepted += 1
            conn.start()

    def cut(self, mode):
        with self.cond:
            self.is_cut = True
            self.mode = mode
            conns = list(self.conns) if mode == RESET else []
            self.cond.notify_all()
        for c in conns:
            c.reset()

    def heal(self):
        with self.cond:
            self.is_cut = False
            self.cond.notify_all()

    def stop(self):
        with self.cond:
            self.stopped = True
            conns = list(self.conns)
            self.cond.notify_all()
        try:
            self.sock.close()
        except OSError:
            pass
        for c in conns:
            c.close()
        self.thread.join(timeout=5)


class NetProxy:
    """A set of links; see the module's doc. Thread-safe."""

    def __init__(self):
        self._links = {}
        self._lock = threading.Lock()
        self._control = None

    def add_link(self, name, host, port, delay_ms=0, listen_port=0, rate_bps=0):
        """Listen on 127.0.0.1 (ephemeral port unless given), forward to host:port with a one-way
        delay of delay_ms each way (and at most rate_bps bytes a second each way of each
        connection, 0 = no cap). Returns the listening port."""
        if delay_ms < 0 or rate_bps < 0:
            raise ValueError("delay_ms and rate_bps must be >= 0")
        with self._lock:
            if name in self._links:
                raise ValueError("link %r exists" % name)
            link = _Link(name, host, int(port), delay_ms, listen_port, rate_bps)
            self._links[name] = link
        return link.listen_port

    def _link(self, name):
        with self._lock:
            link = self._links.get(name)
        if link is None:
            raise KeyError("no link %r" % name)
        return link

    def port(self, name):
        return self._link(name).listen_port

    def set_delay(self, name, delay_ms):
        if delay_ms < 0:
            raise ValueError("delay_ms must be >= 0")
        link = self._link(name)
        with link.cond:
            link.delay_ms = float(delay_ms)
            link.cond.notify_all()

    def cut(self, name, mode=HOLD):
        if mode not in (HOLD, RESET):
            raise ValueError("mode must be %r or %r" % (HOLD, RESET))
        self._link(name).cut(mode)

    def heal(self, name):
        self._link(name).heal()

    def stats(self, name):
        """{"connections": open now, "accepted": ever, "bytes": forwarded, "cut": bool, ...}"""
        link = self._link(name)
        with link.cond:
            return {"port": link.listen_port, "target": "%s:%d" % (link.host, link.port),
                    "delay_ms": link.delay_ms, "rate_bps": link.rate_bps, "cut": link.is_cut, "mode": link.mode,
                    "connections": len(link.conns), "accepted": link.accepted,
                    "bytes": link.bytes}

    def links(self):
        with self._lock:
            return list(self._links)

    # --- shell control: one command a line on a 127.0.0.1 TCP port ---
    def serve_control(self, port=0):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(8)
        s.settimeout(POLL)
        self._control = s
        threading.Thread(target=self._control_loop, args=(s,), daemon=True,
                         name="netproxy-control").start()
        return s.getsockname()[1]

    def _control_loop(self, s):
        while self._control is s:
            try:
                c, _ = s.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._control_client, args=(c,), daemon=True).start()

    def command(self, line):
        """One control command (the shell's protocol); returns the answer line."""
        words = line.split()
        try:
            if not words:
                return "error empty command"
            op, args = words[0], words[1:]
            if op == "cut" and len(args) in (1, 2):
                self.cut(args[0], *args[1:])
            elif op == "heal" and len(args) == 1:
                self.heal(args[0])
            elif op == "delay" and len(args) == 2:
                self.set_delay(args[0], float(args[1]))
            elif op == "list" and not args:
                return "ok " + json.dumps({n: self.stats(n) for n in self.links()})
            else:
                return "error usage: cut NAME [hold|reset] | heal NAME | delay NAME MS | list"
        except (KeyError, ValueError) as e:
            return "error %s" % (e.args[0] if e.args else e)
        return "ok"

    def _control_client(self, c):
        with c:
            f = c.makefile("rwb")
            for raw in f:
                line = raw[:1024].decode("utf-8", "replace")
                f.write((self.command(line) + "\n").encode())
                f.flush()

    def stop(self):
        if self._control is not None:
            s, self._control = self._control, None
            s.close()
        with self._lock:
            links = list(self._links.values())
            self._links.clear()
        for link in links:
            link.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _parse_link(text):
    """NAME=HOST:PORT[:DELAY_MS]"""
    name, sep, rest = text.partition("=")
    parts = rest.split(":")
    if not sep or not name or len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError("expected NAME=HOST:PORT[:DELAY_MS], got %r" % text)
    try:
        port = int(parts[1])
        delay = float(parts[2]) if len(parts) == 3 else 0.0
    except ValueError:
        raise argparse.ArgumentTypeError("bad port or delay in %r" % text)
    if not 0 < port < 65536 or delay < 0:
        raise argparse.ArgumentTypeError("port out of range or negative delay in %r" % text)
    return name, parts[0], port, delay


def main(argv=None):
    ap = argparse.ArgumentParser(description="delay-and-cut TCP proxy for tests (issue 13)")
    ap.add_argument("--link", action="append", type=_parse_link, required=True,
                    metavar="NAME=HOST:PORT[:DELAY_MS]")
    ap.add_argument("--control-port", type=int, default=0)
    args = ap.parse_args(argv)
    px = NetProxy()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        ports = {}
        for name, host, port, delay in args.link:
            ports[name] = px.add_link(name, host, port, delay)
        control = px.serve_control(args.control_port)
        print(json.dumps({"links": ports, "control": control}), flush=True)
        while not stop.wait(1):
            pass
    except (OSError, ValueError) as e:
        print("netproxy: %s" % e, file=sys.stderr)
        return 1
    finally:
        px.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
