"""Errors a content read can end with; the FUSE layer maps them to errno in its one table."""

from __future__ import annotations

from rcfs.api.errors import DeadlineExceededError, RcError


class ContentUnavailableError(RcError):
    """The bytes asked for are not cached and could not be fetched: the message says which
    content, which offset, and why (budget empty, network error, ...); ``__cause__`` holds
    the underlying API error when there is one."""

    def __init__(self, key: str, offset: int, reason: str) -> None:
        super().__init__(key, offset, reason)
        self.key = key
        self.offset = offset
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.key}: bytes at {self.offset} unavailable: {self.reason}"


class ContentTimeoutError(ContentUnavailableError, DeadlineExceededError):
    """The caller's deadline passed while waiting for bytes (slow or stalled download, a
    budget that frees too late). Also a ``DeadlineExceededError`` for the errno table."""


class ContentNotFoundError(ContentUnavailableError):
    """The server says the content does not exist (404/410): deleted or purged upstream."""


class ContentThrottledError(ContentUnavailableError):
    """The request budget (or a 429 penalty) would not free a request before the caller's
    deadline: try again later (EAGAIN)."""


class ContentOfflineError(ContentUnavailableError):
    """RingCentral cannot be reached (no connection could be made) and the bytes are not
    cached."""
