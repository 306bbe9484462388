#!/usr/bin/env python3
"""List modules over the size budget and functions over the length budget.

The project keeps modules under about 600 lines and functions under about 80 (README,
Development). A module that is bigger on purpose says why in its docstring; this script
still lists it, marked ``(docstring says why)``, so
the next maintainer can tell a deliberate exception from drift. The convention: such a
docstring says why in a sentence that mentions its length in ``lines`` (for example
"Over 600 lines because ...").

    scripts/sizes.py                 # rcfs/, scripts/ and tests/, default budgets
    scripts/sizes.py rcfs/api --module-lines 400 --function-lines 60

Function length counts from the ``def`` line (decorators excluded) to the last line of
the body, docstring included, as ``ast`` reports it. Exit status is 0 either way: this is
a report, not a gate.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# How a module docstring says why the module is over the budget ("Over 600 lines because").
EXPLAINED = re.compile(r"\b\d+ lines\b", re.IGNORECASE)


def python_files(paths: list[Path]) -> Iterator[Path]:
    """Every ``.py`` file under ``paths`` (files are taken as given), sorted."""
    for path in paths:
        if path.is_file():
            yield path
        else:
            yield from sorted(p for p in path.rglob("*.py") if ".venv" not in p.parts)


def functions(tree: ast.AST) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """(qualified name, node) for every function and method, nested ones included."""

    def walk(node: ast.AST, prefix: str) -> Iterator[
        tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]
    ]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                yield name, child
                yield from walk(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def explained(tree: ast.Module) -> bool:
    """True when the module docstring seems to say why the module is big."""
    return EXPLAINED.search(ast.get_docstring(tree) or "") is not None


def report(paths: list[Path], module_lines: int, function_lines: int) -> list[str]:
    """One line per module or function over its budget."""
    lines: list[str] = []
    for path in python_files(paths):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text, filename=str(path))
        shown = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
        count = len(text.splitlines())
        if count > module_lines:
            note = "  (docstring says why)" if explained(tree) else ""
            lines.append(f"module    {count:5d}  {shown}{note}")
        for name, node in functions(tree):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > function_lines:
                lines.append(f"function  {length:5d}  {shown}:{node.lineno} {name}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path,
                        default=[ROOT / "rcfs", ROOT / "scripts", ROOT / "tests"])
    parser.add_argument("--module-lines", type=int, default=600)
    parser.add_argument("--function-lines", type=int, default=80)
    args = parser.parse_args(argv)
    found = report(args.paths, args.module_lines, args.function_lines)
    print("\n".join(found) if found else "nothing over budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
