"""Tests for rcfs.emulator.seed: the demo account must be deterministic, realistic, hostile
where the contract wants it, and cheap at scale, checked in process. Generated media is judged
by the tools a user's desktop would run (ffprobe, pdfinfo, tiffinfo, Pillow). The admin API
that extends the account, in a real emulator process: tests/emulator/test_emulator_seed_admin.py.
"""

from __future__ import annotations

import gc
import hashlib
import io
import os
import re
import subprocess
import sys
import time
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from rcfs.emulator.config import EmulatorConfig
from rcfs.emulator.seed import build_store, rule_key
from rcfs.emulator.seed_data import HOSTILE
from rcfs.emulator.store import Attachment, Message, Store
from tests.programs import require_programs

NOW = 1_790_000_000.123456  # a fixed "now" for in-process builds
DAY = 86400.0


@pytest.fixture(scope="module")
def store() -> Store:
    return build_store(EmulatorConfig(seed=1), NOW)


def test_recording_format_is_an_account_setting() -> None:
    wav = build_store(EmulatorConfig(seed=1, recording_format="wav"), NOW)
    kinds = {c.recording.blob.kind for c in wav.calls.values() if c.recording}
    assert kinds == {"wav"}
    types = {c.recording.blob.content_type for c in wav.calls.values() if c.recording}
    assert types == {"audio/x-wav"}


def _messages(store: Store, ext_id: int | None = None) -> list[Message]:
    return [m for m in store.messages.values() if ext_id is None or m.extension_id == ext_id]


def _admin_id(store: Store) -> int:
    return next(e.id for e in store.extensions.values() if e.admin)


def _names(msgs: list[Message]) -> list[str]:
    out = []
    for m in msgs:
        for p in [m.from_, *m.to]:
            if p.get("name") is not None:
                out.append(str(p["name"]))
    return out


def _snapshot(store: Store, now: float) -> list[tuple[Any, ...]]:
    """Everything that must be identical across builds with one seed (times relative)."""
    rows: list[tuple[Any, ...]] = []
    for m in sorted(store.messages.values(), key=lambda m: m.id):
        rows.append((m.id, m.extension_id, m.type, m.direction, round(now - m.creation_time, 3),
                     repr(m.from_), repr(m.to), m.subject, m.availability, m.read_status,
                     m.conversation_id, m.fax_page_count,
                     [(a.id, a.type, a.blob.content_type, a.blob.kind, a.blob.params,
                       a.file_name, a.report_size) for a in m.attachments]))
    for c in sorted(store.calls.values(), key=lambda c: c.id):
        rows.append((c.id, c.extension_id, c.session_id, c.telephony_session_id,
                     round(now - c.start_time, 3), c.duration, c.direction, c.result,
                     c.recording.id if c.recording else None, c.message_id))
    for g in sorted(store.greetings.values(), key=lambda g: g.id):
        rows.append((g.id, g.extension_id, g.type, g.blob.content_type, g.blob.params))
    for key, r in sorted(store.rules.items()):
        rows.append((key, r.type, r.name, repr(r.greetings)))
    for e in store.extensions.values():
        rows.append((e.id, e.number, e.name, e.type, e.admin,
                     [(n.id, n.phone_number, n.type, n.usage_type, n.features)
                      for n in e.phone_numbers]))
    return rows


# -- determinism and speed -------------------------------------------------------------------


def test_same_seed_same_data_times_follow_now() -> None:
    a = build_store(EmulatorConfig(seed=7), NOW)
    b = build_store(EmulatorConfig(seed=7), NOW + 12345.678)
    assert a.account_id == b.account_id
    assert _snapshot(a, NOW) == _snapshot(b, NOW + 12345.678)


_DIGEST_SCRIPT = """
import hashlib, sys
from rcfs.emulator.config import EmulatorConfig
from rcfs.emulator.seed import build_store
from tests.unit.test_emulator_seed import NOW, _snapshot
s = build_store(EmulatorConfig(seed=7, scale=50), NOW)
sys.stdout.write(hashlib.sha256(repr(_snapshot(s, NOW)).encode()).hexdigest())
"""


