"""Timeline actions: one vocabulary for everything that happens to a simulated deployment.

A scenario file lists actions, the state machine performs the same actions (and records
them, so a shrunk counterexample becomes a scenario file), and the trace names them. Each
action is a flat mapping with a ``do`` key, which TOML writes as an inline table::

    {do = "enroll", course = 102, user = "new"}
    {do = "grade", course = 101, assignment = 7001, user = 1003, percent = 90}
    {do = "faults", lost_response = 1000, on = ["award"]}
    {do = "wait", hours = 2}

Entities are named by their Canvas ids, which a world built from a seed assigns
deterministically (courses from 101, users from 1001, assignments from 7001, modules from
401, module items from 801). :data:`ACTIONS` lists every action and its keys; a bad action
raises :class:`ActionError` saying what is wrong, before anything is changed.
"""

from __future__ import annotations

from collections.abc import Mapping

from simulators.credentials import hand
from simulators.faults import TARGETS, FaultKind
from simulators.harness.simulation import Simulation
from simulators.world import World
from simulators.worlds import rules_for
from sync_core.rules import CourseGrade

Action = Mapping[str, object]

ACTIONS: Mapping[str, str] = {
    "wait": "let virtual time pass: seconds, minutes, hours and/or days",
    "link": "link a course to a new group, with award rules over what it has: course",
    "create-course": "a new course: assignments (count), modules (true/false)",
    "enroll": "enroll a student: course, user (id or 'new'), [section], [state], [email]",
    "sis-import": "an SIS import of new students, all at once: course, students (count)",
    "accept": "accept an invitation: enrollment, or course and user",
    "drop": "end an enrollment: enrollment, or course and user; state deleted|inactive|completed",
    "conclude": "conclude a course (every enrollment becomes completed): course",
    "create-work": "new work: course, kind (assignment|classic quiz|new quiz)",
    "grade": "submit and grade: course, assignment, user, percent",
    "excuse": "excuse a submission: course, assignment, user",
    "delete-assignment": "delete an assignment: assignment",
    "complete-module-item": "a student completes a module item: item, user",
    "change-email": "change a user's primary email: user, email ('' for none)",
    "faults": "set fault rates in per mille (e.g. lost_response = 1000); [on] = targets "
    "(canvas-read, credentials-read, award, member, leaderboard)",
    "faults-on": "turn the fault plan back on",
    "faults-off": "turn all faults off",
    "crash": "the sync worker crashes and restarts from its saved state",
    "update-now": "a teacher presses 'update now' on the group progress page: course",
    "hand-award": "a teacher awards a badge by hand in Credentials: course, user, badge",
    "hand-revoke": "a teacher revokes an award by hand: assertion, or user and badge",
    "hand-remove-member": "a teacher removes a member from the course's group: course, user",
    "hand-add-member": "a teacher adds anyone to the course's group: course, user",
    "hand-edit-leaderboard": "someone edits the course's leaderboard by hand: course",
    "share-badge-class": "the course's links gain a rule awarding another course's badge class "
    "for a course grade: course, badge, [percent]",
    "archive-badge-class": "a badge class is archived (404 on everything under it): badge",
    "restore-badge-class": "an archived badge class comes back: badge",
    "delete-badge-class": "a badge class is deleted, its live awards revoked first: badge",
    "link-missing-badge-class": "the course's links name a badge class that does not exist: "
    "course, [badge]",
    "fix-links": "the course's links drop every rule naming a class that does not exist: course",
}
_UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
FAULT_KEYS = frozenset(k.value for k in FaultKind)


class ActionError(ValueError):
    """An action that cannot be performed; the message says which key is wrong and why."""


