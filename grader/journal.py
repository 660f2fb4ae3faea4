"""A grade's journal: each finished check is appended as it completes, so a killed grader
loses none of them.

A journal is one JSON-lines file named after a key that hashes everything deciding the grade
(grader version, the assignment's checks and reference, the submission's files, seed, device,
options). Its first line is that identity; each further line is one finished check, flushed
and fsynced before the next check starts. A grade that finds a journal with its own identity
reports those checks from it and runs only the others; a grade that completes deletes its
journal. A torn last line (the grader was killed while writing it) is ignored, so that check
simply runs again, and a journal that cannot be read is replaced: the worst case is a clean
regrade, never a wrong or half-written result. Journals of grades nobody resumed (the
submission changed since, or it was never graded again) are removed after `STALE_AFTER_S`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import IO, Any

from grader.atomicfile import write_atomic
from grader.result import CheckResult

_FIELDS = {f.name for f in fields(CheckResult)}
STALE_AFTER_S = 14 * 24 * 3600


class Journal:
    """Finished checks of one grade, on disk."""

    def __init__(self, folder: Path, identity: dict[str, Any]) -> None:
        self.identity = identity
        text = json.dumps(identity, sort_keys=True)
        key = hashlib.sha256(text.encode()).hexdigest()[:32]
        self.path = Path(folder) / f"{identity.get('assignment', 'grade')}-{key}.jsonl"
        self._file: IO[str] | None = None
        self.resumed: dict[str, CheckResult] = {}

    def finished(self) -> dict[str, CheckResult]:
        """The checks an interrupted run of this same grade completed, by check id."""
        try:
            lines = self.path.read_text(encoding="utf-8").split("\n")
        except (OSError, UnicodeDecodeError):
            return {}
        if not lines or _load(lines[0]) != {"journal": self.identity}:
            return {}
        results = {}
        for line in lines[1:]:
            record = _load(line)
            if isinstance(record, dict) and set(record) == _FIELDS:
                results[record["id"]] = CheckResult(**record)
        return results

    def start(self, resumed: dict[str, CheckResult]) -> None:
        """Open the journal for this run, keeping (rewriting) the checks being resumed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(self.path.parent)
        lines = [json.dumps({"journal": self.identity}, sort_keys=True)]
        lines += [json.dumps(asdict(result)) for result in resumed.values()]
        write_atomic(self.path, ("\n".join(lines) + "\n").encode("utf-8"))
        self._file = self.path.open("a", encoding="utf-8")
        self.resumed = resumed

    def record(self, result: CheckResult) -> None:
        """Append one finished check; it is on disk when this returns."""
        if self._file is None:
            return
        try:
            self._file.write(json.dumps(asdict(result)) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError:  # a full disk costs the resume, never the grade
            self.close(completed=False)

    def close(self, *, completed: bool) -> None:
        """Stop writing; a completed grade no longer needs its journal."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if completed:
            with contextlib.suppress(OSError):
                self.path.unlink()


def _load(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def remove_stale(folder: Path, max_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove the journals in `folder` untouched for `max_age_s`; the ones removed."""
    cutoff = time.time() - max_age_s
    removed = []
    for path in Path(folder).glob("*.jsonl"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
    return removed
