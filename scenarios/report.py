"""A self-contained HTML report of one scenario run, for people who have never read the code.

When a sync run fails, a QA engineer needs one file to open, attach to a ticket or archive
with the build, that answers: what was run, which invariant broke, for which course and
student, when (in the run's virtual time), and what went wrong just before. ``render_html``
turns a run record (plain JSON-able data, so a report can be rebuilt from a saved record at
any time) into that file.

The page never touches the network: no scripts, fonts, images or stylesheets from anywhere,
only inline CSS, and a Content-Security-Policy that forbids fetching anything at all. Reports
are opened long after the run, offline or behind proxies, and attached to tickets; they must
look the same everywhere and must not send the details of a failure to a third party. Every
string from the record is escaped, because details quote server answers verbatim.
"""

from __future__ import annotations

import heapq
import html
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["render_html"]

SYMPTOMS: Mapping[int, str] = {
    1: "courses without assignments or quizzes never sync",
    2: "courses that stop syncing",
    3: "badges missing, or Earned but never Awarded",
    4: "students enrolled automatically missing from the group",
    5: "the leaderboard stops updating",
}

# What each invariant promises, in the words of the README, so a reader needs no code.
INVARIANT_MEANINGS: Mapping[str, str] = {
    "no-duplicate-awards": "no student is awarded the same badge twice",
    "no-unearned-awards": "every award went to a student who earned it",
    "members-match-enrollments": "each group's members are the course's active students",
    "earned-implies-awarded": "every badge a student earned has been awarded",
    "leaderboard-matches-awards": "the leaderboard agrees with the awards",
    "course-freshness": "every course completes a sync within the freshness bound",
    "update-now-repairs": "one \u201cUpdate now\u201d repairs its course at once",
}

PHASES: Mapping[str, str] = {
    "safety": "while faults were being injected (safety phase)",
    "liveness": "after the faults stopped (liveness phase)",
    "quiescence": "once the world should have converged (quiescence)",
}

# Timeline kinds, in legend order, with what each means; any other kind is shown as "other".
KINDS: Mapping[str, str] = {
    "violation": "an invariant broke here",
    "fault": "a fault the simulator injected",
    "crash": "the sync worker crashed and lost its memory",
    "command": "a request the sync engine made",
    "activity": "something happened in Canvas",
    "update-now": "someone pressed \u201cUpdate now\u201d",
    "heal": "faults stopped",
    "link": "a course was linked to a Credentials group",
    "tick": "the clock advanced",
    "note": "a remark from the harness",
}

# Long traces keep this many rows at each end of a course's timeline, plus every row within
# WINDOW_SECONDS of the first violation, so the report stays small but never hides the cause.
HEAD_ROWS = 300
TAIL_ROWS = 300
WINDOW_SECONDS = 3600.0

