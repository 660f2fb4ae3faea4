"""The trusted side of the sandbox: start a worker, make calls into it, survive anything.

`Sandbox` owns one submission's worker process: it spawns it (a fresh interpreter, or a fork
of the fork server's template, never a process that touched CUDA) in a private folder
holding a copy of the submission, sends calls, answers callbacks, writes in-place changes
back into the caller's arrays and dicts only where the caller asked for them (`inplace`), and
turns timeouts, crashes and garbage into `StudentError`s. A dead worker is restarted on the
next call. `RemoteObject` makes an object in the worker look local: `layer.forward(x)`,
`layer.dW`, `layer.W = w`.

Whatever the worker sends is read within the call's deadline and the assignment's message
cap, and its text is capped and escaped where it arrives.
"""

from __future__ import annotations

import _thread
import contextlib
import copy
import functools
import json
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from grader import cleanup
from grader.safecopy import copy_folder
from grader.safetext import one_line, printable
from grader.sandbox import forkserver
from grader.sandbox.cgroups import WorkerGroup
from grader.sandbox.codec import (
    MAX_METHODS,
    Callback,
    Channel,
    ChannelClosed,
    ChannelTimeout,
    Decoder,
    Encoder,
    Handle,
    ProtocolError,
    WorkerFunction,
    pack,
    plain,
)
from grader.sandbox.forkserver import ForkedWorker
from grader.sandbox.hardening import readable_roots
from grader.sandbox.limits import Limits
from grader.sandbox.placement import CoLocation, Pace, allowed_cpus, co_locate, spin_seconds
from grader.sandbox.prefetch import MISSING, Prefetch
from grader.scratch import ScratchFolder
from grader.sourcemap import SourceMap
from grader.submission import MAX_EXTRACTED_BYTES, MAX_FILES

GRADER_ROOT = str(Path(__file__).resolve().parent.parent.parent)
WORKER_PACKAGE = str(Path(__file__).resolve().parent)  # the worker reads it: grader/sandbox
BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from grader.sandbox.worker import main; main(sys.argv[2])"
)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
PASSED_VARIABLES = ("CUDA_VISIBLE_DEVICES",)  # the worker trains on the GPU the grader was given
EXIT_GRACE_S = 1.0  # how long a worker whose pipe closed may take to report its own exit
MAX_FRAMES = 8  # of a student's traceback, the innermost
MAX_REPORTED = 32  # entries of the worker's list of limits and of protections
_NONE: dict = {}  # the refs and callbacks of a plain call: never written
_NONE_SYNCED: list = []  # a reply's missing sync list: never written


def worker_environment(home: Path | None) -> dict[str, str]:
    """A worker's whole environment: nothing of the grader's but the path and the GPU choice."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        **dict.fromkeys(THREAD_VARIABLES, "1"),
        **{k: os.environ[k] for k in PASSED_VARIABLES if k in os.environ},
    }
    if home is not None:
        env["HOME"] = env["TMPDIR"] = str(home)
    return env


def use_fork_server() -> bool:
    """Fork this process's workers from a template from now on (see `forkserver`); False
    where the platform cannot."""
    if not forkserver.supported():
        return False
    forkserver.enable(GRADER_ROOT, worker_environment(None))
    return True


class StudentError(Exception):
    """Student code failed in a way that fails the check; `message` is one line for them.

    `hintable`: whether a check's hint may follow the message. Only an exception the
    student's function raised itself is about that function's code; a timeout, a crash, an
    import that failed or a missing name has its own words and no hint.
    """

    status = "error"
    hintable = False

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class StudentException(StudentError):
    """The student's code raised an exception; `function` is the function that was called."""

    @property
    def hintable(self) -> bool:
        """A stub's NotImplementedError and a failed import (a forbidden library among them)
        say all there is to say; any other exception is about the function's own code."""
        return self.type_name not in UNHINTED_EXCEPTIONS

    def __init__(self, call: str, reply: dict, sources: SourceMap | None = None) -> None:
        self.function = function_of(call)
        self.type_name = one_line(reply.get("type", "Exception"), 100)
        self.text = printable(reply.get("message", ""), 2000)
        self.frames = _frames(reply.get("frames"), sources)
        where = ""
        if self.frames:
            path, line, _, _ = self.frames[-1]
            where = f" ({path}, line {line})"
        first = self.text.strip().splitlines()[0] if self.text.strip() else ""
        # What was raised and where: `SyntaxError: '(' was never closed (x.py, line 2)`.
        self.raised = f"{self.type_name}{': ' + first if first else ''}{where}"
        if self.type_name == "NotImplementedError":
            message = f"{call} is not implemented yet (it raises NotImplementedError){where}."
        else:
            message = f"{call} raised {self.raised}."
        # A SyntaxError's frame is a place in a file, not in a function: no ", in".
        trace = "\n".join(
            f"  {path}, line {line}{', in ' + name if name else ''}\n    {code}"
            for path, line, name, code in self.frames
        )
        super().__init__(message, f"Traceback (your code):\n{trace}\n{self.type_name}: {self.text}")


UNHINTED_EXCEPTIONS = frozenset({"NotImplementedError", "ImportError", "ModuleNotFoundError"})


def function_of(label: str) -> str:
    """The function a call's label names: "Sigmoid.forward" for "Sigmoid.forward()"."""
    return label.split("(", 1)[0].strip()


def _frames(frames: Any, sources: SourceMap | None = None) -> list[tuple[str, int, str, str]]:
    """The innermost frames of a worker's traceback, (path, line, function, code), as safe text;
    anything not shaped like a frame is dropped. A frame in a module made from a notebook is
    placed by `sources` (its cell and line) with the code read from the grader's own copy."""
    if not isinstance(frames, list):
        return []
    kept = []
    for frame in frames[-MAX_FRAMES:]:
        if not (isinstance(frame, list) and len(frame) == 4):
            continue
        path, line, name, code = frame
        line = line if type(line) is int and 0 <= line < 10**9 else 0
        path, code = one_line(path, 200), one_line(code, 200)
        if sources is not None:
            path, line, code = sources.locate(path, line, code)
        kept.append((path, line, one_line(name, 100), code))
    return kept


class SubmissionImportError(StudentError):
    """The submission could not be imported, so no check that needs it can run."""


class WorkerTimeout(StudentError):
    """A call ran past its time limit; the worker was killed."""

    status = "timeout"


class WorkerCrashed(StudentError):
    """The worker died or sent garbage during a call."""


class MissingName(StudentError):
    """The submission does not define a name the check uses."""

    status = "failed"


IMPORT_SECTION = ""  # the label of what the submission printed while it was imported


