"""Deterministic, valid media bytes for the emulator's seeded messages.

The emulator never stores media: every voicemail, recording, fax and MMS image is
regenerated from ``(kind, seed, size parameters)`` whenever it is downloaded, so a
function here must be pure (same arguments, same bytes, in any process) and fast
enough for "scale mode", where 100,000+ messages are served on demand.  The bytes
must also be *real* media (ffprobe, pdfinfo, tiffinfo and Pillow accept them), so
that tests exercise what a user would see on a real account.

Long audio is built by repeating one precomputed block with ``bytes`` multiplication
rather than by a Python loop per sample, which keeps a one-hour file in milliseconds.
``sniff_content_type`` lives here too because the upload validators need the same
knowledge of magic numbers.
"""

from __future__ import annotations

import codecs
import functools
import io
import math
import random
import re
import struct
import sys
from array import array

from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "MP3_FRAME_SECONDS",
    "gif",
    "jpeg",
    "mp3",
    "mp3_duration",
    "mp3_size",
    "pdf",
    "png",
    "sniff_content_type",
    "tiff",
    "wav",
    "wav_size",
]

_WORDS = (
    "invoice",
    "quarterly",
    "report",
    "meeting",
    "schedule",
    "contract",
    "signature",
    "payment",
    "account",
    "balance",
    "shipment",
    "delivery",
    "order",
    "confirm",
    "approve",
    "review",
    "pending",
    "urgent",
    "notice",
    "policy",
    "renewal",
    "statement",
    "summary",
    "agenda",
    "minutes",
    "proposal",
    "estimate",
    "receipt",
)


def _check_non_negative(name: str, value: float) -> None:
    """Reject negative or non-finite sizes early, with a message naming the argument."""
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")


# --------------------------------------------------------------------------- WAV


@functools.lru_cache(maxsize=64)
def _wav_block(seed: int, sample_rate: int) -> bytes:
    """One second of a two-beep pattern; cached since scale mode reuses few seeds."""
    rng = random.Random(f"wav:{seed}")
    f1 = rng.randrange(300, 900)
    f2 = rng.randrange(300, 900)
    amp = 3000.0  # about -21 dBFS: clearly audible, never clipping
    samples = array("h", bytes(2 * sample_rate))
    # Two beeps per second: [0, 0.4) at f1 and [0.5, 0.9) at f2, each shaped by a
    # sin^2 envelope that is zero at both ends, so repeating the block never clicks.
    for start, freq in ((0.0, f1), (0.5, f2)):
        first = math.ceil(start * sample_rate)
        last = math.ceil((start + 0.4) * sample_rate)
        for i in range(first, min(last, sample_rate)):
            t = i / sample_rate
            env = math.sin(math.pi * (t - start) / 0.4) ** 2
            samples[i] = int(round(amp * env * math.sin(2.0 * math.pi * freq * t)))
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def wav_size(duration_s: float, sample_rate: int = 8000) -> int:
    """Byte size of ``wav(duration_s, ...)`` without generating it (listing ``size``)."""
    return 44 + 2 * round(duration_s * sample_rate)


def wav(duration_s: float, seed: int, sample_rate: int = 8000) -> bytes:
    """A RIFF/WAVE PCM 16-bit mono file of exactly ``round(duration_s*rate)`` samples.

    Voicemails and recordings are ``audio/x-wav`` on real accounts; a seed-dependent
    beep pattern (not silence) lets a human tell two files apart by ear.
    """
    _check_non_negative("duration_s", duration_s)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate!r}")
    n = round(duration_s * sample_rate)
    data_len = 2 * n
    if data_len + 36 > 0xFFFFFFFF:
        raise ValueError("WAV data would exceed the 4 GiB RIFF limit")
    block = _wav_block(seed, sample_rate)
    whole, rest = divmod(data_len, len(block))
    header = b"".join(
        (
            b"RIFF",
            struct.pack("<I", 36 + data_len),
            b"WAVEfmt ",
            struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, 2 * sample_rate, 2, 16),
            b"data",
            struct.pack("<I", data_len),
        )
    )
    return b"".join((header, block * whole, block[:rest]))


# --------------------------------------------------------------------------- MP3

# MPEG-1 Layer III, 48 kHz, 32 kbit/s, mono: 144 * 32000 / 48000 = 96-byte frames of
# 1152 samples = 24 ms, with no padding slot ever needed (so every frame is identical).
_MP3_HEADER = bytes((0xFF, 0xFB, 0x14, 0xC0))
_MP3_FRAME_LEN = 96
_MP3_SIDE_INFO_LEN = 17
MP3_FRAME_SECONDS = 1152 / 48000


