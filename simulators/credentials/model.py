"""The simulated Canvas Credentials (Badgr): issuers, badge classes, assertions, groups.

Its defining trait for the sync is what it does *not* do: no idempotency key and no
uniqueness, so a retried award is a second assertion. Recipient emails are lowercased on
create, which is why the sync must compare emails lowercased.

It also behaves as a deployment does, not as an ideal store (``upstream-fidelity.md`` B):

- **Late commits.** Inside :meth:`Credentials.late`, writes are accepted but stored only
  ``delay`` seconds later (:meth:`Credentials.commit_due`), as when a client gave up on a
  request the server was still working on.
- **Replica lag.** Badgr serves lists through caches: :meth:`Credentials.as_of` is the
  store as a read that lags to an earlier moment sees it, built from the history every
  write keeps (commit and revocation times, each group's membership and leaderboard log).
- **Badge classes come and go**: archived (every route under it answers 404 until it is
  restored) or deleted (only once no award is live, taking its assertions with it).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit, urlunsplit

from simulators.clock import VirtualClock


def entity_id(kind: str, serial: int) -> str:
    """Badgr's 22-character URL-safe base64 id, from a counter instead of a uuid4 so that
    runs are reproducible."""
    digest = hashlib.sha256(f"{kind}:{serial}".encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass
class Issuer:
    entity_id: str
    name: str
    email: str
    created_at: float


@dataclass
class BadgeClass:
    entity_id: str
    issuer_id: str
    name: str
    created_at: float
    archived: bool = False  # every route under it answers 404 until restored


@dataclass
class Assertion:
    entity_id: str
    badge_class: str
    issuer_id: str
    identity: str
    recipient_type: str
    salt: str
    issued_on: float
    created_at: float
    seq: int
    narrative: str | None = None
    revoked: bool = False
    revocation_reason: str | None = None
    expires: float | None = None
    # Ground truth the invariants judge by, never shown by the API: whether a person made it
    # in the Credentials UI (not a client of the API), when the request that made it arrived
    # (its duplicate check ran then; ``created_at`` is when it was stored), and when it was
    # revoked.
    by_hand: bool = False
    requested_at: float = 0.0
    revoked_at: float | None = None
    # The store's serial when the request arrived: what was stored by then had a lower seq
    # (the virtual clock does not move within a round, so times alone cannot order them).
    requested_serial: int = 0

    def expired(self, now: float) -> bool:
        return self.expires is not None and self.expires <= now


@dataclass
class Member:
    canvas_user_id: int
    email: str
    name: str
    earned: tuple[str, ...]
    created_at: float
    seq: int


@dataclass(frozen=True)
class LeaderboardRow:
    canvas_user_id: int
    badges: int
    rank: int


@dataclass
class Group:
    """One group per linked Canvas course: the members' progress view and leaderboard."""

    entity_id: str
    issuer_id: str
    course_id: int
    name: str
    created_at: float
    members: dict[int, Member] = field(default_factory=dict)
    leaderboard: list[LeaderboardRow] = field(default_factory=list)
    # (time, user, member or None when removed) and (time, ranking): what a lagging read sees
    member_log: list[tuple[float, int, Member | None]] = field(default_factory=list)
    board_log: list[tuple[float, list[LeaderboardRow]]] = field(default_factory=list)


