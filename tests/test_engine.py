"""The engine driven by hand: each test scripts the answers and checks the commands."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync_core import (
    AssignmentScore,
    CanvasList,
    Command,
    CourseCompleted,
    CourseGrade,
    CourseLinked,
    CredentialsList,
    Failure,
    FetchCanvasPage,
    FetchCredentialsPage,
    IssueAssertion,
    LeaderboardEntry,
    PageReceived,
    Phase,
    Policy,
    PublishLeaderboard,
    RemoveMember,
    RequestFailed,
    RevokeAssertion,
    StateError,
    SyncEngine,
    Tick,
    UpdateNowRequested,
    UpsertMember,
    WriteAcknowledged,
)
from sync_core.engine import RoundAborted
from sync_core.events import Event

T0 = 1_756_684_800.0
RULE = AssignmentScore(badge_class="B1", assignment_id=7001, min_percent=80)


def student(uid: int, state: str = "active", score: float | None = None) -> dict[str, object]:
    return {
        "id": uid + 4000,
        "user_id": uid,
        "type": "StudentEnrollment",
        "enrollment_state": state,
        "user": {"name": f"S{uid}"},
        "grades": {"current_score": score},
    }


def canvas_world(scores: dict[int, float], emails: dict[int, str | None]) -> dict[object, list]:
    return {
        CanvasList.ENROLLMENTS: [student(uid) for uid in emails],
        CanvasList.USERS: [{"id": uid, "email": e} for uid, e in emails.items()],
        CanvasList.ASSIGNMENTS: [{"id": 7001, "points_possible": 10}],
        CanvasList.SUBMISSIONS: [
            {"user_id": uid, "assignment_id": 7001, "score": s, "graded_at": "2025-08-31T23:00:00Z"}
            for uid, s in scores.items()
        ],
    }


Answer = Callable[[Command], Event]


def serve(data: dict[object, list], *, writes: Answer | None = None) -> Answer:
    """Answer reads from ``data`` (one page each) and acknowledge writes."""

    def answer(cmd: Command) -> Event:
        if isinstance(cmd, FetchCanvasPage | FetchCredentialsPage):
            return PageReceived(cmd.request_id, tuple(data.get(cmd.resource, [])))
        if writes is not None:
            return writes(cmd)
        record = None
        if isinstance(cmd, IssueAssertion):
            record = {
                "entityId": f"A{cmd.request_id}",
                "badgeclass": cmd.badge_class,
                "recipient": {"identity": cmd.email, "plaintextIdentity": cmd.email},
            }
        return WriteAcknowledged(cmd.request_id, record)

    return answer


def drive(engine: SyncEngine, event: Event, answer: Answer) -> list[Command]:
    """Feed one event and answer every command until the engine is quiet; return them all."""
    seen: list[Command] = []
    queue = engine.handle(event)
    while queue:
        cmd = queue.pop(0)
        seen.append(cmd)
        queue.extend(engine.handle(answer(cmd)))
    return seen


def failing_first(
    kind: type, answer: Answer, failure: Failure, retry_after: float | None = None
) -> tuple[Answer, list[Command]]:
    """``answer``, but the first command of ``kind`` fails with ``failure``; the list holds
    that command once it has failed."""
    failed: list[Command] = []

    def fail_first(cmd: Command) -> Event:
        if isinstance(cmd, kind) and not failed:
            failed.append(cmd)
            return RequestFailed(cmd.request_id, failure, retry_after)
        return answer(cmd)

    return fail_first, failed


def linked(policy: Policy | None = None, rules: tuple = (RULE,)) -> SyncEngine:
    engine = SyncEngine(policy)
    engine.handle(CourseLinked(101, "ISS", "GRP", rules))
    return engine


def of(kind: type, commands: list[Command]) -> list:
    return [c for c in commands if isinstance(c, kind)]


def test_a_round_adds_members_awards_and_publishes_the_leaderboard() -> None:
    engine = linked()
    data = canvas_world({1: 9.0, 2: 5.0}, {1: "Ada@X.edu", 2: "bo@x.edu"})
    cmds = drive(engine, Tick(T0), serve(data))
    assert [(c.user_id, c.email, c.earned) for c in of(UpsertMember, cmds)] == [
        (1, "ada@x.edu", ("B1",)),
        (2, "bo@x.edu", ()),
    ]
    assert [(c.user_id, c.email) for c in of(IssueAssertion, cmds)] == [(1, "ada@x.edu")]
    (board,) = of(PublishLeaderboard, cmds)
    assert [(e.user_id, e.badges) for e in board.entries] == [(1, 1), (2, 0)]
    (status,) = engine.status()
    assert status.phase is Phase.IDLE and status.last_success_at == T0 and status.failures == 0


def test_a_course_without_assignments_or_quizzes_syncs_like_any_other() -> None:
    engine = linked(rules=(CourseGrade("B9", 50.0),))
    data = {
        CanvasList.ENROLLMENTS: [student(1, score=75.0)],
        CanvasList.USERS: [{"id": 1, "email": "a@x.edu"}],
    }
    cmds = drive(engine, Tick(T0), serve(data))
    assert [c.badge_class for c in of(IssueAssertion, cmds)] == ["B9"]
    assert engine.status()[0].last_success_at == T0


def test_nothing_changes_nothing_is_written() -> None:
    engine = linked()
    data = canvas_world({1: 9.0}, {1: "a@x.edu"})
    drive(engine, Tick(T0), serve(data))
    data[CredentialsList.MEMBERS] = [
        {"canvasUserId": 1, "email": "a@x.edu", "name": "S1", "earned": ["B1"]}
    ]
    data[CredentialsList.ASSERTIONS] = [
        {"entityId": "A1", "badgeclass": "B1", "recipient": {"plaintextIdentity": "a@x.edu"}}
    ]
    data[CredentialsList.LEADERBOARD] = [{"canvasUserId": 1, "badges": 1}]
    cmds = drive(engine, Tick(T0 + 300), serve(data))
    assert all(isinstance(c, FetchCanvasPage | FetchCredentialsPage) for c in cmds)


# The doubt can be settled once Policy.award_settle_window (600 s) has passed since the
# attempt: an incremental round at 700 s, or an hour later a full one (the default policy).
# Both read the student's awards of the class before anything is issued.
LATER = pytest.mark.parametrize("later", [700.0, 3600.0], ids=["incremental", "full"])


@LATER
def test_an_ambiguous_award_is_looked_up_before_it_is_issued_again(later: float) -> None:
    engine = linked()
    data = canvas_world({1: 9.0}, {1: "a@x.edu"})

    def lose_awards(cmd: Command) -> Event:
        if isinstance(cmd, IssueAssertion):
            return RequestFailed(cmd.request_id, Failure.AMBIGUOUS, detail="timeout")
        return WriteAcknowledged(cmd.request_id)

    drive(engine, Tick(T0), serve(data, writes=lose_awards))
    (status,) = engine.status()
    # The rest of the round completed; the course comes back at its next poll (the doubt
    # cannot be settled before the settle window has passed anyway).
    assert status.uncertain_awards == 1 and status.failures == 0
    assert status.next_due == T0 + engine.policy.poll_interval
    # The award did commit: the next round's read shows it, and nothing is re-issued.
    data[CredentialsList.ASSERTIONS] = [
        {"entityId": "A1", "badgeclass": "B1", "recipient": {"plaintextIdentity": "a@x.edu"}}
    ]
    cmds = drive(engine, Tick(T0 + later), serve(data))
    assert of(IssueAssertion, cmds) == []
    assert engine.status()[0].uncertain_awards == 0


@LATER
def test_an_ambiguous_award_that_did_not_commit_is_issued_after_the_read(later: float) -> None:
    engine = linked()
    data = canvas_world({1: 9.0}, {1: "a@x.edu"})
    drive(
        engine,
        Tick(T0),
        serve(
            data,
            writes=lambda c: (
                RequestFailed(c.request_id, Failure.AMBIGUOUS)
                if isinstance(c, IssueAssertion)
                else WriteAcknowledged(c.request_id)
            ),
        ),
    )
    cmds = drive(engine, Tick(T0 + later), serve(data))
    reads = [
        i
        for i, c in enumerate(cmds)
        if isinstance(c, FetchCredentialsPage) and c.resource is CredentialsList.ASSERTIONS
    ]
    issues = [i for i, c in enumerate(cmds) if isinstance(c, IssueAssertion)]
    assert len(issues) == 1 and max(reads) < issues[0]


def test_an_ambiguous_award_is_not_judged_absent_within_the_settle_window() -> None:
    """A replica may lag and a write the client gave up on may still land: a read soon
    after the attempt proves nothing, so nothing is read or issued for that award until
    ``award_settle_window`` has passed; then one read settles it."""
    engine = linked()
    data = canvas_world({1: 9.0}, {1: "a@x.edu"})
    lose = serve(
        data,
        writes=lambda c: (
            RequestFailed(c.request_id, Failure.AMBIGUOUS)
            if isinstance(c, IssueAssertion)
            else WriteAcknowledged(c.request_id)
        ),
    )
    drive(engine, Tick(T0), lose)
    window = engine.policy.award_settle_window
    cmds = drive(engine, Tick(T0 + engine.policy.poll_interval), serve(data))
    assert of(IssueAssertion, cmds) == [] and engine.status()[0].uncertain_awards == 1
    assert not any(isinstance(c, FetchCredentialsPage) and c.badge_class == "B1" for c in cmds)
    cmds = drive(engine, Tick(T0 + window), serve(data))
    assert len(of(IssueAssertion, cmds)) == 1


def test_a_write_that_may_land_late_makes_a_round_after_the_settle_window_read_anew() -> None:
    """A leaderboard PUT times out and its retry is acknowledged: the first attempt may
    still be stored after the retry, overwriting it, which the cached view would never
    know. Rounds within the settle window trust the cache (they read no Credentials list);
    the first round to start after it is a full one, and the doubt survives a restart."""
    engine = linked()
    data = canvas_world({1: 9.0}, {1: "a@x.edu"})
    answer, timeouts = failing_first(PublishLeaderboard, serve(data), Failure.AMBIGUOUS)
    drive(engine, Tick(T0), answer)
    assert len(timeouts) == 1
    engine = SyncEngine.from_json(engine.to_json(), engine.policy)
    policy = engine.policy

    def members_read(cmds: list[Command]) -> bool:
        return any(
            isinstance(c, FetchCredentialsPage) and c.resource is CredentialsList.MEMBERS
            for c in cmds
        )

    assert not members_read(drive(engine, Tick(T0 + policy.poll_interval), serve(data)))
    after = T0 + policy.award_settle_window + policy.poll_interval
    assert members_read(drive(engine, Tick(after), serve(data)))
    assert not members_read(drive(engine, Tick(after + policy.poll_interval), serve(data)))


def test_an_award_asks_credentials_to_refuse_a_duplicate_and_a_refusal_means_awarded() -> None:
    """Every award is sent lowercased with ``allowDuplicateAwards: false``: Badgr then
    refuses one the recipient already holds live (a teacher awarded it between the read and
    the write), and the engine takes that refusal as the award being there."""
    engine = linked()
    data = canvas_world({1: 9.0}, {1: "Ada@X.edu"})

    def refuse(cmd: Command) -> Event:
        if isinstance(cmd, IssueAssertion):
            assert cmd.email == "ada@x.edu" and not cmd.allow_duplicates
            return RequestFailed(cmd.request_id, Failure.DUPLICATE, detail="HTTP 400")
        return WriteAcknowledged(cmd.request_id)

    cmds = drive(engine, Tick(T0), serve(data, writes=refuse))
    assert len(of(IssueAssertion, cmds)) == 1
    (status,) = engine.status()
    assert status.pending_awards == status.uncertain_awards == status.blocked_awards == 0
    assert of(IssueAssertion, drive(engine, Tick(T0 + 3600), serve(data))) == []


def test_failures_back_off_per_course_capped_and_never_give_up() -> None:
    policy = Policy(backoff_base=10, backoff_cap=100)
    engine = linked(policy)
    engine.handle(CourseLinked(102, "ISS", "GRP2", (RULE,)))
    ok = serve(canvas_world({}, {1: "a@x.edu"}))

    def course_101_down(cmd: Command) -> Event:
        if cmd.course_id == 101:
            return RequestFailed(cmd.request_id, Failure.TRANSIENT, detail="503")
        return ok(cmd)

    now = T0
    waits = []
    for _ in range(12):
        drive(engine, Tick(now), course_101_down)
        s101, s102 = engine.status()
        waits.append(s101.next_due - now)
        now = s101.next_due
    assert s101.failures == 12 and s101.last_error and "transient" in s101.last_error
    assert all(0 < w <= 100 for w in waits) and max(waits) > 50  # grew, then capped
    assert s102.failures == 0 and s102.last_success_at is not None  # the other course synced
    drive(engine, Tick(now), ok)  # the server heals: the course recovers by itself
    assert engine.status()[0].failures == 0


def throttled_once(data: dict[object, list], retry_after: float | None) -> Answer:
    """Throttle every read the first time it is asked (by resource and cursor), then serve."""
    ok, seen = serve(data), set()

    def answer(cmd: Command) -> Event:
        key = (getattr(cmd, "resource", None), getattr(cmd, "cursor", None))
        if isinstance(cmd, FetchCanvasPage) and key not in seen:
            seen.add(key)
            return RequestFailed(cmd.request_id, Failure.THROTTLED, retry_after)
        return ok(cmd)

    return answer


def test_a_throttled_read_waits_retry_after_within_its_round() -> None:
    engine = linked()
    answer = throttled_once(canvas_world({1: 9.0}, {1: "a@x.edu"}), 17.0)
    first = drive(engine, Tick(T0), answer)
    assert not of(IssueAssertion, first) and engine.status()[0].phase is Phase.READING
    assert engine.status()[0].next_due == T0 + 17  # when the round goes on: sleep till then
    assert drive(engine, Tick(T0 + 16), answer) == []  # the wait is not over
    later = drive(engine, Tick(T0 + 17), answer)  # sent again one at a time, then the round
    (status,) = engine.status()
    assert status.failures == 0 and status.last_success_at == T0 + 17
    assert [c.user_id for c in of(IssueAssertion, later)] == [1]


def test_a_throttled_round_resends_one_request_at_a_time() -> None:
    engine = linked()
    answer = throttled_once(canvas_world({1: 9.0}, {1: "a@x.edu"}), 5.0)
    drive(engine, Tick(T0), answer)
    resent = engine.handle(Tick(T0 + 5))
    assert len(resent) == 1 and isinstance(resent[0], FetchCanvasPage)


def test_update_now_overrides_a_throttled_wait_as_it_overrides_a_backoff() -> None:
    engine = linked()
    answer = throttled_once(canvas_world({1: 9.0}, {1: "a@x.edu"}), 100.0)
    drive(engine, Tick(T0), answer)
    assert engine.status()[0].phase is Phase.READING  # waiting out the throttle
    cmds = drive(engine, UpdateNowRequested(101), answer)
    (status,) = engine.status()
    assert status.phase is Phase.IDLE and status.last_success_at == T0 and status.failures == 0
    assert [c.user_id for c in of(IssueAssertion, cmds)] == [1]


@pytest.mark.parametrize("retry_after", [10.0**9, None])
def test_retry_after_is_capped_by_the_policy(retry_after: float | None) -> None:
    policy = Policy(max_retry_after=60.0)
    engine = linked(policy)
    answer = throttled_once(canvas_world({1: 9.0}, {1: "a@x.edu"}), retry_after)
    drive(engine, Tick(T0), answer)
    wait = 60.0 if retry_after else policy.backoff_base  # no header: the base backoff
    assert engine.handle(Tick(T0 + wait - 1)) == []
    assert drive(engine, Tick(T0 + wait), answer)
    assert engine.status()[0].last_success_at == T0 + wait


def test_a_throttled_award_is_sent_again_within_the_round_and_only_once() -> None:
    engine = linked()
    data = canvas_world({1: 9.0}, {1: "a@x.edu"})
    answer, _ = failing_first(IssueAssertion, serve(data), Failure.THROTTLED, retry_after=3.0)
    drive(engine, Tick(T0), answer)
    assert engine.status()[0].pending_awards == 1
    later = drive(engine, Tick(T0 + 3), answer)
    assert len(of(IssueAssertion, later)) == 1 and engine.status()[0].pending_awards == 0


def test_a_throttled_award_is_checked_again_before_it_is_sent() -> None:
    """While a throttled award waited, a teacher made it by hand: the read of the student's
    awards of the class, made again before it is sent, shows it, and it is not made twice."""
    engine = linked()
    data = canvas_world({1: 9.0}, {1: "a@x.edu"})
    answer, _ = failing_first(IssueAssertion, serve(data), Failure.THROTTLED, retry_after=3.0)
    drive(engine, Tick(T0), answer)
    by_hand = {
        "entityId": "BYHAND",
        "badgeclass": "B1",
        "recipient": {"plaintextIdentity": "a@x.edu"},
        "createdAt": "2025-09-01T00:00:01Z",
    }
    data[CredentialsList.ASSERTIONS] = [by_hand]
    later = drive(engine, Tick(T0 + 3), answer)
    assert of(IssueAssertion, later) == []
    (status,) = engine.status()
    assert status.pending_awards == 0 and status.last_success_at == T0 + 3


def test_an_aborted_round_puts_a_throttled_check_back() -> None:
    """A check the throttle turned away waits in its round. If the round is aborted while it
    waits (here a member write is never answered), the award is pending again and the next
    round checks and makes it: it is not left "checking" for good."""
    engine = linked()
    ok = serve(canvas_world({1: 9.0}, {1: "a@x.edu"}))
    queue = engine.handle(Tick(T0))
    while queue:
        cmd = queue.pop(0)
        if isinstance(cmd, UpsertMember):
            continue  # never answered
        if isinstance(cmd, FetchCredentialsPage) and ("recipient", "a@x.edu") in cmd.params:
            queue.extend(engine.handle(RequestFailed(cmd.request_id, Failure.THROTTLED, 5.0)))
        else:
            queue.extend(engine.handle(ok(cmd)))
    engine.handle(Tick(T0 + engine.policy.round_timeout))
    (status,) = engine.status()
    assert status.failures == 1 and "timed out" in (status.last_error or "")
    cmds = drive(engine, UpdateNowRequested(101), ok)
    assert [c.user_id for c in of(IssueAssertion, cmds)] == [1]


def test_max_retry_after_must_be_shorter_than_the_round_timeout() -> None:
    with pytest.raises(ValueError, match="max_retry_after"):
        Policy(max_retry_after=900.0, round_timeout=900.0)


def test_a_malformed_record_is_quarantined_and_the_rest_syncs() -> None:
    engine = linked()
    data = canvas_world({1: 9.0, 2: 9.0}, {1: "a@x.edu", 2: "b@x.edu"})
    data[CanvasList.ENROLLMENTS].append(
        {"user_id": "seven", "type": "StudentEnrollment", "enrollment_state": "active"}
    )
    data[CanvasList.SUBMISSIONS].append({"user_id": 2, "assignment_id": 7001, "score": "lots"})
    cmds = drive(engine, Tick(T0), serve(data))
    assert sorted(c.user_id for c in of(IssueAssertion, cmds)) == [1, 2]
    reasons = [q.reason for q in engine.status()[0].quarantined]
    assert any("user_id" in r for r in reasons) and any("score" in r for r in reasons)


@pytest.mark.parametrize(
    "bad_row",
    [
        {"user_id": 1, "type": "StudentEnrollment", "enrollment_state": "ACTIVE"},
        {"user_id": 1, "type": "StudentEnrolment", "enrollment_state": "active"},
        {"user_id": "one", "type": "StudentEnrollment", "enrollment_state": "active"},
    ],
    ids=["unknown-state", "unknown-type", "bad-user-id"],
)
def test_a_quarantined_enrollment_row_removes_nobody(bad_row: dict[str, object]) -> None:
    """The student a bad row names may still be enrolled: removing them would lose the
    membership over data nobody could read, so the round's removals wait for a clean read."""
    engine = linked()
    data = canvas_world({2: 9.0}, {2: "b@x.edu"})
    data[CanvasList.ENROLLMENTS].append(bad_row)
    data[CredentialsList.MEMBERS] = [
        {"canvasUserId": 1, "email": "a@x.edu", "earned": []},
        {"canvasUserId": 3, "email": "c@x.edu", "earned": []},
    ]
    cmds = drive(engine, Tick(T0), serve(data))
    assert of(RemoveMember, cmds) == [] and [c.user_id for c in of(UpsertMember, cmds)] == [2]
    (status,) = engine.status()
    assert [q.resource for q in status.quarantined] == ["enrollments"]
    data[CanvasList.ENROLLMENTS].pop()  # the next clean read removes both
    cmds = drive(engine, Tick(T0 + 86_400), serve(data))
    assert sorted(c.user_id for c in of(RemoveMember, cmds)) == [1, 3]


