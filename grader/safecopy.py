"""Copy a submission's folder without following a link or opening anything but a regular file.

A submission is hostile data that the grader (often root) reads: a link inside it can name
the course's reference solution, a hidden check, the test labels, /etc/shadow or another
student's folder, and a device or FIFO can feed endless bytes or block forever. `copy_tree`
walks the source by file descriptor: each folder is opened relative to its parent with
O_NOFOLLOW, so a path component swapped for a link during the copy cannot redirect it; each
file is opened with O_NOFOLLOW|O_NONBLOCK and copied only if fstat says it is a regular file.
Entries, bytes and depth are counted while copying (a file that grows while it is read is cut
at the cap, its size from stat is never trusted). Anything else is refused with `BadInput`
naming the entry. Names that `ignore` matches are skipped without being looked at.

Not for trusted trees (course content): there `shutil` is fine.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from grader.errors import BadInput
from grader.safetext import one_line

MAX_DEPTH = 32
CHUNK = 1 << 20
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
KINDS = {
    stat.S_IFLNK: "symbolic link",
    stat.S_IFIFO: "named pipe",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFSOCK: "socket",
    stat.S_IFDIR: "folder",
    stat.S_IFREG: "file",
}


def kind(mode: int) -> str:
    """What a file of `mode` is, in words ('symbolic link', 'named pipe', ...)."""
    return KINDS.get(stat.S_IFMT(mode), "special file")


def shown(path: str | os.PathLike[str]) -> str:
    """A file name as a person may see it: bytes that are not UTF-8 as \\xNN, no control codes.

    Not cut short: a reader must be able to tell two names apart.
    """
    text = os.fspath(path)
    with contextlib.suppress(UnicodeEncodeError):  # else one_line escapes the odd surrogate
        text = os.fsencode(text).decode("utf-8", "backslashreplace")
    return one_line(text, 1 << 16)


def refusal(where: str, what: str) -> BadInput:
    """The one-line refusal of an entry that is not a regular file or folder."""
    why = " (links are never followed)" if what == "symbolic link" else ""
    return BadInput(
        f"{shown(where)} is a {what}; a submission may hold only regular files and folders{why}."
    )


class _Budget:
    """What is left of the caps on entries and bytes; refuses once either is exceeded."""

    def __init__(self, label: str, max_files: int, max_bytes: int) -> None:
        self.label = label
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.files = 0
        self.bytes = 0

    def take_entry(self) -> None:
        self.files += 1
        if self.files > self.max_files:
            raise BadInput(
                f"{shown(self.label)} holds more than {self.max_files} files and folders."
            )

    def take_bytes(self, count: int) -> None:
        self.bytes += count
        if self.bytes > self.max_bytes:
            size = (
                f"{self.max_bytes >> 20} MB" if self.max_bytes >> 20 else f"{self.max_bytes} bytes"
            )
            raise BadInput(f"{shown(self.label)} holds more than {size}.")

    @property
    def bytes_left(self) -> int:
        return self.max_bytes - self.bytes


def open_folder(name: str, dir_fd: int, where: str) -> int:
    """Open the folder `name` in `dir_fd` without following a link; refuse anything else."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
            raise refusal(where, kind(mode)) from None
        raise


def copy_folder(
    source: Path,
    destination: Path,
    *,
    max_files: int,
    max_bytes: int,
    ignore: Callable[[str], bool] = lambda name: False,
) -> None:
    """Copy the folder `source` to the new folder `destination` (see the module docstring).

    `source` itself is opened following a link (whoever called chose it); nothing inside it is.
    """
    try:
        fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise BadInput(f"cannot read {shown(source)}: {error.strerror or error}") from error
    try:
        copy_tree(
            fd,
            destination,
            max_files=max_files,
            max_bytes=max_bytes,
            ignore=ignore,
            label=str(source),
        )
    finally:
        os.close(fd)


