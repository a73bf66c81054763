"""DynoStore client over the REST API of the gateway (SPEC §4), standard library only.

    from dynostore.client import Client

    c = Client("127.0.0.1:8080")                      # or "https://gw:8443", cafile="ca.pem"
    c.create_catalog("alice/runs", token)
    key = c.put(b"hello", token, "alice/runs", name="greeting")
    assert c.get(key, token) == b"hello"
    c.put_file("big.h5", token, "alice/runs")         # streamed, never all in memory
    c.get_to_file(key, token, "out.h5")               # streamed to a temp file, then renamed
    c.exists(key, token); c.meta(key, token); c.evict(key, token)

``token`` (``token_user`` in the signatures) is the bearer token string; it travels only in
``Authorization: Bearer`` and never appears in a URL, a log line or an exception message.

Errors are the classes of :mod:`dynostore.errors`. A ``Client`` is safe to share between
threads: every thread keeps its own keep-alive connection to the gateway.
"""

import email.utils
import hashlib
import http.client
import io
import json
import os
import random
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse

from .errors import DynoError, NotFoundError, UnavailableError, error_for_status

__all__ = ["Client", "RetryPolicy", "DEFAULT_CHUNK"]

DEFAULT_CHUNK = 1024 * 1024      # bytes per read/write when streaming
ERROR_BODY_MAX = 64 * 1024       # at most this much of an error reply is read
JSON_BODY_MAX = 64 * 1024 * 1024  # JSON replies larger than this are refused
USER_AGENT = "dynostore-python/0.1"


class RetryPolicy:
    """When and how long to wait before trying a call again.

    A call is tried at most ``attempts`` times (1 = never retried). It is retried when

    * the gateway answered one of ``statuses`` (default: 503 only), or
    * the gateway could not be reached at all (connection refused, unreachable, DNS
      failure, connect timeout) and ``retry_unreachable`` is true, or
    * an idempotent call (GET, HEAD, DELETE, catalog PUT) lost its connection before any
      answer came back,

    and only if the request can be sent again: requests without a body, bytes-like bodies
    and seekable files (rewound to where they started) can; a non-seekable stream (a pipe,
    a socket) cannot, so a put of one is tried once (it may still wait for a refused
    connection, since nothing was read from it yet).

    Waits: the server's ``Retry-After`` (seconds or an HTTP date) when it sent one, capped at
    ``retry_after_max``; else ``backoff * 2**(n-1)`` capped at ``backoff_max``, with full
    jitter (uniformly 50..100 % of that) so that many clients do not retry in lockstep.
    """

    def __init__(self, attempts=5, backoff=0.1, backoff_max=5.0, retry_after_max=30.0,
                 statuses=(503,), retry_unreachable=True, jitter=True):
        if int(attempts) < 1:
            raise ValueError("attempts must be >= 1")
        self.attempts = int(attempts)
        self.backoff = float(backoff)
        self.backoff_max = float(backoff_max)
        self.retry_after_max = float(retry_after_max)
        self.statuses = frozenset(int(s) for s in statuses)
        self.retry_unreachable = bool(retry_unreachable)
        self.jitter = bool(jitter)

    def delay(self, attempt, retry_after=None):
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if retry_after is not None:
            return max(0.0, min(float(retry_after), self.retry_after_max))
        d = min(self.backoff * (2 ** (attempt - 1)), self.backoff_max)
        if self.jitter:
            d *= random.uniform(0.5, 1.0)
        return d

    def config(self):
        return {"attempts": self.attempts, "backoff": self.backoff,
                "backoff_max": self.backoff_max, "retry_after_max": self.retry_after_max,
                "statuses": sorted(self.statuses), "retry_unreachable": self.retry_unreachable,
                "jitter": self.jitter}

    def __repr__(self):
        return "RetryPolicy(%s)" % ", ".join("%s=%r" % kv for kv in self.config().items())


NO_RETRY = RetryPolicy(attempts=1)