CSS = """
:root { --fail: #a50e1e; --pass: #16703a; --ink: #1d1d1f; --muted: #5b5b66; --rule: #d6d6de; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--ink); margin: 0 auto; padding: 1.5rem 2rem 4rem; max-width: 80rem; }
h1 { font-size: 1.7rem; margin: 0 0 .25rem; }
h2 { font-size: 1.3rem; margin: 2.2rem 0 .6rem; border-bottom: 2px solid var(--rule); }
h3 { font-size: 1.05rem; margin: 1rem 0 .3rem; }
a { color: #1346a8; }
code, .time { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: .9em; }
header { display: grid; grid-template-columns: 1fr auto; gap: 1rem 2rem; align-items: start; }
.description { margin: 0 0 .8rem; color: var(--muted); font-size: 1.05rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0; }
dl.facts dt { font-weight: 600; color: var(--muted); }
dl.facts dd { margin: 0; }
.verdict { font-size: 2.6rem; font-weight: 800; letter-spacing: .06em; padding: .4rem 1.4rem;
  border-radius: .5rem; color: #fff; text-align: center; }
.verdict.pass { background: var(--pass); }
.verdict.fail { background: var(--fail); }
.verdict.unknown { background: var(--muted); }
.jump { display: block; margin-top: .5rem; text-align: center; font-weight: 600; }
nav ul { margin: .3rem 0 0; padding-left: 1.2rem; columns: 2; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; }
th, td { border: 1px solid var(--rule); padding: .3rem .5rem; text-align: left;
  vertical-align: top; }
thead th { background: #eef0f4; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.detail { overflow-wrap: anywhere; }
td.time { white-space: nowrap; }
table.timeline { table-layout: fixed; }
table.timeline th:nth-child(1) { width: 9rem; }
table.timeline th:nth-child(2) { width: 9.5rem; }
.holds { color: var(--pass); font-weight: 700; white-space: nowrap; }
.broken { color: var(--fail); font-weight: 800; white-space: nowrap; }
tr.broken-invariant td { background: #fff4f4; }
.meaning { display: block; color: var(--muted); font-size: .85em; }
.iso { display: block; color: var(--muted); font-size: .85em; }
ul.faults { margin: 0; padding-left: 1.1rem; }
.what-happened { border-left: 6px solid var(--fail); background: #fff4f4; padding: .6rem 1rem; }
.what-happened.ok { border-color: var(--pass); background: #f1faf4; }
ul.legend { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .4rem .8rem; }
ul.legend li { font-size: .9em; }
.swatch { display: inline-block; padding: 0 .45rem; border: 1px solid var(--rule);
  border-radius: .25rem; font-weight: 600; }
.kind-violation { background: #ffd9d9; }
.kind-violation td:first-child, .swatch.kind-violation { border-left: 6px solid var(--fail); }
tr.kind-violation td { font-weight: 700; }
.kind-fault { background: #ffecd2; }
.kind-crash { background: #f7c6c6; }
tr.kind-crash td { font-weight: 600; }
.kind-command { background: #eceaf8; }
.kind-activity { background: #e3f0fd; }
.kind-update-now { background: #d9f2f2; }
.kind-heal { background: #e2f5dc; }
.kind-link { background: #f2f2f2; }
.kind-tick { color: var(--muted); }
.kind-note { font-style: italic; }
.kind-other { background: #fff; }
tr.first-violation td { border-top: 3px solid var(--fail); border-bottom: 3px solid var(--fail); }
tr.first-violation .marker { display: inline-block; margin-left: .4rem; padding: 0 .35rem;
  background: var(--fail); color: #fff; border-radius: .2rem; font-size: .8em; }
tr.omitted td { text-align: center; color: var(--muted); font-style: italic; background: #fafafa; }
:target { scroll-margin-top: 3rem; }
"""


@dataclass(frozen=True)
class _Row:
    """One timeline row: a trace entry, or a violation inserted at its time."""

    at: float
    kind: str
    detail: str
    first: bool = False


def render_html(run: Mapping[str, Any]) -> str:
    """Render one run record as a complete, self-contained HTML5 document.

    ``run`` follows the run-record schema (scenario, verdict, invariants, violations, courses,
    trace, ...); unknown keys are ignored and ``symptom`` may be missing. The first violation
    is the first entry of ``violations``: it is explained in words and highlighted in its
    course's timeline (``id="first-violation"``).
    """
    violations: Sequence[Mapping[str, Any]] = run["violations"]
    first = violations[0] if violations else None
    start = float(run["started_at"])
    verdict = str(run["verdict"])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        # Enforces the no-network rule in the browser, not just by convention.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>credsync report: {_e(run['scenario'])} \u2014 {_e(verdict)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        _header(run, has_anchor=first is not None or verdict == "FAIL"),
        _contents(run),
        _invariant_table(run, start),
        _what_happened(run, first, start),
        _course_table(run, start),
        _quarantine(run),
        _timelines(run, first, start),
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def _e(value: object) -> str:
    """Escape any record value for text or a quoted attribute."""
    return html.escape(str(value), quote=True)


def _offset(at: float, start: float) -> str:
    """Virtual time as an offset from the run's start, e.g. ``+1d 02:10:00``."""
    delta = at - start
    sign = "-" if delta < 0 else "+"
    days, rest = divmod(int(abs(delta)), 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    day_part = f"{days}d " if days else ""
    return f"{sign}{day_part}{hours:02}:{minutes:02}:{seconds:02}"


def _iso(at: float) -> str:
    """Virtual time as a UTC ISO 8601 timestamp, for lining up with logs."""
    stamp = datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="seconds")
    return stamp.replace("+00:00", "Z")


def _time(at: float, start: float, *, with_iso: bool = False) -> str:
    """A ``<time>`` element showing the offset; the ISO time is a tooltip or a second line."""
    iso = _iso(at)
    offset = f'<time datetime="{iso}" title="{iso}">{_e(_offset(at, start))}</time>'
    return offset + (f'<span class="iso">{iso}</span>' if with_iso else "")


def _course_label(run: Mapping[str, Any], course_id: object) -> str:
    """``course 2 (Biology 101)``, or just ``course 2`` when the course has no summary."""
    names = {course["course_id"]: course.get("name") for course in run["courses"]}
    name = names.get(course_id)
    return f"course {_e(course_id)}" + (f" ({_e(name)})" if name else "")


