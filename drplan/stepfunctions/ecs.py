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
from drplan.stepfunctions.builder import Path, Scope, State, Untranslatable
from drplan.stepfunctions.existing import ExistingResource
from drplan.stepfunctions.tasks import (
    StepInfo,
    choice,
    done,
    fail,
    pass_state,
    poll_loop,
    poll_waits,
    task,
    undo_waits,
)


class EcsSetCapacity(ExistingResource):
    action = "aws.ecs.set_capacity"
    understood = frozenset({"cluster", "service", "desired", "wait_steady"})
    noun = "service"
    listed = "$.w.svc"
    remembered = {"count": "DesiredCount"}
    what = "desired count"

    def check(self, info: StepInfo) -> None:
        super().check(info)
        self.without_references(info, "cluster", "service", "wait_steady")
        desired = info.params.get("desired")
        if not (
            isinstance(desired, int) and not isinstance(desired, bool) and desired >= 0
        ) and "${" not in str(desired):
            raise Untranslatable(f"`desired` must be a whole number of tasks (it is {desired!r})")

    def describe(self, info: StepInfo, then: str) -> State:
        return task(
            "ecs",
            "describeServices",
            {"Cluster": str(info.params["cluster"]), "Services": [str(info.params["service"])]},
            then,
            selector={"n": Path("States.ArrayLength($.Services)"), "all": Path("$.Services")},
            result=self.listed,
        )

    def where(self, info: StepInfo) -> str:
        return f"ECS service {short_name(info.params['service'])}"

    def undo(self, info: StepInfo, scope: Scope) -> str | None:
        """``SetServiceCapacity.undo``/``poll_undo``: the count from before the step set again, then
        waited for until the service is steady at it; a service gone or not ACTIVE is left."""
        cluster, service = str(info.params["cluster"]), str(info.params["service"])
        gone = done(scope, info)
        check = scope.reserve(info.label("undo: describe service"))
        start, wait = poll_loop(info, scope, "u", check, undo_waits(info.options), "undo: service")
        back = scope.reserve(info.label("undo: back at the count?"))
        deployments = scope.add(
            info.label("undo: count deployments"),
            pass_state({"n": Path("States.ArrayLength($.w.one.Deployments)")}, back, result="$.w.dep"),
        )
        self.find(info, scope, "undo: now ", "$.w.one", deployments, gone, at=check)
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
        look = self.find(info, scope, "undo: ", "$.w.first", active, gone)
        return self.recall(info, scope, look, gone)

    def extra_iam(self, params: Mapping[str, Any], arn: str) -> list[tuple[str, str]]:
        return []  # DescribeServices and UpdateService are the action's own

    def work(self, info: StepInfo, scope: Scope) -> str:
        p = info.params
        cluster, service = str(p["cluster"]), str(p["service"])
        name = short_name(service)
        desired = info.v(p["desired"])

        def outputs(running: Any) -> dict[str, Any]:
            return {"cluster": short_name(cluster), "service": name, "desired": desired, "running": running}

        missing = scope.add(
            info.label("service missing"),
            fail(f"ECS service {name} does not exist in cluster {short_name(cluster)}"),
        )
        # --- the change -------------------------------------------------------------------------
        # Not waiting for steady state: the step ends once ECS accepted the count (as locally).
        if p.get("wait_steady", True):
            after = self._until_steady(info, scope, name, missing, outputs)
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
        return self.find(info, scope, "", "$.w.one", is_active, missing)

    def _until_steady(
        self,
        info: StepInfo,
        scope: Scope,
        name: str,
        missing: str,
        outputs: Callable[[Any], dict[str, Any]],
    ) -> str:
        """After the change: poll the service with the local intervals until ECS's own test of a
        steady service holds; fail when it is gone, no longer ACTIVE, or its rollout failed."""
        poll = scope.reserve(info.label("now: describe service"))
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
        self.find(info, scope, "now: ", "$.w.one", deployments, missing, at=poll)
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
