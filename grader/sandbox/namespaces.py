"""A worker's own PID, mount, network and IPC namespaces, and the private files they hold.

`isolate()` runs first in the worker (before limits, before Landlock, before the privilege
drop) and splits it into three processes:

* the *anchor*, the process the grader started: it waits, then exits as the worker did;
* an *init* (PID 1 of a new PID namespace): it reaps, and when the worker ends it exits,
  and the kernel kills everything else in the namespace (double-forked, `setsid` daemons
  included), so nothing a submission starts outlives its worker;
* the *worker*, which returns from `isolate()` and goes on to grade.

Each of the three dies with its parent (parent-death signal, checked right after it is set),
so a grader killed by SIGKILL or a closed SSH session takes its worker with it.

`private_files()` then gives the worker, in its own mount namespace, a root of its own
(`pivot_root`, as bubblewrap does) that holds only:

* read-only binds of what it must read: the Python installation and its packages, the
  grader's sandbox package, system libraries and `/etc`, `/sys`; every other file of the
  machine (the course, other workers' folders, services' Unix sockets under `/run`) is not
  there at all, not even for `stat` or `inotify`. A Python installation under a folder other
  users may not enter (`/root/.pyenv`) is reachable without any capability this way;
* `/dev` (GPUs included) with a devpts of its own whose `ptmx` it may not open, so it takes
  none of the machine's pseudo-terminals, and a fresh `/dev/mqueue`;
* a size-capped tmpfs as `/tmp` holding its folder (a copy of the submission and a home),
  with `/dev/shm` inside the same budget: nothing of it is shared with other workers and
  nothing of it is left when the worker ends;
* a `/proc` of its own PID namespace: it sees its own processes and no other's command line;
* forbidden libraries (torch in a NumPy assignment) covered by a read-only tmpfs whose only
  file is an `__init__.py` that refuses the import, and the course and the grader's data
  folder covered by an empty one where they lie under a folder it reads.

Nothing here changes the machine's mounts: the namespace is private and dies with the worker.
This module runs inside the worker: standard library only.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import platform
import signal
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import BadInput
from grader.safecopy import copy_tree
from grader.sandbox.libc import c_library, die_with_parent

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
SCRATCH = STAGING = "/tmp"
PROC, DEVICES = "/proc", "/dev"
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
MNT_DETACH = 2
INODES = 65536  # files and folders the worker's /tmp may hold
SHARED_MEMORY = "/dev/shm"
MESSAGE_QUEUES = "/dev/mqueue"
TERMINALS, TERMINAL_MASTER = "/dev/pts", "/dev/ptmx"


PARENT_DEATH = "active: the worker dies with the grader, even when it is killed by SIGKILL"


class IsolationFailed(OSError):
    """A namespace or mount the worker needs could not be set up."""


@dataclass
class Isolation:
    """What `isolate()` achieved: whether the namespaces were entered, and the pid the
    worker's first process has on the host (its uid is derived from it)."""

    namespaces: bool
    host_pid: int
    report: dict[str, str] = field(default_factory=dict)


def _check(result: int, what: str) -> None:
    if result != 0:
        raise IsolationFailed(ctypes.get_errno(), f"{what}: {os.strerror(ctypes.get_errno())}")


def watch_parent(expected: int | None) -> None:
    """Die with our parent; if it is already gone (or is not `expected`), die now."""
    die_with_parent()
    if expected is not None and os.getppid() != expected:
        os._exit(70)


def isolate(enabled: bool = True) -> Isolation:
    """Enter new PID, mount, network and IPC namespaces; only the worker returns.

    Where the kernel refuses (not root and no unprivileged user namespaces, not Linux), the
    caller's process stays as it is and the report says why.
    """
    host_pid = os.getpid()
    libc = c_library()
    if not enabled:
        off = "unavailable: disabled by the course (harden = false)"
        return Isolation(False, host_pid, {"processes": off})
    if libc is None:
        return Isolation(False, host_pid, {"processes": "unavailable: not Linux"})
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC
    how = ""
    if libc.unshare(flags) != 0:
        first = os.strerror(ctypes.get_errno())
        if os.geteuid() == 0 or not _enter_user_namespace(libc, flags):
            missing = f"unavailable: no namespaces here (unshare failed: {first})"
            report = {"processes": missing, "ipc": missing, "scratch": missing, "proc": missing}
            report["parent death"] = PARENT_DEATH
            return Isolation(False, host_pid, report)
        how = " (user namespace)"
    status_r, status_w = os.pipe()
    init = os.fork()
    if init:
        os.close(status_w)
        _anchor(init, status_r)
    os.close(status_r)
    watch_parent(0)  # the anchor lies outside the new PID namespace: its pid reads as 0
    worker = os.fork()
    if worker:
        _init(worker, status_w)
    os.close(status_w)
    watch_parent(1)
    report = {
        "processes": f"active: own PID namespace{how}; everything the worker starts dies with it",
        "network": f"active: empty network namespace{how}",
        "ipc": "active: own IPC namespace (System V and POSIX message queues)",
        "parent death": PARENT_DEATH,
    }
    return Isolation(True, host_pid, report)