def _parse_retry_after(value):
    """Retry-After as seconds (float), or None."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(int(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


# ---------------------------------------------------------------------------------------
# request bodies


class _Body:
    """A request body: what http.client sends, its length, and how to send it again."""

    def __init__(self, payload=None, length=0, rewind=None, replayable=True, hasher=None,
                 owned_file=None):
        self.payload = payload            # bytes-like, a reader, or None
        self.length = length              # int, or None for a stream of unknown size
        self._rewind = rewind             # callable restoring the start, or None
        self.replayable = replayable
        self.hasher = hasher              # _HashingReader, when the digest is computed on the way
        self.owned_file = owned_file      # a file we opened (closed when done)
        self.sent = False

    def prepare(self):
        """Called before every send after the first one."""
        if self.sent:
            if not self.replayable:
                raise DynoError("the request body is a stream that cannot be sent again",
                                code="not_replayable")
            if self._rewind:
                self._rewind()
        self.sent = True

    def close(self):
        if self.owned_file is not None:
            self.owned_file.close()
            self.owned_file = None


class _HashingReader:
    """A file wrapper for http.client: hands out at most `remaining` bytes (None: up to
    EOF) in the chunks asked for, hashing them on the way when asked to."""

    def __init__(self, fh, remaining, want_hash):
        self.fh = fh
        self.remaining0 = remaining
        self.want_hash = want_hash
        self.reset()

    def reset(self):
        self.sha = hashlib.sha256() if self.want_hash else None
        self.count = 0
        self.remaining = self.remaining0

    def read(self, n=-1):
        if self.remaining is not None:
            if self.remaining <= 0:
                return b""
            if n is None or n < 0 or n > self.remaining:
                n = self.remaining
        b = self.fh.read(n)
        if b is None:
            raise ValueError("put() cannot stream a non-blocking file object")
        if not b and self.remaining:
            # the Content-Length sent promised more: stop rather than leave the server waiting
            raise DynoError("the file ended %d bytes early while it was being sent"
                            % self.remaining, code="short_file")
        if b:
            if self.sha is not None:
                self.sha.update(b)
            self.count += len(b)
            if self.remaining is not None:
                self.remaining -= len(b)
        return b


def _as_buffer(data):
    """A contiguous byte memoryview of a bytes-like object (no copy when already bytes)."""
    if isinstance(data, bytes):
        return data
    mv = memoryview(data)
    if not mv.contiguous:
        raise TypeError("a non-contiguous buffer cannot be sent; pass bytes(...)")
    return mv.cast("B") if mv.format != "B" or mv.ndim != 1 else mv


def _make_body(data, want_hash):
    """Turns put()'s data argument into a _Body (and its sha256 when computed up front)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        buf = _as_buffer(data)
        n = buf.nbytes if isinstance(buf, memoryview) else len(buf)
        digest = hashlib.sha256(buf).hexdigest() if want_hash else None
        return _Body(buf, n), digest
    if isinstance(data, (str, os.PathLike)):
        fh = open(data, "rb")
        try:
            body = _file_body(fh, want_hash)
        except BaseException:
            fh.close()
            raise
        body.owned_file = fh
        return body, None
    if hasattr(data, "read"):
        if isinstance(data, io.TextIOBase):
            raise TypeError("put() needs a binary file object (open it with 'rb')")
        return _file_body(data, want_hash), None
    raise TypeError("data must be bytes, bytearray, memoryview, a binary file object or a "
                    "path, not %s" % type(data).__name__)


def _file_body(fh, want_hash):
    """A body streaming fh from its current position: Content-Length from the file's size
    when it can be known (then it is also replayable), else chunked and not replayable."""
    start = length = None
    seekable = False
    try:
        seekable = fh.seekable()
    except (AttributeError, OSError, ValueError):
        seekable = False
    if seekable:
        try:
            start = fh.tell()
            end = fh.seek(0, os.SEEK_END)
            fh.seek(start)
            length = max(0, end - start)
        except (OSError, ValueError):
            seekable, start, length = False, None, None
    reader = _HashingReader(fh, length, want_hash)

    def rewind():
        fh.seek(start)
        reader.reset()

    return _Body(reader, length, rewind=rewind if seekable else None, replayable=seekable,
                 hasher=reader if want_hash else None)


# ---------------------------------------------------------------------------------------
# the client


class _Lost(Exception):
    """The connection failed after the request started and before an answer came back."""


class _LocalIO(Exception):
    """A local file error inside a response handler (re-raised as the original OSError,
    never mistaken for a network failure)."""


