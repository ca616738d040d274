"""Resource census: what exists in the emulator after a run, split into production and leftovers.

Everything a drill of the fault plans can create is listed (RDS instances and clusters, DynamoDB
tables, S3 buckets, EBS volumes, Route 53 records) straight from the moto server, bypassing the
fault proxy. Whatever the seed did not create is a leftover; a leftover's ``drplan:*`` tags say
whether ``drplan cleanup --sweep`` could ever find it (Route 53 records have no tags, so only the
journal can). The census also checks that production is exactly as seeded.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from tests.faults.server import Estate, client

IGNORED_RECORD_TYPES = frozenset({"SOA", "NS"})


@dataclass(frozen=True)
class Leftover:
    kind: str  # rds:db, rds:cluster, dynamodb:table, s3:bucket, ec2:volume, route53:record
    id: str
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def run_id(self) -> str | None:
        return dict(self.tags).get("drplan:run-id")

    @property
    def sweepable(self) -> bool:
        """Could ``drplan cleanup --sweep`` find it: tagged ``drplan:mode=drill``."""
        return dict(self.tags).get("drplan:mode") == "drill"

    def __str__(self) -> str:
        note = (
            ""
            if self.sweepable or self.kind == "route53:record"
            else " (no drill tag: a sweep cannot find it)"
        )
        return f"{self.kind} {self.id}{note}"


@dataclass
class Census:
    db_instances: dict[str, str] = field(default_factory=dict)  # id -> status
    db_clusters: dict[str, str] = field(default_factory=dict)
    db_snapshots: list[str] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)  # name -> item count
    buckets: list[str] = field(default_factory=list)
    bucket_versions: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    volumes: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    records: dict[str, dict[tuple[str, str], list[str]]] = field(
        default_factory=dict
    )  # zone -> (name, type) -> values
    tags: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # (kind, id) -> tags


def take_census(endpoint: str) -> Census:
    """List every resource of the kinds drills create, with tags, item counts and record values."""
    census = Census()
    rds = client(endpoint, "rds")
    for db in _pages(rds, "describe_db_instances", "DBInstances"):
        census.db_instances[db["DBInstanceIdentifier"]] = db.get("DBInstanceStatus", "")
        census.tags[("rds:db", db["DBInstanceIdentifier"])] = _kv(db.get("TagList", []))
    for cluster in _pages(rds, "describe_db_clusters", "DBClusters"):
        census.db_clusters[cluster["DBClusterIdentifier"]] = cluster.get("Status", "")
        census.tags[("rds:cluster", cluster["DBClusterIdentifier"])] = _kv(cluster.get("TagList", []))
    census.db_snapshots = sorted(
        s["DBSnapshotIdentifier"] for s in _pages(rds, "describe_db_snapshots", "DBSnapshots")
    )

    ddb = client(endpoint, "dynamodb")
    for name in _pages(ddb, "list_tables", "TableNames"):
        census.tables[name] = int(ddb.scan(TableName=name, Select="COUNT")["Count"])
        arn = ddb.describe_table(TableName=name)["Table"]["TableArn"]
        census.tags[("dynamodb:table", name)] = _kv(
            ddb.list_tags_of_resource(ResourceArn=arn).get("Tags", [])
        )

    s3 = client(endpoint, "s3")
    for bucket in s3.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        census.buckets.append(name)
        versions: list[tuple[str, str]] = []
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
            versions += [(v["Key"], v["VersionId"]) for v in page.get("Versions", [])]
            versions += [(m["Key"], m["VersionId"]) for m in page.get("DeleteMarkers", [])]
        census.bucket_versions[name] = sorted(versions)
        try:
            tagset = s3.get_bucket_tagging(Bucket=name).get("TagSet", [])
        except Exception:  # NoSuchTagSet: an untagged bucket
            tagset = []
        census.tags[("s3:bucket", name)] = _kv(tagset)

    ec2 = client(endpoint, "ec2")
    for volume in _pages(ec2, "describe_volumes", "Volumes"):
        if volume.get("State") in ("deleting", "deleted"):
            continue
        census.volumes.append(volume["VolumeId"])
        census.tags[("ec2:volume", volume["VolumeId"])] = _kv(volume.get("Tags", []))
    census.snapshots = sorted(
        s["SnapshotId"] for s in _pages(ec2, "describe_snapshots", "Snapshots", OwnerIds=["self"])
    )

    r53 = client(endpoint, "route53")
    for zone in _pages(r53, "list_hosted_zones", "HostedZones"):
        zone_id = zone["Id"].removeprefix("/hostedzone/")
        records: dict[tuple[str, str], list[str]] = {}
        for rrset in _pages(r53, "list_resource_record_sets", "ResourceRecordSets", HostedZoneId=zone_id):
            if rrset["Type"] in IGNORED_RECORD_TYPES:
                continue
            values = sorted(r["Value"] for r in rrset.get("ResourceRecords", []))
            if "AliasTarget" in rrset:
                values = [f"alias {rrset['AliasTarget']['DNSName']}"]
            records[(rrset["Name"].rstrip(".").lower(), rrset["Type"])] = values
        census.records[zone_id] = records
    return census


@dataclass
class Verdict:
    """The census judged against the seeded estate."""

    leftovers: list[Leftover]
    production_changes: list[str]

    @property
    def unsweepable(self) -> list[Leftover]:
        return [x for x in self.leftovers if not x.sweepable]


def judge(estate: Estate, census: Census | None = None) -> Verdict:
    """Leftovers: anything the seed did not create (and any record in a zone that the seed did not
    write). Production changes: a seeded resource missing, or its data or record value changed."""
    census = census or take_census(estate.endpoint)
    leftovers: list[Leftover] = []

    def extra(kind: str, present: Any, seeded: Any) -> None:
        for name in sorted(set(present) - set(seeded)):
            leftovers.append(Leftover(kind, name, tuple(sorted(census.tags.get((kind, name), {}).items()))))

    extra("rds:db", census.db_instances, estate.db_instances)
    extra("rds:cluster", census.db_clusters, estate.db_clusters)
    extra("dynamodb:table", census.tables, estate.tables)
    extra("s3:bucket", census.buckets, estate.buckets)
    extra("ec2:volume", census.volumes, estate.volumes)
    for zone_id, records in census.records.items():
        written = estate.records.get(zone_id, {})
        for (name, kind), _values in sorted(records.items()):
            if (name, kind) not in written:
                leftovers.append(Leftover("route53:record", f"{zone_id}/{name}/{kind}"))

    changes: list[str] = []
    inventories: tuple[tuple[str, Collection[str], Collection[str]], ...] = (
        ("DB instance", census.db_instances, estate.db_instances),
        ("DB cluster", census.db_clusters, estate.db_clusters),
        ("table", census.tables, estate.tables),
        ("bucket", census.buckets, estate.buckets),
        ("volume", census.volumes, estate.volumes),
        ("EBS snapshot", census.snapshots, estate.snapshots),
        ("DB snapshot", census.db_snapshots, estate.db_snapshots),
    )
    for kind, present, seeded in inventories:
        changes += [f"production {kind} {name} is gone" for name in sorted(set(seeded) - set(present))]
    changes += [
        f"production DB instance {name} is {census.db_instances[name]}"
        for name in sorted(estate.db_instances)
        if census.db_instances.get(name, "available") != "available"
    ]
    for table, count in sorted(estate.tables.items()):
        if table in census.tables and census.tables[table] != count:
            changes.append(f"production table {table} has {census.tables[table]} items, seeded {count}")
    for bucket, versions in sorted(estate.buckets.items()):
        now = census.bucket_versions.get(bucket)
        if now is not None and now != versions:
            changes.append(
                f"production bucket {bucket}: object versions changed ({len(versions)} -> {len(now)})"
            )
    for zone_id, records in sorted(estate.records.items()):
        for (name, kind), values in sorted(records.items()):
            now_values = census.records.get(zone_id, {}).get((name, kind))
            if now_values != values:
                changes.append(f"production record {name} {kind} is {now_values}, seeded {values}")
    return Verdict(leftovers, changes)


def _kv(tags: list[dict[str, str]]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags}


def _pages(api: Any, operation: str, key: str, **kwargs: Any) -> list[Any]:
    items: list[Any] = []
    if api.can_paginate(operation):
        for page in api.get_paginator(operation).paginate(**kwargs):
            items += page.get(key, [])
    else:
        items += getattr(api, operation)(**kwargs).get(key, [])
    return items
