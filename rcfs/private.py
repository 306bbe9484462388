"""Private by default: rcfs's folders are 0700 and its files 0600, whatever the umask.

The block cache holds voicemails and recordings, the state folder tokens and message
metadata: another local user must not read any of it. New folders are made 0700 explicitly
(``Path.mkdir(parents=True)`` gives parents the umask's mode), and ``tighten`` fixes trees an
older rcfs or a permissive umask left group- or world-accessible.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["DIR_MODE", "FILE_MODE", "private_dir", "tighten", "tighten_all"]

DIR_MODE = 0o700
FILE_MODE = 0o600
_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents as 0700 (existing ones are left alone)."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=DIR_MODE)
        os.chmod(d, DIR_MODE)  # mkdir's mode is masked by the umask
    return path


def _fix(path: str, st: os.stat_result) -> bool:
    if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid() or not st.st_mode & _OTHERS:
        return False
    os.chmod(path, DIR_MODE if stat.S_ISDIR(st.st_mode) else st.st_mode & FILE_MODE)
    return True


def tighten(path: Path, *, recursive: bool = True) -> int:
    """Remove group and other access below (and on) ``path``; returns how many entries
    changed. Only entries owned by this user are touched; symlinks are not followed."""
    changed = 0
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    changed += _fix(str(path), st)
    if not recursive or not stat.S_ISDIR(st.st_mode):
        return changed
    for dirpath, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            full = os.path.join(dirpath, name)
            try:
                changed += _fix(full, os.lstat(full))
            except FileNotFoundError:
                continue
    return changed


def tighten_all(tops: Iterable[Path], trees: Iterable[Path]) -> int:
    """Tighten ``tops`` themselves and ``trees`` recursively; one log line if anything was
    readable by others."""
    tops = tuple(tops)
    changed = sum(tighten(p, recursive=False) for p in tops)
    changed += sum(tighten(p) for p in trees)
    if changed:
        log.warning("made %d folder(s)/file(s) private (they were accessible to other users): "
                    "%s", changed, ", ".join(str(p) for p in (*tops,)))
    return changed
