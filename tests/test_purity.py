"""The purity contract of ``sync_core`` bites.

sync_core has no clock, no randomness and no I/O: time arrives in events. Two tools keep it
so: import-linter's "sync_core is pure" contract in ``pyproject.toml`` and ruff's banned-api
list in ``sync_core/ruff.toml``. Each case below copies the real configuration and package into
a temporary directory, appends one forbidden import to ``sync_core/rules.py`` and requires that
at least one of the tools fails and names the module. The control case runs the same tools on
the unmodified copy and requires that neither reports a banned import, so a tool that reports
one on everything (or a copy that is broken) cannot make the other cases pass.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CONTRACT_NAME = "sync_core is pure"


@dataclass(frozen=True)
class Result:
    returncode: int
    output: str


@dataclass(frozen=True)
class Tools:
    ruff: list[str]
    lint_imports: list[str]


def _ruff_command() -> list[str] | None:
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    found = shutil.which("ruff")
    return [found] if found else None


def _lint_imports_command() -> list[str] | None:
    beside = Path(sys.executable).parent / "lint-imports"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("lint-imports")
    return [found] if found else None


@pytest.fixture(scope="module")
def tools() -> Tools:
    ruff = _ruff_command()
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    lint_imports = _lint_imports_command()
    if lint_imports is None:
        pytest.skip("lint-imports is not installed (pip install -e '.[test]')")
    return Tools(ruff=ruff, lint_imports=lint_imports)


def _importlinter_ini() -> str:
    """The repo's "sync_core is pure" contract, with sync_core as the only root package
    (the copy holds no other package)."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["name"] == CONTRACT_NAME]
    forbidden = "".join(f"\n    {m}" for m in contract["forbidden_modules"])
    return (
        "[importlinter]\n"
        "root_package = sync_core\n"
        f"include_external_packages = {config.get('include_external_packages', False)!s}\n"
        "\n"
        "[importlinter:contract:pure]\n"
        f"name = {CONTRACT_NAME}\n"
        "type = forbidden\n"
        "source_modules = sync_core\n"
        f"forbidden_modules ={forbidden}\n"
    )


def _copy_project(dest: Path) -> None:
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
    shutil.copytree(
        REPO / "sync_core",
        dest / "sync_core",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache"),
    )
    (dest / ".importlinter").write_text(_importlinter_ini())


def _run(command: list[str], cwd: Path) -> Result:
    env = {**os.environ, "PYTHONPATH": str(cwd), "COLUMNS": "200", "NO_COLOR": "1"}
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    return Result(done.returncode, done.stdout + done.stderr)


def _ruff(tools: Tools, cwd: Path) -> Result:
    return _run([*tools.ruff, "check", "--no-cache", "--output-format", "concise", "."], cwd)


def _lint_imports(tools: Tools, cwd: Path) -> Result:
    return _run([*tools.lint_imports, "--no-cache", ".importlinter"], cwd)


def _tidy_import_findings(output: str) -> list[str]:
    """ruff's flake8-tidy-imports findings (TIDxxx) in ``--output-format concise`` output."""
    return [line for line in output.splitlines() if ": TID" in line]


def test_unmodified_copy_passes_both(tools: Tools, tmp_path: Path) -> None:
    """Without the appended import neither tool reports a banned import.

    Style findings (line length, import order...) in code still being written are left to
    ``tox -e lint``; this test is only about purity, so it looks at ruff's TID findings.
    """
    _copy_project(tmp_path)
    ruff = _ruff(tools, tmp_path)
    assert ruff.returncode in (0, 1), ruff.output  # 2 would mean a broken config
    assert _tidy_import_findings(ruff.output) == [], ruff.output
    lint_imports = _lint_imports(tools, tmp_path)
    assert lint_imports.returncode == 0, lint_imports.output


@pytest.mark.parametrize(
    ("module", "snippet"),
    [
        ("httpx", "import httpx\n"),
        ("random", "import random\n"),
        ("time", "import time\n"),
        ("socket", "\n\ndef f():\n    import socket\n"),
    ],
    ids=["httpx", "random", "time", "lazy-socket"],
)
def test_forbidden_import_is_caught(
    tools: Tools, tmp_path: Path, module: str, snippet: str
) -> None:
    _copy_project(tmp_path)
    with (tmp_path / "sync_core" / "rules.py").open("a") as rules:
        rules.write("\n" + snippet)

    ruff = _ruff(tools, tmp_path)
    lint_imports = _lint_imports(tools, tmp_path)
    ruff_caught = ruff.returncode == 1 and any(
        f"TID251 `{module}` is banned" in line for line in _tidy_import_findings(ruff.output)
    )
    linter_caught = (
        lint_imports.returncode != 0
        and f"sync_core is not allowed to import {module}" in lint_imports.output
    )
    assert ruff_caught or linter_caught, (
        f"neither tool caught `{module}` in sync_core\n"
        f"--- ruff (exit {ruff.returncode}):\n{ruff.output}\n"
        f"--- lint-imports (exit {lint_imports.returncode}):\n{lint_imports.output}"
    )
