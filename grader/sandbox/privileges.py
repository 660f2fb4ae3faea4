"""Run the worker as an unprivileged uid when the grader runs as root.

Root escapes most of what the sandbox sets up: the process-count limit does not bind it, it
may signal or write anything Landlock does not cover. So a root worker switches to a uid of
its own (one per worker, so that the process-count limit counts only its own processes and
two workers of a batch cannot signal each other), with no supplementary groups.

Python installations under a root-only folder (a `/root/.pyenv`, say) would be unreadable to
that uid; in its own mount namespace the worker sees them through read-only binds
(`namespaces.private_files`), so it drops every capability. Only where there is no mount
namespace does it keep one, CAP_DAC_READ_SEARCH, and only while Landlock bounds what it may
read; without either it stays root and says why. A non-root worker in a user namespace drops
the capabilities that namespace gave it.

This module runs inside the worker: standard library only.
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys
import sysconfig

from grader.sandbox.libc import c_library

CAP_DAC_READ_SEARCH = 2
PR_SET_KEEPCAPS = 8
PR_CAPBSET_DROP = 24
CAPABILITY_VERSION_3 = 0x20080522
UID_BASE = 1 << 20  # per-worker uids: UID_BASE + pid; none of them owns a file elsewhere
NOBODY = 65534  # for user namespaces that map only the usual uid range


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def world_readable(path: str) -> bool:
    """Whether any uid may read `path`: it and every folder above it are open to others."""
    path = os.path.realpath(path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return True  # absent: nothing to read
    if not mode & stat.S_IROTH or (stat.S_ISDIR(mode) and not mode & stat.S_IXOTH):
        return False
    parent = os.path.dirname(path)
    while parent != path:
        path, parent = parent, os.path.dirname(parent)
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return False
    return True


def python_readable_by_others(grader_package: str) -> bool:
    """Whether an unprivileged uid could still import the standard library and packages."""
    paths = sysconfig.get_paths()
    needed = [paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths]
    return all(world_readable(p) for p in [*needed, sys.executable, grader_package])


def _give_to(folder: str, uid: int) -> None:
    """Make the worker's own folder (its submission copy, home and temp files) its uid's."""
    os.chown(folder, uid, uid)
    for parent, dirs, files in os.walk(folder):
        for name in dirs + files:
            os.chown(os.path.join(parent, name), uid, uid, follow_symlinks=False)


def _drop_bounding_set(libc: ctypes.CDLL, keep: int | None) -> None:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
    except (OSError, ValueError):
        last = 40
    for cap in range(last + 1):
        if cap != keep:
            libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)


def _set_capabilities(libc: ctypes.CDLL, keep: int | None) -> bool:
    mask = 0 if keep is None else 1 << keep
    header = _CapHeader(CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)(_CapData(mask, mask, 0), _CapData(0, 0, 0))
    return libc.capset(ctypes.byref(header), data) == 0


def _mapped(uid: int) -> bool:
    """Whether this (user) namespace can hold `uid`: containers often map only a range."""
    try:
        with open("/proc/self/uid_map") as f:
            ranges = [tuple(int(x) for x in line.split()) for line in f if line.strip()]
    except (OSError, ValueError):
        return True
    return any(inside <= uid < inside + count for inside, _outside, count in ranges)


def worker_uid(preferred: int | None = None) -> int | None:
    """The uid this worker runs as: its own where the namespace allows, else nobody."""
    own = preferred if preferred is not None else UID_BASE + os.getpid()
    return next((u for u in (own, NOBODY) if _mapped(u)), None)


def _has_capabilities() -> bool:
    """Whether this process holds any capability (a non-root worker in a user namespace)."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["CapEff"].strip(), 16) != 0 or int(fields["CapPrm"].strip(), 16) != 0
    except (OSError, KeyError, ValueError):
        return False


def drop_capabilities() -> str:
    """Drop every capability (a non-root worker holds them all in its user namespace)."""
    libc = c_library()
    if libc is None or not _has_capabilities():
        return "not needed: the grader does not run as root"
    _drop_bounding_set(libc, None)
    if not _set_capabilities(libc, None):
        return f"failed: capset: {os.strerror(ctypes.get_errno())}"
    return "active: every capability of its user namespace dropped"


def drop_privileges(
    writable: str, grader_package: str, landlock_active: bool, uid: int | None = None
) -> str:
    """Switch a root worker to its own uid (`uid`, else one derived from its pid) with no
    capabilities; return what was done (for reports and doctor)."""
    if not is_root():
        return drop_capabilities()
    if sys.platform != "linux":
        return "unavailable: not Linux"
    keep = None
    if not python_readable_by_others(grader_package):
        if not landlock_active:
            return (
                "unavailable: the Python installation is readable by root only and, without "
                "Landlock, keeping CAP_DAC_READ_SEARCH would let the worker read any file"
            )
        keep = CAP_DAC_READ_SEARCH
    uid = worker_uid(uid)
    if uid is None:
        return "unavailable: this user namespace maps no unprivileged uid"
    libc = c_library()
    if libc is None:
        return "unavailable: the C library cannot be loaded"
    try:
        _give_to(writable, uid)
        _drop_bounding_set(libc, keep)
        libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    except OSError as error:
        return f"failed: {error.strerror or error}"
    if not _set_capabilities(libc, keep):
        return f"failed: capset: {os.strerror(ctypes.get_errno())}"
    libc.prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0)
    kept = (
        ", keeps CAP_DAC_READ_SEARCH to read a root-only Python (no mount namespace)"
        if keep is not None
        else ", no capabilities"
    )
    who = "nobody" if uid == NOBODY else "a uid of its own"
    return f"active: runs as {who}, no groups{kept}"
