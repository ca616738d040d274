"""``aws.ecs.set_capacity`` in a state machine: set an ECS service's desired task count and wait
for the service to be steady, as the local action does (``drplan/actions/ecs/capacity.py``).

The service must exist and be ``ACTIVE`` (``DescribeServices``) before its count is set
(``UpdateService``); the step then polls ``DescribeServices`` with the local engine's intervals
until ECS's own test of a steady service holds (one deployment, as many tasks running as desired),
and fails when the service's primary deployment failed (ECS's deployment circuit breaker) or the
service is no longer ``ACTIVE``. Its outputs are the local action's: ``cluster``, ``service``,
``desired`` and ``running``.

The undo (before a retry, in a rollback, in a drill's cleanup) puts the count back to what it was
before the step, as the local action does from its memo: read once before the first attempt
(:meth:`EcsSetCapacity.remember`) and kept in the step's record, then set again and waited for
until the service is steady at it; a service gone or no longer active has nothing to put back.
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
    done,
    fail,
    pass_state,
    poll_loop,
    poll_waits,
    task,
    undo_waits,
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
        desired = info.params.get("desired")
        if not (
            isinstance(desired, int) and not isinstance(desired, bool) and desired >= 0
        ) and "${" not in str(desired):
            raise Untranslatable(f"`desired` must be a whole number of tasks (it is {desired!r})")

    def remembers(self, info: StepInfo) -> bool:
        return True

    def remember(self, info: StepInfo, scope: Scope, then: str) -> str:
        """The desired count before the step (``StepContext.first_seen`` locally), at ``$.w.prev``;
        a service that is not there has nothing to put back (the step then fails on it)."""
        kept = scope.add(
            info.label("before: keep the count"),
            pass_state({"count": Path("$.w.before.DesiredCount")}, then, result="$.w.prev"),
        )
        pick = scope.add(
            info.label("before: the service"),
            {"Type": "Pass", "InputPath": "$.w.svc.all[0]", "ResultPath": "$.w.before", "Next": kept},
        )
        nothing = scope.add(
            info.label("before: no service"), pass_state({"none": True}, then, result="$.w.prev")
        )
        exists = scope.add(
            info.label("before: service exists?"),
            choice([{"Variable": "$.w.svc.n", "NumericEquals": 0, "Next": nothing}], pick),
        )
        return scope.add(info.label("before: describe service"), self._describe(info, exists))

    def _describe(self, info: StepInfo, then: str) -> dict[str, Any]:
        # The list and its length only: moto's interpreter returns a list for a field right after
        # an index, so the service is picked in a state of its own.
        return task(
            "ecs",
            "describeServices",
            {"Cluster": str(info.params["cluster"]), "Services": [str(info.params["service"])]},
            then,
            selector={"n": Path("States.ArrayLength($.Services)"), "all": Path("$.Services")},
            result="$.w.svc",
        )

    def undo(self, info: StepInfo, scope: Scope) -> str | None:
        """``SetServiceCapacity.undo``/``poll_undo``: the count from before the step set again, then
        waited for until the service is steady at it; a service gone or not ACTIVE is left."""
        cluster, service = str(info.params["cluster"]), str(info.params["service"])
        name = short_name(service)
        gone = done(scope, info)
        unknown = scope.add(
            info.label("undo: previous count unknown"),
            fail(
                f"the desired count {info.key} replaced is not known (the run ended before writing its record): "
                f"check ECS service {name} and set it by hand"
            ),
        )
        check = scope.reserve(info.label("undo: describe service"))
        start, wait = poll_loop(info, scope, "u", check, undo_waits(info.options), "undo: service")
        there = scope.reserve(info.label("undo: service there?"))
        pick = scope.reserve(info.label("undo: the service"))
        back = scope.reserve(info.label("undo: back at the count?"))
        scope.put(check, self._describe(info, there))
        scope.put(there, choice([{"Variable": "$.w.svc.n", "NumericEquals": 0, "Next": gone}], pick))
        deployments = scope.add(
            info.label("undo: count deployments"),
            pass_state({"n": Path("States.ArrayLength($.w.one.Deployments)")}, back, result="$.w.dep"),
        )
        scope.put(
            pick,
            {"Type": "Pass", "InputPath": "$.w.svc.all[0]", "ResultPath": "$.w.one", "Next": deployments},
        )
        scope.put(
            back,
            choice(
                [
                    {"Not": {"Variable": "$.w.one.Status", "StringEquals": "ACTIVE"}, "Next": gone},
                    {
                        "And": [
                            {"Variable": "$.w.one.DesiredCount", "NumericEqualsPath": "$.w.prev.count"},
                            {"Variable": "$.w.dep.n", "NumericEquals": 1},
                            {"Variable": "$.w.one.RunningCount", "NumericEqualsPath": "$.w.one.DesiredCount"},
                        ],
                        "Next": gone,
                    },
                ],
                wait,
            ),
        )
        update = scope.add(
            info.label("undo: set the count back"),
            task(
                "ecs",
                "updateService",
                {"Cluster": cluster, "Service": service, "DesiredCount": Path("$.w.prev.count")},
                start,
                result=None,
            ),
        )
        active = scope.add(
            info.label("undo: service active?"),
            choice(
                [{"Not": {"Variable": "$.w.first.Status", "StringEquals": "ACTIVE"}, "Next": gone}], update
            ),
        )
        first = scope.add(
            info.label("undo: found service"),
            {"Type": "Pass", "InputPath": "$.w.svc.all[0]", "ResultPath": "$.w.first", "Next": active},
        )
        exists = scope.add(
            info.label("undo: service exists?"),
            choice([{"Variable": "$.w.svc.n", "NumericEquals": 0, "Next": gone}], first),
        )
        look = scope.add(info.label("undo: describe service first"), self._describe(info, exists))
        return scope.add(
            info.label("undo: what was the count?"),
            choice(
                [
                    {"Variable": "$.w.prev.count", "IsPresent": True, "Next": look},
                    {"Variable": "$.w.prev.none", "IsPresent": True, "Next": gone},
                ],
                unknown,
            ),
        )

    def extra_iam(self, params: Mapping[str, Any], arn: str) -> list[tuple[str, str]]:
        return []  # DescribeServices and UpdateService are the action's own

    def work(self, info: StepInfo, scope: Scope) -> str:
        p = info.params
        cluster, service = str(p["cluster"]), str(p["service"])
        name = short_name(service)
        desired = info.v(p["desired"])

        def describe(then: str) -> dict[str, Any]:
            return self._describe(info, then)

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