def _symptom(run: Mapping[str, Any]) -> str | None:
    """The known symptom in words, or None when the scenario names none."""
    number = run.get("symptom")
    if number is None:
        return None
    words = SYMPTOMS.get(number, "not one of the five known symptoms")
    return f"{_e(number)}: {_e(words)}"


def _header(run: Mapping[str, Any], *, has_anchor: bool) -> str:
    """Scenario, settings and the verdict as a word on a coloured block (never colour alone)."""
    verdict = str(run["verdict"])
    css = {"PASS": "pass", "FAIL": "fail"}.get(verdict, "unknown")
    facts = [
        ("Known symptom", _symptom(run)),
        ("Engine", _e(run["engine"])),
        ("Seed", _e(run["seed"])),
        ("Transport", _e(run["transport"])),
        ("Started", f"{_iso(float(run['started_at']))} (virtual time)"),
        ("Length", _e(_offset(float(run["ended_at"]), float(run["started_at"]))[1:])),
    ]
    rows = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts if value)
    jump = '<a class="jump" href="#first-violation">Go to the first violation</a>'
    return (
        "<header><div>"
        f"<h1>Scenario: {_e(run['scenario'])}</h1>"
        f'<p class="description">{_e(run["description"])}</p>'
        f'<dl class="facts">{rows}</dl></div>'
        f'<div><div class="verdict {css}" role="status">{_e(verdict)}</div>'
        f"{jump if has_anchor else ''}</div></header>"
    )


def _contents(run: Mapping[str, Any]) -> str:
    """Links to every part of the page, so a long report is easy to move around in."""
    links = [
        ("invariants", "Invariants"),
        ("what-happened", "What happened"),
        ("courses", "Courses"),
        ("quarantine", "Quarantined records"),
        ("legend", "Timeline legend"),
    ]
    links += [(f"course-{_e(cid)}", f"Timeline: {_course_label(run, cid)}") for cid in _ids(run)]
    links.append(("world-wide", "Timeline: world-wide events"))
    items = "".join(f'<li><a href="#{anchor}">{text}</a></li>' for anchor, text in links)
    return f"<nav><h2>Contents</h2><ul>{items}</ul></nav>"


def _invariant_table(run: Mapping[str, Any], start: float) -> str:
    """Every invariant checked, whether it held, and where each broken one first broke."""
    counts = Counter(violation["invariant"] for violation in run["violations"])
    rows = [_invariant_row(run, invariant, counts, start) for invariant in run["invariants"]]
    return (
        '<section id="invariants"><h2>Invariants</h2>'
        '<table id="invariant-table"><thead><tr><th>Invariant</th><th>Result</th>'
        "<th>Violations</th><th>Course</th><th>User</th><th>First broken at</th>"
        "<th>Detail</th><th>Faults before it</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _invariant_row(
    run: Mapping[str, Any], invariant: Mapping[str, Any], counts: Counter[Any], start: float
) -> str:
    """One invariant: name and meaning, holds/BROKEN, and its first violation if any."""
    name = invariant["name"]
    meaning = INVARIANT_MEANINGS.get(name)
    label = f"<code>{_e(name)}</code>" + (
        f'<span class="meaning">{_e(meaning)}</span>' if meaning else ""
    )
    if invariant["holds"]:
        css, result = "", '<td class="holds">\u2713 holds</td>'
    else:
        css, result = ' class="broken-invariant"', '<td class="broken">\u2717 BROKEN</td>'
    head = f'<tr{css} data-invariant="{_e(name)}"><td>{label}</td>{result}'
    head += f'<td class="num">{counts[name]}</td>'
    found = invariant.get("first")
    if not found:
        return f'{head}<td colspan="5"></td></tr>'
    return (
        head + f"<td>{_course_label(run, found['course_id'])}</td><td>{_e(found['user_id'])}</td>"
        f'<td class="time">{_time(float(found["at"]), start, with_iso=True)}</td>'
        f'<td class="detail">{_e(found["detail"])}</td>'
        f"<td>{_fault_list(found.get('faults_before') or [])}</td></tr>"
    )


def _fault_list(faults: Sequence[object]) -> str:
    """Faults as a bulleted list, or a plain "none recorded"."""
    if not faults:
        return "none recorded"
    return '<ul class="faults">' + "".join(f"<li>{_e(f)}</li>" for f in faults) + "</ul>"


def _faults_before(run: Mapping[str, Any], violation: Mapping[str, Any]) -> Sequence[object]:
    """The faults the harness recorded before this invariant first broke."""
    for invariant in run["invariants"]:
        if invariant["name"] == violation["invariant"] and invariant.get("first"):
            return list(invariant["first"].get("faults_before") or [])
    return []


