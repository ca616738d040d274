"""``drplan validate``, ``drplan schema`` and ``drplan actions``: no AWS, no boto3."""

from __future__ import annotations

import sys
import traceback
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from drplan.cli.common import (
    complete_plan_files,
    emit,
    expand_plan_args,
    output_options,
    use_color,
    verbosity_options,
    write_output,
)
from drplan.config import (
    REPORT_FORMATS,
    ValidateSettings,
    find_settings_file,
    ignorable_codes,
    load_settings,
    parse_report,
)
from drplan.diagnostics import Position, Span, diagnostic, shorten
from drplan.errors import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, DrplanError, UsageError

if TYPE_CHECKING:
    from drplan.pipeline import ValidationResult


@click.command()
@click.argument("plans", nargs=-1, required=True, metavar="PLAN...", shell_complete=complete_plan_files)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(REPORT_FORMATS),
    default="text",
    show_default=True,
    help="Output format: text for people; json, sarif (code scanning), github (annotations), junit for CI.",
)
@click.option("--strict/--no-strict", default=None, help="Treat warnings as failures (exit 1).")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the report to a file."
)
@click.option(
    "--report",
    "reports",
    multiple=True,
    metavar="FORMAT:PATH",
    help="Also write a report in FORMAT to PATH (repeatable), e.g. --report sarif:drplan.sarif.",
)
@click.option(
    "--ignore",
    multiple=True,
    metavar="CODE",
    help="Do not report this warning code (repeatable or comma-separated); errors cannot be ignored.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True),
    help="Settings file (default: .drplan.toml or [tool.drplan] in pyproject.toml, found upwards).",
)
@click.option(
    "--color/--no-color",
    default=None,
    help="Colour the text format (default: on a terminal, unless NO_COLOR is set).",
)
@verbosity_options
def validate(
    plans: tuple[str, ...],
    fmt: str,
    strict: bool | None,
    output: str | None,
    reports: tuple[str, ...],
    ignore: tuple[str, ...],
    config_path: str | None,
    color: bool | None,
) -> None:
    """Check plan files against the schema and the semantic rules.

    PLAN may be a file, a glob (quoted, e.g. 'plans/*.json') or - for standard input. Exit 0 when
    every plan is valid (warnings allowed unless --strict), 1 when there are findings, 2 when a file
    cannot be read or an option or setting is wrong.

    Settings (ignore, strict, reports) come from .drplan.toml or pyproject.toml's [tool.drplan],
    found from the working directory upwards; options add to them (--no-strict overrides).

    \b
    Examples:
      drplan validate plans/webshop.json
      drplan validate 'plans/*.json' --report sarif:drplan.sarif
      drplan validate plans/webshop.json --ignore DR303 --strict
      cat plans/webshop.json | drplan validate -
    """
    from drplan.report.findings import FORMATTERS, Options

    settings = _settings(config_path)
    ignored = settings.ignore | ignorable_codes(ignore, where="--ignore")
    extra = settings.reports + tuple(parse_report(r, base=Path(), where="--report") for r in reports)
    strict = settings.strict if strict is None else strict
    for path in [*(Path(output) for output in [output] if output), *(r.path for r in extra)]:
        if not path.parent.is_dir():  # say so before any work, and write all reports or none
            raise UsageError(f"cannot write {path}: the folder {path.parent} does not exist")
    targets = expand_plan_args(plans)
    if not targets:  # e.g. a glob that matched only directories: validating nothing is not "valid"
        raise click.UsageError(f"no plan file matches {' '.join(plans)!r}")
    results = [_without(_validate_one(path, shown), ignored) for path, shown in targets]
    if color is None and fmt == "text" and output is None:
        color = use_color(None, sys.stdout)  # drplan --color/--no-color, NO_COLOR, FORCE_COLOR, a terminal
    color = bool(color)
    options = Options(strict=strict, color=color, ignored=tuple(sorted(ignored)))
    for report in extra:
        write_output(report.path, FORMATTERS[report.format](results, replace(options, color=False)).encode())
    text = FORMATTERS[fmt](results, options)
    if output is None and color:
        click.echo(text, nl=False, color=True)  # emit() would strip the colours when piped: --color wins
    else:
        emit(text, output)
    unreadable = any(d.code == "DR004" for r in results for d in r.diagnostics)
    if unreadable:
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_OK if all(r.ok(strict=strict) for r in results) else EXIT_FINDINGS)


def _settings(config_path: str | None) -> ValidateSettings:
    """The settings file given, or the one found from the working directory; none is fine."""
    found = Path(config_path) if config_path else find_settings_file(Path.cwd().resolve())
    return load_settings(found) if found else ValidateSettings()


def _without(result: ValidationResult, ignored: frozenset[str]) -> ValidationResult:
    if not ignored:
        return result
    return replace(result, diagnostics=[d for d in result.diagnostics if d.code not in ignored])


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
@output_options
def schema(output: str | None) -> None:
    """Print the plan JSON Schema (Draft 2020-12) that editors and CI can use.

    \b
    Examples:
      drplan schema -o plan.schema.json
      drplan schema | check-jsonschema --schemafile /dev/stdin plans/webshop.json
    """
    from drplan.schema import schema_text

    emit(schema_text(), output)


@click.command()
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True
)
@click.argument("names", nargs=-1, metavar="[ACTION...]")
@output_options
def actions(fmt: str, names: tuple[str, ...]) -> None:
    """List the action catalogue: parameters, outputs and the IAM actions each needs.

    \b
    Examples:
      drplan actions
      drplan actions aws.rds.restore_snapshot check.tcp
      drplan actions --format markdown > docs/actions.md
    """
    from drplan.actions import registry
    from drplan.report.catalogue import FORMATS

    catalogue = registry()
    unknown = [n for n in names if n not in catalogue]
    if unknown:
        raise click.UsageError(f"unknown action(s): {', '.join(unknown)}; run `drplan actions` for the list")
    selected = {n: a for n, a in catalogue.items() if not names or n in names}
    emit(FORMATS[fmt](selected), None)


COMMANDS = (validate, schema, actions)
