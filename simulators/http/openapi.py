"""What each simulated route answers, as OpenAPI: the statuses the handlers can produce
with faults off and the JSON Schema of every body, read off the JSON builders in
:mod:`simulators.canvas.api` and :mod:`simulators.credentials.api`.

The schemas are strict on purpose (every key the builders always write is required, no
other key is allowed), so a schemathesis run against ``/openapi.json`` notices a handler
that drops, renames or retypes a field, and a status a route was never documented to send.
Statuses only a fault produces (503, Badgr's 429) are left out: the run has faults off, so
seeing one is a bug. Canvas's 429 is in, because its leaky bucket throttles a token that
asks too fast even with faults off.
"""

from __future__ import annotations

from collections.abc import Mapping
from copy import deepcopy
from dataclasses import dataclass
from typing import Final

Schema = dict[str, object]

CANVAS_JSON: Final = "application/json"
BADGR_JSON: Final = "application/ld+json"
"""Badgr answers every API request, errors included, as JSON-LD."""
OAUTH_JSON: Final = "application/json"

STR: Final[Schema] = {"type": "string"}
INT: Final[Schema] = {"type": "integer"}
ID: Final[Schema] = {"type": "integer", "minimum": 1}
NUMBER: Final[Schema] = {"type": "number"}
BOOL: Final[Schema] = {"type": "boolean"}
CANVAS_STAMP: Final[Schema] = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
}
"""Canvas's REST timestamps: UTC, whole seconds, a literal ``Z``."""
BADGR_STAMP: Final[Schema] = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$",
}
"""Badgr's ``createdAt``: UTC with microseconds."""


def nullable(schema: Schema) -> Schema:
    """``schema`` or JSON ``null`` (OpenAPI 3.1 dropped ``nullable: true``)."""
    return {"anyOf": [schema, {"type": "null"}]}


def record(required: Mapping[str, Schema], optional: Mapping[str, Schema] | None = None) -> Schema:
    """An object with exactly these keys: ``required`` always, ``optional`` sometimes."""
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
        "additionalProperties": False,
    }


def fields(required: Mapping[str, Schema], optional: Mapping[str, Schema] | None = None) -> Schema:
    """A request body object: the keys the handler reads; others are ignored, as the
    real services ignore them, so they are allowed."""
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
    }


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


@dataclass(frozen=True)
class Doc:
    """One route's documentation: its success status (FastAPI's ``status_code``), every
    status it can answer with a ``{media type: body schema}`` for each (empty: no body),
    the body it reads, if any, and the query parameters worth generating."""

    status: int
    answers: Mapping[int, Mapping[str, Schema]]
    body: Schema | None = None
    queries: tuple[str, ...] = ()

    def responses(self) -> dict[int | str, dict[str, object]]:
        """FastAPI's ``responses=`` argument (a copy: FastAPI merges into what it gets)."""
        out: dict[int | str, dict[str, object]] = {}
        for status, contents in self.answers.items():
            doc: dict[str, object] = {"description": _DESCRIPTIONS[status]}
            if contents:
                doc["content"] = {m: {"schema": deepcopy(s)} for m, s in contents.items()}
            out[status] = doc
        return out


_DESCRIPTIONS: Final = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad request",
    401: "Not authenticated (token, client or grant)",
    403: "Not permitted",
    404: "No such route or resource",
    405: "Method not allowed on this resource",
    429: "Throttled",
}

# --------------------------------------------------------------------------- Canvas

CANVAS_ERRORS: Final = record(
    {"errors": {"type": "array", "items": record({"message": STR}), "minItems": 1}},
    {"status": STR},
)
"""Canvas's usual error body; ``status`` only on the no-credentials and not-authorized ones."""
CANVAS_THROTTLED: Final[Schema] = {"type": "string"}
"""The throttle answer is plain text, not JSON."""

