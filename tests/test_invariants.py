"""Each invariant holds on a converged view and fails on a deliberately broken one."""

from __future__ import annotations

from dataclasses import replace

from simulators.canvas.model import RateLimit
from simulators.faults import FaultPlan, FaultRates, SeededChoices
from simulators.harness.actions import perform
from simulators.harness.invariants import (
    QUIESCENCE,
    SAFETY,
    AssertionView,
    CourseView,
    WorldView,
    check,
    course_freshness,
    earned_implies_awarded,
    expected_leaderboard,
    leaderboard_matches_awards,
    members_match_enrollments,
    no_duplicate_awards,
    no_live_duplicates,
    no_unearned_awards,
    progress_under_load,
    update_now_repairs,
)
from simulators.harness.machine import POLICY, small_world
from simulators.harness.simulation import Simulation, load_bound
from simulators.world import World
from simulators.worlds import CourseSpec, build
from sync_core import Policy


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


def test_progress_under_load_catches_a_course_that_never_finished_a_round() -> None:
    view = healthy()
    assert progress_under_load(view, since=900, bound=300) == []
    (v,) = progress_under_load(with_course(view, last_synced=None), 900, 300)
    assert v.invariant == "progress-under-load" and "never" in v.detail
    assert progress_under_load(view, since=1050, bound=300)[0].course_id == 101


def test_the_load_bound_grows_with_the_course_and_shrinks_with_the_outflow() -> None:
    policy = Policy()
    small, small_rules = World.small(1)
    large, rules = build((CourseSpec(students=2000, modules=2),), 1)
    for world, linked in ((small, small_rules), (large, rules)):
        for course_id, course_rules in linked.items():
            world.link_course(course_id, course_rules)
    base = policy.backoff_cap + policy.poll_interval
    assert 0 < load_bound(small, policy) - base < load_bound(large, policy) - base
    # 2,000 module reads and the rest, at 10 cost units a second: at least 200 s of drain
    assert load_bound(large, policy) - base > 200
    slow = load_bound(large, policy)
    large.canvas.rate_limit = RateLimit(outflow=5.0)
    assert load_bound(large, policy) > slow


def test_update_now_repairs_reports_what_did_not_converge() -> None:
    view = with_course(healthy(), members={})
    violations = update_now_repairs(view, 101)
    assert violations and all(v.invariant == "update-now-repairs" for v in violations)
    assert update_now_repairs(view, 999) == []  # other courses are not its business


# -- awards judged from ground truth: by hand or by the sync, when requested and stored -----

LAG = 120.0  # the replica lag the sync is promised to tolerate, in these views


def awards_of_a(*rows: AssertionView, beyond: bool = False) -> WorldView:
    """The healthy view with student 1's award of B1 replaced by ``rows`` (other awards
    untouched), with a stated lag bound, and the tolerance exceeded when ``beyond``."""
    view = healthy()
    return replace(
        view,
        assertions=(*rows, *view.assertions[1:]),
        lag_bound=LAG,
        beyond_tolerance=beyond,
    )


def by_hand(at: float, revoked_at: float | None = None, email: str = "a@x.edu") -> AssertionView:
    return AssertionView(
        "B1",
        email,
        revoked_at is not None,
        by_hand=True,
        requested_at=at,
        created_at=at,
        revoked_at=revoked_at,
        seq=int(at),
    )


def by_sync(requested: float, stored: float | None = None, email: str = "a@x.edu") -> AssertionView:
    stored = requested if stored is None else stored
    return AssertionView(
        "B1", email, False, requested_at=requested, created_at=stored, seq=int(stored)
    )


def test_a_sync_award_after_a_live_hand_award_is_a_duplicate() -> None:
    """Credentials would have refused it, if asked to: the sync must ask."""
    (v,) = no_duplicate_awards(awards_of_a(by_hand(1000), by_sync(1010)))
    assert (v.course_id, v.user_id) == (101, 1)
    assert "2 times" in v.detail and "by hand" in v.detail
    # Under another of the student's emails too: ownership is by Canvas user id.
    (v,) = no_duplicate_awards(awards_of_a(by_hand(1000), by_sync(1010, email="old-a@x.edu")))
    assert v.user_id == 1


