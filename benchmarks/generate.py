"""Generate large, valid, realistic recovery plans for the benchmarks (deterministic: seeded).

A plan of N services is a layered DAG. The first layer holds data stores (RDS, DynamoDB, EBS
volumes, S3 buckets, AWS Backup restores) with no dependencies; every later layer mixes
applications and more data stores, each depending on one to three services of earlier layers
(mostly the layer just before). Services have 2-5 steps: a restore, checks that use its outputs
through ``${service.step.output}`` references, DNS cut-overs that point at an upstream database's
endpoint (a cross-service reference that ``depends_on`` declares), waits, and a few drill-only or
recover-only steps. Every step except ``wait`` has an estimate and a timeout above it.

Objectives have headroom (x1.5) over what drplan predicts for the plan within a run's limits
(parallelism 16, AWS Backup's 10 restore jobs, ...), so ``drplan validate`` reports no error and
no warning: no DR301/DR302 (RTO), DR303 (estimate), DR304 (unverified service), DR305, DR306 or
DR206 (undeclared dependency).

``backup_share`` makes a variant where that share of the data stores are ``aws.backup.restore``
steps (the rest drawn from the other store kinds), for the scheduling benchmarks: AWS Backup runs
at most 10 restore jobs at once, so such a plan is bounded by that quota, not by its critical path.

Library use::

    from benchmarks.generate import generate_plan, write_plans
    plan = generate_plan(1000, seed=7)          # a dict, ready for json.dumps
    heavy = generate_plan(1000, backup_share=0.8)  # 80% of data stores restored by AWS Backup
    paths = write_plans(Path("benchmarks/out"))   # plan-100.json, plan-1000.json, plan-10000.json

Command line::

    python benchmarks/generate.py                 # writes benchmarks/out/plan-{100,1000,10000}.json
    python benchmarks/generate.py --sizes 50 --out /tmp/plans
    python benchmarks/generate.py --sizes 1000 --backup-share 0.8   # plan-1000-backup80.json
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "out"
SIZES: tuple[int, ...] = (100, 1_000, 10_000)
DEFAULT_SEED = 20240611

ACCOUNT = "123456789012"
REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
ZONES = ("a", "b", "c")
BACKUP_ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/AWSBackupDefaultServiceRole"

# Service kinds and the domains their names are drawn from (ids stay unique through a number).
STORE_KINDS = ("rds", "dynamodb", "volume", "bucket", "backup")
DOMAINS = (
    "orders",
    "carts",
    "payments",
    "ledger",
    "billing",
    "invoices",
    "catalog",
    "search",
    "media",
    "assets",
    "users",
    "sessions",
    "auth",
    "profiles",
    "inventory",
    "shipping",
    "tracking",
    "reviews",
    "pricing",
    "coupons",
    "analytics",
    "events",
    "audit",
    "reports",
    "notify",
    "email",
    "sms",
    "chat",
    "support",
    "tickets",
    "kyc",
    "fraud",
    "risk",
    "ledger-archive",
)
STORE_SUFFIX = {"rds": "db", "dynamodb": "table", "volume": "files", "bucket": "bucket", "backup": "vault-db"}
ENDPOINT_KINDS = ("rds", "backup")  # restores that output an `endpoint` other steps can use


def _minutes(lo: int, hi: int, rng: random.Random) -> int:
    return rng.randint(lo, hi)


def _pt(minutes: int) -> str:
    """ISO 8601 duration of whole minutes, in the plan's style (PT45M, PT1H30M, P1DT2H)."""
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    time = (f"{hours}H" if hours else "") + (f"{mins}M" if mins else "")
    if not days and not time:
        return "PT0M"
    return "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")


