"""Drills under faults in their own process: kill -9, signals, closed pipes, a full disk, lost
responses, a damaged journal. A bounded, deterministic subset of ``tests/faults`` (run
``python -m tests.faults all --runs N`` for the full tables).

Each test runs ``drplan drill`` as a child process against a seeded moto server through the fault
proxy and asserts what the docs promise: a drill deletes everything it created, also when it is
interrupted (docs/drills.md#cleanup); ``drplan cleanup RUN_ID`` and ``cleanup --sweep`` remove what
a crashed drill left (docs/cli.md#drplan-cleanup); an interrupted run exits 3 and still writes its
evidence; no restore is started twice; nothing hangs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults import scenarios
from tests.faults.lab import Lab
from tests.faults.scenarios import Result

pytestmark = pytest.mark.slow

#: A drill of the fault plans takes 2-10 s here: a child running this long has hung.
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """One moto server and fault proxy for the module; every scenario reseeds a fresh account."""
    with Lab(seed=7) as lab:
        yield lab


@pytest.fixture(autouse=True)
def _short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scenarios, "RUN_TIMEOUT", TIMEOUT)
    monkeypatch.setattr(scenarios, "CLEANUP_TIMEOUT", TIMEOUT)


def explain(result: Result) -> str:
    """What the harness saw, for assertion messages."""
    lines = [
        f"{result.scenario} {result.case}: exit {result.exit_code}, {result.elapsed}s, run {result.run_id}"
    ]
    lines += [f"  finding: {f}" for f in result.findings]
    lines += [f"  after: {c}" for c in result.commands]
    lines += ["  stderr tail:"] + [f"    {line}" for line in result.stderr_tail]
    return "\n".join(lines)


def assert_no_duplicate_creates(result: Result) -> None:
    assert not result.duplicates, "a restore/create call reached AWS more than once\n" + explain(result)


def assert_production_untouched(result: Result) -> None:
    assert not result.production_changes, explain(result)


# --- kill -9 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("during", "parallelism"),
    [("rds-create", None), ("ddb-create", 1), ("dns-upsert", None), ("cleanup", None)],
    ids=["inside-slow-rds-restore", "inside-slow-dynamodb-restore-p1", "inside-dns-upsert", "inside-cleanup"],
)
def test_after_kill9_cleanup_by_run_id_removes_everything_the_run_created(
    lab: Lab, during: str, parallelism: int | None
) -> None:
    """SIGKILL while restore calls are in flight (AWS has acted, the answer is late) or while cleanup
    deletes; then `drplan resume RUN_ID` (which carries the drill on, re-attaching what the dead
    process created, and cleans up), `drplan cleanup RUN_ID`, then `drplan cleanup --sweep`."""
    result = scenarios.kill9(lab, during=during, parallelism=parallelism, create_delay=2.0)
    assert result.run_id, "the drill had not journaled its run when killed\n" + explain(result)
    resumed = [c for c in result.commands if c.startswith("resume ")]
    assert resumed and all(": exit 0 " in c for c in resumed), "the resumed drill failed\n" + explain(result)
    assert result.extra["after_resume"] == [], "resume left resources\n" + explain(result)
    assert result.after_id == [], "`drplan cleanup RUN_ID` left resources of the run\n" + explain(result)
    assert result.after_both == [], "resources survive cleanup by run id and the sweep\n" + explain(result)
    assert not [f for f in result.findings if "exited 0" in f], "cleanup claimed success\n" + explain(result)
    assert_no_duplicate_creates(result)
    assert_production_untouched(result)


# --- signals ----------------------------------------------------------------------------------------------

SIGNAL_CASES = [
    ("SIGHUP", "steps"),
    ("SIGINT", "steps"),
    ("SIGTERM", "steps"),
    ("SIGHUP", "check"),
    ("SIGINT", "check"),
    ("SIGTERM", "check"),
    ("SIGINT", "cleanup"),
    ("SIGTERM", "evidence"),
]


@pytest.mark.parametrize(("name", "phase"), SIGNAL_CASES, ids=[f"{n}-{p}" for n, p in SIGNAL_CASES])
def test_a_signalled_drill_cleans_up_writes_evidence_and_exits_3(lab: Lab, name: str, phase: str) -> None:
    """docs/cli.md: the first Ctrl-C (or SIGTERM) lets running steps reach a safe point, the drill
    cleans up, and the exit code is 3; docs/drills.md: evidence is written also when the drill is
    interrupted. A closed terminal (SIGHUP) must not abandon the drill's resources either."""
    result = scenarios.signalled(lab, name, phase)
    assert result.extra.get("phase_hit"), f"the harness did not reach the {phase} phase\n" + explain(result)
    assert not result.hung, f"drplan did not end within {TIMEOUT:.0f}s after {name}\n" + explain(result)
    assert result.leftovers == [], f"the drill left resources behind after {name}\n" + explain(result)
    if phase in ("steps", "check"):
        assert result.cleanup_latency is not None, f"no cleanup after {name}\n" + explain(result)
        assert result.cleanup_latency <= scenarios.CLEANUP_START_SECONDS, (
            f"cleanup started {result.cleanup_latency}s after {name}\n" + explain(result)
        )
    if phase == "evidence":
        assert result.exit_code in (0, 3), explain(result)
    else:
        assert result.exit_code == 3, "an interrupted drill exits 3 (docs/cli.md)\n" + explain(result)
    assert result.evidence, f"no report.json after {name} during {phase}\n" + explain(result)
    assert result.report.get("cleanup") == "complete", explain(result)
    assert_no_duplicate_creates(result)
    assert_production_untouched(result)


