"""Remove what drills left behind: by run (from its journal) or by tag (a sweep of a region).

A sweep finds resources by their ``drplan:*`` tags, without the run that made them; deletion then
works from a resource's kind and id alone (:mod:`drplan.removal`). It only ever touches resources
tagged ``drplan:mode=drill`` (sweep) or recorded as created by the run (``cleanup RUN_ID``), and
each deletion is verified by describing the resource until it is gone.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from drplan.aws import (
    UNREACHABLE_GIVE_UP,
    AwsAccess,
    AwsSession,
    Reachability,
    describe_error,
    is_not_found,
    is_retryable,
    is_unreachable,
)
from drplan.removal import FINDERS, REMOVERS, Remover
from drplan.resources import Resource, delete_order, resource_from_arn


@dataclass(frozen=True)
class Found:
    resource: Resource
    run_id: str | None
    plan: str | None
    created: datetime | None


def find_drill_resources(
    aws: AwsSession,
    region: str,
    *,
    plan: str | None = None,
    run_id: str | None = None,
    role_arn: str | None = None,
) -> list[Found]:
    """Every resource in ``region`` tagged as created by a drill (optionally of one plan or run), in
    the caller's account, or in ``role_arn``'s (a step that ran in another account)."""
    filters = [{"Key": "drplan:mode", "Values": ["drill"]}]
    if plan:
        filters.append({"Key": "drplan:plan", "Values": [plan]})
    if run_id:
        filters.append({"Key": "drplan:run-id", "Values": [run_id]})
    client = aws.client("resourcegroupstaggingapi", region=region, role_arn=role_arn)
    found = []
    token = ""
    while True:
        page = (
            client.get_resources(TagFilters=filters, PaginationToken=token)
            if token
            else client.get_resources(TagFilters=filters)
        )
        for mapping in page.get("ResourceTagMappingList", []):
            tags = {t["Key"]: t.get("Value", "") for t in mapping.get("Tags", [])}
            resource = resource_from_arn(mapping["ResourceARN"], region)
            if resource is None:
                continue
            if role_arn:
                resource = replace(resource, role_arn=role_arn)
            created = None
            if "drplan:created" in tags:
                try:
                    created = datetime.strptime(tags["drplan:created"], "%Y-%m-%dT%H:%M:%SZ").replace(
                        tzinfo=timezone.utc
                    )
                except ValueError:
                    created = None
            found.append(Found(resource, tags.get("drplan:run-id"), tags.get("drplan:plan"), created))
        token = page.get("PaginationToken", "")
        if not token:
            break
    found = _without_terminated_instances(aws, region, found, role_arn)
    return sorted(found, key=lambda f: (delete_order(f.resource), f.resource.id))


def _without_terminated_instances(
    aws: AwsSession, region: str, found: list[Found], role_arn: str | None
) -> list[Found]:
    """EC2 keeps listing terminated instances (with their tags) for a while: they are gone."""
    ids = [f.resource.id for f in found if f.resource.kind == "ec2:instance"]
    if not ids:
        return found
    ec2 = aws.client("ec2", region=region, role_arn=role_arn)
    reservations = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    terminated = {
        i["InstanceId"] for r in reservations for i in r["Instances"] if i["State"]["Name"] == "terminated"
    }
    return [f for f in found if f.resource.id not in terminated]


def older_than(found: list[Found], age: timedelta, now: datetime | None = None) -> list[Found]:
    """Resources created more than ``age`` ago (those without a creation tag are kept out)."""
    now = now or datetime.now(timezone.utc)
    return [f for f in found if f.created is not None and now - f.created > age]


@dataclass
class Removal:
    resource: Resource
    removed: bool
    error: str | None = None


def find_intended(
    aws: AwsAccess, intents: list[tuple[str, dict[str, Any]]], *, run_id: str, drill: bool
) -> tuple[list[tuple[str, Resource]], list[str]]:
    """Resources a run meant to create (its journaled intents) that exist and are its own, found by
    name: (step, resource) pairs, and the intents that could not be looked up (why)."""
    found: list[tuple[str, Resource]] = []
    problems: list[str] = []
    for step, target in intents:
        kind, name, region = target["kind"], target["name"], target.get("region")
        role_arn = target.get("role_arn")
        finder = FINDERS.get(kind)
        if finder is None:
            continue

        def client(service: str, region: str | None = region, role_arn: str | None = role_arn) -> Any:
            return aws.client(service, region=region, role_arn=role_arn)

        try:
            ids = finder(client, name, run_id, drill, target.get("extra"))
        except Exception as exc:
            problems.append(f"{kind} {name}: could not look it up ({describe_error(exc)})")
            continue
        for native in ids:
            found.append(
                (
                    step,
                    Resource(
                        kind, native, region, extra={"name": name, "found_by": "name"}, role_arn=role_arn
                    ),
                )
            )
    return found, problems


def remove(
    aws: AwsAccess,
    resources: list[Resource],
    *,
    timeout: float = 1800.0,
    interval: float = 5.0,
    stop: threading.Event | None = None,
    reachability: Reachability | None = None,
) -> list[Removal]:
    """Delete each resource and wait until a describe proves it gone, within ``timeout`` seconds in
    all. Deletions run in parallel, in rounds by kind (DB instances before the clusters they belong
    to); ``stop`` (a second Ctrl-C) ends the waiting, leaving what remains for a later cleanup.
    ``reachability``: what the caller already knows of AWS answering (a run's undo passes its own),
    so that a dead endpoint costs one give-up in all."""
    deadline = time.monotonic() + timeout
    results: dict[tuple[str, str], Removal] = {}
    rounds: dict[int, list[Resource]] = {}
    for resource in resources:
        rounds.setdefault(delete_order(resource), []).append(resource)
    reachability = reachability or Reachability()  # one give-up for a dead endpoint, not one per round
    for order in sorted(rounds):
        batch = rounds[order]
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(batch))), thread_name_prefix="remove") as pool:
            for removal in pool.map(
                lambda r: _remove_one(aws, r, deadline, interval, stop, reachability), batch
            ):
                results[removal.resource.key] = removal
    return [results[r.key] for r in resources]


def _remove_one(
    aws: AwsAccess,
    resource: Resource,
    deadline: float,
    interval: float,
    stop: threading.Event | None,
    reachability: Reachability,
) -> Removal:
    """Call the remover until it says the resource is gone, the deadline passes or ``stop`` is set.

    Throttling and an unreachable endpoint are retried with a back-off; an endpoint unreachable for
    :data:`UNREACHABLE_GIVE_UP` seconds in a row ends the wait early (the network, not AWS, is down:
    waiting the whole deadline would only hold up the rest of the cleanup), leaving the resource to
    a later ``drplan cleanup``."""
    remover: Remover | None = REMOVERS.get(resource.kind)
    if remover is None:
        return Removal(resource, False, f"drplan cannot delete {resource.kind} resources; remove it by hand")

    def client(service: str) -> Any:
        return aws.client(service, region=resource.region, role_arn=resource.role_arn)

    if reachability.down_for() >= UNREACHABLE_GIVE_UP:  # a round after AWS went away: skip it
        return Removal(
            resource, False, f"not tried: AWS had been unreachable for {UNREACHABLE_GIVE_UP:.0f} s"
        )
    wait = min(0.2, interval)  # most deletions are done (or well under way) at once: look again soon
    while True:
        try:
            note = remover(client, resource.id)
        except Exception as exc:
            if is_not_found(exc):
                reachability.answered()
                return Removal(resource, True)
            if not is_retryable(exc):
                reachability.answered()
                return Removal(resource, False, describe_error(exc))
            now = time.monotonic()
            pause = min(interval * 2, max(0.0, deadline - now))
            if is_unreachable(exc):
                down_for = reachability.unreachable()
                if down_for >= UNREACHABLE_GIVE_UP:
                    return Removal(
                        resource,
                        False,
                        f"AWS was unreachable for {UNREACHABLE_GIVE_UP:.0f} s: {describe_error(exc)}",
                    )
                pause = min(pause, max(0.5, UNREACHABLE_GIVE_UP - down_for))  # give up when due
            else:
                reachability.answered()
            if now >= deadline:
                return Removal(
                    resource, False, f"AWS kept failing until cleanup gave up: {describe_error(exc)}"
                )
            if _stopped(stop, pause):
                return Removal(resource, False, f"cleanup was stopped ({describe_error(exc)})")
            continue
        reachability.answered()
        if note is None:
            return Removal(resource, True)
        if time.monotonic() + wait > deadline:
            return Removal(resource, False, f"still there when cleanup gave up waiting ({note})")
        if _stopped(stop, wait):
            return Removal(resource, False, f"cleanup was stopped ({note})")
        wait = min(wait * 2, interval)


def _stopped(stop: threading.Event | None, pause: float) -> bool:
    """Sleep ``pause`` seconds; True when ``stop`` was set meanwhile."""
    if stop is not None:
        return stop.wait(pause)
    time.sleep(pause)
    return False
