"""Helpers shared by the command modules: plan arguments, output (colour, --quiet, --verbose),
errors in one style, shell completion, failing with an exit code."""

from __future__ import annotations

import contextlib
import glob
import os
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import click
from click.shell_completion import CompletionItem

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
    that does not exist or cannot be written is a usage error that names it. What is not a
    regular file (``/dev/null``, a named pipe) is written to, never replaced."""
    from drplan.errors import UsageError

    if not path.parent.is_dir():
        raise UsageError(f"cannot write {path}: the folder {path.parent} does not exist")
    if path.exists() and not path.is_file():  # /dev/null, /dev/stdout, a named pipe: write, never replace
        try:
            with path.open("wb") as out:
                out.write(data)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc


#: Verbosity levels (``--quiet``, the default, ``--verbose``).
QUIET, NORMAL, VERBOSE = -1, 0, 1
#: Where the output options are kept: click's ``ctx.meta``, shared by ``drplan`` and its command,
#: and fresh for every invocation.
_COLOR = "drplan.color"
_VERBOSITY = "drplan.verbosity"


def _meta() -> dict[str, Any]:
    ctx = click.get_current_context(silent=True)
    return ctx.meta if ctx is not None else {}


def use_color(flag: bool | None = None, stream: IO[Any] | None = None) -> bool:
    """Whether to colour what goes to ``stream`` (default: standard output). The first that says
    wins: ``flag`` (a command's own ``--color/--no-color``), the ``--color/--no-color`` given to
    ``drplan`` or its command, ``NO_COLOR`` set and not empty (off, https://no-color.org),
    ``FORCE_COLOR`` set and not empty (on, ``0`` off), whether ``stream`` is a terminal."""
    if flag is None:
        flag = _meta().get(_COLOR)
    if flag is not None:
        return bool(flag)
    if os.environ.get("NO_COLOR"):
        return False
    force = os.environ.get("FORCE_COLOR")
    if force:
        return force != "0"
    stream = stream if stream is not None else sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):  # no isatty, or a closed stream
        return False


def verbosity() -> int:
    """:data:`QUIET`, :data:`NORMAL` or :data:`VERBOSE`, from ``--quiet``/``--verbose``."""
    return int(_meta().get(_VERBOSITY, NORMAL))


def _set_color(ctx: click.Context, param: click.Parameter, value: bool | None) -> None:
    if value is not None:
        ctx.meta[_COLOR] = value


def _set_verbosity(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value:
        return
    level = QUIET if param.name == "quiet" else VERBOSE
    given = ctx.meta.get(_VERBOSITY)
    if given is not None and given != level and ctx.meta.get(f"{_VERBOSITY}.ctx") is ctx:
        raise click.UsageError("--quiet and --verbose contradict each other: give one", ctx=ctx)
    ctx.meta[_VERBOSITY] = level
    ctx.meta[f"{_VERBOSITY}.ctx"] = ctx


def color_option(func: Any) -> Any:
    """``--color/--no-color``, read back with :func:`use_color`."""
    return click.option(
        "--color/--no-color",
        "color",
        default=None,
        expose_value=False,
        callback=_set_color,
        help="Colour the output, or not (default: on a terminal, unless NO_COLOR is set).",
    )(func)


def verbosity_options(func: Any) -> Any:
    """``-q/--quiet`` and ``-v/--verbose``, read back with :func:`verbosity`."""
    options = [
        click.option(
            "-q",
            "--quiet",
            is_flag=True,
            expose_value=False,
            callback=_set_verbosity,
            help="Print only results, warnings and errors on standard error.",
        ),
        click.option(
            "-v",
            "--verbose",
            is_flag=True,
            expose_value=False,
            callback=_set_verbosity,
            help="Print more detail on standard error (every event of a run).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def machine_options(func: Any) -> Any:
    """What shapes an exported state machine, on ``export stepfunctions`` and ``deploy``:
    ``--coordination-table``, ``--parallelism``, ``--rollback-on-failure``."""
    options = [
        click.option(
            "--coordination-table",
            metavar="NAME",
            help="DynamoDB table for steps that wait through coordination records "
            "(default: drplan-PLAN-coordination).",
        ),
        click.option(
            "--parallelism",
            type=click.IntRange(min=1),
            help="Steps running at once, enforced by the state machine (default: the plan's "
            "run.parallelism, else 16).",
        ),
        click.option(
            "--rollback-on-failure",
            is_flag=True,
            help="A recovery in which a step fails undoes its completed steps, dependents first, as "
            "drplan recover --rollback-on-failure does (recoveries only).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def output_options(func: Any) -> Any:
    """``--color/--no-color``, ``-q/--quiet``, ``-v/--verbose`` (on ``drplan`` and on each command;
    the command's own win). Read them back with :func:`use_color` and :func:`verbosity`."""
    return color_option(verbosity_options(func))


def say(message: str = "", *, nl: bool = True, always: bool = False) -> None:
    """A line for the person running drplan, on standard error; ``--quiet`` hides it unless
    ``always`` (results, problems). Never raises: a closed pipe or a full disk must not change what
    the run does or the code it exits with."""
    if not always and verbosity() <= QUIET:
        return
    with contextlib.suppress(OSError, ValueError):  # BrokenPipeError, ENOSPC, a closed stream
        click.echo(message, err=True, nl=nl)


def detail(message: str) -> None:
    """A line only ``--verbose`` shows."""
    if verbosity() >= VERBOSE:
        say(message)


def warn(message: str) -> None:
    """``drplan: warning: ...``: shown even with ``--quiet``."""
    say(f"drplan: warning: {message}", always=True)


def note(message: str) -> None:
    """``drplan: note: ...``: hidden by ``--quiet``."""
    say(f"drplan: note: {message}")


def fail(message: str, code: int) -> NoReturn:
    say(f"drplan: error: {message}", always=True)
    sys.exit(code)


def show_click_error(exc: click.ClickException) -> None:
    """A click error in drplan's one style: the usage line of a usage error, then
    ``drplan: error: ...`` and a hint (click's own ``Error: ...`` would be a second style)."""
    from click.exceptions import NoArgsIsHelpError

    if isinstance(exc, NoArgsIsHelpError):  # `drplan export` alone: its help is the answer
        with contextlib.suppress(OSError):
            exc.show()
        return
    lines = []
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        lines.append(exc.ctx.get_usage())
    lines.append(f"drplan: error: {exc.format_message()}")
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        lines.append(f"  hint: {exc.ctx.command_path} --help shows the options, with examples")
    say("\n".join(lines), always=True)


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


# --- shell completion -----------------------------------------------------------------------------
# click's own completion (docs/cli.md, "Shell completion"): these callbacks run on every Tab, so
# they read directory listings and one line per journal, import nothing heavy, and never raise.

#: At most this many run ids are offered (the newest), so a years-old state folder stays fast.
COMPLETION_LIMIT = 200


def complete_plan_files(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """``PLAN``: the ``*.json`` files and the folders that start with ``incomplete``."""
    try:
        folder, slash, prefix = incomplete.rpartition("/")
        shown = folder + slash
        base = Path(shown or ".")
        files: list[CompletionItem] = []
        folders: list[str] = []
        with os.scandir(base) as entries:
            for entry in entries:
                if not entry.name.startswith(prefix) or (
                    entry.name.startswith(".") and not prefix.startswith(".")
                ):
                    continue
                if entry.is_dir():
                    folders.append(f"{shown}{entry.name}/")
                elif entry.name.endswith(".json"):
                    files.append(CompletionItem(f"{shown}{entry.name}"))
        if not files:
            # Only folders: let the shell complete them (it adds no space after a folder name).
            return [CompletionItem(incomplete, type="dir")] if folders else []
        return sorted(files, key=lambda i: str(i.value)) + [CompletionItem(f) for f in sorted(folders)]
    except Exception:  # a Tab key must never print a traceback
        return []


#: ``PLAN``: an existing plan file, completed on the shell (commands that read a plan from a path).
plan_path_argument = click.argument(
    "plan_path",
    metavar="PLAN",
    type=click.Path(exists=True, dir_okay=False),
    shell_complete=complete_plan_files,
)


def _state_dir_of(ctx: click.Context) -> Path:
    from drplan.engine.journal import DEFAULT_STATE_DIR

    return Path(str(ctx.params.get("state_dir") or DEFAULT_STATE_DIR))


def _run_help(journal: Path) -> str:
    """``drill of webshop, 2026-11-26 07:46``, from the journal's first line (its header)."""
    import json

    try:
        with journal.open(encoding="utf-8") as lines:
            first = json.loads(lines.readline(65536))
        data = first.get("data") or {}
        when = str(first.get("time") or "")[:16].replace("T", " ")
        return f"{data.get('mode', '?')} of {data.get('plan', '?')}, {when}".strip(", ")
    except Exception:
        return ""


def complete_run_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """``RUN_ID``: the runs in the state folder (``--state-dir``, default ``.drplan``), newest
    first, with what each was (for shells that show it: zsh, fish)."""
    try:
        runs = Path(_state_dir_of(ctx)) / "runs"
        found = []
        with os.scandir(runs) as entries:
            for entry in entries:
                if entry.name.startswith(incomplete) and entry.is_dir():
                    found.append((entry.stat().st_mtime, entry.name))
        found.sort(reverse=True)
        return [
            CompletionItem(name, help=_run_help(runs / name / "journal.jsonl"))
            for _, name in found[:COMPLETION_LIMIT]
        ]
    except Exception:  # no state folder yet, unreadable: nothing to offer
        return []


def complete_locked_plans(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """``unlock PLAN``: the plans holding a lock in the state folder, then plan files."""
    try:
        locks = _state_dir_of(ctx) / "locks"
        names = sorted({p.stem.rsplit("@", 1)[0] for p in locks.glob("*.json")})
        held = [CompletionItem(n, help="locked") for n in names if n.startswith(incomplete)]
    except Exception:
        held = []
    return held + complete_plan_files(ctx, param, incomplete)
