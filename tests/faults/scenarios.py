"""Fault scenarios: each runs drplan in a child process against the proxy, injects one fault, and
returns a :class:`Result` saying what happened, what was left behind, and what looked wrong.

A scenario never asserts: it measures. ``tests/test_faults.py`` asserts the properties the docs
promise on a bounded subset, and ``python -m tests.faults`` prints tables over many runs.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.faults.census import Leftover
from tests.faults.lab import CREATE_OPERATIONS, DELETE_OPERATIONS, Lab, Trial
from tests.faults.processes import (
    Child,
    Finished,
    cleanup_by_id,
    drplan_argv,
    has_command,
    journal_events,
    journal_path,
    reap,
    run,
    run_ids,
    sweep,
    wait_until,
)
from tests.faults.proxy import Rule
from tests.faults.server import REGION, aws_env

#: A drill of the fault plans takes 2-8 s here; a child still running after this has hung.
RUN_TIMEOUT = 60.0
CLEANUP_TIMEOUT = 60.0
#: After a signal, cleanup should start within this many seconds (docs: "lets running steps reach
#: a safe point", then cleans up).
CLEANUP_START_SECONDS = 5.0
#: Exit codes the docs define (docs/cli.md#exit-codes).
DOCUMENTED_EXITS = {0, 1, 2, 3}
#: How a cleanup might say that the journal it read was damaged (any wording will do).
DAMAGE_WORDS = re.compile(
    r"damag|corrupt|unreadable|torn|truncat|malformed|invalid|not valid|garbled|unparsable|"
    r"(could not|cannot|can't|couldn't) (be )?(read|parse|decode)",
    re.IGNORECASE,
)


#: Calls whose repetition changes nothing (see :attr:`Result.duplicates`).
IDEMPOTENT_CALLS = frozenset({"route53:ChangeResourceRecordSets/UPSERT"})


@dataclass
class Result:
    """One scenario run. Lists of leftovers are ``kind id`` strings (see :class:`Leftover`)."""

    scenario: str
    case: str
    exit_code: int | None = None  # None: never ended (hang) or not run
    hung: bool = False
    elapsed: float = 0.0
    stderr_tail: list[str] = field(default_factory=list)
    run_id: str | None = None
    evidence: bool | None = None  # report.json written and readable; None: no run was started
    report: dict[str, Any] = field(default_factory=dict)  # run status, exit code, cleanup status
    leftovers: list[str] = field(default_factory=list)  # right after the run ended (or was killed)
    unsweepable: list[str] = field(default_factory=list)  # of those, without the drill tag
    after_id: list[str] | None = None  # after `drplan cleanup RUN_ID` alone
    after_sweep: list[str] | None = None  # after `drplan cleanup --sweep` alone (its --dry-run listing)
    after_both: list[str] | None = None  # after cleanup by id, then a sweep
    creates: dict[str, int] = field(default_factory=dict)  # create calls the backend executed
    production_changes: list[str] = field(default_factory=list)
    cleanup_latency: float | None = None  # seconds from the signal to the first deletion
    findings: list[str] = field(default_factory=list)  # what looked wrong, in words
    commands: list[str] = field(default_factory=list)  # follow-up commands and how they ended
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def duplicates(self) -> list[str]:
        """Create calls the backend executed more than once. A Route 53 UPSERT is left out: sent
        again after its answer was lost (botocore retries it), it writes the same record set again
        and creates nothing new; the restores and creates counted here would create twice."""
        return [
            f"{name} x{count}"
            for name, count in sorted(self.creates.items())
            if count > 1 and name not in IDEMPOTENT_CALLS
        ]

    def find(self, text: str) -> None:
        if text not in self.findings:
            self.findings.append(text)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "duplicates": self.duplicates}


# --- observing a run --------------------------------------------------------------------------------


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _report(trial: Trial, run_id: str | None, report_dir: Path | None) -> tuple[bool | None, dict[str, Any]]:
    import json

    if run_id is None and report_dir is None:
        return None, {}
    directory = report_dir or trial.state_dir / "runs" / str(run_id) / "report"
    try:
        report = json.loads((directory / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False, {}
    return True, {
        "status": report.get("run", {}).get("status"),
        "exit_code": report.get("run", {}).get("exit_code"),
        "cleanup": report.get("cleanup", {}).get("status"),
        "passed": report.get("verdict", {}).get("passed"),
        "left": [
            f"{r['kind']} {r['id']}"
            for r in report.get("cleanup", {}).get("resources", [])
            if not r.get("deleted")
        ],
    }


def observe(
    trial: Trial,
    result: Result,
    done: Finished | None,
    *,
    report_dir: Path | None = None,
    exit_code: int | None = None,
) -> list[Leftover]:
    """Fill in how the run ended, its evidence, leftovers, create counts and production changes;
    note what contradicts the docs. Returns the leftovers (for :func:`follow_up`)."""
    if done is not None:
        result.hung = done.hung
        result.exit_code = exit_code if exit_code is not None else done.returncode
        result.elapsed = round(done.elapsed, 2)
        result.stderr_tail = done.tail()
        if done.hung:
            result.find(f"did not end within {done.elapsed:.0f}s (hang); killed by the harness")
        elif result.exit_code is not None and result.exit_code < 0:
            result.find(f"died of signal {signal.Signals(-result.exit_code).name} (no exit code of its own)")
        elif result.exit_code not in DOCUMENTED_EXITS and result.exit_code is not None:
            result.find(f"exit code {result.exit_code} is not a documented one (0, 1, 2, 3)")
        if "Traceback (most recent call last)" in done.stderr:
            last = [line for line in done.stderr.splitlines() if line.strip()][-1:]
            result.find(f"printed a Python traceback ({last[0].strip()[:160] if last else ''})")
    ids = run_ids(trial.state_dir)
    result.run_id = ids[-1] if ids else None
    result.evidence, result.report = _report(trial, result.run_id, report_dir)
    verdict = trial.verdict()
    result.leftovers = [str(x) for x in verdict.leftovers]
    result.unsweepable = [str(x) for x in verdict.unsweepable if x.kind != "route53:record"]
    result.production_changes = verdict.production_changes
    result.creates = dict(trial.creates())
    for change in verdict.production_changes:
        result.find(f"production changed: {change}")
    if result.duplicates:
        result.find("create calls executed more than once: " + ", ".join(result.duplicates))
    if verdict.leftovers and result.exit_code == 0:
        result.find(f"exit 0 although {len(verdict.leftovers)} resource(s) were left behind")
    if result.report.get("cleanup") == "complete" and verdict.leftovers:
        result.find(
            f"report.json says cleanup complete, but {len(verdict.leftovers)} resource(s) remain: "
            + ", ".join(result.leftovers)
        )
    reported = result.report.get("exit_code")
    if (
        reported is not None
        and result.exit_code is not None
        and not result.hung
        and reported != result.exit_code
    ):
        result.find(f"report.json says exit code {reported}, the process exited {result.exit_code}")
    return verdict.leftovers


_LISTED = re.compile(r"^\s+(\S+:\S+) (\S+) \(")
_RESUME: list[bool] = []


def _listed(done: Finished) -> set[tuple[str, str]]:
    return {(m[1], m[2]) for line in done.stderr.splitlines() if (m := _LISTED.match(line))}


def _crashed(result: Result, name: str, done: Finished) -> None:
    if "Traceback (most recent call last)" in done.stderr:
        last = (done.tail(1) or [""])[0].strip()
        result.find(f"`drplan {name}` crashed with a Python traceback ({last[:160]})")


def _summary(name: str, done: Finished) -> str:
    last = done.tail(1)
    return (
        f"{name}: "
        + ("HANG" if done.hung else f"exit {done.returncode}")
        + (f" ({last[0].strip()})" if last else "")
    )


def follow_up(trial: Trial, result: Result, leftovers: list[Leftover]) -> None:
    """What the documented remedies make of the leftovers: ``drplan cleanup RUN_ID`` alone, a sweep
    alone (from its ``--dry-run`` listing, on the same leftovers), then both (cleanup, then a real
    sweep). Also ``drplan resume RUN_ID`` first, once such a command exists."""
    url = trial.proxy.url
    if not leftovers:
        result.after_id, result.after_sweep, result.after_both = [], [], []
        return
    if not _RESUME:
        _RESUME.append(has_command("resume"))
    if _RESUME[0] and result.run_id:
        done = run(
            [
                "resume",
                result.run_id,
                "--state-dir",
                str(trial.state_dir),
                "--endpoint-url",
                url,
                "--region",
                REGION,
                "--yes",
            ],
            timeout=RUN_TIMEOUT,
        )
        result.commands.append(_summary(f"resume {result.run_id}", done))
        leftovers = trial.verdict().leftovers
        result.extra["after_resume"] = [str(x) for x in leftovers]
    listing = sweep(url, timeout=CLEANUP_TIMEOUT, dry_run=True)
    found = _listed(listing)
    result.after_sweep = [str(x) for x in leftovers if (x.kind, x.id) not in found]
    if result.run_id and journal_path(trial.state_dir, result.run_id).is_file():
        done = cleanup_by_id(result.run_id, trial.state_dir, url, timeout=CLEANUP_TIMEOUT)
        result.commands.append(_summary(f"cleanup {result.run_id}", done))
        _crashed(result, f"cleanup {result.run_id}", done)
        after = trial.verdict().leftovers
        result.after_id = [str(x) for x in after]
        if done.hung:
            result.find(f"`drplan cleanup {result.run_id}` hung")
        elif done.returncode == 0 and after:
            result.find(
                f"`drplan cleanup {result.run_id}` exited 0 ('{(done.tail(1) or [''])[0].strip()}') "
                f"but {len(after)} resource(s) remain: " + ", ".join(map(str, after))
            )
    else:
        result.after_id = [str(x) for x in leftovers]
        result.find("no journal of the run: `drplan cleanup RUN_ID` cannot help")
    done = sweep(url, timeout=CLEANUP_TIMEOUT)
    result.commands.append(_summary("cleanup --sweep", done))
    _crashed(result, "cleanup --sweep", done)
    result.after_both = [str(x) for x in trial.verdict().leftovers]
    if result.after_both:
        result.find(
            f"{len(result.after_both)} resource(s) survive both cleanup by run id and the sweep: "
            + ", ".join(result.after_both)
        )


# --- triggers -------------------------------------------------------------------------------------------


def _forwarded(trial: Trial, name: str) -> Callable[[], bool]:
    """The backend has executed a call named ``name`` (``service:Operation``) in this trial."""
    return lambda: any(r.forwarded and r.name.startswith(name) for r in trial.proxy.requests(trial.started))


def _received(trial: Trial, name: str) -> Callable[[], bool]:
    return lambda: any(r.name.startswith(name) for r in trial.proxy.requests(trial.started))


def _event(trial: Trial, kind: str, step: str | None = None, since: float = 0.0) -> Callable[[], bool]:
    def seen() -> bool:
        return any(
            e.get("kind") == kind and (step is None or e.get("step") == step) and _epoch(e["time"]) >= since
            for e in journal_events(trial.state_dir)
        )

    return seen


def _wait(child: Child, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Wait for ``predicate``, or until the child ends (False then, unless it holds)."""
    wait_until(lambda: predicate() or not child.alive(), timeout)
    return predicate()


