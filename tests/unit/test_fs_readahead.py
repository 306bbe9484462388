"""Read-ahead tuning of the mount's bdi (rcfs/fs/readahead.py), against a fake sysfs."""

from __future__ import annotations

from pathlib import Path

import pytest

from rcfs.fs.readahead import mount_device, raise_read_ahead

MOUNTINFO = (
    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "40 22 0:39 / /home/u/Ring\\040Central rw,nosuid,nodev shared:20 - fuse.rcfs rcfs rw\n"
    "41 22 0:41 / /tmp/other rw - fuse.rcfs rcfs rw\n"
    "42 40 0:44 / /home/u/Ring\\040Central rw - fuse.rcfs rcfs rw\n"
)


def test_device_of_the_newest_mount_with_escaped_names() -> None:
    assert mount_device("/home/u/Ring Central", MOUNTINFO) == "0:44"
    assert mount_device("/tmp/other", MOUNTINFO) == "0:41"
    assert mount_device("/nowhere", MOUNTINFO) is None


def fake_bdi(tmp_path: Path, dev: str, value: str) -> Path:
    knob = tmp_path / dev / "read_ahead_kb"
    knob.parent.mkdir(parents=True)
    knob.write_text(value)
    return knob


def test_raises_a_smaller_read_ahead(tmp_path: Path) -> None:
    knob = fake_bdi(tmp_path, "0:41", "128\n")
    assert raise_read_ahead("/tmp/other", 1024, sysfs=tmp_path, mountinfo=MOUNTINFO) == 1024
    assert knob.read_text().strip() == "1024"


def test_keeps_a_larger_one_and_ignores_zero(tmp_path: Path) -> None:
    knob = fake_bdi(tmp_path, "0:41", "4096\n")
    assert raise_read_ahead("/tmp/other", 1024, sysfs=tmp_path, mountinfo=MOUNTINFO) == 4096
    assert raise_read_ahead("/tmp/other", 0, sysfs=tmp_path, mountinfo=MOUNTINFO) is None
    assert knob.read_text().strip() == "4096"


def test_without_permission_the_kernel_value_stays(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    knob = fake_bdi(tmp_path, "0:41", "128\n")

    def refuse(self: Path, *args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "write_text", refuse)  # what a non-root user gets from sysfs
    with caplog.at_level("INFO"):
        assert raise_read_ahead("/tmp/other", 1024, sysfs=tmp_path,
                                mountinfo=MOUNTINFO) == 128
    assert "needs root" in caplog.text and "128 KiB" in caplog.text
    assert knob.read_text().strip() == "128"


def test_unknown_mount_or_missing_sysfs_is_harmless(tmp_path: Path) -> None:
    assert raise_read_ahead("/nowhere", 1024, sysfs=tmp_path, mountinfo=MOUNTINFO) is None
    assert raise_read_ahead("/tmp/other", 1024, sysfs=tmp_path, mountinfo=MOUNTINFO) is None
