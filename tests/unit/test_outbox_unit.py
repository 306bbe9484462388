"""Outbox units without FUSE: validation, the journal, and the sender's exactly-once rules
against a fake RingCentral whose answers can be lost after it acted."""

from __future__ import annotations

import errno
import json
import re
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trio

from rcfs.api.errors import ApiError
from rcfs.api.models import Message, parse_message
from rcfs.api.scheduler import Priority
from rcfs.config import OUTBOX_KEYS, Config, load
from rcfs.fs.errors import to_errno
from rcfs.mount import make_outbox, outbox_settings
from rcfs.outbox import Outbox, Settings
from rcfs.outbox import validate as v
from rcfs.outbox.journal import Doc, Job, Store
from rcfs.outbox.matching import matches
from rcfs.outbox.protocol import OutboxError
from rcfs.outbox.state import rel_of
from tests.outbox_fakes import OPEN, FakeApi, outbox, put, states, until
from tests.outbox_support import jpeg, pdf, png, wav

# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "want"), [
    ("+12125557464", "+12125557464"), ("(212) 555-7464", "+12125557464"),
    ("1-212-555-7464", "+12125557464"), ("0044 20 7946 0958", "+442079460958"),
    ("tel:+33 1 23 45 67 89", "+33123456789"), ("hello", None), ("555-1234", None),
    ("+0123456789", None), ("+12", None), ("+1234567890123456", None),
])
def test_normalize_number(raw: str, want: str | None) -> None:
    assert v.normalize_number(raw) == want


def test_sniff_from_content_not_name() -> None:
    assert v.sniff(pdf(), "x.txt") == "application/pdf"
    assert v.sniff(jpeg(), "x.pdf") == "image/jpeg"
    assert v.sniff(png(), "") == "image/png"
    assert v.sniff(wav(), "x.mp3") == "audio/wav"
    assert v.sniff(b"BEGIN:VCARD\nFN:A\nEND:VCARD\n", "card") == "text/vcard"
    assert v.sniff(b"plain words\n", "notes") == "text/plain"
    assert v.sniff(bytes(range(256)), "x.bin") is None


def test_fax_checks() -> None:
    assert v.check_fax_file("a.pdf", pdf(3)).pages == 3
    assert v.check_fax_file("scan.jpg", jpeg()).ctype == "image/jpeg"
    assert v.check_fax_file("notes.txt", b"hello\n").ctype == "text/plain"
    assert v.check_fax_file("sheet.wk1", b"\x00\x00\x02\x00\x06\x04" + bytes(50)).ctype \
        == "application/vnd.lotus-1-2-3"
    for name, data, code in [("a.pdf", b"", errno.ENODATA),
                             ("a.pdf", pdf()[:-10], errno.EINVAL),
                             ("a.pdf", b"just text", errno.EINVAL),
                             ("a.wav", wav(), errno.EINVAL),
                             ("a.pdf", pdf(201), errno.EFBIG)]:
        with pytest.raises(OutboxError) as exc:
            v.check_fax_file(name, data)
        assert to_errno(exc.value) == code, name
    with pytest.raises(OutboxError) as exc:
        v.check_fax_job([v.Part("a", "application/pdf", 10, 200)], cover=True)
    assert to_errno(exc.value) == errno.EFBIG


def test_text_checks() -> None:
    assert v.check_text_file("a.txt", b"hi\r\n").text == "hi"
    assert v.check_text_file("a", "é😀".encode()).text == "é😀"
    assert v.check_text_file("p.jpg", jpeg()).text is None
    assert v.check_text_file("c.vcf", b"BEGIN:VCARD\nEND:VCARD\n").ctype == "text/vcard"
    assert v.check_text_file("x.txt", b"y" * 1000).text == "y" * 1000
    for name, data, code in [("a.txt", b"y" * 1001, errno.EMSGSIZE),
                             ("a.txt", "😀".encode() * 501, errno.EMSGSIZE),
                             ("a.txt", b"caf\xe9", errno.EILSEQ),
                             ("a.txt", b"\n\n", errno.ENODATA),
                             ("a.exe", b"MZ" + bytes(range(256)), errno.EINVAL),
                             ("a.png", png() + bytes(1_500_000), errno.EFBIG)]:
        with pytest.raises(OutboxError) as exc:
            v.check_text_file(name, data)
        assert to_errno(exc.value) == code, name
    parts = [v.Part(f"p{i}.png", "image/png", 10) for i in range(11)]
    with pytest.raises(OutboxError) as exc:
        v.text_job(parts)
    assert to_errno(exc.value) == errno.E2BIG
    with pytest.raises(OutboxError) as exc:
        v.text_job([v.Part("a.png", "image/png", 800_000), v.Part("b.png", "image/png",
                                                                 800_000)])
    assert to_errno(exc.value) == errno.EFBIG
    assert v.text_job([v.Part("t", "text/plain", 2, text="hi"),
                       v.Part("p.png", "image/png", 9)])[0] == "hi"