def _first_undo_after(trial: Trial, moment: float) -> float | None:
    times = [
        _epoch(e["time"])
        for e in journal_events(trial.state_dir)
        if e.get("kind") == "undo.started" and _epoch(e["time"]) >= moment
    ]
    return round(min(times) - moment, 2) if times else None


# --- a. kill -9 -----------------------------------------------------------------------------------------

KILL_POINTS = {
    # kill point -> the create call to kill inside of: 0.3 s after the backend executed it, while
    # the proxy holds its answer back (AWS has made the resource; drplan does not know its id yet)
    "rds-create": "rds:RestoreDBInstanceFromDBSnapshot",
    "ddb-create": "dynamodb:RestoreTableFromBackup",
    "pitr-create": "dynamodb:RestoreTableToPointInTime",
    "bucket-create": "s3:CreateBucket",
    "volume-create": "ec2:CreateVolume",
    "dns-upsert": "route53:ChangeResourceRecordSets/UPSERT",
}


def kill9(
    lab: Lab,
    *,
    at: float | None = None,
    during: str | None = None,
    parallelism: int | None = None,
    create_delay: float = 2.0,
) -> Result:
    """SIGKILL a drill at ``at`` seconds, or while ``during`` is happening: a create call of
    :data:`KILL_POINTS` (executed by the backend, its answer held back by the proxy), or ``cleanup``
    (the first deletion under way). Then what cleanup by id and the sweep make of it."""
    case = (f"t={at:.2f}s" if at is not None else f"during {during}") + (
        f" p={parallelism}" if parallelism else ""
    )
    result = Result("kill9", case)
    trial = lab.trial("kill9")
    if during == "cleanup":
        create_delay = 0.0  # only the deletions need to be slow
    rules = (
        [Rule("delay", CREATE_OPERATIONS, seconds=create_delay, after_forward=True)] if create_delay else []
    )
    if during == "cleanup":
        rules.append(Rule("delay", DELETE_OPERATIONS, seconds=2.0))
    trial.proxy.set_rules(rules)
    child = Child(drplan_argv(trial.drill(parallelism=parallelism).args()))
    try:
        if at is not None:
            wait_until(lambda: not child.alive(), at)
        elif during == "cleanup":
            _wait(child, _event(trial, "undo.started"))
            time.sleep(0.3)
        else:
            _wait(child, _forwarded(trial, KILL_POINTS[str(during)]))
            time.sleep(0.3)
        if not child.alive():
            result.extra["ended_before_kill"] = True
        killed_after = time.monotonic() - child.started
        child.kill9()
        done = child.wait(10)
    finally:
        reap(child)
    trial.proxy.wait_idle(create_delay + 10)  # what the backend had accepted still completes, as in AWS
    trial.proxy.set_rules([])
    result.extra["killed_after"] = round(killed_after, 2)
    leftovers = observe(trial, result, None)
    result.evidence = None  # nothing can write evidence after SIGKILL
    result.elapsed = round(done.elapsed, 2)
    result.exit_code = done.returncode
    result.stderr_tail = done.tail()
    follow_up(trial, result, leftovers)
    return result


