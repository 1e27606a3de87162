"""What a round reads: from Canvas the roster, users, assignments, quizzes, submissions and
module progress, and from Credentials the group's members, its leaderboard and badge classes'
assertions; page by page, quarantining what cannot be parsed.

A full round reads everything; an incremental one reads what can have changed (see
:mod:`sync_core.engine`). Lists are followed to their last page, a pagination loop ends the
round, and a list read to its end triggers what depends on it (:meth:`Reading._list_read`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import attrgetter

from sync_core import canvas, credentials
from sync_core.canvas import Malformed
from sync_core.commands import (
    CanvasList,
    Command,
    CredentialsList,
    FetchCanvasPage,
    FetchCredentialsPage,
    Params,
)
from sync_core.events import PageReceived
from sync_core.rounds import PER_PAGE, Fetch, Pending, Round, RoundAborted, Rounds, iso
from sync_core.rules import needs_modules, needs_quizzes, uses_modules
from sync_core.state import CourseState, award_key

_EMAIL = attrgetter("email")


class Reading(Rounds):
    """The reading half of a round (see the module docstring)."""

    def _start_round(self, course: CourseState, out: list[Command]) -> None:
        full = (
            course.force_full
            or course.last_full_at is None
            or course.watermark is None
            or self.now - course.last_full_at >= self.policy.full_resync_interval
            or (course.reread_after is not None and self.now >= course.reread_after)
        )
        course.force_full = False
        rnd = Round(full=full, started_at=self.now, heard_at=self.now)
        self._rounds[course.course_id] = rnd
        submissions: Params = (("student_ids[]", "all"), *PER_PAGE)
        if not full and course.watermark is not None:
            since = iso(course.watermark - self.policy.watermark_overlap)
            submissions = (*submissions, ("graded_since", since))
        # Ask for completed enrollments explicitly: Canvas hides them by default, and a
        # student who finished the course still earns (behaviour 3 of the fact sheet).
        enrollments = (
            ("type[]", "StudentEnrollment"),
            ("state[]", "active"),
            ("state[]", "completed"),
            *PER_PAGE,
        )
        reads: list[tuple[CanvasList, Params]] = [
            (CanvasList.ENROLLMENTS, enrollments),
            (CanvasList.ASSIGNMENTS, PER_PAGE),
            (CanvasList.SUBMISSIONS, submissions),
        ]
        if needs_quizzes(course.rules):
            reads.append((CanvasList.QUIZZES, PER_PAGE))
        for resource, params in reads:
            self._read_canvas(course, rnd, resource.value, resource, params, None, out)
        if full:
            self._read_users(
                course, rnd, out
            )  # an incremental round trusts the cached view (see the module docstring)
            self._read_credentials(course, rnd, CredentialsList.MEMBERS, None, (), None, out)
            self._read_credentials(course, rnd, CredentialsList.LEADERBOARD, None, (), None, out)
            self._read_assertions(course, rnd, course.badge_classes, out)

    def _read_assertions(
        self, course: CourseState, rnd: Round, badges: Iterable[str], out: list[Command]
    ) -> None:
        flags = (("include_revoked", "true"), ("include_expired", "true"))
        for badge in badges:
            rnd.read_badges.add(badge)
            self._read_credentials(course, rnd, CredentialsList.ASSERTIONS, badge, flags, None, out)

    def _read_canvas(
        self,
        course: CourseState,
        rnd: Round,
        key: str,
        resource: CanvasList,
        params: Params,
        cursor: str | None,
        out: list[Command],
    ) -> None:
        command = FetchCanvasPage(self._take_id(), course.course_id, resource, params, cursor)
        self._track(course, rnd, "read", key, command, out)

    def _read_credentials(
        self,
        course: CourseState,
        rnd: Round,
        resource: CredentialsList,
        badge: str | None,
        params: Params,
        cursor: str | None,
        out: list[Command],
        check: str | None = None,
    ) -> None:
        """``check`` names the award a recipient read is made for (see :meth:`_check`)."""
        key = resource.value if badge is None else f"{resource.value}:{badge}"
        command = FetchCredentialsPage(
            self._take_id(),
            course.course_id,
            resource,
            course.issuer_id,
            course.group_id,
            badge,
            params,
            cursor,
        )
        if check is None:
            self._track(course, rnd, "read", key, command, out)
        else:
            self._track(course, rnd, "check", check, command, out)

    def _page(
        self,
        course: CourseState,
        rnd: Round,
        pending: Pending,
        event: PageReceived,
        out: list[Command],
    ) -> None:
        command = pending.command
        assert isinstance(command, Fetch)
        # The lists every round reads in full are parsed a page at a time, in tight loops.
        if command.resource is CanvasList.SUBMISSIONS:
            latest, reasons = canvas.parse_submissions(
                event.records, rnd.scores, rnd.cleared, rnd.times
            )
            if latest is not None:
                rnd.max_graded_at = max(rnd.max_graded_at or latest, latest)
        elif command.resource is CanvasList.ENROLLMENTS:
            reasons = canvas.parse_enrollments(
                event.records, rnd.snapshot.students, course.students, rnd.fresh
            )
            # A student a bad row names may still be enrolled: no member is removed this
            # round (removing on data we could not read loses a membership).
            rnd.roster_unsure = rnd.roster_unsure or bool(reasons)
        elif command.resource is CanvasList.USERS:
            reasons = canvas.parse_user_emails(event.records, rnd.emails)
        elif command.resource is CredentialsList.ASSERTIONS:
            into = rnd.checked[pending.key] if pending.kind == "check" else rnd.assertions
            reasons = credentials.parse_assertions(event.records, into)
        else:
            reasons = []
            parse = _PARSERS[command.resource]
            for record in event.records:
                try:
                    parse(rnd, command, record)
                except Malformed as exc:
                    reasons.append(str(exc))
        for reason in reasons:
            rnd.note(pending.key, reason)
        if reasons and command.resource is CredentialsList.LEADERBOARD:
            rnd.board_unreadable = True
        cursor = event.next_cursor
        if cursor is not None:
            if cursor in rnd.cursors:
                raise RoundAborted(f"{pending.key}: pagination loops back to a page already read")
            rnd.cursors.add(cursor)
            if isinstance(command, FetchCanvasPage):
                self._read_canvas(
                    course, rnd, pending.key, command.resource, command.params, cursor, out
                )
            else:
                check = pending.key if pending.kind == "check" else None
                self._read_credentials(
                    course,
                    rnd,
                    command.resource,
                    command.badge_class,
                    command.params,
                    cursor,
                    out,
                    check,
                )
        else:
            self._list_read(course, rnd, pending, out)

    def _list_read(
        self, course: CourseState, rnd: Round, pending: Pending, out: list[Command]
    ) -> None:
        """A list was read to its last page: what depends on it can be read or judged."""
        command = pending.command
        assert isinstance(command, Fetch)
        if command.resource is CanvasList.MODULES:
            self._check_modules_complete(rnd, int(dict(command.params)["student_id"]))
        elif command.resource is CanvasList.ENROLLMENTS:
            self._roster_read(course, rnd, out)

    def _roster_read(self, course: CourseState, rnd: Round, out: list[Command]) -> None:
        """The roster is complete: read what depends on who is in it. An incremental round
        reads the users list only when a student on the roster has no known email (new, or
        hidden until now): an email change otherwise shows at the next full round. Module
        progress is read per student: every student in a full round, in an incremental one
        those who can still earn a badge from it."""
        students = rnd.snapshot.students
        if not rnd.full:
            cached = course.students
            if not students.keys() <= cached.keys() or None in map(_EMAIL, cached.values()):
                self._read_users(course, rnd, out)
        if not needs_modules(course.rules):
            return
        badges = [r.badge_class for r in course.rules if uses_modules(r)]
        for uid in sorted(students):
            if (
                not rnd.full
                and uid in course.earned  # judged before: its module badges are known
                and all(award_key(uid, b) in course.awarded for b in badges)
            ):
                continue  # holds every badge progress could give: the full round re-reads
            rnd.modules_read.add(uid)
            params = (("student_id", str(uid)), ("include[]", "items"), *PER_PAGE)
            self._read_canvas(course, rnd, f"modules:{uid}", CanvasList.MODULES, params, None, out)

    def _read_users(self, course: CourseState, rnd: Round, out: list[Command]) -> None:
        rnd.users_read = True
        users = (
            ("enrollment_type[]", "student"),
            ("enrollment_state[]", "active"),
            ("enrollment_state[]", "completed"),
            *PER_PAGE,
        )
        self._read_canvas(course, rnd, CanvasList.USERS.value, CanvasList.USERS, users, None, out)

    def _check_modules_complete(self, rnd: Round, uid: int) -> None:
        """Course completion means *every* required module is complete, so a module list
        that lost a row (a numbered page drifted) could award a badge nobody earned. Module
        positions run 1..N: a gap means a row is missing, and that student's completion
        is not judged this round."""
        positions = rnd.module_positions.get(uid, set())
        if positions != set(range(1, len(positions) + 1)):
            rnd.snapshot.required_modules.pop(uid, None)
            rnd.snapshot.modules.pop(uid, None)
            rnd.note(
                f"modules:{uid}",
                "module positions have gaps (a page drifted); completion not judged this round",
            )


# -- record parsers, by list --------------------------------------------------------------


def _assignment(rnd: Round, command: Fetch, record: object) -> None:
    a = canvas.parse_assignment(record)
    rnd.snapshot.assignments[a.assignment_id] = a


def _quiz(rnd: Round, command: Fetch, record: object) -> None:
    quiz_id, assignment_id = canvas.parse_quiz(record)
    if assignment_id is not None:
        rnd.snapshot.quizzes[quiz_id] = assignment_id


def _module(rnd: Round, command: Fetch, record: object) -> None:
    # Module progress is read per student: the student is named by the request, not the record.
    uid = int(dict(command.params)["student_id"])
    module_id, position, state, required = canvas.parse_module(record)
    rnd.module_positions.setdefault(uid, set()).add(position)
    if state is not None:
        rnd.snapshot.modules.setdefault(uid, {})[module_id] = state
    if required:
        known = rnd.snapshot.required_modules.get(uid, frozenset())
        rnd.snapshot.required_modules[uid] = known | {module_id}


def _member(rnd: Round, command: Fetch, record: object) -> None:
    m = credentials.parse_member(record)
    rnd.members[m.user_id] = m


def _leaderboard(rnd: Round, command: Fetch, record: object) -> None:
    rnd.leaderboard.append(credentials.parse_leaderboard_entry(record))


# Submissions, enrollments, users and assertions are parsed a page at a time (see _page).
_PARSERS: dict[CanvasList | CredentialsList, Callable[[Round, Fetch, object], None]] = {
    CanvasList.ASSIGNMENTS: _assignment,
    CanvasList.QUIZZES: _quiz,
    CanvasList.MODULES: _module,
    CredentialsList.MEMBERS: _member,
    CredentialsList.LEADERBOARD: _leaderboard,
}