def test_greeting_and_option_checks() -> None:
    assert v.greeting_type("voicemail.WAV") == "Voicemail"
    assert v.check_greeting_file("Voicemail.wav", wav()).ctype == "audio/wav"
    with pytest.raises(OutboxError):
        v.check_greeting_file("Hello.wav", wav())
    with pytest.raises(OutboxError):
        v.check_greeting_file("Voicemail.wav", pdf())
    assert v.check_option("user.rc.fax_resolution", b"low") == "Low"
    assert v.check_option("user.rc.from", b"(650) 555-0100") == "+16505550100"
    assert v.check_option("user.rc.cover_index", b"") == ""
    for name, raw in [("user.rc.cover_index", b"14"), ("user.rc.fax_resolution", b"x"),
                      ("user.rc.cover_page_text", b"x" * 1025), ("user.rc.from", b"abc")]:
        with pytest.raises(OutboxError):
            v.check_option(name, raw)


async def test_accept_spool_journal_and_reload(tmp_path: Path) -> None:
    api = FakeApi()
    box = outbox(tmp_path, api)
    await box.mkdir("101", ("Fax", "(212) 555-7464"))
    doc = pdf(2)
    await put(box, ("Fax", "2125557464", "a.pdf"), doc)
    job = next(iter(box.store.jobs.values()))
    assert (job.state, job.to, job.name, job.kind) == ("queued", "+12125557464", "a.pdf", "fax")
    entry = box.root("101").walk(("Fax", "+1 212 555 7464", "a.pdf"))
    assert entry is not None and entry.xattrs["user.rc.status"] == "queued"
    assert Path(entry.local_path or "").read_bytes() == doc
    box.close()
    # A torn last line (a crash in the middle of an append) is ignored.
    with open(tmp_path / "spool" / "journal.jsonl", "ab") as fh:
        fh.write(b'{"job": {"id": "torn"')
    again = outbox(tmp_path, api)
    assert [j.name for j in again.store.jobs.values()] == ["a.pdf"]
    assert ("101", ("Fax", "+12125557464")) in again.store.folders
    again.close()


async def test_rejected_file_leaves_nothing(tmp_path: Path) -> None:
    box = outbox(tmp_path, FakeApi())
    await box.mkdir("101", ("Text", "+14155550100"))
    h = await box.create("101", ("Text", "+14155550100", "x.txt"))
    await box.write(h, 0, b"z" * 1200)
    with pytest.raises(OutboxError) as exc:
        await box.flush(h)
    assert to_errno(exc.value) == errno.EMSGSIZE
    await box.release(h)
    assert box.store.jobs == {}
    assert list((tmp_path / "spool" / "tmp").iterdir()) == []
    assert box.root("101").walk(("Text", "+14155550100", "x.txt")) is None
    with pytest.raises(OutboxError) as exc:
        await box.mkdir("101", ("Text", "not-a-number"))
    assert to_errno(exc.value) == errno.EINVAL


async def test_drafts_job_folder_and_cancel(tmp_path: Path) -> None:
    box = outbox(tmp_path, FakeApi())
    await box.mkdir("101", ("Fax", "+12125557464"))
    await box.mkdir("101", ("Fax", "+12125557464", ".pack"))
    await put(box, ("Fax", "+12125557464", ".pack", "b.pdf"), pdf(1, "b"))
    await put(box, ("Fax", "+12125557464", ".pack", "a.txt"), b"page a\n")
    await put(box, ("Fax", "+12125557464", ".solo.pdf"), pdf(1, "solo"))
    assert states(box) == ["draft", "draft"]
    await box.rename("101", ("Fax", "+12125557464", ".solo.pdf"),
                     ("Fax", "+12125557464", ".pack", "c.pdf"))
    await box.rename("101", ("Fax", "+12125557464", ".pack"), ("Fax", "+12125557464", "pack"))
    (job,) = box.store.jobs.values()
    assert job.state == "queued" and [d.name for d in job.docs] == ["a.txt", "b.pdf", "c.pdf"]
    await box.rename("101", ("Fax", "+12125557464", "pack"), ("Fax", "+12125557464", ".pack"))
    assert job.id in box.store.jobs and box.store.jobs[job.id].state == "draft"
    await put(box, ("Fax", "+12125557464", "go.pdf"), pdf())
    go = next(j for j in box.store.jobs.values() if j.name == "go.pdf")
    await box.unlink("101", ("Fax", "+12125557464", "go.pdf"))  # cancel while queued
    assert go.id not in box.store.jobs


