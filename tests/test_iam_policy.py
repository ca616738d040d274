"""``drplan iam-policy``: the least-privilege policy a plan needs.

Tight: no deletion may reach ``"Resource": "*"`` without a condition on drplan's tags, and a
drill's deletions only reach what drills tag. Sufficient: each example plan is drilled (and
recovered) in the sandbox with moto's IAM enforcement on, authenticated as an IAM user holding only
the generated policy. moto decides on actions, and on S3 ARNs, but evaluates every other service's
calls against the resource ``*`` and cannot evaluate tag conditions (it turns a condition it cannot
check into an explicit deny): so the policy given to moto keeps S3's resources and every action,
with the other resources widened to ``*`` and the conditions dropped (:func:`as_moto_evaluates`).
What this proves: the actions are enough, and S3's resource scoping is enough. What it cannot
prove here: the ARN patterns and tag conditions of the other services (checked structurally below).
"""

from __future__ import annotations

import copy
import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from drplan.cli import cli
from drplan.iam import DESTRUCTIVE, build_policy
from drplan.model import build_plan
from drplan.pipeline import load_plan
from tests.conftest import EXAMPLE_PLANS, FIXTURES, PLANS

PLAN_FILES = [*EXAMPLE_PLANS, FIXTURES / "valid" / "all-features.json"]
ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:[a-z0-9-]+:[a-z0-9-*]*:(\d{12}|\*)?:.+$")


def policy_of(path: Path, mode: str, **kwargs: Any) -> dict[str, Any]:
    plan, _ = load_plan(path)
    return build_policy(plan, mode, **kwargs).document  # type: ignore[arg-type]


def resources(statement: dict[str, Any]) -> list[str]:
    value = statement["Resource"]
    return value if isinstance(value, list) else [value]


def unscoped(resource: str) -> bool:
    """``*``, or an ARN naming no resource in particular (``arn:aws:s3:::*``, ``...:db:*``, ``table/*``)."""
    if resource == "*":
        return True
    service, rest = resource.split(":")[2], resource.split(":", 5)[5]
    parts = re.split(r"[:/]", rest)
    return all(set(p) <= {"*"} for p in (parts if service == "s3" else parts[1:]))


def actions(statement: dict[str, Any]) -> list[str]:
    value = statement["Action"]
    return value if isinstance(value, list) else [value]


# --- tight -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["drill", "recover"])
@pytest.mark.parametrize("path", PLAN_FILES, ids=lambda p: p.stem)
def test_no_deletion_reaches_everything_without_a_tag_condition(path: Path, mode: str) -> None:
    document = policy_of(path, mode)
    assert document["Version"] == "2012-10-17"
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        for resource in resources(statement):
            assert resource == "*" or ARN.match(resource), resource
        removing = [a for a in actions(statement) if a.split(":")[1].startswith(("Delete", "Terminate"))]
        if not removing:
            continue
        condition = statement.get("Condition", {})
        tagged = condition.get("Null", {}).get("aws:ResourceTag/drplan:run-id") == "false"
        everything = [r for r in resources(statement) if unscoped(r)]
        assert tagged or not everything, f"{removing} on {everything} without a tag condition"
        if mode == "drill" and tagged:
            assert condition["StringEquals"] == {"aws:ResourceTag/drplan:mode": "drill"}


@pytest.mark.parametrize("path", PLAN_FILES, ids=lambda p: p.stem)
def test_a_drill_may_change_and_remove_only_drill_copies(path: Path) -> None:
    """In a drill, every change outside the tag-conditioned statements names drill copies, the
    recovery points it restores from, or the (drill_with) names the plan redirects it to."""
    plan, _ = load_plan(path)
    document = policy_of(path, "drill")
    for statement in document["Statement"]:
        destructive = [a for a in actions(statement) if a.split(":")[1].startswith(DESTRUCTIVE)]
        if not destructive or "Condition" in statement:
            continue
        for resource in resources(statement):  # S3 and instances detached from: scoped by name
            state = (plan.run.state or "-").replace("s3://", "arn:aws:s3:::")
            assert (
                resource.startswith(state)
                or "drill" in resource
                or resource.endswith(":instance/*")
                or "/i-" in resource
            ), (destructive, resource)


