"""The OAuth session on disk: one JSON file, 0600, replaced atomically.

Refresh tokens are single-use (docs/ringcentral.md §2.7): losing the newest one to a torn
write ends the session, so every save is temp file + fsync + rename + directory fsync. The file
is shared by every rcfs process of the user, which is why a manager re-reads it before
refreshing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rcfs.durable import fsync_dir

log = logging.getLogger(__name__)

TOKEN_FILE = "tokens.json"
_FORMAT = 1


def state_dir() -> Path:
    """``$XDG_STATE_HOME/rcfs`` or ``~/.local/state/rcfs``."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return Path(base) / "rcfs"


@dataclass(frozen=True)
class TokenSet:
    """An OAuth session. Times are wall-clock epoch seconds (they outlive the process).

    ``platform_url``/``client_id`` record who issued it, so a config change never sends one
    server's token to another. Tokens are excluded from ``repr``.
    """

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: float
    refresh_expires_at: float | None = None
    owner_id: str | None = None
    scope: str = ""
    token_type: str = "bearer"
    endpoint_id: str | None = None
    platform_url: str | None = None
    client_id: str | None = None

    @classmethod
    def from_response(
        cls,
        body: Any,
        now: float,
        *,
        previous: TokenSet | None = None,
        platform_url: str | None = None,
        client_id: str | None = None,
    ) -> TokenSet:
        """Build from a token-endpoint JSON body; expiry comes from the returned
        ``expires_in`` (it can be shorter than asked). A refresh response without a new
        refresh token keeps the previous one."""
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise ValueError("token response without access_token")
        refresh = body.get("refresh_token")
        refresh_in = body.get("refresh_token_expires_in")
        refresh_at: float | None = now + float(refresh_in) if refresh_in is not None else None
        if not isinstance(refresh, str) and previous is not None:
            refresh, refresh_at = previous.refresh_token, previous.refresh_expires_at
        owner = body.get("owner_id")
        return cls(
            access_token=body["access_token"],
            refresh_token=refresh if isinstance(refresh, str) else None,
            expires_at=now + float(body.get("expires_in", 3600)),
            refresh_expires_at=refresh_at,
            owner_id=str(owner) if owner is not None else None,
            scope=str(body.get("scope", "")),
            token_type=str(body.get("token_type", "bearer")),
            endpoint_id=body.get("endpoint_id"),
            platform_url=platform_url,
            client_id=client_id,
        )

    def access_valid(self, now: float, margin: float = 0.0) -> bool:
        return self.expires_at - margin > now

    def refresh_valid(self, now: float) -> bool:
        return self.refresh_token is not None and (
            self.refresh_expires_at is None or self.refresh_expires_at > now)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> TokenSet:
        if not isinstance(data, dict):
            raise ValueError("not an object")
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        ts = cls(**kwargs)
        if not isinstance(ts.access_token, str) or not isinstance(ts.expires_at, int | float):
            raise ValueError("bad token fields")
        return ts


class TokenStore:
    """Load/save one TokenSet as JSON; ``path`` overrides the default state-dir file.

    Methods are blocking (small file, fsync); async callers run them in a thread.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else state_dir() / TOKEN_FILE

    def load(self) -> TokenSet | None:
        """The stored session, or None if missing/corrupt (never raises for bad content)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot open token file %s: %s", self.path, exc.strerror)
            return None
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                log.warning("token file %s was readable by others; fixing its mode", self.path)
                os.fchmod(f.fileno(), 0o600)
            raw = f.read()
        try:
            doc = json.loads(raw)
            return TokenSet.from_json(doc.get("tokens") if isinstance(doc, dict) else None)
        except (ValueError, TypeError, UnicodeDecodeError):
            log.warning("ignoring corrupt token file %s", self.path)
            return None

    def save(self, tokens: TokenSet) -> None:
        """Atomically replace the file: temp (0600) + fsync + rename + fsync(dir)."""
        directory = self.path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        payload = json.dumps({"format": _FORMAT, "tokens": tokens.to_json()}, indent=1)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(directory)

    def clear(self) -> None:
        """Forget the session (``rcfs logout``)."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return
        fsync_dir(self.path.parent)

