"""``check.route53_health`` in a state machine: a Route 53 health check reports the endpoint
healthy, as the local check (:mod:`drplan.actions.route53.health`) polls it.

``GetHealthCheck`` first: a missing health check fails the step, and so does a ``CALCULATED`` one
(Route 53 reports no checker for it), with the local messages. Then ``GetHealthCheckStatus`` every
``interval`` (10 s) until the share of checkers whose report starts with ``Success`` reaches
``min_healthy_percent`` (100); no report yet is polled again. Counting the healthy reports is a
filter over the observations, which is JSONata here (statelint refuses JSONPath filters).
The outputs are the local ones: ``health_check_id``, ``healthy_checkers``, ``checkers``.
"""

from __future__ import annotations

from drplan.actions.route53.health import DEFAULT_INTERVAL
from drplan.stepfunctions.builder import Path, Scope
from drplan.stepfunctions.tasks import (
    STEP_FAILED,
    THROTTLE_RETRY,
    TRANSIENT,
    StepInfo,
    Translation,
    choice,
    fail,
    interval_waits,
    jsonata_set,
    jsonata_text,
    task,
)


class HealthCheckTranslation(Translation):
    action = "check.route53_health"
    understood = frozenset({"health_check_id", "min_healthy_percent", "interval"})

    def check(self, info: StepInfo) -> None:
        super().check(info)
        self.without_references(info, "health_check_id")  # the messages name it
        self.literal(info, "min_healthy_percent")
        self.literal(info, "interval")

    def waits(self, info: StepInfo) -> list[int]:
        return interval_waits(info, DEFAULT_INTERVAL.total_seconds())

    def work(self, info: StepInfo, scope: Scope) -> str:
        p = info.params
        check_id = str(p["health_check_id"])
        share = int(p.get("min_healthy_percent", 100))
        (interval,) = self.waits(info)
        poll = scope.reserve(info.label("health check status"))
        outputs = scope.add(
            info.label("outputs"),
            {
                "Type": "Pass",
                "QueryLanguage": "JSONata",
                "Output": "{% {'health_check_id': "
                + jsonata_text(check_id)
                + ", 'healthy_checkers': $states.input.w.hc.good, 'checkers': $states.input.w.hc.all} %}",
                "End": True,
            },
        )
        wait = scope.add(
            info.label("wait (health check)"), {"Type": "Wait", "Seconds": interval, "Next": poll}
        )
        enough = scope.add(
            info.label("healthy enough?"),
            {
                "Type": "Choice",
                "QueryLanguage": "JSONata",
                "Choices": [
                    {
                        "Condition": "{% "
                        + f"$states.input.w.hc.all > 0 and 100 * $states.input.w.hc.good / $states.input.w.hc.all >= {share}"
                        + " %}",
                        "Next": outputs,
                    }
                ],
                "Default": wait,
            },
        )
        counted = (
            "{'all': $count($states.result.HealthCheckObservations), "
            "'good': $count($states.result.HealthCheckObservations"
            "[$substring(StatusReport.Status, 0, 7) = 'Success'])}"
        )
        scope.put(
            poll,
            {
                "Type": "Task",
                "QueryLanguage": "JSONata",
                "Resource": "arn:aws:states:::aws-sdk:route53:getHealthCheckStatus",
                "Arguments": {"HealthCheckId": check_id},
                "Output": jsonata_set("hc", counted),
                "Retry": [{"ErrorEquals": TRANSIENT["route53"], **THROTTLE_RETRY}],
                "Next": enough,
            },
        )
        calculated = scope.add(
            info.label("health check has no checkers"),
            fail(
                f"Route 53 health check {check_id} is CALCULATED: Route 53 reports no checker status for it; "
                "check the health checks it combines instead"
            ),
        )
        kind = scope.add(
            info.label("checkers report?"),
            choice(
                [
                    {
                        "Variable": "$.w.hcc.HealthCheckConfig.Type",
                        "StringEquals": "CALCULATED",
                        "Next": calculated,
                    }
                ],
                poll,
            ),
        )
        missing = scope.add(
            info.label("no such health check"),
            {
                "Type": "Fail",
                "Error": STEP_FAILED,
                "Cause": f"Route 53 health check {check_id} does not exist",
            },
        )
        return scope.add(
            info.label("get health check"),
            task(
                "route53",
                "getHealthCheck",
                {"HealthCheckId": check_id},
                kind,
                selector={"HealthCheckConfig": Path("$.HealthCheck.HealthCheckConfig")},
                result="$.w.hcc",
                catch=[(["Route53.NoSuchHealthCheckException"], missing)],
            ),
        )
