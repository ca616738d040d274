"""The guides in docs/ stay true: the tutorial, troubleshooting, the first real drill and the IAM page.

- docs/tutorial.md builds docs/tutorial/booking.json step by step. Its JSON blocks are marked with an
  HTML comment on the line before the fence, ``<!-- tutorial: STEP ACTION [POINTER] [expect=CODES] -->``:

  ``init``
      the whole plan ``drplan init`` writes (checked against a fresh ``drplan init``);
  ``merge``
      top-level properties added to the plan, or replacing what it had;
  ``set POINTER``
      the value at a JSON pointer (RFC 6901), added or replaced;
  ``final``
      the whole plan at the end: equal to what the steps assembled, and to docs/tutorial/booking.json.

  After every block the assembled plan is checked with ``drplan validate``: its findings must be
  exactly the codes of ``expect=`` (none without it). Console blocks marked
  ``<!-- tutorial: STEP console -->`` are run against the plan as assembled so far; every line they
  show (``...`` stands for lines left out) must be a line of the real output, in order.
- docs/troubleshooting.md and docs/first-real-drill.md quote drplan's messages in ``text`` and
  ``console`` blocks; the fixed part of each ``drplan: error:``, ``hint:`` and ``drplan: warning:``
  line must still be in drplan's source (or in a real run's output), so the pages say what drplan says.
- docs/iam.md's generated section equals a fresh ``python -m drplan.report.iampage``.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import ROOT

from drplan.cli import cli
from drplan.report import iampage

DOCS = ROOT / "docs"
TUTORIAL = DOCS / "tutorial.md"
BOOKING = DOCS / "tutorial" / "booking.json"
PLAN_PATH = "plans/booking.json"  # where the tutorial keeps the plan, relative to the reader's folder
INIT_ARGS = ["init", "--region", "eu-west-1", "-o", PLAN_PATH]
GUIDES = ("tutorial.md", "troubleshooting.md", "first-real-drill.md", "iam.md", "README.md")

MARKER = re.compile(
    r"<!-- tutorial: (?P<step>\S+) (?P<action>init|merge|set|final|console)(?P<rest>[^>]*)-->"
)


@dataclass(frozen=True)
class Block:
    step: str
    action: str
    pointer: str
    expect: frozenset[str]
    lang: str
    text: str
    line: int  # 1-based line of the marker, for messages

    def where(self) -> str:
        return f"docs/tutorial.md:{self.line} ({self.step} {self.action} {self.pointer})".rstrip()


def tutorial_blocks(markdown: str) -> list[Block]:
    """Every marked code block of the tutorial, in order."""
    lines = markdown.splitlines()
    blocks = []
    for i, line in enumerate(lines):
        match = MARKER.fullmatch(line.strip())
        if not match:
            continue
        fence = lines[i + 1] if i + 1 < len(lines) else ""
        assert fence.startswith("```"), f"docs/tutorial.md:{i + 1}: a marker must be followed by a fence"
        end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
        rest = match["rest"].split()
        expect = next((r.removeprefix("expect=") for r in rest if r.startswith("expect=")), "")
        pointer = next((r for r in rest if r.startswith("/")), "")
        blocks.append(
            Block(
                step=match["step"],
                action=match["action"],
                pointer=pointer,
                expect=frozenset(c for c in expect.split(",") if c),
                lang=fence[3:].strip(),
                text="\n".join(lines[i + 2 : end]) + "\n",
                line=i + 1,
            )
        )
    return blocks


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def set_pointer(document: dict[str, Any], pointer: str, value: Any) -> None:
    """Set ``pointer`` (RFC 6901) in ``document`` to ``value``: a new key goes last, an existing
    one keeps its place, as an editor would leave it."""
    *parents, last = [_unescape(t) for t in pointer.split("/")[1:]]
    node: Any = document
    for token in parents:
        node = node[int(token)] if isinstance(node, list) else node[token]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def merge(plan: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top``'s properties replace the plan's; new ones go before ``services``, as an editor
    adding them at the top of the file would leave them."""
    merged: dict[str, Any] = {}
    for key, value in plan.items():
        if key == "services":
            merged.update({k: v for k, v in top.items() if k not in plan})
        merged[key] = top.get(key, value)
    merged.update({k: v for k, v in top.items() if k not in merged})
    return merged


