"""Route 53 record changes in Amazon States Language: the change, its wait, and putting the record back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drplan.model import Mode
from drplan.resources import Resource
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
)

#: Longest zone name (in labels) whose records the exporter can name without their trailing dot.
MAX_ZONE_LABELS = 8


def _text(value: Any) -> Any:
    """A record value is text (the local action writes ``str(value)``): a whole reference to a
    number is formatted as one."""
    if isinstance(value, Path) and value.expr.startswith("$."):
        return Path(f"States.Format('{{}}', {value.expr})")
    return value


class Route53ChangeRecord(Translation):
    action = "aws.route53.change_record"
    understood = frozenset({"zone_id", "name", "type", "ttl", "values", "wait"})

    def check(self, info: StepInfo) -> None:
        super().check(info)
        self.without_references(info, "zone_id", "name", "type", "ttl", "wait")
        if not info.params.get("values"):
            raise Untranslatable("only records with `values` are translated (not `alias`)")

    def remembers(self, info: StepInfo) -> bool:
        return info.mode == "recover"  # a drill creates its own record: its undo deletes it

    def remember(self, info: StepInfo, scope: Scope, then: str) -> str:
        """A recovery's undo puts back the record set the step replaced (or deletes the record when
        there was none), as the local action does from its memo: read before the first attempt."""
        kept = scope.add(
            info.label("before: keep the record set"),
            pass_state({"rr": Path("$.w.cur.v")}, then, result="$.w.prev"),
        )
        none = scope.add(
            info.label("before: no record set"), pass_state({"none": True}, then, result="$.w.prev")
        )
        listed = self._current(info, scope, kept, none, tag="before: ")
        return self._names(info, scope, listed, tag="before: ")

    def created(
        self, params: Mapping[str, Any], outputs: Mapping[str, Any], mode: Mode, region: str | None
    ) -> list[Resource]:
        """A drill's record (it refuses one that exists, so it created it). A recovery may have
        changed a record that was there: like the local action, it claims nothing it cannot know."""
        from drplan.actions.route53.record import bare_zone_id

        if mode != "drill" or not outputs.get("fqdn"):
            return []
        zone, kind, fqdn = bare_zone_id(params["zone_id"]), str(params.get("type", "CNAME")), outputs["fqdn"]
        return [
            Resource(
                "route53:record",
                f"{zone}/{fqdn}/{kind}",
                region,
                extra={"zone_id": zone, "name": f"{fqdn}.", "type": kind},
            )
        ]

    # The record's absolute name, as ``fqdn_in_zone``: the zone's name is only known once read, so
    # each zone the name could be in is a Choice rule (a name ending with it is absolute); any
    # other zone is appended to a relative name.

    def _names(
        self, info: StepInfo, scope: Scope, then: str, undo: str | None = None, tag: str | None = None
    ) -> str:
        from drplan.actions.route53.record import bare_zone_id

        raw = str(info.params["name"]).strip()
        short = raw.rstrip(".").lower()
        tag = tag if tag is not None else ("undo: " if undo else "")
        labels = short.split(".") if short not in ("", "@") else []
        candidates = [".".join(labels[i:]) for i in range(len(labels))]
        candidates = [c for c in candidates if "r0u1n2i3" not in c]
        same = scope.add(
            info.label(f"{tag}name in zone"),
            pass_state({"dot": info.v(f"{short}."), "bare": info.v(short)}, then, result="$.w.name"),
        )
        rules: list[dict[str, Any]] = [
            {"Variable": "$.w.zone.name", "StringEquals": f"{c}.", "Next": same} for c in candidates
        ]
        if short in ("", "@"):
            apex = scope.add(
                info.label(f"{tag}zone apex"),
                pass_state(
                    {"dot": Path("$.w.zone.name"), "bare": Path("$.w.zone.name")}, then, result="$.w.name"
                ),
            )
            default = apex
        elif raw.endswith("."):
            default = scope.add(
                info.label(f"{tag}name outside zone"),
                fail(Path(f"States.Format('{raw} is not in hosted zone {{}}', $.w.zone.name)")),
            )
        else:
            default = self._appended(info, scope, short, then, tag)
        decide = scope.add(info.label(f"{tag}absolute name?"), choice(rules, default))
        zone_id = bare_zone_id(info.params["zone_id"])
        return scope.add(
            info.label(f"{tag}hosted zone"),
            task(
                "route53",
                "getHostedZone",
                {"Id": zone_id},
                decide,
                selector={"name": Path("$.HostedZone.Name")},
                result="$.w.zone",
                # Undo: the zone is gone, and the record with it.
                catch=[(["Route53.NoSuchHostedZoneException"], undo)] if undo else (),
            ),
        )

    def _appended(self, info: StepInfo, scope: Scope, short: str, then: str, tag: str) -> str:
        """``short.<zone>.``, and the same without its trailing dot (the ``fqdn`` output): the zone's
        labels joined again, for zones of up to :data:`MAX_ZONE_LABELS` labels."""
        split = "States.StringSplit($.w.zone.name, '.')"
        rules = []
        for n in range(1, MAX_ZONE_LABELS + 1):
            joined = ".".join(["{}"] * n)
            items = ", ".join(f"States.ArrayGetItem($.w.zone.labels, {i})" for i in range(n))
            build = scope.add(
                info.label(f"{tag}name with a {n}-label zone"),
                pass_state(
                    {
                        "dot": Path("States.Format('{}.{}', $.w.zone.short, $.w.zone.name)"),
                        "bare": Path(f"States.Format('{{}}.{joined}', $.w.zone.short, {items})"),
                    },
                    then,
                    result="$.w.name",
                ),
            )
            rules.append({"Variable": "$.w.zone.n", "NumericEquals": n, "Next": build})
        too_long = scope.add(
            info.label(f"{tag}zone name too long"),
            fail(
                f"zone names of more than {MAX_ZONE_LABELS} labels are not supported by the exported state machine"
            ),
        )
        count = scope.add(info.label(f"{tag}zone labels"), choice(rules, too_long))
        # Step Functions may keep an empty last label after the trailing dot; moto drops it.
        trailing = scope.add(
            info.label(f"{tag}zone labels without the empty one"),
            pass_state({"n": Path("States.MathAdd($.w.zone.n, -1)")}, count, result="$.w.zone.fix"),
        )
        fix = scope.add(
            info.label(f"{tag}use the fixed count"),
            {"Type": "Pass", "InputPath": "$.w.zone.fix.n", "ResultPath": "$.w.zone.n", "Next": count},
        )
        scope.states[trailing]["Next"] = fix
        empty_last = scope.add(
            info.label(f"{tag}empty last label?"),
            choice([{"Variable": "$.w.zone.last", "StringEquals": "", "Next": trailing}], count),
        )
        return scope.add(
            info.label(f"{tag}zone labels"),
            pass_state(
                {
                    "name": Path("$.w.zone.name"),
                    "short": info.v(short),
                    "labels": Path(split),
                    "n": Path(f"States.ArrayLength({split})"),
                    "last": Path(
                        f"States.ArrayGetItem({split}, States.MathAdd(States.ArrayLength({split}), -1))"
                    ),
                },
                empty_last,
                result="$.w.zone",
            ),
        )

    def _record(self, info: StepInfo) -> dict[str, Any]:
        p = info.params
        return {
            "Name": Path("$.w.name.dot"),
            "Type": str(p.get("type", "CNAME")),
            "Ttl": int(p.get("ttl", 60)),
            "ResourceRecords": [{"Value": _text(info.v(str(v)))} for v in p["values"]],
        }

    def _current(self, info: StepInfo, scope: Scope, found: str, absent: str, tag: str = "") -> str:
        """The record set with the record's name and type (``record_sets``), at ``$.w.cur.v``."""
        kind = str(info.params.get("type", "CNAME"))
        first = scope.add(
            info.label(f"{tag}first record set"),
            pass_state({"v": Path("$.w.list.sets[0]")}, "", result="$.w.cur"),
        )
        match = scope.add(
            info.label(f"{tag}same name and type?"),
            choice(
                [
                    {
                        "And": [
                            {"Variable": "$.w.cur.v.Name", "StringEqualsPath": "$.w.name.dot"},
                            {"Variable": "$.w.cur.v.Type", "StringEquals": kind},
                        ],
                        "Next": found,
                    }
                ],
                absent,
            ),
        )
        scope.states[first]["Next"] = match
        anything = scope.add(
            info.label(f"{tag}any record set?"),
            choice([{"Variable": "$.w.list.n", "NumericEquals": 0, "Next": absent}], first),
        )
        return scope.add(
            info.label(f"{tag}list record sets"),
            task(
                "route53",
                "listResourceRecordSets",
                {
                    "HostedZoneId": self._zone(info),
                    "StartRecordName": Path("$.w.name.dot"),
                    "StartRecordType": kind,
                    "MaxItems": "1",
                },
                anything,
                selector={
                    "sets": Path("$.ResourceRecordSets"),
                    "n": Path("States.ArrayLength($.ResourceRecordSets)"),
                },
                result="$.w.list",
            ),
        )

    def _zone(self, info: StepInfo) -> str:
        from drplan.actions.route53.record import bare_zone_id

        return bare_zone_id(info.params["zone_id"])

    def _change(
        self, info: StepInfo, scope: Scope, action: str, record: Any, then: str, tag: str = ""
    ) -> str:
        """ChangeResourceRecordSets, then GetChange until INSYNC (unless ``wait: false``)."""
        check = scope.reserve(info.label(f"{tag}change in sync?"))
        waits = poll_waits(info.options, info.estimate, info.timeout)
        start, wait = poll_loop(info, scope, "p" if not tag else "u", check, waits, f"{tag}change")
        state = scope.reserve(info.label(f"{tag}INSYNC?"))
        scope.put(
            check,
            task(
                "route53",
                "getChange",
                {"Id": Path("$.w.change.id")},
                state,
                selector={"status": Path("$.ChangeInfo.Status")},
                result="$.w.sync",
            ),
        )
        scope.put(
            state, choice([{"Variable": "$.w.sync.status", "StringEquals": "INSYNC", "Next": then}], wait)
        )
        after = start if info.params.get("wait", True) else then
        verb = "drplan undo" if tag else "drplan run"
        change: dict[str, Any] = {"Action": action, "ResourceRecordSet": record}
        return scope.add(
            info.label(f"{tag}change record"),
            task(
                "route53",
                "changeResourceRecordSets",
                {
                    "HostedZoneId": self._zone(info),
                    "ChangeBatch": {
                        "Comment": Path(f"States.Format('{verb} {{}}: {info.key}', $.run.id)"),
                        "Changes": [change],
                    },
                },
                after,
                selector={"id": Path("$.ChangeInfo.Id")},
                result="$.w.change",
            ),
        )

    def _put_back(self, info: StepInfo, scope: Scope) -> str:
        """``RecordChange.undo``: UPSERT the record set the step replaced; when there was none,
        DELETE the record if it is there; the zone gone, the record is gone with it. Without the
        remembered value (a run that ended by an unexpected error lost it) nothing is guessed."""
        gone = done(scope, info)
        upsert = self._change(info, scope, "UPSERT", Path("$.w.prev.rr"), gone, tag="put back: ")
        delete = self._change(info, scope, "DELETE", Path("$.w.cur.v"), gone, tag="undo: ")
        listed = self._current(info, scope, delete, gone, tag="undo: ")
        deletion = self._names(info, scope, listed, undo=gone)
        unknown = scope.add(
            info.label("undo: previous record unknown"),
            fail(
                f"the record set {info.key} replaced is not known (the run ended before writing its record): "
                "check the record and put it back by hand"
            ),
        )
        return scope.add(
            info.label("undo: what was there before?"),
            choice(
                [
                    {"Variable": "$.w.prev.rr", "IsPresent": True, "Next": upsert},
                    {"Variable": "$.w.prev.none", "IsPresent": True, "Next": deletion},
                ],
                unknown,
            ),
        )

    def work(self, info: StepInfo, scope: Scope) -> str:
        kind = str(info.params.get("type", "CNAME"))
        parts = "States.StringSplit($.w.change.id, '/')"
        outputs = scope.add(
            info.label("outputs"),
            pass_state(
                {
                    "fqdn": Path("$.w.name.bare"),
                    "change_id": Path(
                        f"States.ArrayGetItem({parts}, States.MathAdd(States.ArrayLength({parts}), -1))"
                    ),
                },
                None,
            ),
        )
        change = self._change(info, scope, "UPSERT", self._record(info), outputs)
        sets = scope.add(
            info.label("weighted or failover sets"),
            fail(
                Path(
                    f"States.Format('{kind} {{}} has weighted/failover record sets ({{}}); give `set_identifier` to change one', $.w.name.bare, $.w.cur.v.SetIdentifier)"
                )
            ),
        )
        rules: list[dict[str, Any]] = [
            {"Variable": "$.w.cur.v.SetIdentifier", "IsPresent": True, "Next": sets}
        ]
        if info.mode == "drill":
            taken = scope.add(
                info.label("drill record taken"),
                fail(
                    Path(
                        f"States.Format('drill record {kind} {{}} already exists: a drill creates its own record and "
                        "deletes it afterwards; remove the leftover (drplan cleanup RUN_ID of the drill that left it) "
                        "or put [run_id] in the drill_with name', $.w.name.bare)"
                    )
                ),
            )
            rules.append({"Variable": "$.w.cur.v.Name", "IsPresent": True, "Next": taken})
        existing = scope.add(info.label("existing record"), choice(rules, change))
        listed = self._current(info, scope, existing, change)
        return self._names(info, scope, listed)

    def undo(self, info: StepInfo, scope: Scope) -> str | None:
        """A drill's record: deleted when it points where this step pointed it (a drill creates its
        record, so there is nothing to put back); a record pointing elsewhere is not this step's.
        A recovery's: the record set from before the step put back (:meth:`remember`)."""
        if info.mode == "recover":
            return self._put_back(info, scope)
        gone = done(scope, info)
        elsewhere = scope.add(
            info.label("undo: record points elsewhere"),
            fail(
                Path(
                    "States.Format('{} points at {}, not where this step pointed it; not deleting it', $.w.name.bare, $.w.cmp.have)"
                )
            ),
        )
        delete = self._change(info, scope, "DELETE", Path("$.w.cur.v"), gone, tag="undo: ")
        same = scope.add(
            info.label("undo: points where we pointed it?"),
            choice(
                [{"Variable": "$.w.cmp.have", "StringEqualsPath": "$.w.cmp.want", "Next": delete}], elsewhere
            ),
        )
        compare = scope.add(
            info.label("undo: compare values"),
            pass_state(
                {
                    "have": Path("States.JsonToString($.w.cur.v.ResourceRecords)"),
                    "want": Path("States.JsonToString($.w.want.rr)"),
                },
                same,
                result="$.w.cmp",
            ),
        )
        want = scope.add(
            info.label("undo: what this step wrote"),
            pass_state({"rr": self._record(info)["ResourceRecords"]}, compare, result="$.w.want"),
        )
        listed = self._current(info, scope, want, gone, tag="undo: ")
        return self._names(info, scope, listed, undo=gone)
