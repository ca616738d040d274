"""aws.route53.change_record against moto: the record checked with ListResourceRecordSets afterwards.

moto answers every change INSYNC at once, so the PENDING -> INSYNC polling is tested with
botocore's Stubber (which validates the parameters against the real Route 53 model).
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from drplan.actions import registry
from drplan.actions.base import AwsAccess
from drplan.actions.route53.record import fqdn_in_zone
from drplan.aws import AwsSession
from drplan.engine.events import EventBus
from drplan.engine.prepare import prepare
from drplan.engine.records import RunOptions
from drplan.engine.runner import Runner
from drplan.model import build_plan
from drplan.sandbox.ids import ZONE_IDS, EmulatedIds
from tests.runs import FAST, one_step, plan_data, run_plan, seed

ACTION = "aws.route53.change_record"
ENDPOINT = "orders-restored.abc123.us-east-1.rds.amazonaws.com"


@pytest.fixture
def r53():
    with mock_aws():
        yield boto3.client("route53", region_name="us-east-1")


@pytest.fixture
def zone(r53) -> str:
    return r53.create_hosted_zone(Name="example.com", CallerReference="test")["HostedZone"]["Id"].split("/")[
        -1
    ]


def upsert(r53, zone: str, **rrset: Any) -> None:
    r53.change_resource_record_sets(
        HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": rrset}]}
    )


def records(r53, zone: str, name: str, kind: str = "CNAME") -> list[dict[str, Any]]:
    sets = r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return [r for r in sets if r["Name"] == name and r["Type"] == kind]


def values(rrset: dict[str, Any]) -> list[str]:
    return [r["Value"] for r in rrset["ResourceRecords"]]


def step_context(data: dict[str, Any], *, aws: AwsAccess | None = None, mode: str = "recover"):
    """The StepContext the engine would give the step (parameters as written: references unresolved)."""
    prepared = prepare(build_plan(data), mode, registry(), run_id="t35t1d")
    runner = Runner(prepared, aws or AwsSession(region="us-east-1"), EventBus("t35t1d"), RunOptions(**FAST))
    step = prepared.steps["svc.s"]
    return runner.context(step, step.params)


def emulated(seed_state: dict[str, Any]) -> AwsSession:
    """A session whose clients rewrite the plan's zone ids to the seeded ones, as the sandbox's do."""
    return AwsSession(region="us-east-1", customize=EmulatedIds(seed_state).customize)


def test_fqdn_in_zone():
    assert fqdn_in_zone("orders", "example.com.") == "orders.example.com."
    assert fqdn_in_zone("orders.example.com", "example.com.") == "orders.example.com."
    assert fqdn_in_zone("Orders.Example.com.", "example.com.") == "orders.example.com."
    assert fqdn_in_zone("orders.internal", "example.com.") == "orders.internal.example.com."
    assert fqdn_in_zone("example.com", "example.com.") == "example.com."
    with pytest.raises(ValueError, match=r"not in hosted zone example\.com"):
        fqdn_in_zone("orders.other.com.", "example.com.")


def test_creates_a_record_and_undo_deletes_it(r53, zone):
    run = run_plan(one_step(ACTION, {"zone_id": zone, "name": "orders", "values": [ENDPOINT]}))

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    [rrset] = records(r53, zone, "orders.example.com.")
    assert values(rrset) == [ENDPOINT]
    assert rrset["TTL"] == 60  # the schema's default
    assert rec.outputs == {"fqdn": "orders.example.com", "change_id": rec.handle["change_id"]}
    assert not rec.outputs["change_id"].startswith("/change/")
    assert rec.handle["previous"] is None
    assert [(r.kind, r.id) for r in rec.resources] == [("route53:record", f"{zone}/orders.example.com/CNAME")]
    assert "GetChange" in [c.operation for c in run.calls]  # wait defaults to true

    assert run.runner.undo(["svc.s"], reason="test") == []
    assert records(r53, zone, "orders.example.com.") == []


def test_replaces_an_existing_record_and_undo_puts_it_back(r53, zone):
    upsert(
        r53,
        zone,
        Name="orders.example.com.",
        Type="CNAME",
        TTL=300,
        ResourceRecords=[{"Value": "old.example.com"}],
    )
    params = {
        "zone_id": f"/hostedzone/{zone}",
        "name": "orders.example.com.",
        "ttl": 30,
        "values": [ENDPOINT],
    }
    run = run_plan(one_step(ACTION, params))

    rec = run.record()
    assert rec.status == "succeeded", rec.error
    [rrset] = records(r53, zone, "orders.example.com.")
    assert (values(rrset), rrset["TTL"]) == ([ENDPOINT], 30)
    assert rec.resources == []  # it changed a record the step did not create: nothing for cleanup to delete
    assert values(rec.handle["previous"]) == ["old.example.com"]

    assert run.runner.undo(["svc.s"], reason="test") == []
    [rrset] = records(r53, zone, "orders.example.com.")
    assert (values(rrset), rrset["TTL"]) == (["old.example.com"], 300)


def test_weighted_record_changes_only_its_own_set(r53, zone):
    for set_id, weight in (("blue", 100), ("green", 0)):
        upsert(
            r53,
            zone,
            Name="www.example.com.",
            Type="CNAME",
            SetIdentifier=set_id,
            Weight=weight,
            TTL=60,
            ResourceRecords=[{"Value": f"{set_id}.example.com"}],
        )
    params = {"zone_id": zone, "name": "www", "values": [ENDPOINT], "set_identifier": "green", "weight": 100}
    run = run_plan(one_step(ACTION, params))
    assert run.record().status == "succeeded", run.record().error

    sets = {r["SetIdentifier"]: r for r in records(r53, zone, "www.example.com.")}
    assert (sets["green"]["Weight"], values(sets["green"])) == (100, [ENDPOINT])
    assert (sets["blue"]["Weight"], values(sets["blue"])) == (100, ["blue.example.com"])
    assert run.record().resources == []

    assert run.runner.undo(["svc.s"], reason="test") == []
    sets = {r["SetIdentifier"]: r for r in records(r53, zone, "www.example.com.")}
    assert (sets["green"]["Weight"], values(sets["green"])) == (0, ["green.example.com"])
    assert values(sets["blue"]) == ["blue.example.com"]


def test_failover_secondary_is_created_and_undo_deletes_only_it(r53, zone):
    upsert(
        r53,
        zone,
        Name="api.example.com.",
        Type="CNAME",
        SetIdentifier="main",
        Failover="PRIMARY",
        TTL=60,
        ResourceRecords=[{"Value": "primary.example.com"}],
    )
    params = {
        "zone_id": zone,
        "name": "api.example.com",
        "values": [ENDPOINT],
        "set_identifier": "dr",
        "failover": "SECONDARY",
        "health_check_id": "hc-123",
    }
    run = run_plan(one_step(ACTION, params))
    rec = run.record()
    assert rec.status == "succeeded", rec.error

    sets = {r["SetIdentifier"]: r for r in records(r53, zone, "api.example.com.")}
    assert (sets["dr"]["Failover"], sets["dr"]["HealthCheckId"], values(sets["dr"])) == (
        "SECONDARY",
        "hc-123",
        [ENDPOINT],
    )
    assert [r.id for r in rec.resources] == [f"{zone}/api.example.com/CNAME/dr"]

    assert run.runner.undo(["svc.s"], reason="test") == []
    sets = {r["SetIdentifier"]: r for r in records(r53, zone, "api.example.com.")}
    assert list(sets) == ["main"]
    assert values(sets["main"]) == ["primary.example.com"]


def test_alias_record(r53, zone):
    alias = {
        "dns_name": "shop-lb-123.us-east-1.elb.amazonaws.com",
        "hosted_zone_id": "Z35SXDOTRQ7X7K",
        "evaluate_target_health": True,
    }
    run = run_plan(
        one_step(ACTION, {"zone_id": zone, "name": "shop.example.com", "type": "A", "alias": alias})
    )
    assert run.record().status == "succeeded", run.record().error

    [rrset] = records(r53, zone, "shop.example.com.", "A")
    assert rrset["AliasTarget"] == {
        "HostedZoneId": "Z35SXDOTRQ7X7K",
        "DNSName": alias["dns_name"],
        "EvaluateTargetHealth": True,
    }
    assert "TTL" not in run.record().handle["record"]

    assert run.runner.undo(["svc.s"], reason="test") == []
    assert records(r53, zone, "shop.example.com.", "A") == []


def test_undo_restores_a_previous_alias_record(r53, zone):
    previous = {
        "HostedZoneId": "Z35SXDOTRQ7X7K",
        "DNSName": "old-lb.us-east-1.elb.amazonaws.com",
        "EvaluateTargetHealth": False,
    }
    upsert(r53, zone, Name="shop.example.com.", Type="A", AliasTarget=previous)
    run = run_plan(
        one_step(ACTION, {"zone_id": zone, "name": "shop", "type": "A", "values": ["203.0.113.7"]})
    )
    assert run.record().status == "succeeded", run.record().error
    assert values(records(r53, zone, "shop.example.com.", "A")[0]) == ["203.0.113.7"]

    assert run.runner.undo(["svc.s"], reason="test") == []
    [rrset] = records(r53, zone, "shop.example.com.", "A")
    assert rrset["AliasTarget"] == previous


def test_undo_tolerates_a_record_already_gone(r53, zone):
    run = run_plan(one_step(ACTION, {"zone_id": zone, "name": "orders", "values": [ENDPOINT]}))
    assert run.record().status == "succeeded", run.record().error
    r53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={
            "Changes": [
                {"Action": "DELETE", "ResourceRecordSet": records(r53, zone, "orders.example.com.")[0]}
            ]
        },
    )
    assert run.runner.undo(["svc.s"], reason="test") == []


def test_missing_zone_fails_clearly(r53):
    run = run_plan(
        one_step(ACTION, {"zone_id": "Z0NOSUCHZONE", "name": "orders.example.com", "values": [ENDPOINT]})
    )
    assert run.record().status == "failed"
    assert run.record().error == "hosted zone Z0NOSUCHZONE does not exist"


def test_name_outside_the_zone_fails(r53, zone):
    run = run_plan(one_step(ACTION, {"zone_id": zone, "name": "orders.other.com.", "values": [ENDPOINT]}))
    assert run.record().status == "failed"
    assert "not in hosted zone example.com" in run.record().error


def test_simple_record_over_weighted_sets_is_refused(r53, zone):
    upsert(
        r53,
        zone,
        Name="www.example.com.",
        Type="CNAME",
        SetIdentifier="blue",
        Weight=1,
        TTL=60,
        ResourceRecords=[{"Value": "blue.example.com"}],
    )
    run = run_plan(one_step(ACTION, {"zone_id": zone, "name": "www", "values": [ENDPOINT]}))
    assert run.record().status == "failed"
    assert "give `set_identifier`" in run.record().error
    assert "ChangeResourceRecordSets" not in [c.operation for c in run.calls]
    assert values(records(r53, zone, "www.example.com.")[0]) == ["blue.example.com"]


def test_wait_false_finishes_without_waiting_for_insync(r53, zone):
    run = run_plan(one_step(ACTION, {"zone_id": zone, "name": "orders", "values": [ENDPOINT], "wait": False}))
    assert run.record().status == "succeeded", run.record().error
    assert "GetChange" not in [c.operation for c in run.calls]
    assert values(records(r53, zone, "orders.example.com.")[0]) == [ENDPOINT]


class _Stubbed(AwsAccess):
    def __init__(self, client: Any) -> None:
        self._client = client

    def client(self, service: str, *, region: str | None = None, role_arn: str | None = None) -> Any:
        return self._client

    def region_of(self, region: str | None) -> str:
        return "us-east-1"


def test_poll_waits_until_the_change_is_insync():
    """Stubber: moto reports every change INSYNC immediately."""
    client = boto3.client("route53", region_name="us-east-1")
    ctx = step_context(
        one_step(ACTION, {"zone_id": "Z1", "name": "a", "values": ["b"]}), aws=_Stubbed(client)
    )
    handle = {"type": "CNAME", "fqdn": "a.example.com", "change_id": "C123", "wait": True}
    action = registry()[ACTION]
    with Stubber(client) as stub:
        for status in ("PENDING", "INSYNC"):
            stub.add_response(
                "get_change",
                {
                    "ChangeInfo": {
                        "Id": "/change/C123",
                        "Status": status,
                        "SubmittedAt": "2024-01-01T00:00:00Z",
                    }
                },
                {"Id": "C123"},
            )
        assert action.poll(ctx, handle).done is False
        assert action.poll(ctx, handle).done is True
        stub.assert_no_pending_responses()


def test_preflight_is_read_only_and_shows_current_and_future_values(r53, zone):
    upsert(
        r53,
        zone,
        Name="orders.example.com.",
        Type="CNAME",
        TTL=300,
        ResourceRecords=[{"Value": "old.example.com"}],
    )
    session = AwsSession(region="us-east-1", read_only=True)
    calls: list[Any] = []
    session.on_call = calls.append
    data = one_step(ACTION, {"zone_id": zone, "name": "orders", "values": ["${orders-db.restore.endpoint}"]})
    ctx = step_context(data, aws=session)

    zone_result, record_result = registry()[ACTION].preflight(ctx)
    assert zone_result.status == "ok" and zone_result.facts["zone_name"] == "example.com."
    assert record_result.status == "ok"
    assert record_result.facts["current"] == ["old.example.com"]
    assert record_result.facts["would_point_at"] == ["${orders-db.restore.endpoint}"]
    assert "points at old.example.com" in record_result.message
    assert {c.operation for c in calls} <= {"GetHostedZone", "ListResourceRecordSets"}


def test_preflight_of_a_new_record_and_of_a_missing_zone(r53, zone):
    session = AwsSession(region="us-east-1", read_only=True)
    ctx = step_context(one_step(ACTION, {"zone_id": zone, "name": "new", "values": [ENDPOINT]}), aws=session)
    _, record_result = registry()[ACTION].preflight(ctx)
    assert record_result.facts["current"] is None
    assert "does not exist; would create it" in record_result.message

    ctx = step_context(
        one_step(ACTION, {"zone_id": "Z0NOSUCHZONE", "name": "a", "values": [ENDPOINT]}), aws=session
    )
    [result] = registry()[ACTION].preflight(ctx)
    assert (result.status, result.message) == ("error", "hosted zone Z0NOSUCHZONE does not exist")


def test_skipped_in_drills_without_drill_with(r53, zone):
    run = run_plan(one_step(ACTION, {"zone_id": zone, "name": "orders", "values": [ENDPOINT]}), "drill")
    assert "svc.s" in run.prepared.skipped
    assert records(r53, zone, "orders.example.com.") == []


SHOP = {"zone_id": "Z0SHOPEXAMPLE123", "name": "orders-db.internal.shop.example.com", "values": [ENDPOINT]}
SHOP_DRILL = {"zone_id": "Z0SHOPDRILL12345", "name": "orders-db.drill.shop.example.com"}


def test_seed_maps_the_plan_zone_and_the_run_uses_it(r53):
    """The sandbox's seam: the seeder records the zone it created in ctx.seed_state; the sandbox's
    sessions rewrite the plan's zone id with it, so a run (which knows nothing of it) changes the
    seeded zone."""
    data = one_step(ACTION, SHOP)
    state: dict[str, Any] = {}
    seed(step_context(data, aws=emulated(state)), state)
    seed(step_context(data, aws=emulated(state)), state)  # idempotent
    zone_ids = state[ZONE_IDS]

    [seeded] = r53.list_hosted_zones()["HostedZones"]
    assert seeded["Name"] == "internal.shop.example.com."
    assert zone_ids == {"Z0SHOPEXAMPLE123": seeded["Id"].split("/")[-1]}
    real = zone_ids["Z0SHOPEXAMPLE123"]
    [before] = records(r53, real, "orders-db.internal.shop.example.com.")
    assert values(before) == ["orders-db-primary.internal.shop.example.com."]

    run = run_plan(data, aws=emulated(state))
    assert run.record().status == "succeeded", run.record().error
    assert values(records(r53, real, "orders-db.internal.shop.example.com.")[0]) == [ENDPOINT]
    assert run.runner.undo(["svc.s"], reason="test") == []
    assert values(records(r53, real, "orders-db.internal.shop.example.com.")[0]) == values(before)


def test_seed_creates_the_drill_zone_and_a_drill_creates_then_cleans_the_record(r53):
    data = one_step(ACTION, SHOP, drill_with=SHOP_DRILL)
    state: dict[str, Any] = {}
    for mode in ("recover", "drill"):  # the sandbox seeds both: the record's zone and the drill zone
        seed(step_context(data, aws=emulated(state), mode=mode), state)
    zone_ids = state[ZONE_IDS]
    names = sorted(z["Name"] for z in r53.list_hosted_zones()["HostedZones"])
    assert names == ["drill.shop.example.com.", "internal.shop.example.com."]
    drill_zone = zone_ids["Z0SHOPDRILL12345"]
    assert r53.list_resource_record_sets(HostedZoneId=drill_zone)["ResourceRecordSets"][0]["Type"] in (
        "NS",
        "SOA",
    )

    run = run_plan(data, "drill", aws=emulated(state))
    rec = run.record()
    assert rec.status == "succeeded", rec.error
    assert values(records(r53, drill_zone, "orders-db.drill.shop.example.com.")[0]) == [ENDPOINT]
    # The run sees the plan's zone id (the sandbox's sessions translate): so do its journal and cleanup.
    assert [r.id for r in rec.resources] == ["Z0SHOPDRILL12345/orders-db.drill.shop.example.com/CNAME"]
    assert run.runner.undo(["svc.s"], reason="drill cleanup") == []
    assert records(r53, drill_zone, "orders-db.drill.shop.example.com.") == []


def test_seed_shares_one_zone_between_the_plans_records(r53):
    """Two steps in one plan zone: the seeded zone is their common domain."""
    data = plan_data(
        {
            "db": {"steps": [{"id": "s", "uses": ACTION, "with": SHOP}]},
            "svc": {"steps": [{"id": "s", "uses": ACTION, "with": {**SHOP, "name": "www.shop.example.com"}}]},
        }
    )
    state: dict[str, Any] = {}
    seed(step_context(data, aws=emulated(state)), state)
    [seeded] = r53.list_hosted_zones()["HostedZones"]
    assert seeded["Name"] == "shop.example.com."


def test_moto_custom_zone_id_makes_the_plan_id_real(r53):
    """The other sandbox route (moto in the same process): register the plan's id as moto's custom
    id for the zone's domain before seeding; then no mapping is needed at all."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.route53.models import HostedZoneIdentifier
    from moto.utilities.id_generator import moto_id_manager

    identifier = HostedZoneIdentifier(DEFAULT_ACCOUNT_ID, "internal.shop.example.com.", None)
    moto_id_manager.set_custom_id(identifier, "Z0SHOPEXAMPLE123")
    try:
        data = one_step(ACTION, SHOP)
        seed(step_context(data))
        assert (
            r53.get_hosted_zone(Id="Z0SHOPEXAMPLE123")["HostedZone"]["Name"] == "internal.shop.example.com."
        )
        run = run_plan(data)
        assert run.record().status == "succeeded", run.record().error
        assert values(records(r53, "Z0SHOPEXAMPLE123", "orders-db.internal.shop.example.com.")[0]) == [
            ENDPOINT
        ]
    finally:
        moto_id_manager.unset_custom_id(identifier)


