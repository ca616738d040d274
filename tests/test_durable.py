"""Durable runs: locks, shared state in S3, damaged journals, resume, secrets, refreshed credentials.

Real subprocesses and moto's HTTP server (``--endpoint-url``) where the point is what survives a
process: a lock held by another run, a journal cut short, a process killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from drplan.engine.journal import JOURNAL, journal_state, read_journal
from drplan.engine.lock import Holder, RunLock, lock_path

pytestmark = pytest.mark.slow
REGION = "us-east-1"


def drplan(
    *args: str, cwd: Path, timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drplan", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def seed_tables(endpoint: str, *names: str) -> Any:
    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION)
    for name in names:
        ddb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.put_item(TableName=name, Item={"pk": {"S": "row-1"}})
        ddb.create_backup(TableName=name, BackupName=f"{name}-nightly")
    return ddb


def write_plan(path: Path, *, wait: str = "PT1S", extra_steps: list[dict[str, Any]] | None = None) -> Path:
    """Two services restored from DynamoDB backups; `orders` waits a while after its restore."""
    plan = {
        "drplan": 1,
        "name": "durable",
        "aws": {"region": REGION},
        "objectives": {"rto": "PT1H"},
        "services": {
            "orders": {
                "steps": [
                    {
                        "id": "restore",
                        "uses": "aws.dynamodb.restore_backup",
                        "with": {"source_table": "orders", "target": "orders-restored"},
                        "estimate": "PT5M",
                    },
                    {"id": "settle", "uses": "wait", "with": {"duration": wait}},
                    *(extra_steps or []),
                ]
            },
            "carts": {
                "steps": [
                    {
                        "id": "restore",
                        "uses": "aws.dynamodb.restore_backup",
                        "with": {"source_table": "carts", "target": "carts-restored"},
                        "estimate": "PT5M",
                    }
                ]
            },
        },
    }
    path.write_text(json.dumps(plan, indent=2), encoding="utf-8")
    return path


def tables(ddb: Any) -> list[str]:
    return sorted(ddb.list_tables()["TableNames"])


# --- locks ---------------------------------------------------------------------------------------------


def test_a_second_run_of_a_plan_is_refused_naming_the_holder(moto_server: str, tmp_path: Path) -> None:
    ddb = seed_tables(moto_server, "orders", "carts")
    plan = write_plan(tmp_path / "plan.json")
    state = tmp_path / ".drplan"
    held = RunLock.acquire(
        lock_path(state, "durable", "123456789012"), run_id="0ther0ne", user="alice@ci-7", mode="drill"
    )
    try:
        refused = drplan(
            "drill", str(plan), "--endpoint-url", moto_server, "--state-dir", str(state), cwd=tmp_path
        )
    finally:
        held.release()
    assert refused.returncode == 1, refused.stderr
    assert "drill run 0ther0ne by alice@ci-7" in refused.stderr
    assert tables(ddb) == ["carts", "orders"]  # refused before the first change
    assert not list((state / "runs").iterdir())  # and no empty run folder left behind

    # A lock whose lease lapsed (its holder died without releasing it) is taken over.
    path = lock_path(state, "durable", "123456789012")
    path.parent.mkdir(parents=True, exist_ok=True)
    stale = Holder(
        "deadbeef", "bob@ci-3", "another-host", 4242, "drill", time.time() - 7200, time.time() - 600
    )
    path.write_text(json.dumps(stale.__dict__), encoding="utf-8")
    done = drplan("drill", str(plan), "--endpoint-url", moto_server, "--state-dir", str(state), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not path.exists()  # released at the end
    assert tables(ddb) == ["carts", "orders"]


def test_s3_state_locks_across_machines_and_keeps_history(moto_server: str, tmp_path: Path) -> None:
    """Two 'machines' (two state folders) share s3://drplan-state/team: the journal, the evidence and
    the history written by one are read by the other; a lock held in S3 refuses the other's run."""
    ddb = seed_tables(moto_server, "orders", "carts")
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name=REGION)
    s3.create_bucket(Bucket="drplan-state")
    plan = write_plan(tmp_path / "plan.json")
    shared = ["--state", "s3://drplan-state/team", "--endpoint-url", moto_server]
    first = drplan("drill", str(plan), *shared, "--state-dir", str(tmp_path / "machine-a"), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    run_id = first.stderr.strip().splitlines()[-1].split()[2]  # "PASSED: drill <id> of ..."
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="drplan-state")["Contents"]]
    assert any(k.startswith(f"team/runs/{run_id}/journal/") for k in keys)
    assert f"team/runs/{run_id}/report/report.json" in keys
    assert not any(k.startswith("team/locks/") for k in keys)  # released

    listed = drplan(
        "runs", *shared, "--format", "json", "--state-dir", str(tmp_path / "machine-b"), cwd=tmp_path
    )
    assert listed.returncode == 0, listed.stderr
    [summary] = json.loads(listed.stdout)
    assert summary["run_id"] == run_id and summary["status"] == "succeeded" and summary["passed"] is True
    shown = drplan(
        "show", run_id, *shared, "--format", "json", "--state-dir", str(tmp_path / "machine-b"), cwd=tmp_path
    )
    assert shown.returncode == 0 and json.loads(shown.stdout)["run"]["id"] == run_id

    # Machine B holds the plan's lock in S3: machine A's next drill is refused, naming B's run.
    s3.put_object(
        Bucket="drplan-state",
        Key="team/locks/durable@123456789012.json",
        Body=json.dumps(
            Holder(
                "b0b0b0b0", "bob@machine-b", "machine-b", 1, "drill", time.time(), time.time() + 600
            ).__dict__
        ),
    )
    refused = drplan("drill", str(plan), *shared, "--state-dir", str(tmp_path / "machine-a"), cwd=tmp_path)
    assert refused.returncode == 1 and "drill run b0b0b0b0 by bob@machine-b" in refused.stderr
    assert tables(ddb) == ["carts", "orders"]


