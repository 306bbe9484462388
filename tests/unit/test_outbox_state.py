"""The outbox's job index queries and its one way of removing spool files, on a bare store."""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from rcfs.fs.errors import to_errno
from rcfs.outbox import Outbox
from rcfs.outbox.journal import Doc, Job, Store
from rcfs.outbox.protocol import OutboxError
from rcfs.outbox.state import JobIndex, rel_of
from tests.outbox_fakes import FakeApi, outbox, put
from tests.outbox_support import pdf

FAX = ("Fax", "+12125557464")


_STORES: list[Store] = []


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    while _STORES:
        _STORES.pop().close()


def _store(tmp_path: Path) -> tuple[Store, JobIndex]:
    store = Store(tmp_path / "spool")
    store.open_sync()
    _STORES.append(store)
    index = JobIndex(store)
    index.rebuild()
    return store, index


def _job(job_id: str, ext: str = "101", name: str = "a.pdf", state: str = "queued") -> Job:
    return Job(job_id, ext, "Fax", FAX[1], name, state=state,
               docs=[Doc(name, "f-" + job_id, 1, "", "application/pdf")])


async def test_of_mailbox_lists_that_mailbox_in_the_store_order(tmp_path: Path) -> None:
    store, index = _store(tmp_path)
    a, b, c, other = _job("a"), _job("b", name="b.pdf"), _job("c", name="c.pdf"), _job("o", "202")
    await store.save(a, b, other, c)
    assert index.of_mailbox("101") == [a, b, c] and index.of_mailbox("202") == [other]
    b.state = "delivered"
    await store.save(b)  # saved again (now final, elsewhere): keeps its place, as in the store
    assert index.of_mailbox("101") == [j for j in store.jobs.values() if j.ext == "101"]
    assert index.of_mailbox("101") == [a, b, c]
    moved = _job("a", name="z.pdf")  # a move saves another object under the same id
    await store.save(moved)
    assert index.of_mailbox("101") == [moved, b, c]
    await store.delete(other)
    await store.delete(moved)
    assert index.of_mailbox("101") == [b, c] and index.of_mailbox("202") == []
    store.close()
    _again, index = _store(tmp_path)
    assert [j.id for j in index.of_mailbox("101")] == ["b", "c"]


async def test_shows_within_follows_files_and_status_files(tmp_path: Path) -> None:
    store, index = _store(tmp_path)
    job = _job("a")
    await store.save(job)
    assert all(index.shows_within("101", FAX + ("a.pdf",)[:n]) for n in (-1, 0, 1))
    assert index.shows_within("101", FAX[:1]) and not index.shows_within("202", FAX)
    assert not index.shows_within("101", ("Sent",))
    job.state = "delivered"
    await store.save(job)
    rel = rel_of(job)
    assert rel == ("Sent", *FAX, "a.pdf")
    assert all(index.shows_within("101", rel[:n]) for n in range(1, len(rel) + 1))
    assert not index.shows_within("101", FAX) and not index.shows_within("101", ("Failed",))
    job.show_file = False  # its status file still shows it
    await store.save(job)
    assert index.shows_within("101", rel) and index.shows_within("101", ("Sent", "Fax"))
    job.show_status = False  # nothing of it shows
    await store.save(job)
    assert not any(index.shows_within("101", rel[:n]) for n in range(1, len(rel) + 1))
    job.show_status = True
    await store.save(job)
    await store.delete(job)
    assert not index.shows_within("101", ("Sent",))


async def test_rmdir_in_sent_waits_for_what_it_shows(tmp_path: Path) -> None:
    box = outbox(tmp_path, FakeApi())
    job = _job("a", state="delivered")
    await box.store.save(job)
    box.state.changed(job)
    for rel in (("Sent", *FAX), ("Sent", "Fax")):
        with pytest.raises(OutboxError) as exc:
            await box.rmdir("101", rel)
        assert to_errno(exc.value) == errno.ENOTEMPTY
    await box.unlink("101", rel_of(job))
    with pytest.raises(OutboxError):
        await box.rmdir("101", ("Sent", *FAX))  # the status file is still there
    await box.unlink("101", (*rel_of(job)[:-1], "a.pdf.status.txt"))
    assert job.id not in box.store.jobs
    await box.rmdir("101", ("Sent", *FAX))
    await box.rmdir("101", ("Sent", "Fax"))
    assert box.root("101").walk(("Sent", "Fax")) is None


def _spooled(box: Outbox) -> set[str]:
    return {f.name for f in box.store.files.iterdir()}


def _referenced(box: Outbox) -> set[str]:
    return {d.file_id for j in box.store.jobs.values() for d in j.docs}


