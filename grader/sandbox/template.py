"""The fork server's template process: import the worker once, fork one worker per request.

A worker started from scratch spends ~100 ms starting Python and importing NumPy before it
reaches the student's code. The template pays that once, and also loads and works out
beforehand whatever every worker would otherwise load or work out after its fork, the same
for each (`_warm`); each fork then costs a few milliseconds. A forked child becomes exactly
what a fresh worker is: its own session, the scrubbed environment and folder it was given,
fresh random seeds, and then `grader.sandbox.worker.main`, which limits and hardens it
before importing the submission. The template itself never runs student code, never imports
torch and never touches CUDA, so a child may still initialise the GPU.

Requests arrive on a SOCK_SEQPACKET socket from the grading process that started it:
`spawn` (with the child's pipe ends and output as passed file descriptors) answers the
child's pid; `spare` (with one end of a socket pair) forks a child that waits on that socket
for a spawn request of its own, so that the grading process can start its next worker
without waiting for the template (its pid is known beforehand); `wait` reaps a child and
answers its exit code; `forget` (no answer) has the template reap a child once it has
exited, whose exit code nobody needs. The template exits when that socket closes or its
parent dies. Standard library and the worker's own imports only.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import random
import socket
import sys
import sysconfig
import traceback

import numpy as np

from grader.sandbox import worker
from grader.sandbox.libc import die_with_parent

MAX_MESSAGE = 1 << 20


def main(fd: int) -> None:
    """Serve requests on the socket `fd` until it closes."""
    die_with_parent()
    _warm()
    channel = socket.socket(fileno=fd)
    channel.send(b'{"op": "ready"}')
    forgotten: set[int] = set()
    while True:
        forgotten = {pid for pid in forgotten if not _reaped(pid)}
        try:
            data, fds, _flags, _address = socket.recv_fds(channel, MAX_MESSAGE, 3)
        except OSError:
            return
        if not data:
            return
        request = json.loads(data)
        if request.get("op") == "spawn" and len(fds) == 3:
            with contextlib.suppress(Exception):  # the worker works it out itself otherwise
                worker.prepare(request["config"])
            template = os.getpid()
            pid = os.fork()
            if pid == 0:
                channel.close()
                _become_worker(request, fds, template)
            for passed in fds:
                os.close(passed)
            channel.send(json.dumps({"pid": pid}).encode())
        elif request.get("op") == "spare" and len(fds) == 1:
            template = os.getpid()
            pid = os.fork()
            if pid == 0:
                channel.close()
                _await_request(fds[0], template)
            os.close(fds[0])
            channel.send(json.dumps({"pid": pid}).encode())
        elif request.get("op") == "wait":
            channel.send(json.dumps({"code": _reap(int(request["pid"]))}).encode())
        elif request.get("op") == "forget":  # no answer: reaped once it has exited
            forgotten.add(int(request["pid"]))
        else:
            for passed in fds:
                os.close(passed)
            channel.send(b'{"error": "bad request"}')


def _warm() -> None:
    """Load what every worker would load after its fork, before it reaches the student's
    code: NumPy's random module (`np.random.seed` below imports it, ~15 ms), the modules the
    worker's limits and pipes use, and the installation's paths (its privilege drop reads
    them). Then set every object made so far aside from the garbage collector, so that no
    collection in a worker touches (and copies) the pages they share with the template."""
    import fcntl  # noqa: F401
    import resource  # noqa: F401

    import numpy.random  # noqa: F401

    sysconfig.get_paths()
    gc.freeze()


def _reaped(pid: int) -> bool:
    """Whether child `pid` has exited and is reaped now (never waiting for it)."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return True


def _reap(pid: int) -> int | None:
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status)


def _await_request(fd: int, template: int) -> None:
    """In a spare child: wait for one spawn request on the socket `fd`, which the grading
    process holds the other end of, then take the worker's place; exit without one (the
    socket closed, or the template died: the spare dies with it) and never return."""
    request, fds = None, []
    with contextlib.suppress(BaseException):
        die_with_parent()
        if os.getppid() == template:
            with socket.socket(fileno=fd) as handoff:
                data, fds, _flags, _address = socket.recv_fds(handoff, MAX_MESSAGE, 3)
            request = json.loads(data) if data and len(fds) == 3 else None
    if request is None:
        os._exit(0)
    _become_worker(request, fds, template)


def _become_worker(request: dict, fds: list[int], template: int) -> None:
    """In the forked child: take the worker's place and never return."""
    code = 1
    try:
        os.setsid()
        read_fd, write_fd, output_fd = fds
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        for spare in (stdin, output_fd):
            os.close(spare)
        os.environ.clear()
        os.environ.update(request["env"])
        random.seed()  # as unpredictable as in a fresh interpreter
        np.random.seed()
        config = {
            **request["config"],
            "read_fd": read_fd,
            "write_fd": write_fd,
            "parent_pid": template,
        }
        worker.main(json.dumps(config))
        code = 0
    except SystemExit as exit_request:
        code = exit_request.code if isinstance(exit_request.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # the student may have replaced or closed it
                stream.flush()
        os._exit(code)