def test_lookup_pages_through_the_sets_of_one_name_and_decodes_escapes():
    """Stubber: moto neither escapes `*` as \\052 nor pages with NextRecordIdentifier, Route 53 does both."""
    client = boto3.client("route53", region_name="us-east-1")
    params = {"zone_id": "Z1", "name": "*", "values": [ENDPOINT], "set_identifier": "green", "weight": 10}
    ctx = step_context(one_step(ACTION, params), aws=_Stubbed(client))

    def rrset(set_id: str, value: str) -> dict[str, Any]:
        return {
            "Name": "\\052.example.com.",
            "Type": "CNAME",
            "SetIdentifier": set_id,
            "Weight": 1,
            "TTL": 60,
            "ResourceRecords": [{"Value": value}],
        }

    zone = {"HostedZone": {"Id": "/hostedzone/Z1", "Name": "example.com.", "CallerReference": "r"}}
    first = {
        "ResourceRecordSets": [rrset("blue", "blue.example.com")],
        "IsTruncated": True,
        "MaxItems": "1",
        "NextRecordName": "\\052.example.com.",
        "NextRecordType": "CNAME",
        "NextRecordIdentifier": "green",
    }
    second = {
        "ResourceRecordSets": [rrset("green", "green.example.com")],
        "IsTruncated": False,
        "MaxItems": "1",
    }
    start = {"HostedZoneId": "Z1", "StartRecordName": "*.example.com.", "StartRecordType": "CNAME"}
    with Stubber(client) as stub:
        stub.add_response(
            "get_hosted_zone", {**zone, "DelegationSet": {"NameServers": ["ns1.example.com"]}}, {"Id": "Z1"}
        )
        stub.add_response("list_resource_record_sets", first, start)
        stub.add_response("list_resource_record_sets", second, {**start, "StartRecordIdentifier": "green"})
        _, result = registry()[ACTION].preflight(ctx)
        stub.assert_no_pending_responses()
    assert result.facts["fqdn"] == "*.example.com"
    assert result.facts["current"] == ["green.example.com"]
