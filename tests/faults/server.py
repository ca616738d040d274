"""A moto server on loopback, seeded with the production estate the fault plans restore from.

The server runs in this process (moto's ``ThreadedMotoServer``, as ``tests/conftest.py`` does), so
the seed can reach into moto's S3 backend to backdate object versions: S3 has no API to set an
object's time, and ``aws.s3.restore_versions`` with ``at: PT1H`` needs versions older than an hour.
drplan itself always runs in a child process and reaches the server only over HTTP (through the
fault proxy), exactly as it would reach AWS.
"""

from __future__ import annotations

import os
import socket
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

# Before moto is imported anywhere in this process: no default AMIs (slow, and not needed).
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")

REGION = "us-east-1"
CREDENTIALS = ("testing", "testing")

#: Placeholder hosted zone ids in tests/faults/plans/*.json, replaced by the ids moto picks.
PROD_ZONE_PLACEHOLDER = "Z0FAULTSPROD00000001"
DRILL_ZONE_PLACEHOLDER = "Z0FAULTSDRILL0000001"
PROD_ZONE_NAME = "faults.test."
DRILL_ZONE_NAME = "drill-faults.test."
PROD_RECORD = "orders-db.faults.test."
PROD_RECORD_VALUE = "orders-db-primary.faults.test"

# The seeded production estate (what the plans restore from; never to be touched by a drill).
RDS_SOURCE = "fault-orders"
RDS_SNAPSHOT = "fault-orders-manual-1"
BACKUP_TABLE = "fault-carts"
PITR_TABLE = "fault-sessions"
BUCKET = "fault-assets"
SNAPSHOT_TAG = {"fault-backup": "media"}
TABLE_ITEMS = 25

#: Object history of the source bucket: (key, body or None for a delete marker); "old" versions
#: are backdated two hours, so a restore at PT1H picks them; "new" ones are the present.
S3_OLD: tuple[tuple[str, bytes | None], ...] = (
    ("orders/2024-01.csv", b"id,amount\n1,10\n"),
    ("orders/2024-01.csv", b"id,amount\n1,10\n2,20\n"),
    ("customers.json", b'{"customers": 1}'),
    ("config/settings.json", b'{"mode": "ok"}'),
)
S3_NEW: tuple[tuple[str, bytes | None], ...] = (
    ("orders/2024-01.csv", b"corrupted"),
    ("config/settings.json", None),
    ("reports/created-later.csv", b"late\n"),
)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def aws_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for drplan child processes: fake credentials, no profile or config file, so
    a run can never reach a real account even if the endpoint option were dropped."""
    env = {k: v for k, v in (base if base is not None else os.environ).items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=CREDENTIALS[0],
        AWS_SECRET_ACCESS_KEY=CREDENTIALS[1],
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        MOTO_EC2_LOAD_DEFAULT_AMIS="false",
        PYTHONUNBUFFERED="1",
    )
    return env


def client(endpoint: str, service: str) -> Any:
    """A boto3 client straight to ``endpoint`` (the census and the seed bypass the fault proxy)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=CREDENTIALS[0],
        aws_secret_access_key=CREDENTIALS[1],
        config=Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30),
    )


