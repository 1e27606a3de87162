"""Malformed Canvas and Credentials payloads never make the engine raise (issue 5).

Hypothesis builds one course round of *valid* records of every kind the engine reads (every
``CanvasList`` and ``CredentialsList``), then corrupts a random subset of them. Each
corruption says what the engine must make of it:

``Outcome.QUARANTINE``
    The record cannot be used (a required field dropped, a wrong type, a non-finite or
    out-of-range number, a non-object record, a non-list page). It must be quarantined
    under its list's name, and the round must act exactly as if the record had not been
    sent at all, with one exception: a quarantined enrollment row holds every member
    removal of the round (the student it named may still be enrolled).
``Outcome.SAME``
    The record means the same as the original (an email in another case, unknown extra
    fields, an unknown ``workflow_state`` the engine does not read, an exact repeat of a
    record or a page). The round must act exactly as on the original alone. An unknown
    enrollment state or type is not one of these: it is quarantined.
``Outcome.AS``
    The record is usable and means what a given valid record means: a dropped optional
    field, a null or absent score, a huge but finite number, a cosmetic field of the wrong
    type (ignored).

The differential check compares the writes (members upserted and removed, awards issued,
leaderboard entries) of the corrupted round with a clean run over the canonical records.
A *conflicting* duplicate (one id, two different valid records) is ambiguous: nobody can
say which is right, so it taints the students it names (every student, for a course-level
record) and only the untainted students' writes are compared. A pagination loop ends the
round by design, so then no write may go out at all.

Quarantine is checked by count per list name (``Quarantined.resource``): the corrupted round
must hold the clean run's entries (a student absent from the users list, say) plus one per
unusable record, each with a short, non-empty reason. Case-variant emails of one person never
made two members: members are keyed by Canvas user id and every email is lowercased as
Credentials does; the property keeps it so (one upsert per user, lowercased emails).
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sync_core import (
    AssignmentScore,
    CanvasList,
    Command,
    CourseCompleted,
    CourseGrade,
    CourseLinked,
    CredentialsList,
    FetchCanvasPage,
    FetchCredentialsPage,
    IssueAssertion,
    ModuleCompleted,
    PageReceived,
    PublishLeaderboard,
    QuizScore,
    RemoveMember,
    SyncEngine,
    Tick,
    UpsertMember,
    WriteAcknowledged,
    canvas,
)
from sync_core import engine as engine_module
from sync_core.events import Event
from sync_core.rounds import Round as EngineRound
from tests.test_engine import T0, drive

COURSE = 101
RULES = (
    AssignmentScore("B-ASSIGN", 7001, min_percent=80),
    QuizScore("B-QUIZ", 501, min_percent=70),
    QuizScore("B-NEWQUIZ", 7003, min_percent=70, new_quizzes=True),
    CourseGrade("B-GRADE", 75.0),
    ModuleCompleted("B-MODULE", 401),
    CourseCompleted("B-DONE"),
)
BADGES = sorted({rule.badge_class for rule in RULES})
ALL = -1  # a taint that names every student: a course-level record was ambiguous
# The observed leaderboard always lists a user who is no member, so both runs publish one
# and their entries can be compared; corruptions never touch this entry.
STALE_ENTRY = {"canvasUserId": 999_999, "badges": 1}

# One address per person, told apart by Credentials' own rule (lowercasing): lookalikes
# (Cyrillic a), combining marks and their precomposed twins are different people.
EMAILS = (
    "Ada@X.edu",
    "\u0430da@x.edu",
    "jos\u00e9@x.edu",
    "jose\u0301@x.edu",
    "stra\u00dfe@x.edu",
    "\u0130lker@x.edu",
    "bo@x.edu",
    "\u00c5sa@\u00e9cole.fr",
)

ListKey = tuple[CanvasList | CredentialsList, object]  # (list, student id or badge class)


class Outcome(Enum):
    """What the engine must make of a corrupted record (see the module docstring)."""

    QUARANTINE = "quarantine"
    SAME = "same"
    AS = "as"


@dataclass(frozen=True)
class Entry:
    """Records served in place of one valid record, and what a clean run sees instead."""

    served: tuple[object, ...]
    clean: tuple[object, ...]
    quarantined: int = 0
    taint: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Round:
    """One round as the fakes serve it (``pages``) and as a clean run sees it (``clean``)."""

    pages: dict[ListKey, list[list[Entry]]]
    loop: ListKey | None = None
    ack: object = None  # the body of every award's acknowledgement

    def clean(self) -> dict[ListKey, list[list[Entry]]]:
        return {
            key: [[Entry(e.clean, e.clean) for page in pages for e in page]]
            for key, pages in self.pages.items()
        }

    def quarantined(self, read: set[str]) -> Counter[str]:
        """Records expected in quarantine, in the lists that were ``read``."""
        return Counter(
            {
                resource_name(key): sum(e.quarantined for page in pages for e in page)
                for key, pages in self.pages.items()
                if resource_name(key) in read
            }
        )

    def taint(self) -> set[int]:
        return {uid for pages in self.pages.values() for p in pages for e in p for uid in e.taint}


def resource_name(key: ListKey) -> str:
    """The name the engine files a list's quarantined records under."""
    resource, detail = key
    if resource is CanvasList.MODULES:
        return f"modules:{detail}"
    if resource is CredentialsList.ASSERTIONS:
        return f"assertions:{detail}"
    return resource.value


