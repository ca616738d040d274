"""A Region failover drilled in the sandbox: the new actions end to end (seeded, run, undone), and
production left as it was. The plan is tests/fixtures/valid/region-failover.json."""

from __future__ import annotations

from pathlib import Path

import pytest

from drplan.engine.records import RunOptions
from drplan.engine.sweep import find_drill_resources
from drplan.pipeline import load_plan
from drplan.runs import RunRequest, run_plan
from drplan.sandbox import start_sandbox
from tests.conftest import FIXTURES

pytestmark = pytest.mark.slow
PLAN = FIXTURES / "valid" / "region-failover.json"
FAST = RunOptions(poll_initial=0.05, poll_factor=1.2, poll_max=0.5, backoff_base=0.05, retry_delay=0.05)


def test_sandbox_drill_of_a_region_failover_passes_puts_back_what_it_scaled_and_leaves_nothing(
    tmp_path: Path,
):
    plan, _ = load_plan(PLAN)
    with start_sandbox(plan) as box:
        assert box.seed_problems == []
        session = box.session(region="us-west-2")
        options = RunOptions(**{**FAST.__dict__, **box.run_options()})
        result = run_plan(RunRequest(plan, "drill", tmp_path, options=options, sandbox=True), session)
        left = find_drill_resources(session, "us-west-2")
        ecs, eks, rds = session.client("ecs"), session.client("eks"), session.client("rds")
        services = {
            s["serviceName"]: s["desiredCount"]
            for s in ecs.describe_services(cluster="shop-west", services=["storefront", "storefront-drill"])[
                "services"
            ]
        }
        nodegroups = {
            name: eks.describe_nodegroup(clusterName="shop-west", nodegroupName=name)["nodegroup"][
                "scalingConfig"
            ]
            for name in ("workers", "workers-drill")
        }
        replicas = {
            db["DBInstanceIdentifier"]: db.get("ReadReplicaSourceDBInstanceIdentifier")
            for db in rds.describe_db_instances()["DBInstances"]
        }
    records = result.outcome.records
    assert {k: r.status for k, r in records.items()} == {
        "db.lag": "succeeded",
        "db.promote": "succeeded",
        "app.configure": "succeeded",
        "app.tasks": "succeeded",
        "app.nodes": "succeeded",
        "edge.healthy": "succeeded",
        "edge.steady": "succeeded",
    }, {k: r.error for k, r in records.items()}
    assert "edge.traffic" in result.prepared.skipped  # traffic is not moved in drills (nor emulated)
    assert result.exit_code == 0 and not result.cleanup_failed
    assert left == []
    assert records["app.configure"].outputs == {"db_endpoint": records["db.promote"].outputs["endpoint"]}
    assert records["db.promote"].outputs["instance_id"] == "orders-drill-replica"
    # Undone by the drill's cleanup: the drill service and node group are back at 0.
    assert services == {"storefront": 0, "storefront-drill": 0}
    assert nodegroups["workers-drill"]["desiredSize"] == 0
    # Production, as the sandbox seeded it: untouched.
    assert nodegroups["workers"] == {"minSize": 0, "maxSize": 12, "desiredSize": 0}
    assert replicas["orders-dr"] == "arn:aws:rds:us-east-1:123456789012:db:orders"
    assert replicas["orders-drill-replica"] is None  # promoted, and not undoable


def test_an_arc_step_redirected_for_drills_fails_in_the_sandbox_saying_why(tmp_path: Path):
    import json

    from drplan.model import build_plan

    arn = "arn:aws:route53-recovery-control::123456789012:controlpanel/0123456789abcdef/routingcontrol/"
    endpoint = {
        "endpoint": "https://aaaa1111.route53-recovery-cluster.us-east-1.amazonaws.com/v1",
        "region": "us-east-1",
    }
    data = json.loads(PLAN.read_text())
    step = {
        "id": "traffic",
        "uses": "aws.arc.set_routing_control",
        "with": {"routing_control_arn": arn + "aaaa", "state": "On", "cluster_endpoints": [endpoint]},
        "drill_with": {"routing_control_arn": arn + "bbbb"},
        "estimate": "PT1M",
    }
    plan = build_plan({**data, "services": {"edge": {"steps": [step]}}})
    with start_sandbox(plan) as box:
        options = RunOptions(**{**FAST.__dict__, **box.run_options()})
        result = run_plan(RunRequest(plan, "drill", tmp_path, options=options, sandbox=True), box.session())
    record = result.outcome.records["edge.traffic"]
    assert record.status == "failed"
    assert record.error == (
        "GetRoutingControlState: NotEmulatedInSandbox: the sandbox does not emulate Route 53 ARC routing "
        "controls (the cluster endpoints): run this step against AWS"
    )