def test_students_without_a_visible_email_are_held_not_dropped() -> None:
    engine = linked()
    data = canvas_world({1: 9.0}, {1: None})
    data[CredentialsList.MEMBERS] = [{"canvasUserId": 1, "email": "old@x.edu", "earned": []}]
    cmds = drive(engine, Tick(T0), serve(data))
    assert of(RemoveMember, cmds) == [] and of(IssueAssertion, cmds) == []
    assert any("no primary email" in q.reason for q in engine.status()[0].quarantined)


def test_dropped_students_leave_the_group_and_concluded_ones_keep_their_badges() -> None:
    engine = linked()
    data = canvas_world({2: 9.0}, {2: "b@x.edu"})
    data[CanvasList.ENROLLMENTS] = [student(2, state="completed")]
    data[CredentialsList.MEMBERS] = [
        {"canvasUserId": 1, "email": "a@x.edu", "earned": []},
        {"canvasUserId": 2, "email": "b@x.edu", "earned": []},
    ]
    cmds = drive(engine, Tick(T0), serve(data))
    assert sorted(c.user_id for c in of(RemoveMember, cmds)) == [1, 2]
    assert [c.user_id for c in of(IssueAssertion, cmds)] == [2]


def test_an_email_change_shows_at_the_next_full_resync_and_does_not_award_again() -> None:
    """An incremental round reads the users list only for a student without a known email,
    so an email change waits for the next full resync (at most ``full_resync_interval``)."""
    engine = linked()
    data = canvas_world({1: 9.0}, {1: "old@x.edu"})
    drive(engine, Tick(T0), serve(data))
    data[CanvasList.USERS] = [{"id": 1, "email": "NEW@x.edu"}]
    data[CredentialsList.ASSERTIONS] = [
        {"entityId": "A1", "badgeclass": "B1", "recipient": {"plaintextIdentity": "old@x.edu"}}
    ]
    cmds = drive(engine, Tick(T0 + 300), serve(data))
    assert not any(is_users(c) for c in cmds) and of(UpsertMember, cmds) == []
    cmds = drive(engine, UpdateNowRequested(101), serve(data))
    assert of(IssueAssertion, cmds) == []
    assert [c.email for c in of(UpsertMember, cmds)] == ["new@x.edu"]