# -- valid records ---------------------------------------------------------------------------


def iso(hours: int) -> str:
    return f"2025-08-{1 + hours // 24:02d}T{hours % 24:02d}:00:00Z"


UIDS = st.lists(st.integers(1, 40), min_size=1, max_size=4, unique=True)
ENROLLMENT_STATE = st.sampled_from(["active", "completed"])
GRADE = st.none() | st.floats(0, 100, allow_nan=False)
SCORE = st.none() | st.integers(0, 20) | st.floats(0, 20, allow_nan=False)
EXCUSED = st.sampled_from([None, False, True])
HOURS = st.integers(0, 200)
MODULE_STATE = st.sampled_from(["completed", "started", "locked", None])
EARNED = st.sets(st.sampled_from(BADGES), max_size=2)
SHUFFLED_EMAILS = st.permutations(EMAILS)


@st.composite
def valid_records(draw: st.DrawFn) -> dict[ListKey, list[tuple[dict[str, Any], int | None]]]:
    """A course's records, each with the student it belongs to (``None``: course-level)."""
    uids = draw(UIDS)
    emails = draw(SHUFFLED_EMAILS)[: len(uids)]
    out: dict[ListKey, list[tuple[dict[str, Any], int | None]]] = {
        (CanvasList.ASSIGNMENTS, None): [
            ({"id": 7001, "points_possible": 10, "submission_types": ["online_upload"]}, None),
            (
                {
                    "id": 7002,
                    "points_possible": 5,
                    "quiz_id": 501,
                    "submission_types": ["online_quiz"],
                },
                None,
            ),
            (
                {
                    "id": 7003,
                    "points_possible": 20.0,
                    "submission_types": ["external_tool"],
                    "is_quiz_lti_assignment": True,
                },
                None,
            ),
        ],
        (CanvasList.QUIZZES, None): [
            ({"id": 501, "assignment_id": 7002}, None),
            ({"id": 502, "assignment_id": None}, None),  # a practice quiz
        ],
    }

    def add(key: ListKey, record: dict[str, Any], uid: int | None) -> None:
        out.setdefault(key, []).append((record, uid))

    for uid, email in zip(uids, emails, strict=True):
        state = draw(ENROLLMENT_STATE)
        grade = draw(GRADE)
        add(
            (CanvasList.ENROLLMENTS, None),
            {
                "id": uid + 4000,
                "user_id": uid,
                "type": "StudentEnrollment",
                "enrollment_state": state,
                "user": {"id": uid, "name": f"S{uid}"},
                "grades": {"current_score": grade},
            },
            uid,
        )
        add((CanvasList.USERS, None), {"id": uid, "name": f"S{uid}", "email": email}, uid)
        for assignment in (7001, 7002, 7003):
            if draw(st.booleans()):
                add(
                    (CanvasList.SUBMISSIONS, None),
                    {
                        "user_id": uid,
                        "assignment_id": assignment,
                        "score": draw(SCORE),
                        "excused": draw(EXCUSED),
                        "graded_at": iso(draw(HOURS)),
                        "workflow_state": "graded",
                    },
                    uid,
                )
        for position, module in enumerate((401, 402), start=1):
            add(
                (CanvasList.MODULES, uid),
                {
                    "id": module,
                    "position": position,
                    "state": draw(MODULE_STATE),
                    "items": [{"id": module * 10, "completion_requirement": {"type": "must_view"}}],
                },
                uid,
            )
        earned = sorted(draw(EARNED))
        if draw(st.booleans()):
            add(
                (CredentialsList.MEMBERS, None),
                {"canvasUserId": uid, "email": email.lower(), "name": f"S{uid}", "earned": earned},
                uid,
            )
        for badge in earned:
            add(
                (CredentialsList.ASSERTIONS, badge),
                {
                    "entityId": f"A-{uid}-{badge}",
                    "badgeclass": badge,
                    "recipient": {"identity": email.lower(), "plaintextIdentity": email.lower()},
                    "revoked": draw(st.booleans()),
                },
                uid,
            )
        add((CredentialsList.LEADERBOARD, None), {"canvasUserId": uid, "badges": len(earned)}, uid)
    gone = draw(st.integers(41, 60))  # a member no longer enrolled
    add((CredentialsList.MEMBERS, None), {"canvasUserId": gone, "email": "gone@x.edu"}, gone)
    return out


