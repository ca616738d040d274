"""The ``drplan`` command line: parse options, call the library, pick a formatter, exit.

Library code never prints or exits; this package alone turns results and :class:`DrplanError`s
into output and exit codes (0 ok, 1 findings / failed run, 2 usage or unreadable input,
3 interrupted or cleanup incomplete; see docs/cli.md). Each module here holds a few commands and
imports heavy libraries (networkx, boto3) inside the commands that need them, so that
``drplan validate`` never loads boto3.

:func:`main` is the one place exceptions become exit codes. Nothing escapes it as a traceback: an
unexpected exception is a one-line error with exit 2 and a hint to rerun with ``--debug``, which
shows the traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import traceback
from typing import Any, NoReturn

import click

from drplan import __version__
from drplan.cli.common import _INVOCATION, CONTEXT_SETTINGS, fail, output_options, say, show_click_error
from drplan.errors import EXIT_FINDINGS, EXIT_INTERRUPTED, EXIT_USAGE, DrplanError, PlanInvalid

_DEBUG = {"on": False}

#: Each command and the module that defines it. A command's module is imported only when the
#: command runs: ``drplan validate`` in a pull-request check must not pay for the modules of
#: ``drill`` and ``graph``.
COMMAND_MODULES = {
    "validate": "drplan.cli.validate",
    "schema": "drplan.cli.validate",
    "actions": "drplan.cli.validate",
    "plan": "drplan.cli.review",
    "docs": "drplan.cli.review",
    "graph": "drplan.cli.graph",
    "recover": "drplan.cli.run",
    "drill": "drplan.cli.run",
    "resume": "drplan.cli.run",
    "unlock": "drplan.cli.run",
    "cleanup": "drplan.cli.cleanup",
    "runs": "drplan.cli.history",
    "show": "drplan.cli.history",
    "calibrate": "drplan.cli.history",
    "check": "drplan.cli.monitoring",
    "dashboard": "drplan.cli.monitoring",
    "iam-policy": "drplan.cli.iam",
    "init": "drplan.cli.init",
    "export": "drplan.cli.stepfunctions",
    "deploy": "drplan.cli.sfn",
    "start": "drplan.cli.sfn",
    "approve": "drplan.cli.sfn",
}


class LazyGroup(click.Group):
    """A group whose commands are imported when they are used (click's documented lazy pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is None:
            return None
        return self.all_commands_of(module)[cmd_name]

    @staticmethod
    def all_commands_of(module: str) -> dict[str, click.Command]:
        commands: tuple[click.Command, ...] = importlib.import_module(module).COMMANDS
        return {str(c.name): c for c in commands}

    @property
    def all_commands(self) -> dict[str, click.Command]:
        """Every command, imported (for docs and tests)."""
        return {name: self.all_commands_of(COMMAND_MODULES[name])[name] for name in sorted(COMMAND_MODULES)}

    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """click's ``main``, with click's own errors in drplan's style (``drplan: error: ...``) in
        standalone mode too (click's test runner, ``cli()``): :func:`main` is not the only way in."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            show_click_error(exc)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            fail("aborted", EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="drplan")
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error (for a bug report).")
@output_options
def cli(debug: bool) -> None:
    """Disaster-recovery plans as code: validate, graph, dry-run, drill and recover.

    \b
    Examples:
      drplan validate 'plans/*.json'
      drplan plan plans/webshop.json
      drplan drill plans/webshop.json --sandbox
      drplan graph plans/webshop.json -o webshop.svg

    --color/--no-color, --quiet and --verbose work here and on each command.

    \b
    Shell completion of commands, options, plan files and run ids (bash; zsh, fish: docs/cli.md):
      eval "$(_DRPLAN_COMPLETE=bash_source drplan)"
    """
    _DEBUG["on"] = debug


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point: the only place that turns exceptions into exit codes. Always exits."""
    args = sys.argv[1:] if argv is None else argv
    _INVOCATION[:] = args
    _DEBUG["on"] = "--debug" in args[: args.index("--") if "--" in args else len(args)]
    try:
        # Without standalone mode click returns the code of ctx.exit(): exit with it (`python -m
        # drplan` has no console script around it to do so).
        code = cli.main(args=args, prog_name="drplan", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        show_click_error(exc)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        fail("aborted", EXIT_INTERRUPTED)
    except PlanInvalid as exc:
        for d in exc.diagnostics:
            say(f"{d.file}:{d.line}:{d.column}: {d.severity} {d.code} {d.message}", always=True)
        fail(exc.message, exc.exit_code)
    except DrplanError as exc:
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        # e.g. `drplan schema | head`: the reader went away; what it read was complete.
        with contextlib.suppress(OSError):
            sys.stderr.close()
        sys.exit(0)
    except Exception as exc:
        _unexpected(exc)


def _unexpected(exc: Exception) -> NoReturn:
    # Credentials, endpoints and AWS refusals outside a step (account guard, sweep listing) are the
    # user's to fix, not drplan bugs: say what AWS said.
    if type(exc).__module__.startswith(("botocore", "boto3")):
        from drplan.aws import describe_error

        fail(
            f"AWS: {describe_error(exc)}\n  hint: check credentials (aws sts get-caller-identity), "
            "--region, --profile and --endpoint-url",
            EXIT_FINDINGS,
        )
    if _DEBUG["on"]:
        with contextlib.suppress(OSError):
            traceback.print_exception(exc, file=sys.stderr)
        fail(f"internal error: {type(exc).__name__}: {exc}", EXIT_USAGE)
    fail(
        f"internal error: {type(exc).__name__}: {exc}\n"
        "  hint: this is a drplan bug; rerun with --debug (drplan --debug ...) for the traceback and report it",
        EXIT_USAGE,
    )