def calibrate(lab: Lab, *, create_delay: float = 2.0, parallelism: int | None = None) -> float:
    """Seconds a drill takes with the given create delays, to draw kill moments from."""
    trial = lab.trial("calibrate")
    trial.proxy.set_rules([Rule("delay", CREATE_OPERATIONS, seconds=create_delay, after_forward=True)])
    done = run(trial.drill(parallelism=parallelism).args(), timeout=RUN_TIMEOUT)
    trial.proxy.set_rules([])
    return done.elapsed


# --- b. signals -----------------------------------------------------------------------------------------

PHASES = ("before-steps", "steps", "check", "cleanup", "evidence")
SIGNALS = {"SIGHUP": signal.SIGHUP, "SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}


def _slow_dot(directory: Path, seconds: float) -> tuple[dict[str, str], Path]:
    """A stand-in for Graphviz's ``dot`` (drplan runs ``$DRPLAN_DOT``) that marks when it starts
    and takes ``seconds``: a window while the drill writes its evidence."""
    marker = directory / "dot-started"
    script = directory / "slow-dot"
    real = shutil.which("dot")
    tail = (
        f'exec {real} "$@"' if real else "cat >/dev/null; echo '<svg xmlns=\"http://www.w3.org/2000/svg\"/>'"
    )
    script.write_text(f"#!/bin/sh\ntouch {marker}\nsleep {seconds}\n{tail}\n", encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return {"DRPLAN_DOT": str(script)}, marker


def signalled(lab: Lab, name: str, phase: str) -> Result:
    """Deliver SIGHUP/SIGINT/SIGTERM in one phase of a drill. SIGINT and SIGHUP go to the process
    group (a terminal's Ctrl-C, a closed terminal), SIGTERM to drplan's pid (``kill``, systemd,
    ``docker stop``). Measures whether cleanup starts soon, completes, evidence is written, the exit
    code, and whether the process ends at all."""
    sig = SIGNALS[name]
    result = Result("signals", f"{name} @{phase}")
    trial = lab.trial(f"signal-{name}-{phase}")
    plan = "faults-check" if phase == "check" else "faults"
    env = aws_env()
    trigger: Callable[[], bool]
    if phase == "before-steps":  # the account check (sts:GetCallerIdentity), before the journal exists
        trial.proxy.set_rules([Rule("delay", ("sts:GetCallerIdentity",), seconds=4.0, times=1)])
        trigger = _received(trial, "sts:GetCallerIdentity")
    elif phase == "steps":
        trial.proxy.set_rules([Rule("delay", CREATE_OPERATIONS, seconds=3.0, after_forward=True)])
        trigger = _forwarded(trial, "rds:RestoreDBInstanceFromDBSnapshot")
    elif phase == "check":
        trigger = _event(trial, "step.progress", "web.healthy")
    elif phase == "cleanup":
        trial.proxy.set_rules([Rule("delay", DELETE_OPERATIONS, seconds=1.0)])
        trigger = _event(trial, "undo.started")
    elif phase == "evidence":
        extra, marker = _slow_dot(trial.directory, 3.0)
        env.update(extra)
        trigger = marker.exists
    else:
        raise ValueError(f"unknown phase {phase!r}; one of {', '.join(PHASES)}")
    child = Child(drplan_argv(trial.drill(plan).args()), env=env)
    try:
        hit = _wait(child, trigger)
        time.sleep(0.3)
        sent = time.time()
        if not child.alive():
            result.find(f"the drill ended before the {phase} phase could be hit")
        child.signal(sig, group=name != "SIGTERM")
        result.extra["phase_hit"] = hit
        done = child.wait(RUN_TIMEOUT)
    finally:
        reap(child)
        trial.proxy.set_rules([])
    trial.proxy.wait_idle(10)
    leftovers = observe(trial, result, done)
    created = any(e.get("kind") == "step.resource" for e in journal_events(trial.state_dir))
    if phase in ("steps", "check") and created:
        result.cleanup_latency = _first_undo_after(trial, sent)
        if result.cleanup_latency is None:
            result.find(f"no cleanup started after {name} (resources had been created)")
        elif result.cleanup_latency > CLEANUP_START_SECONDS:
            result.find(f"cleanup started only {result.cleanup_latency:.1f}s after {name}")
    if not done.hung and done.returncode != 3 and phase != "evidence":
        result.find(f"exit code {done.returncode} after {name}; the docs say an interrupted run exits 3")
    if not done.hung and phase == "evidence" and done.returncode not in (0, 3):
        result.find(f"exit code {done.returncode} after {name} while writing evidence (expected 0 or 3)")
    if phase != "before-steps" and not result.evidence:
        result.find(f"no evidence (report.json) after {name} during {phase}")
    follow_up(trial, result, leftovers)
    return result


# --- c. closed pipes and full disks ---------------------------------------------------------------------

PIPE_CASES = (
    "stderr-closed",
    "stderr-head",
    "stdout-closed",
    "events-dev-full",
    "state-dir-full",
    "state-dir-nearly-full",
    "broken-dot",
)


def pipes(lab: Lab, case: str) -> Result:
    """drplan's outputs fail under it: stderr or stdout closed, ``--events /dev/full``, a state
    folder on a 64 KiB tmpfs (which fills while evidence is written; ``-nearly-full`` leaves only
    room for the journal up to its second created resource, so it fills mid-run), or a ``dot`` that
    fails while evidence is written."""
    result = Result("pipes", case)
    free = _journal_bytes_until(lab, "step.resource", 2) if case == "state-dir-nearly-full" else None
    trial = lab.trial(f"pipes-{case}")
    command = trial.drill()
    env = aws_env()
    mounted: Path | None = None
    exit_code: int | None = None
    child: Child | None = None
    try:
        if case == "stderr-closed":
            read_end, write_end = os.pipe()
            child = Child(drplan_argv(command.args()), stdout=subprocess.DEVNULL, stderr=write_end, env=env)
            os.close(write_end)
            _wait(child, _event(trial, "step.started"))
            os.close(read_end)  # from now on, every write to stderr fails with EPIPE
            done = child.wait(RUN_TIMEOUT)
        elif case == "stderr-head":
            status = trial.directory / "drplan-exit"
            argv = " ".join(_quote(a) for a in drplan_argv(command.args()))
            script = f'{argv} 2>&1 >/dev/null | head -c 7000 >/dev/null; echo "${{PIPESTATUS[0]}}" > {_quote(str(status))}'
            child = Child(["bash", "-c", script], env=env)
            done = child.wait(RUN_TIMEOUT)
            exit_code = int(status.read_text()) if status.is_file() and status.read_text().strip() else None
            result.extra["shape"] = "drplan drill ... 2>&1 >/dev/null | head -c 7000"
        elif case == "stdout-closed":
            argv = " ".join(_quote(a) for a in drplan_argv(command.args()))
            child = Child(["bash", "-c", f"exec 1>&-; exec {argv}"], env=env)
            done = child.wait(RUN_TIMEOUT)
        elif case == "events-dev-full":
            command.events = "/dev/full"
            child = Child(drplan_argv(command.args()), env=env)
            done = child.wait(RUN_TIMEOUT)
        elif case in ("state-dir-full", "state-dir-nearly-full"):
            mounted = _small_tmpfs(trial.state_dir, result, free=free)
            child = Child(drplan_argv(command.args()), env=env)
            done = child.wait(RUN_TIMEOUT)
        elif case == "broken-dot":
            broken = trial.directory / "broken-dot"
            broken.write_text("#!/bin/sh\necho 'dot: simulated crash' >&2\nexit 70\n", encoding="utf-8")
            broken.chmod(0o755)
            env["DRPLAN_DOT"] = str(broken)
            child = Child(drplan_argv(command.args()), env=env)
            done = child.wait(RUN_TIMEOUT)
        else:
            raise ValueError(f"unknown case {case!r}; one of {', '.join(PIPE_CASES)}")
        trial.proxy.wait_idle(10)
        leftovers = observe(trial, result, done, exit_code=exit_code)
        if case == "stderr-head" and exit_code is None and not done.hung:
            result.find("could not read drplan's exit status from the pipeline")
        if not result.evidence and not case.startswith("state-dir"):
            result.find("no evidence (report.json) written")
        follow_up(trial, result, leftovers)
    finally:
        reap(child)
        if mounted is not None:
            subprocess.run(["umount", "-l", str(mounted)], check=False, capture_output=True)
    return result


def _journal_bytes_until(lab: Lab, kind: str, count: int) -> int:
    """Bytes of a normal drill's journal up to the end of its ``count``-th ``kind`` event."""
    trial = lab.trial("calibrate-journal")
    run(trial.drill().args(), timeout=RUN_TIMEOUT)
    ids = run_ids(trial.state_dir)
    if not ids:
        return 8 * 1024
    offset, seen = 0, 0
    for line in journal_path(trial.state_dir, ids[-1]).read_bytes().splitlines(keepends=True):
        offset += len(line)
        if f'"kind": "{kind}"'.encode() in line:
            seen += 1
            if seen == count:
                break
    return offset


def _small_tmpfs(directory: Path, result: Result, *, free: int | None = None) -> Path | None:
    """Mount a 64 KiB tmpfs on ``directory`` (root only), filled but for ``free`` bytes; without
    the mount, say so and fill nothing."""
    directory.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(directory)], capture_output=True, text=True
    )
    if done.returncode == 0:
        try:
            result.extra["state_dir"] = "64 KiB tmpfs"
            if free is not None:
                _fill(directory / "filler", free)
                result.extra["state_dir"] = f"64 KiB tmpfs with {free} bytes free"
        except BaseException:
            subprocess.run(["umount", "-l", str(directory)], check=False, capture_output=True)
            raise
        return directory
    result.extra["state_dir"] = (
        f"NOT a small tmpfs (mount failed: {done.stderr.strip()}); the disk did not fill"
    )
    result.find("could not mount a small tmpfs; the full-disk case was not exercised")
    return None


