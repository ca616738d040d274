"""Amazon Route 53: point a DNS record at the restored service."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from drplan.actions._aws import add_resource, unresolved
from drplan.actions.base import Action, Handle, Poll, PreflightResult, StepContext
from drplan.aws import error_code
from drplan.errors import StepFailed
from drplan.resources import Resource, Target

_ESCAPE = re.compile(r"\\(\d{3})")


def bare_zone_id(zone_id: Any) -> str:
    """``/hostedzone/Z123`` -> ``Z123``."""
    return str(zone_id).strip().removeprefix("/hostedzone/")


def _norm(name: str) -> str:
    """A DNS name for comparisons: Route 53's octal escapes decoded (``\\052`` is ``*``), lower case,
    no trailing dot."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), name).rstrip(".").lower()


def fqdn_in_zone(name: str, zone_name: str) -> str:
    """The absolute name (trailing dot) of ``name`` in the zone: a name that does not end with the
    zone's domain gets it appended; an absolute name (``x.other.com.``) outside the zone is an error."""
    zone = _norm(zone_name)
    raw = str(name).strip()
    short = raw.rstrip(".").lower()
    if short in ("", "@") or short == zone or short.endswith("." + zone):
        return f"{short if short not in ('', '@') else zone}."
    if raw.endswith("."):
        raise ValueError(f"{raw} is not in hosted zone {zone}.")
    return f"{short}.{zone}."


def _clean(rrset: Mapping[str, Any]) -> dict[str, Any]:
    """A record set as read back, in the form ChangeResourceRecordSets accepts (an alias has no TTL)."""
    out = dict(rrset)
    if "AliasTarget" in out:
        out.pop("TTL", None)
        out.pop("ResourceRecords", None)
    return out


def _canonical(rrset: Mapping[str, Any] | None) -> Any:
    if rrset is None:
        return None
    out = {k: v for k, v in _clean(rrset).items() if k not in ("Name", "ResourceRecords", "AliasTarget")}
    out["Name"] = _norm(rrset["Name"])
    if "ResourceRecords" in out or "ResourceRecords" in rrset:
        out["ResourceRecords"] = sorted(r["Value"] for r in rrset.get("ResourceRecords", []))
    if "AliasTarget" in rrset:
        alias = rrset["AliasTarget"]
        out["AliasTarget"] = (
            bare_zone_id(alias["HostedZoneId"]),
            _norm(alias["DNSName"]),
            bool(alias.get("EvaluateTargetHealth")),
        )
    return out


def points_at(rrset: Mapping[str, Any] | None) -> list[str] | None:
    """What a record set answers with: its values, or ``alias <dns name>``."""
    if rrset is None:
        return None
    if "AliasTarget" in rrset:
        return [f"alias {rrset['AliasTarget']['DNSName']}"]
    return [r["Value"] for r in rrset.get("ResourceRecords", [])]


def hosted_zone(ctx: StepContext, zone_id: str) -> dict[str, Any] | None:
    """The hosted zone ``zone_id``, or None when it does not exist."""
    try:
        zone: dict[str, Any] = ctx.client("route53").get_hosted_zone(Id=zone_id)["HostedZone"]
        return zone
    except Exception as exc:
        if error_code(exc) in ("NoSuchHostedZone", "InvalidInput"):
            return None
        raise