class Client:
    """A client of one DynoStore gateway.

    gateway:      ``host:port``, ``http://host:port`` or ``https://host:port`` (a path prefix,
                  as behind a reverse proxy, is kept: ``https://example.org/dyno``).
    cafile:       CA bundle to verify an https gateway with (else the system's).
    ssl_context:  an ``ssl.SSLContext`` to use instead (wins over cafile).
    timeout:      socket timeout in seconds for connect and for every read/write (not a
                  deadline for a whole transfer).
    retry:        a :class:`RetryPolicy`, or an int (number of attempts), or None (default
                  policy: 5 attempts on 503 and unreachable, exponential backoff).
    chunk_size:   bytes per read/write when streaming (default 1 MiB).
    verify:       check what moves against SHA-256: after a put, the digest the gateway
                  reports must match the bytes sent; after a get, the bytes received must
                  match the object's digest (``X-Dyno-Sha256``). A mismatch raises
                  ``DynoError(code="corrupt")``. Default True.
    """

    def __init__(self, gateway, cafile=None, ssl_context=None, timeout=300.0, retry=None,
                 chunk_size=DEFAULT_CHUNK, verify=True):
        if not isinstance(gateway, str) or not gateway.strip():
            raise ValueError("gateway must be 'host:port' or a URL")
        g = gateway.strip()
        if "://" not in g:
            g = "http://" + g
        u = urllib.parse.urlsplit(g)
        if u.scheme not in ("http", "https"):
            raise ValueError("gateway URL scheme must be http or https, not %r" % u.scheme)
        if not u.hostname:
            raise ValueError("no host in gateway %r" % gateway)
        if u.username or u.password:
            raise ValueError("credentials do not belong in the gateway URL: pass the token")
        self.scheme = u.scheme
        self.host = u.hostname
        try:
            self.port = u.port or (443 if u.scheme == "https" else 80)
        except ValueError:
            raise ValueError("bad port in gateway %r" % gateway) from None
        self.prefix = u.path.rstrip("/")
        host = "[%s]" % self.host if ":" in self.host else self.host
        self.gateway = "%s://%s:%d%s" % (self.scheme, host, self.port, self.prefix)
        self.cafile = cafile
        self._ssl_context = ssl_context
        self.timeout = float(timeout) if timeout is not None else None
        if retry is None:
            retry = RetryPolicy()
        elif isinstance(retry, int) and not isinstance(retry, bool):
            retry = RetryPolicy(attempts=retry)
        elif isinstance(retry, dict):
            retry = RetryPolicy(**retry)
        self.retry = retry
        self.chunk_size = max(4096, int(chunk_size))
        self.verify = bool(verify)
        self._local = threading.local()
        self._conns = set()
        self._lock = threading.Lock()
        self._ctx = None

    def __repr__(self):
        return "Client(%r)" % self.gateway

    # pickling: the settings travel, the connections do not (an ssl_context cannot)
    def __getstate__(self):
        return {"gateway": self.gateway, "cafile": self.cafile, "timeout": self.timeout,
                "retry": self.retry.config(), "chunk_size": self.chunk_size,
                "verify": self.verify}

    def __setstate__(self, st):
        st = dict(st)
        self.__init__(st.pop("gateway"), **st)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        """Closes every open connection (they reopen by themselves on the next call)."""
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for c in conns:
            try:
                c.close()
            except OSError:
                pass
        self._local = threading.local()

    # -- connections ----------------------------------------------------------------

    def _context(self):
        if self._ssl_context is not None:
            return self._ssl_context
        if self._ctx is None:
            self._ctx = ssl.create_default_context(cafile=self.cafile)
        return self._ctx

    def _new_conn(self):
        if self.scheme == "https":
            c = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                            context=self._context(),
                                            blocksize=self.chunk_size)
        else:
            c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout,
                                           blocksize=self.chunk_size)
        with self._lock:
            self._conns.add(c)
        return c

    def _drop_conn(self, c):
        try:
            c.close()
        except OSError:
            pass
        with self._lock:
            self._conns.discard(c)
        if getattr(self._local, "conn", None) is c:
            self._local.conn = None

    def _connect(self, fresh):
        """(connection, reused): the thread's keep-alive connection, or a new one.
        Connect errors become UnavailableError(code='unreachable')."""
        c = None if fresh else getattr(self._local, "conn", None)
        reused = c is not None and c.sock is not None
        if c is None:
            c = self._new_conn()
            if not fresh:
                self._local.conn = c
        if c.sock is None:
            reused = False
            try:
                c.connect()
            except ssl.SSLError as e:
                self._drop_conn(c)
                raise DynoError("TLS handshake with %s failed: %s" % (self.gateway, e),
                                code="tls") from None
            except (OSError, http.client.HTTPException) as e:
                self._drop_conn(c)
                raise UnavailableError("cannot reach the gateway at %s: %s"
                                       % (self.gateway, _oserror_text(e)),
                                       code="unreachable") from None
        return c, reused

    # -- the request loop -------------------------------------------------------------

    def _url(self, path, query=None):
        u = self.prefix + path
        if query:
            u += "?" + "&".join("%s=%s" % (k, urllib.parse.quote(str(v), safe=""))
                                for k, v in query if v is not None)
        return u

    def _call(self, method, path, token, *, query=None, body=None, headers=None,
              idempotent=True, ok=(200,), handler=None):
        """Sends one request (with retries) and returns handler(response) for a status in ok.

        handler reads the response; when None the body is read (bounded) and returned as
        (status, headers, bytes). Errors raise DynoError subclasses."""
        if body is None:
            body = _Body()
        url = self._url(path, query)
        hdrs = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        tok = _token_header(token)
        if tok:
            hdrs["Authorization"] = tok
        if headers:
            hdrs.update(headers)
        if body.length is not None:
            if body.payload is not None or method in ("POST", "PUT"):
                hdrs["Content-Length"] = str(body.length)
        else:
            hdrs["Transfer-Encoding"] = "chunked"

        policy = self.retry
        attempt = 0
        stale_retry_left = 1
        while True:
            attempt += 1
            err = None
            retryable = False
            # a non-replayable stream gets a connection of its own: no stale keep-alive
            # connection can make us lose it
            fresh = not body.replayable
            try:
                c, reused = self._connect(fresh)
            except UnavailableError as e:
                err = e
                retryable = policy.retry_unreachable and (body.replayable or not body.sent)
            else:
                try:
                    resp = self._exchange(c, method, url, hdrs, body)
                except _Lost as e:
                    self._drop_conn(c)
                    if reused and stale_retry_left and body.replayable:
                        # an idle keep-alive connection the server had closed: once more on
                        # a new one (this is not an attempt of the retry policy)
                        stale_retry_left -= 1
                        attempt -= 1
                        continue
                    err = UnavailableError("lost the connection to the gateway %s before "
                                           "an answer: %s" % (self.gateway, e.args[0]),
                                           code="connection_lost")
                    retryable = idempotent and body.replayable
                except BaseException:
                    self._drop_conn(c)
                    raise
                else:
                    if resp.status in ok:
                        try:
                            if handler is None:
                                raw = resp.read() if method == "HEAD" else \
                                    _read_bounded(resp, JSON_BODY_MAX)
                                out = (resp.status, _headers(resp), raw)
                            else:
                                out = handler(resp)
                        except _LocalIO as e:
                            self._drop_conn(c)
                            raise e.args[0] from None
                        except socket.timeout:
                            self._drop_conn(c)
                            raise DynoError("timed out reading from the gateway %s"
                                            % self.gateway, code="timeout") from None
                        except (OSError, http.client.HTTPException) as e:
                            # cut short while the answer was coming (IncompleteRead, reset)
                            self._drop_conn(c)
                            err = UnavailableError("lost the connection to the gateway %s "
                                                   "during the answer: %s"
                                                   % (self.gateway, _oserror_text(e)),
                                                   code="connection_lost")
                            retryable = idempotent and body.replayable
                        except BaseException:
                            self._drop_conn(c)
                            raise
                        else:
                            self._release(c, resp, fresh)
                            return out
                    else:
                        err = self._error_from(resp, method)
                        self._release(c, resp, fresh)
                        retryable = resp.status in policy.statuses and body.replayable
            if not retryable or attempt >= policy.attempts:
                body.close()
                raise err
            time.sleep(policy.delay(attempt, err.retry_after))

    def _exchange(self, c, method, url, hdrs, body):
        """request + getresponse; a failure before any answer raises _Lost(reason)."""
        body.prepare()
        try:
            c.request(method, url, body=body.payload, headers=hdrs,
                      encode_chunked=body.length is None and body.payload is not None)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError,
                ssl.SSLEOFError, socket.timeout) as e:
            if isinstance(e, socket.timeout):
                raise DynoError("timed out sending to the gateway %s" % self.gateway,
                                code="timeout") from None
            # The gateway may have answered early (an error before it took the whole body)
            # and closed: that answer is still in the socket.
            try:
                resp = c.getresponse()
                resp.early = True
                return resp
            except (OSError, http.client.HTTPException):
                raise _Lost(_oserror_text(e)) from None
        except ssl.SSLError as e:
            raise DynoError("TLS error with %s: %s" % (self.gateway, e), code="tls") from None
        except OSError as e:
            raise _Lost(_oserror_text(e)) from None
        try:
            resp = c.getresponse()
        except http.client.RemoteDisconnected as e:
            raise _Lost(str(e) or "closed without an answer") from None
        except socket.timeout:
            raise DynoError("timed out waiting for the gateway %s" % self.gateway,
                            code="timeout") from None
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError,
                ssl.SSLEOFError) as e:
            raise _Lost(_oserror_text(e)) from None
        except (http.client.HTTPException, OSError) as e:
            raise _Lost(_oserror_text(e)) from None
        resp.early = False
        return resp

    def _release(self, c, resp, fresh):
        """After a response has been handled: keep the connection for the next call when it
        is clean, else close it."""
        if fresh or getattr(resp, "early", False) or not resp.isclosed() or c.sock is None:
            resp.close()
            self._drop_conn(c)

    def _error_from(self, resp, method):
        """The DynoError of an error reply (the body is read, bounded)."""
        status = resp.status
        retry_after = _parse_retry_after(resp.getheader("Retry-After"))
        raw = b""
        try:
            if method == "HEAD":
                resp.read()     # no body; marks the response done (the connection is kept)
            else:
                raw = _read_bounded(resp, ERROR_BODY_MAX, drain=True)
        except (OSError, http.client.HTTPException):
            raw = b""
        code = message = None
        try:
            doc = json.loads(raw.decode("utf-8")) if raw else None
            e = doc.get("error") if isinstance(doc, dict) else None
            if isinstance(e, dict):
                code = e.get("code") if isinstance(e.get("code"), str) else None
                message = e.get("message") if isinstance(e.get("message"), str) else None
        except (ValueError, UnicodeDecodeError):
            pass
        if not message:
            reason = (resp.reason or "").strip()
            message = "HTTP %d %s from the gateway" % (status, reason) if reason else None
        return error_for_status(status, code, message, retry_after)

    def _json(self, method, path, token, ok=(200,), **kw):
        status, headers, raw = self._call(method, path, token, ok=ok, **kw)
        if not raw:
            return {}
        try:
            return json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise DynoError("the gateway answered %s %s with a body that is not JSON"
                            % (method, path), status=status, code="protocol_error") from None

    # -- objects ----------------------------------------------------------------------------

    def put_object(self, data, token_user, catalog, name=None, resilience=None):
        """Stores data as an object of catalog; returns the gateway's record
        ``{key, name, size, sha256, k, m}``.

        data: bytes, bytearray or memoryview (sent as is); a binary file object (streamed from
        its current position, in chunks: with Content-Length when its size can be known,
        else chunked); or a path (str or os.PathLike), opened and streamed.
        name: the object's name in the catalog (default: the key); an existing object of the
        same name is replaced atomically.
        resilience: ``(k, m)``, ``"k,m"`` or ``{"k":..,"m":..}`` (default: the catalog's).
        """
        path = _catalog_path(catalog, "objects")
        query = [("name", _check_name(name))] if name is not None else None
        headers = {"Content-Type": "application/octet-stream"}
        if resilience is not None:
            k, m = _resilience(resilience)
            headers["X-Dyno-Resilience"] = "%d,%d" % (k, m)
        body, digest = _make_body(data, self.verify)
        try:
            doc = self._json("POST", path, token_user, ok=(200, 201), query=query, body=body,
                             headers=headers, idempotent=False)
        finally:
            body.close()
        if not isinstance(doc, dict) or not isinstance(doc.get("key"), str):
            raise DynoError("the gateway's put reply has no key: %r" % (doc,),
                            code="protocol_error")
        sent = body.length if body.hasher is None else body.hasher.count
        if body.hasher is not None:
            digest = body.hasher.sha.hexdigest()
        if self.verify:
            if sent is not None and "size" in doc and int(doc["size"]) != sent:
                raise DynoError("the gateway stored %s bytes of %d sent (key %s)"
                                % (doc["size"], sent, doc["key"]), code="corrupt")
            if digest and doc.get("sha256") and doc["sha256"].lower() != digest:
                raise DynoError("the gateway's SHA-256 of key %s differs from the bytes sent"
                                % doc["key"], code="corrupt")
        return doc

    def put(self, data, token_user, catalog, name=None, resilience=None):
        """Stores data (see put_object) and returns the new object's key (32 hex)."""
        return self.put_object(data, token_user, catalog, name=name,
                               resilience=resilience)["key"]

    def put_file(self, path, token_user, catalog, name=None, resilience=None):
        """Streams the file at path into catalog; returns the key. name defaults to the
        key (pass ``name=os.path.basename(path)`` to keep the file name, as the CLI does)."""
        return self.put(os.fspath(path), token_user, catalog, name=name, resilience=resilience)

    def get(self, key, token_user):
        """The bytes of an object. NotFoundError when there is none."""
        def handler(resp):
            data = resp.read()
            self._check_digest(resp, key, hashlib.sha256(data).hexdigest()
                               if self.verify else None, len(data))
            return data
        return self._call("GET", _object_path(key), token_user, handler=handler,
                          headers={"Accept": "*/*"})

    def get_to_file(self, key, token_user, path):
        """Streams an object into the file path, in chunks: the bytes go to a temp file in
        the same folder, which replaces path only once the whole object arrived (and
        matched its digest). Returns the number of bytes written."""
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))

        def handler(resp):
            try:
                fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part",
                                           prefix=".%s." % os.path.basename(path))
                out = os.fdopen(fd, "wb", buffering=0)
            except OSError as e:
                raise _LocalIO(e) from None
            try:
                sha = hashlib.sha256() if self.verify else None
                mv = memoryview(bytearray(self.chunk_size))
                total = 0
                with out:
                    while True:
                        n = resp.readinto(mv)      # network errors: retried by _call
                        if not n:
                            break
                        if sha is not None:
                            sha.update(mv[:n])
                        try:
                            out.write(mv[:n])
                        except OSError as e:
                            raise _LocalIO(e) from None
                        total += n
                self._check_digest(resp, key, sha.hexdigest() if sha else None, total)
                try:
                    os.replace(tmp, path)
                except OSError as e:
                    raise _LocalIO(e) from None
                tmp = None
                return total
            finally:
                if tmp is not None:
                    try:
                        os.unlink(tmp)
                    except OSError:
                        pass

        return self._call("GET", _object_path(key), token_user, handler=handler,
                          headers={"Accept": "*/*"})

    def _check_digest(self, resp, key, digest, count):
        length = resp.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) != count:
            raise DynoError("object %s: got %d of %s bytes" % (key, count, length),
                            code="connection_lost")
        if digest is None:
            return
        want = resp.getheader("X-Dyno-Sha256") or (resp.getheader("ETag") or "").strip('W/"')
        want = want.strip().lower()
        if len(want) == 64 and want != digest:
            raise DynoError("object %s: the bytes received do not match its SHA-256" % key,
                            code="corrupt")

    def exists(self, key, token_user):
        """True when the object exists (and the caller may read it), False on 404."""
        try:
            self._call("HEAD", _object_path(key), token_user, headers={"Accept": "*/*"})
        except NotFoundError:
            return False
        return True

    def stat(self, key, token_user):
        """HEAD of an object: ``{key, size, sha256}`` from its headers (NotFoundError)."""
        _, h, _ = self._call("HEAD", _object_path(key), token_user, headers={"Accept": "*/*"})
        size = h.get("content-length")
        return {"key": h.get("x-dyno-key", key),
                "size": int(size) if size and size.isdigit() else None,
                "sha256": h.get("x-dyno-sha256") or (h.get("etag") or "").strip('W/"') or None}

    def evict(self, key, token_user):
        """Removes an object (NotFoundError when there is none)."""
        self._call("DELETE", _object_path(key), token_user, ok=(200, 202, 204))

    def meta(self, key, token_user):
        """The object's metadata: catalog, name, size, sha256, k, m, fragments, state..."""
        return self._json("GET", _object_path(key) + "/meta", token_user)

    # -- catalogs -----------------------------------------------------------------------------

    def create_catalog(self, catalog, token_user, public=False, resilience=None, site_spread=None):
        """Creates a catalog (idempotent: an existing one is fine); returns its record.
        site_spread: "strict" (default: at most m fragments of an object on one site, a put
        the sites cannot hold so is refused) or "relaxed" (more on one site when it must)."""
        doc = {"public": bool(public)}
        if resilience is not None:
            k, m = _resilience(resilience)
            doc["resilience"] = {"k": k, "m": m}
        if site_spread is not None:
            if site_spread not in ("strict", "relaxed"):
                raise ValueError("site_spread must be 'strict' or 'relaxed', not %r" % (site_spread,))
            doc["site_spread"] = site_spread
        raw = json.dumps(doc).encode()
        return self._json("PUT", _catalog_path(catalog), token_user,
                          ok=(200, 201), body=_Body(raw, len(raw)),
                          headers={"Content-Type": "application/json"})

    def catalog_info(self, catalog, token_user):
        """A catalog's record, with its object count and bytes."""
        return self._json("GET", _catalog_path(catalog), token_user)

    def delete_catalog(self, catalog, token_user, recursive=False):
        """Deletes a catalog: only an empty one unless recursive (then every object of it and
        of its sub-catalogs is evicted first). Returns ``{deleted, ...}``."""
        return self._json("DELETE", _catalog_path(catalog), token_user,
                          query=[("recursive", 1)] if recursive else None)

    def share_catalog(self, catalog, token_user, user=None, org=None, access="read"):
        """Shares a catalog with exactly one of a user or an org (``"lab"``, ``"lab/ct"``),
        ``access`` ``"read"`` or ``"write"`` (owner or admin). Returns the catalog's policy."""
        kind, principal = _principal(user, org)
        if access not in ("read", "write"):
            raise ValueError("access must be 'read' or 'write'")
        raw = json.dumps({kind: principal, "access": access}).encode()
        return self._json("POST", _catalog_path(catalog, "shares"), token_user, ok=(200, 201),
                          body=_Body(raw, len(raw)), headers={"Content-Type": "application/json"})

    def unshare_catalog(self, catalog, token_user, user=None, org=None):
        """Removes the share of a catalog with a user or an org (NotFoundError when there is
        none). Returns the catalog's policy and ``removed``."""
        kind, principal = _principal(user, org)
        return self._json("DELETE", _catalog_path(catalog, "shares", principal), token_user,
                          query=[("kind", kind)])

    def subscribe_catalog(self, catalog, token_user):
        """Records the caller's subscription to a catalog (it must be readable by the caller)."""
        return self._json("POST", _catalog_path(catalog, "subscription"), token_user, ok=(200, 201),
                          body=_Body(b"", 0))

    def unsubscribe_catalog(self, catalog, token_user):
        """Drops the caller's subscription to a catalog (idempotent)."""
        return self._json("DELETE", _catalog_path(catalog, "subscription"), token_user)

    def list_catalogs(self, token_user):
        """The catalogs the caller owns, is shared, or subscribes to (a list of dicts)."""
        doc = self._json("GET", "/v1/catalogs", token_user)
        if isinstance(doc, dict):
            doc = doc.get("catalogs", [])
        return list(doc or [])

    def iter_objects(self, catalog, token_user, limit=1000, after=None, prefix=None):
        """Yields every object record of a catalog ({key, name, size, sha256, k, m, ...}),
        ordered by name, fetching page after page (``after`` = the last name seen); with
        ``prefix``, only the names that start with it (the gateway seeks to them)."""
        if not 1 <= int(limit) <= 1000:
            raise ValueError("limit must be 1..1000")
        path = _catalog_path(catalog, "objects")
        while True:
            q = [("limit", int(limit))]
            if after:
                q.append(("after", after))
            if prefix:
                q.append(("prefix", prefix))
            doc = self._json("GET", path, token_user, query=q)
            page = doc.get("objects", []) if isinstance(doc, dict) else (doc or [])
            for o in page:
                yield o
            nxt = doc.get("next") if isinstance(doc, dict) else None
            if not page or not nxt or nxt == after:
                return
            after = nxt

    def list_objects(self, catalog, token_user, limit=1000, prefix=None):
        """Every object record of a catalog (whose name starts with ``prefix``), as a list."""
        return list(self.iter_objects(catalog, token_user, limit=limit, prefix=prefix))

    # -- identity -------------------------------------------------------------------------------

    def login(self, username, password):
        """Exchanges a username and password for ``{token, expires_at}``."""
        raw = json.dumps({"username": username, "password": password}).encode()
        return self._json("POST", "/v1/auth/login", None, body=_Body(raw, len(raw)),
                          headers={"Content-Type": "application/json"}, idempotent=False)

    def whoami(self, token_user):
        return self._json("GET", "/v1/auth/whoami", token_user)

    def healthz(self):
        return self._json("GET", "/healthz", None)


