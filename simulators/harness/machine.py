"""The Hypothesis state machine that fuzzes a sync engine against the simulated world.

Rules mutate Canvas the way a term does (enrolments, drops, grading, module progress, email
changes, new and deleted work, courses concluded), link courses, inject and heal faults,
crash the worker, press "update now" and let virtual time pass. Every fault decision and
every pick among existing entities is drawn from Hypothesis, so a failure shrinks to a
short program in which the faults are as few as the steps. Safety invariants are checked
after every step; the liveness phase runs at teardown.

Subclass it with another ``new_engine``/``restore_engine`` to fuzz a different engine.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from functools import cache
from typing import ClassVar

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from simulators.canvas.model import RateLimit
from simulators.faults import FaultPlan, HypothesisChoices
from simulators.harness.actions import next_new_student, perform
from simulators.harness.invariants import SAFETY, Violation, check
from simulators.harness.simulation import Engine, Simulation
from simulators.strategies import fault_rates, fault_targets, rate_limits, small_world_seeds
from simulators.world import World
from sync_core import (
    AwardRule,
    Policy,
    SyncEngine,
)

# Short timings so a few steps span many rounds, backoffs and resyncs.
POLICY = Policy(
    poll_interval=300,
    full_resync_interval=1800,
    backoff_base=30,
    backoff_cap=600,
    round_timeout=600,
    watermark_overlap=300,
)
LIVE = ("active", "invited")


class RecordingChoices:
    """Passes draws through from another source and keeps them, so the exact faults of a
    run can be written into a scenario file and replayed (see :class:`ScriptedChoices`)."""

    def __init__(self, inner: HypothesisChoices, sink: list[int]) -> None:
        self._inner = inner
        self._sink = sink

    def draw(self, n: int) -> int:
        value = self._inner.draw(n)
        self._sink.append(value)
        return value

    def draw_in(self, n: int, slots: tuple[range, ...]) -> int:
        """See :meth:`HypothesisChoices.draw_in`: the value kept is one a plain
        ``draw(n)`` replays to the same decision."""
        value = self._inner.draw_in(n, slots)
        self._sink.append(value)
        return value


@cache
def _small_world(seed: int) -> bytes:
    return pickle.dumps(World.small(seed))


def small_world(seed: int) -> tuple[World, dict[int, tuple[AwardRule, ...]]]:
    """A fresh copy of :meth:`World.small` and its rules. Every example starts from one of
    four such worlds: building one (Faker, dozens of entities) costs more than a short
    run's steps, while unpickling a copy of the one built first costs a millisecond."""
    world, rules = pickle.loads(_small_world(seed))
    return world, rules


