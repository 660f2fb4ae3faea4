"""Long-lived grading processes for a batch: each grades one submission after another.

A `Pool` keeps N processes busy. Each is `python -c` running `worker_main`: it imports torch
once, starts a fork server (`grader.sandbox.forkserver`), activates the batch's reference
cache, then grades the students it is sent with `grader.runner.grade` (every submission
still gets its own sandboxed worker, forked from the template instead of started anew) and
replies with the JSON report, the requested extra formats, or a status and message for a
submission that could not be graded. The pool's watchdog stops a process that runs past its
time and reports a process that dies; either costs one student a row, never the batch. The
processes run in their own session (Ctrl-C is the batch's to handle) and, on Linux, receive
SIGTERM when the batch dies, even by kill -9.

This module knows nothing of result files or gradebooks: `grader.batch` does.
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from grader import cleanup
from grader.course import Course
from grader.errors import BadInput, GraderError
from grader.lms import Person
from grader.refcache import CacheStats, ReferenceCache, activate
from grader.report import FORMATS
from grader.runner import grade
from grader.sandbox.libc import die_with_parent
from grader.sandbox.limits import Limits
from grader.sandbox.placement import prefer_slot
from grader.sandbox.proxy import use_fork_server

STARTUP_TIMEOUT_S = 180.0
READY = {"op": "ready"}
GRADER_ROOT = str(Path(__file__).resolve().parent.parent)
WORKER_BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from grader.pool import worker_main; worker_main(*map(int, sys.argv[2:]))"
)
TASKS_PER_WORKER = 200
STOP_WAIT_S = 5.0
MORE_POLL_S = 0.5


@dataclass(frozen=True)
class Student:
    """One child of the submissions folder: a name, its path, and why it cannot be graded
    (when the batch already knows, e.g. it is a link); `shown` is the name as rows show it
    and `stem` the file name of its results (see `grader.roster`)."""

    name: str
    path: Path
    problem: str = ""
    shown: str = ""
    stem: str = ""
    files: tuple[tuple[str, str], ...] = ()
    """For files of a bulk download (`path` is then its folder): (name there, name graded
    under) of each; the batch copies them into a folder of their own before grading."""
    people: tuple[Person, ...] = ()
    """Who handed it in, as the LMS export that held it says (Canvas or Gradescope ids)."""


@dataclass(frozen=True)
class WorkerConfig:
    """What a grading process needs; sent once when it starts (pickled: trusted data only)."""

    course_root: Path
    assignment: str
    seed: int
    device: str
    public_only: bool
    limits: Limits
    formats: tuple[str, ...]
    cache_dir: Path | None
    cache_enabled: bool
    threads: int
    parent_pid: int
    grade_function: Callable[..., Any] = grade
    journal_dir: Path | None = None
    report_checks: bool = False
    """Send `{"op": "check", "name": ..., "hidden": ...}` as each check starts (the service
    shows the running check); `Pool.run`'s `on_check` hears it."""


