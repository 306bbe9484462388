"""Tests for rcfs.emulator.media: generated media must be real, exact and reproducible.

External tools (ffprobe, ffmpeg, pdfinfo, tiffinfo) are the judges because they are
what a user's desktop would run on the mounted files; when CI is set a missing tool is
a failure, never a skip.
"""

from __future__ import annotations

import array
import hashlib
import io
import os
import struct
import subprocess
import sys
import time
import wave
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, TiffImagePlugin

from rcfs.emulator import media
from tests.programs import require_programs


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _ffprobe_duration(path: Path) -> float:
    res = _run(
        require_programs("ffprobe")[0],
        "-v",
        "error",
        "-show_entries",
        "format=duration",
        "-of",
        "csv=p=0",
        str(path),
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    return float(res.stdout.strip())


def _ffmpeg_decode_clean(path: Path, start: float, length: float = 2.0) -> None:
    res = _run(
        require_programs("ffmpeg")[0],
        "-v",
        "error",
        "-nostdin",
        "-ss",
        f"{start:.3f}",
        "-t",
        f"{length:.3f}",
        "-i",
        str(path),
        "-f",
        "null",
        "-",
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr == "", res.stderr


# ---------------------------------------------------------------- determinism

GENERATORS: dict[str, Callable[[int], bytes]] = {
    "wav": lambda seed: media.wav(3.5, seed),
    "wav16k": lambda seed: media.wav(1.25, seed, sample_rate=16000),
    "mp3": lambda seed: media.mp3(5, seed),
    "pdf": lambda seed: media.pdf(3, seed, title="Fax from +16505550100"),
    "tiff": lambda seed: media.tiff(2, seed),
    "jpeg": lambda seed: media.jpeg(320, 240, seed),
    "png": lambda seed: media.png(320, 240, seed),
    "gif": lambda seed: media.gif(320, 240, seed),
}


@pytest.mark.parametrize("kind", sorted(GENERATORS))
def test_same_args_same_bytes_different_seed_different_bytes(kind: str) -> None:
    gen = GENERATORS[kind]
    assert gen(1) == gen(1)
    assert gen(1) != gen(2)


_HASH_SCRIPT = """
import hashlib, sys
from rcfs.emulator import media
outs = [
    media.wav(3.5, 11), media.mp3(5, 11), media.pdf(3, 11, title="T"),
    media.tiff(2, 11), media.jpeg(64, 48, 11), media.png(64, 48, 11), media.gif(64, 48, 11),
]
sys.stdout.write(" ".join(hashlib.sha256(b).hexdigest() for b in outs))
"""


def test_bytes_identical_across_processes() -> None:
    """Scale mode regenerates content per request, possibly in another worker process."""
    expected = " ".join(
        hashlib.sha256(b).hexdigest()
        for b in (
            media.wav(3.5, 11),
            media.mp3(5, 11),
            media.pdf(3, 11, title="T"),
            media.tiff(2, 11),
            media.jpeg(64, 48, 11),
            media.png(64, 48, 11),
            media.gif(64, 48, 11),
        )
    )
    for hashseed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        res = subprocess.run(
            [sys.executable, "-c", _HASH_SCRIPT],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=True,
        )
        assert res.stdout == expected


# ------------------------------------------------------------------------ WAV


@pytest.mark.parametrize(
    ("duration", "rate"), [(2, 8000), (42, 8000), (0.5, 8000), (1.234, 8000), (2.5, 16000)]
)
def test_wav_duration_exact(tmp_path: Path, duration: float, rate: int) -> None:
    data = media.wav(duration, 3, sample_rate=rate)
    assert len(data) == media.wav_size(duration, rate)
    path = _write(tmp_path, "a.wav", data)
    assert _ffprobe_duration(path) == pytest.approx(duration, abs=0.0005)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, rate)
        assert w.getnframes() == round(duration * rate)


def test_wav_is_audible_not_silence() -> None:
    with wave.open(io.BytesIO(media.wav(2, 5))) as w:
        raw = w.readframes(w.getnframes())
    samples = array.array("h", raw)
    if sys.byteorder == "big":
        samples.byteswap()
    peak = max(abs(s) for s in samples)
    assert 1000 < peak < 20000  # audible but quiet, never clipping


def test_wav_frequency_depends_on_seed() -> None:
    one_second = {media.wav(1, seed)[44:] for seed in range(8)}
    assert len(one_second) == 8


def test_wav_decodes_mid_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.wav", media.wav(42, 9))
    _ffmpeg_decode_clean(path, 21)


def test_wav_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        media.wav(-1, 0)
    with pytest.raises(ValueError):
        media.wav(float("nan"), 0)
    with pytest.raises(ValueError):
        media.wav(1, 0, sample_rate=0)


# ------------------------------------------------------------------------ MP3


@pytest.mark.parametrize("duration", [1, 2, 7.3, 42, 600, 3600])
def test_mp3_duration(tmp_path: Path, duration: float) -> None:
    data = media.mp3(duration, 4)
    assert len(data) == media.mp3_size(duration)
    path = _write(tmp_path, "a.mp3", data)
    probed = _ffprobe_duration(path)
    assert probed == pytest.approx(duration, abs=0.1)
    assert probed == pytest.approx(media.mp3_duration(duration), abs=0.001)


@pytest.mark.parametrize("duration", [2, 42, 3600])
def test_mp3_decodes_mid_file_without_errors(tmp_path: Path, duration: float) -> None:
    path = _write(tmp_path, "a.mp3", media.mp3(duration, 8))
    _ffmpeg_decode_clean(path, max(0.0, duration / 2 - 1))


def test_mp3_full_decode_is_clean_and_not_silent(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.mp3", media.mp3(42, 8))
    res = subprocess.run(
        [require_programs("ffmpeg")[0], "-v", "error", "-nostdin", "-i", str(path),
         "-f", "s16le", "-"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr == b""
    samples = array.array("h", res.stdout)
    if sys.byteorder == "big":
        samples.byteswap()
    assert len(samples) == pytest.approx(42 * 48000, abs=1152)
    peak = max(abs(s) for s in samples)
    assert 100 < peak < 20000


def test_mp3_info_header() -> None:
    data = media.mp3(10, 1)
    assert data[:4] == b"\xff\xfb\x14\xc0"
    assert data[21:25] == b"Info"
    flags, frames, size = struct.unpack(">III", data[25:37])
    assert flags == 3
    assert frames == round(10 / media.MP3_FRAME_SECONDS)
    assert size == len(data) == 96 * (frames + 1)
    # Every audio frame starts with the same header: no padding slots, CBR.
    assert all(data[i : i + 4] == b"\xff\xfb\x14\xc0" for i in range(0, len(data), 96))


# ------------------------------------------------------------------- PDF/TIFF


@pytest.mark.parametrize("pages", [1, 2, 7])
def test_pdf_page_count(tmp_path: Path, pages: int) -> None:
    path = _write(tmp_path, "a.pdf", media.pdf(pages, 5, title="Fax (urgent) \\ café €"))
    res = _run(require_programs("pdfinfo")[0], str(path))
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    info = dict(
        (k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in res.stdout.splitlines())
    )
    assert info["Pages"] == str(pages)
    assert info["Title"] == "Fax (urgent) \\ café €"


def test_pdf_text_is_visible(tmp_path: Path) -> None:
    path = _write(tmp_path, "a.pdf", media.pdf(2, 5, title="Quarterly fax"))
    res = _run(require_programs("pdftotext")[0], "-f", "2", "-l", "2", str(path), "-")
    assert res.returncode == 0, res.stderr
    assert "Page 2 of 2" in res.stdout
    assert "Quarterly fax" in res.stdout


def test_pdf_rejects_zero_pages() -> None:
    with pytest.raises(ValueError):
        media.pdf(0, 1)


@pytest.mark.parametrize("pages", [1, 3])
def test_tiff_directories(tmp_path: Path, pages: int) -> None:
    path = _write(tmp_path, "a.tif", media.tiff(pages, 6))
    res = _run(require_programs("tiffinfo")[0], "-D", str(path))
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert res.stdout.count("TIFF Directory at offset") == pages
    with Image.open(path) as img:
        assert isinstance(img, TiffImagePlugin.TiffImageFile)
        assert img.n_frames == pages
        for i in range(pages):
            img.seek(i)
            assert img.size == (1728, 200)
            assert img.mode == "1"
            dark = img.convert("L").histogram()[0]
            assert 0 < dark < 1728 * 200 // 4  # some ink on a white page


def test_tiff_is_small() -> None:
    assert len(media.tiff(1, 1)) < 20_000  # uncompressed would be 43,200 bytes


def test_tiff_custom_size() -> None:
    with Image.open(io.BytesIO(media.tiff(2, 1, width=100, height=30))) as img:
        assert isinstance(img, TiffImagePlugin.TiffImageFile)
        assert img.size == (100, 30)
        assert img.n_frames == 2


def _unpackbits(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        n = data[i]
        i += 1
        if n < 128:
            out += data[i : i + n + 1]
            i += n + 1
        elif n > 128:
            out += data[i : i + 1] * (257 - n)
            i += 1
    return bytes(out)


@given(st.binary(max_size=600) | st.lists(st.sampled_from([b"\0", b"\xff", b"\x0f"])).map(b"".join))
def test_packbits_roundtrip(row: bytes) -> None:
    assert _unpackbits(media._packbits_row(row)) == row


# --------------------------------------------------------------------- images


@pytest.mark.parametrize(("kind", "fmt"), [("jpeg", "JPEG"), ("png", "PNG"), ("gif", "GIF")])
@pytest.mark.parametrize(("width", "height"), [(640, 480), (1, 1), (37, 1001)])
def test_images_decode(tmp_path: Path, kind: str, fmt: str, width: int, height: int) -> None:
    gen: Callable[[int, int, int], bytes] = getattr(media, kind)
    data = gen(width, height, 77)
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == fmt
        assert img.size == (width, height)
        img.load()
    path = _write(tmp_path, f"a.{kind}", data)
    res = _run(
        require_programs("ffprobe")[0],
        "-v",
        "error",
        "-show_entries",
        "stream=width,height",
        "-of",
        "csv=p=0",
        str(path),
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"{width},{height}"


def test_image_content_depends_on_seed() -> None:
    a = Image.open(io.BytesIO(media.png(200, 100, 1))).convert("RGB").tobytes()
    b = Image.open(io.BytesIO(media.png(200, 100, 2))).convert("RGB").tobytes()
    assert a != b
    assert len(set(a)) > 3  # not a flat colour


# ---------------------------------------------------------------------- sniff


def _pillow_bytes(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, format=fmt)
    return buf.getvalue()


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hello")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: media.pdf(1, 1), "application/pdf"),
        (lambda: media.tiff(1, 1), "image/tiff"),
        (lambda: b"MM\0*\0\0\0\x08", "image/tiff"),
        (lambda: media.jpeg(8, 8, 1), "image/jpeg"),
        (lambda: media.png(8, 8, 1), "image/png"),
        (lambda: media.gif(8, 8, 1), "image/gif"),
        (lambda: _pillow_bytes("BMP"), "image/bmp"),
        (lambda: _pillow_bytes("WEBP"), "image/webp"),
        (lambda: media.wav(0.1, 1), "audio/wav"),
        (lambda: media.mp3(1, 1), "audio/mpeg"),
        (lambda: media.mp3(1, 1)[96:], "audio/mpeg"),  # bare frame sync, no Info frame
        (lambda: b"ID3\x04\0\0\0\0\0\0", "audio/mpeg"),
        (lambda: b"\0\0\0\x18ftypisom\0\0\x02\0", "video/mp4"),
        (lambda: b"\0\0\0\x18ftypM4A \0\0\x02\0", "audio/mp4"),
        (lambda: b"OggS\0\x02" + bytes(20), "audio/ogg"),
        (lambda: b"#!AMR\n" + bytes(10), "audio/amr"),
        (_zip_bytes, "application/zip"),
        (lambda: b"{\\rtf1\\ansi hello}", "application/rtf"),
        (lambda: "Hello, wörld ✓\n".encode(), "text/plain"),
        (lambda: b"plain ascii", "text/plain"),
    ],
)
def test_sniff_positive(make: Callable[[], bytes], expected: str) -> None:
    assert media.sniff_content_type(make()) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01\x02binary",
        b"\xff\xfe\xfd not utf-8",
        b"caf\xe9",  # latin-1, not UTF-8
        b"text with a NUL\0 inside",
        b"RIFF\x10\0\0\0XXXXdata",  # RIFF of an unknown form
        b"\xff\xf1\x50\x80\x02\x1f\xfc",  # ADTS AAC: layer bits 00, not MPEG audio
    ],
)
def test_sniff_negative(data: bytes) -> None:
    assert media.sniff_content_type(data) is None


# ---------------------------------------------------------------------- speed


def _best_of(n: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(n):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def test_generation_speed() -> None:
    """Scale mode generates content per request; an hour of audio must stay cheap."""

    def cold_mp3() -> None:
        media._mp3_audio_frame.cache_clear()
        media.mp3(3600, 123)

    def cold_wav() -> None:
        media._wav_block.cache_clear()
        media.wav(600, 123)

    mp3_s = _best_of(3, cold_mp3)
    wav_s = _best_of(3, cold_wav)
    assert mp3_s < 2.0, mp3_s
    assert wav_s < 2.0, wav_s
