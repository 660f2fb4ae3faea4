"""Turn what the user points at (a folder or a .zip) into a folder holding the files.

Accepted: a folder with the assignment's files, a folder holding `ASSIGNMENT/` with them,
or a .zip of either (also with one wrapping folder). Zips are extracted safely: no absolute
paths, no `..`, nothing but files and folders (no links, devices or FIFOs), and a cap on the
extracted size and file count. Folders are copied by `grader.safecopy`: never through a link,
never opening anything but a regular file, under the same caps.

The path the user gave is followed if it is a link (they typed it); nothing inside it is.
Finding the files (`ASSIGNMENT/`, one wrapping folder) looks at entries without following
them, and a link on the way to the files is refused like any link in the copy.
"""

from __future__ import annotations

import hashlib
import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from grader.course import Assignment
from grader.errors import BadInput
from grader.safecopy import DIR_FLAGS, FILE_FLAGS, copy_tree, kind, open_folder, shown

MAX_EXTRACTED_BYTES = 50 << 20
MAX_FILES = 2000
IGNORED_NAMES = (
    "__pycache__",
    "__MACOSX",
    ".DS_Store",
    ".git",
    ".ipynb_checkpoints",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".venv",
    "venv",
)
IGNORED_SUFFIXES = (".pyc",)


@dataclass(frozen=True)
class Submission:
    """Where the submission's files are and a hash of the files the student edits."""

    source: Path
    folder: Path
    sha256: str
    notes: tuple[str, ...] = ()
    """What a student should know about what was graded (which of two copies of a file)."""


def ignored(name: str) -> bool:
    """Whether an entry is left out of the copy unread: caches, version control, macOS's
    extras and virtual environments (full of links, and never what the worker imports)."""
    return name in IGNORED_NAMES or name.endswith(IGNORED_SUFFIXES)


def _regular_bytes(path: Path) -> bytes | None:
    """The content of `path` if it is a regular file (never through a link), else None."""
    try:
        fd = os.open(path, FILE_FLAGS)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return file.read()


def hash_files(folder: Path, files: tuple[str, ...]) -> str:
    """SHA-256 over the assignment's files (name and content), the submission's identity."""
    digest = hashlib.sha256()
    for name in sorted(files):
        data = _regular_bytes(folder / name)
        digest.update(name.encode() + b"\0")
        digest.update(b"<missing>" if data is None else data)
        digest.update(b"\0")
    return digest.hexdigest()


def _present_file(folder_fd: int, assignment: Assignment) -> str | None:
    """The first of the assignment's files that the folder has an entry for (a link counts:
    the copy then refuses it by name, which says more than 'not found'), or None."""
    for name in assignment.files:
        try:
            mode = os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_mode
        except OSError:
            continue
        if not stat.S_ISDIR(mode):
            return name
    return None