class _Builder:
    """Steps of one service, with their durations (minutes) and predecessors inside the service."""

    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.steps: list[dict[str, Any]] = []
        self.minutes: dict[str, int] = {}
        self.preds: dict[str, list[str]] = {}
        self.drill_only: set[str] = set()

    def add(
        self,
        step_id: str,
        uses: str,
        params: dict[str, Any],
        minutes: int,
        rng: random.Random,
        *,
        name: str | None = None,
        estimate: bool = True,
        after: list[str] | None = None,
        **extra: Any,
    ) -> None:
        step: dict[str, Any] = {"id": step_id}
        if name:
            step["name"] = name
        step["uses"] = uses
        step["with"] = params
        step.update(extra)
        if estimate:
            step["estimate"] = _pt(minutes)
            step["timeout"] = _pt(minutes * rng.choice((2, 3, 4)))
        if after is not None:
            step["after"] = after
            self.preds[step_id] = list(after)
        else:
            self.preds[step_id] = [self.steps[-1]["id"]] if self.steps else []
        if extra.get("only") == "drill":
            self.drill_only.add(step_id)
        self.steps.append(step)
        self.minutes[step_id] = minutes

    def duration(self) -> int:
        """Longest chain of estimates inside the service (steps are added in a topological order)."""
        finish: dict[str, int] = {}
        for step in self.steps:
            sid = step["id"]
            finish[sid] = max((finish[p] for p in self.preds[sid]), default=0) + self.minutes[sid]
        return max(finish.values())


def _store(kind: str, sid: str, domain: str, region: str, rng: random.Random) -> _Builder:
    b = _Builder(sid)
    tag = {"data-class": rng.choice(("confidential", "internal", "public"))}
    if kind == "rds":
        b.add(
            "restore",
            "aws.rds.restore_snapshot",
            {
                "source_instance": f"{domain}-{sid[-5:]}",
                "snapshot": "latest",
                "max_age": "rpo",
                "target": f"{sid}-restored"[:63],
                "instance_class": rng.choice(
                    ("db.r6g.large", "db.r6g.xlarge", "db.m6g.large", "db.t4g.medium")
                ),
                "subnet_group": f"{domain}-db-private",
                "security_groups": [f"sg-{rng.getrandbits(68):017x}"],
                "tags": tag,
            },
            _minutes(15, 40, rng),
            rng,
            name=f"Restore {domain} database",
            retries=1,
        )
        b.add(
            "reachable",
            "check.tcp",
            {"host": f"${{{sid}.restore.endpoint}}", "port": f"${{{sid}.restore.port}}"},
            _minutes(1, 3, rng),
            rng,
            name=f"{domain} database accepts connections",
        )
    elif kind == "dynamodb":
        b.add(
            "restore",
            "aws.dynamodb.restore_backup",
            {
                "source_table": f"{domain}-{sid[-5:]}",
                "backup": "latest",
                "max_age": "rpo",
                "target": f"{sid}-restored"[:63],
                "billing_mode": rng.choice(("PAY_PER_REQUEST", "PROVISIONED")),
                "tags": tag,
            },
            _minutes(10, 30, rng),
            rng,
            name=f"Restore {domain} table",
        )
        if rng.random() < 0.5:
            settle = _minutes(2, 5, rng)
            reason = "streams and indexes catch up"
            b.add("settle", "wait", {"duration": _pt(settle), "reason": reason}, settle, rng, estimate=False)
        b.add(
            "healthy",
            "check.http",
            {"url": f"https://{domain}-api.internal.example.com/healthz?table=${{{sid}.restore.table_name}}"},
            _minutes(1, 3, rng),
            rng,
        )
    elif kind == "volume":
        az = f"{region}{rng.choice(ZONES)}"
        b.add(
            "volume",
            "aws.ec2.volume_from_snapshot",
            {
                "snapshot": "latest",
                "snapshot_tags": {"app": domain, "volume": sid},
                "max_age": "P1D",
                "name": sid,
                "availability_zone": az,
                "volume_type": (volume_type := rng.choice(("gp3", "io2", "st1"))),
                **({"iops": 3000} if volume_type == "io2" else {}),  # EC2 refuses io2 without IOPS
                "attach": {"instance_id": f"i-{rng.getrandbits(68):017x}", "device": "/dev/xvdf"},
            },
            _minutes(5, 20, rng),
            rng,
            name=f"{domain} volume from snapshot",
        )
        b.add(
            "mounted",
            "check.tcp",
            {"host": f"{sid}.nfs.internal.example.com", "port": 2049},
            _minutes(1, 2, rng),
            rng,
        )
    elif kind == "bucket":
        b.add(
            "rewind",
            "aws.s3.restore_versions",
            {
                "bucket": f"{sid}-example"[:63],
                "prefix": rng.choice(("", "static/", "uploads/")),
                "at": "PT1H",
            },
            _minutes(5, 25, rng),
            rng,
            name=f"Rewind {domain} bucket",
        )
        b.add(
            "served",
            "check.http",
            {"url": f"https://{domain}.cdn.example.com/healthz", "expect_status": [200, 204]},
            _minutes(1, 2, rng),
            rng,
        )
    else:  # backup: an RDS instance restored from an AWS Backup recovery point
        b.add(
            "restore",
            "aws.backup.restore",
            {
                "recovery_point": "latest",
                "vault": f"{domain}-dr-vault",
                "resource_arn": f"arn:aws:rds:{region}:{ACCOUNT}:db:{sid}",
                "resource_type": "RDS",
                "iam_role_arn": BACKUP_ROLE,
                "target": f"{sid}-restored"[:63],
                "max_age": "rpo",
                "metadata": {"DBInstanceClass": "db.m6g.large", "MultiAZ": "false"},
            },
            _minutes(20, 50, rng),
            rng,
            name=f"Restore {domain} database from AWS Backup",
            retries=1,
        )
        b.add(
            "reachable",
            "check.tcp",
            {"host": f"${{{sid}.restore.endpoint}}", "port": rng.choice((3306, 5432))},
            _minutes(1, 3, rng),
            rng,
        )
    # Databases often get a stable DNS name pointing at the restore.
    if kind in ENDPOINT_KINDS and rng.random() < 0.4:
        b.add(
            "dns",
            "aws.route53.change_record",
            {
                "zone_id": "Z0INTERNAL0EXAMPLE",
                "name": f"{sid}.internal.example.com",
                "type": "CNAME",
                "ttl": 60,
                "values": [f"${{{sid}.restore.endpoint}}"],
            },
            _minutes(1, 3, rng),
            rng,
            after=["reachable"],
            drill_with={"zone_id": "Z0DRILL0EXAMPLE", "name": f"{sid}.drill.example.com"},
        )
    return b