def test_same_seed_same_data_across_processes() -> None:
    """The emulator and the tests run in different processes (hash randomisation differs)."""
    expected = hashlib.sha256(repr(_snapshot(build_store(EmulatorConfig(seed=7, scale=50), NOW),
                                             NOW)).encode()).hexdigest()
    root = Path(__file__).resolve().parents[2]
    for hashseed in ("0", "4242"):
        res = subprocess.run([sys.executable, "-c", _DIGEST_SCRIPT], cwd=root,
                             env={**os.environ, "PYTHONHASHSEED": hashseed},
                             capture_output=True, text=True, timeout=120, check=False)
        assert res.returncode == 0, res.stderr
        assert res.stdout == expected


def test_different_seed_differs() -> None:
    a = build_store(EmulatorConfig(seed=1), NOW)
    b = build_store(EmulatorConfig(seed=2), NOW)
    assert a.account_id != b.account_id
    assert _snapshot(a, NOW) != _snapshot(b, NOW)
    assert not {c.id for c in a.calls.values()} & {c.id for c in b.calls.values()}
    assert not set(a.extensions) & set(b.extensions)


def test_default_build_is_fast_and_demo_sized() -> None:
    t0 = time.perf_counter()
    s = build_store(EmulatorConfig(seed=3), time.time())
    elapsed = time.perf_counter() - t0
    print(f"default seed: {len(s.messages)} messages, {len(s.calls)} calls in {elapsed:.3f}s")
    assert elapsed < 0.5
    for ext in s.extensions.values():
        counts = Counter(m.type for m in _messages(s, ext.id))
        if ext.type == "User":
            assert 15 <= counts["VoiceMail"] <= 60
            assert 10 <= counts["Fax"] <= 50
            assert len(_messages(s, ext.id)) < 250


def test_ids_unique_and_grow_with_time(store: Store) -> None:
    msgs = sorted(store.messages.values(), key=lambda m: (m.creation_time, m.id))
    ids = [m.id for m in msgs]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)  # created oldest first, as on a real account
    assert len({c.id for c in store.calls.values()}) == len(store.calls)
    assert len({c.telephony_session_id for c in store.calls.values()}) == len(store.calls)
    for ext in store.extensions.values():
        indexed = store.messages_of(ext.id, 0, NOW + 1)
        assert len(indexed) == len(_messages(store, ext.id))


# -- account ---------------------------------------------------------------------------------


def test_account_extensions_and_numbers(store: Store) -> None:
    exts = list(store.extensions.values())
    users = [e for e in exts if e.type == "User"]
    assert len(users) >= 4 and sum(e.admin for e in users) == 1
    assert [e.number for e in users] == [str(101 + i) for i in range(len(users))]
    assert any(e.type == "Department" for e in exts)
    assert all(e.name and "@" in e.email and e.email.isascii() for e in exts)
    features = {e.number: [n.features for n in e.phone_numbers] for e in users}
    # One user whose only number lacks SmsSender/MmsSender (negative send tests, I8/I9).
    lonely = [e for e in users if len(e.phone_numbers) == 1
              and "SmsSender" not in e.phone_numbers[0].features
              and "MmsSender" not in e.phone_numbers[0].features]
    assert len(lonely) == 1 and lonely[0].phone_numbers[0].phone_number.startswith("+1833")
    assert any(n.type == "FaxOnly" for e in users for n in e.phone_numbers)
    assert sum("SmsSender" in f for fs in features.values() for f in fs) >= 3
    allowed = {"CallerId", "SmsSender", "A2PSmsSender", "MmsSender", "InternationalSmsSender",
               "Delegated"}  # the spec's enum
    assert all(set(n.features) <= allowed for e in exts for n in e.phone_numbers)
    numbers = [n.phone_number for e in exts for n in e.phone_numbers]
    assert len(numbers) == len(set(numbers))


# -- messages --------------------------------------------------------------------------------


def test_every_kind_of_message(store: Store) -> None:
    msgs = _messages(store)
    kinds = Counter((m.type, m.direction) for m in msgs)
    for key in [("VoiceMail", "Inbound"), ("Fax", "Inbound"), ("Fax", "Outbound"),
                ("SMS", "Inbound"), ("SMS", "Outbound"), ("Pager", "Inbound"),
                ("Pager", "Outbound")]:
        assert kinds[key] >= 3, key
    mms = [m for m in msgs if any(a.type == "MmsAttachment" for a in m.attachments)]
    assert {a.blob.content_type for m in mms for a in m.attachments
            if a.type == "MmsAttachment"} >= {"image/jpeg", "image/png", "image/gif"}


