"""A ProxyStore connector for DynoStore (standard library only; ProxyStore is not imported).

    from proxystore.store import Store
    from dynostore.proxystore import DynoConnector

    store = Store("dyno", DynoConnector("https://gw:8443", token, "alice/proxies",
                                        cafile="ca.pem"))
    p = store.proxy(big_array)          # bytes go to DynoStore, the proxy is tiny

The connector implements ProxyStore's ``Connector`` protocol (put, get, exists, evict,
put_batch, get_batch, close, config, from_config) and its ``DeferrableConnector`` extension
(new_key, set). Objects are stored in one catalog; keys are :class:`DynoKey` named tuples.

Deferred keys. DynoStore assigns an object's key on the server, when the object is put, so a
key cannot be reserved before the bytes exist. ``new_key()`` therefore reserves a *name*
instead: a fresh ``uuid4().hex``, returned as ``DynoKey(dyno_key=None, name=..., catalog=...)``.
``set(key, obj)`` puts the object under that name. ``get``/``exists``/``evict`` of such a key
first resolve the name to the object's key:

1. from the connector's own memory (every ``set`` records name -> key), else
2. by listing the catalog on the gateway, which has no lookup by name: the listing is
   ordered by name, so the connector asks for the page that starts right after the name's
   prefix (``after=name[:-1]``) and reads only until the names stop sharing that prefix,
   which for uuid names is one request with one or two entries.

Limitations: a name-resolved get costs one extra listing request in a process that did not
do the ``set`` itself; ``set`` twice on the same key replaces the object (DynoStore puts of
an existing name are atomic replacements, readers see the old or the new bytes); the
catalog must be readable by every process that resolves proxies.

The token. ``config()`` holds what ``from_config()`` needs to rebuild the connector in
another process, and ProxyStore ships it inside every proxy. If that is not wanted, pass
``token_file=`` (a path readable where proxies are resolved) or leave ``token_user`` None and
set ``DYNOSTORE_TOKEN`` in the workers' environment: the token itself then stays out of the
config.
"""

import concurrent.futures
import os
import threading
import uuid
from typing import NamedTuple, Optional

from .client import Client, RetryPolicy
from .errors import ForbiddenError, NotFoundError

__all__ = ["DynoKey", "DynoConnector"]

LOOKUP_PAGE = 16     # listing page size when resolving a name


class DynoKey(NamedTuple):
    """Key of an object stored through :class:`DynoConnector`.

    dyno_key: the object's DynoStore key (32 hex), or None for a key from ``new_key()``
              whose object is found by name.
    name:     the object's name in the catalog (set for deferred keys), or None.
    catalog:  the catalog the object lives in (``owner/path``), or None for the connector's.
    """

    dyno_key: Optional[str]
    name: Optional[str] = None
    catalog: Optional[str] = None


