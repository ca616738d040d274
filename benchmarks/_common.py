"""The small interface every ``benchmarks/bench_*.py`` module shares with ``benchmarks/run.py``.

A benchmark module exposes one function::

    def run(ctx: Context) -> Iterable[Row]: ...

and may set ``TITLE = "..."`` (a one-line description shown by ``run.py --list``). It yields
:class:`Row` s; ``run.py`` prints each row as it arrives and a summary of the targets at the end.
Modules never print (progress goes through ``ctx.log``, on stderr).

Figures are compared with a baseline measured *in the same run* on the same machine (another
tool, bare Python, or a simpler operation), so the ratio means something on any machine. Absolute
targets (``under 1 s on a 2-core machine``) are checked too, but only ratios should ever go into
tests or CI gates.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TIMES = "\N{MULTIPLICATION SIGN}"  # after ratios in tables and notes
ROOT = HERE.parent


@dataclass(frozen=True)
class Target:
    """What a row must achieve: a ratio to its baseline, an absolute value, or both (all must hold)."""

    max_ratio: float | None = None
    max_value: float | None = None
    source: str = ""  # where the target comes from, e.g. "issue #12"

    def met(self, row: Row) -> bool | None:
        """True or False; None when the row cannot be judged (no baseline for a ratio target)."""
        checks = []
        if self.max_ratio is not None:
            if row.ratio is None:
                return None
            checks.append(row.ratio <= self.max_ratio)
        if self.max_value is not None:
            checks.append(row.value <= self.max_value)
        return all(checks)

    def describe(self, unit: str) -> str:
        parts = []
        if self.max_ratio is not None:
            parts.append(f"≤ {self.max_ratio:g}{TIMES}")
        if self.max_value is not None:
            parts.append(f"≤ {self.max_value:g} {unit}")
        return " and ".join(parts)


@dataclass(frozen=True)
class Row:
    """One figure of a benchmark.

    ``value`` is in ``unit`` (``s`` for timings; best of k runs unless the note says otherwise).
    ``baseline`` is the same quantity for the reference measured in the same run, named by
    ``baseline_name``; ``ratio`` is value / baseline (below 1: faster than the baseline).
    """

    name: str
    value: float
    unit: str = "s"
    baseline: float | None = None
    baseline_name: str = ""
    target: Target | None = None
    note: str = ""
    bench: str = ""  # filled in by run.py from the module name (bench_validate -> validate)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.target.met(self)

    def as_dict(self) -> dict[str, Any]:
        return {
            "bench": self.bench,
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline,
            "baseline_name": self.baseline_name,
            "ratio": self.ratio,
            "target": self.target.describe(self.unit) if self.target else None,
            "met": self.met,
            "note": self.note,
        }


@dataclass(frozen=True)
class Timing:
    """Wall-clock times (seconds) of repeated runs, and the CPU time (user + system) of the best."""

    runs: tuple[float, ...]
    cpu: tuple[float, ...] = ()
    max_rss_kb: int = 0  # peak resident memory of the largest run, when the platform reports it

    @property
    def best(self) -> float:
        return min(self.runs)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def best_cpu(self) -> float | None:
        if not self.cpu:
            return None
        return self.cpu[self.runs.index(self.best)]

    def summary(self) -> str:
        """For a row's note: spread of the runs, CPU of the best one, peak memory."""
        count = len(self.runs)
        parts = [f"{count} run{'s' if count != 1 else ''}, median {self.median:.3f} s"]
        if self.best_cpu is not None:
            parts.append(f"cpu {self.best_cpu:.2f} s")
        if self.max_rss_kb:
            parts.append(f"rss {self.max_rss_kb / 1024:.0f} MB")
        return ", ".join(parts)


class CommandFailed(RuntimeError):
    pass


#: GNU time measures the peak memory of the command it runs. Ours cannot: on Linux a child's
#: ru_maxrss starts at the RSS of the process it was forked from (Popen and posix_spawn alike), so
#: every command measured from this runner would look at least as big as the runner itself
#: (35 MB for `python -c pass`). GNU time forks the command from a small process of its own.
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
_RSS_MARK = "drplan-bench-maxrss-kb="


