"""The JSON report: `Grade.to_dict()` as indented, key-stable JSON."""

from __future__ import annotations

import json

from grader.result import Grade


def to_json(grade: Grade) -> str:
    """The JSON report of one grade (keys documented in the README)."""
    return json.dumps(grade.to_dict(), indent=2) + "\n"