class MotoServer:
    """moto's threaded HTTP server on a free loopback port; :meth:`reset` empties every backend."""

    def __init__(self) -> None:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

        self.port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """POST /moto-api/reset: the server serves moto's process-wide backends, so every scenario
        run starts from an empty account and seeds it again."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=30).close()

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Estate:
    """What the seed created: the production resources a drill must never change or delete."""

    endpoint: str
    prod_zone_id: str
    drill_zone_id: str
    db_instances: frozenset[str]
    db_clusters: frozenset[str]
    tables: dict[str, int]  # table -> item count
    buckets: dict[str, list[tuple[str, str]]]  # bucket -> [(key, version id)], sorted
    volumes: frozenset[str]
    snapshots: frozenset[str]
    db_snapshots: frozenset[str]
    records: dict[str, dict[tuple[str, str], list[str]]] = field(default_factory=dict)  # zone -> records

    def substitutions(self) -> dict[str, str]:
        """Placeholder -> real value, for rendering a plan template against this estate."""
        return {PROD_ZONE_PLACEHOLDER: self.prod_zone_id, DRILL_ZONE_PLACEHOLDER: self.drill_zone_id}


def seed(endpoint: str) -> Estate:
    """Create the production estate in an empty moto account and describe it.

    RDS DB instance + manual snapshot, a DynamoDB table with items and an on-demand backup, a
    PITR-enabled table, a versioned bucket with history (backdated), a volume and its tagged EBS
    snapshot, a production hosted zone with the record the plan changes and an empty drill zone.
    """
    rds = client(endpoint, "rds")
    rds.create_db_instance(
        DBInstanceIdentifier=RDS_SOURCE,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername="faults",
        MasterUserPassword="faults-password-1",
        Tags=[{"Key": "app", "Value": "faults"}],
    )
    rds.create_db_snapshot(DBInstanceIdentifier=RDS_SOURCE, DBSnapshotIdentifier=RDS_SNAPSHOT)

    ddb = client(endpoint, "dynamodb")
    for table in (BACKUP_TABLE, PITR_TABLE):
        ddb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for i in range(TABLE_ITEMS):
            ddb.put_item(TableName=table, Item={"pk": {"S": f"item-{i:03d}"}, "n": {"N": str(i)}})
    ddb.create_backup(TableName=BACKUP_TABLE, BackupName=f"{BACKUP_TABLE}-nightly")
    ddb.update_continuous_backups(
        TableName=PITR_TABLE, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )

    s3 = client(endpoint, "s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    old = [_write(s3, key, body) for key, body in S3_OLD]
    for key, body in S3_NEW:
        _write(s3, key, body)
    two_hours_ago = datetime.now(timezone.utc) - timedelta(hours=2)
    _backdate(
        BUCKET, [(key, version, two_hours_ago + timedelta(seconds=i)) for i, (key, version) in enumerate(old)]
    )

    ec2 = client(endpoint, "ec2")
    volume = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=8)["VolumeId"]
    ec2.create_snapshot(
        VolumeId=volume,
        Description="media nightly",
        TagSpecifications=[
            {"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in SNAPSHOT_TAG.items()]}
        ],
    )

    r53 = client(endpoint, "route53")
    prod = r53.create_hosted_zone(Name=PROD_ZONE_NAME, CallerReference="faults-prod")["HostedZone"]["Id"]
    drill = r53.create_hosted_zone(Name=DRILL_ZONE_NAME, CallerReference="faults-drill")["HostedZone"]["Id"]
    r53.change_resource_record_sets(
        HostedZoneId=prod,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": PROD_RECORD,
                        "Type": "CNAME",
                        "TTL": 300,
                        "ResourceRecords": [{"Value": PROD_RECORD_VALUE}],
                    },
                }
            ]
        },
    )

    from tests.faults.census import take_census  # the estate is described the way the census sees it

    census = take_census(endpoint)
    return Estate(
        endpoint=endpoint,
        prod_zone_id=prod.removeprefix("/hostedzone/"),
        drill_zone_id=drill.removeprefix("/hostedzone/"),
        db_instances=frozenset(census.db_instances),
        db_clusters=frozenset(census.db_clusters),
        tables=dict(census.tables),
        buckets={b: census.bucket_versions[b] for b in census.buckets},
        volumes=frozenset(census.volumes),
        snapshots=frozenset(census.snapshots),
        db_snapshots=frozenset(census.db_snapshots),
        records={zone: dict(records) for zone, records in census.records.items()},
    )


def _write(s3: Any, key: str, body: bytes | None) -> tuple[str, str]:
    if body is None:
        response = s3.delete_object(Bucket=BUCKET, Key=key)
    else:
        response = s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return key, str(response["VersionId"])


def _backdate(bucket: str, stamps: list[tuple[str, str, datetime]]) -> None:
    """moto internals (5.x): set ``LastModified`` of object versions in this process's S3 backend.

    Only possible because the server runs in this process; fails loudly if moto changed, since a
    bucket without old versions would make every S3 restore delete everything and hide faults.
    """
    from moto.s3.models import s3_backends

    partition, account = s3_backends.bucket_accounts[bucket]
    fake = s3_backends[account][partition].buckets[bucket]
    done = 0
    for key, version_id, when in stamps:
        for version in fake.keys.getlist(key, []):
            if version.version_id == version_id:
                version.last_modified = when.astimezone(timezone.utc).replace(tzinfo=None)
                done += 1
    if done != len(stamps):
        raise RuntimeError(f"backdated {done} of {len(stamps)} object versions in moto's S3 backend")
