"""``RcfsOperations`` called directly, without a kernel (the fs-API level, in the manner of
s3ql's ``t3_fs_api.py``): fake request contexts, a patched ``pyfuse3.readdir_reply`` that
collects entries (and can refuse them, as a full kernel buffer does), a real content reader
and block cache over an in-memory source, and a fixed metadata index.

What the kernel relies on is checked here, where a failure names the handler: lookup counts
and forget, readdir resumption from an offset, EROFS and EXDEV, the page-cache choice at
open, extended attributes and statfs. How errors reach the caller (every row of the errno
table, refusals, the guard) is in test_fs_api_errors.py; the fixtures are in conftest.py.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pyfuse3
import pytest
import trio
import trio.testing

from rcfs.fs.inodes import ROOT
from rcfs.fs.ops import MountOptions
from rcfs.namespace.view import CONTROL_DIR, OUTBOX, STATUS_FILE
from rcfs.refusal import Refusal, Refused
from tests.fs_api_support import (
    ALICE,
    BOB,
    CTX,
    VM1,
    VM2,
    Fs,
    Kernel,
    fuse_errno,
    make_fs,
    readdir,
    ref,
    wait_until,
)

# -- readdir --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def reply_buffer(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """``pyfuse3.readdir_reply`` collecting into the token (a list); the buffer's room in
    entries is ``room[0]`` (as a kernel buffer, it refuses the entry that does not fit)."""
    room = [1 << 30]

    def reply(token: Any, name: bytes, attr: pyfuse3.EntryAttributes, next_id: int) -> bool:
        if len(token) >= room[0]:
            return False
        token.append((os.fsdecode(name), attr, next_id))
        return True

    monkeypatch.setattr(pyfuse3, "readdir_reply", reply)
    yield room


async def test_root_shows_mailboxes_and_control_folder(fs: Fs) -> None:
    assert await fs.listdir() == sorted([ALICE, BOB, CONTROL_DIR])
    assert await fs.listdir(ALICE) == ["Many", OUTBOX, "Texts", "Voicemail"]
    assert await fs.listdir(ALICE, OUTBOX) == ["fax"]
    assert await fs.listdir(CONTROL_DIR) == [STATUS_FILE]


@pytest.mark.parametrize("folder", [(ALICE, "Many"), (ALICE,), ()])
async def test_readdir_resumes_from_offset(fs: Fs, reply_buffer: list[int],
                                           folder: tuple[str, ...]) -> None:
    """The kernel's buffer fills mid-listing (the refused entry is not counted as looked
    up) and it asks again from the last offset it kept: every name once, in order."""
    whole = await fs.listdir(*folder)
    inode = (await fs.lookup(*folder)).st_ino if folder else ROOT
    fh = await fs.ops.opendir(inode, CTX)
    reply_buffer[0] = 2
    names: list[str] = []
    start = 0
    for _ in range(100):
        got = await readdir(fs.ops, fh, start)
        if not got:
            break
        assert len(got) <= 2
        names += [name for name, _, _ in got]
        assert [n for _, _, n in got] == list(range(start + 1, start + len(got) + 1))
        start = got[-1][2]
    await fs.ops.releasedir(fh)
    assert names == whole
    if folder == (ALICE, "Many"):
        assert len(names) == 40
    # Each entry handed over counts one lookup (two listings: two), the refused ones none.
    for name in names:
        ino = fs.ops.inodes.known((*folder, name))
        assert ino is not None
        assert fs.ops.inodes.forget(ino, 2)


async def test_readdir_of_unknown_handle_is_ebadf(fs: Fs) -> None:
    with pytest.raises(pyfuse3.FUSEError) as err:
        await readdir(fs.ops, 999)
    assert err.value.errno == errno.EBADF


# -- lookup counts and forget ---------------------------------------------------------------


async def test_lookup_counts_keep_inode_until_forgotten(fs: Fs) -> None:
    path = (ALICE, "Voicemail", "vm2.pdf")
    first = (await fs.lookup(*path)).st_ino
    again = (await fs.lookup(*path)).st_ino
    assert first == again
    # The message is deleted on the server: the inode stays valid while the kernel holds it.
    fs.index.remove("101", path[1:])
    await fs.ops.forget([(first, 1)])
    assert fs.ops.inodes.path(first) == path
    assert fs.ops.inodes.referenced(first)
    await fs.ops.forget([(first, 1)])
    assert fs.ops.inodes.path(first) is None
    assert fs.ops.inodes.known(path) is None
    with pytest.raises(pyfuse3.FUSEError) as err:
        await fs.ops.getattr(first, CTX)
    assert err.value.errno == errno.ENOENT


async def test_forgotten_inode_of_a_present_file_keeps_its_number(fs: Fs) -> None:
    path = (ALICE, "Texts", "hello.txt")
    ino = (await fs.lookup(*path)).st_ino
    await fs.ops.forget([(ino, 1)])
    assert not fs.ops.inodes.referenced(ino)
    assert (await fs.lookup(*path)).st_ino == ino
    attr = await fs.ops.getattr(ino, CTX)
    assert attr.st_size == len(b"hello\n")


async def test_probe_names_are_negative_without_resolving(fs: Fs) -> None:
    attr = await fs.ops.lookup(ROOT, b".Trash-1000", CTX)
    assert attr.st_ino == 0 and attr.entry_timeout > 0
    with pytest.raises(pyfuse3.FUSEError) as err:
        await fs.ops.lookup(ROOT, b"nobody", CTX)
    assert err.value.errno == errno.ENOENT


# -- EROFS and EXDEV ------------------------------------------------------------------------


@dataclass
class Fields:
    """A ``pyfuse3.SetattrFields`` (whose attributes pyfuse3 makes read-only)."""

    update_size: bool = False
    update_mode: bool = False


async def test_writes_outside_the_outbox_are_erofs(fs: Fs) -> None:
    vm = await fs.lookup(ALICE, "Voicemail")
    vm2 = await fs.lookup(ALICE, "Voicemail", "vm2.pdf")
    ops = fs.ops
    fields = cast(pyfuse3.SetattrFields, Fields(update_size=True))
    refused = {
        "open for write": ops.open(vm2.st_ino, os.O_WRONLY, CTX),
        "open with O_TRUNC": ops.open(vm2.st_ino, os.O_RDONLY | os.O_TRUNC, CTX),
        "create": ops.create(vm.st_ino, b"new.txt", 0o644, os.O_WRONLY, CTX),
        "mkdir": ops.mkdir(vm.st_ino, b"sub", 0o755, CTX),
        "rmdir": ops.rmdir(ROOT, os.fsencode(ALICE), CTX),
        "unlink": ops.unlink(vm.st_ino, b"vm2.pdf", CTX),
        "truncate": ops.setattr(vm2.st_ino, pyfuse3.EntryAttributes(), fields, None, CTX),
        "rename": ops.rename(vm.st_ino, b"vm2.pdf", vm.st_ino, b"x.pdf", 0, CTX),
        "removexattr": ops.removexattr(vm2.st_ino, b"user.rc.read_status", CTX),
        "symlink": ops.symlink(vm.st_ino, b"l", b"vm2.pdf", CTX),
        "link": ops.link(vm2.st_ino, vm.st_ino, b"l", CTX),
        "mknod": ops.mknod(vm.st_ino, b"n", 0o644, 0, CTX),
    }
    got = {what: await fuse_errno(call) for what, call in refused.items()}
    assert got == dict.fromkeys(refused, errno.EROFS)
    assert fs.index.deleted == [] and fs.outbox.calls == []


async def test_delete_with_allow_delete(tmp_path: Path, kernel: Kernel) -> None:
    async with make_fs(tmp_path, kernel, MountOptions(allow_delete=True)) as fs:
        vm = await fs.lookup(ALICE, "Voicemail")
        await fs.ops.unlink(vm.st_ino, b"vm2.pdf", CTX)
        assert fs.index.deleted == [("101", "m2")]
        assert kernel.entries == [(vm.st_ino, b"vm2.pdf")]


async def test_renames_out_of_an_outbox_are_exdev_or_erofs(fs: Fs) -> None:
    mine = await fs.lookup(ALICE, OUTBOX, "fax")
    theirs = await fs.lookup(BOB, OUTBOX, "fax")
    vm = await fs.lookup(ALICE, "Voicemail")
    across = fs.ops.rename(mine.st_ino, b"draft.txt", theirs.st_ino, b"draft.txt", 0, CTX)
    assert await fuse_errno(across) == errno.EXDEV
    out = fs.ops.rename(mine.st_ino, b"draft.txt", vm.st_ino, b"draft.txt", 0, CTX)
    assert await fuse_errno(out) == errno.EROFS  # the target is read-only
    into = fs.ops.rename(vm.st_ino, b"vm2.pdf", mine.st_ino, b"vm2.pdf", 0, CTX)
    assert await fuse_errno(into) == errno.EROFS
    assert fs.outbox.calls == []
    draft = await fs.lookup(ALICE, OUTBOX, "fax", "draft.txt")
    await fs.ops.rename(mine.st_ino, b"draft.txt", mine.st_ino, b"fax.txt", 0, CTX)
    assert fs.outbox.calls == [("rename", "101", ("fax", "draft.txt"), ("fax", "fax.txt"))]
    assert fs.ops.inodes.path(draft.st_ino) == (ALICE, OUTBOX, "fax", "fax.txt")


async def test_outbox_entries_are_invalidated_when_the_outbox_changes(fs: Fs) -> None:
    """Outbox inodes the kernel was given (lookup, readdir) get fresh attributes when the
    outbox changes; getattr alone records nothing."""
    draft = await fs.lookup(ALICE, OUTBOX, "fax", "draft.txt")
    other = await fs.lookup(BOB, OUTBOX, "fax")
    await fs.ops.getattr(draft.st_ino, CTX)
    fs.ops.outbox_changed("101")
    await wait_until(lambda: draft.st_ino in fs.kernel.inodes)
    assert other.st_ino not in fs.kernel.inodes
    fs.ops.outbox_changed(None)
    await wait_until(lambda: other.st_ino in fs.kernel.inodes)


async def test_a_job_gone_from_an_outbox_leaves_the_kernel(fs: Fs) -> None:
    """The outbox moved a job away (to Sent/) outside any request: its name leaves the
    kernel's cache; a mailbox the index does not know has nothing there to forget."""
    fax = await fs.lookup(ALICE, OUTBOX, "fax")
    fs.ops.outbox_gone("101", ("fax", "draft.txt"))
    fs.ops.outbox_gone("999", ("fax", "draft.txt"))
    assert fs.kernel.entries == [(fax.st_ino, b"draft.txt")]