async def run_until(box: Outbox, cond: Callable[[], Any], timeout: float = 10.0) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.run)
        await until(cond, timeout)
        nursery.cancel_scope.cancel()


def done(box: Outbox, n: int = 1) -> Callable[[], bool]:
    return lambda: sum(1 for j in box.store.jobs.values() if j.is_final) >= n


async def test_send_poll_deliver_and_priorities(tmp_path: Path) -> None:
    api = FakeApi()
    box = outbox(tmp_path, api)
    await box.mkdir("101", ("Text", "+14155550100"))
    await put(box, ("Text", "+14155550100", "hi.txt"), b"hello\n")
    await put(box, ("Text", "+14155550100", "pic.png"), png())
    await run_until(box, done(box, 2))
    assert states(box) == ["delivered", "delivered"]
    assert sorted(p["body"].get("text") or "" for p in api.posts) == ["", "hello"]
    assert all(p["body"]["from"] == {"phoneNumber": "+16505550100"} for p in api.posts)
    polls = [c for c in api.calls if c[0] == "GET" and re.search(r"/message-store/\d", c[1])]
    assert polls and all(c[2] == Priority.BACKGROUND for c in polls)
    sent = box.root("101").walk(("Sent", "Text", "+14155550100", "hi.txt.status.txt"))
    assert sent is not None and b"delivered to the recipient" in (sent.data or b"")


def _scan_agrees(box: Outbox) -> None:
    """The job index answers what a scan of every job answers, at every shown path."""
    jobs = list(box.store.jobs.values())
    for job in jobs:
        rel = rel_of(job)
        on_file = next((j for j in jobs if j.ext == job.ext and j.show_file
                        and rel_of(j) == rel), None)
        assert box.state.job_at(job.ext, rel) is on_file, (job.name, rel)
        status = (*rel[:-1], rel[-1] + ".status.txt")
        on_status = next((j for j in jobs if j.ext == job.ext and j.is_final
                          and j.show_status and rel_of(j) == rel), None)
        assert box.state.status_at(job.ext, status) is on_status, (job.name, status)
        pending = any(j.ext == job.ext and not j.is_final and j.parent == job.parent
                      for j in jobs)
        assert box.state.jobs.has_pending(job.ext, job.parent) == pending, job.parent
        for depth in range(1, len(rel) + 1):
            shown = any(j.ext == job.ext and rel_of(j)[:depth] == rel[:depth]
                        and (j.show_file or j.is_final and j.show_status) for j in jobs)
            assert box.state.jobs.shows_within(job.ext, rel[:depth]) == shown, rel[:depth]
        assert box.state.jobs.of_mailbox(job.ext) == [j for j in jobs if j.ext == job.ext]


