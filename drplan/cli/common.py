"""Helpers shared by the command modules: plan arguments, output, failing with an exit code."""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def expand_plan_args(args: tuple[str, ...]) -> list[tuple[str, str]]:
    """(path to read, path to show) for each argument; globs are expanded, ``-`` is stdin."""
    out: list[tuple[str, str]] = []
    if args.count("-") > 1:
        raise click.UsageError("standard input (-) can be read only once")
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
            raise click.UsageError(
                f"{arg!r} is a directory; pass plan files or a glob such as {arg.rstrip('/')}/*.json"
            )
        out.append((arg, arg))
    return out


def emit(text: str, output: str | None) -> None:
    """Write ``text`` to ``output`` (a file) or to standard output."""
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"drplan: error: {message}", err=True)
    sys.exit(code)


def aws_options(func: Any) -> Any:
    """``--region --profile --endpoint-url --role-arn``: where AWS calls go. Credentials come only
    from boto3's standard chain (environment, profile, SSO, instance role), never from the plan."""
    options = [
        click.option(
            "--region", help="AWS region (default: the plan's aws.region, then AWS_DEFAULT_REGION)."
        ),
        click.option(
            "--profile", help="Named AWS profile (default: the plan's aws.profile, then the default chain)."
        ),
        click.option("--endpoint-url", help="Send every AWS call here (LocalStack, moto server)."),
        click.option(
            "--role-arn", help="Assume this role for every AWS call (default: the plan's aws.role_arn)."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func