# -- corruptions -----------------------------------------------------------------------------

DROP = object()  # delete the field


def bomb(depth: int) -> object:
    """A value nested ``depth`` deep, as deep as a JSON decoder lets through."""
    value: object = "x"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


BOMBS = st.integers(50, 900).map(bomb)
HUGE_TEXT = st.integers(1_000, 200_000).map(lambda n: "9" * n)
BAD_ID = (
    st.sampled_from(["7", 7.0, True, False, None, [7], {"id": 7}, -7, 0, 2**63, 10**30, -(10**30)])
    | BOMBS
    | HUGE_TEXT
)
BAD_NUMBER = (
    st.sampled_from(
        [
            "9",
            "inf",
            "nan",
            "Infinity",
            float("inf"),
            float("-inf"),
            float("nan"),
            10**400,
            -(10**400),
            True,
            [9],
            {"value": 9},
        ]
    )
    | BOMBS
)
BAD_TEXT = st.sampled_from([1, 1.5, True, None, ["active"], {"state": "active"}]) | BOMBS
BAD_NONEMPTY_TEXT = BAD_TEXT | st.just("")
BAD_TIME = st.sampled_from(["yesterday", "2025-08-31T23:00:00", "", 1_756_684_800, True, [1]])
BAD_EMAIL = st.sampled_from(["nobody", "sha256$abc", 5, True, ["a@x.edu"], {"a": "b"}])
NOT_LIST = st.sampled_from(["B-GRADE", 5, {"id": "B-GRADE"}, True]) | BOMBS.map(lambda b: {"k": b})
NOT_OBJECT = st.sampled_from([None, 5, 1.5, "record", True, [], [{"id": 1}]]) | BOMBS
HUGE_SCORE = st.sampled_from([1e308, -1e308, 10**30, -(10**30), 5e-324, 0, -0.0])
UNKNOWN_WORD = st.sampled_from(["ACTIVE", "Active", "archived", "", "review", "\u00e4ctive"])

Path = tuple[str, ...]


@dataclass(frozen=True)
class Corruption:
    """Set ``path`` of a record to a value drawn from ``values`` (``DROP`` deletes it).

    ``outcome`` says what the engine must make of the result; for ``Outcome.AS``, ``as_``
    gives the valid record it must mean (``None``: the corrupted record itself is valid).
    """

    path: Path
    values: st.SearchStrategy[object]
    outcome: Outcome = Outcome.AS
    as_: Callable[[dict[str, Any]], dict[str, Any]] | None = None


def at(path: Path, value: object) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def change(record: dict[str, Any]) -> dict[str, Any]:
        return edited(record, path, value)

    return change


def edited(record: dict[str, Any], path: Path, value: object) -> dict[str, Any]:
    """A deep copy of ``record`` with ``path`` set to ``value`` (or deleted, for ``DROP``)."""
    out = copy.deepcopy(record)
    target = out
    for step in path[:-1]:
        if not isinstance(target.get(step), dict):
            target[step] = {}
        target = target[step]
    if value is DROP:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    return out


def case_variants(text: str) -> list[str]:
    """The text in other cases, only where Credentials' lowercasing undoes it ("STRASSE" is
    not "straße" lowercased, so it is not offered)."""
    alternating = "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(text))
    variants = (text.upper(), text.lower(), text.capitalize(), text.swapcase(), alternating)
    return sorted({v for v in variants if v.lower() == text.lower()})


