"""The Canvas REST v1 endpoints the sync reads, rendered from :mod:`simulators.canvas`.

Fidelity targets the fact sheet (``canvas-api.md``): Bearer auth with Canvas's 401 bodies,
numbered pages with absolute ``Link`` URLs that carry every filter, bookmark pages that
resume strictly after the last sort key, Canvas's default state filters, strict ``*_since``
filters and placeholder submissions. Bad input never raises: it gets Canvas's 4xx shape.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final, TypeVar

from simulators.api import ApiRequest, json_response, link_header, parse_id, ruby_to_i
from simulators.canvas import (
    Assignment,
    Canvas,
    Course,
    Enrollment,
    Module,
    ModuleItem,
    Quiz,
    Submission,
    User,
)
from simulators.clock import iso
from simulators.tokens import Service, TokenStore
from sync_core.wire import HttpResponse

T = TypeVar("T")
Json = dict[str, object]
Key = tuple[object, ...]

DEFAULT_PER_PAGE: Final = 10
MAX_PER_PAGE: Final = 100
MAX_INLINE_ITEMS: Final = 100

NOT_FOUND: Final = {"errors": [{"message": "The specified resource does not exist."}]}
INVALID_TOKEN: Final = {"errors": [{"message": "Invalid access token."}]}
NO_CREDENTIALS: Final = {
    "status": "unauthenticated",
    "errors": [{"message": "user authorization required"}],
}
WWW_AUTHENTICATE: Final = {"WWW-Authenticate": 'Bearer realm="canvas-lms"'}
RATE_HEADERS: Final = {"X-Request-Cost": "0.01", "X-Rate-Limit-Remaining": "600.0"}

# Canvas hides these by default from teachers' enrollment lists; concluded students vanish.
_HIDDEN_ENROLLMENT_STATES: Final = frozenset({"rejected", "completed", "deleted"})
# Users whose only enrollments are in these states are rendered without personal info.
_PENDING_STATES: Final = frozenset({"invited", "creation_pending", "rejected"})
_USER_ENROLLMENT_TYPES: Final = {
    "student": "StudentEnrollment",
    "teacher": "TeacherEnrollment",
    "ta": "TaEnrollment",
    "observer": "ObserverEnrollment",
    "designer": "DesignerEnrollment",
    "student_view": "StudentViewEnrollment",
}
_ISO8601: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")
_NO_CONTENT_ID: Final = frozenset({"Page", "SubHeader", "ExternalUrl"})
_LIST_ROUTES: Final = frozenset({"enrollments", "users", "assignments", "quizzes", "modules"})


class CanvasApi:
    """Request handler over one :class:`Canvas` (the primary, or a stale replica).

    ``page_shift`` lets the transport simulate rows inserted or deleted ahead of a numbered
    page's offset between two fetches (PAGE_DRIFT); bookmark pages are immune by design.
    """

    def __init__(self, canvas: Canvas, tokens: TokenStore) -> None:
        self.canvas = canvas
        self.tokens = tokens

    def handle(self, request: ApiRequest, *, page_shift: int = 0) -> HttpResponse:
        segs = request.segments
        if request.method.upper() != "GET" or segs[:3] != ("api", "v1", "courses"):
            return _not_found()
        rest = segs[3:]
        if len(rest) > 3 or (len(rest) == 3 and rest[1:] != ("students", "submissions")):
            return _not_found()
        if len(rest) == 2 and rest[1] not in _LIST_ROUTES:
            return _not_found()
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        if not rest:
            return self._list_courses(request, page_shift)
        course_id = parse_id(rest[0])
        course = None if course_id is None else self.canvas.live_course(course_id)
        if course is None:
            return _not_found()
        if len(rest) == 1:
            return _ok(course_json(course))
        resource = "students/submissions" if len(rest) == 3 else rest[1]
        return self._list(resource, course, request, page_shift)

    # ------------------------------------------------------------------ plumbing

    def _authenticate(self, request: ApiRequest) -> HttpResponse | None:
        token = request.bearer() or request.param("access_token")
        if token is None:
            return json_response(401, NO_CREDENTIALS, WWW_AUTHENTICATE)
        if not self.tokens.validate(Service.CANVAS, token):
            return json_response(401, INVALID_TOKEN, WWW_AUTHENTICATE)
        return None

    def _list(self, resource: str, course: Course, request: ApiRequest, shift: int) -> HttpResponse:
        if resource == "enrollments":
            return self._enrollments(course, request)
        if resource == "users":
            return self._users(course, request, shift)
        if resource == "assignments":
            rows = self.canvas.assignments_in(course.id)
            return _numbered(request, rows, lambda a: assignment_json(a, request.origin), shift)
        if resource == "quizzes":
            quizzes = sorted(self.canvas.quizzes_in(course.id), key=lambda q: q.id)
            return _numbered(request, quizzes, lambda q: quiz_json(q, request.origin), shift)
        if resource == "modules":
            return self._modules(course, request, shift)
        return self._submissions(course, request)

    # ------------------------------------------------------------------ endpoints

    def _list_courses(self, request: ApiRequest, shift: int) -> HttpResponse:
        courses = [c for c in self.canvas.courses.values() if c.workflow_state != "deleted"]
        return _numbered(request, sorted(courses, key=lambda c: c.id), course_json, shift)

    def _enrollments(self, course: Course, request: ApiRequest) -> HttpResponse:
        types = set(request.params("type[]"))
        states = set(request.params("state[]"))
        rows = [
            e
            for e in self.canvas.enrollments_in(course.id)
            if (not types or e.type in types)
            and (e.state in states if states else e.state not in _HIDDEN_ENROLLMENT_STATES)
        ]
        users = self.canvas.users

        def key(e: Enrollment) -> Key:
            return (e.type, users[e.user_id].sortable_name, e.id)

        rows.sort(key=key)
        return _bookmarked(
            request,
            rows,
            key,
            (str, str, int),
            lambda e: True,
            lambda e: self._enrollment_json(e, request.origin, with_user=True),
        )

    def _users(self, course: Course, request: ApiRequest, shift: int) -> HttpResponse:
        wanted_types = {
            _USER_ENROLLMENT_TYPES.get(t, t) for t in request.params("enrollment_type[]")
        }
        states = set(request.params("enrollment_state[]")) or {"active", "invited"}
        include_enrollments = "enrollments" in request.params("include[]")
        per_user: dict[int, list[Enrollment]] = {}
        for e in self.canvas.enrollments_in(course.id):
            per_user.setdefault(e.user_id, []).append(e)
        rows: list[tuple[User, list[Enrollment], bool]] = []
        for user_id, enrollments in per_user.items():
            matching = [
                e
                for e in enrollments
                if e.state in states and (not wanted_types or e.type in wanted_types)
            ]
            if matching:
                pending = all(e.state in _PENDING_STATES for e in enrollments)
                rows.append((self.canvas.users[user_id], matching, pending))
        rows.sort(key=lambda row: (row[0].sortable_name, row[0].id))

        def render(row: tuple[User, list[Enrollment], bool]) -> Json:
            user, matching, pending = row
            out = user_json(user, hide_personal=pending)
            if include_enrollments:
                out["enrollments"] = [
                    self._enrollment_json(e, request.origin, with_user=False) for e in matching
                ]
            return out

        # /courses/:id/users computes no total, so it never sends rel="last".
        return _numbered(request, rows, render, shift, with_last=False)

    def _submissions(self, course: Course, request: ApiRequest) -> HttpResponse:
        since: dict[str, float] = {}
        for name in ("graded_since", "submitted_since"):
            raw = request.param(name)
            if raw is None:
                continue
            parsed = _parse_since(raw)
            if parsed is None:
                return json_response(400, {"errors": {name: f"Invalid datetime for {name}"}})
            since[name] = parsed
        student_ids = [*request.params("student_ids[]"), *request.params("student_ids")]
        explicit = {i for s in student_ids if (i := parse_id(s)) is not None}
        if "all" not in student_ids and len(explicit) > 100:
            return json_response(400, {"error": "too many students"})
        published = {a.id for a in self.canvas.assignments_in(course.id) if a.published}
        asked = request.params("assignment_ids[]")
        if asked:
            asked_ids = {parse_id(s) for s in asked}
            if None in asked_ids or not asked_ids <= published:
                return json_response(403, {"error": "invalid assignment ids requested"})
            published = {i for i in asked_ids if i is not None}
        students = self._submission_students(course, request.param("enrollment_state"))
        if "all" not in student_ids:
            students &= explicit
        workflow = request.param("workflow_state")

        def accept(sub: Submission) -> bool:
            return (
                sub.assignment_id in published
                and sub.user_id in students
                and (workflow is None or sub.workflow_state == workflow)
                and _after(sub.graded_at, since.get("graded_since"))
                and _after(sub.submitted_at, since.get("submitted_since"))
            )

        rows = self.canvas.submissions_in(course.id)
        return _bookmarked(
            request,
            rows,
            lambda s: (s.id,),
            (int,),
            accept,
            lambda s: submission_json(s, self.canvas.assignments[s.assignment_id]),
        )

    def _submission_students(self, course: Course, enrollment_state: str | None) -> set[int]:
        """Every non-deleted student enrollment counts unless ``enrollment_state`` narrows
        it, so concluded students keep their submissions visible."""
        wanted = {"active": {"active"}, "concluded": {"completed"}}.get(enrollment_state or "")
        return {
            e.user_id
            for e in self.canvas.enrollments_in(course.id)
            if e.type == "StudentEnrollment"
            and e.state != "deleted"
            and (wanted is None or e.state in wanted)
        }

    def _modules(self, course: Course, request: ApiRequest, shift: int) -> HttpResponse:
        student: int | None = None
        raw_student = request.param("student_id")
        if raw_student is not None:
            student = parse_id(raw_student)
            if student is None or student not in self._submission_students(course, None):
                return _not_found()
        with_items = "items" in request.params("include[]")
        modules = sorted(self.canvas.modules_in(course.id), key=lambda m: (m.position, m.id))
        return _numbered(
            request,
            modules,
            lambda m: self._module_json(m, request.origin, student, with_items),
            shift,
        )

    # ------------------------------------------------------------------ JSON

    def _enrollment_json(self, e: Enrollment, origin: str, *, with_user: bool) -> Json:
        out: Json = {
            "id": e.id,
            "user_id": e.user_id,
            "course_id": e.course_id,
            "course_section_id": e.section_id,
            "type": e.type,
            "role": e.type,
            "role_id": _ROLE_IDS.get(e.type, 0),
            "enrollment_state": e.state,
            "root_account_id": 1,
            "associated_user_id": None,
            "limit_privileges_to_course_section": False,
            "created_at": iso(e.created_at),
            "updated_at": iso(e.updated_at),
            "start_at": None,
            "end_at": None,
            "html_url": f"{origin}/courses/{e.course_id}/users/{e.user_id}",
        }
        if e.type == "StudentEnrollment":
            current = self.canvas.current_score(e.course_id, e.user_id)
            final = self.canvas.final_score(e.course_id, e.user_id)
            out["grades"] = {
                "html_url": f"{origin}/courses/{e.course_id}/grades/{e.user_id}",
                "current_score": current,
                "final_score": final,
                "current_grade": None,
                "final_grade": None,
                "unposted_current_score": current,
                "unposted_final_score": final,
                "unposted_current_grade": None,
                "unposted_final_grade": None,
            }
        if with_user:
            user = self.canvas.users[e.user_id]
            out["user"] = {
                "id": user.id,
                "name": user.name,
                "sortable_name": user.sortable_name,
                "short_name": user.short_name,
            }
        return out

    def _module_json(
        self, module: Module, origin: str, student: int | None, with_items: bool
    ) -> Json:
        api = f"{origin}/api/v1/courses/{module.course_id}/modules/{module.id}"
        out: Json = {
            "id": module.id,
            "name": module.name,
            "position": module.position,
            "unlock_at": None,
            "require_sequential_progress": False,
            "requirement_type": "all",
            "prerequisite_module_ids": [],
            "publish_final_grade": False,
            "published": True,
            "workflow_state": "active",
            "items_count": len(module.items),
            "items_url": f"{api}/items",
        }
        if student is not None:
            state, completed_at = self.canvas.module_progress(module.id, student)
            out["state"] = state
            out["completed_at"] = None if completed_at is None else iso(completed_at)
        # Canvas silently omits inline items for big modules; clients must not read "none".
        if with_items and len(module.items) <= MAX_INLINE_ITEMS:
            out["items"] = [
                self._item_json(self.canvas.items[i], module.course_id, origin, student)
                for i in module.items
            ]
        return out

    def _item_json(
        self, item: ModuleItem, course_id: int, origin: str, student: int | None
    ) -> Json:
        out: Json = {
            "id": item.id,
            "module_id": item.module_id,
            "position": item.position,
            "title": item.title,
            "indent": 0,
            "type": item.type,
            "html_url": f"{origin}/courses/{course_id}/modules/items/{item.id}",
            "url": f"{origin}/api/v1/courses/{course_id}/modules/{item.module_id}/items/{item.id}",
        }
        if item.type not in _NO_CONTENT_ID:
            out["content_id"] = item.content_id
        if item.requirement is not None:
            req: Json = {"type": item.requirement.type}
            if item.requirement.min_score is not None:
                req["min_score"] = item.requirement.min_score
            if student is not None:
                req["completed"] = (item.id, student) in self.canvas.completions
            out["completion_requirement"] = req
        return out


_ROLE_IDS: Final = {
    "StudentEnrollment": 3,
    "TeacherEnrollment": 4,
    "TaEnrollment": 5,
    "ObserverEnrollment": 7,
}


def course_json(course: Course) -> Json:
    return {
        "id": course.id,
        "name": course.name,
        "course_code": course.course_code,
        "uuid": f"course-{course.id:08d}",
        "workflow_state": course.workflow_state,
        "account_id": 1,
        "root_account_id": 1,
        "enrollment_term_id": 1,
        "created_at": iso(course.created_at),
        "start_at": None,
        "end_at": None,
        "time_zone": "UTC",
        "blueprint": False,
        "default_view": "modules",
    }


def user_json(user: User, *, hide_personal: bool) -> Json:
    """Invited-only users come without ``login_id``/``sis_user_id``/``email`` keys at all."""
    out: Json = {
        "id": user.id,
        "name": user.name,
        "sortable_name": user.sortable_name,
        "short_name": user.short_name,
        "integration_id": None,
        "created_at": iso(user.created_at),
    }
    if not hide_personal:
        out.update({"sis_user_id": None, "login_id": user.login_id, "email": user.email})
    return out


def assignment_json(a: Assignment, origin: str) -> Json:
    out: Json = {
        "id": a.id,
        "name": a.name,
        "course_id": a.course_id,
        "assignment_group_id": a.course_id * 10,
        "position": a.position,
        "points_possible": a.points_possible,
        "grading_type": "points",
        "submission_types": list(a.submission_types),
        "published": a.published,
        "workflow_state": "published" if a.published else "unpublished",
        "created_at": iso(a.created_at),
        "updated_at": iso(a.updated_at),
        "due_at": None,
        "lock_at": None,
        "unlock_at": None,
        "omit_from_final_grade": False,
        "only_visible_to_overrides": False,
        "is_quiz_assignment": a.quiz_id is not None,
        "html_url": f"{origin}/courses/{a.course_id}/assignments/{a.id}",
    }
    if a.quiz_id is not None:  # only classic quizzes carry quiz_id
        out["quiz_id"] = a.quiz_id
    if a.is_quiz_lti_assignment:
        out["is_quiz_lti_assignment"] = True
        out["external_tool_tag_attributes"] = {
            "url": f"{origin}/quizzes-next/launch/{a.id}",
            "new_tab": False,
            "resource_link_id": f"nq-{a.id}",
        }
    return out


def quiz_json(q: Quiz, origin: str) -> Json:
    return {
        "id": q.id,
        "title": q.title,
        "quiz_type": q.quiz_type,
        "assignment_id": q.assignment_id,
        "assignment_group_id": q.course_id * 10,
        "points_possible": q.points_possible,
        "published": q.published,
        "question_count": 0,
        "allowed_attempts": 1,
        "due_at": None,
        "lock_at": None,
        "unlock_at": None,
        "time_limit": None,
        "html_url": f"{origin}/courses/{q.course_id}/quizzes/{q.id}",
    }


def submission_json(s: Submission, assignment: Assignment) -> Json:
    grade = None if s.score is None else _grade_text(s.score)
    graded = None if s.graded_at is None else iso(s.graded_at)
    submission_type = {"online_quiz": "online_quiz", "external_tool": "basic_lti_launch"}.get(
        assignment.submission_types[0] if assignment.submission_types else "", "online_upload"
    )
    return {
        "id": s.id,
        "user_id": s.user_id,
        "assignment_id": s.assignment_id,
        "attempt": s.attempt,
        "score": s.score,
        "grade": grade,
        "entered_score": s.score,
        "entered_grade": grade,
        "excused": s.excused,
        "workflow_state": s.workflow_state,
        "submitted_at": None if s.submitted_at is None else iso(s.submitted_at),
        "graded_at": graded,
        "grader_id": None if s.graded_at is None else 1,
        "posted_at": graded,
        "late": False,
        "missing": False,
        "seconds_late": 0,
        "late_policy_status": None,
        "points_deducted": None,
        "submission_type": None if s.submitted_at is None else submission_type,
        "grade_matches_current_submission": True,
        "cached_due_date": None,
    }


def _grade_text(score: float) -> str:
    """Points grades render like Canvas: ``8`` for 8.0, ``8.5`` for 8.5."""
    return f"{round(score, 2):g}" if math.isfinite(score) else str(score)


def _parse_since(raw: str) -> float | None:
    """Canvas's ``Api::ISO8601_REGEX``; a value without a zone is read as UTC."""
    if not _ISO8601.match(raw):
        return None
    text = raw.replace("Z", "+00:00")
    head, dot, tail = text.partition(".")
    if dot:  # fromisoformat takes at most six fraction digits
        digits = re.match(r"\d+", tail)
        frac = digits.group(0) if digits else ""
        text = f"{head}.{frac[:6]}{tail[len(frac) :]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _after(stamp: float | None, since: float | None) -> bool:
    """``*_since`` is strictly greater-than, and rows lacking the stamp drop out."""
    return since is None or (stamp is not None and stamp > since)