async def test_replaced_and_removed_documents_leave_no_spool_file(tmp_path: Path) -> None:
    box = outbox(tmp_path, FakeApi())
    await box.mkdir("101", FAX)
    await put(box, (*FAX, ".d.pdf"), pdf(1, "one"))
    await put(box, (*FAX, ".d.pdf"), pdf(1, "two"))  # a draft replaced
    assert _spooled(box) == _referenced(box) and len(_spooled(box)) == 1
    await box.mkdir("101", (*FAX, ".pack"))
    await put(box, (*FAX, ".pack", "a.pdf"), pdf(1, "a"))
    await put(box, (*FAX, ".pack", "a.pdf"), pdf(1, "a2"))  # a job folder's document replaced
    assert _spooled(box) == _referenced(box) and len(_spooled(box)) == 2
    await box.unlink("101", (*FAX, ".pack", "a.pdf"))
    await box.unlink("101", (*FAX, ".d.pdf"))
    assert _spooled(box) == set() == _referenced(box)


async def test_a_document_moved_over_another_in_a_job_folder_frees_its_file(
        tmp_path: Path) -> None:
    box = outbox(tmp_path, FakeApi())
    await box.mkdir("101", FAX)
    await box.mkdir("101", (*FAX, ".pack"))
    await put(box, (*FAX, ".pack", "a.pdf"), pdf(1, "old"))
    await put(box, (*FAX, ".d.pdf"), pdf(1, "new"))
    await box.rename("101", (*FAX, ".d.pdf"), (*FAX, ".pack", "a.pdf"))
    assert _spooled(box) == _referenced(box) and len(_spooled(box)) == 1
    box.close()
    again = outbox(tmp_path, FakeApi())  # and the journal agrees after a restart
    assert _spooled(again) == _referenced(again) and len(_spooled(again)) == 1


async def test_open_sweeps_only_unreferenced_spool_files(tmp_path: Path) -> None:
    box = outbox(tmp_path, FakeApi())
    await box.mkdir("101", FAX)
    await put(box, (*FAX, ".d.pdf"), pdf())
    box.close()
    stray = tmp_path / "spool" / "files" / "stray"  # spooled, never journaled (a crash)
    stray.write_bytes(b"x")
    again = outbox(tmp_path, FakeApi())
    assert not stray.exists() and _spooled(again) == _referenced(again) != set()


def test_drop_unreferenced_keeps_a_shared_file(tmp_path: Path) -> None:
    store, _index = _store(tmp_path)
    for name in ("shared", "alone"):
        store.file_path(name).write_bytes(b"x")
    store.jobs["j"] = Job("j", "101", "Fax", FAX[1], "a.pdf",
                          docs=[Doc("a.pdf", "shared", 1, "", "application/pdf")])
    store.drop_unreferenced(["shared", "alone", "never-there"])
    assert store.file_path("shared").exists() and not store.file_path("alone").exists()


async def test_a_shared_file_outlives_an_append_that_still_names_it(tmp_path: Path) -> None:
    """A failed job is being deleted (its append on the way) when a draft that shares its
    file lets go of it (the draft's append waits its turn). Once the deletion is durable,
    memory says nobody needs the file, but the journal on disk still names it in the draft:
    it must stay until the draft's append is durable too (a crash in between would leave a
    job whose file is gone)."""
    store, _index = _store(tmp_path)
    store.file_path("shared").write_bytes(b"x")
    doc = Doc("a.pdf", "shared", 1, "", "application/pdf")
    draft = Job("d", "101", "Fax", FAX[1], "a.pdf", state="draft", docs=[doc])
    failed = Job("f", "101", "Fax", FAX[1], "a.pdf", state="failed", docs=[doc])
    await store.save(draft, failed)
    gates = {b'"del"': threading.Event(), b'"d"': threading.Event()}
    real = store._append_sync

    def gated_append(lines: list[bytes]) -> None:
        for mark, gate in gates.items():
            if mark in lines[0]:
                gate.wait(10)
        real(lines)

    store._append_sync = gated_append  # type: ignore[method-assign]
    deleted = trio.Event()

    async def delete_failed() -> None:
        await store.delete(failed)
        deleted.set()

    async with trio.open_nursery() as nursery:
        try:
            nursery.start_soon(delete_failed)
            await trio.sleep(0.05)  # the deletion's append holds the journal
            draft.docs = []
            nursery.start_soon(store.save, draft)
            await trio.sleep(0.05)  # the draft's change: in memory, its append waiting
            gates[b'"del"'].set()
            await deleted.wait()
            await trio.sleep(0.05)
            assert store.file_path("shared").exists()  # the journal still names it
        finally:
            for gate in gates.values():
                gate.set()  # (a failed assertion must not leave a thread waiting)
    assert not store.file_path("shared").exists()  # both changes durable: now it goes