COURSE: Final = record(
    {
        "id": ID,
        "name": STR,
        "course_code": STR,
        "uuid": STR,
        "workflow_state": STR,
        "account_id": INT,
        "root_account_id": INT,
        "enrollment_term_id": INT,
        "created_at": CANVAS_STAMP,
        "start_at": nullable(CANVAS_STAMP),
        "end_at": nullable(CANVAS_STAMP),
        "time_zone": STR,
        "blueprint": BOOL,
        "default_view": STR,
    }
)
SECTION: Final = record(
    {
        "id": ID,
        "name": STR,
        "course_id": ID,
        "sis_section_id": nullable(STR),
        "integration_id": nullable(STR),
        "sis_import_id": nullable(INT),
        "sis_course_id": nullable(STR),
        "start_at": nullable(CANVAS_STAMP),
        "end_at": nullable(CANVAS_STAMP),
        "restrict_enrollments_to_section_dates": BOOL,
        "nonxlist_course_id": nullable(INT),
    }
)
_GRADES: Final = record(
    {
        "html_url": STR,
        "current_score": nullable(NUMBER),
        "final_score": nullable(NUMBER),
        "current_grade": nullable(STR),
        "final_grade": nullable(STR),
        "unposted_current_score": nullable(NUMBER),
        "unposted_final_score": nullable(NUMBER),
        "unposted_current_grade": nullable(STR),
        "unposted_final_grade": nullable(STR),
    }
)
ENROLLMENT: Final = record(
    {
        "id": ID,
        "user_id": ID,
        "course_id": ID,
        "course_section_id": ID,
        "type": STR,
        "role": STR,
        "role_id": INT,
        "enrollment_state": STR,
        "root_account_id": INT,
        "associated_user_id": nullable(INT),
        "limit_privileges_to_course_section": BOOL,
        "created_at": CANVAS_STAMP,
        "updated_at": CANVAS_STAMP,
        "start_at": nullable(CANVAS_STAMP),
        "end_at": nullable(CANVAS_STAMP),
        "html_url": STR,
    },
    {
        # Student enrollments only.
        "grades": _GRADES,
        # In the enrollments list, not when nested in a user.
        "user": record({"id": ID, "name": STR, "sortable_name": STR, "short_name": STR}),
    },
)
_USER_BASE: Final = {
    "id": ID,
    "name": STR,
    "sortable_name": STR,
    "short_name": STR,
    "integration_id": nullable(STR),
    "created_at": CANVAS_STAMP,
}
_PERSONAL: Final = {"sis_user_id": nullable(STR), "login_id": STR, "email": nullable(STR)}
USER: Final = record(_USER_BASE, _PERSONAL)
"""A user as a course lists it: invited-only users come without the personal keys at all."""
COURSE_USER: Final = record(_USER_BASE, {**_PERSONAL, "enrollments": array(ENROLLMENT)})
"""As :data:`USER`, plus the enrollments ``include[]=enrollments`` asks for."""
FULL_USER: Final = record({**_USER_BASE, **_PERSONAL})
"""``GET /users/:id``, which always shows the personal keys."""
ASSIGNMENT: Final = record(
    {
        "id": ID,
        "name": STR,
        "course_id": ID,
        "assignment_group_id": INT,
        "position": INT,
        "points_possible": nullable(NUMBER),
        "grading_type": STR,
        "submission_types": array(STR),
        "published": BOOL,
        "workflow_state": {"enum": ["published", "unpublished"]},
        "created_at": CANVAS_STAMP,
        "updated_at": CANVAS_STAMP,
        "due_at": nullable(CANVAS_STAMP),
        "lock_at": nullable(CANVAS_STAMP),
        "unlock_at": nullable(CANVAS_STAMP),
        "omit_from_final_grade": BOOL,
        "only_visible_to_overrides": BOOL,
        "is_quiz_assignment": BOOL,
        "html_url": STR,
    },
    {
        "quiz_id": ID,  # classic quizzes only
        "is_quiz_lti_assignment": {"const": True},  # New Quizzes only, with the launch tag
        "external_tool_tag_attributes": record(
            {"url": STR, "new_tab": BOOL, "resource_link_id": STR}
        ),
    },
)
QUIZ: Final = record(
    {
        "id": ID,
        "title": STR,
        "quiz_type": STR,
        "assignment_id": ID,
        "assignment_group_id": INT,
        "points_possible": nullable(NUMBER),
        "published": BOOL,
        "question_count": INT,
        "allowed_attempts": INT,
        "due_at": nullable(CANVAS_STAMP),
        "lock_at": nullable(CANVAS_STAMP),
        "unlock_at": nullable(CANVAS_STAMP),
        "time_limit": nullable(INT),
        "html_url": STR,
    }
)
SUBMISSION: Final = record(
    {
        "id": ID,
        "user_id": ID,
        "assignment_id": ID,
        "attempt": nullable(INT),
        "score": nullable(NUMBER),
        "grade": nullable(STR),
        "entered_score": nullable(NUMBER),
        "entered_grade": nullable(STR),
        "excused": BOOL,
        "workflow_state": STR,
        "submitted_at": nullable(CANVAS_STAMP),
        "graded_at": nullable(CANVAS_STAMP),
        "grader_id": nullable(INT),
        "posted_at": nullable(CANVAS_STAMP),
        "late": BOOL,
        "missing": BOOL,
        "seconds_late": INT,
        "late_policy_status": nullable(STR),
        "points_deducted": nullable(NUMBER),
        "submission_type": nullable(STR),
        "grade_matches_current_submission": BOOL,
        "cached_due_date": nullable(CANVAS_STAMP),
    }
)
_REQUIREMENT: Final = record({"type": STR}, {"min_score": NUMBER, "completed": BOOL})
MODULE_ITEM: Final = record(
    {
        "id": ID,
        "module_id": ID,
        "position": INT,
        "title": STR,
        "indent": INT,
        "type": STR,
        "html_url": STR,
        "url": STR,
    },
    # Pages, sub-headers and external URLs have no content id.
    {"content_id": nullable(INT), "completion_requirement": _REQUIREMENT},
)
MODULE: Final = record(
    {
        "id": ID,
        "name": STR,
        "position": INT,
        "unlock_at": nullable(CANVAS_STAMP),
        "require_sequential_progress": BOOL,
        "requirement_type": STR,
        "prerequisite_module_ids": array(INT),
        "publish_final_grade": BOOL,
        "published": BOOL,
        "workflow_state": STR,
        "items_count": INT,
        "items_url": STR,
    },
    {
        # With ``student_id``.
        "state": STR,
        "completed_at": nullable(CANVAS_STAMP),
        # With ``include[]=items``, unless the module is too big to inline.
        "items": array(MODULE_ITEM),
    },
)
PROGRESS: Final = record(
    {
        "requirement_count": INT,
        "requirement_completed_count": INT,
        "next_requirement_url": nullable(STR),
        "completed_at": nullable(CANVAS_STAMP),
    }
)
NO_PROGRESS: Final = record({"error": record({"message": STR})})
"""Progress's 400 for a course that is not module based, or a user who is no student."""
SUBMISSIONS_400: Final[Schema] = {
    "anyOf": [
        record({"errors": {"type": "object", "additionalProperties": STR}}),  # bad *_since
        record({"error": STR}),  # too many students
    ]
}
SUBMISSIONS_403: Final[Schema] = {"anyOf": [CANVAS_ERRORS, record({"error": STR})]}
"""Not the token user's course, or assignment ids that are not the course's published ones."""