def _enter_user_namespace(libc: ctypes.CDLL, flags: int) -> bool:
    """For a non-root grader: a user namespace mapping only our own uid and gid."""
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(CLONE_NEWUSER | flags) != 0:
        return False
    try:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{uid} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{gid} {gid} 1")
    except OSError:
        return False
    return True


def _quiet() -> None:
    """Hold nothing of the worker's: no pipes to the grader, no output."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _anchor(init: int, status_r: int) -> None:
    """The process the grader knows: wait for the namespace, then exit as its worker did."""
    _quiet()
    os.closerange(3, status_r)
    os.closerange(status_r + 1, 1 << 16)
    _, status = _wait_for(init)
    with contextlib.suppress(OSError, ValueError):
        status = int(os.read(status_r, 64) or status)
    _exit_like(status)


def _init(worker: int, status_w: int) -> None:
    """PID 1 of the namespace: reap every orphan; when the worker ends, end (and with it
    everything still running in the namespace)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _quiet()
    os.closerange(3, status_w)
    os.closerange(status_w + 1, 1 << 16)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        except InterruptedError:
            continue
        if pid == worker:
            with contextlib.suppress(OSError):
                os.write(status_w, str(status).encode())
            os._exit(0)


def _wait_for(pid: int) -> tuple[int, int]:
    while True:
        try:
            return os.waitpid(pid, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return pid, 0


def _exit_like(status: int) -> None:
    """End this process the way the raw wait `status` says the worker ended."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        with contextlib.suppress(OSError, ValueError):
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        os._exit(128 + signum)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


# -- the worker's private files ------------------------------------------------------------


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    libc = c_library()
    assert libc is not None
    result = libc.mount(
        source.encode() if source is not None else None,
        target.encode(),
        fstype.encode() if fstype is not None else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    _check(result, f"mount {target}")


def _bind(fd: int, target: str, read_only: bool = True) -> None:
    """Bind what `fd` (an O_PATH descriptor taken before anything was covered) refers to."""
    _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
    if read_only:
        _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _make_path(path: str, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(path, exist_ok=True)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a"):
        pass


def inside(path: str, folder: str) -> bool:
    """Whether `path` lies below `folder` (both real paths; not the folder itself)."""
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def _outermost(paths: list[str]) -> list[str]:
    """`paths` without those inside another of them (a bind of the outer one holds them)."""
    unique = sorted(set(paths))
    return [p for p in unique if not any(inside(p, outer) for outer in unique)]


@dataclass(frozen=True)
class PrivateFiles:
    """Where the worker's folder is inside its namespace, and what was set up."""

    folder: str
    report: dict[str, str]


@functools.cache
def view(needed: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The real folders to bind into the worker's root, and the links to recreate there
    (`/bin -> usr/bin` on a merged-/usr system). The same for every worker: the fork
    server's template works it out once (`worker.prepare`)."""
    links = tuple((p, os.readlink(p)) for p in needed if os.path.islink(p))
    real = [os.path.realpath(p) for p in needed if p != PROC and os.path.exists(p)]
    return tuple(_outermost(real)), links


def _private_terminals(root: str) -> str:
    """A devpts instance of the worker's own, with a `ptmx` it may not open."""
    terminals, master = root + TERMINALS, root + TERMINAL_MASTER
    if not os.path.isdir(terminals) or not os.path.lexists(master):
        return "unavailable: no /dev/pts"
    try:
        _mount("devpts", terminals, "devpts", MS_NOSUID | MS_NOEXEC,
               "newinstance,ptmxmode=000,mode=600")  # fmt: skip
        if not os.path.islink(master):  # a link to pts/ptmx already leads there
            _mount(os.path.join(terminals, "ptmx"), master, None, MS_BIND)
    except IsolationFailed as error:
        return f"failed: {error.strerror}"
    return "active: no pseudo-terminal of the machine's can be opened"


def _mask_library(path: str, library: str) -> None:
    """Cover a library's folder with a read-only tmpfs whose only file refuses the import."""
    _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16k")
    with open(os.path.join(path, "__init__.py"), "w") as init:
        init.write(f"raise ImportError({library + ' may not be used in this assignment'!r})\n")
    _mount(None, path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _pivot(root: str) -> None:
    """Make `root` this mount namespace's root and let go of the old one entirely."""
    libc = c_library()
    number = PIVOT_ROOT.get(platform.machine())
    if libc is None or number is None:
        raise IsolationFailed(0, f"pivot_root: unsupported on {platform.machine()}")
    os.chdir(root)
    _check(libc.syscall(number, b".", b"."), "pivot_root")
    _check(libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _build_root(
    root: str, opened: list[tuple[str, int]], links: tuple[tuple[str, str], ...]
) -> None:
    """Bind what the worker reads into `root` (but what lies under /tmp) and recreate links."""
    for path, fd in opened:
        if not inside(path, SCRATCH):  # those go on top of the scratch tmpfs, later
            _bind_into(root, path, fd)
    for path, destination in links:
        if not os.path.lexists(root + path):
            os.makedirs(os.path.dirname(root + path), exist_ok=True)
            os.symlink(destination, root + path)


def _mask(root: str, masked: dict[str, str], secret: list[str]) -> list[str]:
    """Cover the course and data folders, and forbidden libraries, wherever they lie in the
    worker's root (after every bind, so none of them uncovers one); the libraries masked."""
    for path in secret:
        if os.path.isdir(root + path):
            _mount("tmpfs", root + path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k")
    hidden = []
    for path, library in sorted(masked.items()):
        if os.path.isdir(root + path):
            _mask_library(root + path, library)
            hidden.append(library)
    return hidden


def _bind_into(root: str, path: str, fd: int) -> None:
    target = root + path
    _make_path(target, os.path.isdir(f"/proc/self/fd/{fd}"))
    _bind(fd, target, read_only=path != DEVICES)


def _build_scratch(
    root: str, name: str, source: int, scratch_mb: int, opened: list[tuple[str, int]]
) -> str:
    """The worker's /tmp (its folder, a copy of the submission, and read-only binds of what
    it reads that lives under /tmp, such as a grader checked out there) and /dev/shm,
    /dev/mqueue and /dev/pts of its own; what became of the terminals."""
    scratch = root + SCRATCH
    os.makedirs(scratch)
    _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV,
           f"mode=1777,size={int(scratch_mb)}m,nr_inodes={INODES}")  # fmt: skip
    for path, fd in opened:
        if inside(path, SCRATCH):
            _bind_into(root, path, fd)
    os.makedirs(os.path.join(scratch, name, "home"))
    copy_tree(  # a second, bounded copy: the grader's was refused anything but plain files
        source,
        Path(scratch, name, "submission"),
        max_files=INODES,
        max_bytes=int(scratch_mb) << 20,
        label="the submission",
    )
    if os.path.isdir(root + SHARED_MEMORY):
        shm = os.path.join(scratch, ".shm")
        os.mkdir(shm)
        os.chmod(shm, 0o1777)
        _mount(shm, root + SHARED_MEMORY, None, MS_BIND)
    if os.path.isdir(root + MESSAGE_QUEUES):
        with contextlib.suppress(IsolationFailed):
            _mount("mqueue", root + MESSAGE_QUEUES, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    return _private_terminals(root)


def private_files(
    folder: str,
    needed: list[str],
    masked: dict[str, str],
    scratch_mb: int,
    secret: list[str] = (),
) -> PrivateFiles:
    """Give the worker a root of its own (see the module's docstring); its folder's path.

    `folder` holds the prepared `submission/`; `needed` are the paths the worker must read
    (Python, its packages, the grader's sandbox package, system files: bound read-only, all
    else absent); `masked` maps the folders of forbidden libraries to their names; `secret`
    are folders that must look empty even where they lie under a needed path (the course and
    the grader's data folder). On failure the mounts made so far are undone, so the caller
    can go on with the machine's view (and Landlock) and report why.
    """
    name = os.path.basename(folder.rstrip(os.sep))
    source = os.open(os.path.join(folder, "submission"), os.O_RDONLY | os.O_DIRECTORY)
    binds, links = view(tuple(needed))
    opened: list[tuple[str, int]] = []
    # The new root is built on /tmp: every source is held open first, so what /tmp held on
    # the machine (other workers' folders, sockets) is never seen again.
    root = STAGING
    staged = False
    try:
        opened = [(p, os.open(p, os.O_PATH | os.O_CLOEXEC)) for p in [*binds, DEVICES]]
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
        staged = True
        _build_root(root, opened, links)
        terminals = _build_scratch(root, name, source, scratch_mb, opened)
        hidden = _mask(root, masked, list(secret))
        os.makedirs(root + PROC, exist_ok=True)
        _mount("proc", root + PROC, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        _pivot(root)
    except (OSError, BadInput) as error:
        libc = c_library()
        if staged and libc is not None:
            libc.umount2(root.encode(), MNT_DETACH)
        if isinstance(error, BadInput):  # the copy outgrew the scratch space
            raise IsolationFailed(errno.ENOSPC, str(error)) from error
        raise
    finally:
        os.close(source)
        for _, fd in opened:
            os.close(fd)
    report = {
        "view": "active: a root of its own: Python, system files, /dev and /sys read-only "
        "(devices excepted), nothing else of the machine's files",
        "scratch": f"active: private {int(scratch_mb)} MB tmpfs for /tmp, /dev/shm and the "
        "submission's copy",
        "proc": "active: /proc shows only the worker's own processes",
        "terminals": terminals,
    }
    if hidden:
        report["forbidden files"] = "active: " + ", ".join(hidden) + " unreadable"
    return PrivateFiles(os.path.join(SCRATCH, name), report)
