"""SIGKILL the real ``credsync sync`` process at chosen points, restart it, and judge the end
result only through the Credentials API: every earned badge awarded exactly once.

The fakes run in this process (:func:`~simulators.http.serve.run_servers`); ``credsync sync
--once --state FILE`` runs as a child process, exactly as an operator starts it. Kill points
are chosen on the server side, by request count, so they are deterministic rather than
timed: the child sends one request at a time and is blocked waiting for its answer when the
fake kills it. There are three kinds:

- ``before-award``: the k-th award POST arrives and the child dies before the fake applies
  it. The engine had saved the award as in flight ("recorded but not issued").
- ``after-award``: the k-th award POST is applied and the child dies before the answer
  leaves ("committed, response lost").
- ``mid-page``: the k-th request for a page after the first of a paginated Canvas list
  arrives and the child dies ("mid-pagination").

Halfway through, Canvas changes the email of every student, as happens when an institution
renames addresses. From then on only the durable state knows that the awards already made
to the old addresses are these students' (the engine's ``known_emails``), so a store that
loses state would award them again; :func:`test_a_store_that_forgets_is_caught` shows the
test catching exactly that.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import pytest

from adapter import links_to_json
from simulators.api import ApiRequest
from simulators.faults import FaultPlan, FaultRates, SeededChoices
from simulators.http.serve import ServerHandle, run_servers, serve_info
from simulators.services import Dropped, Services
from simulators.tokens import Service
from simulators.world import World
from simulators.worlds import CourseSpec, build
from sync_core.wire import HttpResponse

TESTS = Path(__file__).resolve().parent
Kind = Literal["before-award", "after-award", "mid-page"]

BIG_COURSE = CourseSpec(name="Big course", students=105, assignments=2, modules=0, graded=0.7)
"""One course, so that no round of it completes before a kill: a course that finished a round
would not be due again for minutes, and ``--once`` would wait for it. 105 students make the
enrollment, user and submission lists two pages long (the engine asks for 100 per page);
no modules, because module progress is read student by student."""


@dataclass(frozen=True)
class KillPoint:
    kind: Kind
    nth: int  # counted from the start of each run


def _points(spec: str) -> tuple[KillPoint, ...]:
    short: dict[str, Kind] = {"b": "before-award", "a": "after-award", "m": "mid-page"}
    return tuple(KillPoint(short[p[0]], int(p[1:])) for p in spec.split())


BEFORE_RENAME = _points("m1 b1 a1 b2 a2 m2 b3 a3 b4 a4")
AFTER_RENAME = _points("m3 b5 a5 b6 a6 m4 b7 a7 b8 a8")
"""Twenty distinct points. A run reads four pages after the first (one each of enrollments
and users, two of submissions), so ``m1``-``m4`` all exist in every run. Killing at the
k-th award costs k - 1 (before) or k (after) of the course's 77 awards, 64 in all, so every
point is reached and awards remain for the clean run at the end."""
KILL_POINTS = BEFORE_RENAME + AFTER_RENAME
FORGETFUL_BEFORE, FORGETFUL_AFTER = _points("a2 a3"), _points("a1")


class KillingServices(Services):
    """The fakes, plus a trigger that SIGKILLs the sync process at one armed kill point."""

    def __init__(self, world: World) -> None:
        super().__init__(world, FaultPlan(FaultRates.none(), SeededChoices(0)))
        self.victim: subprocess.Popen[str] | None = None
        self.started = threading.Event()
        self.point: KillPoint | None = None
        self.seen = 0
        self.fired: list[KillPoint] = []

    def arm(self, point: KillPoint | None) -> None:
        """Call before starting the process, then :meth:`started_as` once it exists."""
        self.point, self.seen, self.victim = point, 0, None
        self.started.clear()

    def started_as(self, victim: subprocess.Popen[str]) -> None:
        self.victim = victim
        self.started.set()

    def serve(
        self, service: Service, request: ApiRequest, label: str | None = None
    ) -> HttpResponse | Dropped:
        point = self.point
        if point is None or not _is(point.kind, service, request):
            return super().serve(service, request, label)
        self.seen += 1
        if self.seen < point.nth:
            return super().serve(service, request, label)
        self.point = None
        if point.kind == "after-award":
            outcome = super().serve(service, request, label)
            self._kill(point)
            return outcome  # to a dead socket: the response is lost
        self._kill(point)
        return Dropped("reset")  # never applied

    def _kill(self, point: KillPoint) -> None:
        self.started.wait(timeout=60)  # the request came from it, so it exists
        assert self.victim is not None
        os.kill(self.victim.pid, signal.SIGKILL)
        self.fired.append(point)


def _is(kind: Kind, service: Service, request: ApiRequest) -> bool:
    if kind == "mid-page":
        return service is Service.CANVAS and request.param("page") not in (None, "1", "first")
    return request.method == "POST" and request.path.endswith("/assertions")


@dataclass
class Served:
    world: World
    services: KillingServices
    handle: ServerHandle
    canvas_token: str
    credentials_token: str
    links: Path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    world, rules = build((BIG_COURSE,), seed=5)
    links = [world.link_course(c, r) for c, r in sorted(rules.items())]
    links_file = tmp_path / "links.json"
    links_file.write_text(links_to_json(links), encoding="utf-8")
    services = KillingServices(world)
    with run_servers(world, services) as handle:
        (_, _, _, canvas_token), (_, _, _, cred_token) = (
            line.split() for line in serve_info(world, handle)[:2]
        )
        yield Served(world, services, handle, canvas_token, cred_token, links_file)


def sync_once(served: Served, state: Path, point: KillPoint | None, store: str = "") -> None:
    """Run ``python -m scenarios.cli sync --once`` (what the ``credsync`` script runs) until
    the armed point kills it, or to a clean end when none is armed. ``store`` names a class
    in this module to replace the SQLite store with (the broken variant only)."""
    command = [sys.executable, "-m", "scenarios.cli"]
    if store:
        swap = (
            f"import sys; sys.path.insert(0, {str(TESTS)!r}); import scenarios.cli as c; "
            f"import test_sigkill as t; c.SqliteStore = t.{store}; sys.exit(c.main())"
        )
        command = [sys.executable, "-c", swap]
    args = [
        *("--canvas", served.handle.canvas_url, "--canvas-token", served.canvas_token),
        *("--credentials", served.handle.credentials_url),
        *("--credentials-token", served.credentials_token),
        *("--links", str(served.links), "--state", str(state), "--once"),
        # These fakes neither lag nor store a write late, so an award cut off by the kill
        # may be settled by the very next run's read (README: the settle window's bounds).
        *("--award-settle-window", "0.001"),
    ]
    served.services.arm(point)
    process = subprocess.Popen(
        [*command, "sync", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    served.services.started_as(process)
    _, err = process.communicate(timeout=120)
    if point is None:
        assert process.returncode == 0, err
    else:
        assert served.services.fired[-1:] == [point], f"{point} not reached: {err}"
        assert process.returncode == -signal.SIGKILL, err


def rename_every_student(world: World) -> None:
    for course_id in world.links:
        for uid in world.earning_students(course_id):
            world.canvas.change_email(uid, f"renamed-{uid}@example.edu")


def kill_and_restart(served: Served, state: Path, points: Sequence[KillPoint], store: str) -> None:
    for point in points:
        sync_once(served, state, point, store)


def problems(served: Served) -> list[str]:
    """Every earned badge awarded exactly once, nothing unearned, and the group holding the
    active students under their current email: read through the Credentials API alone,
    judged against the world's ground truth."""
    world = served.world
    auth = {"Authorization": f"Bearer {served.credentials_token}"}
    out: list[str] = []
    with httpx.Client(base_url=served.handle.credentials_url, headers=auth) as api:
        for course_id, link in sorted(world.links.items()):
            earned = world.earned_now(course_id)
            owners = {
                email: uid
                for uid in world.earning_students(course_id)
                for email in world.emails_ever(uid)
            }
            held: Counter[tuple[int, str]] = Counter()
            for badge in sorted({rule.badge_class for rule in link.rules}):
                for record in _pages(api, f"/v2/badgeclasses/{badge}/assertions?num=50"):
                    email = str(record["recipient"]["plaintextIdentity"]).lower()
                    if record["revoked"]:
                        continue
                    if email not in owners:
                        out.append(f"{badge} awarded to {email}, who is no student here")
                        continue
                    held[(owners[email], badge)] += 1
            out += [f"{key} earned but not awarded" for key in sorted(earned - set(held))]
            out += [f"{key} awarded but not earned" for key in sorted(set(held) - earned)]
            out += [f"{key} awarded {n} times" for key, n in sorted(held.items()) if n > 1]
            group = f"/v2/issuers/{link.issuer_id}/recipient-groups/{link.group_id}/members"
            members = {int(m["canvasUserId"]): m["email"] for m in _pages(api, f"{group}?num=50")}
            if members != world.active_students(course_id):
                out.append(f"group {link.group_id} does not hold the active students")
    return out