def record_sets(
    ctx: StepContext, zone_id: str, fqdn: str, kind: str, set_id: str | None
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The record set with exactly this name, type and set identifier (or None), and every set
    with this name and type."""
    client = ctx.client("route53")
    kwargs: dict[str, Any] = {"HostedZoneId": zone_id, "StartRecordName": fqdn, "StartRecordType": kind}
    found: dict[str, Any] | None = None
    same: list[dict[str, Any]] = []
    while True:
        page = client.list_resource_record_sets(**kwargs)
        for rrset in page.get("ResourceRecordSets", []):
            if _norm(rrset["Name"]) != _norm(fqdn) or rrset["Type"] != kind:
                return found, same
            same.append(rrset)
            if rrset.get("SetIdentifier") == set_id:
                found = _clean(rrset)
        more = page.get("IsTruncated") and page.get("NextRecordIdentifier")  # more sets of this name
        if (
            not more
            or _norm(page.get("NextRecordName", "")) != _norm(fqdn)
            or page.get("NextRecordType") != kind
        ):
            return found, same
        kwargs["StartRecordIdentifier"] = page["NextRecordIdentifier"]


class ChangeRecord(Action):
    name = "aws.route53.change_record"
    family = "dns"
    summary = "Create or update a DNS record (UPSERT); undo restores the previous record"
    outputs = {"fqdn": "Fully qualified name of the record", "change_id": "Route 53 change id"}
    iam = (
        "route53:GetHostedZone",
        "route53:ListResourceRecordSets",
        "route53:ChangeResourceRecordSets",
        "route53:GetChange",
    )
    default_estimate = timedelta(minutes=2)
    drill = "skip"  # a drill changes DNS only in the drill zone/record that drill_with names
    undoable = True

    def describe(self, params: Mapping[str, Any]) -> str:
        kind = params.get("type", "CNAME")
        if "alias" in params:
            target = f"alias {params['alias'].get('dns_name')}"
        else:
            target = ", ".join(str(v) for v in params.get("values", []))
        routing = ""
        if "failover" in params:
            routing = f" ({params['failover'].lower()} failover record {params.get('set_identifier')})"
        elif "weight" in params:
            routing = f" (weight {params['weight']}, set {params.get('set_identifier')})"
        return f"Point {kind} record {params.get('name')} at {target}{routing}"

    def targets(self, params: Mapping[str, Any]) -> tuple[Target, ...]:
        extra = {"zone_id": bare_zone_id(params["zone_id"]), "type": str(params.get("type", "CNAME"))}
        if params.get("set_identifier") is not None:
            extra["set_identifier"] = str(params["set_identifier"])
        return (Target("route53:record", str(params["name"]), "name", creates=False, extra=extra),)

    # --- reading ---------------------------------------------------------------------------------

    def _target(self, ctx: StepContext) -> tuple[str, dict[str, Any], str]:
        """(zone id, zone, absolute record name), or StepFailed."""
        zone_id = bare_zone_id(ctx.params["zone_id"])
        zone = hosted_zone(ctx, zone_id)
        if zone is None:
            raise StepFailed(ctx.step.key, f"hosted zone {zone_id} does not exist")
        try:
            fqdn = fqdn_in_zone(str(ctx.params["name"]), zone["Name"])
        except ValueError as exc:
            raise StepFailed(ctx.step.key, str(exc)) from exc
        return zone_id, zone, fqdn

    def _desired(self, ctx: StepContext, fqdn: str) -> dict[str, Any]:
        p = ctx.params
        rrset: dict[str, Any] = {"Name": fqdn, "Type": p.get("type", "CNAME")}
        if p.get("set_identifier") is not None:
            rrset["SetIdentifier"] = str(p["set_identifier"])
        if p.get("weight") is not None:
            rrset["Weight"] = int(p["weight"])
        if p.get("failover"):
            rrset["Failover"] = p["failover"]
        if p.get("health_check_id"):
            rrset["HealthCheckId"] = str(p["health_check_id"])
        if p.get("alias"):
            alias = p["alias"]
            rrset["AliasTarget"] = {
                "HostedZoneId": bare_zone_id(alias["hosted_zone_id"]),
                "DNSName": str(alias["dns_name"]),
                "EvaluateTargetHealth": bool(alias.get("evaluate_target_health", False)),
            }
        elif p.get("values"):
            rrset["TTL"] = int(p.get("ttl", 60))
            rrset["ResourceRecords"] = [{"Value": str(v)} for v in p["values"]]
        else:
            raise StepFailed(ctx.step.key, "needs exactly one of `values` or `alias`")
        return rrset

    def _no_simple_over_sets(
        self, ctx: StepContext, fqdn: str, kind: str, same: list[dict[str, Any]]
    ) -> str | None:
        if ctx.params.get("set_identifier") is None and any(r.get("SetIdentifier") for r in same):
            ids = ", ".join(sorted(str(r["SetIdentifier"]) for r in same if r.get("SetIdentifier")))
            return (
                f"{kind} {fqdn.rstrip('.')} has weighted/failover record sets ({ids}); "
                "give `set_identifier` to change one"
            )
        return None

    # --- preflight ---------------------------------------------------------------------------------

    def preflight(self, ctx: StepContext) -> list[PreflightResult]:
        p = ctx.params
        if unresolved(p.get("zone_id")):
            return [
                PreflightResult(
                    "ok", f"the hosted zone comes from {p['zone_id']}; checked when the step runs"
                )
            ]
        zone_id = bare_zone_id(p["zone_id"])
        zone = hosted_zone(ctx, zone_id)
        if zone is None:
            missing = f"hosted zone {zone_id} does not exist"
            return [PreflightResult("error", missing, {"zone_id": zone_id})]
        found = PreflightResult(
            "ok",
            f"hosted zone {zone_id} ({zone['Name']}) exists",
            {"zone_id": zone_id, "zone_name": zone["Name"]},
        )
        kind = p.get("type", "CNAME")
        would = (
            [f"alias {p['alias'].get('dns_name')}"]
            if p.get("alias")
            else [str(v) for v in p.get("values", [])]
        )
        target = ", ".join(would)
        if unresolved(p.get("name")) or unresolved(p.get("set_identifier")):
            return [
                found,
                PreflightResult(
                    "ok", f"{kind} {p['name']} would point at {target}", {"would_point_at": would}
                ),
            ]
        try:
            fqdn = fqdn_in_zone(str(p["name"]), zone["Name"])
        except ValueError as exc:
            return [found, PreflightResult("error", str(exc))]
        set_id = str(p["set_identifier"]) if p.get("set_identifier") is not None else None
        current, same = record_sets(ctx, zone_id, fqdn, kind, set_id)
        name = fqdn.rstrip(".")
        facts = {"fqdn": name, "type": kind, "current": points_at(current), "would_point_at": would}
        if set_id:
            facts["set_identifier"] = set_id
        conflict = self._no_simple_over_sets(ctx, fqdn, kind, same)
        if conflict:
            return [found, PreflightResult("error", conflict, facts)]
        if current is None:
            return [
                found,
                PreflightResult(
                    "ok", f"{kind} {name} does not exist; would create it pointing at {target}", facts
                ),
            ]
        if ctx.mode == "drill":
            return [
                found,
                PreflightResult(
                    "error",
                    self._drill_record_taken(kind, name, current),
                    {**facts, "target": name},
                    name=name,
                ),
            ]
        now = ", ".join(points_at(current) or [])
        return [
            found,
            PreflightResult("ok", f"{kind} {name} points at {now}; would point it at {target}", facts),
        ]

    # --- running -----------------------------------------------------------------------------------

    def start(self, ctx: StepContext) -> Handle:
        zone_id, zone, fqdn = self._target(ctx)
        record = self._desired(ctx, fqdn)
        kind, set_id = record["Type"], record.get("SetIdentifier")
        previous, same = record_sets(ctx, zone_id, fqdn, kind, set_id)
        conflict = self._no_simple_over_sets(ctx, fqdn, kind, same)
        if conflict:
            raise StepFailed(ctx.step.key, conflict)
        if ctx.mode == "drill" and previous is not None:
            raise StepFailed(ctx.step.key, self._drill_record_taken(kind, fqdn.rstrip("."), previous))
        if ctx.mode == "recover":  # a drill only creates records, on names that were free
            previous = ctx.first_seen(f"previous {fqdn} {kind} {set_id or ''}".strip(), previous)
        change = {"Action": "UPSERT", "ResourceRecordSet": record}
        change_id = self._change(ctx, zone_id, change, f"drplan run {ctx.run_id}: {ctx.step.key}")
        handle = self._handle(ctx, zone_id, zone, fqdn, record, previous, change_id)
        if previous is None:
            record_id = f"{zone_id}/{handle['fqdn']}/{kind}" + (f"/{set_id}" if set_id else "")
            add_resource(
                ctx,
                handle,
                Resource(
                    "route53:record",
                    record_id,
                    ctx.region,
                    extra={"zone_id": zone_id, "name": fqdn, "type": kind},
                ),
            )
        return handle

    @staticmethod
    def _handle(
        ctx: StepContext,
        zone_id: str,
        zone: Mapping[str, Any],
        fqdn: str,
        record: Mapping[str, Any],
        previous: Mapping[str, Any] | None,
        change_id: str | None,
    ) -> Handle:
        return {
            "zone_id": zone_id,
            "zone_name": zone["Name"],
            "fqdn": fqdn.rstrip("."),
            "type": record["Type"],
            "set_identifier": record.get("SetIdentifier"),
            "record": record,
            "previous": previous,
            "change_id": change_id,
            "wait": bool(ctx.params.get("wait", True)),
        }

    def adopt(self, ctx: StepContext, found: list[Resource]) -> Handle | None:
        """A drill's process died during its UPSERT: the record it meant to create exists. It is the
        drill's own (the drill refused to start while the name existed) when it holds exactly what
        this step writes; re-attached with no change id to wait for (the change was made before
        the process died, and :meth:`poll` then checks the record itself). Anything else: None, so
        the step starts again and refuses the taken name."""
        if ctx.mode != "drill" or not found:
            return None
        zone_id, zone, fqdn = self._target(ctx)
        record = self._desired(ctx, fqdn)
        kind, set_id = record["Type"], record.get("SetIdentifier")
        current, _ = record_sets(ctx, zone_id, fqdn, kind, set_id)
        if current is None or _canonical(current) != _canonical(record):
            return None
        handle = self._handle(ctx, zone_id, zone, fqdn, record, None, None)
        for resource in found:
            add_resource(ctx, handle, resource)
        return handle

    def _drill_record_taken(self, kind: str, name: str, current: Mapping[str, Any]) -> str:
        """A drill only creates DNS records, so its cleanup can delete them and two drills never
        share one: a drill record that exists was left by another drill (or is someone else's)."""
        now = ", ".join(points_at(current) or [])
        return (
            f"drill record {kind} {name} already exists (pointing at {now}): a drill creates its own "
            "record and deletes it afterwards; remove the leftover (drplan cleanup RUN_ID of the drill "
            "that left it) or put {run_id} in the drill_with name"
        )

    def _change(self, ctx: StepContext, zone_id: str, change: dict[str, Any], comment: str) -> str:
        try:
            response = ctx.client("route53").change_resource_record_sets(
                HostedZoneId=zone_id, ChangeBatch={"Comment": comment[:256], "Changes": [change]}
            )
        except Exception as exc:
            if error_code(exc) in (
                "InvalidChangeBatch",
                "InvalidInput",
                "NoSuchHealthCheck",
                "NoSuchHostedZone",
            ):
                message = getattr(exc, "response", {}).get("Error", {}).get("Message", str(exc))
                raise StepFailed(ctx.step.key, f"Route 53 refused the change: {message}") from exc
            raise
        return str(response["ChangeInfo"]["Id"]).removeprefix("/change/")

    def _in_sync(self, ctx: StepContext, change_id: str) -> bool:
        status: str = ctx.client("route53").get_change(Id=change_id)["ChangeInfo"]["Status"]
        return status == "INSYNC"

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        what = f"{handle['type']} {handle['fqdn']}"
        if handle.get("change_id") is None:  # re-attached after the process died (see adopt)
            current, _ = record_sets(
                ctx, handle["zone_id"], handle["fqdn"] + ".", handle["type"], handle.get("set_identifier")
            )
            if _canonical(current) == _canonical(handle["record"]):
                return Poll.finished(f"{what} holds the drill's value (re-attached after a restart)")
            return Poll.failure(f"{what} no longer holds the value this drill wrote")
        if not handle.get("wait", True):
            return Poll.finished(f"{what} changed (change {handle['change_id']}; not waiting for INSYNC)")
        if self._in_sync(ctx, handle["change_id"]):
            return Poll.finished(f"{what} is INSYNC on all Route 53 name servers")
        return Poll.running(f"change {handle['change_id']} is PENDING")

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        return {"fqdn": handle["fqdn"], "change_id": handle["change_id"]}

    # --- undo --------------------------------------------------------------------------------------

    def undo(self, ctx: StepContext, handle: Handle) -> Handle:
        zone_id, previous = handle["zone_id"], handle.get("previous")
        comment = f"drplan undo {ctx.run_id}: {ctx.step.key}"
        if previous:
            return {
                "change_id": self._change(
                    ctx, zone_id, {"Action": "UPSERT", "ResourceRecordSet": previous}, comment
                )
            }
        if hosted_zone(ctx, zone_id) is None:
            return {"change_id": None}  # the zone is gone, and the record with it
        current, _ = record_sets(
            ctx, zone_id, handle["fqdn"] + ".", handle["type"], handle.get("set_identifier")
        )
        if current is None:
            return {"change_id": None}  # already gone
        try:
            return {
                "change_id": self._change(
                    ctx, zone_id, {"Action": "DELETE", "ResourceRecordSet": current}, comment
                )
            }
        except StepFailed as exc:
            if "not found" in exc.reason.lower():
                return {"change_id": None}
            raise

    def poll_undo(self, ctx: StepContext, handle: Handle, undo_handle: Handle) -> Poll:
        if undo_handle.get("change_id") and not self._in_sync(ctx, undo_handle["change_id"]):
            return Poll.running(f"change {undo_handle['change_id']} is PENDING")
        what = f"{handle['type']} {handle['fqdn']}"
        current = None
        if hosted_zone(ctx, handle["zone_id"]) is not None:
            current, _ = record_sets(
                ctx, handle["zone_id"], handle["fqdn"] + ".", handle["type"], handle.get("set_identifier")
            )
        previous = handle.get("previous")
        if previous is None:
            return (
                Poll.finished(f"{what} deleted") if current is None else Poll.running(f"{what} still exists")
            )
        if _canonical(current) == _canonical(previous):
            return Poll.finished(f"{what} points at {', '.join(points_at(previous) or [])} again")
        now = ", ".join(points_at(current) or ["nothing"])
        return Poll.failure(
            f"{what} points at {now}, not at its previous value {', '.join(points_at(previous) or [])}"
        )
