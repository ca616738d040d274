"""``drplan validate``, ``drplan schema`` and ``drplan actions``: no AWS, no boto3."""

from __future__ import annotations

import sys

import click

from drplan.cli.common import emit, expand_plan_args
from drplan.errors import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE


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
    from drplan.document import read_document
    from drplan.pipeline import validate_document, validate_file
    from drplan.report.findings import FORMATTERS, Options

    targets = expand_plan_args(plans)
    if not targets:  # e.g. a glob that matched only directories: validating nothing is not "valid"
        raise click.UsageError(f"no plan file matches {' '.join(plans)!r}")
    results = []
    for path, shown in targets:
        if path == "-":
            results.append(validate_document(read_document(shown, data=sys.stdin.buffer.read())))
        else:
            results.append(validate_file(path, display_path=shown))
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
