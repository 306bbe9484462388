"""The layering the README promises, checked on the source: FUSE glue -> namespace -> content
-> API client, one way; pyfuse3, httpx and the databases each behind their own layer; the
emulator a separate program that shares no code with the product.

Every import counts, including the ones inside functions (an AST walk, not a regex).
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
# Third-party modules that only one layer may touch.
CONFINED = {
    "pyfuse3": ("rcfs/fs/", "rcfs/mount.py"),
    "httpx": ("rcfs/api/",),
    "httpcore": ("rcfs/api/",),
    "trio_websocket": ("rcfs/api/",),
    "jeepney": ("rcfs/notify.py",),
    "diskcache": ("rcfs/content/", "rcfs/namespace/", "rcfs/storeheal.py"),
    "sqlite3": ("rcfs/content/", "rcfs/namespace/", "rcfs/storeheal.py"),
}


def _imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``."""
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
    return found


def _part(module_parts: tuple[str, ...]) -> str:
    """The first-level part of ``rcfs.<part>...`` (a module file or a sub-package)."""
    return module_parts[1] if len(module_parts) > 1 else "__init__"


def _sources() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def _product_sources() -> list[Path]:
    return [p for p in _sources() if "emulator" not in p.relative_to(PKG).parts]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_every_product_part_has_a_layer() -> None:
    parts = {_part(tuple(p.relative_to(ROOT).with_suffix("").parts)) for p in _product_sources()}
    unknown = sorted(parts - set(PART_LAYER))
    assert not unknown, f"classify these in tests/unit/test_layering.py PART_LAYER: {unknown}"


def test_imports_point_down() -> None:
    problems = []
    for path in _product_sources():
        own = PART_LAYER.get(_part(tuple(path.relative_to(ROOT).with_suffix("").parts)))
        if own is None:
            continue  # reported by the test above
        for line, name in _imports(path):
            parts = tuple(name.split("."))
            if parts[0] != "rcfs":
                continue
            if len(parts) > 1 and parts[1] == "emulator":
                problems.append(f"{_rel(path)}:{line} imports the emulator ({name})")
                continue
            target = PART_LAYER.get(_part(parts))
            if target is None or (len(parts) == 1 and own != "top"):
                problems.append(f"{_rel(path)}:{line} imports {name} (unclassified)")
                continue
            if RANK[target] > RANK[own] or (own == "helpers" and target == "helpers"
                                            and _part(parts) != path.stem):
                problems.append(f"{_rel(path)}:{line}: {own} imports {target} ({name})")
    assert not problems, "imports against the layering:\n" + "\n".join(problems)


def test_emulator_imports_nothing_of_the_product() -> None:
    problems = []
    for path in (PKG / "emulator").rglob("*.py"):
        for line, name in _imports(path):
            parts = name.split(".")
            if parts[0] == "rcfs" and (len(parts) < 2 or parts[1] != "emulator"):
                problems.append(f"{_rel(path)}:{line} imports {name}")
    assert not problems, "the emulator must stay a separate program:\n" + "\n".join(problems)


@pytest.mark.parametrize("library", sorted(CONFINED))
def test_library_confined_to_its_layer(library: str) -> None:
    allowed = CONFINED[library]
    problems = []
    for path in _product_sources():
        rel = _rel(path)
        if rel.startswith(allowed) or rel in allowed:
            continue
        for line, name in _imports(path):
            if name.split(".")[0] == library:
                problems.append(f"{rel}:{line} imports {name}")
    assert not problems, f"{library} is allowed only in {allowed}:\n" + "\n".join(problems)


def test_the_check_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    """A layering break hidden in a function, or written relative, must still be seen."""
    module = tmp_path / "rcfs" / "api" / "sample.py"
    module.parent.mkdir(parents=True)
    module.write_text("def f():\n    import pyfuse3\n    from ..fs import ops\n"
                      "    from . import client\n")
    assert _imports(module, tmp_path) == [(2, "pyfuse3"), (3, "rcfs.fs"), (4, "rcfs.api")]
