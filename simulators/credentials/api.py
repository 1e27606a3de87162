"""The Badgr v2 endpoints the sync uses, plus the modelled recipient-group API.

Fidelity follows ``credentials-api.md``: the ``status``/``result`` envelope (``result`` is
always a list), ``validationErrors``/``fieldErrors`` on errors, 404 rather than 403 for
anything not found or not permitted, ``num`` cursor pages ordered newest first, revoked
awards hidden unless asked for, and email recipients lowercased. Bad input never raises.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Final, TypeVar

from simulators.api import ApiRequest, json_response, link_header, parse_id
from simulators.clock import iso, iso_micro
from simulators.credentials.model import (
    Assertion,
    BadgeClass,
    Credentials,
    Group,
    Issuer,
    LeaderboardRow,
    Member,
    normalise_identity,
)
from simulators.tokens import Service, TokenStore, basic_credentials
from sync_core.wire import HttpResponse

T = TypeVar("T")
Json = dict[str, object]
SortKey = tuple[float, int]

CONTENT_TYPE: Final = {"Content-Type": "application/ld+json"}
MAX_NUM: Final = 500
RECIPIENT_TYPES: Final = frozenset({"email", "url", "telephone", "openBadgeId"})
_TRUE: Final = frozenset({"true", "1"})
REQUIRED: Final = "This field is required."
NON_FIELD: Final = "non_field_errors"
DUPLICATE_AWARD: Final = "A previous award of this badge already exists for this recipient."
CREATED_BY: Final = "c3lzdGVtLXVzZXItMDAwMDAx"
PUBLIC_CLIENT: Final = "public"
"""django-oauth-toolkit's built-in client, used when a token request names none."""
TOKEN_SCOPE: Final = "rw:profile rw:issuer rw:backpack"
QUERY_GRANT: Final = "Token grant parameters must be sent in post body, not query parameters"

Route = tuple[frozenset[str], Callable[[ApiRequest], HttpResponse]]
AwardFields = tuple[str, str, str | None]
"""A valid award's (normalised identity, recipient type, narrative)."""
GET: Final = frozenset({"GET"})


def ok(
    result: list[object],
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    description: str = "ok",
) -> HttpResponse:
    body = {"status": {"success": True, "description": description}, "result": result}
    return json_response(status, body, {**CONTENT_TYPE, **(headers or {})})


def error(
    status: int,
    description: str,
    field_errors: object | None = None,
    validation_errors: list[str] | None = None,
) -> HttpResponse:
    body = {
        "status": {"success": False, "description": description},
        "validationErrors": validation_errors or [],
        "fieldErrors": {} if field_errors is None else field_errors,
        "result": [],
    }
    return json_response(status, body, CONTENT_TYPE)


def not_found() -> HttpResponse:
    return error(404, "entity not found or insufficient privileges")


def bad_request(
    field_errors: Mapping[str, list[str]] | None = None, validation_errors: list[str] | None = None
) -> HttpResponse:
    return error(400, "bad request", dict(field_errors or {}), validation_errors)


