"""The least-privilege IAM policy a plan needs to run in one mode (``drplan iam-policy``).

Built from what the plan itself says, without AWS:

- the IAM actions each step's action declares (:attr:`drplan.actions.base.Action.iam`), for the
  steps that run in that mode (a drill leaves out ``only: recover`` steps and the steps it skips
  because they would change production);
- plus what every run needs: ``sts:GetCallerIdentity`` (the account check), ``tag:GetResources``
  (``cleanup RUN_ID`` and ``cleanup --sweep`` find drill resources by tag), the ``run.state`` S3
  prefix when set, and reading the SSM parameters and Secrets Manager secrets the plan references;
- resources scoped to the plan's names where the step's parameters give them (the names a drill
  gives its copies, with the run id as a wildcard; tables, DB instances and clusters, buckets,
  hosted zones, Auto Scaling groups), in the account of ``aws.account_id`` (``*`` without one) and
  the step's region;
- destructive actions (``Delete*``, ``Terminate*``, ``Modify*``, ``Detach*``) conditioned on the
  tags drplan puts on everything it creates (``drplan:run-id`` present, and in drills
  ``drplan:mode`` = ``drill``) where the service evaluates ``aws:ResourceTag``; on services that
  do not (S3, Route 53) they are scoped to the plan's names instead.

Describe, List and Get calls stay on ``"Resource": "*"`` (most of them support nothing narrower),
except S3's, which are scoped to the plan's buckets. ``command`` steps run programs whose AWS
calls drplan cannot know: :func:`build_policy` returns them as notes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from drplan.model import Mode, Plan
from drplan.resources import arn_account

#: Stands for the run id while a drill's names are worked out; becomes ``*`` in the ARNs. As long
#: as a real run id (8 characters), so names shortened to fit AWS's limits are shortened alike.
RUN_ID_MARKER = "r0u1n2i3"

DESTRUCTIVE = ("Delete", "Terminate", "Modify", "Detach")
READ = ("Describe", "List", "Get")
#: Reads of *data*, not of metadata: scoped to the step's own resources like its writes.
DATA_READS = frozenset({"dynamodb:GetItem"})
#: Item writes a DynamoDB restore makes into its new table.
ITEM_WRITES = frozenset({"dynamodb:DeleteItem"})

#: Services whose authorization evaluates ``aws:ResourceTag/...`` on the resources drplan deletes.
TAG_CONDITIONS = frozenset(
    {
        "rds",
        "dynamodb",
        "ec2",
        "elasticfilesystem",
        "fsx",
        "autoscaling",
        "ecs",
        "eks",
        "lambda",
        "backup",
        "cloudwatch",
    }
)

#: Services whose resources steps create and name (targets): a step changes only the ones it names.
_RESOURCE_SERVICES = frozenset({"rds", "dynamodb", "ec2", "s3", "elasticfilesystem", "fsx"})
_KIND_SERVICES = {"efs": "elasticfilesystem"}

POLICY_VERSION = "2012-10-17"
MANAGED_POLICY_LIMIT = 6144  # characters, without white space


@dataclass
class Policy:
    document: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        return json.dumps(self.document, indent=2) + "\n"

    def size(self) -> int:
        """The size AWS counts against its limits (white space outside strings not counted)."""
        return len(json.dumps(self.document, separators=(",", ":")))


@dataclass(frozen=True)
class _Grant:
    actions: frozenset[str]
    resources: frozenset[str]
    condition: str  # canonical JSON ("" for none)


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def tag_condition(mode: Mode) -> dict[str, Any]:
    """What a resource must carry for drplan to delete or change it: its own tags."""
    condition: dict[str, Any] = {"Null": {"aws:ResourceTag/drplan:run-id": "false"}}
    if mode == "drill":
        condition["StringEquals"] = {"aws:ResourceTag/drplan:mode": "drill"}
    return condition


def _name(value: Any) -> str:
    """A name for an ARN: a reference (known at run time only) and the run id become ``*``."""
    text = re.sub(r"\$\{[^}]*\}", "*", str(value)).replace(RUN_ID_MARKER, "*")
    return re.sub(r"\*+", "*", text)


@dataclass(frozen=True)
class _Where:
    partition: str
    region: str
    account: str

    def arn(self, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
        return (
            f"arn:{self.partition}:{service}:{self.region if region else ''}:"
            f"{self.account if account else ''}:{resource}"
        )


def _target_arns(kind: str, name: str, extra: Mapping[str, str], where: _Where) -> list[str]:
    """The ARNs a resource of ``kind`` called ``name`` has (patterns when only part is known)."""
    if kind == "rds:db":
        return [where.arn("rds", f"db:{name.lower()}")]
    if kind == "rds:cluster":
        return [where.arn("rds", f"cluster:{name.lower()}")]
    if kind == "dynamodb:table":
        return [where.arn("dynamodb", f"table/{name}"), where.arn("dynamodb", f"table/{name}/*")]
    if kind == "s3:bucket":
        return [where.arn("s3", name, region=False, account=False)]
    if kind == "ec2:volume":  # named by a Name tag; AWS picks the id
        return [where.arn("ec2", "volume/*")]
    if kind == "ec2:instance":
        return [where.arn("ec2", "instance/*")]
    if kind == "efs:filesystem":
        return [where.arn("elasticfilesystem", "file-system/*")]
    if kind == "fsx:filesystem":  # named by a Name tag; AWS picks the id
        return [where.arn("fsx", "file-system/*")]
    if kind == "route53:record":
        zone = extra.get("zone_id", "*")
        return [where.arn("route53", f"hostedzone/{_name(zone)}", region=False, account=False)]
    if kind == "autoscaling:group":
        return [where.arn("autoscaling", f"autoScalingGroup:*:autoScalingGroupName/{name}")]
    if kind == "ecs:service":
        return [where.arn("ecs", f"service/{_name(extra.get('cluster', '*'))}/{name}")]
    if kind == "eks:nodegroup":
        return [where.arn("eks", f"nodegroup/{_name(extra.get('cluster', '*'))}/{name}/*")]
    return []


#: RDS restores name other resources besides the new instance or cluster: the snapshot, subnet
#: group, option and parameter groups. Authorization is checked against each of them.
_RDS_RESTORE_EXTRAS = (
    "snapshot:*",
    "cluster-snapshot:*",
    "subgrp:*",
    "og:*",
    "pg:*",
    "cluster-pg:*",
    "secgrp:*",
)


def _resources(
    action: str,
    service: str,
    targets: list[tuple[str, str, Mapping[str, str]]],
    sources: list[tuple[str, str, Mapping[str, str]]],
    params: Mapping[str, Any],
    where: _Where,
) -> list[str]:
    """The resources one IAM action of a step may touch (``["*"]`` when nothing narrower is known)."""
    verb = action.split(":", 1)[1]
    created = [arn for kind, name, extra in targets for arn in _target_arns(kind, name, extra, where)]
    read_from = [arn for kind, name, extra in sources for arn in _target_arns(kind, name, extra, where)]
    if service == "s3":
        buckets = {name for kind, name, _ in targets if kind == "s3:bucket"}
        if not verb.startswith(DESTRUCTIVE) and not verb.startswith(("Put", "Create", "Abort")):
            buckets |= {name for kind, name, _ in sources if kind == "s3:bucket"}
        if not buckets:
            return [where.arn("s3", "*", region=False, account=False)]
        object_level = "Object" in verb or verb == "AbortMultipartUpload"
        return sorted(
            where.arn("s3", f"{b}/*" if object_level else b, region=False, account=False) for b in buckets
        )
    if verb.startswith(READ) and action not in DATA_READS:
        return ["*"]
    if service == "iam" and verb == "PassRole":
        role = params.get("iam_role_arn")
        return [_name(role)] if role else [where.arn("iam", "role/*", region=False)]
    if service == "rds" and verb in ("SwitchoverGlobalCluster", "FailoverGlobalCluster"):
        # Authorized against the global cluster and the member DB clusters the primary moves
        # between: the target and the primary now, in another Region (undo switches back).
        source = _name(params.get("source_cluster") or "*").lower()
        primary = (
            source
            if source.startswith("arn:")
            else f"arn:{where.partition}:rds:*:{where.account}:cluster:{source}"
        )
        global_cluster = _name(params.get("global_cluster", "*")).lower()
        return sorted({where.arn("rds", f"global-cluster:{global_cluster}", region=False), *created, primary})
    if service == "rds":
        mine = [a for a in created if a.split(":")[2] == "rds"] or [
            where.arn("rds", "db:*"),
            where.arn("rds", "cluster:*"),
        ]
        if verb.startswith(("Restore", "Create")):
            extras = [where.arn("rds", extra) for extra in _RDS_RESTORE_EXTRAS]
            return sorted({*mine, *[a for a in read_from if a.split(":")[2] == "rds"], *extras})
        return sorted(set(mine))
    if service == "dynamodb":
        mine = [a for a in created if ":dynamodb:" in a] or [where.arn("dynamodb", "table/*")]
        if verb.startswith("Restore"):
            origin = [a for a in read_from if ":dynamodb:" in a and not a.endswith("/*")]
            backups = [f"{a}/backup/*" for a in origin] or [where.arn("dynamodb", "table/*/backup/*")]
            return sorted({*mine, *origin, *backups})
        return sorted(set(mine))
    if service == "ec2":
        out = {a for a in created if ":ec2:" in a}
        if verb.startswith("Create") and verb != "CreateTags":
            out |= {where.arn("ec2", "volume/*"), where.arn("ec2", "snapshot/*", account=False)}
        if verb.endswith(("Instances", "InstanceAttribute")):
            out = {where.arn("ec2", "instance/*")}
        return sorted(out or {where.arn("ec2", "volume/*")})
    if service == "route53":
        if verb == "GetChange":
            return [where.arn("route53", "change/*", region=False, account=False)]
        zones = [a for a in created if ":route53:" in a]
        return sorted(set(zones)) or [where.arn("route53", "hostedzone/*", region=False, account=False)]
    if service == "backup" and verb == "StartRestoreJob":
        return [where.arn("backup", "recovery-point:*")]
    if service == "elasticfilesystem":
        return [where.arn("elasticfilesystem", "file-system/*")]
    if service == "fsx":
        return [where.arn("fsx", "file-system/*")]
    mine = [a for a in created if a.split(":")[2] == service]
    return sorted(set(mine)) or ["*"]


def _instance_arns(params: Mapping[str, Any], where: _Where) -> list[str]:
    """The instances a volume step attaches to (its ``attach.instance_id``)."""
    attach = params.get("attach")
    if isinstance(attach, Mapping) and attach.get("instance_id"):
        return [where.arn("ec2", f"instance/{_name(attach['instance_id'])}")]
    return []


def _secret_grants(values: Iterable[Any], where: _Where) -> list[_Grant]:
    grants = []
    for text in _strings(values):
        for source, name in re.findall(r"\$\{(ssm|secretsmanager):([^}]+)\}", text):
            if source == "ssm":
                path = name if name.startswith("arn:") else where.arn("ssm", "parameter/" + name.lstrip("/"))
                grants.append(_Grant(frozenset({"ssm:GetParameter"}), frozenset({path}), ""))
            else:
                secret = name if name.startswith("arn:") else where.arn("secretsmanager", f"secret:{name}-*")
                grants.append(_Grant(frozenset({"secretsmanager:GetSecretValue"}), frozenset({secret}), ""))
    return grants


def _strings(values: Iterable[Any]) -> Iterable[str]:
    for value in values:
        if isinstance(value, str):
            yield value
        elif isinstance(value, Mapping):
            yield from _strings(value.values())
        elif isinstance(value, list):
            yield from _strings(value)


def build_policy(
    plan: Plan,
    mode: Mode,
    *,
    account_id: str | None = None,
    region: str | None = None,
    state: str | None = None,
) -> Policy:
    """The IAM policy document ``plan`` needs to run in ``mode`` (see the module's description)."""
    from drplan.actions import registry
    from drplan.engine.prepare import prepare_steps

    actions = registry()
    steps, _ = prepare_steps(plan, mode, actions, run_id=RUN_ID_MARKER)
    account = account_id or plan.aws.account_id or "*"
    default_region = region or (plan.drill.region if mode == "drill" else None) or plan.aws.region or "*"
    notes: list[str] = []
    grants: list[_Grant] = [
        _Grant(frozenset({"sts:GetCallerIdentity"}), frozenset({"*"}), ""),
        _Grant(frozenset({"tag:GetResources"}), frozenset({"*"}), ""),  # cleanup by tag, --sweep
    ]
    tagged = json.dumps(tag_condition(mode), sort_keys=True)
    for key, prepared in steps.items():
        step, action = prepared.step, prepared.action
        if step.uses == "command":
            notes.append(f"{key} runs a command: its own AWS calls are not in this policy")
        step_region = step.region or default_region
        # A step that assumes a role works in that role's account (a DR account): its resources
        # are there, and whoever runs drplan must be allowed to assume the role.
        role_arn = step.role_arn or plan.aws.role_arn
        role_account = arn_account(step.role_arn)
        where = _Where(partition(step_region), step_region, role_account or account)
        if role_arn:
            grants.append(_Grant(frozenset({"sts:AssumeRole"}), frozenset({role_arn}), ""))
        targets = [(t.kind, _name(t.name), t.extra) for t in action.targets(prepared.params)]
        sources = [(t.kind, _name(t.name), t.extra) for t in action.sources(prepared.params)]
        grants += _secret_grants([step.params_for(mode)], where)
        if step.role_arn or plan.aws.role_arn:
            notes.append(
                f"{key} runs as role {step.role_arn or plan.aws.role_arn}: give the role this policy (the "
                "statements of its account); the policy lets the caller assume it (sts:AssumeRole)"
            )
        touched = {_KIND_SERVICES.get(kind.split(":")[0], kind.split(":")[0]) for kind, _, _ in targets}
        for iam_action in action.iam:
            service = iam_action.split(":", 1)[0]
            verb = iam_action.split(":", 1)[1]
            unrelated = bool(touched) and service in _RESOURCE_SERVICES and service not in touched
            if unrelated and (service == "s3" or not verb.startswith(READ)):
                # e.g. aws.backup.restore lists what every resource type needs; a step restoring a
                # DynamoDB table never changes (or reads) S3, RDS or EBS resources.
                continue
            resources = _resources(iam_action, service, targets, sources, prepared.params, where)
            # Item deletes are part of writing a restored table (AWS checks them when the restore
            # starts, before the new table has drplan's tags): scoped to the target table's name,
            # not conditioned on its tags.
            destructive = verb.startswith(DESTRUCTIVE) and iam_action not in ITEM_WRITES
            if service == "ec2" and verb in ("AttachVolume", "DetachVolume"):
                instances = _instance_arns(prepared.params, where) or [where.arn("ec2", "instance/*")]
                grants.append(_Grant(frozenset({iam_action}), frozenset(instances), ""))
            condition = ""
            if destructive and service in TAG_CONDITIONS:
                condition = tagged
            elif service == "iam" and verb == "PassRole" and step.uses.startswith("aws.backup."):
                condition = json.dumps({"StringEquals": {"iam:PassedToService": "backup.amazonaws.com"}})
            grants.append(_Grant(frozenset({iam_action}), frozenset(resources), condition))
    state_url = state or plan.run.state
    if state_url:
        bucket, _, prefix = state_url.removeprefix("s3://").partition("/")
        prefix = prefix.strip("/")
        objects = f"arn:aws:s3:::{bucket}/{prefix + '/' if prefix else ''}*"
        grants.append(
            _Grant(frozenset({"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}), frozenset({objects}), "")
        )
        listing = (
            json.dumps({"StringLike": {"s3:prefix": [f"{prefix}/*" if prefix else "*"]}}) if prefix else ""
        )
        grants.append(_Grant(frozenset({"s3:ListBucket"}), frozenset({f"arn:aws:s3:::{bucket}"}), listing))
    return Policy(_document(grants), notes)


def _document(grants: list[_Grant]) -> dict[str, Any]:
    """Statements from grants: actions with the same resources and condition share one, and
    resources with the same actions and condition are merged next."""
    by_scope: dict[tuple[frozenset[str], str], set[str]] = {}
    for g in grants:
        by_scope.setdefault((g.resources, g.condition), set()).update(g.actions)
    by_actions: dict[tuple[frozenset[str], str], set[str]] = {}
    for (scope, condition), granted in by_scope.items():
        by_actions.setdefault((frozenset(granted), condition), set()).update(scope)
    statements = []
    for (acts, condition), resources in by_actions.items():
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Action": sorted(acts),
            "Resource": sorted(resources) if len(resources) > 1 else next(iter(resources)),
        }
        if "*" in resources and len(resources) > 1:
            statement["Resource"] = "*"
        if condition:
            statement["Condition"] = json.loads(condition)
        statements.append(statement)
    statements.sort(key=lambda s: (_order(s), s["Action"][0], json.dumps(s["Resource"])))
    used: dict[str, int] = {}
    for s in statements:
        base = _sid(s)
        used[base] = used.get(base, 0) + 1
        s["Sid"] = base if used[base] == 1 else f"{base}{used[base]}"
    return {"Version": POLICY_VERSION, "Statement": [{"Sid": s.pop("Sid"), **s} for s in statements]}


def _order(statement: Mapping[str, Any]) -> int:
    if statement["Resource"] == "*" and "Condition" not in statement:
        return 0
    return 2 if "Condition" in statement else 1


def _sid(statement: Mapping[str, Any]) -> str:
    services = sorted({a.split(":", 1)[0] for a in statement["Action"]})
    verbs = {a.split(":", 1)[1] for a in statement["Action"]}
    name = "".join(s.capitalize() for s in services[:2]) if len(services) <= 2 else "Any"
    if statement["Resource"] == "*" and "Condition" not in statement:
        kind = "Read" if all(v.startswith(READ) for v in verbs) else "Unscoped"
    elif "Condition" in statement and any(v.startswith(DESTRUCTIVE) for v in verbs):
        kind = "RemoveTagged"
    elif all(v.startswith(READ) for v in verbs):
        kind = "ReadScoped"
    else:
        kind = "Change"
    return re.sub(r"[^A-Za-z0-9]", "", f"{name}{kind}")
