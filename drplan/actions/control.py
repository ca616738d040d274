"""Steps that are not AWS calls: waiting, people, and opt-in local commands."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import IO, Any

from drplan.actions.base import Action, Handle, Poll, StepContext
from drplan.durations import humanize, parse_duration
from drplan.errors import StepFailed


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
        cap = ctx.max_wait
        if cap is not None and seconds > cap:
            # An emulated AWS restores instantly; waiting for replication that does not exist
            # would only make a demo slow. Say so rather than pretend.
            ctx.note(f"waiting {humanize(cap)} instead of {humanize(seconds)} (waits are shortened here)")
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
        approvals = ctx.approvals
        who = approvals.identity or "unknown"
        granted = approvals.granted(key)
        if granted is not None:
            return {"approved_by": who, "approval": granted}
        if approvals.prompt is None:
            raise StepFailed(
                key,
                f"manual step needs approval: {ctx.params['instructions']} "
                f"(pass --approve {key} or --approve-all, or run on a terminal to be asked)",
            )
        timeout = ctx.step.timeout.total_seconds() if ctx.step.timeout else None
        role = f" [{ctx.params['role']}]" if ctx.params.get("role") else ""
        answer = approvals.prompt(
            f"{key}{role}: {ctx.params['instructions']}\nApprove and continue?", timeout
        )
        if answer is None:
            raise StepFailed(key, "nobody answered the approval prompt before the step's timeout")
        if not answer:
            raise StepFailed(key, f"declined by {who} at the terminal")
        return {"approved_by": who, "approval": "answered yes at the terminal"}

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
        # pid -> the process and the files its output goes to (files, not pipes: a command that
        # prints more than a pipe holds would block forever while nobody reads the pipe).
        self._processes: dict[int, tuple[subprocess.Popen[bytes], IO[bytes], IO[bytes]]] = {}
        self._lock = threading.Lock()

    def declared_outputs(self, params: Mapping[str, Any]) -> Mapping[str, str]:
        declared = {name: "printed by the command as name=value" for name in params.get("outputs", [])}
        return {**self.outputs, **declared}

    def describe(self, params: Mapping[str, Any]) -> str:
        return "Run " + " ".join(str(a) for a in params.get("run", []))

    def _cwd(self, ctx: StepContext) -> str:
        base = ctx.plan_dir
        return str(base / ctx.params["cwd"]) if ctx.params.get("cwd") else str(base)

    def start(self, ctx: StepContext) -> Handle:
        if not ctx.plan.allow_commands:
            raise StepFailed(ctx.step.key, 'the plan does not allow commands (set "allow_commands": true)')
        if not ctx.allow_commands:
            raise StepFailed(ctx.step.key, "refusing to run a local command without --allow-commands")
        argv = [str(a) for a in ctx.params["run"]]
        env = {
            **os.environ,
            **{k: str(v) for k, v in ctx.params.get("env", {}).items()},
            "DRPLAN_RUN_ID": ctx.run_id,
        }
        # Closed when the command ends (poll) or is interrupted: they outlive this call.
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115
        try:
            process = subprocess.Popen(
                argv, cwd=self._cwd(ctx), env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
        except OSError as exc:
            out.close()
            err.close()
            raise StepFailed(ctx.step.key, f"cannot run {argv[0]!r}: {exc.strerror or exc}") from exc
        with self._lock:
            self._processes[process.pid] = (process, out, err)
        return {"pid": process.pid, "argv": argv}

    def poll(self, ctx: StepContext, handle: Handle) -> Poll:
        with self._lock:
            known = self._processes.get(handle["pid"])
        if known is None:
            return Poll.failure("the command's process is not known to this drplan process")
        process, out, err = known
        if process.poll() is None:
            return Poll.running(retry_after=0.2)
        with self._lock:
            self._processes.pop(handle["pid"], None)
        stdout, stderr = _tail(out), _tail(err)
        handle["exit_code"] = process.returncode
        handle["stdout"] = stdout[-4000:]
        if process.returncode != 0:
            tail = " | ".join((stderr or stdout).strip().splitlines()[-3:])
            return Poll.failure(f"exited with status {process.returncode}" + (f": {tail}" if tail else ""))
        return Poll.finished()

    def interrupt(self, ctx: StepContext, handle: Handle) -> None:
        """The run is stopping: end the command (SIGTERM, then SIGKILL) rather than leave it running."""
        with self._lock:
            known = self._processes.pop(handle.get("pid", -1), None)
        if known is None:
            return
        process, out, err = known
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        out.close()
        err.close()

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

    def undoes(self, params: Mapping[str, Any]) -> bool:
        return bool(params.get("undo"))

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


def _tail(stream: IO[bytes], limit: int = 64_000) -> str:
    """The last ``limit`` bytes a command wrote to ``stream`` (then closed), as text."""
    try:
        stream.seek(0, os.SEEK_END)
        size = stream.tell()
        stream.seek(max(0, size - limit))
        return stream.read().decode("utf-8", errors="replace")
    finally:
        stream.close()


ACTIONS = (Wait, Manual, Command)
