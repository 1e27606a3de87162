"""credsync's sync core: a pure, sans-IO reconciler between Canvas and Canvas Credentials.

Feed :class:`SyncEngine` events, execute the commands it returns, answer each command with
one response event, and persist :meth:`SyncEngine.to_json` between calls. Nothing here does
I/O, reads a clock or draws a random number; an import-linter contract keeps it that way.
"""

from sync_core.commands import (
    CanvasList,
    Command,
    CredentialsList,
    FetchCanvasPage,
    FetchCredentialsPage,
    IssueAssertion,
    LeaderboardEntry,
    PublishLeaderboard,
    RemoveMember,
    RevokeAssertion,
    UpsertMember,
)
from sync_core.engine import CourseStatus, Phase, SyncEngine
from sync_core.events import (
    CourseLinked,
    Event,
    Failure,
    PageReceived,
    RequestFailed,
    Tick,
    UpdateNowRequested,
    WriteAcknowledged,
)
from sync_core.rules import (
    AssignmentScore,
    AwardRule,
    CourseCompleted,
    CourseGrade,
    ModuleCompleted,
    QuizScore,
)
from sync_core.schedule import Policy
from sync_core.state import Quarantined, StateError

__all__ = [
    "AssignmentScore",
    "AwardRule",
    "CanvasList",
    "Command",
    "CourseCompleted",
    "CourseGrade",
    "CourseLinked",
    "CourseStatus",
    "CredentialsList",
    "Event",
    "Failure",
    "FetchCanvasPage",
    "FetchCredentialsPage",
    "IssueAssertion",
    "LeaderboardEntry",
    "ModuleCompleted",
    "PageReceived",
    "Phase",
    "Policy",
    "PublishLeaderboard",
    "Quarantined",
    "QuizScore",
    "RemoveMember",
    "RequestFailed",
    "RevokeAssertion",
    "StateError",
    "SyncEngine",
    "Tick",
    "UpdateNowRequested",
    "UpsertMember",
    "WriteAcknowledged",
]
