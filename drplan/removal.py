"""Delete AWS resources by kind and verify they are gone; used by undo of AWS Backup restores,
``drplan cleanup RUN_ID`` and ``cleanup --sweep``.

A remover takes ``client`` (``client("rds")`` is a boto3 client for the resource's region) and the
resource's id. Each call moves the deletion on by one step and returns None once a describe proves
the resource gone, else a note on its progress; callers call again until it returns None or they
give up. "Already gone" and "busy" (creating, modifying, attached, deleting) are left to the next
call, and deletion protection is turned off: removers are only given resources drplan created
(recorded by a run, or tagged ``drplan:mode=drill``). Nothing here imports boto3.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from drplan.aws import error_code, error_message, is_not_found
from drplan.resources import RESTORE_JOB_PREFIX, native_id

#: ``client("rds")``: a boto3 client of that service for the resource's region.
Client = Callable[[str], Any]
#: ``remover(client, id)``: None once the resource is gone, else a note on progress.
Remover = Callable[[Client, str], str | None]

#: Errors that mean "the resource is busy (creating, modifying, attached): delete it later".
BUSY = frozenset({
    "InvalidDBInstanceState", "InvalidDBClusterStateFault", "ResourceInUseException", "VolumeInUse",
    "IncorrectState", "IncorrectInstanceState", "FileSystemInUse", "BucketNotEmpty",
})  # fmt: skip


def lookup(fn: Callable[[], Any]) -> Any:
    """``fn()``, or None when AWS says the resource does not exist."""
    try:
        return fn()
    except Exception as exc:
        if is_not_found(exc):
            return None
        raise


def _delete(call: Callable[[], Any], unprotect: Callable[[], Any] | None = None) -> None:
    """Issue a delete; "already gone" and "busy" are fine (the next verification retries), a
    deletion-protected resource is unprotected first."""
    try:
        call()
    except Exception as exc:
        code = error_code(exc) or ""
        if is_not_found(exc) or code in BUSY:
            return
        if unprotect is not None and (
            code == "OperationNotPermitted" or "protect" in error_message(exc).lower()
        ):
            unprotect()  # the next verification deletes it
            return
        raise


# --- describes (None when the resource does not exist) --------------------------------------------


def describe_db_instance(client: Client, name: str) -> dict[str, Any] | None:
    rds = client("rds")
    found: dict[str, Any] | None = lookup(
        lambda: rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]
    )
    return found


def describe_db_cluster(client: Client, name: str) -> dict[str, Any] | None:
    rds = client("rds")
    found: dict[str, Any] | None = lookup(
        lambda: rds.describe_db_clusters(DBClusterIdentifier=name)["DBClusters"][0]
    )
    return found


def describe_table(client: Client, name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = lookup(lambda: client("dynamodb").describe_table(TableName=name)["Table"])
    return found


def bucket_exists(client: Client, name: str) -> bool:
    try:
        return lookup(lambda: client("s3").head_bucket(Bucket=name)) is not None
    except Exception as exc:
        if error_code(exc) == "403":  # the name belongs to someone else's bucket
            return True
        raise


# --- removers ---------------------------------------------------------------------------------------


def remove_db_instance(client: Client, name: str) -> str | None:
    db = describe_db_instance(client, name)
    if db is None:
        return None
    rds = client("rds")
    if db.get("DBInstanceStatus") != "deleting":
        _delete(
            lambda: rds.delete_db_instance(
                DBInstanceIdentifier=name, SkipFinalSnapshot=True, DeleteAutomatedBackups=True
            ),
            lambda: rds.modify_db_instance(
                DBInstanceIdentifier=name, DeletionProtection=False, ApplyImmediately=True
            ),
        )
    return f"DB instance {name} is {db.get('DBInstanceStatus')}"


def remove_db_cluster(client: Client, name: str) -> str | None:
    """The cluster's instances first (RDS deletes a cluster only once they are going), then it."""
    cluster = describe_db_cluster(client, name)
    if cluster is None:
        return None
    members = [m["DBInstanceIdentifier"] for m in cluster.get("DBClusterMembers", [])]
    left = [m for m in members if remove_db_instance(client, m) is not None]
    rds = client("rds")
    if cluster.get("Status") != "deleting":
        _delete(
            lambda: rds.delete_db_cluster(DBClusterIdentifier=name, SkipFinalSnapshot=True),
            lambda: rds.modify_db_cluster(
                DBClusterIdentifier=name, DeletionProtection=False, ApplyImmediately=True
            ),
        )
    waiting = f", deleting {len(left)} DB instance(s) first" if left else ""
    return f"DB cluster {name} is {cluster.get('Status')}{waiting}"


