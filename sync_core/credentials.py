"""Credentials values the engine observes, and the parsing of Badgr v2 records into them.

"Awarded" means an assertion exists for the recipient's email, revoked or not: the engine
awards once, so a badge a teacher revoked by hand is not re-issued behind their back.
Groups, members and the leaderboard have no public API; their record shapes follow the
modelled ``recipient-groups`` endpoints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from sync_core.canvas import Malformed, shown
from sync_core.commands import LeaderboardEntry


class Assertion(NamedTuple):
    """One assertion as read. An immutable named tuple rather than a frozen dataclass: a
    full round reads every assertion of the course, and a tuple builds several times faster."""

    entity_id: str
    badge_class: str
    email: str
    revoked: bool
    created_at: str = ""  # ISO 8601 as Badgr writes it, so it orders as text; "" if absent


class Member(NamedTuple):
    """A group member as read or wanted (a named tuple, as :class:`Assertion`)."""

    user_id: int
    email: str
    name: str
    earned: tuple[str, ...]


def _mapping(record: object) -> Mapping[str, object]:
    if type(record) is dict:  # what JSON decodes to: skips the slow ABC check (hot path)
        return record
    if not isinstance(record, Mapping):
        raise Malformed(f"expected a JSON object, got {type(record).__name__}")
    return record


def _text(record: Mapping[str, object], key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise Malformed(f"{key!r} must be a non-empty string, got {shown(value)}")
    return value


def _user_id(record: Mapping[str, object]) -> int:
    value = record.get("canvasUserId")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise Malformed(f"'canvasUserId' must be a positive integer, got {shown(value)}")
    return value


def parse_assertion(record: object) -> Assertion:
    """The recipient is read from ``plaintextIdentity`` (hashed identities) or ``identity``
    (unhashed), lowercased as Credentials stores it."""
    rec = _mapping(record)
    recipient = rec.get("recipient")
    if type(recipient) is not dict and not isinstance(recipient, Mapping):
        raise Malformed(f"'recipient' must be an object, got {shown(recipient)}")
    identity = recipient.get("plaintextIdentity")
    if not isinstance(identity, str):
        identity = recipient.get("identity")
    if not isinstance(identity, str) or identity.startswith("sha256$") or "@" not in identity:
        raise Malformed(f"assertion recipient has no readable email: {shown(recipient)}")
    return Assertion(
        entity_id=_text(rec, "entityId"),
        badge_class=_text(rec, "badgeclass"),
        email=identity.strip().lower(),
        revoked=rec.get("revoked") is True,
        created_at=_created(rec),
    )


def _created(record: Mapping[str, object]) -> str:
    created = record.get("createdAt")
    return created if isinstance(created, str) else ""


def parse_assertions(records: Iterable[object], into: list[Assertion]) -> list[str]:
    """:func:`parse_assertion` over a page, appending to ``into``, the common record (an
    object whose recipient shows a plain email) checked inline: a full round reads every
    assertion of the course. Returns the quarantine reasons."""
    reasons: list[str] = []
    for record in records:
        if type(record) is dict:
            recipient = record.get("recipient")
            entity_id = record.get("entityId")
            badge = record.get("badgeclass")
            if type(recipient) is dict and type(entity_id) is str and type(badge) is str:
                identity = recipient.get("plaintextIdentity")
                if type(identity) is not str:
                    identity = recipient.get("identity")
                if (
                    type(identity) is str
                    and entity_id
                    and badge
                    and "@" in identity
                    and not identity.startswith("sha256$")
                ):
                    revoked = record.get("revoked") is True
                    email = identity.strip().lower()
                    into.append(Assertion(entity_id, badge, email, revoked, _created(record)))
                    continue
        try:
            into.append(parse_assertion(record))
        except Malformed as exc:
            reasons.append(str(exc))
    return reasons


def parse_member(record: object) -> Member:
    rec = _mapping(record)
    earned = rec.get("earned", [])
    if not isinstance(earned, list) or not set(map(type, earned)) <= {str}:
        raise Malformed(f"'earned' must be a list of badge class ids, got {shown(earned)}")
    name = rec.get("name", "")
    return Member(
        user_id=_user_id(rec),
        # As stored, not lowercased: a member added by hand as "Ada@X.edu" differs from the
        # "ada@x.edu" the sync writes, and is written again.
        email=_text(rec, "email"),
        name=name if isinstance(name, str) else "",
        earned=tuple(sorted(earned)),
    )


def parse_leaderboard_entry(record: object) -> LeaderboardEntry:
    rec = _mapping(record)
    badges = rec.get("badges")
    if isinstance(badges, bool) or not isinstance(badges, int) or badges < 0:
        raise Malformed(f"'badges' must be a non-negative integer, got {shown(badges)}")
    return LeaderboardEntry(user_id=_user_id(rec), badges=badges)
