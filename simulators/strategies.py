"""Public Hypothesis strategies for people who test their own sync code against credsync.

Three families, all typed and all usable with ``@given`` or ``data.draw``:

- **worlds**: :func:`worlds` (the hand-made :meth:`World.small` or worlds built from
  :func:`course_specs`, optionally linked), :func:`small_world_seeds`;
- **faults**: :func:`fault_rates` (VOPR-style swarm rates, none to very high per kind),
  :func:`fault_targets` and :func:`fault_plans`;
- **payloads**: :func:`canvas_enrollments`, :func:`canvas_users`, :func:`canvas_assignments`,
  :func:`canvas_submissions`, :func:`credentials_assertions`, :func:`credentials_members`:
  one JSON record each, exactly as the fakes serve it.

Payloads are not assembled field by field here. Each strategy draws a small piece of model
state (a user with a mixed-case email, a revoked award, an excused submission...) and reads
it back through the fake's own request handler, so a payload always has the shape the fake
serves, and a change to that shape reaches every property that uses these strategies.

:class:`~simulators.harness.machine.SyncMachine` draws its worlds and faults from this module, so a
property written with these strategies explores what the project's own fuzzing explores.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, Final

from hypothesis import strategies as st

from simulators.api import ApiRequest
from simulators.canvas.api import CanvasApi
from simulators.canvas.model import ENROLLMENT_STATES, ENROLLMENT_TYPES, RateLimit
from simulators.credentials.api import CredentialsApi
from simulators.faults import FaultPlan, FaultRates, SeededChoices
from simulators.tokens import Service
from simulators.world import World
from simulators.worlds import CourseSpec, build
from sync_core import AwardRule

Json = dict[str, Any]
SeededWorld = tuple[World, dict[int, tuple[AwardRule, ...]]]
"""A world and the award rules of each of its courses, as :meth:`World.small` returns."""

WRITES: Final = ("award", "member", "leaderboard")
"""The Credentials write targets: faults aimed only at them leave every read working."""
CANVAS_ORIGIN: Final = "http://canvas.test"
CREDENTIALS_ORIGIN: Final = "http://credentials.test"

# --------------------------------------------------------------------------- worlds


def small_world_seeds() -> st.SearchStrategy[int]:
    """Seeds for :meth:`World.small`. Ids are the same for every seed; names, emails and
    grades differ. Four are plenty: the state machine varies everything else."""
    return st.integers(0, 3)


SCALED_RATE_LIMIT: Final = RateLimit(high_water=6.0, outflow=0.5, up_front=2.0)
"""Canvas's throttle scaled down with the small worlds: it admits about four requests back
to back, so a small course's full round (a dozen requests) meets it part-way, as a
2,000-student course's round (about 2,100 requests) meets the default bucket of 600.
Hosted Canvas does not publish its settings (fact sheet section 3)."""


def rate_limits() -> st.SearchStrategy[RateLimit]:
    """Canvas's throttle settings for one example: the source defaults, or
    :data:`SCALED_RATE_LIMIT`; shrinks towards the defaults. One draw per example."""
    return st.sampled_from((RateLimit(), SCALED_RATE_LIMIT))


def course_specs(max_students: int = 8) -> st.SearchStrategy[CourseSpec]:
    """Course descriptions as ``credsync serve --world FILE`` reads them, kept small so a
    property can build several per example. Every one passes
    :func:`simulators.worlds.course_spec`'s validation."""
    return st.builds(
        CourseSpec,
        name=st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20),
        students=st.integers(0, max_students),
        sections=st.integers(1, 3),
        assignments=st.integers(0, 3),
        classic_quizzes=st.integers(0, 1),
        new_quizzes=st.integers(0, 1),
        modules=st.integers(0, 2),
        graded=st.floats(0, 1),
    )


def worlds(*, linked: bool = False, max_courses: int = 3) -> st.SearchStrategy[SeededWorld]:
    """A world and its courses' award rules: :meth:`World.small` for one of
    :func:`small_world_seeds`, or up to ``max_courses`` courses from :func:`course_specs`.

    Each draw builds a fresh world, so a test may mutate it. ``linked=True`` links every
    course (creating its Credentials group) before returning; otherwise linking is left to
    the test, which is what a sync engine needs to see happen.
    """
    built = st.tuples(
        st.lists(course_specs(), min_size=1, max_size=max_courses).map(tuple),
        st.integers(0, 2**16),
    ).map(lambda specs_seed: build(*specs_seed))
    drawn = small_world_seeds().map(World.small) | built
    return drawn.map(_link_all) if linked else drawn


