"""A small JUnit XML writer, shared by ``validate --format junit`` and drill evidence.

It writes the subset every CI system reads (Jenkins, GitLab, GitHub test reporters):
``testsuites > testsuite > testcase`` with ``failure``/``skipped``/``system-out``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

# Characters XML 1.0 cannot carry, even escaped (ElementTree writes them as they are, and every
# reader then rejects the whole file). Messages quote plan keys, which may contain anything.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(text: str) -> str:
    """``text`` with the characters XML cannot carry written as ``\\x01``-style escapes."""
    return _NOT_XML.sub(lambda m: "\\" + ascii(m.group(0))[2:-1], text)


@dataclass
class Case:
    name: str
    classname: str
    time: float = 0.0
    failure: str | None = None  # message; the full text goes into the element body
    failure_text: str = ""
    failure_type: str = "failure"
    skipped: str | None = None
    output: str = ""


@dataclass
class Suite:
    name: str
    cases: list[Case] = field(default_factory=list)
    timestamp: str | None = None
    properties: dict[str, str] = field(default_factory=dict)


def to_xml(suites: list[Suite], *, name: str = "drplan") -> str:
    root = ET.Element("testsuites", name=name)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
    for suite in suites:
        failures = sum(1 for c in suite.cases if c.failure is not None)
        skipped = sum(1 for c in suite.cases if c.skipped is not None)
        time = sum(c.time for c in suite.cases)
        attrs = {
            "name": _xml_safe(suite.name),
            "tests": str(len(suite.cases)),
            "failures": str(failures),
            "errors": "0",
            "skipped": str(skipped),
            "time": f"{time:.3f}",
        }
        if suite.timestamp:
            attrs["timestamp"] = suite.timestamp
        element = ET.SubElement(root, "testsuite", attrs)
        if suite.properties:
            props = ET.SubElement(element, "properties")
            for key, value in suite.properties.items():
                ET.SubElement(props, "property", name=_xml_safe(key), value=_xml_safe(value))
        for case in suite.cases:
            tc = ET.SubElement(
                element,
                "testcase",
                name=_xml_safe(case.name),
                classname=_xml_safe(case.classname),
                time=f"{case.time:.3f}",
            )
            if case.failure is not None:
                failure = ET.SubElement(
                    tc, "failure", message=_xml_safe(case.failure), type=_xml_safe(case.failure_type)
                )
                failure.text = _xml_safe(case.failure_text or case.failure)
            if case.skipped is not None:
                ET.SubElement(tc, "skipped", message=_xml_safe(case.skipped))
            if case.output:
                ET.SubElement(tc, "system-out").text = _xml_safe(case.output)
        totals["tests"] += len(suite.cases)
        totals["failures"] += failures
        totals["skipped"] += skipped
        totals["time"] += time
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failures"]))
    root.set("errors", "0")
    root.set("skipped", str(totals["skipped"]))
    root.set("time", f"{totals['time']:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
