"""A seccomp filter that keeps the worker from creating user namespaces.

Inside a user namespace of its own, a process holds every capability over that namespace:
more of the kernel (mounts, netfilter, BPF) becomes reachable to it, the usual start of a
kernel exploit. The worker needs none of that, so `clone` and `unshare` with
CLONE_NEWUSER fail with EPERM, `clone3` (whose flags a filter cannot read) fails with ENOSYS
so the C library falls back to `clone`, and system calls of another architecture (x86's
32-bit entry, x32) fail with EPERM, so the filter cannot be sidestepped through them.

This module runs inside the worker: standard library only.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform

from grader.sandbox.libc import c_library

PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
CLONE_NEWUSER = 0x10000000
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000
LD_ABS_W, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
X32_SYSCALL_BIT = 0x40000000
# machine -> (audit architecture, unshare, clone, clone3)
SYSCALLS = {
    "x86_64": (0xC000003E, 272, 56, 435),
    "aarch64": (0xC00000B7, 97, 220, 435),
}


class _Instruction(ctypes.Structure):
    _fields_ = (
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    )


class _Program(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Instruction)))


def program(machine: str) -> list[tuple[int, int, int, int]]:
    """The filter for `machine` as (code, jump if true, jump if false, value) instructions."""
    arch, unshare, clone, clone3 = SYSCALLS[machine]
    return [
        (LD_ABS_W, 0, 0, 4),  # 0: architecture
        (JEQ, 0, 8, arch),  # 1: another architecture -> EPERM
        (LD_ABS_W, 0, 0, 0),  # 2: system call number
        (JGE, 6, 0, X32_SYSCALL_BIT),  # 3: x32 -> EPERM
        (JEQ, 6, 0, clone3),  # 4: -> ENOSYS
        (JEQ, 1, 0, unshare),  # 5: -> flags
        (JEQ, 0, 2, clone),  # 6: -> flags, else allow
        (LD_ABS_W, 0, 0, 16),  # 7: flags (first argument, low half)
        (JSET, 1, 0, CLONE_NEWUSER),  # 8: a new user namespace -> EPERM
        (RET, 0, 0, RET_ALLOW),  # 9
        (RET, 0, 0, RET_ERRNO | errno.EPERM),  # 10
        (RET, 0, 0, RET_ERRNO | errno.ENOSYS),  # 11
    ]


def deny_user_namespaces() -> str:
    """Install the filter on this process and its future children (irreversible)."""
    libc = c_library()
    machine = platform.machine()
    if libc is None or machine not in SYSCALLS:
        return f"unavailable: no filter for {machine or 'this platform'}"
    instructions = program(machine)
    array = (_Instruction * len(instructions))(*(_Instruction(*i) for i in instructions))
    prog = _Program(len(instructions), array)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        return f"failed: {os.strerror(ctypes.get_errno())}"
    return "active: seccomp refuses new user namespaces"
