"""The two simulated services over HTTP: FastAPI apps that are thin adapters over
:meth:`Services.serve`.

Every route is declared explicitly, so ``/openapi.json`` documents it, but the apps decide
nothing themselves: each request becomes an :class:`ApiRequest` (method, the URL exactly as
the client sent it, headers, JSON body) and goes through ``Services.serve``, which applies
the seeded fault plan and calls the framework-free handler. Requests FastAPI would refuse
(unknown path, wrong method) are handed to ``Services.serve`` too, so the handler answers
them in its service's error shape and a seed draws the same faults over HTTP as in memory.
Path parameters are documented as strings and never validated here: the handler parses the
raw path, so FastAPI never answers 422 or ``{"detail": ...}``.

Only the OAuth token endpoints bypass the fault plan (a grant is not an API request), and
call the handlers' ``token_grant`` directly, so they never consume fault draws.

A request the plan drops (:class:`~simulators.services.Dropped`) raises
:class:`ConnectionDropped`, which subclasses httpx's own transport errors. Starlette's
outermost middleware answers any exception with a 500 and then re-raises it;
``httpx.ASGITransport`` (with its default ``raise_app_exceptions=True``) discards that 500
and hands the exception to the caller, so an in-process httpx client sees an
``httpx.ReadTimeout`` (timeout) or ``httpx.ReadError`` (reset): a transport error, as from
a real socket, never a 500. Over real sockets :mod:`simulators.http.serve` holds the app's
messages, drops the 500 with them and hangs up the connection instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping
from copy import deepcopy
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, quote

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from simulators.api import ApiRequest, json_response
from simulators.canvas.api import CanvasApi
from simulators.credentials.api import CredentialsApi, error
from simulators.http import openapi as oa
from simulators.services import Dropped, Services
from simulators.tokens import Service
from sync_core.wire import HttpResponse

FORM_TYPE: Final = "application/x-www-form-urlencoded"


class ConnectionDropped(httpx.TransportError):
    """The simulated server hung up without answering (see the module docstring)."""

    kind: Literal["timeout", "reset"]


class DroppedTimeout(ConnectionDropped, httpx.ReadTimeout):
    kind = "timeout"


class DroppedReset(ConnectionDropped, httpx.ReadError):
    kind = "reset"


@dataclass(frozen=True)
class Endpoint:
    """One declared route and what it answers (see :mod:`simulators.http.openapi`)."""

    method: str
    path: str
    summary: str
    doc: oa.Doc


_COURSE: Final = "/api/v1/courses/{course_id}"
CANVAS_ENDPOINTS: Final = (
    Endpoint(
        "GET",
        "/api/v1/courses",
        "Courses of the token's user (all for a service token)",
        oa.canvas(oa.array(oa.COURSE), queries=oa.PAGES),
    ),
    Endpoint("GET", _COURSE, "One course", oa.in_course(oa.COURSE)),
    Endpoint(
        "GET",
        f"{_COURSE}/enrollments",
        "Enrollments (bookmark pages)",
        oa.in_course(oa.array(oa.ENROLLMENT), queries=(*oa.PAGES, "type[]", "state[]")),
    ),
    *(
        Endpoint(
            "GET",
            f"{_COURSE}/{name}",
            "Users in a course",
            oa.in_course(
                oa.array(oa.COURSE_USER),
                queries=(*oa.PAGES, "enrollment_type[]", "enrollment_state[]", "include[]"),
            ),
        )
        for name in ("users", "search_users")
    ),
    Endpoint(
        "GET",
        f"{_COURSE}/users/{{user_id}}",
        "One user in a course",
        oa.in_course(oa.COURSE_USER, queries=("include[]",)),
    ),
    Endpoint(
        "GET",
        f"{_COURSE}/users/{{user_id}}/progress",
        "Course progress",
        oa.canvas(oa.PROGRESS, errors={400: oa.NO_PROGRESS, 403: oa.CANVAS_ERRORS}),
    ),
    Endpoint(
        "GET",
        f"{_COURSE}/sections",
        "Sections",
        oa.in_course(oa.array(oa.SECTION), queries=oa.PAGES),
    ),
    Endpoint(
        "GET",
        f"{_COURSE}/assignments",
        "Assignments",
        oa.in_course(oa.array(oa.ASSIGNMENT), queries=oa.PAGES),
    ),
    Endpoint(
        "GET",
        f"{_COURSE}/assignments/{{assignment_id}}/submissions",
        "One assignment's submissions",
        oa.in_course(oa.array(oa.SUBMISSION), queries=oa.PAGES),
    ),
    Endpoint(
        "GET",
        f"{_COURSE}/students/submissions",
        "Submissions of many students (bookmark pages)",
        oa.canvas(
            oa.array(oa.SUBMISSION),
            errors={400: oa.SUBMISSIONS_400, 403: oa.SUBMISSIONS_403},
            queries=(
                *oa.PAGES,
                "student_ids[]",
                "assignment_ids[]",
                "graded_since",
                "submitted_since",
                "enrollment_state",
                "workflow_state",
            ),
        ),
    ),
    Endpoint(
        "GET",
        f"{_COURSE}/quizzes",
        "Classic quizzes",
        oa.in_course(oa.array(oa.QUIZ), queries=oa.PAGES),
    ),
    Endpoint(
        "GET",
        f"{_COURSE}/modules",
        "Modules",
        oa.in_course(oa.array(oa.MODULE), queries=(*oa.PAGES, "include[]", "student_id")),
    ),
    Endpoint(
        "GET",
        f"{_COURSE}/modules/{{module_id}}/items",
        "Module items",
        oa.in_course(oa.array(oa.MODULE_ITEM), queries=(*oa.PAGES, "student_id")),
    ),
    Endpoint(
        "GET",
        "/api/v1/users/{user_id}",
        "One user (``self`` is the token's user)",
        oa.canvas(oa.FULL_USER),
    ),
    Endpoint(
        "GET",
        "/api/v1/users/{user_id}/courses",
        "A user's courses",
        oa.canvas(oa.array(oa.COURSE), errors={403: oa.CANVAS_ERRORS}, queries=oa.PAGES),
    ),
)

_GROUP: Final = "/v2/issuers/{issuer_id}/recipient-groups/{group_id}"
_LISTED: Final = (*oa.PAGED, "include_revoked", "include_expired", "recipient")
CREDENTIALS_ENDPOINTS: Final = (
    Endpoint("GET", "/v2/issuers", "Issuers", oa.badgr(200, oa.ISSUER)),
    Endpoint(
        "GET", "/v2/issuers/{issuer_id}", "One issuer", oa.badgr(200, oa.ISSUER, errors=(404,))
    ),
    Endpoint(
        "GET",
        "/v2/issuers/{issuer_id}/badgeclasses",
        "An issuer's badge classes",
        oa.badgr(200, oa.BADGE_CLASS, errors=(404,), queries=oa.PAGED),
    ),
    Endpoint(
        "GET",
        "/v2/badgeclasses",
        "Badge classes",
        oa.badgr(200, oa.BADGE_CLASS, errors=(404,), queries=oa.PAGED),
    ),
    Endpoint(
        "GET",
        "/v2/badgeclasses/{badge_id}",
        "One badge class",
        oa.badgr(200, oa.BADGE_CLASS, errors=(404,)),
    ),
    Endpoint(
        "GET",
        "/v2/badgeclasses/{badge_id}/assertions",
        "Awards of a badge class",
        oa.badgr(200, oa.ASSERTION, errors=(404,), queries=_LISTED),
    ),
    Endpoint(
        "POST",
        "/v2/badgeclasses/{badge_id}/assertions",
        "Award one badge",
        oa.badgr(201, oa.ASSERTION, errors=(400, 404), body=oa.AWARD),
    ),
    Endpoint(
        "POST",
        "/v2/badgeclasses/{badge_id}/issue",
        "Award many (all or nothing)",
        oa.badgr(201, oa.ASSERTION, errors=(400, 404), body=oa.ISSUE),
    ),
    # Declared before /v2/assertions/{assertion_id}, which would otherwise match it.
    Endpoint(
        "POST",
        "/v2/assertions/revoke",
        "Revoke many (always 200)",
        oa.badgr(200, oa.REVOKED_ITEM, errors=(400,), body=oa.REVOKE_MANY),
    ),
    # An assertion id of "revoke" lands on the batch route, which only takes POST: 405.
    Endpoint(
        "GET",
        "/v2/assertions/{assertion_id}",
        "One award, revoked or not",
        oa.badgr(200, oa.ASSERTION, errors=(404, 405)),
    ),
    Endpoint(
        "DELETE",
        "/v2/assertions/{assertion_id}",
        "Revoke one award",
        oa.badgr(200, oa.ASSERTION, errors=(400, 404, 405), body=oa.REVOKE_ONE),
    ),
    Endpoint(
        "GET",
        f"{_GROUP}/members",
        "Group members (modelled API)",
        oa.badgr(200, oa.MEMBER, errors=(404,), queries=oa.PAGED),
    ),
    Endpoint(
        "PUT",
        f"{_GROUP}/members/{{user_id}}",
        "Create (201) or replace (200) a member",
        oa.badgr(201, oa.MEMBER, also=(200,), errors=(400, 404), body=oa.MEMBER_PUT),
    ),
    Endpoint(
        "DELETE",
        f"{_GROUP}/members/{{user_id}}",
        "Remove a member",
        oa.badgr(204, None, errors=(404,)),
    ),
    Endpoint(
        "GET",
        f"{_GROUP}/leaderboard",
        "The group's leaderboard",
        oa.badgr(200, oa.LEADERBOARD_ROW, errors=(404,)),
    ),
    Endpoint(
        "PUT",
        f"{_GROUP}/leaderboard",
        "Publish the leaderboard",
        oa.badgr(200, oa.LEADERBOARD_ROW, errors=(400, 404), body=oa.LEADERBOARD_PUT),
    ),
)

CANVAS_TOKEN_PATH: Final = "/login/oauth2/token"
CREDENTIALS_TOKEN_PATH: Final = "/o/token"

ErrorShape = Callable[[int, str], HttpResponse]
TokenGrant = Callable[[ApiRequest, Mapping[str, str]], HttpResponse]


def canvas_app(services: Services) -> FastAPI:
    """Canvas REST v1 plus ``POST /login/oauth2/token`` (refresh grant)."""

    def grant(request: ApiRequest, form: Mapping[str, str]) -> HttpResponse:
        world = services.world
        return CanvasApi(world.canvas, world.tokens).token_grant(request, form)

    app = _build("Simulated Canvas LMS", services, Service.CANVAS, CANVAS_ENDPOINTS, _canvas_error)
    summary = "OAuth2 refresh grant (never faulted)"
    _add_token_route(app, CANVAS_TOKEN_PATH, summary, grant, oa.CANVAS_GRANT)
    return app


def credentials_app(services: Services) -> FastAPI:
    """Badgr v2 (with the modelled recipient groups) plus ``POST /o/token``."""

    def grant(request: ApiRequest, form: Mapping[str, str]) -> HttpResponse:
        world = services.world
        return CredentialsApi(world.credentials, world.tokens).token_grant(request, form)

    app = _build(
        "Simulated Canvas Credentials (Badgr)",
        services,
        Service.CREDENTIALS,
        CREDENTIALS_ENDPOINTS,
        error,
    )
    summary = "OAuth2 password, refresh and client-credentials grants (never faulted)"
    _add_token_route(app, CREDENTIALS_TOKEN_PATH, summary, grant, oa.CREDENTIALS_GRANT)
    return app


def _build(
    title: str,
    services: Services,
    service: Service,
    endpoints: tuple[Endpoint, ...],
    error_shape: ErrorShape,
) -> FastAPI:
    async def serve(request: Request) -> Response:
        route = request.scope.get("route")
        where = getattr(route, "path", "(no route)")
        return await _serve(services, service, error_shape, request, f"{request.method} {where}")

    async def refuse(request: Request, exc: Exception) -> Response:
        """404/405 from the router: the handler decides, through the fault plan."""
        return await serve(request)

    async def invalid(request: Request, exc: Exception) -> Response:
        """Unreachable while every parameter is a string and bodies are read raw; kept so
        that a parameter declared later can never produce FastAPI's ``{"detail": ...}``."""
        return _response(error_shape(400, "invalid request"))

    handlers: dict[int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]]
    handlers = {StarletteHTTPException: refuse, RequestValidationError: invalid}
    app = FastAPI(title=title, redirect_slashes=False, exception_handlers=handlers)
    for endpoint in endpoints:
        app.add_api_route(
            endpoint.path,
            serve,
            methods=[endpoint.method],
            summary=endpoint.summary,
            status_code=endpoint.doc.status,
            response_class=Response,  # no default body schema: the doc says it all
            responses=endpoint.doc.responses(),
            openapi_extra=_openapi_extra(endpoint),
        )
    # Routes compare by value, not identity, and do not hash: kept by id.
    api_routes = frozenset(
        id(r) for r in app.router.routes if getattr(r, "endpoint", None) is serve
    )

    async def direct(request: Request, label: str) -> Response:
        return await _serve(services, service, error_shape, request, label)

    app.add_middleware(_Direct, routes=app.router.routes, api_routes=api_routes, handle=direct)
    return app