def test_voicemail_shape(store: Store) -> None:
    vms = [m for m in _messages(store) if m.type == "VoiceMail"]
    audio_types: Counter[str] = Counter()
    transcribed = 0
    for m in vms:
        audio = [a for a in m.attachments if a.type == "AudioRecording"]
        assert len(audio) == 1 and audio[0].id == m.id
        a = audio[0]
        audio_types[a.blob.content_type] += 1
        assert a.vm_duration is not None and a.vm_duration > 0
        assert a.blob.params[0] == a.vm_duration
        assert a.blob.kind == {"audio/mpeg": "mp3", "audio/x-wav": "wav"}[a.blob.content_type]
        texts = [x for x in m.attachments if x.type == "AudioTranscription"]
        if texts:
            transcribed += 1
            assert texts[0].blob.content_type == "text/plain"
            assert m.vm_transcription_status == "Completed"
        else:
            assert m.vm_transcription_status == "NotAvailable"
        assert m.message_status == "Received"
    assert set(audio_types) == {"audio/mpeg", "audio/x-wav"}
    assert 0.3 < transcribed / len(vms) < 0.75


def test_fax_shape(store: Store) -> None:
    faxes = [m for m in _messages(store) if m.type == "Fax"]
    for m in faxes:
        doc = m.attachments[0]
        assert doc.type == "RenderedDocument"
        assert doc.blob.content_type in ("application/pdf", "image/tiff")
        assert m.fax_page_count is not None and doc.blob.params[0] == m.fax_page_count >= 1
        assert m.fax_resolution in ("High", "Low")
        if m.direction == "Outbound":
            assert m.message_status in ("Sent", "SendingFailed")
            assert all(r["messageStatus"] == m.message_status for r in m.to)
        else:
            assert m.message_status == "Received"
    assert any(m.message_status == "SendingFailed" and m.to[0].get("faxErrorCode")
               for m in faxes)
    assert any(a.type == "SourceDocument" and a.file_name for m in faxes for a in m.attachments)
    assert sum(m.attachments[0].blob.content_type == "image/tiff" for m in faxes) >= 1


def test_sms_conversations(store: Store) -> None:
    sms = [m for m in _messages(store) if m.type == "SMS"]
    threads: dict[int, list[Message]] = {}
    for m in sms:
        assert m.conversation_id is not None and m.conversation_id > 2**53  # E9
        assert m.conversation_id < 2**63
        threads.setdefault(m.conversation_id, []).append(m)
        text = [a for a in m.attachments if a.type == "Text"]
        if m.subject is not None and not any(a.type == "MmsAttachment" for a in m.attachments):
            assert len(text) == 1 and text[0].blob.params == (m.subject,)
            assert text[0].blob.content_type == "text/plain"
        if m.direction == "Outbound":
            assert all(r.get("messageStatus") for r in m.to)
    long_threads = [t for t in threads.values() if len(t) >= 4]
    assert long_threads
    assert all(len({m.extension_id for m in t}) == 1 for t in threads.values())
    assert any({m.direction for m in t} == {"Inbound", "Outbound"} for t in long_threads)
    group = [m for m in sms if len(m.to) >= 3]
    assert group, "a group chat with several recipients"
    assert any(m.delivery_error_code for m in sms)


def test_mms_attachments(store: Store) -> None:
    parts = [a for m in _messages(store) for a in m.attachments if a.type == "MmsAttachment"]
    assert len(parts) >= 10
    for a in parts:
        assert a.file_name and a.width and a.height and a.report_size
        assert a.blob.params[:2] == (a.width, a.height)


def test_items_inside_and_outside_the_default_window(store: Store) -> None:
    for ext in store.extensions.values():
        ages = [NOW - m.creation_time for m in _messages(store, ext.id)]
        assert min(ages) >= 120  # a few minutes old at least
        assert any(a < DAY - 1800 for a in ages), ext.number
        assert any(a > DAY + 1800 for a in ages), ext.number
        assert max(ages) <= 730 * DAY
    all_ages = [NOW - m.creation_time for m in _messages(store)]
    assert max(all_ages) > 365 * DAY  # history goes back years, not weeks
    for m in _messages(store):
        assert round(m.creation_time * 1000) == pytest.approx(m.creation_time * 1000, abs=1e-3)
        assert m.creation_time <= m.last_modified_time <= NOW


