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


M_TRIM_THRESHOLD = -1  # mallopt's parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
BUFFER_BYTES = 16 << 20  # a message's buffers up to this size come from the heap...
KEPT_BYTES = 32 << 20  # ...and this much freed heap is kept for the next message's


@functools.cache
def keep_message_buffers() -> None:
    """Let glibc reuse the memory of a message's buffers for the next message's, in this
    process (once). By default it maps each buffer of 128 KB or more afresh and unmaps it when
    freed, or trims the heap they came from, so every byte of a large array's frame costs a
    page fault at each copy: on a virtual machine, four fifths of a 1 MB array's round trip.
    At most `KEPT_BYTES` of freed memory stays with the process (the worker's memory budget
    counts it)."""
    library = c_library()
    if library is not None:
        with contextlib.suppress(OSError, AttributeError):
            library.mallopt(M_MMAP_THRESHOLD, BUFFER_BYTES)
            library.mallopt(M_TRIM_THRESHOLD, KEPT_BYTES)