def _fill(path: Path, free: int) -> None:
    """Fill the file system of ``path`` but for about ``free`` bytes."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        size = 0
        while True:
            try:
                size += os.write(fd, b"\0" * 4096)
            except OSError:
                break
        os.ftruncate(fd, max(0, size - free - 4096))  # tmpfs frees whole pages
    finally:
        os.close(fd)


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


# --- d. a throttling, failing or dead endpoint ------------------------------------------------------------

PROXY_CASES = ("throttle30", "error10", "reset10", "lost-responses", "down-in-cleanup")


def faulty_endpoint(lab: Lab, case: str) -> Result:
    """30 % of requests throttled; 10 % answered 500; 10 % connections reset; responses of create
    calls lost after AWS executed them; or the endpoint gone (connections refused) once cleanup
    starts. Does the drill finish, in what time, leaving what?"""
    result = Result("proxy", case)
    trial = lab.trial(f"proxy-{case}")
    rules = {
        "throttle30": [Rule("throttle", probability=0.30)],
        "error10": [Rule("error", probability=0.10)],
        "reset10": [Rule("reset", probability=0.10)],
        "lost-responses": [Rule("drop_response", CREATE_OPERATIONS, times=6)],
        "down-in-cleanup": [],
    }[case]
    trial.proxy.set_rules(rules)
    child = Child(drplan_argv(trial.drill().args()))
    try:
        if case == "down-in-cleanup" and _wait(child, _event(trial, "undo.started")):
            trial.proxy.down()
            result.extra["down_after"] = round(time.monotonic() - child.started, 2)
        done = child.wait(RUN_TIMEOUT * 2 if case == "down-in-cleanup" else RUN_TIMEOUT)
    finally:
        reap(child)
        trial.proxy.up()
        trial.proxy.set_rules([])
    trial.proxy.wait_idle(10)
    result.extra["faults"] = {
        f: sum(1 for r in trial.proxy.requests(trial.started) if r.fault == f)
        for f in ("throttle", "error", "reset", "drop_response", "refused")
    }
    leftovers = observe(trial, result, done)
    if case == "down-in-cleanup" and not done.hung and done.returncode != 3:
        result.find(f"exit {done.returncode} although cleanup could not reach the endpoint (docs: 3)")
    if not result.evidence:
        result.find("no evidence (report.json) written")
    follow_up(trial, result, leftovers)
    return result


# --- e. a damaged journal ---------------------------------------------------------------------------------

JOURNAL_CASES = ("truncated-mid-line", "corrupted-line", "bad-bytes", "torn-last-line")


def damaged_journal(lab: Lab, case: str) -> Result:
    """Kill -9 a drill once every step has created its resource (cleanup slowed, not yet done),
    damage the journal, then ``drplan cleanup RUN_ID``: does it remove everything, does it say the
    journal was damaged, or does it claim success while resources remain?"""
    result = Result("journal", case)
    trial = lab.trial(f"journal-{case}")
    trial.proxy.set_rules([Rule("delay", DELETE_OPERATIONS, seconds=1.5)])
    child = Child(drplan_argv(trial.drill().args()))
    try:
        _wait(child, _event(trial, "undo.started"))
        child.kill9()
        done = child.wait(10)
    finally:
        reap(child)
    trial.proxy.wait_idle(15)
    trial.proxy.set_rules([])
    leftovers = observe(trial, result, None)
    result.evidence = None  # killed: no evidence to expect
    result.exit_code, result.elapsed, result.stderr_tail = (
        done.returncode,
        round(done.elapsed, 2),
        done.tail(),
    )
    if result.run_id is None:
        result.find("the drill had not started its journal when killed")
        return result
    path = journal_path(trial.state_dir, result.run_id)
    result.extra["damage"] = _damage(path, case)
    listing = sweep(trial.proxy.url, timeout=CLEANUP_TIMEOUT, dry_run=True)
    result.after_sweep = [str(x) for x in leftovers if (x.kind, x.id) not in _listed(listing)]
    plan = cleanup_by_id(
        result.run_id, trial.state_dir, trial.proxy.url, timeout=CLEANUP_TIMEOUT, dry_run=True
    )
    done = cleanup_by_id(result.run_id, trial.state_dir, trial.proxy.url, timeout=CLEANUP_TIMEOUT)
    result.commands += [
        _summary(f"cleanup {result.run_id} --dry-run", plan),
        _summary(f"cleanup {result.run_id}", done),
    ]
    _crashed(result, f"cleanup {result.run_id}", done)
    result.stderr_tail = done.tail()
    after = trial.verdict().leftovers
    result.after_id = [str(x) for x in after]
    said = plan.stdout + plan.stderr + done.stdout + done.stderr
    result.extra["cleanup_exit"] = done.returncode
    result.extra["mentions_damage"] = bool(DAMAGE_WORDS.search(_without_traceback(said)))
    if case != "torn-last-line" and not result.extra["mentions_damage"]:
        result.find(
            f"`drplan cleanup {result.run_id}` did not say the journal was damaged ({result.extra['damage']})"
        )
    if after and done.returncode == 0:
        result.find(
            f"`drplan cleanup {result.run_id}` exited 0 ('{(done.tail(1) or [''])[0].strip()}') but "
            f"{len(after)} resource(s) remain: " + ", ".join(map(str, after))
        )
    elif after:
        result.find(
            f"{len(after)} resource(s) remain after `drplan cleanup {result.run_id}`: "
            + ", ".join(map(str, after))
        )
    swept = sweep(trial.proxy.url, timeout=CLEANUP_TIMEOUT)
    result.commands.append(_summary("cleanup --sweep", swept))
    result.after_both = [str(x) for x in trial.verdict().leftovers]
    return result


def _without_traceback(text: str) -> str:
    """A crash's traceback (UnicodeDecodeError: ... invalid start byte) is not a report of damage."""
    return "\n".join(
        line for line in text.splitlines() if not line.startswith(("  ", "Traceback", "UnicodeDecodeError"))
    )