def perform(sim: Simulation, action: Action) -> None:
    """Do one action to the simulation, and note it in the trace."""
    do = action.get("do")
    if do not in ACTIONS:
        raise ActionError(f"unknown action {do!r}; known: {', '.join(ACTIONS)}")
    world, canvas = sim.world, sim.world.canvas
    course = _course(sim, action) if "course" in action else None
    if do == "wait":
        sim.advance(seconds(action))
        return
    if do == "crash":
        sim.crash()
        return
    if do == "update-now":
        sim.update_now(_need(course, do, "course"))
        return
    if do in ("faults", "faults-on", "faults-off"):
        _faults(sim, action)
        return
    if do.startswith("hand-") or do.endswith("badge-class") or do == "fix-links":
        _credentials(sim, action, course)
        return
    if do == "link":
        course_id = _need(course, do, "course")
        if course_id in world.links:
            raise ActionError(f"course {course_id} is already linked")
        sim.link(world.link_course(course_id, rules_for(world, course_id), None, True))
        return
    if do == "create-course":
        course_id = canvas.create_course(f"New course {len(canvas.courses) + 1}")
        for n in range(_int(action, "assignments", 0)):
            canvas.create_assignment(course_id, f"Task {n + 1}", 10.0)
        if action.get("modules", False):
            module_id = canvas.create_module(course_id, "Start here")
            canvas.add_module_item(module_id, "Welcome", "Page", requirement="must_view")
        sim.note(course_id, f"course {course_id} created")
        return
    if do == "enroll":
        course_id = _need(course, do, "course")
        user = new_user(sim, action) if action.get("user") == "new" else _user(sim, action)
        sections = [s.id for s in canvas.sections_in(course_id)]
        section = _int(action, "section", sections[0])
        if section not in sections:
            raise ActionError(f"section {section} is not in course {course_id}: {sections}")
        state = str(action.get("state", "active"))
        if state not in ("active", "invited"):
            raise ActionError(f"enroll: state must be active or invited, not {state!r}")
        canvas.enroll(user, course_id, section, state=state)
        sim.note(course_id, f"user {user} enrolled ({state})")
        return
    if do == "sis-import":
        course_id = _need(course, do, "course")
        users = [new_user(sim, {}) for _ in range(_int(action, "students", 1))]
        for user in users:
            canvas.enroll(user, course_id)
        sim.note(course_id, f"SIS import: users {users[0]}..{users[-1]} enrolled")
        return
    if do in ("accept", "drop"):
        state = "active" if do == "accept" else str(action.get("state", "deleted"))
        if state not in ("active", "deleted", "inactive", "completed"):
            raise ActionError(f"drop: state must be deleted, inactive or completed, not {state!r}")
        for enrollment in _enrollments(sim, action):
            canvas.set_enrollment_state(enrollment, state)
            e = canvas.enrollments[enrollment]
            sim.note(e.course_id, f"user {e.user_id}'s enrollment {enrollment} is now {state}")
        return
    if do == "conclude":
        course_id = _need(course, do, "course")
        canvas.conclude_course(course_id)
        sim.note(course_id, "course concluded: every enrollment is now completed")
        return
    if do == "create-work":
        course_id = _need(course, do, "course")
        kind = action.get("kind", "assignment")
        if kind == "assignment":
            made = canvas.create_assignment(course_id, "Extra work", 20.0)
        elif kind == "classic quiz":
            made = canvas.create_classic_quiz(course_id, "Pop quiz", 10.0)[1]
        elif kind == "new quiz":
            made = canvas.create_new_quiz(course_id, "New quiz", 10.0)
        else:
            raise ActionError("create-work: kind must be assignment, classic quiz or new quiz")
        sim.note(course_id, f"{kind} {made} created")
        return
    if do == "delete-assignment":
        assignment = _int(action, "assignment")
        if assignment not in canvas.assignments:
            raise ActionError(f"delete-assignment: no assignment {assignment}")
        canvas.delete_assignment(assignment)
        sim.note(canvas.assignments[assignment].course_id, f"assignment {assignment} deleted")
        return
    if do in ("grade", "excuse"):
        course_id = _need(course, do, "course")
        assignment, user = _int(action, "assignment"), _user(sim, action)
        if (
            canvas.assignments.get(assignment) is None
            or canvas.assignments[assignment].course_id != course_id
        ):
            raise ActionError(f"{do}: course {course_id} has no assignment {assignment}")
        if do == "excuse":
            canvas.excuse(course_id, assignment, user)
            sim.note(course_id, f"user {user} excused from assignment {assignment}")
            return
        percent = _number(action, "percent")
        points = canvas.assignments[assignment].points_possible or 10.0
        canvas.submit(course_id, assignment, user)
        canvas.grade(course_id, assignment, user, points * percent / 100)
        sim.note(course_id, f"user {user} graded {percent:g}% on assignment {assignment}")
        return
    if do == "complete-module-item":
        item, user = _int(action, "item"), _user(sim, action)
        if item not in canvas.items:
            raise ActionError(f"complete-module-item: no module item {item}")
        canvas.complete_module_item(item, user)
        course_id = canvas.modules[canvas.items[item].module_id].course_id
        sim.note(course_id, f"user {user} completed module item {item}")
        return
    # change-email
    user = _user(sim, action)
    email = str(action.get("email", "")) or None
    canvas.change_email(user, email)
    sim.note(None, f"user {user}'s email is now {email or 'hidden'}")