async def test_files_that_left_the_tree_leave_the_kernel(fs: Fs) -> None:
    """The index's change callback: removed names are forgotten, changed folders (and the
    folders above them) get fresh attributes; an unknown mailbox changes nothing."""
    box = await fs.lookup(ALICE)
    vm = await fs.lookup(ALICE, "Voicemail")
    fs.ops.tree_changed("999", [("Voicemail", "vm2.pdf")], [("Voicemail",)])
    fs.ops.tree_changed("101", [("Voicemail", "vm2.pdf")], [("Voicemail",)])
    assert fs.kernel.entries == [(vm.st_ino, b"vm2.pdf")]
    await wait_until(lambda: {box.st_ino, vm.st_ino} <= set(fs.kernel.inodes))


# -- open: page cache or direct I/O ---------------------------------------------------------


async def open_read(fs: Fs, *path: str) -> tuple[int, pyfuse3.FileInfo]:
    attr = await fs.lookup(*path)
    return attr.st_ino, await fs.ops.open(attr.st_ino, os.O_RDONLY, CTX)


async def read_all(fs: Fs, fh: int, step: int = 1 << 17) -> bytes:
    out = bytearray()
    while True:
        piece = await fs.ops.read(fh, len(out), step)
        out += piece
        if len(piece) < step:
            return bytes(out)