def test_a_new_student_without_a_known_email_makes_an_incremental_round_read_users() -> None:
    engine = linked()
    data = canvas_world({1: 9.0}, {1: "a@x.edu"})
    drive(engine, Tick(T0), serve(data))
    data = canvas_world({1: 9.0, 2: 9.0}, {1: "a@x.edu", 2: "b@x.edu"})
    cmds = drive(engine, Tick(T0 + 300), serve(data))
    assert any(is_users(c) for c in cmds)
    assert [(c.user_id, c.email) for c in of(IssueAssertion, cmds)] == [(2, "b@x.edu")]


def written_world(engine: SyncEngine, data: dict[object, list]) -> Answer:
    """Serve ``data`` and record every acknowledged write into its Credentials lists, as
    Credentials would: what later rounds read is what earlier rounds wrote."""
    base = serve(data)

    def answer(cmd: Command) -> Event:
        event = base(cmd)
        if isinstance(cmd, UpsertMember):
            members = [
                m
                for m in data.setdefault(CredentialsList.MEMBERS, [])
                if m["canvasUserId"] != cmd.user_id
            ]
            record = {"canvasUserId": cmd.user_id, "email": cmd.email, "name": cmd.name}
            data[CredentialsList.MEMBERS] = [*members, {**record, "earned": list(cmd.earned)}]
        elif isinstance(cmd, IssueAssertion):
            assert isinstance(event, WriteAcknowledged)
            data.setdefault(CredentialsList.ASSERTIONS, []).append(event.record)
        elif isinstance(cmd, PublishLeaderboard):
            board = [{"canvasUserId": e.user_id, "badges": e.badges} for e in cmd.entries]
            data[CredentialsList.LEADERBOARD] = board
        return event

    return answer