# --- closed pipes, a full events file ----------------------------------------------------------------------


@pytest.mark.parametrize("case", ["stderr-closed", "events-dev-full"])
def test_a_drill_whose_outputs_fail_still_ends_cleanly_and_leaves_nothing(lab: Lab, case: str) -> None:
    """Progress on a closed stderr (`drplan drill ... 2>&1 | head`), or `--events /dev/full`: the
    drill must end (no hang), leave nothing behind, exit with a documented code and no traceback,
    and, once it has started a run, write its evidence."""
    result = scenarios.pipes(lab, case)
    assert not result.hung, "drplan hung\n" + explain(result)
    assert result.leftovers == [], "the drill left resources behind\n" + explain(result)
    assert result.exit_code in scenarios.DOCUMENTED_EXITS, explain(result)
    assert not [f for f in result.findings if "traceback" in f], explain(result)
    if result.run_id is not None:
        assert result.evidence, "the run started but wrote no report.json\n" + explain(result)
    assert_no_duplicate_creates(result)


# --- lost responses ------------------------------------------------------------------------------------------


def test_a_restore_whose_response_is_lost_is_not_started_twice(lab: Lab) -> None:
    """AWS executes each restore/create call but the connection drops before the answer arrives
    (once per call): the drill must not start a second restore, and must not lose track of the
    first one."""
    result = scenarios.faulty_endpoint(lab, "lost-responses")
    assert not result.hung, explain(result)
    assert_no_duplicate_creates(result)
    assert result.leftovers == [], "the drill lost track of what it created\n" + explain(result)


# --- a damaged journal ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["truncated-mid-line", "corrupted-line"])
def test_cleanup_from_a_damaged_journal_says_so_and_never_claims_success_falsely(lab: Lab, case: str) -> None:
    """A drill killed during cleanup, its journal then truncated or corrupted: `drplan cleanup
    RUN_ID` must say the journal is damaged (any wording), exit 3 if anything of the run remains,
    never print 'everything removed' while resources remain, and with the sweep leave nothing."""
    result = scenarios.damaged_journal(lab, case)
    assert result.extra.get("damage"), explain(result)
    assert result.extra.get("mentions_damage"), "cleanup did not report the damaged journal\n" + explain(
        result
    )
    if result.after_id:
        assert result.extra.get("cleanup_exit") == 3, (
            "resources remain, so cleanup must exit 3 (docs/cli.md)\n" + explain(result)
        )
    assert not [f for f in result.findings if "exited 0" in f or "traceback" in f], explain(result)
    assert result.after_both == [], "resources survive cleanup by run id and the sweep\n" + explain(result)