class _BitWriter:
    """MSB-first bit packer for MP3 side info and Huffman data."""

    def __init__(self) -> None:
        self._bits: list[str] = []

    def put(self, value: int, width: int) -> None:
        """Append ``value`` as ``width`` bits, most significant first."""
        if width:
            self._bits.append(format(value, f"0{width}b"))

    def put_bits(self, bits: str) -> None:
        """Append a literal bit string such as a Huffman code word."""
        self._bits.append(bits)

    def __len__(self) -> int:
        return sum(len(b) for b in self._bits)

    def to_bytes(self, length: int) -> bytes:
        """The bits, zero padded to exactly ``length`` bytes."""
        s = "".join(self._bits)
        if len(s) > 8 * length:
            raise ValueError("bit string longer than the requested byte length")
        s = s.ljust(8 * length, "0")
        return int(s, 2).to_bytes(length, "big") if s else b""


def _mp3_granule_bits(line: int, negative: bool) -> str:
    """Huffman data (table 1) for one granule: a single unit coefficient at ``line``.

    Table 1 codes value pairs in 0..1 as (0,0)->"1", (1,0)->"01"; a non-zero value is
    followed by its sign bit.  ``line`` is even, so it is the first value of its pair.
    """
    return "1" * (line // 2) + "01" + ("1" if negative else "0")


@functools.lru_cache(maxsize=64)
def _mp3_audio_frame(seed: int) -> bytes:
    """One self-contained audio frame holding a quiet seed-dependent tone.

    Each granule sets one MDCT coefficient, which the decoder turns into a sine of
    about (line + 0.5) * 41.7 Hz; main_data_begin is 0 (no bit reservoir), so every
    frame decodes alone and seeking anywhere is clean.
    """
    rng = random.Random(f"mp3:{seed}")
    line = 2 * rng.randrange(8, 24)  # 700..2000 Hz
    global_gain = 190  # each step of 4 is 6 dB; 190 gives about -30 dBFS
    side = _BitWriter()
    side.put(0, 9)  # main_data_begin
    side.put(0, 5)  # private_bits
    side.put(0, 4)  # scfsi
    main = _BitWriter()
    for gr in range(2):
        data = _mp3_granule_bits(line, negative=bool(gr))
        side.put(len(data), 12)  # part2_3_length (scalefactors take 0 bits)
        side.put(line // 2 + 1, 9)  # big_values (pairs)
        side.put(global_gain, 8)
        side.put(0, 4)  # scalefac_compress: slen1 = slen2 = 0
        side.put(0, 1)  # window_switching_flag: long blocks
        for _ in range(3):
            side.put(1, 5)  # table_select: table 1 in every region
        side.put(0, 4)  # region0_count
        side.put(0, 3)  # region1_count
        side.put(0, 1)  # preflag
        side.put(0, 1)  # scalefac_scale
        side.put(0, 1)  # count1table_select
        main.put_bits(data)
    payload = _MP3_FRAME_LEN - len(_MP3_HEADER) - _MP3_SIDE_INFO_LEN
    return _MP3_HEADER + side.to_bytes(_MP3_SIDE_INFO_LEN) + main.to_bytes(payload)


def _mp3_frames(duration_s: float) -> int:
    """Number of audio frames that best approximates ``duration_s`` (at least one)."""
    return max(1, round(duration_s / MP3_FRAME_SECONDS))


def mp3_duration(duration_s: float) -> float:
    """The duration ``mp3(duration_s, ...)`` really has (a multiple of 24 ms)."""
    return _mp3_frames(duration_s) * MP3_FRAME_SECONDS


def mp3_size(duration_s: float) -> int:
    """Byte size of ``mp3(duration_s, ...)`` without generating it."""
    return _MP3_FRAME_LEN * (_mp3_frames(duration_s) + 1)


def mp3(duration_s: float, seed: int) -> bytes:
    """A CBR MPEG-1 Layer III stream (48 kHz mono, 32 kbit/s) lasting ``duration_s``.

    No encoder is available, so frames are hand-built.  A leading Xing "Info" frame
    carries the frame count, so ffprobe reports an exact duration instead of one
    estimated from the bitrate.
    """
    _check_non_negative("duration_s", duration_s)
    frames = _mp3_frames(duration_s)
    total = _MP3_FRAME_LEN * (frames + 1)
    info = b"".join(
        (
            _MP3_HEADER,
            bytes(_MP3_SIDE_INFO_LEN),  # all-zero side info: a silent frame to old decoders
            b"Info",
            struct.pack(">III", 0x3, frames, total),  # flags: frame count + byte count
        )
    )
    info = info.ljust(_MP3_FRAME_LEN, b"\0")
    return info + _mp3_audio_frame(seed) * frames


# --------------------------------------------------------------------------- PDF


def _pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsiEncoding, with unencodable characters as '?'."""
    raw = text.encode("cp1252", errors="replace")
    out = bytearray(b"(")
    for byte in raw:
        if byte in b"()\\":
            out += b"\\" + bytes((byte,))
        elif byte < 0x20 or byte == 0x7F:
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    out += b")"
    return bytes(out)


def _pdf_page_stream(page: int, pages: int, title: str, rng: random.Random) -> bytes:
    """Content stream of one letter-size page: title, page counter and body lines."""
    ops = [
        b"0 0 0 RG 1 w 54 738 m 558 738 l S",
        b"BT /F1 20 Tf 72 748 Td " + _pdf_string(title) + b" Tj ET",
        b"BT /F1 10 Tf 460 748 Td " + _pdf_string(f"Page {page} of {pages}") + b" Tj ET",
    ]
    y = 700
    for _ in range(rng.randrange(8, 20)):
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(4, 11)))
        ops.append(b"BT /F1 12 Tf 72 %d Td " % y + _pdf_string(words.capitalize()) + b" Tj ET")
        y -= 18
    # A box with a seed-dependent fill gray, standing in for a stamp or a logo.
    gray = rng.randrange(30, 90) / 100
    ops.append(b"%.2f g 72 %d 144 72 re f" % (gray, y - 90))
    return b"\n".join(ops) + b"\n"


def pdf(pages: int, seed: int, title: str = "Fax") -> bytes:
    """A multi-page PDF with visible Helvetica text on each page.

    Fax attachments are ``application/pdf``; objects and the xref table are written
    by hand so the output is byte-for-byte reproducible (no dates, no ids).
    """
    if pages < 1:
        raise ValueError(f"pages must be at least 1, got {pages!r}")
    rng = random.Random(f"pdf:{seed}")
    n_objects = 4 + 2 * pages
    page_ids = [5 + 2 * i for i in range(pages)]
    bodies: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % pid for pid in page_ids)
        + b"] /Count %d >>" % pages,
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        4: b"<< /Title <"
        + codecs.BOM_UTF16_BE.hex().encode()
        + title.encode("utf-16-be").hex().encode()
        + b"> /Producer (rcfs emulator) >>",
    }
    for i, pid in enumerate(page_ids):
        stream = _pdf_page_stream(i + 1, pages, title, rng)
        bodies[pid] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (pid + 1)
        )
        bodies[pid + 1] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream"
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = [0] * (n_objects + 1)
    for num in range(1, n_objects + 1):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + bodies[num] + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (n_objects + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets[1:])
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R >>\n" % (n_objects + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref_at
    return bytes(out)


# -------------------------------------------------------------------------- TIFF

_RUN_OF_3 = re.compile(rb"(.)\1{2,}", re.DOTALL)


def _packbits_row(row: bytes) -> bytes:
    """PackBits-encode one row (TIFF compression 32773); runs of 3+ bytes are repeated."""
    out = bytearray()

    def literal(chunk: bytes) -> None:
        for i in range(0, len(chunk), 128):
            part = chunk[i : i + 128]
            out.append(len(part) - 1)
            out.extend(part)

    pos = 0
    for m in _RUN_OF_3.finditer(row):
        literal(row[pos : m.start()])
        value = row[m.start()]
        remaining = m.end() - m.start()
        while remaining:
            n = min(remaining, 128)
            if n == 1:  # a lone leftover byte cannot be a run
                out += bytes((0, value))
            else:
                out += bytes((257 - n, value))
            remaining -= n
        pos = m.end()
    literal(row[pos:])
    return bytes(out)


@functools.lru_cache(maxsize=1)
def _bitmap_font() -> ImageFont.ImageFont:
    """Pillow's built-in bitmap font: 20x faster than FreeType and looks like a fax."""
    return ImageFont.load_default_imagefont()


def _tiff_page_bitmap(width: int, height: int, page: int, pages: int, seed: int) -> bytes:
    """Packed 1-bit rows (1 = white) of a fax-like page with text and a seeded stamp."""
    rng = random.Random(f"tiff:{seed}:{page}")
    img = Image.new("1", (width, height), 1)
    draw = ImageDraw.Draw(img)
    font = _bitmap_font()
    draw.text((10, 4), f"Page {page} of {pages}", fill=0, font=font)
    y = 20
    while y < height - 12:
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randrange(3, 14)))
        draw.text((20, y), words, fill=0, font=font)
        y += 14
    x0 = rng.randrange(0, max(1, width - 60))
    y0 = rng.randrange(0, max(1, height - 30))
    draw.rectangle((x0, y0, x0 + 50, y0 + 20), outline=0, width=2)
    return img.tobytes()


