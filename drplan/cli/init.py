"""``drplan init``: write a first plan that validates: a template, a draft of an AWS estate found by
its tags, or one of the shipped examples. The plan goes to standard output or ``-o FILE``; what a
person must still decide goes to standard error."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from drplan.cli.common import aws_options, aws_session, output_options, say, warn, write_output
from drplan.errors import EXIT_FINDINGS, EXIT_OK, AwsError, UsageError

if TYPE_CHECKING:
    from drplan.scaffold import Estate, TagFilter

_PLAN_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


def _example_names() -> list[str]:
    from drplan.scaffold import examples

    return examples()


def _tag(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[TagFilter, ...]:
    from drplan.scaffold import TagFilter

    filters = []
    for text in values:
        key, eq, value = text.partition("=")
        if not key.strip():
            raise click.BadParameter(f"{text!r}: write KEY=VALUE (or KEY for any value), e.g. app=shop")
        filters.append(TagFilter(key.strip(), value if eq else None))
    return tuple(filters)


def _name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not _PLAN_NAME.match(value):
        raise click.BadParameter(
            f"{value!r}: a plan name is lowercase letters, digits, `-`, `_` or `.`, at most 63 (e.g. webshop)"
        )
    return value


@click.command(name="init")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write the plan to FILE (its folder is created)."
)
@click.option("--force", is_flag=True, help="Replace FILE when it exists (without it, init refuses to).")
@click.option(
    "--name", callback=_name, help="The plan's name (default: from FILE, or the first --tag's value)."
)
@click.option(
    "--from-aws",
    is_flag=True,
    help="Draft the plan from the AWS resources carrying the --tag tags (read-only calls).",
)
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_tag,
    help="With --from-aws: resources must carry this tag (KEY alone: any value); repeatable, all must match.",
)
@click.option(
    "--example",
    metavar="NAME",
    help="Write one of the example plans shipped with drplan instead (webshop, status-page, ...).",
)
@aws_options
@output_options
def init(
    output: str | None,
    force: bool,
    name: str | None,
    from_aws: bool,
    tags: tuple[TagFilter, ...],
    example: str | None,
    **aws: Any,
) -> None:
    """Write a first plan that validates: a template, a draft from AWS, or an example.

    Without --from-aws: a short template whose values to replace say TODO. With --from-aws: a
    draft of the resources in the region carrying every --tag (RDS instances and Aurora clusters,
    DynamoDB tables, EBS volumes, versioned S3 buckets, hosted zones, Auto Scaling groups, AWS
    Backup recovery points), one service per resource, with estimates and TODOs where a person must
    decide; what could not be drafted is listed with why. Exit 0 when the plan was written, 1 when
    --from-aws found nothing to draft or could not list what is tagged, 2 on a usage error (FILE
    exists without --force).

    \b
    Examples:
      drplan init -o plans/orders.json
      drplan init --from-aws --tag app=shop --region eu-west-1 -o plans/shop.json
      drplan init --example webshop -o plans/webshop.json
    """
    target = Path(output) if output else None
    if target is not None and target.exists() and not force:
        raise UsageError(f"{target} exists: pass --force to replace it")
    explicit_aws = [f"--{k.replace('_', '-')}" for k in ("profile", "endpoint_url", "role_arn") if aws.get(k)]
    if example is not None:
        if from_aws or tags or name:
            raise click.UsageError(
                "--example writes a shipped plan as it is: leave out --from-aws, --tag and --name"
            )
        _write(target, _example(example))
        say(f"wrote the example plan {example}" + (f" to {target}" if target else ""))
        sys.exit(EXIT_OK)
    if tags and not from_aws:
        raise click.UsageError("--tag selects resources for --from-aws: add --from-aws")
    if from_aws:
        if not tags:
            raise click.UsageError(
                "--from-aws needs at least one --tag KEY=VALUE: without one it would draft every resource of the account"
            )
        sys.exit(_from_aws(target, name, tags, aws))
    if explicit_aws:
        raise click.UsageError(f"{', '.join(explicit_aws)} only apply with --from-aws")
    _template(target, name, aws.get("region"))


def _example(name: str) -> bytes:
    from drplan.scaffold import example

    try:
        return example(name)
    except KeyError:
        raise click.BadParameter(
            f"{name!r} is not a shipped example; choose one of {', '.join(_example_names())}",
            param_hint="--example",
        ) from None


def _write(target: Path | None, data: bytes) -> None:
    if target is None:
        click.echo(data.decode("utf-8"), nl=False)
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the folder {target.parent}: {exc.strerror or exc}") from exc
    write_output(target, data)


def _template(target: Path | None, name: str | None, region: str | None) -> None:
    from drplan.scaffold import plan_name, render, template

    chosen = region or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1"
    _check_region(chosen)
    plan = name or plan_name(target.stem if target else None, None)
    if plan == "draft":
        plan = "my-system"
    draft = template(plan, chosen)
    data = render(draft)
    _write(target, data)
    code = _validated(data, target)
    where = str(target) if target else "standard output"
    say(f"wrote a plan template to {where}: replace what says TODO before it means anything:")
    for todo in draft.todos:
        say(f"  TODO {todo}")
    if target:
        say(f"then check it with: drplan validate {target}  (and drplan plan {target} for the predicted RTO)")
    sys.exit(code)


def _check_region(region: str) -> None:
    """The region the plan will name: one botocore knows, as `drplan validate` requires (DR104)."""
    from drplan.regions import known_regions

    regions = known_regions()
    if regions is not None and region not in regions.names:
        raise click.BadParameter(f"{region!r} is not an AWS region (e.g. us-east-1)", param_hint="--region")


def _from_aws(
    target: Path | None, name: str | None, tags: tuple[TagFilter, ...], opts: dict[str, Any]
) -> int:
    from drplan.scaffold import from_aws, render
    from drplan.scaffold.discover import DiscoveryFailed

    session = aws_session(opts, region=opts.get("region"), read_only=True)
    region = session.region_of(None)
    _check_region(region)
    wanted = " ".join(str(t) for t in tags)
    say(f"looking for resources tagged {wanted} in {region} (read-only)...")
    try:
        drafted = from_aws(session, region, tags, name=name)
    except DiscoveryFailed as exc:
        raise AwsError(
            str(exc), hint="check credentials, --region and the tag:GetResources permission"
        ) from exc
    estate, draft = drafted.estate, drafted.draft
    _report_estate(estate)
    if not draft.document["services"]:
        say(
            f"drplan: error: nothing to draft: no resource in {region} tagged {wanted} can be restored by drplan",
            always=True,
        )
        return EXIT_FINDINGS
    data = render(draft)
    _write(target, data)
    code = _validated(data, target)
    services = draft.document["services"]
    say(f"wrote a draft of {len(services)} service(s) to {target or 'standard output'}:")
    for sid, service in services.items():
        say(f"  {sid}: {', '.join(s['uses'] for s in service['steps'])}")
    say("TODO before trusting it (each is also in the plan's descriptions):")
    for todo in draft.todos:
        say(f"  TODO {todo}")
    return code


def _report_estate(estate: Estate) -> None:
    say(
        f"found {len(estate.found)} resource(s) to draft"
        + (f" in account {estate.account}" if estate.account else "")
    )
    if estate.skipped:
        say(f"skipped {len(estate.skipped)}:")
        for skipped in estate.skipped:
            say(f"  {skipped.what}: {skipped.reason}")
    for warning in estate.warnings:
        warn(warning)


def _validated(data: bytes, target: Path | None) -> int:
    """Run drplan's validation on what was written: a plan that does not validate is a drplan
    bug, said so, and the exit code is 1 (the file stays, to be fixed by hand)."""
    from drplan.scaffold import check

    result = check(data, str(target or "<stdout>"))
    for d in result.errors:
        say(f"{d.file}:{d.line}:{d.column}: {d.severity} {d.code} {d.message}", always=True)
    if result.errors:
        say(
            "drplan: error: the written plan does not validate: this is a drplan bug; please report it",
            always=True,
        )
        return EXIT_FINDINGS
    warnings = len(result.warnings)
    say(
        f"validated: 0 errors, {warnings} warning(s)"
        + (" (drplan validate shows them: each is a TODO too)" if warnings else "")
    )
    return EXIT_OK


# The shared --region help speaks of "the plan's aws.region"; init has no plan yet.
for _param in init.params:
    if _param.name == "region" and isinstance(_param, click.Option):
        _param.help = (
            "The template's aws.region (default: AWS_DEFAULT_REGION, else us-east-1); with --from-aws, "
            "the region searched (default: your AWS configuration's)."
        )

COMMANDS = (init,)