async def test_job_index_follows_every_move(tmp_path: Path) -> None:
    api = FakeApi()
    api.plan = ["ok", ApiError(400, "FAX-101", "bad number")]
    box = outbox(tmp_path, api)
    fax = ("Fax", "+12125557464")
    await box.mkdir("101", fax)
    await box.mkdir("101", (*fax, ".pack"))
    await put(box, (*fax, ".pack", "a.pdf"), pdf(1, "a"))
    await put(box, (*fax, ".draft.pdf"), pdf(1, "d"))
    h = await box.open_write("101", (*fax, ".draft.pdf"), truncate=False)  # copied in a thread
    await box.release(h)
    await box.rename("101", (*fax, ".draft.pdf"), (*fax, ".pack", "b.pdf"))
    _scan_agrees(box)
    await put(box, (*fax, "one.pdf"), pdf(1, "one"))
    await box.rename("101", (*fax, ".pack"), (*fax, "pack"))
    _scan_agrees(box)
    await run_until(box, done(box, 2))
    _scan_agrees(box)
    assert sorted(rel_of(j)[0] for j in box.store.jobs.values()) == ["Failed", "Sent"]
    failed = next(j for j in box.store.jobs.values() if j.state == "failed")
    await box.rename("101", rel_of(failed), (*fax, ".again.pdf"))  # back as a draft
    assert failed.id not in box.store.jobs  # its file and status went with the move
    _scan_agrees(box)
    sent = next(j for j in box.store.jobs.values() if j.state == "delivered")
    await box.unlink("101", (*rel_of(sent)[:-1], rel_of(sent)[-1] + ".status.txt"))
    assert box.state.status_at("101", (*rel_of(sent)[:-1], rel_of(sent)[-1] + ".status.txt")) \
        is None and box.state.job_at("101", rel_of(sent)) is sent
    _scan_agrees(box)
    box.close()
    again = outbox(tmp_path, api)
    _scan_agrees(again)
    assert again.state.job_at("101", (*fax, ".again.pdf")) is not None


async def test_lost_answer_is_found_not_resent(tmp_path: Path) -> None:
    api = FakeApi()
    api.plan = ["lost"]
    box = outbox(tmp_path, api)
    await box.mkdir("101", ("Fax", "+12125557464"))
    await put(box, ("Fax", "+12125557464", "a.pdf"), pdf())
    await run_until(box, done(box))
    assert len(api.posts) == 1 and states(box) == ["delivered"]
    assert box.sender.counters["resolved_found"] == 1


async def test_reset_before_the_server_acted_is_resent_once(tmp_path: Path) -> None:
    api = FakeApi()
    api.plan = ["reset"]
    box = outbox(tmp_path, api)
    await box.mkdir("101", ("Fax", "+12125557464"))
    await put(box, ("Fax", "+12125557464", "a.pdf"), pdf())
    await run_until(box, done(box))
    assert len(api.posts) == 1 and states(box) == ["delivered"]
    assert box.sender.counters["resolved_resend"] == 1


async def test_identical_texts_both_lost_claim_distinct_messages(tmp_path: Path) -> None:
    api = FakeApi()
    api.plan = ["lost", "lost"]
    box = outbox(tmp_path, api)
    await box.mkdir("101", ("Text", "+14155550100"))
    await put(box, ("Text", "+14155550100", "a.txt"), b"same")
    await put(box, ("Text", "+14155550100", "b.txt"), b"same")
    await run_until(box, done(box, 2))
    ids = sorted(j.message_id or "" for j in box.store.jobs.values())
    assert len(api.posts) == 2 and len(set(ids)) == 2 and set(ids) == set(api.messages)


async def test_refusal_and_retryable_errors(tmp_path: Path) -> None:
    api = FakeApi()
    api.plan = [ApiError(503, "CMN-201", "busy"), "ok",
                ApiError(400, "MSG-245", "not your number")]
    box = outbox(tmp_path, api)
    await box.mkdir("101", ("Text", "+14155550100"))
    await put(box, ("Text", "+14155550100", "a.txt"), b"one")
    await run_until(box, done(box))
    await put(box, ("Text", "+14155550100", "b.txt"), b"two")
    await run_until(box, done(box, 2))
    a, b = sorted(box.store.jobs.values(), key=lambda j: j.name)
    assert a.state == "delivered" and a.attempts == 2
    assert b.state == "failed" and b.error_code == "MSG-245" and b.http_status == 400
    assert "MSG-245" in (b.error or "")


async def test_restart_with_a_job_in_sending_checks_the_store(tmp_path: Path) -> None:
    api = FakeApi()
    box = outbox(tmp_path, api)
    await box.mkdir("101", ("Text", "+14155550100"))
    await put(box, ("Text", "+14155550100", "a.txt"), b"crash")
    (job,) = box.store.jobs.values()
    # What a crash right after the POST leaves: journal "sending", message on the server.
    job.state, job.attempts, job.options["from"] = "sending", 1, "+16505550100"
    job.attempt_started = datetime.now(UTC).timestamp()
    await box.store.save(job)
    api._post("/sms", {"from": {"phoneNumber": "+16505550100"},
                       "to": [{"phoneNumber": "+14155550100"}], "text": "crash"}, None)
    box.close()
    again = outbox(tmp_path, api)
    await run_until(again, done(again))
    assert len(api.posts) == 1 and states(again) == ["delivered"]