def _app(sid: str, domain: str, deps: Sequence[tuple[str, str]], rng: random.Random) -> _Builder:
    """An application: wait for replication, point DNS at an upstream database, check it, cut over."""
    b = _Builder(sid)
    databases = [d for d, kind in deps if kind in ENDPOINT_KINDS]
    if rng.random() < 0.5:
        warmup = _minutes(2, 8, rng)
        reason = "caches warm up after the data stores are back"
        b.add("warmup", "wait", {"duration": _pt(warmup), "reason": reason}, warmup, rng, estimate=False)
    if databases:
        db = rng.choice(databases)
        b.add(
            "db-dns",
            "aws.route53.change_record",
            {
                "zone_id": "Z0INTERNAL0EXAMPLE",
                "name": f"{sid}-db.internal.example.com",
                "type": "CNAME",
                "ttl": 60,
                "values": [f"${{{db}.restore.endpoint}}"],
            },
            _minutes(1, 3, rng),
            rng,
            name=f"Point {domain} at its restored database",
            drill_with={"zone_id": "Z0DRILL0EXAMPLE", "name": f"{sid}-db.drill.example.com"},
        )
        b.add(
            "db-reachable",
            "check.tcp",
            {"host": f"${{{db}.restore.endpoint}}", "port": 5432},
            _minutes(1, 2, rng),
            rng,
        )
    b.add(
        "healthy",
        "check.http",
        {"url": f"https://{sid}.example.com/healthz", "expect_status": 200, "body_contains": "ok"},
        _minutes(1, 5, rng),
        rng,
        name=f"{domain} is healthy",
    )
    if len(b.steps) < 4 and rng.random() < 0.15:
        b.add(
            "smoke",
            "check.http",
            {"url": f"https://{sid}.drill.example.com/smoke", "method": "HEAD"},
            _minutes(1, 3, rng),
            rng,
            only="drill",
        )
    if len(b.steps) < 2 or (len(b.steps) < 5 and rng.random() < 0.5):
        b.add(
            "cutover",
            "aws.route53.change_record",
            {
                "zone_id": "Z0PUBLIC0EXAMPLE1",
                "name": f"{sid}.example.com",
                "type": "CNAME",
                "ttl": 60,
                "values": [f"{sid}.dr.example.com"],
            },
            _minutes(1, 3, rng),
            rng,
            name=f"Send {domain} traffic to the recovery region",
            after=["healthy"],
            only="recover",
        )
    return b


