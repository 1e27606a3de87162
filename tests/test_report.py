"""Tests for ``scenarios.report``: the HTML report QA people open when a sync run fails.

The structure is checked with the standard library's ``HTMLParser`` (built into a small tree
whose end tags must match, so malformed output fails); the rendering is checked in headless
Chromium, which CI installs. Records are built by hand here, so these tests depend on no other
project module.
"""

from __future__ import annotations

import copy
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from scenarios.report import render_html

START = 1_756_684_800.0  # 2025-09-01T00:00:00Z
CHROMIUM = Path("/usr/bin/chromium")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
NETWORK_PREFIXES = ("http://", "https://", "//")
XSS = "<script>alert('x&y')</script>"


@dataclass
class Node:
    """An element of the parsed page: enough of a DOM to query structure and text."""

    tag: str
    attrs: dict[str, str | None]
    children: list[Node | str] = field(default_factory=list)

    def iter(self) -> Iterator[Node]:
        """This element and every element below it, in document order."""
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str) -> list[Node]:
        return [node for node in self.iter() if node.tag == tag]

    def by_id(self, element_id: str) -> list[Node]:
        return [node for node in self.iter() if node.attrs.get("id") == element_id]

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())


class TreeBuilder(HTMLParser):
    """Builds a ``Node`` tree, failing on any end tag that does not close the open element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]
        self.doctype: str | None = None

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(page: str) -> Node:
    """Parse a whole document, requiring a doctype and every element closed."""
    builder = TreeBuilder()
    builder.feed(page)
    builder.close()
    assert builder.stack == [builder.root], "unclosed elements at the end of the document"
    assert builder.doctype is not None and builder.doctype.lower() == "doctype html"
    return builder.root


def make_run(**overrides: Any) -> dict[str, Any]:
    """A failing run of two courses: one award lost after a lost response, one crash."""
    first = {
        "at": START + 94_200,  # +1d 02:10:00
        "course_id": 2,
        "user_id": 17,
        "detail": "badge class B-2 earned but not awarded",
        "faults_before": ["t=+01:10:00 credentials IssueAssertion: lost_response"],
    }
    run: dict[str, Any] = {
        "scenario": "earned-not-awarded",
        "description": "An award whose response is lost is never issued again.",
        "symptom": 3,
        "engine": "legacy",
        "seed": 1,
        "transport": "memory",
        "verdict": "FAIL",
        "started_at": START,
        "ended_at": START + 2 * 86_400,
        "invariants": [
            {"name": "no-duplicate-awards", "holds": True, "first": None},
            {"name": "earned-implies-awarded", "holds": False, "first": first},
        ],
        "violations": [
            {
                "invariant": "earned-implies-awarded",
                "course_id": 2,
                "user_id": 17,
                "detail": "badge class B-2 earned but not awarded",
                "at": START + 94_200,
                "phase": "quiescence",
            },
            {
                "invariant": "earned-implies-awarded",
                "course_id": 3,
                "user_id": 4,
                "detail": "badge class B-3 earned but not awarded",
                "at": START + 94_200,
                "phase": "quiescence",
            },
        ],
        "courses": [
            {
                "course_id": 2,
                "name": "Biology 101",
                "students": 12,
                "members": 10,
                "earned": 5,
                "awards": 4,
                "last_synced": START + 94_000,
            },
            {
                "course_id": 3,
                "name": "Modules only",
                "students": 3,
                "members": 3,
                "earned": 1,
                "awards": 0,
                "last_synced": None,
            },
        ],
        "trace": [
            {"at": START, "kind": "link", "course_id": 2, "detail": "group G-2, 3 rules"},
            {"at": START, "kind": "link", "course_id": 3, "detail": "group G-3, 1 rule"},
            {
                "at": START + 4_200,
                "kind": "fault",
                "course_id": 2,
                "detail": "credentials IssueAssertion: lost_response",
            },
            {"at": START + 5_000, "kind": "crash", "course_id": None, "detail": "worker crashed"},
            {"at": START + 6_000, "kind": "command", "course_id": 2, "detail": "FetchCanvasPage"},
            {"at": START + 7_000, "kind": "activity", "course_id": 3, "detail": "grade posted"},
            {"at": START + 90_000, "kind": "heal", "course_id": None, "detail": "faults off"},
        ],
    }
    run.update(overrides)
    return run


def make_pass() -> dict[str, Any]:
    """The same run, with every invariant holding."""
    run = make_run(verdict="PASS", violations=[])
    for invariant in run["invariants"]:
        invariant.update(holds=True, first=None)
    return run


def invariant_rows(root: Node) -> dict[str, str]:
    """Invariant name to the text of its result cell, from the invariant table's body."""
    (table,) = root.by_id("invariant-table")
    (tbody,) = table.find_all("tbody")
    rows = tbody.find_all("tr")
    return {str(row.attrs["data-invariant"]): row.find_all("td")[1].text() for row in rows}


def timeline_rows(root: Node, section_id: str) -> list[Node]:
    (section,) = root.by_id(section_id)
    (tbody,) = section.find_all("tbody")
    return tbody.find_all("tr")