# -- configuration -----------------------------------------------------------------------------


def readme_config() -> dict[str, Any]:
    """The README's configuration example: the values it documents as the defaults."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    return tomllib.loads(text.split("```toml\n", 1)[1].split("```", 1)[0])


def test_outbox_defaults_are_the_readme_values() -> None:
    documented = {k: v for k, v in readme_config().items() if k.startswith("outbox_")}
    assert set(documented) == set(OUTBOX_KEYS)  # every key documented, none invented
    assert {k: getattr(Config(), k) for k in OUTBOX_KEYS} == documented
    # ... and a sender built without a config gets the same values.
    assert Settings() == outbox_settings(Config(**documented))


async def test_config_keys_reach_the_sender(tmp_path: Path) -> None:
    """``outbox_*`` keys of the config file (and flags) get to the outbox a mount builds."""
    path = tmp_path / "config.toml"
    path.write_text('client_id = "app"\noutbox_concurrency = 3\noutbox_max_attempts = 1\n'
                    "outbox_retry_base = 0.02\noutbox_retry_max = 0.05\n"
                    "outbox_poll_min = 0.02\noutbox_poll_max = 0.05\n"
                    "outbox_settle_time = 7\noutbox_clock_skew = 8\n"
                    "outbox_fax_timeout = 9\noutbox_sms_delivery_wait = 11\n")
    cfg = load(path, {"outbox_sms_timeout": "10"})  # a flag's value is a string
    api = FakeApi()
    box = make_outbox(cfg, api, tmp_path / "spool")
    box.open()
    OPEN.append(box)
    s = box.sender.settings
    assert (s.send_concurrency, s.max_attempts, s.retry_base_s, s.retry_max_s, s.poll_min_s,
            s.poll_max_s, s.settle_s, s.skew_s, s.fax_deadline_s, s.sms_deadline_s,
            s.sms_delivery_wait_s) == (3, 1, 0.02, 0.05, 0.02, 0.05, 7, 8, 9, 10, 11)
    assert box.sender._limits["fax"].total_tokens == 3
    # outbox_max_attempts = 1: one transient failure (503) fails the job.
    api.plan = [ApiError(503, "CMN-201", "busy")]
    await box.mkdir("101", ("Text", "+14155550100"))
    await put(box, ("Text", "+14155550100", "a.txt"), b"once")
    await run_until(box, done(box))
    (job,) = box.store.jobs.values()
    assert job.state == "failed" and job.attempts == 1 and len(api.posts) == 0
    assert "gave up after 1 attempts" in (job.error or "")


def _msg(**over: Any) -> Message:
    base = {"id": "1", "type": "SMS", "direction": "Outbound", "creationTime":
            "2026-01-01T00:00:00Z", "to": [{"phoneNumber": "+14155550100"}],
            "from": {"phoneNumber": "+16505550100"}, "subject": "hi", "attachments": []}
    return parse_message({**base, **over})


def test_matching_rules() -> None:
    job = Job("j", "101", "Text", "+14155550100", "a.txt",
              options={"from": "+16505550100"})
    job.docs = [Doc("a.txt", "f", 2, "s", "text/plain", text="hi")]
    assert matches(job, _msg())
    assert not matches(job, _msg(subject="other"))
    assert not matches(job, _msg(to=[{"phoneNumber": "+14155550199"}]))
    assert not matches(job, _msg(direction="Inbound"))
    assert not matches(job, _msg(**{"from": {"phoneNumber": "+16505550111"}}))
    fax = Job("f", "101", "Fax", "+14155550100", "a.pdf", options={"fax_resolution": "Low"})
    assert matches(fax, _msg(type="Fax", faxResolution="Low", subject=None))
    assert not matches(fax, _msg(type="Fax", faxResolution="High"))


def test_store_compacts(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    store.open_sync()
    store._append_sync([json.dumps({"job": Job("x", "1", "Fax", "+1", "n").to_json()}
                                   ).encode() + b"\n"] * 5)
    store.close()
    again = Store(tmp_path / "s")
    again.open_sync()
    assert list(again.jobs) == ["x"]
    assert len((tmp_path / "s" / "journal.jsonl").read_bytes().splitlines()) == 1
    again.close()