Q, SAME, AS = Outcome.QUARANTINE, Outcome.SAME, Outcome.AS
ID = ("id",)
EXTRA = st.sampled_from([{"x": 1}, {"html_url": None}, {"nested": {"deep": [1, 2]}}])
CORRUPTIONS: Mapping[CanvasList | CredentialsList, tuple[Corruption, ...]] = {
    CanvasList.ENROLLMENTS: (
        Corruption(("user_id",), BAD_ID | st.just(DROP), Q),
        Corruption(("enrollment_state",), BAD_TEXT | st.just(DROP), Q),
        Corruption(("type",), BAD_TEXT | st.just(DROP), Q),
        Corruption(("grades", "current_score"), BAD_NUMBER, Q),
        Corruption(("enrollment_state",), UNKNOWN_WORD, Q),
        Corruption(("type",), UNKNOWN_WORD, Q),
        Corruption(("grades", "current_score"), HUGE_SCORE | st.just(DROP)),
        Corruption(("grades",), st.sampled_from([[], "A", 5]) | BOMBS, AS, at(("grades",), DROP)),
        Corruption(("user",), st.sampled_from([[], "S", None]) | BOMBS, AS, at(("user",), DROP)),
        Corruption(("user", "name"), st.sampled_from([5, None, ["S"]]), AS, at(("user",), DROP)),
        Corruption(("id",), st.just(DROP), AS),
    ),
    CanvasList.USERS: (
        Corruption(ID, BAD_ID | st.just(DROP), Q),
        Corruption(("email",), BAD_EMAIL | BOMBS, Q),
        Corruption(("email",), st.sampled_from([None, "", DROP]), AS),
        Corruption(("name",), st.just(DROP), AS),
    ),
    CanvasList.ASSIGNMENTS: (
        Corruption(ID, BAD_ID | st.just(DROP), Q),
        Corruption(("points_possible",), BAD_NUMBER, Q),
        Corruption(("quiz_id",), BAD_ID.filter(lambda v: v is not None), Q),
        Corruption(("submission_types",), NOT_LIST, Q),
        Corruption(("points_possible",), HUGE_SCORE | st.sampled_from([None, DROP])),
        Corruption(("workflow_state",), UNKNOWN_WORD, SAME),
    ),
    CanvasList.QUIZZES: (
        Corruption(ID, BAD_ID | st.just(DROP), Q),
        Corruption(("assignment_id",), BAD_ID.filter(lambda v: v is not None), Q),
        Corruption(("assignment_id",), st.sampled_from([None, DROP])),
    ),
    CanvasList.SUBMISSIONS: (
        Corruption(("user_id",), BAD_ID | st.just(DROP), Q),
        Corruption(("assignment_id",), BAD_ID | st.just(DROP), Q),
        Corruption(("score",), BAD_NUMBER, Q),
        Corruption(("excused",), st.sampled_from(["yes", 1, 0, [], "false"]), Q),
        Corruption(("graded_at",), BAD_TIME | BOMBS, Q),
        Corruption(("score",), HUGE_SCORE | st.sampled_from([None, DROP])),  # hidden or null
        Corruption(("graded_at",), st.sampled_from([None, DROP, "2025-08-31T23:00:00+02:00"])),
        Corruption(("workflow_state",), UNKNOWN_WORD | st.just(DROP), SAME),
    ),
    CanvasList.MODULES: (
        Corruption(ID, BAD_ID | st.just(DROP), Q),
        Corruption(("position",), BAD_ID | st.just(DROP), Q),
        Corruption(("state",), BAD_TEXT.filter(lambda v: v is not None), Q),
        Corruption(("items",), st.sampled_from(["items", 5, {"id": 1}]), Q),
        Corruption(("state",), UNKNOWN_WORD, AS, at(("state",), "locked")),
    ),
    CredentialsList.MEMBERS: (
        Corruption(("canvasUserId",), BAD_ID | st.just(DROP), Q),
        Corruption(("email",), BAD_NONEMPTY_TEXT | st.just(DROP), Q),
        Corruption(("earned",), NOT_LIST | st.just([1, "B"]), Q),
        Corruption(("name",), st.sampled_from([5, None, ["S"]]), AS, at(("name",), DROP)),
        Corruption(("earned",), st.just(DROP), AS),
    ),
    CredentialsList.ASSERTIONS: (
        Corruption(("entityId",), BAD_NONEMPTY_TEXT | st.just(DROP), Q),
        Corruption(("badgeclass",), BAD_NONEMPTY_TEXT | st.just(DROP), Q),
        Corruption(("recipient",), NOT_OBJECT | st.just(DROP), Q),
        Corruption(("recipient", "plaintextIdentity"), st.sampled_from(["nobody", "sha256$a"]), Q),
        # Not a string: the unhashed ``identity`` is read instead.
        Corruption(("recipient", "plaintextIdentity"), st.sampled_from([5, None, DROP]), SAME),
        Corruption(("revoked",), st.sampled_from(["yes", 1, None]), AS, at(("revoked",), False)),
    ),
    CredentialsList.LEADERBOARD: (
        Corruption(("canvasUserId",), BAD_ID | st.just(DROP), Q),
        Corruption(("badges",), st.sampled_from([-1, "3", 1.5, True, None, DROP]) | BOMBS, Q),
    ),
}
EMAIL_PATHS: Mapping[CanvasList | CredentialsList, tuple[Path, ...]] = {
    CanvasList.USERS: (("email",),),
    CredentialsList.MEMBERS: (("email",),),
    CredentialsList.ASSERTIONS: (("recipient", "identity"), ("recipient", "plaintextIdentity")),
}
# Fields a conflicting duplicate changes: a different valid value for the same id.
CONFLICTS: Mapping[CanvasList | CredentialsList, tuple[Path, st.SearchStrategy[object]]] = {
    CanvasList.ENROLLMENTS: (("grades", "current_score"), st.floats(0, 100, allow_nan=False)),
    CanvasList.USERS: (("email",), st.sampled_from(["other@x.edu", "OTHER2@x.edu"])),
    CanvasList.ASSIGNMENTS: (("points_possible",), st.integers(1, 50)),
    CanvasList.QUIZZES: (("assignment_id",), st.sampled_from([7001, 7003])),
    CanvasList.SUBMISSIONS: (("score",), st.integers(0, 20)),
    CanvasList.MODULES: (("state",), st.sampled_from(["completed", "started"])),
    CredentialsList.MEMBERS: (("earned",), st.sampled_from([[], ["B-GRADE"]])),
    CredentialsList.ASSERTIONS: (("revoked",), st.booleans()),
    CredentialsList.LEADERBOARD: (("badges",), st.integers(0, 9)),
}


