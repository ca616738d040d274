"""``aws.ecs.set_capacity`` in a state machine: set an ECS service's desired task count and wait
for the service to be steady, as the local action does (``drplan/actions/ecs/capacity.py``).

The service must exist and be ``ACTIVE`` (``DescribeServices``) before its count is set
(``UpdateService``); the step then polls ``DescribeServices`` with the local engine's intervals
until ECS's own test of a steady service holds (one deployment, as many tasks running as desired),
and fails when the service's primary deployment failed (ECS's deployment circuit breaker) or the
service is no longer ``ACTIVE``. Its outputs are the local action's: ``cluster``, ``service``,
``desired`` and ``running``.

What is not translated: the local action's undo puts the count back to what it was before the run,
which it remembers; a state machine would have to keep it from the attempt that read it. So a
recovery's retries and ``--rollback-on-failure``, and a drill that scales a drill service
(``drill_with``), are refused: the step has no undo here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from drplan.actions.ecs.capacity import short_name
from drplan.stepfunctions.builder import Path, Scope, Untranslatable
from drplan.stepfunctions.tasks import (
    StepInfo,
    Translation,
    choice,
    fail,
    pass_state,
    poll_loop,
    poll_waits,
    task,
)


class EcsSetCapacity(Translation):
    action = "aws.ecs.set_capacity"
    understood = frozenset({"cluster", "service", "desired", "wait_steady"})

    def check(self, info: StepInfo) -> None:
        super().check(info)
        for name in ("cluster", "service", "wait_steady"):
            value = info.params.get(name)
            if value is not None and "${" in str(value):
                raise Untranslatable(f"`{name}` must be known when the plan is exported (it is {value!r})")
        if info.mode == "drill":
            raise Untranslatable(
                "a drill that scales a drill service puts its count back at cleanup (the local action "
                "remembers it): not translated yet"
            )
        if info.step.retries:
            raise Untranslatable("retries put the previous count back between attempts: not translated yet")
        desired = info.params.get("desired")
        if not (
            isinstance(desired, int) and not isinstance(desired, bool) and desired >= 0
        ) and "${" not in str(desired):
            raise Untranslatable(f"`desired` must be a whole number of tasks (it is {desired!r})")

    def check_rollback(self, info: StepInfo) -> None:
        raise Untranslatable(
            "a recovery's rollback puts the previous count back (the local action remembers it): not "
            "translated yet; export without --rollback-on-failure"
        )

    def extra_iam(self, params: Mapping[str, Any], arn: str) -> list[tuple[str, str]]:
        return []  # DescribeServices and UpdateService are the action's own

    def work(self, info: StepInfo, scope: Scope) -> str:
        p = info.params
        cluster, service = str(p["cluster"]), str(p["service"])
        name = short_name(service)
        desired = info.v(p["desired"])

        def describe(then: str) -> dict[str, Any]:
            # The list and its length only: moto's interpreter returns a list for a field right
            # after an index, so the service is picked in a state of its own.
            return task(
                "ecs",
                "describeServices",
                {"Cluster": cluster, "Services": [service]},
                then,
                selector={"n": Path("States.ArrayLength($.Services)"), "all": Path("$.Services")},
                result="$.w.svc",
            )

        def outputs(running: Any) -> dict[str, Any]:
            return {"cluster": short_name(cluster), "service": name, "desired": desired, "running": running}

        missing = scope.add(
            info.label("service missing"),
            fail(f"ECS service {name} does not exist in cluster {short_name(cluster)}"),
        )
        # --- the change -------------------------------------------------------------------------
        # Not waiting for steady state: the step ends once ECS accepted the count (as locally).
        if p.get("wait_steady", True):
            after = self._until_steady(info, scope, name, missing, describe, outputs)
        else:
            after = scope.add(info.label("outputs (not waiting)"), pass_state(outputs(None), None))
        update = scope.add(
            info.label("set desired count"),
            task(
                "ecs",
                "updateService",
                {"Cluster": cluster, "Service": service, "DesiredCount": desired},
                after,
                result=None,
            ),
        )
        # --- before it: the service must be there and ACTIVE ---------------------------------------
        inactive = scope.add(
            info.label("service not active"),
            fail(Path(f"States.Format('ECS service {name} is {{}}, not ACTIVE', $.w.one.Status)")),
        )
        is_active = scope.add(
            info.label("service active?"),
            choice(
                [{"Not": {"Variable": "$.w.one.Status", "StringEquals": "ACTIVE"}, "Next": inactive}], update
            ),
        )
        found = scope.add(
            info.label("found service"),
            {"Type": "Pass", "InputPath": "$.w.svc.all[0]", "ResultPath": "$.w.one", "Next": is_active},
        )
        exists = scope.add(
            info.label("service exists?"),
            choice([{"Variable": "$.w.svc.n", "NumericEquals": 0, "Next": missing}], found),
        )
        return scope.add(info.label("describe service first"), describe(exists))

    def _until_steady(
        self,
        info: StepInfo,
        scope: Scope,
        name: str,
        missing: str,
        describe: Callable[[str], dict[str, Any]],
        outputs: Callable[[Any], dict[str, Any]],
    ) -> str:
        """After the change: poll the service with the local intervals until ECS's own test of a
        steady service holds; fail when it is gone, no longer ACTIVE, or its rollout failed."""
        poll = scope.reserve(info.label("describe service"))
        there = scope.reserve(info.label("service still there?"))
        pick = scope.reserve(info.label("the service"))
        deployments = scope.reserve(info.label("count deployments"))
        active = scope.reserve(info.label("still active?"))
        rollout_failed = scope.reserve(info.label("rollout failed?"))
        steady = scope.reserve(info.label("steady?"))
        start, wait = poll_loop(
            info, scope, "p", poll, poll_waits(info.options, info.estimate, info.timeout), "service"
        )
        gone = scope.add(
            info.label("service gone"),
            fail(Path(f"States.Format('ECS service {name} is {{}}', $.w.one.Status)")),
        )
        rollout = scope.add(
            info.label("deployment failed"),
            fail(Path(f"States.Format('ECS service {name}: {{}}', $.w.dep.first.RolloutStateReason)")),
        )
        steady_out = scope.add(info.label("outputs"), pass_state(outputs(Path("$.w.one.RunningCount")), None))
        scope.put(poll, describe(there))
        scope.put(there, choice([{"Variable": "$.w.svc.n", "NumericEquals": 0, "Next": missing}], pick))
        scope.put(
            pick,
            {"Type": "Pass", "InputPath": "$.w.svc.all[0]", "ResultPath": "$.w.one", "Next": deployments},
        )
        scope.put(
            deployments,
            pass_state(
                {"n": Path("States.ArrayLength($.w.one.Deployments)"), "all": Path("$.w.one.Deployments")},
                active,
                result="$.w.dep",
            ),
        )
        # ECS lists the primary deployment first; its circuit breaker marks it FAILED. A comparison
        # on a missing field is an error, so the fields' presence is checked first.
        failed_check = scope.add(
            info.label("primary deployment failed?"),
            choice(
                [
                    {
                        "And": [
                            {"Variable": "$.w.dep.first.RolloutState", "StringEquals": "FAILED"},
                            {"Variable": "$.w.dep.first.Status", "StringEquals": "PRIMARY"},
                        ],
                        "Next": rollout,
                    }
                ],
                steady,
            ),
        )
        scope.put(
            rollout_failed,
            choice(
                [
                    {
                        "And": [
                            {"Variable": "$.w.dep.first.RolloutState", "IsPresent": True},
                            {"Variable": "$.w.dep.first.Status", "IsPresent": True},
                        ],
                        "Next": failed_check,
                    }
                ],
                steady,
            ),
        )
        first = scope.add(
            info.label("primary deployment"),
            {
                "Type": "Pass",
                "InputPath": "$.w.dep.all[0]",
                "ResultPath": "$.w.dep.first",
                "Next": rollout_failed,
            },
        )
        scope.put(
            active,
            choice(
                [
                    {"Not": {"Variable": "$.w.one.Status", "StringEquals": "ACTIVE"}, "Next": gone},
                    {"Variable": "$.w.dep.n", "NumericEquals": 0, "Next": wait},
                ],
                first,
            ),
        )
        scope.put(
            steady,
            choice(
                [
                    {
                        "And": [
                            {"Variable": "$.w.dep.n", "NumericEquals": 1},
                            {"Variable": "$.w.one.RunningCount", "NumericEqualsPath": "$.w.one.DesiredCount"},
                        ],
                        "Next": steady_out,
                    }
                ],
                wait,
            ),
        )
        return start