def _damage(path: Path, case: str) -> str:
    """Damage the journal the way a crash, a full disk or a bad sector would."""
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    resource_lines = [i for i, line in enumerate(lines) if b'"step.resource"' in line]
    if case == "truncated-mid-line":
        # Cut inside the second step.resource line: it and everything after it are gone.
        index = resource_lines[1] if len(resource_lines) > 1 else len(lines) // 2
        cut = sum(len(line) for line in lines[:index]) + len(lines[index]) // 2
        path.write_bytes(data[:cut])
        return f"truncated to {cut} of {len(data)} bytes, inside line {index + 1} of {len(lines)}"
    if case in ("corrupted-line", "bad-bytes"):
        # Overwrite 30 bytes in the middle of the first step.resource line: with text that breaks
        # the JSON, or with bytes that are not UTF-8 (a bad sector, a partial page write).
        index = resource_lines[0] if resource_lines else len(lines) // 2
        bad = bytearray(lines[index])
        middle = len(bad) // 2
        bad[middle : middle + 30] = (b"\xff" if case == "bad-bytes" else b"#") * 30
        lines[index] = bytes(bad)
        path.write_bytes(b"".join(lines))
        what = "non-UTF-8 bytes" if case == "bad-bytes" else "'#' characters"
        return f"30 bytes of line {index + 1} of {len(lines)} (a step.resource event) overwritten with {what}"
    if case == "torn-last-line":
        cut = len(data) - len(lines[-1]) // 2
        path.write_bytes(data[:cut])
        return f"last line cut in half ({len(data)} -> {cut} bytes)"
    raise ValueError(f"unknown case {case!r}; one of {', '.join(JOURNAL_CASES)}")


