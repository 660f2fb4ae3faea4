"""The trusted side of the fork server: a template process that forks workers on request.

Starting a worker from scratch costs ~100 ms (interpreter start, NumPy import), often more
than grading a NumPy assignment takes. A process that starts many workers (a batch's grading
process, `--repeat`, the benchmarks) calls `enable()` once; from then on `Sandbox` asks the
template (`grader.sandbox.template`) to fork each worker, and falls back to starting one from
scratch whenever the template is not ready or has died. Nothing else changes: the child
hardens itself exactly as a fresh worker does, and grades are identical either way.
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
        """Fork a worker holding `fds` (its read end, write end, output); its pid, or None."""
        request = json.dumps({"op": "spawn", "config": config, "env": env}).encode()
        with self._lock:
            if not self._check_ready(0.0):
                return None
            reply = self._ask(request, fds)
        pid = reply.get("pid") if reply else None
        return pid if isinstance(pid, int) and pid > 0 else None

    def wait(self, pid: int) -> int | None:
        """Reap a worker this template forked; its exit code (negative: killed by signal)."""
        with self._lock:
            reply = self._ask(json.dumps({"op": "wait", "pid": pid}).encode(), [])
        code = reply.get("code") if reply else None
        return code if isinstance(code, int) else None

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
        """Stop the template (its workers belong to their sandboxes, which kill them)."""
        self.broken = True
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