KINDS = st.sampled_from(["field", "non-object", "extra", "repeat", "conflict"])
KINDS_WITH_CASE = st.sampled_from(["field", "non-object", "extra", "repeat", "conflict", "case"])
FIELD_CORRUPTIONS = {resource: st.sampled_from(c) for resource, c in CORRUPTIONS.items()}


def corrupted(
    draw: st.DrawFn, key: ListKey, record: dict[str, Any], owner: int | None
) -> list[Entry]:
    """One valid record turned into what is served in its place (one or more entries)."""
    resource = key[0]
    kind = draw(KINDS_WITH_CASE if resource in EMAIL_PATHS else KINDS)
    taint = frozenset({ALL if owner is None else owner})
    if kind == "field":
        corruption = draw(FIELD_CORRUPTIONS[resource])
        bad = edited(record, corruption.path, draw(corruption.values))
        if corruption.outcome is Q:
            return [Entry((bad,), (), quarantined=1)]
        if corruption.outcome is SAME:
            return [Entry((bad,), (record,))]
        return [Entry((bad,), (bad if corruption.as_ is None else corruption.as_(record),))]
    if kind == "non-object":
        return [Entry((draw(NOT_OBJECT),), (), quarantined=1)]
    if kind == "extra":
        return [Entry(({**draw(EXTRA), **record},), (record,))]
    if kind == "case":
        variant = record
        for path in EMAIL_PATHS[resource]:
            value: Any = record
            for step in path:
                value = value[step]
            variant = edited(variant, path, draw(st.sampled_from(case_variants(value))))
        return [Entry((variant,), (record,))]
    if kind == "repeat":
        return [Entry((record,), (record,)), Entry((copy.deepcopy(record),), ())]
    path, values = CONFLICTS[resource]
    other = edited(record, path, draw(values))
    return [Entry((record,), (record,)), Entry((other,), (), taint=taint)]