def _what_happened(run: Mapping[str, Any], first: Mapping[str, Any] | None, start: float) -> str:
    """The first violation as one plain sentence, with the faults that preceded it."""
    title = '<section id="what-happened"><h2>What happened</h2>'
    if first is None and run["verdict"] == "FAIL":
        return (
            f'{title}<p class="what-happened" id="first-violation">The run failed, but its '
            "record lists no violation: check the invariant table and the timelines.</p>"
            "</section>"
        )
    if first is None:
        return f'{title}<p class="what-happened ok">Every invariant held.</p></section>'
    name = first["invariant"]
    meaning = INVARIANT_MEANINGS.get(name)
    promise = f" (it promises that {_e(meaning)})" if meaning else ""
    phase = PHASES.get(first.get("phase") or "", f"in phase {first.get('phase')}")
    faults = _faults_before(run, first)
    after = (
        f"It came after these faults:</p>{_fault_list(faults)}"
        if faults
        else "No fault was recorded before it.</p>"
    )
    return (
        f'{title}<div class="what-happened"><p>At {_time(float(first["at"]), start)} '
        f"({_iso(float(first['at']))}), {_e(phase)}, invariant <code>{_e(name)}</code>{promise} "
        f"broke for {_course_label(run, first.get('course_id'))}, "
        f"user {_e(first.get('user_id'))}: <strong>{_e(first['detail'])}</strong>. "
        f'<a href="#first-violation">See it in the timeline.</a></p><p>{after}</div></section>'
    )


