"""The real ``canvasapi`` client (PyPI) against the fake Canvas on a live loopback server.

canvasapi is synchronous and uses ``requests``, so it needs a real socket: these tests run
both apps under uvicorn on ephemeral 127.0.0.1 ports (:mod:`simulators.http.serve`). Expected
values are read from the simulated world directly, never from the fake API, so a wrong
page, filter or link shows up as a mismatch. canvasapi only follows ``rel="next"`` links
that start with exactly the base URL it was given, so every multi-page read here is also a
check of the Link URLs. The serve helpers that need sockets are tested here too.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import requests
from canvasapi import Canvas
from canvasapi.exceptions import (
    Forbidden,
    InvalidAccessToken,
    ResourceDoesNotExist,
    Unauthorized,
)
from canvasapi.paginated_list import PaginatedList
from canvasapi.submission import Submission
from canvasapi.user import User

from simulators import FaultKind, FaultPlan, FaultRates, SeededChoices, Service, Services, World
from simulators.http.serve import (
    SIM_PASSWORD,
    SIM_USERNAME,
    exposure_warning,
    run_servers,
    serve_forever,
    serve_info,
)

pytestmark = pytest.mark.filterwarnings("ignore:Canvas may respond unexpectedly:UserWarning")

COURSE_A, COURSE_B = 101, 102
HIDDEN = {"completed", "deleted", "rejected"}


@dataclass
class Live:
    world: World
    plan: FaultPlan
    services: Services
    canvas_url: str
    credentials_url: str
    canvas: Canvas

    def pages_served(self) -> int:
        return len(self.services.log)


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    world, _ = World.small(1)
    plan = FaultPlan(FaultRates.none(), SeededChoices(1))
    services = Services(world, plan)
    with run_servers(world, services) as handle:
        canvas_line = serve_info(world, handle)[0]
        token = canvas_line.split()[-1]
        canvas = Canvas(handle.canvas_url, token)
        yield Live(world, plan, services, handle.canvas_url, handle.credentials_url, canvas)


def students(world: World, course_id: int) -> list[int]:
    """Users with a non-deleted student enrollment, each once, by id."""
    return sorted(
        {
            e.user_id
            for e in world.canvas.enrollments_in(course_id)
            if e.type == "StudentEnrollment" and e.state != "deleted"
        }
    )


# --------------------------------------------------------------------------- reads


def test_courses_and_one_course(live: Live) -> None:
    expected = {c.id: c.name for c in live.world.canvas.courses.values()}
    assert {c.id: c.name for c in live.canvas.get_courses()} == expected
    course = live.canvas.get_course(COURSE_A)
    assert (course.id, course.name) == (COURSE_A, expected[COURSE_A])
    assert course.course_code == f"C{COURSE_A}"


def test_current_user_and_course_user(live: Live) -> None:
    me = live.canvas.get_current_user()
    assert me.name == live.world.canvas.users[me.id].name
    student = students(live.world, COURSE_A)[0]
    user = live.canvas.get_course(COURSE_A).get_user(student)
    assert (user.id, user.email) == (student, live.world.canvas.users[student].email)


def test_enrollments_default_to_visible_states(live: Live) -> None:
    expected = {e.id for e in live.world.canvas.enrollments_in(COURSE_A) if e.state not in HIDDEN}
    enrollments = list(live.canvas.get_course(COURSE_A).get_enrollments())
    assert {e.id for e in enrollments} == expected
    assert all(e.course_id == COURSE_A and e.user_id for e in enrollments)


def test_users_follow_next_links_with_a_small_page(live: Live) -> None:
    """canvasapi's list methods always send ``per_page=100`` last (upstream #685), so a
    small page needs a PaginatedList built directly; every later page comes from Link."""
    course = live.canvas.get_course(COURSE_A)
    canvas = live.world.canvas
    visible = {
        e.user_id for e in canvas.enrollments_in(COURSE_A) if e.state in ("active", "invited")
    }
    expected = sorted(visible, key=lambda u: (canvas.users[u].sortable_name, u))
    before = live.pages_served()
    users = PaginatedList(User, course._requester, "GET", f"courses/{COURSE_A}/users", per_page=2)
    assert [u.id for u in users] == expected
    assert live.pages_served() - before == math.ceil(len(expected) / 2)
    by_role = course.get_users(enrollment_type=["student"])  # canvasapi uses search_users
    assert sorted(u.id for u in by_role) == students(live.world, COURSE_A)


def test_assignments_and_their_submissions(live: Live) -> None:
    course = live.canvas.get_course(COURSE_A)
    expected = [a.name for a in live.world.canvas.assignments_in(COURSE_A)]
    assignments = list(course.get_assignments())
    assert [a.name for a in assignments] == expected
    essay = assignments[0]
    submissions = list(essay.get_submissions())  # needs course_id from the server
    assert [s.user_id for s in submissions] == students(live.world, COURSE_A)
    stored = live.world.canvas.submissions
    assert [s.score for s in submissions] == [
        stored[(essay.id, s.user_id)].score for s in submissions
    ]


def test_multiple_submissions_follow_bookmark_links(live: Live) -> None:
    canvas = live.world.canvas
    published = {a.id for a in canvas.assignments_in(COURSE_A) if a.published}
    learners = set(students(live.world, COURSE_A))
    expected = [
        s.id
        for s in canvas.submissions_in(COURSE_A)
        if s.assignment_id in published and s.user_id in learners
    ]
    course = live.canvas.get_course(COURSE_A)
    assert [s.id for s in course.get_multiple_submissions(student_ids="all")] == expected
    small = PaginatedList(
        Submission,
        course._requester,
        "GET",
        f"courses/{COURSE_A}/students/submissions",
        {"course_id": COURSE_A},
        student_ids="all",
        per_page=5,
    )
    assert [s.id for s in small] == expected


def test_quizzes_modules_items_and_sections(live: Live) -> None:
    canvas = live.world.canvas
    course = live.canvas.get_course(COURSE_A)
    assert [q.title for q in course.get_quizzes()] == [q.title for q in canvas.quizzes_in(COURSE_A)]
    modules = list(course.get_modules())
    assert [m.name for m in modules] == [m.name for m in canvas.modules_in(COURSE_A)]
    for module in modules:
        items = list(module.get_module_items())
        assert [i.title for i in items] == [
            canvas.items[i].title for i in canvas.modules[module.id].items
        ]
        assert all(i.module_id == module.id for i in items)
    sections = list(course.get_sections())
    expected = sorted(canvas.sections_in(COURSE_A), key=lambda s: (s.name, s.id))
    assert [(s.id, s.name, s.course_id) for s in sections] == [
        (s.id, s.name, COURSE_A) for s in expected
    ]


# --------------------------------------------------------------------------- errors


def test_bad_token_and_missing_course(live: Live) -> None:
    with pytest.raises(InvalidAccessToken):
        Canvas(live.canvas_url, "not-a-token").get_course(COURSE_A)
    with pytest.raises(ResourceDoesNotExist):
        live.canvas.get_course(999)


def test_a_token_without_the_scope_is_unauthorized_not_invalid(live: Live) -> None:
    """canvasapi tells the two 401s apart by WWW-Authenticate: refreshing will not help."""
    scopes = frozenset({"url:GET|/api/v1/courses/:course_id"})
    token = live.world.tokens.issue(Service.CANVAS, scopes=scopes, ttl=math.inf)
    course = Canvas(live.canvas_url, token).get_course(COURSE_A)
    with pytest.raises(Unauthorized):
        list(course.get_enrollments())


def test_a_student_token_sees_only_its_own_courses(live: Live) -> None:
    student = students(live.world, COURSE_B)[0]
    token = live.world.tokens.issue(Service.CANVAS, student)
    canvas = Canvas(live.canvas_url, token)
    assert [c.id for c in canvas.get_courses()] == [COURSE_B]
    with pytest.raises(Forbidden):
        canvas.get_course(COURSE_A)


def test_a_dropped_request_reaches_canvasapi_as_no_response(live: Live) -> None:
    live.plan.rates = FaultRates().with_rate(FaultKind.TIMEOUT_BEFORE_COMMIT, 1000)
    try:
        with pytest.raises(requests.ConnectionError):
            live.canvas.get_course(COURSE_A)
    finally:
        live.plan.rates = FaultRates.none()
    assert live.canvas.get_course(COURSE_A).id == COURSE_A  # the server keeps serving


# --------------------------------------------------------------------------- serving


def test_serve_info_lines_work_as_printed() -> None:
    world, _ = World.small(4)
    services = Services(world, FaultPlan(FaultRates.none(), SeededChoices(4)))
    with run_servers(world, services) as handle:
        lines = serve_info(world, handle)
        login = {"grant_type": "password", "username": SIM_USERNAME, "password": SIM_PASSWORD}
        grant = httpx.post(f"{handle.credentials_url}/o/token", data=login)
    port = r"http://127\.0\.0\.1:\d+"
    assert re.fullmatch(rf"canvas {port} token \S+", lines[0])
    assert re.fullmatch(rf"credentials {port} token \S+", lines[1])
    assert lines[2] == f"credentials username {SIM_USERNAME} password {SIM_PASSWORD}"
    assert grant.status_code == 200 and grant.json()["token_type"] == "Bearer"
    canvas_token, credentials_token = lines[0].split()[-1], lines[1].split()[-1]
    teacher = world.tokens.user_of(canvas_token)
    assert teacher is not None
    teaches = {
        e.course_id
        for e in world.canvas.enrollments.values()
        if e.user_id == teacher and e.type == "TeacherEnrollment"
    }
    assert teaches == set(world.canvas.courses)
    world.clock.advance(400 * 86400)  # printed tokens never expire
    assert world.tokens.validate(Service.CANVAS, canvas_token)
    assert world.tokens.validate(Service.CREDENTIALS, credentials_token)


def test_serve_forever_prints_then_serves_until_ctrl_c() -> None:
    world, _ = World.small(2)
    services = Services(world, FaultPlan(FaultRates.none(), SeededChoices(2)))
    seen: list[int] = []

    class Console(io.StringIO):
        """Checks the servers while they run, then presses Ctrl-C."""

        def flush(self) -> None:
            url, token = self.getvalue().splitlines()[0].split()[1::2]
            answer = httpx.get(
                f"{url}/api/v1/courses", headers={"Authorization": f"Bearer {token}"}
            )
            seen.append(answer.status_code)
            raise KeyboardInterrupt

    out = Console()
    serve_forever(world, services, 0, 0, "127.0.0.1", out)
    lines = out.getvalue().splitlines()
    assert seen == [200] and len(lines) == 3 and lines[0].startswith("canvas http://127.0.0.1:")
    with pytest.raises(httpx.ConnectError):  # stopped: the port no longer listens
        httpx.get(lines[0].split()[1])


def test_exposure_warning_only_beyond_loopback() -> None:
    assert all(exposure_warning(h) is None for h in ("127.0.0.1", "localhost", "::1"))
    warning = exposure_warning("0.0.0.0")
    assert warning is not None and "beyond loopback" in warning


def test_run_servers_refuses_a_foreign_world() -> None:
    world, _ = World.small(3)
    services = Services(World(), FaultPlan(FaultRates.none(), SeededChoices(3)))
    with pytest.raises(ValueError):
        run_servers(world, services)


def test_serve_info_creates_a_teacher_when_none_teaches_everywhere() -> None:
    world = World()
    first = world.canvas.create_course("First")
    second = world.canvas.create_course("Second")
    lone = world.canvas.create_user("Lone Teacher", "lone@x.edu")
    world.canvas.enroll(lone, first, type="TeacherEnrollment")
    services = Services(world, FaultPlan(FaultRates.none(), SeededChoices(5)))
    with run_servers(world, services) as handle:
        url, token = serve_info(world, handle)[0].split()[1::2]
        courses = [c.id for c in Canvas(url, token).get_courses()]
    assert courses == [first, second]
    assert world.tokens.user_of(token) != lone


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")  # a leaked socket
def test_a_busy_port_is_reported_and_nothing_stays_bound() -> None:
    world, _ = World.small(6)
    services = Services(world, FaultPlan(FaultRates.none(), SeededChoices(6)))
    with run_servers(world, services) as handle:
        busy = int(handle.canvas_url.rsplit(":", 1)[1])
        with pytest.raises(OSError):
            run_servers(world, services, canvas_port=0, credentials_port=busy)