def _link_all(seeded: SeededWorld) -> SeededWorld:
    world, rules = seeded
    for course_id, course_rules in sorted(rules.items()):
        world.link_course(course_id, course_rules)
    return seeded


# --------------------------------------------------------------------------- faults


@st.composite
def fault_rates(draw: st.DrawFn) -> FaultRates:
    """Swarm rates (TigerBeetle's VOPR, Groce et al.'s swarm testing): each kind off in
    half the examples, else rare, common, heavy or half
    (:data:`simulators.faults.SWARM_RATES`), so some examples hammer a few faults while
    others barely see one. Shrinks towards no faults at all."""
    return FaultRates.swarm(_DrawChoices(draw))


class _DrawChoices:
    """A :class:`~simulators.faults.ChoiceSource` over a composite's ``draw``: the same
    draws :class:`~simulators.faults.HypothesisChoices` makes, so the state machine's
    examples did not change when its strategies moved here."""

    def __init__(self, draw: st.DrawFn) -> None:
        self._draw = draw

    def draw(self, n: int) -> int:
        return self._draw(st.integers(0, n - 1))


def fault_targets() -> st.SearchStrategy[tuple[str, ...] | None]:
    """Every request (``None``), or only the Credentials writes (:data:`WRITES`): with
    reads working, what happens to awards, members and the leaderboard is not hidden
    behind failed reads."""
    return st.sampled_from([None, WRITES])


@st.composite
def fault_plans(
    draw: st.DrawFn,
    rates: st.SearchStrategy[FaultRates] | None = None,
    targets: st.SearchStrategy[tuple[str, ...] | None] | None = None,
) -> FaultPlan:
    """A fault plan with drawn rates and targets whose per-request decisions come from a
    drawn seed (:class:`~simulators.faults.SeededChoices`): reproducible, but the single
    decisions do not shrink. For decisions that shrink with the example, build the plan
    inside the test: ``FaultPlan(data.draw(fault_rates()), HypothesisChoices(data))``."""
    plan = FaultPlan(
        draw(fault_rates() if rates is None else rates),
        SeededChoices(draw(st.integers(0, 2**32 - 1))),
    )
    only = draw(fault_targets() if targets is None else targets)
    plan.only = None if only is None else frozenset(only)
    return plan


# --------------------------------------------------------------------------- payloads

