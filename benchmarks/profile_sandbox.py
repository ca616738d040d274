"""Where a sandbox drill's AWS calls come from, and what each costs the emulator.

    python benchmarks/profile_sandbox.py 80            # benchmarks/out/sandbox-80.json, generated on demand
    python benchmarks/profile_sandbox.py 20 --top 30 --depth 3

Runs ``drplan drill PLAN --sandbox --approve-all`` in this process (with a throw-away state
directory) and prints, on stderr after the drill's own output: the process's CPU and wall time,
the AWS calls by operation and by the drplan functions that made them (``--depth`` frames of
drplan's own code, outside the engine and the AWS layer), and the CPU time the embedded emulator
spent in each operation (moto's handler and its serialisation, timed in the thread that runs it:
the caller's, since the sandbox's calls reach the emulator in-process). A tool, not a benchmark:
run.py does not run it. For a whole-process profile of every thread, use py-spy::

    py-spy record --gil -r 200 -f raw -o drill.txt -- python -m drplan drill PLAN --sandbox --approve-all
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("services", type=int, help="size of the generated plan (services)")
    parser.add_argument("--top", type=int, default=25, help="rows of each table (default 25)")
    parser.add_argument("--depth", type=int, default=2, help="drplan frames naming a call site (default 2)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE))
    from generate import generate_plan

    plan = HERE / "out" / f"sandbox-{args.services}.json"
    plan.parent.mkdir(exist_ok=True)
    if not plan.exists():
        plan.write_text(json.dumps(generate_plan(args.services), indent=1), encoding="utf-8")

    from moto.core.responses import BaseResponse

    import drplan.aws as aws

    calls: collections.Counter[tuple[str, str, str]] = collections.Counter()
    served: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    before_call = aws.AwsSession._before_call

    def counting(self: Any, model: Any, context: Any = None, **kwargs: Any) -> None:
        frame, sites = sys._getframe(1), []
        while frame is not None and len(sites) < args.depth:
            name = frame.f_code.co_filename
            if "/drplan/" in name and "/engine/" not in name and not name.endswith("/aws.py"):
                sites.append(f"{name.split('/drplan/')[-1]}:{frame.f_code.co_name}")
            frame = frame.f_back
        with lock:
            calls[(model.service_model.service_name, model.name, " <- ".join(sites))] += 1
        before_call(self, model, context=context, **kwargs)

    call_action = BaseResponse.call_action

    def timed(self: Any) -> Any:
        started = time.thread_time()
        try:
            return call_action(self)
        finally:
            with lock:
                served[f"{type(self).__name__}.{self._get_action()}"] += time.thread_time() - started

    aws.AwsSession._before_call = counting  # type: ignore[method-assign]
    BaseResponse.call_action = timed  # type: ignore[method-assign]

    from drplan.cli import main as drplan_main

    cpu, wall = time.process_time(), time.perf_counter()
    with tempfile.TemporaryDirectory() as state, contextlib.suppress(SystemExit):
        drplan_main(["drill", str(plan), "--sandbox", "--approve-all", "--state-dir", state])
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall

    out = sys.stderr
    print(f"\n{plan.name}: CPU {cpu:.2f} s, wall {wall:.2f} s; {sum(calls.values())} AWS calls", file=out)
    print(f"\ncalls by operation and call site (top {args.top}):", file=out)
    for (service, operation, site), count in calls.most_common(args.top):
        print(f"{count:6d}  {service}:{operation}  {site}", file=out)
    print(f"\nemulator CPU by operation, {sum(served.values()):.2f} s in all (top {args.top}):", file=out)
    for operation, seconds in served.most_common(args.top):
        print(f"{seconds:8.3f} s  {operation}", file=out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
