"""Uploaded files on disk: checked, capped, written and fsynced before a row names them.

An upload is either the assignment's files by name (`softmax.py`: a bare name the assignment
lists, so no name can reach outside the submission's folder) or one `.zip`, unpacked under
`grader.submission`'s rules (no absolute paths, no `..`, no links, capped size and count)
and searched for the assignment's files as a local grade would. Bytes are counted as they
are read, so an upload over the policy's cap is refused before it is all on disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from grader.course import Assignment
from grader.errors import BadInput
from grader.safetext import one_line
from grader.submission import extract_zip, hash_files, prepare

CHUNK = 1 << 16


@dataclass(frozen=True)
class Stored:
    """A submission's files, fsynced in their own folder under DATA/submissions/."""

    folder: str
    path: Path
    sha256: str


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _read_capped(stream: BinaryIO, budget: list[int], cap: int) -> bytes:
    parts = []
    while chunk := stream.read(CHUNK):
        budget[0] += len(chunk)
        if budget[0] > cap:
            raise BadInput(f"the upload is larger than this assignment's limit of {_mb(cap)}.")
        parts.append(chunk)
    return b"".join(parts)


def _mb(count: int) -> str:
    return f"{count / (1 << 20):g} MB"


def read_upload(
    uploads: Iterable[tuple[str, BinaryIO]], assignment: Assignment, cap: int, scratch: Path
) -> dict[str, bytes]:
    """The assignment's files from the uploaded ones (by name, or in one .zip)."""
    uploads = list(uploads)
    if not uploads:
        raise BadInput(f"no files uploaded; send {', '.join(assignment.files)}.")
    budget = [0]
    names = [name or "" for name, _ in uploads]
    if len(uploads) == 1 and names[0].lower().endswith(".zip"):
        data = _read_capped(uploads[0][1], budget, cap)
        return _files_from_zip(data, names[0], assignment, cap, scratch)
    files: dict[str, bytes] = {}
    for name, stream in uploads:
        if name not in assignment.files:
            raise BadInput(
                f"{one_line(repr(name), 120)} is not a file of {assignment.name}; "
                f"send {', '.join(assignment.files)} (or one .zip)."
            )
        if name in files:
            raise BadInput(f"{name} was uploaded twice.")
        files[name] = _read_capped(stream, budget, cap)
    return files


def _files_from_zip(
    data: bytes, name: str, assignment: Assignment, cap: int, scratch: Path
) -> dict[str, bytes]:
    work = Path(tempfile.mkdtemp(prefix="upload-", dir=scratch))
    try:
        archive_path = work / "upload.zip"
        archive_path.write_bytes(data)
        unpacked = work / "unpacked"
        unpacked.mkdir()
        with archive_path.open("rb") as archive:
            extract_zip(archive, one_line(name, 120), unpacked)
        prepared = prepare(unpacked, assignment, work)
        files = {}
        total = 0
        for file in assignment.files:
            path = prepared.folder / file
            if path.is_file() and not path.is_symlink():
                files[file] = path.read_bytes()
                total += len(files[file])
        if total > cap:
            raise BadInput(f"the upload is larger than this assignment's limit of {_mb(cap)}.")
        return files
    finally:
        shutil.rmtree(work, ignore_errors=True)


def store(files: dict[str, bytes], assignment: Assignment, root: Path) -> Stored:
    """Write the files into a new folder under `root`, fsync them and the folders."""
    folder = uuid.uuid4().hex
    target = root / folder
    root.mkdir(parents=True, exist_ok=True)
    target.mkdir()
    try:
        for name, data in files.items():
            _write_file(target / name, data)
        _fsync_dir(target)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return Stored(folder, target, hash_files(target, assignment.files))


def discard(stored: Stored) -> None:
    """Remove the files of a submission whose row was never committed."""
    with contextlib.suppress(OSError):
        shutil.rmtree(stored.path)
