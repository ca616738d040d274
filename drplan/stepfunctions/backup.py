"""``aws.backup.restore`` in a state machine: restore a resource from an AWS Backup recovery point as
the local action does (``drplan/actions/backup/restore.py``, what it knows per type in
``targets.py``), call for call.

**The recovery point.** ``latest``: ``ListRecoveryPointsByBackupVault`` of ``vault`` by
``resource_arn``, every page, the newest ``COMPLETED`` or ``AVAILABLE`` one (one JSONata state a
page keeps the newest so far: JSONPath has no "one of two values"); a missing vault fails with the
local message (``backup vault V is not in REGION``, the region the execution runs in), no usable
point with ``vault V has no completed recovery point of ARN``. An explicit ARN is described
(``DescribeRecoveryPoint``) in ``vault``, or, without it, in the vault ``ListRecoveryPointsByResource``
names for it (every page); then the local checks: it exists, it is ``COMPLETED``/``AVAILABLE``, it
backs up ``resource_arn``. ``max_age`` judges its ``CreationDate`` (``fresh_enough``).

**The type** is decided when the plan is exported (``resource_type``, or the type ``resource_arn``
implies): the restore metadata, the target's check, the tagging, the outputs and the undo are
states of that type. At run time the recovery point's own ``ResourceType`` must agree: a declared
type that does not fails with the local message (``resource_type is RDS, but ... backs up
DynamoDB``); an inferred one that does not (AWS Backup reporting another type than its ARN says,
where the local action would restore as the point's type) fails the step rather than restore
another way. Types translated: :data:`SUPPORTED`; the others are refused with the reason.

**The restore metadata** is ``build_metadata``'s: ``GetRecoveryPointRestoreMetadata``, then the
name key set to ``target`` and the type's flags, the typed parameters (the recovery point's
spelling of a key wins), the raw ``metadata`` overrides, then the type's tidying (RDS drops
``AvailabilityZone`` of a Multi-AZ instance unless the step sets it). Everything but the recovery
point's own metadata is known at export: the static part (which keys, in which order, which
spelling rule, which tidying) is worked out in Python with the local code, and one JSONata state
applies it to the metadata AWS returns, matching keys case-insensitively as ``meta_key`` does. A
typed parameter the type does not take, or ``metadata`` clashing with the name key, a flag or a
typed parameter, fails the step with the local message where the local action fails it (before or
after ``GetRecoveryPointRestoreMetadata``, as locally). Then the target's name is checked free
(RDS: ``DescribeDBInstances``; DynamoDB: ``DescribeTable``; none for EBS, named by a tag):
``table T already exists; refusing to overwrite it``.

**The job.** ``StartRestoreJob`` with the metadata, ``IamRoleArn`` (the role AWS Backup assumes:
the state machine's role needs ``iam:PassRole`` on it, as the local caller does), the type and an
idempotency token made once per attempt (``drplan-`` and a SHA-1 of the run, the step and the
attempt, as the EC2 translation makes its client token); AWS Backup refusing the request
(``InvalidParameterValue``, ``MissingParameterValue``, ``InvalidRequest``, ``ResourceNotFound``)
fails with ``AWS Backup refused the restore: MESSAGE`` (the message cut from Step Functions' cause
in JSONata). ``DescribeRestoreJob`` at the local engine's intervals until it is ``COMPLETED``;
any status but ``PENDING``/``RUNNING`` fails with ``restore job ID STATUS: REASON``, a completed
job that names no resource with the local message. The created resource is tagged as locally (the
run's tags, the step's ``tags``, ``drplan:step``, and ``Name=target`` for a type named by its tag)
with its own service's API, and the outputs are ``result()``'s: the common ones, and per type
``endpoint``/``port`` (RDS, from ``DescribeDBInstances``) or ``volume_id`` (EBS); values AWS does not
report are left out, as locally.

**The undo** (before a retry, in a rollback, in a drill's cleanup) deletes the resource only when
it is this step's of this run, by its drplan tags: the DB instance or table named ``target``
(deletion protection turned off when it is on, where ``drplan.removal`` turns it off once the
delete is refused: the same end; deleted with no final snapshot, and verified gone), or, for EBS,
the volumes tagged with the run and the step (the EC2 translation's undo: detached, deleted).

**Difference from the local run:** the tags are written when the job completes, as locally, but
the local undo also asks a job that had not completed (or whose resource was not tagged yet) what
it created (``CreatedResourceArn``), which the state machine cannot: a failed attempt's states
keep no job id. A resource whose job completed after the step gave up (its timeout), or whose
tagging failed, is not known to be the step's and is left, never deleted on a guess; AWS Backup's
restore jobs (``aws backup list-restore-jobs``) name it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from drplan.actions.backup.restore import REFUSED, USABLE
from drplan.actions.backup.targets import (
    BY_RESTORE_JOB,
    OVERRIDES,
    TYPES,
    ResourceType,
    build_metadata,
    meta_key,
    type_from_arn,
    typed_overrides,
)
from drplan.model import Mode
from drplan.resources import RESTORE_JOB_PREFIX, Resource, native_id
from drplan.stepfunctions.builder import Path, Scope, State, Untranslatable, argument
from drplan.stepfunctions.dynamodb import remove_table
from drplan.stepfunctions.ec2 import Ec2VolumeFromSnapshot
from drplan.stepfunctions.rds import remove_db_instance
from drplan.stepfunctions.tasks import (
    STEP_FAILED,
    StepInfo,
    Translation,
    _arn_name,
    choice,
    chosen_point,
    fail,
    fresh_enough,
    jsonata_set,
    jsonata_text,
    pass_state,
    poll_loop,
    poll_waits,
    task,
)

#: The resource types translated: those of the example plan payments-backup (RDS, DynamoDB, EBS).
SUPPORTED = ("RDS", "DynamoDB", "EBS")
#: Why the others are not (yet): what their states would need beyond these.
_WHY_NOT = {
    "Aurora": "Aurora restores (a DB cluster whose undo deletes its instances first) are not translated yet",
    "DocumentDB": "DocumentDB restores (a DB cluster) are not translated yet",
    "Neptune": "Neptune restores (a DB cluster) are not translated yet",
    "EC2": "EC2 instance restores (tagged and terminated by instance id) are not translated yet",
    "EFS": "EFS restores (a file system whose undo deletes its mount targets first) are not translated yet",
    "FSx": "FSx restores are not translated yet",
    "S3": "S3 restores (a bucket whose undo empties it first) are not translated yet",
}
#: StartRestoreJob's refusals as Step Functions names them (the local REFUSED codes).
_REFUSED = sorted(f"Backup.{code}" for code in REFUSED)
_NOT_FOUND = ["Backup.ResourceNotFoundException"]
#: The ``$split`` of a restored resource's ARN that gives its id (``native_id``), per type.
_NATIVE = {"RDS": "$split($a, ':')[6]", "DynamoDB": "$split($a, '/')[-1]", "EBS": "$split($a, '/')[-1]"}
#: ``$.w.vals``: the step's values, computed once (references, the drill's names) for the states.
V = "$.w.vals"
J = "$states.input.w"  # the same scratch space, as JSONata reads it


def _fmt(text: str, *paths: str) -> Path:
    """``States.Format`` of ``text`` (its ``{}`` filled with ``paths``): a message with values."""
    return Path(f"States.Format('{text}', {', '.join(paths)})")


def _text(value: Any) -> Any:
    """A metadata or tag value is text, as the local ``str(value)`` makes it."""
    if isinstance(value, Path):
        return Path(f"States.Format('{{}}', {value.expr})") if value.expr.startswith("$.s.") else value
    return value if isinstance(value, str) else str(value)


def resource_type(params: Mapping[str, Any]) -> tuple[str | None, bool]:
    """The type the step restores, as far as the export can tell (``resource_type``, else the type
    ``resource_arn`` implies), and whether the step declares it."""
    declared = params.get("resource_type")
    if declared:
        return str(declared), True
    arn = params.get("resource_arn")
    if arn is None or "${" in str(arn):
        return None, False
    return type_from_arn(str(arn)), False


class BackupRestore(Translation):
    action = "aws.backup.restore"
    understood = frozenset(
        {
            "recovery_point",
            "vault",
            "resource_arn",
            "resource_type",
            "iam_role_arn",
            "target",
            "max_age",
            "kms_key",
            "subnet",
            "subnets",
            "subnet_group",
            "security_groups",
            "instance_type",
            "instance_profile",
            "availability_zone",
            "metadata",
            "tags",
        }
    )

    # --- export -----------------------------------------------------------------------------------

    def check(self, info: StepInfo) -> None:
        super().check(info)
        p = info.params
        point = self.literal(info, "recovery_point") or "latest"
        self.literal(info, "resource_type")
        if point == "latest" and not (p.get("vault") and p.get("resource_arn")):
            raise Untranslatable("`recovery_point: latest` needs `vault` and `resource_arn`")
        name, declared = resource_type(p)
        if name is None:
            raise Untranslatable(
                "the resource type must be known when the plan is exported: give `resource_type` "
                "(`resource_arn` is a reference, or names no type AWS Backup restores)"
            )
        if not declared and TYPES.get(name) is not None and TYPES[name].kind == "rds:cluster":
            raise Untranslatable(
                "a DB cluster ARN may be Aurora, DocumentDB or Neptune (the recovery point decides, "
                "locally): give `resource_type`"
            )
        if name not in SUPPORTED:
            reason = _WHY_NOT.get(name, f"{name} is no type AWS Backup restores")
            raise Untranslatable(f"{reason} ({', '.join(SUPPORTED)} are)")
        for param in ("security_groups", "subnets"):
            if "${" in json.dumps(p.get(param)):
                raise Untranslatable(
                    f"`{param}` must be known when the plan is exported (it is written as JSON text "
                    "in the restore metadata)"
                )
        fixed = self._fixed(TYPES[name], "")
        for key, value in (p.get("metadata") or {}).items():
            if "${" in str(value) and meta_key(fixed, str(key)) is not None:
                raise Untranslatable(f"`metadata.{key}` must be known when the plan is exported")
        argument(info.key)  # in the idempotency token's intrinsic: no quotes or braces

    def _type(self, info: StepInfo) -> tuple[str, ResourceType]:
        name, _ = resource_type(info.params)
        assert name is not None  # check() refused the step otherwise
        return name, TYPES[name]

    def _fixed(self, rtype: ResourceType, target: str) -> dict[str, str]:
        return {**({rtype.name_key: target} if rtype.name_key else {}), **rtype.flags}

    def created(
        self, params: Mapping[str, Any], outputs: Mapping[str, Any], mode: Mode, region: str | None
    ) -> list[Resource]:
        """What the local action journals: the resource by its name, or (a type AWS names) by its
        restore job, with what the job created."""
        arn, job = outputs.get("resource_arn"), outputs.get("restore_job_id")
        name, _ = resource_type(params)
        if not arn or not job or name not in TYPES:
            return []
        kind, native, target = TYPES[name].kind, native_id(str(arn)), str(outputs.get("name"))
        if name in BY_RESTORE_JOB:
            extra = {"name": target, "restore_job_id": job, "native_id": native}
            return [Resource(kind, RESTORE_JOB_PREFIX + str(job), region, str(arn), extra=extra)]
        return [Resource(kind, target, region, str(arn), extra={"restore_job_id": job, "native_id": native})]

    def extra_iam(self, params: Mapping[str, Any], arn: str) -> list[tuple[str, str]]:
        """The undo reads a table's tags before deleting it; the EBS undo (the EC2 translation's)
        detaches a volume someone attached."""
        name, _ = resource_type(params)
        if name == "DynamoDB":
            table = arn.replace("{service}", "dynamodb") + "table/" + _arn_name(params["target"])
            return [("dynamodb:ListTagsOfResource", table)]
        if name == "EBS":
            ec2 = arn.replace("{service}", "ec2")
            return [("ec2:DetachVolume", ec2 + "volume/*"), ("ec2:DetachVolume", ec2 + "instance/*")]
        return []

    # --- the run ----------------------------------------------------------------------------------

    def work(self, info: StepInfo, scope: Scope) -> str:
        p = info.params
        name, rtype = self._type(info)
        point = p.get("recovery_point") or "latest"
        values = info.label("the step's values")
        if point != "latest" and not p.get("vault") and not p.get("resource_arn"):
            first = scope.add(
                info.label("no vault"), fail("an explicit recovery point needs `vault` (or `resource_arn`)")
            )
            return scope.add(values, pass_state(self._values(info), first, result=V))
        # The recovery point's ARN once chosen (``_Point.arn``), as JSONPath reads it.
        pt = "$.w.best.v.RecoveryPointArn" if point == "latest" else f"{V}.point"
        error = self._error(info)
        if error is not None and error[0]:  # a typed parameter the type does not take
            metadata = scope.add(info.label("typed parameter refused"), fail(error[1]))
        else:
            if error is not None:  # ``metadata`` clashing with what drplan sets
                shaped = scope.add(info.label("metadata refused"), fail(error[1]))
            else:
                job = self._job(info, scope, name, rtype, pt)
                shaped = scope.add(
                    info.label("restore metadata"),
                    {
                        "Type": "Pass",
                        "QueryLanguage": "JSONata",
                        "Output": jsonata_set("md", self._shaping(info)),
                        "Next": self._target_free(info, scope, name, rtype, job),
                    },
                )
            metadata = scope.add(
                info.label("get restore metadata"),
                task(
                    "backup",
                    "getRecoveryPointRestoreMetadata",
                    {"BackupVaultName": Path(f"{V}.vault"), "RecoveryPointArn": Path(pt)},
                    shaped,
                    result="$.w.meta",
                ),
            )
        typed = self._checked_type(info, scope, name, pt, metadata)
        fresh = fresh_enough(info, scope, "'recovery point ' & " + pt.replace("$.w", J), typed)
        first = self._latest(info, scope, fresh) if point == "latest" else self._explicit(info, scope, fresh)
        return scope.add(values, pass_state(self._values(info), first, result=V))

    def _values(self, info: StepInfo) -> dict[str, Any]:
        """``$.w.vals``: the values the states use (references resolved, drill names with the run
        id), the region the execution runs in (the local ``ctx.region``), and the metadata values."""
        p = info.params
        out: dict[str, Any] = {
            "target": _text(info.v(p["target"])),
            "role": info.v(p["iam_role_arn"]),
            "region": Path("States.ArrayGetItem(States.StringSplit($$.Execution.Id, ':'), 3)"),
        }
        for param, key in (("vault", "vault"), ("resource_arn", "source"), ("recovery_point", "point")):
            if p.get(param) and p.get(param) != "latest":
                out[key] = info.v(p[param])
        for i, (_, _, value) in enumerate(self._puts(info)):
            out[f"m{i}"] = value
        return out

    # --- the recovery point -----------------------------------------------------------------------

    def _latest(self, info: StepInfo, scope: Scope, then: str) -> str:
        """``_latest``: every page, the newest usable recovery point of ``resource_arn`` at ``$.w.best``."""
        first = scope.reserve(info.label("list recovery points"))
        again = scope.reserve(info.label("list more recovery points"))
        newest = scope.reserve(info.label("newest recovery point of the page"))
        paged = scope.reserve(info.label("more pages of recovery points?"))
        no_vault = scope.add(
            info.label("no such vault"),
            fail(_fmt("backup vault {} is not in {}", f"{V}.vault", f"{V}.region")),
        )
        missing = scope.add(
            info.label("no recovery point"),
            fail(_fmt("vault {} has no completed recovery point of {}", f"{V}.vault", f"{V}.source")),
        )
        call = {"BackupVaultName": Path(f"{V}.vault"), "ByResourceArn": Path(f"{V}.source")}
        catch = [(_NOT_FOUND, no_vault)]
        scope.put(
            first,
            task("backup", "listRecoveryPointsByBackupVault", call, newest, result="$.w.page", catch=catch),
        )
        scope.put(
            again,
            task(
                "backup",
                "listRecoveryPointsByBackupVault",
                {**call, "NextToken": Path("$.w.page.NextToken")},
                newest,
                result="$.w.page",
                catch=catch,
            ),
        )
        # ``drplan.actions._aws.newest``: the latest creation time wins, the first listed on a tie;
        # points without a creation time are never the newest.
        usable = "[" + ", ".join(jsonata_text(s) for s in USABLE) + "]"
        pick = (
            f"$r := $reduce({J}.page.RecoveryPoints[Status in {usable} and $exists(CreationDate)], "
            "function($b, $p) { ($b.none or $toMillis($p.CreationDate) > $toMillis($b.t)) "
            "? {'t': $p.CreationDate, 'v': $p} : $b }, " + f"{J}.best); $exists($r) ? $r : {J}.best"
        )
        scope.put(
            newest,
            {"Type": "Pass", "QueryLanguage": "JSONata", "Output": jsonata_set("best", pick), "Next": paged},
        )
        chosen = scope.add(info.label("recovery point chosen"), chosen_point(info, "RecoveryPointArn", then))
        found = scope.add(
            info.label("found a recovery point?"),
            choice([{"Variable": "$.w.best.none", "IsPresent": True, "Next": missing}], chosen),
        )
        scope.put(
            paged, choice([{"Variable": "$.w.page.NextToken", "IsPresent": True, "Next": again}], found)
        )
        return scope.add(info.label("none yet"), pass_state({"none": True}, first, result="$.w.best"))

    def _explicit(self, info: StepInfo, scope: Scope, then: str) -> str:
        """``_pick`` with an ARN: described in its vault (found by ``_vault_of`` when not given),
        usable, of ``resource_arn``; kept at ``$.w.best`` like the newest one."""
        p = info.params
        unusable = scope.add(
            info.label("recovery point not usable"),
            {
                "Type": "Fail",
                "QueryLanguage": "JSONata",
                "Error": STEP_FAILED,
                "Cause": "{% "
                + f"'recovery point ' & {J}.vals.point & ' is ' & "
                + f"($exists({J}.rp.Status) ? $string({J}.rp.Status) : 'None') & ', not COMPLETED'"
                + " %}",
            },
        )
        chosen = scope.add(info.label("recovery point chosen"), chosen_point(info, "RecoveryPointArn", then))
        point = scope.add(
            info.label("the recovery point"),
            pass_state({"t": Path("$.w.rp.CreationDate"), "v": Path("$.w.rp")}, chosen, result="$.w.best"),
        )
        rules: list[dict[str, Any]] = [
            {
                "Not": {
                    "Or": [
                        {
                            "And": [
                                {"Variable": "$.w.rp.Status", "IsPresent": True},
                                {"Variable": "$.w.rp.Status", "StringEquals": status},
                            ]
                        }
                        for status in USABLE
                    ]
                },
                "Next": unusable,
            }
        ]
        if p.get("resource_arn"):
            other = scope.add(
                info.label("recovery point of another resource"),
                fail(
                    _fmt(
                        "recovery point {} is a backup of {}, not of {}",
                        f"{V}.point",
                        "$.w.rp.ResourceArn",
                        f"{V}.source",
                    )
                ),
            )
            rules.append(
                {
                    "And": [
                        {"Variable": "$.w.rp.ResourceArn", "IsPresent": True},
                        {"Not": {"Variable": "$.w.rp.ResourceArn", "StringEqualsPath": f"{V}.source"}},
                    ],
                    "Next": other,
                }
            )
        usable = scope.add(info.label("recovery point usable?"), choice(rules, point))
        not_there = scope.add(
            info.label("recovery point not in the vault"),
            fail(_fmt("recovery point {} is not in vault {}", f"{V}.point", f"{V}.vault")),
        )
        describe = scope.add(
            info.label("describe recovery point"),
            task(
                "backup",
                "describeRecoveryPoint",
                {"BackupVaultName": Path(f"{V}.vault"), "RecoveryPointArn": Path(f"{V}.point")},
                usable,
                result="$.w.rp",
                catch=[(_NOT_FOUND, not_there)],
            ),
        )
        return describe if p.get("vault") else self._vault_of(info, scope, describe)

    def _vault_of(self, info: StepInfo, scope: Scope, then: str) -> str:
        """``_vault_of``: the vault ``ListRecoveryPointsByResource`` names for the point, page by page."""
        first = scope.reserve(info.label("list recovery points of the resource"))
        again = scope.reserve(info.label("list more recovery points of the resource"))
        look = scope.reserve(info.label("the point's vault on the page"))
        found = scope.reserve(info.label("vault found?"))
        unknown = scope.add(
            info.label("not a recovery point of the resource"),
            fail(_fmt("{} is not a recovery point of {}; give `vault`", f"{V}.point", f"{V}.source")),
        )
        call = {"ResourceArn": Path(f"{V}.source")}
        scope.put(first, task("backup", "listRecoveryPointsByResource", call, look, result="$.w.page"))
        scope.put(
            again,
            task(
                "backup",
                "listRecoveryPointsByResource",
                {**call, "NextToken": Path("$.w.page.NextToken")},
                look,
                result="$.w.page",
            ),
        )
        match = (
            f"$f := {J}.page.RecoveryPoints[RecoveryPointArn = {J}.vals.point and "
            "$type(BackupVaultName) = 'string' and BackupVaultName != ''][0]; "
            f"$merge([{J}.vals, $exists($f) ? {{'vault': $f.BackupVaultName}} : {{}}])"
        )
        scope.put(
            look,
            {"Type": "Pass", "QueryLanguage": "JSONata", "Output": jsonata_set("vals", match), "Next": found},
        )
        scope.put(
            found,
            choice(
                [
                    {"Variable": f"{V}.vault", "IsPresent": True, "Next": then},
                    {"Variable": "$.w.page.NextToken", "IsPresent": True, "Next": again},
                ],
                unknown,
            ),
        )
        return first

    def _checked_type(self, info: StepInfo, scope: Scope, name: str, pt: str, then: str) -> str:
        """``_type``: the recovery point's ``ResourceType`` agrees with the type exported."""
        _, declared = resource_type(info.params)
        if declared:
            wrong = fail(
                _fmt(f"resource_type is {name}, but {{}} backs up {{}}", pt, "$.w.best.v.ResourceType")
            )
        else:
            wrong = fail(
                _fmt(
                    f"recovery point {{}} backs up {{}}, not {name}: the state machine was exported to "
                    f"restore a {name} resource (resource_arn {{}})",
                    pt,
                    "$.w.best.v.ResourceType",
                    f"{V}.source",
                )
            )
        other = scope.add(info.label("recovery point of another type"), wrong)
        rules: list[dict[str, Any]] = [
            {
                "And": [
                    {"Variable": "$.w.best.v.ResourceType", "IsPresent": True},
                    {"Not": {"Variable": "$.w.best.v.ResourceType", "StringEquals": name}},
                ],
                "Next": other,
            }
        ]
        # No ResourceType (AWS Backup reports one): the local action reads the type of the ARN.
        arn = info.params.get("resource_arn")
        implied = type_from_arn(str(arn)) if arn and "${" not in str(arn) else None
        if declared and implied in TYPES and TYPES[implied].kind != TYPES[name].kind:
            mismatch = scope.add(
                info.label("resource of another type"),
                fail(_fmt(f"resource_type is {name}, but {{}} backs up {implied}", pt)),
            )
            rules.append({"Variable": "$.w.best.v.ResourceType", "IsPresent": False, "Next": mismatch})
        return scope.add(info.label("recovery point of the type?"), choice(rules, then))

    # --- the restore metadata -------------------------------------------------------------------

    def _puts(self, info: StepInfo) -> list[tuple[str, str, Any]]:
        """``build_metadata``'s writes after the recovery point's own metadata, in order: (how, key,
        value), ``how`` being ``set`` (this spelling) or ``typed`` (the point's spelling wins). The
        values are the step's (``$.w.vals.mN`` in the states). Empty when the step fails first."""
        name, rtype = self._type(info)
        p = info.params
        if self._error(info) is not None:
            return []
        target = _text(info.v(p["target"]))
        puts: list[tuple[str, str, Any]] = [
            ("set", key, target if key == rtype.name_key else value)
            for key, value in self._fixed(rtype, "").items()
        ]
        for key, value in self._typed(info, name).items():
            puts.append(("typed", key, value))
        fixed = self._fixed(rtype, "")
        for key, value in (p.get("metadata") or {}).items():
            clash = meta_key(fixed, str(key))
            puts.append(("set", clash or str(key), _text(info.v(value))))
        return puts

    def _typed(self, info: StepInfo, name: str) -> dict[str, Any]:
        """``typed_overrides``, with each value as the state reads it (a reference, text)."""
        static = typed_overrides(name, info.params)
        out: dict[str, Any] = dict(static)
        for param, override in OVERRIDES.get(name, {}).items():
            value = info.params.get(param)
            if value is not None and not override.as_list and "${" in str(value):
                out[override.key] = _text(info.v(value))
        return out

    def _error(self, info: StepInfo) -> tuple[bool, str] | None:
        """The local ``_metadata``'s failure, known at export: (before the metadata is read?, message)."""
        name, rtype = self._type(info)
        p = info.params
        try:
            typed = typed_overrides(name, p)
        except ValueError as exc:
            return True, str(exc)
        target = str(p["target"])
        try:
            build_metadata(rtype, {}, target, p.get("metadata") or {}, typed)
        except ValueError as exc:
            return False, str(exc)
        return None

    def _shaping(self, info: StepInfo) -> str:
        """JSONata: ``build_metadata`` applied to the metadata AWS returned (at ``$.w.meta``)."""
        name, _ = self._type(info)
        p = info.params
        lines = [
            "$put := function($o, $k, $x) { $merge([$sift($o, function($y, $n) "
            "{ $lowercase($n) != $lowercase($k) }), {$k: $x}]) }",
            # ``meta_key``: the first key spelled like ``$k`` but for case (no bare ``$`` here: Step
            # Functions refuses it in an expression).
            "$find := function($o, $k) { $filter($keys($o), function($n) { $lowercase($n) = $lowercase($k) })[0] }",
            "$spell := function($o, $k) { ($f := $find($o, $k); $exists($f) ? $f : $k) }",
            f"$vals := {J}.vals",
            f"$m := {J}.meta.RestoreMetadata",
            "$m := $type($m) = 'object' ? $m : {}",
        ]
        for i, (how, key, _) in enumerate(self._puts(info)):
            spelled = f"$spell($m, {jsonata_text(key)})" if how == "typed" else jsonata_text(key)
            lines.append(f"$m := $put($m, {spelled}, $vals.m{i})")
        user = {k.lower() for k in [*(p.get("metadata") or {}), *self._typed(info, name)]}
        if name == "RDS" and "availabilityzone" not in user:
            # ``_tidy_rds``: RDS refuses an availability zone for a Multi-AZ instance.
            lines += [
                "$multi := $find($m, 'MultiAZ')",
                "$zone := $find($m, 'AvailabilityZone')",
                "$drop := $exists($multi) and $exists($zone) and $lowercase($lookup($m, $multi)) = 'true'",
                "$rest := $drop ? $sift($m, function($y, $n) { $n != $zone }) : $m",
                "$m := $exists($rest) ? $rest : {}",
            ]
        return "(" + "; ".join([*lines, "$m"]) + ")"

    def _target_free(self, info: StepInfo, scope: Scope, name: str, rtype: ResourceType, then: str) -> str:
        """``rtype.exists``: a target name that is taken fails the step before the restore starts."""
        if rtype.exists is None:
            return then
        taken = scope.add(
            info.label("target exists"),
            fail(_fmt(f"{rtype.noun} {{}} already exists; refusing to overwrite it", f"{V}.target")),
        )
        if name == "RDS":
            seen = scope.add(
                info.label("target name free?"),
                choice([{"Variable": "$.w.free.n", "NumericGreaterThan": 0, "Next": taken}], then),
            )
            return scope.add(
                info.label("look for the target"),
                task(
                    "rds",
                    "describeDBInstances",
                    {"Filters": [{"Name": "db-instance-id", "Values": Path(f"States.Array({V}.target)")}]},
                    seen,
                    selector={"n": Path("States.ArrayLength($.DbInstances)")},
                    result="$.w.free",
                ),
            )
        if name == "DynamoDB":
            return scope.add(
                info.label("look for the target"),
                task(
                    "dynamodb",
                    "describeTable",
                    {"TableName": Path(f"{V}.target")},
                    taken,
                    result=None,
                    catch=[(["DynamoDb.ResourceNotFoundException"], then)],
                ),
            )
        raise Untranslatable(f"{name} restores are not translated yet")  # pragma: no cover - check()

    # --- the job ----------------------------------------------------------------------------------

    def _job(self, info: StepInfo, scope: Scope, name: str, rtype: ResourceType, pt: str) -> str:
        """The idempotency token, ``StartRestoreJob``, then ``DescribeRestoreJob`` until it ends."""
        made = self._made(info, scope, name, rtype, pt)
        check = scope.reserve(info.label("describe restore job"))
        start, wait = poll_loop(
            info, scope, "p", check, poll_waits(info.options, info.estimate, info.timeout), "restore job"
        )
        failed = scope.add(
            info.label("restore job failed"),
            {
                "Type": "Fail",
                "QueryLanguage": "JSONata",
                "Error": STEP_FAILED,
                "Cause": "{% "
                + f"'restore job ' & {J}.job.id & ' ' & "
                + f"($exists({J}.rj.Status) ? $string({J}.rj.Status) : 'None') & ': ' & "
                + f"({J}.rj.StatusMessage ? {J}.rj.StatusMessage : 'AWS Backup gave no reason')"
                + " %}",
            },
        )
        nameless = scope.add(
            info.label("restore job made nothing"),
            fail(_fmt("restore job {} completed but names no created resource", "$.w.job.id")),
        )
        named = scope.add(
            info.label("created resource named?"),
            choice(
                [
                    {
                        "And": [
                            {"Variable": "$.w.rj.CreatedResourceArn", "IsPresent": True},
                            {"Not": {"Variable": "$.w.rj.CreatedResourceArn", "StringEquals": ""}},
                        ],
                        "Next": made,
                    }
                ],
                nameless,
            ),
        )

        def status(value: str, then: str) -> dict[str, Any]:
            return {
                "And": [
                    {"Variable": "$.w.rj.Status", "IsPresent": True},
                    {"Variable": "$.w.rj.Status", "StringEquals": value},
                ],
                "Next": then,
            }

        ended = scope.add(
            info.label("restore job ended?"),
            choice([status("PENDING", wait), status("RUNNING", wait), status("COMPLETED", named)], failed),
        )
        scope.put(
            check,
            task(
                "backup", "describeRestoreJob", {"RestoreJobId": Path("$.w.job.id")}, ended, result="$.w.rj"
            ),
        )
        # ``\)`` in the class too: JSONata's scanner counts a bare ``)`` as closing a group.
        cut = r"/ \(Service: Backup, Status Code: \d+, [^\)]*\)$/"
        refused = scope.add(
            info.label("AWS Backup refused the restore"),
            {
                "Type": "Fail",
                "QueryLanguage": "JSONata",
                "Error": STEP_FAILED,
                "Cause": "{% 'AWS Backup refused the restore: ' & "
                + f"$replace($states.input.w.error.Cause, {cut}, '')"
                + " %}",
            },
        )
        restore = scope.add(
            info.label("start restore job"),
            task(
                "backup",
                "startRestoreJob",
                {
                    "RecoveryPointArn": Path(pt),
                    "Metadata": Path("$.w.md"),
                    "IamRoleArn": Path(f"{V}.role"),
                    "IdempotencyToken": Path("$.w.token.v"),
                    "ResourceType": name,
                },
                start,
                selector={"id": Path("$.RestoreJobId")},
                result="$.w.job",
                catch=[(_REFUSED, refused)],
            ),
        )
        seed = f"States.Format('{{}} {{}} {{}}', $.run.id, {argument(info.key)}, $$.State.EnteredTime)"
        return scope.add(
            info.label("idempotency token"),
            pass_state(
                {"v": Path(f"States.Format('drplan-{{}}', States.Hash({seed}, 'SHA-1'))")},
                restore,
                result="$.w.token",
            ),
        )

    def _made(self, info: StepInfo, scope: Scope, name: str, rtype: ResourceType, pt: str) -> str:
        """The completed job's resource (``$.w.made``: its ARN and id), tagged, then the outputs."""
        outputs = scope.add(info.label("outputs"), self._outputs(info, name, pt))
        if name == "RDS":
            described = scope.add(
                info.label("describe DB instance"),
                task(
                    "rds",
                    "describeDBInstances",
                    {"Filters": [{"Name": "db-instance-id", "Values": Path("States.Array($.w.made.id)")}]},
                    outputs,
                    selector={"all": Path("$.DbInstances")},
                    result="$.w.db",
                ),
            )
            tag = task(
                "rds",
                "addTagsToResource",
                {"ResourceName": Path("$.w.made.arn"), "Tags": self._tags(info, rtype)},
                described,
                result=None,
            )
        elif name == "DynamoDB":
            tag = task(
                "dynamodb",
                "tagResource",
                {"ResourceArn": Path("$.w.made.arn"), "Tags": self._tags(info, rtype)},
                outputs,
                result=None,
            )
        else:
            tag = task(
                "ec2",
                "createTags",
                {"Resources": Path("States.Array($.w.made.id)"), "Tags": self._tags(info, rtype)},
                outputs,
                result=None,
            )
        tagged = scope.add(info.label(f"tag {rtype.noun}"), tag)
        found = f"($a := {J}.rj.CreatedResourceArn; {{'arn': $a, 'id': {_NATIVE[name]}}})"
        return scope.add(
            info.label("what the job created"),
            {
                "Type": "Pass",
                "QueryLanguage": "JSONata",
                "Output": jsonata_set("made", found),
                "Next": tagged,
            },
        )

    def _tags(self, info: StepInfo, rtype: ResourceType) -> list[dict[str, Any]]:
        """``aws_tags(ctx, {"Name": target})``: the run's tags, ``Name`` for a type named by its tag,
        the step's ``tags``, ``drplan:step``; sorted, as text."""
        merged: dict[str, Any] = {
            **info.tags,
            **({"Name": Path(f"{V}.target")} if rtype.name_key is None else {}),
            **{k: info.v(v) for k, v in info.params.get("tags", {}).items()},
            "drplan:step": info.key,
        }
        return [{"Key": k, "Value": _text(merged[k])} for k in sorted(merged)]

    def _outputs(self, info: StepInfo, name: str, pt: str) -> State:
        """``result()``: the common outputs and the type's own; what AWS does not say is left out."""
        fields = [
            f"'resource_arn': {J}.made.arn",
            f"'resource_id': {J}.made.id",
            f"'recovery_point_arn': {pt.replace('$.w', J)}",
            f"'restore_job_id': {J}.job.id",
            f"'name': {J}.vals.target",
        ]
        if name == "RDS":
            fields += [f"'endpoint': {J}.db.all[0].Endpoint.Address", f"'port': {J}.db.all[0].Endpoint.Port"]
        elif name == "EBS":
            fields.append(f"'volume_id': {J}.made.id")
        output = "{% {" + ", ".join(fields) + "} %}"
        return {"Type": "Pass", "QueryLanguage": "JSONata", "Output": output, "End": True}

    # --- undo -------------------------------------------------------------------------------------

    def undo(self, info: StepInfo, scope: Scope) -> str | None:
        """``undo``/``poll_undo``: delete what this step of this run created (known by its tags)."""
        name, _ = self._type(info)
        if name == "EBS":
            return Ec2VolumeFromSnapshot().undo(info, scope)
        target = _text(info.v(info.params["target"]))
        if name == "RDS":
            return remove_db_instance(info, scope, target, unprotect=True)
        # Restore metadata may carry the source's deletion protection: turn it off, as locally.
        return remove_table(info, scope, target, unprotect=True)