@dataclass
class Job:
    """One student handed to the pool; `started` is when a ready process began grading it."""

    student: Student
    fingerprint: dict[str, str]
    started: float = 0.0


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGTERM this process when the batch dies (even by kill -9)."""
    die_with_parent(signal.SIGTERM)
    if os.getppid() != parent_pid:
        os._exit(0)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def worker_main(fd: int, slot: int = 0, slots: int = 1) -> None:
    """A grading process: grade the students it is sent, one at a time, until told to stop.

    It reads the batch's `sys.path` and then its `WorkerConfig` from the socket `fd`, then
    answers one reply per student. SIGTERM (from the batch, or from Linux when the batch
    dies) interrupts the grade in progress, which kills its sandbox on the way out. It is
    number `slot` of the pool's `slots` processes: its workers run on that slot's CPU.
    """
    prefer_slot(slot, slots)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _interrupt)
    conn = multiprocessing.connection.Connection(fd)
    try:
        sys.path[:] = list(dict.fromkeys([*conn.recv(), *sys.path]))
        config: WorkerConfig = conn.recv()
        _die_with_parent(config.parent_pid)
        use_fork_server()  # each student's worker is forked, not started from scratch
        import torch

        torch.set_num_threads(config.threads)
        cache = ReferenceCache(config.cache_dir, enabled=config.cache_enabled)
        activate(cache)
        course = Course(config.course_root)
        conn.send(READY)
        while True:
            task = conn.recv()
            if task is None:
                conn.close()
                cleanup.finish()  # the last grade's folders and cgroup, which exit leaves
                os._exit(0)  # nothing left to flush; skip the interpreter's slow teardown
            before = CacheStats(**asdict(cache.stats))
            reply = _grade_one(task, config, course, _check_reporter(conn, config))
            reply["cache"] = {k: v - getattr(before, k) for k, v in asdict(cache.stats).items()}
            conn.send(reply)
    except (KeyboardInterrupt, EOFError, OSError):
        return


def _check_reporter(
    conn: multiprocessing.connection.Connection, config: WorkerConfig
) -> dict[str, Any]:
    """The keyword argument (`on_start`) that tells the pool each check as it starts, when
    `report_checks` asks for it; none otherwise."""
    if not config.report_checks:
        return {}

    def on_start(name: str, limit: float, budget: float | None, hidden: bool) -> None:
        conn.send({"op": "check", "name": name, "hidden": hidden})

    return {"on_start": on_start}


def _grade_one(
    student: Student, config: WorkerConfig, course: Course, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Grade one student; every failure becomes a reply with a status and a message.
    `extra`: more keyword arguments for the grade function (an `on_start`)."""
    started = time.monotonic()
    try:
        result = config.grade_function(
            config.assignment,
            student.path,
            course=course,
            seed=config.seed,
            device=config.device,
            public_only=config.public_only,
            limits=config.limits,
            journal_dir=config.journal_dir,
            **(extra or {}),
        )
    except BadInput as error:
        return _failure("rejected", str(error), started)
    except GraderError as error:
        return _failure("error", f"grader error: {error}", started)
    except Exception as error:
        return _failure("error", f"internal grader error: {type(error).__name__}: {error}", started)
    return {
        "status": "graded",
        "message": _grade_message(result.tests) or " ".join(result.notes),
        "report": result.to_dict(),
        "formats": {fmt: FORMATS[fmt](result) for fmt in config.formats},
        "duration_s": time.monotonic() - started,
    }


def _failure(status: str, message: str, started: float) -> dict[str, Any]:
    return {"status": status, "message": message, "duration_s": time.monotonic() - started}


def _grade_message(tests: Iterable[Any]) -> str:
    """A row's message for a graded submission: when every check failed, the one reason (an
    import error) or that they all did; else how many timed out; else nothing."""
    tests = list(tests)
    if tests and all(t.status != "passed" for t in tests):
        messages = {t.message for t in tests}
        return messages.pop() if len(messages) == 1 else f"all {len(tests)} checks failed"
    timeouts = sum(t.status == "timeout" for t in tests)
    return f"{timeouts} check(s) timed out" if timeouts else ""


