"""The public strategies (``simulators.strategies``) produce what their docstrings claim.

Payloads must parse with ``sync_core``'s own parsers, to the values the record carries, and
the variety each docstring promises (mixed-case emails, revoked awards, excused work, New
Quizzes...) must actually be reachable: :func:`hypothesis.find` has to find an example of
it within 300 draws. Each parse check is also shown to reject a broken record, so a check
that passes is not a check that cannot fail.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from simulators.faults import SWARM_RATES, TARGETS, FaultKind, FaultRates, HypothesisChoices
from simulators.strategies import (
    WRITES,
    canvas_assignments,
    canvas_enrollments,
    canvas_submissions,
    canvas_users,
    course_specs,
    credentials_assertions,
    credentials_members,
    emails,
    fault_plans,
    fault_rates,
    worlds,
)
from simulators.worlds import course_spec
from sync_core.canvas import (
    Malformed,
    parse_assignment,
    parse_enrollment,
    parse_submission,
    parse_user_email,
)
from sync_core.credentials import parse_assertion, parse_member

Json = dict[str, Any]
WORLD_SETTINGS = settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
# Reachability only needs one example, not the smallest: no shrinking (which would cost far
# more than the search), derandomized so that a pass or a failure is the same every run.
REACH = settings(phases=[Phase.generate], max_examples=300, derandomize=True, database=None)


def reachable(strategy: Any, predicate: Any) -> Any:
    return find(strategy, predicate, settings=REACH)


# --------------------------------------------------------------------------- worlds


@given(course_specs())
def test_course_specs_pass_the_world_file_validation(spec: Any) -> None:
    assert course_spec(asdict(spec), "drawn") == spec


@WORLD_SETTINGS
@given(worlds(linked=True))
def test_linked_worlds_link_every_course_to_a_group_with_its_badges(seeded: Any) -> None:
    world, rules = seeded
    assert rules and set(world.links) == set(rules) <= set(world.canvas.courses)
    for course_id, link in world.links.items():
        assert world.credentials.groups[link.group_id].course_id == course_id
        assert link.rules == rules[course_id]
        assert {r.badge_class for r in link.rules} <= set(world.credentials.badge_classes)


@WORLD_SETTINGS
@given(worlds())
def test_unlinked_worlds_leave_linking_to_the_test(seeded: Any) -> None:
    world, rules = seeded
    assert rules and not world.links and not world.credentials.groups


def test_worlds_are_both_small_and_built() -> None:
    """Both families are drawn: World.small names its courses "... (A)" to "(C)", and
    always has three; built worlds have one to three."""
    reachable(worlds(), lambda s: s[0].canvas.courses[102].name.endswith("(B)"))
    reachable(worlds(), lambda s: len(s[0].canvas.courses) == 2)


# --------------------------------------------------------------------------- faults


@given(fault_rates())
def test_fault_rates_are_swarm_rates(rates: Any) -> None:
    assert all(rates.rate(kind) in SWARM_RATES for kind in FaultKind)


def test_fault_rates_shrink_to_none_and_reach_each_kind_at_half() -> None:
    assert find(fault_rates(), lambda r: True) == FaultRates.none()  # shrinks to no faults
    for kind in FaultKind:
        reachable(fault_rates(), lambda r, k=kind: r.rate(k) == 500)


def test_swarm_switches_each_kind_off_in_half_the_draws() -> None:
    """Swarm testing omits each feature with probability one half: of the values a kind's
    draw can take, half mean off and the rest spread evenly over the other levels."""

    class Always:
        def __init__(self, value: int) -> None:
            self.value, self.ranges = value, set()

        def draw(self, n: int) -> int:
            self.ranges.add(n)
            return self.value

    levels = []
    for value in range(2 * (len(SWARM_RATES) - 1)):
        source = Always(value)
        rates = FaultRates.swarm(source)
        assert source.ranges == {2 * (len(SWARM_RATES) - 1)}
        assert len({rates.rate(kind) for kind in FaultKind}) == 1
        levels.append(rates.rate(FaultKind.LATE_COMMIT))
    assert levels.count(0) == len(levels) // 2
    assert sorted(levels[len(levels) // 2 :]) == sorted(SWARM_RATES[1:])


def test_fault_rates_draw_what_hypothesis_choices_draw() -> None:
    """The state machine drew ``FaultRates.swarm(HypothesisChoices(data))`` before it used
    :func:`fault_rates`: one derandomized run of each must see the same examples, so the
    ``ci`` profile's examples (and ``test_detection``'s counterexamples) did not move."""
    assert same_examples_as_hypothesis_choices(fault_rates())
    twin = st.builds(FaultRates, **{k.value: st.sampled_from(SWARM_RATES) for k in FaultKind})
    assert not same_examples_as_hypothesis_choices(twin)  # the check has teeth


def same_examples_as_hypothesis_choices(rates: st.SearchStrategy[FaultRates]) -> bool:
    seen: dict[str, list[object]] = {"choices": [], "strategy": []}
    via = ["choices"]

    @settings(max_examples=100, derandomize=True, database=None)
    @given(st.data())
    def draw(data: st.DataObject) -> None:
        if via[0] == "choices":
            drawn = FaultRates.swarm(HypothesisChoices(data))
        else:
            drawn = data.draw(rates)
        seen[via[0]].append((drawn, data.draw(st.integers(0, 100))))

    draw()
    via[0] = "strategy"
    draw()
    return len(seen["strategy"]) == 100 and seen["strategy"] == seen["choices"]


@given(fault_plans())
def test_fault_plans_only_decide_faults_they_have(plan: Any) -> None:
    assert plan.only in (None, frozenset(WRITES)) and set(WRITES) <= set(TARGETS)
    for target in TARGETS:
        is_read = target in ("canvas-read", "credentials-read")
        fault = plan.decide(not is_read, target == "canvas-read", target)
        if fault is not None:
            assert plan.rates.rate(fault) > 0
            assert plan.only is None or target in plan.only


# --------------------------------------------------------------------------- payloads


@given(canvas_enrollments())
def test_enrollments_parse_to_what_they_say(row: Json) -> None:
    parsed = parse_enrollment(row)
    student = row["type"] == "StudentEnrollment"
    assert parsed.user_id == row["user_id"] and parsed.name == row["user"]["name"]
    assert parsed.student == (student and row["enrollment_state"] in ("active", "completed"))
    assert parsed.active == (row["enrollment_state"] == "active")
    assert parsed.current_score == (row["grades"]["current_score"] if student else None)


@given(canvas_users())
def test_users_parse_to_their_lowercased_email_or_none(row: Json) -> None:
    user_id, email = parse_user_email(row)
    assert user_id == row["id"]
    raw = row.get("email")
    assert email == (raw.lower() if raw else None)


@given(canvas_assignments())
def test_assignments_parse_with_their_quiz_kind(row: Json) -> None:
    parsed = parse_assignment(row)
    assert (parsed.assignment_id, parsed.points_possible) == (row["id"], row["points_possible"])
    assert parsed.quiz_id == row.get("quiz_id")
    assert parsed.is_new_quiz == row.get("is_quiz_lti_assignment", False)


@given(canvas_submissions())
def test_submissions_parse_to_their_score(row: Json) -> None:
    parsed = parse_submission(row)
    assert (parsed.user_id, parsed.assignment_id) == (row["user_id"], row["assignment_id"])
    assert (parsed.score, parsed.excused) == (row["score"], row["excused"])
    assert parsed.excused <= (parsed.score is None)
    assert (parsed.graded_at is None) == (row["graded_at"] is None)


@given(credentials_assertions())
def test_assertions_parse_to_their_lowercased_recipient(row: Json) -> None:
    parsed = parse_assertion(row)
    assert parsed.email == row["recipient"]["plaintextIdentity"].lower()
    assert (parsed.entity_id, parsed.badge_class) == (row["entityId"], row["badgeclass"])
    assert parsed.revoked == row["revoked"]


@given(credentials_members())
def test_members_parse_with_what_they_earned(row: Json) -> None:
    parsed = parse_member(row)
    assert (parsed.user_id, parsed.email) == (row["canvasUserId"], row["email"])
    assert parsed.earned == tuple(sorted(row["earned"]))


@pytest.mark.parametrize(
    ("strategy", "find_it"),
    [
        (emails(), lambda e: e != e.lower()),
        (canvas_enrollments(), lambda r: r["type"] != "StudentEnrollment"),
        (canvas_enrollments(), lambda r: (r.get("grades") or {}).get("current_score")),
        (canvas_users(), lambda r: "email" not in r),
        (canvas_users(), lambda r: r.get("email") == ""),
        (canvas_users(), lambda r: (r.get("email") or "") != (r.get("email") or "").lower()),
        (canvas_assignments(), lambda r: r.get("is_quiz_lti_assignment")),
        (canvas_assignments(), lambda r: "quiz_id" in r),
        (canvas_assignments(), lambda r: r["points_possible"] is None),
        (canvas_submissions(), lambda r: r["excused"]),
        (canvas_submissions(), lambda r: r["workflow_state"] == "unsubmitted"),
        (canvas_submissions(), lambda r: r["score"] is not None and r["attempt"] is None),
        (credentials_assertions(), lambda r: r["revoked"]),
        (credentials_members(), lambda r: len(r["earned"]) > 1),
    ],
)
def test_the_promised_variety_is_reachable(strategy: Any, find_it: Any) -> None:
    reachable(strategy, find_it)


# Each parse check above rejects a record with a broken field: these are the teeth.
BROKEN = [
    (canvas_enrollments(), "user_id", "1001", parse_enrollment),
    (canvas_users(), "id", None, parse_user_email),
    (canvas_assignments(), "id", 1.5, parse_assignment),
    (canvas_submissions(), "graded_at", "yesterday", parse_submission),
    (credentials_assertions(), "recipient", "ada@example.edu", parse_assertion),
    (credentials_members(), "earned", "all", parse_member),
]


@pytest.mark.parametrize(("strategy", "key", "bad", "parse"), BROKEN)
def test_a_broken_payload_is_rejected(strategy: Any, key: str, bad: Any, parse: Any) -> None:
    @settings(max_examples=10)
    @given(strategy)
    def check(row: Json) -> None:
        with pytest.raises(Malformed):
            parse({**row, key: bad})

    check()
