"""The students of a submissions folder: who they are, how rows and files name them, and a
fingerprint of what each handed in.

Each child of the folder is one student: a folder, named by its name, or a .zip or .ipynb
notebook, named by its stem -- or by its whole name when the stem is taken, so `victim.zip`
beside `victim/` is a second student rather than a reason to reject `victim`. Hidden
entries, `__MACOSX` and `__pycache__` are skipped; other files are listed as ignored. A child
that is a symbolic link to a folder (or named .zip or .ipynb) is a student whose row says it
was not read: nothing is read through a link (`subs/eve -> alice` must not grade alice's
code as eve's).

A name is hostile text (any bytes but `/` and NUL, up to 255 of them). `shown` is the name
for people and spreadsheets: bytes that are not UTF-8 as `\\xNN`, control characters escaped.
`stem` names the student's files under OUT: the name itself when it is plain (letters,
digits, `_`, `-`, `.` and spaces, starting with a letter, digit or `_`, at most 100 bytes),
else a plain prefix of it, `~` and 16 hex digits of the SHA-256 of its bytes. No plain name
holds a `~`, so stems are unique; names that differ only in case get the hashed form too, as
a case-insensitive file system would merge them. The same folder always gives the same
stems, so a resumed batch finds every result it wrote.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections import Counter
from pathlib import Path
from typing import Any

from grader.errors import BadInput
from grader.pool import Student
from grader.safecopy import FILE_FLAGS, kind, shown
from grader.submission import ignored, is_notebook_name

SKIPPED_NAMES = ("__MACOSX", "__pycache__")
PLAIN_NAME = re.compile(r"\w[\w.\- ]*")
MAX_PLAIN_BYTES = 100
PREFIX_CHARS = 40


def _is_plain(name: str) -> bool:
    return (
        PLAIN_NAME.fullmatch(name) is not None
        and not name.endswith((".", " "))
        and len(name.encode("utf-8")) <= MAX_PLAIN_BYTES
    )


def hashed_stem(name: str) -> str:
    """A bounded file name for any `name`: a plain prefix, `~` and a hash of all its bytes."""
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    prefix = re.sub(r"[^\w.\-]+", "_", name).strip("._- ")[:PREFIX_CHARS].rstrip("._- ")
    return f"{prefix or 'student'}~{digest}"


def file_stems(names: list[str]) -> dict[str, str]:
    """The stem each student's files are written under (see the module docstring)."""
    stems = {name: name if _is_plain(name) else hashed_stem(name) for name in names}
    folded = Counter(stem.casefold() for stem in stems.values())
    return {
        name: hashed_stem(name) if folded[stem.casefold()] > 1 else stem
        for name, stem in stems.items()
    }


def _is_file_submission(name: str) -> bool:
    """Whether a file by this name is a submission: a .zip, or a notebook."""
    return (name.lower().endswith(".zip") and len(name) > len(".zip")) or is_notebook_name(name)


def _student_names(children: list[str]) -> dict[str, str]:
    """Each child's student name: a zip's or notebook's stem unless another child has it."""
    names = {
        child: child.rsplit(".", 1)[0] if _is_file_submission(child) else child
        for child in children
    }
    while True:
        counts = Counter(names.values())
        clashing = [c for c, name in names.items() if counts[name] > 1 and name != c]
        if not clashing:
            return names
        for child in clashing:
            names[child] = child


def _problem(entry: os.DirEntry[str]) -> str | None:
    """Why the child `entry` cannot be read ('' when it can), or None if it is no submission."""
    if entry.is_symlink():
        points_at_one = entry.is_dir() or _is_file_submission(entry.name)  # target unread
        return f"{shown(entry.name)} is a symbolic link" if points_at_one else None
    if entry.is_dir(follow_symlinks=False):
        return ""
    is_file = entry.is_file(follow_symlinks=False)
    return "" if is_file and _is_file_submission(entry.name) else None


def find_students(folder: Path) -> tuple[list[Student], list[str]]:
    """The students in `folder` (sorted by name) and the names of children that are not one
    (as `shown`)."""
    if not folder.exists():
        raise BadInput(f"submissions folder not found: {shown(folder)}")
    if not folder.is_dir():
        raise BadInput(
            f"{shown(folder)} is not a folder (give the folder that holds the submissions)."
        )
    children: dict[str, str] = {}
    ignored = []
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith(".") or entry.name in SKIPPED_NAMES:
                continue
            problem = _problem(entry)
            if problem is None:
                ignored.append(shown(entry.name))
            else:
                children[entry.name] = problem
    names = _student_names(list(children))
    stems = file_stems(list(names.values()))
    found = []
    for child, name in names.items():
        problem = children[child] and (
            f"{children[child]}; a submission is read only from a folder, .zip or notebook that is "
            "itself in the submissions folder (links are never followed)."
        )
        found.append(Student(name, folder / child, problem, shown(name), stems[name]))
    return sorted(found, key=lambda s: (s.name.lower(), s.name)), ignored


def _hash_entry(digest: Any, path: str) -> None:
    """Add one entry to the fingerprint: a file's content, a link's text, or the kind of
    anything else (never opened: a FIFO would block, a device never end)."""
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        digest.update(b"link:" + os.readlink(path).encode(errors="replace"))
        return
    if stat.S_ISREG(mode):
        with os.fdopen(os.open(path, FILE_FLAGS), "rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            while stat.S_ISREG(mode) and (chunk := file.read(1 << 20)):
                digest.update(chunk)
    if not stat.S_ISREG(mode):
        digest.update(f"special:{kind(mode)}".encode())


def source_hash(path: Path) -> str | None:
    """SHA-256 of what the student handed in (a zip's bytes, or a folder's entries but those
    the copy ignores); None if it cannot be read (the grade then says why). Nothing is read
    through a link."""
    digest = hashlib.sha256()
    try:
        if not os.path.isdir(path) or os.path.islink(path):
            _hash_entry(digest, str(path))
            return digest.hexdigest()
        for root, dirs, files in os.walk(path):  # never descends into a link
            links = [d for d in dirs if os.path.islink(os.path.join(root, d))]
            dirs[:] = sorted(d for d in dirs if not ignored(d) and d not in links)
            for name in sorted(n for n in [*files, *links] if not ignored(n)):
                entry = os.path.join(root, name)
                digest.update(os.fsencode(os.path.relpath(entry, path)) + b"\0")
                _hash_entry(digest, entry)
                digest.update(b"\0")
    except OSError:
        return None
    return digest.hexdigest()
