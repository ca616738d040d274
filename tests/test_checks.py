"""Semantic checks (DR2xx, DR3xx): what the schema cannot see, located where the plan says it."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import FIXTURES

from drplan.actions import registry
from drplan.actions.base import Action
from drplan.checks import run_checks
from drplan.diagnostics import Diagnostic
from drplan.document import read_document
from drplan.model import build_plan
from drplan.pipeline import ValidationResult, validate_document, validate_file


def validate(data: dict[str, Any]) -> ValidationResult:
    """Validate a plan given as data, written out the way a person would (2-space indent)."""
    text = json.dumps(data, indent=2)
    return validate_document(read_document("plan.json", data=text.encode("utf-8")))


def found(result: ValidationResult) -> list[tuple[str, str | None]]:
    return [(d.code, d.pointer) for d in result.diagnostics]


def line_of(path: Path, fragment: str, *, after: str = "") -> int:
    """1-based line of the first ``fragment`` after the first ``after``: independent of drplan."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return next(i for i in range(start, len(lines)) if fragment in lines[i]) + 1


def step(
    id: str, uses: str = "check.http", with_: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {"id": id, "uses": uses, "with": with_ or {"url": "https://x.example.com/health"}}
    out.update(extra)
    return out


BASE: dict[str, Any] = {
    "drplan": 1,
    "name": "checks",
    "objectives": {"rto": "PT1H"},
    "services": {
        "db": {
            "steps": [
                step(
                    "restore",
                    "aws.dynamodb.restore_backup",
                    {"source_table": "t", "target": "t-restored"},
                    estimate="PT20M",
                ),
                step(
                    "ready",
                    with_={"url": "https://db.example.com/?t=${db.restore.table_name}"},
                    estimate="PT1M",
                ),
            ]
        }
    },
}


def base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def test_the_base_plan_is_clean() -> None:
    assert found(validate(base())) == []


# --- DR207 cycles -------------------------------------------------------------------------------


def test_a_service_cycle_is_reported_once_with_every_edge_at_its_line() -> None:
    path = FIXTURES / "invalid" / "dr207-service-cycle" / "plan.json"
    result = validate_file(path)
    (cycle,) = result.diagnostics
    assert cycle.code == "DR207"
    # The whole cycle, in order and closed, and only it: `web` depends on `api` but is not in it.
    assert cycle.message.endswith(": api → db → queue → api")
    assert "web" not in cycle.message
    edges = {r.message: (r.pointer, r.span.start.line if r.span else None) for r in cycle.related}
    assert edges == {
        "`db` depends on `api`": ("/services/db/depends_on/0", line_of(path, '"api"', after='"db": {')),
        "`queue` depends on `db`": (
            "/services/queue/depends_on/0",
            line_of(path, '"db"', after='"queue": {'),
        ),
        "`api` depends on `queue`": (
            "/services/api/depends_on/0",
            line_of(path, '"queue"', after='"api": {'),
        ),
    }
    assert cycle.line == edges["`db` depends on `api`"][1]
    assert result.plan is not None and not result.ok()


def test_a_step_cycle_through_a_reference_names_both_kinds_of_edge() -> None:
    path = FIXTURES / "invalid" / "dr207-step-cycle" / "plan.json"
    (cycle,) = validate_file(path).diagnostics
    assert cycle.message.endswith(": app.healthy → app.warm → app.healthy")
    assert [(r.message, r.span.start.line if r.span else None) for r in cycle.related] == [
        # The order of the steps: shown at the step that follows, whose "{" is just above its id.
        ("`app.warm` follows `app.healthy`", line_of(path, '"id": "warm"') - 1),
        ("`app.healthy` uses an output of `app.warm`", line_of(path, "${app.warm.status}")),
    ]


def test_a_cycle_stops_the_checks_that_need_an_order() -> None:
    plan = base()
    plan["services"]["db"]["steps"][0]["after"] = ["ready"]  # restore waits for ready, which uses restore
    plan["services"]["db"]["objectives"] = {"rto": "PT1M"}  # would be missed, but there is no schedule
    assert [code for code, _ in found(validate(plan))] == ["DR207"]


def test_two_steps_with_one_id_are_dr203_and_no_phantom_cycle() -> None:
    plan = base()
    plan["services"]["db"]["steps"][1]["id"] = "restore"
    result = validate(plan)
    assert found(result) == [("DR203", "/services/db/steps/1/id")]
    (dup,) = result.diagnostics
    assert [(r.pointer, r.span.start.line if r.span else None) for r in dup.related] == [
        ("/services/db/steps/0/id", 11)
    ]


# --- did you mean -------------------------------------------------------------------------------


def test_depends_on_suggests_the_closest_service() -> None:
    plan = base()
    plan["services"]["web"] = {"depends_on": ["db", "cahce"], "steps": [step("up", estimate="PT1M")]}
    plan["services"]["cache"] = {"steps": [step("up", estimate="PT1M")]}
    (finding,) = validate(plan).diagnostics
    assert (finding.code, finding.pointer) == ("DR201", "/services/web/depends_on/1")
    assert (
        finding.message
        == "service `web` depends on `cahce`, which the plan does not define (did you mean `cache`?)"
    )


def test_no_suggestion_when_nothing_is_close() -> None:
    plan = base()
    plan["services"]["web"] = {"depends_on": ["zzzzzz"], "steps": [step("up", estimate="PT1M")]}
    (finding,) = validate(plan).diagnostics
    assert finding.message == "service `web` depends on `zzzzzz`, which the plan does not define"


@pytest.mark.parametrize(
    ("uses", "hint"),
    [
        ("aws.rds.restore_snapshots", " (did you mean `aws.rds.restore_snapshot`?)"),
        ("check.htp", " (did you mean `check.http`?)"),
        ("acme.cache.flush", " (`drplan actions` lists them)"),
    ],
)
def test_unknown_actions_suggest_a_known_one(uses: str, hint: str) -> None:
    plan = base()
    plan["services"]["db"]["steps"].append(step("extra", uses, {"anything": 1}, estimate="PT1M"))
    (finding,) = validate(plan).diagnostics
    assert (finding.code, finding.pointer) == ("DR202", "/services/db/steps/2/uses")
    assert finding.message == f"step `extra` of service `db` uses `{uses}`, which is not a known action{hint}"


# --- DR301 / DR302: predicted RTO against the objectives ------------------------------------------


def test_predicted_rto_over_objectives_hand_computed() -> None:
    # db:  restore 20m, then ready 5m                      -> db is back at 20 + 5 = 25m > 15m (DR301)
    # web: waits for all of db (depends_on), scale 10m, healthy 5m -> 25 + 10 + 5 = 40m
    # the plan's objective is 30m: 40m > 30m (DR302); web has no objective of its own (no DR301).
    result = validate_file(FIXTURES / "invalid" / "dr301-dr302-rto-over-objective" / "plan.json")
    by_code = {d.code: d for d in result.diagnostics}
    assert sorted(by_code) == ["DR301", "DR302"]
    assert by_code["DR301"].pointer == "/services/db/objectives/rto"
    assert by_code["DR301"].message == (
        "service `db` is predicted back after 25m, over its RTO of 15m "
        "(critical path: db.restore (20m) → db.ready (5m))"
    )
    assert by_code["DR302"].pointer == "/objectives/rto"
    assert by_code["DR302"].message == (
        "the plan is predicted to recover in 40m, over its RTO of 30m "
        "(critical path: db.restore (20m) → db.ready (5m) → web.scale (10m) → web.healthy (5m))"
    )


def test_an_objective_met_exactly_is_not_a_finding() -> None:
    # 20m + 1m = 21m against objectives of exactly 21m: on time is not late.
    plan = base()
    plan["objectives"]["rto"] = "PT21M"
    plan["services"]["db"]["objectives"] = {"rto": "PT21M"}
    assert found(validate(plan)) == []
    plan["objectives"]["rto"] = "PT20M59S"
    assert found(validate(plan)) == [("DR302", "/objectives/rto")]


def test_steps_only_for_drills_do_not_count_towards_the_recovery_rto() -> None:
    plan = base()
    plan["services"]["db"]["objectives"] = {"rto": "PT21M"}
    plan["services"]["db"]["steps"].append(step("drill-only", estimate="PT4H", only="drill"))
    assert found(validate(plan)) == []


def test_a_missing_estimate_uses_the_actions_typical_duration() -> None:
    # aws.rds.restore_snapshot is typically 30m: with its 1m check the service takes 31m > 30m.
    plan = base()
    plan["services"]["db"]["steps"][0] = step(
        "restore", "aws.rds.restore_snapshot", {"source_instance": "orders", "target": "orders-2"}
    )
    plan["services"]["db"]["steps"][1]["with"]["url"] = "https://db.example.com/?h=${db.restore.endpoint}"
    plan["services"]["db"]["objectives"] = {"rto": "PT30M"}
    result = validate(plan)
    assert found(result) == [
        ("DR303", "/services/db/steps/0"),
        ("DR301", "/services/db/objectives/rto"),
    ]
    assert "assumes 30m, typical for `aws.rds.restore_snapshot`" in result.diagnostics[0].message
    assert "predicted back after 31m" in result.diagnostics[1].message


# --- warnings -------------------------------------------------------------------------------------


def test_a_drill_only_step_that_needs_a_recover_only_step_is_dr305() -> None:
    plan = base()
    plan["services"]["db"]["steps"][0]["only"] = "recover"
    plan["services"]["db"]["steps"][1]["only"] = "drill"
    result = validate(plan)
    assert found(result) == [("DR305", "/services/db/steps/1")]
    assert (
        "step `ready` of service `db` runs in drills and uses `${db.restore.table_name}`"
        in result.diagnostics[0].message
    )


def test_undeclared_dependency_in_the_same_service_suggests_after() -> None:
    plan = base()
    plan["services"]["db"]["steps"].insert(0, step("first", estimate="PT1M"))
    plan["services"]["db"]["steps"][2]["after"] = ["first"]  # ready no longer follows restore
    result = validate(plan)
    assert found(result) == [("DR206", "/services/db/steps/2/with/url")]
    assert result.diagnostics[0].message.endswith("(add `restore` to the `after` of `ready`)")
    assert result.ok() and not result.ok(strict=True)


def test_wait_steps_need_no_estimate() -> None:
    plan = base()
    plan["services"]["db"]["steps"].insert(1, step("settle", "wait", {"duration": "PT1M"}))
    assert found(validate(plan)) == []


# --- DR211 parameters -------------------------------------------------------------------------------


def test_drill_parameters_are_checked_merged_with_with() -> None:
    # `snapshot: latest` alone needs `source_instance`; the merged drill parameters do not have it.
    plan = base()
    plan["services"]["db"]["steps"][0] = step(
        "restore",
        "aws.rds.restore_snapshot",
        {"snapshot": "orders-2024-01-01", "target": "orders-2"},
        drill_with={"snapshot": "latest"},
        estimate="PT30M",
    )
    plan["services"]["db"]["steps"][1]["with"]["url"] = "https://db.example.com/?h=${db.restore.endpoint}"
    result = validate(plan)
    assert found(result) == [("DR211", "/services/db/steps/0/drill_with")]
    assert result.diagnostics[0].message == (
        "step `restore` of service `db`, in drills (`with` + `drill_with`): "
        "`drill_with.source_instance` is required"
    )


def test_regular_expressions_are_compiled() -> None:
    plan = base()
    plan["services"]["db"]["steps"][1]["with"]["body_matches"] = "status: (ok|degraded"
    plan["services"]["db"]["steps"][1]["drill_with"] = {"body_matches": "fine"}
    result = validate(plan)
    assert found(result) == [("DR211", "/services/db/steps/1/with/body_matches")]
    assert "`with.body_matches` is not a valid regular expression: missing )" in result.diagnostics[0].message
    plan["services"]["db"]["steps"][1]["with"]["body_matches"] = "status: (ok|degraded)"
    assert found(validate(plan)) == []


class FlushCache(Action):
    """A plugin action: its parameters are not in the plan schema, so a check validates them."""

    name = "acme.cache.flush"
    family = "control"
    summary = "Flush a cache"
    outputs: ClassVar[Mapping[str, str]] = {"flushed": "keys flushed"}
    params_schema: ClassVar[Mapping[str, Any] | None] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"cluster": {"type": "string", "minLength": 1}, "every": {"$ref": "#/$defs/duration"}},
        "required": ["cluster"],
    }

    def estimate(self, params: Mapping[str, Any]) -> timedelta:
        raise KeyError("a plugin bug must not crash validate")


