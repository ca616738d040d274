"""Remove what drills left behind: by run (from its journal) or by tag (a sweep of a region).

Deletion here works from a resource's kind and id alone, because a sweep finds resources by their
``drplan:*`` tags without the run that made them. It only ever touches resources tagged
``drplan:mode=drill`` (sweep) or recorded as created by the run (``cleanup RUN_ID``), and each
deletion is verified by describing the resource until it is gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from drplan.actions.base import Resource
from drplan.aws import AwsSession, describe_error, error_code


def _not_found(exc: BaseException) -> bool:
    code = error_code(exc) or ""
    return "NotFound" in code or code in (
        "ResourceNotFoundException",
        "NoSuchBucket",
        "404",
        "NoSuchHostedZone",
    )


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
    return sorted(found, key=lambda f: (_ORDER.get(f.resource.kind, 9), f.resource.id))


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


def resource_from_arn(arn: str, region: str) -> Resource | None:
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return None
    service, rest = parts[2], parts[5]
    if service == "rds" and rest.startswith("db:"):
        return Resource("rds:db", rest[3:], region, arn)
    if service == "rds" and rest.startswith("cluster:"):
        return Resource("rds:cluster", rest[8:], region, arn)
    if service == "dynamodb" and rest.startswith("table/"):
        return Resource("dynamodb:table", rest[6:].split("/")[0], region, arn)
    if service == "ec2" and rest.startswith("volume/"):
        return Resource("ec2:volume", rest[7:], region, arn)
    if service == "ec2" and rest.startswith("instance/"):
        return Resource("ec2:instance", rest[9:], region, arn)
    if service == "elasticfilesystem" and rest.startswith("file-system/"):
        return Resource("efs:filesystem", rest[12:], region, arn)
    if service == "s3":
        return Resource("s3:bucket", rest, region, arn)
    return None


# Delete instances before the clusters they belong to; everything else in any order.
_ORDER = {"rds:db": 0, "rds:cluster": 1}


def _delete_db(aws: AwsSession, r: Resource) -> None:
    aws.client("rds", region=r.region).delete_db_instance(
        DBInstanceIdentifier=r.id, SkipFinalSnapshot=True, DeleteAutomatedBackups=True
    )


def _db_gone(aws: AwsSession, r: Resource) -> bool:
    try:
        aws.client("rds", region=r.region).describe_db_instances(DBInstanceIdentifier=r.id)
    except Exception as exc:
        if _not_found(exc):
            return True
        raise
    return False


def _delete_cluster(aws: AwsSession, r: Resource) -> None:
    rds = aws.client("rds", region=r.region)
    for member in rds.describe_db_clusters(DBClusterIdentifier=r.id)["DBClusters"][0].get(
        "DBClusterMembers", []
    ):
        try:
            rds.delete_db_instance(
                DBInstanceIdentifier=member["DBInstanceIdentifier"], SkipFinalSnapshot=True
            )
        except Exception as exc:
            if not _not_found(exc):
                raise
    rds.delete_db_cluster(DBClusterIdentifier=r.id, SkipFinalSnapshot=True)


def _cluster_gone(aws: AwsSession, r: Resource) -> bool:
    try:
        aws.client("rds", region=r.region).describe_db_clusters(DBClusterIdentifier=r.id)
    except Exception as exc:
        if _not_found(exc):
            return True
        raise
    return False


def _delete_table(aws: AwsSession, r: Resource) -> None:
    aws.client("dynamodb", region=r.region).delete_table(TableName=r.id)


def _table_gone(aws: AwsSession, r: Resource) -> bool:
    try:
        aws.client("dynamodb", region=r.region).describe_table(TableName=r.id)
    except Exception as exc:
        if _not_found(exc):
            return True
        raise
    return False


def _delete_volume(aws: AwsSession, r: Resource) -> None:
    ec2 = aws.client("ec2", region=r.region)
    volume = ec2.describe_volumes(VolumeIds=[r.id])["Volumes"][0]
    for attachment in volume.get("Attachments", []):
        ec2.detach_volume(VolumeId=r.id, InstanceId=attachment["InstanceId"], Force=True)
    ec2.delete_volume(VolumeId=r.id)


def _volume_gone(aws: AwsSession, r: Resource) -> bool:
    try:
        volumes = aws.client("ec2", region=r.region).describe_volumes(VolumeIds=[r.id])["Volumes"]
    except Exception as exc:
        if _not_found(exc):
            return True
        raise
    return not volumes or volumes[0].get("State") == "deleted"


def _delete_instance(aws: AwsSession, r: Resource) -> None:
    aws.client("ec2", region=r.region).terminate_instances(InstanceIds=[r.id])


def _instance_gone(aws: AwsSession, r: Resource) -> bool:
    try:
        reservations = aws.client("ec2", region=r.region).describe_instances(InstanceIds=[r.id])[
            "Reservations"
        ]
    except Exception as exc:
        if _not_found(exc):
            return True
        raise
    states = [i["State"]["Name"] for res in reservations for i in res["Instances"]]
    return all(state == "terminated" for state in states)


def _delete_file_system(aws: AwsSession, r: Resource) -> None:
    efs = aws.client("efs", region=r.region)
    targets = efs.describe_mount_targets(FileSystemId=r.id).get("MountTargets", [])
    for target in targets:
        efs.delete_mount_target(MountTargetId=target["MountTargetId"])
    if not targets:  # mount targets go first; the next round deletes the file system
        efs.delete_file_system(FileSystemId=r.id)


def _file_system_gone(aws: AwsSession, r: Resource) -> bool:
    try:
        systems = aws.client("efs", region=r.region).describe_file_systems(FileSystemId=r.id)["FileSystems"]
    except Exception as exc:
        if _not_found(exc):
            return True
        raise
    if (
        systems
        and systems[0].get("LifeCycleState") == "available"
        and not systems[0].get("NumberOfMountTargets")
    ):
        _delete_file_system(aws, r)
    return not systems or systems[0].get("LifeCycleState") == "deleted"


def _delete_bucket(aws: AwsSession, r: Resource) -> None:
    s3 = aws.client("s3", region=r.region)
    kwargs: dict[str, Any] = {"Bucket": r.id}
    while True:
        page = s3.list_object_versions(**kwargs)
        doomed = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
        ]
        for start in range(0, len(doomed), 1000):
            s3.delete_objects(Bucket=r.id, Delete={"Objects": doomed[start : start + 1000], "Quiet": True})
        if not page.get("IsTruncated"):
            break
        kwargs.update(KeyMarker=page.get("NextKeyMarker"), VersionIdMarker=page.get("NextVersionIdMarker"))
    s3.delete_bucket(Bucket=r.id)


def _bucket_gone(aws: AwsSession, r: Resource) -> bool:
    try:
        aws.client("s3", region=r.region).head_bucket(Bucket=r.id)
    except Exception as exc:
        if _not_found(exc):
            return True
        raise
    return False


def _delete_record(aws: AwsSession, r: Resource) -> None:
    zone, name, kind, *rest = r.id.split("/")
    route53 = aws.client("route53", region=r.region)
    records = route53.list_resource_record_sets(
        HostedZoneId=zone, StartRecordName=name, StartRecordType=kind
    )["ResourceRecordSets"]
    for record in records:
        same = record["Name"].rstrip(".") == name.rstrip(".") and record["Type"] == kind
        if same and (not rest or record.get("SetIdentifier") == rest[0]):
            route53.change_resource_record_sets(
                HostedZoneId=zone,
                ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": record}]},
            )


def _record_gone(aws: AwsSession, r: Resource) -> bool:
    zone, name, kind, *rest = r.id.split("/")
    try:
        records = aws.client("route53", region=r.region).list_resource_record_sets(
            HostedZoneId=zone, StartRecordName=name, StartRecordType=kind
        )["ResourceRecordSets"]
    except Exception as exc:
        if _not_found(exc):
            return True
        raise
    return not any(
        x["Name"].rstrip(".") == name.rstrip(".")
        and x["Type"] == kind
        and (not rest or x.get("SetIdentifier") == rest[0])
        for x in records
    )


DELETERS: dict[str, tuple[Callable[[AwsSession, Resource], None], Callable[[AwsSession, Resource], bool]]] = {
    "rds:db": (_delete_db, _db_gone),
    "rds:cluster": (_delete_cluster, _cluster_gone),
    "dynamodb:table": (_delete_table, _table_gone),
    "ec2:volume": (_delete_volume, _volume_gone),
    "ec2:instance": (_delete_instance, _instance_gone),
    "efs:filesystem": (_delete_file_system, _file_system_gone),
    "s3:bucket": (_delete_bucket, _bucket_gone),
    "route53:record": (_delete_record, _record_gone),
}


@dataclass
class Removal:
    resource: Resource
    removed: bool
    error: str | None = None


def remove(
    aws: AwsSession, resources: list[Resource], *, timeout: float = 1800.0, interval: float = 5.0
) -> list[Removal]:
    """Delete each resource and wait until a describe proves it gone."""
    results = []
    ordered = sorted(resources, key=lambda r: _ORDER.get(r.kind, 9))
    for resource in ordered:
        if resource.kind not in DELETERS:
            results.append(
                Removal(resource, False, f"drplan cannot delete {resource.kind} resources; remove it by hand")
            )
            continue
        delete, gone = DELETERS[resource.kind]
        try:
            if not gone(aws, resource):
                delete(aws, resource)
            deadline = time.monotonic() + timeout
            while not gone(aws, resource):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"still there after {int(timeout)}s")
                time.sleep(interval)
        except Exception as exc:
            if _not_found(exc):
                results.append(Removal(resource, True))
                continue
            results.append(Removal(resource, False, describe_error(exc)))
            continue
        results.append(Removal(resource, True))
    return results
