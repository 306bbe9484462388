"""``RcfsOperations`` called directly (the fs-API level, see test_fs_api.py): how errors
reach the caller. Every row of the errno table, raised below a handler, arrives as its
errno; the content path's failed download at open; setxattr refusals, which the table maps
and logs; and the guard that turns a bug in a handler into EIO and one logged traceback.
"""

from __future__ import annotations

import errno
import inspect
import logging
import os
from typing import Any

import pytest

from rcfs.api.errors import ApiError, AuthRequiredError
from rcfs.content.errors import ContentUnavailableError
from rcfs.fs.errors import ERRNO_TABLE, Row
from rcfs.fs.inodes import ROOT
from rcfs.refusal import Refusal, Refused
from tests.fs_api_support import ALICE, CTX, Fs, fuse_errno, wait_until

# -- the errno table ------------------------------------------------------------------------

SAMPLES: dict[str, Any] = {"status": 500, "key": "vm/1", "offset": 0, "reason": "test",
                           "group": "Heavy", "wait_s": 5.0, "url": "https://elsewhere.test/",
                           "message": "test"}


def instance(kind: type[BaseException], status: int | None = None) -> BaseException:
    """An instance of ``kind`` from its required constructor arguments (by name)."""
    try:
        params = list(inspect.signature(kind).parameters.values())
    except ValueError:  # no __init__ of its own: Exception's (any arguments)
        return kind("test")
    samples = {**SAMPLES, "status": status or SAMPLES["status"]}
    args = [samples[p.name] for p in params if p.default is p.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    exc = kind(*args)
    if status is not None and isinstance(exc, ApiError):
        exc.status = status  # (a subclass with a default status)
    return exc


def example(row: Row) -> BaseException:
    """An error the row decides: of its class (or refusal), with its status and cause."""
    if isinstance(row.error, Refusal):
        return Refused(row.error, f"refused: {row.error.value}")
    if row.cause is None:
        return instance(row.error, row.status)
    exc = instance(row.error)
    exc.__cause__ = instance(row.cause, row.status)
    return exc


def _label(row: Row) -> str:
    what = row.error.name if isinstance(row.error, Refusal) else row.error.__name__
    return "-".join(str(x) for x in (what, row.status, row.cause and row.cause.__name__) if x)


@pytest.mark.parametrize("row", ERRNO_TABLE, ids=[_label(r) for r in ERRNO_TABLE])
async def test_errno_table_row(fs: Fs, row: Row) -> None:
    """Every row: the domain error raised below a handler reaches the caller as its errno."""
    exc = example(row)
    fs.index.fail = exc
    assert await fuse_errno(fs.ops.lookup(ROOT, os.fsencode(ALICE), CTX)) == row.errno
    fs.index.fail = None
    vm = await fs.lookup(ALICE, "Voicemail")
    fs.index.fail = exc
    assert await fuse_errno(fs.ops.opendir(vm.st_ino, CTX)) == row.errno


@pytest.mark.parametrize("exc, code", [
    (ApiError(403, "CMN-401"), errno.EACCES),
    (ApiError(404, "CMN-102"), errno.ENOENT),
    (ContentUnavailableError("vm/1", 0, "refused"), errno.EIO),
    (RuntimeError("a bug"), errno.EIO),
])
async def test_errno_special_cases(fs: Fs, exc: BaseException, code: int) -> None:
    fs.index.fail = exc
    assert await fuse_errno(fs.ops.lookup(ROOT, os.fsencode(ALICE), CTX)) == code


@pytest.mark.parametrize("fail, code", [
    (ApiError(403, "CMN-401"), errno.EACCES),
    (AuthRequiredError(), errno.EACCES),
    (ApiError(500, "CMN-101"), errno.EIO),
])
async def test_errno_of_a_failed_download_at_open(fs: Fs, fail: BaseException,
                                                  code: int) -> None:
    """The content path: the reader wraps the source's error, the table maps it."""
    fs.source.fail = fail
    vm1 = await fs.lookup(ALICE, "Voicemail", "vm1.mp3")
    assert await fuse_errno(fs.ops.open(vm1.st_ino, os.O_RDONLY, CTX)) == code
    await wait_until(lambda: not fs.reader.cache.held("vm/1"))  # the failed stream ended


async def test_setxattr_refusals_go_through_the_errno_table(
        fs: Fs, caplog: pytest.LogCaptureFixture) -> None:
    """An attribute nobody takes (ENOTSUP) and a read status that is neither Read nor
    Unread (EINVAL) are refusals: the table picks the errno and logs the reason."""
    vm1 = await fs.lookup(ALICE, "Voicemail", "vm1.mp3")
    folder = await fs.lookup(ALICE, "Voicemail")
    ops = fs.ops
    with caplog.at_level(logging.INFO, logger="rcfs.fs.errors"):
        nothing = ops.setxattr(vm1.st_ino, b"user.rc.nothing", b"v", CTX)
        assert await fuse_errno(nothing) == errno.ENOTSUP
        not_a_message = ops.setxattr(folder.st_ino, b"user.rc.read_status", b"Read", CTX)
        assert await fuse_errno(not_a_message) == errno.ENOTSUP
        maybe = ops.setxattr(vm1.st_ino, b"user.rc.read_status", b"Maybe", CTX)
        assert await fuse_errno(maybe) == errno.EINVAL
    notsup, inval = errno.errorcode[errno.ENOTSUP], errno.errorcode[errno.EINVAL]
    assert [r.getMessage() for r in caplog.records if r.name == "rcfs.fs.errors"] == [
        f"setxattr failed: {ALICE}/Voicemail/vm1.mp3: user.rc.nothing cannot be set here "
        f"({notsup})",
        f"setxattr failed: {ALICE}/Voicemail: user.rc.read_status cannot be set here "
        f"({notsup})",
        f"setxattr failed: {ALICE}/Voicemail/vm1.mp3: user.rc.read_status 'Maybe' is not "
        f"Read or Unread ({inval})"]
    assert fs.index.read_status == []


class Broken:
    """A part of the operations that fails on any use, as a bug would."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"a bug: {name}")


@pytest.mark.parametrize("handler, part", [("statfs", "reader"), ("releasedir", "handles")])
async def test_an_unexpected_error_is_eio_and_logged(
        fs: Fs, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        handler: str, part: str) -> None:
    """statfs and releasedir are guarded like every handler that replies: a bug inside
    costs that request (EIO) and one logged traceback, never the mount."""
    fh = await fs.ops.opendir(ROOT, CTX)
    monkeypatch.setattr(fs.ops, part, Broken())
    call = fs.ops.statfs(CTX) if handler == "statfs" else fs.ops.releasedir(fh)
    with caplog.at_level(logging.ERROR, logger="rcfs.fs.guard"):
        assert await fuse_errno(call) == errno.EIO
    (record,) = [r for r in caplog.records if r.name == "rcfs.fs.guard"]
    assert record.getMessage() == f"unexpected error in {handler}"
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)
