"""Scratch folders in the system's temporary folder that a killed grader does not leave behind.

Each folder has a lock file beside it (`NAME.lock`) that its owner holds locked for as long
as the folder is in use. The kernel releases the lock when the owner exits, however it dies,
so a folder whose lock can be taken is abandoned: the first scratch folder a process creates
removes those. Taking the lock works across users and PID namespaces, which a check of the
owner's PID would not.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import IO

from grader import cleanup

try:
    import fcntl
except ImportError:  # Windows: folders are still removed after use, only not after a crash
    fcntl = None  # type: ignore[assignment]

PREFIX = "dl-grader-"
_swept = False


class ScratchFolder:
    """A private, empty folder for one use; `remove()` (or leaving the `with`) deletes it.

    `remove_later`: leaving the `with` leaves the removal to `grader.cleanup`'s thread.
    """

    def __init__(self, kind: str, *, remove_later: bool = False) -> None:
        _sweep_once()
        self.remove_later = remove_later
        self.path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-"))
        self._lock_path = _lock_path(self.path)
        self._lock: IO[str] | None = None
        if fcntl is not None:
            # Locked under another name first, so no sweep ever sees it unlocked.
            locking = self.path.with_name(self.path.name + ".locking")
            self._lock = locking.open("w")
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            locking.replace(self._lock_path)

    def remove(self) -> None:
        """Delete the folder, then give up its lock."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            with contextlib.suppress(OSError):
                self._lock_path.unlink()
            self._lock.close()
            self._lock = None

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc_info: object) -> None:
        if self.remove_later:
            cleanup.defer(self.remove)
        else:
            self.remove()


def sweep(folder: Path | None = None) -> list[Path]:
    """Remove the scratch folders in `folder` (default: the temporary folder) whose owner is
    gone; the folders removed."""
    if fcntl is None:
        return []
    root = Path(folder or tempfile.gettempdir())
    removed = []
    for lock_path in root.glob(f"{PREFIX}*.lock"):
        try:
            lock = lock_path.open("r+")
        except OSError:
            continue
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its owner is alive
            abandoned = lock_path.with_suffix("")
            shutil.rmtree(abandoned, ignore_errors=True)
            with contextlib.suppress(OSError):
                lock_path.unlink()
            removed.append(abandoned)
    return removed


def _sweep_once() -> None:
    global _swept
    if not _swept:
        _swept = True
        with contextlib.suppress(OSError):
            sweep()


def _lock_path(folder: Path) -> Path:
    return folder.with_name(folder.name + ".lock")
