"""Reading a zip archive front to back while it downloads (no temporary file, no seek).

A message-store-report archive can be 1 GB; its members are walked through their local
headers as the bytes arrive. Only what can be read unambiguously this way is yielded:
stored or deflated members whose sizes are in the local header (or zip64 extra), or
deflated members with a data descriptor (the deflate stream marks its own end). Anything
else (a stored member of unknown size, an encrypted one, an unknown method) ends the walk:
the caller treats every member not yielded as missing and fetches it another way. Every
yielded member had its CRC-32 and size checked; a member that fails is yielded with
``ok=False`` and no data.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

__all__ = ["Member", "ZipStreamError", "members"]

_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"
_END = b"PK\x05\x06"
_END64 = b"PK\x06\x06"
_DESCRIPTOR = b"PK\x07\x08"
_HEADER = struct.Struct("<4sHHHHHIIIHH")
_STORED, _DEFLATED = 0, 8
_ZIP64_EXTRA = 0x0001


class ZipStreamError(Exception):
    """The stream is not a zip this reader understands (nothing after it is trusted)."""


@dataclass(frozen=True)
class Member:
    name: str
    data: bytes
    ok: bool
    why: str = ""


class _Buffer:
    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = bytearray()
        self._eof = False

    async def need(self, n: int) -> bool:
        while len(self._buf) < n and not self._eof:
            try:
                self._buf += await self._chunks.__anext__()
            except StopAsyncIteration:
                self._eof = True
        return len(self._buf) >= n

    async def take(self, n: int) -> bytes:
        if not await self.need(n):
            raise ZipStreamError(f"archive ends inside a member ({len(self._buf)} < {n} bytes)")
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def some(self) -> bytes:
        """Whatever is buffered, or the next chunk (b"" at EOF)."""
        if not self._buf:
            await self.need(1)
        out = bytes(self._buf)
        self._buf.clear()
        return out

    def push_back(self, data: bytes) -> None:
        self._buf[:0] = data


def _zip64_sizes(extra: bytes, usize: int, csize: int) -> tuple[int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4:pos + 4 + length]
        if tag == _ZIP64_EXTRA:
            values = [struct.unpack_from("<Q", body, i)[0] for i in range(0, len(body) - 7, 8)]
            if usize == 0xFFFFFFFF and values:
                usize = values.pop(0)
            if csize == 0xFFFFFFFF and values:
                csize = values.pop(0)
        pos += 4 + length
    return usize, csize


async def _inflate_unbounded(buf: _Buffer, limit: int) -> bytes:
    """A deflate stream of unknown length: inflate until it says it ended."""
    d = zlib.decompressobj(-15)
    out = bytearray()
    while not d.eof:
        chunk = await buf.some()
        if not chunk:
            raise ZipStreamError("archive ends inside a deflated member")
        out += d.decompress(chunk)
        if len(out) > limit:
            raise ZipStreamError("member larger than allowed")
    buf.push_back(d.unused_data)
    return bytes(out)


def _check(name: str, data: bytes, crc: int, usize: int) -> Member:
    if len(data) != usize:
        return Member(name, b"", False, f"size {len(data)} != {usize}")
    if zlib.crc32(data) != crc:
        return Member(name, b"", False, "CRC mismatch")
    return Member(name, data, True)


async def members(chunks: AsyncIterator[bytes], *,
                  max_member: int = 512 << 20) -> AsyncGenerator[Member, None]:
    """The members of the zip streamed by ``chunks``, in archive order (see module doc)."""
    buf = _Buffer(chunks)
    while await buf.need(4):
        sig = await buf.take(4)
        if sig in (_CENTRAL, _END, _END64):
            return  # the central directory repeats what was read: done
        if sig != _LOCAL:
            raise ZipStreamError(f"unexpected signature {sig!r}")
        fixed = sig + await buf.take(_HEADER.size - 4)
        (_, _ver, flags, method, _t, _d, crc, csize, usize, nlen,
         xlen) = _HEADER.unpack(fixed)
        raw_name = await buf.take(nlen)
        extra = await buf.take(xlen)
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437")
        if flags & 0x1:
            raise ZipStreamError(f"{name}: encrypted member")
        usize, csize = _zip64_sizes(extra, usize, csize)
        described = bool(flags & 0x8)
        if method not in (_STORED, _DEFLATED):
            raise ZipStreamError(f"{name}: compression method {method}")
        if described and method == _STORED:
            raise ZipStreamError(f"{name}: stored member of unknown size")
        if max(usize, csize) > max_member and not described:
            raise ZipStreamError(f"{name}: member of {usize} bytes is too large")
        if described:
            data = await _inflate_unbounded(buf, max_member)
            head = await buf.take(4)
            if head != _DESCRIPTOR:
                buf.push_back(head)
            crc, _c, usize = struct.unpack("<III", await buf.take(12))
            yield _check(name, data, crc, usize)
            continue
        payload = await buf.take(csize)
        if method == _DEFLATED:
            try:
                data = zlib.decompress(payload, -15)
            except zlib.error as exc:
                yield Member(name, b"", False, f"inflate: {exc}")
                continue
        else:
            data = payload
        yield _check(name, data, crc, usize)
