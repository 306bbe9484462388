"""The configuration of ``rcfs mount`` parsed in-process (rcfs.config, rcfs.cli's parser):
every outbox key from the file and as a flag (a flag wins), and bad tuning values named
with their key and value. The command run as a process, its exit codes and messages:
tests/mount/test_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rcfs.cli import _config, build_parser
from rcfs.config import OUTBOX_KEYS, ConfigError, load

OUTBOX_VALUES: dict[str, int | float] = {
    "outbox_concurrency": 4, "outbox_max_attempts": 3, "outbox_retry_base": 1.5,
    "outbox_retry_max": 30.0, "outbox_poll_min": 2.0, "outbox_poll_max": 60.0,
    "outbox_settle_time": 45.0, "outbox_clock_skew": 120.0, "outbox_fax_timeout": 600.0,
    "outbox_sms_timeout": 90.0, "outbox_sms_delivery_wait": 3600.0,
}


def test_outbox_keys_from_the_config_file_and_flags(tmp_path: Path) -> None:
    assert set(OUTBOX_KEYS) == set(OUTBOX_VALUES)
    cfg_path = tmp_path / "config.toml"
    # Whole numbers of seconds are fine in TOML (``45``, not only ``45.0``).
    cfg_path.write_text('client_id = "app"\n' + "".join(
        f"{k} = {int(v) if float(v).is_integer() else v}\n" for k, v in OUTBOX_VALUES.items()))
    cfg = load(cfg_path)
    for key, value in OUTBOX_VALUES.items():
        got = getattr(cfg, key)
        assert got == value and type(got) is type(value), (key, got)
    # Every key is also a flag of ``rcfs mount``; a flag wins over the file.
    args = build_parser().parse_args([
        "mount", str(tmp_path / "mp"), "--config", str(cfg_path), "--outbox-settle-time", "5",
        "--outbox-concurrency", "1", "--outbox-poll-max", "2.5"])
    cfg = _config(args)
    assert (cfg.outbox_settle_time, cfg.outbox_concurrency, cfg.outbox_poll_max) == (5, 1, 2.5)
    assert cfg.outbox_clock_skew == 120
    # The outbox is tuned by ``rcfs mount`` only.
    with pytest.raises(SystemExit):
        build_parser().parse_args(["login", "--outbox-concurrency", "1"])


BAD_TUNING = [
    ("outbox_concurrency = 0", "outbox_concurrency = 0: must be a whole number >= 1"),
    ("outbox_concurrency = 2.5", "outbox_concurrency = 2.5: expected a whole number"),
    ("outbox_concurrency = \"two\"", "outbox_concurrency = 'two': expected a whole number"),
    ("outbox_max_attempts = -1", "outbox_max_attempts = -1: must be a whole number >= 1"),
    ("outbox_max_attempts = true", "outbox_max_attempts = True: expected a whole number"),
    ("outbox_retry_base = 0", "outbox_retry_base = 0.0: must be a number of seconds > 0"),
    ("outbox_retry_max = -1.0", "outbox_retry_max = -1.0: must be a number of seconds > 0"),
    ("outbox_poll_min = nan", "outbox_poll_min = nan: must be a number of seconds > 0"),
    ("outbox_poll_max = inf", "outbox_poll_max = inf: must be a number of seconds > 0"),
    ("outbox_settle_time = \"soon\"", "outbox_settle_time = 'soon': expected a number"),
    ("outbox_clock_skew = -600", "outbox_clock_skew = -600.0: must be a number of seconds > 0"),
    ("outbox_fax_timeout = 0.0", "outbox_fax_timeout = 0.0: must be a number of seconds > 0"),
    ("outbox_sms_timeout = false", "outbox_sms_timeout = False: expected a number"),
    ("outbox_sms_delivery_wait = 0",
     "outbox_sms_delivery_wait = 0.0: must be a number of seconds > 0"),
    ("outbox_retry_max = 1",
     "outbox_retry_max = 1.0: must not be less than outbox_retry_base (5.0)"),
    ("outbox_poll_min = 10\noutbox_poll_max = 9",
     "outbox_poll_max = 9.0: must not be less than outbox_poll_min (10.0)"),
    ("read_ahead_kib = 100000",
     "read_ahead_kib = 100000: must be between 0 (the kernel's default) and 65536"),
    ("read_ahead_kib = \"big\"", "read_ahead_kib = 'big': expected a whole number"),
]


@pytest.mark.parametrize(("line", "message"), BAD_TUNING)
def test_bad_tuning_values_name_the_key_and_value(line: str, message: str,
                                                  tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f'client_id = "app"\n{line}\n')
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value) == message


def test_outbox_flag_values_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))  # no config file: flags only
    args = build_parser().parse_args(["mount", str(tmp_path / "mp"), "--client-id", "app",
                                      "--outbox-retry-base", "0"])
    with pytest.raises(ConfigError) as err:
        _config(args)
    assert str(err.value) == "outbox_retry_base = 0.0: must be a number of seconds > 0"