@st.composite
def rounds(draw: st.DrawFn) -> Round:
    """A course round where a random subset of records is corrupted and the rest valid."""
    pages: dict[ListKey, list[list[Entry]]] = {}
    for key, records in draw(valid_records()).items():
        entries: list[Entry] = []
        extras: list[Entry] = []
        for record, owner in records:
            if draw(st.integers(0, 3)) == 0:
                got = corrupted(draw, key, record, owner)
            else:
                got = [Entry((record,), (record,))]
            entries.append(got[0])
            extras += got[1:]
        for extra in extras:  # a repeat or a conflict may arrive anywhere, even pages apart
            entries.insert(draw(st.integers(0, len(entries))), extra)
        cuts = sorted(draw(st.sets(st.integers(1, max(1, len(entries))), max_size=2)))
        split = [entries[a:b] for a, b in zip([0, *cuts], [*cuts, len(entries)], strict=True)]
        split = [page for page in split if page] or [[]]
        if draw(st.integers(0, 14)) == 0:
            # A page whose body is not a list (an error object, HTML): the adapter passes it
            # on as one record. It is inserted rather than put in place of a page, so that a
            # repeat of a record on the lost page would not become its only copy.
            index = draw(st.integers(0, len(split)))
            split.insert(index, [Entry((draw(NOT_OBJECT | EXTRA),), (), quarantined=1)])
        if draw(st.integers(0, 9)) == 0:  # a page that repeats under a fresh cursor
            again = draw(st.sampled_from(split))
            split.append([Entry(e.served, (), e.quarantined, e.taint) for e in again])
        if key[0] is CredentialsList.LEADERBOARD:
            split[-1].append(Entry((STALE_ENTRY,), (STALE_ENTRY,)))
        pages[key] = split
    looping = [key for key, split in pages.items() if len(split) > 1]
    loop = draw(st.sampled_from(looping)) if looping and draw(st.integers(0, 19)) == 0 else None
    ack = draw(ACK)
    return Round(pages, loop, ack)


ACK = st.sampled_from([None, "ok", [], {"entityId": ""}, {"result": 5}]) | BOMBS


# -- the fakes and the property --------------------------------------------------------------


Pages = Mapping[ListKey, list[list[Entry]]]
Fetch = FetchCanvasPage | FetchCredentialsPage


def list_key(cmd: Fetch) -> ListKey:
    if isinstance(cmd, FetchCredentialsPage):
        return (cmd.resource, cmd.badge_class)
    if cmd.resource is CanvasList.MODULES:
        return (cmd.resource, int(dict(cmd.params)["student_id"]))
    return (cmd.resource, None)


def serve(pages: Pages, loop: ListKey | None, ack: object) -> Callable[[Command], Event]:
    """Answer each read with its page (cursors ``key|n``), acknowledge every write."""

    def answer(cmd: Command) -> Event:
        if isinstance(cmd, FetchCredentialsPage) and any(k == "recipient" for k, _ in cmd.params):
            return PageReceived(cmd.request_id, recipients_awards(pages, cmd), None)
        if isinstance(cmd, Fetch):
            key = list_key(cmd)
            split = pages.get(key, [[]])
            index = 0 if cmd.cursor is None else int(cmd.cursor.rsplit("|", 1)[1])
            records = tuple(r for entry in split[index] for r in entry.served)
            nxt = index + 1 if index + 1 < len(split) else (index if key == loop else None)
            return PageReceived(cmd.request_id, records, None if nxt is None else f"{key}|{nxt}")
        return WriteAcknowledged(cmd.request_id, ack if isinstance(cmd, IssueAssertion) else None)

    return answer


def recipients_awards(pages: Pages, cmd: FetchCredentialsPage) -> tuple[object, ...]:
    """The read just before an award (``recipient=`` filters): the class's assertions as a
    clean run sees them, of those recipients, on one page. This property is about the
    lists a round reads whole; one student's two or three awards are not where bad records
    hide, and a clean answer keeps both runs' awards comparable."""
    wanted = {v for k, v in cmd.params if k == "recipient"}
    split = pages.get(list_key(cmd), [[]])
    return tuple(
        record
        for page in split
        for entry in page
        for record in entry.clean
        if isinstance(record, dict)
        and isinstance(record.get("recipient"), dict)
        and str(record["recipient"].get("plaintextIdentity", "")).lower() in wanted
    )


def writes(commands: list[Command], taint: set[int]) -> Counter[object]:
    """The writes of a round, without request ids, for the students not tainted."""
    out: Counter[object] = Counter()
    for cmd in commands:
        if isinstance(cmd, UpsertMember | RemoveMember | IssueAssertion):
            if cmd.user_id not in taint:
                out[replace(cmd, request_id=0)] += 1
        elif isinstance(cmd, PublishLeaderboard):
            out[("leaderboard", frozenset(e for e in cmd.entries if e.user_id not in taint))] += 1
    return out