class CapturedOutput:
    """Drains the worker's stdout/stderr on a thread, keeping only the first `limit` bytes,
    and files what was printed under labels (`cut`): a check's id, or `IMPORT_SECTION`.

    The drain thread and `cut` read the pipe under one lock, so `cut` first reads whatever
    the worker has already written: a worker writes its output (unbuffered) before it sends
    the reply a check waits for, so a check's output is filed under that check.
    """

    # Reads of what is pending at a cut: a worker that prints forever cannot hold it up.
    MAX_CUT_READS = 64

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = bytearray()
        self.total = 0
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._cuts: list[tuple[str, int, int]] = []  # (label, kept end, total end)

    def drain(self, stream: Any) -> threading.Event:
        """Read `stream` on a thread of its own until its end; the event set at the end.

        The thread is started with `_thread`: `threading.Thread.start` waits until the new
        thread runs, which on a busy machine holds up a worker's start for milliseconds.
        """
        fd = stream.fileno()
        os.set_blocking(fd, False)
        with self._lock:
            self._fd = fd
        ended = threading.Event()

        def run() -> None:
            try:
                ready = select.poll()  # not select(): no limit on the descriptor's number
                ready.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
                with contextlib.suppress(OSError, ValueError):
                    while True:
                        ready.poll()
                        with self._lock:
                            if self._read(fd) == b"":
                                break
                with self._lock:
                    if self._fd == fd:
                        self._fd = None
                    stream.close()
            finally:
                ended.set()

        _thread.start_new_thread(run, ())
        return ended

    def _read(self, fd: int) -> bytes | None:
        """One read of what is pending (called with the lock held): the bytes, b"" at the
        end of the stream, None when nothing is pending now."""
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return None
        self.total += len(chunk)
        room = self.limit - len(self.kept)
        if room > 0:
            self.kept += chunk[:room]
        return chunk

    def cut(self, label: str) -> None:
        """File everything printed since the previous cut under `label`."""
        with self._lock:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    for _ in range(self.MAX_CUT_READS):
                        if not self._read(self._fd):
                            break
            self._cuts.append((label, len(self.kept), self.total))

    def sections(self) -> list[tuple[str, str]]:
        """(label, text) of every cut that holds output, its text escaped as `text()`'s is."""
        found = []
        kept_start = total_start = 0
        with self._lock:
            for label, kept_end, total_end in self._cuts:
                dropped = (total_end - total_start) - (kept_end - kept_start)
                if total_end > total_start:
                    found.append((label, self._shown(kept_start, kept_end, dropped)))
                kept_start, total_start = kept_end, total_end
        return found

    def _shown(self, start: int, end: int, dropped: int) -> str:
        text = printable(self.kept[start:end].decode("utf-8", errors="replace"), self.limit)
        if dropped:
            text += f"\n[... {dropped} more bytes of output dropped]"
        return text

    def text(self) -> str:
        """What was kept, decoded, with control codes escaped (it may reach a terminal)."""
        with self._lock:
            return self._shown(0, len(self.kept), self.total - len(self.kept))


