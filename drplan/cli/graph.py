"""``drplan graph``: draw a plan as DOT, SVG, PNG, PDF or Mermaid. No AWS, no boto3.

DOT goes to standard output by default, like ``terraform graph``. Only SVG, PNG and PDF need
Graphviz's ``dot`` (:mod:`drplan.render.graphviz`, through the ``graphviz`` package); without it
those fail with exit 2 and an install hint, while DOT and Mermaid still work.
"""

from __future__ import annotations

import difflib
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import cast

import click

from drplan.cli.common import complete_plan_files, note, output_options, write_output
from drplan.model import MODES, Mode
from drplan.render import BINARY_FORMATS, FORMATS, SUFFIXES
from drplan.render.graphviz import DPI_RANGE


def output_format(fmt: str | None, output: str | None) -> tuple[str, bool]:
    """(format, markdown fence) from ``--format`` and the suffix of ``-o``; DOT when neither says."""
    suffix = Path(output).suffix.lower() if output else ""
    from_suffix = SUFFIXES.get(suffix)
    if fmt is None:
        if output and from_suffix is None:
            known = ", ".join(SUFFIXES)
            raise click.BadParameter(
                f"cannot tell the format from {output!r}: use one of {known}, or pass --format",
                param_hint="'-o' / '--output'",
            )
        fmt = from_suffix or "dot"
    elif from_suffix is not None and from_suffix != fmt:
        raise click.BadParameter(
            f"--format {fmt} does not match the file suffix {suffix!r}", param_hint="'-o' / '--output'"
        )
    return fmt, suffix == ".md"


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def today() -> str:
    """Today's date (UTC), or the date of ``$SOURCE_DATE_EPOCH`` for reproducible builds."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch else datetime.now(timezone.utc)
    return moment.strftime("%Y-%m-%d")


@click.command()
@click.argument(
    "plan", type=click.Path(exists=True, dir_okay=False, allow_dash=True), shell_complete=complete_plan_files
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Output format (default: from the -o suffix, else dot). svg, png and pdf need Graphviz.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to a file; the suffix picks the format: .dot .gv .svg .png .pdf .mmd .mermaid, "
    ".md (Mermaid in a ```mermaid fence).",
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="recover",
    show_default=True,
    help="Steps and timings of this run mode.",
)
@click.option(
    "--level",
    type=click.Choice(["auto", "steps", "services"]),
    default="auto",
    show_default=True,
    help="steps: every step inside its service; services: one node per service; "
    "auto: steps, or services above 2,000 steps (with a note on stderr).",
)
@click.option("--focus", metavar="SERVICE", help="Draw only SERVICE and everything upstream of it.")
@click.option(
    "--date",
    "with_date",
    is_flag=True,
    help="Put today's date in the title (off: diagrams are reproducible).",
)
@click.option(
    "--dpi",
    type=click.IntRange(*DPI_RANGE),
    help="Resolution of a PNG in pixels per inch (Graphviz's dpi; its default is 96).",
)
@output_options
def graph(
    plan: str,
    fmt: str | None,
    output: str | None,
    mode: str,
    level: str,
    focus: str | None,
    with_date: bool,
    dpi: int | None,
) -> None:
    """Draw PLAN: services as clusters, steps by kind, the critical path in red.

    Writes DOT to standard output unless --format or -o say otherwise; binary formats (png, pdf)
    go to standard output only when it is not a terminal. Exit 0 when drawn, 1 when the plan is
    invalid (its findings are printed as by validate), 2 on a usage error or when Graphviz is
    needed but missing.

    \b
    Examples:
      drplan graph plans/webshop.json | dot -Tsvg > webshop.svg
      drplan graph plans/webshop.json -o webshop.svg
      drplan graph plans/webshop.json -o webshop.png --dpi 200
      drplan graph plans/webshop.json --format mermaid --focus web
    """
    fmt, markdown = output_format(fmt, output)
    if dpi is not None and fmt != "png":
        raise click.UsageError(
            f"--dpi sets the resolution of a PNG, not of {fmt}: use --format png or -o FILE.png"
        )
    if fmt in BINARY_FORMATS and output is None and stdout_is_terminal():
        raise click.UsageError(
            f"not writing {fmt.upper()} to a terminal: pass -o FILE or redirect the output"
        )

    from drplan.actions import registry
    from drplan.graph import analyse, compile_graph
    from drplan.pipeline import OBJECTIVE_CODES, load_plan
    from drplan.render import auto_level, diagram
    from drplan.render.view import focus_graph

    loaded, result = load_plan(plan, allow=OBJECTIVE_CODES)  # a missed objective is drawn, not refused
    compiled = result.compiled if mode == "recover" else None
    rg = compiled.recover_graph if compiled is not None else compile_graph(loaded, cast(Mode, mode))
    if focus is not None:
        _check_focus(focus, list(loaded.services), {s.service for s in rg.steps()}, mode)
    reused = compiled.recover_analysis if compiled is not None else None
    analysis = reused if reused is not None else analyse(rg, registry())
    if focus is not None:
        rg, analysis = focus_graph(rg, analysis, focus)
    if level == "auto":
        level = auto_level(rg)
        if level == "services":
            note(
                f"{rg.graph.number_of_nodes():,} steps in {len(rg.services()):,} services: "
                "drawing one node per service (--level steps draws every step)"
            )
    data = diagram(
        rg, analysis, fmt, level=level, markdown=markdown, generated=today() if with_date else None, dpi=dpi
    )
    if output:
        write_output(Path(output), data)
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def _check_focus(focus: str, services: list[str], drawn: set[str], mode: str) -> None:
    if focus not in services:
        close = difflib.get_close_matches(focus, services, n=1)
        hint = (
            f"; did you mean {close[0]!r}?"
            if close
            else f"; the plan's services are: {', '.join(services[:10])}"
        )
        if not close and len(services) > 10:
            hint += ", ..."
        raise click.BadParameter(f"no service {focus!r} in the plan{hint}", param_hint="'--focus'")
    if focus not in drawn:
        raise click.BadParameter(f"service {focus!r} has no steps in {mode} mode", param_hint="'--focus'")


COMMANDS = (graph,)
