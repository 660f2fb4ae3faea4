"""Turn what the user points at (a folder, a .zip, a notebook) into a folder holding the files.

Accepted: a folder with the assignment's files, a folder holding `ASSIGNMENT/` with them,
or a .zip of either (also with one wrapping folder). A notebook may stand for the module:
a .ipynb file, or a folder (or .zip) holding `MODULE.ipynb`, `ASSIGNMENT.ipynb` or a single
notebook; its code cells become the module in the copy (`grader.notebook`), and the copy
carries the map from the module's lines back to cells. A folder holding both the module and
its notebook is refused: which one the student meant is a guess.

Zips are extracted safely: no absolute paths, no `..`, nothing but files and folders (no
links, devices or FIFOs), and a cap on the extracted size and file count. Folders are copied
by `grader.safecopy`: never through a link, never opening anything but a regular file,
under the same caps.

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
from grader.notebook.reading import MAX_NOTEBOOK_BYTES, read_cells
from grader.safecopy import (
    CREATE_FLAGS,
    DIR_FLAGS,
    FILE_FLAGS,
    copy_tree,
    kind,
    open_folder,
    shown,
)
from grader.sourcemap import SourceMap

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
    """Where the submission's files are and a hash of the files the student edits; for a
    notebook, where the module's lines came from and what was left out of it."""

    source: Path
    folder: Path
    sha256: str
    sources: SourceMap | None = None
    notes: tuple[str, ...] = ()
    """What a student should know about what was graded (which of two copies of a file, a
    notebook's left-out cells)."""


@dataclass(frozen=True)
class _Found:
    """What a folder holds for grading: the assignment's files, or the notebook to use."""

    files: bool
    notebook: str | None = None


def notebook_names(assignment: Assignment) -> tuple[str, str]:
    """The notebook names that stand for the module: `softmax.ipynb`, `assignment3.ipynb`."""
    return f"{assignment.module}.ipynb", f"{assignment.name}.ipynb"


def is_notebook_name(name: str) -> bool:
    return name.lower().endswith(".ipynb") and len(name) > len(".ipynb")


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


def hash_files(folder: Path, files: tuple[str, ...], notebook: bytes | None = None) -> str:
    """SHA-256 over the assignment's files (name and content), the submission's identity;
    a `notebook` stands for the first file (the module made from it)."""
    digest = hashlib.sha256()
    if notebook is not None:
        digest.update(b"<notebook>\0" + notebook + b"\0")
        files = files[1:]
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


def _entries(folder_fd: int) -> dict[str, bool]:
    """The folder's entries that could be submitted files: name -> whether it is a folder
    (a link is not: the copy then refuses it by name, which says more than 'not found')."""
    with os.scandir(folder_fd) as entries:
        return {
            e.name: e.is_dir(follow_symlinks=False)
            for e in entries
            if not ignored(e.name) and not e.name.startswith(".")
        }


def _holds(folder_fd: int, assignment: Assignment, where: str, any_notebook: bool) -> _Found:
    """Whether the folder holds the assignment's files or a notebook named for it (or, with
    `any_notebook`, a single notebook by any name)."""
    entries = _entries(folder_fd)
    files = any(name in entries and not entries[name] for name in assignment.files)
    named = [n for n in notebook_names(assignment) if n in entries and not entries[n]]
    module = assignment.files[0]
    if named and module in entries and not entries[module]:
        raise BadInput(
            f"{shown(where)} holds both {module} and {named[0]}: keep only the "
            "one to grade (or give the notebook itself with --submission)."
        )
    if files or named:
        return _Found(files, named[0] if named else None)
    notebooks = [n for n, is_dir in entries.items() if not is_dir and is_notebook_name(n)]
    if any_notebook and len(notebooks) == 1:
        return _Found(False, notebooks[0])
    return _Found(False)


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
) -> tuple[int, str, _Found, tuple[str, ...]] | None:
    """The open folder holding the assignment's files (or its notebook), how messages name
    it, what it holds, and a note for each other place in the submission that holds the
    files too (only the first is graded). A notebook by another name counts only where
    nothing else does."""
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
    candidates = list(dict.fromkeys(candidates))
    for any_notebook in (False, True):
        for index, parts in enumerate(candidates):
            fd = _open_candidate(root_fd, parts, label)
            if fd is None:
                continue
            where = "/".join([label, *parts])
            found = _holds(fd, assignment, where, any_notebook)
            if found.files or found.notebook:
                notes = _other_copies(root_fd, assignment, label, parts, candidates[index + 1 :])
                return fd, where, found, notes if found.files else ()
            os.close(fd)
    return None


