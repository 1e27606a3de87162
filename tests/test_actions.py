"""Timeline actions, fault targets and scripted fault draws: the parts scenarios are made of."""

from __future__ import annotations

import pytest

from simulators.faults import (
    TARGETS,
    FaultKind,
    FaultPlan,
    FaultRates,
    ScriptedChoices,
    ScriptExhausted,
    SeededChoices,
)
from simulators.harness.actions import ACTIONS, ActionError, perform
from simulators.harness.simulation import Simulation
from simulators.world import World


def simulation(rates: FaultRates | None = None) -> Simulation:
    world, rules = World.small(1)
    sim = Simulation(world, FaultPlan(rates or FaultRates.none(), SeededChoices(1)))
    for course_id in (101, 103):
        sim.link(world.link_course(course_id, rules[course_id]))
    return sim


def test_every_action_is_performed_and_noted_in_the_trace() -> None:
    sim = simulation()
    canvas = sim.world.canvas
    script = [
        {"do": "wait", "minutes": 5},
        {"do": "link", "course": 102},
        {"do": "create-course", "assignments": 1, "modules": True},
        {"do": "enroll", "course": 102, "user": "new", "email": ""},
        {"do": "enroll", "course": 103, "user": 1008, "state": "invited"},
        {"do": "sis-import", "course": 102, "students": 3},
        {"do": "accept", "course": 103, "user": 1008},
        {"do": "drop", "course": 103, "user": 1012, "state": "completed"},
        {"do": "create-work", "course": 103, "kind": "new quiz"},
        {"do": "grade", "course": 101, "assignment": 7001, "user": 1003, "percent": 90},
        {"do": "excuse", "course": 101, "assignment": 7002, "user": 1003},
        {"do": "complete-module-item", "item": 805, "user": 1009},
        {"do": "change-email", "user": 1004, "email": "moved@example.edu"},
        {"do": "faults", "lost_response": 1000, "on": ["award"]},
        {"do": "faults-off"},
        {"do": "faults-on"},
        {"do": "faults-off"},
        {"do": "update-now", "course": 101},
        {"do": "crash"},
        {"do": "delete-assignment", "assignment": 7002},
        {"do": "hand-award", "course": 101, "user": 1003, "badge": "Essay 80%"},
        {"do": "hand-revoke", "user": 1003, "badge": "Essay 80%"},
        {"do": "hand-add-member", "course": 101, "user": 1012},
        {"do": "hand-remove-member", "course": 101, "user": 1012},
        {"do": "hand-edit-leaderboard", "course": 101},
        {"do": "share-badge-class", "course": 103, "badge": "Essay 80%"},
        {"do": "archive-badge-class", "badge": "Lab 15 points"},
        {"do": "restore-badge-class", "badge": "Lab 15 points"},
        {"do": "link-missing-badge-class", "course": 103},
        {"do": "fix-links", "course": 103},
        {"do": "delete-badge-class", "badge": "Unit quiz 60%"},
        {"do": "conclude", "course": 103},
    ]
    assert {a["do"] for a in script} == set(ACTIONS)
    for action in script:
        perform(sim, action)
    assert 102 in sim.world.links
    new = [u for u in canvas.users.values() if u.name.startswith("New Student ")]
    assert [u.email for u in new] == [
        None,
        "new2@example.edu",
        "new3@example.edu",
        "new4@example.edu",
    ]
    assert canvas.submissions[(7001, 1003)].score == 9.0
    assert canvas.users[1004].email == "moved@example.edu"
    assert canvas.assignments[7002].deleted
    assert all(
        e.state == "completed" for e in canvas.enrollments_in(103) if e.type == "StudentEnrollment"
    )
    assert sim.crashes == 1
    credentials = sim.world.credentials
    by_hand = [a for a in credentials.assertions.values() if a.by_hand]
    assert len(by_hand) == 1  # the teacher's award; hand-revoke took 1003's first live one
    held = credentials.assertions_for(by_hand[0].badge_class)
    assert next(a.revoked for a in held if a.identity == by_hand[0].identity)
    assert 1012 not in credentials.groups[sim.world.links[101].group_id].members
    names = {c.name for c in credentials.badge_classes.values()}
    assert "Unit quiz 60%" not in names and "Lab 15 points" in names
    essay = next(c.entity_id for c in credentials.badge_classes.values() if c.name == "Essay 80%")
    assert [r.badge_class for r in sim.world.links[103].rules][-1] == essay
    notes = [e.detail for e in sim.trace if e.kind == "activity"]
    assert "faults on: {'lost_response': 1000} per mille on award" in notes
    assert any("SIS import" in n for n in notes)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ({"do": "dance"}, "unknown action 'dance'"),
        ({"do": "grade", "course": 999}, "no course 999"),
        (
            {"do": "grade", "course": 101, "assignment": 7005, "user": 1003, "percent": 1},
            "course 101 has no assignment 7005",
        ),
        (
            {"do": "grade", "course": 101, "assignment": 7001, "user": 1003},
            "'percent' must be a number",
        ),
        ({"do": "enroll", "course": 101, "user": 4242}, "no user 4242"),
        (
            {"do": "enroll", "course": 101, "user": 1003, "state": "deleted"},
            "state must be active or invited",
        ),
        (
            {"do": "enroll", "course": 101, "user": 1003, "section": 1},
            "section 1 is not in course 101",
        ),
        ({"do": "wait"}, "positive number"),
        ({"do": "wait", "hours": "two"}, "'hours' must be a number"),
        ({"do": "faults", "gremlins": 5}, "unknown fault 'gremlins'"),
        ({"do": "faults", "lost_response": 5, "on": ["awards"]}, "'on' must be a list of targets"),
        ({"do": "faults", "lost_response": 5000}, "outside 0..1000"),
        ({"do": "link", "course": 101}, "already linked"),
        ({"do": "drop", "course": 101, "user": 1012}, "not a student of course 101"),
        ({"do": "update-now"}, "'course' is required"),
    ],
)
def test_a_bad_action_is_refused_with_its_reason_and_changes_nothing(
    action: dict[str, object], message: str
) -> None:
    sim = simulation()
    before = (len(sim.world.canvas.users), len(sim.world.canvas.enrollments), sim.plan.rates)
    with pytest.raises((ActionError, ValueError), match=message):
        perform(sim, action)
    assert (
        len(sim.world.canvas.users),
        len(sim.world.canvas.enrollments),
        sim.plan.rates,
    ) == before


