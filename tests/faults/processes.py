"""drplan as a child process: started in its own process group, watched through its journal,
signalled or killed, and always reaped.

Every child gets a new session (``start_new_session``), so a signal or SIGKILL reaches drplan and
anything it started (Graphviz, ``command`` steps), and :func:`reap` can kill the whole group in a
``finally`` without touching the harness. A child that outlives its timeout is killed and reported
as a hang, never waited for forever.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tests.faults.server import REGION, aws_env

ROOT = Path(__file__).resolve().parents[2]
#: The drplan under test: this working tree, or the checkout named by ``DRPLAN_FAULTS_SOURCE``
#: (for example ``git archive HEAD`` unpacked), so that a measurement is not disturbed by edits in
#: progress. Children run with it as their working directory and first on ``PYTHONPATH``.
SOURCE = Path(os.environ.get("DRPLAN_FAULTS_SOURCE") or ROOT).resolve()
TAIL = 12  # stderr lines kept in results


@dataclass
class Finished:
    """How a child process ended."""

    args: list[str]
    returncode: int | None  # None: it hung and the harness killed it
    elapsed: float
    stdout: str
    stderr: str

    @property
    def hung(self) -> bool:
        return self.returncode is None

    def tail(self, lines: int = TAIL) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()][-lines:]


def drplan_argv(args: Sequence[str]) -> list[str]:
    """``python -m drplan ARGS``, with this interpreter (the editable install under test)."""
    return [sys.executable, "-m", "drplan", *args]


class Child:
    """A running process (drplan, or a shell around it) in its own process group; its stderr and
    stdout, when they are pipes, are collected by reader threads."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path = SOURCE,
        env: dict[str, str] | None = None,
        stdout: int | IO[Any] | None = subprocess.PIPE,
        stderr: int | IO[Any] | None = subprocess.PIPE,
    ) -> None:
        self.args = list(argv)
        self.started = time.monotonic()
        env = dict(env if env is not None else aws_env())
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SOURCE), env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            self.args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        self._out: list[str] = []
        self._err: list[str] = []
        self._readers = [
            self._reader(stream, sink)
            for stream, sink in ((self.proc.stdout, self._out), (self.proc.stderr, self._err))
            if stream is not None
        ]

    def _reader(self, stream: IO[bytes], sink: list[str]) -> threading.Thread:
        def read() -> None:
            for raw in iter(stream.readline, b""):
                sink.append(raw.decode("utf-8", "replace"))
            stream.close()

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        return thread

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int, *, group: bool = False) -> None:
        """Deliver ``sig`` to the process (``kill PID``, as systemd or docker stop do) or to its
        whole group (as a terminal delivers Ctrl-C, or SIGHUP when it closes)."""
        if not self.alive():
            return
        if group:
            _killpg(self.proc.pid, sig)
        else:
            os.kill(self.proc.pid, sig)

    def kill9(self) -> None:
        """SIGKILL the whole process group: drplan gets no chance to do anything."""
        _killpg(self.proc.pid, signal.SIGKILL)

    def wait(self, timeout: float) -> Finished:
        """Wait for the end; past ``timeout`` the group is killed and the result says it hung."""
        try:
            code: int | None = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
            reap(self)
        for reader in self._readers:
            reader.join(timeout=5)
        return Finished(
            self.args, code, time.monotonic() - self.started, "".join(self._out), "".join(self._err)
        )

    def stderr_so_far(self) -> str:
        return "".join(self._err)


def reap(child: Child | None) -> None:
    """Kill the child's process group if anything of it is left (for ``finally`` blocks)."""
    if child is None:
        return
    _killpg(child.proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.proc.wait(timeout=10)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run(
    args: Sequence[str], *, timeout: float, cwd: Path = SOURCE, env: dict[str, str] | None = None
) -> Finished:
    """Run drplan to the end (or to ``timeout``, then kill it and report a hang)."""
    child = Child(drplan_argv(args), cwd=cwd, env=env)
    try:
        return child.wait(timeout)
    finally:
        reap(child)


# --- the state folder ---------------------------------------------------------------------------------


def run_ids(state_dir: Path) -> list[str]:
    """Run ids with a folder under ``state_dir/runs``, oldest first."""
    runs = state_dir / "runs"
    if not runs.is_dir():
        return []
    return [p.name for p in sorted(runs.iterdir(), key=lambda p: p.stat().st_mtime) if p.is_dir()]


def journal_path(state_dir: Path, run_id: str) -> Path:
    return state_dir / "runs" / run_id / "journal.jsonl"


def journal_events(state_dir: Path, run_id: str | None = None) -> list[dict[str, Any]]:
    """The journal's events (of ``run_id``, or of the only/newest run); torn lines are skipped."""
    ids = [run_id] if run_id else run_ids(state_dir)[-1:]
    events: list[dict[str, Any]] = []
    for rid in ids:
        path = journal_path(state_dir, rid)
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def wait_for_event(
    state_dir: Path, match: Callable[[dict[str, Any]], bool], timeout: float, child: Child | None = None
) -> bool:
    """Wait until the journal holds an event ``match`` accepts (False on timeout or child exit)."""

    def seen() -> bool:
        if child is not None and not child.alive():
            return True
        return any(match(e) for e in journal_events(state_dir))

    return wait_until(seen, timeout) and any(match(e) for e in journal_events(state_dir))


@dataclass
class DrillCommand:
    """The arguments of one ``drplan drill`` (or ``recover``) against the proxy."""

    plan: Path
    endpoint: str
    state_dir: Path
    mode: str = "drill"
    parallelism: int | None = None
    events: str | None = None
    report_dir: Path | None = None
    extra: list[str] = field(default_factory=list)

    def args(self) -> list[str]:
        args = [self.mode, str(self.plan), "--endpoint-url", self.endpoint, "--region", REGION]
        args += ["--state-dir", str(self.state_dir), "--yes"]
        if self.parallelism:
            args += ["--parallelism", str(self.parallelism)]
        if self.events:
            args += ["--events", self.events]
        if self.report_dir:
            args += ["--report-dir", str(self.report_dir)]
        return args + self.extra


def cleanup_by_id(
    run_id: str, state_dir: Path, endpoint: str, *, timeout: float, dry_run: bool = False
) -> Finished:
    args = ["cleanup", run_id, "--state-dir", str(state_dir), "--endpoint-url", endpoint, "--region", REGION]
    return run(args + (["--dry-run"] if dry_run else []), timeout=timeout)


def sweep(endpoint: str, *, timeout: float, dry_run: bool = False) -> Finished:
    args = ["cleanup", "--sweep", "--endpoint-url", endpoint, "--region", REGION]
    return run(args + (["--dry-run"] if dry_run else []), timeout=timeout)


def has_command(name: str) -> bool:
    """Whether ``drplan --help`` lists the command (``resume`` does not exist today)."""
    done = run(["--help"], timeout=60)
    in_commands = done.stdout.split("Commands:", 1)[-1]
    return any(line.split()[:1] == [name] for line in in_commands.splitlines())