async def test_open_of_an_unknown_size_learns_it_and_uses_direct_io(fs: Fs) -> None:
    path = (ALICE, "Voicemail", "vm1.mp3")
    shown = (await fs.lookup(*path)).st_size
    assert shown not in (0, len(VM1))  # an estimate from the duration
    fs.source.last_piece = trio.Event()  # the body's end (the proof) waits for the test
    ino, info = await open_read(fs, *path)
    assert (info.direct_io, info.keep_cache) == (True, False)
    assert ino in fs.kernel.inodes  # the estimate the kernel holds is stale
    assert fs.index.recorded == {}  # a Content-Length is a claim until its body ends
    assert fs.reader.cache.held("vm/1")
    assert (await fs.ops.getattr(ino, CTX)).st_size == len(VM1)
    # Known, but not proved by the body's end: still direct I/O.
    _, second = await open_read(fs, *path)
    assert (second.direct_io, second.keep_cache) == (True, False)
    fs.source.last_piece.set()
    assert await read_all(fs, info.fh) == VM1
    await wait_until(lambda: fs.reader.proven_size("vm/1") is not None)
    await fs.ops.release(info.fh)
    await fs.ops.release(second.fh)
    assert fs.index.recorded == {"vm/1": len(VM1)}  # proved: listings after a remount
    await wait_until(lambda: not fs.reader.cache.held("vm/1"))  # (and the download's)
    # Proved, and the kernel was given it: the page cache.
    await fs.lookup(*path)
    _, third = await open_read(fs, *path)
    assert (third.direct_io, third.keep_cache) == (False, True)
    await fs.ops.release(third.fh)
    assert fs.source.opens == [("vm/1", 0)]


