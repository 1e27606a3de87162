"""Named invariants of a correct sync, each a pure function of a :class:`WorldView`.

A view is what an auditor with read access to both services would see (the ground truth of
Canvas, every assertion, every group) plus when each course last finished a sync. Each
invariant returns the violations it finds, empty when it holds, and its docstring names the
known symptom it guards. Safety invariants must hold after every step, faults or not; the
quiescence ones once faults have stopped and the engine has had time to converge; the
liveness ones bound how long that may take.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class AssertionView:
    badge_class: str
    email: str  # lowercased, as Credentials stores it
    revoked: bool
    by_hand: bool = False  # made by a person in the Credentials UI, not through the API
    requested_at: float = 0.0  # when the request that made it arrived
    created_at: float = 0.0  # when it was stored (later than requested for a late commit)
    revoked_at: float | None = None
    seq: int = 0  # the order it was stored in
    requested_seq: int = 0  # the store's order when its request arrived (seq of the last before)

    def live_at(self, moment: float) -> bool:
        """Stored and not (yet) revoked at ``moment``."""
        return self.created_at <= moment and (self.revoked_at is None or self.revoked_at > moment)

    def live_when(self, made: AssertionView) -> bool:
        """Stored before ``made``'s request arrived (by store order: within one instant of
        virtual time, times alone cannot tell) and not revoked by then."""
        stored = (
            self.seq <= made.requested_seq
            if made.requested_seq
            else self.live_at(made.requested_at)
        )
        return stored and (self.revoked_at is None or self.revoked_at > made.requested_at)


@dataclass(frozen=True)
class CourseView:
    course_id: int
    badge_classes: frozenset[str]
    active_students: Mapping[int, str | None]  # user id -> current email (lowercased)
    earning_students: Mapping[int, str | None]  # active or completed enrollment -> email
    earned_now: frozenset[tuple[int, str]]  # (user, badge class) meeting a rule now
    ever_earned: frozenset[tuple[int, str]]  # ... at any moment so far
    members: Mapping[int, str]  # group member user id -> email held by the group
    leaderboard: tuple[tuple[int, int], ...]  # published (user id, badges), in rank order
    last_synced: float | None  # when the engine last completed a round of this course


@dataclass(frozen=True)
class WorldView:
    now: float
    courses: tuple[CourseView, ...]
    assertions: tuple[AssertionView, ...]
    owners: Mapping[str, int]  # every email any user ever had -> that user
    # Badge classes that cannot be read or awarded now (archived, deleted, never created).
    unavailable: frozenset[str] = frozenset()
    # The longest Credentials replica lag the sync is promised to tolerate, and whether the
    # world went past a stated bound (a longer lag or commit delay) during the run.
    lag_bound: float = 0.0
    beyond_tolerance: bool = False
    # (badge class, email) of award requests that got no definite answer within the sync's
    # settle window before now: whether they were stored, the sync cannot know yet.
    awards_in_doubt: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Violation:
    invariant: str
    course_id: int
    user_id: int | None
    detail: str

    def __str__(self) -> str:
        who = "" if self.user_id is None else f", user {self.user_id}"
        return f"{self.invariant} broken in course {self.course_id}{who}: {self.detail}"


Invariant = Callable[[WorldView], list[Violation]]


def _awards_by_user(view: WorldView, course: CourseView) -> Counter[tuple[int, str]]:
    counts: Counter[tuple[int, str]] = Counter()
    for a in view.assertions:
        uid = view.owners.get(a.email)
        if uid is not None and a.badge_class in course.badge_classes:
            counts[(uid, a.badge_class)] += 1
    return counts


def _by_pair(view: WorldView) -> dict[tuple[int, str], list[AssertionView]]:
    """Every assertion of a linked badge class, per (owner, badge class), in stored order."""
    linked = {badge for course in view.courses for badge in course.badge_classes}
    pairs: dict[tuple[int, str], list[tuple[float, int, int, AssertionView]]] = {}
    for i, a in enumerate(view.assertions):
        uid = view.owners.get(a.email)
        if uid is not None and a.badge_class in linked:
            pairs.setdefault((uid, a.badge_class), []).append((a.created_at, a.seq, i, a))
    return {pair: [a for *_, a in sorted(rows)] for pair, rows in pairs.items()}


def _reporter(view: WorldView, badge_class: str, user_id: int) -> int:
    """The course a student's violation about a class is reported under: the first linked
    course using the class that the student is in (the one whose sync knows them), else the
    first linked course using it."""
    using = [c for c in view.courses if badge_class in c.badge_classes]
    theirs = [c for c in using if user_id in c.earning_students or user_id in c.members]
    return min(c.course_id for c in theirs or using)


def no_duplicate_awards(view: WorldView) -> list[Violation]:
    """The sync never stores an award of a badge class to a student who already holds one,
    across all their emails and every course awarding the class.

    Judged per award the sync made (not by hand), against each award of the same student and
    class stored before it:

    - an earlier award by the sync: always a duplicate (the sync knew it had tried), unless
      the world lagged or committed past the sync's stated bounds (``beyond_tolerance``),
      where :func:`no_live_duplicates` judges instead;
    - an earlier award by hand: a duplicate when it was live as the sync's request arrived
      to the same address (Credentials itself refuses that award, if asked to, however far
      its replicas lag), or, within the bounds, when it was live under another address the
      student had, or stored at least ``lag_bound`` before (any read the sync made just
      before would have shown it, revoked or not: a hand revocation must not be undone).
      Past the bounds no read can be trusted to show a revoked award, and the README says
      so.

    Guards symptom 3 (badges missing or wrong): the original sync retried awards blindly,
    and Credentials accepts duplicate awards by default, so a lost response became two
    badges."""
    out = []
    for (uid, badge), rows in sorted(_by_pair(view).items()):
        for n, made in enumerate(rows):
            if made.by_hand:
                continue
            for earlier in rows[:n]:
                if earlier.by_hand and earlier.live_when(made):
                    seen = earlier.email == made.email or not view.beyond_tolerance
                elif earlier.by_hand:
                    old = earlier.created_at <= made.requested_at - view.lag_bound
                    seen = old and not view.beyond_tolerance
                else:
                    seen = not view.beyond_tolerance
                if seen:
                    who = "by hand" if earlier.by_hand else "by the sync"
                    out.append(
                        Violation(
                            "no-duplicate-awards",
                            _reporter(view, badge, uid),
                            uid,
                            f"badge class {badge} awarded {n + 1} times: again at "
                            f"t={made.created_at:.0f}, held since t={earlier.created_at:.0f} "
                            f"(awarded {who})",
                        )
                    )
                    break
    return out


def no_live_duplicates(view: WorldView) -> list[Violation]:
    """Once the world is healthy again, no student holds two live awards of a class made by
    the sync: a duplicate the world forced on the sync (a replica lag or a commit delay past
    its stated bounds) is detected, reported and revoked, never silently kept. (A teacher's
    second award by hand is theirs; the core revokes it too at its next full round, but that
    is housekeeping, not this promise.)

    Guards symptom 3 beyond the bounds :func:`no_duplicate_awards` holds the sync to."""
    out = []
    for (uid, badge), rows in sorted(_by_pair(view).items()):
        live = [a for a in rows if a.revoked_at is None and not a.revoked]
        if sum(not a.by_hand for a in live) > 1:
            out.append(
                Violation(
                    "no-live-duplicates",
                    _reporter(view, badge, uid),
                    uid,
                    f"badge class {badge} held {len(live)} times, unrevoked",
                )
            )
    return out


def no_unearned_awards(view: WorldView) -> list[Violation]:
    """Every award the sync made of a linked badge class goes to a student who met a rule
    naming that class, in some linked course, at some point. (A teacher may award by hand
    whatever they like.)

    Guards symptom 3 from the other side: an award to the wrong person (a mixed-up email,
    a student of another course) is as wrong as a missing one."""
    earned = {pair for course in view.courses for pair in course.ever_earned}
    out = []
    for (uid, badge), rows in sorted(_by_pair(view).items()):
        if (uid, badge) not in earned and not all(a.by_hand for a in rows):
            out.append(
                Violation(
                    "no-unearned-awards",
                    _reporter(view, badge, uid),
                    uid,
                    f"badge class {badge} awarded but never earned",
                )
            )
    return out


def members_match_enrollments(view: WorldView) -> list[Violation]:
    """The group holds exactly the course's active students, under their current email.

    Guards symptom 4 (enrollments not reflected in the group): membership taken once at
    link time, or from the first page of enrollments, misses everyone added later. A student
    whose email Canvas does not show cannot be added; one already in the group may stay."""
    out = []
    for course in view.courses:
        for uid, email in sorted(course.active_students.items()):
            held = course.members.get(uid)
            if email is not None and held is None:
                out.append(
                    Violation(
                        "members-match-enrollments",
                        course.course_id,
                        uid,
                        "active student missing from the group",
                    )
                )
            elif email is not None and held != email:
                out.append(
                    Violation(
                        "members-match-enrollments",
                        course.course_id,
                        uid,
                        f"group has email {held!r}, Canvas has {email!r}",
                    )
                )
        for uid in sorted(set(course.members) - set(course.active_students)):
            out.append(
                Violation(
                    "members-match-enrollments",
                    course.course_id,
                    uid,
                    "group member without an active enrollment",
                )
            )
    return out


def earned_implies_awarded(view: WorldView) -> list[Violation]:
    """Every student who meets a rule (active, or having completed the course) and has an
    email holds an assertion for its badge class.

    Guards symptom 3 ("Earned" but never "Awarded"): award errors that were logged and
    dropped, or checks that ran only on triggers, left earned badges unissued."""
    out = []
    for course in view.courses:
        held = _awards_by_user(view, course)
        for uid, badge in sorted(course.earned_now):
            if badge in view.unavailable:
                continue  # nothing can award it; the rest of the course must still sync
            if course.earning_students.get(uid) is not None and not held[(uid, badge)]:
                out.append(
                    Violation(
                        "earned-implies-awarded",
                        course.course_id,
                        uid,
                        f"badge class {badge} earned but not awarded",
                    )
                )
    return out


def expected_leaderboard(view: WorldView, course: CourseView) -> tuple[tuple[int, int], ...]:
    """Members ranked by the distinct badge classes they hold unrevoked, ties by user id.
    A class that cannot be read (archived, deleted) counts for nobody."""
    held: dict[int, set[str]] = {uid: set() for uid in course.members}
    for a in view.assertions:
        uid = view.owners.get(a.email)
        if (
            not a.revoked
            and uid in held
            and a.badge_class in course.badge_classes
            and a.badge_class not in view.unavailable
        ):
            held[uid].add(a.badge_class)
    return tuple(sorted(((uid, len(b)) for uid, b in held.items()), key=lambda e: (-e[1], e[0])))


def leaderboard_matches_awards(view: WorldView) -> list[Violation]:
    """The published leaderboard is the ranking derived from the assertions.

    Guards symptom 5 (the leaderboard stops updating): a leaderboard kept by increments
    drifts for good after one lost update."""
    out = []
    for course in view.courses:
        want = expected_leaderboard(view, course)
        if course.leaderboard != want:
            out.append(
                Violation(
                    "leaderboard-matches-awards",
                    course.course_id,
                    None,
                    f"published {course.leaderboard}, awards say {want}",
                )
            )
    return out


def course_freshness(view: WorldView, since: float, bound: float) -> list[Violation]:
    """With healthy servers, every linked course completes a sync within ``bound`` seconds
    of ``since`` (when the faults stopped).

    Guards symptoms 1 and 2 (courses that never sync, courses that stop syncing): a loop
    driven by the assignment list skips courses without assignments, and a course disabled
    after repeated errors never comes back."""
    return _synced_since(view, "course-freshness", since, bound)


def progress_under_load(view: WorldView, since: float, bound: float) -> list[Violation]:
    """With healthy servers, every linked course completes a sync within ``bound`` seconds
    of ``since``, where the bound is stated from the load (see
    :func:`simulators.harness.simulation.load_bound`): a wait already scheduled, a poll, and
    the time Canvas's throttle needs to admit one full round of every linked course at its
    outflow rate, plus the requests' own time. Unlike ``course-freshness`` it allows no
    round timeout, and it grows with the courses' size.

    Guards large courses that never finish a round under Canvas's own rate limit: a round
    that aborts on a throttle and starts again from the first page meets the throttle at
    the same place every time."""
    return _synced_since(view, "progress-under-load", since, bound)


def _synced_since(view: WorldView, name: str, since: float, bound: float) -> list[Violation]:
    out = []
    for course in view.courses:
        last = course.last_synced
        if last is None or last < since:
            when = "never" if last is None else f"last at t={last:.0f}"
            out.append(
                Violation(
                    name,
                    course.course_id,
                    None,
                    f"no completed sync within {bound:.0f}s of t={since:.0f} "
                    f"({when}; now t={view.now:.0f})",
                )
            )
    return out


QUIESCENCE: Mapping[str, Invariant] = {
    "members-match-enrollments": members_match_enrollments,
    "earned-implies-awarded": earned_implies_awarded,
    "leaderboard-matches-awards": leaderboard_matches_awards,
    "no-live-duplicates": no_live_duplicates,
}
SAFETY: Mapping[str, Invariant] = {
    "no-duplicate-awards": no_duplicate_awards,
    "no-unearned-awards": no_unearned_awards,
}


def update_now_repairs(view: WorldView, course_id: int) -> list[Violation]:
    """After one "update now" with healthy servers, the course has converged, but for the
    awards still in doubt: an award request that got no answer within the sync's settle
    window before may yet be stored, so no read can tell it is missing; those converge once
    the window has passed (the quiescence invariants judge them).

    Guards the vendor's only workaround: pressing "update now" on the group progress page
    must repair whatever state the course was left in."""
    doubts = {(view.owners.get(email), badge) for badge, email in view.awards_in_doubt}
    only = replace(
        view,
        courses=tuple(
            replace(c, earned_now=c.earned_now - doubts)
            for c in view.courses
            if c.course_id == course_id
        ),
    )
    return [
        Violation("update-now-repairs", v.course_id, v.user_id, f"{v.invariant}: {v.detail}")
        for check in QUIESCENCE.values()
        for v in check(only)
    ]


def check(view: WorldView, invariants: Mapping[str, Invariant]) -> list[Violation]:
    return [v for check in invariants.values() for v in check(view)]