# --- f. two drills at once ----------------------------------------------------------------------------------


def concurrent(lab: Lab, case: str = "same-plan", *, stagger: float = 0.5) -> Result:
    """Two drills of one plan, one state folder, one endpoint, the second ``stagger`` seconds later.
    Should the second be refused? Do they overwrite each other's DNS record? What is left?"""
    result = Result("concurrent", case)
    trial = lab.trial("concurrent")
    # The first drill's deletion of its DNS record is slow, so the second finds the record there.
    trial.proxy.set_rules([Rule("delay", ("route53:ChangeResourceRecordSets/DELETE",), seconds=2.0, times=1)])
    first = Child(drplan_argv(trial.drill().args()))
    second: Child | None = None
    try:
        time.sleep(stagger)
        second = Child(drplan_argv(trial.drill().args()))
        done_first = first.wait(RUN_TIMEOUT)
        done_second = second.wait(RUN_TIMEOUT)
    finally:
        reap(first)
        reap(second)
        trial.proxy.set_rules([])
    trial.proxy.wait_idle(10)
    leftovers = observe(trial, result, done_second)
    result.exit_code = done_second.returncode
    result.extra["first_exit"] = done_first.returncode
    result.extra["second_exit"] = done_second.returncode
    result.extra["first_tail"] = done_first.tail(4)
    result.elapsed = round(max(done_first.elapsed, done_second.elapsed + stagger), 2)
    ids = run_ids(trial.state_dir)
    result.extra["runs"] = ids
    # Two runs share the state folder: report.json of each, not of "the" run.
    result.extra["reports"] = {rid: _report(trial, rid, None)[1] for rid in ids}
    result.findings = [f for f in result.findings if not f.startswith("report.json says exit code")]
    for rid in ids:
        for event in journal_events(trial.state_dir, rid):
            handle = event.get("data", {}).get("handle") or {}
            if (
                event.get("kind") == "step.started"
                and event.get("step") == "orders-db.dns"
                and handle.get("previous")
            ):
                values = [r["Value"] for r in handle["previous"].get("ResourceRecords", [])]
                result.find(
                    f"run {rid} overwrote the other drill's DNS record (it pointed at {', '.join(values)})"
                )
    if done_first.returncode == 0 and done_second.returncode == 0:
        result.find(
            "both drills ran at once; neither was refused (docs: 'Run one drill of a plan at a time')"
        )
    # Two drills create everything twice by design: the counts cover both runs, so they are kept
    # apart from the per-run duplicate count.
    result.extra["creates_both_runs"], result.creates = result.creates, {}
    result.findings = [f for f in result.findings if not f.startswith("create calls executed more than once")]
    follow_up(trial, result, leftovers)
    return result


