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
from drplan.model import RunSettings, build_plan
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
                    {"source_table": "orders", "target": "t-restored"},
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
        "(critical path 25m: db.restore (20m) → db.ready (5m))"
    )
    assert by_code["DR302"].pointer == "/objectives/rto"
    assert by_code["DR302"].message == (
        "the plan is predicted to recover in 40m, over its RTO of 30m "
        "(critical path 40m: db.restore (20m) → db.ready (5m) → web.scale (10m) → web.healthy (5m))"
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


# --- values the schema's patterns cannot judge: durations, timestamps, regions --------------------


@pytest.mark.parametrize(
    ("where", "value", "ok"),
    [
        ("estimate", "P3650D", True),  # exactly 10 years
        ("estimate", "P3651D", False),
        ("estimate", "PT87600H", True),
        ("estimate", "PT315360000.5S", False),
        ("estimate", "P99999999999999999999D", False),  # overflowed timedelta: a traceback before
        ("timeout", "P1000000000D", False),
        ("max_age", "P522W", False),
        ("duration", "PT" + "9" * 400 + "S", False),
    ],
)
def test_every_duration_is_at_most_ten_years(where: str, value: str, ok: bool) -> None:
    plan = base()
    steps = plan["services"]["db"]["steps"]
    if where == "max_age":
        steps[0]["with"]["max_age"] = value
        pointer = "/services/db/steps/0/with/max_age"
    elif where == "duration":
        steps.insert(1, step("settle", "wait", {"duration": value}))
        pointer = "/services/db/steps/1/with/duration"
    else:
        steps[0][where] = value
        pointer = f"/services/db/steps/0/{where}"
    result = validate(plan)
    if ok:
        assert [code for code, _ in found(result) if code == "DR105"] == []
    else:
        # Only this: the checks after it would compute with a length of time a run cannot hold.
        assert found(result) == [("DR105", pointer)]
        assert "must be at most 10 years (P3650D)" in result.diagnostics[0].message


def test_objectives_over_ten_years_are_reported_for_the_plan_and_services() -> None:
    plan = base()
    plan["objectives"] = {"rto": "P1000000000D", "rpo": "P11000D"}
    plan["services"]["db"]["objectives"] = {"rto": "P9999D"}
    result = validate(plan)
    assert found(result) == [
        ("DR105", "/objectives/rto"),
        ("DR105", "/objectives/rpo"),
        ("DR105", "/services/db/objectives/rto"),
    ]
    assert result.diagnostics[2].message.startswith("service `db`: `objectives.rto` must be at most 10 years")


def test_a_zero_timeout_is_an_error_and_not_also_below_the_estimate() -> None:
    plan = base()
    plan["services"]["db"]["steps"][0]["timeout"] = "PT0S"
    result = validate(plan)
    assert found(result) == [("DR105", "/services/db/steps/0/timeout")]  # no DR306 as well
    assert (
        "remove `timeout` to use the default (4 times the estimate, at least 5m)"
        in result.diagnostics[0].message
    )


@pytest.mark.parametrize(
    ("uses", "params", "bad"),
    [
        ("check.http", {"interval": "PT1S", "request_timeout": "PT0.001S"}, []),
        ("check.http", {"interval": "PT0.999S"}, ["interval"]),
        ("check.http", {"interval": "PT0S", "request_timeout": "PT0S"}, ["interval", "request_timeout"]),
        ("check.tcp", {"interval": "PT0.5S"}, ["interval"]),
    ],
)
def test_check_intervals_and_request_timeouts_have_a_floor(
    uses: str, params: dict[str, Any], bad: list[str]
) -> None:
    plan = base()
    base_params = {"url": "https://x.example.com"} if uses == "check.http" else {"host": "x", "port": 5432}
    plan["services"]["db"]["steps"].append(step("probe", uses, {**base_params, **params}, estimate="PT1M"))
    assert found(validate(plan)) == [("DR105", f"/services/db/steps/2/with/{name}") for name in bad]


def test_floors_apply_to_drill_parameters_too() -> None:
    plan = base()
    plan["services"]["db"]["steps"][1]["drill_with"] = {"interval": "PT0S"}
    result = validate(plan)
    assert found(result) == [("DR105", "/services/db/steps/1/drill_with/interval")]
    assert "`drill_with.interval` must be at least 1 second (PT1S)" in result.diagnostics[0].message


def pitr(plan: dict[str, Any], moment: str, name: str = "restore_time") -> dict[str, Any]:
    if name == "at":
        plan["services"]["db"]["steps"][0] = step(
            "restore", "aws.s3.restore_versions", {"bucket": "orders", "at": moment}, estimate="PT20M"
        )
        plan["services"]["db"]["steps"][1]["with"]["url"] = "https://db.example.com/?b=${db.restore.bucket}"
        return plan
    plan["services"]["db"]["steps"][0] = step(
        "restore",
        "aws.dynamodb.restore_point_in_time",
        {"source_table": "orders", "target": "orders-2", name: moment},
        estimate="PT20M",
    )
    return plan


@pytest.mark.parametrize(
    ("moment", "words"),
    [
        ("2026-13-01T08:00:00Z", "there is no month 13"),
        ("2026-00-10T08:00:00Z", "there is no month 00"),
        ("2026-02-29T08:00:00Z", "February 2026 has 28 days"),
        ("2026-04-31T08:00:00Z", "April 2026 has 30 days"),
        ("2026-01-00T08:00:00Z", "January 2026 has 31 days"),
        ("2026-01-01T25:00:00Z", "there is no hour 25"),
        ("2026-01-01T23:60:00Z", "there is no minute 60"),
        ("2026-01-01T23:59:60Z", "there is no second 60"),
        ("2026-01-01T08:00:00+24:00", "has no real UTC offset: `+24:00`"),
        ("0000-01-01T08:00:00Z", "there is no year 0000"),
        ("0001-01-01T00:00:00+01:00", "outside the range of dates"),
    ],
)
def test_timestamps_must_be_real_moments(moment: str, words: str) -> None:
    result = validate(pitr(base(), moment))
    assert found(result) == [("DR104", "/services/db/steps/0/with/restore_time")]
    assert words in result.diagnostics[0].message
    assert f"`with.restore_time` `{moment}`" in result.diagnostics[0].message


@pytest.mark.parametrize("moment", ["2024-02-29T08:00:00Z", "2026-11-20T08:00:00.123+05:30", "latest"])
def test_real_moments_and_latest_pass(moment: str) -> None:
    assert [c for c, _ in found(validate(pitr(base(), moment))) if c in ("DR104", "DR310")] == []


def test_the_at_of_s3_restores_is_a_timestamp_or_a_duration() -> None:
    assert found(validate(pitr(base(), "PT1H", "at"))) == []
    assert found(validate(pitr(base(), "2026-02-30T00:00:00Z", "at"))) == [
        ("DR104", "/services/db/steps/0/with/at")
    ]
    future = validate(pitr(base(), "2999-01-01T00:00:00Z", "at"))
    assert found(future) == [("DR310", "/services/db/steps/0/with/at")]
    assert "nothing is rewound" in future.diagnostics[0].message


def test_a_restore_time_in_the_future_is_a_warning() -> None:
    result = validate(pitr(base(), "2999-01-01T00:00:00Z"))
    assert found(result) == [("DR310", "/services/db/steps/0/with/restore_time")]
    assert result.ok() and not result.ok(strict=True)
    assert found(validate(pitr(base(), "2020-01-01T00:00:00Z"))) == []


def test_max_age_rpo_needs_an_rpo_objective() -> None:
    plan = base()
    plan["services"]["db"]["steps"][0]["with"]["max_age"] = "rpo"
    result = validate(plan)
    assert found(result) == [("DR308", "/services/db/steps/0/with/max_age")]
    assert "set `objectives.rpo` for the service or the plan" in result.diagnostics[0].message
    plan["objectives"]["rpo"] = "PT1H"  # the plan's applies to the service
    assert found(validate(plan)) == []
    del plan["objectives"]["rpo"]
    plan["services"]["db"]["objectives"] = {"rpo": "PT15M"}
    assert found(validate(plan)) == []


def test_max_age_rpo_in_drill_parameters_is_reported_there() -> None:
    plan = base()
    plan["services"]["db"]["steps"][0]["drill_with"] = {"max_age": "rpo"}
    assert found(validate(plan)) == [("DR308", "/services/db/steps/0/drill_with/max_age")]


def test_unknown_regions_are_reported_with_a_suggestion() -> None:
    plan = base()
    plan["aws"] = {"region": "us-east-99"}
    plan["drill"] = {"region": "eu-west-1"}
    plan["services"]["db"]["steps"][0]["region"] = "eu-wset-1"
    result = validate(plan)
    assert found(result) == [("DR104", "/services/db/steps/0/region"), ("DR104", "/aws/region")]
    assert (
        "`region` `eu-wset-1` is not an AWS region (did you mean `eu-west-1`?)"
        in result.diagnostics[0].message
    )
    assert "(did you mean `us-east-1`?)" in result.diagnostics[1].message


def test_every_region_of_every_partition_is_known() -> None:
    plan = base()
    plan["aws"] = {"region": "cn-north-1"}
    plan["drill"] = {"region": "us-gov-west-1"}
    plan["services"]["db"]["steps"][0]["region"] = "eusc-de-east-1"  # four letters: the pattern allows it
    assert found(validate(plan)) == []


def test_regions_are_read_only_when_a_plan_names_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from drplan import regions

    def no_list() -> None:
        raise AssertionError("botocore's region list was read for a plan without regions")

    monkeypatch.setattr(regions, "known_regions", no_list)
    assert found(validate(base())) == []


def test_without_botocore_regions_are_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from drplan import regions

    regions.known_regions.cache_clear()
    monkeypatch.setattr(regions, "_endpoints_file", lambda: None)
    try:
        plan = base()
        plan["aws"] = {"region": "us-east-99"}
        assert found(validate(plan)) == []
    finally:
        regions.known_regions.cache_clear()


def ebs(plan: dict[str, Any], zone: str, **extra: Any) -> dict[str, Any]:
    plan["services"]["disk"] = {
        "steps": [
            step(
                "volume",
                "aws.ec2.volume_from_snapshot",
                {"snapshot": "snap-0123456789abcdef0", "name": "data", "availability_zone": zone},
                estimate="PT10M",
                **extra,
            ),
            step("up", estimate="PT1M"),
        ]
    }
    return plan


def test_an_availability_zone_must_be_in_the_region_its_step_runs_in() -> None:
    plan = ebs(base(), "eu-west-1a")
    plan["aws"] = {"region": "us-east-1"}
    result = validate(plan)
    assert found(result) == [("DR104", "/services/disk/steps/0/with/availability_zone")]
    assert (
        "is in region `eu-west-1`, but the step runs in `us-east-1` (`aws.region`)"
        in result.diagnostics[0].message
    )
    plan["services"]["disk"]["steps"][0]["region"] = "eu-west-1"  # the step's own region wins
    assert found(validate(plan)) == []


def test_a_drill_region_needs_a_drill_zone() -> None:
    plan = ebs(base(), "us-east-1a")
    plan["aws"] = {"region": "us-east-1"}
    plan["drill"] = {"region": "eu-west-1"}
    result = validate(plan)
    assert found(result) == [("DR104", "/services/disk/steps/0/with/availability_zone")]
    assert result.diagnostics[0].message.startswith("step `volume` of service `disk`: in drills, ")
    plan["services"]["disk"]["steps"][0]["drill_with"] = {"availability_zone": "eu-west-1b"}
    assert found(validate(plan)) == []


def test_zones_of_unknown_regions_and_local_zones() -> None:
    result = validate(ebs(base(), "us-east-99a"))
    assert found(result) == [("DR104", "/services/disk/steps/0/with/availability_zone")]
    assert "(did you mean `us-east-1a`?)" in result.diagnostics[0].message
    assert found(validate(ebs(base(), "us-west-2-lax-1a"))) == []  # a Local Zone: AWS judges it


# --- references a run would not resolve (DR209) --------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("https://x/${db.restore.table_name", "${db.restore.table_name"),
        ("https://x/${db.restore.table_name}/${db.restore.table_name", "${db.restore.table_name"),
        ("https://x/${", "${"),
        ("https://x/${}", "${}"),
        ("https://x/${${db.restore.table_name}}", "${${db.restore.table_name}"),
    ],
)
def test_every_dollar_brace_a_run_would_not_substitute_is_dr209(url: str, fragment: str) -> None:
    plan = base()
    plan["services"]["db"]["steps"][1]["with"]["url"] = url
    result = validate(plan)
    assert [code for code, _ in found(result)] == ["DR209"]
    (finding,) = result.diagnostics
    assert finding.span is not None
    text = json.dumps(plan, indent=2)
    # Located at the `${` the run would leave alone: the last place its text starts.
    assert finding.span.start.offset == text.rindex(fragment, 0, text.index(json.dumps(url)) + len(url) + 2)


