"""The layering rule (api -> common <- worker, console -> common) and the purity of common/fdl and the interpreter."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What the pure core may import: no clock, no randomness, no I/O.
PURE_PACKAGES = ("common/fdl", "common/interpreter")
PURE_ALLOWED_STDLIB = {
    "__future__", "typing", "dataclasses", "enum", "re", "json", "copy", "math", "functools", "collections",
    "itertools", "decimal", "hashlib", "base64", "string", "operator", "abc", "numbers", "datetime", "calendar",
    "unicodedata", "fractions", "textwrap", "zlib", "binascii", "urllib",
}  # fmt: skip
PURE_ALLOWED_THIRD_PARTY = {"yaml"}
PURE_ALLOWED_OWN = ("common.fdl", "common.interpreter", "common.timefmt", "common.jsonlimits")
PURE_BANNED_NAMES = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today")}


def modules_imported(path: Path) -> list[tuple[str, int]]:
    """Every module a file imports (absolute names), with line numbers."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
    return found


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("api", ("worker", "openfnf", "console")),
        ("worker", ("api", "openfnf", "console")),
        ("common", ("api", "worker", "openfnf", "console")),
        ("console", ("api", "worker", "openfnf")),  # console -> common only (issue 15)
    ],
)
def test_layering(package: str, forbidden: tuple[str, ...]) -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {mod}"
        for path in files(package)
        for mod, line in modules_imported(path)
        if mod.split(".")[0] in forbidden
    ]
    assert not offenders, "imports must go api -> common <- worker:\n" + "\n".join(offenders)


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_pure_core_imports_no_io(package: str) -> None:
    assert files(package), f"{package} has no modules"
    offenders = []
    for path in files(package):
        for mod, line in modules_imported(path):
            top = mod.split(".")[0]
            if mod.startswith(PURE_ALLOWED_OWN) or top in PURE_ALLOWED_THIRD_PARTY:
                continue
            if top in PURE_ALLOWED_STDLIB and top in sys.stdlib_module_names and mod != "urllib.request":
                continue
            offenders.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    assert not offenders, "the pure core may not import I/O, clocks or randomness:\n" + "\n".join(offenders)


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_pure_core_never_reads_the_clock(package: str) -> None:
    offenders = []
    for path in files(package):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if (node.value.id, node.attr) in PURE_BANNED_NAMES:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not offenders, "the clock comes in as an argument:\n" + "\n".join(offenders)


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    """The checker itself can fail: a file importing worker from api is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nfrom worker.driver import Driver\nimport time\n")
    assert ("worker.driver", 2) in modules_imported(bad)
    assert ("time", 3) in modules_imported(bad)
