"""Steps that are not AWS calls: waiting, people, and opt-in local commands."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from drplan.actions.base import Action
from drplan.durations import parse_duration


class Wait(Action):
    name = "wait"
    family = "control"
    summary = "Wait a fixed time"

    def estimate(self, params: Mapping[str, Any]) -> timedelta:
        return parse_duration(str(params.get("duration", "PT0S")))

    def describe(self, params: Mapping[str, Any]) -> str:
        reason = f" ({params['reason']})" if params.get("reason") else ""
        return f"Wait {params.get('duration')}{reason}"


class Manual(Action):
    name = "manual"
    family = "manual"
    summary = "A person does something or approves"
    outputs = {"approved_by": "Who approved the step"}
    default_estimate = timedelta(minutes=15)

    def describe(self, params: Mapping[str, Any]) -> str:
        who = f"{params['role']}: " if params.get("role") else ""
        return f"MANUAL - {who}{params.get('instructions')}"


class Command(Action):
    name = "command"
    family = "control"
    summary = "Run a local command (opt-in)"
    outputs = {"exit_code": "Exit status of the command"}
    default_estimate = timedelta(minutes=1)

    def declared_outputs(self, params: Mapping[str, Any]) -> Mapping[str, str]:
        declared = {name: "printed by the command as name=value" for name in params.get("outputs", [])}
        return {**self.outputs, **declared}

    def describe(self, params: Mapping[str, Any]) -> str:
        return "Run " + " ".join(str(a) for a in params.get("run", []))


ACTIONS = (Wait, Manual, Command)