def test_references_in_keys_are_dr209_at_the_key() -> None:
    plan = base()
    plan["services"]["db"]["steps"][1]["with"]["headers"] = {"X-${db.restore.table_name}": "1"}
    result = validate(plan)
    assert found(result) == [("DR209", "/services/db/steps/1/with/headers/X-${db.restore.table_name}")]
    assert "references are resolved only in values, never in keys" in result.diagnostics[0].message


# --- DR305 and its mirror DR309 ------------------------------------------------------------------


def dns_after_recover_only_restore(drill_with: dict[str, Any] | None) -> dict[str, Any]:
    plan = base()
    plan["services"]["db"]["steps"][0]["only"] = "recover"
    plan["services"]["db"]["steps"][1]["only"] = "recover"
    dns = step(
        "dns",
        "aws.route53.change_record",
        {"zone_id": "Z0SHOP", "name": "db.example.com", "values": ["${db.restore.table_name}"]},
        estimate="PT2M",
    )
    if drill_with is not None:
        dns["drill_with"] = drill_with
    plan["services"]["web"] = {"depends_on": ["db"], "steps": [dns, step("up", estimate="PT1M")]}
    return plan


def test_dr305_is_not_reported_for_a_step_that_drills_skip() -> None:
    # Route 53 changes are skipped in drills without drill_with: in a drill, nothing needs db.restore.
    assert found(validate(dns_after_recover_only_restore(None))) == []
    # With drill_with it runs in drills, and then it does need the recover-only step.
    assert found(validate(dns_after_recover_only_restore({"zone_id": "Z0DRILL"}))) == [
        ("DR305", "/services/web/steps/0")
    ]


