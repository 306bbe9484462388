"""One table from domain errors to errno values (the README's errno table, row by row).

Besides this table, the FUSE layer answers EINTR itself when the reading process is
interrupted or killed while it waits (``rcfs.fs.waits``), and ENOENT/EROFS/EBADF... for
requests that make no sense in the tree.
"""

from __future__ import annotations

import errno
import logging

import pyfuse3

from rcfs.api.errors import (
    ApiError,
    AuthRequiredError,
    BudgetExhaustedError,
    DeadlineExceededError,
    ForeignHostError,
    NotSentError,
    RateLimitedError,
    RcError,
    TransportError,
)
from rcfs.content.errors import (
    ContentNotFoundError,
    ContentOfflineError,
    ContentThrottledError,
    ContentTimeoutError,
    ContentUnavailableError,
)

log = logging.getLogger(__name__)

# Most specific first: the first isinstance match wins.
ERRNO_TABLE: tuple[tuple[type[BaseException], int], ...] = (
    (ContentNotFoundError, errno.EIO),  # listed but the server has no bytes (purged)
    (ContentThrottledError, errno.EAGAIN),  # no request slot before the deadline
    (ContentTimeoutError, errno.EAGAIN),  # slow download: try again later
    (ContentOfflineError, errno.ENETUNREACH),  # not cached and RingCentral unreachable
    (NotSentError, errno.ENETUNREACH),
    (BudgetExhaustedError, errno.EAGAIN),
    (RateLimitedError, errno.EAGAIN),
    (DeadlineExceededError, errno.ETIMEDOUT),
    (AuthRequiredError, errno.EACCES),
    (ForeignHostError, errno.EACCES),
    (TransportError, errno.EIO),
    (ContentUnavailableError, errno.EIO),
    (ApiError, errno.EIO),
    (RcError, errno.EIO),
)


def to_errno(exc: BaseException) -> int:
    cause = exc.__cause__
    if isinstance(exc, ContentUnavailableError) and (
            (isinstance(cause, ApiError) and cause.status == 403)
            or isinstance(cause, AuthRequiredError)):
        return errno.EACCES  # a read the credentials may not make
    for kind, code in ERRNO_TABLE:
        if isinstance(exc, kind):
            if isinstance(exc, ApiError) and exc.status == 403:
                return errno.EACCES
            if isinstance(exc, ApiError) and exc.status == 404:
                return errno.ENOENT
            return code
    return errno.EIO


def fuse_error(exc: BaseException, what: str) -> pyfuse3.FUSEError:
    """Log once, naming the operation, and return the FUSEError to raise."""
    code = to_errno(exc)
    log.warning("%s failed: %s (%s)", what, exc, errno.errorcode.get(code, code))
    return pyfuse3.FUSEError(code)
