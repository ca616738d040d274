"""``aws.ec2.volume_from_snapshot`` in a state machine: create an EBS volume from a snapshot and,
when ``attach`` is given, attach it, as the local action does (``drplan/actions/ec2/volume.py``).

The snapshot is picked as ``pick_snapshot`` picks it: with ``snapshot: latest``, the newest
``completed`` snapshot owned by the account carrying every ``snapshot_tags`` tag, over every page
of ``DescribeSnapshots``; otherwise the named one, which must exist and be ``completed`` (the local
messages). ``max_age`` judges its ``StartTime`` (``snapshot snap-... is 3h old, ...``). Then one
``CreateVolume`` with the local parameters and tags (the run's, the step's ``tags``, ``Name``), and
``DescribeVolumes`` with the local engine's intervals until the volume is ``available`` (failing on
``error``, ``deleting``, ``deleted`` with the local message); with ``attach``, ``AttachVolume``
once it is ``available``, then polling until the attachment is ``attached`` (failing when it is
``detaching`` or ``detached``). The outputs are the local action's: ``volume_id``, ``size_gib``
(as last described), ``snapshot_id``, ``availability_zone``.

**The client token.** Locally each attempt has its own token (``drplan-RUN-KEY``, ``-2`` for the
second attempt...), so a repeated call returns the same volume and a retry after an undo makes a
new one. An attempt's states here do not see its number, so its token is made once per attempt,
before the call (``drplan-`` and a SHA-1 of the run id, the step key and when the attempt reached
that state), and kept in the attempt's data: a throttled call that is tried again, or a redriven
execution, sends the same token; the next attempt sends another.

**Lookups that cannot fail.** EC2's API models no error shapes (botocore's model has none), so
the name Step Functions gives an EC2 error cannot be relied on to carry its code (moto 5.2.1 names
every one ``ec2.ec2Exception``): a named snapshot and the new volume are looked up with filters
(``snapshot-id``, ``volume-id``) whose empty answer means "not there", where the local action
catches ``InvalidSnapshot.NotFound`` and ``InvalidVolume.NotFound``. Errors of ``CreateVolume`` and
``AttachVolume`` fail the step as Step Functions names them (locally: ``cannot create volume ...:
CODE: message``).

**The undo** (before a retry, in a rollback, in a drill's cleanup) finds the volumes this step of
this run created by their drplan tags (``drplan:run-id``, ``drplan:step``; checked again on the
volume, as every undo here checks), and, one at a time, as ``_advance_undo`` does: detaches an
``attached`` volume, deletes an ``available`` (or ``error``) one, waits while anything is in
between, until none is left. It detaches only once the attachment is ``attached`` (locally also
while ``attaching``, ignoring EC2's ``IncorrectState``): an error of ``DetachVolume`` or
``DeleteVolume`` cannot be told from another here, so the states avoid the calls EC2 would refuse.

Not translated: the local note that another volume already has the name (a console note, not an
outcome).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drplan.model import Mode
from drplan.resources import Resource
from drplan.stepfunctions.builder import Path, Scope, State, Untranslatable, argument
from drplan.stepfunctions.tasks import (
    StepInfo,
    Translation,
    choice,
    chosen_point,
    done,
    fail,
    fresh_enough,
    newest,
    ours,
    pass_state,
    poll_loop,
    poll_waits,
    task,
    undo_waits,
)

#: Characters EC2's filters read as wildcards (and their escape): the local action compares tag
#: values exactly, so values holding them are refused rather than matched loosely.
_WILDCARDS = ("*", "?", "\\")

#: Volume states the undo still has to act on or wait for (a ``deleted`` one is gone).
_NOT_GONE = ["creating", "available", "in-use", "error", "deleting"]


def _text(value: Any) -> Any:
    """A tag value is text (the local ``aws_tags`` writes ``str(value)``)."""
    if isinstance(value, Path):
        return Path(f"States.Format('{{}}', {value.expr})") if value.expr.startswith("$.s.") else value
    return value if isinstance(value, str) else str(value)


class Ec2VolumeFromSnapshot(Translation):
    action = "aws.ec2.volume_from_snapshot"
    understood = frozenset(
        {
            "snapshot",
            "snapshot_tags",
            "max_age",
            "name",
            "availability_zone",
            "volume_type",
            "iops",
            "throughput",
            "attach",
            "tags",
        }
    )

    def check(self, info: StepInfo) -> None:
        super().check(info)
        tags = self.literal(info, "snapshot_tags") or {}
        for key, value in tags.items():
            if any(c in str(key) + str(value) for c in _WILDCARDS):
                raise Untranslatable(
                    f"`snapshot_tags` {key}={value}: EC2's filters read * ? and \\ as wildcards, and the "
                    "local action matches tags exactly"
                )
        for name in ("iops", "throughput"):
            value = self.literal(info, name)
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool)):
                raise Untranslatable(f"`{name}` must be a whole number (it is {value!r})")
        self.literal(info, "volume_type")
        attach = info.params.get("attach")
        if attach is not None and not (
            isinstance(attach, Mapping) and attach.get("instance_id") and attach.get("device")
        ):
            raise Untranslatable("`attach` needs `instance_id` and `device`")
        argument(info.key)  # in the client token's intrinsic: no quotes or braces

    def created(
        self, params: Mapping[str, Any], outputs: Mapping[str, Any], mode: Mode, region: str | None
    ) -> list[Resource]:
        if not outputs.get("volume_id"):
            return []
        name = params.get("name")
        extra = {"name": str(name)} if name is not None and "${" not in str(name) else {}
        return [Resource("ec2:volume", str(outputs["volume_id"]), region, extra=extra)]

    def extra_iam(self, params: Mapping[str, Any], arn: str) -> list[tuple[str, str]]:
        return []  # DescribeSnapshots, CreateVolume, DescribeVolumes, Attach/Detach/DeleteVolume: the action's own

    # --- the snapshot ---------------------------------------------------------------------------

    def _latest(self, info: StepInfo, scope: Scope, then: str) -> str:
        """``pick_snapshot`` with ``latest``: the newest completed snapshot of ours with every tag."""
        tags: Mapping[str, Any] = info.params.get("snapshot_tags") or {}
        filters: list[dict[str, Any]] = [
            {"Name": f"tag:{k}", "Values": [str(v)]} for k, v in sorted(tags.items())
        ]
        filters.append({"Name": "status", "Values": ["completed"]})
        described = ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))
        return newest(
            info,
            scope,
            what="snapshots",
            service="ec2",
            action="describeSnapshots",
            parameters={"OwnerIds": ["self"], "Filters": filters},
            items="Snapshots",
            token_out="NextToken",
            token_in="NextToken",
            status=("State", "completed"),
            created=("StartTime",),
            missing=f"no completed snapshot owned by this account is tagged {described}",
            then=then,
            point="SnapshotId",
        )

    def _named(self, info: StepInfo, scope: Scope, snapshot: Any, then: str) -> str:
        """``pick_snapshot`` with a snapshot id: it must exist and be completed; kept at
        ``$.w.best`` (``t``: its ``StartTime``) like the newest one."""
        wanted = snapshot.expr if isinstance(snapshot, Path) else argument(snapshot)
        missing = scope.add(
            info.label("no such snapshot"),
            fail(Path(f"States.Format('snapshot {{}} does not exist', {wanted})")),
        )
        unfinished = scope.add(
            info.label("snapshot not completed"),
            fail(Path(f"States.Format('snapshot {{}} is {{}}, not completed', {wanted}, $.w.best.v.State)")),
        )
        chosen = scope.add(info.label("snapshot chosen"), chosen_point(info, "SnapshotId", then))
        completed = scope.add(
            info.label("snapshot completed?"),
            choice(
                [{"Not": {"Variable": "$.w.best.v.State", "StringEquals": "completed"}, "Next": unfinished}],
                chosen,
            ),
        )
        point = scope.add(
            info.label("the snapshot's time"),
            pass_state({"t": Path("$.w.one.StartTime"), "v": Path("$.w.one")}, completed, result="$.w.best"),
        )
        # moto's interpreter returns a list for a field read right after an index: picked first.
        pick = scope.add(
            info.label("the snapshot"),
            {"Type": "Pass", "InputPath": "$.w.snap.all[0]", "ResultPath": "$.w.one", "Next": point},
        )
        found = scope.add(
            info.label("snapshot found?"),
            choice([{"Variable": "$.w.snap.n", "NumericEquals": 0, "Next": missing}], pick),
        )
        return scope.add(
            info.label("describe snapshot"),
            task(
                "ec2",
                "describeSnapshots",
                {"Filters": [{"Name": "snapshot-id", "Values": Path(f"States.Array({wanted})")}]},
                found,
                selector={"n": Path("States.ArrayLength($.Snapshots)"), "all": Path("$.Snapshots")},
                result="$.w.snap",
            ),
        )

    # --- the volume -----------------------------------------------------------------------------

    def _tags(self, info: StepInfo) -> list[dict[str, Any]]:
        """``aws_tags`` without ``Name``, then ``Name``: the tags ``start`` creates the volume with."""
        merged: dict[str, Any] = {
            **info.tags,
            **{k: info.v(v) for k, v in info.params.get("tags", {}).items()},
        }
        merged["drplan:step"] = info.key
        tags = [{"Key": k, "Value": _text(merged[k])} for k in sorted(merged) if k != "Name"]
        tags.append({"Key": "Name", "Value": _text(info.v(info.params["name"]))})
        return tags

    def _create(self, info: StepInfo, scope: Scope, then: str) -> str:
        """The client token, then ``CreateVolume`` with the local parameters; its id, zone and size
        at ``$.w.vol``."""
        p = info.params
        call: dict[str, Any] = {
            "SnapshotId": Path("$.w.best.v.SnapshotId"),
            "AvailabilityZone": info.v(p["availability_zone"]),
            "VolumeType": info.v(p.get("volume_type", "gp3")),
            "TagSpecifications": [{"ResourceType": "volume", "Tags": self._tags(info)}],
            "ClientToken": Path("$.w.token.v"),
        }
        if p.get("iops") is not None:
            call["Iops"] = int(p["iops"])
        if p.get("throughput") is not None:
            call["Throughput"] = int(p["throughput"])
        create = scope.add(
            info.label("create volume"),
            task(
                "ec2",
                "createVolume",
                call,
                then,
                selector={
                    "id": Path("$.VolumeId"),
                    "zone": Path("$.AvailabilityZone"),
                    "size": Path("$.Size"),
                },
                result="$.w.vol",
            ),
        )
        seed = f"States.Format('{{}} {{}} {{}}', $.run.id, {argument(info.key)}, $$.State.EnteredTime)"
        return scope.add(
            info.label("client token"),
            pass_state(
                {"v": Path(f"States.Format('drplan-{{}}', States.Hash({seed}, 'SHA-1'))")},
                create,
                result="$.w.token",
            ),
        )

    def _describe(self, info: StepInfo, volume_id: str, then: str) -> State:
        """``DescribeVolumes`` of one volume by a filter (none: not visible yet), at ``$.w.desc``."""
        return task(
            "ec2",
            "describeVolumes",
            {"Filters": [{"Name": "volume-id", "Values": Path(f"States.Array({volume_id})")}]},
            then,
            selector={"n": Path("States.ArrayLength($.Volumes)"), "all": Path("$.Volumes")},
            result="$.w.desc",
        )

    def work(self, info: StepInfo, scope: Scope) -> str:
        p = info.params
        attach = p.get("attach")
        outputs = scope.add(
            info.label("outputs"),
            pass_state(
                {
                    "volume_id": Path("$.w.vol.id"),
                    "size_gib": Path("$.w.v.Size"),
                    "snapshot_id": Path("$.w.best.v.SnapshotId"),
                    "availability_zone": Path("$.w.vol.zone"),
                },
                None,
            ),
        )
        check = scope.reserve(info.label("describe volume"))
        start, wait = poll_loop(
            info, scope, "p", check, poll_waits(info.options, info.estimate, info.timeout), "volume"
        )
        broken = scope.add(
            info.label("volume broken"),
            fail(Path("States.Format('volume {} is {}', $.w.vol.id, $.w.v.State)")),
        )
        ready = self._attach(info, scope, outputs, wait) if attach else outputs
        rules: list[dict[str, Any]] = [
            {"Variable": "$.w.v.State", "StringEquals": "creating", "Next": wait},
            *(
                {"Variable": "$.w.v.State", "StringEquals": state, "Next": broken}
                for state in ("error", "deleting", "deleted")
            ),
        ]
        if not attach:
            rules += [
                {"Variable": "$.w.v.State", "StringEquals": state, "Next": outputs}
                for state in ("available", "in-use")
            ]
        state = scope.add(info.label("volume available?"), choice(rules, ready if attach else wait))
        pick = scope.add(
            info.label("the volume"),
            {"Type": "Pass", "InputPath": "$.w.desc.all[0]", "ResultPath": "$.w.v", "Next": state},
        )
        visible = scope.add(
            info.label("volume visible?"),
            choice([{"Variable": "$.w.desc.n", "NumericEquals": 0, "Next": wait}], pick),
        )
        scope.put(check, self._describe(info, "$.w.vol.id", visible))
        create = self._create(info, scope, start)
        if attach:
            target = scope.add(
                info.label("attach to"),
                pass_state(
                    {"instance": info.v(attach["instance_id"]), "device": info.v(attach["device"])},
                    create,
                    result="$.w.at",
                ),
            )
            create = target
        fresh = fresh_enough(info, scope, "'snapshot ' & $states.input.w.best.v.SnapshotId", create)
        snapshot = info.v(p.get("snapshot", "latest"))
        if snapshot == "latest":
            return self._latest(info, scope, fresh)
        if isinstance(snapshot, Path) and snapshot.expr.startswith("$."):
            # A reference to a snapshot id: "latest" there picks as ``latest`` does, as locally.
            latest = self._latest(info, scope, fresh)
            named = self._named(info, scope, snapshot, fresh)
            return scope.add(
                info.label("latest snapshot?"),
                choice([{"Variable": snapshot.expr, "StringEquals": "latest", "Next": latest}], named),
            )
        return self._named(info, scope, snapshot, fresh)

    def _attach(self, info: StepInfo, scope: Scope, outputs: str, wait: str) -> str:
        """``_poll_attach``, for a volume neither creating nor broken (at ``$.w.v``): its attachment
        to the instance ``attached`` ends the step, ``detaching``/``detached`` fails it, anything
        else is waited for; without an attachment, an ``available`` volume is attached."""
        detached = scope.add(
            info.label("attachment lost"),
            fail(Path("States.Format('volume {} is {} from {}', $.w.vol.id, $.w.a1.State, $.w.at.instance)")),
        )
        status = scope.add(
            info.label("attached?"),
            choice(
                [
                    {"Variable": "$.w.a1.State", "StringEquals": "attached", "Next": outputs},
                    {"Variable": "$.w.a1.State", "StringEquals": "detaching", "Next": detached},
                    {"Variable": "$.w.a1.State", "StringEquals": "detached", "Next": detached},
                ],
                wait,
            ),
        )
        attach = scope.add(
            info.label("attach volume"),
            task(
                "ec2",
                "attachVolume",
                {
                    "VolumeId": Path("$.w.vol.id"),
                    "InstanceId": Path("$.w.at.instance"),
                    "Device": Path("$.w.at.device"),
                },
                wait,
                result=None,
            ),
        )
        available = scope.add(
            info.label("available to attach?"),
            choice([{"Variable": "$.w.v.State", "StringEquals": "available", "Next": attach}], wait),
        )
        # A volume created without multi-attach has at most one attachment.
        to_ours = scope.add(
            info.label("attached to the instance?"),
            choice(
                [{"Variable": "$.w.a1.InstanceId", "StringEqualsPath": "$.w.at.instance", "Next": status}],
                available,
            ),
        )
        first = scope.add(
            info.label("the attachment"),
            {"Type": "Pass", "InputPath": "$.w.v.Attachments[0]", "ResultPath": "$.w.a1", "Next": to_ours},
        )
        return self._any_attachment(info, scope, "$.w.v", first, available, "")

    def _any_attachment(
        self, info: StepInfo, scope: Scope, volume: str, some: str, none: str, tag: str
    ) -> str:
        """``some`` when the volume at ``volume`` lists an attachment, ``none`` when not (an empty
        list may be left out of an answer: its presence is checked first)."""
        count = scope.reserve(info.label(f"{tag}any attachment?"))
        scope.put(
            count,
            choice([{"Variable": f"{volume}.n_att.n", "NumericGreaterThan": 0, "Next": some}], none),
        )
        counted = scope.add(
            info.label(f"{tag}count attachments"),
            pass_state(
                {"n": Path(f"States.ArrayLength({volume}.Attachments)")}, count, result=f"{volume}.n_att"
            ),
        )
        return scope.add(
            info.label(f"{tag}attachments listed?"),
            choice([{"Variable": f"{volume}.Attachments", "IsPresent": True, "Next": counted}], none),
        )

    # --- undo -----------------------------------------------------------------------------------

    def undo(self, info: StepInfo, scope: Scope) -> str | None:
        """``undo`` + ``poll_undo``: each volume this step of this run created, detached while
        attached, deleted once available, until none is left."""
        gone = done(scope, info)
        not_ours = scope.add(info.label("undo: not created by this step"), {"Type": "Succeed"})
        find = scope.reserve(info.label("undo: find volumes"))
        start, wait = poll_loop(info, scope, "u", find, undo_waits(info.options), "volume deletion")
        there = scope.reserve(info.label("undo: any volume left?"))
        scope.put(
            find,
            task(
                "ec2",
                "describeVolumes",
                {
                    "Filters": [
                        {"Name": "tag:drplan:run-id", "Values": Path("States.Array($.run.id)")},
                        {"Name": "tag:drplan:step", "Values": [info.key]},
                        {"Name": "status", "Values": _NOT_GONE},
                    ]
                },
                there,
                selector={"n": Path("States.ArrayLength($.Volumes)"), "all": Path("$.Volumes")},
                result="$.w.find",
            ),
        )
        delete = scope.add(
            info.label("undo: delete volume"),
            task("ec2", "deleteVolume", {"VolumeId": Path("$.w.uv.VolumeId")}, wait, result=None),
        )
        deletable = scope.add(
            info.label("undo: deletable?"),
            choice(
                [
                    {"Variable": "$.w.uv.State", "StringEquals": state, "Next": delete}
                    for state in ("available", "error")
                ],
                wait,
            ),
        )
        detach = scope.add(
            info.label("undo: detach volume"),
            task(
                "ec2",
                "detachVolume",
                {
                    "VolumeId": Path("$.w.uv.VolumeId"),
                    "InstanceId": Path("$.w.ua.InstanceId"),
                    "Device": Path("$.w.ua.Device"),
                },
                wait,
                result=None,
            ),
        )
        attached = scope.add(
            info.label("undo: attached?"),
            choice([{"Variable": "$.w.ua.State", "StringEquals": "attached", "Next": detach}], wait),
        )
        attachment = scope.add(
            info.label("undo: the attachment"),
            {"Type": "Pass", "InputPath": "$.w.uv.Attachments[0]", "ResultPath": "$.w.ua", "Next": attached},
        )
        act = self._any_attachment(info, scope, "$.w.uv", attachment, deletable, "undo: ")
        check = ours(info, scope, "$.w.uv.Tags", act, not_ours)
        pick = scope.add(
            info.label("undo: the volume"),
            {"Type": "Pass", "InputPath": "$.w.find.all[0]", "ResultPath": "$.w.uv", "Next": check},
        )
        scope.put(there, choice([{"Variable": "$.w.find.n", "NumericEquals": 0, "Next": gone}], pick))
        return start