def test_incremental_rounds_trust_the_cache_and_a_full_resync_repairs_changes_by_others() -> None:
    """A steady incremental round reads nothing from Credentials; a member removed by hand
    in Credentials is noticed, and put back, by the next full resync."""
    engine = linked()
    data = canvas_world({1: 9.0, 2: 5.0}, {1: "a@x.edu", 2: "b@x.edu"})
    answer = written_world(engine, data)
    drive(engine, Tick(T0), answer)
    data[CanvasList.ENROLLMENTS][1]["grades"] = {"current_score": 91.0}  # a known student
    cmds = drive(engine, Tick(T0 + 300), answer)
    assert of(FetchCredentialsPage, cmds) == [] and not any(is_users(c) for c in cmds)
    assert all(isinstance(c, FetchCanvasPage) for c in cmds)
    data[CredentialsList.MEMBERS] = [
        m for m in data[CredentialsList.MEMBERS] if m["canvasUserId"] != 2
    ]
    cmds = drive(engine, Tick(T0 + 600), answer)
    assert of(UpsertMember, cmds) == []  # trusted the cache: not noticed yet
    cmds = drive(engine, UpdateNowRequested(101), answer)
    assert [c.user_id for c in of(UpsertMember, cmds)] == [2]
    assert of(IssueAssertion, cmds) == []


