"""The students of a submissions folder: who they are, how rows and files name them, and a
fingerprint of what each handed in.

Each child of the folder is one student: a folder, named by its name, or a .zip or .ipynb
notebook, named by its stem -- or by its whole name when the stem is taken, so `victim.zip`
beside `victim/` is a second student rather than a reason to reject `victim`. Hidden
entries, `__MACOSX` and `__pycache__` are skipped; other files are listed as ignored. Two
layouts an LMS exports are read too: the flat `name_12345_67890_file.py` files of a Canvas
bulk download are grouped per student (`stage` copies each student's files into a folder of
their own before they are graded), and the folders of a Gradescope export are named by who
submitted them. The batch's own output folder, and any folder an earlier batch wrote a
gradebook into, is never a student. A child that is a symbolic link to a folder (or named
.zip or .ipynb) is a student whose row says it was not read: nothing is read through a link
(`subs/eve -> alice` must not grade alice's code as eve's).

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

import contextlib
import hashlib
import os
import re
import shutil
import stat
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from grader.errors import BadInput
from grader.lms import Person, canvas, gradescope_export
from grader.pool import Student
from grader.safecopy import FILE_FLAGS, copy_files, kind, shown
from grader.submission import MAX_EXTRACTED_BYTES, MAX_FILES, ignored, is_notebook_name

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


class Found(NamedTuple):
    """What a submissions folder holds: the students (sorted by name), the names of children
    that are no submission (as `shown`), and what the person running the batch should know
    (a folder left out, names that differ only in case)."""

    students: list[Student]
    ignored: list[str]
    warnings: list[str]


def _is_output(folder: Path, entry: os.DirEntry[str], output: Path | None) -> bool:
    """Whether the child is the batch's output folder (or holds it), so never a student."""
    if output is None:
        return False
    child, out = os.path.realpath(folder / entry.name), os.path.realpath(output)
    return out == child or out.startswith(child + os.sep)


def _is_earlier_output(entry: os.DirEntry[str]) -> bool:
    """Whether the child is a folder an earlier batch wrote its gradebook into."""
    if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
        return False
    with contextlib.suppress(OSError):
        names = set(os.listdir(entry.path))
        return {"gradebook.csv", "summary.json", "results"} <= names
    return False


def _case_warnings(names: list[str]) -> list[str]:
    by_fold: dict[str, list[str]] = {}
    for name in names:
        by_fold.setdefault(name.casefold(), []).append(name)
    return [
        f"{' and '.join(shown(n) for n in same)} differ only in case: a case-insensitive disk "
        "(macOS, Windows) would make them one folder; check that they are different students."
        for same in by_fold.values()
        if len(same) > 1
    ]


def find_students(
    folder: Path, *, files: tuple[str, ...] = (), output: Path | None = None
) -> Found:
    """The students in `folder`: its folders and zips, each student's files of a Canvas bulk
    download (`files`, the assignment's, say which names its renamed copies get back), and
    the submission folders of a Gradescope export, named by who submitted them. `output`,
    the batch's output folder, is never a student, nor is an earlier batch's output."""
    if not folder.exists():
        raise BadInput(f"submissions folder not found: {shown(folder)}")
    if not folder.is_dir():
        raise BadInput(
            f"{shown(folder)} is not a folder (give the folder that holds the submissions)."
        )
    gradescope = os.path.lexists(folder / gradescope_export.METADATA)
    submitters = gradescope_export.read_metadata(folder) if gradescope else {}
    children: dict[str, str] = {}
    bulk: list[canvas.BulkFile] = []
    ignored, warnings = [], []
    with os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith(".") or entry.name in SKIPPED_NAMES:
                continue
            if gradescope and entry.name == gradescope_export.METADATA:
                continue
            if _is_output(folder, entry, output) or _is_earlier_output(entry):
                warnings.append(
                    f"{shown(entry.name)} is the output folder of a batch; it is not graded "
                    "as a student (keep -o outside the submissions folder)."
                )
                continue
            found = canvas.bulk_file(entry.name)
            if found is not None and entry.is_file(follow_symlinks=False):
                bulk.append(found)  # a link is never a file here: is_file does not follow it
                continue
            problem = _problem(entry)
            if problem is None:
                ignored.append(shown(entry.name))
            else:
                children[entry.name] = problem
    names = _student_names(list(children))
    for child in children:
        people = submitters.get(child, ())
        if any(p.name for p in people):
            names[child] = " & ".join(p.name for p in people if p.name)
    groups = canvas.group(bulk, files)
    taken = Counter([*names.values(), *(name for name, _ in groups)])
    for child, name in list(names.items()):
        if taken[name] > 1 and name != child:
            names[child] = f"{name} ({child})"
    group_names = {key: key[0] if taken[key[0]] == 1 else f"{key[0]}_{key[1]}" for key in groups}
    stems = file_stems([*names.values(), *group_names.values()])
    found_students = []
    for child, name in names.items():
        problem = children[child] and (
            f"{children[child]}; a submission is read only from a folder, .zip or notebook that is "
            "itself in the submissions folder (links are never followed)."
        )
        people = submitters.get(child, ())
        found_students.append(
            Student(name, folder / child, problem, shown(name), stems[name], people=people)
        )
    for key, picked in groups.items():
        name = group_names[key]
        person = Person(name=key[0], canvas_id=key[1])
        only = list(picked)
        if len(only) == 1 and _is_file_submission(picked[only[0]]):  # graded as one file
            student = Student(name, folder / only[0], "", shown(name), stems[name])
        else:
            student = Student(
                name, folder, "", shown(name), stems[name], files=tuple(sorted(picked.items()))
            )
        found_students.append(replace(student, people=(person,)))
    found_students.sort(key=lambda s: (s.name.lower(), s.name))
    warnings += _case_warnings([s.name for s in found_students])
    return Found(found_students, ignored, warnings)


def stage(student: Student, folder: Path) -> Student:
    """A student whose files are scattered in a bulk download, copied into `folder/STEM`
    under the names they are graded by (never through a link, as any submission is); the
    student as it is otherwise, or with a problem if a file cannot be copied."""
    if not student.files:
        return student
    target = folder / student.stem
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        copy_files(
            student.path,
            dict(student.files),
            target,
            max_files=MAX_FILES,
            max_bytes=MAX_EXTRACTED_BYTES,
        )
    except BadInput as error:
        return replace(student, problem=str(error), files=())
    return replace(student, path=target, files=())


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