# --- recover: kill -9, then run it again -------------------------------------------------------------------


def recover_again(lab: Lab, during: str = "rds-create") -> Result:
    """Kill -9 a real recovery while a restore call is in flight, then run ``drplan recover`` again,
    as an operator may first do: it must refuse (exit 2) and name ``drplan resume RUN_ID``, which
    then finishes the recovery. Is any restore started twice?"""
    result = Result("recover", f"kill -9 during {during}, recover again, then resume")
    trial = lab.trial("recover")
    trial.proxy.set_rules([Rule("delay", CREATE_OPERATIONS, seconds=2.0, after_forward=True)])
    child = Child(drplan_argv(trial.drill(mode="recover").args()))
    try:
        _wait(child, _forwarded(trial, KILL_POINTS[during]))
        time.sleep(0.3)
        child.kill9()
        child.wait(10)
    finally:
        reap(child)
    trial.proxy.wait_idle(15)
    trial.proxy.set_rules([])
    first_creates = dict(trial.creates())
    refused = run(trial.drill(mode="recover").args(), timeout=RUN_TIMEOUT)
    result.commands.append(_summary("recover again", refused))
    if refused.returncode != 2 or "drplan resume" not in refused.stderr:
        result.find(f"a second `drplan recover` was not refused (exit {refused.returncode})")
    [dead] = run_ids(trial.state_dir)  # the refusal left no run folder
    resume = ["resume", dead, "--state-dir", str(trial.state_dir), "--endpoint-url", trial.proxy.url]
    again = run([*resume, "--region", REGION, "--yes"], timeout=RUN_TIMEOUT)
    observe(trial, result, again)
    result.evidence = None  # a recovery writes no drill evidence
    # A recovery changes production (its DNS record points at the restored database): its job.
    result.production_changes = []
    result.findings = [f for f in result.findings if not f.startswith("production changed")]
    result.extra["creates_first_run"] = first_creates
    result.extra["errors"] = [
        f"{e.get('step')}: {e.get('data', {}).get('error')}"
        for e in journal_events(trial.state_dir)
        if e.get("kind") == "step.failed"
    ]
    if again.returncode != 0:
        result.find(
            f"`drplan resume` exited {again.returncode}: the recovery cannot be completed after a crash"
        )
    restored = {
        "fault-orders-restored",
        "fault-carts-restored",
        "fault-sessions-restored",
        "fault-assets-restored",
    }
    missing = sorted(n for n in restored if not any(n in x for x in result.leftovers))
    if missing:
        result.find("not restored after the second run: " + ", ".join(missing))
    result.leftovers = []  # a recovery keeps what it restores: not leftovers
    result.findings = [f for f in result.findings if not f.startswith("exit 0 although")]
    return result