def _ifd_entry(tag: int, typ: int, count: int, value: int) -> bytes:
    """One 12-byte little-endian IFD entry; SHORT values are left-justified."""
    if typ == 3 and count == 1:
        return struct.pack("<HHIHH", tag, typ, count, value, 0)
    return struct.pack("<HHII", tag, typ, count, value)


def tiff(pages: int, seed: int, width: int = 1728, height: int = 200) -> bytes:
    """A multi-page bilevel TIFF (PackBits), the layout fax machines and viewers expect.

    Each page is one strip with its own IFD, so ``tiffinfo`` lists ``pages``
    directories; the default 1728-pixel width is the standard fax line.
    """
    if pages < 1:
        raise ValueError(f"pages must be at least 1, got {pages!r}")
    if width < 1 or height < 1:
        raise ValueError("width and height must be positive")
    row_len = (width + 7) // 8
    out = bytearray(b"II*\0\0\0\0\0")  # first-IFD offset patched below
    link_at = 4
    row_cache: dict[bytes, bytes] = {}
    for page in range(1, pages + 1):
        raw = _tiff_page_bitmap(width, height, page, pages, seed)
        strip = bytearray()
        for r in range(height):
            row = raw[r * row_len : (r + 1) * row_len]
            packed = row_cache.get(row)
            if packed is None:
                packed = row_cache[row] = _packbits_row(row)
            strip += packed
        strip_at = len(out)
        out += strip
        if len(out) % 2:
            out += b"\0"
        res_at = len(out)
        out += struct.pack("<IIII", 204, 1, 196, 1)  # fax "fine" resolution, dpi
        ifd_at = len(out)
        struct.pack_into("<I", out, link_at, ifd_at)
        entries = [
            _ifd_entry(254, 4, 1, 2),  # NewSubfileType: page of a multi-page image
            _ifd_entry(256, 4, 1, width),
            _ifd_entry(257, 4, 1, height),
            _ifd_entry(258, 3, 1, 1),  # BitsPerSample
            _ifd_entry(259, 3, 1, 32773),  # Compression: PackBits
            _ifd_entry(262, 3, 1, 1),  # Photometric: BlackIsZero (1 bits are white)
            _ifd_entry(266, 3, 1, 1),  # FillOrder: MSB first
            _ifd_entry(273, 4, 1, strip_at),  # StripOffsets
            _ifd_entry(277, 3, 1, 1),  # SamplesPerPixel
            _ifd_entry(278, 4, 1, height),  # RowsPerStrip
            _ifd_entry(279, 4, 1, len(strip)),  # StripByteCounts
            _ifd_entry(282, 5, 1, res_at),  # XResolution
            _ifd_entry(283, 5, 1, res_at + 8),  # YResolution
            _ifd_entry(296, 3, 1, 2),  # ResolutionUnit: inch
            struct.pack("<HHIHH", 297, 3, 2, page - 1, pages),  # PageNumber
        ]
        out += struct.pack("<H", len(entries)) + b"".join(entries)
        link_at = len(out)
        out += b"\0\0\0\0"  # next-IFD offset, 0 on the last page
    return bytes(out)