def test_a_hand_award_the_sync_could_not_have_seen_is_no_duplicate() -> None:
    """Stored less than the lag bound before the sync's request, and revoked by then: no
    read the sync could make was bound to show it, and Credentials would not refuse."""
    assert no_duplicate_awards(awards_of_a(by_hand(1000, revoked_at=1050), by_sync(1100))) == []
    # Stored at least the lag bound before: any fresh read showed it, revoked or not, and
    # awarding again would undo the teacher's revocation.
    old = awards_of_a(by_hand(1000, revoked_at=1050), by_sync(1000 + LAG))
    (v,) = no_duplicate_awards(old)
    assert "by hand" in v.detail
    # Live when the sync's request arrived, however recent: Credentials' own check sees it.
    (v,) = no_duplicate_awards(awards_of_a(by_hand(1099, revoked_at=1101), by_sync(1100)))
    assert "by hand" in v.detail


def test_a_hand_award_stored_before_a_late_commit_of_a_later_request_is_no_duplicate() -> None:
    """The sync's request arrived first; its write was stored later (a late commit), after
    the teacher's award: the sync could not have seen it."""
    assert no_duplicate_awards(awards_of_a(by_hand(1010), by_sync(1000, stored=1200))) == []


def test_two_sync_awards_are_a_duplicate_unless_the_world_went_beyond_tolerance() -> None:
    twice = (by_sync(1000), by_sync(1500, email="old-a@x.edu"))
    (v,) = no_duplicate_awards(awards_of_a(*twice))
    assert v.user_id == 1 and "by the sync" in v.detail
    # A late commit makes the earlier request the later award: still two by the sync.
    (v,) = no_duplicate_awards(awards_of_a(by_sync(1000, stored=1300), by_sync(1030)))
    assert "by the sync" in v.detail
    # Beyond the stated bounds, no_live_duplicates judges instead.
    assert no_duplicate_awards(awards_of_a(*twice, beyond=True)) == []
    # ... but a hand award live when the sync asked is a duplicate at any lag.
    assert no_duplicate_awards(awards_of_a(by_hand(900), by_sync(1000), beyond=True))


def test_a_teacher_may_award_by_hand_what_the_student_holds() -> None:
    """Only the sync's awards are judged: a hand award is the teacher's business."""
    assert no_duplicate_awards(awards_of_a(by_sync(1000), by_hand(2000))) == []
    assert no_duplicate_awards(awards_of_a(by_hand(1000), by_hand(2000))) == []


def test_a_duplicate_of_a_shared_class_is_reported_under_the_first_course_using_it() -> None:
    view = awards_of_a(by_hand(1000), by_sync(1010))
    other = replace(view.courses[0], course_id=100, badge_classes=frozenset({"B1"}))
    (v,) = no_duplicate_awards(replace(view, courses=(view.courses[0], other)))
    assert v.course_id == 100


def test_no_live_duplicates_catches_two_live_awards_by_the_sync() -> None:
    broken = awards_of_a(by_sync(1000), by_sync(2000), beyond=True)
    (v,) = no_live_duplicates(broken)
    assert (v.course_id, v.user_id) == (101, 1) and "held 2 times" in v.detail
    # A teacher's award beside them does not excuse them, nor is it the sync's to answer for.
    assert no_live_duplicates(awards_of_a(by_hand(500), by_sync(1000), by_sync(2000)))
    assert no_live_duplicates(awards_of_a(by_hand(1000), by_sync(2000), beyond=True)) == []
    (v,) = no_live_duplicates(awards_of_a(by_sync(1000), by_sync(2000, email="old-a@x.edu")))
    assert v.user_id == 1
    assert "no-live-duplicates" in names(check(broken, QUIESCENCE))


def test_no_live_duplicates_holds_when_all_but_one_are_revoked_or_all_are_by_hand() -> None:
    revoked = replace(by_sync(2000), revoked=True, revoked_at=2100)
    assert no_live_duplicates(awards_of_a(by_sync(1000), revoked, by_hand(3000, 3100))) == []
    assert no_live_duplicates(awards_of_a(by_hand(1000), by_hand(2000))) == []


def test_an_unavailable_class_is_exempt_from_earned_implies_awarded() -> None:
    """Nothing can award a class that cannot be read: the rest of the course must sync."""
    view = healthy()
    missing = replace(view, assertions=view.assertions[:2])  # student 2 lacks B1
    assert earned_implies_awarded(missing)
    assert earned_implies_awarded(replace(missing, unavailable=frozenset({"B1"}))) == []
    # Only that class: student 1's B2, earned and not held, still counts.
    both_missing = replace(missing, assertions=missing.assertions[:1])
    (v,) = earned_implies_awarded(replace(both_missing, unavailable=frozenset({"B1"})))
    assert (v.user_id, "B2" in v.detail) == (1, True)