def plan_text(plan: dict[str, Any]) -> str:
    """The plan file as the reader has it: laid out as ``drplan init`` writes plans."""
    return json.dumps(plan, indent=2, ensure_ascii=False) + "\n"


@dataclass
class State:
    """A plan as the tutorial has built it so far, after one of its blocks."""

    block: Block
    plan: dict[str, Any] | None


def assemble(blocks: list[Block]) -> list[State]:
    """Apply the JSON blocks in order; one state per block (console blocks see the plan so far)."""
    plan: dict[str, Any] | None = None
    states = []
    for block in blocks:
        if block.action in ("init", "final"):
            plan = json.loads(block.text)
        elif block.action == "merge":
            assert plan is not None, f"{block.where()}: nothing to merge into yet"
            plan = merge(plan, json.loads(block.text))
        elif block.action == "set":
            assert plan is not None and block.pointer, f"{block.where()}: needs a plan and a pointer"
            set_pointer(plan, block.pointer, json.loads(block.text))
        states.append(State(block, json.loads(json.dumps(plan)) if plan is not None else None))
    return states


def run_drplan(args: list[str], folder: Path) -> tuple[int, str]:
    """``drplan ARGS`` in ``folder``, as the reader runs it: (exit code, standard output and error)."""
    import os

    here = Path.cwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(cli, args)
    finally:
        os.chdir(here)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"drplan {' '.join(args)} raised {result.exception!r}\n{result.output}")
    return result.exit_code, result.output


def write_plan(folder: Path, plan: dict[str, Any]) -> None:
    path = folder / PLAN_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(plan_text(plan), encoding="utf-8")


def shown_lines_missing(shown: str, real: str) -> list[str]:
    """The lines of ``shown`` (``...`` skipped) that are not lines of ``real`` in the same order."""
    real_lines = [line.rstrip() for line in real.splitlines()]
    missing = []
    at = 0
    for line in shown.splitlines():
        line = line.rstrip()
        if not line or line.strip() == "...":
            continue
        try:
            at = real_lines.index(line, at) + 1
        except ValueError:
            missing.append(line)
    return missing


