"""Every code block in README.md runs as written, so the documentation cannot rot.

Conventions for whoever writes the README:

- A ```python block anywhere is run with ``exec`` and asserts its own claims.
- In the sections named in :data:`CHECKED` every block is executed, in order, in one fresh
  directory per section:

  - a block whose first line is a comment naming a file (``# test_adapter_example.py``,
    ``# flaky-canvas.toml``) is written to that file first, so later blocks can use it. A
    ``test_*.py`` file is then run by pytest in a subprocess and each of its tests must
    pass; a ``.toml`` file must be a scenario that ``scenarios.scenario.load`` accepts, the
    core must hold every invariant in it, and the legacy engine must break what its
    ``expect`` names;
  - a ```sh block runs with ``bash -euo pipefail`` in that directory. A line ending in
    ``# exits N`` must exit with status N; every other command must exit 0. Each block has
    :data:`SH_BUDGET` seconds: show cheap commands (a fuzz run of a few seconds, e.g.
    ``credsync fuzz --minutes 0.05``), never a long one;
  - a ```text block right after a ```sh block is what that block prints: each of its lines
    must appear in the output, in order (lines may be left out, not changed). Any other
    ```text block holds commands that cannot run here (a Redis server, an hour-long hunt):
    each line is checked without running it (:func:`check_display_command`: a ``credsync``
    command must parse, a ``pytest`` path must exist, a ``tox -e`` env must be in
    ``tox.ini`` with the variables the line sets), so a renamed flag still fails the test.

A section is the text under a ``##`` or ``###`` heading, up to the next such heading.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from scenarios.cli import build_parser
from scenarios.scenario import load, run

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, re.DOTALL)
CHECKED = ("Writing a scenario", "Testing your own adapter", "Fuzzing at scale")
SH_BUDGET = 180
FILE_LINE = re.compile(r"#\s*([\w.-]+\.(?:py|toml))\s*$")
EXITS = re.compile(r"^(?P<command>.*?)\s+#\s*exits\s+(?P<status>\d+)\s*$")


@dataclass(frozen=True)
class Block:
    lang: str
    body: str

    @property
    def file_name(self) -> str | None:
        match = FILE_LINE.fullmatch(self.body.split("\n", 1)[0])
        return match.group(1) if match and self.lang in ("python", "toml") else None


def sections(text: str) -> dict[str, list[Block]]:
    """The code blocks of each ``##`` or ``###`` section, by title."""
    out: dict[str, list[Block]] = {}
    for chunk in re.split(r"^###? ", text, flags=re.MULTILINE)[1:]:
        title, _, body = chunk.partition("\n")
        found = re.findall(r"^```(\w*)\n(.*?)^```", body, re.DOTALL | re.MULTILINE)
        out[title.strip()] = [Block(lang, code) for lang, code in found]
    return out


SECTIONS = sections(TEXT)


def test_the_readme_has_python_examples() -> None:
    assert BLOCKS, "README.md lost its Python examples"


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(block: str) -> None:
    """The blocks assert their own claims; running them checks the prose. The code is named
    ``<README.md block>``, not README.md: a name that is a real file sends
    ``inspect.getsource`` (which Hypothesis calls on a ``@given`` test) to the wrong lines,
    and on Python 3.12 its tokenizer then raises instead of reporting no source."""
    exec(compile(block, "<README.md block>", "exec"), {"__name__": "readme"})


def test_the_documented_sections_exist_and_have_blocks() -> None:
    for title in ("Writing a scenario", "Testing your own adapter"):
        assert SECTIONS.get(title), f"README.md lost its section {title!r} or its examples"


@pytest.mark.parametrize("title", [t for t in CHECKED if t in SECTIONS])
def test_every_block_of_a_checked_section_runs(title: str, tmp_path: Path) -> None:
    run_section(SECTIONS[title], tmp_path)


# --------------------------------------------------------------------------- the runner


def run_section(blocks: list[Block], where: Path) -> None:
    """Write the file blocks, then execute every block in order (module docstring)."""
    for block in blocks:
        if block.file_name is not None:
            (where / block.file_name).write_text(block.body, encoding="utf-8")
    printed: str | None = None
    for block in blocks:
        name = block.file_name
        if block.lang == "sh":
            printed = run_sh(block.body, where)
            continue
        if block.lang == "text" and printed is not None:
            check_printed(block.body, printed)
        elif block.lang == "text":
            for line in filter(str.strip, block.body.splitlines()):
                check_display_command(line)
        elif name is not None and name.startswith("test_") and name.endswith(".py"):
            run_pytest_file(where / name)
        elif name is not None and name.endswith(".toml"):
            check_scenario(where / name)
        elif block.lang == "toml":
            raise AssertionError(f"a toml block must start with '# NAME.toml':\n{block.body}")
        printed = None


