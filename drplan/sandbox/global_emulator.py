"""An emulation of Aurora global database switchover and failover, for the sandbox only.

moto emulates Aurora global databases (CreateGlobalCluster, DescribeGlobalClusters, DB clusters
that join one with ``GlobalClusterIdentifier``) but answers "not implemented" for
SwitchoverGlobalCluster and FailoverGlobalCluster. So that a plan moving a global database's primary
can be drilled end to end in the sandbox, this module answers those two calls itself, the way
:mod:`.backup_emulator` answers AWS Backup's: it speaks RDS's query protocol, so drplan's own
``aws.rds.switchover_global_cluster`` and ``aws.rds.failover_global_cluster`` talk to it exactly as
they would to AWS. The switch is made on moto's own global cluster (in this process), as AWS makes
it: the global cluster reports the switch in progress (``FailoverState``) for a moment, then the
target DB cluster as its writer and the old primary as a secondary. Everything else (the describes
the steps wait on) is moto's.

It also holds the actions' seeder: the global database a step names, with its primary DB cluster
in another Region and the secondary it switches to in the step's Region, and a replication lag in
CloudWatch for the secondary (Aurora's ``AuroraGlobalDBReplicationLag``), which moto does not make.
Never used outside ``--sandbox``.
"""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from drplan.actions._aws import unresolved
from drplan.actions.rds.global_cluster import LAG_METRIC, arn_region, cluster_name, describe_global, member

if TYPE_CHECKING:
    from drplan.sandbox.seeders.context import SeedContext

ACCOUNT = "123456789012"  # moto's default account
#: moto keeps every global cluster in this Region's backend (they belong to no Region).
GLOBAL_REGION = "us-east-1"
#: How long the emulated switch shows as in progress before the target is the writer.
SWITCH_SECONDS = 0.3
#: The replication lag the seeder reports for a secondary, in milliseconds.
SEED_LAG_MS = 850.0
_OPERATIONS = {"SwitchoverGlobalCluster": "switching-over", "FailoverGlobalCluster": "failing-over"}
_NAMESPACE = "http://rds.amazonaws.com/doc/2014-10-31/"
_FORM = "drplan.global_emulator.form"


def _signed_for_rds(environ: dict[str, Any]) -> bool:
    return "/rds/aws4_request" in str(environ.get("HTTP_AUTHORIZATION", ""))


@dataclass
class GlobalClusterEmulator:
    """Answers SwitchoverGlobalCluster and FailoverGlobalCluster on moto's in-process RDS state."""

    switch_seconds: float = SWITCH_SECONDS

    def handles(self, environ: dict[str, Any]) -> bool:
        """An RDS call this module answers. The form body is read here (the Action is in it) and
        put back, so that moto can still read every other call."""
        if not _signed_for_rds(environ) or environ.get("REQUEST_METHOD") != "POST":
            return False
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        environ[_FORM] = form
        return form.get("Action") in _OPERATIONS

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        form: dict[str, str] = environ[_FORM]
        action = form["Action"]
        status, body = self._switch(action, form)
        data = body.encode()
        start_response(
            f"{status} {'OK' if status < 400 else 'Error'}",
            [("Content-Type", "text/xml"), ("Content-Length", str(len(data)))],
        )
        return [data]

    def _switch(self, action: str, form: dict[str, str]) -> tuple[int, str]:
        from moto.rds.models import rds_backends

        clusters = rds_backends[ACCOUNT][GLOBAL_REGION].global_clusters
        name = form.get("GlobalClusterIdentifier", "")
        wanted = form.get("TargetDbClusterIdentifier", "")
        if name not in clusters:
            return _error(404, "GlobalClusterNotFoundFault", f"Global cluster {name} not found.")
        global_cluster = clusters[name]
        target = next(
            (m for m in global_cluster.members if wanted in (m.db_cluster_arn, m.db_cluster_identifier)), None
        )
        if target is None:
            return _error(404, "DBClusterNotFoundFault", f"DB cluster {wanted} is not a member of {name}.")
        if getattr(global_cluster, "failover_state", None) or target.is_writer:
            why = (
                "a switchover or failover is in progress"
                if not target.is_writer
                else f"{wanted} is the primary"
            )
            return _error(400, "InvalidGlobalClusterStateFault", f"Global cluster {name}: {why}.")
        writer = next((m for m in global_cluster.members if m.is_writer), None)
        data_loss = action == "FailoverGlobalCluster" and form.get("AllowDataLoss") == "true"
        state = {
            "Status": _OPERATIONS[action],
            "FromDbClusterArn": writer.db_cluster_arn if writer is not None else "",
            "ToDbClusterArn": target.db_cluster_arn,
            "IsDataLossAllowed": data_loss,
        }
        # moto's model has no FailoverState; its answers report the attribute once it is set.
        setattr(global_cluster, "failover_state", state)  # noqa: B010
        global_cluster.status = _OPERATIONS[action]

        def finish() -> None:
            for one in global_cluster.members:
                one.is_writer = one is target
            global_cluster.__dict__.pop("failover_state", None)
            global_cluster.status = "available"

        timer = threading.Timer(self.switch_seconds, finish)
        timer.daemon = True
        timer.start()
        loss = "true" if data_loss else "false"
        cluster = (
            f"<GlobalCluster><GlobalClusterIdentifier>{escape(global_cluster.global_cluster_identifier)}"
            f"</GlobalClusterIdentifier><GlobalClusterArn>{escape(global_cluster.global_cluster_arn)}"
            f"</GlobalClusterArn><Status>{state['Status']}</Status><Engine>{escape(global_cluster.engine)}</Engine>"
            f"<FailoverState><Status>{state['Status']}</Status><FromDbClusterArn>{escape(str(state['FromDbClusterArn']))}"
            f"</FromDbClusterArn><ToDbClusterArn>{escape(target.db_cluster_arn)}</ToDbClusterArn>"
            f"<IsDataLossAllowed>{loss}</IsDataLossAllowed></FailoverState></GlobalCluster>"
        )
        return 200, (
            f'<{action}Response xmlns="{_NAMESPACE}"><{action}Result>{cluster}</{action}Result>'
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></{action}Response>"
        )