def canvas(
    body: Schema, *, errors: Mapping[int, Schema] | None = None, queries: tuple[str, ...] = ()
) -> Doc:
    """A Canvas read: 401 without a valid token, 404 for an unknown resource or a malformed
    page, 429 when the token's leaky bucket is full, and any route-specific ``errors``."""
    answers: dict[int, Mapping[str, Schema]] = {
        200: {CANVAS_JSON: body},
        401: {CANVAS_JSON: CANVAS_ERRORS},
        404: {CANVAS_JSON: CANVAS_ERRORS},
        429: {"text/plain": CANVAS_THROTTLED},
    }
    answers.update({status: {CANVAS_JSON: schema} for status, schema in (errors or {}).items()})
    return Doc(200, dict(sorted(answers.items())), queries=queries)


def in_course(body: Schema, *, queries: tuple[str, ...] = ()) -> Doc:
    """A course route: a user token outside the course gets 403."""
    return canvas(body, errors={403: CANVAS_ERRORS}, queries=queries)


PAGES: Final = ("page", "per_page")
"""Canvas's page parameters, numbered or bookmark."""

# --------------------------------------------------------------------------- Badgr

_STATUS_FALSE: Final = record({"success": {"const": False}, "description": STR})
BADGR_ERROR: Final = record(
    {
        "status": _STATUS_FALSE,
        "validationErrors": array(STR),
        "fieldErrors": {
            "anyOf": [
                {"type": "object", "additionalProperties": array(STR)},
                # Batch award: one object per item, {} for each valid one.
                array({"type": "object", "additionalProperties": array(STR)}),
                STR,  # 405, DRF's "miscellaneous error"
            ]
        },
        "result": {"type": "array", "maxItems": 0},
    }
)


def envelope(item: Schema) -> Schema:
    """A Badgr v2 success: ``result`` is always a list."""
    status = record({"success": {"const": True}, "description": STR})
    return record({"status": status, "result": array(item)})


