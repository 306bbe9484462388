"""The errno table (``rcfs.fs.errors.ERRNO_TABLE``) row by row, without a mount.

For every row an error of that row is built (with its status or cause when the row names
one): the row must be the one that decides it (no earlier row shadows it), the FUSE error
must carry the row's errno, and the one log line must name the operation, the problem in
words and the errno. ``tests/mount/test_mount_errno.py`` checks the README's rows through a mount.
"""

from __future__ import annotations

import errno
import logging
import re
from pathlib import Path

import pytest

from rcfs.api.errors import (
    ApiError,
    BudgetExhaustedError,
    ForeignHostError,
    RateLimitedError,
)
from rcfs.content.errors import ContentUnavailableError
from rcfs.fs.errors import ERRNO_TABLE, Row, fuse_error, row_for, to_errno
from rcfs.namespace.plugins import PluginError
from rcfs.outbox.protocol import OutboxError
from rcfs.refusal import Refusal

README = Path(__file__).resolve().parents[2] / "README.md"
# Answered by the FUSE layer itself, not through the table (see rcfs/fs/errors.py).
FUSE_OWN = {"EINTR", "EROFS", "EXDEV"}


def _make(cls: type[BaseException], status: int | None) -> BaseException:
    if issubclass(cls, ContentUnavailableError):
        return cls("vm/42", 1048576, "the download stalled")
    if issubclass(cls, RateLimitedError):
        return cls(status or 429, "CMN-301", "Request rate exceeded")
    if issubclass(cls, ApiError):
        return cls(status or 500, "CMN-101", "Internal server error")
    if issubclass(cls, BudgetExhaustedError):
        return cls("Heavy", 42.5)
    if issubclass(cls, ForeignHostError):
        return cls("https://elsewhere.example/media/1")
    return cls("the network said no")


def example(row: Row) -> BaseException:
    """An error this row decides."""
    if isinstance(row.error, Refusal):
        return OutboxError(row.error, f"Fax/+12125557464/a.pdf: {row.error.value} here")
    if row.cause is None:
        return _make(row.error, row.status)
    exc = _make(row.error, None)
    exc.__cause__ = _make(row.cause, row.status)
    return exc


def _label(row: Row) -> str:
    what = row.error.name if isinstance(row.error, Refusal) else row.error.__name__
    extra = "".join(f"-{x}" for x in (row.status, row.cause and row.cause.__name__) if x)
    return f"{what}{extra}"


@pytest.mark.parametrize("row", ERRNO_TABLE, ids=[_label(r) for r in ERRNO_TABLE])
def test_each_row(row: Row, caplog: pytest.LogCaptureFixture) -> None:
    exc = example(row)
    assert row_for(exc) is row, f"an earlier row decides {exc!r}: {row_for(exc)}"
    assert to_errno(exc) == row.errno
    with caplog.at_level(logging.WARNING, logger="rcfs.fs.errors"):
        err = fuse_error(exc, "open")
    assert err.errno == row.errno
    (record,) = [r for r in caplog.records if r.name == "rcfs.fs.errors"]
    line = record.getMessage()
    assert line.startswith("open failed: ")
    assert str(exc) in line and str(exc)  # the problem, in words
    assert f"({errno.errorcode[row.errno]})" in line


@pytest.mark.parametrize("kind", list(Refusal), ids=[k.name for k in Refusal])
def test_every_refusal_has_one_row_for_outbox_and_plugins(kind: Refusal) -> None:
    rows = [r for r in ERRNO_TABLE if r.error is kind]
    assert len(rows) == 1, kind
    for exc in (OutboxError(kind, "why"), PluginError(kind, "why")):
        assert to_errno(exc) == rows[0].errno


def test_status_and_cause_narrow_a_row() -> None:
    assert to_errno(ApiError(403, "CMN-403", "forbidden")) == errno.EACCES
    assert to_errno(ApiError(404, "CMN-102", "not found")) == errno.ENOENT
    assert to_errno(ApiError(409, "CMN-409", "conflict")) == errno.EIO
    read = ContentUnavailableError("vm/1", 0, "refused")
    assert to_errno(read) == errno.EIO
    read.__cause__ = ApiError(403, "CMN-403", "forbidden")
    assert to_errno(read) == errno.EACCES
    read.__cause__ = ApiError(500, "CMN-101", "oops")
    assert to_errno(read) == errno.EIO


def test_anything_else_is_eio() -> None:
    assert row_for(ValueError("bug")) is None
    assert to_errno(ValueError("bug")) == errno.EIO


def test_readme_names_every_errno_of_the_table() -> None:
    """The README's errno table and the Outbox section name what the table can return,
    and the table's rows return only errnos the code can produce."""
    text = README.read_text()
    section = text[text.index("### Errors (errno)"):]
    section = section[:section.index("\n#")]
    listed = set(re.findall(r"^\|[^|]*\| `(E[A-Z0-9]+)`", section, re.M))
    produced = {errno.errorcode[r.errno] for r in ERRNO_TABLE}
    assert listed, "no errno rows found in the README"
    assert listed <= produced | FUSE_OWN, listed - produced - FUSE_OWN
    missing = sorted(name for name in produced if f"`{name}`" not in text)
    assert not missing, f"README does not mention {missing}"