def test_document_has_one_title_and_a_section_per_course() -> None:
    root = parse(render_html(make_run()))

    (title,) = root.find_all("title")
    assert "earned-not-awarded" in title.text() and "FAIL" in title.text()
    section_ids = [s.attrs.get("id") for s in root.find_all("section")]
    assert {"course-2", "course-3", "world-wide"} <= set(section_ids)
    assert len(section_ids) == len(set(section_ids))
    assert {"link", "fault", "command"} <= {
        row.find_all("td")[1].text() for row in timeline_rows(root, "course-2")
    }
    assert "worker crashed" in root.by_id("world-wide")[0].text()


def test_header_shows_settings_symptom_and_verdict_as_a_word() -> None:
    root = parse(render_html(make_run()))

    (header,) = root.find_all("header")
    text = header.text()
    for expected in ("earned-not-awarded", "legacy", "memory", "An award whose response"):
        assert expected in text
    assert "badges missing, or Earned but never Awarded" in text
    (verdict,) = [n for n in header.iter() if "verdict" in n.classes()]
    assert verdict.text() == "FAIL" and "fail" in verdict.classes()
    assert any(a.attrs.get("href") == "#first-violation" for a in header.find_all("a"))


@pytest.mark.parametrize("record", [make_run(), make_pass()], ids=["fail", "pass"])
def test_invariant_table_lists_every_invariant_with_its_result(record: dict[str, Any]) -> None:
    rows = invariant_rows(parse(render_html(record)))

    assert list(rows) == [invariant["name"] for invariant in record["invariants"]]
    for invariant in record["invariants"]:
        result = rows[invariant["name"]]
        assert ("holds" in result) == invariant["holds"]
        assert ("BROKEN" in result) == (not invariant["holds"])


def test_broken_invariant_shows_its_first_violation_with_times_and_faults() -> None:
    root = parse(render_html(make_run()))

    (table,) = root.by_id("invariant-table")
    (row,) = [
        r for r in table.find_all("tr") if r.attrs.get("data-invariant") == "earned-implies-awarded"
    ]
    text = row.text()
    for expected in (
        "Biology 101",
        "17",
        "+1d 02:10:00",
        "2025-09-02T02:10:00Z",
        "badge class B-2 earned but not awarded",
        "lost_response",
    ):
        assert expected in text


def test_what_happened_explains_the_first_violation_in_words() -> None:
    root = parse(render_html(make_run()))

    (section,) = root.by_id("what-happened")
    text = " ".join(section.text().split())
    for expected in (
        "course 2 (Biology 101)",
        "user 17",
        "+1d 02:10:00",
        "earned-implies-awarded",
        "badge class B-2 earned but not awarded",
        "credentials IssueAssertion: lost_response",
        "quiescence",
    ):
        assert expected in text


def test_fail_has_exactly_one_first_violation_in_its_course_timeline() -> None:
    root = parse(render_html(make_run()))

    (marked,) = root.by_id("first-violation")
    assert marked.tag == "tr" and {"first-violation", "kind-violation"} <= marked.classes()
    assert "B-2" in marked.text()
    assert marked in timeline_rows(root, "course-2")
    # The second violation is a violation row too, but not the first one.
    (other,) = [r for r in timeline_rows(root, "course-3") if "kind-violation" in r.classes()]
    assert "first-violation" not in other.classes()


def test_violation_rows_sit_at_their_time_in_the_timeline() -> None:
    run = make_run()
    run["trace"].append({"at": START + 100_000, "kind": "tick", "course_id": 2, "detail": "late"})
    kinds = [
        row.find_all("td")[1].text() for row in timeline_rows(parse(render_html(run)), "course-2")
    ]

    assert kinds.index("violationfirst") == kinds.index("tick") - 1


def test_pass_has_no_first_violation() -> None:
    page = render_html(make_pass())
    root = parse(page)

    assert root.by_id("first-violation") == []
    assert "#first-violation" not in page
    (verdict,) = [n for n in root.iter() if "verdict" in n.classes()]
    assert verdict.text() == "PASS"


def test_fail_without_violations_still_anchors_the_header_link() -> None:
    root = parse(render_html(make_run(violations=[])))

    (marked,) = root.by_id("first-violation")
    assert "no violation" in marked.text()


def test_no_network_urls_anywhere() -> None:
    run = make_run()
    run["trace"][4]["detail"] = "GET https://canvas.example.edu/api/v1/courses/2/users"
    root = parse(render_html(run))

    for node in root.iter():
        for name in ("src", "href", "action", "poster", "data"):
            value = (node.attrs.get(name) or "").strip().lower()
            assert not value.startswith(NETWORK_PREFIXES), f"<{node.tag} {name}={value!r}>"
    assert root.find_all("script") == [] and root.find_all("link") == []
    assert "https://canvas.example.edu" in root.text()  # shown as text, never linked