ISSUER: Final = record(
    {
        "entityType": {"const": "Issuer"},
        "entityId": STR,
        "openBadgeId": STR,
        "createdAt": BADGR_STAMP,
        "createdBy": STR,
        "name": STR,
        "image": nullable(STR),
        "email": nullable(STR),
        "url": nullable(STR),
        "description": nullable(STR),
        "staff": array({"type": "object"}),
        "extensions": {"type": "object"},
    }
)
BADGE_CLASS: Final = record(
    {
        "entityType": {"const": "BadgeClass"},
        "entityId": STR,
        "openBadgeId": STR,
        "createdAt": BADGR_STAMP,
        "createdBy": STR,
        "issuer": STR,
        "issuerOpenBadgeId": STR,
        "name": STR,
        "image": nullable(STR),
        "description": STR,
        "criteriaUrl": nullable(STR),
        "criteriaNarrative": nullable(STR),
        "alignments": array({"type": "object"}),
        "tags": array(STR),
        "expires": nullable({"type": "object"}),
        "extensions": {"type": "object"},
    }
)
RECIPIENT_TYPES: Final = ["email", "url", "telephone", "openBadgeId"]
ASSERTION: Final = record(
    {
        "entityType": {"const": "Assertion"},
        "entityId": STR,
        "openBadgeId": STR,
        "createdAt": BADGR_STAMP,
        "createdBy": STR,
        "badgeclass": STR,
        "badgeclassOpenBadgeId": STR,
        "issuer": STR,
        "issuerOpenBadgeId": STR,
        "image": STR,
        "recipient": record(
            {
                "identity": STR,
                "hashed": BOOL,
                "type": {"enum": RECIPIENT_TYPES},
                "plaintextIdentity": STR,
                "salt": STR,
            }
        ),
        "issuedOn": CANVAS_STAMP,
        "narrative": nullable(STR),
        "evidence": array({"type": "object"}),
        "revoked": BOOL,
        "revocationReason": nullable(STR),
        "expires": nullable(CANVAS_STAMP),
        "extensions": {"type": "object"},
    }
)
REVOKED_ITEM: Final = record(
    {"revoked": BOOL},
    {"entityId": STR, "revocationReason": STR, "reason": STR},
)
"""One item of a batch revoke: whether it was revoked and, if not, why."""
MEMBER: Final = record(
    {
        "entityType": {"const": "RecipientGroupMember"},
        "canvasUserId": ID,
        "email": STR,
        "name": STR,
        "earned": array(STR),
    }
)
LEADERBOARD_ROW: Final = record({"canvasUserId": ID, "badges": INT, "rank": INT})

# Request bodies, as the handlers validate them.
AWARD: Final = fields(
    {"recipient": fields({"identity": STR}, {"type": {"enum": RECIPIENT_TYPES}})},
    {"narrative": nullable(STR), "allowDuplicateAwards": BOOL},
)
ISSUE: Final = fields({"assertions": array(AWARD)})
REVOKE_MANY: Final = array(fields({"entityId": STR, "revocationReason": STR}))
REVOKE_ONE: Final = fields({"revocation_reason": STR})
MEMBER_PUT: Final = fields(
    {"email": {"type": "string", "format": "email"}, "name": STR, "earned": array(STR)}
)
LEADERBOARD_PUT: Final = fields(
    {
        "entries": array(
            fields(
                {
                    "canvasUserId": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                    "badges": {"type": "integer", "minimum": 0},
                }
            )
        )
    }
)


def badgr(
    status: int,
    item: Schema | None,
    *,
    also: tuple[int, ...] = (),
    errors: tuple[int, ...] = (),
    body: Schema | None = None,
    queries: tuple[str, ...] = (),
) -> Doc:
    """A Badgr route: 401 without a valid token, plus ``errors``: 404 where a path value
    can name something unknown or not permitted (or a cursor not decode), 400 for a bad
    write, 405 where a path value can land on a route with other methods. ``item``
    ``None``: no body;
    ``also``: other success statuses with the same body (a PUT that creates or replaces)."""
    success: Mapping[str, Schema] = {} if item is None else {BADGR_JSON: envelope(item)}
    answers: dict[int, Mapping[str, Schema]] = {code: success for code in (status, *also)}
    for code in (401, *errors):
        answers[code] = {BADGR_JSON: BADGR_ERROR}
    return Doc(status, dict(sorted(answers.items())), body, queries)


PAGED: Final = ("num", "cursor")
"""Badgr's cursor pages (off without ``num``)."""

# --------------------------------------------------------------------------- OAuth

OAUTH_ERROR: Final = record({"error": STR}, {"error_description": STR})
CANVAS_TOKEN: Final = record(
    {"access_token": STR, "token_type": {"const": "Bearer"}, "expires_in": INT},
    {"user": record({"id": ID, "name": STR})},
)
CREDENTIALS_TOKEN: Final = record(
    {"access_token": STR, "token_type": {"const": "Bearer"}, "expires_in": INT, "scope": STR},
    {"refresh_token": STR},
)


def oauth(token: Schema, form: Mapping[str, Schema]) -> Doc:
    """A token endpoint: the token, or OAuth's ``error`` body (400, 401)."""
    answers: dict[int, Mapping[str, Schema]] = {
        200: {OAUTH_JSON: token},
        400: {OAUTH_JSON: OAUTH_ERROR},
        401: {OAUTH_JSON: OAUTH_ERROR},
    }
    return Doc(200, answers, {"type": "object", "properties": dict(form)})


_CLIENT: Final = {"client_id": STR, "client_secret": STR, "grant_type": STR}
CANVAS_GRANT: Final = oauth(CANVAS_TOKEN, {**_CLIENT, "refresh_token": STR})
CREDENTIALS_GRANT: Final = oauth(
    CREDENTIALS_TOKEN, {**_CLIENT, "refresh_token": STR, "username": STR, "password": STR}
)