def console_commands(text: str) -> list[tuple[list[str], str]]:
    """``$ drplan ...`` commands of a console block with the output shown after each."""
    out: list[tuple[list[str], str]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            words = shlex.split(line[2:].split(" | ", 1)[0])
            assert words[0] == "drplan", f"only drplan commands are run: {line}"
            out.append((words[1:], ""))
        elif out:
            out[-1] = (out[-1][0], out[-1][1] + line + "\n")
    return out


BLOCKS = tutorial_blocks(TUTORIAL.read_text(encoding="utf-8"))
STATES = assemble(BLOCKS)


# --- the tutorial ----------------------------------------------------------------------------------


def test_the_tutorial_has_its_steps() -> None:
    actions = [b.action for b in BLOCKS]
    assert actions[0] == "console" and actions[1] == "init", "it starts with drplan init"
    assert actions[-1] == "final"
    assert actions.count("final") == 1 and actions.count("init") == 1
    assert {"merge", "set", "console"} <= set(actions)
    assert any(b.expect and b.action != "console" for b in BLOCKS), "a step shows a real finding"


def test_the_init_block_is_what_drplan_init_writes(tmp_path: Path) -> None:
    code, output = run_drplan(INIT_ARGS, tmp_path)
    assert code == 0, output
    written = json.loads((tmp_path / PLAN_PATH).read_text(encoding="utf-8"))
    init = next(b for b in BLOCKS if b.action == "init")
    assert json.loads(init.text) == written, f"{init.where()} is not what `drplan init` writes now"


@pytest.mark.parametrize(
    "state",
    [s for s in STATES if s.block.action != "console"],
    ids=lambda s: f"{s.block.step}-{s.block.line}",
)
def test_each_step_validates_with_the_findings_it_shows(state: State, tmp_path: Path) -> None:
    assert state.plan is not None
    write_plan(tmp_path, state.plan)
    code, output = run_drplan(["validate", "--format", "json", PLAN_PATH], tmp_path)
    report = json.loads(output[output.index("{") :])
    found = {d["code"] for d in report["diagnostics"]}
    assert found == set(state.block.expect), f"{state.block.where()}: drplan validate finds {found}\n{output}"
    errors = any(d["severity"] == "error" for d in report["diagnostics"])
    assert code == (1 if errors else 0), output


@pytest.mark.parametrize(
    "state",
    [s for s in STATES if s.block.action == "console"],
    ids=lambda s: f"{s.block.step}-{s.block.line}",
)
def test_each_console_block_shows_real_output(state: State, tmp_path: Path) -> None:
    if state.plan is not None:
        write_plan(tmp_path, state.plan)
    for args, shown in console_commands(state.block.text):
        if args[0] in ("drill", "graph"):
            continue  # the drill is test_the_final_plan_drills_in_the_sandbox; graph needs Graphviz
        _, output = run_drplan(args, tmp_path)
        missing = shown_lines_missing(shown, output)
        assert not missing, (
            f"{state.block.where()}: drplan {' '.join(args)} does not print {missing}\n{output}"
        )


def test_the_final_block_is_the_plan_file_and_what_the_steps_built() -> None:
    final = STATES[-1]
    assert final.block.action == "final"
    built = STATES[-2].plan
    assert json.loads(final.block.text) == built, "the last steps do not add up to the final plan"
    assert json.loads(BOOKING.read_text(encoding="utf-8")) == json.loads(final.block.text), (
        "docs/tutorial/booking.json differs from the tutorial's final plan"
    )
    code, output = run_drplan(["validate", str(BOOKING)], ROOT)
    assert code == 0 and "0 errors, 0 warnings" in output, output


def test_the_diagram_is_of_the_final_plan() -> None:
    """The SVG's title carries the plan file's SHA-256: redraw it after changing the plan."""
    import hashlib

    svg = (DOCS / "tutorial" / "booking.svg").read_text(encoding="utf-8")
    sha = hashlib.sha256(BOOKING.read_bytes()).hexdigest()[:12]
    assert sha in svg, (
        "docs/tutorial/booking.svg is out of date: run "
        "drplan graph docs/tutorial/booking.json -o docs/tutorial/booking.svg"
    )


@pytest.mark.slow
def test_the_final_plan_drills_in_the_sandbox(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "drplan",
        "drill",
        str(BOOKING),
        "--sandbox",
        "--yes",
        "--state-dir",
        "state",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert re.search(r"^PASSED: drill [0-9a-f]{8} of booking ", output, re.M), output[-3000:]
    assert "not verifiable here: app.healthy:" in output  # the tutorial explains this line
    (report_path,) = (tmp_path / "state").glob("runs/*/report/report.json")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["verdict"]["passed"] is True
    assert report["cleanup"]["status"] == "complete"
    assert {r["kind"] for r in report["cleanup"]["resources"]} == {
        "rds:db",
        "dynamodb:table",
        "s3:bucket",
        "route53:record",
    }
    assert all(r["deleted"] and r["verified_gone_at"] for r in report["cleanup"]["resources"])
    drill_block = next(b for b in BLOCKS if b.action == "console" and "drplan drill" in b.text)
    for line in ("Not run in a drill:", "  - app.approve: only in real recoveries"):
        assert line in output and line in drill_block.text


# --- quoted messages ----------------------------------------------------------------------------

#: Lines of the guides' text and console blocks that quote drplan's own messages.
QUOTED = re.compile(r"^(?:drplan: (?:error|warning|note): |\s*hint: )(.+)$")
SOURCE = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "drplan").rglob("*.py")))


def _code_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```(?:text|console)\n(.*?)^```", markdown, flags=re.S | re.M)


#: Texts of AWS and botocore, not drplan, that drplan passes on in its messages.
EXTERNAL = (
    "Unable to locate credentials",
    "Could not connect to the endpoint URL",
    "The config profile",
    "Invalid value for",  # click's words before drplan's own
)
#: A word that is a value a run puts into a message: a name, id, number, path, quote or code.
VALUE = re.compile(r"[0-9`'\"<>{}()/]|\w\.\w|\.\.\.|^[A-Z]{2,}\W*$")


