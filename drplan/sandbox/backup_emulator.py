"""An emulation of AWS Backup recovery points and restore jobs, for the sandbox only.

moto implements AWS Backup vaults and plans but answers "Not yet implemented" for recovery points
and restore jobs. So that a plan restoring from AWS Backup can be drilled end to end in the
sandbox, this module answers those calls itself and carries out each restore with the native
service that moto *does* emulate: a recovery point is backed by a real (emulated) RDS snapshot, DB
cluster snapshot, DynamoDB backup, EBS snapshot or AMI, and a restore job restores from it through
moto, so that what the job creates is there for the plan's checks, for undo and for cleanup. It
speaks AWS Backup's REST-JSON protocol, so drplan's own ``aws.backup.restore`` action talks to it
exactly as it would to AWS. It is never used outside ``--sandbox``.

Emulated resource types (:data:`EMULATED_TYPES`): RDS (DB instances), Aurora (DB clusters, from a
cluster snapshot), DynamoDB, EBS, EC2 (an instance launched from the recovery point's AMI), EFS (a
new file system, ``CreationToken`` as the restore asked) and FSx (a new file system of the
recovery point's type). DocumentDB and Neptune, which moto does not emulate, fail their restore
job with a clear message. Network and key metadata (subnets, security groups, KMS keys: the ids of
another account) are accepted and not applied: the emulator's network has ids of its own.

Accounts: a step that assumes a role in another account (a DR account restoring the copies in its
own vault) reaches the emulator with that account's credentials; the emulator keeps vaults and
recovery points per account (the account of the request's access key, as moto does) and restores
into that account through ``native(service, region, account)``.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

from drplan.actions.backup.targets import type_from_arn
from drplan.resources import native_id

ACCOUNT = "123456789012"  # moto's default account
EMULATED_TYPES = ("RDS", "Aurora", "DynamoDB", "EBS", "EC2", "EFS", "FSx")
#: The image the source instance of an EC2 recovery point boots (moto launches it unregistered).
SOURCE_IMAGE = "ami-12345678"

_SERVICE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
_ACCESS_KEY = re.compile(r"Credential=([^/]+)/")


class NativeClients(Protocol):
    """A client of a service moto emulates: in the sandbox's own account unless ``account`` names
    another one (reached by assuming a role there, as a plan's cross-account steps do)."""

    def __call__(self, service: str, region: str, account: str | None = None) -> Any: ...


def request_account(environ: dict[str, Any]) -> str:
    """The account a request is made in: moto's, from the access key it is signed with (an assumed
    role's keys belong to the role's account)."""
    from moto.iam.models import get_account_id_from

    match = _ACCESS_KEY.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    return get_account_id_from(match.group(1)) if match else ACCOUNT


@dataclass(frozen=True)
class Where:
    """Who asks, and where: a request's account and Region."""

    account: str
    region: str


@dataclass
class RecoveryPoint:
    arn: str
    vault: str
    region: str
    resource_arn: str
    resource_type: str
    created: datetime
    backing: str  # the native snapshot/backup behind it (id or ARN)
    status: str = "COMPLETED"
    account: str = ACCOUNT  # the account whose vault holds it

    def to_json(self) -> dict[str, Any]:
        return {
            "RecoveryPointArn": self.arn,
            "BackupVaultName": self.vault,
            "BackupVaultArn": _vault_arn(self.region, self.vault, self.account),
            "ResourceArn": self.resource_arn,
            "ResourceType": self.resource_type,
            "Status": self.status,
            "CreationDate": self.created.timestamp(),
            "CompletionDate": (self.created + timedelta(minutes=7)).timestamp(),
            "IamRoleArn": f"arn:aws:iam::{self.account}:role/service-role/AWSBackupDefaultServiceRole",
            "ResourceName": native_id(self.resource_arn),
        }


@dataclass
class RestoreJob:
    id: str
    point: RecoveryPoint
    metadata: dict[str, str]
    created: datetime
    status: str = "RUNNING"
    message: str = ""
    created_arn: str | None = None
    polls: int = 0


def _get(metadata: dict[str, str], key: str) -> str | None:
    """A restore metadata value; keys match case-insensitively, as in AWS Backup."""
    return next((v for k, v in metadata.items() if k.lower() == key.lower()), None)


def _vault_arn(region: str, vault: str, account: str) -> str:
    return f"arn:aws:backup:{region}:{account}:backup-vault:{vault}"


@dataclass
class BackupEmulator:
    """In-memory AWS Backup state, per account, with restores carried out by ``native`` clients."""

    native: NativeClients
    vaults: dict[tuple[str, str, str], datetime] = field(default_factory=dict)  # (account, region, vault)
    points: dict[str, RecoveryPoint] = field(default_factory=dict)
    jobs: dict[str, RestoreJob] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- seeding (called by the sandbox, not over HTTP) -----------------------------------------

    def seed(
        self,
        *,
        region: str,
        vault: str,
        resource_arn: str,
        resource_type: str | None,
        age: timedelta,
        account: str = ACCOUNT,
    ) -> RecoveryPoint:
        """A completed recovery point of ``resource_arn`` in ``account``'s ``vault`` (in ``region``),
        ``age`` old, backed by a native snapshot created in that account and the vault's region (as
        a cross-region, cross-account copy would be)."""
        kind = resource_type or type_from_arn(resource_arn) or ""
        name = native_id(resource_arn)
        for point in self.points.values():
            if (point.account, point.vault, point.region, point.resource_arn) == (
                account,
                vault,
                region,
                resource_arn,
            ):
                return point
        self.vaults.setdefault((account, region, vault), datetime.now(timezone.utc) - timedelta(days=30))
        backing = self._native_backup(kind, region, name, account)
        point = RecoveryPoint(
            arn=f"arn:aws:backup:{region}:{account}:recovery-point:{uuid.uuid4()}",
            vault=vault,
            region=region,
            resource_arn=resource_arn,
            resource_type=kind,
            created=datetime.now(timezone.utc) - age,
            backing=backing,
            account=account,
        )
        self.points[point.arn] = point
        return point

    def _native_backup(self, kind: str, region: str, name: str, account: str) -> str:
        helper = f"awsbackup-source-{name}"[:60]
        if kind == "RDS":
            rds = self.native("rds", region, account)
            rds.create_db_instance(
                DBInstanceIdentifier=helper,
                DBInstanceClass="db.t3.micro",
                Engine="mysql",
                AllocatedStorage=20,
                MasterUsername="admin",
                MasterUserPassword="sandbox-only-password",
            )
            snapshot = f"awsbackup-{uuid.uuid4().hex[:12]}"
            rds.create_db_snapshot(DBSnapshotIdentifier=snapshot, DBInstanceIdentifier=helper)
            rds.delete_db_instance(DBInstanceIdentifier=helper, SkipFinalSnapshot=True)
            return snapshot
        if kind == "DynamoDB":
            ddb = self.native("dynamodb", region, account)
            ddb.create_table(
                TableName=helper,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            for i in range(20):
                ddb.put_item(TableName=helper, Item={"pk": {"S": f"{name}-{i:03d}"}})
            arn = ddb.create_backup(TableName=helper, BackupName=f"awsbackup-{name}"[:60])["BackupDetails"][
                "BackupArn"
            ]
            ddb.delete_table(TableName=helper)
            return str(arn)
        if kind == "EBS":
            ec2 = self.native("ec2", region, account)
            volume = ec2.create_volume(AvailabilityZone=f"{region}a", Size=16)["VolumeId"]
            snapshot = ec2.create_snapshot(VolumeId=volume, Description=f"AWS Backup of {name}")["SnapshotId"]
            ec2.delete_volume(VolumeId=volume)
            return str(snapshot)
        if kind == "Aurora":
            rds = self.native("rds", region, account)
            rds.create_db_cluster(
                DBClusterIdentifier=helper,
                Engine="aurora-postgresql",
                MasterUsername="postgres",
                MasterUserPassword="sandbox-only-password",
            )
            snapshot = f"awsbackup-{uuid.uuid4().hex[:12]}"
            rds.create_db_cluster_snapshot(DBClusterSnapshotIdentifier=snapshot, DBClusterIdentifier=helper)
            rds.delete_db_cluster(DBClusterIdentifier=helper, SkipFinalSnapshot=True)
            return snapshot
        if kind == "EC2":  # an EC2 recovery point is an AMI of the instance (and its volumes)
            ec2 = self.native("ec2", region, account)
            source = ec2.run_instances(ImageId=SOURCE_IMAGE, InstanceType="t3.micro", MinCount=1, MaxCount=1)
            instance = source["Instances"][0]["InstanceId"]
            image = ec2.create_image(InstanceId=instance, Name=f"AWS Backup {name} {uuid.uuid4().hex[:8]}")
            ec2.terminate_instances(InstanceIds=[instance])
            return str(image["ImageId"])
        if kind == "FSx":
            return "LUSTRE"  # the file system type the restore creates
        return ""

    # --- HTTP ------------------------------------------------------------------------------------

    @staticmethod
    def handles(environ: dict[str, Any]) -> bool:
        match = _SERVICE.search(environ.get("HTTP_AUTHORIZATION", ""))
        return bool(match and match.group(2) == "backup") and _route(environ) is not None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        match = _SERVICE.search(environ.get("HTTP_AUTHORIZATION", ""))
        region = match.group(1) if match else "us-east-1"
        where = Where(request_account(environ), region)
        route = _route(environ)
        assert route is not None
        name, args = route
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
        with self.lock:
            status, payload = getattr(self, f"_{name}")(where, args, query, body)
        data = json.dumps(payload).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        if status >= 400:
            headers.append(("x-amzn-ErrorType", payload.get("__type", "InvalidParameterValueException")))
        start_response(f"{status} {'OK' if status < 400 else 'Error'}", headers)
        return [data]

    def _visible(self, where: Where) -> list[RecoveryPoint]:
        """The recovery points a request sees: its own account's, in its Region."""
        return [p for p in self.points.values() if (p.account, p.region) == (where.account, where.region)]

    def _point(self, where: Where, arn: str) -> RecoveryPoint | None:
        point = self.points.get(arn)
        return point if point is not None and point.account == where.account else None

    def _not_found(self, what: str) -> tuple[int, dict[str, Any]]:
        return 404, {"__type": "ResourceNotFoundException", "Message": what, "message": what}

    def _list_by_vault(
        self, where: Where, args: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        vault = args[0]
        if (where.account, where.region, vault) not in self.vaults:
            return self._not_found(f"Backup vault {vault} does not exist in {where.region}")
        points = [
            p.to_json()
            for p in self._visible(where)
            if p.vault == vault and query.get("resourceArn", p.resource_arn) == p.resource_arn
        ]
        return 200, {"RecoveryPoints": points}

    def _list_by_resource(
        self, where: Where, args: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        points = [p.to_json() for p in self._visible(where) if p.resource_arn == args[0]]
        return 200, {"RecoveryPoints": points}

    def _describe_point(
        self, where: Where, args: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        point = self._point(where, args[1])
        if point is None or point.vault != args[0]:
            return self._not_found(f"Recovery point {args[1]} not found in vault {args[0]}")
        return 200, point.to_json()

    def _restore_metadata(
        self, where: Where, args: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        point = self._point(where, args[1])
        if point is None:
            return self._not_found(f"Recovery point {args[1]} not found")
        metadata = {
            "RDS": {
                "DBInstanceIdentifier": native_id(point.resource_arn),
                "Engine": "mysql",
                "DBInstanceClass": "db.t3.micro",
            },
            "DynamoDB": {"targetTableName": native_id(point.resource_arn)},
            "EBS": {"availabilityZone": f"{point.region}a", "volumeType": "gp3", "encrypted": "false"},
            "Aurora": {
                "DBClusterIdentifier": native_id(point.resource_arn),
                "Engine": "aurora-postgresql",
                "Port": "5432",
            },
            "EC2": {"InstanceType": "t3.micro", "DisableApiTermination": "false"},
            "EFS": {
                "file-system-id": native_id(point.resource_arn),
                "Encrypted": "false",
                "PerformanceMode": "generalPurpose",
                "CreationToken": native_id(point.resource_arn),
            },
            "FSx": {"FileSystemType": point.backing or "LUSTRE", "StorageCapacity": "1200"},
        }.get(point.resource_type, {})
        return 200, {
            "BackupVaultArn": _vault_arn(point.region, point.vault, point.account),
            "RecoveryPointArn": point.arn,
            "RestoreMetadata": metadata,
            "ResourceType": point.resource_type,
        }

    def _start_restore(
        self, where: Where, args: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        point = self._point(where, body.get("RecoveryPointArn", ""))
        if point is None:
            return self._not_found(f"Recovery point {body.get('RecoveryPointArn')} not found")
        token = body.get("IdempotencyToken")
        for job in self.jobs.values():
            if token and job.metadata.get("__token") == token:
                return 200, {"RestoreJobId": job.id}
        job = RestoreJob(
            id=str(uuid.uuid4()).upper(),
            point=point,
            metadata={**body.get("Metadata", {}), **({"__token": token} if token else {})},
            created=datetime.now(timezone.utc),
        )
        self.jobs[job.id] = job
        try:
            job.created_arn = self._restore(point, job.metadata)
        except Exception as exc:  # the native restore failed: so does the job, as in AWS
            job.status, job.message = "FAILED", f"{type(exc).__name__}: {exc}"
        return 200, {"RestoreJobId": job.id}

    def _restore(self, point: RecoveryPoint, metadata: dict[str, str]) -> str:
        if point.resource_type == "RDS":
            kwargs: dict[str, Any] = {
                "DBInstanceIdentifier": _get(metadata, "DBInstanceIdentifier"),
                "DBSnapshotIdentifier": point.backing,
            }
            if _get(metadata, "DBInstanceClass"):
                kwargs["DBInstanceClass"] = _get(metadata, "DBInstanceClass")
            if _get(metadata, "MultiAZ"):
                kwargs["MultiAZ"] = (_get(metadata, "MultiAZ") or "").lower() == "true"
            db = self.native("rds", point.region, point.account).restore_db_instance_from_db_snapshot(
                **kwargs
            )["DBInstance"]
            return str(db["DBInstanceArn"])
        if point.resource_type == "DynamoDB":
            table = self.native("dynamodb", point.region, point.account).restore_table_from_backup(
                TargetTableName=_get(metadata, "targetTableName"), BackupArn=point.backing
            )
            return str(table["TableDescription"]["TableArn"])
        if point.resource_type == "EBS":
            ec2 = self.native("ec2", point.region, point.account)
            kwargs = {
                "SnapshotId": point.backing,
                "AvailabilityZone": _get(metadata, "availabilityZone") or f"{point.region}a",
            }
            if _get(metadata, "volumeType"):
                kwargs["VolumeType"] = _get(metadata, "volumeType")
            volume = ec2.create_volume(**kwargs)["VolumeId"]
            return f"arn:aws:ec2:{point.region}:{point.account}:volume/{volume}"
        if point.resource_type == "Aurora":
            cluster = self.native("rds", point.region, point.account).restore_db_cluster_from_snapshot(
                DBClusterIdentifier=_get(metadata, "DBClusterIdentifier"),
                SnapshotIdentifier=point.backing,
                Engine=_get(metadata, "Engine") or "aurora-postgresql",
            )["DBCluster"]
            return str(cluster["DBClusterArn"])
        if point.resource_type == "EC2":
            instance = self.native("ec2", point.region, point.account).run_instances(
                ImageId=point.backing,
                InstanceType=_get(metadata, "InstanceType") or "t3.micro",
                MinCount=1,
                MaxCount=1,
            )["Instances"][0]
            return f"arn:aws:ec2:{point.region}:{point.account}:instance/{instance['InstanceId']}"
        if point.resource_type == "EFS":
            if (_get(metadata, "newFileSystem") or "").lower() != "true":
                raise RuntimeError("the sandbox emulates EFS restores into a new file system only")
            fs = self.native("efs", point.region, point.account).create_file_system(
                CreationToken=_get(metadata, "CreationToken") or str(uuid.uuid4()),
                PerformanceMode=_get(metadata, "PerformanceMode") or "generalPurpose",
                Encrypted=(_get(metadata, "Encrypted") or "").lower() == "true",
            )
            return str(fs["FileSystemArn"])
        if point.resource_type == "FSx":
            fs = self.native("fsx", point.region, point.account).create_file_system(
                FileSystemType=_get(metadata, "FileSystemType") or "LUSTRE",
                StorageCapacity=int(_get(metadata, "StorageCapacity") or 1200),
                SubnetIds=["subnet-12345678"],  # the emulator's own: a DR account's subnets are not here
            )["FileSystem"]
            return str(fs["ResourceARN"])
        raise RuntimeError(
            f"the sandbox emulates AWS Backup restores of {', '.join(EMULATED_TYPES)} only, not {point.resource_type}"
        )

    def _describe_job(
        self, where: Where, args: list[str], query: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        job = self.jobs.get(args[0])
        if job is None or job.point.account != where.account:
            return self._not_found(f"Restore job {args[0]} not found")
        job.polls += 1
        if job.status == "RUNNING" and job.polls > 1:  # one poll sees it running, as in AWS
            job.status = "COMPLETED"
        out: dict[str, Any] = {
            "AccountId": job.point.account,
            "RestoreJobId": job.id,
            "RecoveryPointArn": job.point.arn,
            "SourceResourceArn": job.point.resource_arn,
            "BackupVaultArn": _vault_arn(job.point.region, job.point.vault, job.point.account),
            "CreationDate": job.created.timestamp(),
            "Status": job.status,
            "PercentDone": "100.00%" if job.status == "COMPLETED" else "42.00%",
            "ResourceType": job.point.resource_type,
            "RecoveryPointCreationDate": job.point.created.timestamp(),
        }
        if job.message:
            out["StatusMessage"] = job.message
        if job.status == "COMPLETED":
            out["CompletionDate"] = datetime.now(timezone.utc).timestamp()
            out["CreatedResourceArn"] = job.created_arn
        return 200, out


_ROUTES: list[tuple[str, str, re.Pattern[str]]] = [
    ("GET", "list_by_vault", re.compile(r"^/backup-vaults/([^/]+)/recovery-points/?$")),
    (
        "GET",
        "restore_metadata",
        re.compile(r"^/backup-vaults/([^/]+)/recovery-points/(.+)/restore-metadata$"),
    ),
    ("GET", "describe_point", re.compile(r"^/backup-vaults/([^/]+)/recovery-points/(.+)$")),
    ("GET", "list_by_resource", re.compile(r"^/resources/(.+)/recovery-points/?$")),
    ("PUT", "start_restore", re.compile(r"^/restore-jobs/?$")),
    ("GET", "describe_job", re.compile(r"^/restore-jobs/([^/]+)$")),
]


def _route(environ: dict[str, Any]) -> tuple[str, list[str]] | None:
    path = environ.get("PATH_INFO", "")
    method = environ.get("REQUEST_METHOD", "GET")
    for verb, name, pattern in _ROUTES:
        match = pattern.match(path)
        if match and verb == method:
            return name, [unquote(g) for g in match.groups()]
    return None