class GradingProcess:
    """The batch's handle on one grading process (`python -c` running `worker_main`)."""

    def __init__(self, config: WorkerConfig, log: Path, slot: int = 0, slots: int = 1) -> None:
        """`slot` of `slots`: which of the pool's processes this is (see `prefer_slot`)."""
        ours, theirs = socket.socketpair()
        self.log = log
        self.slot = slot
        log.parent.mkdir(parents=True, exist_ok=True)
        numbers = [str(theirs.fileno()), str(slot), str(slots)]
        with log.open("ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-c", WORKER_BOOTSTRAP, GRADER_ROOT, *numbers],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        theirs.close()
        self.conn = multiprocessing.connection.Connection(ours.detach())
        self.conn.send(sys.path)
        self.conn.send(config)
        self.task: Job | None = None
        self.ready = False
        self.deadline = time.monotonic() + STARTUP_TIMEOUT_S
        self.done = 0

    def send(self, task: Job, timeout_s: float) -> None:
        """Hand over a student; the watchdog counts from now, or from when the process is
        ready if it is still starting (importing torch is not the submission's time)."""
        self.task = task
        if self.ready:
            self.start_clock(timeout_s)
        self.conn.send(task.student)

    def start_clock(self, timeout_s: float) -> None:
        assert self.task is not None
        self.task.started = time.monotonic()
        self.deadline = self.task.started + timeout_s

    def ask_to_stop(self) -> None:
        """Ask an idle process to exit; SIGTERM a busy one (it cleans up its sandbox)."""
        if self.task is None:
            with contextlib.suppress(OSError):
                self.conn.send(None)
                return
        with contextlib.suppress(OSError):
            self.process.terminate()

    def wait_or_kill(self, deadline: float) -> None:
        """Wait for the process to exit until `deadline`, then SIGKILL it."""
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                self.process.kill()
            self.process.wait()
        self.conn.close()

    def stop(self, wait_s: float = STOP_WAIT_S) -> None:
        self.ask_to_stop()
        self.wait_or_kill(time.monotonic() + wait_s)

    def last_words(self) -> str:
        """The last line the process wrote to its log (why it died, if it said)."""
        with contextlib.suppress(OSError):
            lines = self.log.read_text(errors="replace").strip().splitlines()
            if lines:
                return lines[-1][-300:]
        return ""


class Slots:
    """Numbers for the grading processes this process runs, the lowest free first: each
    process's workers run on the CPU its number picks (`prefer_slot`), so the processes of
    one pool, and of several pools side by side (the service's, one per assignment), spread
    over the CPUs instead of pinning onto one by chance."""

    def __init__(self) -> None:
        self._taken: set[int] = set()
        self._lock = threading.Lock()  # the service runs a pool per assignment, on threads

    def take(self) -> int:
        with self._lock:
            slot = next(n for n in range(len(self._taken) + 1) if n not in self._taken)
            self._taken.add(slot)
            return slot

    def give_back(self, slot: int) -> None:
        with self._lock:
            self._taken.discard(slot)


_SLOTS = Slots()


