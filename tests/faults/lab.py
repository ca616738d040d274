"""The lab: one moto server and one fault proxy, reused by every trial; each trial starts from an
empty, freshly seeded account, its own folder, state folder and rendered plans.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.faults.census import Verdict, judge
from tests.faults.processes import DrillCommand
from tests.faults.proxy import FaultProxy
from tests.faults.server import Estate, MotoServer, seed

PLANS = Path(__file__).resolve().parent / "plans"

#: The calls that make something, per step of the fault plans (the proxy's ``service:Operation``).
#: Each should reach the backend exactly once per drill: more means a duplicate restore/create.
CREATE_CALLS = (
    "rds:RestoreDBInstanceFromDBSnapshot",
    "dynamodb:RestoreTableFromBackup",
    "dynamodb:RestoreTableToPointInTime",
    "s3:CreateBucket",
    "ec2:CreateVolume",
    "route53:ChangeResourceRecordSets/UPSERT",
)
#: Operations a delay rule uses to slow the creates down (match without the Route 53 detail).
CREATE_OPERATIONS = tuple(name.split("/")[0] for name in CREATE_CALLS)
DELETE_OPERATIONS = (
    "rds:DeleteDBInstance",
    "dynamodb:DeleteTable",
    "s3:DeleteBucket",
    "s3:DeleteObjects",
    "ec2:DeleteVolume",
    "route53:ChangeResourceRecordSets",
)


@dataclass
class Trial:
    """One scenario run's world: the seeded estate, a folder, a state folder and the plans."""

    lab: Lab
    estate: Estate
    directory: Path
    plans: dict[str, Path]
    started: float = 0.0  # proxy timestamps from here on belong to this trial

    @property
    def state_dir(self) -> Path:
        return self.directory / "state"

    @property
    def proxy(self) -> FaultProxy:
        return self.lab.proxy

    def drill(self, plan: str = "faults", **options: Any) -> DrillCommand:
        return DrillCommand(self.plans[plan], self.proxy.url, self.state_dir, **options)

    def verdict(self) -> Verdict:
        return judge(self.estate)

    def creates(self, since: float | None = None, until: float | None = None) -> Counter[str]:
        """Create calls the backend executed in this trial (or between two proxy timestamps): those
        it answered with a success, or whose answer never came back. One the backend refused (a
        restore into a table that exists: 400) created nothing, so it is no duplicate."""
        start = self.started if since is None else since
        counts: Counter[str] = Counter()
        for request in self.proxy.requests(start):
            if until is not None and request.at > until:
                continue
            refused = request.status is not None and request.status >= 400
            if request.forwarded and request.name in CREATE_CALLS and not refused:
                counts[request.name] += 1
        return counts


@dataclass
class Lab:
    """Owns the moto server, the proxy and a scratch folder; use as a context manager."""

    seed: int = 0
    keep: bool = False  # keep the scratch folder (for looking at journals and evidence)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="drplan-faults-")))
    server: MotoServer | None = None
    proxy: FaultProxy = field(init=False)
    _count: int = 0

    def __enter__(self) -> Lab:
        self.server = MotoServer().start()
        self.proxy = FaultProxy(self.server.endpoint, seed=self.seed).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.proxy.stop()
        if self.server is not None:
            self.server.stop()
        unmount_below(self.root)  # a scenario that mounted a small tmpfs and then failed
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def trial(self, name: str) -> Trial:
        """Reset the emulator, seed it (directly, not through the proxy), render the plans."""
        assert self.server is not None
        self._count += 1
        directory = self.root / f"{self._count:03d}-{name}"
        directory.mkdir(parents=True)
        self.proxy.up()
        self.proxy.set_rules([])
        self.server.reset()
        estate = seed(self.server.endpoint)
        plans = {path.stem: render_plan(path, estate, directory) for path in sorted(PLANS.glob("*.json"))}
        import time

        return Trial(self, estate, directory, plans, started=time.time())


def unmount_below(root: Path) -> None:
    """Lazily unmount every file system mounted under ``root`` (the full-disk scenarios' tmpfs)."""
    import subprocess

    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return
    prefix = str(root.resolve()) + "/"
    for line in mounts:
        fields = line.split()
        if len(fields) > 1 and fields[1].startswith(prefix):
            subprocess.run(["umount", "-l", fields[1]], check=False, capture_output=True)


def render_plan(template: Path, estate: Estate, directory: Path) -> Path:
    """The plan with its placeholder zone ids replaced by the seeded zones' real ids."""
    text = template.read_text(encoding="utf-8")
    for placeholder, value in estate.substitutions().items():
        text = text.replace(placeholder, value)
    data = json.loads(text)
    data.pop("$schema", None)  # the relative schema path does not hold from the trial folder
    out = directory / template.name
    out.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return out