_WORD = st.text("abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
_CASE: dict[str, Callable[[str], str]] = {
    "lower": str.lower,
    "title": str.title,
    "upper": str.upper,
}


@st.composite
def emails(draw: st.DrawFn) -> str:
    """An address in lower, title or upper case: Canvas keeps the case a user typed, and
    Credentials lowercases recipients, so a sync must compare emails case-insensitively."""
    address = f"{draw(_WORD)}.{draw(_WORD)}@{draw(st.sampled_from(['example.edu', 'x.org']))}"
    return _CASE[draw(st.sampled_from(sorted(_CASE)))](address)


def _names() -> st.SearchStrategy[str]:
    return st.tuples(_WORD, _WORD).map(lambda w: f"{w[0].title()} {w[1].title()}")


@st.composite
def canvas_enrollments(draw: st.DrawFn) -> Json:
    """One ``GET /api/v1/courses/:id/enrollments`` row: any type and state Canvas has,
    with ``grades`` for student rows (a current score when the course has graded work)."""
    world = World()
    canvas = world.canvas
    course = canvas.create_course(draw(_names()))
    user = canvas.create_user(draw(_names()), draw(st.none() | emails()))
    kind = draw(st.sampled_from(ENROLLMENT_TYPES))
    state = draw(st.sampled_from(ENROLLMENT_STATES))
    canvas.enroll(user, course, type=kind, state=state)
    if kind == "StudentEnrollment" and draw(st.booleans()):
        points = draw(st.integers(1, 100))
        assignment = canvas.create_assignment(course, "Graded work", float(points))
        canvas.grade(course, assignment, user, float(draw(st.integers(0, points))))
    (row,) = _canvas_get(world, f"/api/v1/courses/{course}/enrollments?state[]={state}")
    return row


@st.composite
def canvas_users(draw: st.DrawFn) -> Json:
    """One ``GET /api/v1/courses/:id/users?include[]=email`` row: an email in any case,
    an empty one, or none (an SIS user without one); invited users come without the
    personal keys at all, as Canvas serves them."""
    world = World()
    canvas = world.canvas
    course = canvas.create_course("Course")
    email = draw(st.none() | st.just("") | emails())
    user = canvas.create_user(draw(_names()), email)
    state = draw(st.sampled_from(["active", "invited"]))
    canvas.enroll(user, course, state=state)
    path = f"/api/v1/courses/{course}/users?include[]=email&enrollment_state[]={state}"
    (row,) = _canvas_get(world, path)
    return row


@st.composite
def canvas_assignments(draw: st.DrawFn) -> Json:
    """One ``GET /api/v1/courses/:id/assignments`` row: a plain assignment, a classic
    quiz's assignment (with ``quiz_id``) or a New Quiz (an LTI assignment), worth any
    points or none, published or not."""
    world = World()
    canvas = world.canvas
    course = canvas.create_course("Course")
    points = draw(st.none() | st.integers(0, 100).map(float))
    published = draw(st.booleans())
    kind = draw(st.sampled_from(["assignment", "classic quiz", "new quiz"]))
    if kind == "classic quiz":
        canvas.create_classic_quiz(course, "Quiz", points, published=published)
    elif kind == "new quiz":
        canvas.create_new_quiz(course, "New Quiz", points, published=published)
    else:
        canvas.create_assignment(course, "Assignment", points, published=published)
    (row,) = _canvas_get(world, f"/api/v1/courses/{course}/assignments")
    return row


@st.composite
def canvas_submissions(draw: st.DrawFn) -> Json:
    """One ``GET /api/v1/courses/:id/students/submissions`` row: unsubmitted, submitted,
    graded (any score up to 120% of the points, regrades included) or excused."""
    world = World()
    canvas = world.canvas
    course = canvas.create_course("Course")
    student = canvas.create_user(draw(_names()), draw(emails()))
    canvas.enroll(student, course)
    points = draw(st.integers(1, 100))
    assignment = canvas.create_assignment(course, "Assignment", float(points))
    if draw(st.booleans()):
        canvas.submit(course, assignment, student)
    for score in draw(st.lists(st.integers(0, points * 12 // 10), max_size=2)):
        canvas.grade(course, assignment, student, float(score))
    if draw(st.booleans()):
        canvas.excuse(course, assignment, student)
    path = f"/api/v1/courses/{course}/students/submissions?student_ids[]=all"
    (row,) = _canvas_get(world, path)
    return row


@st.composite
def credentials_assertions(draw: st.DrawFn) -> Json:
    """One ``GET /v2/badgeclasses/:id/assertions?include_revoked=true`` result: an award
    to an email in any case (hashed recipient with its plaintext), possibly revoked."""
    world = World()
    creds = world.credentials
    issuer = creds.create_issuer("Issuer", "issuer@example.edu")
    badge = creds.create_badge_class(issuer, "Badge")
    assertion = creds.award(badge, draw(emails()))
    if draw(st.booleans()):
        creds.revoke(assertion.entity_id, "Issued in error")
    (row,) = _credentials_get(world, f"/v2/badgeclasses/{badge}/assertions?include_revoked=true")
    return row


@st.composite
def credentials_members(draw: st.DrawFn) -> Json:
    """One member of a course's group (credsync's model: Credentials publishes no group
    API), with the badge classes the member has earned."""
    world = World()
    creds = world.credentials
    issuer = creds.create_issuer("Issuer", "issuer@example.edu")
    badges = [creds.create_badge_class(issuer, f"Badge {n}") for n in range(3)]
    group = creds.create_group(issuer, 101, "Course")
    earned = draw(st.lists(st.sampled_from(badges), unique=True))
    user_id = draw(st.integers(1, 2**31))
    creds.upsert_member(group, user_id, draw(emails()).lower(), draw(_names()), earned)
    path = f"/v2/issuers/{issuer}/recipient-groups/{group}/members"
    (row,) = _credentials_get(world, path)
    return row


def _canvas_get(world: World, path: str) -> list[Json]:
    api = CanvasApi(world.canvas, world.tokens)
    body = _served(world, Service.CANVAS, api.handle, f"{CANVAS_ORIGIN}{path}")
    assert isinstance(body, list)
    return body


def _credentials_get(world: World, path: str) -> list[Json]:
    api = CredentialsApi(world.credentials, world.tokens)
    body = _served(world, Service.CREDENTIALS, api.handle, f"{CREDENTIALS_ORIGIN}{path}")
    assert isinstance(body, dict)
    result: list[Json] = body["result"]
    return result


def _served(
    world: World, service: Service, handle: Callable[[ApiRequest], Any], url: str
) -> object:
    """The body the fake serves for a GET with a service token, as a client decodes it."""
    token = world.tokens.issue(service, ttl=math.inf)
    response = handle(ApiRequest("GET", url, {"Authorization": f"Bearer {token}"}))
    if response.status != 200:  # a bug in this module, never in the code under test
        raise RuntimeError(f"{url} answered {response.status}: {response.body!r}")
    return json.loads(json.dumps(response.body))