def issued_only_after_a_read(engine: SyncEngine) -> None:
    """The award rule of incremental rounds: a grade change earns a badge; the round reads
    the badge class's assertions before issuing it, and issues nothing when they show the
    award already made (by someone else, in Credentials)."""
    data = canvas_world({1: 5.0}, {1: "a@x.edu"})
    answer = written_world(engine, data)
    drive(engine, Tick(T0), answer)
    data[CanvasList.SUBMISSIONS][0]["score"] = 9.0
    data[CredentialsList.ASSERTIONS] = [
        {"entityId": "X1", "badgeclass": "B1", "recipient": {"plaintextIdentity": "a@x.edu"}}
    ]
    cmds = drive(engine, Tick(T0 + 300), answer)
    reads = [c for c in of(FetchCredentialsPage, cmds) if c.resource is CredentialsList.ASSERTIONS]
    assert [c.badge_class for c in reads] == ["B1"]
    assert of(IssueAssertion, cmds) == [] and engine.status()[0].pending_awards == 0


def test_an_award_is_issued_only_after_a_read_of_its_badge_class() -> None:
    issued_only_after_a_read(linked())


def test_the_read_before_an_award_check_catches_an_engine_that_skips_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        SyncEngine,
        "_check",
        lambda self, course, rnd, key, entry, out: self._issue(course, rnd, key, entry, out),
    )
    with pytest.raises(AssertionError):
        issued_only_after_a_read(linked())