def _open_candidate(root_fd: int, parts: tuple[str, ...], label: str) -> int | None:
    """The folder at `parts` under the root, opened without following a link; None if it is
    missing or not a folder. A link on the way is refused."""
    fd = os.dup(root_fd)
    where = label
    try:
        for part in parts:
            where = f"{where}/{part}"
            try:
                mode = os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                return None
            if not (stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                return None
            child = open_folder(part, fd, where)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _find_folder(
    root_fd: int, assignment: Assignment, label: str
) -> tuple[int, str, tuple[str, ...]] | None:
    """The open folder holding the assignment's files, how messages name it, and a note for
    each other place in the submission that holds them too (only the first is graded)."""
    with os.scandir(root_fd) as entries:
        children = [
            e.name
            for e in entries
            if (e.is_symlink() or e.is_dir(follow_symlinks=False))
            and not ignored(e.name)
            and not e.name.startswith(".")
        ]
    candidates = [(), (assignment.name,)]
    if len(children) == 1:
        candidates += [(children[0],), (children[0], assignment.name)]
    found: tuple[int, str, str] | None = None
    notes = []
    for parts in dict.fromkeys(candidates):
        try:
            fd = _open_candidate(root_fd, parts, label)
        except BadInput:
            if found is None:
                raise
            continue  # a place that is not graded is never read through a link
        if fd is None:
            continue
        name = _present_file(fd, assignment)
        if name is not None and found is None:
            found = (fd, "/".join([label, *parts]), "/".join([*parts, name]))
            continue
        os.close(fd)
        if name is not None:
            notes.append(
                f"graded {shown(found[2])}; {shown('/'.join([*parts, name]))} was ignored "
                "(a submission holds one copy of each file)."
            )
    return None if found is None else (found[0], found[1], tuple(notes))


def extract_zip(archive: IO[bytes], name: str, destination: Path) -> None:
    """Extract the zip `archive` (called `name` in messages) into `destination`, refusing
    anything that could escape it or that is not a file or folder."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            if len(members) > MAX_FILES:
                raise BadInput(
                    f"{shown(name)} holds {len(members)} files; the limit is {MAX_FILES}."
                )
            total = 0
            for member in members:
                path = PurePosixPath(member.filename)
                if path.is_absolute() or ".." in path.parts or "\\" in member.filename:
                    raise BadInput(
                        f"{shown(name)} contains an unsafe path: {shown(repr(member.filename))}."
                    )
                mode = member.external_attr >> 16
                if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                    raise BadInput(
                        f"{shown(name)}: {shown(repr(member.filename))} is a {kind(mode)}; a "
                        "submission may hold only regular files and folders."
                    )
                total += member.file_size
                if total > MAX_EXTRACTED_BYTES:
                    raise BadInput(
                        f"{shown(name)} unpacks to more than {MAX_EXTRACTED_BYTES >> 20} MB."
                    )
            for member in members:
                target = destination / member.filename
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(target, "wb") as dst:
                    data = src.read(member.file_size + 1)
                    if len(data) > member.file_size:
                        raise BadInput(f"{shown(name)} has a member larger than it declares.")
                    dst.write(data)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as error:
        raise BadInput(f"{shown(name)} is not a readable zip file ({error}).") from error


def _copy_found(root_fd: int, path: Path, assignment: Assignment, workdir: Path) -> Submission:
    """Find the assignment's files under the open root and copy their folder."""
    try:
        found = _find_folder(root_fd, assignment, str(path))
    except OSError as error:
        raise BadInput(f"cannot read {shown(path)}: {error.strerror or error}") from error
    if found is None:
        wanted = ", ".join(assignment.files)
        raise BadInput(
            f"no {wanted} in {shown(path)} (expected the file(s) directly in it or in "
            f"{shown(path / assignment.name)})."
        )
    folder_fd, label, notes = found
    copy = workdir / "submission"
    try:
        copy_tree(
            folder_fd,
            copy,
            max_files=MAX_FILES,
            max_bytes=MAX_EXTRACTED_BYTES,
            ignore=ignored,
            label=label,
        )
    finally:
        os.close(folder_fd)
    return Submission(
        source=path, folder=copy, sha256=hash_files(copy, assignment.files), notes=notes
    )


def prepare(path: Path, assignment: Assignment, workdir: Path) -> Submission:
    """Copy the submission at `path` into `workdir/submission` and describe it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BadInput(f"submission not found: {shown(path)}") from None
    except OSError as error:
        raise BadInput(f"cannot read {shown(path)}: {error.strerror or error}") from error
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            return _copy_found(fd, path, assignment, workdir)
        if not stat.S_ISREG(mode):
            raise BadInput(f"{shown(path)} is neither a folder nor a .zip file.")
        with os.fdopen(os.dup(fd), "rb") as archive:
            if not zipfile.is_zipfile(archive):
                archive.seek(0)
                if path.name.lower().endswith(".zip") or archive.read(2) == b"PK":
                    raise BadInput(
                        f"{shown(path)} is not a readable zip file (it is cut short or "
                        "damaged: make the zip again)."
                    )
                raise BadInput(f"{shown(path)} is neither a folder nor a .zip file.")
            unpacked = workdir / "unpacked"
            unpacked.mkdir()
            extract_zip(archive, str(path), unpacked)
        root_fd = os.open(unpacked, DIR_FLAGS)
        try:
            return _copy_found(root_fd, path, assignment, workdir)
        finally:
            os.close(root_fd)
    finally:
        os.close(fd)