# --- a process that dies --------------------------------------------------------------------------------


def _wait_for(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)


def _journal(state: Path) -> Path:
    [journal] = list((state / "runs").glob(f"*/{JOURNAL}"))
    return journal


def _kill_when(args: list[str], cwd: Path, state: Path, kinds: set[str]) -> Path:
    """Start drplan, SIGKILL it once its journal holds an event of each of ``kinds``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "drplan", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"drplan ended before it could be killed (exit {proc.returncode})")
            runs = list((state / "runs").glob(f"*/{JOURNAL}"))
            seen = {e.kind + ":" + (e.step or "") for e in read_journal(runs[0]).events} if runs else set()
            return kinds <= seen

        _wait_for(ready)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return _journal(state)


def test_resume_after_kill_9_reattaches_and_starts_no_restore_twice(moto_server: str, tmp_path: Path) -> None:
    ddb = seed_tables(moto_server, "orders", "carts")
    plan = write_plan(tmp_path / "plan.json", wait="PT8S")
    state = tmp_path / "state"
    args = ["recover", str(plan), "--yes", "--endpoint-url", moto_server, "--state-dir", str(state)]
    journal = _kill_when(
        args, tmp_path, state, {"step.started:orders.settle", "step.succeeded:carts.restore"}
    )
    run_id = journal.parent.name
    assert tables(ddb) == ["carts", "carts-restored", "orders", "orders-restored"]
    assert journal_state(run_id, journal).finished is None

    # History shows the run as unfinished (its process died before run.finished).
    listed = drplan("runs", "--format", "json", "--state-dir", str(state), cwd=tmp_path)
    assert [(r["run_id"], r["status"]) for r in json.loads(listed.stdout)] == [(run_id, "unfinished")]
    resumed = drplan("resume", run_id, "--yes", "--state-dir", str(state), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.strip().endswith("(exit 0)")
    events = read_journal(journal).events
    starts = [e.step for e in events if e.kind == "step.started"]
    # Each restore was started once, by the first process; resume only re-attached the wait.
    assert starts.count("orders.restore") == 1 and starts.count("carts.restore") == 1
    assert [e.kind for e in events].count("run.resumed") == 1
    assert journal_state(run_id, journal).status == {
        "orders.restore": "succeeded",
        "orders.settle": "succeeded",
        "carts.restore": "succeeded",
    }
    assert tables(ddb) == ["carts", "carts-restored", "orders", "orders-restored"]
    again = drplan("resume", run_id, "--yes", "--state-dir", str(state), cwd=tmp_path)
    assert again.returncode == 0 and "nothing to resume" in again.stderr


def test_a_damaged_journal_is_reported_and_cleanup_still_removes_everything(
    moto_server: str, tmp_path: Path
) -> None:
    """A drill killed after its restores, its journal then cut mid-line and stripped of the records
    of what it created: cleanup finds the tables by the names journaled before the create calls and
    by their tags, says the journal was damaged, and removes everything."""
    ddb = seed_tables(moto_server, "orders", "carts")
    plan = write_plan(tmp_path / "plan.json", wait="PT30S")
    state = tmp_path / "state"
    args = ["drill", str(plan), "--endpoint-url", moto_server, "--state-dir", str(state)]
    journal = _kill_when(
        args, tmp_path, state, {"step.started:orders.settle", "step.succeeded:carts.restore"}
    )
    run_id = journal.parent.name
    assert len(tables(ddb)) == 4
    lines = journal.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if '"step.resource"' not in line and '"step.handle"' not in line]
    kept = [line for line in kept if '"step.started"' not in line]
    journal.write_text("\n".join(kept) + "\n" + lines[-1][: len(lines[-1]) // 2], encoding="utf-8")

    done = drplan("cleanup", run_id, "--state-dir", str(state), "--endpoint-url", moto_server, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "journal of run" in done.stderr and "damaged" in done.stderr
    assert "cut short" in done.stderr and "records" in done.stderr  # the missing lines are noticed
    assert "the journal was damaged" in done.stderr.strip().splitlines()[-1], done.stderr
    assert tables(ddb) == ["carts", "orders"]


# --- secrets and credentials -------------------------------------------------------------------------


def test_a_secret_never_appears_in_any_file_or_output(moto_server: str, tmp_path: Path) -> None:
    secret = "s3cr3t-Pa55w0rd-do-not-print"
    seed_tables(moto_server, "orders", "carts")
    command = {
        "id": "migrate",
        "uses": "command",
        "with": {
            "run": [sys.executable, "-c", "import os; print('token=' + os.environ['DB_PASSWORD'])"],
            "env": {"DB_PASSWORD": "${env:LEDGER_DB_PASSWORD}"},
            "outputs": ["token"],
        },
        "estimate": "PT1M",
    }
    plan = write_plan(tmp_path / "plan.json", extra_steps=[command])
    data = json.loads(plan.read_text())
    data["allow_commands"] = True
    plan.write_text(json.dumps(data, indent=2))
    state = tmp_path / "state"
    done = drplan(
        "drill",
        str(plan),
        "--allow-commands",
        "--endpoint-url",
        moto_server,
        "--state-dir",
        str(state),
        "--events",
        str(tmp_path / "events.jsonl"),
        cwd=tmp_path,
        env={"LEDGER_DB_PASSWORD": secret},
    )
    assert done.returncode == 0, done.stderr
    outputs = {"stdout": done.stdout, "stderr": done.stderr}
    for path in [*state.rglob("*"), tmp_path / "events.jsonl"]:
        if path.is_file():
            outputs[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    assert len(outputs) > 5
    leaked = [name for name, text in outputs.items() if secret in text]
    assert leaked == [], f"the secret leaked into {leaked}"
    report = json.loads(next(state.rglob("report.json")).read_text())
    migrate = next(s for s in report["steps"] if s["key"] == "orders.migrate")
    assert migrate["status"] == "succeeded" and migrate["outputs"]["token"] == "***"


def test_assumed_role_credentials_are_refreshed_during_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run longer than the role's session keeps working: botocore's assume-role fetcher renews the
    credentials (with a 15-minute session, at every use inside the refresh window)."""
    from botocore.credentials import AssumeRoleCredentialFetcher
    from moto import mock_aws

    from drplan.aws import AwsSession

    fetched = []
    original = AssumeRoleCredentialFetcher.fetch_credentials

    def counting(self: Any) -> Any:
        creds = original(self)
        fetched.append(creds["access_key"])
        return creds

    monkeypatch.setattr(AssumeRoleCredentialFetcher, "fetch_credentials", counting)
    with mock_aws():
        session = AwsSession(region=REGION, role_arn="arn:aws:iam::123456789012:role/dr", role_duration=900)
        client = session.client("dynamodb")
        for _ in range(3):
            client.list_tables()
        assert "assumed-role/dr" in session.client("sts").get_caller_identity()["Arn"]
    assert len(fetched) >= 3, fetched
    assert len(set(fetched)) >= 2  # new credentials each time, not one set for the whole run