def _credentials(sim: Simulation, action: Action, course: int | None) -> None:
    """What people do in Credentials: hand edits, and badge classes coming and going."""
    do, world = str(action["do"]), sim.world
    credentials = world.credentials
    try:
        if do == "hand-award":
            course_id, user, badge = (
                _need(course, do, "course"),
                _user(sim, action),
                _badge(sim, action),
            )
            hand.award(world, course_id, user, badge)
            sim.note(course_id, f"badge class {badge} awarded by hand to user {user}")
        elif do == "hand-revoke":
            if "assertion" in action:
                assertion = str(action["assertion"])
            else:
                assertion = _live_assertion(sim, _user(sim, action), _badge(sim, action))
            hand.revoke(world, assertion)
            sim.note(course, f"assertion {assertion} revoked by hand")
        elif do in ("hand-remove-member", "hand-add-member"):
            course_id, user = _need(course, do, "course"), _user(sim, action)
            if do == "hand-remove-member":
                hand.remove_member(world, course_id, user)
                sim.note(course_id, f"user {user} removed from the group by hand")
            else:
                hand.add_member(world, course_id, user)
                sim.note(course_id, f"user {user} added to the group by hand")
        elif do == "hand-edit-leaderboard":
            course_id = _need(course, do, "course")
            hand.edit_leaderboard(world, course_id)
            sim.note(course_id, "leaderboard edited by hand")
        elif do == "share-badge-class":
            course_id, badge = _linked(sim, course, do), _badge(sim, action)
            rule = CourseGrade(badge, _number(action, "percent", 50.0))
            rules = (*world.links[course_id].rules, rule)
            sim.link(world.relink(course_id, rules))
        elif do in ("archive-badge-class", "restore-badge-class"):
            badge = _badge(sim, action)
            credentials.archive_badge_class(badge, do == "archive-badge-class")
            sim.note(None, f"badge class {badge} {do.split('-')[0]}d")
        elif do == "delete-badge-class":
            badge = _badge(sim, action)
            for a in list(credentials.assertions_for(badge)):
                if not a.revoked:
                    hand.revoke(world, a.entity_id)
            credentials.delete_badge_class(badge)
            sim.note(None, f"badge class {badge} deleted (its awards revoked first)")
        elif do == "link-missing-badge-class":
            course_id = _linked(sim, course, do)
            missing = str(action.get("badge", "missing-badge-class"))
            if missing in credentials.badge_classes:
                raise ActionError(f"{do}: badge class {missing!r} exists")
            rules = (*world.links[course_id].rules, CourseGrade(missing, 0.0))
            sim.link(world.relink(course_id, rules))
        else:  # fix-links
            course_id = _linked(sim, course, do)
            kept = [
                r
                for r in world.links[course_id].rules
                if r.badge_class in credentials.badge_classes
            ]
            sim.link(world.relink(course_id, kept))
    except hand.HandEditError as exc:
        raise ActionError(f"{do}: {exc}") from None


def _badge(sim: Simulation, action: Action) -> str:
    """A badge class named by id, or by its name (ids are generated, names are what the
    Credentials UI shows)."""
    badge = action.get("badge")
    classes = sim.world.credentials.badge_classes
    if isinstance(badge, str) and badge in classes:
        return badge
    named = [c.entity_id for c in classes.values() if c.name == badge]
    if len(named) != 1:
        raise ActionError(f"{action.get('do')}: no single badge class {badge!r} (id or name)")
    return named[0]