# ------------------------------------------------------------------------ images


def _picture(width: int, height: int, seed: int, mode: str) -> Image.Image:
    """A seed-dependent picture: a two-colour gradient with a few random shapes."""
    if width < 1 or height < 1:
        raise ValueError("width and height must be positive")
    rng = random.Random(f"img:{seed}")

    def colour() -> tuple[int, int, int]:
        return (rng.randrange(256), rng.randrange(256), rng.randrange(256))

    top, bottom = colour(), colour()
    # A 1-pixel-wide gradient stretched by Pillow: cheap even for large images.
    column = Image.new("RGB", (1, 256))
    column.putdata(
        [tuple(top[c] + (bottom[c] - top[c]) * i // 255 for c in range(3)) for i in range(256)]
    )
    img = column.resize((width, height), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randrange(3, 9)):
        x0, x1 = sorted((rng.randrange(width), rng.randrange(width)))
        y0, y1 = sorted((rng.randrange(height), rng.randrange(height)))
        shape = rng.choice(("ellipse", "rectangle", "line"))
        if shape == "ellipse":
            draw.ellipse((x0, y0, x1, y1), fill=colour())
        elif shape == "rectangle":
            draw.rectangle((x0, y0, x1, y1), fill=colour())
        else:
            draw.line((x0, y0, x1, y1), fill=colour(), width=max(1, min(width, height) // 50))
    draw.text((4, 4), f"#{seed}", fill=(255, 255, 255), font=_bitmap_font())
    if mode == "P":
        # A fixed web palette, not an adaptive one, keeps GIF encoding cheap and stable.
        return img.convert("P", palette=Image.Palette.WEB, dither=Image.Dither.NONE)
    return img


def _save(img: Image.Image, fmt: str, **params: object) -> bytes:
    """Encode ``img`` into memory."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def jpeg(width: int, height: int, seed: int) -> bytes:
    """A baseline JPEG photo stand-in for MMS attachments (fixed quality, no EXIF)."""
    return _save(_picture(width, height, seed, "RGB"), "JPEG", quality=85)


def png(width: int, height: int, seed: int) -> bytes:
    """A PNG image for MMS attachments (Pillow writes no timestamp chunk)."""
    return _save(_picture(width, height, seed, "RGB"), "PNG", compress_level=6)


def gif(width: int, height: int, seed: int) -> bytes:
    """A single-frame GIF89a image for MMS attachments."""
    return _save(_picture(width, height, seed, "P"), "GIF")


# ------------------------------------------------------------------------- sniff


def _mpeg_audio_sync(data: bytes) -> bool:
    """True if ``data`` starts with a plausible MPEG audio frame header (not ADTS/AAC)."""
    if len(data) < 4 or data[0] != 0xFF or data[1] & 0xE0 != 0xE0:
        return False
    version = (data[1] >> 3) & 0x3
    layer = (data[1] >> 1) & 0x3
    bitrate = data[2] >> 4
    rate = (data[2] >> 2) & 0x3
    return version != 1 and layer != 0 and bitrate != 0xF and rate != 0x3


_FTYP_BRANDS = {
    b"M4A ": "audio/mp4",
    b"M4B ": "audio/mp4",
    b"qt  ": "video/quicktime",
    b"3gp4": "video/3gpp",
    b"3gp5": "video/3gpp",
    b"3gp6": "video/3gpp",
    b"3gp7": "video/3gpp",
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"mif1": "image/heif",
    b"avif": "image/avif",
}


def sniff_content_type(data: bytes) -> str | None:
    """The media type that ``data``'s magic bytes announce, or None if unrecognised.

    Upload validation must not trust the client's ``Content-Type`` alone (RingCentral
    rejects unsupported media with 415), so the emulator checks the bytes too.
    Valid UTF-8 without NUL bytes counts as ``text/plain``; empty input is None.
    """
    if not data:
        return None
    head = data[:16]
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith((b"II*\0", b"MM\0*")):
        return "image/tiff"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"BM") and len(data) >= 14:
        return "image/bmp"
    if head.startswith(b"RIFF") and len(data) >= 12:
        form = data[8:12]
        if form == b"WEBP":
            return "image/webp"
        if form == b"WAVE":
            return "audio/wav"
        if form == b"AVI ":
            return "video/x-msvideo"
        return None
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(data[8:12], "video/mp4")
    if head.startswith(b"ID3") or _mpeg_audio_sync(data):
        return "audio/mpeg"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"#!AMR"):
        return "audio/amr"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "application/zip"
    if head.startswith(b"\x1f\x8b"):
        return "application/gzip"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "application/x-ole-storage"  # legacy .doc/.xls/.ppt
    if head.startswith(b"8BPS"):
        return "image/vnd.adobe.photoshop"
    if head.startswith(b"{\\rtf"):
        return "application/rtf"
    if b"\0" in data:
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text/plain"