def test_an_unavailable_class_counts_for_nobody_in_the_leaderboard() -> None:
    view = replace(healthy(), unavailable=frozenset({"B1"}))
    assert expected_leaderboard(view, view.courses[0]) == ((1, 1), (2, 0))
    (v,) = leaderboard_matches_awards(view)  # the board published while B1 was readable
    assert "awards say ((1, 1), (2, 0))" in v.detail
    assert leaderboard_matches_awards(with_course(view, leaderboard=((1, 1), (2, 0)))) == []


def test_no_unearned_awards_ignores_hand_awards() -> None:
    view = healthy()
    hand = replace(by_hand(1000, email="b@x.edu"), badge_class="B2")
    assert no_unearned_awards(replace(view, assertions=(*view.assertions, hand))) == []
    # A sync award of the same pair is still judged, hand award or not.
    sync = replace(by_sync(2000, email="b@x.edu"), badge_class="B2")
    (v,) = no_unearned_awards(replace(view, assertions=(*view.assertions, hand, sync)))
    assert (v.user_id, v.invariant) == (2, "no-unearned-awards")


def test_no_unearned_awards_accepts_an_award_earned_in_another_course_using_the_class() -> None:
    """A class shared by two linked courses: earned in either is earned."""
    view = healthy()
    award = AssertionView("B3", "b@x.edu", False)
    other = CourseView(
        course_id=102,
        badge_classes=frozenset({"B3"}),
        active_students={2: "b@x.edu"},
        earning_students={2: "b@x.edu"},
        earned_now=frozenset(),
        ever_earned=frozenset({(2, "B3")}),
        members={2: "b@x.edu"},
        leaderboard=((2, 1),),
        last_synced=1000.0,
    )
    shared = replace(
        view,
        courses=(replace(view.courses[0], badge_classes=frozenset({"B1", "B2", "B3"})), other),
        assertions=(*view.assertions, award),
    )
    assert no_unearned_awards(shared) == []
    nowhere = replace(shared, courses=(shared.courses[0], replace(other, ever_earned=frozenset())))
    (v,) = no_unearned_awards(nowhere)
    assert (v.course_id, v.user_id) == (101, 2)


def test_an_award_is_live_from_when_it_is_stored_until_it_is_revoked() -> None:
    late = by_sync(1000, stored=1200)
    assert not late.live_at(1100) and late.live_at(1200)
    revoked = by_hand(1000, revoked_at=1100)
    assert revoked.live_at(1099) and not revoked.live_at(1100)


def test_an_award_judged_on_a_stale_read_under_a_rule_added_since_was_earned() -> None:
    """A stale Canvas read still shows a deleted assignment's scores, and a rule added by a
    relink judges them: the sync awards what Canvas showed, which no sync could tell was
    stale. The world counts what its lagging replica serves as earned under the rules in
    force, so ``no-unearned-awards`` stays quiet; the student earns nothing on the current
    data, so only that replica view makes it earned."""
    world, rules = small_world(3)
    sim = Simulation(world, FaultPlan(FaultRates(), SeededChoices(0)), policy=POLICY)
    for course_id, course_rules in sorted(rules.items()):
        sim.link(world.link_course(course_id, course_rules))
    badge = "6XjG2E2bKyzr267wUCPldQ"  # a class of course 101's rules
    for action in (
        {"do": "wait", "minutes": 10},
        {"do": "faults", "stale_read": 1000, "on": ["canvas-read"]},
        {"do": "delete-assignment", "assignment": 7005},
        {"do": "share-badge-class", "course": 103, "badge": badge},
        {"do": "wait", "minutes": 10},
    ):
        perform(sim, action)
    awarded = {a.identity for a in world.credentials.assertions.values() if a.badge_class == badge}
    assert world.canvas.users[1012].email.lower() in awarded  # judged on the stale read
    assert (1012, badge) not in world.earned_now(103)  # the current data earns nothing
    assert [v for v in check(sim.view(), SAFETY) if v.invariant == "no-unearned-awards"] == []
