"""What makes sandbox seeding cheaper without changing what it seeds: while one seeding runs, what
its seeders created is not asked for again (the hosted zones they made or found, and the records
of zones they made). Behaviour only: no timings. The evidence's compiled templates are tested in
test_sandbox_speed_templates.py."""

from __future__ import annotations

from typing import Any

from drplan.model import build_plan
from drplan.sandbox import Sandbox, start_sandbox


def _calls(client: Any) -> list[str]:
    seen: list[str] = []
    client.meta.events.register("provide-client-params", lambda model, **_: seen.append(model.name))
    return seen


# --- seeding Route 53: what this seeding created is not asked for again ------------------------------


def _cutover(name: str, zone: str = "Z0PUBLIC0EXAMPLE1", **extra: Any) -> dict[str, Any]:
    params = {"zone_id": zone, "name": name, "type": "CNAME", "ttl": 60, "values": [f"{name}.dr.example.com"]}
    return {"id": "cutover", "uses": "aws.route53.change_record", "with": {**params, **extra}}


DNS_PLAN = {
    "a": {"steps": [_cutover("a.example.com")]},
    "b": {"steps": [_cutover("b.example.com")]},
    "c": {"steps": [_cutover("a.example.com")]},  # the same record as a's
    "d": {"steps": [_cutover("w.example.com", set_identifier="one", weight=10)]},
    "e": {"steps": [_cutover("w.example.com", set_identifier="two", weight=20)]},
    "f": {"steps": [_cutover("x.example.org", zone="Z0OTHER0EXAMPLE2")]},
    "g": {
        "steps": [
            {
                **_cutover("drill.example.com"),
                "drill_with": {"zone_id": "Z0DRILL0EXAMPLE3", "name": "drill.test.example.net"},
            }
        ]
    },
}


def _zones_and_records(box: Sandbox) -> list[tuple[str, list[tuple[str, str, str, str]]]]:
    route53 = box.client("route53", "us-east-1")
    out = []
    for zone in sorted(route53.list_hosted_zones()["HostedZones"], key=lambda z: z["Name"]):
        records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
        out.append(
            (
                zone["Name"],
                sorted(
                    (
                        r["Name"],
                        r["Type"],
                        str(r.get("SetIdentifier")),
                        str([v["Value"] for v in r.get("ResourceRecords", [])]),
                    )
                    for r in records
                ),
            )
        )
    return out


def test_seeding_dns_asks_only_for_what_it_did_not_create_and_seeds_the_same(monkeypatch):
    from drplan.sandbox.seed import seed_plan
    from drplan.sandbox.seeders import route53 as route53_seeder
    from drplan.sandbox.seeders.context import SEEDING
    from tests.runs import plan_data

    plan = build_plan(plan_data(DNS_PLAN, aws={"region": "us-east-1"}))

    with start_sandbox(plan, seed=False) as box, monkeypatch.context() as patch:
        patch.setattr(route53_seeder, "seeding_memo", lambda ctx, name: None)  # ask every time
        assert seed_plan(box) == []
        alone = _zones_and_records(box)

    with start_sandbox(plan, seed=False) as box:
        route53 = box.client("route53", "us-east-1")
        calls = _calls(route53)
        assert seed_plan(box) == []
        assert SEEDING not in box.seed_state  # the memo ends with the seeding
        asked = list(calls)
        seeded = _zones_and_records(box)

    assert seeded == alone
    assert [name for name, _ in seeded] == ["example.com.", "example.org.", "test.example.net."]
    assert len(seeded[0][1]) == 2 + 5  # NS, SOA; a, b, drill (a recovery's), and w twice (weighted)
    assert asked.count("ListResourceRecordSets") == 0  # every zone was created by this seeding
    assert asked.count("GetHostedZone") == 3  # once per zone of the plan
    assert asked.count("ChangeResourceRecordSets") == 6  # c's record is a's
