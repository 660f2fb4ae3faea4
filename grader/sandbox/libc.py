"""The C library, for the few Linux calls Python's `os` module lacks (prctl, syscall, capset)."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import signal
import sys

PR_SET_PDEATHSIG = 1


@functools.cache
def c_library() -> ctypes.CDLL | None:
    """The process's C library with errno kept; None off Linux or where it cannot load."""
    if sys.platform != "linux":
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def die_with_parent(signum: int = signal.SIGKILL) -> None:
    """Ask Linux to send `signum` to this process when its parent dies (even by kill -9)."""
    library = c_library()
    if library is not None:
        with contextlib.suppress(OSError, AttributeError):
            library.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
