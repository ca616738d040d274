"""``check.route53_health`` exported to Step Functions against drplan's own run in moto: health
checks whose checkers come round (scripted: moto always reports one healthy checker), one missing,
one CALCULATED. Plans written from docs/actions.md."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from drplan.model import build_plan
from drplan.stepfunctions import export_plan
from tests.moto_error_names import moto_names_errors_as_step_functions
from tests.moto_jsonata import moto_evaluates_jsonata
from tests.runs import plan_data, run_plan
from tests.test_stepfunctions import (
    FAST,
    ONE_MACHINE,
    REGION,
    RUN_ID,
    SFN,
    _quiet_moto,  # noqa: F401 - the autouse fixture, for this module too
    execute,
    lint_definition,
    records,
    statuses,
)

FAILING = "Failure: Connection timed out. The endpoint or the internet connection is down."
SUCCESS = "Success: HTTP Status Code: 200. OK"


@pytest.fixture
def checkers(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, list[int]]]:
    """How many of three checkers report healthy at each GetHealthCheckStatus of a health check
    (by its CallerReference), in turn; the last one repeats. Setting a health check's turns starts
    it from the first again."""
    from moto.core.responses import ActionResult
    from moto.route53.responses import Route53

    script: dict[str, list[int]] = {}
    answered: dict[str, tuple[list[int], int]] = {}  # the turns in use, and how many were answered

    def status(self: Route53) -> ActionResult:
        check = self.backend.get_health_check(self._get_param("HealthCheckId"))
        turns = script[check.caller_reference]
        if answered.get(check.caller_reference, (None, 0))[0] is not turns:
            answered[check.caller_reference] = (turns, 0)
        n = answered[check.caller_reference][1] + 1
        answered[check.caller_reference] = (turns, n)
        good = turns[min(n, len(turns)) - 1]
        reports = [SUCCESS] * good + [FAILING] * (3 - good)
        regions = ("us-east-1", "eu-west-1", "ap-southeast-1")
        return ActionResult(
            {
                "HealthCheckObservations": [
                    {"Region": region, "IPAddress": "198.51.100.7", "StatusReport": {"Status": report}}
                    for region, report in zip(regions, reports, strict=True)
                ]
            }
        )

    monkeypatch.setattr(Route53, "get_health_check_status", status)
    yield script


def health_checks() -> dict[str, str]:
    r53 = boto3.client("route53", region_name=REGION)
    ids = {
        name: r53.create_health_check(
            CallerReference=name,
            HealthCheckConfig={"Type": "HTTPS", "FullyQualifiedDomainName": f"{name}.example.com"},
        )["HealthCheck"]["Id"]
        for name in ("web", "mostly")
    }
    ids["combined"] = r53.create_health_check(
        CallerReference="combined",
        HealthCheckConfig={"Type": "CALCULATED", "ChildHealthChecks": [ids["web"]]},
    )["HealthCheck"]["Id"]
    return ids


def plan(ids: dict[str, str]) -> dict[str, Any]:
    def check(check_id: str, **extra: Any) -> dict[str, Any]:
        return {
            "steps": [
                {
                    "id": "healthy",
                    "uses": "check.route53_health",
                    "with": {"health_check_id": check_id, "interval": "PT1S", **extra},
                }
            ]
        }

    return plan_data(
        {
            "web": check(ids["web"]),
            "mostly": check(ids["mostly"], min_healthy_percent=60),
            "ghost": check("00000000-0000-0000-0000-000000000000"),
            "combined": check(ids["combined"]),
        },
        name="health",
    )


def _named(message: str | None, ids: dict[str, str]) -> str:
    """Each emulator picks its own health check ids: a message names them by what they are."""
    text = str(message)
    for name, check_id in ids.items():
        text = text.replace(check_id, f"<{name}>")
    return text


@pytest.mark.slow
def test_a_health_check_that_comes_round_passes_and_the_others_fail_as_locally(
    checkers: dict[str, list[int]],
) -> None:
    # No checker healthy, then two of three, then all: `web` wants all, `mostly` 60 %.
    checkers.update({"web": [0, 2, 3], "mostly": [0, 2, 3]})
    with mock_aws():
        local_ids = health_checks()
        local = run_plan(plan(local_ids), run_id=RUN_ID)
    expected = {k: r.status for k, r in local.outcome.records.items()}
    assert expected == {
        "web.healthy": "succeeded",
        "mostly.healthy": "succeeded",
        "ghost.healthy": "failed",
        "combined.healthy": "failed",
    }
    checkers.update({"web": [0, 2, 3], "mostly": [0, 2, 3]})
    with mock_aws(config=SFN), moto_evaluates_jsonata(), moto_names_errors_as_step_functions():
        ids = health_checks()
        exported = export_plan(build_plan(plan(ids)), "recover", options=FAST, history_budget=ONE_MACHINE)
        assert lint_definition(exported.definition) == []
        described = execute(exported.definition, table=exported.coordination_table)
    doc = records(described)
    assert statuses(doc, exported.sids) == expected
    steps = {k: doc["steps"][sid] for k, sid in exported.sids.items()}
    for key in ("ghost.healthy", "combined.healthy"):
        assert _named(steps[key]["cause"], ids) == _named(local.outcome.records[key].error, local_ids), key
    assert "is CALCULATED" in steps["combined.healthy"]["cause"]
    for key, healthy in (("web.healthy", 3), ("mostly.healthy", 2)):
        out = dict(steps[key]["out"])
        local_out = dict(local.outcome.records[key].outputs)
        assert out.pop("health_check_id") and local_out.pop("health_check_id")  # each emulator's own id
        assert out == local_out == {"healthy_checkers": healthy, "checkers": 3}, key