def _run_once(
    argv: Sequence[str], cwd: Path, env: dict[str, str] | None
) -> tuple[float, float | None, int, int, str]:
    """(wall seconds, cpu seconds, max rss KB (0: unknown), exit code, stderr) of one fresh process."""
    if GNU_TIME is not None:
        argv = [GNU_TIME, "-f", _RSS_MARK + "%M", *argv]
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        )
        if hasattr(os, "wait4"):
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)  # Popen must not wait again
            cpu: float | None = usage.ru_utime + usage.ru_stime
            rss = 0  # unknown unless GNU time measured it (see GNU_TIME)
        else:  # pragma: no cover - Windows
            proc.wait()
            wall = time.perf_counter() - start
            cpu, rss = None, 0
        err.seek(0)
        text = err.read().decode(errors="replace")
        if _RSS_MARK in text:
            head, _, mark = text.rpartition(_RSS_MARK)
            rss = int(mark.split()[0]) if mark.split() and mark.split()[0].isdigit() else 0
            text = head
            if proc.returncode != 0 and "Command exited with non-zero status" in text:
                text = text[: text.rfind("Command exited with non-zero status")]
        return wall, cpu, rss, proc.returncode, text


def time_command(
    argv: Sequence[str],
    *,
    repeat: int = 5,
    warmup: int = 1,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    ok_codes: Iterable[int] = (0,),
) -> Timing:
    """Time a whole command, each run a fresh process (startup and imports included): best of k.

    ``warmup`` untimed runs come first (file cache, ``.pyc`` files). Output goes to /dev/null; a
    run that exits with a code outside ``ok_codes`` raises :class:`CommandFailed` with its stderr.
    """
    allowed = set(ok_codes)
    walls: list[float] = []
    cpus: list[float] = []
    peak = 0
    for i in range(warmup + repeat):
        wall, cpu, rss, code, stderr = _run_once(argv, cwd, env)
        if code not in allowed:
            raise CommandFailed(f"{' '.join(map(str, argv))} exited with {code}:\n{stderr.strip()[-2000:]}")
        if i < warmup:
            continue
        walls.append(wall)
        if cpu is not None:
            cpus.append(cpu)
        peak = max(peak, rss)
    return Timing(tuple(walls), tuple(cpus), peak)


def time_call(fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1) -> Timing:
    """Time a function in this process: best of k (for in-process breakdowns, not headline figures)."""
    walls = []
    for i in range(warmup + repeat):
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        if i >= warmup:
            walls.append(elapsed)
    return Timing(tuple(walls))


@dataclass
class Context:
    """What a benchmark gets from run.py: where things are, which sizes, how many repeats."""

    sizes: tuple[int, ...] = (100, 1_000, 10_000)
    repeat: int = 5
    quick: bool = False
    out_dir: Path = HERE / "out"
    root: Path = ROOT
    python: str = sys.executable
    log: Callable[[str], None] = field(default=lambda message: print(message, file=sys.stderr, flush=True))
    _plans: dict[int, Path] = field(default_factory=dict)

    def plan(self, n_services: int) -> Path:
        """The generated plan of ``n_services`` services (written on first use, then reused)."""
        if n_services not in self._plans:
            from generate import write_plans  # benchmarks/ is on sys.path when run.py runs

            self.log(f"  generating plan-{n_services}.json")
            (path,) = write_plans(self.out_dir, [n_services])
            self._plans[n_services] = path
        return self._plans[n_services]

    def repeats_for(self, n_services: int) -> int:
        """At most 3 repeats for the largest plans: each run takes seconds."""
        return self.repeat if n_services < 10_000 else min(self.repeat, 3)

    @property
    def env(self) -> dict[str, str]:
        """The environment of timed commands: this one, with bytecode caching on.

        With ``PYTHONDONTWRITEBYTECODE`` set (as on our CI machines) an editable install recompiles
        drplan's sources in every process while installed tools load cached ``.pyc`` files. Timed
        commands write and read bytecode under ``benchmarks/out/pycache`` instead (git-ignored,
        outside the source tree), as any installed package would; the warm-up run fills it.
        """
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(self.out_dir / "pycache")
        return env

    def time_command(self, argv: Sequence[str], *, repeat: int | None = None, **options: Any) -> Timing:
        """:func:`time_command` from the repository root with :attr:`env`, ``ctx.repeat`` runs unless told."""
        options.setdefault("cwd", self.root)
        options.setdefault("env", self.env)
        return time_command(argv, repeat=repeat or self.repeat, **options)

    def run_child(self, script: str | Path, *args: str, what: str) -> Any:
        """Run ``python script args...`` from the repository root with :attr:`env` and return the
        JSON it prints (in-process figures are measured in a fresh child, away from run.py's state)."""
        child = subprocess.run(
            [self.python, str(script), *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            raise RuntimeError(f"{what} child failed:\n{child.stderr.strip()[-2000:]}")
        return json.loads(child.stdout)

    def tool(self, name: str) -> str:
        """A console script of this environment (next to the interpreter), else from PATH."""
        beside = Path(self.python).parent / name
        if beside.is_file():
            return str(beside)
        found = shutil.which(name)
        if found is None:
            raise CommandFailed(f"`{name}` is not installed; run: pip install -e '.[bench]'")
        return found

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)