def plugin_checks(data: dict[str, Any]) -> list[Diagnostic]:
    actions = {**registry(), FlushCache.name: FlushCache()}
    return run_checks(build_plan(data, path="plan.json"), actions, "plan.json")


def test_plugin_action_parameters_are_dr211_about_the_right_step() -> None:
    plan = base()
    plan["services"]["db"]["steps"].append(
        step("flush", "acme.cache.flush", {"clustr": "c", "every": "soon"})
    )
    findings = plugin_checks(plan)
    dr211 = sorted((d.pointer, d.message) for d in findings if d.code == "DR211")
    assert dr211 == [
        ("/services/db/steps/2/with", "step `flush` of service `db`: `with.cluster` is required"),
        (
            "/services/db/steps/2/with/clustr",
            "step `flush` of service `db`: `with.clustr` is not a known property (did you mean `cluster`?)",
        ),
        (
            "/services/db/steps/2/with/every",
            "step `flush` of service `db`: `with.every` must be an ISO 8601 duration such as PT30M or P1DT2H",
        ),
    ]
    # The plugin's estimate raises: DR303 still reports, with the action's default duration.
    assert [d.message for d in findings if d.code == "DR303"] == [
        "step `flush` of service `db` has no `estimate`; "
        "the predicted RTO assumes 1m, typical for `acme.cache.flush`"
    ]


def test_plugin_action_with_good_parameters_is_clean() -> None:
    plan = base()
    plan["services"]["db"]["steps"].append(
        step("flush", "acme.cache.flush", {"cluster": "c"}, estimate="PT1M")
    )
    assert plugin_checks(plan) == []


def test_every_fixture_plan_without_errors_builds_a_model() -> None:
    for path in sorted((FIXTURES / "valid").glob("*.json")):
        result = validate_file(path)
        assert result.plan is not None, path
        assert result.diagnostics == [], path
