"""Configuration: ``~/.config/rcfs/config.toml`` (XDG), every option also a flag.

An invalid file names the bad key and value and the command exits non-zero before mounting.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rcfs.content.blockcache import parse_size


class ConfigError(ValueError):
    """A configuration problem, phrased for the user."""


def _xdg(var: str, default: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / default)


def default_config_path() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "rcfs" / "config.toml"


@dataclass
class Config:
    server: str = "https://platform.ringcentral.com"
    media_server: str = ""  # default: derived from server (platform. -> media.)
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    jwt: str = field(default="", repr=False)
    jwt_file: str = ""
    redirect_uri: str = "http://127.0.0.1:53682/callback"
    ca_cert: str = ""
    cache_dir: str = field(default_factory=lambda: str(_xdg("XDG_CACHE_HOME", ".cache") / "rcfs"))
    state_dir: str = field(
        default_factory=lambda: str(_xdg("XDG_STATE_HOME", ".local/state") / "rcfs"))
    cache_size: str = "2 GiB"
    refresh_interval: float = 60.0
    read_timeout: float = 150.0  # one user operation (open + its reads) waits at most this
    thumbnails: str = "always"  # always | cached | never (rcfs/fs/thumbnails.py)
    thumbnail_wait: float = 600.0  # how long a thumbnailer may wait for spare budget
    lookup_deadline: float = 2.0  # longest a listing waits for a folder never loaded
    read_ahead_kib: int = 1024  # the mount's kernel read-ahead (root only; 0 = kernel's)
    allow_other: bool = False
    allow_delete: bool = False
    uid: int = -1
    gid: int = -1
    umask: int = 0o022
    timezone: str = "local"
    log_level: str = "info"
    # Freshness (rcfs/push.py): push events over RingCentral's WebSocket gateway; while the
    # socket is healthy, polling is only a safety net every push_poll_interval seconds.
    push: bool = True
    push_poll_interval: float = 1800.0
    # The access token is renewed when less than this remains (RingCentral's live an hour;
    # its SDKs renew 60 s before expiry, docs/ringcentral.md §2.7). Tests shrink it along
    # with the emulator's token lifetime instead of idling for minutes.
    token_refresh_margin: float = 60.0
    notify: bool = False  # desktop notifications of new voicemails, faxes and texts
    # The outbox's sender (rcfs/outbox/sender.py; mapped onto its Settings in rcfs/mount.py).
    outbox_concurrency: int = 2  # sends in flight per kind (fax, text, greeting)
    outbox_max_attempts: int = 8  # transient failures before a job fails
    outbox_retry_base: float = 5.0  # first retry delay, doubling up to outbox_retry_max
    outbox_retry_max: float = 600.0
    outbox_poll_min: float = 5.0  # status polling interval, growing up to outbox_poll_max
    outbox_poll_max: float = 120.0
    outbox_settle_time: float = 30.0  # after an unclear answer: how long the store may lag
    outbox_clock_skew: float = 600.0  # allowed between this machine and RingCentral
    outbox_fax_timeout: float = 900.0  # a fax or greeting upload, waiting for budget included
    outbox_sms_timeout: float = 180.0  # an SMS/MMS send, waiting for budget included
    outbox_sms_delivery_wait: float = 86400.0  # "Sent" without a delivery report: stop waiting

    def validate(self) -> None:
        if not self.server.startswith(("https://", "http://")):
            raise ConfigError(f"server = {self.server!r}: must be an https:// URL")
        if not self.client_id:
            raise ConfigError("client_id is not set (config file or --client-id)")
        try:
            parse_size(self.cache_size)
        except ValueError as exc:
            raise ConfigError(f"cache_size = {self.cache_size!r}: {exc}") from None
        if self.refresh_interval <= 0:
            raise ConfigError(f"refresh_interval = {self.refresh_interval!r}: must be > 0")
        if not (math.isfinite(self.push_poll_interval) and self.push_poll_interval > 0):
            raise ConfigError(f"push_poll_interval = {self.push_poll_interval!r}: must be > 0")
        if not (math.isfinite(self.token_refresh_margin) and self.token_refresh_margin > 0):
            raise ConfigError(f"token_refresh_margin = {self.token_refresh_margin!r}: "
                              f"must be > 0")
        if not (math.isfinite(self.read_timeout) and self.read_timeout > 0):
            raise ConfigError(f"read_timeout = {self.read_timeout!r}: must be > 0")
        if not (math.isfinite(self.thumbnail_wait) and self.thumbnail_wait > 0):
            raise ConfigError(f"thumbnail_wait = {self.thumbnail_wait!r}: must be > 0")
        if self.thumbnails not in ("always", "cached", "never"):
            raise ConfigError(f"thumbnails = {self.thumbnails!r}: always, cached or never")
        if not 0 <= self.lookup_deadline <= 60:
            raise ConfigError(f"lookup_deadline = {self.lookup_deadline!r}: must be between 0 "
                              f"and 60 seconds")
        if not 0 <= self.read_ahead_kib <= 65536:
            raise ConfigError(f"read_ahead_kib = {self.read_ahead_kib!r}: must be between 0 "
                              f"(the kernel's default) and 65536")
        if not 0 <= self.umask <= 0o777:
            raise ConfigError(f"umask = {self.umask!r}: must be between 0 and 0o777")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"log_level = {self.log_level!r}: debug, info, warning or error")
        if self.timezone not in ("local", "UTC"):
            try:
                from zoneinfo import ZoneInfo

                ZoneInfo(self.timezone)
            except (KeyError, ValueError, OSError):
                raise ConfigError(f"timezone = {self.timezone!r}: unknown time zone") from None
        self._validate_outbox()

    def _validate_outbox(self) -> None:
        for key in OUTBOX_KEYS:
            value = getattr(self, key)
            if FIELDS[key].type == "int":
                if value < 1:
                    raise ConfigError(f"{key} = {value!r}: must be a whole number >= 1")
            elif not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{key} = {value!r}: must be a number of seconds > 0")
        for low, high in (("outbox_retry_base", "outbox_retry_max"),
                          ("outbox_poll_min", "outbox_poll_max")):
            if getattr(self, high) < getattr(self, low):
                raise ConfigError(f"{high} = {getattr(self, high)!r}: must not be less than "
                                  f"{low} ({getattr(self, low)!r})")

    def jwt_value(self) -> str | None:
        if self.jwt:
            return self.jwt
        if self.jwt_file:
            try:
                return Path(self.jwt_file).expanduser().read_text().strip()
            except OSError as exc:
                raise ConfigError(f"jwt_file = {self.jwt_file!r}: {exc.strerror}") from None
        return None


FIELDS = {f.name: f for f in dataclasses.fields(Config)}
OUTBOX_KEYS = tuple(name for name in FIELDS if name.startswith("outbox_"))


_KINDS = {"bool": "true or false", "int": "a whole number", "float": "a number",
          "str": "a string"}


def _coerce(key: str, value: Any) -> Any:
    kind = FIELDS[key].type
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            if isinstance(value, str):
                return int(value, 8) if key == "umask" else int(value, 0)
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if not isinstance(value, str | int | float):
            raise ValueError
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} = {value!r}: expected {_KINDS.get(str(kind), kind)}") from None


def load(path: Path | None, overrides: dict[str, Any] | None = None) -> Config:
    """Read the config file (if any) and apply flag overrides; validate the result."""
    cfg = Config()
    explicit = path is not None
    path = path or default_config_path()
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{path}: {exc.strerror}") from None
        for key, value in data.items():
            norm = key.replace("-", "_")
            if norm not in FIELDS:
                raise ConfigError(f"{path}: unknown key {key!r} (value {value!r})")
            setattr(cfg, norm, _coerce(norm, value))
    elif explicit:
        raise ConfigError(f"{path}: no such config file")
    for key, value in (overrides or {}).items():
        if value is not None:
            setattr(cfg, key, _coerce(key, value))
    cfg.validate()
    return cfg
