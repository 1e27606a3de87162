"""What the adapter tells the engine: frozen values, named in the past tense.

Time only ever enters the engine through :class:`Tick`, as seconds on whatever clock the
adapter keeps: wall time in production, virtual time in simulation. Responses refer to the
``request_id`` of the command they answer; a response to a request the engine no longer
waits for is ignored, which is safe because every round re-reads what it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sync_core.rules import AwardRule


@dataclass(frozen=True)
class Tick:
    """The clock moved to ``now``; due courses start a round, stuck rounds time out."""

    now: float


@dataclass(frozen=True)
class CourseLinked:
    """A Canvas course is mirrored into a Credentials group with these award rules."""

    course_id: int
    issuer_id: str
    group_id: str
    rules: tuple[AwardRule, ...]


@dataclass(frozen=True)
class UpdateNowRequested:
    """A teacher pressed "update now": run a full resync of this course at once."""

    course_id: int


@dataclass(frozen=True)
class PageReceived:
    """One page of a list. ``records`` are the JSON values exactly as the API sent them
    (possibly malformed); ``next_cursor`` is the opaque ``rel="next"`` link, if any."""

    request_id: int
    records: tuple[object, ...]
    next_cursor: str | None = None


@dataclass(frozen=True)
class WriteAcknowledged:
    """A write succeeded; ``record`` is the created or updated entity, if the API sent one."""

    request_id: int
    record: object = None


class Failure(Enum):
    """How a request failed, as far as the adapter can tell.

    AMBIGUOUS means the request may have committed (timeout, reset, lost response); the
    engine never re-issues an award after it without first reading the assertions again.
    REJECTED is a definite, permanent refusal of this one request (400/422): it is
    quarantined rather than retried. DUPLICATE is Credentials refusing an award because the
    recipient already holds a live one of the class (``allowDuplicateAwards: false``): the
    award is there, which is all the engine wanted.
    """

    TRANSIENT = "transient"
    THROTTLED = "throttled"
    AMBIGUOUS = "ambiguous"
    AUTH = "auth"
    NOT_FOUND = "not_found"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class RequestFailed:
    request_id: int
    failure: Failure
    retry_after: float | None = None
    detail: str = ""


Event = Tick | CourseLinked | UpdateNowRequested | PageReceived | WriteAcknowledged | RequestFailed
