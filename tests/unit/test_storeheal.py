"""Self-healing stores and private files: a damaged or foreign SQLite store is moved aside
and rebuilt (the block cache here; rcfs.storeheal is shared with the metadata index), and
everything rcfs creates is 0700/0600 whatever the umask."""

from __future__ import annotations

import os
import random
import sqlite3
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rcfs.content.blockcache import BlockCache
from rcfs.private import private_dir, tighten, tighten_all
from rcfs.storeheal import move_aside, open_healing, sqlite_problem
from tests.programs import require_programs

BS = 64 * 1024
DB = Path("v1") / "db" / "cache.db"


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def _filled(root: Path, n: int = 24) -> dict[str, bytes]:
    cache = await BlockCache.open(root, budget="64 MiB", block_size=BS)
    blocks = {}
    for i in range(n):
        # Small blocks live inside SQLite, large ones in value files: both kinds are damaged.
        data = random.Random(i).randbytes(2000 if i % 2 else BS)
        assert await cache.put_block(f"k{i}", 0, data, block_size=BS, size=len(data))
        blocks[f"k{i}"] = data
    await cache.aclose()
    return blocks


def _flip(path: Path, offsets: list[int]) -> None:
    with open(path, "r+b") as fh:
        for off in offsets:
            fh.seek(off)
            b = fh.read(1)
            fh.seek(off)
            fh.write(bytes([b[0] ^ 0xFF]))


def _damage_truncate(db: Path) -> None:
    os.truncate(db, 4096)


def _damage_flip_header(db: Path) -> None:
    _flip(db, list(range(16)))  # "SQLite format 3\0": not a database any more


def _damage_flip_pages(db: Path) -> None:
    size = db.stat().st_size
    # Every page's b-tree header (page type, cell counts): quick_check must notice.
    _flip(db, [off + k for off in range(4096, size, 4096) for k in (0, 3, 5)])


@pytest.mark.parametrize("damage", [_damage_truncate, _damage_flip_header, _damage_flip_pages])
async def test_damaged_block_cache_is_moved_aside_and_rebuilt(tmp_path: Path, damage: object,
                                                              caplog: pytest.LogCaptureFixture
                                                              ) -> None:
    blocks = await _filled(tmp_path)
    # The WAL holds recent pages: fold it in first, as a clean close would.
    con = sqlite3.connect(tmp_path / DB)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    damage(tmp_path / DB)  # type: ignore[operator]
    cache = await BlockCache.open(tmp_path, budget="64 MiB", block_size=BS)
    try:
        assert cache.healed is not None and cache.stats()["rebuilt"] == 1
        moved = Path(cache.healed.moved_to)
        assert moved.parent == tmp_path / "v1" and moved.name.startswith("db.corrupt-")
        assert (moved / "cache.db").exists() and not list(moved.rglob("*.val"))
        assert cache.used == 0
        for key in blocks:  # nothing wrong is ever served: the rebuilt cache is empty
            assert await cache.get_block(key, 0, BS) is None
        data = random.Random(99).randbytes(BS)
        assert await cache.put_block("new", 0, data, block_size=BS)
        assert await cache.get_block("new", 0, BS) == data
    finally:
        await cache.aclose()
    warnings = [r for r in caplog.records if "moved aside" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    # The next open finds a healthy store: nothing moved again.
    again = await BlockCache.open(tmp_path, budget="64 MiB", block_size=BS)
    assert again.healed is None and await again.get_block("new", 0, BS) == data
    await again.aclose()


async def test_unknown_schema_is_moved_aside(tmp_path: Path) -> None:
    db = tmp_path / DB
    db.parent.mkdir(parents=True)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE Cache (id INTEGER PRIMARY KEY, something TEXT)")
    con.commit()
    con.close()
    cache = await BlockCache.open(tmp_path, budget="64 MiB", block_size=BS)
    assert cache.healed is not None and "unknown schema" in cache.healed.reason
    await cache.aclose()


async def test_healthy_cache_is_kept_and_bytes_flipped_in_a_value_file_are_caught_lazily(
        tmp_path: Path) -> None:
    blocks = await _filled(tmp_path)
    val = sorted((tmp_path / "v1" / "db").rglob("*.val"))[0]
    _flip(val, [100])
    cache = await BlockCache.open(tmp_path, budget="64 MiB", block_size=BS)
    try:
        assert cache.healed is None
        good = [await cache.get_block(k, 0, BS) == v for k, v in blocks.items()]
        assert good.count(False) == 1 and cache.corrupt_blocks == 1
    finally:
        await cache.aclose()


def test_sqlite_problem_and_move_aside_prune(tmp_path: Path) -> None:
    assert sqlite_problem(tmp_path / "absent.db") is None
    (tmp_path / "empty.db").touch()
    assert sqlite_problem(tmp_path / "empty.db", {"t": {"a"}}) is None
    db = tmp_path / "store.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (a, b)")
    con.commit()
    con.close()
    assert sqlite_problem(db, {"t": {"a", "b"}}) is None
    assert "lacks c" in (sqlite_problem(db, {"t": {"a", "c"}}) or "")
    assert "no table u" in (sqlite_problem(db, {"u": set()}) or "")
    db.write_bytes(b"not a database at all" * 300)
    assert sqlite_problem(db) is not None
    # Moved-aside copies are pruned to the newest one.
    for _ in range(3):
        db.write_bytes(b"x")
        move_aside(db)
    assert len(list(tmp_path.glob("store.db.corrupt-*"))) == 1
    opened, healed = open_healing("test store", db, lambda: "opened",
                                  check=lambda: sqlite_problem(db))
    assert (opened, healed) == ("opened", None)  # absent now: nothing to heal