def test_record_strings_are_escaped() -> None:
    run = make_run(scenario=XSS, description=XSS, engine=XSS, transport=XSS)
    run["courses"][0]["name"] = XSS
    run["invariants"][1]["first"]["detail"] = XSS
    run["invariants"][1]["first"]["faults_before"] = [XSS]
    run["violations"][0]["detail"] = XSS
    run["trace"].append(
        {"at": START + 1, "kind": '"><script>x()</script>', "course_id": 2, "detail": XSS}
    )
    page = render_html(run)
    root = parse(page)

    assert root.find_all("script") == []
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&amp;y&#x27;)&lt;/script&gt;" in page
    assert XSS in root.find_all("title")[0].text()  # the text survives, as text


def test_long_trace_is_truncated_but_keeps_both_ends_and_the_violation_window() -> None:
    step = 30.0
    trace = [
        {"at": START + i * step, "kind": "command", "course_id": 2, "detail": f"entry {i}"}
        for i in range(20_000)
    ]
    at = START + 10_000 * step
    run = make_run(trace=trace)
    run["violations"] = [{**run["violations"][0], "at": at}]
    page = render_html(run)
    details = {row.find_all("td")[-1].text() for row in timeline_rows(parse(page), "course-2")}

    assert len(details) < 2_000 and len(page) < 1_000_000
    assert {"entry 0", "entry 299", "entry 19700", "entry 19999"} <= details
    assert {f"entry {i}" for i in range(10_000 - 120, 10_000 + 121)} <= details  # +-1 hour
    assert not {"entry 300", "entry 5000", "entry 15000", "entry 19699"} & details
    omitted = [d for d in details if "entries omitted" in d]
    assert len(omitted) == 2 and all(d.startswith("\u2026") for d in omitted)


def test_short_trace_is_not_truncated() -> None:
    trace = [
        {"at": START + i, "kind": "activity", "course_id": 3, "detail": f"e{i}"} for i in range(600)
    ]
    rows = timeline_rows(parse(render_html(make_run(trace=trace))), "course-3")

    assert len(rows) == 600 + 1  # every entry plus the violation row


@pytest.mark.parametrize("symptom", ["absent", None])
def test_missing_symptom_and_unknown_keys(symptom: str | None) -> None:
    run = make_run(extra_key={"nested": [1, 2]}, symptom=symptom)
    if symptom == "absent":
        del run["symptom"]
    run["trace"][0]["unexpected"] = True
    root = parse(render_html(run))

    assert "Known symptom" not in root.text()
    assert len(root.find_all("title")) == 1


def test_course_table_and_times() -> None:
    root = parse(render_html(make_run()))

    (table,) = root.by_id("course-table")
    rows = table.find_all("tbody")[0].find_all("tr")
    assert [r.find_all("td")[1].text() for r in rows] == ["Biology 101", "Modules only"]
    assert "never" in rows[1].text()
    assert "+1d 02:06:40" in rows[0].text()


def test_render_does_not_modify_the_record() -> None:
    run = make_run()
    before = copy.deepcopy(run)
    render_html(run)

    assert run == before


def test_quarantined_records_are_listed_per_course_with_resource_and_reason() -> None:
    reason = "'score' must be a number or null, got 'lots'"
    run = make_run()
    run["courses"][0]["quarantined"] = [
        {"resource": "students/submissions", "reason": reason},
        {"resource": "users", "reason": XSS},
    ]
    root = parse(render_html(run))

    (section,) = root.by_id("quarantine")
    (table,) = section.find_all("table")
    assert table.attrs["data-course"] == "2"
    rows = [[td.text() for td in tr.find_all("td")] for tr in table.find_all("tr")[1:]]
    assert rows == [["students/submissions", reason], ["users", XSS]]
    assert [h.text() for h in section.find_all("h3")] == [
        "course 2 (Biology 101)",
        "course 3 (Modules only)",
    ]
    assert section.text().count("No record quarantined") == 1  # course 3
    assert any(a.attrs.get("href") == "#quarantine" for a in root.find_all("a"))


def test_records_without_quarantine_still_render() -> None:
    """Run records saved before courses carried ``quarantined`` render, showing none."""
    (section,) = parse(render_html(make_run())).by_id("quarantine")
    assert section.find_all("table") == []
    assert section.text().count("No record quarantined") == 2


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on its own profile, with everything that calls home turned off."""
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (Debian's chromium package)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must render the report")
        pytest.skip(message)
    report = tmp_path / "report.html"
    report.write_text(render_html(make_run()), encoding="utf-8")

    dumped = chromium("--dump-dom", report.as_uri(), profile=tmp_path / "profile-dom")
    assert dumped.returncode == 0, dumped.stderr
    root = parse("<!DOCTYPE html>" + dumped.stdout)
    (verdict,) = [n for n in root.iter() if "verdict" in n.classes()]
    assert verdict.text() == "FAIL"
    assert len(root.by_id("first-violation")) == 1

    shot = tmp_path / "shot.png"
    taken = chromium(
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        report.as_uri(),
        profile=tmp_path / "profile-shot",
    )
    assert taken.returncode == 0, taken.stderr
    png = shot.read_bytes()
    # A blank page of this size is about 12 KB; the rendered report is well over 100 KB.
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 40_000
