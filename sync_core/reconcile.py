"""Desired state from Canvas, diffed against what Credentials shows: pure functions.

These are the level-triggered heart of the engine. Each takes the whole picture of one
course (never a delta), so running them again after any failure, crash or missed event
computes the same answer, and a repeated round repairs whatever an earlier one missed.
"""

from __future__ import annotations

from bisect import insort
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import chain

from sync_core.canvas import CourseSnapshot
from sync_core.commands import LeaderboardEntry
from sync_core.credentials import Assertion, Member
from sync_core.rules import AwardRule, earned_by


def earned(rules: Iterable[AwardRule], snapshot: CourseSnapshot) -> dict[int, frozenset[str]]:
    """Badge classes each student has earned now (every student gets an entry)."""
    per_user: dict[int, set[str]] = {uid: set() for uid in snapshot.students}
    for rule in rules:
        for uid in earned_by(rule, snapshot):
            per_user[uid].add(rule.badge_class)
    return {uid: frozenset(badges) for uid, badges in per_user.items()}


@dataclass(frozen=True)
class MemberPlan:
    upserts: tuple[Member, ...]
    removals: tuple[int, ...]
    # Students whose email this round did not show: left as they are, awards held.
    unreachable: tuple[int, ...]


def plan_members(
    snapshot: CourseSnapshot,
    earned_now: Mapping[int, frozenset[str]],
    observed: Mapping[int, Member],
) -> MemberPlan:
    """Members are exactly the students with an active enrollment and a known email.

    A student whose email is unknown this round is neither added nor removed: removing on
    missing data is how a flaky read turns into a lost membership.
    """
    upserts = []
    unreachable = []
    active = {uid: s for uid, s in snapshot.students.items() if s.active}
    for uid, student in sorted(active.items()):
        if student.email is None:
            unreachable.append(uid)
            continue
        want = Member(uid, student.email, student.name, tuple(sorted(earned_now[uid])))
        if observed.get(uid) != want:
            upserts.append(want)
    removals = tuple(uid for uid in sorted(observed) if uid not in active)
    return MemberPlan(tuple(upserts), removals, tuple(unreachable))


def owners_by_email(known_emails: Mapping[int, Iterable[str]]) -> dict[str, int]:
    """Reverse index: every email a user has ever had points back to that user, so an
    award to an old address still counts as that user's award after an email change."""
    return {email: uid for uid, emails in sorted(known_emails.items()) for email in emails}


def awarded_in(
    assertions: Iterable[Assertion], owners: Mapping[str, int], badge_classes: Iterable[str]
) -> tuple[dict[tuple[int, str], str], dict[str, set[int]]]:
    """What assertions of ``badge_classes`` show, in one pass: (user, badge class) ->
    entityId of the first assertion, revoked ones included (the engine awards once, and a
    revocation is a person's decision it must not undo); and per badge class the users
    holding it unrevoked (what the leaderboard counts)."""
    live: dict[str, set[int]] = {badge: set() for badge in badge_classes}
    found: dict[tuple[int, str], str] = {}
    for a in assertions:
        uid = owners.get(a.email)
        holders = live.get(a.badge_class)
        if uid is None or holders is None:
            continue
        if not a.revoked:
            holders.add(uid)
        found.setdefault((uid, a.badge_class), a.entity_id)
    return found, live


def leaderboard(
    members: Iterable[int],
    holders: Mapping[str, Iterable[int]],
    previous: Iterable[LeaderboardEntry] = (),
) -> tuple[LeaderboardEntry, ...]:
    """Rank members by how many distinct badge classes they hold (unrevoked), derived
    afresh from the awards (``holders``: badge class -> the users holding it); ties by user
    id for a stable order. Entries of ``previous`` that still hold are reused, so an
    unchanged ranking compares equal to it by identity, without a field-by-field walk."""
    tally = Counter(chain.from_iterable(set(users) for users in holders.values()))
    kept = {e.user_id: e for e in previous}
    ranked = sorted(((uid, tally.get(uid, 0)) for uid in members), key=_rank)
    entries = []
    for uid, n in ranked:
        old = kept.get(uid)
        entries.append(old if old is not None and old.badges == n else LeaderboardEntry(uid, n))
    return tuple(entries)


def rerank(
    board: Iterable[LeaderboardEntry], moved: Mapping[int, int | None]
) -> tuple[LeaderboardEntry, ...]:
    """``board`` (ranked as :func:`leaderboard` ranks) with the users in ``moved`` at their
    new badge count, ``None`` for one no longer ranked: what :func:`leaderboard` gives after
    only those users' awards or memberships changed, without ranking everyone again."""
    entries = [e for e in board if e.user_id not in moved]
    for uid, n in sorted(moved.items()):
        if n is not None:
            insort(entries, LeaderboardEntry(uid, n), key=_entry_rank)
    return tuple(entries)


def _rank(item: tuple[int, int]) -> tuple[int, int]:
    return -item[1], item[0]


def _entry_rank(entry: LeaderboardEntry) -> tuple[int, int]:
    return -entry.badges, entry.user_id
