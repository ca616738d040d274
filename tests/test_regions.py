"""A plan's named Regions (``regions``) and ``${regions.NAME}``: put in by the model before anything
runs, and validated like other references (DR215)."""

from __future__ import annotations

import json
from typing import Any

from drplan.actions import registry
from drplan.document import read_document
from drplan.engine.prepare import prepare
from drplan.model import build_plan
from drplan.pipeline import validate_document

REGIONS = {"primary": "us-east-1", "recovery": "us-west-2"}
ENDPOINT = "https://bbbb2222.route53-recovery-cluster.us-west-2.amazonaws.com/v1"
CONTROL = (
    "arn:aws:route53-recovery-control::123456789012:controlpanel/0123456789abcdef0123456789abcdef"
    "/routingcontrol/1a2b3c4d5e6f7a8b"
)


def plan(**top: Any) -> dict[str, Any]:
    return {
        "drplan": 1,
        "name": "failover",
        "objectives": {"rto": "PT1H", "rpo": "PT15M"},
        "regions": REGIONS,
        "aws": {"region": "${regions.primary}"},
        "drill": {"region": "${regions.recovery}"},
        **top,
        "services": {
            "db": {
                "steps": [
                    {
                        "id": "switch",
                        "uses": "aws.rds.switchover_global_cluster",
                        "with": {
                            "global_cluster": "orders-global",
                            "target_cluster": "orders-west",
                            "source_cluster": "arn:aws:rds:${regions.primary}:123456789012:cluster:orders",
                        },
                        "region": "${regions.recovery}",
                        "estimate": "PT5M",
                    },
                    {
                        "id": "traffic",
                        "uses": "aws.arc.set_routing_control",
                        "with": {
                            "routing_control_arn": CONTROL,
                            "state": "On",
                            "cluster_endpoints": [{"endpoint": ENDPOINT, "region": "${regions.recovery}"}],
                        },
                        "estimate": "PT1M",
                    },
                    {
                        "id": "up",
                        "uses": "check.http",
                        "with": {"url": "https://orders.${regions.recovery}.example.com/health"},
                        "estimate": "PT1M",
                    },
                ]
            }
        },
    }


def findings(data: dict[str, Any]) -> list[Any]:
    return validate_document(read_document("p.json", data=json.dumps(data, indent=2).encode())).diagnostics


def test_the_model_puts_the_regions_in_before_anything_runs():
    built = build_plan(plan())
    switch, traffic, up = built.services["db"].steps
    assert built.regions == REGIONS
    assert (built.aws.region, built.drill.region, switch.region) == ("us-east-1", "us-west-2", "us-west-2")
    assert switch.params["source_cluster"] == "arn:aws:rds:us-east-1:123456789012:cluster:orders"
    assert traffic.params["cluster_endpoints"] == [{"endpoint": ENDPOINT, "region": "us-west-2"}]
    assert up.params["url"] == "https://orders.us-west-2.example.com/health"
    assert built.region_pointers == {
        "/aws/region",
        "/drill/region",
        "/services/db/steps/0/region",
        "/services/db/steps/0/with/source_cluster",
        "/services/db/steps/1/with/cluster_endpoints/0/region",
        "/services/db/steps/2/with/url",
    }
    prepared = prepare(built, "drill", registry(), run_id="t35t1d")
    assert prepared.region == "us-west-2"  # drill.region, as a Region


def test_a_plan_without_regions_is_built_as_written():
    data = plan()
    del data["regions"]
    built = build_plan(data)
    assert built.regions == {} and built.region_pointers == frozenset()
    assert built.services["db"].steps[0].region == "${regions.recovery}"  # DR215 reports it


def test_a_plan_using_its_regions_is_valid():
    assert [d for d in findings(plan()) if d.severity.value == "error"] == []


def test_an_unknown_region_name_is_reported_where_it_is_written_with_a_suggestion():
    data = plan(aws={"region": "${regions.primry}"})
    data["services"]["db"]["steps"][2]["with"]["url"] = "https://orders.${regions.west}.example.com/"
    got = [(d.code, d.pointer, d.message, d.line) for d in findings(data) if d.severity.value == "error"]
    assert got == [
        (
            "DR215",
            "/aws/region",
            "`aws.region` holds `${regions.primry}`, but `regions` does not define `primry` (it defines "
            "`primary`, `recovery`; did you mean `primary`?)",
            13,
        ),
        (
            "DR215",
            "/services/db/steps/2/with/url",
            "step `up` of service `db`: `with.url` holds `${regions.west}`, but `regions` does not define `west` "
            "(it defines `primary`, `recovery`)",
            51,
        ),
    ]


def test_a_reference_without_regions_says_to_name_them():
    data = plan()
    del data["regions"]
    messages = {d.pointer: d.message for d in findings(data) if d.code == "DR215"}
    assert len(messages) == 6
    assert messages["/services/db/steps/0/region"] == (
        "step `switch` of service `db`: `region` holds `${regions.recovery}`, but the plan has no `regions`: "
        'name its Regions there, e.g. `"regions": {"recovery": "us-west-2"}`'
    )
    assert not [d for d in findings(data) if d.code in ("DR104", "DR209")]  # reported once, as DR215


def test_a_region_aws_does_not_have_is_reported_once_where_regions_defines_it():
    data = plan(regions={"primary": "us-east-1", "recovery": "us-west-9"})
    got = [(d.code, d.pointer) for d in findings(data) if d.severity.value == "error"]
    assert got == [("DR104", "/regions/recovery")]
    [finding] = [d for d in findings(data) if d.code == "DR104"]
    assert finding.message.startswith(
        "`regions.recovery` `us-west-9` is not an AWS region (did you mean `us-west-"
    )


def test_the_schema_checks_names_values_and_where_references_may_be_written():
    bad = plan(regions={"Primary": "us-east-1", "recovery": "west"})
    messages = sorted(d.message for d in findings(bad))
    assert messages == [
        "`regions.recovery` must be an AWS region such as us-east-1",
        "key `Primary` must be lowercase letters, digits, `-` or `_` (at most 63)",
    ]
    garbled = plan()
    garbled["services"]["db"]["steps"][0]["region"] = "${regions.Recovery}"
    [finding] = findings(garbled)
    assert finding.message == (
        "step `switch` of service `db`: `region` must be an AWS region such as us-east-1, or `${regions.NAME}` "
        "for one of the plan's `regions`"
    )
