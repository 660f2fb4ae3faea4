"""The fork server's template process: import the worker once, fork one worker per request.

A worker started from scratch spends ~100 ms starting Python and importing NumPy before it
reaches the student's code. The template pays that once; each fork then costs a few
milliseconds. A forked child becomes exactly what a fresh worker is: its own session, the
scrubbed environment and folder it was given, fresh random seeds, and then
`grader.sandbox.worker.main`, which limits and hardens it before importing the submission.
The template itself never runs student code, never imports torch and never touches CUDA, so
a child may still initialise the GPU.

Requests arrive on a SOCK_SEQPACKET socket from the grading process that started it:
`spawn` (with the child's pipe ends and output as passed file descriptors) answers the
child's pid; `wait` reaps a child and answers its exit code. The template exits when that
socket closes or its parent dies. Standard library and the worker's own imports only.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import sys
import traceback

import numpy as np

from grader.sandbox import worker
from grader.sandbox.libc import die_with_parent

MAX_MESSAGE = 1 << 20


def main(fd: int) -> None:
    """Serve spawn and wait requests on the socket `fd` until it closes."""
    die_with_parent()
    channel = socket.socket(fileno=fd)
    channel.send(b'{"op": "ready"}')
    while True:
        try:
            data, fds, _flags, _address = socket.recv_fds(channel, MAX_MESSAGE, 3)
        except OSError:
            return
        if not data:
            return
        request = json.loads(data)
        if request.get("op") == "spawn" and len(fds) == 3:
            template = os.getpid()
            pid = os.fork()
            if pid == 0:
                channel.close()
                _become_worker(request, fds, template)
            for passed in fds:
                os.close(passed)
            channel.send(json.dumps({"pid": pid}).encode())
        elif request.get("op") == "wait":
            channel.send(json.dumps({"code": _reap(int(request["pid"]))}).encode())
        else:
            for passed in fds:
                os.close(passed)
            channel.send(b'{"error": "bad request"}')


def _reap(pid: int) -> int | None:
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status)


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