def remove_table(client: Client, name: str) -> str | None:
    table = describe_table(client, name)
    if table is None:
        return None
    ddb = client("dynamodb")
    if table.get("TableStatus") != "DELETING":
        _delete(
            lambda: ddb.delete_table(TableName=name),
            lambda: ddb.update_table(TableName=name, DeletionProtectionEnabled=False),
        )
    return f"table {name} is {table.get('TableStatus')}"


def remove_volume(client: Client, volume_id: str) -> str | None:
    """Detach the volume where it is attached (not forced: a stuck detach waits for a person
    rather than risk the instance's file system), then delete it."""
    ec2 = client("ec2")
    volume = lookup(lambda: ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0])
    if volume is None or volume.get("State") == "deleted":
        return None
    attachments = [a for a in volume.get("Attachments", []) if a.get("State") != "detached"]
    for attachment in attachments:
        if attachment.get("State") in ("attaching", "attached"):
            _delete(partial(ec2.detach_volume, VolumeId=volume_id, InstanceId=attachment["InstanceId"]))
    if attachments:
        instances = ", ".join(a["InstanceId"] for a in attachments)
        return f"volume {volume_id}: detaching from {instances}"
    if volume.get("State") != "deleting":
        _delete(lambda: ec2.delete_volume(VolumeId=volume_id))
    return f"volume {volume_id} is {volume.get('State')}"


def remove_instance(client: Client, instance_id: str) -> str | None:
    ec2 = client("ec2")
    reservations = lookup(lambda: ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]) or []
    instances = [i for r in reservations for i in r.get("Instances", [])]
    state = instances[0].get("State", {}).get("Name") if instances else "terminated"
    if state == "terminated":
        return None
    if state != "shutting-down":
        _delete(
            lambda: ec2.terminate_instances(InstanceIds=[instance_id]),
            lambda: ec2.modify_instance_attribute(
                InstanceId=instance_id, DisableApiTermination={"Value": False}
            ),
        )
    return f"instance {instance_id} is {state}"


def remove_file_system(client: Client, fs_id: str) -> str | None:
    efs = client("efs")
    fs = lookup(lambda: efs.describe_file_systems(FileSystemId=fs_id)["FileSystems"][0])
    if fs is None or fs.get("LifeCycleState") == "deleted":
        return None
    if fs.get("LifeCycleState") == "deleting":
        return f"file system {fs_id} is deleting"
    targets = efs.describe_mount_targets(FileSystemId=fs_id).get("MountTargets", [])
    for target in targets:  # EFS deletes a file system only without mount targets
        if target.get("LifeCycleState") not in ("deleting", "deleted"):
            _delete(partial(efs.delete_mount_target, MountTargetId=target["MountTargetId"]))
    if targets:
        return f"file system {fs_id}: removing {len(targets)} mount target(s)"
    _delete(lambda: efs.delete_file_system(FileSystemId=fs_id))
    return f"file system {fs_id} is {fs.get('LifeCycleState')}"


#: FSx deletes take the file system type's own options: no final backup of a copy drplan made (a
#: drill's, or a failed recovery's), and an OpenZFS file system's child volumes and snapshots with it.
_FSX_DELETE: dict[str, dict[str, Any]] = {
    "WINDOWS": {"WindowsConfiguration": {"SkipFinalBackup": True}},
    "LUSTRE": {"LustreConfiguration": {"SkipFinalBackup": True}},
    "OPENZFS": {
        "OpenZFSConfiguration": {"SkipFinalBackup": True, "Options": ["DELETE_CHILD_VOLUMES_AND_SNAPSHOTS"]}
    },
}


def remove_fsx_file_system(client: Client, fs_id: str) -> str | None:
    """An FSx for Windows File Server, Lustre or OpenZFS file system, without a final backup. (FSx for
    ONTAP wants its volumes and storage virtual machines deleted first: FSx says so, and drplan
    reports it.)"""
    fsx = client("fsx")
    found = lookup(lambda: fsx.describe_file_systems(FileSystemIds=[fs_id])["FileSystems"]) or []
    fs = found[0] if found else None
    if fs is None or fs.get("Lifecycle") == "DELETED":
        return None
    if fs.get("Lifecycle") != "DELETING":
        options = _FSX_DELETE.get(str(fs.get("FileSystemType")), {})
        _delete(lambda: fsx.delete_file_system(FileSystemId=fs_id, **options))
    return f"FSx file system {fs_id} is {fs.get('Lifecycle')}"


def remove_bucket(client: Client, name: str) -> str | None:
    """One page at a time (each call deletes up to 1000 object versions), then the bucket."""
    s3 = client("s3")
    if not bucket_exists(client, name):
        return None
    page = s3.list_object_versions(Bucket=name, MaxKeys=1000)
    objects = [
        {"Key": v["Key"], "VersionId": v["VersionId"]}
        for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
    ]
    if objects:
        s3.delete_objects(Bucket=name, Delete={"Objects": objects, "Quiet": True})
        return f"bucket {name}: deleted {len(objects)} object version(s)"
    _delete(lambda: s3.delete_bucket(Bucket=name))
    return f"bucket {name} is being deleted"


