"""Seeders of the Route 53 actions: for ``aws.route53.change_record`` the hosted zone and the record
as it was before the disaster, for ``check.route53_health`` the health check."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from drplan.actions._aws import unresolved
from drplan.actions.route53.health import get_health_check
from drplan.actions.route53.record import (
    ChangeRecord,
    bare_zone_id,
    fqdn_in_zone,
    hosted_zone,
    record_sets,
)
from drplan.sandbox.ids import HEALTH_CHECK_IDS, ZONE_IDS
from drplan.sandbox.seeders.context import SeedContext, seeding_memo

#: The value a seeded record has "before the disaster", per record type (documentation ranges).
SEED_VALUES = {"A": "192.0.2.10", "AAAA": "2001:db8::10", "TXT": '"drplan sandbox: previous value"'}


def seed_zone_and_record(ctx: SeedContext) -> None:
    """Create the hosted zone, and (for a recovery's parameters) the record as it was before the
    disaster (A, AAAA, CNAME, TXT). For a drill's parameters (``drill_with``) only the zone: a
    drill creates its record and must find the name free.

    The emulator picks its own zone ids: the seeder records plan id -> created id in
    ``ctx.seed_state[ZONE_IDS]``, and the sandbox's sessions rewrite the plan's id in every call
    (:mod:`drplan.sandbox.ids`).
    """
    params = ctx.params
    if any(not params.get(k) or unresolved(params.get(k)) for k in ("zone_id", "name")):
        return
    zone = seed_zone(ctx, bare_zone_id(params["zone_id"]), str(params["name"]))
    if ctx.mode == "recover":
        seed_record(ctx, params, zone)


def seed_zone(ctx: SeedContext, plan_id: str, name: str) -> dict[str, Any]:
    """The zone the plan calls ``plan_id``, for the domain its record names imply."""
    zones = seeding_memo(ctx, "route53_zones")  # plan id -> (zone, created by this seeding)
    if zones is not None and plan_id in zones:
        return dict(zones[plan_id][0])
    existing = hosted_zone(ctx, plan_id)
    if existing is not None:
        if zones is not None:
            zones[plan_id] = (existing, False)
        return existing
    client = ctx.client("route53")
    names = []
    for step in ctx.plan.steps():
        if step.uses == ChangeRecord.name:
            for params in (step.params, step.params_for("drill")):
                if bare_zone_id(params.get("zone_id", "")) == plan_id and not unresolved(params.get("name")):
                    names.append(str(params.get("name", "")))
    domain = implied_domain(names or [name]) + "."
    found = client.list_hosted_zones_by_name(DNSName=domain, MaxItems="1").get("HostedZones", [])
    zone: dict[str, Any]
    if found and found[0]["Name"].lower() == domain:
        zone, new = found[0], False
    else:
        zone = client.create_hosted_zone(
            Name=domain,
            CallerReference=f"drplan-seed-{plan_id}-{uuid.uuid4().hex[:12]}",
            HostedZoneConfig={"Comment": f"drplan sandbox zone for plan zone {plan_id}"},
        )["HostedZone"]
        new = True
    created = bare_zone_id(zone["Id"])
    if created != plan_id:
        ctx.seed_state.setdefault(ZONE_IDS, {})[plan_id] = created
    if zones is not None:
        zones[plan_id] = (dict(zone), new)
    return zone


def seed_record(ctx: SeedContext, params: Mapping[str, Any], zone: dict[str, Any]) -> None:
    """The record the step changes, pointing at its value "before the disaster"."""
    kind = params.get("type", "CNAME")
    try:
        fqdn = fqdn_in_zone(str(params["name"]), zone["Name"])
    except ValueError:
        return
    value = SEED_VALUES.get(kind) or (
        f"{fqdn.split('.')[0]}-primary.{zone['Name']}" if kind == "CNAME" else None
    )
    set_id = params.get("set_identifier")
    if value is None or unresolved(set_id):
        return
    zone_id = bare_zone_id(zone["Id"])
    # A zone this seeding created holds only the records it seeded: no need to ask for the others.
    zones, seeded = seeding_memo(ctx, "route53_zones"), seeding_memo(ctx, "route53_records")
    ours = zones is not None and any(z["Id"] == zone["Id"] and new for z, new in zones.values())
    key = (zone["Id"], fqdn.lower(), kind, None if set_id is None else str(set_id))
    if ours and seeded is not None:
        if key in seeded:
            return
    elif record_sets(ctx, zone_id, fqdn, kind, set_id)[0] is not None:
        return
    rrset: dict[str, Any] = {
        "Name": fqdn,
        "Type": kind,
        "TTL": 300,
        "ResourceRecords": [{"Value": value}],
    }
    if set_id:
        rrset["SetIdentifier"] = str(set_id)
        if params.get("weight") is not None:
            rrset["Weight"] = int(params["weight"])
        if params.get("failover"):
            rrset["Failover"] = params["failover"]
    ctx.client("route53").change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": rrset}]}
    )
    if seeded is not None:
        seeded[key] = True


def implied_domain(names: list[str]) -> str:
    """The zone domain to create for these record names: their common suffix, or the first name
    without its first label."""
    unique = dict.fromkeys(n.rstrip(".").lower() for n in names if "." in n.rstrip("."))
    labels = [n.split(".") for n in unique]
    if not labels:
        return "example.com"
    common: list[str] = []
    for parts in zip(*(reversed(lbl) for lbl in labels), strict=False):
        if len(set(parts)) != 1:
            break
        common.insert(0, parts[0])
    if len(labels) > 1 and len(common) >= 2:
        return ".".join(common)
    first = labels[0]
    return ".".join(first[1:] if len(first) > 2 else first)


def seed_health_check(ctx: SeedContext) -> None:
    """An HTTPS health check for the plan's ``health_check_id``.

    The emulator picks its own ids, so the seeder maps the plan's id to the one created in
    ``ctx.seed_state[HEALTH_CHECK_IDS]`` and the sandbox's sessions rewrite it in every call, as
    for hosted zones. The emulator reports every health check healthy, from one checker.
    """
    plan_id = ctx.params.get("health_check_id")
    if not plan_id or unresolved(plan_id):
        return
    plan_id = str(plan_id)
    if get_health_check(ctx, plan_id) is not None:  # mapped already (the drill's pass, another step)
        return
    created = ctx.client("route53").create_health_check(
        CallerReference=f"drplan-seed-{plan_id}-{uuid.uuid4().hex[:12]}",
        HealthCheckConfig={
            "Type": "HTTPS",
            "FullyQualifiedDomainName": f"{ctx.step.service}.example.com",
            "Port": 443,
            "ResourcePath": "/health",
        },
    )["HealthCheck"]
    if created["Id"] != plan_id:
        ctx.seed_state.setdefault(HEALTH_CHECK_IDS, {})[plan_id] = created["Id"]
