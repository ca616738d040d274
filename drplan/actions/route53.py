"""Amazon Route 53: point a DNS record at the restored service."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from drplan.actions.base import Action


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


ACTIONS = (ChangeRecord,)
