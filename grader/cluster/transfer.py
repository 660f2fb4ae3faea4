"""Folders as data, to send them to a cluster node: the course's files, a submission, MNIST.

A `Bundle` is the regular files and folders of a folder, by relative path, as plain bytes:
Ray carries it through its object store and a node recreates it with `unpack`. `pack` reads
only regular files and folders (a link or a special file is a bug here: submissions are
packed from the copy `grader.submission.prepare` made, which holds neither); `unpack`
writes into a new private folder, refuses a path that could leave it, and counts entries
and bytes against the same caps as local grading, so what a node grades is never more than
what this machine would have graded.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from grader.errors import GraderError
from grader.safecopy import CREATE_FLAGS, DIR_FLAGS, FILE_FLAGS, kind, shown
from grader.submission import ignored

Entry = tuple[bytes, int, bytes | None]  # relative path, permission bits, content (None: folder)


@dataclass(frozen=True)
class Bundle:
    """The files and folders of one folder, in a stable order."""

    entries: tuple[Entry, ...]

    @cached_property
    def digest(self) -> str:
        """SHA-256 over every path, mode and content: what a node keeps the files under."""
        digest = hashlib.sha256()
        for path, mode, data in self.entries:
            digest.update(path + b"\0" + str(mode).encode() + b"\0")
            digest.update(b"<folder>" if data is None else data)
            digest.update(b"\0")
        return digest.hexdigest()

    @property
    def size(self) -> int:
        return sum(len(data) for _, _, data in self.entries if data is not None)


def pack(folder: Path, *, skip: bool = True, prefix: bytes = b"") -> Bundle:
    """The regular files and folders under `folder` (without what `grader.submission.ignored`
    names, e.g. __pycache__, when `skip`); `prefix` is put before every path."""
    entries: list[Entry] = []
    fd = os.open(folder, DIR_FLAGS)
    try:
        _pack_folder(fd, prefix, shown(folder), skip, entries)
    finally:
        os.close(fd)
    return Bundle(tuple(entries))


def _pack_folder(fd: int, prefix: bytes, where: str, skip: bool, entries: list[Entry]) -> None:
    with os.scandir(fd) as scan:
        names = sorted(e.name for e in scan if not (skip and ignored(e.name)))
    for name in names:
        path = prefix + os.fsencode(name)
        mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
        if stat.S_ISDIR(mode):
            entries.append((path, stat.S_IMODE(mode), None))
            child = os.open(name, DIR_FLAGS, dir_fd=fd)
            try:
                _pack_folder(child, path + b"/", f"{where}/{shown(name)}", skip, entries)
            finally:
                os.close(child)
        elif stat.S_ISREG(mode):
            file = os.open(name, FILE_FLAGS, dir_fd=fd)
            with os.fdopen(file, "rb") as opened:
                entries.append((path, stat.S_IMODE(mode), opened.read()))
        else:
            raise GraderError(f"{where}/{shown(name)} is a {kind(mode)}; it cannot be sent.")


def _parts(path: bytes) -> list[bytes]:
    """The components of a bundle path, or GraderError if it could leave its folder."""
    parts = path.split(b"/")
    if not path or b"\0" in path or any(p in (b"", b".", b"..") for p in parts):
        raise GraderError(f"a bundle holds an unsafe path: {shown(os.fsdecode(path))!r}")
    return parts


def unpack(bundle: Bundle, destination: Path, *, max_files: int, max_bytes: int) -> None:
    """Recreate `bundle` in the new folder `destination` (mode 0700); GraderError for a path
    that could leave it, and for more than `max_files` entries or `max_bytes` bytes."""
    if len(bundle.entries) > max_files:
        raise GraderError(f"a bundle holds {len(bundle.entries)} entries; the cap is {max_files}.")
    if bundle.size > max_bytes:
        raise GraderError(f"a bundle holds {bundle.size} bytes; the cap is {max_bytes}.")
    destination.mkdir(mode=0o700)
    for path, mode, data in bundle.entries:
        parts = _parts(path)
        target = destination.joinpath(*(os.fsdecode(p) for p in parts))
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if data is None:
            target.mkdir(mode=(mode & 0o777) | stat.S_IRWXU, exist_ok=True)
            continue
        fd = os.open(target, CREATE_FLAGS, (mode & 0o777) | stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