def board_users(writes: Counter[object]) -> set[int]:
    """The users on the leaderboards among ``writes``."""
    return {e.user_id for w in writes if isinstance(w, tuple) for e in w[1]}


def run(pages: Pages, loop: ListKey | None, ack: object) -> tuple[SyncEngine, list[Command]]:
    engine = SyncEngine()
    engine.handle(CourseLinked(COURSE, "ISS", "GRP", RULES))
    commands = drive(engine, Tick(T0), serve(pages, loop, ack))
    return engine, commands


def check_round(r: Round) -> str:
    """The property: no raise; bad records quarantined under their list's name; the rest of
    the course does exactly what a clean run does; the state still round-trips. Returns
    which comparison was made, for the statistics."""
    engine, commands = run(r.pages, r.loop, r.ack)
    (status,) = engine.status()
    saved = engine.to_json()
    assert SyncEngine.from_json(saved).to_json() == saved
    assert all(q.resource and q.reason and len(q.reason) < 500 for q in status.quarantined)
    upserts = [c for c in commands if isinstance(c, UpsertMember)]
    assert len({c.user_id for c in upserts}) == len(upserts), "one member upserted twice"
    assert all(c.email == c.email.lower() for c in upserts), "an email kept its case"
    if r.loop is not None:
        last = f"{r.loop}|{len(r.pages[r.loop]) - 1}"
        if any(isinstance(c, Fetch) and c.cursor == last for c in commands):
            # The loop was reached: the round ends, and nothing partial is written.
            assert "loops" in (status.last_error or ""), status.last_error
            assert writes(commands, set()) == Counter()
            return "a pagination loop ended the round"
    assert status.failures == 0, status.last_error
    clean_engine, clean_commands = run(r.clean(), None, None)
    (clean_status,) = clean_engine.status()
    got = Counter(q.resource for q in status.quarantined)
    # A student whose enrollment was quarantined has no module progress read at all.
    read = {resource_name(list_key(c)) for c in commands if isinstance(c, Fetch)}
    expected = Counter(q.resource for q in clean_status.quarantined) + r.quarantined(read)
    if expected.total() <= engine_module.MAX_QUARANTINE:
        assert got == expected, (got, expected, status.quarantined)
    else:
        assert got.total() == engine_module.MAX_QUARANTINE
    taint = r.taint()
    if ALL in taint:
        return "a course-level record was ambiguous: writes not compared"
    mine, clean = writes(commands, taint), writes(clean_commands, taint)
    if any(q.resource == CanvasList.ENROLLMENTS.value for q in status.quarantined):
        # An unreadable enrollment row may name a student still enrolled: removals wait.
        # The members kept stay on the leaderboard, so it is the clean one plus them.
        assert not any(isinstance(c, RemoveMember) for c in commands), "removed on bad data"
        kept = {w.user_id for w in clean if isinstance(w, RemoveMember)}
        assert board_users(mine) == board_users(clean) | kept
        clean, mine = (
            Counter({w: n for w, n in c.items() if not isinstance(w, RemoveMember | tuple)})
            for c in (clean, mine)
        )
    assert mine == clean, ("only corrupted:", mine - clean, "only clean:", clean - mine)
    return "writes compared" + (" for the untainted students" if taint else "")


