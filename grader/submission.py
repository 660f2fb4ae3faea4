"""Turn what the user points at (a folder or a .zip) into a folder holding the files.

Accepted: a folder with the assignment's files, a folder holding `ASSIGNMENT/` with them,
or a .zip of either (also with one wrapping folder). Zips are extracted safely: no absolute
paths, no `..`, no symlinks, and a cap on the extracted size and file count.
"""

from __future__ import annotations

import hashlib
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from grader.course import Assignment
from grader.errors import BadInput

MAX_EXTRACTED_BYTES = 50 << 20
MAX_FILES = 2000
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".git", ".pytest_cache", "__MACOSX")


@dataclass(frozen=True)
class Submission:
    """Where the submission's files are and a hash of the files the student edits."""

    source: Path
    folder: Path
    sha256: str


def hash_files(folder: Path, files: tuple[str, ...]) -> str:
    """SHA-256 over the assignment's files (name and content), the submission's identity."""
    digest = hashlib.sha256()
    for name in sorted(files):
        path = folder / name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
        digest.update(b"\0")
    return digest.hexdigest()


def _holds_files(folder: Path, assignment: Assignment) -> bool:
    return any((folder / name).is_file() for name in assignment.files)


def _find_folder(root: Path, assignment: Assignment) -> Path | None:
    candidates = [root, root / assignment.name]
    children = [p for p in root.iterdir() if p.is_dir() and p.name not in ("__MACOSX",)]
    if len(children) == 1:
        candidates += [children[0], children[0] / assignment.name]
    return next((c for c in candidates if c.is_dir() and _holds_files(c, assignment)), None)


def extract_zip(archive: Path, destination: Path) -> None:
    """Extract `archive` into `destination`, refusing anything that could escape it."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            if len(members) > MAX_FILES:
                raise BadInput(f"{archive} holds {len(members)} files; the limit is {MAX_FILES}.")
            total = 0
            for member in members:
                name = PurePosixPath(member.filename)
                if name.is_absolute() or ".." in name.parts or "\\" in member.filename:
                    raise BadInput(f"{archive} contains an unsafe path: {member.filename!r}.")
                if stat.S_ISLNK(member.external_attr >> 16):
                    raise BadInput(f"{archive} contains a symbolic link: {member.filename!r}.")
                total += member.file_size
                if total > MAX_EXTRACTED_BYTES:
                    raise BadInput(
                        f"{archive} unpacks to more than {MAX_EXTRACTED_BYTES >> 20} MB."
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
                        raise BadInput(f"{archive} has a member larger than it declares.")
                    dst.write(data)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as error:
        raise BadInput(f"{archive} is not a readable zip file ({error}).") from error


def prepare(path: Path, assignment: Assignment, workdir: Path) -> Submission:
    """Copy the submission at `path` into `workdir/submission` and describe it."""
    if not path.exists():
        raise BadInput(f"submission not found: {path}")
    unpacked = workdir / "unpacked"
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise BadInput(f"{path} is neither a folder nor a .zip file.")
        unpacked.mkdir()
        extract_zip(path, unpacked)
        root = unpacked
    else:
        root = path
    try:
        folder = _find_folder(root, assignment)
    except OSError as error:
        raise BadInput(f"cannot read {path}: {error}") from error
    if folder is None:
        wanted = ", ".join(assignment.files)
        raise BadInput(
            f"no {wanted} in {path} (expected the file(s) directly in it or in "
            f"{path / assignment.name})."
        )
    copy = workdir / "submission"
    try:
        shutil.copytree(folder, copy, ignore=IGNORED, symlinks=False)
    except (OSError, shutil.Error) as error:
        raise BadInput(f"cannot read {path}: {error}") from error
    return Submission(source=path, folder=copy, sha256=hash_files(copy, assignment.files))
