"""Operating-system protections the worker applies to itself before importing student code.

Each protection is probed and used only where the machine offers it, and each reports what
it did, so grading still works on macOS, old kernels or locked-down containers and
`grade doctor` can say what is active:

* filesystem (Landlock, Linux >= 5.13): read the Python installation, site-packages, the
  grader's sandbox package and system libraries; read and write only the worker's own
  folder.
  Course files (hidden checks, reference solutions), other students' submissions and
  the grader's output stay out of reach;
* network: a new network namespace (root or unprivileged user namespaces), else Landlock's
  TCP rules (ABI >= 4) deny every connect and bind;
* signals (Landlock ABI >= 6): the worker cannot signal processes outside its sandbox;
* no-new-privileges, always where prctl exists;
* no new user namespaces (`seccomp`);
* privileges: a root worker switches to a uid of its own (`grader.sandbox.privileges`).

This module runs inside the worker: standard library only.
"""

from __future__ import annotations

import ctypes
import os
import platform
import site
import sys
import sysconfig

from grader.sandbox.libc import c_library
from grader.sandbox.namespaces import DEVICES, MESSAGE_QUEUES, SCRATCH, SHARED_MEMORY
from grader.sandbox.privileges import drop_privileges
from grader.sandbox.seccomp import deny_user_namespaces

SYSCALLS = {"x86_64": (444, 445, 446), "aarch64": (444, 445, 446)}
PR_SET_NO_NEW_PRIVS = 38
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000

FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_ABI1_ALL = (1 << 13) - 1
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
READ_ONLY = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/etc", "/opt", "/proc", "/sys")
# Where NVIDIA's GPU operator installs the driver (libcuda and friends) on the host, when it
# does: a CUDA worker must read it, and it is not under /usr there.
GPU_DRIVER_ROOTS = ("/run/nvidia/driver",)
SHARED_FOLDERS = (SHARED_MEMORY, MESSAGE_QUEUES)  # under /dev, but shared between processes


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 where Landlock is unavailable."""
    libc = c_library()
    numbers = SYSCALLS.get(platform.machine())
    if libc is None or numbers is None:
        return 0
    version = libc.syscall(numbers[0], None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(0, int(version))


def no_new_privileges() -> str:
    libc = c_library()
    if libc is None:
        return "unavailable: not Linux"
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return f"failed: {os.strerror(ctypes.get_errno())}"
    return "active"


def isolate_network() -> str:
    """Move the worker into an empty network namespace (no interfaces, not even loopback up)."""
    libc = c_library()
    if libc is None:
        return "unavailable: not Linux"
    if libc.unshare(CLONE_NEWNET) == 0:
        return "active: empty network namespace"
    first = os.strerror(ctypes.get_errno())
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
        return "active: empty network namespace (user namespace)"
    return f"unavailable: unshare failed ({first})"


def readable_roots(grader_package: str) -> list[str]:
    """Folders the worker may read: Python, its packages, the grader package, system files."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, grader_package}
    roots.update(sysconfig.get_paths().values())
    roots.update(site.getsitepackages())
    roots.update(SYSTEM_READ)
    roots.update(GPU_DRIVER_ROOTS)
    return sorted(r for r in roots if r and os.path.exists(r))


def read_rules(roots: list[str], hidden: tuple[str, ...]) -> list[tuple[str, int]]:
    """Read-only rules for `roots`, leaving the files under each of `hidden` unreadable.

    Landlock only adds rights, so a root that holds a hidden folder (site-packages holding an
    installed grader, whose package data includes the MNIST sample and its test labels, or
    torch in an assignment that forbids it) is opened child by child, skipping the branch
    that leads to the hidden folder. Folders on that path stay listable; their files other
    than the skipped branch stay readable.
    """
    hidden_paths = [os.path.realpath(h) for h in hidden]
    rules: dict[str, int] = {}

    def add(real: str) -> None:
        if real in hidden_paths:
            return
        prefix = real.rstrip(os.sep) + os.sep
        if not any(h.startswith(prefix) for h in hidden_paths):
            rules[real] = READ_ONLY
            return
        rules.setdefault(real, FS_READ_DIR)
        with os.scandir(real) as entries:
            for entry in entries:
                add(os.path.realpath(entry.path) if entry.is_symlink() else entry.path)

    for root in roots:
        add(os.path.realpath(root))
    return sorted(rules.items())


ALL_RIGHTS = -1  # every right the kernel handles


