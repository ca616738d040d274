"""The kinds of AWS resources drplan creates or names: one registry for naming rules, ARNs and removal.

A :class:`Resource` is something a run created (what drill cleanup deletes and evidence lists); a
:class:`Target` is a name a step *will* use, known before anything runs (what validation checks
against AWS's naming rules and what the journal records as an intent before the create call).
Both are described by their :class:`Kind`: the naming rule AWS applies, how to recognise the
kind in an ARN (sweeps find resources by tag and get ARNs back), and the order deletions go in.

The removers themselves live in :mod:`drplan.removal` (they call AWS); this module is pure data
and small functions, so ``drplan validate`` can check names without importing boto3.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Resource:
    """Something a step created (what drill cleanup deletes and evidence lists)."""

    kind: str  # a key of KINDS: "rds:db", "dynamodb:table", "ec2:volume", "s3:bucket", ...
    id: str
    region: str | None = None
    arn: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: The role of the step that created it (a step's ``role_arn``: another account, such as a DR
    #: account): cleanup looks it up and deletes it with that role, in the account it is in.
    role_arn: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "id": self.id}
        if self.region:
            out["region"] = self.region
        if self.arn:
            out["arn"] = self.arn
        if self.extra:
            out["extra"] = dict(self.extra)
        if self.role_arn:
            out["role_arn"] = self.role_arn
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Resource:
        return cls(
            data["kind"],
            data["id"],
            data.get("region"),
            data.get("arn"),
            data.get("extra", {}),
            data.get("role_arn"),
        )

    @property
    def key(self) -> tuple[str, str]:
        return self.kind, self.id


@dataclass(frozen=True)
class Target:
    """A name a step uses, known from its parameters before it runs.

    ``creates`` is true when the step makes a new resource of that name (a restore), false when it
    changes an existing one (a DNS record it upserts, an Auto Scaling group it scales). ``param``
    is the parameter the name comes from, so a finding can point at it.
    """

    kind: str
    name: str
    param: str
    creates: bool = True
    #: What else finds the resource by name (a DNS record's zone id and type).
    extra: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "name": self.name}
        if self.extra:
            out["extra"] = dict(self.extra)
        return out

    def intent(self, region: str | None, role_arn: str | None) -> dict[str, Any]:
        """The name as a run journals it before the create call (``step.intent``), with where it is
        made: the Region, and the role of a step that works in another account, so that cleanup
        looks for it there."""
        return {**self.to_json(), "region": region, **({"role_arn": role_arn} if role_arn else {})}


NameRule = Callable[[str], "str | None"]


# --- naming rules, as AWS documents them -----------------------------------------------------------

_RDS_ID = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")


def rds_identifier(name: str) -> str | None:
    """DB instance and cluster identifiers (CreateDBInstance / CreateDBCluster): 1 to 63 letters,
    digits or hyphens; first a letter; no hyphen at the end and no two in a row."""
    if not 1 <= len(name) <= 63:
        return f"is {len(name)} characters long; RDS allows 1 to 63"
    if not _RDS_ID.match(name):
        if not name[0].isalpha():
            return "must start with a letter"
        return "may contain only letters, digits and hyphens"
    if name.endswith("-"):
        return "must not end with a hyphen"
    if "--" in name:
        return "must not contain two hyphens in a row"
    return None


_TABLE = re.compile(r"^[A-Za-z0-9_.-]+$")


def dynamodb_table(name: str) -> str | None:
    """DynamoDB table names: 3 to 255 of ``a-z A-Z 0-9 _ - .``."""
    if not 3 <= len(name) <= 255:
        return f"is {len(name)} characters long; DynamoDB allows 3 to 255"
    if not _TABLE.match(name):
        return "may contain only letters, digits, `_`, `-` and `.`"
    return None


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def s3_bucket(name: str) -> str | None:
    """General purpose bucket names: 3 to 63 lowercase letters, digits, dots and hyphens, starting
    and ending with a letter or digit, no two dots in a row, not an IP address, and none of the
    prefixes and suffixes S3 reserves."""
    if not 3 <= len(name) <= 63:
        return f"is {len(name)} characters long; S3 allows 3 to 63"
    if name != name.lower():
        return "must be lowercase"
    if not _BUCKET.match(name):
        return "may contain only lowercase letters, digits, `.` and `-`, and must start and end with a letter or digit"
    if ".." in name or ".-" in name or "-." in name:
        return "must not have a dot next to another dot or a hyphen"
    try:
        ipaddress.IPv4Address(name)
        return "must not look like an IP address"
    except ValueError:
        pass
    for prefix in _BUCKET_PREFIXES:
        if name.startswith(prefix):
            return f"must not start with `{prefix}` (reserved by S3)"
    for suffix in _BUCKET_SUFFIXES:
        if name.endswith(suffix):
            return f"must not end with `{suffix}` (reserved by S3)"
    return None


def ec2_name_tag(name: str) -> str | None:
    """A ``Name`` tag value: EC2 allows up to 256 Unicode characters."""
    if not 1 <= len(name) <= 256:
        return f"is {len(name)} characters long; a tag value holds 1 to 256"
    return None


_LABEL = re.compile(r"^(\*|[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)$")


def dns_name(name: str) -> str | None:
    """A Route 53 record name: labels of 1 to 63 letters, digits, ``-`` or ``_`` (``*`` alone as a
    wildcard), at most 255 characters in all. ``@`` is the zone apex."""
    bare = name.rstrip(".")
    if bare in ("", "@"):
        return None
    if len(bare) > 253:
        return f"is {len(bare)} characters long; a DNS name holds at most 253"
    for label in bare.split("."):
        if not label:
            return "has an empty label (two dots in a row)"
        if len(label) > 63:
            return f"has a label of {len(label)} characters (`{label[:12]}…`); DNS allows 63"
        if not _LABEL.match(label):
            return f"has a label `{label}` with characters DNS names do not use (letters, digits, `-`, `_`)"
    return None


def autoscaling_group(name: str) -> str | None:
    """Auto Scaling group names: 1 to 255 printable ASCII characters, no colon."""
    if not 1 <= len(name) <= 255:
        return f"is {len(name)} characters long; Auto Scaling allows 1 to 255"
    if ":" in name:
        return "must not contain a colon"
    if any(not 33 <= ord(c) <= 126 for c in name):
        return "may contain only printable ASCII characters and no spaces"
    return None


_ECS_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def ecs_service(name: str) -> str | None:
    """ECS service names: 1 to 255 letters, digits, underscores and hyphens."""
    if not 1 <= len(name) <= 255:
        return f"is {len(name)} characters long; ECS allows 1 to 255"
    if not _ECS_NAME.match(name):
        return "may contain only letters, digits, `_` and `-`"
    return None


_NODEGROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def eks_nodegroup(name: str) -> str | None:
    """EKS managed node group names: 1 to 63 letters, digits, hyphens and underscores, starting with
    a letter or digit."""
    if not 1 <= len(name) <= 63:
        return f"is {len(name)} characters long; EKS allows 1 to 63"
    if not _NODEGROUP.match(name):
        if not name[0].isalnum():
            return "must start with a letter or digit"
        return "may contain only letters, digits, `-` and `_`"
    return None


_FUNCTION = re.compile(
    r"^(arn:aws[a-zA-Z-]*:lambda:[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]:[0-9]{12}:function:"
    r"|[0-9]{12}:function:)?(?P<name>[A-Za-z0-9_-]+)(:(\$LATEST|[A-Za-z0-9_-]+))?$"
)


def lambda_function(name: str) -> str | None:
    """A function as Invoke takes it: a name of 1 to 64 letters, digits, ``-`` and ``_``, or its ARN
    or partial ARN (``123456789012:function:name``), each optionally with ``:version`` or ``:alias``."""
    found = _FUNCTION.match(name)
    if found is None:
        return "is not a function name, ARN or partial ARN (names use letters, digits, `-` and `_`)"
    if len(found.group("name")) > 64:
        return f"has a function name of {len(found.group('name'))} characters; Lambda allows 64"
    return None


def efs_creation_token(name: str) -> str | None:
    if not 1 <= len(name) <= 64:
        return f"is {len(name)} characters long; an EFS creation token holds 1 to 64"
    return None


# --- the registry ----------------------------------------------------------------------------------

#: The id of a resource an AWS Backup restore job is creating, whose own id AWS picks (an instance,
#: a volume, a file system): ``backup-restore-job:<job id>`` until the job names it. The removers of
#: those kinds (:mod:`drplan.removal`) ask the job what it created.
RESTORE_JOB_PREFIX = "backup-restore-job:"


@dataclass(frozen=True)
class Kind:
    kind: str
    noun: str  # for messages: "DB instance"
    name_rule: NameRule
    max_length: int  # the longest name AWS accepts: drill suffixes shorten the base name to fit
    arn_service: str | None = None  # how a sweep recognises the kind in an ARN: service ...
    arn_prefix: str | None = None  # ... and the resource part's prefix ("db:", "table/")
    delete_order: int = 9  # lower first: DB instances before the clusters they belong to
    tagged: bool = True  # can carry drplan's tags (a sweep finds it by them)
    case_sensitive: bool = True  # RDS identifiers and DNS names are not: `Orders` is `orders`

    def problem(self, name: str) -> str | None:
        return self.name_rule(name)


# fmt: off
KINDS: dict[str, Kind] = {k.kind: k for k in (
    Kind("rds:db", "DB instance", rds_identifier, 63, "rds", "db:", delete_order=0, case_sensitive=False),
    Kind("rds:cluster", "DB cluster", rds_identifier, 63, "rds", "cluster:", delete_order=1,
         case_sensitive=False),
    Kind("dynamodb:table", "DynamoDB table", dynamodb_table, 255, "dynamodb", "table/"),
    Kind("ec2:volume", "EBS volume (Name tag)", ec2_name_tag, 256, "ec2", "volume/"),
    Kind("ec2:instance", "EC2 instance (Name tag)", ec2_name_tag, 256, "ec2", "instance/"),
    Kind("efs:filesystem", "EFS file system (creation token)", efs_creation_token, 64,
         "elasticfilesystem", "file-system/"),
    Kind("fsx:filesystem", "FSx file system (Name tag)", ec2_name_tag, 256, "fsx", "file-system/"),
    Kind("s3:bucket", "S3 bucket", s3_bucket, 63, "s3", ""),
    Kind("route53:record", "DNS record", dns_name, 253, tagged=False, case_sensitive=False),
    Kind("autoscaling:group", "Auto Scaling group", autoscaling_group, 255, tagged=False),
    # Changed or read by steps, never created: no ARN for sweeps, no remover.
    Kind("ecs:service", "ECS service", ecs_service, 255, tagged=False),
    Kind("eks:nodegroup", "EKS node group", eks_nodegroup, 63, tagged=False),
    Kind("lambda:function", "Lambda function", lambda_function, 170, tagged=False),
)}
# fmt: on


def name_problem(kind: str, name: str) -> str | None:
    """What is wrong with ``name`` for a resource of ``kind`` (None: fine, or a kind without rules)."""
    found = KINDS.get(kind)
    return found.problem(name) if found is not None else None


def same_name_key(kind: str, name: str) -> tuple[str, str]:
    """Two names of one kind that AWS takes for the same resource map to the same key."""
    found = KINDS.get(kind)
    return kind, name if found is None or found.case_sensitive else name.lower()


def max_length(kind: str) -> int:
    found = KINDS.get(kind)
    return found.max_length if found is not None else 255


def delete_order(resource: Resource) -> int:
    found = KINDS.get(resource.kind)
    return found.delete_order if found is not None else 9


def _arn_parts(arn: str) -> tuple[str, str] | None:
    """``(service, resource)`` of an ARN (``arn:partition:service:region:account:resource``)."""
    parts = arn.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return None
    return parts[2], parts[5]


def arn_account(arn: str | None) -> str | None:
    """The account an ARN names (``arn:aws:iam::ACCOUNT:role/NAME``), if it names one."""
    parts = (arn or "").split(":", 5)
    return parts[4] if len(parts) == 6 and parts[0] == "arn" and parts[4].isdigit() else None


def resource_from_arn(arn: str, region: str | None = None) -> Resource | None:
    """The resource an ARN names, for the kinds drplan can delete (None for any other)."""
    parts = _arn_parts(arn)
    if parts is None:
        return None
    service, rest = parts
    for kind in KINDS.values():
        if kind.arn_service != service or kind.arn_prefix is None or not rest.startswith(kind.arn_prefix):
            continue
        native = rest[len(kind.arn_prefix) :]
        if kind.kind == "dynamodb:table":
            native = native.split("/")[0]  # table/NAME/stream/... and the like
        return Resource(kind.kind, native, region, arn)
    return None


def native_id(arn: str) -> str:
    """The id the resource's own API knows it by: ``arn:…:db:ledger`` -> ``ledger``,
    ``arn:…:volume/vol-1`` -> ``vol-1``, ``arn:aws:s3:::b`` -> ``b``; for a kind drplan does not
    know, the ARN's last ``/`` or ``:`` part."""
    found = resource_from_arn(arn)
    if found is not None:
        return found.id
    resource = arn.split(":", 5)[-1]
    return resource.rsplit("/", 1)[-1] if "/" in resource else resource.rsplit(":", 1)[-1]
