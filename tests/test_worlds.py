"""World descriptions: the built-in semester, files QA can write, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import scenarios.cli as cli
from simulators.faults import FaultPlan, FaultRates, SeededChoices
from simulators.harness.simulation import Simulation
from simulators.worlds import SEMESTER, WorldSpecError, load_world


def test_the_semester_world_is_large_varied_and_seeded() -> None:
    world, rules = load_world("semester", 7)
    assert len(rules) == len(SEMESTER) == 12
    bare = [c for c in rules if not world.canvas.assignments_in(c)]
    assert bare, "a semester must include a course without assignments or quizzes"
    assert sum(len(world.active_students(c)) for c in rules) > 400
    again, _ = load_world("semester", 7)
    assert [u.email for u in world.canvas.users.values()] == [
        u.email for u in again.canvas.users.values()
    ]


def test_the_semester_converges_without_faults() -> None:
    world, rules = load_world("semester", 1)
    sim = Simulation(world, FaultPlan(FaultRates.none(), SeededChoices(1)))
    for course_id, course_rules in sorted(rules.items()):
        sim.link(world.link_course(course_id, course_rules))
    assert sim.settle() == []


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_a_world_file_in_json_or_toml(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"world{suffix}"
    if suffix == ".json":
        path.write_text('{"courses": [{"name": "Bio", "students": 5, "assignments": 0}, {}]}')
    else:
        path.write_text('[[courses]]\nname = "Bio"\nstudents = 5\nassignments = 0\n\n[[courses]]\n')
    world, rules = load_world(str(path), 3)
    names = [world.canvas.courses[c].name for c in rules]
    assert names == ["Bio", "Course"] and len(world.active_students(min(rules))) == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid json"),
        ('{"courses": []}', "at least one course"),
        ('{"courses": [{"pupils": 3}]}', "unknown keys ['pupils']"),
        ('{"courses": [{"students": -1}]}', "'students' must be a whole number"),
        ('{"courses": [{"graded": 2}]}', "'graded' must be a number from 0 to 1"),
        ('{"courses": [{"sections": 0}]}', "'sections' must be at least 1"),
        ('{"courses": [{"name": 7}]}', "'name' must be a string"),
    ],
)
def test_bad_world_files_are_refused_clearly(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "world.json"
    path.write_text(text)
    with pytest.raises(WorldSpecError, match=f"{path}: .*{message}".replace("[", r"\[")):
        load_world(str(path), 1)


def test_serve_refuses_a_bad_world_file_before_listening(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.json"
    assert cli.main(["serve", "--world", str(missing)]) == 2
    assert "cannot read the world file" in capsys.readouterr().err