def copy_tree(
    source_fd: int,
    destination: Path,
    *,
    max_files: int,
    max_bytes: int,
    ignore: Callable[[str], bool] = lambda name: False,
    label: str,
) -> None:
    """Copy the open folder `source_fd` into the new folder `destination`; `label` is how
    messages name the source."""
    budget = _Budget(label, max_files, max_bytes)
    destination.mkdir(mode=0o700)
    target_fd = os.open(destination, DIR_FLAGS)
    try:
        _copy_folder(source_fd, target_fd, label, budget, ignore, depth=0)
    finally:
        os.close(target_fd)


def _copy_folder(
    source_fd: int,
    target_fd: int,
    where: str,
    budget: _Budget,
    ignore: Callable[[str], bool],
    depth: int,
) -> None:
    if depth > MAX_DEPTH:
        raise BadInput(f"{shown(where)} is nested more than {MAX_DEPTH} folders deep.")
    names = []
    try:
        with os.scandir(source_fd) as entries:
            for entry in entries:
                if not ignore(entry.name):
                    budget.take_entry()
                    names.append(entry.name)
    except OSError as error:
        raise BadInput(f"cannot read {shown(where)}: {error.strerror or error}") from error
    for name in sorted(names):
        path = f"{where}/{name}"
        try:
            mode = os.stat(name, dir_fd=source_fd, follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode):
                _copy_subfolder(source_fd, target_fd, name, path, budget, ignore, depth)
            elif stat.S_ISREG(mode):
                _copy_file(source_fd, target_fd, name, path, budget)
            else:
                raise refusal(path, kind(mode))
        except OSError as error:
            raise BadInput(f"cannot read {shown(path)}: {error.strerror or error}") from error


def _copy_subfolder(
    source_fd: int,
    target_fd: int,
    name: str,
    where: str,
    budget: _Budget,
    ignore: Callable[[str], bool],
    depth: int,
) -> None:
    child = open_folder(name, source_fd, where)
    try:
        mode = stat.S_IMODE(os.fstat(child).st_mode) & 0o777 | stat.S_IRWXU
        os.mkdir(name, mode, dir_fd=target_fd)
        copy = os.open(name, DIR_FLAGS, dir_fd=target_fd)
        try:
            _copy_folder(child, copy, where, budget, ignore, depth + 1)
        finally:
            os.close(copy)
    finally:
        os.close(child)


def copy_files(
    source: Path,
    names: dict[str, str],
    destination: Path,
    *,
    max_files: int,
    max_bytes: int,
) -> None:
    """Copy the regular files `names` (source name -> name in the copy; plain names, no
    folders) of the folder `source` into the new folder `destination`, as `copy_tree` would
    copy them: never through a link, never opening anything but a regular file."""
    budget = _Budget(str(source), max_files, max_bytes)
    try:
        source_fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise BadInput(f"cannot read {shown(source)}: {error.strerror or error}") from error
    try:
        destination.mkdir(mode=0o700)
        target_fd = os.open(destination, DIR_FLAGS)
        try:
            for name, target in sorted(names.items()):
                if "/" in target or target in ("", ".", ".."):
                    raise BadInput(f"{shown(target)} is not a plain file name.")
                budget.take_entry()
                path = f"{source}/{name}"
                try:
                    _copy_file(source_fd, target_fd, name, path, budget, target)
                except OSError as error:
                    why = error.strerror or error
                    raise BadInput(f"cannot read {shown(path)}: {why}") from error
        finally:
            os.close(target_fd)
    finally:
        os.close(source_fd)


def _copy_file(
    source_fd: int,
    target_fd: int,
    name: str,
    where: str,
    budget: _Budget,
    target: str | None = None,
) -> None:
    try:
        fd = os.open(name, FILE_FLAGS, dir_fd=source_fd)
    except OSError as error:
        if error.errno == errno.ELOOP:  # swapped for a link since it was looked at
            raise refusal(where, "symbolic link") from None
        raise
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise refusal(where, kind(status.st_mode))
        mode = stat.S_IMODE(status.st_mode) & 0o777 | stat.S_IRUSR | stat.S_IWUSR
        out = os.open(target or name, CREATE_FLAGS, mode, dir_fd=target_fd)
        try:
            while chunk := os.read(fd, min(CHUNK, budget.bytes_left + 1)):
                budget.take_bytes(len(chunk))
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view) :]
        finally:
            os.close(out)
    finally:
        os.close(fd)
