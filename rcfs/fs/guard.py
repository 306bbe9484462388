"""The error boundary of every FUSE handler: no exception escapes to pyfuse3.

Domain errors and refusals (the outbox's, the namespace view's, the plugins':
``rcfs.refusal``) become their errno through ``errors.ERRNO_TABLE`` (one log line, naming
the operation); anything unexpected becomes EIO with a logged traceback, so a bug costs one
failed request, never the mount.
"""

from __future__ import annotations

import errno
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import pyfuse3

from rcfs.api.errors import RcError
from rcfs.fs.errors import fuse_error
from rcfs.refusal import Refused

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["guard"]


def guard(
    what: str,
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Decorate a handler named ``what`` (in log lines) with the boundary above."""
    def wrap(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(fn)
        async def handler(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await fn(*args, **kwargs)
            except pyfuse3.FUSEError:
                raise
            except (RcError, Refused) as exc:
                raise fuse_error(exc, what) from None
            except Exception:
                log.exception("unexpected error in %s", what)
                raise pyfuse3.FUSEError(errno.EIO) from None
        return handler
    return wrap