# ---------------------------------------------------------------------------------------
# helpers


def _token_header(token):
    if token is None:
        return None
    if isinstance(token, (bytes, bytearray)):
        token = bytes(token).decode("ascii", "replace")
    if not isinstance(token, str):
        raise TypeError("token_user must be the token string")
    token = token.strip()
    if not token:
        return None
    if any(ch in token for ch in "\r\n\0") or not token.isprintable():
        raise ValueError("token_user contains control characters")
    return "Bearer " + token


def _headers(resp):
    return {k.lower(): v for k, v in resp.getheaders()}


def _read_bounded(resp, cap, drain=False):
    """Reads a response body of at most cap bytes (a larger one is an error, or with drain,
    is truncated: the connection is then not reused)."""
    length = resp.getheader("Content-Length")
    if length is not None and length.isdigit() and int(length) > cap and not drain:
        raise DynoError("reply of %s bytes is larger than %d" % (length, cap),
                        status=resp.status, code="too_large")
    data = resp.read(cap + 1)
    if len(data) > cap:
        if drain:
            return data[:cap]
        raise DynoError("reply larger than %d bytes" % cap, status=resp.status,
                        code="too_large")
    return data


def _oserror_text(e):
    s = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return s


def _catalog_path(catalog, sub=None, principal=None):
    """The REST path of a catalog in the "~" form (docs/protocol.md §9), which reaches every
    catalog: /v1/catalogs/owner/seg[/seg...] with every segment percent-encoded, then "/~",
    then, for a sub-resource, "/" and its name ("objects", "shares", "subscription") and a
    share's principal (its '/' escaped as %2F). "~" is never part of a catalog name, so no
    catalog can be taken for a sub-resource, even one named with a reserved word."""
    if not isinstance(catalog, str):
        raise TypeError("catalog must be a str like 'owner/name'")
    segs = catalog.strip("/").split("/")
    if len(segs) < 2 or any(not s for s in segs):
        raise ValueError("catalog must be 'owner/name[/name...]', not %r" % catalog)
    path = "/v1/catalogs/" + "/".join(urllib.parse.quote(s, safe="") for s in segs)
    path += "/~"
    if sub is not None:
        path += "/" + sub
    if principal is not None:
        path += "/" + urllib.parse.quote(principal, safe="")
    return path


