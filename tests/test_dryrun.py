"""The dry-run model (drplan/dryrun.py) and its formatters (drplan/report/dryrun.py).

Schedules are checked on small plans built here, with the arithmetic written next to them.
Golden files of the example plans are in tests/test_review_cli.py (they go through the CLI).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from drplan.actions.base import PreflightResult
from drplan.dryrun import DryRun, build_dry_run, offset
from drplan.model import build_plan
from drplan.report.dryrun import FORMATS, format_json, format_markdown, format_text
from tests.conftest import PLANS

M = timedelta(minutes=1)


def step(sid: str, estimate: str, **extra: Any) -> dict[str, Any]:
    """A step that does nothing but take ``estimate`` (a wait; the estimate wins over its duration)."""
    return {"id": sid, "uses": "wait", "with": {"duration": "PT1M"}, "estimate": estimate, **extra}


def plan_of(services: dict[str, Any], **top: Any) -> Any:
    return build_plan({"drplan": 1, "name": "t", "services": services, **top}, path="t.json")


def starts(dry: DryRun) -> dict[str, tuple[int, timedelta, timedelta]]:
    return {s.key: (s.wave, s.start, s.finish) for s in dry.steps}


# --- schedules computed by hand ---------------------------------------------------------------------


def test_parallel_branches_and_depends_on() -> None:
    plan = plan_of(
        {
            "a": {"steps": [step("a1", "PT10M"), step("a2", "PT5M")]},
            "b": {"steps": [step("b1", "PT20M")]},
            "c": {"depends_on": ["a", "b"], "steps": [step("c1", "PT3M")]},
        },
        objectives={"rto": "PT30M"},
    )
    dry = build_dry_run(plan)
    # a1: 0 -> 10, a2 (after a1 in its service): 10 -> 15; b1 in parallel: 0 -> 20.
    # c waits for both services: c1 starts at max(15, 20) = 20 and ends at 23.
    assert starts(dry) == {
        "a.a1": (1, 0 * M, 10 * M),
        "b.b1": (1, 0 * M, 20 * M),
        "a.a2": (2, 10 * M, 15 * M),
        "c.c1": (3, 20 * M, 23 * M),  # wave 1 + max(wave a2 = 2, wave b1 = 1)
    }
    # The order they would start: a1 and b1 at +0 (plan order), a2 at +10, c1 at +20.
    assert [s.key for s in dry.steps] == ["a.a1", "b.b1", "a.a2", "c.c1"]
    assert dry.waves == (("a.a1", "b.b1"), ("a.a2",), ("c.c1",))
    assert dry.predicted_rto == 23 * M
    # The longest chain is b1 (20) + c1 (3) = 23; a1 + a2 = 15 leaves 5 minutes of slack.
    assert dry.critical_path == ("b.b1", "c.c1")
    assert [s.key for s in dry.steps if s.critical] == ["b.b1", "c.c1"]
    assert dry.step("a.a1").slack == dry.step("a.a2").slack == 5 * M
    assert dry.step("b.b1").slack == 0 * M
    assert dry.step("c.c1").waits_for == ("a.a2", "b.b1")
    # Service RTO: when its last step finishes. No service objective: the plan's (30m) applies.
    rto = {o.service: (o.predicted, o.objective, o.objective_from, o.status) for o in dry.services}
    assert rto == {
        "a": (15 * M, 30 * M, "plan", "met"),
        "b": (20 * M, 30 * M, "plan", "met"),
        "c": (23 * M, 30 * M, "plan", "met"),
    }
    assert dry.plan_status == "met" and dry.verdict == "met" and dry.ok


def test_after_replaces_the_implicit_order() -> None:
    plan = plan_of(
        {
            "s": {
                "steps": [
                    step("x", "PT10M"),
                    step("y", "PT5M", after=[]),  # does not wait for x
                    step("z", "PT4M", after=["x", "y"]),
                ]
            },
            "t": {"steps": [step("t1", "PT2M", after=["s.y"])]},  # across services
        }
    )
    dry = build_dry_run(plan)
    # x: 0 -> 10 and y: 0 -> 5 in parallel; z waits for both: 10 -> 14; t1 waits for y only: 5 -> 7.
    assert starts(dry) == {
        "s.x": (1, 0 * M, 10 * M),
        "s.y": (1, 0 * M, 5 * M),
        "t.t1": (2, 5 * M, 7 * M),
        "s.z": (2, 10 * M, 14 * M),
    }
    assert [s.key for s in dry.steps] == ["s.x", "s.y", "t.t1", "s.z"]
    assert dry.predicted_rto == 14 * M
    assert dry.critical_path == ("s.x", "s.z")
    # No objective anywhere: nothing to judge, and that is not a failure.
    assert {o.status for o in dry.services} == {"no-objective"}
    assert dry.verdict == "unchecked" and dry.ok


def test_references_across_services_and_a_missed_objective() -> None:
    plan = plan_of(
        {
            "db": {
                "objectives": {"rto": "PT30M"},
                "steps": [
                    step("restore", "PT25M"),
                    {
                        "id": "check",
                        "uses": "check.tcp",
                        "with": {"host": "${db.restore.endpoint}", "port": 5432},
                        "estimate": "PT2M",
                    },
                ],
            },
            "web": {
                "objectives": {"rto": "PT20M"},
                "steps": [
                    step("scale", "PT8M"),
                    {
                        "id": "dns",
                        "uses": "check.tcp",
                        "with": {"host": "${db.restore.endpoint}", "port": 443},
                        "estimate": "PT3M",
                    },
                ],
            },
        },
        objectives={"rto": "PT1H"},
    )
    dry = build_dry_run(plan)
    # web.dns follows web.scale (0 -> 8) and uses db.restore's output (0 -> 25): starts at
    # max(8, 25) = 25, ends at 28, although web does not depend on db. db.check: 25 -> 27.
    assert starts(dry)["web.dns"] == (2, 25 * M, 28 * M)
    assert starts(dry)["db.check"] == (2, 25 * M, 27 * M)
    assert dry.step("web.dns").waits_for == ("db.restore", "web.scale")
    assert dry.predicted_rto == 28 * M
    assert dry.critical_path == ("db.restore", "web.dns")
    # web.scale could finish as late as 25 without delaying anything: 25 - 8 = 17 minutes of slack.
    assert dry.step("web.scale").slack == 17 * M
    outcome = {o.service: o for o in dry.services}
    assert (outcome["db"].predicted, outcome["db"].status) == (27 * M, "met")  # 27 <= 30
    assert (outcome["web"].predicted, outcome["web"].status) == (28 * M, "missed")  # 28 > 20
    assert outcome["web"].path == ("db.restore", "web.dns")
    assert dry.plan_status == "met"  # 28 <= 60
    assert dry.missed == ["web"] and dry.verdict == "missed" and not dry.ok
    # Parameters keep references symbolic.
    assert dry.step("web.dns").params["host"] == "${db.restore.endpoint}"
    assert "MISSED" in format_text(dry)
    assert json.loads(format_json(dry))["missed"] == ["web"]


def test_plan_objective_missed() -> None:
    plan = plan_of({"a": {"steps": [step("a1", "PT40M"), step("a2", "PT30M")]}}, objectives={"rto": "PT1H"})
    dry = build_dry_run(plan)
    # 40 + 30 = 70 minutes > 60. The service takes the plan's RTO ("every service back"): it is
    # judged with the plan, and the miss is counted once.
    assert dry.predicted_rto == 70 * M
    assert dry.missed == ["plan"]
    assert [s.status for s in dry.services] == ["missed"]  # the table still shows the service missing it
    assert "MISSED: 1 objective would be missed: the plan (1h 10m > 1h)" in format_text(dry)


# --- drills -----------------------------------------------------------------------------------------


def test_webshop_drill_renames_targets_and_skips_steps() -> None:
    from drplan.pipeline import load_plan

    plan, _ = load_plan(PLANS / "webshop.json")
    dry = build_dry_run(plan, "drill")
    restore = dry.step("orders-db.restore")
    assert restore.params["target"] == "shop-orders-restored-drill-<run-id>"
    assert restore.changes == {"target": "renamed"}
    assert restore.what.startswith("Create DB instance shop-orders-restored-drill-<run-id> ")
    media = dry.step("media.volume")
    assert media.changes == {"name": "renamed", "attach": "removed"}  # never attached to production
    dns = dry.step("web.dns")
    assert dns.params["zone_id"] == "Z0SHOPDRILL12345"  # drill_with merged
    assert dns.changes == {"zone_id": "drill_with", "name": "drill_with"}
    skipped = {k.key: k.reason for k in dry.skipped}
    assert skipped["web.approve"] == "only in real recoveries"
    assert skipped["web.healthy"] == "only in real recoveries"
    assert skipped["web.scale"].startswith("it would change production in a drill")
    assert "production" in skipped["web.scale"] and "drill_with" in skipped["web.scale"]
    # Skipped steps do not count: restore 25 + reachable 2, then dns 2 (it waits for every
    # service web depends on, through the skipped steps): 29 minutes, against 50 in a recovery.
    assert dry.predicted_rto == 29 * M
    assert dry.critical_path == ("orders-db.restore", "orders-db.reachable", "web.dns")
    assert dry.suffix == "-drill-<run-id>"

    text = format_text(dry)
    assert "target: shop-orders-restored-drill-<run-id>  (drill: renamed)" in text
    assert "attach: -  (drill: removed)" in text
    assert '- web.scale "Scale web tier": it would change production in a drill' in text
    assert build_dry_run(plan, "recover").suffix is None


def test_recover_mode_lists_drill_only_steps_as_skipped() -> None:
    plan = plan_of({"a": {"steps": [step("a1", "PT5M"), step("probe", "PT1M", only="drill")]}})
    dry = build_dry_run(plan, "recover")
    assert [s.key for s in dry.steps] == ["a.a1"]
    assert [(k.key, k.reason) for k in dry.skipped] == [("a.probe", "only in drills")]
    assert dry.step("a.a1").changes == {}


# --- formatters -------------------------------------------------------------------------------------


def test_offsets() -> None:
    assert offset(timedelta(0)) == "+0m"
    assert offset(25 * M) == "+25m"
    assert offset(65 * M) == "+1h05m"
    assert offset(timedelta(seconds=130)) == "+2m10s"


def test_json_is_stable_and_carries_seconds() -> None:
    plan = plan_of({"a": {"steps": [step("a1", "PT1H30M", timeout="PT2H")]}}, objectives={"rto": "PT2H"})
    doc = json.loads(format_json(build_dry_run(plan)))
    assert doc["format_version"] == "1.2"
    assert "generated_at" not in doc
    (a1,) = doc["steps"]
    assert (a1["duration"], a1["duration_seconds"]) == ("PT1H30M", 5400)
    assert (a1["finish"], a1["finish_seconds"]) == ("PT1H30M", 5400)
    assert (a1["timeout"], a1["timeout_seconds"], a1["timeout_source"]) == ("PT2H", 7200, "plan")
    assert a1["params"] == {"duration": "PT1M"} and a1["critical"] is True
    assert doc["plan_rto"] == {
        "status": "met",
        "predicted_rto": "PT1H30M",
        "predicted_rto_seconds": 5400,
        "critical_path_rto": "PT1H30M",
        "critical_path_rto_seconds": 5400,
        "objective": "PT2H",
        "objective_seconds": 7200,
    }
    assert "preflight" not in a1  # not run: absent, not empty
    text = format_json(build_dry_run(plan))
    assert text == format_json(build_dry_run(plan))  # deterministic
    assert list(json.loads(text)) == sorted(json.loads(text))  # sorted keys


def test_date_only_when_asked() -> None:
    plan = plan_of({"a": {"steps": [step("a1", "PT1M")]}})
    when = datetime(2030, 1, 2, 3, 4, 5, 600, tzinfo=timezone.utc)
    dry = build_dry_run(plan, generated_at=when)
    assert json.loads(format_json(dry))["generated_at"] == "2030-01-02T03:04:05Z"
    assert "Generated: 2030-01-02T03:04:05Z" in format_text(dry)
    assert "2030" not in format_text(build_dry_run(plan))


def test_preflight_seam_is_printed_when_present() -> None:
    plan = plan_of({"a": {"steps": [step("a1", "PT1M"), step("a2", "PT1M")]}})
    dry = build_dry_run(plan).with_preflight(
        {"a.a1": [PreflightResult("warning", "latest snapshot is 3h old", {"age_seconds": 10800})]}
    )
    assert dry.step("a.a2").preflight == ()
    assert "preflight warning: latest snapshot is 3h old" in format_text(dry)
    assert "preflight warning: latest snapshot is 3h old" in format_markdown(dry)
    steps = json.loads(format_json(dry))["steps"]
    assert steps[0]["preflight"] == [
        {"status": "warning", "message": "latest snapshot is 3h old", "facts": {"age_seconds": 10800}}
    ]
    assert steps[1]["preflight"] == []


def test_markdown_summary_comes_first() -> None:
    plan = plan_of({"a": {"objectives": {"rto": "PT5M"}, "steps": [step("a1", "PT10M")]}})
    md = format_markdown(build_dry_run(plan))
    first = md.splitlines()[2]
    assert first.startswith("❌ **MISSED")
    assert md.index("| service |") < md.index("| wave |")
    assert "| a |  | 10m | 5m | ❌ **missed** |" in md


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_handles_a_plan_with_nothing_to_run(fmt: str) -> None:
    plan = plan_of({"a": {"steps": [step("probe", "PT1M", only="drill")]}}, objectives={"rto": "PT1H"})
    dry = build_dry_run(plan, "recover")
    assert dry.steps == () and dry.plan_status == "not-run" and dry.ok
    assert FORMATS[fmt](dry)