def test_incremental_rounds_overlap_the_watermark_and_full_resyncs_still_happen() -> None:
    policy = Policy(poll_interval=300, full_resync_interval=3600, watermark_overlap=600)
    engine = linked(policy)
    data = canvas_world({1: 9.0}, {1: "a@x.edu"})
    drive(engine, Tick(T0), serve(data))
    cmds = drive(engine, Tick(T0 + 300), serve(data))
    (subs,) = [c for c in of(FetchCanvasPage, cmds) if c.resource is CanvasList.SUBMISSIONS]
    assert ("graded_since", "2025-08-31T22:50:00Z") in subs.params  # 23:00 minus the overlap
    cmds = drive(engine, Tick(T0 + 3600), serve(data))
    (subs,) = [c for c in of(FetchCanvasPage, cmds) if c.resource is CanvasList.SUBMISSIONS]
    assert all(k != "graded_since" for k, _ in subs.params)


def test_update_now_runs_a_full_resync_at_once() -> None:
    engine = linked()
    data = canvas_world({1: 9.0}, {1: "a@x.edu"})
    drive(engine, Tick(T0), serve(data))
    assert drive(engine, Tick(T0 + 10), serve(data)) == []  # not due yet
    cmds = drive(engine, UpdateNowRequested(101), serve(data))
    (subs,) = [c for c in of(FetchCanvasPage, cmds) if c.resource is CanvasList.SUBMISSIONS]
    assert all(k != "graded_since" for k, _ in subs.params)
    with pytest.raises(ValueError, match="not linked"):
        engine.handle(UpdateNowRequested(999))


def test_pagination_is_followed_and_a_loop_aborts_the_round() -> None:
    engine = linked()
    data = canvas_world({1: 9.0}, {1: "a@x.edu"})

    def paged(loop: bool) -> Answer:
        base = serve(data)

        def answer(cmd: Command) -> Event:
            if isinstance(cmd, FetchCanvasPage) and cmd.resource is CanvasList.USERS:
                if cmd.cursor is None:
                    return PageReceived(cmd.request_id, (), "http://c/next")
                return PageReceived(
                    cmd.request_id, tuple(data[CanvasList.USERS]), "http://c/next" if loop else None
                )
            return base(cmd)

        return answer

    cmds = drive(engine, Tick(T0), paged(loop=False))
    assert len(of(IssueAssertion, cmds)) == 1
    engine2 = linked()
    drive(engine2, Tick(T0), paged(loop=True))
    assert "loops" in (engine2.status()[0].last_error or "")


def test_state_round_trips_and_in_flight_awards_come_back_uncertain() -> None:
    engine = linked()
    data = canvas_world({1: 9.0}, {1: "a@x.edu"})
    answer = serve(data)
    queue = engine.handle(Tick(T0))
    while queue and not any(isinstance(c, IssueAssertion) for c in queue):
        cmd = queue.pop(0)
        queue.extend(engine.handle(answer(cmd)))
    saved = engine.to_json()  # the award is in flight: crash now
    restored = SyncEngine.from_json(saved)
    assert restored.to_json() == saved
    assert restored.status()[0].uncertain_awards == 1
    data[CredentialsList.ASSERTIONS] = []  # it never committed
    cmds = drive(restored, Tick(T0 + 1), serve(data))
    assert of(IssueAssertion, cmds) == []  # it might still land: not before the window
    cmds = drive(restored, Tick(T0 + restored.policy.award_settle_window), serve(data))
    assert len(of(IssueAssertion, cmds)) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"x": 1}', "no 'format'"),
        ('{"format": 99}', "format 99"),
        ('{"format": 1, "courses": [{}]}', "damaged"),
    ],
)
def test_bad_state_is_refused_with_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(StateError, match=message):
        SyncEngine.from_json(text)


def test_a_stuck_round_times_out_and_the_course_is_retried() -> None:
    engine = linked(Policy(round_timeout=600))
    assert engine.handle(Tick(T0))  # reads go out and are never answered
    engine.handle(Tick(T0 + 600))
    (status,) = engine.status()
    assert status.failures == 1 and "timed out" in (status.last_error or "")


def flaky(answer: Answer, fail: Callable[[Command], bool], times: int) -> Answer:
    """Fail the first ``times`` commands matching ``fail`` with a transient error."""
    left = [times]

    def wrapped(cmd: Command) -> Event:
        if fail(cmd) and left[0] > 0:
            left[0] -= 1
            return RequestFailed(cmd.request_id, Failure.TRANSIENT, detail="503")
        return answer(cmd)

    return wrapped


def is_users(cmd: Command) -> bool:
    return isinstance(cmd, FetchCanvasPage) and cmd.resource is CanvasList.USERS


@pytest.mark.parametrize(("failures", "completes"), [(2, True), (3, False)])
def test_idempotent_requests_are_retried_within_a_bounded_budget(
    failures: int, completes: bool
) -> None:
    engine = linked(Policy(request_attempts=3))
    data = canvas_world({1: 9.0}, {1: "a@x.edu"})
    cmds = drive(engine, Tick(T0), flaky(serve(data), is_users, failures))
    assert len([c for c in cmds if is_users(c)]) == min(failures + 1, 3)
    (status,) = engine.status()
    assert (status.last_success_at == T0) is completes
    assert (status.failures == 0) is completes


