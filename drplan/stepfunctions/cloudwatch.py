"""``check.cloudwatch_alarm`` in a state machine: an alarm in the expected state for a while.

The local check (:mod:`drplan.actions.cloudwatch.alarm`) describes the alarm when it starts (it
must exist), notes when it started watching, then polls: a missing alarm fails the step ("was
deleted"); an alarm in another state is polled again after ``interval``; in the wanted state it has
been so since it entered it (its ``StateTransitionedTimestamp``, else ``StateUpdatedTimestamp``),
or since the check started watching, whichever is later, and the check passes once that is ``for``
long, polling again after the shorter of ``interval`` and what is left.

"How long" is a subtraction of timestamps, which JSONPath cannot do: the polling states are JSONata
(``$toMillis``), as ``max_age`` is (:func:`drplan.stepfunctions.tasks.fresh_enough`). "Now" is when
the state that judges was entered (``$states.context.State.EnteredTime``), the moment the answer it
judges was read.

The output ``since`` is written as the local check writes it (Python's ``isoformat``: ``+00:00``,
microseconds when the time has a fraction); AWS keeps alarm times to the millisecond.
"""

from __future__ import annotations

from typing import Any

from drplan.actions.cloudwatch.alarm import DEFAULT_FOR, DEFAULT_INTERVAL
from drplan.durations import seconds_param
from drplan.stepfunctions.builder import Scope
from drplan.stepfunctions.tasks import (
    STEP_FAILED,
    THROTTLE_RETRY,
    UNNAMED_RETRY,
    StepInfo,
    Translation,
    interval_waits,
    jsonata_set,
    jsonata_text,
)

#: CloudWatch's modeled faults as Step Functions names them (the ``Exception`` suffix added) ...
CLOUDWATCH_TRANSIENT = ["CloudWatch.LimitExceededFaultException", "CloudWatch.InternalServiceFaultException"]
#: ... and its throttling, which it does not model: the SDK's generic error, so retried briefly.
CLOUDWATCH_UNNAMED = ["CloudWatch.CloudWatchException"]

_ALARM = "$append($states.result.MetricAlarms, $states.result.CompositeAlarms)[0]"
_ENTERED = (
    "($a := $states.input.w.al; $a.StateTransitionedTimestamp ? $a.StateTransitionedTimestamp "
    ": $a.StateUpdatedTimestamp)"
)


def _isoformat(millis: str) -> str:
    """JSONata for Python's ``datetime.isoformat`` of a UTC moment given in milliseconds."""
    return (
        f"($ms := {millis}; $fromMillis($ms, '[Y0001]-[M01]-[D01]T[H01]:[m01]:[s01]') & "
        "($ms % 1000 = 0 ? '' : '.' & $formatInteger(($ms % 1000) * 1000, '000000')) & '+00:00')"
    )


class AlarmCheckTranslation(Translation):
    action = "check.cloudwatch_alarm"
    understood = frozenset({"alarm", "state", "for", "interval"})

    def check(self, info: StepInfo) -> None:
        super().check(info)
        self.without_references(info, "alarm")  # the messages name it
        for name in ("state", "for", "interval"):
            self.literal(info, name)

    def waits(self, info: StepInfo) -> list[int]:
        return interval_waits(info, DEFAULT_INTERVAL.total_seconds())

    def _describe(self, info: StepInfo, then: str) -> dict[str, Any]:
        name = str(info.params["alarm"])
        return {
            "Type": "Task",
            "QueryLanguage": "JSONata",
            "Resource": "arn:aws:states:::aws-sdk:cloudwatch:describeAlarms",
            "Arguments": {"AlarmNames": [name], "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]},
            "Output": jsonata_set("al", _ALARM),
            "Retry": [
                {"ErrorEquals": CLOUDWATCH_TRANSIENT, **THROTTLE_RETRY},
                {"ErrorEquals": CLOUDWATCH_UNNAMED, **UNNAMED_RETRY},
            ],
            "Next": then,
        }

    def work(self, info: StepInfo, scope: Scope) -> str:
        p = info.params
        name = str(p["alarm"])
        wanted = str(p.get("state", "OK"))
        hold = seconds_param(p, "for", DEFAULT_FOR.total_seconds())
        (interval,) = self.waits(info)
        poll = scope.reserve(info.label("describe alarm"))
        judge = scope.reserve(info.label("alarm held long enough?"))
        # When it has been in the wanted state since, as seen now: max(watching, entered).
        since = f"$max([$toMillis($states.input.w.watch), ($e := {_ENTERED}; $e ? $toMillis($e) : 0)])"
        held = f"($toMillis($states.context.State.EnteredTime) - {since}) / 1000"
        outputs = scope.add(
            info.label("outputs"),
            {
                "Type": "Pass",
                "QueryLanguage": "JSONata",
                "Output": "{% {'alarm': "
                + jsonata_text(name)
                + ", 'state': "
                + jsonata_text(wanted)
                + ", 'since': "
                + f"($e := {_ENTERED}; {_isoformat(f'($e ? $toMillis($e) : {since})')})"
                + "} %}",
                "End": True,
            },
        )
        again = scope.add(
            info.label("wait (alarm)"),
            {"Type": "Wait", "Seconds": interval, "Next": poll},
        )
        # statelint takes a Wait's Seconds as a number only: the JSONata works it out in a Pass.
        rest_wait = scope.add(
            info.label("wait for the rest (alarm)"),
            {"Type": "Wait", "SecondsPath": "$.w.rest", "Next": poll},
        )
        rest = scope.add(
            info.label("how much longer (alarm)"),
            {
                "Type": "Pass",
                "QueryLanguage": "JSONata",
                "Output": jsonata_set("rest", f"$max([1, $min([{interval}, $ceil({hold} - {held})])])"),
                "Next": rest_wait,
            },
        )
        deleted = scope.add(
            info.label("alarm deleted"),
            {"Type": "Fail", "Error": STEP_FAILED, "Cause": f"CloudWatch alarm {name} was deleted"},
        )
        scope.put(
            judge,
            {
                "Type": "Choice",
                "QueryLanguage": "JSONata",
                "Choices": [
                    {"Condition": "{% $not($exists($states.input.w.al)) %}", "Next": deleted},
                    {
                        "Condition": "{% $states.input.w.al.StateValue != " + jsonata_text(wanted) + " %}",
                        "Next": again,
                    },
                    {"Condition": "{% " + f"{held} >= {hold}" + " %}", "Next": outputs},
                ],
                "Default": rest,
            },
        )
        scope.put(poll, self._describe(info, judge))
        missing = scope.add(
            info.label("no such alarm"),
            {"Type": "Fail", "Error": STEP_FAILED, "Cause": f"CloudWatch alarm {name} does not exist"},
        )
        watch = scope.add(
            info.label("start watching"),
            {
                "Type": "Pass",
                "QueryLanguage": "JSONata",
                "Output": jsonata_set("watch", "$states.context.State.EnteredTime"),
                "Next": poll,
            },
        )
        exists = scope.add(
            info.label("alarm exists?"),
            {
                "Type": "Choice",
                "QueryLanguage": "JSONata",
                "Choices": [{"Condition": "{% $exists($states.input.w.al) %}", "Next": watch}],
                "Default": missing,
            },
        )
        return scope.add(info.label("find alarm"), self._describe(info, exists))
