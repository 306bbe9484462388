"""Emulator settings. Defaults are RingCentral's documented values; tests scale them down."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_LIMITS = {"Light": 50, "Medium": 40, "Heavy": 10, "Auth": 5}
DAY = 86400.0


@dataclass
class EmulatorConfig:
    seed: int = 1
    # Extra messages generated per extension ("scale mode"); their media is built on demand.
    scale: int = 0
    host: str = "127.0.0.1"
    tls: bool = False

    # Rate limiting (docs/ringcentral.md §3): per (app, user, group) sliding window plus a
    # penalty that each rejected request renews.
    limits: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    window: float = 60.0
    penalty: float = 60.0
    group_header_case: str = "title"  # "title" -> "Light", "lower" -> "light"

    # OAuth (docs/ringcentral.md §2).
    access_ttl: int = 3600
    refresh_ttl: int = 604800
    max_refresh_ttl: int = 604800
    code_ttl: float = 60.0
    max_sessions: int = 5
    refresh_grace_used: float = 10.0
    refresh_grace_unused: float = 3600.0
    corrupted_window: float = 10.0
    access_token_query_on_platform: bool = True

    # WebSocket gateway (docs/ringcentral.md §12): ConnectionDetails values, in seconds.
    ws_token_ttl: int = 600  # 600 s, as the official SDK extension assumes; reusable until then
    ws_recovery_timeout: float = 180.0
    ws_recovery_buffer: int = 100
    ws_idle_timeout: float = 1800.0
    ws_absolute_timeout: float = 86400.0
    ws_max_connections: int = 50  # per OAuth session
    ws_max_active_requests: int = 10  # tunnelled requests in flight per connection

    # Content.
    content_host: str = "media"  # "media" | "platform" | "media443": where attachment URIs point
    recording_content_on_platform: bool = False  # False: platform host answers 404 (H7)
    # Call recordings are WAV or MP3 by account setting; the seed follows it.
    recording_format: str = "mp3"
    omit_size_types: tuple[str, ...] = ("AudioRecording", "RenderedDocument", "Text")
    # An external media origin (benchmarks, ``origin.py``): content URIs on ``media_origin``,
    # whose files the emulator writes under ``media_dir``. Empty: its own media port.
    media_origin: str = ""
    media_dir: str = ""

    # Clocks of asynchronous behaviour.
    fax_seconds_per_page: float = 60.0
    sms_send_delay: float = 2.0
    sms_deliver_delay: float = 5.0
    call_log_lag: float = 0.0  # a call added at run time shows up this long after it ends
    # A message sent through fax/sms/mms shows in message-store listings and message-sync
    # this long after it was created (its id answers at once): the store's indexing lag
    # that a client must wait out before deciding that an unclear send did not happen.
    message_store_lag: float = 0.0
    recording_processing: float = 0.0  # its recording content is 404 until then
    deleted_to_purged: float = 5 * DAY
    purged_to_gone: float = 5 * DAY
    # 24 h per spec; 7 days per a docs page (CONFLICT, docs/ringcentral.md §5.2).
    fsync_default_window: float = DAY
    sync_token_ttl: float = 7 * DAY
    report_step: float = 5.0  # seconds per report task state step
    # How a message-store-report task ends (routes_reports): "Completed", "Failed",
    # "Cancelled", or "AttemptFailed" (one failed attempt, retried to Completed).
    report_outcome: str = "Completed"
    max_report_tasks: int = 2
    archive_max_bytes: int = 1 << 30
    # Archive URIs expire (I: undocumented lifetime): > 0 hands out URIs valid this many
    # emulated seconds (an ``expires`` query parameter); later GETs answer 404 CMN-102.
    archive_uri_ttl: float = 0.0
    # Damaged attachment archives (tests of a client's fallback): the first N attachment
    # members are left out, the next N stored with one byte flipped after the CRC.
    archive_drop_members: int = 0
    archive_corrupt_members: int = 0

    # When set, a file path: one JSON line per request/response exchange, which the test
    # harness validates against the OpenAPI spec (tests/openapi_check.py).
    record_exchanges: str = ""

    # Fault rules active from the start (same shape as POST /_emulator/faults).
    faults: list[dict[str, Any]] = field(default_factory=list)

    # Registered redirect URIs of the public (PKCE) app.
    redirect_uris: list[str] = field(
        default_factory=lambda: [
            "http://127.0.0.1:53682/callback",
            "http://localhost:53682/callback",
        ]
    )

    def update(self, values: dict[str, Any]) -> None:
        """Apply a JSON-like dict of settings, rejecting unknown keys by name."""
        names = {f.name: f for f in dataclasses.fields(self)}
        for key, value in values.items():
            if key not in names:
                raise KeyError(f"unknown emulator setting {key!r}")
            current = getattr(self, key)
            if isinstance(current, tuple) and isinstance(value, list):
                value = tuple(value)
            if isinstance(current, float) and isinstance(value, int):
                value = float(value)
            setattr(self, key, value)

    @classmethod
    def from_file(cls, path: Path) -> EmulatorConfig:
        cfg = cls()
        cfg.update(json.loads(path.read_text()))
        return cfg

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_limits(text: str) -> dict[str, int]:
    """Parse ``Light=50,Medium=40,Heavy=10,Auth=5`` (any subset)."""
    limits = dict(DEFAULT_LIMITS)
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = item.partition("=")
        limits[name.strip().title()] = int(value)
    return limits
