"""DynoStore Python client (standard library only).

    from dynostore.client import Client            # REST client of the gateway
    from dynostore.proxystore import DynoConnector  # ProxyStore connector
    from dynostore.errors import DynoError, NotFoundError, ...
"""

from .errors import (BadRequestError, ConflictError, DynoError, ForbiddenError,  # noqa: F401
                     NotFoundError, TooLargeError, TooManyRequestsError, UnauthorizedError,
                     UnavailableError)

__version__ = "0.1.0"

__all__ = ["Client", "RetryPolicy", "DynoConnector", "DynoKey", "DynoError",
           "BadRequestError", "UnauthorizedError", "ForbiddenError", "NotFoundError",
           "ConflictError", "TooLargeError", "TooManyRequestsError", "UnavailableError", "__version__"]


def __getattr__(name):
    # lazy, so that `import dynostore.errors` stays light
    if name in ("Client", "RetryPolicy"):
        from . import client
        return getattr(client, name)
    if name in ("DynoConnector", "DynoKey"):
        from . import proxystore
        return getattr(proxystore, name)
    raise AttributeError("module 'dynostore' has no attribute %r" % name)