def test_only_the_steps_of_the_mode_count() -> None:
    drill = json.dumps(policy_of(PLANS / "webshop.json", "drill"))
    recover = json.dumps(policy_of(PLANS / "webshop.json", "recover"))
    assert "autoscaling:UpdateAutoScalingGroup" in recover  # web.scale changes production: not in drills
    assert "autoscaling:UpdateAutoScalingGroup" not in drill
    assert "table/shop-carts-restored-drill-*" in drill and "-drill-" not in recover
    assert "hostedzone/Z0SHOPDRILL12345" in drill and "hostedzone/Z0SHOPEXAMPLE123" in recover  # drill_with
    for text in (drill, recover):
        assert '"sts:GetCallerIdentity"' in text and '"tag:GetResources"' in text
        assert ":123456789012:" in text  # the plan's aws.account_id


def test_account_region_state_and_secrets() -> None:
    data = {
        "drplan": 1,
        "name": "probe",
        "aws": {"region": "eu-west-1"},
        "run": {"state": "s3://dr-state/drplan"},
        "services": {
            "app": {
                "steps": [
                    {
                        "id": "up",
                        "uses": "check.http",
                        "with": {
                            "url": "https://app.example.com/",
                            "headers": {"Authorization": "${ssm:/app/token}"},
                        },
                    },
                    {
                        "id": "table",
                        "uses": "aws.dynamodb.restore_point_in_time",
                        "with": {
                            "source_table": "orders",
                            "target": "orders-restored",
                            "restore_time": "latest",
                        },
                    },
                ]
            }
        },
    }
    plan = build_plan(data)
    unknown = json.dumps(build_policy(plan, "drill").document)
    assert "arn:aws:dynamodb:eu-west-1:*:table/orders-restored-drill-*" in unknown  # no account_id: *
    assert "arn:aws:ssm:eu-west-1:*:parameter/app/token" in unknown
    assert "arn:aws:s3:::dr-state/drplan/*" in unknown and '"s3:prefix"' in unknown
    given = json.dumps(build_policy(plan, "drill", account_id="210987654321", region="eu-central-1").document)
    assert "arn:aws:dynamodb:eu-central-1:210987654321:table/orders-restored-drill-*" in given


