"""JUnit XML, the report CI systems render: one testcase per check, points as properties.

A check that failed becomes `<failure>`; one whose code raised or ran out of time becomes
`<error type="error|timeout">`; a skipped check `<skipped>`. The suite and every testcase
carry `score` and `max_score` properties so a CI dashboard can show points, not only
pass/fail. Text from the submission is printable (`Grade.shown`: control characters, which
XML 1.0 cannot hold or a terminal would obey, become visible escapes) and stripped of the
few other characters XML cannot hold. This module only renders a `Grade`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import PurePosixPath

from grader.result import CheckResult, Grade

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _properties(parent: ET.Element, values: dict[str, object]) -> None:
    properties = ET.SubElement(parent, "properties")
    for name, value in values.items():
        text = f"{value:g}" if isinstance(value, float) else str(value)
        ET.SubElement(properties, "property", name=_clean(name), value=_clean(text))


def _classname(grade: Grade, check: CheckResult) -> str:
    """`assignment1.public.test_gates` from `public/test_gates.py::test_and_truth_table`."""
    path = PurePosixPath(check.id.split("::", 1)[0]).with_suffix("")
    return ".".join((grade.assignment, *path.parts))


def _testcase(grade: Grade, check: CheckResult) -> ET.Element:
    case = ET.Element(
        "testcase",
        name=_clean(check.name),
        classname=_clean(_classname(grade, check)),
        time=f"{check.duration_s:.3f}",
    )
    values: dict[str, object] = {
        "id": check.id,
        "score": check.score,
        "max_score": check.max_score,
        "hidden": str(check.hidden).lower(),
    }
    values.update({f"metric.{k}": v for k, v in check.metrics.items()})
    _properties(case, values)
    if check.status == "failed":
        outcome = ET.SubElement(case, "failure", message=_clean(check.message), type="failed")
    elif check.status in ("error", "timeout"):
        outcome = ET.SubElement(case, "error", message=_clean(check.message), type=check.status)
    elif check.status == "skipped":
        outcome = ET.SubElement(case, "skipped", message=_clean(check.message))
    else:
        return case
    outcome.text = _clean(check.details or check.message)
    return case


def to_junit(grade: Grade) -> str:
    """JUnit XML for one grade: a `<testsuites>` holding one `<testsuite>`."""
    grade = grade.shown()
    counts = {
        "tests": len(grade.tests),
        "failures": sum(c.status == "failed" for c in grade.tests),
        "errors": sum(c.status in ("error", "timeout") for c in grade.tests),
        "skipped": sum(c.status == "skipped" for c in grade.tests),
    }
    attributes = {k: str(v) for k, v in counts.items()} | {"time": f"{grade.duration_s:.3f}"}
    root = ET.Element("testsuites", name="dl-grader", **attributes)
    suite = ET.SubElement(root, "testsuite", name=_clean(grade.assignment), **attributes)
    _properties(
        suite,
        {
            "title": grade.title,
            "score": grade.score,
            "max_score": grade.max_score,
            "percent": grade.percent,
            "seed": grade.seed,
            "device": grade.device,
            "grader_version": grade.grader_version,
            "public_only": str(grade.public_only).lower(),
            "submission_sha256": grade.submission.sha256,
        },
    )
    for check in grade.tests:
        suite.append(_testcase(grade, check))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
