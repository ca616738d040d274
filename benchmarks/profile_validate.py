"""Profile ``drplan validate`` on a generated plan: where the time goes, by function and by import.

    python benchmarks/profile_validate.py 1000              # cProfile, top functions by own time
    python benchmarks/profile_validate.py 10000 --sort cumulative --top 40
    python benchmarks/profile_validate.py 1000 --imports     # python -X importtime, slowest imports

cProfile roughly doubles the run time of Python-heavy code; read the shares, not the seconds.
Not a benchmark (run.py does not run it): a tool to find what to make faster.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import OUT_DIR, write_plans  # noqa: E402


def profile(path: Path, sort: str, top: int) -> str:
    from drplan.cli import main

    profiler = cProfile.Profile()
    profiler.enable()
    with contextlib.suppress(SystemExit):
        main(["validate", str(path)])
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats(sort).print_stats(top)
    return out.getvalue()


def imports(path: Path, top: int) -> str:
    """The slowest imports (cumulative, microseconds) of a fresh ``drplan validate`` process."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(OUT_DIR / "pycache")
    command = [sys.executable, "-X", "importtime", "-m", "drplan", "validate", str(path)]
    for _ in range(2):  # the first run fills the bytecode cache
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    rows = []
    for line in done.stderr.splitlines():
        found = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if found:
            rows.append((int(found[2]), int(found[1]), len(found[3]) // 2, found[4]))
    total = sum(cumulative for cumulative, _, depth, _ in rows if depth == 0)
    lines = [
        f"all imports: {total / 1000:.0f} ms (importtime's own overhead included)",
        "cumulative ms  self ms  module",
    ]
    for cumulative, own, depth, name in sorted(rows, reverse=True)[:top]:
        lines.append(f"{cumulative / 1000:13.1f}  {own / 1000:7.1f}  {'  ' * depth}{name}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Profile drplan validate on a generated plan.")
    parser.add_argument("services", type=int, help="plan size: 100, 1000, 10000 (generated when missing)")
    parser.add_argument("--sort", default="tottime", choices=("tottime", "cumulative", "ncalls"))
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--imports", action="store_true", help="show import times instead of a profile")
    args = parser.parse_args(argv)
    (path,) = write_plans(OUT_DIR, [args.services])
    print(imports(path, args.top) if args.imports else profile(path, args.sort, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
