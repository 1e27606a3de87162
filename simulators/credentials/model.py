"""The simulated Canvas Credentials (Badgr): issuers, badge classes, assertions, groups.

Its defining trait for the sync is what it does *not* do: no idempotency key and no
uniqueness, so a retried award is a second assertion. Recipient emails are lowercased on
create, which is why the sync must compare emails lowercased.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
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


class Credentials:
    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.issuers: dict[str, Issuer] = {}
        self.badge_classes: dict[str, BadgeClass] = {}
        self.assertions: dict[str, Assertion] = {}
        self.groups: dict[str, Group] = {}
        self._by_badge_class: dict[str, list[Assertion]] = {}
        self._serial = 0

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
    ) -> Assertion:
        """Always a new assertion, even for a recipient who already holds this badge."""
        badge = self.badge_classes[badge_class]
        assertion_id, serial = self._next("assertion")
        now = self.clock.now
        assertion = Assertion(
            entity_id=assertion_id,
            badge_class=badge_class,
            issuer_id=badge.issuer_id,
            identity=normalise_identity(identity, recipient_type),
            recipient_type=recipient_type,
            salt=hashlib.sha256(f"salt:{serial}".encode()).hexdigest()[:32],
            issued_on=now,
            created_at=now,
            seq=serial,
            narrative=narrative,
        )
        self.assertions[assertion_id] = assertion
        self._by_badge_class[badge_class].append(assertion)
        return assertion

    def revoke(self, assertion_id: str, reason: str) -> Assertion:
        assertion = self.assertions[assertion_id]
        if assertion.revoked:
            raise ValueError("Assertion is already revoked")
        assertion.revoked = True
        assertion.revocation_reason = reason
        return assertion

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
        group.members[canvas_user_id] = member
        return member, old is None

    def remove_member(self, group_id: str, canvas_user_id: int) -> bool:
        return self.groups[group_id].members.pop(canvas_user_id, None) is not None

    def publish_leaderboard(
        self, group_id: str, entries: Sequence[tuple[int, int]]
    ) -> list[LeaderboardRow]:
        """Replace the ranking; ties share a rank ("1224" competition ranking)."""
        ordered = sorted(entries, key=lambda e: (-e[1], e[0]))
        rows: list[LeaderboardRow] = []
        for position, (user_id, badges) in enumerate(ordered, start=1):
            tied = bool(rows) and rows[-1].badges == badges
            rows.append(LeaderboardRow(user_id, badges, rows[-1].rank if tied else position))
        self.groups[group_id].leaderboard = rows
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