def test_the_command(tmp_path: Path) -> None:
    out = tmp_path / "policy.json"
    result = CliRunner().invoke(
        cli,
        [
            "iam-policy",
            str(PLANS / "webshop.json"),
            "--mode",
            "recover",
            "--account-id",
            "111122223333",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert ":111122223333:" in out.read_text()
    notes = CliRunner().invoke(cli, ["iam-policy", str(PLANS / "analytics-aurora.json"), "--mode", "recover"])
    assert notes.exit_code == 0 and "dashboards.notify runs a command" in notes.stderr
    assert json.loads(notes.stdout)["Statement"]


# --- sufficient: a drill under moto's IAM enforcement ---------------------------------------------------


def as_moto_evaluates(document: dict[str, Any]) -> dict[str, Any]:
    """The policy as moto can evaluate it: every action kept; S3's resources kept; other
    services' resources widened to ``*`` (moto checks them against ``*``); conditions dropped
    (moto denies what it cannot evaluate). moto also names two S3 calls its own way: HeadBucket
    (IAM: s3:ListBucket) and the multi-object delete, checked as s3:DeleteObject on the bucket
    (IAM: on each object)."""
    out = copy.deepcopy(document)
    extra = []
    for statement in out["Statement"]:
        statement.pop("Condition", None)
        statement["Action"] = actions(statement)
        if "lambda:InvokeFunction" in statement["Action"]:  # moto checks Invoke as lambda:Invoke
            statement["Action"].append("lambda:Invoke")
        if not all(a.startswith("s3:") for a in statement["Action"]):
            statement["Resource"] = "*"
            continue
        if "s3:ListBucket" in statement["Action"]:
            statement["Action"].append("s3:HeadBucket")
        deletes = [a for a in statement["Action"] if a in ("s3:DeleteObject", "s3:DeleteObjectVersion")]
        if deletes:
            buckets = [r.removesuffix("/*") for r in resources(statement)]
            extra.append({"Effect": "Allow", "Action": deletes, "Resource": buckets})
    out["Statement"] += extra
    return out


def _reset_auth(endpoint: str, count: str) -> None:
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    urllib.request.urlopen(request, timeout=10).close()


def run_as_policy_holder(
    path: Path, mode: str, document: dict[str, Any], state: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Run ``path`` in the sandbox with IAM enforced, as a user holding only ``document``."""
    # moto recomputes SigV4 signatures wrongly for REST paths such as /hostedzone/ID and S3
    # prefixes with a slash: the signature check is off; who the caller is, and what it may do,
    # is still decided from its access key and policies.
    from moto.iam.access_control import IAMRequestBase

    import drplan.sandbox
    from drplan.actions.base import Approvals
    from drplan.aws import AwsSession
    from drplan.engine.records import RunOptions
    from drplan.runs import RunRequest, run_plan
    from drplan.sandbox import start_sandbox

    monkeypatch.setattr(IAMRequestBase, "check_signature", lambda self: None)
    plan, _ = load_plan(path)
    with start_sandbox(plan) as box:
        iam = box.client("iam", "us-east-1")
        everything = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
        keys = {}
        for user, policy in (("sandbox", everything), ("drplan", document)):
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName="policy", PolicyDocument=json.dumps(policy))
            keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
        # The sandbox's own look-ups (checks of emulated hosts, AWS Backup restores) stay
        # unrestricted: they stand in for AWS itself, not for drplan.
        monkeypatch.setattr(
            drplan.sandbox,
            "CREDENTIALS",
            (keys["sandbox"]["AccessKeyId"], keys["sandbox"]["SecretAccessKey"]),
        )
        # A step's role in another account (a DR account) holds the same policy there, and trusts
        # the caller, as the note of `drplan iam-policy` asks.
        for role_arn in sorted({s.role_arn for s in plan.steps() if s.role_arn}):
            _create_role(box, role_arn, document)
            # and the role the sandbox itself reaches that account with (AWS's own part: seeding,
            # AWS Backup's restores), unrestricted like the sandbox user
            account = role_arn.split(":")[4]
            _create_role(box, f"arn:aws:iam::{account}:role/{drplan.sandbox.CROSS_ACCOUNT_ROLE}", everything)
        box._sessions.clear()
        session = AwsSession(
            region=plan.drill.region if mode == "drill" and plan.drill.region else plan.aws.region,
            endpoint_url=box.endpoint_url,
            credentials=(keys["drplan"]["AccessKeyId"], keys["drplan"]["SecretAccessKey"]),
            emulated=True,
            customize=box._customize,
        )
        options = RunOptions(
            poll_initial=0.05,
            poll_factor=1.2,
            poll_max=0.5,
            backoff_base=0.05,
            retry_delay=0.05,
            approvals=Approvals(all=True),
            **box.run_options(),
        )
        _reset_auth(box.endpoint_url, "0")
        try:
            return run_plan(RunRequest(plan, mode, state, options=options, sandbox=True), session)  # type: ignore[arg-type]
        finally:
            _reset_auth(box.endpoint_url, "inf")


def _create_role(box: Any, role_arn: str, document: dict[str, Any]) -> None:
    """``role_arn`` in its own account, with ``document`` and a trust policy for the caller."""
    account, name = role_arn.split(":")[4], role_arn.split("/", 1)[1]
    iam = box.client("iam", "us-east-1", account)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(RoleName=name, PolicyName="drplan", PolicyDocument=json.dumps(document))


RUNS = [(p, "drill") for p in EXAMPLE_PLANS] + [
    (p, "recover")
    for p in EXAMPLE_PLANS
    if p.stem not in ("analytics-aurora", "failover")  # curl to a real host; ARC, which the sandbox lacks
]


@pytest.mark.slow
@pytest.mark.parametrize("path,mode", RUNS, ids=lambda v: v.stem if isinstance(v, Path) else v)
def test_the_policy_is_enough_for_the_run_under_iam_enforcement(
    path: Path, mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_as_policy_holder(path, mode, as_moto_evaluates(policy_of(path, mode)), tmp_path, monkeypatch)
    assert result.exit_code == 0, result.final_line()
    assert not result.cleanup_failed


@pytest.mark.slow
def test_enforcement_is_on_a_missing_action_fails_the_drill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = as_moto_evaluates(policy_of(PLANS / "status-page.json", "drill"))
    for statement in document["Statement"]:
        statement["Action"] = [a for a in statement["Action"] if a != "dynamodb:RestoreTableFromBackup"]
    document["Statement"] = [s for s in document["Statement"] if s["Action"]]
    result = run_as_policy_holder(PLANS / "status-page.json", "drill", document, tmp_path, monkeypatch)
    assert result.exit_code == 1
    failed = [r for r in result.outcome.records.values() if r.status == "failed"]
    assert failed and "AccessDenied" in json.dumps([str(r.error) for r in failed])
