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

from collections.abc import Callable
from typing import ClassVar

from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from simulators.faults import FaultPlan, FaultRates, HypothesisChoices
from simulators.harness import Engine, Simulation
from simulators.invariants import SAFETY, check
from simulators.world import World
from simulators.worlds import rules_for
from sync_core import (
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


class SyncMachine(RuleBasedStateMachine):
    new_engine: ClassVar[Callable[[Policy], Engine]] = SyncEngine
    restore_engine: ClassVar[Callable[[str, Policy], Engine]] = SyncEngine.from_json

    @initialize(seed=st.integers(0, 3), data=st.data())
    def setup(self, seed: int, data: st.DataObject) -> None:
        choices = HypothesisChoices(data)
        self.world, small_rules = World.small(seed)
        rates = FaultRates.swarm(choices)  # VOPR-style: none to very high, per example
        self.sim = Simulation(
            self.world,
            FaultPlan(rates, choices),
            policy=POLICY,
            new_engine=type(self).new_engine,
            restore_engine=type(self).restore_engine,
        )
        self.users_made = 0
        for course_id, rules in sorted(small_rules.items()):
            self.sim.link(self.world.link_course(course_id, rules))

    # -- helpers -------------------------------------------------------------------------

    def _use(self, data: st.DataObject) -> None:
        """Fault decisions of this step come from this step's draws."""
        self.sim.plan.source = HypothesisChoices(data)

    def _pick(self, data: st.DataObject, options: list[int]) -> int:
        return data.draw(st.sampled_from(sorted(options)))

    def _new_user(self, data: st.DataObject) -> int:
        self.users_made += 1
        email = data.draw(st.sampled_from(["lower", "Mixed", "none"]))
        address = None if email == "none" else f"new{self.users_made}@example.edu"
        if email == "Mixed" and address is not None:
            address = address.capitalize()
        return self.world.canvas.create_user(f"New Student {self.users_made}", address)

    def _students(self, course_id: int) -> list[int]:
        return sorted(
            {
                e.user_id
                for e in self.world.canvas.enrollments_in(course_id)
                if e.type == "StudentEnrollment"
            }
        )

    # -- linking and courses -------------------------------------------------------------

    @rule(data=st.data())
    def link_course(self, data: st.DataObject) -> None:
        unlinked = [c for c in self.world.canvas.open_courses() if c not in self.world.links]
        if not unlinked:
            return
        self._use(data)
        course_id = self._pick(data, unlinked)
        rules = rules_for(self.world, course_id)
        self.sim.link(self.world.link_course(course_id, rules, create_badge_classes=True))

    @rule(assignments=st.integers(0, 2), modules=st.booleans())
    def create_course(self, assignments: int, modules: bool) -> None:
        canvas = self.world.canvas
        course_id = canvas.create_course(f"New course {len(canvas.courses) + 1}")
        for n in range(assignments):
            canvas.create_assignment(course_id, f"Task {n + 1}", 10.0)
        if modules:
            module_id = canvas.create_module(course_id, "Start here")
            canvas.add_module_item(module_id, "Welcome", "Page", requirement="must_view")

    # -- enrolments ----------------------------------------------------------------------

    @rule(data=st.data(), state=st.sampled_from(LIVE), new=st.booleans())
    def enroll(self, data: st.DataObject, state: str, new: bool) -> None:
        courses = self.world.canvas.open_courses()
        if not courses:
            return
        course_id = self._pick(data, courses)
        users = list(self.world.canvas.users)
        user_id = self._new_user(data) if new or not users else self._pick(data, users)
        sections = [s.id for s in self.world.canvas.sections_in(course_id)]
        self.world.canvas.enroll(user_id, course_id, self._pick(data, sections), state=state)

    @rule(data=st.data(), count=st.integers(2, 12))
    def sis_bulk_enroll(self, data: st.DataObject, count: int) -> None:
        """An SIS import: many students at once, the case the original sync missed."""
        courses = self.world.canvas.open_courses()
        if courses:
            course_id = self._pick(data, courses)
            for _ in range(count):
                self.world.canvas.enroll(self._new_user(data), course_id)

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
            self.world.canvas.set_enrollment_state(self._pick(data, invited), "active")

    @rule(data=st.data(), state=st.sampled_from(["deleted", "inactive", "completed"]))
    def drop(self, data: st.DataObject, state: str) -> None:
        live = self._enrollments(LIVE)
        if live:
            self.world.canvas.set_enrollment_state(self._pick(data, live), state)

    @rule(data=st.data())
    def conclude_course(self, data: st.DataObject) -> None:
        courses = self.world.canvas.open_courses()
        if courses:
            self.world.canvas.conclude_course(self._pick(data, courses))

    # -- work and grades -----------------------------------------------------------------

    @rule(data=st.data(), kind=st.sampled_from(["assignment", "classic quiz", "new quiz"]))
    def create_work(self, data: st.DataObject, kind: str) -> None:
        courses = self.world.canvas.open_courses()
        if not courses:
            return
        course_id = self._pick(data, courses)
        canvas = self.world.canvas
        if kind == "assignment":
            canvas.create_assignment(course_id, "Extra work", 20.0)
        elif kind == "classic quiz":
            canvas.create_classic_quiz(course_id, "Pop quiz", 10.0)
        else:
            canvas.create_new_quiz(course_id, "New quiz", 10.0)

    def _graded_work(self, data: st.DataObject) -> tuple[int, int, int] | None:
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
        return course_id, self._pick(data, work), self._pick(data, students)

    @rule(data=st.data(), percent=st.sampled_from([0, 50, 79, 80, 100]))
    def grade(self, data: st.DataObject, percent: int) -> None:
        """Grade or regrade (a regrade moves graded_at, and may lower the score)."""
        picked = self._graded_work(data)
        if picked is not None:
            course_id, assignment_id, user_id = picked
            points = self.world.canvas.assignments[assignment_id].points_possible or 10.0
            self.world.canvas.submit(course_id, assignment_id, user_id)
            self.world.canvas.grade(course_id, assignment_id, user_id, points * percent / 100)

    @rule(data=st.data())
    def excuse(self, data: st.DataObject) -> None:
        picked = self._graded_work(data)
        if picked is not None:
            self.world.canvas.excuse(*picked)

    @rule(data=st.data())
    def delete_assignment(self, data: st.DataObject) -> None:
        live = [a.id for a in self.world.canvas.assignments.values() if not a.deleted]
        if live:
            self.world.canvas.delete_assignment(self._pick(data, live))

    @rule(data=st.data())
    def complete_module_item(self, data: st.DataObject) -> None:
        items = [i.id for i in self.world.canvas.items.values() if i.requirement is not None]
        if not items:
            return
        item_id = self._pick(data, items)
        course_id = self.world.canvas.modules[self.world.canvas.items[item_id].module_id].course_id
        students = self._students(course_id)
        if students:
            self.world.canvas.complete_module_item(item_id, self._pick(data, students))

    @rule(data=st.data(), kind=st.sampled_from(["new", "case", "hidden"]))
    def change_email(self, data: st.DataObject, kind: str) -> None:
        user_id = self._pick(data, list(self.world.canvas.users))
        user = self.world.canvas.users[user_id]
        if kind == "new":
            email: str | None = f"changed{len(user.email_history)}.{user_id}@example.edu"
        elif kind == "case":
            email = user.email.swapcase() if user.email else None
        else:
            email = None
        self.world.canvas.change_email(user_id, email)

    # -- the sync worker and its environment ---------------------------------------------

    @rule(data=st.data(), seconds=st.sampled_from([60, 300, 900, 3600, 4 * 3600]))
    def time_passes(self, data: st.DataObject, seconds: int) -> None:
        self._use(data)
        self.sim.advance(seconds)

    @rule(data=st.data())
    def press_update_now(self, data: st.DataObject) -> None:
        if self.world.links:
            self._use(data)
            self.sim.update_now(self._pick(data, list(self.world.links)))

    @rule(data=st.data())
    def crash_worker(self, data: st.DataObject) -> None:
        self._use(data)
        self.sim.crash()

    @rule(enabled=st.booleans())
    def faults(self, enabled: bool) -> None:
        """Outages come and go; when off, the run behaves like healthy servers."""
        self.sim.plan.enabled = enabled

    # -- judging -------------------------------------------------------------------------

    @invariant()
    def safety(self) -> None:
        violations = check(self.sim.view(), SAFETY)
        assert not violations, "\n".join(map(str, violations))

    def teardown(self) -> None:
        if not hasattr(self, "sim"):
            return
        event(f"crashes: {_bucket(self.sim.crashes)}")
        event(f"awards: {_bucket(len(self.world.credentials.assertions))}")
        lost = sum(
            1
            for _, name, fault, _ in self.sim.transport.log
            if name == "IssueAssertion" and fault is not None
        )
        event(f"faulted awards: {_bucket(lost)}")
        violations = self.sim.settle()
        assert not violations, "\n".join(map(str, violations))


def _bucket(n: int) -> str:
    return "0" if n == 0 else "1-9" if n < 10 else "10+"