def _course_table(run: Mapping[str, Any], start: float) -> str:
    """Each course's final counts, so a gap (say, earned > awards) shows at a glance."""
    rows = []
    for course in run["courses"]:
        synced = course.get("last_synced")
        when = "never" if synced is None else _time(float(synced), start, with_iso=True)
        numbers = "".join(
            f'<td class="num">{_e(course[key])}</td>'
            for key in ("students", "members", "earned", "awards")
        )
        rows.append(
            f'<tr><td><a href="#course-{_e(course["course_id"])}">{_e(course["course_id"])}</a>'
            f'</td><td>{_e(course["name"])}</td>{numbers}<td class="time">{when}</td></tr>'
        )
    return (
        '<section id="courses"><h2>Courses</h2><table id="course-table"><thead><tr>'
        "<th>Course</th><th>Name</th><th>Students</th><th>Members</th><th>Earned</th>"
        "<th>Awards</th><th>Last synced</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _quarantine(run: Mapping[str, Any]) -> str:
    """Records each course's last round left out, and why: the rest of the course synced, so
    nothing else on the page shows that a student's data was unreadable. Records written
    before courses carried ``quarantined`` show nothing rather than failing."""
    parts = []
    for course in run["courses"]:
        records = course.get("quarantined") or []
        title = f"<h3>{_course_label(run, course['course_id'])}</h3>"
        if not records:
            parts.append(f"{title}<p>No record quarantined.</p>")
            continue
        rows = "".join(
            f'<tr><td><code>{_e(q["resource"])}</code></td><td class="detail">{_e(q["reason"])}'
            "</td></tr>"
            for q in records
        )
        parts.append(
            f'{title}<table class="quarantine" data-course="{_e(course["course_id"])}"><thead>'
            f"<tr><th>Resource</th><th>Reason</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    return (
        '<section id="quarantine"><h2>Quarantined records</h2>'
        "<p>Records the sync could not read in each course's last round; the rest of the "
        f"course synced without them.</p>{''.join(parts)}</section>"
    )


def _ids(run: Mapping[str, Any]) -> list[Any]:
    """Course ids with a timeline: summary courses first, then any others as they appear."""
    ids = [course["course_id"] for course in run["courses"]]
    others = (entry.get("course_id") for entry in (*run["trace"], *run["violations"]))
    return list(dict.fromkeys([*ids, *(cid for cid in others if cid is not None)]))


def _timelines(run: Mapping[str, Any], first: Mapping[str, Any] | None, start: float) -> str:
    """A legend, then one timeline per course and one for world-wide events."""
    traces: dict[Any, list[Mapping[str, Any]]] = {cid: [] for cid in [*_ids(run), None]}
    for entry in run["trace"]:
        traces[entry.get("course_id")].append(entry)
    found: dict[Any, list[_Row]] = {cid: [] for cid in traces}
    for index, violation in enumerate(run["violations"]):
        found[violation.get("course_id")].append(_violation_row(violation, first=index == 0))
    window = None if first is None else float(first["at"])
    sections = [_timeline(run, cid, traces[cid], found[cid], window, start) for cid in traces]
    return _legend() + "".join(sections)


def _legend() -> str:
    """What the row colours mean; every row also names its kind in words."""
    items = "".join(
        f'<li><span class="swatch kind-{kind}">{kind}</span> {_e(meaning)}</li>'
        for kind, meaning in KINDS.items()
    )
    return (
        '<section id="legend"><h2>Timeline legend</h2>'
        "<p>Times are virtual, shown as an offset from the start of the run; hover over one "
        "for the UTC time. World-wide events (crashes, heals) have their own timeline at the "
        f'end.</p><ul class="legend">{items}</ul></section>'
    )


def _timeline(
    run: Mapping[str, Any],
    course_id: Any,
    trace: Sequence[Mapping[str, Any]],
    violations: Sequence[_Row],
    window: float | None,
    start: float,
) -> str:
    """One course's (or the world's) history, with its violations merged in at their time."""
    rows = list(_merged_rows(trace, violations))
    body = "".join(_render_rows(rows, window, start)) or (
        '<tr class="omitted"><td colspan="3">No entries recorded.</td></tr>'
    )
    if course_id is None:
        anchor, title = "world-wide", "World-wide events"
    else:
        anchor, title = f"course-{_e(course_id)}", f"Timeline: {_course_label(run, course_id)}"
    return (
        f'<section id="{anchor}"><h2>{title}</h2>'
        '<table class="timeline"><thead><tr><th>Time</th><th>Kind</th><th>Detail</th></tr>'
        "</thead>"
        f"<tbody>{body}</tbody></table></section>"
    )


def _merged_rows(trace: Sequence[Mapping[str, Any]], violations: Sequence[_Row]) -> Iterator[_Row]:
    """Trace rows and violation rows in time order; a violation follows entries at its time."""
    entries = (_Row(float(e["at"]), str(e["kind"]), str(e.get("detail") or "")) for e in trace)
    broken = sorted(violations, key=lambda row: row.at)
    return heapq.merge(entries, broken, key=lambda row: row.at)


def _violation_row(violation: Mapping[str, Any], *, first: bool) -> _Row:
    """A violation as a timeline row naming the invariant, user and phase."""
    detail = (
        f"{violation['invariant']} broken for user {violation.get('user_id')}: "
        f"{violation['detail']} (phase: {violation.get('phase')})"
    )
    return _Row(float(violation["at"]), "violation", detail, first=first)


def _render_rows(rows: Sequence[_Row], window: float | None, start: float) -> Iterable[str]:
    """Table rows, with long stretches away from both ends and the violation elided."""
    keep = _kept(rows, window)
    skipped: list[_Row] = []
    for row, kept in zip(rows, keep, strict=True):
        if not kept:
            skipped.append(row)
            continue
        if skipped:
            yield _omitted_row(skipped, start)
            skipped = []
        yield _row_html(row, start)
    if skipped:
        yield _omitted_row(skipped, start)


def _kept(rows: Sequence[_Row], window: float | None) -> list[bool]:
    """Which rows to show: all of a short timeline; of a long one, both ends, every violation
    and everything within WINDOW_SECONDS of the first violation."""
    count = len(rows)
    if count <= HEAD_ROWS + TAIL_ROWS:
        return [True] * count
    return [
        index < HEAD_ROWS
        or index >= count - TAIL_ROWS
        or row.kind == "violation"
        or (window is not None and abs(row.at - window) <= WINDOW_SECONDS)
        for index, row in enumerate(rows)
    ]


def _omitted_row(skipped: Sequence[_Row], start: float) -> str:
    """The marker that stands in for entries left out, with how many and when."""
    span = f"{_offset(skipped[0].at, start)} to {_offset(skipped[-1].at, start)}"
    return (
        f'<tr class="omitted"><td colspan="3">\u2026 {len(skipped):,} entries omitted '
        f"({span}) \u2026</td></tr>"
    )


def _row_html(row: _Row, start: float) -> str:
    """One timeline row, classed by kind (unknown kinds share one neutral style)."""
    css = f"kind-{row.kind}" if row.kind in KINDS else "kind-other"
    if row.first:
        return (
            f'<tr id="first-violation" class="{css} first-violation">'
            f'<td class="time">{_time(row.at, start)}</td>'
            f'<td>{_e(row.kind)}<span class="marker">first</span></td>'
            f'<td class="detail">{_e(row.detail)}</td></tr>'
        )
    return (
        f'<tr class="{css}"><td class="time">{_time(row.at, start)}</td>'
        f'<td>{_e(row.kind)}</td><td class="detail">{_e(row.detail)}</td></tr>'
    )