class CredentialsApi:
    """Request handler over one :class:`Credentials` model."""

    def __init__(self, credentials: Credentials, tokens: TokenStore) -> None:
        self.credentials = credentials
        self.tokens = tokens

    def handle(self, request: ApiRequest) -> HttpResponse:
        route = self._route(request.segments)
        if route is None:
            return not_found()
        methods, action = route
        if not self.tokens.validate(Service.CREDENTIALS, request.bearer()):
            return error(401, "no valid auth token found")
        method = request.method.upper()
        if method not in methods:
            # DRF's handler for other exceptions: "miscellaneous error", fieldErrors a string.
            return error(405, "miscellaneous error", f'Method "{method}" not allowed.')
        owner = self._owning_issuer(request.segments)
        if owner is not None and not self._sees(request, owner):
            return not_found()  # Badgr hides what a token may not touch behind a 404
        return action(request)

    def _sees(self, request: ApiRequest, issuer_id: str) -> bool:
        """Whether the request's token may see ``issuer_id`` and everything under it."""
        visible = self.tokens.issuers_of(request.bearer())
        return visible is None or issuer_id in visible

    def _owning_issuer(self, segs: tuple[str, ...]) -> str | None:
        """The issuer that owns the entity a routed path names; ``None`` for collections.
        Only called once :meth:`_route` found the entity, so every lookup succeeds."""
        creds = self.credentials
        match segs:
            case ("v2", "issuers", issuer_id, *_):
                return issuer_id
            case ("v2", "badgeclasses", badge_id, *_):
                return creds.badge_classes[badge_id].issuer_id
            case ("v2", "assertions", assertion_id) if assertion_id != "revoke":
                return creds.assertions[assertion_id].issuer_id
        return None

    def token_grant(self, request: ApiRequest, form: Mapping[str, str]) -> HttpResponse:
        """``POST /o/token`` as django-oauth-toolkit answers it for Badgr: parameters only
        in a form body; ``grant_type`` defaults to ``password``; without client credentials
        the ``public`` client is used. A refresh rotates both tokens. ``invalid_grant`` is
        401 as recorded from api.badgr.io (oauthlib 2.x), not oauthlib 3's 400.
        ``client_credentials`` gets no refresh token, as oauthlib never issues one there."""
        if request.query:
            return _oauth_error(400, QUERY_GRANT)
        basic = basic_credentials(request.header("Authorization"))
        client_id, secret = basic if basic else (form.get("client_id"), form.get("client_secret"))
        if client_id is not None and client_id != PUBLIC_CLIENT:
            known = self.tokens.client_secret(Service.CREDENTIALS, client_id)
            if known is None:
                return _oauth_error(400, "invalid client_id")
            if secret != known:
                return _oauth_error(400, "invalid client_secret")
        grant_type = form.get("grant_type", "password")
        if grant_type == "password":
            username, password = form.get("username"), form.get("password")
            if username is None or password is None:
                missing = "username" if username is None else "password"
                return _oauth_error(
                    400, "invalid_request", f"Request is missing {missing} parameter."
                )
            if not self.tokens.check_login(username, password):
                return _oauth_error(401, "invalid_grant")
            staff_of = self.tokens.login_issuers(username)
            return _token_response(*self.tokens.issue_pair(Service.CREDENTIALS, None, staff_of))
        if grant_type == "refresh_token":
            grant = self.tokens.grant_refresh(Service.CREDENTIALS, form.get("refresh_token", ""))
            if grant is None:
                return _oauth_error(401, "invalid_grant")
            return _token_response(grant[0], grant[1])
        if grant_type == "client_credentials":
            if client_id is None or client_id == PUBLIC_CLIENT:
                return _oauth_error(401, "invalid_client")
            return _token_response(self.tokens.issue(Service.CREDENTIALS), None)
        return _oauth_error(400, "unsupported_grant_type")

    def _route(self, segs: tuple[str, ...]) -> Route | None:
        creds = self.credentials
        match segs:
            case ("v2", "issuers"):
                return GET, lambda r: ok(
                    [
                        self._issuer_json(i, r)
                        for i in creds.issuers.values()
                        if self._sees(r, i.entity_id)
                    ]
                )
            case ("v2", "issuers", issuer_id):
                if issuer_id not in creds.issuers:
                    return None
                return GET, lambda r: ok([self._issuer_json(creds.issuers[issuer_id], r)])
            case ("v2", "issuers", issuer_id, "badgeclasses"):
                if issuer_id not in creds.issuers:
                    return None
                return GET, lambda r: self._badge_classes(r, issuer_id)
            case ("v2", "badgeclasses"):  # every class of every issuer the token sees
                return GET, lambda r: self._badge_classes(r, None)
            case ("v2", "badgeclasses", badge_id, *rest) if creds.available(badge_id):
                return self._badge_class_route(badge_id, tuple(rest))
            case ("v2", "assertions", "revoke"):
                return frozenset({"POST"}), self._batch_revoke
            case ("v2", "assertions", assertion_id):
                if assertion_id not in creds.assertions:
                    return None
                return frozenset({"GET", "DELETE"}), lambda r: self._assertion(r, assertion_id)
            case ("v2", "issuers", issuer_id, "recipient-groups", group_id, *rest):
                group = creds.groups.get(group_id)
                if group is None or group.issuer_id != issuer_id:
                    return None
                return self._group_route(group, tuple(rest))
        return None

    def _badge_class_route(self, badge_id: str, rest: tuple[str, ...]) -> Route | None:
        match rest:
            case ():
                badge = self.credentials.badge_classes[badge_id]
                return GET, lambda r: ok([self._badge_class_json(badge, r)])
            case ("assertions",):
                return frozenset({"GET", "POST"}), lambda r: self._assertions(r, badge_id)
            case ("issue",):
                return frozenset({"POST"}), lambda r: self._batch_award(r, badge_id)
        return None

    def _group_route(self, group: Group, rest: tuple[str, ...]) -> Route | None:
        match rest:
            case ("members",):
                return frozenset({"GET"}), lambda r: self._members(r, group)
            case ("members", raw_user):
                user_id = parse_id(raw_user)
                if user_id is None:
                    return None
                return frozenset({"PUT", "DELETE"}), lambda r: self._member(r, group, user_id)
            case ("leaderboard",):
                return frozenset({"GET", "PUT"}), lambda r: self._leaderboard(r, group)
        return None

    # ------------------------------------------------------------------ assertions

    def _assertions(self, request: ApiRequest, badge_id: str) -> HttpResponse:
        if request.method.upper() == "POST":
            return self._award(request, badge_id)
        now = self.credentials.clock.now
        recipients = set(request.params("recipient"))
        with_revoked = (request.param("include_revoked") or "").lower() in _TRUE
        with_expired = (request.param("include_expired") or "").lower() in _TRUE
        rows = [
            a
            for a in reversed(self.credentials.assertions_for(badge_id))
            if (with_revoked or not a.revoked)
            and (with_expired or not a.expired(now))
            and (not recipients or a.identity in recipients)
        ]
        return _paged(request, rows, lambda a: (a.created_at, a.seq), self._assertion_json)

    def _award(self, request: ApiRequest, badge_id: str) -> HttpResponse:
        fields = self._award_fields(request.json, badge_id)
        if isinstance(fields, dict):
            field_errors = {k: v for k, v in fields.items() if k != NON_FIELD}
            return bad_request(field_errors, fields.get(NON_FIELD))
        assertion = self.credentials.award(badge_id, *fields)
        return ok([self._assertion_json(assertion, request)], status=201)

    def _batch_award(self, request: ApiRequest, badge_id: str) -> HttpResponse:
        """All or nothing: every item is validated (against stored awards, not against
        each other) before any is saved; on failure ``fieldErrors`` is a list aligned with
        the items, ``{}`` for each valid one."""
        body = request.json
        items = body.get("assertions") if isinstance(body, Mapping) else None
        if not isinstance(items, list):
            return bad_request({"assertions": [REQUIRED]})
        checked = [self._award_fields(item, badge_id) for item in items]
        if any(isinstance(fields, dict) for fields in checked):
            return error(400, "bad request", [f if isinstance(f, dict) else {} for f in checked])
        created = [
            self.credentials.award(badge_id, *fields)
            for fields in checked
            if not isinstance(fields, dict)
        ]
        return ok([self._assertion_json(a, request) for a in created], status=201)

    def _award_fields(self, body: object, badge_id: str) -> AwardFields | dict[str, list[str]]:
        """One award's fields, or its errors (``non_field_errors`` for whole-item ones)."""
        if not isinstance(body, Mapping):
            return {NON_FIELD: ["Invalid data. Expected a dictionary."]}
        recipient = _recipient(body.get("recipient"))
        if isinstance(recipient, str):
            return {"recipient": [recipient]}
        narrative = body.get("narrative")
        if narrative is not None and not isinstance(narrative, str):
            return {"narrative": ["Not a valid string."]}
        allow_duplicates = body.get("allowDuplicateAwards", True)
        if not isinstance(allow_duplicates, bool):
            return {"allowDuplicateAwards": ["Must be a valid boolean."]}
        raw_identity, kind = recipient
        if not allow_duplicates and self._live_award_exists(badge_id, raw_identity):
            return {NON_FIELD: [DUPLICATE_AWARD]}
        return normalise_identity(raw_identity, kind), kind, narrative

    def _live_award_exists(self, badge_id: str, raw_identity: str) -> bool:
        """Badgr's check as it is (``upstream-fidelity.md`` A12): it runs before the
        identity is lowercased, so on a case-sensitive database ``Ada@x.edu`` does not match
        a stored ``ada@x.edu``; and it is check-then-insert, so a write accepted earlier but
        not stored yet (:meth:`Credentials.late`) does not count."""
        now = self.credentials.clock.now
        return any(
            a.identity == raw_identity and not a.revoked and not a.expired(now)
            for a in self.credentials.assertions_for(badge_id)
        )

    def _assertion(self, request: ApiRequest, assertion_id: str) -> HttpResponse:
        """GET shows revoked awards too; DELETE revokes."""
        if request.method.upper() == "DELETE":
            return self._revoke(request, assertion_id)
        return ok([self._assertion_json(self.credentials.assertions[assertion_id], request)])

    def _batch_revoke(self, request: ApiRequest) -> HttpResponse:
        """Always 200 for a list, each item saying whether it was revoked and why not, so
        a partial failure hides inside a success."""
        items = request.json
        if not isinstance(items, list):
            kind = "dict" if isinstance(items, Mapping) else type(items).__name__
            return bad_request(
                validation_errors=[f'Expected a list of items but got type "{kind}".']
            )
        return ok(
            [self._revoke_item(item, request) for item in items], description="revoked badges"
        )

    def _revoke_item(self, item: object, request: ApiRequest) -> Json:
        """Only a string is an id: echoing arbitrary JSON back could nest without bound."""
        if not isinstance(item, Mapping) or not isinstance(item.get("entityId"), str):
            return {"revoked": False, "reason": "entityId is required"}
        entity_id: str = item["entityId"]
        out: Json = {"revoked": False, "entityId": entity_id}
        reason = item.get("revocationReason")
        if not isinstance(reason, str) or not reason.strip():
            return {**out, "reason": "revocationReason is required"}
        out["revocationReason"] = reason
        assertion = self.credentials.assertions.get(entity_id)
        if assertion is None or not self._sees(request, assertion.issuer_id):
            return {**out, "reason": "permission denied or object not found"}
        if assertion.revoked:  # str() of the Django ValidationError Badgr raises
            return {**out, "reason": "['Assertion is already revoked']"}
        self.credentials.revoke(entity_id, reason)
        return {**out, "revoked": True}

    def _revoke(self, request: ApiRequest, assertion_id: str) -> HttpResponse:
        body = request.json
        reason = body.get("revocation_reason") if isinstance(body, Mapping) else None
        if not isinstance(reason, str) or not reason.strip():
            return bad_request({"revocation_reason": [REQUIRED]})
        if self.credentials.assertions[assertion_id].revoked:
            return bad_request(validation_errors=["Assertion is already revoked"])
        assertion = self.credentials.revoke(assertion_id, reason)
        return ok([self._assertion_json(assertion, request)])

    def _assertion_json(self, a: Assertion, request: ApiRequest) -> Json:
        base = request.origin
        hashed = a.recipient_type in ("email", "telephone")
        digest = hashlib.sha256((a.identity + a.salt).encode()).hexdigest()
        return {
            "entityType": "Assertion",
            "entityId": a.entity_id,
            "openBadgeId": f"{base}/public/assertions/{a.entity_id}",
            "createdAt": iso_micro(a.created_at),
            "createdBy": CREATED_BY,
            "badgeclass": a.badge_class,
            "badgeclassOpenBadgeId": f"{base}/public/badges/{a.badge_class}",
            "issuer": a.issuer_id,
            "issuerOpenBadgeId": f"{base}/public/issuers/{a.issuer_id}",
            "image": f"{base}/media/uploads/badges/assertion-{a.entity_id}.png",
            "recipient": {
                "identity": f"sha256${digest}" if hashed else a.identity,
                "hashed": hashed,
                "type": a.recipient_type,
                "plaintextIdentity": a.identity,
                "salt": a.salt,
            },
            "issuedOn": iso(a.issued_on),
            "narrative": a.narrative,
            "evidence": [],
            "revoked": a.revoked,
            "revocationReason": a.revocation_reason,
            "expires": None if a.expires is None else iso(a.expires),
            "extensions": {},
        }

    # ------------------------------------------------------------------ issuers, badges

    def _badge_classes(self, request: ApiRequest, issuer_id: str | None) -> HttpResponse:
        """Newest first, ``num`` cursor pages; creation order breaks ties in ``createdAt``."""
        rows = sorted(
            (
                (seq, badge)
                for seq, badge in enumerate(self.credentials.badge_classes.values())
                if not badge.archived
                and (
                    badge.issuer_id == issuer_id
                    or (issuer_id is None and self._sees(request, badge.issuer_id))
                )
            ),
            key=lambda row: (row[1].created_at, row[0]),
            reverse=True,
        )
        return _paged(
            request,
            rows,
            lambda row: (row[1].created_at, row[0]),
            lambda row, r: self._badge_class_json(row[1], r),
        )

    def _issuer_json(self, issuer: Issuer, request: ApiRequest) -> Json:
        return {
            "entityType": "Issuer",
            "entityId": issuer.entity_id,
            "openBadgeId": f"{request.origin}/public/issuers/{issuer.entity_id}",
            "createdAt": iso_micro(issuer.created_at),
            "createdBy": CREATED_BY,
            "name": issuer.name,
            "image": None,
            "email": issuer.email,
            "url": None,
            "description": None,
            "staff": [],
            "extensions": {},
        }

    def _badge_class_json(self, badge: BadgeClass, request: ApiRequest) -> Json:
        base = request.origin
        return {
            "entityType": "BadgeClass",
            "entityId": badge.entity_id,
            "openBadgeId": f"{base}/public/badges/{badge.entity_id}",
            "createdAt": iso_micro(badge.created_at),
            "createdBy": CREATED_BY,
            "issuer": badge.issuer_id,
            "issuerOpenBadgeId": f"{base}/public/issuers/{badge.issuer_id}",
            "name": badge.name,
            "image": f"{base}/media/uploads/badges/{badge.entity_id}.png",
            "description": "",
            "criteriaUrl": None,
            "criteriaNarrative": None,
            "alignments": [],
            "tags": [],
            "expires": None,
            "extensions": {},
        }

    # ------------------------------------------------------------------ groups

    def _members(self, request: ApiRequest, group: Group) -> HttpResponse:
        rows = sorted(group.members.values(), key=lambda m: (m.created_at, m.seq), reverse=True)
        return _paged(request, rows, lambda m: (m.created_at, m.seq), lambda m, _: member_json(m))

    def _member(self, request: ApiRequest, group: Group, user_id: int) -> HttpResponse:
        if request.method.upper() == "DELETE":
            if not self.credentials.remove_member(group.entity_id, user_id):
                return not_found()
            return HttpResponse(204, {}, None)
        body = request.json
        if not isinstance(body, Mapping):
            return bad_request(validation_errors=["Invalid data. Expected a dictionary."])
        parsed = self._member_fields(body)
        if isinstance(parsed, dict):
            return bad_request(parsed)
        email, name, earned = parsed
        member, created = self.credentials.upsert_member(
            group.entity_id, user_id, email, name, earned
        )
        return ok([member_json(member)], status=201 if created else 200)

    def _member_fields(
        self, body: Mapping[str, object]
    ) -> tuple[str, str, list[str]] | dict[str, list[str]]:
        """(email, name, earned) of a member PUT, or its field errors. Earned ids must be
        real badge classes, so a sync that sends assertion ids is caught here."""
        errors: dict[str, list[str]] = {}
        email, name, raw_earned = body.get("email"), body.get("name"), body.get("earned")
        if not isinstance(email, str) or "@" not in email:
            errors["email"] = ["Enter a valid email address."]
        if not isinstance(name, str):
            errors["name"] = [REQUIRED]
        earned = (
            [b for b in raw_earned if isinstance(b, str)] if isinstance(raw_earned, list) else []
        )
        if not isinstance(raw_earned, list) or len(earned) != len(raw_earned):
            errors["earned"] = ["Expected a list of badge class ids."]
        elif unknown := [b for b in earned if b not in self.credentials.badge_classes]:
            errors["earned"] = [f"Unknown badge class {b!r}." for b in unknown]
        if errors or not isinstance(email, str) or not isinstance(name, str):
            return errors
        return email, name, earned

    def _leaderboard(self, request: ApiRequest, group: Group) -> HttpResponse:
        if request.method.upper() == "GET":
            return ok([leaderboard_json(row) for row in group.leaderboard])
        entries = _leaderboard_entries(request.json)
        if isinstance(entries, str):
            return bad_request({"entries": [entries]})
        rows = self.credentials.publish_leaderboard(group.entity_id, entries)
        return ok([leaderboard_json(row) for row in rows])