@pytest.mark.parametrize("how", ["option", "environment"])
def test_the_external_id_a_third_partys_role_requires_is_sent_when_assuming_it(
    monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """``--external-id`` (or DRPLAN_EXTERNAL_ID) reaches STS AssumeRole with the role of --role-arn."""
    from botocore.credentials import AssumeRoleCredentialFetcher
    from click.testing import CliRunner
    from moto import mock_aws

    from drplan.cli import cli

    sent: list[dict[str, Any]] = []
    original = AssumeRoleCredentialFetcher.__init__

    def recording(self: Any, *args: Any, **kwargs: Any) -> None:
        sent.append({"role": args[2], **(kwargs.get("extra_args") or {})})
        original(self, *args, **kwargs)

    monkeypatch.setattr(AssumeRoleCredentialFetcher, "__init__", recording)
    argv = [
        "cleanup",
        "--sweep",
        "--dry-run",
        "--region",
        REGION,
        "--role-arn",
        "arn:aws:iam::123456789012:role/dr",
    ]
    env = {}
    if how == "option":
        argv += ["--external-id", "partner-7f3a"]
    else:
        env["DRPLAN_EXTERNAL_ID"] = "partner-7f3a"
    with mock_aws():
        result = CliRunner().invoke(cli, argv, env=env)
    assert result.exit_code == 0, result.output
    assert [(s["role"], s.get("ExternalId")) for s in sent] == [
        ("arn:aws:iam::123456789012:role/dr", "partner-7f3a")
    ]


def test_a_steps_role_is_assumed_with_its_external_id_and_a_session_name_naming_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A step's `role_arn` with `external_id` (a role in a DR account): the run assumes it with that
    ID (over --external-id, which still serves other roles) and with `drplan-MODE-RUNID` as the
    session name, so the other account's CloudTrail says which run did what."""
    from botocore.credentials import AssumeRoleCredentialFetcher
    from click.testing import CliRunner
    from moto import mock_aws

    from drplan.cli import cli

    sent: list[dict[str, Any]] = []
    original = AssumeRoleCredentialFetcher.__init__

    def recording(self: Any, *args: Any, **kwargs: Any) -> None:
        sent.append({"role": args[2], **(kwargs.get("extra_args") or {})})
        original(self, *args, **kwargs)

    monkeypatch.setattr(AssumeRoleCredentialFetcher, "__init__", recording)
    dr_role, other_role = "arn:aws:iam::123456789012:role/dr-restore", "arn:aws:iam::123456789012:role/ops"
    plan = {
        "drplan": 1,
        "name": "dr-account",
        "aws": {"region": REGION},
        "objectives": {"rto": "PT1H"},
        "services": {
            "orders": {
                "steps": [
                    {
                        "id": "restore",
                        "uses": "aws.dynamodb.restore_backup",
                        "with": {"source_table": "orders", "target": "orders-restored"},
                        "role_arn": dr_role,
                        "external_id": "acme-dr-7f3a",
                        "estimate": "PT5M",
                    },
                    {
                        "id": "again",
                        "uses": "aws.dynamodb.restore_backup",
                        "with": {"source_table": "orders", "target": "orders-again"},
                        "role_arn": other_role,
                        "estimate": "PT5M",
                    },
                ]
            }
        },
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(
            TableName="orders",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.create_backup(TableName="orders", BackupName="orders-nightly")
        result = CliRunner().invoke(
            cli, ["recover", str(path), "--yes", "--external-id", "ops-1234", "--state-dir", "state"]
        )
        assert result.exit_code == 0, result.output
    (journal,) = (tmp_path / "state" / "runs").glob("*/journal.jsonl")
    run_id = journal.parent.name
    assumed = {s["role"]: (s.get("ExternalId"), s["RoleSessionName"]) for s in sent}
    assert assumed == {
        dr_role: ("acme-dr-7f3a", f"drplan-recover-{run_id}"),  # the step's own ID
        other_role: ("ops-1234", f"drplan-recover-{run_id}"),  # --external-id for the others
    }


# --- fault rehearsal: losing the orchestrator ------------------------------------------------------------


def test_a_crash_rehearsal_kills_the_drill_once_the_step_started_then_resumes_it(
    moto_server: str, tmp_path: Path
) -> None:
    """`--inject STEP:crash`: the drill's process is SIGKILLed right after the step's restore was
    started and journaled; drplan resumes the run from its journal, re-attaches to that restore
    (never starting it twice), finishes, cleans up and writes evidence naming the injected crash."""
    ddb = seed_tables(moto_server, "orders", "carts")
    plan = write_plan(tmp_path / "plan.json")
    state = tmp_path / "state"
    done = drplan(
        "drill",
        str(plan),
        "--endpoint-url",
        moto_server,
        "--state-dir",
        str(state),
        "--inject",
        "orders.restore:crash",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "killed once orders.restore has started" in done.stderr
    assert "the drill's process was killed as injected; resuming run" in done.stderr
    assert done.stderr.strip().endswith("(exit 0)")
    journal = _journal(state)
    events = read_journal(journal).events
    kinds = [e.kind for e in events]
    # One run: started by the child, which died without finishing; resumed and finished by drplan.
    assert kinds.count("run.started") == 1 and kinds.count("run.resumed") == 1
    assert kinds.count("run.finished") == 1
    assert kinds.index("run.resumed") > kinds.index("step.started")
    starts = [e.step for e in events if e.kind == "step.started"]
    assert starts.count("orders.restore") == 1  # re-attached, not started again
    assert tables(ddb) == ["carts", "orders"]  # cleanup removed both drill copies
    report = json.loads(next(state.rglob("report.json")).read_text())
    assert report["verdict"]["passed"] is True
    assert [(i["step"], i["fault"], i["status"]) for i in report["injected"]] == [
        ("orders.restore", "crash", "succeeded")
    ]
    assert report["cleanup"]["status"] == "complete"


def test_a_crash_rehearsal_is_refused_in_the_sandbox_before_anything_runs(tmp_path: Path) -> None:
    plan = write_plan(tmp_path / "plan.json")
    done = drplan(
        "drill",
        str(plan),
        "--sandbox",
        "--state-dir",
        str(tmp_path / "s"),
        "--inject",
        "orders.restore:crash",
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "cannot rehearse a crash (orders.restore) in the sandbox" in done.stderr
    assert not list((tmp_path / "s").glob("runs/*/report"))  # refused: no drill, no evidence


def test_a_recovery_killed_during_its_dns_change_still_knows_the_record_it_replaced(
    moto_server: str, tmp_path: Path
) -> None:
    """The record's value before the recovery is journaled before the UPSERT: a process killed
    during the call leaves the record changed, and the resumed start must not take the run's own
    value for the previous one (undo and rollback put the previous one back)."""
    route53 = boto3.client("route53", endpoint_url=moto_server, region_name=REGION)
    zone = route53.create_hosted_zone(Name="example.com", CallerReference="durable-dns")["HostedZone"]["Id"]
    zone_id = zone.split("/")[-1]

    def upsert(target: str) -> None:
        record = {
            "Name": "api.example.com.",
            "Type": "CNAME",
            "TTL": 60,
            "ResourceRecords": [{"Value": target}],
        }
        route53.change_resource_record_sets(
            HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}]}
        )

    upsert("old.example.net")
    plan = {
        "drplan": 1,
        "name": "dns",
        "aws": {"region": REGION},
        "services": {
            "web": {
                "steps": [
                    {
                        "id": "dns",
                        "uses": "aws.route53.change_record",
                        "with": {"zone_id": zone_id, "name": "api", "values": ["new.example.net"], "ttl": 60},
                    },
                    {"id": "settle", "uses": "wait", "with": {"duration": "PT1S"}},
                ]
            }
        },
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan), encoding="utf-8")
    state = tmp_path / "state"
    args = ["recover", str(path), "--yes", "--endpoint-url", moto_server, "--state-dir", str(state)]
    done = drplan(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # The journal as a process killed during the UPSERT leaves it: the change made in AWS, the
    # journal ending with the step's memo (nothing after it was written).
    journal = _journal(state)
    lines = journal.read_text(encoding="utf-8").splitlines(keepends=True)
    [memo_at] = [i for i, line in enumerate(lines) if '"step.memo"' in line]
    journal.write_text("".join(lines[: memo_at + 1]), encoding="utf-8")
    assert not [e for e in read_journal(journal).events if e.kind == "step.started"]

    resumed = drplan("resume", journal.parent.name, "--yes", "--state-dir", str(state), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    [started] = [e for e in read_journal(journal).events if e.kind == "step.started" and e.step == "web.dns"]
    previous = started.data["handle"]["previous"]
    assert previous["ResourceRecords"] == [{"Value": "old.example.net"}], previous


def test_cleanup_by_run_id_removes_what_a_step_made_in_another_account(
    moto_server: str, tmp_path: Path
) -> None:
    """A drill whose restore assumes a role in a DR account, killed after its restore: what it made
    is in the DR account, journaled with the step's role, and `drplan cleanup RUN_ID` deletes it
    there (with the default credentials it would find nothing and call it removed)."""
    role = "arn:aws:iam::210987654321:role/drplan-dr-restore"
    sts = boto3.client("sts", endpoint_url=moto_server, region_name=REGION)
    creds = sts.assume_role(RoleArn=role, RoleSessionName="seed")["Credentials"]
    dr = boto3.client(
        "dynamodb",
        endpoint_url=moto_server,
        region_name=REGION,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    dr.create_table(
        TableName="ledger",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dr.create_backup(TableName="ledger", BackupName="ledger-copy")
    plan = {
        "drplan": 1,
        "name": "dr-account",
        "aws": {"region": REGION},
        "services": {
            "ledger": {
                "steps": [
                    {
                        "id": "restore",
                        "uses": "aws.dynamodb.restore_backup",
                        "with": {"source_table": "ledger", "target": "ledger-restored"},
                        "role_arn": role,
                        "external_id": "dr-4f7c",
                    },
                    {"id": "settle", "uses": "wait", "with": {"duration": "PT30S"}},
                ]
            }
        },
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan), encoding="utf-8")
    state = tmp_path / "state"
    args = ["drill", str(path), "--endpoint-url", moto_server, "--state-dir", str(state)]
    journal = _kill_when(args, tmp_path, state, {"step.started:ledger.settle"})
    run_id = journal.parent.name
    [restored] = [t for t in dr.list_tables()["TableNames"] if t.startswith("ledger-restored")]
    resources = [e.data["resource"] for e in read_journal(journal).events if e.kind == "step.resource"]
    assert resources and all(r.get("role_arn") == role for r in resources)
    own = boto3.client("dynamodb", endpoint_url=moto_server, region_name=REGION)
    assert not [t for t in own.list_tables()["TableNames"] if t.startswith("ledger")]  # not in ours

    done = drplan("cleanup", run_id, "--state-dir", str(state), "--endpoint-url", moto_server, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert restored not in dr.list_tables()["TableNames"]


def test_cleanup_finds_by_tag_what_neither_the_journal_nor_the_plan_names(
    moto_server: str, tmp_path: Path
) -> None:
    """A kept drill whose journal lost every record of what it made, and whose plan has moved:
    only the run-id tag is left to find the tables by, in the caller's own account."""
    ddb = seed_tables(moto_server, "orders", "carts")
    plan = write_plan(tmp_path / "plan.json")
    state = tmp_path / "state"
    kept = drplan(
        "drill", str(plan), "--keep", "--endpoint-url", moto_server, "--state-dir", str(state), cwd=tmp_path
    )
    assert kept.returncode == 0, kept.stderr
    assert len(tables(ddb)) == 4
    journal = _journal(state)
    lines = journal.read_text(encoding="utf-8").splitlines(keepends=True)
    journal.write_text("".join(x for x in lines if '"step.resource"' not in x and '"step.intent"' not in x))
    plan.rename(tmp_path / "moved.json")
    done = drplan(
        "cleanup", journal.parent.name, "--state-dir", str(state), "--endpoint-url", moto_server, cwd=tmp_path
    )
    # Removed, verified; exit 3 all the same: with the journal damaged and the plan gone, drplan
    # cannot be sure nothing else remains, and says so.
    assert done.returncode == 3 and "found by journal, name and tag" in done.stderr, done.stderr
    assert tables(ddb) == ["carts", "orders"]


def test_a_new_recovery_is_refused_while_an_earlier_one_never_finished(
    moto_server: str, tmp_path: Path
) -> None:
    """kill -9 during a recovery, then `drplan recover` again (what an operator may type first):
    refused before anything starts (exit 2), naming the dead run and `drplan resume`; nothing is
    restored a second time. `--despite-unfinished` is the way past it."""
    ddb = seed_tables(moto_server, "orders", "carts")
    plan = write_plan(tmp_path / "plan.json", wait="PT8S")
    state = tmp_path / "state"
    args = ["recover", str(plan), "--yes", "--endpoint-url", moto_server, "--state-dir", str(state)]
    journal = _kill_when(
        args, tmp_path, state, {"step.started:orders.settle", "step.succeeded:carts.restore"}
    )
    run_id = journal.parent.name
    before = tables(ddb)
    again = drplan(*args, cwd=tmp_path)
    assert again.returncode == 2, again.stderr
    assert f"an earlier recovery of durable never finished (its process died): {run_id}" in again.stderr
    assert f"drplan resume {run_id}" in again.stderr
    assert tables(ddb) == before
    assert [p.name for p in (state / "runs").iterdir()] == [run_id]  # no folder left by the refusal
    forced = drplan(*args, "--despite-unfinished", cwd=tmp_path)
    assert forced.returncode == 1  # its restores find their target tables taken: as the docs warn
    assert tables(ddb) == before


def test_a_recovery_killed_during_create_bucket_adopts_the_bucket_on_resume(
    moto_server: str, tmp_path: Path
) -> None:
    """CreateBucket takes no tags and no token: a process killed during the call leaves an untagged,
    unversioned bucket, which the resumed restore used to refuse as someone else's. The step
    journals that it is about to create the bucket (a memo), so the resumed start knows it is its
    own, versions and tags it, and restores into it."""
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name=REGION)
    s3.create_bucket(Bucket="assets")
    s3.put_bucket_versioning(Bucket="assets", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="assets", Key="logo.png", Body=b"v1")
    plan = {
        "drplan": 1,
        "name": "bucket",
        "aws": {"region": REGION},
        "services": {
            "assets": {
                "steps": [
                    {
                        "id": "restore",
                        "uses": "aws.s3.restore_versions",
                        "with": {"bucket": "assets", "at": "PT0S", "target_bucket": "assets-restored"},
                    }
                ]
            }
        },
    }
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan), encoding="utf-8")
    state = tmp_path / "state"
    args = ["recover", str(path), "--yes", "--endpoint-url", moto_server, "--state-dir", str(state)]
    done = drplan(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    # The state a kill during CreateBucket leaves: the journal ends with the memo, and the bucket
    # exists as CreateBucket makes it (no tags, never versioned, empty).
    journal = _journal(state)
    lines = journal.read_text(encoding="utf-8").splitlines(keepends=True)
    [memo_at] = [i for i, line in enumerate(lines) if '"step.memo"' in line]
    journal.write_text("".join(lines[: memo_at + 1]), encoding="utf-8")
    for version in s3.list_object_versions(Bucket="assets-restored").get("Versions", []):
        s3.delete_object(Bucket="assets-restored", Key=version["Key"], VersionId=version["VersionId"])
    s3.delete_bucket(Bucket="assets-restored")
    s3.create_bucket(Bucket="assets-restored")
    s3.delete_bucket_tagging(Bucket="assets-restored")  # moto keeps a deleted bucket's tags by name
    assert s3.get_bucket_versioning(Bucket="assets-restored").get("Status") is None

    resumed = drplan("resume", journal.parent.name, "--yes", "--state-dir", str(state), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert s3.get_bucket_versioning(Bucket="assets-restored").get("Status") == "Enabled"
    assert s3.get_object(Bucket="assets-restored", Key="logo.png")["Body"].read() == b"v1"