def _pages(api: httpx.Client, url: str) -> list[dict[str, object]]:
    """Every record of a Badgr list, following ``rel="next"`` cursor links."""
    records: list[dict[str, object]] = []
    next_url: str | None = url
    while next_url is not None:
        response = api.get(next_url)
        response.raise_for_status()
        records += response.json()["result"]
        next_url = response.links.get("next", {}).get("url")
    return records


def run_the_kill_sequence(
    served: Served,
    state: Path,
    before: Sequence[KillPoint],
    after: Sequence[KillPoint],
    store: str = "",
) -> list[str]:
    kill_and_restart(served, state, before, store)
    rename_every_student(served.world)
    kill_and_restart(served, state, after, store)
    sync_once(served, state, None, store)  # a clean run to the end
    return problems(served)


def test_sigkill_at_20_points_loses_no_badge_and_awards_none_twice(
    served: Served, tmp_path: Path
) -> None:
    assert len(set(KILL_POINTS)) >= 20 and {p.kind for p in KILL_POINTS} == {
        "before-award",
        "after-award",
        "mid-page",
    }
    assert problems(served)  # before any sync, every earned badge is missing
    state = tmp_path / "state.db"
    assert run_the_kill_sequence(served, state, BEFORE_RENAME, AFTER_RENAME) == []
    assert served.services.fired == list(KILL_POINTS)


class ForgetfulStore:
    """BROKEN ON PURPOSE: a store that keeps nothing, so every restart starts over."""

    def __init__(self, path: Path) -> None:
        pass

    def load(self) -> str | None:
        return None

    def save(self, engine_json: str) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_store_that_forgets_is_caught(served: Served, tmp_path: Path) -> None:
    """A shorter kill sequence, same rename, with a store that persists nothing: the awards
    made to the old addresses are not recognised after the rename, and are made again."""
    state = tmp_path / "state.db"
    found = run_the_kill_sequence(
        served, state, FORGETFUL_BEFORE, FORGETFUL_AFTER, store="ForgetfulStore"
    )
    assert any("awarded 2 times" in line for line in found), found
