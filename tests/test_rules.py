"""Award rules, the membership diff, the leaderboard and the backoff schedule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync_core.canvas import Assignment, CourseSnapshot, Student, Submission
from sync_core.credentials import Assertion, Member
from sync_core.reconcile import (
    awarded_in,
    earned,
    leaderboard,
    owners_by_email,
    plan_members,
    rerank,
)
from sync_core.rules import (
    AssignmentScore,
    CourseCompleted,
    CourseGrade,
    ModuleCompleted,
    QuizScore,
    earned_by,
    rule_from_dict,
    rule_to_dict,
)
from sync_core.schedule import Policy, backoff_delay, jitter


def snapshot() -> CourseSnapshot:
    s = CourseSnapshot()
    s.students = {
        1: Student(1, "A", "a@x", 91.0),
        2: Student(2, "B", "b@x", 40.0),
        3: Student(3, "C", None, None),
    }
    s.assignments = {
        10: Assignment(10, 20.0),
        11: Assignment(11, 5.0, quiz_id=50),
        12: Assignment(12, 10.0, is_new_quiz=True),
        13: Assignment(13, None),
    }
    s.quizzes = {50: 11}
    s.submissions = {
        (1, 10): Submission(1, 10, 16.0, False, None),  # 80%
        (2, 10): Submission(2, 10, 15.9, False, None),
        (3, 10): Submission(3, 10, None, True, None),  # excused
        (1, 11): Submission(1, 11, 5.0, False, None),
        (2, 12): Submission(2, 12, 7.0, False, None),
        (1, 13): Submission(1, 13, 3.0, False, None),
    }
    s.modules = {1: {100: "completed", 101: "completed"}, 2: {100: "completed", 101: "started"}}
    s.required_modules = {1: frozenset({100, 101}), 2: frozenset({100, 101})}
    return s


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (AssignmentScore("b", 10, min_percent=80), {1}),
        (AssignmentScore("b", 10, min_points=15.9), {1, 2}),
        (AssignmentScore("b", 13, min_percent=1), set()),  # no points possible: unreachable
        (AssignmentScore("b", 13, min_points=3), {1}),
        (AssignmentScore("b", 99, min_points=0), set()),  # unknown (deleted) assignment
        (QuizScore("b", 50, 100), {1}),  # classic: through the quiz's assignment
        (QuizScore("b", 12, 70, new_quizzes=True), {2}),  # New Quiz: the id is the assignment
        (QuizScore("b", 77, 1), set()),
        (CourseGrade("b", 90), {1}),
        (ModuleCompleted("b", 100), {1, 2}),
        (CourseCompleted("b"), {1}),
    ],
)
def test_rules(rule: object, expected: set[int]) -> None:
    assert earned_by(rule, snapshot()) == expected  # type: ignore[arg-type]


def test_course_completion_needs_at_least_one_requirement() -> None:
    s = snapshot()
    s.required_modules[1] = frozenset()
    assert earned_by(CourseCompleted("b"), s) == set()


def test_assignment_score_needs_exactly_one_threshold() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        AssignmentScore("b", 1)
    with pytest.raises(ValueError, match="exactly one"):
        AssignmentScore("b", 1, min_points=1, min_percent=1)


@pytest.mark.parametrize(
    "rule",
    [
        AssignmentScore("b", 1, min_percent=5.5),
        QuizScore("b", 2, 50, True),
        CourseGrade("b", 1),
        ModuleCompleted("b", 3),
        CourseCompleted("b"),
    ],
)
def test_rules_round_trip_through_dicts(rule: object) -> None:
    assert rule_from_dict(rule_to_dict(rule)) == rule  # type: ignore[arg-type]


def test_unknown_rule_type_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown award rule type 'magic'"):
        rule_from_dict({"type": "magic"})


def test_members_diff_keys_on_user_and_holds_unreachable_students() -> None:
    s = snapshot()
    s.students[4] = Student(4, "D", "d@x", None, active=False)  # concluded
    earned_now = earned([AssignmentScore("b", 10, min_percent=80)], s)
    observed = {
        1: Member(1, "a@x", "A", ("b",)),
        3: Member(3, "c@x", "C", ()),
        4: Member(4, "d@x", "D", ()),
        9: Member(9, "z@x", "Z", ()),
    }
    plan = plan_members(s, earned_now, observed)
    assert [m.user_id for m in plan.upserts] == [2]  # 1 is already right
    assert plan.removals == (4, 9)  # concluded and unknown users leave; 3 has no email: held
    assert plan.unreachable == (3,)


def test_awards_count_across_old_emails_and_revoked_ones_still_count() -> None:
    owners = owners_by_email({1: ["old@x", "new@x"], 2: ["b@x"]})
    found, live = awarded_in(
        [
            Assertion("E1", "b", "old@x", revoked=True),
            Assertion("E2", "c", "b@x", False),
            Assertion("E3", "b", "stranger@x", False),
            Assertion("E4", "b", "new@x", False),
            Assertion("E5", "d", "b@x", True),
        ],
        owners,
        ["b", "d"],
    )
    assert found == {(1, "b"): "E1", (2, "d"): "E5"}  # the first assertion names the award
    assert live == {"b": {1}, "d": set()}  # only unrevoked ones rank


@given(st.dictionaries(st.integers(1, 20), st.sets(st.sampled_from("abc")), max_size=8))
def test_leaderboard_ranks_by_distinct_badges_then_user(held: dict[int, set[str]]) -> None:
    holders: dict[str, list[int]] = {}
    for uid, badges in held.items():
        for b in badges:
            holders.setdefault(b, []).extend([uid, uid])  # an award held twice counts once
    holders["z"] = [999]  # not a member: not ranked
    board = leaderboard(held.keys(), holders)
    assert [e.user_id for e in board] == sorted(held, key=lambda u: (-len(held[u]), u))
    assert all(e.badges == len(held[e.user_id]) for e in board)
    assert leaderboard(held.keys(), holders, board) == board


Holders = dict[str, set[int]]


@given(
    st.sets(st.integers(1, 12), max_size=8),
    st.dictionaries(st.sampled_from("abcd"), st.sets(st.integers(1, 12)), max_size=4),
    st.sets(st.integers(1, 12), max_size=8),
    st.dictionaries(st.sampled_from("abcd"), st.sets(st.integers(1, 12)), max_size=4),
)
def test_rerank_moves_only_the_changed_users_to_where_a_fresh_ranking_puts_them(
    members: set[int], holders: Holders, members_after: set[int], holders_after: Holders
) -> None:
    """An incremental round re-ranks only the users whose awards or membership changed;
    the result is the ranking derived afresh from the new members and awards."""
    before = leaderboard(members, holders)

    def held(uids: set[int], by_badge: Holders, uid: int) -> int | None:
        return sum(uid in h for h in by_badge.values()) if uid in uids else None

    moved = {
        uid: held(members_after, holders_after, uid)
        for uid in members | members_after
        if held(members, holders, uid) != held(members_after, holders_after, uid)
    }
    assert rerank(before, moved) == leaderboard(members_after, holders_after)


@given(st.integers(1, 10**6), st.integers(1, 200))
def test_backoff_is_capped_positive_and_deterministic(course: int, attempt: int) -> None:
    policy = Policy(backoff_base=30, backoff_cap=1800)
    delay = backoff_delay(policy, course, attempt)
    assert 0 < delay <= policy.backoff_cap
    assert delay == backoff_delay(policy, course, attempt)
    assert 0 <= jitter(course, attempt) < 1


def test_backoff_grows_until_the_cap() -> None:
    policy = Policy(backoff_base=30, backoff_cap=1800)
    delays = [backoff_delay(policy, 7, n) for n in range(1, 12)]
    assert delays[0] <= 30 and delays[-1] >= 900
    assert len({round(d) for d in delays}) > 5  # jitter spreads them


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"):
        Policy(poll_interval=0)
    with pytest.raises(ValueError, match="exceed"):
        Policy(backoff_base=100, backoff_cap=10)