def _layer_sizes(n: int, rng: random.Random) -> list[int]:
    """About 40% of services in the first layer (data stores), the rest spread over later layers."""
    n_layers = min(n, 4 + int(math.log2(max(n, 2))))
    first = max(1, round(n * 0.4))
    rest = n - first
    sizes = [first] + [rest // (n_layers - 1)] * (n_layers - 1) if n_layers > 1 else [n]
    for i in range(n - sum(sizes)):
        sizes[1 + i % (n_layers - 1)] += 1
    return [s for s in sizes if s > 0]


def generate_plan(
    n_services: int, seed: int = DEFAULT_SEED, *, backup_share: float | None = None
) -> dict[str, Any]:
    """A plan of ``n_services`` services; the same (n, seed, backup_share) always gives the
    same plan. ``backup_share`` (0-1): that share of data stores are AWS Backup restores (see the
    module docstring); None keeps the default mix of store kinds."""
    if n_services < 1:
        raise ValueError("a plan needs at least one service")
    if backup_share is not None and not 0.0 <= backup_share <= 1.0:
        raise ValueError("backup_share is a fraction between 0 and 1")
    other_stores = tuple(k for k in STORE_KINDS if k != "backup")
    rng = random.Random(seed * 1_000_003 + n_services)
    region = rng.choice(REGIONS)
    width = len(str(n_services))
    services: dict[str, dict[str, Any]] = {}
    kinds: dict[str, str] = {}
    finish: dict[str, int] = {}  # minutes after the start when each service is back (upper bound)
    layers: list[list[str]] = []
    counter = 0
    for depth, size in enumerate(_layer_sizes(n_services, rng)):
        layer: list[str] = []
        for _ in range(size):
            counter += 1
            domain = rng.choice(DOMAINS)
            is_store = depth == 0 or rng.random() < 0.3
            if not is_store:
                kind = "app"
            elif backup_share is None:  # the default mix: draws exactly what earlier versions drew
                kind = rng.choice(STORE_KINDS)
            else:
                kind = "backup" if rng.random() < backup_share else rng.choice(other_stores)
            suffix = STORE_SUFFIX.get(kind, rng.choice(("api", "web", "worker", "gateway", "svc")))
            sid = f"{domain}-{suffix}-{counter:0{width}d}"
            deps: list[str] = []
            if depth > 0:
                want = rng.choice((1, 1, 2, 2, 2, 3))
                pool_near = layers[-1]
                pool_far = [s for lyr in layers[:-1] for s in lyr]
                while len(deps) < min(want, len(pool_near) + len(pool_far)):
                    pick = rng.choice(pool_near if rng.random() < 0.7 or not pool_far else pool_far)
                    if pick not in deps:
                        deps.append(pick)
            if kind == "app":
                builder = _app(sid, domain, [(d, kinds[d]) for d in deps], rng)
            else:
                builder = _store(kind, sid, domain, region, rng)
            label = suffix if kind == "app" else kind
            service: dict[str, Any] = {
                "tier": rng.randint(1, 4),
                "description": f"{domain.replace('-', ' ').capitalize()} {label}.",
                "owner": f"team-{domain}",
            }
            if deps:
                service["depends_on"] = deps
            finish[sid] = max((finish[d] for d in deps), default=0) + builder.duration()
            if service["tier"] == 1:
                # A service objective with headroom over its predicted recovery time.
                service["objectives"] = {"rto": _pt(math.ceil(finish[sid] * 1.5 / 15) * 15), "rpo": "PT1H"}
            service["steps"] = builder.steps
            services[sid] = service
            kinds[sid] = kind
            layer.append(sid)
        layers.append(layer)
    plan_rto = math.ceil(max(finish.values()) * 1.5 / 60) * 60
    variant = "" if backup_share is None else f", {backup_share:.0%} of data stores from AWS Backup"
    plan: dict[str, Any] = {
        "drplan": 1,
        "name": f"bench-{n_services}" + ("" if backup_share is None else f"-backup{backup_share * 100:.0f}"),
        "description": f"Synthetic plan of {n_services} services in {len(layers)} layers (seed {seed}"
        f"{variant}), for benchmarks.",
        "owner": "team-platform",
        "contacts": [
            {"role": "incident-commander", "name": "Platform on-call", "contact": "pager:platform-primary"},
            {"role": "technical-lead", "name": "Alex Doe", "contact": "alex@example.com"},
        ],
        "objectives": {"rto": _pt(plan_rto), "rpo": "PT24H"},
        "aws": {"region": region, "account_id": ACCOUNT},
        "drill": {
            "name_suffix": "-drill-{run_id}",
            "cleanup": "always",
            "tags": {"cost-center": "dr-drills"},
        },
        "tags": {"managed-by": "drplan", "purpose": "benchmark"},
        "services": services,
    }
    return _with_predicted_objectives(plan)


def _with_predicted_objectives(plan: dict[str, Any]) -> dict[str, Any]:
    """Objectives with headroom over what drplan predicts *within the run's limits* (parallelism 16,
    AWS Backup's 10 restore jobs...): objectives computed from the longest path alone would be
    missed by the queueing, and the plan would no longer validate."""
    from datetime import timedelta

    from drplan.actions import registry
    from drplan.graph import analyse, compile_graph
    from drplan.model import build_plan

    analysis = analyse(compile_graph(build_plan(plan), "recover"), registry())
    for sid, service in plan["services"].items():
        if "objectives" in service:
            predicted = analysis.service_rto.get(sid, timedelta(0)).total_seconds() / 60
            service["objectives"]["rto"] = _pt(math.ceil(predicted * 1.5 / 15) * 15 or 15)
    plan["objectives"]["rto"] = _pt(
        math.ceil(analysis.predicted_rto.total_seconds() / 60 * 1.5 / 60) * 60 or 60
    )
    return plan


def plan_path(out_dir: Path, n_services: int, backup_share: float | None = None) -> Path:
    """``plan-N.json``; ``plan-N-backupP.json`` for the AWS Backup variant (P in percent)."""
    variant = "" if backup_share is None else f"-backup{backup_share * 100:.0f}"
    return out_dir / f"plan-{n_services}{variant}.json"


def write_plans(
    out_dir: Path = OUT_DIR,
    sizes: Iterable[int] = SIZES,
    seed: int = DEFAULT_SEED,
    *,
    backup_share: float | None = None,
) -> list[Path]:
    """Write ``plan-N.json`` for each size (only when the content changed); return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in sizes:
        path = plan_path(out_dir, n, backup_share)
        text = json.dumps(generate_plan(n, seed, backup_share=backup_share), indent=2) + "\n"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="numbers of services")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (default: benchmarks/out)")
    parser.add_argument(
        "--backup-share",
        type=float,
        metavar="F",
        help="this share (0-1) of data stores are AWS Backup restores (writes plan-N-backupP.json)",
    )
    args = parser.parse_args(argv)
    for path in write_plans(args.out, args.sizes, args.seed, backup_share=args.backup_share):
        print(f"{path}  ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
