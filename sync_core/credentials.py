"""Credentials values the engine observes, and the parsing of Badgr v2 records into them.

"Awarded" means an assertion exists for the recipient's email, revoked or not: the engine
awards once, so a badge a teacher revoked by hand is not re-issued behind their back.
Groups, members and the leaderboard have no public API; their record shapes follow the
modelled ``recipient-groups`` endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sync_core.canvas import Malformed, shown
from sync_core.commands import LeaderboardEntry


@dataclass(frozen=True)
class Assertion:
    entity_id: str
    badge_class: str
    email: str
    revoked: bool


@dataclass(frozen=True)
class Member:
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
    if not isinstance(recipient, Mapping):
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
    )


def parse_member(record: object) -> Member:
    rec = _mapping(record)
    earned = rec.get("earned", [])
    if not isinstance(earned, list) or not all(isinstance(b, str) for b in earned):
        raise Malformed(f"'earned' must be a list of badge class ids, got {shown(earned)}")
    name = rec.get("name", "")
    return Member(
        user_id=_user_id(rec),
        email=_text(rec, "email").lower(),
        name=name if isinstance(name, str) else "",
        earned=tuple(sorted(earned)),
    )


def parse_leaderboard_entry(record: object) -> LeaderboardEntry:
    rec = _mapping(record)
    badges = rec.get("badges")
    if isinstance(badges, bool) or not isinstance(badges, int) or badges < 0:
        raise Malformed(f"'badges' must be a non-negative integer, got {shown(badges)}")
    return LeaderboardEntry(user_id=_user_id(rec), badges=badges)
