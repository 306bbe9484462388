"""The layering the README promises, checked on the source: FUSE glue -> namespace -> content
-> API client, one way; pyfuse3 and httpx each behind their own layer, the databases only in
the modules that own them; the emulator a separate program that shares no code with the
product.

Every import counts, including the ones inside functions (an AST walk, not a regex), and
``from X import Y`` counts as importing both X and X.Y.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "rcfs"

# Layer of each first-level part of the package, lowest first. A module may import its own
# layer and the layers below it. "top" is the composition root and the commands.
RANK = {
    "helpers": 0,  # no rcfs imports at all
    "api": 1,
    "content": 2,
    "namespace": 3,
    "outbox": 4,
    "fs": 5,
    "top": 6,
}
PART_LAYER = {
    "durable": "helpers",
    "proc": "helpers",
    "sdnotify": "helpers",
    "storeheal": "helpers",
    "private": "helpers",
    "refusal": "helpers",  # what a refused request did wrong (errno: the FUSE table)
    "api": "api",
    "content": "content",
    "namespace": "namespace",
    "outbox": "outbox",
    "fs": "fs",
    "push": "top",
    "notify": "top",  # desktop notifications, wired by mount.py
    "mount": "top",
    "cli": "top",
    "cli_offline": "top",
    "config": "top",
    "__init__": "top",
    "__main__": "top",
}
# Third-party modules that only one layer may touch; the databases only the modules that
# own them (the block cache and its records; the metadata index's store; the repair of both).
CONFINED = {
    "pyfuse3": ("rcfs/fs/", "rcfs/mount.py"),
    "httpx": ("rcfs/api/",),
    "httpcore": ("rcfs/api/",),
    "trio_websocket": ("rcfs/api/",),
    "jeepney": ("rcfs/notify.py",),
    "diskcache": ("rcfs/content/blockcache.py", "rcfs/content/blockdb.py",
                  "rcfs/content/blockrecords.py"),
    "sqlite3": ("rcfs/content/blockrecords.py", "rcfs/namespace/store.py", "rcfs/storeheal.py"),
}


def _imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``. ``from X import Y`` gives X
    and X.Y (Y may be a module: ``from rcfs import emulator``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = list(path.relative_to(root).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            found.extend((node.lineno, f"{name}.{alias.name}" if name else alias.name)
                         for alias in node.names if alias.name != "*")
    return found


def _part(module_parts: tuple[str, ...]) -> str:
    """The first-level part of ``rcfs.<part>...`` (a module file or a sub-package)."""
    return module_parts[1] if len(module_parts) > 1 else "__init__"


def _imported_part(name: tuple[str, ...], root: Path) -> str:
    """The part an imported ``rcfs...`` name belongs to: a name that is no part of the
    package (``from rcfs import __version__``) is one defined in ``rcfs/__init__.py``."""
    part = _part(name)
    package = root / "rcfs"
    if part in PART_LAYER or (package / part).is_dir() or (package / f"{part}.py").exists():
        return part
    return "__init__"


def _sources() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def _product_sources() -> list[Path]:
    return [p for p in _sources() if "emulator" not in p.relative_to(PKG).parts]


def _rel(path: Path, root: Path = ROOT) -> str:
    return path.relative_to(root).as_posix()


def test_every_product_part_has_a_layer() -> None:
    parts = {_part(tuple(p.relative_to(ROOT).with_suffix("").parts)) for p in _product_sources()}
    unknown = sorted(parts - set(PART_LAYER))
    assert not unknown, f"classify these in tests/unit/test_layering.py PART_LAYER: {unknown}"


def _layering_problems(paths: list[Path], root: Path = ROOT) -> list[str]:
    """Imports of product modules that point up, at the emulator, or at nothing known."""
    problems = []
    for path in paths:
        own = PART_LAYER.get(_part(tuple(path.relative_to(root).with_suffix("").parts)))
        if own is None:
            continue  # reported by test_every_product_part_has_a_layer
        where = _rel(path, root)
        for line, name in _imports(path, root):
            parts = tuple(name.split("."))
            if parts[0] != "rcfs":
                continue
            if len(parts) > 1 and parts[1] == "emulator":
                problems.append(f"{where}:{line} imports the emulator ({name})")
                continue
            target = PART_LAYER.get(_imported_part(parts, root))
            if target is None or (len(parts) == 1 and own != "top"):
                problems.append(f"{where}:{line} imports {name} (unclassified)")
                continue
            if RANK[target] > RANK[own] or (own == "helpers" and target == "helpers"
                                            and _imported_part(parts, root) != path.stem):
                problems.append(f"{where}:{line}: {own} imports {target} ({name})")
    return problems


def test_imports_point_down() -> None:
    problems = _layering_problems(_product_sources())
    assert not problems, "imports against the layering:\n" + "\n".join(problems)


def test_emulator_imports_nothing_of_the_product() -> None:
    problems = []
    for path in (PKG / "emulator").rglob("*.py"):
        for line, name in _imports(path):
            parts = name.split(".")
            if parts[0] == "rcfs" and (len(parts) < 2 or parts[1] != "emulator"):
                problems.append(f"{_rel(path)}:{line} imports {name}")
    assert not problems, "the emulator must stay a separate program:\n" + "\n".join(problems)


def _confinement_problems(library: str, paths: list[Path], root: Path = ROOT) -> list[str]:
    """Imports of ``library`` outside the places ``CONFINED`` allows it."""
    allowed = CONFINED[library]
    problems = []
    for path in paths:
        rel = _rel(path, root)
        if rel.startswith(allowed) or rel in allowed:
            continue
        for line, name in _imports(path, root):
            if name.split(".")[0] == library:
                problems.append(f"{rel}:{line} imports {name}")
    return problems


@pytest.mark.parametrize("library", sorted(CONFINED))
def test_library_confined_to_its_layer(library: str) -> None:
    problems = _confinement_problems(library, _product_sources())
    allowed = CONFINED[library]
    assert not problems, f"{library} is allowed only in {allowed}:\n" + "\n".join(problems)


def test_the_check_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """A layering break hidden in a function, or written relative, must still be seen."""
    module = tmp_path / "rcfs" / "api" / "sample.py"
    module.parent.mkdir(parents=True)
    module.write_text("def f():\n    import pyfuse3\n    from ..fs import ops\n"
                      "    from . import client\n")
    assert _imports(module, tmp_path) == [(2, "pyfuse3"), (3, "rcfs.fs"), (3, "rcfs.fs.ops"),
                                          (4, "rcfs.api"), (4, "rcfs.api.client")]


def _module(root: Path, rel: str, source: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    return path


def test_the_check_sees_the_emulator_imported_by_name(tmp_path: Path) -> None:
    """``from rcfs import emulator`` names the emulator after the ``import``, and an alias
    hides nothing."""
    module = _module(tmp_path, "rcfs/fs/sample.py",
                     "from rcfs import emulator\nimport rcfs.emulator.app as a\n"
                     "from rcfs.api import client\n")
    assert _layering_problems([module], tmp_path) == [
        "rcfs/fs/sample.py:1 imports rcfs (unclassified)",  # only the top may import rcfs
        "rcfs/fs/sample.py:1 imports the emulator (rcfs.emulator)",
        "rcfs/fs/sample.py:2 imports the emulator (rcfs.emulator.app)",
    ]
    top = _module(tmp_path, "rcfs/cli.py", "from rcfs import __version__, fs\n")
    assert _layering_problems([top], tmp_path) == []  # a name of rcfs/__init__.py: the top's
    upward = _module(tmp_path, "rcfs/api/sample.py", "from rcfs import fs\n")
    assert _layering_problems([upward], tmp_path) == [
        "rcfs/api/sample.py:1 imports rcfs (unclassified)",
        "rcfs/api/sample.py:1: api imports fs (rcfs.fs)",
    ]


def test_the_databases_stay_in_the_modules_that_own_them(tmp_path: Path) -> None:
    """sqlite3 or diskcache anywhere else in the content or namespace layers is caught."""
    reader = _module(tmp_path, "rcfs/content/reader.py", "import sqlite3\n")
    view = _module(tmp_path, "rcfs/namespace/view.py", "from diskcache import Cache\n")
    owner = _module(tmp_path, "rcfs/namespace/store.py", "import sqlite3\nimport diskcache\n")
    paths = [reader, view, owner]
    assert _confinement_problems("sqlite3", paths, tmp_path) == [
        "rcfs/content/reader.py:1 imports sqlite3"]
    assert _confinement_problems("diskcache", paths, tmp_path) == [
        "rcfs/namespace/view.py:1 imports diskcache",
        "rcfs/namespace/view.py:1 imports diskcache.Cache",
        "rcfs/namespace/store.py:2 imports diskcache"]  # allowed sqlite3, not diskcache


TEST_LEVELS = ("unit", "fs_api", "emulator", "mount", "desktop")


def _test_module_imports(paths: list[Path], root: Path = ROOT) -> list[str]:
    """Imports of a test module (``tests/<level>/test_*.py``) by another module: shared
    helpers live at ``tests/`` top level (README, Development)."""
    problems = []
    for path in paths:
        for line, name in _imports(path, root):
            parts = name.split(".")
            if len(parts) > 2 and parts[0] == "tests" and parts[1] in TEST_LEVELS:
                problems.append(f"{_rel(path, root)}:{line} imports {name}")
    return problems


def test_no_test_module_imports_another() -> None:
    paths = sorted((ROOT / "tests").rglob("*.py"))
    problems = _test_module_imports(paths)
    assert not problems, "move the shared part to a tests/ helper:\n" + "\n".join(problems)


def test_the_check_sees_a_test_module_imported(tmp_path: Path) -> None:
    sample = _module(tmp_path, "tests/unit/test_a.py",
                     "from tests.unit.test_b import helper\nfrom tests.api_fakes import x\n")
    assert _test_module_imports([sample], tmp_path) == [
        "tests/unit/test_a.py:1 imports tests.unit.test_b",
        "tests/unit/test_a.py:1 imports tests.unit.test_b.helper"]