class DynoConnector:
    """ProxyStore connector over a DynoStore gateway.

    apigateway:     the gateway, ``host:port`` or ``http(s)://host:port``.
    token_user:     the bearer token (or None: read from token_file, else $DYNOSTORE_TOKEN).
    catalog:        the catalog objects go to, ``owner/path``.
    token_file:     a file holding the token, read when the connector is built.
    cafile:         CA bundle for an https gateway.
    resilience:     ``(k, m)`` for every put (default: the catalog's).
    timeout:        socket timeout in seconds.
    retries:        attempts per call on 503 / unreachable (see RetryPolicy).
    batch_workers:  concurrent requests in put_batch / get_batch (1 = one after the other).
    create_catalog: create the catalog (an idempotent PUT) before the first write.
    verify:         check SHA-256 of what is sent and received.
    """

    def __init__(self, apigateway, token_user=None, catalog=None, *, token_file=None,
                 cafile=None, resilience=None, timeout=300.0, retries=5, batch_workers=4,
                 create_catalog=True, verify=True):
        if not catalog or not isinstance(catalog, str):
            raise ValueError("DynoConnector needs a catalog ('owner/path')")
        self.apigateway = apigateway
        self.catalog = catalog.strip("/")
        self._explicit_token = token_user
        self.token_file = token_file
        self.cafile = cafile
        self.resilience = tuple(resilience) if isinstance(resilience, (list, tuple)) \
            else resilience
        self.timeout = timeout
        self.retries = int(retries)
        self.batch_workers = max(1, int(batch_workers))
        self.create_catalog = bool(create_catalog)
        self.verify = bool(verify)
        self._token = self._resolve_token(token_user, token_file)
        self.client = Client(apigateway, cafile=cafile, timeout=timeout,
                             retry=RetryPolicy(attempts=self.retries), verify=verify)
        self._names = {}             # (catalog, name) -> dyno key, from set() and lookups
        self._lock = threading.Lock()
        self._catalog_ready = not self.create_catalog
        self._pool = None

    @staticmethod
    def _resolve_token(token, token_file):
        if token:
            return token.strip()
        if token_file:
            with open(os.path.expanduser(token_file)) as fh:
                return fh.read().strip()
        env = os.environ.get("DYNOSTORE_TOKEN", "").strip()
        if env:
            return env
        raise ValueError("no token: pass token_user or token_file, or set DYNOSTORE_TOKEN")

    def __repr__(self):
        return "DynoConnector(%r, catalog=%r)" % (self.client.gateway, self.catalog)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # -- Connector protocol ---------------------------------------------------------------

    def close(self):
        """Closes the connections and the batch thread pool (the connector stays usable:
        they are opened again when needed)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self.client.close()

    def config(self):
        """Everything from_config() needs (JSON-serializable). Holds the token only when it
        was given as token_user; see the module documentation."""
        return {
            "apigateway": self.apigateway,
            "token_user": self._explicit_token,
            "catalog": self.catalog,
            "token_file": self.token_file,
            "cafile": self.cafile,
            "resilience": list(self.resilience) if isinstance(self.resilience, tuple)
            else self.resilience,
            "timeout": self.timeout,
            "retries": self.retries,
            "batch_workers": self.batch_workers,
            "create_catalog": self.create_catalog,
            "verify": self.verify,
        }

    @classmethod
    def from_config(cls, config):
        """A new connector from config() (unknown keys are an error)."""
        cfg = dict(config)
        apigateway = cfg.pop("apigateway")
        token = cfg.pop("token_user", None)
        catalog = cfg.pop("catalog")
        return cls(apigateway, token, catalog, **cfg)

    def put(self, obj):
        """Stores obj (bytes-like) as a new object of the catalog; returns its DynoKey."""
        self._ensure_catalog()
        key = self.client.put(obj, self._token, self.catalog, resilience=self.resilience)
        return DynoKey(key, None, self.catalog)

    def get(self, key):
        """The bytes of key's object, or None when there is no such object."""
        k = self._resolve(key)
        if k is None:
            return None
        try:
            return self.client.get(k, self._token)
        except NotFoundError:
            pass
        # a cached name may point at an object since replaced by a new set(): look again
        k2 = self._refresh(key, k)
        if k2 is None:
            return None
        try:
            return self.client.get(k2, self._token)
        except NotFoundError:
            return None

    def exists(self, key):
        """True when key's object exists."""
        k = self._resolve(key)
        if k is None:
            return False
        if self.client.exists(k, self._token):
            return True
        k2 = self._refresh(key, k)
        return k2 is not None and self.client.exists(k2, self._token)

    def evict(self, key):
        """Removes key's object; a missing object is not an error (as in ProxyStore)."""
        k = self._resolve(key)
        if k is None:
            return
        try:
            self.client.evict(k, self._token)
        except NotFoundError:
            pass
        if isinstance(key, DynoKey) and key.name is not None:
            with self._lock:
                self._names.pop((key.catalog or self.catalog, key.name), None)

    def put_batch(self, objs):
        """put() of every object; keys in the same order. Runs batch_workers puts at a time;
        if one fails the error is raised and the objects already stored stay stored."""
        objs = list(objs)
        if objs:
            self._ensure_catalog()
        return self._map(self.put, objs)

    def get_batch(self, keys):
        """get() of every key, in order (None for a missing object)."""
        return self._map(self.get, list(keys))

    # -- DeferrableConnector protocol -------------------------------------------------------

    def new_key(self, obj=None):
        """A key for an object that set() will store later (obj is ignored): it carries a
        fresh unique name (uuid4 hex) and the catalog; see the module documentation."""
        return DynoKey(None, uuid.uuid4().hex, self.catalog)

    def set(self, key, obj):
        """Stores obj under key's name (a key from new_key())."""
        if not isinstance(key, DynoKey) or not key.name:
            raise ValueError("set() needs a key from new_key() (one that carries a name)")
        catalog = key.catalog or self.catalog
        self._ensure_catalog()
        k = self.client.put(obj, self._token, catalog, name=key.name,
                            resilience=self.resilience)
        with self._lock:
            self._names[(catalog, key.name)] = k

    # -- helpers ------------------------------------------------------------------------------

    def _ensure_catalog(self):
        if self._catalog_ready:
            return
        try:
            self.client.create_catalog(self.catalog, self._token)
        except ForbiddenError:
            # someone else's catalog shared with us: the put says whether we may write
            pass
        self._catalog_ready = True

    def _map(self, fn, items):
        if self.batch_workers <= 1 or len(items) <= 1:
            return [fn(x) for x in items]
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.batch_workers, thread_name_prefix="dyno-batch")
            pool = self._pool
        return list(pool.map(fn, items))

    def _resolve(self, key):
        """The DynoStore key of a connector key, or None when no object goes by its name."""
        if isinstance(key, str):
            return key
        if not isinstance(key, tuple):
            raise TypeError("not a DynoKey: %r" % (key,))
        if not isinstance(key, DynoKey):
            key = DynoKey(*key)
        if key.dyno_key:
            return key.dyno_key
        if not key.name:
            raise ValueError("a DynoKey needs dyno_key or name")
        catalog = key.catalog or self.catalog
        with self._lock:
            k = self._names.get((catalog, key.name))
        if k is not None:
            return k
        k = self._lookup_name(catalog, key.name)
        if k is not None:
            with self._lock:
                self._names[(catalog, key.name)] = k
        return k

    def _refresh(self, key, stale):
        """After a cached name -> key mapping failed: look the name up again."""
        if not isinstance(key, tuple) or isinstance(key, str):
            return None
        key = key if isinstance(key, DynoKey) else DynoKey(*key)
        if key.dyno_key or not key.name:
            return None
        catalog = key.catalog or self.catalog
        with self._lock:
            self._names.pop((catalog, key.name), None)
        k = self._lookup_name(catalog, key.name)
        if k is None or k == stale:
            return None
        with self._lock:
            self._names[(catalog, key.name)] = k
        return k

    def _lookup_name(self, catalog, name):
        """The key of the object called name in catalog, from the paginated listing (ordered
        by name): start right after name's prefix, stop once names leave that prefix."""
        prefix = name[:-1]
        after = prefix if prefix and prefix not in (".", "..") else None
        try:
            for o in self.client.iter_objects(catalog, self._token, limit=LOOKUP_PAGE,
                                              after=after):
                n = o.get("name")
                if n == name:
                    return o.get("key")
                if after is not None and not str(n).startswith(prefix):
                    return None
        except NotFoundError:
            return None     # no such catalog
        return None
