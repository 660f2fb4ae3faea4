"""The trusted side of the fork server: a template process that forks workers on request.

Starting a worker from scratch costs ~100 ms (interpreter start, NumPy import), often more
than grading a NumPy assignment takes. A process that starts many workers (a batch's grading
process, `--repeat`, the benchmarks) calls `enable()` once; from then on `Sandbox` asks the
template (`grader.sandbox.template`) to fork each worker, and falls back to starting one from
scratch whenever the template is not ready or has died. After each start the template forks
a spare child in the background, which the next start hands its request to directly, so that
starting a worker waits for no other process. Nothing else changes: the child hardens itself
exactly as a fresh worker does, and grades are identical either way.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from typing import IO, Any

from grader import cleanup

TEMPLATE_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from grader.sandbox.template import main; main(int(sys.argv[2]))"
)
REPLY_TIMEOUT_S = 10.0
MAX_MESSAGE = 1 << 20


class ForkServer:
    """One template process; thread-safe; every failure answers None so callers fall back."""

    def __init__(self, grader_root: str, env: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-u", "-B", "-c", TEMPLATE_BOOTSTRAP, grader_root,
                 str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd="/",
                env=env,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )  # fmt: skip
        finally:
            theirs.close()
        self._socket = ours
        self._lock = threading.Lock()
        self._ready = False
        self._spare: tuple[int, socket.socket] | None = None  # its pid, our end of its socket
        self.broken = False

    def ready(self, wait_s: float = 0.0) -> bool:
        """Whether the template has finished importing (waiting up to `wait_s`)."""
        with self._lock:
            return self._check_ready(wait_s)

    def _check_ready(self, wait_s: float) -> bool:
        if self._ready or self.broken:
            return self._ready and not self.broken
        self._socket.settimeout(wait_s if wait_s > 0 else 0.0)
        try:
            message = self._socket.recv(MAX_MESSAGE)
        except (BlockingIOError, TimeoutError):
            return False
        except OSError:
            self.broken = True
            return False
        self._ready = message == b'{"op": "ready"}'
        self.broken = not self._ready
        return self._ready

    def spawn(self, config: dict[str, Any], env: dict[str, str], fds: list[int]) -> int | None:
        """Start a worker holding `fds` (its read end, write end, output); its pid, or None.

        The spare child, if one is waiting, takes the request at once; otherwise the
        template forks the worker while we wait. Either way, a spare for the next request
        is then made off the grade's path (`grader.cleanup`'s thread).
        """
        request = json.dumps({"op": "spawn", "config": config, "env": env}).encode()
        with self._lock:
            if not self._check_ready(0.0):
                return None
            pid = self._hand_to_spare(request, fds)
            if pid is None:
                reply = self._ask(request, fds)
                pid = reply.get("pid") if reply else None
        if not (isinstance(pid, int) and pid > 0):
            return None
        cleanup.defer(self.make_spare)
        return pid

    @property
    def spare(self) -> int | None:
        """The pid of the child waiting to become the next worker, if there is one."""
        spare = self._spare
        return spare[0] if spare is not None else None

    def make_spare(self) -> None:
        """Have the template fork a child that waits for the next spawn request."""
        with self._lock:
            if self._spare is not None or not self._check_ready(0.0):
                return
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                reply = self._ask(b'{"op": "spare"}', [theirs.fileno()])
            finally:
                theirs.close()
            pid = reply.get("pid") if reply else None
            if isinstance(pid, int) and pid > 0:
                self._spare = (pid, ours)
            else:
                ours.close()

    def _hand_to_spare(self, request: bytes, fds: list[int]) -> int | None:
        """Send the request to the spare child, if one is waiting (called with the lock
        held); its pid, or None. A spare dies with its template: none is used once the
        template has died."""
        spare, self._spare = self._spare, None
        if spare is None:
            return None
        pid, handoff = spare
        try:
            if self.broken or self.process.poll() is not None:
                return None
            socket.send_fds(handoff, [request], fds)
        except OSError:
            return None
        finally:
            handoff.close()
        return pid

    def wait(self, pid: int) -> int | None:
        """Reap a worker this template forked; its exit code (negative: killed by signal)."""
        with self._lock:
            reply = self._ask(json.dumps({"op": "wait", "pid": pid}).encode(), [])
        code = reply.get("code") if reply else None
        return code if isinstance(code, int) else None

    def forget(self, pid: int) -> None:
        """Have the template reap a worker it forked once that has exited, without waiting
        for it (its exit code is not needed)."""
        with self._lock:
            if self.broken:
                return
            try:
                self._socket.settimeout(REPLY_TIMEOUT_S)
                self._socket.send(json.dumps({"op": "forget", "pid": pid}).encode())
            except OSError:
                self.broken = True

    def _ask(self, request: bytes, fds: list[int]) -> dict | None:
        if self.broken:
            return None
        try:
            self._socket.settimeout(REPLY_TIMEOUT_S)
            socket.send_fds(self._socket, [request], fds)
            reply = json.loads(self._socket.recv(MAX_MESSAGE))
        except (OSError, ValueError):
            self.broken = True
            return None
        return reply if isinstance(reply, dict) else None

    def close(self) -> None:
        """Stop the template (its workers belong to their sandboxes, which kill them; its
        spare exits with it)."""
        self.broken = True
        spare, self._spare = self._spare, None
        if spare is not None:
            spare[1].close()
        with contextlib.suppress(OSError):
            self._socket.close()
        with contextlib.suppress(OSError):
            self.process.kill()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


class ForkedWorker:
    """A forked worker as `Sandbox` sees a process: pid, output stream, wait()."""

    def __init__(self, server: ForkServer, pid: int, output: IO[bytes]) -> None:
        self.server = server
        self.pid = pid
        self.stdout = output

    def wait(self) -> int | None:
        return self.server.wait(self.pid)


_server: ForkServer | None = None


def enable(grader_root: str, env: dict[str, str]) -> ForkServer:
    """Start this process's template (once); workers are forked from it once it is ready."""
    global _server
    if _server is None or _server.broken:
        if _server is not None:
            _server.close()
        _server = ForkServer(grader_root, env)
        atexit.register(disable)
    return _server


def disable() -> None:
    """Stop forking workers; they are started from scratch again."""
    global _server
    if _server is not None:
        _server.close()
        _server = None


def current() -> ForkServer | None:
    """The template to fork from, if one is enabled and alive."""
    return _server if _server is not None and not _server.broken else None


def supported() -> bool:
    return hasattr(os, "fork") and hasattr(socket, "send_fds") and sys.platform == "linux"
