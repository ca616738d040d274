"""Aurora global database: make a secondary DB cluster (in the recovery Region) the primary.

Two actions, as AWS offers two calls. A *switchover* (``SwitchoverGlobalCluster``) is planned: Aurora
waits until the secondary has every write, then swaps the roles, so no data is lost; it can be
switched back, which is its undo. A *failover* (``FailoverGlobalCluster`` with ``AllowDataLoss``)
is for a primary Region that is down: the secondary takes over with what it has, writes not yet
replicated are lost, and nothing puts them back, so it has no undo.

Both wait until the global cluster reports the target as its writer with no switchover or failover
in progress (``FailoverState``). Neither DescribeGlobalClusters nor DescribeDBClusters reports
replication lag; Aurora publishes it to CloudWatch as ``AuroraGlobalDBReplicationLag`` (milliseconds,
per secondary DB cluster). A failover reads its latest value before the call: the measured RPO.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

from drplan.actions._aws import is_not_found, recovery_point, unresolved
from drplan.actions.base import Action, Handle, Poll, PreflightResult, StepContext
from drplan.actions.rds.lookup import describe_cluster, state_fault
from drplan.aws import error_code, error_message
from drplan.durations import humanize
from drplan.errors import StepFailed
from drplan.resources import Target

#: The CloudWatch metric (namespace AWS/RDS) of a secondary cluster's replication lag, milliseconds.
LAG_METRIC = "AuroraGlobalDBReplicationLag"
#: How far back a lag datapoint still says something about now.
LAG_WINDOW = timedelta(minutes=10)
#: How long after the call a global cluster may still show no switchover (AWS is eventually
#: consistent) before the step concludes that none happened.
GRACE = timedelta(minutes=2)
_GLOBAL_FAULTS = ("InvalidGlobalClusterStateFault",)

_OUTPUTS = {
    "endpoint": "Writer endpoint of the new primary DB cluster",
    "reader_endpoint": "Reader endpoint of the new primary DB cluster",
    "port": "Port of the new primary DB cluster",
    "cluster_arn": "ARN of the new primary DB cluster",
    "cluster_id": "Identifier of the new primary DB cluster",
    "previous_primary_arn": "ARN of the DB cluster that was the primary before the step",
    "global_endpoint": "The global cluster's writer endpoint, which follows the primary; null when AWS reports none",
}


def cluster_name(reference: str) -> str:
    """The identifier in a DB cluster ARN (``arn:aws:rds:REGION:ACCOUNT:cluster:NAME``), or the
    reference itself."""
    return reference.split(":cluster:", 1)[-1] if reference.startswith("arn:") else reference


def arn_region(reference: str) -> str | None:
    return reference.split(":")[3] if reference.startswith("arn:") and reference.count(":") >= 5 else None


def same_cluster(named: str, arn: str) -> bool:
    """Does ``named`` (identifier or ARN, from the plan) name the DB cluster ``arn``? Identifiers
    ignore case."""
    if named.startswith("arn:"):
        return named.lower() == arn.lower()
    return named.lower() == cluster_name(arn).lower()


def describe_global(ctx: StepContext, identifier: str) -> dict[str, Any] | None:
    """The global cluster, or None when it does not exist."""
    try:
        found = ctx.client("rds").describe_global_clusters(GlobalClusterIdentifier=identifier)
    except Exception as exc:
        if is_not_found(exc) or error_code(exc) == "GlobalClusterNotFoundFault":
            return None
        raise
    for cluster in found.get("GlobalClusters", []):  # AWS answers that one; emulators may list more
        if str(cluster.get("GlobalClusterIdentifier", "")).lower() == identifier.lower():
            return dict(cluster)
    return None


def writer_arn(global_cluster: Mapping[str, Any]) -> str | None:
    for member in global_cluster.get("GlobalClusterMembers", []):
        if member.get("IsWriter"):
            return str(member["DBClusterArn"])
    return None


def member(global_cluster: Mapping[str, Any], arn: str) -> dict[str, Any] | None:
    for found in global_cluster.get("GlobalClusterMembers", []):
        if str(found.get("DBClusterArn", "")).lower() == arn.lower():
            return dict(found)
    return None


def in_progress(global_cluster: Mapping[str, Any]) -> str | None:
    """The status of a switchover or failover under way (``FailoverState``), or None."""
    state = global_cluster.get("FailoverState") or {}
    status = state.get("Status")
    return str(status) if status else None


def replication_lag(ctx: StepContext, cluster_id: str) -> float | None:
    """The latest replication lag CloudWatch has for the secondary ``cluster_id`` (seconds), in the
    step's Region, from the last :data:`LAG_WINDOW`; None when Aurora reported none."""
    cloudwatch = ctx.client("cloudwatch")
    dimension = [{"Name": "DBClusterIdentifier", "Value": cluster_id}]
    metrics = cloudwatch.list_metrics(Namespace="AWS/RDS", MetricName=LAG_METRIC, Dimensions=dimension)
    now = datetime.now(timezone.utc)
    latest: tuple[datetime, float] | None = None
    for metric in metrics.get("Metrics", []):
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/RDS",
            MetricName=LAG_METRIC,
            Dimensions=metric.get("Dimensions", dimension),
            StartTime=now - LAG_WINDOW,
            EndTime=now,
            Period=60,
            Statistics=["Maximum"],
        ).get("Datapoints", [])
        for point in points:
            if latest is None or point["Timestamp"] > latest[0]:
                latest = (point["Timestamp"], float(point["Maximum"]))
    return None if latest is None else latest[1] / 1000.0