def remove_record(client: Client, record_id: str) -> str | None:
    """``<zone>/<fqdn>/<type>[/<set id>]``: delete the record set while it is listed."""
    zone, name, kind, *rest = record_id.split("/")
    route53 = client("route53")
    records = (
        lookup(
            lambda: route53.list_resource_record_sets(
                HostedZoneId=zone, StartRecordName=name, StartRecordType=kind
            )["ResourceRecordSets"]
        )
        or []
    )
    matching = [
        record
        for record in records
        if record["Name"].rstrip(".") == name.rstrip(".")
        and record["Type"] == kind
        and (not rest or record.get("SetIdentifier") == rest[0])
    ]
    if not matching:
        return None
    for record in matching:
        change = {"Changes": [{"Action": "DELETE", "ResourceRecordSet": record}]}
        try:
            route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch=change)
        except Exception as exc:  # deleted since it was listed: the next call verifies
            if not (error_code(exc) == "InvalidChangeBatch" and "not found" in error_message(exc)):
                raise
    return f"record {name} {kind} is being deleted"


# --- finding what a run meant to create, by name (write-ahead intents) -----------------------------


def _tags(items: Any) -> dict[str, str]:
    return {t.get("Key"): t.get("Value") for t in items or []}


def _owned(tags: dict[str, str], run_id: str, name: str, drill: bool) -> bool:
    """Is a resource with this name ours? Tagged with our run id, or (drills only) its name carries
    the run id: drill names always end in a suffix holding the whole run id, so a resource with that
    name was made by this run even when the process died before it could tag it."""
    return tags.get("drplan:run-id") == run_id or (drill and run_id in name)


def _find_db_instance(client: Client, name: str, run_id: str, drill: bool, extra: Any) -> list[str]:
    db = describe_db_instance(client, name)
    return [name] if db is not None and _owned(_tags(db.get("TagList")), run_id, name, drill) else []


def _find_db_cluster(client: Client, name: str, run_id: str, drill: bool, extra: Any) -> list[str]:
    cluster = describe_db_cluster(client, name)
    return (
        [name] if cluster is not None and _owned(_tags(cluster.get("TagList")), run_id, name, drill) else []
    )


def _find_table(client: Client, name: str, run_id: str, drill: bool, extra: Any) -> list[str]:
    table = describe_table(client, name)
    if table is None:
        return []
    tags: dict[str, str] = {}
    if not (drill and run_id in name):  # only then are the tags needed (one more call)
        found = lookup(lambda: client("dynamodb").list_tags_of_resource(ResourceArn=table["TableArn"]))
        tags = _tags((found or {}).get("Tags"))
    return [name] if _owned(tags, run_id, name, drill) else []


def _find_bucket(client: Client, name: str, run_id: str, drill: bool, extra: Any) -> list[str]:
    if not bucket_exists(client, name):
        return []
    if drill and run_id in name:
        return [name]
    try:
        tags = _tags(client("s3").get_bucket_tagging(Bucket=name).get("TagSet"))
    except Exception as exc:
        if error_code(exc) in ("NoSuchTagSet", "AccessDenied", "403"):
            return []
        raise
    return [name] if _owned(tags, run_id, name, drill) else []


def _find_tagged_ec2(resource_type: str) -> Callable[[Client, str, str, bool, Any], list[str]]:
    """Volumes and instances are named by their Name tag, which is not unique: only those that also
    carry our run id (EC2 tags them in the create call itself) are ours."""

    def find(client: Client, name: str, run_id: str, drill: bool, extra: Any) -> list[str]:
        ec2 = client("ec2")
        filters = [{"Name": "tag:Name", "Values": [name]}, {"Name": "tag:drplan:run-id", "Values": [run_id]}]
        if resource_type == "volume":
            volumes = ec2.describe_volumes(Filters=filters).get("Volumes", [])
            return [v["VolumeId"] for v in volumes if v.get("State") not in ("deleting", "deleted")]
        reservations = ec2.describe_instances(Filters=filters).get("Reservations", [])
        return [
            i["InstanceId"]
            for r in reservations
            for i in r.get("Instances", [])
            if i.get("State", {}).get("Name") not in ("terminated", "shutting-down")
        ]

    return find


def _find_file_system(client: Client, name: str, run_id: str, drill: bool, extra: Any) -> list[str]:
    systems = client("efs").describe_file_systems(CreationToken=name).get("FileSystems", [])
    return [
        fs["FileSystemId"]
        for fs in systems
        if _owned(_tags(fs.get("Tags")), run_id, name, drill) and fs.get("LifeCycleState") != "deleted"
    ]


