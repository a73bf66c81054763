"""Exceptions of the DynoStore Python client.

Every error the client raises for a failed call is a :class:`DynoError` (or a subclass). It
carries what the gateway said, when it said anything:

``status``
    the HTTP status (``404``), or ``None`` when no HTTP answer came back at all
    (connection refused, host unreachable, DNS failure, timeout, cut connection);
``code``
    the machine-readable code of the gateway's error body ``{"error":{"code","message"}}``
    (``"not_found"``, ``"unauthorized"``, ``"unavailable"``, ...), or one of the client's own
    codes when the gateway did not answer: ``"unreachable"``, ``"timeout"``,
    ``"connection_lost"``, ``"corrupt"`` (bytes did not match the digest the gateway announced);
``message``
    a human-readable explanation.

Subclasses, by HTTP status:

=====================  ======  =========================================================
class                  status  meaning
=====================  ======  =========================================================
BadRequestError        400     bad name, bad catalog path, bad resilience, bad body
UnauthorizedError      401     no token, a bad, expired or revoked token
ForbiddenError         403     authenticated, but not allowed (catalog of someone else)
NotFoundError          404     no such object, catalog or route
ConflictError          409     the state does not allow it (already exists, not empty)
TooLargeError          413     the object or a body is over a configured limit
TooManyRequestsError   429     a limit of the gateway (connections from one address,
                               login attempts, event streams of one user); ``retry_after``
                               holds the seconds to wait
UnavailableError       503     the fabric is not ready (too few containers, a service is
                       (None)  down) **or** the gateway cannot be reached at all
                               (connection refused, unreachable, DNS); ``retry_after``
                               holds the server's Retry-After in seconds, if any
=====================  ======  =========================================================

Anything else (500, 502, 504, 507, a protocol error) is a plain :class:`DynoError` with its
status and code.
"""

__all__ = [
    "DynoError",
    "BadRequestError",
    "TooManyRequestsError",
    "UnauthorizedError",
    "ForbiddenError",
    "NotFoundError",
    "ConflictError",
    "TooLargeError",
    "UnavailableError",
    "error_for_status",
]


class DynoError(Exception):
    """Base class of every DynoStore client error."""

    default_code = "error"

    def __init__(self, message, status=None, code=None, retry_after=None):
        self.message = str(message)
        self.status = status
        self.code = code or self.default_code
        self.retry_after = retry_after
        super().__init__(self.message)

    def __str__(self):
        where = "HTTP %d" % self.status if self.status is not None else "no HTTP answer"
        return "%s (%s, %s)" % (self.message, where, self.code)

    def __repr__(self):
        return "%s(status=%r, code=%r, message=%r)" % (
            type(self).__name__, self.status, self.code, self.message)

    def __reduce__(self):
        # picklable (errors cross process boundaries in workflow systems)
        return (_rebuild, (type(self), self.message, self.status, self.code, self.retry_after))


def _rebuild(cls, message, status, code, retry_after):
    return cls(message, status=status, code=code, retry_after=retry_after)


class BadRequestError(DynoError):
    """400: the request was malformed (bad name, catalog path, resilience, body)."""

    default_code = "bad_request"


class UnauthorizedError(DynoError):
    """401: missing, malformed, expired or revoked token."""

    default_code = "unauthorized"


class ForbiddenError(DynoError):
    """403: the token is valid but the caller may not do this."""

    default_code = "forbidden"


class NotFoundError(DynoError):
    """404: no such object, catalog or route."""

    default_code = "not_found"


class ConflictError(DynoError):
    """409: the current state does not allow the request."""

    default_code = "conflict"


class TooLargeError(DynoError):
    """413: the object (or a request part) is over a configured limit."""

    default_code = "too_large"


class TooManyRequestsError(DynoError):
    """429: over a limit of the gateway; wait ``retry_after`` seconds and try again."""

    default_code = "too_many_requests"


class UnavailableError(DynoError):
    """503 from the gateway, or the gateway could not be reached at all (status None)."""

    default_code = "unavailable"


_BY_STATUS = {
    400: BadRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: TooLargeError,
    429: TooManyRequestsError,
    503: UnavailableError,
}


def error_for_status(status, code=None, message=None, retry_after=None):
    """The exception for an HTTP error reply (not raised)."""
    cls = _BY_STATUS.get(status, DynoError)
    if not message:
        message = "HTTP %d from the gateway" % status
    return cls(message, status=status, code=code or (cls.default_code if cls is not DynoError
                                                     else "http_%d" % status),
               retry_after=retry_after)
