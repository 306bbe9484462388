"""The pieces of the bulk path without a mount: the streaming zip reader on the layouts it
must accept or refuse, member matching, content checks, and the per-batch choice."""

from __future__ import annotations

import contextlib
import io
import zipfile
from datetime import UTC, datetime

import pytest

from rcfs.content.bulk import MIN_BATCH, BulkItem, choose, looks_like, match
from rcfs.content.source import ContentRef
from rcfs.content.zipstream import Member, ZipStreamError, members

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40
MP3 = b"ID3\x03" + bytes(200)


def _zip(entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in entries:
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buf.getvalue()


class _Chunks:
    def __init__(self, data: bytes, size: int = 777) -> None:
        self.parts = [data[i:i + size] for i in range(0, len(data), size)]

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        if not self.parts:
            raise StopAsyncIteration
        return self.parts.pop(0)


async def _read(data: bytes) -> list[Member]:
    async with contextlib.aclosing(members(_Chunks(data))) as walk:
        return [m async for m in walk]


@pytest.mark.trio
@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
async def test_members_stored_and_deflated(method: int) -> None:
    entries = [("a/1.pdf", PDF), ("a/2.mp3", MP3), ("empty", b"")]
    got = await _read(_zip(entries, method))
    assert [(m.name, m.data, m.ok) for m in got] == [(n, d, True) for n, d in entries]


@pytest.mark.trio
async def test_corrupt_member_is_flagged_and_the_rest_read() -> None:
    data = bytearray(_zip([("x.pdf", PDF), ("y.mp3", MP3)]))
    data[30 + len("x.pdf") + 100] ^= 0xFF
    got = await _read(bytes(data))
    assert [(m.name, m.ok, m.why) for m in got] == [("x.pdf", False, "CRC mismatch"),
                                                     ("y.mp3", True, "")]
    assert got[0].data == b""


class _Unseekable(io.RawIOBase):
    """A non-seekable target: zipfile then writes data descriptors instead of sizes."""

    def __init__(self) -> None:
        self.out = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.out += b
        return len(b)


def _streamed(entries: list[tuple[str, bytes]], method: int) -> bytes:
    sink = _Unseekable()
    with zipfile.ZipFile(sink, "w", method) as zf:
        for name, data in entries:
            with zf.open(name, "w") as fh:
                fh.write(data)
    return bytes(sink.out)


@pytest.mark.trio
async def test_deflated_members_with_data_descriptors() -> None:
    entries = [("p.pdf", PDF), ("m.mp3", MP3)]
    got = await _read(_streamed(entries, zipfile.ZIP_DEFLATED))
    assert [(m.name, m.data, m.ok) for m in got] == [(n, d, True) for n, d in entries]


@pytest.mark.trio
async def test_layouts_it_cannot_read_safely_end_the_walk() -> None:
    with pytest.raises(ZipStreamError, match="unknown size"):
        await _read(_streamed([("p.pdf", PDF)], zipfile.ZIP_STORED))
    with pytest.raises(ZipStreamError, match="signature"):
        await _read(b"not a zip at all")
    truncated = _zip([("p.pdf", PDF)])[:200]
    with pytest.raises(ZipStreamError, match="ends inside"):
        await _read(truncated)


def _item(mid: str, aid: str, ctype: str, size: int | None,
          siblings: tuple[tuple[str, str | None], ...]) -> BulkItem:
    ref = ContentRef("msg", (mid, aid), f"https://x/{mid}/{aid}", "Medium", size, ctype)
    return BulkItem(ref, "7", mid, aid, datetime(2023, 1, 1, tzinfo=UTC), "Fax", siblings)


def test_members_match_only_one_known_attachment() -> None:
    sib = (("11", "scan.pdf"), ("12", "scan.pdf"), ("13", None))
    items = {("5", aid): _item("5", aid, "application/pdf", None, sib) for aid, _ in sib}
    siblings = {("7", "5"): sib}
    base = "account/1/extension/7/message-store/content/5/"
    assert match(items, siblings, base + "scan.pdf") is None  # two attachments so named
    found = match(items, siblings, "/" + base + "12_scan.pdf")
    assert found is not None and found.attachment_id == "12"
    found = match(items, siblings, base + "13.pdf")
    assert found is not None and found.attachment_id == "13"
    assert match(items, siblings, base + "other.pdf") is None
    assert match(items, siblings, "account/1/extension/8/message-store/content/5/13.pdf") is None
    assert match(items, siblings, "content/5/13.pdf") is None  # another layout: unmatched


def test_content_checks_against_metadata() -> None:
    assert looks_like(PDF, "application/pdf", None) is None
    assert looks_like(PDF, "application/pdf", len(PDF) + 1) is not None
    assert looks_like(MP3, "application/pdf", None) is not None
    assert looks_like(MP3, "audio/mpeg", len(MP3)) is None
    assert looks_like(b"\xff\xfe bad", "text/plain", None) is not None
    assert looks_like(b"anything", "application/x-unknown", None) is not None
    assert looks_like(b"anything", "application/x-unknown", 8) is None


def test_choice_per_batch() -> None:
    def rate(group: str) -> float:
        return {"Medium": 40 / 60, "Heavy": 10 / 60}[group]

    sib = (("1", None),)
    many = [_item(str(i), str(i), "application/pdf", 1000, sib) for i in range(500)]
    assert choose(many, 500_000, rate, can_export=True).export
    assert not choose(many, 500_000, rate, can_export=False).export
    few = many[:MIN_BATCH - 1]
    assert not choose(few, 19_000, rate, can_export=True).export
    # An export of a huge account range for a modest batch would take far longer.
    assert not choose(many[:60], 400 << 30, rate, can_export=True).export
