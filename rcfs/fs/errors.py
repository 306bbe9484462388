"""One table from domain errors to errno values (the README's errno table, row by row).

Every error a request can end with below the FUSE layer is a row here: the API client's
(``rcfs.api.errors``), the content engine's (``rcfs.content.errors``), and the refusals of
the outbox, the namespace view (a message's read status) and the namespace's plugins
(``rcfs.refusal``: each says what is wrong, never an errno).
``tests/unit/test_fs_errno_table.py`` builds an error for every row.

Besides this table, the FUSE layer answers EINTR itself when the reading process is
interrupted or killed while it waits (``rcfs.fs.waits``), and ENOENT/EROFS/EXDEV/EBADF...
for requests that make no sense in the tree.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass

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
from rcfs.refusal import Refusal, Refused

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Row:
    """Errors of class ``error`` (or refusals of that kind) get ``errno``; ``status`` and
    ``cause`` narrow the row to an HTTP status, or to errors raised from a ``cause``."""

    error: type[BaseException] | Refusal
    errno: int
    status: int | None = None  # the ApiError's status (the cause's, with ``cause``)
    cause: type[BaseException] | None = None  # ``__cause__`` must be one of these

    def matches(self, exc: BaseException) -> bool:
        if isinstance(self.error, Refusal):
            return isinstance(exc, Refused) and exc.kind is self.error
        if not isinstance(exc, self.error):
            return False
        subject: BaseException | None = exc
        if self.cause is not None:
            subject = exc.__cause__
            if not isinstance(subject, self.cause):
                return False
        return self.status is None or (isinstance(subject, ApiError)
                                       and subject.status == self.status)


# Most specific first: the first matching row wins.
ERRNO_TABLE: tuple[Row, ...] = (
    # a read the credentials may not make
    Row(ContentUnavailableError, errno.EACCES, cause=AuthRequiredError),
    Row(ContentUnavailableError, errno.EACCES, status=403, cause=ApiError),
    Row(ContentNotFoundError, errno.EIO),  # listed but the server has no bytes (purged)
    Row(ContentThrottledError, errno.EAGAIN),  # no request slot before the deadline
    Row(ContentTimeoutError, errno.EAGAIN),  # slow download: try again later
    Row(ContentOfflineError, errno.ENETUNREACH),  # not cached and RingCentral unreachable
    Row(NotSentError, errno.ENETUNREACH),
    Row(BudgetExhaustedError, errno.EAGAIN),
    Row(ApiError, errno.EACCES, status=403),
    Row(ApiError, errno.ENOENT, status=404),
    Row(RateLimitedError, errno.EAGAIN),
    Row(DeadlineExceededError, errno.ETIMEDOUT),
    Row(AuthRequiredError, errno.EACCES),
    Row(ForeignHostError, errno.EACCES),
    Row(TransportError, errno.EIO),
    Row(ContentUnavailableError, errno.EIO),
    Row(ApiError, errno.EIO),
    Row(RcError, errno.EIO),
    # Requests the outbox, the namespace view or a plugin refuses (what close/mkdir/rename/
    # setxattr return).
    Row(Refusal.INVALID, errno.EINVAL),
    Row(Refusal.TOO_BIG, errno.EFBIG),
    Row(Refusal.TOO_MANY_PARTS, errno.E2BIG),
    Row(Refusal.EMPTY, errno.ENODATA),
    Row(Refusal.NOT_UTF8, errno.EILSEQ),
    Row(Refusal.TEXT_TOO_LONG, errno.EMSGSIZE),
    Row(Refusal.NAME_TOO_LONG, errno.ENAMETOOLONG),
    Row(Refusal.UNSUPPORTED, errno.ENOTSUP),
    Row(Refusal.NOT_PERMITTED, errno.EPERM),
    Row(Refusal.NOT_HERE, errno.EACCES),
    Row(Refusal.READ_ONLY, errno.EACCES),
    Row(Refusal.NOT_FOUND, errno.ENOENT),
    Row(Refusal.EXISTS, errno.EEXIST),
    Row(Refusal.BUSY, errno.EBUSY),
    Row(Refusal.IS_FOLDER, errno.EISDIR),
    Row(Refusal.NOT_EMPTY, errno.ENOTEMPTY),
    Row(Refusal.NO_SPACE, errno.ENOSPC),
    Row(Refusal.NOT_READY, errno.EAGAIN),
    Row(Refusal.BAD_HANDLE, errno.EBADF),
)


def row_for(exc: BaseException) -> Row | None:
    """The row that decides ``exc``'s errno (None: not a domain error, EIO)."""
    return next((row for row in ERRNO_TABLE if row.matches(exc)), None)


def to_errno(exc: BaseException) -> int:
    row = row_for(exc)
    return errno.EIO if row is None else row.errno


def fuse_error(exc: BaseException, what: str) -> pyfuse3.FUSEError:
    """Log once, naming the operation, and return the FUSEError to raise."""
    code = to_errno(exc)
    log.warning("%s failed: %s (%s)", what, exc, errno.errorcode.get(code, code))
    return pyfuse3.FUSEError(code)