def device_rules(private_scratch: bool) -> list[tuple[str, int]]:
    """Every device node (GPUs included), but not the shared memory folders under /dev,
    which other processes on the machine share, unless they are the worker's own."""
    if not os.path.isdir(DEVICES):
        return []
    rules = [(DEVICES, READ_ONLY)]
    with os.scandir(DEVICES) as entries:
        for entry in entries:
            if entry.path in SHARED_FOLDERS and not private_scratch:
                continue
            rules.append((entry.path, ALL_RIGHTS))
    return rules


def filesystem_rules(
    writable: str,
    grader_package: str,
    hidden: tuple[str, ...] = (),
    private_scratch: bool = False,
    roots: list[str] | None = None,
) -> list[tuple[str, int]]:
    """What the worker may touch: read its runtime (`roots`, default `readable_roots`; not
    the grader's data, nor `hidden` folders), write its folder (and its private /tmp when it
    has one)."""
    package = os.path.dirname(os.path.realpath(grader_package))
    if roots is None:
        roots = readable_roots(grader_package)
    rules = read_rules(roots, hidden=(package, *hidden))
    rules.append((grader_package, READ_ONLY))
    rules += device_rules(private_scratch)
    if private_scratch:
        rules.append((SCRATCH, ALL_RIGHTS))
    rules.append((writable, ALL_RIGHTS))
    return rules


def apply_landlock(abi: int, rules: list[tuple[str, int]], block_tcp: bool) -> str:
    """Allow only `rules` (path, rights) from now on, in this process and its children."""
    libc = c_library()
    numbers = SYSCALLS.get(platform.machine())
    if abi <= 0 or libc is None or numbers is None:
        return "unavailable: no Landlock on this kernel"
    create, add_rule, restrict = numbers
    handled = FS_ABI1_ALL
    if abi >= 2:
        handled |= FS_REFER
    if abi >= 3:
        handled |= FS_TRUNCATE
    if abi >= 5:
        handled |= FS_IOCTL_DEV
    attr = _RulesetAttr(handled, 0, 0)
    size = 8
    if abi >= 4 and block_tcp:
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = SCOPE_SIGNAL | SCOPE_ABSTRACT_UNIX_SOCKET
        size = 24
    ruleset = libc.syscall(create, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return f"failed: {os.strerror(ctypes.get_errno())}"
    try:
        for path, rights in rules:
            _add_path_rule(libc, add_rule, ruleset, path, rights & handled)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return f"failed: no_new_privs: {os.strerror(ctypes.get_errno())}"
        if libc.syscall(restrict, ruleset, ctypes.c_uint32(0)) != 0:
            return f"failed: {os.strerror(ctypes.get_errno())}"
    finally:
        os.close(ruleset)
    return f"active: Landlock ABI {abi}"


def _add_path_rule(libc: ctypes.CDLL, add_rule: int, ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if not os.path.isdir(path):
            rights &= FILE_RIGHTS
        attr = _PathBeneathAttr(rights, fd)
        libc.syscall(add_rule, ruleset, ctypes.c_int(1), ctypes.byref(attr), ctypes.c_uint32(0))
    finally:
        os.close(fd)


def harden(
    writable: str,
    grader_package: str,
    enabled: bool = True,
    *,
    isolated: bool = False,
    hidden: tuple[str, ...] = (),
    uid: int | None = None,
    roots: list[str] | None = None,
) -> dict[str, str]:
    """Apply every available protection; return what each one did (for reports and doctor).

    `isolated`: the worker is already in its own namespaces (`namespaces.isolate`) with a
    private /tmp; `hidden`: folders it may not read; `uid`: the uid a root worker switches
    to (default: one derived from its pid); `roots`: what it may read, when the caller has
    already worked it out (default: `readable_roots`).
    """
    if not enabled:
        return {"hardening": "disabled by the course (sandbox.harden = false)"}
    report = {} if isolated else {"network": isolate_network()}
    abi = landlock_abi()
    block_tcp = not isolated and not report["network"].startswith("active")
    rules = filesystem_rules(writable, grader_package, hidden, isolated, roots)
    report["filesystem"] = apply_landlock(abi, rules, block_tcp)
    if block_tcp:
        landlock_on = report["filesystem"].startswith("active") and abi >= 4
        report["network"] = (
            "active: Landlock denies TCP connect and bind" if landlock_on else report["network"]
        )
    report["signals"] = (
        "active: Landlock scope" if abi >= 6 and report["filesystem"].startswith("active")
        else "unavailable: needs Landlock ABI 6"
    )  # fmt: skip
    report["no_new_privileges"] = no_new_privileges()
    report["user namespaces"] = deny_user_namespaces()
    landlock_on = report["filesystem"].startswith("active")
    report["privileges"] = drop_privileges(writable, grader_package, landlock_on, uid)
    return report