async def test_open_whose_first_response_proves_the_size_uses_the_page_cache(
        fs: Fs) -> None:
    """The download's first response is a 206 whose Content-Range total proves the size:
    the open drops the estimate the kernel holds (its next read asks for the size first)
    and reads through the page cache, so a second read of the file costs rcfs nothing.
    No page of the estimate is kept (keep_cache off for this open only)."""
    fs.source.ranges = True
    path = (ALICE, "Voicemail", "vm1.mp3")
    assert (await fs.lookup(*path)).st_size != len(VM1)
    ino, info = await open_read(fs, *path)
    assert (info.direct_io, info.keep_cache) == (False, False)
    assert ino in fs.kernel.inodes
    assert fs.index.recorded == {"vm/1": len(VM1)}  # proved: listings show it at once
    assert (await fs.ops.getattr(ino, CTX)).st_size == len(VM1)
    assert await read_all(fs, info.fh) == VM1
    await fs.ops.release(info.fh)
    _, again = await open_read(fs, *path)
    assert (again.direct_io, again.keep_cache) == (False, True)
    await fs.ops.release(again.fh)
    assert fs.source.opens == [("vm/1", 0)]


async def test_open_that_proved_the_size_reads_directly_if_the_kernel_kept_the_estimate(
        fs: Fs, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel did not confirm it dropped the estimate (the invalidation failed): page-
    cache reads could stop at it, so this open reads directly (to the true end)."""
    def refuse(inode: int, attr_only: bool = False) -> None:
        raise OSError(errno.ENOENT, "no such inode")

    monkeypatch.setattr(pyfuse3, "invalidate_inode", refuse)
    fs.source.ranges = True
    _, info = await open_read(fs, ALICE, "Voicemail", "vm1.mp3")
    assert (info.direct_io, info.keep_cache) == (True, False)
    assert await read_all(fs, info.fh) == VM1
    await fs.ops.release(info.fh)


async def test_open_of_a_known_size_keeps_the_page_cache(fs: Fs) -> None:
    _, info = await open_read(fs, ALICE, "Voicemail", "vm2.pdf")
    assert (info.direct_io, info.keep_cache) == (False, True)
    assert await read_all(fs, info.fh) == VM2
    await fs.ops.release(info.fh)


async def test_a_file_the_kernel_forgot_keeps_the_page_cache_when_looked_up_again(
        fs: Fs) -> None:
    """The kernel forgets inodes under memory pressure (and on drop_caches), and looks the
    name up again at the next open. That lookup gives the kernel the exact size again (from
    the attribute cache): the open keeps the page cache. It went to direct I/O when a
    cached lookup did not count as given (no kernel read-ahead, no page cache: a 64 MiB
    file reread from RAM at 498-547 MiB/s instead of 638-778 from disk)."""
    path = (ALICE, "Voicemail", "vm2.pdf")
    ino, info = await open_read(fs, *path)
    assert (info.direct_io, info.keep_cache) == (False, True)
    await fs.ops.release(info.fh)
    await fs.ops.forget([(ino, 1)])  # once per lookup: the kernel dropped the inode
    assert not fs.ops.inodes.referenced(ino)
    for _ in range(2):  # and every later open the same
        again, info = await open_read(fs, *path)
        assert again == ino
        assert (info.direct_io, info.keep_cache) == (False, True)
        assert await read_all(fs, info.fh) == VM2
        await fs.ops.release(info.fh)
        await fs.ops.forget([(ino, 1)])


async def test_open_after_the_kernel_saw_another_size_uses_direct_io(fs: Fs) -> None:
    """The kernel clamps page-cache reads to the size it holds: when that is not the
    exact one (here never given), the open reads directly."""
    vm = await fs.lookup(ALICE, "Voicemail")
    fh = await fs.ops.opendir(vm.st_ino, CTX)
    await readdir(fs.ops, fh)
    ino = fs.ops.inodes.known((ALICE, "Voicemail", "vm2.pdf"))
    assert ino is not None
    fs.ops.attrs.reported[ino] = len(VM2) - 1
    info = await fs.ops.open(ino, os.O_RDONLY, CTX)
    assert (info.direct_io, info.keep_cache) == (True, False)
    await fs.ops.release(info.fh)


async def test_a_size_a_response_changed_is_not_proved_by_the_api(fs: Fs) -> None:
    """A download's response may replace the API's size with a lie (a Content-Length
    larger than the body; the soak's lie_length fault). Even with the kernel shown that
    size, the API's size does not prove it: direct I/O, never page-cache reads that the
    kernel pads with zeros past the real end (a whole read got 1,024 extra bytes)."""
    vm = await fs.lookup(ALICE, "Voicemail")
    fh = await fs.ops.opendir(vm.st_ino, CTX)
    await readdir(fs.ops, fh)
    ino = fs.ops.inodes.known((ALICE, "Voicemail", "vm2.pdf"))
    assert ino is not None
    lie = len(VM2) + 1024
    fs.reader._sizes["vm/2"] = lie  # what the lying response taught the reader
    fs.ops.attrs.reported[ino] = lie  # and what a getattr then showed the kernel
    info = await fs.ops.open(ino, os.O_RDONLY, CTX)
    assert (info.direct_io, info.keep_cache) == (True, False)
    await fs.ops.release(info.fh)


async def test_a_size_proven_before_is_no_proof_of_another(fs: Fs) -> None:
    """A proven size counts for that size only: once a response claimed another (the
    kernel shown it by a getattr), the open reads directly (a whole read got 1,024 bytes
    of zeros past the end when any earlier proof of the file counted)."""
    vm = await fs.lookup(ALICE, "Voicemail")
    fh = await fs.ops.opendir(vm.st_ino, CTX)
    await readdir(fs.ops, fh)
    ino = fs.ops.inodes.known((ALICE, "Voicemail", "vm1.mp3"))
    assert ino is not None
    fs.reader.sizes.confirmed["vm/1"] = len(VM1)
    fs.reader._sizes["vm/1"] = len(VM1) + 1024
    fs.ops.attrs.reported[ino] = len(VM1)
    info = await fs.ops.open(ino, os.O_RDONLY, CTX)
    assert (info.direct_io, info.keep_cache) == (False, True)  # the proven size, shown
    await fs.ops.release(info.fh)
    del fs.reader.sizes.confirmed["vm/1"]  # the proof was of another size
    fs.ops.attrs.reported[ino] = len(VM1) + 1024
    info = await fs.ops.open(ino, os.O_RDONLY, CTX)
    assert (info.direct_io, info.keep_cache) == (True, False)
    await fs.ops.release(info.fh)


async def test_a_page_cache_read_ending_before_the_size_shown_is_an_error(fs: Fs) -> None:
    """The API's size, which the kernel holds, is 1,024 bytes more than the content: the
    kernel would pad a short page-cache read with zeros and, if an attribute update raced
    it, serve them. The read fails (EIO) instead until the kernel has the real size."""
    vm = fs.index.trees["101"].subdir("Voicemail")
    assert vm.children is not None
    lying = ref("vm/2", len(VM2) + 1024)
    vm.children["vm2.pdf"].content = lying
    ino, info = await open_read(fs, ALICE, "Voicemail", "vm2.pdf")
    assert (info.direct_io, info.keep_cache) == (False, True)
    off = len(VM2) - 100
    with pytest.raises(pyfuse3.FUSEError) as caught:
        await fs.ops.read(info.fh, off, 4096)
    assert caught.value.errno == errno.EIO
    await wait_until(lambda: ino in fs.kernel.inodes)  # attributes dropped in the kernel
    with pytest.raises(pyfuse3.FUSEError):  # still shown the wrong size: still refused
        await fs.ops.read(info.fh, off, 4096)
    await wait_until(lambda: fs.reader.proven_size("vm/2") == len(VM2))  # by its body
    assert (await fs.ops.getattr(ino, CTX)).st_size == len(VM2)
    assert await fs.ops.read(info.fh, off, 4096) == VM2[off:]
    await fs.ops.release(info.fh)


async def test_a_size_a_response_makes_larger_reaches_the_kernel(fs: Fs) -> None:
    """The API's size, which the kernel holds, is 1,000 bytes short of the content: the
    kernel would end page-cache reads there. The first read that knows better drops the
    kernel's attributes (once), so a read reaching the old end asks for the new size."""
    vm = fs.index.trees["101"].subdir("Voicemail")
    assert vm.children is not None
    vm.children["vm2.pdf"].content = ref("vm/2", len(VM2) - 1000)
    ino, info = await open_read(fs, ALICE, "Voicemail", "vm2.pdf")
    assert (info.direct_io, info.keep_cache) == (False, True)
    assert fs.kernel.inodes == []
    assert await fs.ops.read(info.fh, 0, 4096) == VM2[:4096]  # the response said more
    await wait_until(lambda: fs.kernel.inodes == [ino])
    assert await fs.ops.read(info.fh, 4096, 4096) == VM2[4096:8192]
    await trio.testing.wait_all_tasks_blocked()
    assert fs.kernel.inodes == [ino]  # told once
    assert (await fs.ops.getattr(ino, CTX)).st_size == len(VM2)
    assert await read_all(fs, info.fh) == VM2
    await fs.ops.release(info.fh)


@pytest.mark.parametrize("path", [(CONTROL_DIR, STATUS_FILE), (ALICE, OUTBOX, "fax",
                                                               "draft.txt")])
async def test_live_files_use_direct_io(fs: Fs, path: tuple[str, ...]) -> None:
    _, info = await open_read(fs, *path)
    assert (info.direct_io, info.keep_cache) == (True, False)
    data = await read_all(fs, info.fh)
    if path[0] == CONTROL_DIR:
        assert b'"state": "ok"' in data
    await fs.ops.release(info.fh)


async def test_outbox_write_open_uses_direct_io(fs: Fs) -> None:
    attr = await fs.lookup(ALICE, OUTBOX, "fax", "draft.txt")
    info = await fs.ops.open(attr.st_ino, os.O_WRONLY | os.O_TRUNC, CTX)
    assert info.direct_io
    assert await fs.ops.write(info.fh, 0, b"hi") == 2
    await fs.ops.release(info.fh)
    assert [c[0] for c in fs.outbox.calls] == ["open_write", "write", "release"]


async def test_a_refused_outbox_file_leaves_the_kernel_before_close_returns(fs: Fs) -> None:
    """close() of a file the outbox refuses returns its error only once the kernel's
    attributes of the file are dropped: a `test -e` right after the failed `cp` must find
    it gone, not see it for the outbox's 1 s attribute timeout (a mount test saw it)."""
    attr = await fs.lookup(ALICE, OUTBOX, "fax", "draft.txt")
    info = await fs.ops.open(attr.st_ino, os.O_WRONLY | os.O_TRUNC, CTX)

    async def refuse(handle: int) -> None:
        raise Refused(Refusal.EMPTY, "fax/draft.txt: empty file")

    fs.outbox.flush = refuse  # type: ignore[attr-defined]  # (the fake answers any call)
    with pytest.raises(pyfuse3.FUSEError) as err:
        await fs.ops.flush(info.fh)
    assert err.value.errno == errno.ENODATA
    assert fs.kernel.inodes == [attr.st_ino]  # already, not eventually
    await fs.ops.release(info.fh)


# -- extended attributes and statfs ---------------------------------------------------------


async def test_xattrs(fs: Fs) -> None:
    vm1 = await fs.lookup(ALICE, "Voicemail", "vm1.mp3")
    ops, ino = fs.ops, vm1.st_ino
    assert await ops.listxattr(ino, CTX) == [b"user.rc.duration"]
    assert await ops.getxattr(ino, b"user.rc.duration", CTX) == b"75"
    assert await fuse_errno(ops.getxattr(ino, b"user.rc.nothing", CTX)) == pyfuse3.ENOATTR
    # Other namespaces: one answer per file system, so ls -l stops asking for labels/ACLs.
    for name in (b"security.selinux", b"system.posix_acl_access", b"trusted.x"):
        assert await fuse_errno(ops.getxattr(ino, name, CTX)) == errno.EOPNOTSUPP
        assert await fuse_errno(ops.setxattr(ino, name, b"v", CTX)) == errno.EOPNOTSUPP
    bad = ops.setxattr(ino, b"user.rc.read_status", b"Maybe", CTX)
    assert await fuse_errno(bad) == errno.EINVAL
    await ops.setxattr(ino, b"user.rc.read_status", b"Read\n", CTX)
    assert fs.index.read_status == [("101", "m1", "Read")]
    draft = await fs.lookup(ALICE, OUTBOX, "fax", "draft.txt")
    await ops.setxattr(draft.st_ino, b"user.rc.to", b"+12125550100", CTX)
    assert fs.outbox.calls == [("setxattr", "101", ("fax", "draft.txt"), "user.rc.to",
                                b"+12125550100")]


async def test_statfs_counts_inodes_and_cache(fs: Fs) -> None:
    before = await fs.ops.statfs(CTX)
    await fs.lookup(ALICE, "Voicemail", "vm2.pdf")
    after = await fs.ops.statfs(CTX)
    assert after.f_files == before.f_files + 3  # the mailbox, Voicemail, the file
    assert after.f_bfree == 0 and after.f_namemax == 255