# -- private by default -------------------------------------------------------------------------


def _modes(top: Path) -> dict[str, int]:
    out = {}
    for dirpath, dirs, files in os.walk(top):
        for name in (*dirs, *files, ""):
            p = Path(dirpath, name)
            out[str(p.relative_to(top))] = stat.S_IMODE(p.lstat().st_mode)
    return out


async def test_block_cache_is_private_whatever_the_umask(tmp_path: Path, loose_umask: None
                                                         ) -> None:
    root = tmp_path / "a" / "b"
    await _filled(root, 4)
    modes = _modes(tmp_path / "a")
    assert modes, "nothing created"
    loose = {k: oct(m) for k, m in modes.items() if m & 0o077}
    assert not loose, f"readable by others: {loose}"
    assert any(k.endswith(".val") for k in modes) and any(k.endswith("cache.db") for k in modes)


def test_private_dir_and_tighten(tmp_path: Path, loose_umask: None,
                                 caplog: pytest.LogCaptureFixture) -> None:
    made = private_dir(tmp_path / "x" / "y")
    assert stat.S_IMODE((tmp_path / "x").stat().st_mode) == 0o700
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    old = tmp_path / "old"
    (old / "sub").mkdir(parents=True, mode=0o755)
    (old / "sub" / "f").write_bytes(b"secret")
    os.chmod(old / "sub" / "f", 0o644)
    os.symlink("/etc/passwd", old / "link")
    assert tighten(old) == 3  # old, sub, f (the symlink and its target are left alone)
    assert _modes(old) == {".": 0o700, "sub": 0o700, "sub/f": 0o600, "link": 0o777}
    assert stat.S_IMODE(Path("/etc/passwd").stat().st_mode) == 0o644
    assert tighten_all([old], [old]) == 0 and "private" not in caplog.text


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another uid")
async def test_another_uid_cannot_read_cached_blocks(tmp_path: Path, loose_umask: None) -> None:
    """As uid 65534: a control file in an open folder is readable (the test can fail), a
    cached block is not."""
    # Not under the session's private TMPDIR: uid 65534 must be able to reach the folder.
    base = Path(tempfile.mkdtemp(prefix="rcfs-priv-", dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        control = base / "control"
        control.write_bytes(b"readable")
        os.chmod(control, 0o644)
        await _filled(base / "cache", 4)
        val = sorted((base / "cache").rglob("*.val"))[0]
        setpriv, cat = require_programs("setpriv", "cat")
        nobody = [setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", cat]
        ok = subprocess.run([*nobody, str(control)], capture_output=True, timeout=30)
        assert ok.returncode == 0 and ok.stdout == b"readable"
        denied = subprocess.run([*nobody, str(val)], capture_output=True, timeout=30)
        assert denied.returncode != 0 and b"Permission denied" in denied.stderr
    finally:
        import shutil

        shutil.rmtree(base)