def _fixed_parts(message: str) -> list[str]:
    """The parts of a quoted message drplan's source holds word for word: the words each clause
    (between ``: `` and ``; ``) starts with, up to the first value a run fills in."""
    parts = []
    for clause in re.split(r": |; ", message):
        words = []
        for word in clause.split():
            if VALUE.search(word):
                break
            words.append(word)
        text = " ".join(words)
        if len(words) >= 2 and len(text) >= 10 and not any(e in clause for e in EXTERNAL):
            parts.append(text)
    return parts


def _in_source(part: str) -> bool:
    """The part is in the source, or all but its first words are (a command's name, filled in)."""
    words = part.split()
    return any(" ".join(words[i:]) in SOURCE for i in range(min(3, max(1, len(words) - 3))))


def _missing_from_source(page: str) -> list[str]:
    missing = []
    for block in _code_blocks((DOCS / page).read_text(encoding="utf-8")):
        for line in block.splitlines():
            match = QUOTED.match(line)
            if match:
                missing += [part for part in _fixed_parts(match.group(1)) if not _in_source(part)]
    return missing


@pytest.mark.parametrize("page", ["troubleshooting.md", "first-real-drill.md"])
def test_quoted_messages_are_drplans_own(page: str) -> None:
    assert _code_blocks((DOCS / page).read_text(encoding="utf-8")), page
    assert not _missing_from_source(page), f"docs/{page} quotes messages drplan no longer prints"


def test_the_message_check_can_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "made-up.md"
    page.write_text(
        "```text\ndrplan: error: the flux capacitor is not charged enough\n```\n", encoding="utf-8"
    )
    monkeypatch.setattr(sys.modules[__name__], "DOCS", tmp_path)
    assert _missing_from_source("made-up.md") == ["the flux capacitor is not charged enough"]


# --- docs/iam.md ---------------------------------------------------------------------------------


def test_iam_page_is_a_fresh_render() -> None:
    assert iampage.main(["--check", str(DOCS / "iam.md")]) == 0, (
        "docs/iam.md is out of date: run python -m drplan.report.iampage docs/iam.md"
    )


def test_iam_page_check_mode_notices_a_stale_page(tmp_path: Path) -> None:
    stale = tmp_path / "iam.md"
    stale.write_text(f"# IAM\n\n{iampage.BEGIN}\nold\n{iampage.END}\nafter\n", encoding="utf-8")
    assert iampage.main(["--check", str(stale)]) == 1
    assert "old" in stale.read_text(encoding="utf-8")
    assert iampage.main([str(stale)]) == 0
    assert iampage.main(["--check", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8").endswith(f"{iampage.END}\nafter\n")
    (tmp_path / "none.md").write_text("no markers\n", encoding="utf-8")
    assert iampage.main(["--check", str(tmp_path / "none.md")]) == 2


def test_iam_page_policies_are_what_iam_policy_prints() -> None:
    """The page's JSON is `drplan iam-policy`'s output, byte for byte."""
    text = (DOCS / "iam.md").read_text(encoding="utf-8")
    plan = sorted((ROOT / "plans").glob("*.json"))[0]
    for mode in ("drill", "recover"):
        code, output = run_drplan(["iam-policy", str(plan), "--mode", mode], ROOT)
        assert code == 0
        policy = output[output.index("{") : output.rindex("}") + 1] + "\n"
        assert f"```json\n{policy}```" in text, (plan.name, mode)


# --- links ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", GUIDES)
def test_links_of_the_guides_land(page: str) -> None:
    from test_docs import anchors

    text = re.sub(r"```.*?```", "", (DOCS / page).read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (DOCS / path).resolve() if path else DOCS / page
        if not file.exists() or (
            anchor and file.suffix == ".md" and anchor not in anchors(file.read_text(encoding="utf-8"))
        ):
            broken.append(target)
    assert not broken, f"docs/{page}: broken links {broken}"


def test_readme_links_the_guides() -> None:
    text = (DOCS / "README.md").read_text(encoding="utf-8")
    for page in ("tutorial.md", "troubleshooting.md", "first-real-drill.md", "iam.md"):
        assert f"]({page})" in text, page
