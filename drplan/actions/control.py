"""Steps that are not AWS calls: waiting, people, and opt-in local commands."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from drplan.actions.base import Action, Handle, Poll, StepContext
from drplan.durations import humanize, parse_duration
from drplan.errors import StepFailed

#: Sandbox only: the longest a `wait` step really waits, in seconds.
SANDBOX_MAX_WAIT = "sandbox_max_wait"


class Wait(Action):
    name = "wait"
    family = "control"
    summary = "Wait a fixed time"

    def estimate(self, params: Mapping[str, Any]) -> timedelta:
        return parse_duration(str(params.get("duration", "PT0S")))

    def describe(self, params: Mapping[str, Any]) -> str:
        reason = f" ({params['reason']})" if params.get("reason") else ""
        return f"Wait {params.get('duration')}{reason}"

    def start(self, ctx: StepContext) -> Handle:
        seconds = self.estimate(ctx.params).total_seconds()
        cap = ctx.options.get(SANDBOX_MAX_WAIT)
        if cap is not None and seconds > cap:
            # The sandbox emulates AWS instantly; waiting for replication that does not exist
            # would only make a demo slow. Say so rather than pretend.
            ctx.note(f"sandbox: waiting {humanize(cap)} instead of {humanize(seconds)}")
            seconds = cap
        return {"until": time.time() + seconds}

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        left = handle["until"] - time.time()
        if left <= 0:
            return Poll.finished()
        return Poll.running(f"{humanize(left)} left", retry_after=left)


class Manual(Action):
    name = "manual"
    family = "manual"
    summary = "A person does something or approves"
    outputs = {"approved_by": "Who approved the step"}
    default_estimate = timedelta(minutes=15)

    def describe(self, params: Mapping[str, Any]) -> str:
        who = f"{params['role']}: " if params.get("role") else ""
        return f"MANUAL - {who}{params.get('instructions')}"

    def start(self, ctx: StepContext) -> Handle:
        key = ctx.step.key
        options = ctx.options
        if key in options.get("approve", ()):
            return {"approved_by": f"--approve {key}"}
        if options.get("yes"):
            return {"approved_by": "--yes"}
        prompt = options.get("prompt")
        if prompt is None:
            raise StepFailed(
                key,
                f"manual step needs approval: {ctx.params['instructions']} "
                f"(pass --approve {key} or --yes, or run on a terminal to be asked)",
            )
        timeout = ctx.step.timeout.total_seconds() if ctx.step.timeout else None
        role = f" [{ctx.params['role']}]" if ctx.params.get("role") else ""
        answer = prompt(f"{key}{role}: {ctx.params['instructions']}\nApprove and continue?", timeout)
        if answer is None:
            raise StepFailed(key, "nobody answered the approval prompt before the step's timeout")
        if not answer:
            raise StepFailed(key, "declined by the operator")
        return {"approved_by": os.environ.get("USER", "operator") + " (terminal)"}

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        return {"approved_by": handle["approved_by"]}


class Command(Action):
    name = "command"
    family = "control"
    summary = "Run a local command (opt-in)"
    outputs = {"exit_code": "Exit status of the command"}
    default_estimate = timedelta(minutes=1)
    undoable = True

    def __init__(self) -> None:
        self._processes: dict[int, subprocess.Popen[str]] = {}
        self._lock = threading.Lock()

    def declared_outputs(self, params: Mapping[str, Any]) -> Mapping[str, str]:
        declared = {name: "printed by the command as name=value" for name in params.get("outputs", [])}
        return {**self.outputs, **declared}

    def describe(self, params: Mapping[str, Any]) -> str:
        return "Run " + " ".join(str(a) for a in params.get("run", []))

    def _cwd(self, ctx: StepContext) -> str:
        base = Path(str(ctx.options.get("plan_dir", ".")))
        return str(base / ctx.params["cwd"]) if ctx.params.get("cwd") else str(base)

    def start(self, ctx: StepContext) -> Handle:
        if not ctx.plan.allow_commands:
            raise StepFailed(ctx.step.key, 'the plan does not allow commands (set "allow_commands": true)')
        if not ctx.options.get("allow_commands"):
            raise StepFailed(ctx.step.key, "refusing to run a local command without --allow-commands")
        argv = [str(a) for a in ctx.params["run"]]
        env = {
            **os.environ,
            **{k: str(v) for k, v in ctx.params.get("env", {}).items()},
            "DRPLAN_RUN_ID": ctx.run_id,
        }
        try:
            process = subprocess.Popen(
                argv, cwd=self._cwd(ctx), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        except OSError as exc:
            raise StepFailed(ctx.step.key, f"cannot run {argv[0]!r}: {exc.strerror or exc}") from exc
        with self._lock:
            self._processes[process.pid] = process
        return {"pid": process.pid, "argv": argv}

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        process = self._processes.get(handle["pid"])
        if process is None:
            return Poll.failure("the command's process is not known to this drplan process")
        if process.poll() is None:
            return Poll.running(retry_after=0.2)
        stdout, stderr = process.communicate()
        handle["exit_code"] = process.returncode
        handle["stdout"] = stdout[-4000:]
        if process.returncode != 0:
            tail = " | ".join((stderr or stdout).strip().splitlines()[-3:])
            return Poll.failure(f"exited with status {process.returncode}" + (f": {tail}" if tail else ""))
        return Poll.finished()

    def result(self, ctx: StepContext, handle: Handle) -> dict[str, Any]:
        out: dict[str, Any] = {"exit_code": handle.get("exit_code", 0)}
        wanted = set(ctx.params.get("outputs", []))
        for line in str(handle.get("stdout", "")).splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip() in wanted:
                out[name.strip()] = value.strip()
        missing = wanted - set(out)
        if missing:
            raise StepFailed(
                ctx.step.key, f"the command did not print {', '.join(sorted(missing))} as name=value"
            )
        return out

    def undo(self, ctx: StepContext, handle: Handle) -> Handle:
        argv = ctx.params.get("undo")
        if not argv:
            return {}
        done = subprocess.run(
            [str(a) for a in argv], cwd=self._cwd(ctx), capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise StepFailed(ctx.step.key, f"undo command exited with status {done.returncode}")
        return {"exit_code": done.returncode}


ACTIONS = (Wait, Manual, Command)
