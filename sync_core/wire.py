"""The sans-IO mapping between engine commands/events and HTTP requests/responses.

Every adapter (the in-memory simulator transport, a real ``httpx`` client) builds the same
request for a command and reads a response back into the same event, so this is the one
place where URLs, bodies, ``Link`` parsing and the status-to-:class:`Failure` policy live.
It performs no I/O: callers hand in plain values and get plain values back.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, urlencode

from sync_core.commands import (
    Command,
    CredentialsList,
    FetchCanvasPage,
    FetchCredentialsPage,
    IssueAssertion,
    Params,
    PublishLeaderboard,
    RemoveMember,
    RevokeAssertion,
    UpsertMember,
)
from sync_core.events import (
    Event,
    Failure,
    PageReceived,
    RequestFailed,
    WriteAcknowledged,
)

CREDENTIALS_PAGE_SIZE = "500"
"""Badgr clamps ``num`` to 1..500; asking for the maximum keeps a full read to few pages."""

TransportError = Literal["timeout", "reset"]


@dataclass(frozen=True)
class HttpRequest:
    """A request as any HTTP client would send it; credentials are attached by the adapter,
    so a logged request never carries a token."""

    method: str
    url: str
    json: object | None = None


@dataclass(frozen=True)
class HttpResponse:
    """A response as received: ``body`` is the decoded JSON, or the text when it was not
    JSON (Canvas's throttle answer is plain text)."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: object = None

    def header(self, name: str) -> str | None:
        return header(self.headers, name)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Header names are case-insensitive in HTTP, and servers differ in spelling."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def is_write(command: Command) -> bool:
    """Writes are the requests whose failure may hide a commit (see ``Failure.AMBIGUOUS``)."""
    return not isinstance(command, FetchCanvasPage | FetchCredentialsPage)


def request_for(command: Command, canvas_base: str, credentials_base: str) -> HttpRequest:
    """The HTTP request that carries out ``command`` against the two services' base URLs."""
    canvas = canvas_base.rstrip("/")
    cred = credentials_base.rstrip("/")
    if isinstance(command, FetchCanvasPage):
        if command.cursor is not None:
            return HttpRequest("GET", command.cursor)
        path = f"{canvas}/api/v1/courses/{command.course_id}/{command.resource.value}"
        return HttpRequest("GET", _with_query(path, command.params))
    if isinstance(command, FetchCredentialsPage):
        if command.cursor is not None:
            return HttpRequest("GET", command.cursor)
        return HttpRequest("GET", _credentials_list_url(cred, command))
    if isinstance(command, IssueAssertion):
        url = f"{cred}/v2/badgeclasses/{_seg(command.badge_class)}/assertions"
        award: dict[str, object] = {"recipient": {"identity": command.email, "type": "email"}}
        if not command.allow_duplicates:
            award["allowDuplicateAwards"] = False
        return HttpRequest("POST", url, award)
    if isinstance(command, RevokeAssertion):
        url = f"{cred}/v2/assertions/{_seg(command.assertion_id)}"
        return HttpRequest("DELETE", url, {"revocation_reason": command.reason})
    if isinstance(command, UpsertMember):
        url = f"{_group_url(cred, command.issuer_id, command.group_id)}/members/{command.user_id}"
        member = {"email": command.email, "name": command.name, "earned": list(command.earned)}
        return HttpRequest("PUT", url, member)
    if isinstance(command, RemoveMember):
        url = f"{_group_url(cred, command.issuer_id, command.group_id)}/members/{command.user_id}"
        return HttpRequest("DELETE", url)
    return _leaderboard_request(cred, command)


def event_for(command: Command, response: HttpResponse) -> Event:
    """The event an adapter reports once ``response`` to ``command`` has arrived."""
    if not 200 <= response.status < 300:
        return failure_for_status(command, response)
    if isinstance(command, FetchCanvasPage):
        records = _canvas_records(response.body)
        return PageReceived(command.request_id, records, _next_link(response))
    if isinstance(command, FetchCredentialsPage):
        records = _credentials_records(response.body)
        return PageReceived(command.request_id, records, _next_link(response))
    return WriteAcknowledged(command.request_id, _first_result(response.body))


def failure_for_status(command: Command, response: HttpResponse) -> RequestFailed:
    """Classify a non-2xx answer.

    A 5xx after a write is AMBIGUOUS because a gateway can fail after the backend committed;
    a 5xx on a read is merely TRANSIENT. Canvas signals throttling with 403 plus a plain-text
    body on older versions and 429 on newer ones, so a 403 is read before being called AUTH.
    """
    status = response.status
    rid = command.request_id
    if status == 429 or (status == 403 and "Rate Limit Exceeded" in _text(response.body)):
        retry_after = _retry_after(response.header("Retry-After"))
        note = "" if retry_after is None else f", retry after {retry_after:g}s"
        return RequestFailed(rid, Failure.THROTTLED, retry_after, f"HTTP {status} throttled{note}")
    if status in (401, 403):
        return RequestFailed(rid, Failure.AUTH, detail=f"HTTP {status} not authorised")
    if status == 404:
        return RequestFailed(rid, Failure.NOT_FOUND, detail="HTTP 404 not found")
    if status == 400 and isinstance(command, IssueAssertion) and _duplicate(response.body):
        return RequestFailed(rid, Failure.DUPLICATE, detail="HTTP 400 already awarded")
    if 400 <= status < 500 and status != 408:
        return RequestFailed(rid, Failure.REJECTED, detail=f"HTTP {status} rejected")
    if is_write(command):
        return RequestFailed(rid, Failure.AMBIGUOUS, detail=f"HTTP {status} outcome unknown")
    return RequestFailed(rid, Failure.TRANSIENT, detail=f"HTTP {status} server error")


def _duplicate(body: object) -> bool:
    """Badgr's refusal of an award the recipient already holds: its message is the one
    ``validationErrors`` entry (credentials-api.md, "Duplicates and idempotency")."""
    errors = body.get("validationErrors") if isinstance(body, Mapping) else None
    return isinstance(errors, list) and any(
        isinstance(e, str) and "previous award of this badge already exists" in e for e in errors
    )


def failure_for_transport_error(command: Command, kind: TransportError) -> RequestFailed:
    """No response at all: a write may still have committed, so it is AMBIGUOUS."""
    failure = Failure.AMBIGUOUS if is_write(command) else Failure.TRANSIENT
    return RequestFailed(command.request_id, failure, detail=f"transport {kind}")


_LINK_ENTRY = re.compile(r"<([^>]*)>([^<]*)")
_REL = re.compile(r"""\brel\s*=\s*(?:"([^"]*)"|([^\s;,]+))""", re.IGNORECASE)


def parse_link_header(value: str) -> dict[str, str]:
    """Map each ``rel`` to its URL.

    Canvas joins entries with ``","`` and Badgr with ``", "``; matching on ``<url>`` keeps
    commas inside URLs harmless. A ``rel`` may list several space-separated names; the
    first entry for a name wins.
    """
    links: dict[str, str] = {}
    for url, params in _LINK_ENTRY.findall(value):
        match = _REL.search(params)
        if match is None:
            continue
        for rel in (match.group(1) or match.group(2)).lower().split():
            links.setdefault(rel, url.strip())
    return links


def _next_link(response: HttpResponse) -> str | None:
    value = response.header("Link")
    return None if value is None else parse_link_header(value).get("next")


def _canvas_records(body: object) -> tuple[object, ...]:
    """Canvas lists are bare arrays; anything else is passed on as one record so the engine
    quarantines it instead of silently reading an empty page."""
    return tuple(body) if isinstance(body, list) else (body,)


def _credentials_records(body: object) -> tuple[object, ...]:
    if isinstance(body, Mapping):
        result = body.get("result")
        if isinstance(result, list):
            return tuple(result)
    return (body,)


def _first_result(body: object) -> object:
    if isinstance(body, Mapping):
        result = body.get("result")
        if isinstance(result, list) and result:
            return result[0]
    return None


def _text(body: object) -> str:
    if isinstance(body, str):
        return body
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return json.dumps(body, default=str)


def _retry_after(value: str | None) -> float | None:
    """Only the delay-seconds form is honoured; an HTTP-date needs a clock this module lacks."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _seg(value: str) -> str:
    return quote(value, safe="")


def _with_query(path: str, params: Params) -> str:
    return f"{path}?{urlencode(params)}" if params else path


def _group_url(cred: str, issuer_id: str, group_id: str) -> str:
    return f"{cred}/v2/issuers/{_seg(issuer_id)}/recipient-groups/{_seg(group_id)}"


def _credentials_list_url(cred: str, command: FetchCredentialsPage) -> str:
    if command.resource is CredentialsList.LEADERBOARD:
        return _with_query(
            f"{_group_url(cred, command.issuer_id, command.group_id)}/leaderboard",
            command.params,
        )
    params: Params = (("num", CREDENTIALS_PAGE_SIZE), *command.params)
    if command.resource is CredentialsList.MEMBERS:
        base = f"{_group_url(cred, command.issuer_id, command.group_id)}/members"
        return _with_query(base, params)
    if command.badge_class is None:
        raise ValueError("an ASSERTIONS fetch needs a badge_class")
    return _with_query(f"{cred}/v2/badgeclasses/{_seg(command.badge_class)}/assertions", params)


def _leaderboard_request(cred: str, command: PublishLeaderboard) -> HttpRequest:
    url = f"{_group_url(cred, command.issuer_id, command.group_id)}/leaderboard"
    entries = [{"canvasUserId": e.user_id, "badges": e.badges} for e in command.entries]
    return HttpRequest("PUT", url, {"entries": entries})


__all__ = [
    "HttpRequest",
    "HttpResponse",
    "event_for",
    "failure_for_status",
    "failure_for_transport_error",
    "is_write",
    "parse_link_header",
    "request_for",
]