def _find_fsx_file_system(client: Client, name: str, run_id: str, drill: bool, extra: Any) -> list[str]:
    """FSx file systems are named by their Name tag: those with our run id too are ours."""
    fsx = client("fsx")
    found: list[str] = []
    kwargs: dict[str, Any] = {}
    while True:
        page = fsx.describe_file_systems(**kwargs)
        for fs in page.get("FileSystems", []):
            tags = _tags(fs.get("Tags"))
            ours = tags.get("Name") == name and tags.get("drplan:run-id") == run_id
            if ours and fs.get("Lifecycle") not in ("DELETING", "DELETED"):
                found.append(str(fs["FileSystemId"]))
        if not page.get("NextToken"):
            return found
        kwargs = {"NextToken": page["NextToken"]}


def _find_record(client: Client, name: str, run_id: str, drill: bool, extra: Any) -> list[str]:
    """A drill's DNS record: drills refuse to start when their record name exists, so one that exists
    after the drill began is the drill's. Records carry no tags: never looked up outside drills."""
    zone, kind = (extra or {}).get("zone_id"), (extra or {}).get("type", "CNAME")
    if not drill or not zone or "${" in zone:
        return []
    route53 = client("route53")
    zone_info = lookup(lambda: route53.get_hosted_zone(Id=zone))
    if zone_info is None:
        return []
    zone_name = str(zone_info["HostedZone"]["Name"]).rstrip(".").lower()
    short = name.rstrip(".").lower()
    fqdn = short if short == zone_name or short.endswith("." + zone_name) else f"{short}.{zone_name}"
    set_id = (extra or {}).get("set_identifier")
    record_id = f"{zone}/{fqdn}/{kind}" + (f"/{set_id}" if set_id else "")
    records = route53.list_resource_record_sets(HostedZoneId=zone, StartRecordName=fqdn, StartRecordType=kind)
    for record in records.get("ResourceRecordSets", []):
        same = record["Name"].rstrip(".").lower() == fqdn and record["Type"] == kind
        if same and (set_id is None or record.get("SetIdentifier") == set_id):
            return [record_id]
    return []


#: Finders by kind: ``finder(client, name, run_id, drill, extra)`` -> ids of existing resources with
#: that name that this run created. Used for intents journaled before a create call whose outcome the
#: journal does not know (the process died during it).
Finder = Callable[[Client, str, str, bool, Any], list[str]]
FINDERS: dict[str, Finder] = {
    "rds:db": _find_db_instance,
    "rds:cluster": _find_db_cluster,
    "dynamodb:table": _find_table,
    "s3:bucket": _find_bucket,
    "ec2:volume": _find_tagged_ec2("volume"),
    "ec2:instance": _find_tagged_ec2("instance"),
    "efs:filesystem": _find_file_system,
    "fsx:filesystem": _find_fsx_file_system,
    "route53:record": _find_record,
}


def created_by_restore_job(remover: Remover) -> Remover:
    """``remover``, also for a resource known only as the AWS Backup restore job creating it
    (``backup-restore-job:<id>``, :data:`drplan.resources.RESTORE_JOB_PREFIX`): the job's
    ``CreatedResourceArn`` names what to delete, never a guess from a name; a job that ended
    without creating anything leaves nothing to delete, and a running one is waited for."""

    def remove(client: Client, ident: str) -> str | None:
        if not ident.startswith(RESTORE_JOB_PREFIX):
            return remover(client, ident)
        job_id = ident[len(RESTORE_JOB_PREFIX) :]
        job = lookup(lambda: client("backup").describe_restore_job(RestoreJobId=job_id))
        if job is None:
            return None
        created = job.get("CreatedResourceArn")
        if created:
            return remover(client, native_id(str(created)))
        status = job.get("Status")
        if status in ("PENDING", "RUNNING"):
            return f"restore job {job_id} is {status}: waiting to delete what it creates"
        return None  # COMPLETED naming nothing, ABORTED, FAILED: nothing was created

    return remove


#: The remover of each resource kind (``Resource.kind``).
REMOVERS: dict[str, Remover] = {
    "rds:db": remove_db_instance,
    "rds:cluster": remove_db_cluster,
    "dynamodb:table": remove_table,
    "ec2:volume": created_by_restore_job(remove_volume),
    "ec2:instance": created_by_restore_job(remove_instance),
    "efs:filesystem": created_by_restore_job(remove_file_system),
    "fsx:filesystem": created_by_restore_job(remove_fsx_file_system),
    "s3:bucket": remove_bucket,
    "route53:record": remove_record,
}