class Sandbox:
    """One submission's worker: spawned lazily, restarted after a crash, killed at close."""

    def __init__(
        self,
        submission_dir: Path,
        module: str,
        limits: Limits,
        forbidden_imports: tuple[str, ...] = (),
        hidden_paths: tuple[Path, ...] = (),
        sources: SourceMap | None = None,
    ) -> None:
        """`sources` maps the module's lines back to the notebook it was made from."""
        self.submission_dir = Path(submission_dir)
        self.sources = sources
        self.source_label = sources.label if sources else f"{module}.py"
        self.importing = (
            f"running the code cells of {sources.label}" if sources else f"importing {module}.py"
        )
        self.hidden_paths = tuple(str(Path(p).resolve()) for p in hidden_paths)
        self.module = module
        self.limits = limits
        self.forbidden_imports = forbidden_imports
        self.call_timeout = limits.call_timeout_s
        self.deadline: float | None = None
        self.output = CapturedOutput(limits.output_kb * 1024)
        self.generation = 0
        self.starts = 0
        self.applied_limits: list[str] = []
        self.protections: dict[str, str] = {}
        self.import_failure: StudentError | None = None
        self.last_function: str | None = None  # what the latest call ran: a hint's subject
        self.requests = 0  # round trips to any worker of this sandbox, as tests count them
        self.prefetch = Prefetch()  # attributes that come with a method's reply
        self._process: subprocess.Popen | ForkedWorker | None = None
        self._channel: Channel | None = None
        self._drainer: threading.Event | None = None  # set once the output is all read
        self._joiner: threading.Thread | None = None
        self._stopped = False  # whether `stop` has killed the running worker already
        self._module_handle: Handle | None = None
        self._folder: ScratchFolder | None = None
        self._group: WorkerGroup | None = None
        self._out_of_memory = False
        self.group_report = "unavailable: the course turned hardening off"
        self._inplace: list[Any] = []  # the objects `inplace` names, innermost last
        self._observing = False  # an observer of reported calls is running (`_take_report`)
        self._placement: CoLocation | None = None  # the worker on the calling thread's CPU
        self._pace: Pace | None = None  # how long a spinning worker's grader pauses
        self._spun = False  # whether the running worker was started spinning

    # -- lifecycle --------------------------------------------------------------------------

    def module_handle(self) -> Handle:
        """Start the worker if needed and return the handle of the student's module."""
        if self.import_failure is not None:
            # A copy per check: re-raising one exception object would grow its traceback.
            raise copy.copy(self.import_failure).with_traceback(None)
        if self._module_handle is None:
            self._start()
        assert self._module_handle is not None
        return self._module_handle

    def spawn(self) -> None:
        """Start the worker now without waiting for it, so its import overlaps our own work."""
        if self._process is None and self.import_failure is None:
            self._spawn()

    def _start(self) -> None:
        if self._process is None:
            self._spawn()
        try:
            self._await_ready()
        finally:
            self.output.cut(IMPORT_SECTION)
        channel = self._channel
        if self._process is None or channel is None:
            return
        if channel.spin_s:  # co-located later if the grader pauses longer (`_settle`)
            self._pace = Pace(channel.spin_s)
        else:
            self._placement = co_locate(self._worker_processes())  # ready: see `placement`

    def _prepare_folder(self) -> Path:
        """A private folder for the next worker: a fresh copy of the submission and a home.

        The worker may write this folder and nothing else, and a root grader hands it to
        the worker's uid, so it must never be a folder someone else uses: hence a copy.
        """
        self._remove_folder()
        self._folder = ScratchFolder("worker")
        folder = self._folder.path
        copy_folder(
            self.submission_dir,
            folder / "submission",
            max_files=MAX_FILES,
            max_bytes=MAX_EXTRACTED_BYTES,
        )
        (folder / "home").mkdir()
        return folder

    @property
    def spins(self) -> bool:
        """Whether the worker's calls poll awake before they sleep (`placement`): as worked
        out when the running worker started (it holds a CPU of the grader's share, spinning
        or, once settled, co-located on the grader thread's), else as it would be for the
        next."""
        return self._spun if self._channel is not None else spin_seconds() > 0

    @property
    def co_located(self) -> bool:
        """Whether the running worker shares the calling thread's one CPU (`placement`)."""
        return self._placement is not None

    def _settle(self, channel: Channel, deadline: float) -> None:
        """The grader pauses between calls for longer than the worker spins (`Pace`), so
        every call wakes the worker's idle CPU: put the worker on the calling thread's CPU
        and have both ends sleep between messages, for the rest of the worker's life."""
        self._pace = None
        placement = co_locate(self._worker_processes())
        if placement is None:
            return
        self._placement = placement
        channel.spin_s = 0.0
        channel.write(pack({"op": "settle"}, [], marshalled=True), deadline)

    @property
    def pid(self) -> int | None:
        """The pid (in the grader's PID namespace) of the running worker's first process."""
        return self._process.pid if self._process is not None else None

    def _worker_processes(self) -> list[int]:
        """The running worker's processes: its first and every one below it."""
        pid = self.pid
        return [] if pid is None else [pid, *descendants(pid)]

    @property
    def folder(self) -> Path | None:
        """The running worker's private folder (its copy of the submission and its home)."""
        return self._folder.path if self._folder is not None else None

    def _remove_folder(self) -> None:
        if self._folder is not None:
            self._folder.remove()
            self._folder = None

    def _spawn(self) -> None:
        folder = self._prepare_folder()
        submission = folder / "submission"
        config = {
            "submission_dir": str(submission),
            "module": self.module,
            "grader_root": GRADER_ROOT,
            "limits": self.limits.for_worker(),
            "forbidden_imports": list(self.forbidden_imports),
            "hidden_paths": list(self.hidden_paths),
            "spin_s": spin_seconds(),
            "cpus": allowed_cpus(),
        }
        self._out_of_memory = False
        if self.limits.harden:
            budget = self.limits.memory_mb + self.limits.scratch_mb
            self._group, self.group_report = WorkerGroup.create(budget, self.limits.processes)
            if self._group is not None and self._group.joined_by_worker:
                config["group"] = [str(folder) for folder in self._group.folders]
            else:
                config["await_group"] = self._group is not None
            config["readable_roots"] = list(_worker_roots())
        env = worker_environment(folder / "home")
        forked = self._fork(config, env)
        if forked is not None:
            self._process, (from_worker_r, to_worker_w) = forked
        else:
            self._process, (from_worker_r, to_worker_w) = self._start_fresh(config, env)
        self.starts += 1
        self._stopped = False
        self._channel = Channel(from_worker_r, to_worker_w, self.limits.max_message_bytes)
        self._channel.spin_s = config["spin_s"]
        self._spun = config["spin_s"] > 0
        self._pace = None
        self._drainer = self.output.drain(self._process.stdout)
        if self._group is not None and not self._group.joined_by_worker:
            self._joiner = threading.Thread(
                target=_move_into_group, args=(self._group, self._process.pid, self._channel)
            )
            self._joiner.start()

    def _start_fresh(
        self, config: dict[str, Any], env: dict[str, str]
    ) -> tuple[subprocess.Popen, tuple[int, int]]:
        """A new interpreter running the worker; it and our ends of its two pipes."""
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        config = {
            **config,
            "read_fd": to_worker_r,
            "write_fd": from_worker_w,
            "parent_pid": os.getpid(),
        }
        try:
            process = subprocess.Popen(
                [sys.executable, "-I", "-u", "-B", "-c", BOOTSTRAP, GRADER_ROOT,
                 json.dumps(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=config["submission_dir"],
                env=env,
                pass_fds=(to_worker_r, from_worker_w),
                start_new_session=True,
            )  # fmt: skip
        except BaseException:
            os.close(from_worker_r)
            os.close(to_worker_w)
            raise
        finally:
            os.close(to_worker_r)
            os.close(from_worker_w)
        return process, (from_worker_r, to_worker_w)

    def _fork(
        self, config: dict[str, Any], env: dict[str, str]
    ) -> tuple[ForkedWorker, tuple[int, int]] | None:
        """The worker forked from this process's template (and our ends of its pipes), if
        one is enabled and ready. The pipes are this attempt's alone: a template that took
        them but did not answer may have forked a worker holding them, and closing our ends
        leaves that one nothing to read."""
        server = forkserver.current()
        if server is None:
            return None
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        output_r, output_w = os.pipe()
        config = {**config, "read_fd": to_worker_r, "write_fd": from_worker_w}
        try:
            passed = [to_worker_r, from_worker_w, output_w]
            pid = server.spawn(config, env, passed)
        finally:
            for fd in (to_worker_r, from_worker_w, output_w):
                os.close(fd)
        if pid is None:
            for fd in (from_worker_r, to_worker_w, output_r):
                os.close(fd)
            return None
        return ForkedWorker(server, pid, os.fdopen(output_r, "rb")), (from_worker_r, to_worker_w)

    def _await_ready(self) -> None:
        assert self._channel is not None
        timeout = min(self.limits.import_timeout_s, self._remaining())
        try:
            header, _ = self._channel.recv(time.monotonic() + timeout)
        except ChannelTimeout:
            self._fail_import(
                SubmissionImportError(
                    self._grade_time_message(self.importing)
                    or f"{self.importing} took longer than {timeout:g} s "
                    "(is there an infinite loop or a long computation at module level?)"
                )
            )
        except ChannelClosed:
            code = self._kill(grace_s=EXIT_GRACE_S)
            self._fail_import(
                SubmissionImportError(
                    f"the submission stopped the grader's worker while {self.importing} "
                    f"({self._exit_description(code)})"
                )
            )
        except ProtocolError as error:
            self._fail_import(
                SubmissionImportError(
                    f"while {self.importing}, the worker sent data the "
                    f"grader refuses ({one_line(error, 300)})"
                )
            )
        if header.get("op") == "ready" and isinstance(header.get("module"), list):
            limits = _listed(header.get("limits"))[:MAX_REPORTED]
            self.applied_limits = [one_line(x, 100) for x in limits]
            protections = header.get("protections", {})
            if isinstance(protections, dict):
                self.protections = {
                    one_line(k, 100): one_line(v, 300)
                    for k, v in list(protections.items())[:MAX_REPORTED]
                }
            self.protections["memory"] = self._group_state()
            methods = _method_names(header["module"])
            self._module_handle = Handle(0, self.module, methods)
            return
        if header.get("op") == "import_error":
            error = StudentException(self.importing, header, self.sources)
            self._fail_import(
                SubmissionImportError(
                    _import_message(self.source_label, self.sources is not None, error),
                    error.details,
                )
            )
        self._fail_import(SubmissionImportError("the worker sent an unexpected first message"))

    def refuse(self, message: str) -> None:
        """Fail every check that needs the submission with `message`, without running it."""
        self.import_failure = SubmissionImportError(message)

    def _fail_import(self, error: SubmissionImportError) -> None:
        self._kill()
        self.import_failure = error
        raise error

    def _kill(self, grace_s: float = 0.0) -> int | None:
        """Kill the worker's whole process group; return its exit status.

        `grace_s`: the worker is ending by itself (its pipe closed); let it finish for up to
        that long first, so that the status it reports is its own and not our SIGKILL.
        """
        process = self._stop(grace_s)
        if process is None:
            return None
        code = process.wait()
        if self._group is not None:
            self._out_of_memory = self._group.out_of_memory()
            self._group.remove()
            self._group = None
        self._close_pipes()
        return code

    def _stop(self, grace_s: float = 0.0) -> subprocess.Popen | ForkedWorker | None:
        """Send SIGKILL to the worker and everything it started; the process (not reaped)."""
        process, self._process = self._process, None
        self._release_placement()
        if process is None:
            return None
        if grace_s > 0:
            _await_exit(process.pid, grace_s)
        if not self._stopped:
            _kill_tree(process.pid)
        if self._joiner is not None:  # before the pid can be reaped (and reused), and before
            self._joiner.join()  # the channel it writes to closes
            self._joiner = None
        return process

    def _close_pipes(self) -> None:
        """Close our ends of the killed worker's pipes and read the rest of its output (to
        the end: once no process of it holds the pipe)."""
        if self._channel is not None:
            for fd in (self._channel.read_fd, self._channel.write_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._channel = None
        if self._drainer is not None:
            self._drainer.wait(timeout=5)
        self.generation += 1
        self.prefetch.forget()
        self._module_handle = None

    def _group_state(self) -> str:
        """The worker's cgroup, as the trusted side sees it (not as the worker reports it)."""
        if self._group is None:
            return self.group_report
        if not self._group.members():
            return "failed: the worker did not join its cgroup"
        return self.group_report

    def _exit_description(self, code: int | None) -> str:
        if self._out_of_memory:
            return (
                f"killed for using more than {self.limits.memory_mb + self.limits.scratch_mb} MB "
                "of memory, counting everything it started and its files in /tmp"
            )
        return _exit_description(code)

    def stop(self) -> None:
        """Send SIGKILL to the worker and everything it started, and go on: for when nothing
        will call it again (the checks are over), so that it ends while the grade finishes.
        `close` still waits for its end and cleans up. A worker that no call has reached is
        left to start: what it reports once ready may still be asked for (a grade whose
        checks were all resumed from its journal reports the worker's protections)."""
        if self._process is not None and self._module_handle is not None and not self._stopped:
            _kill_tree(self._process.pid)
            self._stopped = True
            self._release_placement()

    def _release_placement(self, *processes: int) -> None:
        """Give the calling thread its CPUs back (see `placement`), and `processes` theirs."""
        if self._placement is not None:
            self._placement.release(list(processes))
            self._placement = None

    def close(self, *, finish_later: bool = False) -> None:
        """Stop the worker and everything it started, and remove its folder.

        `finish_later`: return once all of it is killed and what it printed is read to the
        end, and leave the rest (reaping it, removing its cgroup and its folder) to
        `grader.cleanup`'s thread, off the grade's path.
        """
        if not finish_later:
            self._kill()
            if self._group is not None:  # created, but no worker was started into it
                self._group.remove()
                self._group = None
            self._remove_folder()
            return
        process = self._stop()
        self._close_pipes()
        group, self._group = self._group, None
        folder, self._folder = self._folder, None
        if process is not None or group is not None or folder is not None:
            cleanup.defer(functools.partial(_finish_closing, process, group, folder))

    def _remaining(self) -> float:
        if self.deadline is None:
            return float("inf")
        return max(0.0, self.deadline - time.monotonic())

    def _grade_time_message(self, doing: str) -> str | None:
        """What to say when the grade's own time limit, not a call's, stopped `doing`."""
        if self.deadline is None or time.monotonic() < self.deadline:
            return None
        return (
            f"the grade's time limit ({self.limits.total_timeout_s:g} s) ran out while "
            f"{doing} was running, so it was stopped."
        )

    # -- requests ---------------------------------------------------------------------------

    def inplace(self, objects: tuple[Any, ...]) -> Inplace:
        """While open, the worker's in-place changes to `objects` (arrays, dicts, lists, and
        the arrays, dicts and lists they hold) are written back into them after each call,
        and before each callback during it. Every other argument is left as the caller made
        it, whatever the worker does."""
        for value in objects:
            if not isinstance(value, _SYNCABLE):
                kind = type(value).__name__
                raise TypeError(f"inplace() takes arrays, dicts and lists, not {kind}")
        return Inplace(self._inplace, objects)

    def call(
        self,
        handle: Handle,
        name: str | None,
        args: tuple,
        kwargs: dict,
        label: str | None = None,
        function: str | None = None,
    ) -> Any:
        """Call `name` of the worker's object `handle` (the object itself for None).
        `label` and `function`: the call's `_call_label` and its `function_of`, if known."""
        if label is None:
            label = _call_label(handle, name)
            function = function_of(label)
        self.last_function = function
        wanted = self.prefetch.wanted(handle) if name is not None else ()
        if not kwargs and not wanted and plain(args):  # the commonest call, sent as it is
            return self._request((handle.id, name, args), (), label, _NONE, _NONE)
        callbacks: dict[int, Callable] = {}
        observers: dict[int, Callable] = {}  # numbered with callbacks, never taken for one

        def register(func: Callable) -> Callback:
            ident = len(callbacks) + len(observers)
            callbacks[ident] = func
            return Callback(ident)

        def observe(func: Callable) -> Callback:
            ident = len(callbacks) + len(observers)
            observers[ident] = func
            return Callback(ident)

        encoder = Encoder(
            track=True, callback_for=register, handle_of=_handle_of, observer_for=observe
        )
        header = {
            "op": "call",
            "target": handle.id,
            "name": name,
            "args": encoder.encode(tuple(args)),
            # Not numbered itself (the callee gets a fresh dict of them): only its values are.
            "kwargs": {"$d": [[name, encoder.encode(value)] for name, value in kwargs.items()]},
        }
        writable = None
        if self._inplace and encoder.refs:  # the worker reports changes to these alone
            writable = _reachable(self._inplace)
            header["watch"] = [ref for ref, arg in encoder.refs.items() if id(arg) in writable]
        if wanted:
            header["prefetch"] = list(wanted)
        return self._request(
            header,
            encoder.blobs,
            label,
            encoder.refs,
            callbacks,
            writable,
            observers,
            (handle.id, wanted) if wanted else None,
        )

    def getattr(self, handle: Handle, name: str) -> Any:
        value = self.prefetch.take(handle, name)
        if value is not MISSING:
            return value
        header = {"op": "getattr", "target": handle.id, "name": name}
        try:
            value = self._request(header, [], f"{handle.cls}.{name}", {}, {})
        except StudentException as error:
            if error.type_name == "AttributeError":
                raise MissingName(_missing_message(handle, name, self.source_label)) from None
            raise
        if not isinstance(value, RemoteObject):
            self.prefetch.learn(handle, name)
        return value

    def setattr(self, handle: Handle, name: str, value: Any) -> None:
        encoder = Encoder()
        header = {"op": "setattr", "target": handle.id, "name": name}
        header["value"] = encoder.encode(value)
        self._request(header, encoder.blobs, f"setting {handle.cls}.{name}", {}, {})

    def harness(self, function: str, args: tuple, label: str) -> Any:
        """Run `function` of `grader.sandbox.torch_harness` in the worker on `args`.

        A `RemoteObject` among `args` (the `student` proxy, a model it returned) reaches the
        harness as the worker's own object; everything else is copied in as data. `label`
        names the call in messages (e.g. "train(model, X, y, device)").
        """
        self.module_handle()
        self._pace = None  # a few long calls, free to use every CPU (torch)
        if self._placement is not None:
            self._release_placement(*self._worker_processes())
        encoder = Encoder(handle_of=_handle_of)
        header = {"op": "harness", "name": function, "args": encoder.encode(tuple(args))}
        self.last_function = function_of(label)
        return self._request(header, encoder.blobs, label, {}, {})

    def run(self, function: WorkerFunction, args: tuple, label: str) -> Any:
        """Run a `@runs_in_worker` function in the worker on `args`, as one call: a loop over
        the student's code (assignment6's fifty updates) crosses the pipe once instead of
        once per step. A `RemoteObject` among `args` reaches it as the worker's own object,
        everything else is copied in as data; what it returns comes back as data, to be
        compared here. `label` names the student's code it runs, for messages and hints,
        as a call's label does (e.g. "Adam.update()")."""
        if not isinstance(function, WorkerFunction):
            raise TypeError("run() takes a function made with @runs_in_worker")
        if function.observer is not None:
            raise TypeError("run() takes a function that reports to no observer")
        encoder = Encoder(handle_of=_handle_of)
        header = {"op": "run", "args": encoder.encode((function, *args))}
        self.last_function = function_of(label)
        return self._request(header, encoder.blobs, label, {}, {})

    def seterr(self, settings: dict[str, str]) -> dict[str, str]:
        self.module_handle()
        header = {"op": "seterr", "settings": Encoder().encode(settings)}
        return self._request(header, [], "np.seterr", {}, {})

    def _request(
        self,
        header: dict | tuple,
        blobs: list[bytes],
        label: str,
        refs: dict[int, Any],
        callbacks: dict[int, Callable],
        writable: set[int] | None = None,
        observers: dict[int, Callable] = _NONE,
        prefetch: tuple[int, tuple[str, ...]] | None = None,
    ) -> Any:
        """Send one request and read its reply, answering callbacks and taking reports on
        the way. Writing the request, reading and decoding the reply all count against the
        call's time limit (capped by what is left of the grade's); only the trusted side's
        callbacks and observers do not. `writable`: what `inplace` reached when the request
        was made (see `_sync`). Reports need no answer, so a worker could send them as fast
        as the pipe takes them, and a check's function may keep what each call brings (the
        points it was called at): a call's callbacks and reports together may bring what one
        message may, no more. `prefetch`: the call's target and the attributes of it asked
        for (`grader.sandbox.prefetch`), held for the reads before the next request."""
        self.prefetch.forget()
        self.requests += 1
        if self._observing:  # the worker may have sent more reports: they are not its reply
            raise RuntimeError("an observer of reported calls may not call into the worker")
        if self._module_handle is None or self.import_failure is not None:
            self.module_handle()  # starts the worker, or raises why it cannot
        channel = self._channel
        assert channel is not None
        now = time.monotonic()
        timeout = self.call_timeout
        if self.deadline is not None and self.deadline - now < timeout:
            timeout = max(0.0, self.deadline - now)
        deadline = now + timeout
        failures: list[Exception] = []  # of observers (`_take_report`), raised at the end
        sent = 0  # bytes of this call's callbacks and reports (see the docstring)
        try:
            if self._pace is not None and self._pace.note(now):
                self._settle(channel, deadline)
            channel.send(header, blobs, deadline, marshalled=True)
            while True:
                reply, reply_blobs = channel.recv(deadline)
                op = reply.get("op")
                if op == "result":  # the commonest reply, one plain value: `_read_reply`'s
                    value = reply.get("value")  # answer, found without a call
                    kind = type(value)
                    if not failures and (
                        kind is int
                        or kind is str
                        or kind is bool
                        or value is None
                        or (kind is float and math.isfinite(value))
                    ):
                        sync = reply.get("sync", _NONE_SYNCED)
                        if type(sync) is list and not sync and "attrs" not in reply:
                            return value
                    break
                if op == "callback" or op == "report":
                    sent += channel.received
                    if sent > channel.max_bytes:
                        raise ProtocolError(
                            f"calls back and reports of more than "
                            f"{channel.max_bytes / (1 << 20):,.4g} MB in one call"
                        )
                try:
                    if op == "callback":
                        spent = self._answer_callback(reply, reply_blobs, refs, callbacks, deadline)
                    elif op == "report":
                        spent = self._take_report(
                            reply, reply_blobs, refs, observers, deadline, failures
                        )
                    else:
                        break
                except (ChannelTimeout, ChannelClosed, ProtocolError):
                    raise
                except BaseException:  # e.g. pytest.fail in the check's function: the
                    self._kill()  # worker still waits for its answer, so it cannot go on
                    raise
                deadline = min(deadline + spent, time.monotonic() + self._remaining())
                writable = None  # the check's own code ran: what inplace reaches may differ
            try:
                value = self._read_reply(
                    reply, reply_blobs, label, refs, deadline, writable, prefetch
                )
            except StudentException:
                if failures:  # what an observer found came first: it is the check's finding
                    raise failures[0] from None
                raise
        except ChannelTimeout:
            self._kill()
            raise WorkerTimeout(
                self._grade_time_message(label)
                or f"{label} did not finish within {timeout:g} s and was stopped "
                "(an infinite loop, or much slower than needed?)."
            ) from None
        except ChannelClosed:
            code = self._kill(grace_s=EXIT_GRACE_S)
            raise WorkerCrashed(
                f"{label} stopped the grader's worker process ({self._exit_description(code)})."
            ) from None
        except ProtocolError as error:
            self._kill()
            raise WorkerCrashed(_refused_message(label, error)) from None
        finally:
            if self._pace is not None:
                self._pace.replied(time.monotonic())
        if failures:
            raise failures[0]
        return value

    def _read_reply(
        self,
        reply: dict,
        blobs: list[memoryview],
        label: str,
        refs: dict,
        deadline: float,
        writable: set[int] | None = None,
        prefetch: tuple[int, tuple[str, ...]] | None = None,
    ) -> Any:
        op = reply.get("op")
        if op == "error":
            raise StudentException(label, reply, self.sources)
        if op != "result":
            self._kill()
            raise WorkerCrashed(f"{label} sent back an unexpected message.")
        # No reference to the grader's own objects in the value: a worker sends them in sync
        # entries alone (`_sync`), and a result is never one of the check's own arguments.
        decoder = Decoder(blobs, make_handle=self._remote, deadline=deadline)
        try:
            value = decoder.decode(reply.get("value"))
            attributes = Prefetch.read(decoder, reply.get("attrs"), prefetch[1] if prefetch else ())
            self._sync(decoder, reply.get("sync", []), refs, writable)
        except ProtocolError as error:
            self._kill()
            raise WorkerCrashed(_refused_message(label, error)) from None
        if attributes:
            self.prefetch.keep(prefetch[0], attributes)
        return value

    def _sync(
        self, decoder: Decoder, sync: Any, refs: dict[int, Any], writable: set[int] | None = None
    ) -> None:
        """Write the worker's changes to the call's arguments into those `inplace` names (all
        decoded first, so a refused entry writes nothing). An entry is [argument number,
        value], the value an encoded node or, for an array that kept the shape and dtype it
        was sent with, the number of a blob holding its bytes alone (`Decoder.bare_array`
        reads them in the shape and dtype of the grader's own array). `writable`: the ids
        `inplace` reaches, if known to be current (no trusted code ran since they were found)."""
        if not isinstance(sync, list):
            raise ProtocolError("bad sync list")
        if not sync:
            return
        if writable is None:  # decoding changes nothing: the same before as after it
            writable = _reachable(self._inplace)
        decoder.resolve_ref = _sync_resolver(refs, writable)
        updates = []
        for item in sync:
            if not (type(item) is list and len(item) == 2 and _known(item[0], refs)):
                raise ProtocolError("bad sync entry")
            original, node = refs[item[0]], item[1]
            if type(node) is int:  # an array that kept its shape and dtype: only its bytes
                updates.append((original, decoder.bare_array(original, node)))
            else:
                updates.append((original, decoder.decode(node)))
        for original, current in updates:
            if id(original) in writable:
                _apply_update(original, current)

    def _answer_callback(
        self,
        reply: dict,
        blobs: list[memoryview],
        refs: dict[int, Any],
        callbacks: dict,
        deadline: float,
    ) -> float:
        """Run the callable the worker asked for and send its answer; the seconds it ran
        (the trusted function's own time, which the call's limit does not charge). The
        call's changes to its arguments so far reach what `inplace` names first, so a
        function that reads them through a closure sees them as a local call would."""
        assert self._channel is not None
        ident = reply.get("id")
        if type(ident) is not int:
            raise ProtocolError("bad callback id")  # an unknown int is answered below
        args, kwargs = self._arguments_of(reply, blobs, refs, deadline, "callback")
        started = time.monotonic()
        encoder = Encoder()
        try:
            if ident not in callbacks:
                raise LookupError("that function is no longer available")
            answer = {
                "op": "callback_result",
                "value": encoder.encode(callbacks[ident](*args, **kwargs)),
            }
        except Exception as error:  # reported to the student's code
            answer = {"op": "callback_error", "message": f"{type(error).__name__}: {error}"[:500]}
            encoder.blobs.clear()
        spent = time.monotonic() - started
        self._channel.send(answer, encoder.blobs, deadline + spent, marshalled=True)
        return spent

    def _arguments_of(
        self, reply: dict, blobs: list[memoryview], refs: dict[int, Any], deadline: float, kind: str
    ) -> tuple[tuple, dict]:
        """The arguments of a call the worker's code made to a function of ours (a `kind`:
        callback or report), after the call's changes to its own arguments so far reach what
        `inplace` names."""
        decoder = Decoder(blobs, make_handle=self._remote, deadline=deadline)  # see `_read_reply`
        args = decoder.decode(reply.get("args"))
        kwargs = decoder.decode(reply.get("kwargs"))
        if not isinstance(args, tuple) or not isinstance(kwargs, dict):
            raise ProtocolError(f"bad {kind} arguments")
        self._sync(decoder, reply.get("sync", []), refs)
        return args, kwargs

    def _take_report(
        self,
        reply: dict,
        blobs: list[memoryview],
        refs: dict[int, Any],
        observers: dict,
        deadline: float,
        failures: list[Exception],
    ) -> float:
        """Show the observer the worker named (`WorkerFunction.reporting_to`) the arguments
        of one call of its function, after the call's changes to its own arguments so far
        reach what `inplace` names, as for a callback; the seconds it ran. Its return value
        goes nowhere, and what it raises is kept in `failures` for the end of the call."""
        ident = reply.get("id")
        if not _known(ident, observers):
            raise ProtocolError("bad report id")
        args, kwargs = self._arguments_of(reply, blobs, refs, deadline, "report")
        started = time.monotonic()
        self._observing = True
        try:
            observers[ident](*args, **kwargs)
        except Exception as error:  # the check's own: it fails the check, after the call
            failures.append(error)
        finally:
            self._observing = False
        return time.monotonic() - started

    def _remote(self, handle: Handle) -> RemoteObject:
        """The stand-in for an object the worker sent: its class name is safe to show, and
        it lists only method names a check could call."""
        safe = Handle(handle.id, one_line(handle.cls, 100), _method_names(handle.methods))
        return RemoteObject(self, safe, self.generation)


@functools.cache
def _worker_roots() -> tuple[str, ...]:
    """What a worker may read: the same for every worker this process starts."""
    return tuple(readable_roots(WORKER_PACKAGE))


def _move_into_group(group: WorkerGroup, pid: int, channel: Channel) -> None:
    """Move the new worker into its cgroup, then tell it to go on (it waits for this before
    it starts anything). Done here, on a thread, where the worker cannot join by itself at
    no cost (cgroup v2: a move costs the kernel a grace period, 5-15 ms, that the worker's
    own start-up can hide); the worker is running the grader's code until then, never the
    student's. Whether it joined, the trusted side checks for itself (`_group_state`)."""
    with contextlib.suppress(OSError):
        group.join(pid)
    with contextlib.suppress(ChannelClosed, ChannelTimeout):
        channel.send({"op": "grouped"}, deadline=time.monotonic() + 5)


def _kill_tree(root: int) -> None:
    """Send SIGKILL to process `root`, its process group and every process below it."""
    for _ in range(3):  # descendants may fork while we look; setsid ones leave the group
        for pid in descendants(root):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(root, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(root, signal.SIGKILL)  # a fork may not have its own group yet


def _finish_closing(
    process: subprocess.Popen | ForkedWorker | None,
    group: WorkerGroup | None,
    folder: ScratchFolder | None,
) -> None:
    """What is left of a closed sandbox once its worker is killed (`Sandbox.close`). A
    forked worker's template reaps it by itself: asked to wait, it would hold up the next
    grade's request for as long as the worker takes to end."""
    if isinstance(process, ForkedWorker):
        process.server.forget(process.pid)
    elif process is not None:
        process.wait()
    if group is not None:
        group.remove()
    if folder is not None:
        folder.remove()


def _await_exit(pid: int, seconds: float) -> None:
    """Wait up to `seconds` for process `pid` to exit (become a zombie); Linux only."""
    stat = Path(f"/proc/{pid}/stat")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                return
        except (OSError, IndexError):
            return
        time.sleep(0.002)


def descendants(root: int) -> list[int]:
    """Every live process below `root` in the process tree (from /proc; empty elsewhere).

    Walks down from `root` through each task's `children` file: a few reads, where reading
    every process's `stat` costs milliseconds on a busy machine and a grade asks three times.
    Kernels without those files get the full scan.
    """
    if not _CHILDREN_FILES:
        return _descendants_by_scan(root)
    found, queue = [], [root]
    while queue:
        parent = queue.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children", "rb") as listing:
                    children = [int(pid) for pid in listing.read().split()]
            except (OSError, ValueError):
                continue
            found += children
            queue += children
    return found


def _descendants_by_scan(root: int) -> list[int]:
    """`descendants` from every process's parent, for kernels without `children` files."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        entries = []
    for name in entries:
        if not name.isdigit():
            continue
        parent = _parent_pid(f"/proc/{name}/stat")
        if parent is not None:
            children.setdefault(parent, []).append(int(name))
    found, queue = [], [root]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


_CHILDREN_FILES = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def _parent_pid(stat: str) -> int | None:
    """The parent's pid in a /proc/PID/stat file, or None if the process is gone. Read with
    one system call, not through a text file object: a grade's teardown reads every
    process's (several times), on machines running hundreds."""
    try:
        fd = os.open(stat, os.O_RDONLY)
    except OSError:
        return None
    try:
        return int(os.read(fd, 4096).rsplit(b")", 1)[1].split(None, 2)[1])
    except (OSError, IndexError, ValueError):
        return None
    finally:
        os.close(fd)


def _handle_of(value: Any) -> Handle | None:
    """The handle behind a remote object passed back into the worker, else None."""
    return value._live_handle() if isinstance(value, RemoteObject) else None


def _method_names(names: Any) -> tuple[str, ...]:
    """The identifiers among the method names a worker listed (a check calls no other)."""
    return tuple(
        name
        for name in _listed(names)[:MAX_METHODS]
        if isinstance(name, str) and len(name) <= 100 and name.isidentifier()
    )


def _listed(value: Any) -> list:
    """`value` if the worker sent a list (of anything), else an empty one."""
    return value if isinstance(value, list | tuple) else []


def _known(key: Any, table: dict[int, Any]) -> bool:
    """Whether the worker named an entry of `table` (an int: anything else may not hash)."""
    return type(key) is int and key in table


def _refused_message(label: str, error: ProtocolError) -> str:
    return f"{label} sent back data the grader refuses ({one_line(error, 300)})."


def _sync_resolver(refs: dict[int, Any], writable: set[int]) -> Callable[[int], Any]:
    """How a sync entry's reference to an argument of the call resolves: to that argument
    where `inplace` reaches it (a named dict keeps its own arrays), else to a copy, so that
    an argument `inplace` does not name never becomes reachable from one it does, where a
    later change (a callback's, a report's, the next call's, the check's own) would reach it."""

    def resolve(ref: int) -> Any:
        if ref not in refs:
            raise ProtocolError("unknown reference")
        value = refs[ref]
        return value if id(value) in writable else _detached(value, {})

    return resolve


def _detached(value: Any, memo: dict[int, Any]) -> Any:
    """A copy of `value`'s arrays, dicts, lists and tuples (the same shape of sharing within
    it); anything else as it is."""
    key = id(value)
    if key in memo:
        return memo[key]
    if isinstance(value, np.ndarray):
        copied: Any = np.array(value, copy=True)
        memo[key] = copied
    elif isinstance(value, dict):
        copied = memo[key] = {}
        for k, v in value.items():
            copied[k] = _detached(v, memo)
    elif isinstance(value, list):
        copied = memo[key] = []
        copied.extend(_detached(v, memo) for v in value)
    elif type(value) is tuple:
        copied = tuple(_detached(v, memo) for v in value)
    else:
        return value
    return copied


_SYNCABLE = (np.ndarray, dict, list)


class Inplace:
    """`Sandbox.inplace`'s block: `objects` join the sandbox's list while it is open (a
    class, not a generator: a check may open one for each of hundreds of calls)."""

    __slots__ = ("_depth", "_names", "_objects")

    def __init__(self, names: list[Any], objects: tuple[Any, ...]) -> None:
        self._names = names
        self._objects = objects
        self._depth = 0

    def __enter__(self) -> None:
        self._depth = len(self._names)
        self._names.extend(self._objects)

    def __exit__(self, *exc: object) -> None:
        del self._names[self._depth :]


def _reachable(roots: list[Any]) -> set[int]:
    """The ids of `roots` and of every array, dict and list inside them (the arrays of a
    dict, the usual case, without a turn of the loop each)."""
    found: set[int] = set()
    pending = list(roots)
    while pending:
        value = pending.pop()
        key = id(value)
        if key in found:
            continue
        kind = type(value)
        if kind is np.ndarray:
            found.add(key)
        elif kind is dict or isinstance(value, dict):
            found.add(key)
            for item in value.values():
                if type(item) is np.ndarray:
                    found.add(id(item))
                else:
                    pending.append(item)
        elif kind is list or isinstance(value, list):
            found.add(key)
            pending.extend(value)
        elif isinstance(value, np.ndarray):
            found.add(key)
    return found


def _apply_update(original: Any, current: Any) -> None:
    """Write a change the student's code made to an argument back into the caller's object."""
    if isinstance(original, np.ndarray):
        if isinstance(current, np.ndarray) and current.shape == original.shape:
            original[...] = current
    elif isinstance(original, dict) and isinstance(current, dict):
        original.clear()
        original.update(current)
    elif isinstance(original, list) and isinstance(current, list):
        original[:] = current


def _call_label(handle: Handle, name: str | None) -> str:
    if name is None:
        return f"{handle.cls}()"
    if handle.id == 0:
        return f"{name}()"
    return f"{handle.cls}.{name}()"


def _missing_message(handle: Handle, name: str, source: str) -> str:
    if handle.id == 0:
        return f"{source} does not define `{name}` (check the spelling against the README)."
    return (
        f"{handle.cls} objects have no attribute `{name}` (set it in the method the README names)."
    )


def _import_message(source: str, notebook: bool, error: StudentException) -> str:
    if error.type_name == "NotImplementedError":
        doing = "running its code cells" if notebook else "importing it"
        return f"{source} is not implemented yet ({doing} raises NotImplementedError)."
    if notebook:  # "running the code cells of hw3.ipynb raised ... (hw3.ipynb, cell 7, line 3)."
        return error.message
    return f"{source} could not be imported: {error.raised}."


def _exit_description(code: int | None) -> str:
    if code is None:
        return "it was already stopped"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hints = {
            "SIGXCPU": "CPU time limit exceeded",
            "SIGXFSZ": "file size limit exceeded",
            "SIGSEGV": "segmentation fault",
            "SIGKILL": "killed",
        }
        return f"{name}: {hints.get(name, 'killed by a signal')}"
    return f"it exited with code {code}: do not call sys.exit/os._exit in a submission"


class RemoteObject:
    """A local stand-in for an object in the worker; its own methods never run student code.

    A method, once asked for, is kept in the stand-in's `__dict__`, where attribute lookup
    finds it without a call (`__getattr__` costs more than a small call's other work: the
    interpreter raises and clears an AttributeError first); whether the object is still
    alive, and whether a restarted module still lists it, is checked when it is called.
    """

    __slots__ = ("__dict__", "_generation", "_handle", "_sandbox")

    def __init__(self, sandbox: Sandbox, handle: Handle, generation: int) -> None:
        object.__setattr__(self, "_sandbox", sandbox)
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "_generation", generation)

    def _live_handle(self) -> Handle:
        sandbox: Sandbox = self._sandbox
        handle = self._handle
        if handle.id == 0:  # the module: its worker's (`module_handle`, inlined: every call)
            current = sandbox._module_handle
            if current is None or sandbox.import_failure is not None:
                current = sandbox.module_handle()
            return current
        if self._generation != sandbox.generation:
            raise StudentError(
                f"this {handle.cls} object was lost when the worker restarted after an "
                "earlier failure."
            )
        return handle

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        handle = self._live_handle()
        if name not in handle.methods:
            return self._sandbox.getattr(handle, name)
        method = RemoteMethod(self, name, handle)
        object.__getattribute__(self, "__dict__")[name] = method
        return method

    def __setattr__(self, name: str, value: Any) -> None:
        self._sandbox.setattr(self._live_handle(), name, value)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._sandbox.call(self._live_handle(), None, args, kwargs)

    def __repr__(self) -> str:
        return f"<{self._handle.cls} object in the sandbox>"

    def __bool__(self) -> bool:
        return True


class RemoteMethod:
    """A method or function of a remote object, called in the worker."""

    __slots__ = ("_function", "_label", "_listed", "_name", "_owner")

    def __init__(self, owner: RemoteObject, name: str, listed: Handle) -> None:
        self._owner = owner
        self._name = name
        self._listed = listed  # the handle that lists it as a method
        self._label = _call_label(owner._handle, name)  # the module's: "name()", any handle
        self._function = function_of(self._label)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        owner = self._owner
        handle = owner._live_handle()
        if handle is not self._listed:  # the module, in a worker started since
            if self._name not in handle.methods:  # as the attribute lookup would have found
                return owner._sandbox.getattr(handle, self._name)(*args, **kwargs)
            self._listed = handle
        return owner._sandbox.call(handle, self._name, args, kwargs, self._label, self._function)

    def __repr__(self) -> str:
        return f"<{self._owner._handle.cls}.{self._name} in the sandbox>"


class SubmissionProxy(RemoteObject):
    """The `student` fixture: the submission's module, plus `errstate` for stability checks
    and `inplace` for checks of in-place rules."""

    __slots__ = ()

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(sandbox, Handle(0, sandbox.module, ()), 0)

    @contextlib.contextmanager
    def errstate(self, **settings: str) -> Iterator[None]:
        """Like `np.errstate`, but in the worker: e.g. `over="raise"` makes overflow an error."""
        sandbox: Sandbox = self._sandbox
        previous = sandbox.seterr(settings)
        generation = sandbox.generation
        try:
            yield
        finally:
            if sandbox.generation == generation and sandbox.import_failure is None:
                with contextlib.suppress(StudentError):
                    sandbox.seterr(previous)

    def inplace(self, *objects: Any) -> Inplace:
        """`with student.inplace(params): optimizer.update(params, grads)` writes the worker's
        in-place changes to `params` (and the arrays in it) back into `params`: when the call
        returns, and before each function the call is given is called back, so that a
        function reading `params` through a closure sees what the call has done so far.

        Outside such a block no call changes an argument the check passed: the worker works
        on copies, and what it did to them stays there. Name only what the check tests an
        in-place rule on, and compute references on arrays not named here (a copy taken
        before the call), so a submission's writes can never reach a reference's inputs.
        What comes back is the worker's account of its own arrays, which a submission that
        patches the worker can falsify: prefer evidence the check receives as data (the
        points a callback is called at) where there is any.
        """
        return self._sandbox.inplace(objects)

    def harness(self, function: str, *args: Any, label: str) -> Any:
        """Run `function` of the worker-side `torch_harness` (see `Sandbox.harness`)."""
        return self._sandbox.harness(function, args, label)

    def run(self, function: WorkerFunction, *args: Any, label: str) -> Any:
        """`student.run(trajectory, optimizer, params, grads, label="Adam.update()")` runs the
        `@runs_in_worker` function `trajectory` in the worker on those arguments, in one call
        (see `Sandbox.run`). Its result is the worker's account, as `inplace`'s is: compare
        it with what the trusted side computes, never trust what it says of itself."""
        return self._sandbox.run(function, args, label)

    def __repr__(self) -> str:
        return f"<submission {self._handle.cls}.py in the sandbox>"