def test_faults_on_a_target_hit_only_that_target() -> None:
    sim = simulation()
    perform(sim, {"do": "faults", "transient_5xx": 1000, "on": ["member"]})
    perform(sim, {"do": "enroll", "course": 103, "user": "new"})
    perform(sim, {"do": "wait", "hours": 1})
    faulted = {label for _, label, fault, _ in sim.transport.log if fault is not None}
    assert faulted == {"UpsertMember"}
    assert set(TARGETS) >= {"award", "member", "leaderboard", "canvas-read", "credentials-read"}


def test_without_a_target_the_same_rate_faults_everything() -> None:
    """The filter above is what narrowed the faults: the same rate alone hits reads too."""
    sim = simulation()
    perform(sim, {"do": "faults", "transient_5xx": 1000})
    perform(sim, {"do": "wait", "hours": 1})
    faulted = {label for _, label, fault, _ in sim.transport.log if fault is not None}
    assert "FetchCanvasPage" in faulted


def test_scripted_choices_replay_draws_and_refuse_to_improvise() -> None:
    source = ScriptedChoices([3, 0])
    assert [source.draw(10), source.draw(2)] == [3, 0]
    with pytest.raises(ScriptExhausted, match="ran out"):
        source.draw(5)
    with pytest.raises(ScriptExhausted, match="outside"):
        ScriptedChoices([7]).draw(5)


def test_a_scripted_plan_decides_exactly_what_the_recorded_draws_say() -> None:
    rates = FaultRates.none().with_rate(FaultKind.LOST_RESPONSE, 500)
    plan = FaultPlan(rates, ScriptedChoices([0, 999, 500]))
    assert [plan.decide(True, False) for _ in range(3)] == [
        None,
        FaultKind.LOST_RESPONSE,
        FaultKind.LOST_RESPONSE,
    ]