def test_deleted_and_purged(store: Store) -> None:
    msgs = _messages(store)
    deleted = [m for m in msgs if m.availability == "Deleted"]
    purged = [m for m in msgs if m.availability == "Purged"]
    assert len(deleted) >= 4 and len(purged) >= 1
    for m in deleted + purged:
        assert m.deleted_at is not None and NOW - 5 * DAY < m.deleted_at <= NOW
        assert m.last_modified_time >= m.deleted_at
    assert all(m.purged_at is not None for m in purged)


def test_sizes_omitted_per_config(store: Store) -> None:
    atts = [a for m in _messages(store) for a in m.attachments]
    omitted = EmulatorConfig().omit_size_types
    for a in atts:
        assert a.report_size == (a.type not in omitted)
    assert any(not a.report_size for a in atts) and any(a.report_size for a in atts)
    s = build_store(EmulatorConfig(seed=1, omit_size_types=()), NOW)
    assert all(a.report_size for m in s.messages.values() for a in m.attachments)


# -- hostile data ----------------------------------------------------------------------------


def _has(names: list[str], pred: Any) -> bool:
    return any(pred(n) for n in names)


@pytest.mark.parametrize("which", ["admin", "user"])
def test_hostile_names_present(store: Store, which: str) -> None:
    ext_id = _admin_id(store) if which == "admin" else next(
        e.id for e in store.extensions.values() if e.type == "User" and not e.admin)
    msgs = _messages(store, ext_id)
    names = _names(msgs)
    assert _has(names, lambda n: "/" in n)
    assert _has(names, lambda n: "\u200f" in n)  # RTL mark
    assert _has(names, lambda n: any(ord(c) >= 0x1F000 for c in n))  # emoji
    assert _has(names, lambda n: any(unicodedata.combining(c) for c in n))
    assert _has(names, lambda n: "\u200b" in n or "\u200d" in n)  # zero-width
    assert _has(names, lambda n: len(n.encode()) > 255)
    assert _has(names, lambda n: any(unicodedata.category(c) == "Cc" for c in n))
    assert ".." in names
    subjects = [m.subject or "" for m in msgs]
    assert "../../etc/passwd" in subjects and ".." in subjects
    assert any("/" in s and m.type == "Fax" for s, m in zip(subjects, msgs, strict=True))
    assert any(len(s.encode()) > 255 for s in subjects)
    # An SMS from a short code and a caller without a name, one of them in the last 24 h.
    short = [m for m in msgs if m.type == "SMS" and not m.from_["phoneNumber"].startswith("+")]
    assert short and short[0].from_["phoneNumber"].isdigit()
    nameless = [m for m in msgs if m.direction == "Inbound" and "name" not in m.from_]
    assert nameless and any(NOW - m.creation_time < DAY for m in nameless)
    assert any(a.file_name and "/" in a.file_name for m in msgs for a in m.attachments)
    # Duplicate creationTime: at least two pairs (one in the window, one old).
    times = Counter(m.creation_time for m in msgs)
    dups = [t for t, n in times.items() if n >= 2]
    assert any(NOW - t < DAY for t in dups) and any(NOW - t > 30 * DAY for t in dups)
    control_calls = [c for c in store.calls.values() if c.extension_id == ext_id
                     and c.from_.get("name") == HOSTILE["control"].name]
    assert control_calls


def test_hostile_names_are_valid_unicode_strings(store: Store) -> None:
    for name in _names(_messages(store)):
        name.encode("utf-8")  # no lone surrogates
        assert "\x00" not in name


# -- calls, recordings, greetings ------------------------------------------------------------