def _ok(body: object, links: dict[str, str] | None = None) -> HttpResponse:
    return json_response(200, body, {**RATE_HEADERS, **(links or {})})


def _not_found() -> HttpResponse:
    return json_response(404, NOT_FOUND)


def _per_page(request: ApiRequest) -> int:
    raw = request.param("per_page")
    value = DEFAULT_PER_PAGE if raw is None else ruby_to_i(raw)
    return min(max(value, 1), MAX_PER_PAGE)


def _numbered(
    request: ApiRequest,
    rows: Sequence[T],
    render: Callable[[T], Json],
    shift: int,
    *,
    with_last: bool = True,
) -> HttpResponse:
    """Offset pages ``page=1,2,...``; past the end is ``200 []``, a malformed page is 404."""
    raw = request.param("page")
    page = 1 if raw is None else parse_id(raw)
    if page is None:
        return _not_found()
    per_page = _per_page(request)
    # Drift is rows inserted or deleted *between* two fetches, ahead of the cursor: the
    # first page has no earlier fetch to drift from.
    start = (page - 1) * per_page + (shift if page > 1 else 0)
    chunk = rows[start : start + per_page]

    def url(p: int) -> str:
        return request.url_with(
            {"page": str(p), "per_page": str(per_page)}, ("access_token", "api_key")
        )

    links = [("current", url(page))]
    if start + per_page < len(rows):
        links.append(("next", url(page + 1)))
    if page > 1:
        links.append(("prev", url(page - 1)))
    links.append(("first", url(1)))
    if with_last:
        links.append(("last", url(max(1, math.ceil(len(rows) / per_page)))))
    return _ok([render(r) for r in chunk], link_header(links, ","))


