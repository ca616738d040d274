"""The ``drplan`` command line: parse options, call the library, pick a formatter, exit.

Library code never prints or exits; this package alone turns results and :class:`DrplanError`s
into output and exit codes (0 ok, 1 findings / failed run, 2 usage or unreadable input,
3 interrupted or cleanup incomplete; see docs/cli.md). Each module here holds a few commands and
imports heavy libraries (networkx, boto3) inside the commands that need them, so that
``drplan validate`` never loads boto3.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from drplan import __version__
from drplan.cli import graph, review, run, validate
from drplan.cli.common import CONTEXT_SETTINGS, fail
from drplan.errors import EXIT_FINDINGS, EXIT_INTERRUPTED, EXIT_OK, DrplanError, PlanInvalid


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="drplan")
def cli() -> None:
    """Disaster-recovery plans as code: validate, graph, dry-run, drill and recover."""


for module in (validate, review, graph, run):
    for command in module.COMMANDS:
        cli.add_command(command)


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
        fail("aborted", EXIT_INTERRUPTED)
    except PlanInvalid as exc:
        for d in exc.diagnostics:
            click.echo(f"{d.file}:{d.line}:{d.column}: {d.severity} {d.code} {d.message}", err=True)
        fail(exc.message, exc.exit_code)
    except DrplanError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        sys.stderr.close()  # e.g. `drplan schema | head`: not an error worth a traceback
        sys.exit(EXIT_OK)
    except Exception as exc:
        # Credentials, endpoints and AWS refusals outside a step (account guard, sweep listing)
        # are the user's to fix, not drplan bugs: say what AWS said. Anything else is a bug and
        # keeps its traceback.
        if not type(exc).__module__.startswith(("botocore", "boto3")):
            raise
        from drplan.aws import describe_error

        fail(
            f"AWS: {describe_error(exc)}\n  hint: check credentials (aws sts get-caller-identity), "
            "--region, --profile and --endpoint-url",
            EXIT_FINDINGS,
        )
