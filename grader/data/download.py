"""Fetch a data set's files from public mirrors: SHA-256 verified, resumable, never half-written.

Each file is streamed into `NAME.part` next to its final place, with an HTTP Range request
that continues an earlier, interrupted download when the server supports it. Only a file
whose SHA-256 matches the published one is renamed (atomically) to its final name, so an
interrupted or corrupt download never looks like data; a `.part` that fails the checksum is
deleted and the next mirror is tried. A file already in place with the right checksum is
not fetched again. Progress goes to an optional rich `Progress`.

This module only downloads; `grader.data.mnist` reads and validates what it fetched.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader import __version__
from grader.data import DataError
from grader.data.mnist import NAMES, SHA256

CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch: its name on the mirrors, its SHA-256 and (if known) its size."""

    name: str
    sha256: str
    size: int | None = None


@dataclass(frozen=True)
class DataSet:
    """A named set of files and the mirrors (base URLs) that serve them."""

    name: str
    folder: str
    files: tuple[RemoteFile, ...]
    mirrors: tuple[str, ...]


MNIST_SIZES = {
    "train-images-idx3-ubyte.gz": 9_912_422,
    "train-labels-idx1-ubyte.gz": 28_881,
    "t10k-images-idx3-ubyte.gz": 1_648_877,
    "t10k-labels-idx1-ubyte.gz": 4_542,
}
DATASETS = {
    "mnist": DataSet(
        name="mnist",
        folder="mnist",
        files=tuple(
            RemoteFile(f"{name}.gz", SHA256[f"{name}.gz"], MNIST_SIZES[f"{name}.gz"])
            for name in NAMES
        ),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "https://yann.lecun.com/exdb/mnist/",
        ),
    ),
}


class DownloadError(DataError):
    """No mirror delivered a file with the right checksum; the message lists what each did."""


class _Incomplete(Exception):
    """The connection ended before the promised number of bytes arrived."""


@dataclass(frozen=True)
class Fetched:
    """What happened to one file: "present" (already verified), "downloaded" or "resumed"."""

    path: Path
    status: str
    url: str = ""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """One downloader per folder at a time (a second one waits), where the OS has flock."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(folder / ".download.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def download(
    files: Sequence[RemoteFile],
    folder: Path,
    mirrors: Sequence[str],
    *,
    progress: Any | None = None,
    timeout: float = 30.0,
) -> list[Fetched]:
    """Fetch every file into `folder` (see the module docstring); `DownloadError` if one fails.

    `progress` is a rich `Progress` (one task per file) or None.
    """
    if not mirrors:
        raise DownloadError("no mirror to download from.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(f"cannot create {folder}: {error.strerror or error}") from error
    with _exclusive(folder):
        return [_fetch(file, folder, mirrors, progress, timeout) for file in files]


def _fetch(
    file: RemoteFile, folder: Path, mirrors: Sequence[str], progress: Any, timeout: float
) -> Fetched:
    target = folder / file.name
    task = progress.add_task(file.name, total=file.size) if progress is not None else None
    if target.is_file() and sha256_of(target) == file.sha256:
        if progress is not None:
            progress.update(task, completed=file.size or 1, total=file.size or 1)
        return Fetched(target, "present")
    part = folder / f"{file.name}.part"
    problems = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + file.name
        for _ in range(2):  # a resumed download that fails the checksum is retried from scratch
            try:
                resumed = _transfer(url, part, file, progress, task, timeout)
            except (OSError, http.client.HTTPException, _Incomplete, ValueError) as error:
                problems.append(f"{url}: {_describe(error)}")
                break
            digest = sha256_of(part)
            if digest == file.sha256:
                os.replace(part, target)
                return Fetched(target, "resumed" if resumed else "downloaded", url)
            part.unlink()
            if not resumed:
                want = file.sha256[:12]
                problems.append(
                    f"{url}: SHA-256 mismatch (got {digest[:12]}..., expected {want}...)"
                )
                break
    kept = " (the partial download is kept and resumed next time)" if part.exists() else ""
    raise DownloadError(f"could not download {file.name}{kept}: " + "; ".join(problems))


def _transfer(
    url: str, part: Path, file: RemoteFile, progress: Any, task: Any, timeout: float
) -> bool:
    """Stream `url` into `part`, continuing it when the server honours a Range request.

    Returns whether the download continued earlier bytes.
    """
    offset = part.stat().st_size if part.is_file() else 0
    if file.size is not None and offset > file.size:
        part.unlink()
        offset = 0
    if file.size is not None and offset == file.size:
        return True
    request = urllib.request.Request(url, headers={"User-Agent": f"dl-grader/{__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            part.unlink()
            return _transfer(url, part, file, progress, task, timeout)
        raise
    with response:
        resumed = bool(offset) and response.status == 206
        if not resumed:
            offset = 0
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None and length.isdigit() else None
        total = offset + expected if expected is not None else file.size
        if progress is not None:
            progress.update(task, total=total, completed=offset)
        received = 0
        with open(part, "ab" if resumed else "wb") as output:
            while chunk := response.read(CHUNK):
                output.write(chunk)
                received += len(chunk)
                if progress is not None:
                    progress.advance(task, len(chunk))
            output.flush()
            os.fsync(output.fileno())
    if expected is not None and received < expected:
        raise _Incomplete(f"connection closed after {received:,} of {expected:,} bytes")
    return resumed


def _describe(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"cannot connect ({error.reason})"
    return str(error) or type(error).__name__
