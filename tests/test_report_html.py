"""report.md and report.html, rendered from one template source (drplan/report/templates).

A real report comes from a sandbox drill of the example web shop with a rehearsed fault (so it has
skipped steps, a failed step and missed objectives); small documents built here test escaping and
the sandbox banner. The HTML is read with an HTML parser, compared word for word with the Markdown,
and rendered by a real browser (headless Chromium) to a PNG whose pixels are checked.
"""

from __future__ import annotations

import copy
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from drplan.durations import humanize
from drplan.report.evidence import to_html, to_markdown
from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # every test reads a sandbox drill run through the command line
CHROMIUM = "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason="Chromium is not installed (apt-get install chromium): the report is not rendered in a browser",
)


# --- a real report ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The evidence folder of a sandbox drill of plans/webshop.json whose carts restore fails."""
    cwd = tmp_path_factory.mktemp("drill")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "drplan", "drill", str(ROOT / "plans" / "webshop.json")),
            *("--sandbox", "--yes", "--inject", "carts.restore:fail", "--report-dir", "evidence"),
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
    )
    assert done.returncode == 1, done.stderr  # the injected failure fails the drill
    return cwd / "evidence"


@pytest.fixture(scope="module")
def report(evidence: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((evidence / "report.json").read_text())
    return document


# --- reading HTML and Markdown ----------------------------------------------------------------------

BLOCKS = {"h1", "h2", "p", "div", "ul", "li", "table", "thead", "tbody", "tr", "th", "td", "pre", "br"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element] = field(default_factory=list)
    text: list[str] = field(default_factory=list)  # all text inside, blocks separated by spaces

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def all_text(self) -> str:
        return " ".join("".join(self.text).split())

    def find(self, match: Callable[[Element], bool]) -> list[Element]:
        found = [self] if match(self) else []
        for child in self.children:
            found += child.find(match)
        return found


class Tree(HTMLParser):
    """A small DOM: elements with their attributes, children and text (style and script left out)."""

    VOID = {"meta", "br", "link", "img", "input", "hr"}

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]
        self.skip = 0
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "title"):
            self.skip += 1
        self._text(" " if tag in BLOCKS else "")
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title"):
            self.skip -= 1
        if tag in self.VOID:
            return
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()
        self._text(" " if tag in BLOCKS else "")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self._text(data)

    def _text(self, data: str) -> None:
        for element in self.stack:
            element.text.append(data)


def by_id(tree: Tree, id_: str) -> Element:
    (found,) = tree.root.find(lambda e: e.attrs.get("id") == id_)
    return found


def html_words(html: str) -> list[str]:
    """The words of the page's body up to the recovery graph (whose SVG and Mermaid differ)."""
    return Tree(html.split('<h2 id="graph">')[0]).root.all_text().split()


def markdown_words(markdown: str) -> list[str]:
    """The words a reader of the rendered Markdown sees, up to the recovery graph."""
    words = []
    for line in markdown.split("\n## Recovery graph")[0].splitlines():
        if re.fullmatch(r"\|( --- \|)+", line):
            continue  # a table's header separator
        line = re.sub(r"^(#+|>|-) ", "", line)
        line = re.sub(r"(?<!\\)\|", " ", line)  # table cell borders, not escaped pipes
        line = line.replace("**", "").replace("`", "").replace("<br>", " ")
        line = re.sub(r"\\(.)", r"\1", line)  # backslash escapes
        words += line.split()
    return words