class SyncMachine(RuleBasedStateMachine):
    new_engine: ClassVar[Callable[[Policy], Engine]] = SyncEngine
    restore_engine: ClassVar[Callable[[str, Policy], Engine]] = SyncEngine.from_json
    judged: ClassVar[frozenset[str] | None] = None
    """The invariants whose violations can fail a run (see :meth:`relevant`), by name; None:
    all of them. Only these are judged, so a hunt for one symptom skips the rest."""
    last_setup_actions: ClassVar[int] = 0
    """How many of :attr:`last_run`'s actions shaped the world in ``setup``, before any
    rule ran (see :meth:`_two_courses_one_class`)."""
    last_run: ClassVar[dict[str, object] | None] = None
    """The run most recently executed: after a failure, the shrunk counterexample (Hypothesis
    replays the minimal example last). See :meth:`recording`; it is taken once per run, as
    the run ends (Hypothesis always calls :meth:`teardown`), not after every step."""

    @initialize(seed=small_world_seeds(), data=st.data())
    def setup(self, seed: int, data: st.DataObject) -> None:
        choices = HypothesisChoices(data)
        self.world, small_rules = small_world(seed)
        self.world.canvas.rate_limit = data.draw(rate_limits())
        self.rates = data.draw(fault_rates())  # VOPR-style: none to very high, per example
        # Some examples aim every fault at Credentials writes: reads then succeed, so what
        # happens to awards, members and the leaderboard is not hidden behind failed reads.
        self.targets = data.draw(fault_targets())
        self.seed = seed
        self.timeline: list[dict[str, object]] = []
        self.draws: list[int] = []
        self.setup_actions = 0  # actions the world's shape took, before any rule
        self._handling = sys.exc_info()[1]  # see teardown
        self.sim = Simulation(
            self.world,
            FaultPlan(self.rates, RecordingChoices(choices, self.draws)),
            policy=POLICY,
            new_engine=type(self).new_engine,
            restore_engine=type(self).restore_engine,
        )
        self.sim.plan.only = None if self.targets is None else frozenset(self.targets)
        # One example in four may lag or commit past the sync's stated bounds (shrinks off).
        self.sim.plan.beyond_bounds = data.draw(st.sampled_from((False, False, False, True)))
        for course_id, rules in sorted(small_rules.items()):
            self.sim.link(self.world.link_course(course_id, rules))
        if data.draw(st.booleans()):
            self._two_courses_one_class(sorted(small_rules), data)

    def _two_courses_one_class(self, courses: list[int], data: st.DataObject) -> None:
        """The world's shape: the last course's rules come to award a class of the first
        (``share-badge-class``), for the course grade, and some of the students who earned
        it in the first also take the last, graded there. Departments reuse one badge in
        several courses, and students take several linked courses; a :meth:`World.small`
        has neither, so without this no student could earn one class in two courses.
        Done by actions, so the recording replays it; drawn, so it shrinks away; whether
        the two courses' awards then race is left to the search."""
        first, last = courses[0], courses[-1]
        earned = {
            pair
            for course in self.sim.view().courses
            if course.course_id == first
            for pair in course.earned_now
        }
        if not earned:
            return
        badge = data.draw(st.sampled_from(sorted({b for _, b in earned})))
        earners = sorted(user for user, b in earned if b == badge)
        work = self.world.canvas.assignments_in(last)[0].id
        for user in earners[: data.draw(st.integers(1, len(earners)))]:
            self._do({"do": "enroll", "course": last, "user": user})
            self._do(
                {"do": "grade", "course": last, "assignment": work, "user": user, "percent": 80}
            )
        self._do({"do": "share-badge-class", "course": last, "badge": badge, "percent": 50})
        self.setup_actions = len(self.timeline)

    # -- helpers -------------------------------------------------------------------------

    def _use(self, data: st.DataObject) -> None:
        """Fault decisions of this step come from this step's draws."""
        self.sim.plan.source = RecordingChoices(HypothesisChoices(data), self.draws)

    def _do(self, action: dict[str, object]) -> None:
        self.timeline.append(action)
        perform(self.sim, action)

    def _pick(self, data: st.DataObject, options: list[int]) -> int:
        return data.draw(st.sampled_from(sorted(options)))

    def _students(self, course_id: int) -> list[int]:
        return sorted(
            {
                e.user_id
                for e in self.world.canvas.enrollments_in(course_id)
                if e.type == "StudentEnrollment"
            }
        )

    def recording(self) -> dict[str, object]:
        """This run as a scenario: the world, fault rates, actions and every fault draw."""
        return {
            "world": "small",
            "seed": self.seed,
            "policy": vars(POLICY),
            "faults": {
                **{k: v for k, v in vars(self.rates).items() if v},
                **({} if self.targets is None else {"on": list(self.targets)}),
                **({"beyond_bounds": True} if self.sim.plan.beyond_bounds else {}),
            },
            "draws": list(self.draws),
            "timeline": [dict(a) for a in self.timeline],
            **(
                {}
                if self.world.canvas.rate_limit == RateLimit()
                else {"rate_limit": vars(self.world.canvas.rate_limit)}
            ),
        }

    # -- linking and courses -------------------------------------------------------------

    @rule(data=st.data())
    def link_course(self, data: st.DataObject) -> None:
        unlinked = [c for c in self.world.canvas.open_courses() if c not in self.world.links]
        if unlinked:
            self._use(data)
            self._do({"do": "link", "course": self._pick(data, unlinked)})

    @rule(assignments=st.integers(0, 2), modules=st.booleans())
    def create_course(self, assignments: int, modules: bool) -> None:
        self._do({"do": "create-course", "assignments": assignments, "modules": modules})

    # -- enrolments ----------------------------------------------------------------------

    @rule(
        data=st.data(),
        state=st.sampled_from(LIVE),
        new=st.booleans(),
        email=st.sampled_from(["lower", "Mixed", "none"]),
    )
    def enroll(self, data: st.DataObject, state: str, new: bool, email: str) -> None:
        courses = self.world.canvas.open_courses()
        if not courses:
            return
        course_id = self._pick(data, courses)
        sections = [s.id for s in self.world.canvas.sections_in(course_id)]
        action: dict[str, object] = {"do": "enroll", "course": course_id}
        if new:
            n = next_new_student(self.world)
            action["user"] = "new"
            if email != "lower":
                action["email"] = f"New{n}@example.edu" if email == "Mixed" else ""
        else:
            action["user"] = self._pick(data, list(self.world.canvas.users))
        action["section"] = self._pick(data, sections)
        action["state"] = state
        self._do(action)

    @rule(data=st.data(), count=st.integers(2, 12))
    def sis_bulk_enroll(self, data: st.DataObject, count: int) -> None:
        """An SIS import: many students at once, the case the original sync missed."""
        courses = self.world.canvas.open_courses()
        if courses:
            self._do({"do": "sis-import", "course": self._pick(data, courses), "students": count})

    def _enrollments(self, states: tuple[str, ...]) -> list[int]:
        open_courses = set(self.world.canvas.open_courses())
        return [
            e.id
            for e in self.world.canvas.enrollments.values()
            if e.state in states and e.course_id in open_courses and e.type == "StudentEnrollment"
        ]

    @rule(data=st.data())
    def accept_invitation(self, data: st.DataObject) -> None:
        invited = self._enrollments(("invited",))
        if invited:
            self._do({"do": "accept", "enrollment": self._pick(data, invited)})

    @rule(data=st.data(), state=st.sampled_from(["deleted", "inactive", "completed"]))
    def drop(self, data: st.DataObject, state: str) -> None:
        live = self._enrollments(LIVE)
        if live:
            self._do({"do": "drop", "enrollment": self._pick(data, live), "state": state})

    @rule(data=st.data())
    def conclude_course(self, data: st.DataObject) -> None:
        courses = self.world.canvas.open_courses()
        if courses:
            self._do({"do": "conclude", "course": self._pick(data, courses)})

    # -- work and grades -----------------------------------------------------------------

    @rule(data=st.data(), kind=st.sampled_from(["assignment", "classic quiz", "new quiz"]))
    def create_work(self, data: st.DataObject, kind: str) -> None:
        courses = self.world.canvas.open_courses()
        if courses:
            self._do({"do": "create-work", "course": self._pick(data, courses), "kind": kind})

    def _graded_work(self, data: st.DataObject) -> dict[str, object] | None:
        courses = [
            c for c in self.world.canvas.open_courses() if self.world.canvas.assignments_in(c)
        ]
        if not courses:
            return None
        course_id = self._pick(data, courses)
        students = self._students(course_id)
        if not students:
            return None
        work = [a.id for a in self.world.canvas.assignments_in(course_id)]
        return {
            "course": course_id,
            "assignment": self._pick(data, work),
            "user": self._pick(data, students),
        }

    @rule(data=st.data(), percent=st.sampled_from([0, 50, 79, 80, 100]))
    def grade(self, data: st.DataObject, percent: int) -> None:
        """Grade or regrade (a regrade moves graded_at, and may lower the score)."""
        picked = self._graded_work(data)
        if picked is not None:
            self._do({"do": "grade", **picked, "percent": percent})

    @rule(data=st.data())
    def excuse(self, data: st.DataObject) -> None:
        picked = self._graded_work(data)
        if picked is not None:
            self._do({"do": "excuse", **picked})

    @rule(data=st.data())
    def delete_assignment(self, data: st.DataObject) -> None:
        live = [a.id for a in self.world.canvas.assignments.values() if not a.deleted]
        if live:
            self._do({"do": "delete-assignment", "assignment": self._pick(data, live)})

    @rule(data=st.data())
    def complete_module_item(self, data: st.DataObject) -> None:
        items = [i.id for i in self.world.canvas.items.values() if i.requirement is not None]
        if not items:
            return
        item_id = self._pick(data, items)
        course_id = self.world.canvas.modules[self.world.canvas.items[item_id].module_id].course_id
        students = self._students(course_id)
        if students:
            user = self._pick(data, students)
            self._do({"do": "complete-module-item", "item": item_id, "user": user})

    @rule(data=st.data(), kind=st.sampled_from(["new", "case", "hidden"]))
    def change_email(self, data: st.DataObject, kind: str) -> None:
        user_id = self._pick(data, list(self.world.canvas.users))
        user = self.world.canvas.users[user_id]
        if kind == "new":
            email = f"changed{len(user.email_history)}.{user_id}@example.edu"
        elif kind == "case":
            email = user.email.swapcase() if user.email else ""
        else:
            email = ""
        self._do({"do": "change-email", "user": user_id, "email": email})

    # -- the sync worker and its environment ---------------------------------------------

    @rule(data=st.data(), seconds=st.sampled_from([60, 300, 900, 3600, 4 * 3600]))
    def time_passes(self, data: st.DataObject, seconds: int) -> None:
        self._use(data)
        self._do({"do": "wait", "seconds": seconds})

    @rule(data=st.data())
    def press_update_now(self, data: st.DataObject) -> None:
        if self.world.links:
            self._use(data)
            self._do({"do": "update-now", "course": self._pick(data, list(self.world.links))})

    @rule(data=st.data())
    def crash_worker(self, data: st.DataObject) -> None:
        self._use(data)
        self._do({"do": "crash"})

    @rule(enabled=st.booleans())
    def faults(self, enabled: bool) -> None:
        """Outages come and go; when off, the run behaves like healthy servers."""
        self._do({"do": "faults-on" if enabled else "faults-off"})

    # -- people in Credentials, and badge classes that come and go -----------------------

    def _linked_student(self, data: st.DataObject) -> tuple[int, int] | None:
        courses = [c for c in sorted(self.world.links) if self._students(c)]
        if not courses:
            return None
        course_id = self._pick(data, courses)
        return course_id, self._pick(data, self._students(course_id))

    def _badge_of(self, data: st.DataObject, course_id: int) -> str:
        badges = sorted({r.badge_class for r in self.world.links[course_id].rules})
        return data.draw(st.sampled_from(badges))

    @rule(data=st.data())
    def hand_award(self, data: st.DataObject) -> None:
        """A teacher awards a badge by hand: earned or not, held already or not."""
        picked = self._linked_student(data)
        if picked is None:
            return
        course_id, user = picked
        badge = self._badge_of(data, course_id)
        if self.world.canvas.users[user].email and self.world.credentials.available(badge):
            self._do({"do": "hand-award", "course": course_id, "user": user, "badge": badge})

    @rule(data=st.data())
    def hand_revoke(self, data: st.DataObject) -> None:
        live = sorted(
            a.entity_id for a in self.world.credentials.assertions.values() if not a.revoked
        )
        if live:
            self._do({"do": "hand-revoke", "assertion": data.draw(st.sampled_from(live))})

    @rule(data=st.data(), add=st.booleans())
    def hand_edit_members(self, data: st.DataObject, add: bool) -> None:
        """A member removed by hand, or anyone added by hand."""
        if not self.world.links:
            return
        course_id = self._pick(data, list(self.world.links))
        if add:
            user = self._pick(data, list(self.world.canvas.users))
            self._do({"do": "hand-add-member", "course": course_id, "user": user})
            return
        members = self.world.credentials.groups[self.world.links[course_id].group_id].members
        if members:
            user = self._pick(data, list(members))
            self._do({"do": "hand-remove-member", "course": course_id, "user": user})

    @rule(data=st.data())
    def hand_edit_leaderboard(self, data: st.DataObject) -> None:
        if self.world.links:
            course_id = self._pick(data, list(self.world.links))
            self._do({"do": "hand-edit-leaderboard", "course": course_id})

    @rule(data=st.data())
    def share_badge_class(self, data: st.DataObject) -> None:
        """Two courses' rules come to name one badge class: a student of both can earn it
        twice, and the two courses' rounds race to award it."""
        if len(self.world.links) < 2:
            return
        course_id = self._pick(data, list(self.world.links))
        other = self._pick(data, [c for c in self.world.links if c != course_id])
        badge = self._badge_of(data, other)
        if badge in self.world.credentials.badge_classes:
            self._do({"do": "share-badge-class", "course": course_id, "badge": badge})

    @rule(data=st.data(), what=st.sampled_from(["archive", "restore", "delete"]))
    def badge_class_comes_and_goes(self, data: st.DataObject, what: str) -> None:
        classes = self.world.credentials.badge_classes
        linked = sorted({r.badge_class for link in self.world.links.values() for r in link.rules})
        pick = [
            b
            for b in linked
            if b in classes
            and (
                classes[b].archived
                if what == "restore"
                else what == "delete" or not classes[b].archived
            )
        ]
        if pick:
            self._do({"do": f"{what}-badge-class", "badge": data.draw(st.sampled_from(pick))})

    @rule(data=st.data(), fix=st.booleans())
    def links_name_a_missing_class(self, data: st.DataObject, fix: bool) -> None:
        """A links file names a class that does not exist, and is fixed later."""
        if self.world.links:
            course_id = self._pick(data, list(self.world.links))
            self._do(
                {"do": "fix-links" if fix else "link-missing-badge-class", "course": course_id}
            )

    # -- judging -------------------------------------------------------------------------

    def relevant(self, violation: Violation) -> bool:
        """Which violations fail the run: all of them. A test hunting one known symptom
        narrows this, so that Hypothesis looks for that symptom and shrinks towards it
        (and :attr:`judged` to the invariants that can show it)."""
        return True

    @invariant()
    def safety(self) -> None:
        judged = self.judged
        invariants = SAFETY if judged is None else {k: v for k, v in SAFETY.items() if k in judged}
        if invariants:
            _fail_on([v for v in check(self.sim.view(), invariants) if self.relevant(v)])

    def teardown(self) -> None:
        """Record the run, then hold the engine to its liveness promises, but only when the
        run's steps all completed. Hypothesis calls this from a ``finally``, also when the
        run is ending with an exception: a safety invariant failed (settling would only hide
        that failure behind a later one), or a draw ran past the choices Hypothesis had for
        the example (an overrun, the fate of many shrink attempts), which can cut a step off
        between a command and its answer. Such a run has its verdict already, and settling
        an engine left waiting for an answer that never comes would tick it every second of
        the liveness phase, for nothing."""
        if not hasattr(self, "sim"):
            return
        type(self).last_run = self.recording()
        type(self).last_setup_actions = self.setup_actions
        if sys.exc_info()[1] not in (None, self._handling):
            return
        event(f"crashes: {_bucket(self.sim.crashes)}")
        event(f"awards: {_bucket(len(self.world.credentials.assertions))}")
        lost = sum(
            1
            for _, name, fault, _ in self.sim.transport.log
            if name == "IssueAssertion" and fault is not None
        )
        event(f"faulted awards: {_bucket(lost)}")
        _fail_on([v for v in self.sim.settle(self.judged) if self.relevant(v)])


def _fail_on(violations: list[Violation]) -> None:
    """Fail the run with one line per violation, and nothing else. An ``assert`` statement
    would not do: pytest rewrites the asserts of every module of an installed plugin's
    distribution (credsync's fixtures are one), which would add its own explanation line."""
    if violations:
        raise AssertionError("\n".join(map(str, violations)))


def _bucket(n: int) -> str:
    return "0" if n == 0 else "1-9" if n < 10 else "10+"