def _oauth_error(status: int, error: str, description: str | None = None) -> HttpResponse:
    body: Json = {"error": error}
    if description is not None:
        body["error_description"] = description
    return json_response(status, body)


def _token_response(access: str, refresh: str | None) -> HttpResponse:
    body: Json = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": int(Service.CREDENTIALS.ttl),
    }
    if refresh is not None:
        body["refresh_token"] = refresh
    body["scope"] = TOKEN_SCOPE
    return json_response(200, body)


def member_json(m: Member) -> Json:
    return {
        "entityType": "RecipientGroupMember",
        "canvasUserId": m.canvas_user_id,
        "email": m.email,
        "name": m.name,
        "earned": list(m.earned),
    }


def leaderboard_json(row: LeaderboardRow) -> Json:
    return {"canvasUserId": row.canvas_user_id, "badges": row.badges, "rank": row.rank}


def _recipient(recipient: object) -> tuple[str, str] | str:
    """(identity, type) of a POSTed recipient, or why it is invalid."""
    if not isinstance(recipient, Mapping):
        return "This field is required."
    identity = recipient.get("identity")
    if not isinstance(identity, str) or not identity.strip():
        return "This field is required."
    kind = recipient.get("type", "email")
    if not isinstance(kind, str) or kind not in RECIPIENT_TYPES:
        return f'"{kind}" is not a valid choice.'
    if kind == "email" and ("@" not in identity or any(c.isspace() for c in identity)):
        return "Enter a valid email address."
    return identity, kind