class GlobalClusterSwitch(Action):
    """What the switchover and the failover share: parameters, checks, the wait and the outputs."""

    family = "database"
    outputs = _OUTPUTS
    # Moving a production database's primary is never drilled: `drill_with` must name a drill-only
    # global cluster (and its secondary), which a drill then switches instead.
    drill = "skip"
    #: The RDS call, the verb in messages, and the FailoverState status AWS shows while it runs.
    operation: ClassVar[str]
    verb: ClassVar[str]

    def targets(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        # An ARN names a cluster of the step's Region (checked when the step runs): its identifier.
        target = cluster_name(str(params["target_cluster"]))
        return (Target("rds:cluster", target, "target_cluster", creates=False),)

    def sources(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        source = params.get("source_cluster")
        if not source or str(source).startswith("arn:"):
            return ()
        return (Target("rds:cluster", str(source), "source_cluster", creates=False),)

    def describe(self, params: Mapping[str, Any]) -> str:
        source = params.get("source_cluster")
        of = f" from {cluster_name(str(source))}" if source else ""
        return (
            f"{self.verb.capitalize()} Aurora global database {params.get('global_cluster')}{of} to "
            f"DB cluster {cluster_name(str(params.get('target_cluster')))}"
        )

    # --- the state before the call ------------------------------------------------------------

    def _situation(self, ctx: StepContext) -> tuple[dict[str, Any], dict[str, Any], str]:
        """(global cluster, target DB cluster, current writer ARN), or StepFailed saying why the
        switch cannot be made."""
        name = str(ctx.params["global_cluster"])
        wanted = str(ctx.params["target_cluster"])
        where = arn_region(wanted)
        if where is not None and where != ctx.region:
            raise StepFailed(
                ctx.step.key,
                f"DB cluster {wanted} is in {where}, but the step runs in {ctx.region}; give the step "
                f'"region": "{where}" (the Region that becomes the primary)',
            )
        global_cluster = describe_global(ctx, name)
        if global_cluster is None:
            raise StepFailed(ctx.step.key, f"Aurora global database {name} does not exist")
        target = describe_cluster(ctx, cluster_name(wanted))
        if target is None:
            raise StepFailed(
                ctx.step.key, f"DB cluster {cluster_name(wanted)} does not exist in {ctx.region}"
            )
        arn = str(target["DBClusterArn"])
        if member(global_cluster, arn) is None:
            members = [str(m["DBClusterArn"]) for m in global_cluster.get("GlobalClusterMembers", [])]
            raise StepFailed(
                ctx.step.key,
                f"DB cluster {arn} is not a member of Aurora global database {name} "
                f"(its members: {', '.join(members) or 'none'})",
            )
        writer = writer_arn(global_cluster)
        if writer is None:
            raise StepFailed(ctx.step.key, f"Aurora global database {name} has no writer DB cluster")
        source = ctx.params.get("source_cluster")
        if (
            source
            and not unresolved(source)
            and writer.lower() != arn.lower()
            and not same_cluster(str(source), writer)
        ):
            raise StepFailed(
                ctx.step.key,
                f"the primary of Aurora global database {name} is {writer}, not {source}; not going to {self.verb}",
            )
        return global_cluster, target, writer

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        if unresolved(ctx.params["global_cluster"]) or unresolved(ctx.params["target_cluster"]):
            return [
                PreflightResult(
                    "ok", "the global database comes from an earlier step; checked when the step runs"
                )
            ]
        try:
            global_cluster, target, writer = self._situation(ctx)
        except StepFailed as exc:
            return [PreflightResult("error", exc.reason)]
        name, arn = global_cluster["GlobalClusterIdentifier"], str(target["DBClusterArn"])
        facts: dict[str, Any] = {"global_cluster": name, "primary": writer, "target": arn}
        if writer.lower() == arn.lower():
            return [
                PreflightResult("warning", f"{arn} is already the primary of {name}; nothing to do", facts)
            ]
        busy = in_progress(global_cluster)
        if busy:
            return [PreflightResult("warning", f"Aurora global database {name} is {busy} already", facts)]
        findings = self._readiness(ctx, global_cluster, target, facts)
        status = target.get("Status")
        if status != "available":
            findings.append(PreflightResult("warning", f"DB cluster {arn} is {status}, not available", facts))
        return findings

    def _readiness(
        self,
        ctx: StepContext,
        global_cluster: Mapping[str, Any],
        target: Mapping[str, Any],
        facts: dict[str, Any],
    ) -> list[PreflightResult]:
        return [
            PreflightResult(
                "ok",
                f"would {self.verb} {global_cluster['GlobalClusterIdentifier']} from {cluster_name(facts['primary'])} "
                f"to {target['DBClusterIdentifier']}",
                facts,
            )
        ]

    # --- running ------------------------------------------------------------------------------

    def _call(self, ctx: StepContext, name: str, target_arn: str) -> None:
        raise NotImplementedError

    def _record_point(self, ctx: StepContext, handle: Handle, target: Mapping[str, Any]) -> None:
        """Record the data the new primary has (the measured RPO)."""

    def start(self, ctx: StepContext) -> Handle:
        global_cluster, target, writer = self._situation(ctx)
        name, arn = str(global_cluster["GlobalClusterIdentifier"]), str(target["DBClusterArn"])
        previous = str(ctx.first_seen(f"previous primary {name}", writer))
        called = f"{self.verb} called {name} {arn}"
        asked_before = bool(ctx.memo.get(called))  # by this run: a process that died, or a lost answer
        handle: Handle = {
            "global_cluster": name,
            "target_arn": arn,
            "target": target["DBClusterIdentifier"],
            "previous_primary_arn": previous,
            "started": datetime.now(timezone.utc).isoformat(),
        }
        busy = in_progress(global_cluster)
        towards = str((global_cluster.get("FailoverState") or {}).get("ToDbClusterArn", ""))
        ours = (busy and towards.lower() == arn.lower()) or (not busy and writer.lower() == arn.lower())
        if asked_before and previous.lower() != arn.lower() and ours:
            ctx.note(f"re-attached to this run's {self.verb} of {name}")
            return handle  # the call was made: wait for it, never ask twice
        if busy:  # someone else's switch (or this run's undo of its own): not this step's to take
            raise StepFailed(
                ctx.step.key, f"Aurora global database {name} is {busy} already; not starting another"
            )
        if writer.lower() == arn.lower():
            ctx.note(f"{arn} is already the primary of {name}; nothing to {self.verb}")
            handle["unchanged"] = True
            return handle
        self._record_point(ctx, handle, target)
        ctx.remember(called, True)  # before the call: a process killed during it re-attaches
        try:
            self._call(ctx, name, arn)
        except Exception as exc:
            if state_fault(exc) or error_code(exc) in _GLOBAL_FAULTS:
                raise StepFailed(
                    ctx.step.key, f"RDS refused to {self.verb} {name} to {arn} now: {error_message(exc)}"
                ) from exc
            raise
        return handle

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        return self._wait_for_writer(ctx, handle, handle["target_arn"], handle.get("started"))

    def _wait_for_writer(self, ctx: StepContext, handle: Handle, arn: str, since: str | None) -> Poll:
        name = handle["global_cluster"]
        global_cluster = describe_global(ctx, name)
        if global_cluster is None:
            return Poll.failure(f"Aurora global database {name} disappeared")
        busy = in_progress(global_cluster)
        if busy:
            return Poll.running(f"{name} is {busy}")
        writer = writer_arn(global_cluster) or "no DB cluster"
        if writer.lower() != arn.lower():
            started = datetime.fromisoformat(since) if since else None
            if started is not None and datetime.now(timezone.utc) - started < GRACE:
                return Poll.running(f"waiting for {name} to report the {self.verb}")
            return Poll.failure(
                f"Aurora global database {name} is not being switched, and its primary is {writer}, not {arn}"
            )
        target = describe_cluster(ctx, cluster_name(arn)) if arn == handle["target_arn"] else None
        if target is not None and target.get("Status") != "available":
            return Poll.running(f"{target['DBClusterIdentifier']} is the primary, {target.get('Status')}")
        return Poll.finished(f"{cluster_name(arn)} is the primary of {name}")

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        target = describe_cluster(ctx, handle["target"])
        if target is None:
            raise StepFailed(ctx.step.key, f"DB cluster {handle['target']} disappeared")
        global_cluster = describe_global(ctx, handle["global_cluster"]) or {}
        return {
            "endpoint": target.get("Endpoint"),
            "reader_endpoint": target.get("ReaderEndpoint"),
            "port": target.get("Port"),
            "cluster_arn": target["DBClusterArn"],
            "cluster_id": target["DBClusterIdentifier"],
            "previous_primary_arn": handle["previous_primary_arn"],
            "global_endpoint": global_cluster.get("Endpoint"),
        }


class SwitchoverGlobalCluster(GlobalClusterSwitch):
    name = "aws.rds.switchover_global_cluster"
    ungraceful = "aws.rds.failover_global_cluster"  # the primary Region is down: no switchover possible
    summary = "Switch an Aurora global database over to a secondary DB cluster, with no data loss; undo switches back"
    iam = ("rds:DescribeGlobalClusters", "rds:DescribeDBClusters", "rds:SwitchoverGlobalCluster")
    default_estimate = timedelta(minutes=5)
    undoable = True
    verb = "switch over"

    def _call(self, ctx: StepContext, name: str, target_arn: str) -> None:
        ctx.client("rds").switchover_global_cluster(
            GlobalClusterIdentifier=name, TargetDbClusterIdentifier=target_arn
        )

    def _readiness(
        self,
        ctx: StepContext,
        global_cluster: Mapping[str, Any],
        target: Mapping[str, Any],
        facts: dict[str, Any],
    ) -> list[PreflightResult]:
        found = member(global_cluster, str(target["DBClusterArn"])) or {}
        sync = found.get("SynchronizationStatus")
        if sync and sync != "connected":
            return [
                PreflightResult(
                    "warning",
                    f"DB cluster {target['DBClusterIdentifier']} replication is {sync}; a switchover waits "
                    "until it is connected",
                    facts,
                )
            ]
        return super()._readiness(ctx, global_cluster, target, facts)

    def _record_point(self, ctx: StepContext, handle: Handle, target: Mapping[str, Any]) -> None:
        # A switchover completes only once the secondary has every write: nothing is lost.
        recovery_point(
            handle, f"{handle['global_cluster']} (switchover, no data loss)", datetime.now(timezone.utc)
        )

    def undo(self, ctx: StepContext, handle: Handle) -> Handle:
        """Switch back to the primary there was before the step (unless it is the primary again)."""
        if handle.get("unchanged"):
            return {}
        back = str(handle["previous_primary_arn"])
        global_cluster = describe_global(ctx, handle["global_cluster"])
        if global_cluster is None or (writer_arn(global_cluster) or "").lower() == back.lower():
            return {"target_arn": back}
        ctx.client("rds").switchover_global_cluster(
            GlobalClusterIdentifier=handle["global_cluster"], TargetDbClusterIdentifier=back
        )
        return {"target_arn": back, "started": datetime.now(timezone.utc).isoformat()}

    def poll_undo(self, ctx: StepContext, handle: Handle, undo_handle: Handle) -> Poll:
        if not undo_handle:
            return Poll.finished("nothing was switched")
        return self._wait_for_writer(ctx, handle, undo_handle["target_arn"], undo_handle.get("started"))


class FailoverGlobalCluster(GlobalClusterSwitch):
    name = "aws.rds.failover_global_cluster"
    summary = (
        "Fail an Aurora global database over to a secondary DB cluster, allowing data loss (cannot be undone)"
    )
    outputs = {
        **_OUTPUTS,
        "replication_lag_seconds": f"The secondary's replication lag just before the failover, from CloudWatch's {LAG_METRIC}; null when Aurora reported none",
    }
    iam = (
        "rds:DescribeGlobalClusters",
        "rds:DescribeDBClusters",
        "rds:FailoverGlobalCluster",
        "cloudwatch:ListMetrics",
        "cloudwatch:GetMetricStatistics",
    )
    default_estimate = timedelta(minutes=3)
    # Writes the secondary had not received are lost for good; the old primary, once back, rejoins
    # as a secondary of the new one. Switching back later is a switchover step of its own.
    undoable = False
    verb = "fail over"

    def _call(self, ctx: StepContext, name: str, target_arn: str) -> None:
        ctx.client("rds").failover_global_cluster(
            GlobalClusterIdentifier=name, TargetDbClusterIdentifier=target_arn, AllowDataLoss=True
        )

    def _lag(self, ctx: StepContext, cluster_id: str) -> float | None:
        try:
            return replication_lag(ctx, cluster_id)
        except Exception as exc:  # the lag is evidence, not a precondition: fail over without it
            ctx.note(f"could not read the replication lag of {cluster_id}: {error_message(exc)}")
            return None

    def _readiness(
        self,
        ctx: StepContext,
        global_cluster: Mapping[str, Any],
        target: Mapping[str, Any],
        facts: dict[str, Any],
    ) -> list[PreflightResult]:
        found = super()._readiness(ctx, global_cluster, target, facts)
        lag = self._lag(ctx, str(target["DBClusterIdentifier"]))
        facts["replication_lag_seconds"] = lag
        if lag is None:
            words = f"no replication lag reported ({LAG_METRIC}): the data lost cannot be estimated"
            return [*found, PreflightResult("warning", words, facts)]
        words = f"replication lag {humanize(timedelta(seconds=lag))}: about that much of the latest writes would be lost"
        return [*found, PreflightResult("ok", words, facts)]

    def _record_point(self, ctx: StepContext, handle: Handle, target: Mapping[str, Any]) -> None:
        lag = self._lag(ctx, str(target["DBClusterIdentifier"]))
        handle["replication_lag_seconds"] = lag
        if lag is None:
            ctx.note(
                f"no replication lag reported for {target['DBClusterIdentifier']}: the RPO is not measured"
            )
            return
        created = datetime.now(timezone.utc) - timedelta(seconds=lag)
        recovery_point(handle, f"{handle['global_cluster']} (failover, {lag:.3f}s replication lag)", created)

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        return {
            **super().result(ctx, handle),
            "replication_lag_seconds": handle.get("replication_lag_seconds"),
        }
