"""The sans-IO wire mapping: command -> request, response -> event."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
from sync_core.events import Failure, PageReceived, RequestFailed, WriteAcknowledged
from sync_core.wire import (
    HttpResponse,
    event_for,
    failure_for_transport_error,
    is_write,
    parse_link_header,
    request_for,
)

CANVAS = "https://canvas.example.edu"
CRED = "https://api.badgr.test/"

READ = FetchCanvasPage(1, 7, CanvasList.ENROLLMENTS, (("state[]", "active"), ("per_page", "100")))
CRED_READ = FetchCredentialsPage(
    2, 7, CredentialsList.ASSERTIONS, "iss", "grp", "bc1", (("recipient", "a@x.edu"),)
)
ISSUE = IssueAssertion(3, 7, "bc1", 9, "Ada@X.edu")
UPSERT = UpsertMember(4, 7, "iss", "grp", 9, "ada@x.edu", "Ada", ("bc1", "bc2"))
REMOVE = RemoveMember(5, 7, "iss", "grp", 9)
PUBLISH = PublishLeaderboard(6, 7, "iss", "grp", (LeaderboardEntry(9, 2), LeaderboardEntry(8, 1)))
WRITES: list[Command] = [ISSUE, UPSERT, REMOVE, PUBLISH]
READS: list[Command] = [READ, CRED_READ]


def test_canvas_list_url_keeps_rails_array_params_in_order() -> None:
    req = request_for(READ, CANVAS, CRED)
    parts = urlsplit(req.url)
    assert (req.method, req.json) == ("GET", None)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://canvas.example.edu/api/v1/courses/7/enrollments"
    )
    assert parse_qsl(parts.query) == [("state[]", "active"), ("per_page", "100")]


def test_canvas_submissions_path_and_no_query_without_params() -> None:
    cmd = FetchCanvasPage(1, 7, CanvasList.SUBMISSIONS, ())
    assert request_for(cmd, CANVAS, CRED).url == (
        "https://canvas.example.edu/api/v1/courses/7/students/submissions"
    )


def test_cursor_is_used_verbatim() -> None:
    cursor = "https://canvas.example.edu/api/v1/courses/7/enrollments?page=bookmark:abc&per_page=10"
    cmd = FetchCanvasPage(1, 7, CanvasList.ENROLLMENTS, (("x", "y"),), cursor=cursor)
    assert request_for(cmd, CANVAS, CRED).url == cursor
    cred_cursor = "https://api.badgr.test/v2/whatever?cursor=abc"
    cred = FetchCredentialsPage(
        2, 7, CredentialsList.MEMBERS, "i", "g", None, (), cursor=cred_cursor
    )
    assert request_for(cred, CANVAS, CRED).url == cred_cursor


def test_credentials_list_urls() -> None:
    req = request_for(CRED_READ, CANVAS, CRED)
    parts = urlsplit(req.url)
    assert parts.path == "/v2/badgeclasses/bc1/assertions"
    assert parse_qsl(parts.query) == [("num", "500"), ("recipient", "a@x.edu")]
    members = FetchCredentialsPage(1, 7, CredentialsList.MEMBERS, "iss", "grp", None, ())
    assert request_for(members, CANVAS, CRED).url == (
        "https://api.badgr.test/v2/issuers/iss/recipient-groups/grp/members?num=500"
    )
    board = FetchCredentialsPage(1, 7, CredentialsList.LEADERBOARD, "iss", "grp", None, ())
    assert request_for(board, CANVAS, CRED).url == (
        "https://api.badgr.test/v2/issuers/iss/recipient-groups/grp/leaderboard"
    )


def test_assertions_fetch_without_badge_class_is_a_programming_error() -> None:
    cmd = FetchCredentialsPage(1, 7, CredentialsList.ASSERTIONS, "i", "g", None, ())
    with pytest.raises(ValueError):
        request_for(cmd, CANVAS, CRED)


def test_write_requests() -> None:
    group = "https://api.badgr.test/v2/issuers/iss/recipient-groups/grp"
    issue = request_for(ISSUE, CANVAS, CRED)
    assert (issue.method, issue.url) == (
        "POST",
        "https://api.badgr.test/v2/badgeclasses/bc1/assertions",
    )
    assert issue.json == {
        "recipient": {"identity": "Ada@X.edu", "type": "email"},
        "allowDuplicateAwards": False,
    }
    lenient = request_for(replace(ISSUE, allow_duplicates=True), CANVAS, CRED)
    assert lenient.json == {"recipient": {"identity": "Ada@X.edu", "type": "email"}}
    revoke = request_for(RevokeAssertion(7, 101, "as/1", "duplicate"), CANVAS, CRED)
    assert (revoke.method, revoke.url) == ("DELETE", "https://api.badgr.test/v2/assertions/as%2F1")
    assert revoke.json == {"revocation_reason": "duplicate"}
    upsert = request_for(UPSERT, CANVAS, CRED)
    assert (upsert.method, upsert.url) == ("PUT", f"{group}/members/9")
    assert upsert.json == {"email": "ada@x.edu", "name": "Ada", "earned": ["bc1", "bc2"]}
    remove = request_for(REMOVE, CANVAS, CRED)
    assert (remove.method, remove.url, remove.json) == ("DELETE", f"{group}/members/9", None)
    publish = request_for(PUBLISH, CANVAS, CRED)
    assert (publish.method, publish.url) == ("PUT", f"{group}/leaderboard")
    assert publish.json == {
        "entries": [{"canvasUserId": 9, "badges": 2}, {"canvasUserId": 8, "badges": 1}]
    }


def test_a_refused_duplicate_award_is_told_apart_from_other_rejections() -> None:
    """Badgr's 400 for ``allowDuplicateAwards: false`` means the award is there; any other
    400 is a rejection of this award."""
    body = {
        "status": {"success": False, "description": "bad request"},
        "validationErrors": ["A previous award of this badge already exists for this recipient."],
        "fieldErrors": {},
        "result": [],
    }
    duplicate = event_for(ISSUE, HttpResponse(400, {}, body))
    assert isinstance(duplicate, RequestFailed) and duplicate.failure is Failure.DUPLICATE
    other = event_for(ISSUE, HttpResponse(400, {}, {**body, "validationErrors": ["nope"]}))
    assert isinstance(other, RequestFailed) and other.failure is Failure.REJECTED
    upsert = event_for(UPSERT, HttpResponse(400, {}, body))
    assert isinstance(upsert, RequestFailed) and upsert.failure is Failure.REJECTED


def test_path_ids_are_escaped() -> None:
    cmd = IssueAssertion(1, 7, "a/b c", 9, "x@y.z")
    assert request_for(cmd, CANVAS, CRED).url.endswith("/v2/badgeclasses/a%2Fb%20c/assertions")


def test_is_write() -> None:
    assert [is_write(c) for c in READS] == [False, False]
    assert all(is_write(c) for c in WRITES)


# --------------------------------------------------------------------------- Link


def test_link_canvas_format() -> None:
    value = (
        '<https://c.test/api/v1/x?page=1&per_page=10>; rel="current",'
        '<https://c.test/api/v1/x?page=2&per_page=10>; rel="next",'
        '<https://c.test/api/v1/x?page=1&per_page=10>; rel="first"'
    )
    links = parse_link_header(value)
    assert links["next"] == "https://c.test/api/v1/x?page=2&per_page=10"
    assert set(links) == {"current", "next", "first"}


def test_link_badgr_format_and_oddities() -> None:
    value = '<https://b.test/v2/a?cursor=x,y>; rel="next", <https://b.test/v2/a?cursor=p>; rel=prev'
    assert parse_link_header(value) == {
        "next": "https://b.test/v2/a?cursor=x,y",
        "prev": "https://b.test/v2/a?cursor=p",
    }
    assert parse_link_header('<u1>; REL="Next Last"') == {"next": "u1", "last": "u1"}
    assert parse_link_header("garbage, <u>; title=x") == {}


@given(st.lists(st.sampled_from(["current", "next", "prev", "first", "last"]), unique=True))
def test_link_round_trip(rels: list[str]) -> None:
    for sep in (",", ", "):
        value = sep.join(
            f'<https://h.test/p?page={i}&a=b,c>; rel="{r}"' for i, r in enumerate(rels)
        )
        assert parse_link_header(value) == {
            r: f"https://h.test/p?page={i}&a=b,c" for i, r in enumerate(rels)
        }


# --------------------------------------------------------------------------- events


def test_canvas_page_with_next_from_lowercase_header() -> None:
    resp = HttpResponse(200, {"link": '<https://c/x?page=2>; rel="next"'}, [{"id": 1}, {"id": 2}])
    assert event_for(READ, resp) == PageReceived(1, ({"id": 1}, {"id": 2}), "https://c/x?page=2")


def test_canvas_non_list_body_is_one_malformed_record() -> None:
    resp = HttpResponse(200, {}, {"errors": "odd"})
    assert event_for(READ, resp) == PageReceived(1, ({"errors": "odd"},), None)


def test_credentials_page_reads_result() -> None:
    body = {"status": {"success": True}, "result": [{"entityId": "a"}]}
    link = {"Link": '<https://b/next>; rel="next", <https://b/prev>; rel="prev"'}
    assert event_for(CRED_READ, HttpResponse(200, link, body)) == PageReceived(
        2, ({"entityId": "a"},), "https://b/next"
    )
    assert event_for(CRED_READ, HttpResponse(200, {}, ["x"])) == PageReceived(2, (["x"],), None)


def test_write_acknowledged_record() -> None:
    body = {"status": {"success": True}, "result": [{"entityId": "a"}]}
    assert event_for(ISSUE, HttpResponse(201, {}, body)) == WriteAcknowledged(3, {"entityId": "a"})
    assert event_for(REMOVE, HttpResponse(204, {}, None)) == WriteAcknowledged(5, None)
    assert event_for(UPSERT, HttpResponse(200, {}, {"result": []})) == WriteAcknowledged(4, None)


@pytest.mark.parametrize(
    ("status", "body", "read_failure", "write_failure"),
    [
        (401, {"errors": [{"message": "Invalid access token."}]}, Failure.AUTH, Failure.AUTH),
        (403, {"errors": [{"message": "not authorized"}]}, Failure.AUTH, Failure.AUTH),
        (404, {}, Failure.NOT_FOUND, Failure.NOT_FOUND),
        (400, {}, Failure.REJECTED, Failure.REJECTED),
        (409, {}, Failure.REJECTED, Failure.REJECTED),
        (422, {}, Failure.REJECTED, Failure.REJECTED),
        (500, {}, Failure.TRANSIENT, Failure.AMBIGUOUS),
        (502, "Bad Gateway", Failure.TRANSIENT, Failure.AMBIGUOUS),
        (503, None, Failure.TRANSIENT, Failure.AMBIGUOUS),
    ],
)
def test_status_mapping(
    status: int, body: object, read_failure: Failure, write_failure: Failure
) -> None:
    read = event_for(READ, HttpResponse(status, {}, body))
    write = event_for(ISSUE, HttpResponse(status, {}, body))
    assert isinstance(read, RequestFailed) and isinstance(write, RequestFailed)
    assert (read.failure, write.failure) == (read_failure, write_failure)
    assert str(status) in read.detail


def test_throttling_variants() -> None:
    canvas_403 = HttpResponse(403, {"retry-after": "2.5"}, "403 Forbidden (Rate Limit Exceeded)\n")
    assert event_for(READ, canvas_403) == RequestFailed(
        1, Failure.THROTTLED, 2.5, "HTTP 403 throttled, retry after 2.5s"
    )
    plain_429 = event_for(ISSUE, HttpResponse(429, {}, None))
    assert isinstance(plain_429, RequestFailed)
    assert (plain_429.failure, plain_429.retry_after) == (Failure.THROTTLED, None)
    json_403 = HttpResponse(403, {"Retry-After": "soon"}, {"message": "Rate Limit Exceeded"})
    failed = event_for(READ, json_403)
    assert isinstance(failed, RequestFailed)
    assert (failed.failure, failed.retry_after) == (Failure.THROTTLED, None)


def test_detail_never_echoes_the_body() -> None:
    secret = "Bearer canvas-token-000001"
    failed = event_for(ISSUE, HttpResponse(401, {"WWW-Authenticate": secret}, secret))
    assert isinstance(failed, RequestFailed) and "token" not in failed.detail


def test_transport_errors() -> None:
    for kind in ("timeout", "reset"):
        assert failure_for_transport_error(READ, kind).failure is Failure.TRANSIENT
        for write in WRITES:
            assert failure_for_transport_error(write, kind).failure is Failure.AMBIGUOUS


@given(st.integers(100, 599), st.sampled_from(READS + WRITES))
def test_every_status_maps_to_exactly_one_event(status: int, command: Command) -> None:
    event = event_for(command, HttpResponse(status, {}, None))
    if 200 <= status < 300:
        assert not isinstance(event, RequestFailed)
    else:
        assert isinstance(event, RequestFailed) and event.request_id == command.request_id