class _Direct:
    """The API requests' short cut past FastAPI's routing, dependency solving and
    exception middleware, which cost more than the simulated service's own work.

    Every API request ends in :func:`_serve` anyway: a routed one through ``serve``, an
    unrouted one (404/405) through the ``refuse`` handler. This middleware picks the route
    exactly as Starlette's router does (the first full match, else the first partial one)
    and, when that is an API route or none, calls :func:`_serve` with the very label
    ``serve`` would give. Everything else (token grants, ``/openapi.json``, the docs)
    goes down the stack as before. It sits inside Starlette's ``ServerErrorMiddleware``,
    so an exception (a dropped connection) still meets the same outermost handling."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: list[BaseRoute],
        api_routes: frozenset[int],
        handle: Callable[[Request, str], Coroutine[Any, Any, Response]],
    ) -> None:
        self.app = app
        self.routes = routes  # the app's own list: routes added later count too
        self.api_routes = api_routes
        self.handle = handle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = _routed(self.routes, scope)
        if route is not None and id(route) not in self.api_routes:
            await self.app(scope, receive, send)
            return
        where = "(no route)" if route is None else getattr(route, "path", "(no route)")
        request = Request(scope, receive)
        response = await self.handle(request, f"{request.method} {where}")
        await response(scope, receive, send)


def _routed(routes: list[BaseRoute], scope: Scope) -> BaseRoute | None:
    """The route Starlette's router hands ``scope`` to: the first full match, else the
    first partial one (a wrong method: 405), else none (404)."""
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial


def _add_token_route(app: FastAPI, path: str, summary: str, grant: TokenGrant, doc: oa.Doc) -> None:
    """A token endpoint reads a form body (any other body counts as no parameters) and
    calls the grant directly: grants are not API requests and are never faulted."""

    async def token(request: Request) -> Response:
        api_request = await _api_request(request, _oauth_error, parse_json=False)
        if isinstance(api_request, HttpResponse):
            return _response(api_request)
        form: dict[str, str] = {}
        if (request.headers.get("content-type") or FORM_TYPE).startswith(FORM_TYPE):
            form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        return _response(grant(api_request, form))

    body = {"content": {FORM_TYPE: {"schema": doc.body}}}
    app.add_api_route(
        path,
        token,
        methods=["POST"],
        summary=summary,
        response_class=Response,
        responses=doc.responses(),
        openapi_extra={"requestBody": body},
    )


async def _serve(
    services: Services,
    service: Service,
    error_shape: ErrorShape,
    request: Request,
    label: str,
) -> Response:
    api_request = await _api_request(request, error_shape, parse_json=True)
    if isinstance(api_request, HttpResponse):
        return _response(api_request)
    outcome = services.serve(service, api_request, label)
    if isinstance(outcome, Dropped):
        drop = DroppedTimeout if outcome.kind == "timeout" else DroppedReset
        raise drop(f"simulated {outcome.kind}: {request.method} {request.url.path}")
    return _response(outcome)


async def _api_request(
    request: Request, error_shape: ErrorShape, *, parse_json: bool
) -> ApiRequest | HttpResponse:
    """The request as the handlers take it, or a 400 when Starlette cannot decode its URL
    (raw non-UTF-8 bytes in the query, which a socket client can send)."""
    body = await request.body()
    try:
        return ApiRequest(
            request.method,
            _url_as_sent(request),
            dict(request.headers),
            _json_or_none(body) if parse_json else None,
        )
    except ValueError:
        return error_shape(400, "malformed request URL")


def _url_as_sent(request: Request) -> str:
    """Scheme and host as the client addressed us (so page links work for it), and the
    path still percent-encoded as sent, so ``ApiRequest.segments`` splits it correctly."""
    scope = request.scope
    raw_path = scope.get("raw_path") or quote(scope["path"]).encode()  # optional in ASGI
    query = scope.get("query_string") or b""
    url = f"{request.url.scheme}://{request.url.netloc}{raw_path.decode('latin-1')}"
    return f"{url}?{query.decode('latin-1')}" if query else url


def _json_or_none(body: bytes) -> object | None:
    """The JSON body, or ``None`` when there is none or it does not parse; the handlers
    answer a missing body in their own words."""
    if not body.strip():
        return None
    try:
        parsed: object = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return parsed


_ASCII_JSON: Final = json.JSONEncoder(separators=(",", ":"), check_circular=False)
_UTF8_JSON: Final = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, check_circular=False
)


def _response(response: HttpResponse) -> Response:
    """Text bodies (Canvas's throttle answer) go as given, others as compact JSON, non-ASCII
    text as UTF-8. Bodies are fresh trees (see ``json_response``), so no cycle check."""
    body = response.body
    if body is None:
        content = b""
    elif isinstance(body, str):
        content = body.encode()
    else:
        # CPython's ASCII encoder is about twice as fast; only when it had to escape
        # something (``\u``) is the UTF-8 form, which may differ, made instead.
        text = _ASCII_JSON.encode(body)
        if "\\u" in text:
            text = _UTF8_JSON.encode(body)
        content = text.encode()
    return Response(content, response.status, dict(response.headers))


def _openapi_extra(endpoint: Endpoint) -> dict[str, object]:
    """Path and query parameters documented as strings (not declared to FastAPI, so never
    validated: the handlers parse them), plus the JSON body a write reads."""
    names = [part[1:-1] for part in endpoint.path.split("/") if part.startswith("{")]
    string = {"type": "string"}
    extra: dict[str, object] = {
        "parameters": [
            *({"name": name, "in": "path", "required": True, "schema": string} for name in names),
            *({"name": name, "in": "query", "schema": string} for name in endpoint.doc.queries),
        ]
    }
    if endpoint.doc.body is not None:
        content = {"application/json": {"schema": deepcopy(endpoint.doc.body)}}
        extra["requestBody"] = {"required": True, "content": content}
    return extra


def _canvas_error(status: int, message: str) -> HttpResponse:
    return json_response(status, {"errors": [{"message": message}]})


def _oauth_error(status: int, message: str) -> HttpResponse:
    return json_response(status, {"error": "invalid_request", "error_description": message})
