"""The Canvas REST v1 endpoints the sync reads, rendered from :mod:`simulators.canvas.model`.

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
from collections.abc import Callable, Mapping, Sequence
from copy import deepcopy
from datetime import UTC, datetime
from functools import lru_cache
from itertools import islice
from typing import Final, TypeVar

from simulators.api import ApiRequest, json_response, link_header, parse_id, ruby_to_i
from simulators.canvas.model import (
    Assignment,
    Canvas,
    Course,
    Enrollment,
    Module,
    ModuleItem,
    Quiz,
    Section,
    Submission,
    User,
)
from simulators.clock import iso
from simulators.tokens import Service, TokenStore, basic_credentials
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
# A valid token whose developer key lacks the route's scope: 401 *without* WWW-Authenticate,
# which is how clients tell it from an expired token (a refresh will not help).
INSUFFICIENT_SCOPES: Final = {"errors": [{"message": "Insufficient scopes on access token."}]}
# Path parameter names in Canvas scope strings, by the segment before the id.
_SCOPE_PARAMS: Final = {
    "courses": ":course_id",
    "users": ":user_id",
    "assignments": ":assignment_id",
    "modules": ":module_id",
    "sections": ":section_id",
}

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
# Enrollment states that put a course in the user's own ``GET /courses`` list.
_LISTED_STATES: Final = frozenset({"active", "invited"})
# Enrollment rows that no longer give a user any access to the course.
_GONE_STATES: Final = frozenset({"deleted", "rejected"})
_LEARNER_TYPES: Final = frozenset({"StudentEnrollment", "ObserverEnrollment"})
# Roles holding ``view_all_grades`` by default: they read every student's work.
_GRADER_TYPES: Final = frozenset({"TeacherEnrollment", "TaEnrollment"})
NOT_AUTHORIZED: Final = {
    "status": "unauthorized",
    "errors": [{"message": "user not authorized to perform that action"}],
}
REFRESH_NOT_FOUND: Final = {
    "error": "invalid_request",
    "error_description": "refresh_token not found",
}
UNKNOWN_CLIENT: Final = {"error": "invalid_client", "error_description": "unknown client"}
UNSUPPORTED_GRANT: Final = {
    "error": "unsupported_grant_type",
    "error_description": "only the refresh_token grant is simulated",
}
NO_PROGRESS: Final = {
    "error": {
        "message": "no progress available because this course is not module based (has "
        "modules and module completion requirements) or the user is not enrolled as a "
        "student in this course"
    }
}

Action = Callable[[ApiRequest, int], HttpResponse]
"""A routed request: (request, page shift) to response, run once the token is checked."""
CourseAction = Callable[[Course, ApiRequest, int], HttpResponse]


class CanvasApi:
    """Request handler over one :class:`Canvas` (the primary, or a stale replica).

    ``page_shift`` lets the transport simulate rows inserted or deleted ahead of a numbered
    page's offset between two fetches (PAGE_DRIFT); bookmark pages are immune by design.

    A token issued for a user acts as that user: ``GET /courses`` lists only their courses
    and course routes answer 403 in courses they are not in. A token without a user is the
    sync's service (admin) token and sees everything.
    """

    def __init__(self, canvas: Canvas, tokens: TokenStore) -> None:
        self.canvas = canvas
        self.tokens = tokens

    def handle(self, request: ApiRequest, *, page_shift: int = 0) -> HttpResponse:
        """Unknown routes are 404 before the token is looked at, as Rails routes first."""
        action = self._route(request.segments) if request.method.upper() == "GET" else None
        if action is None:
            return _not_found()
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        return action(request, page_shift)

    def token_grant(self, request: ApiRequest, form: Mapping[str, str]) -> HttpResponse:
        """``POST /login/oauth2/token`` with the refresh grant, the one a server-side
        integration uses once it holds a refresh token. The answer carries no new
        ``refresh_token``: Canvas's refresh tokens are reused. Error bodies are OAuth's,
        not the REST ``errors`` list; ``invalid_client`` is as read in Canvas's OAuth
        provider controller, not confirmed against a live instance."""
        params = {**dict(request.query), **form}  # Rails merges query and body params
        basic = basic_credentials(request.header("Authorization"))
        client_id = params.get("client_id") or (basic[0] if basic else None)
        secret = params.get("client_secret") or (basic[1] if basic else None)
        if params.get("grant_type") != "refresh_token":
            return _fixed(400, UNSUPPORTED_GRANT)
        known = None if client_id is None else self.tokens.client_secret(Service.CANVAS, client_id)
        if known is None or secret != known:
            return _fixed(401, UNKNOWN_CLIENT)
        grant = self.tokens.grant_refresh(Service.CANVAS, params.get("refresh_token", ""))
        if grant is None:
            return _fixed(400, REFRESH_NOT_FOUND)
        access, _, user_id = grant
        body: Json = {"access_token": access, "token_type": "Bearer"}
        user = None if user_id is None else self.canvas.users.get(user_id)
        if user is not None:
            body["user"] = {"id": user.id, "name": user.name}
        body["expires_in"] = int(Service.CANVAS.ttl)
        return json_response(200, body)

    # ------------------------------------------------------------------ routing

    def _route(self, segs: tuple[str, ...]) -> Action | None:
        match segs:
            case ("api", "v1", "courses"):
                return self._list_courses
            case ("api", "v1", "courses", raw_course, *rest):
                action = self._course_action(tuple(rest))
                return None if action is None else self._in_course(raw_course, action)
            case ("api", "v1", "users", raw_user):
                return lambda r, _: self._user(r, raw_user)
            case ("api", "v1", "users", raw_user, "courses"):
                return lambda r, shift: self._user_courses(r, raw_user, shift)
        return None

    def _course_action(self, rest: tuple[str, ...]) -> CourseAction | None:
        match rest:
            case ():
                return lambda course, _, __: _ok(course_json(course))
            case ("enrollments",):
                return lambda course, r, _: self._enrollments(course, r)
            case ("users",) | ("search_users",):  # one Rails action behind both routes
                return self._users
            case ("sections",):
                return self._sections
            case ("assignments",):
                return self._assignments
            case ("quizzes",):
                return self._quizzes
            case ("modules",):
                return self._modules
            case ("students", "submissions"):
                return lambda course, r, _: self._submissions(course, r)
            case ("assignments", raw_assignment, "submissions"):
                return lambda c, r, shift: self._assignment_submissions(c, raw_assignment, r, shift)
            case ("modules", raw_module, "items"):
                return lambda c, r, shift: self._module_items(c, raw_module, r, shift)
            case ("users", raw_user):
                return lambda course, r, _: self._course_user(course, raw_user, r)
            case ("users", raw_user, "progress"):
                return lambda course, r, _: self._progress(course, raw_user, r)
        return None

    def _in_course(self, raw_course: str, action: CourseAction) -> Action:
        """Resolve the course (404 when unknown or deleted), then check the token's user
        may read it (403, hosted Canvas's answer since about 2022)."""

        def run(request: ApiRequest, shift: int) -> HttpResponse:
            course_id = parse_id(raw_course)
            course = None if course_id is None else self.canvas.live_course(course_id)
            if course is None:
                return _not_found()
            user_id = self.tokens.user_of(_token(request))
            if user_id is not None and not self._enrollments_of(user_id, course.id):
                return _fixed(403, NOT_AUTHORIZED)
            return action(course, request, shift)

        return run

    # ------------------------------------------------------------------ plumbing

    def _authenticate(self, request: ApiRequest) -> HttpResponse | None:
        token = _token(request)
        if token is None:
            return _fixed(401, NO_CREDENTIALS, WWW_AUTHENTICATE)
        if not self.tokens.validate(Service.CANVAS, token):
            return _fixed(401, INVALID_TOKEN, WWW_AUTHENTICATE)
        scopes = self.tokens.scopes_of(token)
        if scopes is not None and scope_for(request) not in scopes:
            return _fixed(401, INSUFFICIENT_SCOPES)
        return None

    def _enrollments_of(self, user_id: int, course_id: int) -> list[Enrollment]:
        """The user's enrollment rows in the course that still give access."""
        return [
            e
            for e in self.canvas.enrollments_in(course_id)
            if e.user_id == user_id and e.state not in _GONE_STATES
        ]

    def _lists_course(self, user_id: int, course: Course) -> bool:
        """Canvas's own-courses rule: a current or invited enrollment; students and
        observers see only available courses, other roles everything but deleted ones."""
        rows = [e for e in self._enrollments_of(user_id, course.id) if e.state in _LISTED_STATES]
        if not rows:
            return False
        learner_only = all(e.type in _LEARNER_TYPES for e in rows)
        return course.workflow_state == "available" or not learner_only

    def _readable_students(self, course: Course, request: ApiRequest) -> frozenset[int] | None:
        """Whose submissions and progress the token may read: everyone's (``None``) for a
        service token or a teacher or TA of the course (``view_all_grades``), else only
        the caller's own. Observers' observees are not modelled, so they read nobody's."""
        user_id = self.tokens.user_of(_token(request))
        if user_id is None or any(
            e.type in _GRADER_TYPES for e in self._enrollments_of(user_id, course.id)
        ):
            return None
        return frozenset({user_id})

    def _user_ref(self, raw: str, request: ApiRequest) -> int | None:
        """A path user id; ``self`` is the token's user (none for a service token)."""
        user_id = self.tokens.user_of(_token(request)) if raw == "self" else parse_id(raw)
        return user_id if user_id in self.canvas.users else None

    # ------------------------------------------------------------------ endpoints

    def _list_courses(self, request: ApiRequest, shift: int) -> HttpResponse:
        """Only the token user's own courses; a service token lists every live course."""
        return self._courses_of(self.tokens.user_of(_token(request)), request, shift)

    def _courses_of(self, user_id: int | None, request: ApiRequest, shift: int) -> HttpResponse:
        courses = [
            c
            for c in sorted(self.canvas.courses.values(), key=lambda c: c.id)
            if c.workflow_state != "deleted" and (user_id is None or self._lists_course(user_id, c))
        ]
        return _numbered(request, courses, course_json, shift)

    def _user(self, request: ApiRequest, raw_user: str) -> HttpResponse:
        user_id = self._user_ref(raw_user, request)
        if user_id is None:
            return _not_found()
        return _ok(user_json(self.canvas.users[user_id], hide_personal=False))

    def _user_courses(self, request: ApiRequest, raw_user: str, shift: int) -> HttpResponse:
        """Another user's course list is theirs to read (or an admin's), nobody else's."""
        user_id = self._user_ref(raw_user, request)
        if user_id is None:
            return _not_found()
        caller = self.tokens.user_of(_token(request))
        if caller is not None and caller != user_id:
            return _fixed(403, NOT_AUTHORIZED)
        return self._courses_of(user_id, request, shift)

    def _sections(self, course: Course, request: ApiRequest, shift: int) -> HttpResponse:
        sections = sorted(self.canvas.sections_in(course.id), key=lambda s: (s.name, s.id))
        return _numbered(request, sections, section_json, shift)

    def _assignments(self, course: Course, request: ApiRequest, shift: int) -> HttpResponse:
        rows = self.canvas.assignments_in(course.id)
        return _numbered(request, rows, lambda a: assignment_json(a, request.origin), shift)

    def _quizzes(self, course: Course, request: ApiRequest, shift: int) -> HttpResponse:
        quizzes = sorted(self.canvas.quizzes_in(course.id), key=lambda q: q.id)
        return _numbered(request, quizzes, lambda q: quiz_json(q, request.origin), shift)

    def _enrollments(self, course: Course, request: ApiRequest) -> HttpResponse:
        types = frozenset(request.params("type[]"))
        states = frozenset(request.params("state[]"))
        rows, keys = self._enrollment_order(course.id)

        def accept(e: Enrollment) -> bool:
            return (not types or e.type in types) and (
                e.state in states if states else e.state not in _HIDDEN_ENROLLMENT_STATES
            )

        return _bookmarked(
            request,
            rows,
            _enrollment_key(self.canvas),
            (str, str, int),
            accept,
            lambda e: self._enrollment_json(e, request.origin, with_user=True),
            keys,
        )

    def _enrollment_order(self, course_id: int) -> tuple[list[Enrollment], list[Key]]:
        """Every enrollment row of the course in bookmark order (type, sortable name, id),
        with its keys: sorted once per change of Canvas, not once per page."""

        def compute() -> tuple[list[Enrollment], list[Key]]:
            key = _enrollment_key(self.canvas)
            rows = sorted(self.canvas.enrollments_in(course_id), key=key)
            return rows, [key(e) for e in rows]

        return self.canvas.derived(("enrollment-order", course_id), compute)

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
        readable = self._readable_students(course, request)
        if readable is not None and not explicit <= readable:
            return _fixed(403, NOT_AUTHORIZED)  # another student's work, by id
        published = {a.id for a in self.canvas.assignments_in(course.id) if a.published}
        asked = request.params("assignment_ids[]")
        if asked:
            asked_ids = {parse_id(s) for s in asked}
            if None in asked_ids or not asked_ids <= published:
                return json_response(403, {"error": "invalid assignment ids requested"})
            published = {i for i in asked_ids if i is not None}
        students = self._submission_students(course, request.param("enrollment_state"))
        caller = self.tokens.user_of(_token(request))
        if "all" not in student_ids:  # omitted means the caller (nobody, for a service token)
            students &= explicit if student_ids or caller is None else {caller}
        elif readable is not None:  # for a student, "all" is everyone it may see: itself
            students &= readable
        workflow = request.param("workflow_state")
        graded_since = since.get("graded_since")
        submitted_since = since.get("submitted_since")

        def accept(sub: Submission) -> bool:
            return (
                sub.assignment_id in published
                and sub.user_id in students
                and (workflow is None or sub.workflow_state == workflow)
                and (graded_since is None or _after(sub.graded_at, graded_since))
                and (submitted_since is None or _after(sub.submitted_at, submitted_since))
            )

        rows = self.canvas.submissions_in(course.id)
        return _bookmarked(
            request,
            rows,
            _submission_key,
            (int,),
            accept,
            lambda s: submission_json(s, self.canvas.assignments[s.assignment_id]),
        )

    def _submission_students(self, course: Course, enrollment_state: str | None) -> frozenset[int]:
        """Every non-deleted student enrollment counts unless ``enrollment_state`` narrows
        it, so concluded students keep their submissions visible. Kept until Canvas
        changes: every module or progress read of a student checks it."""
        wanted = {"active": {"active"}, "concluded": {"completed"}}.get(enrollment_state or "")

        def compute() -> frozenset[int]:
            return frozenset(
                e.user_id
                for e in self.canvas.enrollments_in(course.id)
                if e.type == "StudentEnrollment"
                and e.state != "deleted"
                and (wanted is None or e.state in wanted)
            )

        narrowed = enrollment_state if wanted is not None else None
        return self.canvas.derived(("students", course.id, narrowed), compute)

    def _modules_in_order(self, course_id: int) -> list[Module]:
        """The course's modules by (position, id), sorted once per change of Canvas."""

        def compute() -> list[Module]:
            return sorted(self.canvas.modules_in(course_id), key=lambda m: (m.position, m.id))

        return self.canvas.derived(("module-order", course_id), compute)

    def _modules(self, course: Course, request: ApiRequest, shift: int) -> HttpResponse:
        student = self._student_param(course, request)
        if isinstance(student, HttpResponse):
            return student
        with_items = "items" in request.params("include[]")
        modules = self._modules_in_order(course.id)
        return _numbered(
            request,
            modules,
            lambda m: self._module_json(m, request.origin, student, with_items),
            shift,
        )

    def _student_param(self, course: Course, request: ApiRequest) -> int | HttpResponse | None:
        """The ``student_id`` whose progress to show, ``None`` when not asked, or the 404
        Canvas answers for anyone who is not a student of the course."""
        raw = request.param("student_id")
        if raw is None:
            return None
        student = parse_id(raw)
        if student is None or student not in self._submission_students(course, None):
            return _not_found()
        readable = self._readable_students(course, request)
        if readable is not None and student not in readable:
            return _fixed(403, NOT_AUTHORIZED)
        return student

    def _module_items(
        self, course: Course, raw_module: str, request: ApiRequest, shift: int
    ) -> HttpResponse:
        module_id = parse_id(raw_module)
        module = None if module_id is None else self.canvas.modules.get(module_id)
        if module is None or module.course_id != course.id:
            return _not_found()
        student = self._student_param(course, request)
        if isinstance(student, HttpResponse):
            return student
        items = [self.canvas.items[i] for i in module.items]
        return _numbered(
            request,
            items,
            lambda item: self._item_json(item, course.id, request.origin, student),
            shift,
        )

    def _assignment_submissions(
        self, course: Course, raw_assignment: str, request: ApiRequest, shift: int
    ) -> HttpResponse:
        """One assignment's rows for every non-deleted student, numbered, by user id."""
        assignment_id = parse_id(raw_assignment)
        assignment = None if assignment_id is None else self.canvas.assignments.get(assignment_id)
        if assignment is None or assignment.course_id != course.id or assignment.deleted:
            return _not_found()
        if self._readable_students(course, request) is not None:
            return _fixed(403, NOT_AUTHORIZED)  # a grader's list: students use their own
        rows = [
            sub
            for user_id in sorted(self._submission_students(course, None))
            if (sub := self.canvas.submissions.get((assignment.id, user_id))) is not None
        ]
        return _numbered(request, rows, lambda s: submission_json(s, assignment), shift)

    def _course_user(self, course: Course, raw_user: str, request: ApiRequest) -> HttpResponse:
        user_id = self._user_ref(raw_user, request)
        rows = [] if user_id is None else self._enrollments_of(user_id, course.id)
        if user_id is None or not rows:
            return _not_found()
        pending = all(e.state in _PENDING_STATES for e in rows)
        out = user_json(self.canvas.users[user_id], hide_personal=pending)
        if "enrollments" in request.params("include[]"):
            out["enrollments"] = [
                self._enrollment_json(e, request.origin, with_user=False) for e in rows
            ]
        return _ok(out)

    def _progress(self, course: Course, raw_user: str, request: ApiRequest) -> HttpResponse:
        """``CourseProgress``: counts over every item with a completion requirement. Our
        modules are never sequential, so ``next_requirement_url`` is always null."""
        user_id = self._user_ref(raw_user, request)
        if user_id is None:
            return _not_found()
        readable = self._readable_students(course, request)
        if readable is not None and user_id not in readable:
            return _fixed(403, NOT_AUTHORIZED)  # another's needs view_all_grades
        modules = self._modules_in_order(course.id)
        required = [
            item.id
            for module in modules
            for i in module.items
            if (item := self.canvas.items[i]).requirement is not None
        ]
        if not required or user_id not in self._submission_students(course, None):
            return _fixed(400, NO_PROGRESS)
        done = [
            self.canvas.completions[(item_id, user_id)]
            for item_id in required
            if (item_id, user_id) in self.canvas.completions
        ]
        finished = len(done) == len(required)
        return _ok(
            {
                "requirement_count": len(required),
                "requirement_completed_count": len(done),
                "next_requirement_url": None,
                "completed_at": iso(max(done)) if finished else None,
            }
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
            current, final = self.canvas.scores(e.course_id, e.user_id)
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


def section_json(section: Section) -> Json:
    return {
        "id": section.id,
        "name": section.name,
        "course_id": section.course_id,
        "sis_section_id": None,
        "integration_id": None,
        "sis_import_id": None,
        "sis_course_id": None,
        "start_at": None,
        "end_at": None,
        "restrict_enrollments_to_section_dates": False,
        "nonxlist_course_id": None,
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


_SUBMISSION_TYPES: Final = {"online_quiz": "online_quiz", "external_tool": "basic_lti_launch"}


def submission_json(s: Submission, assignment: Assignment) -> Json:
    grade = None if s.score is None else _grade_text(s.score)
    graded = None if s.graded_at is None else iso(s.graded_at)
    submission_type = None
    if s.submitted_at is not None:
        kinds = assignment.submission_types
        submission_type = _SUBMISSION_TYPES.get(kinds[0] if kinds else "", "online_upload")
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
        "submission_type": submission_type,
        "grade_matches_current_submission": True,
        "cached_due_date": None,
    }


def _grade_text(score: float) -> str:
    """Points grades render like Canvas: ``8`` for 8.0, ``8.5`` for 8.5."""
    return f"{round(score, 2):g}" if math.isfinite(score) else str(score)


@lru_cache(maxsize=256)  # an incremental read sends its watermark page after page
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
    return json_response(200, body, links or {})


def scope_for(request: ApiRequest) -> str:
    """The Canvas scope a request needs, e.g. ``url:GET|/api/v1/courses/:course_id/users``."""
    segments = request.segments
    template = [
        _SCOPE_PARAMS.get(segments[i - 1], ":id") if i and segment.isdigit() else segment
        for i, segment in enumerate(segments)
    ]
    return f"url:{request.method.upper()}|/" + "/".join(template)


def _token(request: ApiRequest) -> str | None:
    """Canvas takes the Bearer header, else ``?access_token=``."""
    return request.bearer() or request.param("access_token")


def _fixed(
    status: int, body: Mapping[str, object], headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """One of the module's fixed answers, copied: a response body goes to the caller as
    it is (see :func:`~simulators.api.json_response`), and a caller that changed it must
    not change the next answer."""
    return json_response(status, deepcopy(dict(body)), headers)


def _not_found() -> HttpResponse:
    return _fixed(404, NOT_FOUND)


def _per_page(request: ApiRequest) -> int:
    raw = request.param("per_page")
    value = DEFAULT_PER_PAGE if raw is None else ruby_to_i(raw)
    return min(max(value, 1), MAX_PER_PAGE)


_UNLINKED: Final = ("access_token", "api_key")
"""Credentials a client may pass in the query, which Canvas never echoes in ``Link``."""


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

    prefix = request.link_prefix(("page", "per_page"), _UNLINKED)
    more = start + per_page < len(rows)
    last = max(1, math.ceil(len(rows) / per_page)) if with_last else None
    links = {"Link": _numbered_links(prefix, page, per_page, more, last)}
    return _ok([render(r) for r in chunk], links)


@lru_cache(maxsize=4096)
def _numbered_links(prefix: str, page: int, per_page: int, more: bool, last: int | None) -> str:
    """A numbered page's ``Link`` value. Cached: a sync asks for the same pages (a
    student's modules) round after round, and the header depends on nothing else."""

    def url(p: int) -> str:
        return f"{prefix}page={p}&per_page={per_page}"  # numbers: nothing to encode

    links = [("current", url(page))]
    if more:
        links.append(("next", url(page + 1)))
    if page > 1:
        links.append(("prev", url(page - 1)))
    links.append(("first", url(1)))
    if last is not None:
        links.append(("last", url(last)))
    return link_header(links, ",")["Link"]


def _bookmarked(
    request: ApiRequest,
    rows: Sequence[T],
    key: Callable[[T], Key],
    shape: tuple[type, ...],
    accept: Callable[[T], bool],
    render: Callable[[T], Json],
    keys: Sequence[Key] | None = None,
) -> HttpResponse:
    """Keyset pages over ``rows`` (sorted by ``key``; ``keys``, when given, are those keys
    precomputed): ``page=first``, then ``page=bookmark:<token>`` resuming strictly after
    the token's key. Never a ``last``; an undecodable bookmark silently restarts at the
    first page, as Canvas does."""
    raw = request.param("page")
    after: Key | None = None
    if raw is not None and raw.startswith("bookmark:"):
        after = _decode_bookmark(raw[len("bookmark:") :], shape)
    elif raw not in (None, "first", "1"):
        return _not_found()
    per_page = _per_page(request)
    if after is None:
        index = 0
    elif keys is not None:
        index = bisect_right(keys, after)
    else:
        index = bisect_right(rows, after, key=key)
    chunk: list[T] = []
    more = False
    for row in islice(rows, index, None):
        if not accept(row):
            continue
        if len(chunk) == per_page:
            more = True
            break
        chunk.append(row)

    def url(page: str) -> str:
        return request.url_with({"page": page, "per_page": str(per_page)}, _UNLINKED)

    current = "first" if after is None else str(raw)
    links = [("current", url(current))]
    if more:
        links.append(("next", url("bookmark:" + _encode_bookmark(key(chunk[-1])))))
    links.append(("first", url("first")))
    return _ok([render(r) for r in chunk], link_header(links, ","))


def _enrollment_key(canvas: Canvas) -> Callable[[Enrollment], Key]:
    """Canvas's enrollment bookmark order: type, then the user's sortable name, then id."""
    users = canvas.users
    return lambda e: (e.type, users[e.user_id].sortable_name, e.id)


def _submission_key(s: Submission) -> Key:
    return (s.id,)


def _encode_bookmark(key: Key) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_bookmark(token: str, shape: tuple[type, ...]) -> Key | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError):  # a nested-list bomb is garbage too
        return None
    if not isinstance(value, list) or len(value) != len(shape):
        return None
    if not all(type(v) is t for v, t in zip(value, shape, strict=True)):
        return None
    return tuple(value)