def _principal(user, org):
    """("user", user) or ("org", org): exactly one of them, a non-empty str."""
    if (user is None) == (org is None):
        raise ValueError("give exactly one of user= or org=")
    p = user if user is not None else org
    if not isinstance(p, str) or not p:
        raise ValueError("the user or org must be a non-empty str")
    return ("user", p) if user is not None else ("org", p)


def _object_path(key):
    if not isinstance(key, str) or not key:
        raise TypeError("key must be the object key string (32 hex)")
    return "/v1/objects/" + urllib.parse.quote(key, safe="")


def _check_name(name):
    if not isinstance(name, str) or not name:
        raise ValueError("name must be a non-empty str")
    return name


def _resilience(r):
    """(k, m) from (k, m), "k,m" or {"k":..,"m":..}."""
    try:
        if isinstance(r, str):
            k, m = r.split(",")
        elif isinstance(r, dict):
            k, m = r["k"], r["m"]
        else:
            k, m = r
        k, m = int(k), int(m)
    except (ValueError, TypeError, KeyError):
        raise ValueError("resilience must be (k, m), 'k,m' or {'k':..,'m':..}, not %r"
                         % (r,)) from None
    if k < 1 or m < 0:
        raise ValueError("resilience needs k >= 1 and m >= 0")
    return k, m
