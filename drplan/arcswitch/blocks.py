"""One drplan step as one ARC Region switch execution block, where the two mean the same thing.

A translation reads the step's parameters and returns the block (its type, the configuration
member it fills, and the *caveats*: where ARC's block behaves differently from the drplan action
in a way the person exporting must know), with its configuration in the failback workflow (the way
back: the primary Region activated again) or why it has no place there. A step with no block of the same meaning raises
:class:`Unmappable` with the reason; :data:`NOT_MAPPED` gives the reason for whole families of
actions (restores from backups and snapshots, checks, local commands ...). The table in
docs/arc-region-switch.md is this module in prose.

ARC's blocks act on *both* Regions of the plan: a capacity block scales the Region being activated
to a percentage of the same resource in the Region being left, a Lambda block names a function per
Region. drplan's step names one resource, in the Region it runs in; the other is given with
``--peer STEP=ARN`` where ARC needs it. ARNs drplan cannot derive from a name (an Auto Scaling
group's ARN contains a UUID) are given with ``--arn STEP=ARN``. A block that names its resource in
both Regions acts the same way in both directions, so the failback workflow holds the same block;
one that names only the recovery Region's resource has nothing to act on in the primary.

:data:`EXECUTION_BLOCKS` says, for every execution block type of ARC's model, which drplan action
it comes from or why none does (the tests compare it with botocore's model and the docs).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from drplan.arcswitch.context import (
    Block,
    Context,
    Unmappable,
    in_other_region,
    literal_number,
    partition_of,
    region_of,
)
from drplan.arcswitch.settings import Settings
from drplan.engine.prepare import PreparedStep
from drplan.model import Plan

__all__ = ["EXECUTION_BLOCKS", "NOT_MAPPED", "TRANSLATIONS", "Block", "Unmappable", "translate"]


# --- the translations -------------------------------------------------------------------------------


def routing_control(ctx: Context) -> Block:
    if ctx.params.get("safety_rules_to_override"):
        raise Unmappable(
            "`safety_rules_to_override` is set: ARC's routing control block never overrides safety rules"
        )
    arn = ctx.text("routing_control_arn")
    state = ctx.text("state")
    flipped = "Off" if state == "On" else "On"
    s = ctx.settings
    primary, recovery = s.primary_region, s.recovery_region
    # ARC keys the states by the Region a workflow targets: the states listed under a Region are the
    # ones set when a workflow activates it (or, active/active, deactivates it). The step's state is
    # the recovery's: a control turned On routes traffic to the recovery Region, one turned Off
    # away from the primary.
    endpoints = "ARC picks its own cluster endpoint, `cluster_endpoints` are not used"

    def config(controls: dict[str, str]) -> dict[str, Any]:
        return {
            "timeoutMinutes": ctx.timeout_minutes(),
            **ctx.cross_account(),
            "regionAndRoutingControls": {
                region: [{"routingControlArn": arn, "state": value}] for region, value in controls.items()
            },
        }

    if s.approach == "activePassive":
        # One block for both workflows: activating the recovery Region sets the step's state,
        # activating the primary again (the failback) the opposite one.
        both = config({recovery: state, primary: flipped})
        return Block(
            ctx.key,
            "ARCRoutingControl",
            "arcRoutingControlConfig",
            both,
            (
                f"{state} under {recovery} (set when a workflow activates {recovery}) and {flipped} under "
                f"{primary} (set when a workflow activates {primary}, as the failback does); {endpoints}",
            ),
            back=both,
            back_note=f"the same block: turns the control {flipped} when the failback activates {primary}",
        )
    # Active/active: the recovery deactivates the primary; the failback activates it again.
    caveat = f"{state} under {primary} (set when a workflow deactivates {primary}); {endpoints}"
    if state == "Off":
        return Block(
            ctx.key,
            "ARCRoutingControl",
            "arcRoutingControlConfig",
            config({primary: state}),
            (caveat,),
            back=config({primary: "On"}),
            back_note=f"turns the control On again when the failback activates {primary}",
        )
    return Block(
        ctx.key,
        "ARCRoutingControl",
        "arcRoutingControlConfig",
        config({primary: state}),
        (caveat,),
        back_note=(
            f"it turns a control On for {recovery}, which stays On when {primary} is activated again "
            "(active/active: both Regions take traffic)"
        ),
    )


def promote_read_replica(ctx: Context) -> Block:
    instance = ctx.text("instance")
    arn = ctx.own_arn(instance) or (f"arn:{ctx.partition}:rds:{ctx.region}:{ctx.account}:db:{instance}")
    arns = {ctx.region: arn}
    caveats = []
    peer = ctx.peer()
    if peer:
        in_other_region(ctx, peer, "DB instance")
        arns[ctx.other_region] = peer
    else:
        caveats.append(
            f"only the replica in {ctx.region} is listed: give --peer {ctx.key}=ARN for the instance in "
            f"{ctx.other_region} so that the plan also fails back"
        )
    if ctx.params.get("backup_retention_days") is not None or ctx.params.get("backup_window"):
        caveats.append(
            "`backup_retention_days` and `backup_window` are not passed: ARC promotes with RDS's defaults"
        )
    config = {"timeoutMinutes": ctx.timeout_minutes(), **ctx.cross_account(), "dbInstanceArnMap": arns}
    primary = ctx.settings.primary_region
    if primary in arns:
        back: dict[str, Any] | None = config
        note = (
            f"the same block: promotes the instance listed for {primary}, which must be a read replica "
            "again by then; nothing exported makes it one (ARC's RdsCreateCrossRegionReplica block, for "
            "post-recovery workflows, has no drplan step to come from)"
        )
    else:
        back, note = None, f"no instance in {primary} is listed: give --peer {ctx.key}=ARN"
    return Block(
        ctx.key,
        "RdsPromoteReadReplica",
        "rdsPromoteReadReplicaConfig",
        config,
        tuple(caveats),
        back=back,
        back_note=note,
    )


def global_aurora(ctx: Context) -> Block:
    """Both drplan actions are ARC's Aurora global database block: a switchover with the behaviour
    `switchoverOnly`; a failover with `failover` and the ungraceful setting `failover` (ARC's
    ungraceful executions call FailoverGlobalCluster with AllowDataLoss)."""
    failover = ctx.prepared.step.uses == "aws.rds.failover_global_cluster"
    target = ctx.text("target_cluster")
    arn = ctx.own_arn(target) or (
        target
        if target.startswith("arn:")
        else f"arn:{ctx.partition}:rds:{ctx.region}:{ctx.account}:cluster:{target}"
    )
    arns = [arn]
    caveats = []
    source = ctx.params.get("source_cluster")
    peer = ctx.peer() or (str(source) if isinstance(source, str) and source.startswith("arn:") else None)
    if peer:
        in_other_region(ctx, peer, "DB cluster")
        arns.append(peer)
    else:
        caveats.append(
            f"only the DB cluster in {ctx.region} is listed: give --peer {ctx.key}=ARN (or an ARN as "
            f"`source_cluster`) for the cluster in {ctx.other_region}, so that the plan also switches back"
        )
    config: dict[str, Any] = {
        "timeoutMinutes": ctx.timeout_minutes(),
        **ctx.cross_account(),
        "behavior": "failover" if failover else "switchoverOnly",
        "globalClusterIdentifier": ctx.text("global_cluster"),
        "databaseClusterArns": sorted(arns),
    }
    if failover:
        config["ungraceful"] = {"ungraceful": "failover"}
        caveats.append(
            "ARC fails over (FailoverGlobalCluster with AllowDataLoss) in an ungraceful execution and switches "
            "over in a graceful one; drplan's action always fails over"
        )
    primary = ctx.settings.primary_region
    if any(region_of(a) == primary for a in arns):
        back: dict[str, Any] | None = config
        note = f"the same block: makes the cluster in {primary} the writer again"
    else:
        back = None
        note = (
            f"no cluster in {primary} is listed to switch back to: give --peer {ctx.key}=ARN or an ARN as "
            "`source_cluster`"
        )
    return Block(
        ctx.key,
        "AuroraGlobalDatabase",
        "globalAuroraConfig",
        config,
        tuple(caveats),
        back=back,
        back_note=note,
    )


def autoscaling_capacity(ctx: Context) -> Block:
    group = ctx.text("group")
    desired = literal_number(ctx, "desired")
    arn = ctx.own_arn(group)
    if arn is None:
        raise Unmappable(
            f"ARC needs the Auto Scaling group's ARN, which contains a UUID drplan cannot derive from the name "
            f"{group!r}: give --arn {ctx.key}=ARN"
        )
    peer = ctx.peer()
    if peer is None:
        raise Unmappable(
            "ARC scales a group to a percentage of the same group in the Region being left: give that group "
            f"with --peer {ctx.key}=ARN (in {ctx.other_region})"
        )
    in_other_region(ctx, peer, "Auto Scaling group")
    extra = ctx.cross_account()
    config = {
        "timeoutMinutes": ctx.timeout_minutes(),
        "asgs": [{"arn": arn, **extra}, {"arn": peer, **extra}],
        "targetPercent": 100,
        "capacityMonitoringApproach": "sampledMaxInLast24Hours",
    }
    return Block(
        ctx.key,
        "EC2AutoScaling",
        "ec2AsgCapacityIncreaseConfig",
        config,
        (
            f"ARC scales to 100% of the other Region's running capacity (never down), not to desired {desired}; "
            "`min` and `max` are not set",
        ),
        back=config,
        back_note=_capacity_back(ctx, "group"),
    )


_ECS_ARN = re.compile(
    r"arn:aws[a-zA-Z-]*:ecs:([a-z0-9-]+):(\d{12}):service/([a-zA-Z0-9_-]+)/([a-zA-Z0-9_-]{1,255})"
)


def ecs_capacity(ctx: Context) -> Block:
    cluster = ctx.text("cluster")
    service = ctx.text("service")
    desired = literal_number(ctx, "desired")
    service_arn = ctx.own_arn(service)
    if service_arn is None:
        cluster_name = cluster.rsplit("/", 1)[-1]
        service_arn = f"arn:{ctx.partition}:ecs:{ctx.region}:{ctx.account}:service/{cluster_name}/{service}"
    peer = ctx.peer()
    if peer is None:
        raise Unmappable(
            "ARC scales a service to a percentage of the same service in the Region being left: give that "
            f"service with --peer {ctx.key}=ARN (arn:aws:ecs:{ctx.other_region}:ACCOUNT:service/CLUSTER/NAME)"
        )
    in_other_region(ctx, peer, "ECS service")
    extra = ctx.cross_account()
    services = []
    for arn in (service_arn, peer):
        match = _ECS_ARN.fullmatch(arn)
        if match is None:
            raise Unmappable(
                f"{arn} is not an ECS service ARN (arn:aws:ecs:REGION:ACCOUNT:service/CLUSTER/NAME)"
            )
        region, account, cluster_name, _ = match.groups()
        cluster_arn = f"arn:{partition_of(region)}:ecs:{region}:{account}:cluster/{cluster_name}"
        services.append({"clusterArn": cluster_arn, "serviceArn": arn, **extra})
    config = {
        "timeoutMinutes": ctx.timeout_minutes(),
        "services": services,
        "targetPercent": 100,
        "capacityMonitoringApproach": "sampledMaxInLast24Hours",
    }
    return Block(
        ctx.key,
        "ECSServiceScaling",
        "ecsCapacityIncreaseConfig",
        config,
        (f"ARC scales to 100% of the other Region's running tasks (never down), not to desired {desired}",),
        back=config,
        back_note=_capacity_back(ctx, "service"),
    )


def _capacity_back(ctx: Context, what: str) -> str:
    s = ctx.settings
    return (
        f"the same block: scales the {what} in {s.primary_region} to 100% of the one in {s.recovery_region}; "
        f"the {what} in {s.recovery_region} is not scaled down"
    )


def lambda_invoke(ctx: Context) -> Block:
    function = ctx.text("function")
    payload = ctx.params.get("payload")
    if payload not in (None, {}, [], ""):
        raise Unmappable(
            "it sends a `payload`: ARC invokes the function with its own event (the plan's execution), so the "
            "function would not receive it"
        )
    if ctx.params.get("undo_function") or ctx.params.get("undo_payload") is not None:
        raise Unmappable("it has an undo (`undo_function`, `undo_payload`): ARC's custom action has none")
    qualifier = ctx.params.get("qualifier")
    arn = ctx.own_arn(function) or (
        f"arn:{ctx.partition}:lambda:{ctx.region}:{ctx.account}:function:{function}"
        + (f":{qualifier}" if qualifier else "")
    )
    extra = ctx.cross_account()
    lambdas = [{"arn": arn, **extra}]
    caveats = []
    peer = ctx.peer()
    if peer:
        in_other_region(ctx, peer, "Lambda function")
        lambdas.append({"arn": peer, **extra})
    else:
        caveats.append(
            f"ARC's documentation asks for a function in each Region: give --peer {ctx.key}=ARN for the one in "
            f"{ctx.other_region}"
        )
    if ctx.params.get("outputs"):
        caveats.append("the function's result gives no outputs: ARC steps do not pass values on")
    caveats.append("ARC retries a failed invocation every minute until the timeout, not `retries` times")
    to_run = ctx.region_to_run()
    config = {
        "timeoutMinutes": ctx.timeout_minutes(),
        "lambdas": lambdas,
        "retryIntervalMinutes": 1.0,
        "regionToRun": to_run,
    }
    # On the way back the primary is the Region activated, the recovery Region the one left.
    s = ctx.settings
    back_region = s.primary_region if to_run == "activatingRegion" else s.recovery_region
    if any(region_of(str(item["arn"])) == back_region for item in lambdas):
        back: dict[str, Any] | None = config
        note = f"the same block: runs the function in {back_region} (the {to_run} of the failback)"
    else:
        back = None
        note = f"the failback's {to_run} is {back_region}, where no function is listed: give --peer {ctx.key}=ARN"
    return Block(
        ctx.key,
        "CustomActionLambda",
        "customActionLambdaConfig",
        config,
        tuple(caveats),
        back=back,
        back_note=note,
    )


def approval(ctx: Context) -> Block:
    role = ctx.settings.approval_role
    if role is None:  # export() checks this before translating: kept for direct callers
        raise Unmappable("ARC's manual approval needs the role approvers use: give --approval-role ARN")
    config = {"timeoutMinutes": ctx.timeout_minutes(), "approvalRole": role}
    return Block(
        ctx.key,
        "ManualApproval",
        "executionApprovalConfig",
        config,
        (
            "the instructions become the step's description; ARC asks for an approval, not for the work itself",
        ),
        back=config,
        back_note="the same approval, before the failback goes on",
    )


TRANSLATIONS: dict[str, Callable[[Context], Block]] = {
    "aws.arc.set_routing_control": routing_control,
    "aws.rds.promote_read_replica": promote_read_replica,
    "aws.rds.switchover_global_cluster": global_aurora,
    "aws.rds.failover_global_cluster": global_aurora,
    "aws.autoscaling.set_capacity": autoscaling_capacity,
    "aws.ecs.set_capacity": ecs_capacity,
    "aws.lambda.invoke": lambda_invoke,
    "manual": approval,
}

_RESTORE = (
    "ARC Region switch has no block that restores from a backup or snapshot: run it before the ARC plan "
    "(drplan recover) or from a Lambda function of your own"
)

#: Why each other action has no block (the report and the docs say it).
NOT_MAPPED: dict[str, str] = {
    "aws.backup.restore": _RESTORE,
    "aws.dynamodb.restore_backup": _RESTORE,
    "aws.dynamodb.restore_point_in_time": _RESTORE,
    "aws.rds.restore_snapshot": _RESTORE,
    "aws.rds.restore_point_in_time": _RESTORE,
    "aws.rds.restore_cluster_snapshot": _RESTORE,
    "aws.ec2.volume_from_snapshot": _RESTORE,
    "aws.s3.restore_versions": "ARC Region switch has no block that copies or rewinds S3 objects",
    "aws.eks.scale_nodegroup": (
        "ARC's EKS block scales Kubernetes workloads (a Deployment and its HPA) to match the other Region, "
        "not a managed node group's sizes"
    ),
    "aws.route53.change_record": (
        "ARC has no block that writes a DNS record: its Route 53 health check and routing control blocks move "
        "traffic through failover records set up beforehand"
    ),
    "check.route53_health": (
        "ARC's Route 53 health check block changes health-check states to move traffic; it does not wait for "
        "a health check to report healthy, and a health check is not a CloudWatch alarm the plan's "
        "associatedAlarms could hold (an alarm on its HealthCheckStatus metric could be)"
    ),
    "check.cloudwatch_alarm": (
        "ARC has no step that waits for an alarm; alarms are attached to the plan as a whole (associatedAlarms), "
        "shown beside executions or used as triggers"
    ),
    "check.http": "ARC has no HTTP check block (a Lambda custom action could make the request)",
    "check.tcp": "ARC has no TCP check block (a Lambda custom action could open the connection)",
    "wait": "ARC has no wait block",
    "command": "a local command runs where drplan runs; ARC runs nothing outside AWS",
}


def translate(prepared: PreparedStep, settings: Settings, plan: Plan) -> Block:
    """The step's block, or :class:`Unmappable` with the reason."""
    uses = prepared.step.uses
    translation = TRANSLATIONS.get(uses)
    if translation is None:
        raise Unmappable(NOT_MAPPED.get(uses, "drplan maps no ARC execution block onto this action yet"))
    ctx = Context(prepared, settings, plan)
    if ctx.region not in (settings.primary_region, settings.recovery_region):
        raise Unmappable(
            f"it runs in {ctx.region}, which is neither --primary-region {settings.primary_region} nor "
            f"--recovery-region {settings.recovery_region}"
        )
    block = translation(ctx)
    if prepared.step.retries and block.block_type != "CustomActionLambda":
        block = dataclasses.replace(
            block,
            caveats=(
                *block.caveats,
                f"`retries: {prepared.step.retries}` is not carried over: ARC blocks do not retry",
            ),
        )
    return block