class Pool:
    """N grading processes fed one student at a time, with a watchdog on each.

    Processes left idle after `run` are kept for the next `run` (a cluster node grades one
    student per call); `close` (or leaving the `with`) stops them.
    """

    def __init__(self, jobs: int, config: WorkerConfig, timeout_s: float, logs: Path) -> None:
        self.jobs = jobs
        self.config = config
        self.timeout_s = timeout_s
        self.logs = logs
        self.workers: list[GradingProcess] = []
        self.idle: list[GradingProcess] = []
        self.started = 0

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run(
        self,
        tasks: Iterable[Job],
        on_reply: Callable[[Job, dict], None],
        more: Callable[[int], list[Job]] | None = None,
        on_check: Callable[[Job, str, bool], None] | None = None,
    ) -> None:
        """Grade `tasks`, calling `on_reply` as each ends. With `more`, the pool keeps taking
        work: `more(free)` is asked for up to `free` new jobs whenever a process is free (all
        of them free: nothing is left, so it may wait for work); the run ends when it returns
        none while nothing is left. `on_check(job, name, hidden)` hears each check start
        (with `WorkerConfig.report_checks`). On any exception (Ctrl-C, a process that cannot
        start) every process is stopped before it propagates; otherwise idle ones are kept."""
        queue = deque(tasks)
        busy: list[GradingProcess] = []
        try:
            while True:
                free = self.jobs - len(queue) - len(busy)
                if more is not None and free > 0:
                    queue.extend(more(free))
                if not (queue or busy):
                    break
                while queue and len(busy) < self.jobs:
                    worker = self.idle.pop() if self.idle else self._start()
                    try:
                        worker.send(queue[0], self.timeout_s)
                    except OSError:
                        self._discard(worker)  # it died while idle; a fresh one takes over
                        continue
                    queue.popleft()
                    busy.append(worker)
                now = time.monotonic()
                wait_s = max(0.0, min(w.deadline for w in busy) - now)
                if more is not None:
                    wait_s = min(wait_s, MORE_POLL_S)  # a free process looks for new work
                multiprocessing.connection.wait([w.conn for w in busy], timeout=wait_s)
                for worker in list(busy):
                    reply = self._poll(worker, on_check)
                    if reply is None:
                        continue
                    task = worker.task
                    assert task is not None
                    busy.remove(worker)
                    if reply.get("status") in ("crashed", "timeout"):
                        self._discard(worker)
                    else:
                        worker.task, worker.deadline = None, float("inf")
                        worker.done += 1
                        if worker.done >= TASKS_PER_WORKER:
                            self._discard(worker)
                        else:
                            self.idle.append(worker)
                    on_reply(task, reply)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop every process: idle ones are asked to exit, busy ones are terminated."""
        for worker in self.workers:
            worker.ask_to_stop()
        deadline = time.monotonic() + STOP_WAIT_S
        for worker in self.workers:
            worker.wait_or_kill(deadline)
            _SLOTS.give_back(worker.slot)
        self.workers = []
        self.idle = []

    def _start(self) -> GradingProcess:
        self.started += 1
        slot = _SLOTS.take()
        log = self.logs / f"worker-{self.started}.log"
        try:
            worker = GradingProcess(self.config, log, slot, max(self.jobs, slot + 1))
        except BaseException:
            _SLOTS.give_back(slot)
            raise
        self.workers.append(worker)
        return worker

    def _discard(self, worker: GradingProcess) -> None:
        """Stop a process that timed out, died or has graded its share."""
        worker.stop(wait_s=1.0)
        self.workers.remove(worker)
        _SLOTS.give_back(worker.slot)
        if not worker.ready:
            raise GraderError(self._failed_start(worker))

    def _failed_start(self, worker: GradingProcess) -> str:
        """Why no grading process can start: not any submission's fault, so the batch stops."""
        said = worker.last_words()
        return (
            f"a grading process could not start ({_describe_exit(worker.process.returncode)})"
            + (f": {said}" if said else "")
            + f"; see {worker.log}"
        )

    def _poll(
        self, worker: GradingProcess, on_check: Callable[[Job, str, bool], None] | None = None
    ) -> dict | None:
        """The worker's reply if its grade ended (however it ended), else None; a check
        that started is told to `on_check` on the way."""
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                if isinstance(message, dict) and message.get("op") == "check":
                    if on_check is not None and worker.task is not None:
                        on_check(worker.task, str(message["name"]), bool(message["hidden"]))
                    continue
                if message != READY:
                    return message
                worker.ready = True
                worker.start_clock(self.timeout_s)
        except (EOFError, OSError):
            pass
        else:
            if worker.process.poll() is None:
                if time.monotonic() < worker.deadline:
                    return None
                if not worker.ready:
                    worker.stop(wait_s=1.0)
                    raise GraderError(
                        f"a grading process did not start within {STARTUP_TIMEOUT_S:g} s"
                    )
                return {
                    "status": "timeout",
                    "message": f"grading did not finish within {self.timeout_s:g} s; "
                    "the grading process was stopped",
                    "duration_s": self.timeout_s,
                }
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.process.wait(1.0)
        if not worker.ready:
            raise GraderError(self._failed_start(worker))
        said = worker.last_words()
        started = worker.task.started if worker.task else time.monotonic()
        return {
            "status": "crashed",
            "message": f"the grading process died ({_describe_exit(worker.process.returncode)}) "
            "while grading this submission" + (f": {said}" if said else ""),
            "duration_s": time.monotonic() - started,
        }


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"
