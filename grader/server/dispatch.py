"""Grading on the server: queued submissions go to the batch engine's executor.

One thread per assignment with work runs an executor (`grader.executor`) and keeps feeding
it from the database: by default the batch pool on this machine (`grader.pool`: long-lived
processes that import torch once, fork each sandboxed worker from a template, share the
reference cache), or with `grade serve --cluster` a Ray cluster's nodes (`grader.cluster`,
the same sandbox on each). A submission is claimed (`running`) as it is handed
to a process; its result row and its final status are committed in one transaction, once
per (submission, grade fingerprint). Submissions left `running` by a server that died are
queued again (`grader.server.claims`: at start, and on PostgreSQL, where several servers may
share the queue, while serving too); the grade's journal lets the checks it had finished
stand. On PostgreSQL the dispatcher also looks every `WATCH_S` for work that other servers
received. Stopping (SIGTERM) claims nothing new and lets the grades in progress finish.

The web process never imports a submission: only the pool's processes (or the nodes') grade.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from grader.batch import WATCHDOG_GRACE_S
from grader.course import Course
from grader.executor import Executor, LocalExecutor, Placement
from grader.fingerprint import grade_fingerprint
from grader.pool import Job, Student, WorkerConfig
from grader.runner import DEFAULT_SEED
from grader.safetext import one_line
from grader.server.claims import SWEEP_S, Claims
from grader.server.db import Result, Submission

log = logging.getLogger("grader.server")
KEEP_WARM_S = 300.0
WATCH_S = 2.0


def fingerprint_key(course: Course, assignment: str, device: str) -> str:
    """One string for what decides a grade besides the submission (checks, grader, options)."""
    spec = course.assignment(assignment)
    identity = grade_fingerprint(spec, DEFAULT_SEED, device, False, spec.limits)
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def placed(reply: dict[str, Any], placement: Placement) -> dict[str, Any]:
    """The reply with where its grade ran in its report: the cluster node that graded it
    (`node`, which only staff see) and the placement's notes (a GPU assignment graded on a
    cluster without GPUs), which every report of it carries."""
    report = reply.get("report")
    if not isinstance(report, dict) or not (placement.notes or "node" in reply):
        return reply
    report = dict(report)
    if "node" in reply:
        report["node"] = one_line(str(reply["node"]))
    notes = list(report.get("notes", []))
    report["notes"] = notes + [note for note in placement.notes if note not in notes]
    return {**reply, "report": report}


class Dispatcher:
    """Feeds queued submissions to one executor per assignment (see the module docstring).
    `executor` makes each one (default: a pool of `jobs` grading processes here)."""

    def __init__(
        self,
        engine: Engine,
        course: Course,
        data: Path,
        jobs: int,
        device: str,
        on_change: Callable[[int], None] | None = None,
        executor: Callable[[], Executor] | None = None,
    ) -> None:
        self.engine = engine
        self.executor = executor or (lambda: LocalExecutor(jobs))
        self.on_change = on_change
        self.course = course
        self.data = data
        self.jobs = jobs
        self.device = device
        self.lock = threading.Lock()
        self.threads: dict[str, threading.Thread] = {}
        self.wakeups: dict[str, threading.Event] = {}
        self.stopping = threading.Event()
        self.claims = Claims(engine)
        self.watcher: threading.Thread | None = None

    def start(self) -> None:
        """Requeue interrupted grades and start grading everything queued."""
        self.claims.hold()
        self._requeue_orphans()
        self._notify_queued()
        if self.claims.shared:
            self.watcher = threading.Thread(target=self._watch, name="watch-queue", daemon=True)
            self.watcher.start()

    def _requeue_orphans(self) -> None:
        requeued = self.claims.requeue_orphans()
        if requeued:
            log.warning("requeued %d submission(s) interrupted by a stop", requeued)

    def _notify_queued(self) -> None:
        with Session(self.engine) as session:
            names = session.scalars(
                select(Submission.assignment).where(Submission.status == "queued").distinct()
            ).all()
        for name in names:
            self.notify(name)

    def _watch(self) -> None:
        """Several servers on one queue: take up work the others received, and requeue the
        claims of servers that died."""
        swept = time.monotonic()
        while not self.stopping.wait(WATCH_S):
            try:
                if time.monotonic() - swept >= SWEEP_S:
                    swept = time.monotonic()
                    self._requeue_orphans()
                self._notify_queued()
            except Exception:
                log.exception("watching the queue failed; trying again")

    def notify(self, assignment: str) -> None:
        """New work for `assignment`: wake its pool, or start one."""
        if self.stopping.is_set():
            return
        with self.lock:
            thread = self.threads.get(assignment)
            if thread is not None:
                self.wakeups[assignment].set()
                return
            self.wakeups[assignment] = threading.Event()
            self.wakeups[assignment].set()
            thread = threading.Thread(
                target=self._run, args=(assignment,), name=f"grade-{assignment}", daemon=True
            )
            self.threads[assignment] = thread
            thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Claim nothing new; wait for the grades in progress to finish."""
        self.stopping.set()
        with self.lock:
            threads = list(self.threads.values())
            for event in self.wakeups.values():
                event.set()
        for thread in threads:
            thread.join(timeout_s)
        if self.watcher is not None:
            self.watcher.join(timeout_s)
        self.claims.release()

    # -- one assignment's pool -----------------------------------------------------------------

    def _run(self, assignment: str) -> None:
        try:
            while True:
                self._serve(assignment)
                with self.lock:
                    if self.stopping.is_set() or not self.wakeups[assignment].is_set():
                        del self.threads[assignment]
                        return
        except Exception:
            log.exception("grading %s stopped; its submissions wait for the next one", assignment)
            self.claims.requeue_own(assignment)
            with self.lock:
                self.threads.pop(assignment, None)

    def _serve(self, assignment: str) -> None:
        spec = self.course.assignment(assignment)
        executor = self.executor()
        placement = executor.place(spec, self.device)
        config = WorkerConfig(
            course_root=self.course.root,
            assignment=assignment,
            seed=DEFAULT_SEED,
            device=placement.device,
            public_only=False,
            limits=spec.limits,
            formats=(),
            cache_dir=self.data / "cache" / "reference",
            cache_enabled=True,
            threads=max(1, (os.cpu_count() or 1) // placement.jobs),
            parent_pid=os.getpid(),
            journal_dir=self.data / "journal",
            report_checks=True,
        )
        timeout_s = spec.limits.total_timeout_s + spec.limits.import_timeout_s + WATCHDOG_GRACE_S
        wakeup = self.wakeups[assignment]
        fingerprints: dict[int, str] = {}

        def more(free: int) -> list[Job]:
            """Up to `free` claimed submissions; when none is being graded, wait for work
            (up to KEEP_WARM_S, then the executor's processes are let go)."""
            idle = not fingerprints
            while not self.stopping.is_set():
                if not wakeup.is_set() and not (idle and wakeup.wait(KEEP_WARM_S)):
                    return []
                wakeup.clear()
                claimed = self._claim(assignment, free)
                if len(claimed) == free:
                    wakeup.set()  # there may be more
                if claimed:
                    return self._jobs(assignment, claimed, fingerprints, placement.device)
                if not idle:
                    return []
            return []

        def record(job: Job, reply: dict[str, Any]) -> None:
            submission_id = int(job.student.name)
            self._record(submission_id, fingerprints.pop(submission_id), placed(reply, placement))

        def check(job: Job, name: str, hidden: bool) -> None:
            self._running_check(int(job.student.name), name, hidden)

        # The executor lets its processes go when no work came for KEEP_WARM_S.
        executor.run([], config, timeout_s, self.data / "logs", record, more, on_check=check)

    def _jobs(
        self,
        assignment: str,
        claimed: list[tuple[int, str]],
        fingerprints: dict[int, str],
        device: str,
    ) -> list[Job]:
        key = fingerprint_key(self.course, assignment, device)
        jobs = []
        for submission_id, folder in claimed:
            fingerprints[submission_id] = key
            name = str(submission_id)
            path = self.data / "submissions" / folder
            jobs.append(Job(Student(name, path, shown=name, stem=name), {}))
        return jobs

    def _claim(self, assignment: str, count: int) -> list[tuple[int, str]]:
        claimed = self.claims.claim(assignment, count)
        for submission_id, _ in claimed:
            self._changed(submission_id)
        return claimed

    def _running_check(self, submission_id: int, name: str, hidden: bool) -> None:
        """Record the check a grade has started (the status API shows it)."""
        with Session(self.engine) as session:
            session.execute(
                update(Submission)
                .where(Submission.id == submission_id, Submission.status == "running")
                .values(running_check=one_line(name, 200), running_hidden=hidden)
            )
            session.commit()
        self._changed(submission_id)

    def _changed(self, submission_id: int) -> None:
        if self.on_change is not None:
            self.on_change(submission_id)

    def _record(self, submission_id: int, key: str, reply: dict[str, Any]) -> None:
        """Commit the result and the submission's status together, once per fingerprint."""
        status = str(reply.get("status", "error"))
        message = one_line(reply.get("message", ""), 2000)
        report = reply.get("report") or {}
        with Session(self.engine) as session:
            submission = session.get(Submission, submission_id)
            if submission is None:
                return
            exists = session.scalar(
                select(Result.id).where(
                    Result.submission_id == submission_id, Result.fingerprint == key
                )
            )
            if exists is None:
                session.add(
                    Result(
                        submission_id=submission_id,
                        fingerprint=key,
                        status=status,
                        message=message,
                        score=float(report.get("score", 0.0)),
                        max_score=float(report.get("max_score", 0.0)),
                        report=json.dumps(report),
                    )
                )
            submission.status = status
            submission.message = message
            submission.running_check = submission.running_hidden = None
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
        self._changed(submission_id)
