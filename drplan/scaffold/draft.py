"""Turn what discovery found into a draft plan: one service per resource, with drplan's own actions.

The draft must validate (a test runs drplan's validation on it), so every value is one the schema
and the checks accept. Where a person must decide (the objectives, the order between services,
the DNS cut-over, the capacity a recovery needs, how far back a bucket is rewound), the draft holds
a working placeholder and says so twice: in the ``description`` of the plan or service (JSON has no
comments) and in :attr:`Draft.todos`, which ``drplan init`` prints. Estimates are the action's
typical duration from drplan's catalogue; each service's description says so, so nobody mistakes
them for measurements (a drill and ``drplan calibrate`` replace them).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from drplan.durations import format_duration, humanize
from drplan.scaffold.discover import (
    BACKUP_TYPES,
    AutoScalingGroup,
    BackupOnly,
    Bucket,
    DbCluster,
    DbInstance,
    Estate,
    Found,
    HostedZone,
    RecoveryPoint,
    Table,
    Volume,
)

#: Placeholder objectives: a person must replace them (the draft says so).
PLACEHOLDER_RTO = timedelta(hours=4)
PLACEHOLDER_RPO = timedelta(days=1)
#: How far back a drafted bucket rewind goes until a person decides.
PLACEHOLDER_REWIND = "PT1H"
#: The DNS cut-over placeholders: a record name under the zone and a value that cannot resolve
#: (``.invalid`` is reserved, RFC 6761), so a draft run by mistake points nothing anywhere real.
TODO_RECORD = "todo-cutover"
TODO_VALUE = "todo-restored-endpoint.invalid"
#: When a cluster's instance class cannot be drafted (none, or db.serverless, which the action's
#: `instance_class` cannot express).
PLACEHOLDER_CLASS = "db.r6g.large"
PLACEHOLDER_ROLE = "arn:aws:iam::{account}:role/TODO-backup-restore-role"

_ID = re.compile(r"[^a-z0-9_-]+")
_CLASS = re.compile(r"^db\.[a-z0-9]+\.[a-z0-9]+$")
_SG = re.compile(r"^sg-[0-9a-f]{8,17}$")


@dataclass
class Draft:
    """A plan document (the JSON ``drplan init`` writes) and what a person must still decide."""

    document: dict[str, Any]
    todos: list[str] = field(default_factory=list)


def service_id(name: str, used: set[str], prefix: str = "") -> str:
    """A service id (lowercase letters, digits, ``-``, ``_``, at most 63) from a resource name,
    unique among ``used``."""
    base = _ID.sub("-", name.lower()).strip("-_") or "service"
    if not base[0].isalnum():
        base = f"s{base}"
    base = f"{prefix}{base}"[:60].rstrip("-_")
    candidate, n = base, 1
    while candidate in used:
        n += 1
        candidate = f"{base}-{n}"
    used.add(candidate)
    return candidate


def restored_name(name: str, limit: int = 63) -> str:
    """``orders`` -> ``orders-restored``, within ``limit`` characters (drills add their suffix and
    shorten the base to fit, so the plan's own name must fit first)."""
    suffix = "-restored"
    return name[: limit - len(suffix)].rstrip("-_.") + suffix


def _age(created: datetime | None, now: datetime) -> str:
    if created is None:
        return "age unknown"
    when = created if created.tzinfo else created.replace(tzinfo=timezone.utc)
    return f"{humanize(max(timedelta(0), now - when))} old"


def _estimate(uses: str, params: dict[str, Any]) -> tuple[str, str]:
    """The action's typical duration from drplan's catalogue, and where it came from."""
    from drplan.actions import registry

    duration = registry()[uses].estimate(params)
    return format_duration(duration), f"Estimate {humanize(duration)}: drplan's typical duration for {uses}"


def _step(step_id: str, uses: str, params: dict[str, Any], **extra: Any) -> tuple[dict[str, Any], str]:
    estimate, source = _estimate(uses, params)
    return {"id": step_id, "uses": uses, "with": params, "estimate": estimate, **extra}, source


def _reachable(sid: str) -> dict[str, Any]:
    step, _ = _step(
        "reachable", "check.tcp", {"host": f"${{{sid}.restore.endpoint}}", "port": f"${{{sid}.restore.port}}"}
    )
    return step


def _size(size: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def _sgs(groups: tuple[str, ...]) -> list[str]:
    return [g for g in groups if _SG.match(g)]


class Drafter:
    def __init__(self, estate: Estate, now: datetime) -> None:
        self.estate = estate
        self.now = now
        self.used: set[str] = set()
        self.services: dict[str, dict[str, Any]] = {}
        self.todos: list[str] = []

    def new_id(self, name: str, prefix: str = "") -> str:
        return service_id(name, self.used, prefix)

    def service(self, sid: str, description: str, steps: list[dict[str, Any]]) -> None:
        self.services[sid] = {"description": description, "steps": steps}

    def draft(self, found: Found) -> None:
        if isinstance(found, DbInstance):
            self.db_instance(found)
        elif isinstance(found, DbCluster):
            self.db_cluster(found)
        elif isinstance(found, Table):
            self.table(found)
        elif isinstance(found, Volume):
            self.volume(found)
        elif isinstance(found, Bucket):
            self.bucket(found)
        elif isinstance(found, HostedZone):
            self.zone(found)
        elif isinstance(found, AutoScalingGroup):
            self.group(found)
        else:
            self.backup_only(found)

    # --- one method per kind ---------------------------------------------------------------------

    def db_instance(self, db: DbInstance) -> None:
        found = f"Found: DB instance {db.id} ({db.engine}, {db.instance_class}, {db.storage_gib} GiB)"
        if db.latest_snapshot is None and not db.automated_backups and db.backup_point is not None:
            self.from_backup(db.id, db.arn, db.backup_point, found + ", no snapshot and no automated backups")
            return
        params: dict[str, Any] = {}
        if db.latest_snapshot is not None or not db.automated_backups:
            uses = "aws.rds.restore_snapshot"
            params = {"source_instance": db.id, "snapshot": "latest", "target": restored_name(db.id)}
            if db.latest_snapshot is not None:
                found += (
                    f"; newest snapshot {db.latest_snapshot.id}, {_age(db.latest_snapshot.created, self.now)}"
                )
            else:
                found += (
                    "; TODO: it has no snapshot and no automated backups, so there is nothing to restore yet"
                )
                self.todos.append(f"DB instance {db.id} has no snapshot and no automated backups: back it up")
        else:
            uses = "aws.rds.restore_point_in_time"
            params = {"source_instance": db.id, "restore_time": "latest", "target": restored_name(db.id)}
            found += "; no snapshot, automated backups on: restored to its latest restorable time"
        sid = self.new_id(db.id)
        if _CLASS.match(db.instance_class):
            params["instance_class"] = db.instance_class
        if db.subnet_group:
            params["subnet_group"] = db.subnet_group
        if _sgs(db.security_groups):
            params["security_groups"] = _sgs(db.security_groups)
        step, source = _step("restore", uses, params)
        self.service(sid, f"{found}. {source}.", [step, _reachable(sid)])

    def db_cluster(self, cluster: DbCluster) -> None:
        found = f"Found: DB cluster {cluster.id} ({cluster.engine}, {cluster.instances} instance(s)"
        found += f", {cluster.instance_class})" if cluster.instance_class else ")"
        if cluster.latest_snapshot is None and cluster.backup_point is not None:
            self.from_backup(cluster.id, cluster.arn, cluster.backup_point, found + ", no cluster snapshot")
            return
        sid = self.new_id(cluster.id)
        instance_class = cluster.instance_class or ""
        if not _CLASS.match(instance_class):
            why = f"its writer is {instance_class}" if instance_class else "it has no instances"
            self.todos.append(
                f"DB cluster {cluster.id}: {why}; the draft restores it with {PLACEHOLDER_CLASS} instances: choose the class (service {sid})"
            )
            found += f"; TODO: instance_class {PLACEHOLDER_CLASS} is a placeholder ({why})"
            instance_class = PLACEHOLDER_CLASS
        params: dict[str, Any] = {
            "source_cluster": cluster.id,
            "snapshot": "latest",
            "target": restored_name(cluster.id),
            "instance_class": instance_class,
            "instances": cluster.instances,
        }
        if cluster.subnet_group:
            params["subnet_group"] = cluster.subnet_group
        if _sgs(cluster.security_groups):
            params["security_groups"] = _sgs(cluster.security_groups)
        if cluster.latest_snapshot is not None:
            found += f"; newest cluster snapshot {cluster.latest_snapshot.id}, {_age(cluster.latest_snapshot.created, self.now)}"
        else:
            found += "; TODO: it has no cluster snapshot, so there is nothing to restore yet"
            self.todos.append(f"DB cluster {cluster.id} has no snapshot: back it up (service {sid})")
        step, source = _step("restore", "aws.rds.restore_cluster_snapshot", params)
        self.service(sid, f"{found}. {source}.", [step, _reachable(sid)])

    def table(self, table: Table) -> None:
        found = f"Found: DynamoDB table {table.name} ({table.billing_mode}, {_size(table.size_bytes)})"
        if table.pitr:
            uses = "aws.dynamodb.restore_point_in_time"
            params: dict[str, Any] = {"source_table": table.name, "restore_time": "latest"}
            found += "; point-in-time recovery on: restored to its latest restorable time"
        elif table.latest_backup is not None:
            uses = "aws.dynamodb.restore_backup"
            params = {"source_table": table.name, "backup": "latest"}
            found += f"; point-in-time recovery off; newest on-demand backup {_age(table.latest_backup.created, self.now)}"
        elif table.backup_point is not None:
            self.from_backup(
                table.name,
                table.arn,
                table.backup_point,
                found + ", point-in-time recovery off, no on-demand backup",
            )
            return
        else:
            uses = "aws.dynamodb.restore_point_in_time"
            params = {"source_table": table.name, "restore_time": "latest"}
            found += "; TODO: point-in-time recovery is off and it has no backup, so there is nothing to restore yet"
            self.todos.append(
                f"DynamoDB table {table.name} has neither point-in-time recovery nor a backup: turn PITR on"
            )
        params["target"] = restored_name(table.name)
        params["billing_mode"] = table.billing_mode
        step, source = _step("restore", uses, params)
        self.service(self.new_id(table.name), f"{found}. {source}.", [step])

    def volume(self, volume: Volume) -> None:
        label = volume.name or volume.id
        found = f"Found: EBS volume {volume.id}" + (f" ({volume.name})" if volume.name else "")
        found += f", {volume.size_gib} GiB {volume.volume_type} in {volume.availability_zone}"
        if volume.latest_snapshot is None and volume.backup_point is not None:
            self.from_backup(label, volume.arn, volume.backup_point, found + ", no snapshot")
            return
        params: dict[str, Any] = {}
        if volume.latest_snapshot is not None and volume.snapshot_tags:
            params = {"snapshot": "latest", "snapshot_tags": dict(volume.snapshot_tags)}
            found += f"; newest snapshot {volume.latest_snapshot.id}, {_age(volume.latest_snapshot.created, self.now)}, picked by its tags"
        elif volume.latest_snapshot is not None:
            params = {"snapshot": volume.latest_snapshot.id}
            found += (
                f"; TODO: pinned to today's newest snapshot {volume.latest_snapshot.id} ({_age(volume.latest_snapshot.created, self.now)}),"
                " because its snapshots carry no tags that pick them alone: tag them and use snapshot `latest` with `snapshot_tags`"
            )
            self.todos.append(
                f"volume {volume.id}: the draft pins one snapshot; tag its snapshots and use `latest` (service for {label})"
            )
        else:
            params = {"snapshot": "latest", "snapshot_tags": {"todo": "tags-of-this-volume-snapshots"}}
            found += "; TODO: it has no snapshot: snapshot it (Data Lifecycle Manager) and put the snapshots' tags in `snapshot_tags`"
            self.todos.append(f"volume {volume.id} has no snapshot: snapshot it and set `snapshot_tags`")
        params["name"] = restored_name(label)
        params["availability_zone"] = volume.availability_zone
        params["volume_type"] = volume.volume_type if volume.volume_type in _VOLUME_TYPES else "gp3"
        if volume.iops is not None:
            params["iops"] = volume.iops
        if volume.throughput is not None:
            params["throughput"] = volume.throughput
        if volume.attached_to:
            found += f"; attached to {volume.attached_to} (TODO: add `attach` if a recovery should attach the restored volume)"
        step, source = _step("restore", "aws.ec2.volume_from_snapshot", params)
        self.service(self.new_id(label), f"{found}. {source}.", [step])

    def bucket(self, bucket: Bucket) -> None:
        params: dict[str, Any] = {"bucket": bucket.name, "prefix": "", "at": PLACEHOLDER_REWIND}
        step, source = _step("rewind", "aws.s3.restore_versions", params)
        if bucket.region != self.estate.region:
            step["region"] = bucket.region
        sid = self.new_id(bucket.name)
        self.service(
            sid,
            f"Found: versioned S3 bucket {bucket.name} in {bucket.region}. TODO: `at` ({PLACEHOLDER_REWIND} before the run) is a placeholder: "
            f"how far back a recovery rewinds the objects. {source}.",
            [step],
        )
        self.todos.append(
            f"bucket {bucket.name}: how far back to rewind (`at`, now {PLACEHOLDER_REWIND}; service {sid})"
        )

    def zone(self, zone: HostedZone) -> None:
        databases = [
            sid for sid, svc in self.services.items() if svc["steps"][0]["uses"].startswith("aws.rds.")
        ]
        example = (
            f'e.g. `values`: ["${{{databases[0]}.restore.endpoint}}"]'
            if databases
            else "a `${service.step.endpoint}` reference"
        )
        params: dict[str, Any] = {
            "zone_id": zone.id,
            "name": f"{TODO_RECORD}.{zone.name}",
            "type": "CNAME",
            "ttl": 60,
            "values": [TODO_VALUE],
        }
        step, source = _step("cutover", "aws.route53.change_record", params)
        sid = self.new_id(zone.name, "dns-")
        self.service(
            sid,
            f"Found: {'private' if zone.private else 'public'} hosted zone {zone.name} ({zone.id}). TODO: the DNS cut-over: which record "
            f"sends clients to which restored endpoint ({example}), after which services "
            "(`depends_on`), and a drill zone in `drill_with` to exercise it in drills (drills skip it until then). "
            f"{source}.",
            [step],
        )
        self.todos.append(
            f"zone {zone.name}: the DNS cut-over (record name, value, `depends_on`; service {sid})"
        )

    def group(self, group: AutoScalingGroup) -> None:
        params: dict[str, Any] = {
            "group": group.name,
            "desired": group.desired,
            "min": group.min,
            "max": group.max,
        }
        step, source = _step("scale", "aws.autoscaling.set_capacity", params)
        sid = self.new_id(group.name)
        self.service(
            sid,
            f"Found: Auto Scaling group {group.name} (desired {group.desired}, min {group.min}, max {group.max}). TODO: the capacity "
            "a recovery needs (today's values are drafted) and the services it waits for (`depends_on`). Drills skip it unless "
            f"`drill_with` names a drill group. {source}.",
            [step],
        )
        self.todos.append(f"Auto Scaling group {group.name}: capacity and `depends_on` (service {sid})")

    def backup_only(self, found: BackupOnly) -> None:
        noun = {"EC2": "EC2 instance", "EFS": "EFS file system", "FSx": "FSx file system"}.get(
            found.point.resource_type, found.point.resource_type
        )
        what = (
            f"Found: {noun} {found.name}"
            if found.exists
            else f"Found: recovery points of {found.resource_arn} (the resource itself was not found)"
        )
        self.from_backup(found.name, found.resource_arn, found.point, what)

    def from_backup(self, name: str, resource_arn: str, point: RecoveryPoint, found: str) -> None:
        role = point.iam_role_arn
        sid = self.new_id(name)
        if not role or not re.match(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+", role):
            role = PLACEHOLDER_ROLE.format(account=self.estate.account or "123456789012")
            found += "; TODO: `iam_role_arn` is a placeholder: the role AWS Backup assumes to restore"
            self.todos.append(f"{name}: the IAM role AWS Backup restores with (service {sid})")
        params: dict[str, Any] = {
            "vault": point.vault,
            "resource_arn": resource_arn,
            "recovery_point": "latest",
            "iam_role_arn": role,
            "target": restored_name(name),
        }
        if point.resource_type in BACKUP_TYPES:
            params["resource_type"] = point.resource_type
        step, source = _step("restore", "aws.backup.restore", params)
        self.service(
            sid,
            f"{found}; newest AWS Backup recovery point in vault {point.vault}, {_age(point.created, self.now)}. {source}.",
            [step],
        )


_VOLUME_TYPES = ("gp2", "gp3", "io1", "io2", "st1", "sc1", "standard")


def plan_name(name: str | None, estate: Estate | None) -> str:
    """``--name``, else the value of the first ``--tag`` (``app=shop`` -> ``shop``), else ``draft``."""
    raw = name or next((t.value for t in (estate.tags if estate else ()) if t.value), None) or "draft"
    cleaned = re.sub(r"[^a-z0-9_.-]+", "-", raw.lower()).strip("-_.")[:63]
    return cleaned or "draft"


def draft_from(estate: Estate, *, name: str | None = None, now: datetime | None = None) -> Draft:
    """The draft plan of ``estate``: one service per resource, in a stable order."""
    now = now or datetime.now(timezone.utc)
    drafter = Drafter(estate, now)
    for found in sorted(estate.found, key=_order):
        drafter.draft(found)
    tags = ", ".join(str(t) for t in estate.tags)
    document: dict[str, Any] = {
        "drplan": 1,
        "name": plan_name(name, estate),
        "description": (
            f"DRAFT written by `drplan init --from-aws` on {now:%Y-%m-%d} from the resources tagged {tags} in {estate.region}. "
            "TODO before trusting it: the objectives (placeholders), the order between services (`depends_on`: each is "
            "drafted on its own), the DNS cut-over, checks that prove each service is back, and every other TODO. "
            "Estimates are drplan's typical durations, not measurements: drill, then `drplan calibrate`."
        ),
        "owner": "TODO-team",
        "objectives": {"rto": format_duration(PLACEHOLDER_RTO), "rpo": format_duration(PLACEHOLDER_RPO)},
        "aws": {"region": estate.region, **({"account_id": estate.account} if estate.account else {})},
        "services": drafter.services,
    }
    todos = [
        f"objectives: RTO {humanize(PLACEHOLDER_RTO)} and RPO {humanize(PLACEHOLDER_RPO)} are placeholders",
        "`depends_on`: every service is drafted independent of the others; say what waits for what",
        "owner and contacts: who runs the recovery",
        *drafter.todos,
    ]
    return Draft(document, todos)


def _order(found: Found) -> tuple[int, str]:
    """Data first (databases, tables, volumes, buckets), then compute, then DNS: the order a
    person reads a recovery in."""
    kinds: list[type] = [
        DbCluster,
        DbInstance,
        Table,
        Volume,
        Bucket,
        BackupOnly,
        AutoScalingGroup,
        HostedZone,
    ]
    name = getattr(found, "id", None) or getattr(found, "name", "")
    return kinds.index(type(found)), str(name)


def fit_objective(draft: Draft, predicted: timedelta) -> None:
    """Raise the placeholder RTO to the draft's predicted RTO (rounded up to the hour) when the
    estimates already exceed it, so the draft validates; the TODO says what happened."""
    if predicted <= PLACEHOLDER_RTO:
        return
    hours = math.ceil(predicted.total_seconds() / 3600)
    draft.document["objectives"]["rto"] = format_duration(timedelta(hours=hours))
    draft.todos[0] = (
        f"objectives: RTO {hours}h (the draft's predicted RTO, {humanize(predicted)}, rounded up) and RPO "
        f"{humanize(PLACEHOLDER_RPO)} are placeholders"
    )


def template(name: str, region: str) -> Draft:
    """A short plan to fill in by hand: a database restored from its newest snapshot, checked, and
    an application behind it. Every value a person must replace says TODO (or ``todo`` where AWS
    names allow only lowercase)."""
    document: dict[str, Any] = {
        "drplan": 1,
        "name": name,
        "description": "TODO: what system this plan recovers, in a sentence or two.",
        "owner": "TODO-team",
        "contacts": [
            {
                "role": "incident-commander",
                "name": "TODO: the on-call rotation",
                "contact": "TODO: pager key, e-mail or chat channel",
            }
        ],
        "objectives": {"rto": "PT4H", "rpo": "PT24H"},
        "aws": {"region": region},
        "services": {
            "database": {
                "tier": 1,
                "description": "TODO: the database. Replace source_instance with your DB instance and target with the name "
                "a recovery restores it under (drills add a suffix to it). Estimates are drplan's typical durations: drill, "
                "then `drplan calibrate`.",
                "steps": [
                    {
                        "id": "restore",
                        "uses": "aws.rds.restore_snapshot",
                        "with": {
                            "source_instance": "todo-db-instance",
                            "snapshot": "latest",
                            "max_age": "rpo",
                            "target": "todo-db-instance-restored",
                        },
                        "estimate": "PT40M",
                        "timeout": "PT2H",
                    },
                    {
                        "id": "reachable",
                        "uses": "check.tcp",
                        "with": {"host": "${database.restore.endpoint}", "port": "${database.restore.port}"},
                        "estimate": "PT2M",
                    },
                ],
            },
            "app": {
                "tier": 1,
                "description": "TODO: the application that uses the database, and how to tell it is back.",
                "depends_on": ["database"],
                "steps": [
                    {
                        "id": "approve",
                        "uses": "manual",
                        "with": {
                            "instructions": "TODO: what a person checks before customers are sent to the restored system."
                        },
                        "estimate": "PT10M",
                        "only": "recover",
                    },
                    {
                        "id": "healthy",
                        "uses": "check.http",
                        "with": {"url": "https://todo.invalid/health", "expect_status": 200},
                        "estimate": "PT2M",
                    },
                ],
            },
        },
    }
    todos = [
        "description, owner and contacts",
        "objectives: RTO 4h and RPO 24h are placeholders",
        "database.restore: source_instance and target (todo-db-instance)",
        "app.approve: what a person checks before the cut-over",
        "app.healthy: the application's health URL (https://todo.invalid/health)",
        "more services: `drplan actions` lists what drplan can restore, docs/plan-format.md explains the format",
    ]
    return Draft(document, todos)