def test_dr305_counts_the_references_a_drill_really_uses() -> None:
    plan = base()
    plan["services"]["db"]["steps"][0]["only"] = "recover"
    plan["services"]["db"]["steps"][1]["drill_with"] = {"url": "https://drill.example.com/health"}
    # In drills `ready` checks a drill URL: the recover-only restore is only its predecessor in order.
    assert found(validate(plan)) == []


def test_a_recovery_step_that_needs_a_drill_only_step_is_dr309() -> None:
    plan = base()
    plan["services"]["db"]["steps"][0]["only"] = "drill"
    result = validate(plan)
    # `ready` runs in both modes and uses db.restore, which never runs in a real recovery.
    assert ("DR309", "/services/db/steps/1/with/url") in found(result)
    assert "the step would silently not run" in result.diagnostics[0].message
    plan["services"]["db"]["steps"][1]["only"] = "drill"  # the fix: the check is a drill check too
    assert [c for c, _ in found(validate(plan)) if c == "DR309"] == []


def test_after_a_step_the_mode_leaves_out_is_no_finding() -> None:
    """A step that waits (`after`) for a step the mode leaves out keeps the order the plan means:
    the left-out step's predecessors come first. Neither DR305 nor DR309."""
    plan = base()
    plan["services"]["db"]["steps"][1]["only"] = "drill"
    plan["services"]["db"]["steps"].append(
        step("announce", "manual", {"instructions": "Tell the team."}, after=["ready"], only="recover")
    )
    assert [c for c, _ in found(validate(plan)) if c in ("DR305", "DR309")] == []


