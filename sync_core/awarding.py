"""How an award is made: checked just before it is issued, issued once, settled when its
outcome is unknown, held when its badge class cannot be read, and revoked when the world made
it twice.

Credentials has no idempotency key, lags behind its own writes, and may store a write the
client gave up on minutes later; teachers award and revoke by hand; a badge class may be
shared by several courses, archived or deleted. The README ("Awards go through an outbox, and
are never made twice") states the design and the bounds it tolerates.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

from sync_core.commands import (
    Command,
    CredentialsList,
    FetchCredentialsPage,
    IssueAssertion,
    Params,
    RevokeAssertion,
)
from sync_core.credentials import Assertion
from sync_core.events import Failure
from sync_core.reading import Reading
from sync_core.reconcile import awarded_in
from sync_core.rounds import Pending, Round
from sync_core.state import AwardStatus, CourseState, OutboxEntry, award_key


class Awarding(Reading):
    """The award half of a round's writing (see the module docstring)."""

    def _take_in_assertions(self, course: CourseState, rnd: Round, out: list[Command]) -> None:
        """What this round's assertion reads show: every (user, badge class) holding one is
        awarded, and the unrevoked ones replace the cached holders of the classes read. A
        student holding a class twice, unrevoked, keeps the earliest award (see
        :meth:`_revoke_duplicates`)."""
        found, live = awarded_in(rnd.assertions, course.owners, rnd.read_badges)
        awarded, outbox = course.awarded, course.outbox
        for (uid, badge), entity_id in found.items():
            key = award_key(uid, badge)
            awarded[key] = entity_id
            entry = outbox.get(key)
            if entry is not None and entry.status is not AwardStatus.IN_FLIGHT:
                del outbox[key]
        self._revoke_duplicates(course, rnd, out)
        for badge, holders in live.items():
            if not rnd.full:  # a full round ranks everyone afresh
                for uid in course.live_awards.get(badge, set()) ^ holders:
                    self._rank_moves(course, rnd, uid)
            if holders:
                course.live_awards[badge] = holders
            else:
                course.live_awards.pop(badge, None)

    def _revoke_duplicates(self, course: CourseState, rnd: Round, out: list[Command]) -> None:
        """Past its stated bounds (a replica lagging, or a write landing, later than
        ``Policy.award_settle_window``) the world can make the sync award twice. A full
        round sees it: every unrevoked award of a student and class but the earliest is
        revoked, and reported in ``status()``. (A teacher's second award of a badge the
        student already holds is revoked too: Credentials keeps one live award each.)"""
        owners = course.owners
        held: dict[tuple[int, str], dict[str, Assertion]] = {}
        for a in rnd.assertions:  # by id: a page read twice shows one assertion twice
            uid = owners.get(a.email)
            if uid is not None and not a.revoked and a.badge_class in rnd.read_badges:
                held.setdefault((uid, a.badge_class), {})[a.entity_id] = a
        for (uid, badge), rows in sorted(held.items()):
            if len(rows) < 2:
                continue
            kept, *extra = sorted(rows.values(), key=lambda a: (a.created_at, a.entity_id))
            for a in extra:
                reason = f"duplicate of assertion {kept.entity_id} (user {uid}, class {badge})"
                rnd.note(f"assertions:{badge}", f"assertion {a.entity_id} revoked: {reason}")
                revoke = RevokeAssertion(self._take_id(), course.course_id, a.entity_id, reason)
                self._track(course, rnd, "revoke", a.entity_id, revoke, out)

    def _check(
        self, course: CourseState, rnd: Round, key: str, entry: OutboxEntry, out: list[Command]
    ) -> None:
        """Read the student's awards of the class just before issuing one (see
        :meth:`_checked`), unless the class cannot be read, another linked course is
        awarding the same student the same class, or an earlier attempt may still land."""
        badge = entry.badge_class
        if badge in course.unavailable:
            self._hold(entry, _unavailable(badge))
            return
        elsewhere = self._elsewhere(course, key)
        if elsewhere is not None:
            if elsewhere.status is None:  # another course has awarded it: so have we
                course.awarded[key] = elsewhere.entity_id
                del course.outbox[key]
            else:  # another course's award may land: settle that one first
                rnd.doubtful = True
            return
        if not self._settled(entry):
            self._doubt(rnd, entry)
            return
        entry.status = AwardStatus.CHECKING
        rnd.checked[key] = []
        emails = course.known_emails.get(entry.user_id, [])
        params: Params = (
            *(("recipient", email) for email in emails),
            ("include_revoked", "true"),
            ("include_expired", "true"),
        )
        self._read_credentials(
            course, rnd, CredentialsList.ASSERTIONS, badge, params, None, out, check=key
        )

    def _doubt(self, rnd: Round, entry: OutboxEntry) -> None:
        """Come back to settle this uncertain award once its settle window has passed."""
        rnd.doubtful = True
        assert entry.attempted_at is not None
        settle_at = entry.attempted_at + self.policy.award_settle_window
        rnd.wake_at = settle_at if rnd.wake_at is None else min(rnd.wake_at, settle_at)

    def _settled(self, entry: OutboxEntry) -> bool:
        """Whether a read starting now can tell an earlier attempt's absence: only once the
        settle window has passed since it (a replica may lag, a write may land late)."""
        return (
            entry.status is not AwardStatus.UNCERTAIN
            or entry.attempted_at is None
            or self.now >= entry.attempted_at + self.policy.award_settle_window
        )

    def _checked(self, course: CourseState, rnd: Round, key: str, out: list[Command]) -> None:
        """The student's awards of the class, read just now: one found (revoked or not, by
        the sync or by hand) means awarded; none means issue it, asking Credentials to
        refuse it if a live one appeared in the meantime."""
        entry = course.outbox.get(key)
        found = rnd.checked.pop(key)
        if entry is None:
            return
        emails = set(course.known_emails.get(entry.user_id, ()))
        mine = [a for a in found if a.badge_class == entry.badge_class and a.email in emails]
        if mine:
            first = min(mine, key=attrgetter("created_at"))
            self._awarded(course, rnd, key, first.entity_id, any(not a.revoked for a in mine))
            return
        self._issue(course, rnd, key, entry, out)

    def _issue(
        self, course: CourseState, rnd: Round, key: str, entry: OutboxEntry, out: list[Command]
    ) -> None:
        """POST the award to the student's email, lowercased as Credentials stores it: its
        duplicate check compares the address as sent (upstream-fidelity A12)."""
        email = rnd.students[entry.user_id].email
        assert email is not None
        entry.status, entry.attempted_at = AwardStatus.IN_FLIGHT, self.now
        award = IssueAssertion(
            self._take_id(), course.course_id, entry.badge_class, entry.user_id, email.lower()
        )
        self._track(course, rnd, "award", key, award, out)

    def _awarded(
        self, course: CourseState, rnd: Round, key: str, entity_id: str, live: bool
    ) -> None:
        entry = course.outbox.pop(key)
        course.awarded[key] = entity_id
        if live:
            course.live_awards.setdefault(entry.badge_class, set()).add(entry.user_id)
            self._rank_moves(course, rnd, entry.user_id)
            self._shared(course, entry.user_id, entry.badge_class)

    def _shared(self, course: CourseState, user_id: int, badge: str) -> None:
        """An award of a class other linked courses use counts on their leaderboards too:
        their cached views take it in, and a member's cached ranking is derived again (an
        incremental round reads no badge class, so it would not see the award otherwise)."""
        key = award_key(user_id, badge)
        for other in self._courses.values():
            if other is course or badge not in other.badge_classes:
                continue
            if key in other.outbox and other.outbox[key].status in _ANSWER_DUE:
                continue  # its own answer is due, and settles it
            other.awarded.setdefault(key, course.awarded.get(key, ""))
            other.outbox.pop(key, None)
            holders = other.live_awards.setdefault(badge, set())
            if user_id not in holders:
                holders.add(user_id)
                if user_id in other.members:
                    other.leaderboard = None

    def _elsewhere(self, course: CourseState, key: str) -> _Elsewhere | None:
        """What another linked course knows of this award (one student, one class): the
        engine awards a class shared by several courses once. Another course's award
        being checked or issued, or one that may still land, comes first (each course waits
        only for what will settle, so two never wait for each other)."""
        for other in self._courses.values():
            if other is course:
                continue
            if key in other.awarded:
                return _Elsewhere(None, other.awarded[key])
            entry = other.outbox.get(key)
            if entry is not None and (entry.status in _ANSWER_DUE or not self._settled(entry)):
                return _Elsewhere(entry.status, "")
        return None

    def _hold(self, entry: OutboxEntry, reason: str) -> None:
        entry.status, entry.reason = AwardStatus.BLOCKED, reason

    def _class_missing(self, course: CourseState, rnd: Round, badge: str) -> None:
        """A badge class answered 404 (archived, deleted, never created, or of an issuer
        the token cannot see): its awards are held with the reason, and it counts for
        nobody's ranking; the rest of the course syncs. A full round reads it again."""
        reason = _unavailable(badge)
        if badge not in rnd.missing:
            rnd.note(f"assertions:{badge}", reason)
        rnd.missing.add(badge)
        course.unavailable.add(badge)
        rnd.read_badges.discard(badge)
        for uid in course.live_awards.pop(badge, set()):
            self._rank_moves(course, rnd, uid)
        for entry in course.outbox.values():
            if entry.badge_class == badge and entry.status in (
                AwardStatus.PENDING,
                AwardStatus.CHECKING,
            ):
                self._hold(entry, reason)

    def _check_failed(
        self,
        course: CourseState,
        rnd: Round,
        pending: Pending,
        failure: Failure,
        retry: bool,
        out: list[Command],
    ) -> None:
        """A failed read of one student's awards blocks only that award: a 404 holds its
        class, anything else is retried and then left for a later round."""
        entry = course.outbox.get(pending.key)
        rnd.checked.pop(pending.key, None)
        if entry is None:
            return
        command = pending.command
        assert isinstance(command, FetchCredentialsPage) and command.badge_class is not None
        if failure is Failure.NOT_FOUND:
            _unchecked(entry)
            self._class_missing(course, rnd, command.badge_class)
        elif retry and command.cursor is None:
            rnd.checked[pending.key] = []
            self._retry(course, rnd, pending, out)
        else:
            _unchecked(entry)
            rnd.doubtful = True

    def _list_read(
        self, course: CourseState, rnd: Round, pending: Pending, out: list[Command]
    ) -> None:
        if pending.kind == "check":
            self._checked(course, rnd, pending.key, out)
        else:
            super()._list_read(course, rnd, pending, out)


_ANSWER_DUE = (AwardStatus.CHECKING, AwardStatus.IN_FLIGHT)
"""An award whose check or POST is on the wire: its own answer settles it."""


@dataclass(frozen=True)
class _Elsewhere:
    """Another linked course's knowledge of an award: awarded (``status`` None, with the
    assertion's id when known), or in doubt with that status."""

    status: AwardStatus | None
    entity_id: str


def _unchecked(entry: OutboxEntry) -> None:
    """A check that did not finish sent nothing that could commit: the entry is as before
    (uncertain if an earlier attempt may still land)."""
    entry.status = AwardStatus.PENDING if entry.attempted_at is None else AwardStatus.UNCERTAIN


def _unavailable(badge: str) -> str:
    return (
        f"badge class {badge} not found (archived, deleted, misnamed in the links, or of an "
        "issuer the token cannot see): its awards are held"
    )


def _is_class_read(command: Command) -> bool:
    return (
        isinstance(command, FetchCredentialsPage) and command.resource is CredentialsList.ASSERTIONS
    )