def _other_copies(
    root_fd: int,
    assignment: Assignment,
    label: str,
    graded: tuple[str, ...],
    rest: list[tuple[str, ...]],
) -> tuple[str, ...]:
    """A note for each later candidate folder that holds the files too (never read through
    a link: a place that is not graded is only looked at)."""
    fd = _open_candidate(root_fd, graded, label)
    first = _present_file(fd, assignment) if fd is not None else None
    if fd is not None:
        os.close(fd)
    notes = []
    for parts in rest:
        try:
            fd = _open_candidate(root_fd, parts, label)
        except BadInput:
            continue
        if fd is None:
            continue
        try:
            name = _present_file(fd, assignment)
        finally:
            os.close(fd)
        if name is not None and first is not None:
            notes.append(
                f"graded {shown('/'.join([*graded, first]))}; "
                f"{shown('/'.join([*parts, name]))} was ignored "
                "(a submission holds one copy of each file)."
            )
    return tuple(notes)


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


def _read_bounded(fd: int, label: str) -> bytes:
    """A notebook's bytes from an open regular file, refused past the notebook cap."""
    chunks = []
    size = 0
    while chunk := os.read(fd, min(1 << 20, MAX_NOTEBOOK_BYTES + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_NOTEBOOK_BYTES:
            raise BadInput(
                f"{shown(label)} is larger than {MAX_NOTEBOOK_BYTES >> 20} MB; clear its "
                "outputs (Edit > Clear All Outputs) and save it again."
            )
    return b"".join(chunks)


def _from_notebook(
    data: bytes, name: str, source: Path, copy: Path, assignment: Assignment
) -> Submission:
    """Write the module made of the notebook `data` (called `name`) into `copy`."""
    from grader.notebook.convert import to_module  # only notebooks need it (and its parser)

    module_file = assignment.files[0]
    made = to_module(read_cells(data, name), name, module_file)
    out = os.open(copy / module_file, CREATE_FLAGS, 0o600)
    with os.fdopen(out, "wb") as file:
        file.write(made.text.encode("utf-8", "backslashreplace"))
    return Submission(
        source=source,
        folder=copy,
        sha256=hash_files(copy, assignment.files, notebook=data),
        sources=made.sources,
        notes=made.notes,
    )


def _copy_found(root_fd: int, path: Path, assignment: Assignment, workdir: Path) -> Submission:
    """Find the assignment's files (or its notebook) under the open root and copy their
    folder; a notebook's code cells become the module in the copy."""
    try:
        found = _find_folder(root_fd, assignment, str(path))
    except OSError as error:
        raise BadInput(f"cannot read {shown(path)}: {error.strerror or error}") from error
    if found is None:
        wanted = ", ".join(assignment.files)
        notebooks = " or ".join(notebook_names(assignment))
        raise BadInput(
            f"no {wanted} in {shown(path)} (expected the file(s) directly in it or in "
            f"{shown(path / assignment.name)}, or a notebook: {notebooks})."
        )
    folder_fd, label, holds, notes = found
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
    if holds.notebook is None:
        sha256 = hash_files(copy, assignment.files)
        return Submission(source=path, folder=copy, sha256=sha256, notes=notes)
    fd = os.open(copy / holds.notebook, FILE_FLAGS)
    try:
        data = _read_bounded(fd, holds.notebook)
    finally:
        os.close(fd)
    return _from_notebook(data, holds.notebook, path, copy, assignment)


def prepare(path: Path, assignment: Assignment, workdir: Path) -> Submission:
    """Copy the submission at `path` into `workdir/submission` and describe it (a notebook
    is turned into the module there)."""
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
            raise BadInput(f"{shown(path)} is neither a folder nor a .zip file (nor a notebook).")
        if is_notebook_name(path.name):
            copy = workdir / "submission"
            copy.mkdir(mode=0o700)
            return _from_notebook(_read_bounded(fd, path.name), path.name, path, copy, assignment)
        with os.fdopen(os.dup(fd), "rb") as archive:
            if not zipfile.is_zipfile(archive):
                archive.seek(0)
                if path.name.lower().endswith(".zip") or archive.read(2) == b"PK":
                    raise BadInput(
                        f"{shown(path)} is not a readable zip file (it is cut short or "
                        "damaged: make the zip again)."
                    )
                raise BadInput(
                    f"{shown(path)} is neither a folder nor a .zip file (nor a .ipynb notebook)."
                )
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
