"""Remove what drills left behind: by run (from its journal) or by tag (a sweep of a region).

A sweep finds resources by their ``drplan:*`` tags, without the run that made them; deletion then
works from a resource's kind and id alone (:mod:`drplan.removal`). It only ever touches resources
tagged ``drplan:mode=drill`` (sweep) or recorded as created by the run (``cleanup RUN_ID``), and
each deletion is verified by describing the resource until it is gone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from drplan.aws import AwsSession, describe_error, is_not_found
from drplan.removal import REMOVERS, Remover
from drplan.resources import Resource, delete_order, resource_from_arn


@dataclass(frozen=True)
class Found:
    resource: Resource
    run_id: str | None
    plan: str | None
    created: datetime | None


def find_drill_resources(
    aws: AwsSession, region: str, *, plan: str | None = None, run_id: str | None = None
) -> list[Found]:
    """Every resource in ``region`` tagged as created by a drill (optionally of one plan or run)."""
    filters = [{"Key": "drplan:mode", "Values": ["drill"]}]
    if plan:
        filters.append({"Key": "drplan:plan", "Values": [plan]})
    if run_id:
        filters.append({"Key": "drplan:run-id", "Values": [run_id]})
    client = aws.client("resourcegroupstaggingapi", region=region)
    found = []
    token = ""
    while True:
        page = (
            client.get_resources(TagFilters=filters, PaginationToken=token)
            if token
            else client.get_resources(TagFilters=filters)
        )
        for mapping in page.get("ResourceTagMappingList", []):
            tags = {t["Key"]: t["Value"] for t in mapping.get("Tags", [])}
            resource = resource_from_arn(mapping["ResourceARN"], region)
            if resource is None:
                continue
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
    found = _without_terminated_instances(aws, region, found)
    return sorted(found, key=lambda f: (delete_order(f.resource), f.resource.id))


def _without_terminated_instances(aws: AwsSession, region: str, found: list[Found]) -> list[Found]:
    """EC2 keeps listing terminated instances (with their tags) for a while: they are gone."""
    ids = [f.resource.id for f in found if f.resource.kind == "ec2:instance"]
    if not ids:
        return found
    reservations = aws.client("ec2", region=region).describe_instances(InstanceIds=ids)["Reservations"]
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


def remove(
    aws: AwsSession, resources: list[Resource], *, timeout: float = 1800.0, interval: float = 5.0
) -> list[Removal]:
    """Delete each resource and wait until a describe proves it gone (DB instances before clusters)."""
    results = []
    for resource in sorted(resources, key=delete_order):
        remover = REMOVERS.get(resource.kind)
        if remover is None:
            results.append(
                Removal(resource, False, f"drplan cannot delete {resource.kind} resources; remove it by hand")
            )
            continue
        results.append(_remove_one(aws, resource, remover, timeout, interval))
    return results


def _remove_one(
    aws: AwsSession, resource: Resource, remover: Remover, timeout: float, interval: float
) -> Removal:
    """Call the remover until it says the resource is gone, or ``timeout`` seconds pass."""

    def client(service: str) -> Any:
        return aws.client(service, region=resource.region)

    deadline = time.monotonic() + timeout
    wait = min(0.2, interval)  # most deletions are done (or well under way) at once: look again soon
    try:
        while (note := remover(client, resource.id)) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"still there after {int(timeout)}s ({note})")
            time.sleep(wait)
            wait = min(wait * 2, interval)
    except Exception as exc:
        if is_not_found(exc):
            return Removal(resource, True)
        return Removal(resource, False, describe_error(exc))
    return Removal(resource, True)