@settings(
    max_examples=max(500, settings.default.max_examples),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(rounds())
def test_malformed_payloads_are_quarantined_and_the_rest_of_the_course_syncs(r: Round) -> None:
    event(check_round(r))


# -- the property can fail -------------------------------------------------------------------

ENROLLMENT = {
    "id": 4001,
    "user_id": 1,
    "type": "StudentEnrollment",
    "enrollment_state": "active",
    "user": {"name": "S1"},
    "grades": {"current_score": 80.0},
}
BAD = Entry(({"user_id": 1, "assignment_id": 7001, "score": "lots"},), (), quarantined=1)


def fixed_round(lists: Mapping[CanvasList | CredentialsList, list[Entry]]) -> Round:
    """One student who earns B-ASSIGN and B-GRADE; ``lists`` replaces whole lists."""
    valid: dict[CanvasList | CredentialsList, list[object]] = {
        CanvasList.ENROLLMENTS: [ENROLLMENT],
        CanvasList.USERS: [{"id": 1, "email": "ada@x.edu"}],
        CanvasList.ASSIGNMENTS: [{"id": 7001, "points_possible": 10}],
        CanvasList.SUBMISSIONS: [{"user_id": 1, "assignment_id": 7001, "score": 9}],
        CredentialsList.LEADERBOARD: [STALE_ENTRY],
    }
    pages: dict[ListKey, list[list[Entry]]] = {
        (resource, None): [[Entry((r,), (r,)) for r in records]]
        for resource, records in valid.items()
    }
    for resource, entries in lists.items():
        pages[(resource, None)] = [entries]
    return Round(pages)


def lenient_int(record: Mapping[str, object], key: str) -> int:
    """A broken ``_int``: any integer passes, negative or not."""
    value = record.get(key)
    if not isinstance(value, int):
        raise canvas.Malformed(f"{key!r} must be an integer id")
    return value


Scores = dict[int, dict[int, float]]
Cleared = set[tuple[int, int]]
PageParser = Callable[
    [tuple[object, ...], Scores, Cleared, dict[str, float]], tuple[float | None, list[str]]
]


def skip_after_bad_page(real: PageParser) -> PageParser:
    """A broken list reader: once a record is bad, the rest of that page is lost."""

    def parse(
        records: tuple[object, ...], into: Scores, cleared: Cleared, times: dict[str, float]
    ) -> tuple[float | None, list[str]]:
        for n, record in enumerate(records):
            try:
                canvas.parse_submission(record)
            except canvas.Malformed:
                return real(records[: n + 1], into, cleared, times)
        return real(records, into, cleared, times)

    return parse


def emails_as_sent(records: tuple[dict[str, Any], ...], into: dict[int, str | None]) -> list[str]:
    """A users-page reader that keeps each email as sent."""
    for record in records:
        into[record["id"]] = record["email"]
    return []


def raise_key_error(record: object) -> object:
    raise KeyError("id")


CASE = Entry(({"id": 1, "email": "ADA@x.EDU"},), ({"id": 1, "email": "ada@x.edu"},))
GOOD = {"user_id": 1, "assignment_id": 7001, "score": 9}
BAD_FIRST = {CanvasList.SUBMISSIONS: [BAD, Entry((GOOD,), (GOOD,))]}


@pytest.mark.parametrize(
    ("target", "name", "broken", "lists", "error"),
    [
        # A parser lets a negative id through: a record that should be quarantined is used.
        (
            canvas,
            "_int",
            lenient_int,
            {CanvasList.USERS: [Entry(({"id": -1, "email": "x@x.edu"},), (), quarantined=1)]},
            AssertionError,
        ),
        # A parser lets a string score through: the rules then raise.
        (
            canvas,
            "_opt_number",
            lambda rec, key: rec.get(key),
            {CanvasList.SUBMISSIONS: [BAD]},
            TypeError,
        ),
        # A parser raises something other than Malformed.
        (canvas, "parse_assignment", raise_key_error, {}, KeyError),
        # A parser keeps the case of an email: the member would be upserted as "ADA@x.EDU".
        (
            canvas,
            "parse_user_emails",
            emails_as_sent,
            {CanvasList.USERS: [CASE]},
            AssertionError,
        ),
        # The engine forgets to quarantine: the bad record vanishes without a reason.
        (
            EngineRound,
            "note",
            lambda self, resource, reason: None,
            BAD_FIRST,
            AssertionError,
        ),
    ],
    ids=[
        "negative-id-used",
        "string-score-used",
        "parser-raises",
        "email-case-kept",
        "no-quarantine",
    ],
)
def test_the_property_catches_a_broken_parser_or_engine(
    monkeypatch: pytest.MonkeyPatch,
    target: object,
    name: str,
    broken: object,
    lists: Mapping[CanvasList | CredentialsList, list[Entry]],
    error: type[Exception],
) -> None:
    r = fixed_round(lists)
    check_round(r)  # the real engine passes this very round
    monkeypatch.setattr(target, name, broken)
    with pytest.raises(error):
        check_round(r)


def test_the_differential_check_catches_a_bad_record_costing_its_neighbours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Quarantine counts alone miss this: the bad record is quarantined as it should be, but
    the good submission after it is lost, so an earned badge is never issued."""
    r = fixed_round(BAD_FIRST)
    check_round(r)
    monkeypatch.setattr(canvas, "parse_submissions", skip_after_bad_page(canvas.parse_submissions))
    with pytest.raises(AssertionError, match="only corrupted"):
        check_round(r)