class Credentials:
    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.issuers: dict[str, Issuer] = {}
        self.badge_classes: dict[str, BadgeClass] = {}
        self.assertions: dict[str, Assertion] = {}
        self.groups: dict[str, Group] = {}
        self._by_badge_class: dict[str, list[Assertion]] = {}
        self._serial = 0
        # Writes accepted but not stored yet: (due time, order, store it). See late().
        self.pending: list[tuple[float, int, Callable[[float], None]]] = []
        self._late_until: float | None = None
        self._late_serial = 0

    def _next(self, kind: str) -> tuple[str, int]:
        self._serial += 1
        return entity_id(kind, self._serial), self._serial

    def create_issuer(self, name: str, email: str) -> str:
        issuer_id, _ = self._next("issuer")
        self.issuers[issuer_id] = Issuer(issuer_id, name, email, self.clock.now)
        return issuer_id

    def create_badge_class(self, issuer_id: str, name: str, badge_id: str | None = None) -> str:
        """``badge_id`` lets a test name a badge class after the rule that awards it."""
        if issuer_id not in self.issuers:
            raise KeyError(f"unknown issuer {issuer_id}")
        generated, _ = self._next("badgeclass")
        badge_id = badge_id or generated
        if badge_id in self.badge_classes:
            raise ValueError(f"badge class {badge_id} already exists")
        self.badge_classes[badge_id] = BadgeClass(badge_id, issuer_id, name, self.clock.now)
        self._by_badge_class[badge_id] = []
        return badge_id

    def award(
        self,
        badge_class: str,
        identity: str,
        recipient_type: str = "email",
        narrative: str | None = None,
        by_hand: bool = False,
    ) -> Assertion:
        """Always a new assertion, even for a recipient who already holds this badge. Inside
        :meth:`late`, it is returned at once but stored (and numbered in the stored order)
        only when it commits."""
        badge = self.badge_classes[badge_class]
        now = self.clock.now
        assertion = Assertion(
            entity_id="",
            badge_class=badge_class,
            issuer_id=badge.issuer_id,
            identity=normalise_identity(identity, recipient_type),
            recipient_type=recipient_type,
            salt="",
            issued_on=now,
            created_at=now,
            seq=0,
            narrative=narrative,
            by_hand=by_hand,
            requested_at=now,
            requested_serial=self._serial,
        )

        def store(at: float) -> None:
            if badge_class not in self.badge_classes:
                return  # deleted before the write landed: nothing to attach it to
            assertion.entity_id, serial = self._next("assertion")
            assertion.salt = hashlib.sha256(f"salt:{serial}".encode()).hexdigest()[:32]
            assertion.seq, assertion.created_at, assertion.issued_on = serial, at, at
            self.assertions[assertion.entity_id] = assertion
            self._by_badge_class[badge_class].append(assertion)

        self._commit(store)
        return assertion

    def revoke(self, assertion_id: str, reason: str) -> Assertion:
        assertion = self.assertions[assertion_id]
        if assertion.revoked:
            raise ValueError("Assertion is already revoked")

        def store(at: float) -> None:
            if not assertion.revoked:
                assertion.revoked, assertion.revocation_reason = True, reason
                assertion.revoked_at = at

        self._commit(store)
        return replace(assertion, revoked=True, revocation_reason=reason)

    # ------------------------------------------------------------------ late commits

    @contextmanager
    def late(self, delay: float) -> Iterator[None]:
        """Writes made inside are accepted now and stored ``delay`` seconds later: the
        client gave up (a timeout, a reset, a crash) while the server was still at work."""
        self._late_until = self.clock.now + delay
        try:
            yield
        finally:
            self._late_until = None

    def _commit(self, store: Callable[[float], None]) -> None:
        if self._late_until is None:
            store(self.clock.now)
        else:
            self._late_serial += 1
            self.pending.append((self._late_until, self._late_serial, store))

    def commit_due(self) -> None:
        """Store every accepted write whose time has come, in the order they fall due, each
        stamped with the moment it was due."""
        now = self.clock.now
        if not any(at <= now for at, _, _ in self.pending):
            return  # the common case, asked before every request: nothing sorted
        due = sorted(p for p in self.pending if p[0] <= self.clock.now)
        self.pending = [p for p in self.pending if p[0] > self.clock.now]
        for at, _, store in due:
            store(at)

    def commit_all(self) -> None:
        """Store every accepted write now: the world heals, nothing stays in flight."""
        for _, _, store in sorted(self.pending):
            store(self.clock.now)
        self.pending = []

    # ------------------------------------------------------------------ badge classes

    def archive_badge_class(self, badge_class: str, archived: bool = True) -> None:
        self.badge_classes[badge_class].archived = archived

    def delete_badge_class(self, badge_class: str) -> None:
        """Badgr refuses while an award is live (a ProtectedError); otherwise the class and
        its assertions go."""
        now = self.clock.now
        if any(not a.revoked and not a.expired(now) for a in self.assertions_for(badge_class)):
            raise ValueError(f"badge class {badge_class} has live awards: revoke them first")
        for a in self._by_badge_class.pop(badge_class, []):
            del self.assertions[a.entity_id]
        del self.badge_classes[badge_class]

    def available(self, badge_class: str) -> bool:
        """Whether the class exists and is not archived: whether it can be read or awarded."""
        badge = self.badge_classes.get(badge_class)
        return badge is not None and not badge.archived

    # ------------------------------------------------------------------ replica lag

    def as_of(self, moment: float) -> Credentials:
        """The store as a read lagging back to ``moment`` sees it: what was stored by then,
        revoked if revoked by then; each group's members and leaderboard as they stood.
        Issuers and badge classes are current (their reads are not what lags here)."""
        snap = Credentials(self.clock)
        snap.issuers, snap.badge_classes = self.issuers, self.badge_classes
        for badge_class, rows in self._by_badge_class.items():
            kept = []
            for a in rows:
                if a.created_at > moment:
                    continue
                if a.revoked and (a.revoked_at is None or a.revoked_at > moment):
                    a = replace(a, revoked=False, revocation_reason=None)
                kept.append(a)
                snap.assertions[a.entity_id] = a
            snap._by_badge_class[badge_class] = kept
        for group_id, group in self.groups.items():
            members: dict[int, Member] = {}
            for at, user_id, member in group.member_log:
                if at > moment:
                    break
                if member is None:
                    members.pop(user_id, None)
                else:
                    members[user_id] = member
            board = [rows for at, rows in group.board_log if at <= moment]
            snap.groups[group_id] = replace(
                group, members=members, leaderboard=board[-1] if board else []
            )
        return snap

    def assertions_for(self, badge_class: str) -> list[Assertion]:
        """Every assertion of the class, revoked ones included, oldest first."""
        return self._by_badge_class.get(badge_class, [])

    def create_group(self, issuer_id: str, course_id: int, name: str) -> str:
        if issuer_id not in self.issuers:
            raise KeyError(f"unknown issuer {issuer_id}")
        group_id, _ = self._next("group")
        self.groups[group_id] = Group(group_id, issuer_id, course_id, name, self.clock.now)
        return group_id

    def upsert_member(
        self, group_id: str, canvas_user_id: int, email: str, name: str, earned: Sequence[str]
    ) -> tuple[Member, bool]:
        """Create or replace a member; returns (member, created). An update keeps the
        member's place in the -createdAt order, so paging readers are not disturbed."""
        group = self.groups[group_id]
        old = group.members.get(canvas_user_id)
        if old is None:
            _, serial = self._next("member")
            created_at = self.clock.now
        else:
            serial, created_at = old.seq, old.created_at
        member = Member(canvas_user_id, email, name, tuple(earned), created_at, serial)

        def store(at: float) -> None:
            group.members[canvas_user_id] = member
            group.member_log.append((at, canvas_user_id, member))

        self._commit(store)
        return member, old is None

    def remove_member(self, group_id: str, canvas_user_id: int) -> bool:
        group = self.groups[group_id]
        if canvas_user_id not in group.members:
            return False

        def store(at: float) -> None:
            if group.members.pop(canvas_user_id, None) is not None:
                group.member_log.append((at, canvas_user_id, None))

        self._commit(store)
        return True

    def publish_leaderboard(
        self, group_id: str, entries: Sequence[tuple[int, int]]
    ) -> list[LeaderboardRow]:
        """Replace the ranking; ties share a rank ("1224" competition ranking)."""
        ordered = sorted(entries, key=lambda e: (-e[1], e[0]))
        rows: list[LeaderboardRow] = []
        for position, (user_id, badges) in enumerate(ordered, start=1):
            tied = bool(rows) and rows[-1].badges == badges
            rows.append(LeaderboardRow(user_id, badges, rows[-1].rank if tied else position))
        group = self.groups[group_id]

        def store(at: float) -> None:
            group.leaderboard = rows
            group.board_log.append((at, rows))

        self._commit(store)
        return rows


def normalise_identity(identity: str, recipient_type: str) -> str:
    """Badgr lowercases email identities, and the host of URL identities."""
    if recipient_type == "email":
        return identity.lower()
    if recipient_type == "url":
        try:
            parts = urlsplit(identity)
        except ValueError:  # not a URL at all: stored as given, like an unparsable host
            return identity
        return urlunsplit(parts._replace(netloc=parts.netloc.lower()))
    return identity