def run_sh(body: str, where: Path) -> str:
    """Run a sh block; return what it printed (stdout and stderr)."""
    lines = ["set -euo pipefail"]
    for line in body.splitlines():
        match = EXITS.match(line)
        if match is None:
            lines.append(line)
            continue
        command, status = match["command"], match["status"]
        lines += [
            "set +e",
            command,
            "rc=$?",
            "set -e",
            f'[ "$rc" -eq {status} ] || {{ echo "exit $rc, documented {status}: '
            f'{command.replace(chr(34), "")}" >&2; exit 1; }}',
        ]
    result = subprocess.run(
        ["bash", "-c", "\n".join(lines)],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=SH_BUDGET,
        env=_env(),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"sh block failed ({result.returncode}):\n{body}\n{output}"
    return output


def check_printed(expected: str, output: str) -> None:
    remaining = output.splitlines()
    for line in expected.splitlines():
        positions = [i for i, seen in enumerate(remaining) if seen.rstrip() == line.rstrip()]
        assert positions, f"documented output line not printed (in order):\n{line}\n---\n{output}"
        remaining = remaining[positions[0] + 1 :]


def check_display_command(line: str) -> None:
    """A command shown but not run: as much of it as can be checked without running it."""
    words = shlex.split(line)
    variables = []
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        variables.append(words.pop(0).split("=", 1)[0])
    program, args = (words[0], words[1:]) if words else ("", [])
    if program == "credsync":
        parse_credsync(args, line)
    elif program == "pytest":
        paths = [ROOT / a for a in args if not a.startswith("-")]
        assert paths and all(p.exists() for p in paths), f"no such test file: {line}"
        for name in variables:
            assert any(name in p.read_text(encoding="utf-8") for p in paths), (name, line)
    elif program == "tox" and args[:1] == ["-e"]:
        tox = (ROOT / "tox.ini").read_text(encoding="utf-8")
        assert f"[testenv:{args[1]}]" in tox, f"tox.ini has no env {args[1]!r}: {line}"
        assert all(name in tox for name in variables), (variables, line)
        if "--" in args:  # the env runs `credsync fuzz ... {posargs}`
            parse_credsync(["fuzz", *args[args.index("--") + 1 :]], line)
    else:
        raise AssertionError(f"a display-only command this check cannot vouch for: {line}")


def parse_credsync(args: list[str], line: str) -> None:
    try:
        build_parser().parse_args(args)
    except SystemExit as exc:
        raise AssertionError(f"credsync refuses the documented command: {line}") from exc


def run_pytest_file(path: Path) -> None:
    """pytest in a subprocess, in the file's directory, as a user of credsync would."""
    expected = len(re.findall(r"^def test_", path.read_text(encoding="utf-8"), re.MULTILINE))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=SH_BUDGET,
        env=_env(),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and f"{expected} passed" in output, output


def check_scenario(path: Path) -> None:
    scenario = load(str(path))
    core = run(scenario, "core")
    assert core.error is None and not core.found, [str(f.violation) for f in core.found]
    legacy = run(scenario, "legacy")
    assert legacy.error is None
    assert set(scenario.expect) <= legacy.broken, (scenario.expect, sorted(legacy.broken))


def _env() -> dict[str, str]:
    """The caller's environment without pytest options that would leak into a child."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}


# --------------------------------------------------------------------------- the runner's teeth


def test_sections_split_on_level_two_and_three_headings() -> None:
    text = "## A\n```sh\ntrue\n```\n### sub\n```text\nx\n```\n#### not\n## B\nnone\n"
    assert sections(text) == {
        "A": [Block("sh", "true\n")],
        "sub": [Block("text", "x\n")],
        "B": [],
    }


def test_a_failing_command_fails_the_block(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="sh block failed"):
        run_sh("true\nfalse\ntrue\n", tmp_path)


def test_a_documented_exit_status_is_checked(tmp_path: Path) -> None:
    assert "done" in run_sh("(exit 1)   # exits 1\necho done\n", tmp_path)
    with pytest.raises(AssertionError, match="exit 0, documented 1"):
        run_sh("true   # exits 1\n", tmp_path)


def test_documented_output_must_be_printed_in_order() -> None:
    check_printed("one\nthree\n", "one\ntwo\nthree\n")
    with pytest.raises(AssertionError, match="not printed"):
        check_printed("three\none\n", "one\ntwo\nthree\n")
    with pytest.raises(AssertionError, match="not printed"):
        check_printed("PASS x\n", "FAIL x\n")


def test_a_failing_test_file_fails_the_section(tmp_path: Path) -> None:
    blocks = [Block("python", "# test_broken.py\ndef test_wrong():\n    assert 1 == 2\n")]
    with pytest.raises(AssertionError, match="1 failed"):
        run_section(blocks, tmp_path)


def test_a_scenario_the_legacy_engine_does_not_break_as_expected_fails(tmp_path: Path) -> None:
    """No timeline, no faults: nothing breaks, so an ``expect`` cannot be met."""
    body = '# calm.toml\nname = "calm"\nlink = [103]\nexpect = ["course-freshness"]\n'
    with pytest.raises(AssertionError, match=re.escape("(('course-freshness',), [])")):
        run_section([Block("toml", body)], tmp_path)


def test_a_text_block_after_a_sh_block_is_its_output(tmp_path: Path) -> None:
    shown = "credsync scenario list\n"  # not after a sh block: checked, not run
    run_section([Block("text", shown), Block("sh", "echo hi\n")], tmp_path)
    run_section([Block("sh", "echo hi\n"), Block("text", "hi\n")], tmp_path)
    with pytest.raises(AssertionError, match="not printed"):
        run_section([Block("sh", "echo hi\n"), Block("text", "bye\n")], tmp_path)


@pytest.mark.parametrize(
    "line",
    [
        "credsync fuzz --engine legacy --wrokers 2",
        "FUZZ_NOPE=1 tox -e fuzz",
        "tox -e nonesuch",
        "pytest tests/test_nonesuch.py",
        "make fuzz",
    ],
)
def test_a_display_command_that_rotted_fails(line: str) -> None:
    with pytest.raises(AssertionError):
        check_display_command(line)