def _bookmarked(
    request: ApiRequest,
    rows: Sequence[T],
    key: Callable[[T], Key],
    shape: tuple[type, ...],
    accept: Callable[[T], bool],
    render: Callable[[T], Json],
) -> HttpResponse:
    """Keyset pages over ``rows`` (sorted by ``key``): ``page=first``, then
    ``page=bookmark:<token>`` resuming strictly after the token's key. Never a ``last``;
    an undecodable bookmark silently restarts at the first page, as Canvas does."""
    raw = request.param("page")
    after: Key | None = None
    if raw is not None and raw.startswith("bookmark:"):
        after = _decode_bookmark(raw[len("bookmark:") :], shape)
    elif raw not in (None, "first", "1"):
        return _not_found()
    per_page = _per_page(request)
    index = 0 if after is None else bisect_right(rows, after, key=key)
    chunk: list[T] = []
    more = False
    for row in rows[index:]:
        if not accept(row):
            continue
        if len(chunk) == per_page:
            more = True
            break
        chunk.append(row)

    def url(page: str) -> str:
        return request.url_with(
            {"page": page, "per_page": str(per_page)}, ("access_token", "api_key")
        )

    current = "first" if after is None else str(raw)
    links = [("current", url(current))]
    if more:
        links.append(("next", url("bookmark:" + _encode_bookmark(key(chunk[-1])))))
    links.append(("first", url("first")))
    return _ok([render(r) for r in chunk], link_header(links, ","))


def _encode_bookmark(key: Key) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_bookmark(token: str, shape: tuple[type, ...]) -> Key | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    if not isinstance(value, list) or len(value) != len(shape):
        return None
    if not all(type(v) is t for v, t in zip(value, shape, strict=True)):
        return None
    return tuple(value)
