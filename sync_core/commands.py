"""What the engine asks the adapter to do: frozen values, named in the imperative.

Each command carries a ``request_id``; the adapter answers it with exactly one
:class:`~sync_core.events.PageReceived`, :class:`~sync_core.events.WriteAcknowledged` or
:class:`~sync_core.events.RequestFailed`. Commands name the API call precisely (resource,
path ids, query parameters), so every adapter builds the same request.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

Params = tuple[tuple[str, str], ...]


class CanvasList(Enum):
    """Canvas REST v1 lists, by path under ``/api/v1/courses/{course_id}/``."""

    ENROLLMENTS = "enrollments"
    USERS = "users"
    ASSIGNMENTS = "assignments"
    QUIZZES = "quizzes"
    SUBMISSIONS = "students/submissions"
    MODULES = "modules"


class CredentialsList(Enum):
    """Credentials lists.

    ASSERTIONS is Badgr v2 ``GET /v2/badgeclasses/{badge_class}/assertions``. MEMBERS and
    LEADERBOARD have no public API; they are modelled as
    ``GET /v2/issuers/{issuer_id}/recipient-groups/{group_id}/members`` and ``.../leaderboard``.
    """

    MEMBERS = "members"
    ASSERTIONS = "assertions"
    LEADERBOARD = "leaderboard"


@dataclass(frozen=True)
class FetchCanvasPage:
    """GET ``/api/v1/courses/{course_id}/{resource}`` with ``params``, or the opaque
    ``cursor`` (the previous page's ``rel="next"`` URL) when it is set."""

    request_id: int
    course_id: int
    resource: CanvasList
    params: Params
    cursor: str | None = None


@dataclass(frozen=True)
class FetchCredentialsPage:
    """GET a Credentials list (see :class:`CredentialsList`) with ``params`` or ``cursor``."""

    request_id: int
    course_id: int
    resource: CredentialsList
    issuer_id: str
    group_id: str
    badge_class: str | None
    params: Params
    cursor: str | None = None


@dataclass(frozen=True)
class IssueAssertion:
    """POST ``/v2/badgeclasses/{badge_class}/assertions`` to the recipient's email, with
    ``allowDuplicateAwards: false`` unless ``allow_duplicates``.

    Credentials has no idempotency key, so the engine issues this at most once per
    outbox entry until a fresh read of the assertions shows the award is missing; and it
    asks Credentials to refuse the award if a live one is already there (a check Badgr makes
    before storing, so it is no substitute for reading first).
    """

    request_id: int
    course_id: int
    badge_class: str
    user_id: int
    email: str
    allow_duplicates: bool = False


@dataclass(frozen=True)
class RevokeAssertion:
    """DELETE ``/v2/assertions/{assertion_id}`` with a revocation reason: the engine revokes
    only an award that duplicates an earlier live one of the same student and class."""

    request_id: int
    course_id: int
    assertion_id: str
    reason: str


@dataclass(frozen=True)
class UpsertMember:
    """PUT ``/v2/issuers/{issuer_id}/recipient-groups/{group_id}/members/{user_id}`` with the
    member's email, name and earned badge classes (the group's progress view)."""

    request_id: int
    course_id: int
    issuer_id: str
    group_id: str
    user_id: int
    email: str
    name: str
    earned: tuple[str, ...]


@dataclass(frozen=True)
class RemoveMember:
    """DELETE ``.../recipient-groups/{group_id}/members/{user_id}``."""

    request_id: int
    course_id: int
    issuer_id: str
    group_id: str
    user_id: int


@dataclass(frozen=True)
class LeaderboardEntry:
    user_id: int
    badges: int


@dataclass(frozen=True)
class PublishLeaderboard:
    """PUT ``.../recipient-groups/{group_id}/leaderboard`` with the full ranking, derived
    from the assertions this round; never an increment."""

    request_id: int
    course_id: int
    issuer_id: str
    group_id: str
    entries: tuple[LeaderboardEntry, ...]


Command = (
    FetchCanvasPage
    | FetchCredentialsPage
    | IssueAssertion
    | RevokeAssertion
    | UpsertMember
    | RemoveMember
    | PublishLeaderboard
)
