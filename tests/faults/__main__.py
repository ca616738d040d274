"""``python -m tests.faults SCENARIO [--runs N] [--seed S]``: run fault scenarios, print tables.

Run from the repository root (so ``tests`` and ``drplan`` import). Scenarios: kill9, signals,
pipes, proxy, journal, concurrent, recover, or ``all``. ``--json FILE`` writes every result;
``--keep`` keeps the scratch folder (journals, evidence, rendered plans) and prints its path.
``pipes`` mounts a small tmpfs and so wants root.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from tests.faults.lab import Lab
from tests.faults.scenarios import SCENARIOS, Result, run_scenario


def _count(items: list[str] | None) -> str:
    return "-" if items is None else str(len(items))


def runs_table(results: list[Result]) -> str:
    """One line per run."""
    head = (
        "scenario",
        "case",
        "exit",
        "hang",
        "secs",
        "left",
        "byId",
        "sweep",
        "both",
        "dup",
        "evid",
        "findings",
    )
    rows = [head]
    for r in results:
        rows.append(
            (
                r.scenario,
                r.case,
                "-" if r.exit_code is None else str(r.exit_code),
                "HANG" if r.hung else "",
                f"{r.elapsed:.1f}",
                str(len(r.leftovers)),
                _count(r.after_id),
                _count(r.after_sweep),
                _count(r.after_both),
                str(len(r.duplicates)),
                {True: "yes", False: "NO", None: "-"}[r.evidence],
                str(len(r.findings)),
            )
        )
    return _format(rows)


def scenario_table(results: list[Result]) -> str:
    """One line per scenario: runs, hangs, runs leaving something after each remedy, exit codes seen,
    runs with duplicate create calls, runs that wrote evidence."""
    head = ("scenario", "runs", "hangs", "left", "byId", "sweep", "both", "exit codes", "dup", "evidence")
    rows = [head]
    for name in dict.fromkeys(r.scenario for r in results):
        group = [r for r in results if r.scenario == name]

        def runs_with(attr: str, group: list[Result] = group) -> str:
            values = [getattr(r, attr) for r in group]
            known = [v for v in values if v is not None]
            return (
                f"{sum(1 for v in known if v)}/{len(known)} ({sum(len(v) for v in known)})" if known else "-"
            )

        codes = Counter("hang" if r.hung else str(r.exit_code) for r in group)
        evidence = [r.evidence for r in group if r.evidence is not None]
        rows.append(
            (
                name,
                str(len(group)),
                str(sum(r.hung for r in group)),
                runs_with("leftovers"),
                runs_with("after_id"),
                runs_with("after_sweep"),
                runs_with("after_both"),
                " ".join(f"{code}x{n}" for code, n in sorted(codes.items())),
                str(sum(1 for r in group if r.duplicates)),
                f"{sum(evidence)}/{len(evidence)}" if evidence else "-",
            )
        )
    return _format(rows) + "\n(left/byId/sweep/both: runs with leftovers / runs measured (total resources))"


def _format(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip() for row in rows
    )


def findings(results: list[Result]) -> str:
    lines = []
    for r in results:
        for finding in r.findings:
            lines.append(f"- [{r.scenario} {r.case}] {finding}")
    return "\n".join(lines) or "(none)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults", description=__doc__.split("\n")[0])
    parser.add_argument("scenario", choices=(*SCENARIOS, "all"))
    parser.add_argument("--runs", type=int, default=1, help="repetitions (kill9: random kill moments)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments and of the proxy")
    parser.add_argument("--json", type=Path, help="write every result to this file")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--verbose", action="store_true", help="print each run's last stderr lines")
    args = parser.parse_args(argv)
    names = SCENARIOS if args.scenario == "all" else (args.scenario,)
    results: list[Result] = []
    with Lab(seed=args.seed, keep=args.keep) as lab:
        for name in names:
            print(f"{name}:", flush=True)
            results += run_scenario(
                lab, name, runs=args.runs, seed=args.seed, log=lambda s: print(s, flush=True)
            )
        if args.keep:
            print(f"scratch folder: {lab.root}")
    print("\nper run:\n" + runs_table(results))
    print("\nper scenario:\n" + scenario_table(results))
    print("\nfindings:\n" + findings(results))
    if args.verbose:
        for r in results:
            print(f"\n[{r.scenario} {r.case}] stderr tail:\n  " + "\n  ".join(r.stderr_tail))
    if args.json:
        args.json.write_text(json.dumps([r.to_json() for r in results], indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