def _leaderboard_entries(body: object) -> list[tuple[int, int]] | str:
    """The validated entries, or the reason they are malformed."""
    entries = body.get("entries") if isinstance(body, Mapping) else None
    if not isinstance(entries, list):
        return "This field is required and must be a list."
    out: list[tuple[int, int]] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            return "Each entry must be an object."
        user_id, badges = entry.get("canvasUserId"), entry.get("badges")
        if not isinstance(user_id, int) or isinstance(user_id, bool) or not 0 < user_id < 2**63:
            return "canvasUserId must be a positive integer."
        if not isinstance(badges, int) or isinstance(badges, bool) or badges < 0:
            return "badges must be a non-negative integer."
        out.append((user_id, badges))
    if len({u for u, _ in out}) != len(out):
        return "Each canvasUserId may appear only once."
    return out


def _paged(
    request: ApiRequest,
    rows: Sequence[T],
    key: Callable[[T], SortKey],
    render: Callable[[T, ApiRequest], Json],
) -> HttpResponse:
    """Badgr's cursor pages over ``rows`` (newest first). Pagination is off without ``num``
    or with a non-integer one; a cursor that does not decode is 404, as DRF answers."""
    raw_num = request.param("num")
    try:
        num = None if raw_num is None else min(max(int(raw_num), 1), MAX_NUM)
    except ValueError:
        num = None
    if num is None:
        return ok([render(r, request) for r in rows])
    raw_cursor = request.param("cursor")
    start, end = 0, min(num, len(rows))
    if raw_cursor is not None:
        cursor = _decode_cursor(raw_cursor)
        if cursor is None:
            return not_found()
        direction, mark = cursor
        if direction == "after":  # rows strictly older than the mark
            start = next((i for i, r in enumerate(rows) if key(r) < mark), len(rows))
            end = min(start + num, len(rows))
        else:  # the ``num`` rows just newer than the mark
            end = next((i for i, r in enumerate(rows) if key(r) <= mark), len(rows))
            start = max(end - num, 0)
    chunk = rows[start:end]
    links: list[tuple[str, str]] = []
    if chunk and end < len(rows):
        links.append(("next", _cursor_url(request, num, "after", key(chunk[-1]))))
    if chunk and start > 0:
        links.append(("prev", _cursor_url(request, num, "before", key(chunk[0]))))
    return ok([render(r, request) for r in chunk], headers=link_header(links, ", "))


def _cursor_url(request: ApiRequest, num: int, direction: str, mark: SortKey) -> str:
    payload = json.dumps([direction, mark[0], mark[1]], separators=(",", ":")).encode()
    token = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return request.url_with({"num": str(num), "cursor": token})


def _decode_cursor(token: str) -> tuple[str, SortKey] | None:
    try:
        value = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, RecursionError):  # a nested-list bomb is garbage too
        return None
    if not isinstance(value, list) or len(value) != 3:
        return None
    direction, stamp, seq = value
    if direction not in ("after", "before"):
        return None
    if not isinstance(seq, int) or isinstance(seq, bool):
        return None
    if not isinstance(stamp, int | float) or isinstance(stamp, bool):
        return None
    return direction, (float(stamp), seq)