def test_call_log(store: Store) -> None:
    calls = list(store.calls.values())
    assert len(calls) >= 100
    recs = [c for c in calls if c.recording is not None]
    assert len(recs) >= 0.3 * len(calls)
    assert any(c.recording is None and not c.short_recording and c.result != "Missed"
               for c in calls)
    assert any(c.short_recording and c.recording is None and c.duration < 30 for c in calls)
    for c in recs:
        rec = c.recording
        assert rec is not None
        assert rec.id.isdigit() and store.recordings[rec.id] is rec
        assert rec.type in ("Automatic", "OnDemand")
        assert rec.blob.kind in ("mp3", "wav")
        assert rec.blob.content_type == {"mp3": "audio/mpeg", "wav": "audio/x-wav"}[rec.blob.kind]
        assert rec.duration == c.duration and 30 <= c.duration <= 3600
        assert rec.blob.params[0] == rec.duration
    assert {c.recording.type for c in recs if c.recording} == {"Automatic", "OnDemand"}
    # WAV vs MP3 is an account setting (config.recording_format, default mp3).
    assert {c.recording.blob.kind for c in recs if c.recording} == {"mp3"}
    assert any(c.duration == 3600 and c.recording for c in calls)
    assert all(c.telephony_session_id.startswith("s-") and c.session_id.isdigit()
               for c in calls)
    assert all(not c.id.isdigit() and len(c.id) >= 12 for c in calls)
    for c in calls:
        assert c.start_time >= NOW - 730 * DAY and c.start_time + c.duration <= NOW
        assert c.visible_at <= NOW
    assert {c.type for c in calls} == {"Voice", "Fax"}
    assert {c.direction for c in calls} == {"Inbound", "Outbound"}
    assert any(c.result == "Missed" for c in calls)
    assert any(NOW - c.start_time < DAY for c in calls)
    assert any(NOW - c.start_time > 30 * DAY for c in calls)


def test_calls_linked_to_messages(store: Store) -> None:
    linked = [c for c in store.calls.values() if c.message_id is not None]
    assert any(c.result == "Voicemail" for c in linked)
    for c in linked:
        msg = store.messages[c.message_id]  # type: ignore[index]
        assert msg.extension_id == c.extension_id
        assert msg.type == ("VoiceMail" if c.result == "Voicemail" else "Fax")
        assert c.start_time <= msg.creation_time <= c.start_time + c.duration
    assert all(c.message_id is not None for c in store.calls.values() if c.result == "Voicemail")


def test_answering_rules_and_greetings(store: Store) -> None:
    for ext in store.extensions.values():
        rules = [r for r in store.rules.values() if r.extension_id == ext.id]
        for r in rules:
            assert store.rules[rule_key(ext.id, r.id)] is r
        ids = {r.id for r in rules}
        assert "business-hours-rule" in ids
        if ext.type == "User":
            assert "after-hours-rule" in ids
            assert [r.type for r in rules].count("Custom") == 1
        for r in rules:
            for g in r.greetings:
                if "custom_id" in g:
                    greeting = store.greetings[g["custom_id"]]
                    assert greeting.extension_id == ext.id and greeting.type == g["type"]
                    assert greeting.answering_rule_id == r.id
                else:
                    assert g["preset"]["id"].isdigit() and g["preset"]["name"]
    greetings = list(store.greetings.values())
    assert {g.blob.content_type for g in greetings} == {"audio/wav", "audio/mpeg"}
    assert all(g.id.isdigit() for g in greetings)
    assert {g.type for g in greetings} >= {"Voicemail", "Introductory", "Announcement"}


# -- scale mode ------------------------------------------------------------------------------


def test_scale_mode_100k_builds_fast() -> None:
    cfg = EmulatorConfig(seed=1, scale=20_000)
    t0 = time.perf_counter()
    s = build_store(cfg, NOW)
    elapsed = time.perf_counter() - t0
    gc.unfreeze()  # build_store froze the GC for the emulator process; not wanted here
    n_ext = len(s.extensions)
    print(f"scale mode: {len(s.messages)} messages ({n_ext} extensions x 20,000 + demo) "
          f"in {elapsed:.2f}s")
    assert len(s.messages) >= 100_000
    assert elapsed < 10
    base = build_store(EmulatorConfig(seed=1), NOW)
    assert len(s.messages) == len(base.messages) + n_ext * 20_000
    # The demo data is unchanged by scale mode (same ids); the extra messages follow it.
    assert set(base.messages) <= set(s.messages)
    extra = [m for mid, m in s.messages.items() if mid not in base.messages]
    assert Counter(m.type for m in extra).keys() == {"VoiceMail", "Fax", "SMS"}
    ages = [NOW - m.creation_time for m in extra]
    assert min(ages) > 60 and max(ages) <= 730 * DAY and max(ages) > 700 * DAY
    assert sum(a < DAY for a in ages) > 0
    for ext in s.extensions.values():
        listed = s.messages_of(ext.id, 0, NOW + 1)
        assert len(listed) == len(_messages(s, ext.id))
        assert all(a.creation_time >= b.creation_time
                   for a, b in zip(listed, listed[1:], strict=False))
    # Media stays lazy: no blob holds bytes.
    assert all(a.blob.data is None for m in extra for a in m.attachments)
    assert any(a.type == "MmsAttachment" for m in extra for a in m.attachments)


