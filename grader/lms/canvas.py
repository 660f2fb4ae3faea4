"""Canvas's "Download Submissions": one flat folder of `name_12345_67890_file.py` files.

Canvas names each file `<name>_<user id>_<attachment id>_<file name>` (`<name>_LATE_...`
for a late one), where `<name>` is the student's name in lower case without spaces, and
renames a file the student had handed in before to `file-1.py`. `bulk_file` reads such a
name; `group` gathers each student's files and the names they get in the folder that is
graded (`softmax-1.py` is `softmax.py` again when the assignment wants `softmax.py`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

BULK_NAME = re.compile(
    r"(?P<name>[^_]+)(?P<late>_LATE)?_(?P<user>\d+)_(?P<attachment>\d+)_(?P<file>.+)", re.S
)
RENAMED = re.compile(r"(?P<stem>.+)-(?P<copy>\d+)(?P<suffix>\.[^.]*)?", re.S)


@dataclass(frozen=True)
class BulkFile:
    """One file of a bulk download: its name there, whose it is, and its original name."""

    child: str
    student: str
    user_id: str
    original: str


def bulk_file(name: str) -> BulkFile | None:
    """The parts of a bulk-download file name, or None if `name` is not one."""
    match = BULK_NAME.fullmatch(name)
    if match is None or match["file"] in (".", ".."):
        return None
    return BulkFile(name, match["name"], match["user"], match["file"])


def _target(original: str, wanted: tuple[str, ...]) -> tuple[str, int]:
    """The name a file gets in the graded folder and its preference (higher wins): its own
    name, or the assignment's file it is a renamed copy of (`softmax-2.py`)."""
    if original in wanted:
        return original, 1 << 30
    match = RENAMED.fullmatch(original)
    if match is not None:
        name = match["stem"] + (match["suffix"] or "")
        if name in wanted:
            return name, int(match["copy"][:9])
    return original, 0


def group(files: list[BulkFile], wanted: tuple[str, ...]) -> dict[tuple[str, str], dict[str, str]]:
    """Each student's files, keyed by (name, user id): {name in the download: name to grade
    it under}. Of two files that would get one name, the preferred is kept (the exact name,
    else the highest copy number); the other is left out."""
    chosen: dict[tuple[str, str], dict[str, tuple[int, str]]] = defaultdict(dict)
    for file in files:
        target, preference = _target(file.original, wanted)
        names = chosen[(file.student, file.user_id)]
        if target not in names or names[target][0] < preference:
            names[target] = (preference, file.child)
    return {
        key: {child: target for target, (_, child) in names.items()}
        for key, names in chosen.items()
    }
