"""``aws.eks.scale_nodegroup`` in a state machine: set an EKS managed node group's sizes and wait
until it is ``ACTIVE`` with them, as the local action does (``drplan/actions/eks/nodegroup.py``).

The node group must exist (``DescribeNodegroup``; a missing node group or cluster fails the step
with the local message). Its sizes from before the step are read once before its first attempt and
kept in the step's record (:meth:`EksScaleNodegroup.remember`, the local ``first_seen``). The
target is its current min, max and desired sizes with the step's ``min``, ``max`` and ``desired``
put in (``with_sizes``); a target EKS would refuse (max below 1, min above max, desired outside
them) fails the step with the local message and leaves the node group unchanged. Otherwise one
``UpdateNodegroupConfig`` with the whole target and a client token (made once per attempt, as the
EC2 translation makes its own: ``drplan-`` and a SHA-1 of the run, the step and the attempt); EKS
saying another update is in progress (``ResourceInUseException``) or refusing the sizes
(``InvalidParameterException``, ``InvalidRequestException``) fails the step with the local message.
Then, unless ``wait`` is false, ``DescribeNodegroup`` with the local engine's intervals until the
node group is ``ACTIVE`` at the target, failing when it is gone or in a state waiting does not mend
(``CREATE_FAILED``, ``DELETING``, ``DELETE_FAILED``), and, while it is not ``ACTIVE``, asking
``DescribeUpdate`` whether the update failed or was cancelled (the local message, with EKS's error
codes and messages). The outputs are the local action's: ``cluster``, ``nodegroup``, ``desired``.

The undo (before a retry, in a rollback, in a drill of a drill node group given by ``drill_with``)
is ``ScaleNodegroup.undo``/``poll_undo``: the remembered sizes asked for again (nothing asked when
the node group is at them already; asked again at the next look while EKS says another update is
in progress), then waited for as the step waits; a node group that no longer exists is left.

Two of the local messages are worked out in JSONata (JSONPath cannot join a list or cut a text):
the errors of a failed update, and EKS's message of a refused update (the cause Step Functions
gives an ``aws-sdk`` error is the message followed by `` (Service: Eks, Status Code: ...)``).

Not translated: the node group's first health issue in the note the local action shows while it
waits (a console note, not an outcome).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drplan.stepfunctions.builder import Path, Scope, State, Untranslatable, argument
from drplan.stepfunctions.tasks import (
    STEP_FAILED,
    StepInfo,
    Translation,
    choice,
    done,
    fail,
    jsonata_text,
    pass_state,
    poll_loop,
    poll_waits,
    task,
    undo_waits,
)

#: The step's parameters and the fields of the node group's ``ScalingConfig`` they set.
SIZES = (("min", "MinSize"), ("max", "MaxSize"), ("desired", "DesiredSize"))
#: Node group states that waiting does not mend (the local ``_BROKEN``).
BROKEN = ("CREATE_FAILED", "DELETING", "DELETE_FAILED")
#: What ``drplan.aws.is_not_found`` takes for "the node group (or its cluster) does not exist".
NOT_FOUND = ["Eks.ResourceNotFoundException", "Eks.NotFoundException"]
#: What the local ``_update`` reports as EKS refusing the sizes.
REFUSED = ["Eks.InvalidParameterException", "Eks.InvalidRequestException"]
IN_USE = ["Eks.ResourceInUseException"]


class EksScaleNodegroup(Translation):
    action = "aws.eks.scale_nodegroup"
    understood = frozenset({"cluster", "nodegroup", "desired", "min", "max", "wait"})

    def check(self, info: StepInfo) -> None:
        super().check(info)
        self.without_references(info, "cluster", "nodegroup", "wait")
        for name in ("cluster", "nodegroup"):
            argument(str(info.params[name]))  # in the messages' intrinsics: no quotes or braces
        argument(info.key)  # in the client token's intrinsic
        for name, _ in SIZES:
            self.size(info, name)
        wait = info.params.get("wait", True)
        if not isinstance(wait, bool):
            raise Untranslatable(f"`wait` must be true or false (it is {wait!r})")

    def size(self, info: StepInfo, name: str) -> int | None:
        """A size the step gives, as the local ``with_sizes`` reads it (``int()``): known when the
        plan is exported (the target decides which states refuse it)."""
        value = info.params.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, str)) or "${" in str(value):
            raise Untranslatable(
                f"`{name}` must be a whole number known when the plan is exported (it is {value!r})"
            )
        try:
            return int(value)
        except ValueError:
            raise Untranslatable(f"`{name}` must be a whole number (it is {value!r})") from None

    def extra_iam(self, params: Mapping[str, Any], arn: str) -> list[tuple[str, str]]:
        return []  # DescribeNodegroup, UpdateNodegroupConfig and DescribeUpdate are the action's own

    # --- shared states ----------------------------------------------------------------------------

    def describe(self, info: StepInfo, then: str, into: str, missing: str) -> State:
        """``DescribeNodegroup``: its status and sizes at ``into``; ``missing`` when EKS says the
        node group or its cluster does not exist."""
        return task(
            "eks",
            "describeNodegroup",
            {"ClusterName": str(info.params["cluster"]), "NodegroupName": str(info.params["nodegroup"])},
            then,
            selector={"status": Path("$.Nodegroup.Status"), "sizes": Path("$.Nodegroup.ScalingConfig")},
            result=into,
            catch=[(NOT_FOUND, missing)],
        )

    def update(
        self, info: StepInfo, scope: Scope, tag: str, sizes: str, token: str, then: str, busy: str
    ) -> str:
        """``UpdateNodegroupConfig`` with the sizes at ``sizes`` (the update's id at ``$.w.upd``):
        ``busy`` when EKS says another update is in progress, the local failure when it refuses."""
        name = str(info.params["nodegroup"])
        cut = r"/ \(Service: [^,\)]*, Status Code: \d+, [^\)]*\)$/"
        refused = scope.add(
            info.label(f"{tag}EKS refused the sizes"),
            {
                "Type": "Fail",
                "QueryLanguage": "JSONata",
                "Error": STEP_FAILED,
                "Cause": "{% "
                + jsonata_text(f"EKS refused to resize {name}: ")
                + f" & $replace($states.input.w.error.Cause, {cut}, '')"
                + " %}",
            },
        )
        cluster = str(info.params["cluster"])
        return scope.add(
            info.label(f"{tag}set the sizes"),
            task(
                "eks",
                "updateNodegroupConfig",
                {
                    "ClusterName": cluster,
                    "NodegroupName": name,
                    "ScalingConfig": {key: Path(f"{sizes}.{key}") for _, key in SIZES},
                    "ClientRequestToken": Path(token),
                },
                then,
                selector={"id": Path("$.Update.Id")},
                result="$.w.upd",
                catch=[(IN_USE, busy), (REFUSED, refused)],
            ),
        )

    def token(self, info: StepInfo, scope: Scope, tag: str, suffix: str, then: str) -> str:
        """A client token at ``$.w.token.v``, made when the state runs (once per attempt)."""
        seed = f"States.Format('{{}} {{}} {{}}', $.run.id, {argument(info.key)}, $$.State.EnteredTime)"
        return scope.add(
            info.label(f"{tag}client token"),
            pass_state(
                {"v": Path(f"States.Format('drplan-{{}}{suffix}', States.Hash({seed}, 'SHA-1'))")},
                then,
                result="$.w.token",
            ),
        )

    def converge(
        self,
        info: StepInfo,
        scope: Scope,
        tag: str,
        at: str,
        wanted: str,
        asked: str,
        ok: str,
        gone: str,
        wait: str,
    ) -> None:
        """``ScaleNodegroup._converged`` at the reserved ``at``: ``ok`` when the node group is ACTIVE
        at the sizes at ``wanted``; ``gone`` when it no longer exists; a failure when it is broken
        or (while not ACTIVE, when ``asked`` names an update's id) the update failed; else ``wait``."""
        name = str(info.params["nodegroup"])
        now = "$.w.now"
        broken = scope.add(
            info.label(f"{tag}node group broken"),
            fail(Path(f"States.Format('EKS node group {name} is {{}}', {now}.status)")),
        )
        errors = (
            "$states.input.w.u.all.Errors.(($exists(ErrorCode) ? ErrorCode : 'None') & ': ' & "
            "($exists(ErrorMessage) ? ErrorMessage : ''))"
        )
        failed = scope.add(
            info.label(f"{tag}update failed"),
            {
                "Type": "Fail",
                "QueryLanguage": "JSONata",
                "Error": STEP_FAILED,
                "Cause": "{% ($e := "
                + errors
                + "; "
                + jsonata_text(f"the update of node group {name} ")
                + " & $lowercase($states.input.w.u.Status) & ($count($e) > 0 ? ': ' & $join($e, '; ') : '')) %}",
            },
        )
        judge_update = scope.add(
            info.label(f"{tag}update failed?"),
            choice(
                [
                    {"Variable": "$.w.u.Status", "StringEquals": s, "Next": failed}
                    for s in ("Failed", "Cancelled")
                ],
                wait,
            ),
        )
        describe_update = scope.add(
            info.label(f"{tag}describe the update"),
            task(
                "eks",
                "describeUpdate",
                {
                    "Name": str(info.params["cluster"]),
                    "UpdateId": Path(f"{asked}.id"),
                    "NodegroupName": name,
                },
                judge_update,
                selector={"Status": Path("$.Update.Status"), "all": Path("$.Update")},
                result="$.w.u",
            ),
        )
        at_sizes = [{"Variable": f"{now}.sizes.{k}", "NumericEqualsPath": f"{wanted}.{k}"} for _, k in SIZES]
        judge = scope.add(
            info.label(f"{tag}ACTIVE at the sizes?"),
            choice(
                [
                    *({"Variable": f"{now}.status", "StringEquals": s, "Next": broken} for s in BROKEN),
                    {
                        "And": [{"Variable": f"{now}.status", "StringEquals": "ACTIVE"}, *at_sizes],
                        "Next": ok,
                    },
                    {"Variable": f"{now}.status", "StringEquals": "ACTIVE", "Next": wait},
                    {"Variable": f"{asked}.id", "IsPresent": True, "Next": describe_update},
                ],
                wait,
            ),
        )
        scope.put(at, self.describe(info, judge, now, gone))

    # --- the step ---------------------------------------------------------------------------------

    def remembers(self, info: StepInfo) -> bool:
        return True

    def remember(self, info: StepInfo, scope: Scope, then: str) -> str:
        """The sizes from before the step at ``$.w.prev``; a node group that is not there has
        nothing to put back (``{"none": true}``: the step then fails on it)."""
        kept = scope.add(
            info.label("before: keep the sizes"),
            pass_state({k: Path(f"$.w.before.sizes.{k}") for _, k in SIZES}, then, result="$.w.prev"),
        )
        nothing = scope.add(
            info.label("before: no node group"), pass_state({"none": True}, then, result="$.w.prev")
        )
        return scope.add(
            info.label("before: describe node group"), self.describe(info, kept, "$.w.before", nothing)
        )

    def work(self, info: StepInfo, scope: Scope) -> str:
        p = info.params
        cluster, name = str(p["cluster"]), str(p["nodegroup"])
        given = {key: self.size(info, param) for param, key in SIZES}
        outputs = scope.add(
            info.label("outputs"),
            pass_state(
                {"cluster": cluster, "nodegroup": name, "desired": Path("$.w.target.DesiredSize")}, None
            ),
        )
        missing = scope.add(
            info.label("node group missing"),
            fail(f"EKS node group {name} does not exist in cluster {cluster}"),
        )
        # --- after the update: wait until ACTIVE at the target (unless `wait` is false) -------------
        after = outputs
        if p.get("wait", True):
            check = scope.reserve(info.label("now: describe node group"))
            start, wait = poll_loop(
                info, scope, "p", check, poll_waits(info.options, info.estimate, info.timeout), "node group"
            )
            gone = scope.add(info.label("node group gone"), fail(f"EKS node group {name} no longer exists"))
            self.converge(info, scope, "", check, "$.w.target", "$.w.upd", outputs, gone, wait)
            after = start
        busy = scope.add(
            info.label("another update in progress"),
            fail(
                Path(
                    f"States.Format('node group {name} is {{}} with another update in progress; try again later', "
                    "$.w.one.status)"
                )
            ),
        )
        update = self.update(info, scope, "", "$.w.target", "$.w.token.v", after, busy)
        token = self.token(info, scope, "", "", update)

        # --- before it: the target, refused where EKS would refuse it (the local `_target`) ---------
        def refused(what: str, fields: str = "", hint: str = "") -> str:
            text = f"node group {name}: {what}{hint}; the node group was left unchanged"
            return scope.add(
                info.label(f"refused: {what}"),
                fail(Path(f"States.Format('{text}', {fields})") if fields else text),
            )

        t = "$.w.target"
        small = refused("the max size must be at least 1")
        above = refused("min size {} is above max size {}", f"{t}.MinSize, {t}.MaxSize")
        over = refused(
            "desired size {} is above the max size {}",
            f"{t}.DesiredSize, {t}.MaxSize",
            "" if given["MaxSize"] is not None else " (give `max` to raise it)",
        )
        under = refused(
            "desired size {} is below the min size {}",
            f"{t}.DesiredSize, {t}.MinSize",
            "" if given["MinSize"] is not None else " (give `min` to lower it)",
        )
        judge = scope.add(
            info.label("target within what EKS takes?"),
            choice(
                [
                    {"Variable": f"{t}.MaxSize", "NumericLessThan": 1, "Next": small},
                    {"Variable": f"{t}.MinSize", "NumericGreaterThanPath": f"{t}.MaxSize", "Next": above},
                    {"Variable": f"{t}.DesiredSize", "NumericGreaterThanPath": f"{t}.MaxSize", "Next": over},
                    {"Variable": f"{t}.DesiredSize", "NumericLessThanPath": f"{t}.MinSize", "Next": under},
                ],
                token,
            ),
        )
        target = scope.add(
            info.label("target sizes"),
            pass_state(
                {k: v if v is not None else Path(f"$.w.one.sizes.{k}") for k, v in given.items()},
                judge,
                result=t,
            ),
        )
        return scope.add(info.label("describe node group"), self.describe(info, target, "$.w.one", missing))

    # --- the undo -----------------------------------------------------------------------------------

    def undo(self, info: StepInfo, scope: Scope) -> str | None:
        """``ScaleNodegroup.undo``/``poll_undo``: the remembered sizes asked for (unless the node
        group is at them; asked again at each look while EKS says another update is in progress),
        then waited for until the node group is ACTIVE at them; a node group gone is left."""
        gone = done(scope, info)
        check = scope.reserve(info.label("undo: asked?"))
        look = scope.reserve(info.label("undo: now describe node group"))
        start, wait = poll_loop(info, scope, "u", check, undo_waits(info.options), "undo: node group")
        self.converge(info, scope, "undo: ", look, "$.w.prev", "$.w.ua", gone, gone, wait)
        again = self.restore(info, scope, "undo: again ", look, gone)
        scope.put(check, choice([{"Variable": "$.w.ua", "IsPresent": True, "Next": look}], again))
        first = self.restore(info, scope, "undo: ", start, gone)
        token = self.token(info, scope, "undo: ", "-undo", first)
        return self.recall(info, scope, token, gone)

    def restore(self, info: StepInfo, scope: Scope, tag: str, then: str, gone: str) -> str:
        """``ScaleNodegroup._restore``: the previous sizes asked for unless the node group is at them
        (``$.w.ua``: ``{"id": ...}`` once asked, ``{}`` when there was nothing to ask); EKS saying
        another update is in progress leaves ``$.w.ua`` unset (asked again at the next look)."""
        asked = scope.add(
            info.label(f"{tag}asked"),
            pass_state({"id": Path("$.w.upd.id")}, then, result="$.w.ua"),
        )
        update = self.update(info, scope, tag, "$.w.prev", "$.w.token.v", asked, then)
        unchanged = scope.add(info.label(f"{tag}nothing to ask"), pass_state({}, then, result="$.w.ua"))
        same = scope.add(
            info.label(f"{tag}at the previous sizes?"),
            choice(
                [
                    {
                        "And": [
                            {"Variable": f"$.w.r.sizes.{k}", "NumericEqualsPath": f"$.w.prev.{k}"}
                            for _, k in SIZES
                        ],
                        "Next": unchanged,
                    }
                ],
                update,
            ),
        )
        return scope.add(info.label(f"{tag}describe node group"), self.describe(info, same, "$.w.r", gone))

    def recall(self, info: StepInfo, scope: Scope, known: str, nothing: str) -> str:
        """The undo's first state: ``known`` with the remembered sizes, ``nothing`` when the node
        group was not there before; when they were lost (the run ended by an unexpected error
        before writing the step's record), the undo fails rather than guess."""
        lost = scope.add(
            info.label("undo: previous sizes unknown"),
            fail(
                f"the sizes {info.key} replaced are not known (the run ended before writing its record): "
                f"check EKS node group {info.params['nodegroup']} of cluster {info.params['cluster']} "
                "and set them by hand"
            ),
        )
        return scope.add(
            info.label("undo: what were the sizes?"),
            choice(
                [
                    {"Variable": "$.w.prev.MinSize", "IsPresent": True, "Next": known},
                    {"Variable": "$.w.prev.none", "IsPresent": True, "Next": nothing},
                ],
                lost,
            ),
        )
