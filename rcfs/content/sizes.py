"""Provisional sizes for content whose size the API does not give (recordings, greetings,
most attachments; docs/ringcentral.md §6.5): a plausible figure until the first download
tells the exact one.

Why: a 0-byte regular file is typed ``text/plain`` by GIO (Nautilus then shows a text icon
for an ``.mp3`` and opens a voicemail in a text editor) and looks empty to tools that
compare sizes. The estimate comes from what the listing knows (duration, page count, type),
in bytes per second or per page of the formats this account actually serves: every exact
size learned for a file with a duration or page count refines the rate (an average), so
after one download the estimates are close. An estimate is never shown as exact: the FUSE
layer learns the real size before ``open`` returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

# Rates before anything was learned: RingCentral's voicemail/recording MP3s are low-bitrate
# mono speech (~16 kbit/s); WAV greetings are 8 kHz 16-bit mono; a fax page as PDF or TIFF.
AUDIO_BYTES_PER_S = {"audio/mpeg": 2000.0, "audio/mp3": 2000.0, "audio/wav": 16000.0,
                     "audio/x-wav": 16000.0, "audio/wave": 16000.0}
DEFAULT_AUDIO_BYTES_PER_S = 2000.0
PAGE_BYTES = {"application/pdf": 40000.0, "image/tiff": 30000.0}
DEFAULT_PAGE_BYTES = 40000.0
FLAT = {"image/": 100_000, "video/": 1_000_000, "audio/": 60_000, "application/pdf": 80_000,
        "text/": 4096}
DEFAULT_FLAT = 65536


def _base(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


@dataclass
class SizeEstimator:
    """Estimates per content type, refined by each exact size learned."""

    per_second: dict[str, tuple[float, float]] = field(default_factory=dict)  # bytes, seconds
    per_page: dict[str, tuple[float, float]] = field(default_factory=dict)  # bytes, pages

    def estimate(self, content_type: str | None, duration: float | None = None,
                 pages: int | None = None) -> int:
        """A plausible size (never 0: an empty-looking file is typed as text)."""
        ct = _base(content_type)
        if duration is not None and duration > 0 and (ct.startswith("audio/") or not ct):
            rate = self._rate(self.per_second, ct,
                              AUDIO_BYTES_PER_S.get(ct, DEFAULT_AUDIO_BYTES_PER_S))
            return max(1, round(duration * rate))
        if pages is not None and pages > 0:
            rate = self._rate(self.per_page, ct, PAGE_BYTES.get(ct, DEFAULT_PAGE_BYTES))
            return max(1, round(pages * rate))
        for prefix, size in FLAT.items():
            if ct.startswith(prefix):
                return size
        return DEFAULT_FLAT

    def observe(self, content_type: str | None, size: int, duration: float | None = None,
                pages: int | None = None) -> None:
        """An exact size of a file whose duration or page count is known."""
        ct = _base(content_type)
        if duration is not None and duration > 0:
            b, s = self.per_second.get(ct, (0.0, 0.0))
            self.per_second[ct] = (b + size, s + duration)
        elif pages is not None and pages > 0:
            b, p = self.per_page.get(ct, (0.0, 0.0))
            self.per_page[ct] = (b + size, p + pages)

    @staticmethod
    def _rate(table: dict[str, tuple[float, float]], ct: str, prior: float) -> float:
        total, units = table.get(ct, (0.0, 0.0))
        return total / units if units > 0 else prior


@dataclass
class FileSizes(SizeEstimator):
    """The reader's book of sizes beyond the cache's records: estimates (above), which
    sizes are proven, and which cached sizes a background probe is looking up."""

    confirmed: dict[str, int] = field(default_factory=dict)
    """Content key -> its proven size (a Content-Range total, a body delivered to its end,
    the cache's record). A size from a 200's Content-Length alone is a claim: it may be
    larger than the body (the kernel would pad page-cache reads with zeros up to it)."""
    probing: set[str] = field(default_factory=set)

    def proven(self, key: str, api_size: int | None, size: int | None) -> bool:
        """``size`` is no guess: it is the proven size, or (none proven) the API's."""
        if size is None:
            return False
        known = self.confirmed.get(key)
        return known == size if known is not None else size == api_size

    def claim_probes(self, keys: dict[str, str],
                     known: Callable[[str], int | None]) -> list[str]:
        """Of ``keys`` (name -> content key), the names worth a cache lookup: not known yet
        and not already claimed. Claimed for good: one lookup per key and session."""
        names = [name for name, key in keys.items()
                 if key not in self.probing and known(key) is None]
        self.probing.update(keys[name] for name in names)
        return names