def test_removing_a_member_who_is_already_gone_counts_as_done() -> None:
    engine = linked()
    data = canvas_world({}, {})
    data[CredentialsList.MEMBERS] = [{"canvasUserId": 1, "email": "a@x.edu", "earned": []}]
    data[CredentialsList.LEADERBOARD] = [{"canvasUserId": 1, "badges": 0}]
    gone = serve(
        data,
        writes=lambda c: (
            RequestFailed(c.request_id, Failure.NOT_FOUND)
            if isinstance(c, RemoveMember)
            else WriteAcknowledged(c.request_id)
        ),
    )
    cmds = drive(engine, Tick(T0), gone)
    (board,) = of(PublishLeaderboard, cmds)
    assert board.entries == () and engine.status()[0].failures == 0


@pytest.mark.parametrize(("positions", "awarded"), [((1, 2), True), ((2,), False)])
def test_course_completion_is_not_judged_on_a_module_list_with_a_gap(
    positions: tuple[int, ...], awarded: bool
) -> None:
    """Module 1 (incomplete) is lost to a drifting page when only position 2 arrives."""
    engine = linked(rules=(CourseCompleted("DONE"),))
    data = canvas_world({}, {1: "a@x.edu"})
    modules = {
        1: {
            "id": 401,
            "position": 1,
            "state": "completed",
            "items": [{"completion_requirement": {"type": "must_view"}}],
        },
        2: {
            "id": 402,
            "position": 2,
            "state": "completed",
            "items": [{"completion_requirement": {"type": "must_submit"}}],
        },
    }
    data[CanvasList.MODULES] = [modules[p] for p in positions]
    cmds = drive(engine, Tick(T0), serve(data))
    assert bool(of(IssueAssertion, cmds)) is awarded
    gaps = [q for q in engine.status()[0].quarantined if "gaps" in q.reason]
    assert bool(gaps) is not awarded


def test_a_student_whose_own_read_is_not_found_is_skipped_and_the_rest_is_written() -> None:
    """Student 2 left after the roster was read: their progress read answers 404."""
    engine = linked(rules=(CourseCompleted("DONE"),))
    data = canvas_world({}, {1: "a@x.edu", 2: "b@x.edu"})
    data[CanvasList.MODULES] = [
        {"id": 401, "position": 1, "state": "completed", "items": [{"completion_requirement": {}}]}
    ]
    ok = serve(data)

    def answer(cmd: Command) -> Event:
        if isinstance(cmd, FetchCanvasPage) and ("student_id", "2") in cmd.params:
            return RequestFailed(cmd.request_id, Failure.NOT_FOUND, detail="404")
        return ok(cmd)

    cmds = drive(engine, Tick(T0), answer)
    (status,) = engine.status()
    assert status.failures == 0 and status.last_success_at == T0
    assert [c.user_id for c in of(UpsertMember, cmds)] == [1]  # nothing written for 2
    assert [c.user_id for c in of(IssueAssertion, cmds)] == [1]
    (skipped,) = [q for q in status.quarantined if q.resource == "modules:2"]
    assert "skipped this round" in skipped.reason


@given(st.data())
def test_engine_state_round_trips_through_json_from_any_reachable_state(
    data: st.DataObject,
) -> None:
    """Drive the engine with random answers, failures and clock moves; at every point the
    saved state restores to an engine that saves exactly the same state."""
    engine = linked(Policy(request_attempts=2))
    engine.handle(CourseLinked(102, "ISS", "GRP2", (CourseGrade("B2", 50.0),)))
    world = canvas_world({1: 9.0, 2: 3.0}, {1: "a@x.edu", 2: None})
    answer = serve(world)
    now = T0
    outstanding = list(engine.handle(Tick(now)))
    for _ in range(data.draw(st.integers(1, 40))):
        choice = data.draw(st.sampled_from(["answer", "fail", "tick", "update"]))
        if choice in ("answer", "fail") and outstanding:
            cmd = outstanding.pop(data.draw(st.integers(0, len(outstanding) - 1)))
            failure = data.draw(st.sampled_from(list(Failure)))
            event = answer(cmd) if choice == "answer" else RequestFailed(cmd.request_id, failure)
            outstanding += engine.handle(event)
        elif choice == "update":
            outstanding += engine.handle(UpdateNowRequested(data.draw(st.sampled_from([101, 102]))))
        else:
            now += data.draw(st.sampled_from([1.0, 60.0, 600.0, 3600.0]))
            outstanding += engine.handle(Tick(now))
        saved = engine.to_json()
        assert SyncEngine.from_json(saved).to_json() == saved


def test_a_number_too_big_for_a_float_is_quarantined_not_raised() -> None:
    """Regression (issue 5): a JSON integer beyond any float (``10**400``) made ``float()``
    raise OverflowError out of ``handle``; it is a malformed score like any other."""
    engine = linked()
    data = canvas_world({1: 9.0, 2: 9.0}, {1: "a@x.edu", 2: "b@x.edu"})
    data[CanvasList.SUBMISSIONS][1]["score"] = 10**400
    cmds = drive(engine, Tick(T0), serve(data))
    assert [c.user_id for c in of(IssueAssertion, cmds)] == [1]
    (quarantined,) = engine.status()[0].quarantined
    assert quarantined.resource == "students/submissions"
    assert "not a finite number" in quarantined.reason


def test_a_quarantine_reason_quotes_a_huge_value_only_in_part() -> None:
    """Regression (issue 5): a reason quoted the whole offending value, so a megabyte string
    sent as an id ended up in the saved state and in ``credsync sync`` output."""
    engine = linked()
    data = canvas_world({1: 9.0}, {1: "a@x.edu"})
    data[CanvasList.USERS].append({"id": "9" * 1_000_000, "email": "z@x.edu"})
    cmds = drive(engine, Tick(T0), serve(data))
    assert [c.user_id for c in of(IssueAssertion, cmds)] == [1]
    (quarantined,) = engine.status()[0].quarantined
    assert quarantined.resource == "users" and "'id' must be an integer" in quarantined.reason
    assert len(quarantined.reason) < 200 and len(engine.to_json()) < 10_000


