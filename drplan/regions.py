"""The AWS regions botocore knows, read from its data file without importing botocore.

``drplan validate`` must not import boto3 or botocore (a few hundred milliseconds on every pull
request check), yet a region AWS does not have (``us-east-99``) should be refused before a run
fails on it. botocore ships every partition's regions in ``data/endpoints.json``: the file is
found with ``importlib.util.find_spec`` (which locates a package without importing it), read the
first time a plan names a region, and cached. Without botocore there is no list, and no check.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

#: An availability zone name: its region and one letter (``us-east-1a``). Local and Wavelength
#: zones (``us-west-2-lax-1a``) have other forms and are left alone.
AVAILABILITY_ZONE = re.compile(r"^([a-z]{2,4}(?:-[a-z]+)+-[0-9]+)[a-z]$")


@dataclass(frozen=True)
class Regions:
    names: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]  # each partition's regionRegex: the form its new regions take

    def looks_new(self, region: str) -> bool:
        """Has ``region`` the form of a partition's regions (a region newer than this botocore?)."""
        return any(p.match(region) for p in self.patterns)


def _endpoints_file() -> Path | None:
    try:
        spec = importlib.util.find_spec("botocore")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        for name in ("endpoints.json", "endpoints.json.gz"):
            path = Path(location) / "data" / name
            if path.is_file():
                return path
    return None


@cache
def known_regions() -> Regions | None:
    """Every region botocore lists, or None when botocore (or its list) is not there."""
    path = _endpoints_file()
    if path is None:
        return None
    try:
        raw = path.read_bytes()
        document: Any = json.loads(gzip.decompress(raw) if path.suffix == ".gz" else raw)
        partitions = document["partitions"]
        names = frozenset(region for p in partitions for region in p.get("regions", {}))
        patterns = tuple(re.compile(p["regionRegex"]) for p in partitions if "regionRegex" in p)
    except (OSError, ValueError, KeyError, TypeError, re.error):
        return None  # a file we do not understand: no check rather than a false finding
    return Regions(names, patterns) if names else None
