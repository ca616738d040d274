"""Helpers shared by the command modules: plan arguments, output, failing with an exit code."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from drplan.aws import AwsSession
    from drplan.model import AwsSettings

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
        write_output(Path(output), text.encode("utf-8"))
    else:
        click.echo(text, nl=False)


def write_output(path: Path, data: bytes) -> None:
    """Write a whole output file, or nothing: a temporary file beside it, then renamed; a folder
    that does not exist or cannot be written is a usage error that names it."""
    from drplan.errors import UsageError

    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: the folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def say(message: str = "", *, nl: bool = True) -> None:
    """A line for the person running drplan, on standard error. Never raises: a closed pipe or a
    full disk must not change what the run does or the code it exits with."""
    with contextlib.suppress(OSError, ValueError):  # BrokenPipeError, ENOSPC, a closed stream
        click.echo(message, err=True, nl=nl)


def fail(message: str, code: int) -> NoReturn:
    say(f"drplan: error: {message}")
    sys.exit(code)


def parse_age(text: str) -> timedelta:
    """``1d``, ``12h``, ``30m``, ``45s`` or an ISO 8601 duration (``P1D``)."""
    from drplan.durations import parse_duration

    match = re.fullmatch(r"(\d+)([smhdw])", text.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match[2]]
        return timedelta(**{unit: int(match[1])})
    try:
        return parse_duration(text)
    except (ValueError, OverflowError):
        raise click.BadParameter(f"{text!r} is not an age such as 1d, 12h, 30m or P1D") from None


def state_option(func: Any) -> Any:
    """``--state s3://bucket/prefix``: runs keep their journal, lock and evidence in S3."""
    return click.option(
        "--state",
        "state_url",
        metavar="S3_URL",
        help="Keep journals, locks and evidence in S3 (s3://bucket/prefix), shared by every machine "
        "(default: the plan's run.state, else only the local --state-dir).",
    )(func)


def s3_state(url: str | None, opts: dict[str, Any], state_dir: str) -> Any:
    """The S3 state for ``--state`` (None without one), its local copy under ``state_dir``."""
    if not url:
        return None
    from drplan.engine.state import S3State

    return S3State(url, aws_session(opts, region=opts.get("region")), cache_root=Path(state_dir) / "s3")


#: The arguments drplan was started with (set by :func:`drplan.cli.main`): a crash rehearsal runs
#: the same command again in a child process.
_INVOCATION: list[str] = []


def invocation() -> list[str]:
    return list(_INVOCATION)


def aws_session(
    opts: dict[str, Any],
    *,
    region: str | None,
    plan_aws: AwsSettings | None = None,
    endpoint_url: str | None = None,
    read_only: bool = False,
) -> AwsSession:
    """The AWS access that :func:`aws_options` ask for; an option wins over the plan's ``aws`` block
    (``plan_aws``), and ``endpoint_url`` is the fallback when ``--endpoint-url`` is not given."""
    from drplan.aws import AwsSession

    return AwsSession(
        region=region,
        profile=opts.get("profile") or (plan_aws.profile if plan_aws else None),
        role_arn=opts.get("role_arn") or (plan_aws.role_arn if plan_aws else None),
        external_id=opts.get("external_id"),
        endpoint_url=opts.get("endpoint_url") or endpoint_url,
        read_only=read_only,
    )


def aws_options(func: Any) -> Any:
    """``--region --profile --endpoint-url --role-arn --external-id``: where AWS calls go. Credentials come only
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
        click.option(
            "--external-id",
            envvar="DRPLAN_EXTERNAL_ID",
            metavar="ID",
            help="The external ID the role's trust policy requires (a role in a third party's "
            "account); also read from DRPLAN_EXTERNAL_ID.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func