# --- no traceback, ever ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["null", "[]", "3", '"plan"', "true", "-1.5"])
def test_a_top_level_that_is_not_an_object_is_located_dr103(text: str) -> None:
    result = validate_document(read_document("plan.json", data=text.encode()))
    assert found(result) == [("DR103", "")]
    assert (result.diagnostics[0].line, result.diagnostics[0].column) == (1, 1)
    assert result.diagnostics[0].message.startswith("a plan must be a JSON object")


def test_load_plan_refuses_null_with_the_finding(tmp_path: Path) -> None:
    from drplan.errors import PlanInvalid
    from drplan.pipeline import load_plan

    path = tmp_path / "plan.json"
    path.write_text("null\n", encoding="utf-8")
    with pytest.raises(PlanInvalid) as caught:
        load_plan(path)
    assert "has 1 error" in caught.value.message
    assert [d.code for d in caught.value.diagnostics] == ["DR103"]


def test_long_ids_and_values_are_shortened_in_messages() -> None:
    plan = base()
    plan["services"]["db"]["steps"][1]["with"]["url"] = "https://x/${db." + "r" * 5000 + ".table_name}"
    (finding,) = validate(plan).diagnostics
    assert finding.code == "DR204"
    assert len(finding.message) < 400
    assert "…(5017 characters)" in finding.message  # the reference
    assert "…(5000 characters)" in finding.message  # the step it names


def test_run_settings_are_in_the_model() -> None:
    plan = base()
    plan["run"] = {"parallelism": 8, "state": "s3://dr-state/shop"}
    result = validate(plan)
    assert found(result) == []
    assert result.plan is not None
    assert (result.plan.run.parallelism, result.plan.run.state) == (8, "s3://dr-state/shop")
    assert validate(base()).plan.run == RunSettings()  # type: ignore[union-attr]