def _error(status: int, code: str, message: str) -> tuple[int, str]:
    return status, (
        f'<ErrorResponse xmlns="{_NAMESPACE}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )


# --- seeding -------------------------------------------------------------------------------------

ENGINE, ENGINE_VERSION = "aurora-postgresql", "16.4"
SEED_LOGIN = {"MasterUsername": "drplan", "MasterUserPassword": "sandbox-only-1"}


def _primary_region(ctx: SeedContext) -> str:
    """Where the seeded primary runs: the ``source_cluster`` ARN's Region, else another Region the
    plan names, else one next to the step's (a global database spans Regions)."""
    source = str(ctx.params.get("source_cluster") or "")
    region = arn_region(source)
    if region:
        return region
    candidates = [*ctx.plan.regions.values(), ctx.plan.aws.region or "", "us-east-1", "us-west-2"]
    return next(r for r in candidates if r and r != ctx.region)


def seed_global_cluster(ctx: SeedContext) -> None:
    """The Aurora global database ``global_cluster``: a primary DB cluster (``source_cluster``, else
    ``<global_cluster>-primary``) in another Region, and ``target_cluster`` as a secondary in the
    step's Region, with a replication lag in CloudWatch."""
    name, target = ctx.params.get("global_cluster"), ctx.params.get("target_cluster")
    if (
        not name
        or not target
        or unresolved(name)
        or unresolved(target)
        or unresolved(ctx.params.get("source_cluster"))
    ):
        return
    target_id = cluster_name(str(target))
    rds = ctx.client("rds")
    existing = describe_global(ctx, str(name))
    if existing is None:
        rds.create_global_cluster(
            GlobalClusterIdentifier=str(name), Engine=ENGINE, EngineVersion=ENGINE_VERSION
        )
    source = ctx.params.get("source_cluster")
    primary_id = cluster_name(str(source)) if source else f"{name}-primary"
    if existing is None or not existing.get("GlobalClusterMembers"):
        primary = ctx.aws.client("rds", region=_primary_region(ctx), role_arn=ctx.step.role_arn)
        primary.create_db_cluster(  # the first member is the writer
            DBClusterIdentifier=primary_id,
            Engine=ENGINE,
            EngineVersion=ENGINE_VERSION,
            GlobalClusterIdentifier=str(name),
            Tags=[{"Key": "drplan:seed", "Value": ctx.step.key}],
            **SEED_LOGIN,
        )
    arn = f"arn:aws:rds:{ctx.region}:{ACCOUNT}:cluster:{target_id}"
    if member(describe_global(ctx, str(name)) or {}, arn) is None:
        rds.create_db_cluster(
            DBClusterIdentifier=target_id,
            Engine=ENGINE,
            EngineVersion=ENGINE_VERSION,
            GlobalClusterIdentifier=str(name),
            Tags=[{"Key": "drplan:seed", "Value": ctx.step.key}],
        )
    ctx.client("cloudwatch").put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {
                "MetricName": LAG_METRIC,
                "Dimensions": [{"Name": "DBClusterIdentifier", "Value": target_id}],
                "Timestamp": datetime.now(timezone.utc) - timedelta(minutes=1),
                "Value": SEED_LAG_MS,
                "Unit": "Milliseconds",
            }
        ],
    )
