"""Each invariant holds on a converged view and fails on a deliberately broken one."""

from __future__ import annotations

from dataclasses import replace

from simulators.harness.invariants import (
    QUIESCENCE,
    SAFETY,
    AssertionView,
    CourseView,
    WorldView,
    check,
    course_freshness,
    earned_implies_awarded,
    leaderboard_matches_awards,
    members_match_enrollments,
    no_duplicate_awards,
    no_unearned_awards,
    update_now_repairs,
)


def healthy() -> WorldView:
    course = CourseView(
        course_id=101,
        badge_classes=frozenset({"B1", "B2"}),
        active_students={1: "a@x.edu", 2: "b@x.edu", 3: None},
        earning_students={1: "a@x.edu", 2: "b@x.edu", 3: None, 4: "d@x.edu"},
        earned_now=frozenset({(1, "B1"), (1, "B2"), (2, "B1")}),
        ever_earned=frozenset({(1, "B1"), (1, "B2"), (2, "B1")}),
        members={1: "a@x.edu", 2: "b@x.edu"},
        leaderboard=((1, 2), (2, 1)),
        last_synced=1000.0,
    )
    assertions = (
        AssertionView("B1", "a@x.edu", False),
        AssertionView("B2", "old-a@x.edu", False),
        AssertionView("B1", "b@x.edu", False),
    )
    owners = {"a@x.edu": 1, "old-a@x.edu": 1, "b@x.edu": 2}
    return WorldView(1100.0, (course,), assertions, owners)


def with_course(view: WorldView, **changes: object) -> WorldView:
    return replace(view, courses=(replace(view.courses[0], **changes),))


def names(violations: list) -> set[str]:
    return {v.invariant for v in violations}


def test_a_converged_view_breaks_nothing() -> None:
    view = healthy()
    assert check(view, {**SAFETY, **QUIESCENCE}) == []
    assert course_freshness(view, since=900, bound=300) == []
    assert update_now_repairs(view, 101) == []


def test_no_duplicate_awards_catches_a_second_award_under_another_email() -> None:
    view = healthy()
    broken = replace(view, assertions=(*view.assertions, AssertionView("B1", "old-a@x.edu", True)))
    (v,) = no_duplicate_awards(broken)
    assert (v.course_id, v.user_id) == (101, 1) and "2 times" in v.detail


def test_no_unearned_awards_catches_an_award_nobody_earned() -> None:
    view = healthy()
    broken = replace(view, assertions=(*view.assertions, AssertionView("B2", "b@x.edu", False)))
    (v,) = no_unearned_awards(broken)
    assert v.user_id == 2 and "never earned" in str(v)


def test_members_match_enrollments_catches_missing_stale_and_extra_members() -> None:
    view = healthy()
    assert names(members_match_enrollments(with_course(view, members={1: "a@x.edu"}))) == {
        "members-match-enrollments"
    }
    stale = members_match_enrollments(with_course(view, members={1: "old@x", 2: "b@x.edu"}))
    assert "Canvas has 'a@x.edu'" in stale[0].detail
    extra = members_match_enrollments(
        with_course(view, members={**view.courses[0].members, 9: "z@x"})
    )
    assert [v.user_id for v in extra] == [9]


def test_a_student_without_email_may_stay_but_need_not_join() -> None:
    view = healthy()
    assert (
        members_match_enrollments(
            with_course(view, members={1: "a@x.edu", 2: "b@x.edu", 3: "c@x.edu"})
        )
        == []
    )


def test_earned_implies_awarded_catches_an_earned_badge_never_awarded() -> None:
    view = healthy()
    broken = replace(view, assertions=view.assertions[:2])
    (v,) = earned_implies_awarded(broken)
    assert (v.user_id, v.invariant) == (2, "earned-implies-awarded")


def test_earned_implies_awarded_covers_students_who_completed_the_course() -> None:
    view = healthy()
    concluded = with_course(view, earned_now=view.courses[0].earned_now | {(4, "B2")})
    (v,) = earned_implies_awarded(concluded)
    assert v.user_id == 4
    owners = {**view.owners, "d@x.edu": 4}
    awarded = replace(
        concluded,
        owners=owners,
        assertions=(*view.assertions, AssertionView("B2", "d@x.edu", False)),
    )
    assert earned_implies_awarded(awarded) == []


def test_leaderboard_matches_awards_catches_a_stale_board() -> None:
    view = healthy()
    (v,) = leaderboard_matches_awards(with_course(view, leaderboard=((1, 1), (2, 1))))
    assert "awards say ((1, 2), (2, 1))" in v.detail
    revoked = replace(view, assertions=(AssertionView("B1", "a@x.edu", True), *view.assertions[1:]))
    assert names(leaderboard_matches_awards(revoked)) == {"leaderboard-matches-awards"}


def test_course_freshness_catches_never_and_stale_syncs() -> None:
    view = healthy()
    assert "never" in course_freshness(with_course(view, last_synced=None), 900, 300)[0].detail
    assert course_freshness(view, since=1050, bound=300)[0].invariant == "course-freshness"


def test_update_now_repairs_reports_what_did_not_converge() -> None:
    view = with_course(healthy(), members={})
    violations = update_now_repairs(view, 101)
    assert violations and all(v.invariant == "update-now-repairs" for v in violations)
    assert update_now_repairs(view, 999) == []  # other courses are not its business
