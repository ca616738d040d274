"""The ``drplan`` command line: parse options, call the library, pick a formatter, exit.

Library code never prints or exits; this module alone turns results and :class:`DrplanError`s
into output and exit codes (0 ok, 1 findings / failed run, 2 usage or unreadable input,
3 interrupted or cleanup incomplete; see docs/cli.md). Heavy modules (networkx, boto3) are
imported inside the commands that need them, so ``drplan validate`` never loads boto3.
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from drplan import __version__
from drplan.errors import EXIT_FINDINGS, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, DrplanError, PlanInvalid

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="drplan")
def cli() -> None:
    """Disaster-recovery plans as code: validate, graph, dry-run, drill and recover."""


def expand_plan_args(args: tuple[str, ...]) -> list[tuple[str, str]]:
    """(path to read, path to show) for each argument; globs are expanded, ``-`` is stdin."""
    out: list[tuple[str, str]] = []
    for arg in args:
        if arg == "-":
            out.append(("-", "<stdin>"))
            continue
        if any(ch in arg for ch in "*?[") and not os.path.exists(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            if not matches:
                raise click.UsageError(f"no file matches {arg!r}")
            out.extend((m, m) for m in matches if not os.path.isdir(m))
            continue
        if os.path.isdir(arg):
            raise click.UsageError(f"{arg!r} is a directory; pass plan files or a glob such as {arg.rstrip('/')}/*.json")
        out.append((arg, arg))
    return out


@cli.command()
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
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the report to a file.")
@click.option("--color/--no-color", default=None, help="Colour the text format (default: when on a terminal).")
def validate(plans: tuple[str, ...], fmt: str, strict: bool, output: str | None, color: bool | None) -> None:
    """Check plan files against the schema and the semantic rules.

    PLAN may be a file, a glob (quoted, e.g. 'plans/*.json') or - for standard input. Exit 0 when
    every plan is valid (warnings allowed unless --strict), 1 when there are findings, 2 when a file
    cannot be read.
    """
    from drplan.document import read_document
    from drplan.pipeline import validate_document, validate_file
    from drplan.report.findings import FORMATTERS, Options

    results = []
    for path, shown in expand_plan_args(plans):
        if path == "-":
            results.append(validate_document(read_document(shown, data=sys.stdin.buffer.read())))
        else:
            results.append(validate_file(path, display_path=shown))
    use_color = color if color is not None else (fmt == "text" and output is None and sys.stdout.isatty())
    text = FORMATTERS[fmt](results, Options(strict=strict, color=use_color))
    _emit(text, output)
    unreadable = any(d.code == "DR004" for r in results for d in r.diagnostics)
    if unreadable:
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_OK if all(r.ok(strict=strict) for r in results) else EXIT_FINDINGS)


@cli.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the schema to a file.")
def schema(output: str | None) -> None:
    """Print the plan JSON Schema (Draft 2020-12) that editors and CI can use."""
    from drplan.schema import schema_text

    _emit(schema_text(), output)


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", show_default=True)
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
    _emit(FORMATS[fmt](selected), None)


def _emit(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"drplan: error: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: the only place that turns exceptions into exit codes."""
    try:
        return cli.main(args=argv, prog_name="drplan", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted", EXIT_INTERRUPTED)
    except PlanInvalid as exc:

        click.echo(_diagnostics_text(exc.diagnostics), err=True, nl=False)
        _fail(exc.message, exc.exit_code)
    except DrplanError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        sys.stderr.close()  # e.g. `drplan schema | head`: not an error worth a traceback
        sys.exit(EXIT_OK)


def _diagnostics_text(diagnostics: list[Any]) -> str:
    lines = [f"{d.file}:{d.line}:{d.column}: {d.severity} {d.code} {d.message}" for d in diagnostics]
    return "\n".join(lines) + ("\n" if lines else "")