#: The block type each translation writes.
_BLOCK_TYPE: dict[Callable[[Context], Block], str] = {
    routing_control: "ARCRoutingControl",
    promote_read_replica: "RdsPromoteReadReplica",
    global_aurora: "AuroraGlobalDatabase",
    autoscaling_capacity: "EC2AutoScaling",
    ecs_capacity: "ECSServiceScaling",
    lambda_invoke: "CustomActionLambda",
    approval: "ManualApproval",
}


def _from(block_type: str) -> str:
    actions = [uses for uses, translation in TRANSLATIONS.items() if _BLOCK_TYPE[translation] == block_type]
    return "from " + ", ".join(f"`{a}`" for a in actions)


#: Every execution block type of ARC's model (``ExecutionBlockType``): the drplan actions it comes
#: from, or why no step becomes one.
EXECUTION_BLOCKS: dict[str, str] = {
    **{block_type: _from(block_type) for block_type in _BLOCK_TYPE.values()},
    "Parallel": "from the graph: a stage of several steps that wait for none of each other",
    "ARCRegionSwitchPlan": (
        "not mapped: it runs another ARC plan (a child plan, by the ARN ARC gives it when it is created, "
        "with the same Regions and approach, nested one level only); no drplan step runs another plan, "
        "and the exporter writes one plan: it does not split chains into child plans"
    ),
    "EKSResourceScaling": (
        "not mapped: it scales Kubernetes workloads (a Deployment and its HPA, by namespace and name, in "
        "an EKS cluster per Region) to a percentage of the other Region's; `aws.eks.scale_nodegroup` sets "
        "a managed node group's sizes"
    ),
    "Route53HealthCheck": (
        "not mapped: it changes the health-check states behind failover records (hosted zone, record "
        "name, record sets per Region) to move traffic; `aws.route53.change_record` writes a record and "
        "`check.route53_health` waits for a health check"
    ),
    "DocumentDb": ("not mapped: no drplan action switches or fails over a DocumentDB global cluster"),
    "RdsCreateCrossRegionReplica": (
        "not mapped: it creates a cross-Region read replica after a recovery (ARC documents it for "
        "post-recovery workflows); no drplan action creates one, and no post-recovery workflow is written"
    ),
    "LambdaEventSourceMapping": (
        "not mapped: it enables or disables Lambda event source mappings per Region; no drplan action does"
    ),
}