def markdown_table(markdown: str, header: str) -> list[list[str]]:
    """The cells of the table whose header row starts with ``header``, as written."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


# --- the real report ---------------------------------------------------------------------------------


def test_the_html_says_word_for_word_what_the_markdown_says(evidence: Path) -> None:
    html = (evidence / "report.html").read_text()
    markdown = (evidence / "report.md").read_text()
    words = markdown_words(markdown)
    assert len(words) > 300  # the whole report, not an empty page
    assert html_words(html) == words


def test_the_html_carries_the_commit_version_exit_code_and_journal(
    evidence: Path, report: dict[str, Any]
) -> None:
    text = Tree((evidence / "report.html").read_text()).root.all_text()
    run, plan, env = report["run"], report["plan"], report["environment"]
    assert plan["git_commit"], "the test runs from a git checkout: the report has its commit"
    assert f"commit {plan['git_commit'][:12]}" in text
    assert f"drplan {env['drplan_version']}" in text
    assert f"exit code {run['exit_code']}" in text and run["exit_code"] == 1
    assert f"Journal: {run['journal']}" in text
    assert f"sha256 {plan['sha256'][:12]}" in text and run["id"] in text


def test_every_skipped_step_is_listed_with_its_reason(evidence: Path, report: dict[str, Any]) -> None:
    assert {s["key"] for s in report["skipped"]} == {"web.approve", "web.healthy", "web.scale"}
    items = by_id(Tree((evidence / "report.html").read_text()), "skipped").find(lambda e: e.tag == "li")
    assert [i.all_text() for i in items] == [
        f"{s['key']}: {s['reason'].replace('`', '')}" for s in report["skipped"]
    ]
    for item, skipped in zip(items, report["skipped"], strict=True):
        (code, *_) = item.find(lambda e: e.tag == "code")
        assert code.all_text() == skipped["key"]
    # The step skipped at run time because its input failed is in the timeline, with its reason.
    rows = by_id(Tree((evidence / "report.html").read_text()), "timeline-table").find(
        lambda e: e.tag == "tr" and "skipped" in e.classes
    )
    assert [r.all_text() for r in rows] == ["web.dns skipped - - 2m 0 carts.restore did not succeed"]


def test_missed_objectives_are_highlighted_and_only_they(evidence: Path, report: dict[str, Any]) -> None:
    tree = Tree((evidence / "report.html").read_text())
    rows = by_id(tree, "objectives-table").find(lambda e: e.tag == "tr")[1:]  # after the header
    missed = [r.all_text().split()[:2] for r in rows if "missed" in r.classes]
    services = report["objectives"]["services"]
    expected = [
        [scope, kind.upper()]
        for scope, o in [("plan", report["objectives"]["plan"])] + [(s["id"], s) for s in services]
        for kind in ("rto", "rpo")
        if o[kind]["met"] is False
    ]
    assert ["carts", "RTO"] in expected and ["plan", "RTO"] in expected
    assert missed == expected
    for row in rows:
        verdict = row.children[-1]
        if "missed" in row.classes:
            assert [e.tag for e in verdict.children] == ["strong"] and verdict.all_text() == "MISSED"
        else:
            assert verdict.all_text() in ("met", "-")
    (verdict,) = tree.root.find(lambda e: "verdict" in e.classes)
    assert verdict.classes == {"verdict", "fail"} and verdict.all_text().startswith("FAILED: ")
    # The Markdown highlights the same rows.
    table = markdown_table((evidence / "report.md").read_text(), "scope")
    assert [row[:2] for row in table if row[-1] == "**MISSED**"] == expected


def test_recovery_point_verdicts_agree_with_their_services(report: dict[str, Any]) -> None:
    """Both are judged on the reported (rounded) age: the web shop's assets are restored to
    exactly 1h before the start, its RPO objective, and used to show "met" for the service and
    "MISSED" for its recovery point when the unrounded age was a fraction of a millisecond over."""
    points = {p["step"]: p for p in report["recovery_points"]}
    assert points["assets.rewind"]["age_seconds"] == pytest.approx(3600, abs=1)
    for service in report["objectives"]["services"]:
        mine = [points[k] for k in service["steps"] if k in points]
        if mine and service["rpo"]["objective_seconds"] is not None:
            oldest = max(mine, key=lambda p: p["age_seconds"])
            assert oldest["age_seconds"] == service["rpo"]["measured_seconds"]
            assert oldest["met"] is service["rpo"]["met"], (service["id"], oldest)


def test_the_sandbox_banner_is_shown_only_for_sandbox_runs(report: dict[str, Any]) -> None:
    tree = Tree(to_html(report))
    (banner,) = tree.root.find(lambda e: "banner" in e.classes)
    assert "sandbox" in banner.classes and banner.all_text().startswith("Sandbox drill.")
    assert to_markdown(report).split("\n\n")[1].startswith("> **Sandbox drill.**")

    real = copy.deepcopy(report)
    real["environment"]["sandbox"] = False
    assert Tree(to_html(real)).root.find(lambda e: "banner" in e.classes) == []
    assert "Sandbox" not in to_markdown(real) and "sandbox" not in Tree(to_html(real)).root.all_text()


# --- escaping, on a document built here ---------------------------------------------------------------


def tricky(report: dict[str, Any]) -> dict[str, Any]:
    """The report with a step error and a skip reason that Markdown and HTML would misread."""
    document = copy.deepcopy(report)
    document["steps"][0]["error"] = "AccessDenied | <script>alert(1)</script> on `a|b`\nsecond line"
    document["skipped"][0]["reason"] = "needs <b>approval</b> & a `--approve` flag"
    return document


def test_html_escapes_every_value(report: dict[str, Any]) -> None:
    html = to_html(tricky(report))
    assert "<script>" not in html and "<b>approval" not in html
    tree = Tree(html)
    assert tree.root.find(lambda e: e.tag in ("script", "b")) == []
    first = by_id(tree, "timeline-table").find(lambda e: e.tag == "tr")[1]
    detail = first.children[-1]
    assert detail.all_text() == "AccessDenied | <script>alert(1)</script> on a|b second line"
    assert [c.all_text() for c in detail.find(lambda e: e.tag == "code")] == ["a|b"]
    assert by_id(tree, "skipped").children[0].all_text().endswith("needs <b>approval</b> & a --approve flag")


def test_markdown_escapes_table_pipes_tags_and_line_breaks(report: dict[str, Any]) -> None:
    document = tricky(report)
    markdown = to_markdown(document)
    rows = markdown_table(markdown, "step")
    assert all(len(row) == 7 for row in rows)  # the pipes in the error did not add cells
    assert rows[0][-1] == r"AccessDenied \| \<script>alert(1)\</script> on `a\|b`<br>second line"
    assert r"- `web.approve`: needs \<b>approval\</b> & a `--approve` flag" in markdown
    assert html_words(to_html(document)) == markdown_words(markdown)


def test_interruptions_problems_unverified_checks_leftovers_and_history_reach_both(
    report: dict[str, Any],
) -> None:
    document = copy.deepcopy(report)
    document["run"].update(status="interrupted", interrupted=True, stop_reason="SIGTERM", exit_code=3)
    document["run"]["problems"] = ["journal: disk full at /var/lib/drplan"]
    document["verdict"]["unverified"] = [{"key": "web.healthy", "reason": "shop.example.com is not emulated"}]
    document["cleanup"].update(status="incomplete", failed_steps=["orders-db.restore"])
    document["cleanup"]["resources"][0].update(deleted=False, verified_gone_at=None)
    document["objectives"]["services"][0]["recent_rto"] = [{"run_id": "0badc0de", "rto_seconds": 1500.0}]
    markdown, html = to_markdown(document), to_html(document)
    assert html_words(html) == markdown_words(markdown)
    tree = Tree(html)
    ids = [e.attrs["id"] for e in tree.root.find(lambda e: "id" in e.attrs)]
    assert len(ids) == len(set(ids)), ids
    text = tree.root.all_text()
    assert "interrupted (SIGTERM)" in text and "exit code 3" in text
    assert by_id(tree, "problems-list").all_text() == "journal: disk full at /var/lib/drplan"
    assert by_id(tree, "unverified").all_text() == "web.healthy: shop.example.com is not emulated"
    assert "could not undo orders-db.restore" in text
    (left,) = by_id(tree, "cleanup-table").find(lambda e: "remains" in e.classes)
    assert (
        left.all_text().split()[-1] == "NO" and document["cleanup"]["resources"][0]["id"] in left.all_text()
    )
    measured = humanize(document["objectives"]["services"][0]["rto"]["measured_seconds"])
    history = by_id(tree, "recent-rto").find(lambda e: e.tag == "tr")[1]
    assert history.all_text() == f"orders-db 27m 25m {measured}"


def tables(html: str) -> list[list[list[str]]]:
    """Every table of a page: its rows, each a list of cell texts."""
    return [
        [[cell.all_text() for cell in row.children] for row in table.find(lambda e: e.tag == "tr")]
        for table in Tree(html).root.find(lambda e: e.tag == "table")
    ]


@pytest.mark.parametrize("tricky_values", [False, True], ids=["drill", "tricky-values"])
def test_a_markdown_renderer_reads_the_same_tables_as_the_html(
    report: dict[str, Any], tricky_values: bool
) -> None:
    """report.md as a CommonMark renderer with GFM tables reads it (markdown-it-py, which rich
    brings) has the same tables, cell for cell, as report.html: the escaping holds."""
    from markdown_it import MarkdownIt

    document = tricky(report) if tricky_values else report
    rendered = MarkdownIt("commonmark").enable("table").render(to_markdown(document))
    expected = tables(to_html(document))
    assert len(expected) >= 5 and tables(rendered) == expected
    skipped = Tree(rendered).root.find(lambda e: e.tag == "li")
    assert [i.all_text() for i in skipped] == [
        i.all_text() for i in by_id(Tree(to_html(document)), "skipped").children
    ]


def test_a_report_without_optional_parts_renders(report: dict[str, Any]) -> None:
    """A recovery (no cleanup, no name suffix), no git commit, nothing skipped or injected."""
    document = copy.deepcopy(report)
    document["run"].update(mode="recover", name_suffix=None)
    document["plan"]["git_commit"] = None
    document["skipped"] = []
    document.pop("injected", None)
    document["cleanup"] = {"status": "not applicable", "resources": []}
    markdown, html = to_markdown(document), to_html(document)
    assert markdown.startswith("# Recovery report: webshop\n") and "commit" not in markdown
    assert "Not run in this" not in markdown and "Faults rehearsed" not in markdown
    assert html_words(html) == markdown_words(markdown)


# --- in a real browser ------------------------------------------------------------------------------


def png_rows(png: bytes, count: int) -> tuple[int, int, list[bytes]]:
    """Width, height and the first ``count`` rows of an 8-bit RGB(A) PNG, unfiltered (RFC 2083)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    chunks: dict[bytes, list[bytes]] = {}
    at = 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        kind = png[at + 4 : at + 8]
        chunks.setdefault(kind, []).append(png[at + 8 : at + 8 + length])
        at += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][0][:10])
    assert depth == 8 and colour in (2, 6), (depth, colour)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(chunks[b"IDAT"]))
    stride = width * bpp
    assert len(raw) == height * (stride + 1)
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(min(count, height)):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        rows.append(bytes(line) if bpp == 3 else bytes(b for j, b in enumerate(line) if j % 4 != 3))
        previous = line
    return width, height, rows


def colours(rows: list[bytes]) -> set[tuple[int, int, int]]:
    return {(row[i], row[i + 1], row[i + 2]) for row in rows for i in range(0, len(row), 3)}


@pytest.mark.browser
@needs_chromium
def test_chromium_renders_the_report(evidence: Path, tmp_path: Path) -> None:
    shot = tmp_path / "r.png"
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            (evidence / "report.html").resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    width, height, rows = png_rows(shot.read_bytes(), 450)
    assert (width, height) == (1200, 2000)
    assert len(set(rows)) > 50, "the page rendered blank (one flat colour)"
    seen = colours(rows)
    # The stylesheet was applied: the sandbox banner, the failed verdict's background and the red
    # of its text are on screen near the top of the page.
    assert (0xFF, 0xF8, 0xC5) in seen, "no sandbox banner"
    assert (0xFF, 0xEB, 0xE9) in seen, "no failed-verdict highlight"
    assert (0xCF, 0x22, 0x2E) in seen, "no red verdict text"