# --- running many -------------------------------------------------------------------------------------------

SCENARIOS = ("kill9", "signals", "pipes", "proxy", "journal", "concurrent", "recover")


def run_scenario(
    lab: Lab, name: str, *, runs: int = 1, seed: int = 0, log: Callable[[str], None] = print
) -> list[Result]:
    """``runs`` repetitions of a scenario (kill9: ``runs`` random moments plus one kill in each
    create call and in cleanup)."""
    rng = random.Random(seed)
    results: list[Result] = []

    def add(result: Result) -> None:
        results.append(result)
        log(
            f"  {result.scenario:<10} {result.case:<42} exit={result.exit_code} hang={result.hung} "
            f"left={len(result.leftovers)} findings={len(result.findings)}"
        )

    if name == "kill9":
        span = calibrate(lab)
        log(f"  a drill with 2 s create calls takes {span:.1f}s here; killing at random moments within it")
        for point in (*KILL_POINTS, "cleanup"):
            add(kill9(lab, during=point))
        for _ in range(runs):
            add(kill9(lab, at=rng.uniform(0.0, span), parallelism=rng.choice([None, 1, 2])))
    elif name == "signals":
        for _ in range(runs):
            for phase in PHASES:
                for sig in SIGNALS:
                    add(signalled(lab, sig, phase))
    elif name == "pipes":
        for _ in range(runs):
            for case in PIPE_CASES:
                add(pipes(lab, case))
    elif name == "proxy":
        for _ in range(runs):
            for case in PROXY_CASES:
                add(faulty_endpoint(lab, case))
    elif name == "journal":
        for _ in range(runs):
            for case in JOURNAL_CASES:
                add(damaged_journal(lab, case))
    elif name == "concurrent":
        for _ in range(runs):
            add(concurrent(lab))
    elif name == "recover":
        for _ in range(runs):
            add(recover_again(lab))
    else:
        raise ValueError(f"unknown scenario {name!r}; one of {', '.join(SCENARIOS)}")
    return results
