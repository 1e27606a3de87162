"""The legacy engine does what its docstring says the original did, flaw by flaw.

The scenarios show each flaw as a broken invariant; these tests pin the mechanisms down,
so a change that quietly fixes (or worsens) the model is noticed.
"""

from __future__ import annotations

import math

import pytest

from scenarios.legacy import GIVE_UP_AFTER, LegacyEngine
from simulators.faults import FaultPlan, FaultRates, SeededChoices
from simulators.harness.actions import perform
from simulators.harness.simulation import Simulation
from simulators.world import World
from sync_core import Policy, SyncEngine
from sync_core.engine import CourseStatus


def legacy(*courses: int) -> Simulation:
    world, rules = World.small(1)
    sim = Simulation(
        world,
        FaultPlan(FaultRates.none(), SeededChoices(1)),
        new_engine=LegacyEngine,
        restore_engine=LegacyEngine.from_json,
    )
    for course_id in courses:
        sim.link(world.link_course(course_id, rules[course_id]))
    return sim


def status(sim: Simulation, course_id: int) -> CourseStatus:
    return next(s for s in sim.engine.status() if s.course_id == course_id)


def test_a_course_without_assignments_is_never_checked() -> None:
    sim = legacy(101, 102)
    perform(sim, {"do": "wait", "hours": 6})
    assert status(sim, 101).last_success_at is not None
    assert status(sim, 102).last_success_at is None
    assert not sim.world.credentials.groups[sim.world.links[102].group_id].members


def test_three_failed_checks_disable_a_course_and_update_now_does_not_revive_it() -> None:
    sim = legacy(103)
    perform(sim, {"do": "wait", "minutes": 10})
    synced = status(sim, 103).last_success_at
    perform(sim, {"do": "faults", "transient_5xx": 1000, "on": ["canvas-read"]})
    perform(sim, {"do": "wait", "seconds": GIVE_UP_AFTER * Policy().poll_interval})
    perform(sim, {"do": "faults-off"})
    perform(sim, {"do": "wait", "days": 1})
    stalled = status(sim, 103)
    assert stalled.last_success_at == synced
    assert stalled.next_due == math.inf
    assert stalled.last_error is not None and stalled.last_error.startswith("disabled after 3")
    pressed = sim.now
    perform(sim, {"do": "update-now", "course": 103})
    # The check's requests take virtual time, and the harness ticks before each answer:
    # the check that ran completed within this feed, after the press.
    assert pressed < status(sim, 103).last_success_at <= sim.now  # one check ran...
    perform(sim, {"do": "wait", "days": 1})
    assert status(sim, 103).last_success_at < sim.now - 3600  # ...and that was all


def test_an_ambiguous_award_is_retried_once_blindly_into_a_duplicate() -> None:
    sim = legacy(103)
    perform(sim, {"do": "wait", "minutes": 10})
    perform(sim, {"do": "faults", "lost_response": 1000, "on": ["award"]})
    perform(sim, {"do": "grade", "course": 103, "assignment": 7005, "user": 1013, "percent": 100})
    perform(sim, {"do": "wait", "minutes": 10})
    email = sim.world.canvas.users[1013].email
    assert email is not None
    held = [
        a
        for a in sim.world.credentials.assertions.values()
        if a.identity == email.lower()
        and a.badge_class == sim.world.links[103].rules[0].badge_class
    ]
    assert len(held) == 2  # the first POST committed, its answer was lost, the retry too


def test_students_enrolled_after_the_first_check_never_join_the_group() -> None:
    sim = legacy(103)
    perform(sim, {"do": "wait", "minutes": 10})
    group = sim.world.credentials.groups[sim.world.links[103].group_id]
    before = set(group.members)
    perform(sim, {"do": "sis-import", "course": 103, "students": 5})
    perform(sim, {"do": "wait", "days": 1})
    assert set(group.members) == before
    assert len(sim.world.active_students(103)) == len(before) + 5 + 1  # 1015 has no email


def test_state_round_trips_and_refuses_the_cores_state() -> None:
    sim = legacy(101, 103)
    perform(sim, {"do": "wait", "hours": 2})
    text = sim.engine.to_json()
    assert LegacyEngine.from_json(text).to_json() == text
    with pytest.raises(ValueError, match="not a legacy engine state"):
        LegacyEngine.from_json(SyncEngine().to_json())