# -- generated media -------------------------------------------------------------------------


def _ffprobe(path: Path) -> dict[str, str]:
    res = subprocess.run(
        [require_programs("ffprobe")[0], "-v", "error", "-show_entries",
         "format=duration,format_name:stream=sample_rate,codec_name", "-of",
         "default=noprint_wrappers=1", str(path)],
        capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0 and not res.stderr, res.stderr
    out: dict[str, str] = {}
    for line in res.stdout.splitlines():
        key, _, value = line.partition("=")
        out.setdefault(key, value)
    return out


def _first(store: Store, pred: Any) -> tuple[Message, Attachment]:
    for m in sorted(store.messages.values(), key=lambda m: m.id):
        for a in m.attachments:
            if pred(m, a):
                return m, a
    raise AssertionError("no such attachment")


def test_sample_media_is_real(store: Store, tmp_path: Path) -> None:
    # Voicemail wav: 8 kHz, the advertised duration.
    _, wav = _first(store, lambda m, a: a.type == "AudioRecording" and a.blob.kind == "wav")
    p = tmp_path / "vm.wav"
    p.write_bytes(wav.blob.bytes())
    info = _ffprobe(p)
    assert info["sample_rate"] == "8000" and info["format_name"] == "wav"
    assert float(info["duration"]) == pytest.approx(wav.vm_duration, abs=0.05)
    # Voicemail mp3.
    _, mp3 = _first(store, lambda m, a: a.type == "AudioRecording" and a.blob.kind == "mp3")
    p = tmp_path / "vm.mp3"
    p.write_bytes(mp3.blob.bytes())
    info = _ffprobe(p)
    assert info["codec_name"] == "mp3"
    assert float(info["duration"]) == pytest.approx(mp3.vm_duration, abs=0.1)
    # Fax PDF: page count matches faxPageCount.
    fax, pdf = _first(store, lambda m, a: a.type == "RenderedDocument"
                      and a.blob.kind == "pdf" and (m.fax_page_count or 0) > 1)
    p = tmp_path / "fax.pdf"
    p.write_bytes(pdf.blob.bytes())
    res = subprocess.run([require_programs("pdfinfo")[0], str(p)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert re.search(rf"^Pages:\s+{fax.fax_page_count}$", res.stdout, re.M), res.stdout
    # Fax TIFF.
    fax, tif = _first(store, lambda m, a: a.blob.kind == "tiff")
    with Image.open(io.BytesIO(tif.blob.bytes())) as img:
        assert img.format == "TIFF" and getattr(img, "n_frames", 1) == fax.fax_page_count
    # MMS images: dimensions as advertised.
    for kind in ("jpeg", "png", "gif"):
        _, img_att = _first(store, lambda m, a, k=kind: a.type == "MmsAttachment"
                            and a.blob.kind == k)
        data = img_att.blob.bytes()
        with Image.open(io.BytesIO(data)) as img:
            assert img.format == kind.upper()
            assert img.size == (img_att.width, img_att.height)
    # Transcription and SMS text are UTF-8 text.
    _, tr = _first(store, lambda m, a: a.type == "AudioTranscription")
    assert tr.blob.bytes().decode("utf-8")
    # A greeting and the longest recording (ffprobe reads the whole hour).
    greeting = next(g for g in store.greetings.values() if g.blob.kind == "wav")
    p = tmp_path / "greeting.wav"
    p.write_bytes(greeting.blob.bytes())
    assert _ffprobe(p)["format_name"] == "wav"
    longest = max(store.recordings.values(), key=lambda r: r.duration)
    assert longest.duration == 3600
    p = tmp_path / "hour.mp3"
    p.write_bytes(longest.blob.bytes())
    assert float(_ffprobe(p)["duration"]) == pytest.approx(3600, abs=1)