def _live_assertion(sim: Simulation, user: int, badge: str) -> str:
    emails = sim.world.emails_ever(user)
    for a in sim.world.credentials.assertions_for(badge):
        if a.identity in emails and not a.revoked:
            return a.entity_id
    raise ActionError(f"hand-revoke: user {user} holds no live award of {badge!r}")


def _linked(sim: Simulation, course: int | None, do: str) -> int:
    course_id = _need(course, do, "course")
    if course_id not in sim.world.links:
        raise ActionError(f"{do}: course {course_id} is not linked")
    return course_id


def next_new_student(world: World) -> int:
    """N of the next "New Student N" that :func:`new_user` creates."""
    return sum(1 for u in world.canvas.users.values() if u.name.startswith("New Student ")) + 1


def new_user(sim: Simulation, action: Action) -> int:
    """A new Canvas user: ``email`` as given ('' for none), else ``newN@example.edu``."""
    canvas = sim.world.canvas
    n = next_new_student(sim.world)
    email = str(action.get("email", f"new{n}@example.edu")) or None
    return canvas.create_user(str(action.get("name", f"New Student {n}")), email)


def seconds(action: Action) -> float:
    total = sum(_number(action, unit, 0.0) * factor for unit, factor in _UNITS.items())
    if total <= 0:
        raise ActionError("wait: give a positive number of seconds, minutes, hours or days")
    return total


def _faults(sim: Simulation, action: Action) -> None:
    plan = sim.plan
    if action["do"] == "faults-off":
        plan.enabled = False
        sim.note(None, "faults off")
        return
    if action["do"] == "faults":
        rates = plan.rates
        for key in action:
            if key in ("do", "on"):
                continue
            if key not in FAULT_KEYS:
                raise ActionError(f"faults: unknown fault {key!r}; known: {sorted(FAULT_KEYS)}")
            rates = rates.with_rate(FaultKind(key), _int(action, key))
        only = action.get("on")
        if only is not None and (not isinstance(only, list) or not set(only) <= set(TARGETS)):
            raise ActionError(f"faults: 'on' must be a list of targets from {list(TARGETS)}")
        plan.rates = rates
        plan.only = None if only is None else frozenset(only)
    plan.enabled = True
    described = {k: v for k, v in vars(plan.rates).items() if v}
    where = "" if plan.only is None else f" on {', '.join(sorted(plan.only))}"
    sim.note(None, f"faults on: {described or 'none'} per mille{where}")


def _course(sim: Simulation, action: Action) -> int:
    course = _int(action, "course")
    if course not in sim.world.canvas.courses:
        raise ActionError(f"{action['do']}: no course {course}")
    return course


def _user(sim: Simulation, action: Action) -> int:
    user = _int(action, "user")
    if user not in sim.world.canvas.users:
        raise ActionError(f"{action['do']}: no user {user}")
    return user


def _enrollments(sim: Simulation, action: Action) -> list[int]:
    canvas = sim.world.canvas
    if "enrollment" in action:
        enrollment = _int(action, "enrollment")
        if enrollment not in canvas.enrollments:
            raise ActionError(f"{action['do']}: no enrollment {enrollment}")
        return [enrollment]
    course, user = _course(sim, action), _user(sim, action)
    rows = [
        e.id
        for e in canvas.enrollments_in(course)
        if e.user_id == user and e.type == "StudentEnrollment"
    ]
    if not rows:
        raise ActionError(f"{action['do']}: user {user} is not a student of course {course}")
    return rows


def _need(value: int | None, do: object, key: str) -> int:
    if value is None:
        raise ActionError(f"{do}: '{key}' is required")
    return value


def _int(action: Action, key: str, default: int | None = None) -> int:
    value = action.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ActionError(f"{action.get('do')}: '{key}' must be a whole number, not {value!r}")
    return value


def _number(action: Action, key: str, default: float | None = None) -> float:
    value = action.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ActionError(f"{action.get('do')}: '{key}' must be a number, not {value!r}")
    return float(value)
