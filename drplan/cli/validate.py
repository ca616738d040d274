"""``drplan validate``, ``drplan schema`` and ``drplan actions``: no AWS, no boto3."""

from __future__ import annotations

import sys
import traceback
from typing import TYPE_CHECKING

import click

from drplan.cli.common import emit, expand_plan_args
from drplan.diagnostics import Position, Span, diagnostic, shorten
from drplan.errors import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, DrplanError

if TYPE_CHECKING:
    from drplan.pipeline import ValidationResult


@click.command()
@click.argument("plans", nargs=-1, required=True, metavar="PLAN...")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif", "github", "junit"]),
    default="text",
    show_default=True,
    help="Output format: text for people; json, sarif (code scanning), github (annotations), junit for CI.",
)
@click.option("--strict", is_flag=True, help="Treat warnings as failures (exit 1).")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the report to a file."
)
@click.option(
    "--color/--no-color", default=None, help="Colour the text format (default: when on a terminal)."
)
def validate(plans: tuple[str, ...], fmt: str, strict: bool, output: str | None, color: bool | None) -> None:
    """Check plan files against the schema and the semantic rules.

    PLAN may be a file, a glob (quoted, e.g. 'plans/*.json') or - for standard input. Exit 0 when
    every plan is valid (warnings allowed unless --strict), 1 when there are findings, 2 when a file
    cannot be read.
    """
    from drplan.report.findings import FORMATTERS, Options

    targets = expand_plan_args(plans)
    if not targets:  # e.g. a glob that matched only directories: validating nothing is not "valid"
        raise click.UsageError(f"no plan file matches {' '.join(plans)!r}")
    results = [_validate_one(path, shown) for path, shown in targets]
    use_color = color if color is not None else (fmt == "text" and output is None and sys.stdout.isatty())
    text = FORMATTERS[fmt](results, Options(strict=strict, color=use_color))
    if output is None and use_color:
        click.echo(text, nl=False, color=True)  # emit() would strip the colours when piped: --color wins
    else:
        emit(text, output)
    unreadable = any(d.code == "DR004" for r in results for d in r.diagnostics)
    if unreadable:
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_OK if all(r.ok(strict=strict) for r in results) else EXIT_FINDINGS)


def _validate_one(path: str, shown: str) -> ValidationResult:
    """Validate one file. A drplan bug met on the way becomes a DR000 finding of that file, so the
    other files are still checked and the report keeps its format (SARIF, JUnit...)."""
    from drplan.document import Document, read_document
    from drplan.pipeline import ValidationResult, validate_document, validate_file

    document: Document | None = None
    try:
        if path == "-":
            document = read_document(shown, data=sys.stdin.buffer.read())
            return validate_document(document)
        return validate_file(path, display_path=shown)
    except DrplanError:
        raise  # the user's to fix (a broken action plugin...), said once by the top-level handler
    except Exception as exc:  # one file's bug must not hide the other files' findings
        if _debug():
            click.echo(f"drplan: internal error while checking {shown}:", err=True)
            click.echo(traceback.format_exc(), err=True, nl=False)
        document = document or Document(shown, "", None, "")
        start = Position(1, 1, 0)
        what = shorten(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, 120)
        finding = diagnostic(
            "DR000",
            f"drplan failed while checking this file ({what}); this is a bug in drplan, not in the plan: "
            "please report it, and rerun with --debug to see the traceback",
            shown,
            None,
            span=Span(start, start),
        )
        return ValidationResult(document, None, [*document.diagnostics, finding])


def _debug() -> bool:
    """The global ``--debug`` flag, when the command line has one."""
    try:
        return bool(click.get_current_context().find_root().params.get("debug"))
    except RuntimeError:  # no click context: called as a library
        return False


@click.command()
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the schema to a file."
)
def schema(output: str | None) -> None:
    """Print the plan JSON Schema (Draft 2020-12) that editors and CI can use."""
    from drplan.schema import schema_text

    emit(schema_text(), output)


@click.command()
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True
)
@click.argument("names", nargs=-1, metavar="[ACTION...]")
def actions(fmt: str, names: tuple[str, ...]) -> None:
    """List the action catalogue: parameters, outputs and the IAM actions each needs."""
    from drplan.actions import registry
    from drplan.report.catalogue import FORMATS

    catalogue = registry()
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        raise click.UsageError(f"unknown action(s): {', '.join(unknown)}; run `drplan actions` for the list")
    selected = {n: a for n, a in catalogue.items() if not names or n in names}
    emit(FORMATS[fmt](selected), None)


COMMANDS = (validate, schema, actions)
