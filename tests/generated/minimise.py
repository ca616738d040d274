"""Minimise a plan that breaks the contract, by deleting what the failure does not need.

Hypothesis shrinks failures of the render contract by itself; a failing *drill* takes seconds per
attempt, so shrinking it through hypothesis is slow. This greedy reducer works on the plan's JSON
instead: it tries to delete each service, step, optional property and parameter (and to empty
lists and shorten strings), and keeps a deletion when ``drplan validate`` still accepts the plan
and the contract still fails with a message containing MATCH::

    cd tests && python -m generated.minimise PLAN.json "BackupArn" --drill -o generated/found/NAME.json

Without ``--drill`` only the render contract (plan, graph, docs) is checked.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from generated import contract

Path_ = tuple[Any, ...]
#: Never deleted: what makes a plan a plan.
REQUIRED = {("drplan",), ("name",), ("services",)}


def failure(plan: dict[str, Any], drill: bool, grep: bool = False) -> str | None:
    """The contract's failure message for ``plan``, None when it holds or validate refuses it.
    With ``grep``, what the drill printed (whether or not the contract holds)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = contract.write_plan(plan, Path(tmp))
        try:
            validation = contract.validate(path)
        except AssertionError as exc:
            return str(exc)
        if validation.kind == "rejected" or (drill and validation.kind != "valid"):
            return None
        if grep:
            result = contract.drill(path, Path(tmp))
            return result.stderr + result.stdout
        try:
            if drill:
                contract.check_drill(path, Path(tmp))
            else:
                contract.check_render(path, validation)
        except AssertionError as exc:
            return str(exc)
    return None


def _places(node: Any, here: Path_ = ()) -> Iterator[Path_]:
    """Every deletable place, outermost first (so whole services go before their parts)."""
    if isinstance(node, dict):
        for key in list(node):
            yield (*here, key)
        for key, value in list(node.items()):
            yield from _places(value, (*here, key))
    elif isinstance(node, list):
        for index in range(len(node)):
            yield (*here, index)
        for index, value in enumerate(node):
            yield from _places(value, (*here, index))


def _get(node: Any, path: Path_) -> Any:
    for part in path:
        node = node[part]
    return node


def _without(plan: dict[str, Any], path: Path_) -> dict[str, Any] | None:
    if path in REQUIRED or path[-1:] in (("steps",), ("id",), ("uses",), ("with",)):
        return None
    out = copy.deepcopy(plan)
    try:
        parent = _get(out, path[:-1])
        del parent[path[-1]]
    except (KeyError, IndexError, TypeError):
        return None
    return out


def minimise(
    plan: dict[str, Any], match: str, drill: bool, log: Any = sys.stderr, grep: bool = False
) -> dict[str, Any]:
    first = failure(plan, drill, grep)
    if first is None or match not in first:
        raise SystemExit(f"the plan does not fail with {match!r}:\n{first}")
    changed = True
    while changed:  # passes until nothing more can go
        changed = False
        position = 0
        while True:
            places = list(_places(plan))
            if position >= len(places):
                break
            path = places[position]
            smaller = _without(plan, path)
            message = failure(smaller, drill, grep) if smaller is not None else None
            if message is not None and match in message:
                print(f"deleted {'/'.join(map(str, path))}", file=log)
                plan, changed = smaller, True  # the places after it moved up: same position again
            else:
                position += 1
    return plan


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("plan")
    parser.add_argument("match", help="text the failure message must keep containing")
    parser.add_argument("--drill", action="store_true", help="check the drill contract (else render)")
    parser.add_argument(
        "--grep",
        action="store_true",
        help="keep what makes a drill print MATCH, even when the contract holds (to study a finding)",
    )
    parser.add_argument("-o", "--output", help="write the minimised plan here (default: stdout)")
    args = parser.parse_args()
    import os

    # As tests/conftest.py does: fake credentials, never a real account.
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(key, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        MOTO_EC2_LOAD_DEFAULT_AMIS="false",
    )
    plan = json.loads(Path(args.plan).read_text(encoding="utf-8"))
    small = minimise(plan, args.match, args.drill or args.grep, grep=args.grep)
    text = json.dumps(small, indent=2, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    print(failure(small, args.drill or args.grep, args.grep), file=sys.stderr)


if __name__ == "__main__":
    main()
