"""The user documentation in docs/ stays in step with the code it describes.

Generated parts must equal a fresh render (the plan format reference, the action catalogue);
every finding code has a section to link to (SARIF's ``helpUri`` points there); every command and
option of the CLI is documented; and links between the pages land on headings that exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import ROOT

from drplan.cli import cli
from drplan.diagnostics import RULES
from drplan.report import reference
from drplan.schema import plan_schema

DOCS = ROOT / "docs"
#: The pages owned by these docs (diagrams.md is written separately; its links are its own).
PAGES = (
    "plan-format.md",
    "validation.md",
    "cli.md",
    "drills.md",
    "ci.md",
    "README.md",
    "writing-actions.md",
    "notifications.md",
    "stepfunctions.md",
)


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())  # a link keeps its text
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading anchor of a page (outside code blocks), with GitHub's -1, -2 for repeats."""
    found: set[str] = set()
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        match = None if fenced else re.match(r"#{1,6} (.+)", line)
        if match:
            base = slug(match.group(1))
            name, n = base, 0
            while name in found:
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


# --- generated content ----------------------------------------------------------------------------


def test_plan_format_reference_is_a_fresh_render_of_the_schema() -> None:
    _, generated, _ = reference.split_document(read("plan-format.md"))
    assert generated == "\n" + reference.render_reference(plan_schema()) + "\n", (
        "docs/plan-format.md is out of date: run python -m drplan.report.reference docs/plan-format.md"
    )


def test_reference_check_mode_agrees(tmp_path: Path) -> None:
    assert reference.main(["--check", str(DOCS / "plan-format.md")]) == 0
    stale = tmp_path / "plan-format.md"
    stale.write_text(f"# Plan\n\n{reference.BEGIN}\nold\n{reference.END}\nafter\n", encoding="utf-8")
    assert reference.main(["--check", str(stale)]) == 1
    assert "old" in stale.read_text(encoding="utf-8")  # --check changes nothing
    assert reference.main([str(stale)]) == 0
    rewritten = stale.read_text(encoding="utf-8")
    assert "old" not in rewritten and rewritten.endswith(f"{reference.END}\nafter\n")
    assert reference.main(["--check", str(stale)]) == 0
    (tmp_path / "none.md").write_text("no markers\n", encoding="utf-8")
    assert reference.main(["--check", str(tmp_path / "none.md")]) == 2


def test_reference_documents_every_property_of_the_schema() -> None:
    schema = plan_schema()
    text = reference.render_reference(schema)
    for name, heading in reference.SECTIONS:
        section = text.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]
        properties = (schema if not name else schema["$defs"][name])["properties"]
        for prop in properties:
            assert f"| `{prop}` |" in section, (heading, prop)
    assert "must be one of `always`, `on_success`, `never`" in text  # an enum, in words
    assert "must be an ISO 8601 duration such as PT30M or P1DT2H" in text  # an x-error phrase


def test_actions_page_is_the_generated_catalogue() -> None:
    result = CliRunner().invoke(cli, ["actions", "--format", "markdown"])
    assert result.exit_code == 0, result.output
    assert read("actions.md") == result.output, (
        "docs/actions.md is out of date: run drplan actions --format markdown > docs/actions.md"
    )


# --- hand-written pages follow the code ----------------------------------------------------------


@pytest.mark.parametrize("code", sorted(RULES))
def test_every_finding_code_has_a_section_in_validation_md(code: str) -> None:
    assert code.lower() in anchors(read("validation.md")), f"docs/validation.md needs a `### {code}` heading"


def _help_commands() -> list[str]:
    output = CliRunner().invoke(cli, ["--help"]).output
    listing = output.split("Commands:\n", 1)[1]
    return [line.split()[0] for line in listing.splitlines() if line.startswith("  ") and line.split()]


def test_every_command_in_help_is_documented_in_cli_md() -> None:
    commands = _help_commands()
    assert len(commands) >= 9
    documented = anchors(read("cli.md"))
    # A group's section may be per subcommand (`drplan export stepfunctions`).
    missing = [
        c for c in commands if not any(a == f"drplan-{c}" or a.startswith(f"drplan-{c}-") for a in documented)
    ]
    assert not missing, f"docs/cli.md needs a `### \\`drplan <command>\\`` section for: {missing}"


@pytest.mark.parametrize("name", sorted(cli.all_commands))
def test_every_option_of_a_command_is_in_cli_md(name: str) -> None:
    text = read("cli.md")
    command = cli.all_commands[name]
    commands = [command, *getattr(command, "commands", {}).values()]  # a group's subcommands too
    options = [
        opt
        for each in commands
        for param in each.params
        if isinstance(param, click.Option)
        for opt in (*param.opts, *param.secondary_opts)
        if opt.startswith("--") and opt != "--help"
    ]
    missing = [opt for opt in options if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", text)]
    assert not missing, f"docs/cli.md does not mention {missing} of drplan {name}"


def test_every_event_kind_is_in_cli_md() -> None:
    from drplan.engine.events import KINDS

    text = read("cli.md")
    assert not [kind for kind in KINDS if f"| `{kind}` |" not in text]


def test_every_drill_metric_is_in_drills_md() -> None:
    source = (ROOT / "drplan" / "report" / "evidence.py").read_text(encoding="utf-8")
    metrics = set(re.findall(r'"(drplan_drill_[a-z_]+)"', source))
    assert len(metrics) >= 10
    text = read("drills.md")
    assert not sorted(m for m in metrics if f"`{m}`" not in text)


# --- links between pages --------------------------------------------------------------------------

LINK = re.compile(r"\]\(([^)\s]+)\)")


def _links(page: str) -> list[str]:
    text = re.sub(r"```.*?```", "", read(page), flags=re.S)
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("page", PAGES)
def test_links_land_on_files_and_headings_that_exist(page: str) -> None:
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        file = (DOCS / path).resolve() if path else DOCS / page
        missing_anchor = bool(anchor) and file.suffix == ".md" and file.exists()
        if not file.exists() or (missing_anchor and anchor not in anchors(file.read_text(encoding="utf-8"))):
            broken.append(target)
    assert not broken, f"docs/{page}: broken links {broken}"
