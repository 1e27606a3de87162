"""How a round judges: what Canvas showed is merged into the course, and each student's
badges are decided by the award rules (:mod:`sync_core.rules`).

A full round judges every student; an incremental one only those whose enrollment, email,
submissions or module progress changed (every student when an assignment or quiz changed),
and keeps the rest as the last completed round judged them. Pure functions of the course
and the round.
"""

from __future__ import annotations

from sync_core.canvas import CourseSnapshot, Student
from sync_core.reconcile import earned
from sync_core.rounds import Round
from sync_core.rules import AwardRule, meets, uses_modules
from sync_core.state import CourseState, award_key


def judge(course: CourseState, rnd: Round) -> None:
    """Merge what Canvas showed into the course and decide what each student earns.

    A full round judges every student. An incremental one judges again only those whose
    enrollment, email, submissions or module progress it saw change (every student when
    an assignment or quiz changed, or when the cache is missing), and keeps the rest as
    the last completed round judged them. A student whose own read Canvas refused mid-round
    (``rnd.skipped``: they left after the roster was read) is judged in neither: kept as
    the last completed round judged them, or left out if none did, so that nothing is
    decided for them from a round that could not read them."""
    snap, emails, full = rnd.snapshot, rnd.emails, rnd.full
    cached_students, cached_earned = course.students, course.earned
    course.earned = {}  # until _finish: a crash or abort from here on re-judges everyone
    changed: set[int] = set()
    if full:
        course.scores = rnd.scores
    else:  # merge what was graded since the watermark
        merged = course.scores
        for aid, read in rnd.scores.items():
            table = merged.setdefault(aid, {})
            for uid, score in read.items():
                if table.get(uid) != score:
                    changed.add(uid)
                    table[uid] = score
        for uid, aid in rnd.cleared:
            if merged.get(aid, {}).pop(uid, None) is not None:
                changed.add(uid)
    snap.scores = course.scores
    rejudge_all = full or snap.assignments != course.assignments or snap.quizzes != course.quizzes
    students, known, owners = snap.students, course.known_emails, course.owners
    # Without a users read, the roster parser built anew exactly the students whose
    # enrollment may have changed (every student on the roster is then a known one).
    for uid in students.keys() if rnd.users_read else rnd.fresh & students.keys():
        row, old_student = students[uid], cached_students.get(uid)
        if not rnd.users_read and old_student is not None:
            email = old_student.email  # known, or the users list would have been read
        else:
            email = emails.get(uid)
            if uid not in emails:
                rnd.note("users", f"user {uid}: enrolled but absent from the users list")
            elif email is None:
                rnd.note("users", f"user {uid}: no primary email visible; awards held")
        if (
            old_student is not None
            and email == old_student.email
            and (row is old_student or _same_enrollment(row, old_student))
        ):
            students[uid] = old_student
            continue
        students[uid] = Student(uid, row.name, email, row.current_score, row.active)
        changed.add(uid)
        if email is not None and email not in known.setdefault(uid, []):
            known[uid].append(email)
            owners[email] = max(owners.get(email, uid), uid)
    for uid in rnd.skipped & students.keys():  # as the last round left them, or not at all
        if uid in cached_students and uid in cached_earned:
            students[uid] = cached_students[uid]
        else:
            del students[uid]
    changed.update(students.keys() - cached_earned.keys())
    changed = set(students) if rejudge_all else (changed | rnd.modules_read) & students.keys()
    changed -= rnd.skipped
    if full:
        earned_now = earned(course.rules, snap)
    else:
        earned_now = dict(cached_earned)
        for uid in earned_now.keys() - students.keys():
            del earned_now[uid]  # left the roster
        for uid in changed:
            fresh = uid in rnd.modules_read
            earned_now[uid] = _earned_by(course.rules, snap, uid, fresh, cached_earned.get(uid))
    for uid in rnd.skipped & students.keys():
        earned_now[uid] = cached_earned[uid]
    rnd.students, rnd.earned_now, rnd.changed = students, earned_now, changed


def new_awards(course: CourseState, rnd: Round) -> None:
    """The awards students judged this round newly earn (``rnd.new_awards``)."""
    awarded = course.awarded
    earned_now = rnd.earned_now
    for uid in rnd.changed:
        for badge in earned_now[uid]:
            if award_key(uid, badge) not in awarded:
                rnd.new_awards.append((uid, badge))


def _same_enrollment(a: Student, b: Student) -> bool:
    """Whether two students differ in nothing an enrollment says (their emails aside)."""
    return (a.name, a.current_score, a.active) == (b.name, b.current_score, b.active)


def _earned_by(
    rules: tuple[AwardRule, ...],
    snap: CourseSnapshot,
    uid: int,
    fresh_modules: bool,
    cached: frozenset[str] | None,
) -> frozenset[str]:
    """One student's badges now. A module rule whose progress this round did not read
    (``fresh_modules`` false) keeps the student's last judgement (see the module docstring)."""
    got = set()
    for rule in rules:
        if uses_modules(rule) and not fresh_modules:
            if cached is not None and rule.badge_class in cached:
                got.add(rule.badge_class)
        elif meets(rule, snap, uid):
            got.add(rule.badge_class)
    return frozenset(got)
