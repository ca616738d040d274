"""``aws.autoscaling.set_capacity`` in a state machine: set an Auto Scaling group's capacity and
wait for its instances, as the local action does (``drplan/actions/autoscaling/capacity.py``).

The group's capacity from before the step is read once before its first attempt and kept in the
step's record (:meth:`AutoScalingSetCapacity.remember`, the local ``first_seen``). The target is the
group's current min, max and desired with the step's ``min``, ``max`` and ``desired`` put in; a
target the group would refuse (min above max, desired outside them) fails the step with the local
message and leaves the group unchanged; otherwise only the given sizes are updated
(``UpdateAutoScalingGroup``) and the step polls ``DescribeAutoScalingGroups`` with the local
intervals until as many instances as desired are ``InService`` and ``Healthy``. Its outputs are
the local action's, ``group`` and ``desired``. The undo (before a retry, in a rollback) sets the
remembered min, max and desired back and waits until the group reports them.

The local action also says why instances do not come up (the newest failed scaling activity) while
it waits: not translated (a note in the console, not an outcome).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drplan.stepfunctions.builder import Path, Scope, State, Untranslatable, machine
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

#: The step's parameters and the group's fields they set.
SIZES = (("min", "MinSize"), ("max", "MaxSize"), ("desired", "DesiredCapacity"))


class AutoScalingSetCapacity(ExistingResource):
    action = "aws.autoscaling.set_capacity"
    understood = frozenset({"group", "desired", "min", "max", "wait_in_service"})
    noun = "group"
    listed = "$.w.grp"
    remembered = {key: key for _, key in SIZES}
    what = "capacity"

    def check(self, info: StepInfo) -> None:
        super().check(info)
        self.without_references(info, "group", "wait_in_service", "min", "max", "desired")
        for name, _ in SIZES:
            value = info.params.get(name)
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool)):
                raise Untranslatable(f"`{name}` must be a whole number (it is {value!r})")

    def describe(self, info: StepInfo, then: str) -> State:
        return task(
            "autoscaling",
            "describeAutoScalingGroups",
            {"AutoScalingGroupNames": [str(info.params["group"])]},
            then,
            selector={
                "n": Path("States.ArrayLength($.AutoScalingGroups)"),
                "all": Path("$.AutoScalingGroups"),
            },
            result=self.listed,
        )

    def where(self, info: StepInfo) -> str:
        return f"Auto Scaling group {info.params['group']}"

    def work(self, info: StepInfo, scope: Scope) -> str:
        p = info.params
        group = str(p["group"])
        missing = scope.add(info.label("group missing"), fail(f"Auto Scaling group {group} does not exist"))
        outputs = scope.add(
            info.label("outputs"),
            pass_state({"group": group, "desired": Path("$.w.target.DesiredCapacity")}, None),
        )
        after = self._until_in_service(info, scope, outputs) if p.get("wait_in_service", True) else outputs
        given = {key: p[param] for param, key in SIZES if p.get(param) is not None}
        update = scope.add(
            info.label("set capacity"),
            task(
                "autoscaling",
                "updateAutoScalingGroup",
                {"AutoScalingGroupName": group, **given},
                after,
                result=None,
            ),
        )

        def refused(what: str, fields: str, hint: str) -> str:
            return scope.add(
                info.label(f"refused: {what}"),
                fail(
                    Path(
                        f"States.Format('group {group}: {what}{hint}; the group was left unchanged', {fields})"
                    )
                ),
            )

        t = "$.w.target"
        above = refused("min size {} is above max size {}", f"{t}.MinSize, {t}.MaxSize", "")
        over = refused(
            "desired capacity {} is above the max size {}",
            f"{t}.DesiredCapacity, {t}.MaxSize",
            "" if p.get("max") is not None else " (give `max` to raise it)",
        )
        under = refused(
            "desired capacity {} is below the min size {}",
            f"{t}.DesiredCapacity, {t}.MinSize",
            "" if p.get("min") is not None else " (give `min` to lower it)",
        )
        judge = scope.add(
            info.label("target within the group's bounds?"),
            choice(
                [
                    {"Variable": f"{t}.MinSize", "NumericGreaterThanPath": f"{t}.MaxSize", "Next": above},
                    {
                        "Variable": f"{t}.DesiredCapacity",
                        "NumericGreaterThanPath": f"{t}.MaxSize",
                        "Next": over,
                    },
                    {
                        "Variable": f"{t}.DesiredCapacity",
                        "NumericLessThanPath": f"{t}.MinSize",
                        "Next": under,
                    },
                ],
                update,
            ),
        )
        target = scope.add(
            info.label("target capacity"),
            pass_state(
                {key: given.get(key, Path(f"$.w.one.{key}")) for _, key in SIZES}, judge, result="$.w.target"
            ),
        )
        return self.find(info, scope, "", "$.w.one", target, missing)

    def _until_in_service(self, info: StepInfo, scope: Scope, then: str) -> str:
        """Poll until as many instances as desired are InService and Healthy (two filters: moto's
        JSONPath does not take ``&&``)."""
        group = str(info.params["group"])
        check = scope.reserve(info.label("now: describe group"))
        start, wait = poll_loop(
            info, scope, "p", check, poll_waits(info.options, info.estimate, info.timeout), "instances"
        )
        disappeared = scope.add(
            info.label("group disappeared"), fail(f"Auto Scaling group {group} disappeared")
        )
        enough = scope.add(
            info.label("enough instances?"),
            choice(
                [
                    {
                        "Variable": "$.w.ins.n",
                        "NumericGreaterThanEqualsPath": "$.w.target.DesiredCapacity",
                        "Next": then,
                    }
                ],
                wait,
            ),
        )
        # Count the instances InService and Healthy without JSONPath filters (statelint refuses
        # them): each instance maps to "Y<index>" or "N"; the count is the distinct values, less
        # one when any is "N".
        iteration = scope.branch()
        yes = iteration.add(
            info.label("instance counts"),
            pass_state({"v": Path("States.Format('Y{}', $.i)")}, None),
        )
        no = iteration.add(info.label("instance does not count"), pass_state({"v": "N"}, None))
        judged = iteration.add(
            info.label("instance InService and Healthy?"),
            choice(
                [
                    {
                        "And": [
                            {"Variable": "$.x.LifecycleState", "StringEquals": "InService"},
                            {"Variable": "$.x.HealthStatus", "StringEquals": "Healthy"},
                        ],
                        "Next": yes,
                    }
                ],
                no,
            ),
        )
        none_ready = scope.add(info.label("no instances"), pass_state({"n": 0}, enough, result="$.w.ins"))
        minus_no = scope.add(
            info.label("less the ones that do not count"),
            pass_state({"n": Path("States.MathAdd($.w.ins.n, -1)")}, enough, result="$.w.ins"),
        )
        counted = scope.add(
            info.label("any that do not count?"),
            choice([{"Variable": "$.w.ins.no", "BooleanEquals": True, "Next": minus_no}], enough),
        )
        count = scope.add(
            info.label("count instances"),
            pass_state(
                {
                    "n": Path("States.ArrayLength(States.ArrayUnique($.w.ins.marks[*].v))"),
                    "no": Path("States.ArrayContains($.w.ins.marks[*].v, 'N')"),
                },
                counted,
                result="$.w.ins",
            ),
        )
        each = scope.add(
            info.label("look at each instance"),
            {
                "Type": "Map",
                "ItemsPath": "$.w.one.Instances",
                "ItemSelector": {"x.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    **machine(iteration, judged),
                },
                "ResultSelector": {"marks.$": "$"},
                "ResultPath": "$.w.ins",
                "Next": count,
            },
        )
        in_service = scope.add(
            info.label("any instances?"),
            choice(
                [{"Variable": "$.w.one.Instances[0]", "IsPresent": True, "Next": each}],
                none_ready,
            ),
        )
        self.find(info, scope, "now: ", "$.w.one", in_service, disappeared, at=check)
        return start

    def undo(self, info: StepInfo, scope: Scope) -> str | None:
        """``SetCapacity.undo``/``poll_undo``: the remembered capacity set back, then waited for until
        the group reports it; a group that no longer exists is left."""
        group = str(info.params["group"])
        gone = done(scope, info)
        check = scope.reserve(info.label("undo: now describe group"))
        start, wait = poll_loop(info, scope, "u", check, undo_waits(info.options), "undo: group")
        back = scope.add(
            info.label("undo: back at the capacity?"),
            choice(
                [
                    {
                        "And": [
                            {"Variable": f"$.w.now.{key}", "NumericEqualsPath": f"$.w.prev.{key}"}
                            for _, key in SIZES
                        ],
                        "Next": gone,
                    }
                ],
                wait,
            ),
        )
        self.find(info, scope, "undo: now ", "$.w.now", back, gone, at=check)
        update = scope.add(
            info.label("undo: set the capacity back"),
            task(
                "autoscaling",
                "updateAutoScalingGroup",
                {"AutoScalingGroupName": group, **{key: Path(f"$.w.prev.{key}") for _, key in SIZES}},
                start,
                result=None,
            ),
        )
        look = self.find(info, scope, "undo: ", "$.w.one", update, gone)
        return self.recall(info, scope, look, gone)

    def extra_iam(self, params: Mapping[str, Any], arn: str) -> list[tuple[str, str]]:
        return []  # DescribeAutoScalingGroups and UpdateAutoScalingGroup are the action's own
