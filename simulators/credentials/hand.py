"""What people do by hand in the Credentials UI while the sync runs.

A teacher awards a badge or revokes one, removes a member from a course's group or adds
one, or edits the leaderboard. Each edit is a function of the world, so timeline actions,
the state machine's rules and the HAND_EDIT fault (which strikes between any two of a
round's requests) all perform the same edits. Awards made here are marked ``by_hand``: the
ground truth the invariants use to tell a teacher's award from the sync's.
"""

from __future__ import annotations

from simulators.credentials.model import Assertion
from simulators.faults import ChoiceSource
from simulators.world import World

EDITS = ("award", "revoke", "remove-member", "add-member", "leaderboard")


class HandEditError(ValueError):
    """An edit that cannot be made (no such course, student, class or assertion)."""


def award(world: World, course_id: int, user_id: int, badge_class: str) -> Assertion:
    """A teacher awards a badge to a student's current email, as the Credentials UI does
    (duplicates allowed, as by default)."""
    email = world.canvas.users[user_id].email
    if email is None:
        raise HandEditError(f"user {user_id} has no email to award to")
    if not world.credentials.available(badge_class):
        raise HandEditError(f"badge class {badge_class!r} cannot be awarded (archived or gone)")
    if course_id not in world.links:
        raise HandEditError(f"course {course_id} is not linked")
    world.edited_by_hand = True
    return world.credentials.award(badge_class, email, by_hand=True)


def revoke(world: World, assertion_id: str) -> None:
    assertion = world.credentials.assertions.get(assertion_id)
    if assertion is None or assertion.revoked:
        raise HandEditError(f"no live assertion {assertion_id!r}")
    world.credentials.revoke(assertion_id, "revoked by hand")
    world.edited_by_hand = True


def remove_member(world: World, course_id: int, user_id: int) -> None:
    if not world.credentials.remove_member(_group(world, course_id), user_id):
        raise HandEditError(f"user {user_id} is not a member of course {course_id}'s group")
    world.edited_by_hand = True


def add_member(world: World, course_id: int, user_id: int) -> None:
    """A member added by hand: anyone the teacher picks, enrolled or not."""
    user = world.canvas.users[user_id]
    email = user.email or f"user{user_id}@example.edu"
    world.credentials.upsert_member(_group(world, course_id), user_id, email, user.name, ())
    world.edited_by_hand = True


def edit_leaderboard(world: World, course_id: int) -> None:
    """Someone reorders the leaderboard: every count is raised by one, the order reversed."""
    group = world.credentials.groups[_group(world, course_id)]
    entries = [(row.canvas_user_id, row.badges + 1) for row in reversed(group.leaderboard)]
    world.credentials.publish_leaderboard(group.entity_id, entries or [(0, 1)])
    world.edited_by_hand = True


def random_edit(world: World, choices: ChoiceSource) -> str:
    """One edit drawn from ``choices`` (first the kind, then its target, each the first
    option when shrunk), for the HAND_EDIT fault; returns what happened, for the trace."""
    linked = sorted(world.links)
    if not linked:
        return "no linked course to edit"
    kind = EDITS[choices.draw(len(EDITS))]
    course_id = linked[choices.draw(len(linked))]
    link = world.links[course_id]
    if kind == "award":
        # A teacher awards by hand what a student has earned (the sync being slow is why
        # people do); the machine's hand_award rule awards anything to anyone.
        emails = world.active_students(course_id)
        earned = sorted(
            (u, b)
            for u, b in world.earned_now(course_id)
            if emails.get(u) and world.credentials.available(b)
        )
        if not earned:
            return f"nothing earned to award by hand in course {course_id}"
        user_id, badge = earned[choices.draw(len(earned))]
        award(world, course_id, user_id, badge)
        return f"badge class {badge} awarded by hand to user {user_id}"
    if kind == "revoke":
        live = sorted(
            a.entity_id
            for r in link.rules
            for a in world.credentials.assertions_for(r.badge_class)
            if not a.revoked
        )
        if not live:
            return f"nothing to revoke by hand in course {course_id}"
        assertion_id = live[choices.draw(len(live))]
        revoke(world, assertion_id)
        return f"assertion {assertion_id} revoked by hand"
    members = sorted(world.credentials.groups[link.group_id].members)
    if kind == "remove-member":
        if not members:
            return f"no member to remove by hand in course {course_id}"
        user_id = members[choices.draw(len(members))]
        remove_member(world, course_id, user_id)
        return f"user {user_id} removed by hand from course {course_id}'s group"
    if kind == "add-member":
        users = sorted(world.canvas.users)
        user_id = users[choices.draw(len(users))]
        add_member(world, course_id, user_id)
        return f"user {user_id} added by hand to course {course_id}'s group"
    edit_leaderboard(world, course_id)
    return f"course {course_id}'s leaderboard edited by hand"


def _group(world: World, course_id: int) -> str:
    link = world.links.get(course_id)
    if link is None:
        raise HandEditError(f"course {course_id} is not linked")
    return link.group_id