def missing_class(data: dict[object, list], badge: str) -> Answer:
    """Every request about ``badge`` answers 404: archived, deleted, or misnamed."""
    base = serve(data)

    def answer(cmd: Command) -> Event:
        if getattr(cmd, "badge_class", None) == badge:
            return RequestFailed(cmd.request_id, Failure.NOT_FOUND, detail="HTTP 404")
        return base(cmd)

    return answer


def test_a_missing_badge_class_blocks_only_itself_and_the_course_recovers() -> None:
    """A 404 class holds its awards (with the reason in ``status()``) and drops out of the
    members' progress; members, the other class's award and the leaderboard are written;
    the next full round after the class is back awards it."""
    other = AssignmentScore("B2", 7001, min_percent=10.0)
    engine = linked(rules=(RULE, other))
    data = canvas_world({1: 9.0}, {1: "a@x.edu"})
    cmds = drive(engine, Tick(T0), missing_class(data, "B1"))
    (status,) = engine.status()
    assert status.failures == 0 and status.last_success_at == T0
    assert [c.badge_class for c in of(IssueAssertion, cmds)] == ["B2"]
    assert [c.earned for c in of(UpsertMember, cmds)] == [("B2",)]
    assert of(PublishLeaderboard, cmds) and status.blocked_awards == 1
    assert any("B1 not found" in q.reason for q in status.quarantined)
    cmds = drive(engine, UpdateNowRequested(101), serve(data))  # the class is back
    assert [c.badge_class for c in of(IssueAssertion, cmds)] == ["B1"]
    assert engine.status()[0].blocked_awards == 0


def test_a_missing_class_aborting_the_round_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above fails on an engine that gives the whole round up for one class."""

    def abort(self: SyncEngine, course: object, rnd: object, badge: str) -> None:
        raise RoundAborted(f"badge class {badge}: HTTP 404")

    monkeypatch.setattr(SyncEngine, "_class_missing", abort)
    with pytest.raises(AssertionError):
        test_a_missing_badge_class_blocks_only_itself_and_the_course_recovers()


def test_a_full_round_revokes_a_later_duplicate_and_keeps_the_earliest() -> None:
    engine = linked()
    data = canvas_world({1: 9.0}, {1: "a@x.edu"})
    drive(engine, Tick(T0), serve(data))

    def award(entity_id: str, hour: int, revoked: bool = False) -> dict[str, object]:
        return {
            "entityId": entity_id,
            "badgeclass": "B1",
            "recipient": {"plaintextIdentity": "a@x.edu"},
            "revoked": revoked,
            "createdAt": f"2025-09-01T0{hour}:00:00Z",
        }

    data[CredentialsList.ASSERTIONS] = [award("LATE", 1), award("FIRST", 0), award("GONE", 2, True)]
    cmds = drive(engine, UpdateNowRequested(101), serve(data))
    assert [c.assertion_id for c in of(RevokeAssertion, cmds)] == ["LATE"]
    assert of(IssueAssertion, cmds) == []
    assert any("duplicate of assertion FIRST" in q.reason for q in engine.status()[0].quarantined)


def test_an_unreadable_leaderboard_row_makes_a_full_round_publish_again() -> None:
    """A row the parser cannot read (a hand edit naming no real user) means the board shown
    is not what the readable rows say: it is published again, not trusted."""
    engine = linked()
    data = canvas_world({}, {1: "a@x.edu"})
    drive(engine, Tick(T0), serve(data))
    data[CredentialsList.MEMBERS] = [{"canvasUserId": 1, "email": "a@x.edu", "name": "S1"}]
    data[CredentialsList.LEADERBOARD] = [
        {"canvasUserId": 1, "badges": 0},
        {"canvasUserId": 0, "badges": 1},
    ]
    cmds = drive(engine, UpdateNowRequested(101), serve(data))
    assert [c.entries for c in of(PublishLeaderboard, cmds)] == [(LeaderboardEntry(1, 0),)]


def test_a_refused_award_leaves_nothing_to_wait_for() -> None:
    """Found by ``credsync fuzz``: an award POST answered 429 was stored nowhere, so when a
    later check of it is cut short, the award is pending again, not uncertain (an uncertain
    one would wait out the settle window, and "update now" could not repair it). A throttled
    award waits in its round and is checked again before it is sent; a throttled check
    waits too, so the check here is cut short by failing for good instead."""
    engine = linked()
    data = canvas_world({1: 9.0}, {1: "a@x.edu"})
    throttled = serve(
        data,
        writes=lambda c: (
            RequestFailed(c.request_id, Failure.THROTTLED, 1.0)
            if isinstance(c, IssueAssertion)
            else WriteAcknowledged(c.request_id)
        ),
    )
    drive(engine, Tick(T0), throttled)
    base = serve(data)

    def checks_fail(cmd: Command) -> Event:
        if isinstance(cmd, FetchCredentialsPage) and ("recipient", "a@x.edu") in cmd.params:
            return RequestFailed(cmd.request_id, Failure.TRANSIENT)
        return base(cmd)

    drive(engine, UpdateNowRequested(101), checks_fail)
    (status,) = engine.status()
    assert status.uncertain_awards == 0 and status.pending_awards == 1
    cmds = drive(engine, UpdateNowRequested(101), serve(data))
    assert len(of(IssueAssertion, cmds)) == 1
