"""The batch's side of grading on Ray: send each submission to the cluster as one task.

`RayExecutor` is an executor (`grader.executor`) for a process connected to a Ray cluster.
`place` reads what one grade takes (`grader.cluster.resources`) and fits it to the
cluster. `run` packs the assignment's course files (and MNIST for an assignment that
trains, when this machine has it) once into Ray's object store, then keeps every slot of
the cluster busy: for each student it makes the same safe copy as local grading
(`grader.submission.prepare`: no links, the same caps; what it refuses is that student's
`rejected` row, with the same message), packs it and starts a task
(`grader.cluster.node.grade_on_node`). Ray retries a task whose worker or node died on
another node (up to `MAX_RETRIES` times); a task lost more often is that student's
`crashed` row, and one that never returns is cancelled past a backstop and is a `timeout`
row, so the batch always ends. A node's reply is JSON text, checked here before it becomes
a row: the nodes run the grader's own code, and the sandbox on each node still isolates
student code from it.

Only the driver writes results: a task that runs twice (retried after its node died) is
recorded once, so the gradebook is the one an undisturbed run writes; a driver killed
mid-batch loses the tasks in flight, and rerunning resumes from results/ like a local batch.

The grading service runs its queue through the same `run`, handing it work as students
submit (`more`); the course files are checked again with each new work, so a check fixed
while the service runs reaches the nodes.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import re
import secrets
import statistics
import time
import tomllib
from pathlib import Path
from typing import Any

from grader import __version__
from grader.atomicfile import write_atomic
from grader.cluster.node import NodeBatch, NodeStudent, Shipment, grade_on_node
from grader.cluster.resources import TaskResources, place_on
from grader.cluster.transfer import Bundle, pack
from grader.course import Assignment
from grader.data.mnist import locate, mnist_folder
from grader.errors import BadInput, GraderError
from grader.executor import More, OnCheck, OnReply, Placement
from grader.pool import MORE_POLL_S, STARTUP_TIMEOUT_S, Job, WorkerConfig
from grader.safetext import one_line
from grader.scratch import ScratchFolder
from grader.submission import prepare

MAX_RETRIES = 3
RESOURCES_EVERY_S = 2.0
STATUSES = ("graded", "rejected", "error", "timeout", "crashed")


class RayExecutor:
    """Grades on the Ray cluster this process is connected to (see the module docstring)."""

    def __init__(self, ray: Any, address: str) -> None:
        self.ray = ray
        self.address = address
        self.assignment: Assignment | None = None
        self.request = TaskResources()
        self.jobs = 0
        self.nodes: collections.Counter[str] = collections.Counter()
        self.overheads: list[float] = []
        self._resources_at = 0.0
        self._device = "cpu"

    # -- the executor ---------------------------------------------------------------------

    def place(self, assignment: Assignment, device: str) -> Placement:
        self.assignment = assignment
        wanted = TaskResources.of(assignment)
        placement, self.request = place_on(
            assignment, wanted, self.ray.cluster_resources(), device, self.address
        )
        self.jobs, self._device = placement.jobs, placement.device
        self._resources_at = time.monotonic()
        return placement

    def run(
        self,
        tasks: list[Job],
        config: WorkerConfig,
        timeout_s: float,
        logs: Path,
        on_reply: OnReply,
        more: More | None = None,
        on_check: OnCheck | None = None,
    ) -> None:
        """See `grader.executor.Executor.run`; a node's grade reports no check as it
        starts (`on_check` is not called), only its reply."""
        assert self.assignment is not None, "place() first"
        batch = self._batch(config, timeout_s)
        remote = self.ray.remote(grade_on_node).options(
            num_cpus=self.request.num_cpus,
            num_gpus=self.request.num_gpus,
            max_retries=MAX_RETRIES,
            retry_exceptions=False,
        )
        backstop_s = (STARTUP_TIMEOUT_S + timeout_s) * (MAX_RETRIES + 1)
        queue = collections.deque(tasks)
        running: dict[Any, tuple[Job, float]] = {}
        try:
            while True:
                free = self._slots() - len(queue) - len(running)
                if more is not None and free > 0:
                    claimed = more(free)
                    if claimed:
                        batch = self._current(batch)
                        queue.extend(claimed)
                if not (queue or running):
                    break
                while queue and len(running) < self._slots():
                    job = queue.popleft()
                    job.started = time.monotonic()
                    files = self._files(job)
                    if isinstance(files, Bundle):
                        student = NodeStudent(
                            job.student.name, job.student.shown, job.student.stem, files
                        )
                        running[remote.remote(batch, student)] = (job, job.started + backstop_s)
                    else:
                        on_reply(job, files)
                if running:
                    poll_s = MORE_POLL_S if more is not None else RESOURCES_EVERY_S
                    self._collect(running, backstop_s, on_reply, poll_s)
        finally:
            for ref in running:
                self.ray.cancel(ref, force=True)

    def _collect(
        self,
        running: dict[Any, tuple[Job, float]],
        backstop_s: float,
        on_reply: OnReply,
        poll_s: float,
    ) -> None:
        """Wait for a task to end (or a backstop to pass, or `poll_s`) and reply for those
        that did; a task past its backstop is cancelled and is a timeout."""
        wait_s = max(0.0, min(d for _, d in running.values()) - time.monotonic())
        done, _ = self.ray.wait(list(running), num_returns=1, timeout=min(wait_s, poll_s))
        for ref in done:
            job, _ = running.pop(ref)
            on_reply(job, self._reply(ref, job))
        for ref, (job, deadline) in list(running.items()):
            if time.monotonic() >= deadline:
                del running[ref]
                self.ray.cancel(ref, force=True)
                message = f"the cluster did not return this grade within {backstop_s:g} s"
                on_reply(job, _lost("timeout", message + "; its task was cancelled", job))

    def describe(self) -> dict[str, Any] | None:
        overhead = (
            {
                "median": round(1000 * statistics.median(self.overheads), 1),
                "max": round(1000 * max(self.overheads), 1),
            }
            if self.overheads
            else None
        )
        return {
            "executor": "ray",
            "address": self.address,
            "slots": self.jobs,
            "task_resources": {
                "num_cpus": self.request.num_cpus,
                "num_gpus": self.request.num_gpus,
            },
            "nodes": dict(sorted(self.nodes.items())),
            "overhead_ms": overhead,
        }

    # -- parts ----------------------------------------------------------------------------

    def _batch(self, config: WorkerConfig, timeout_s: float) -> NodeBatch:
        """What every task shares, with the course (and data) put into the object store."""
        assert self.assignment is not None
        course = course_bundle(self.assignment)
        data = data_bundle(self.assignment)
        return NodeBatch(
            grader_version=__version__,
            assignment=config.assignment,
            seed=config.seed,
            device=config.device,
            public_only=config.public_only,
            limits=config.limits,
            formats=config.formats,
            cache_enabled=config.cache_enabled,
            cache_key=cache_key(config.cache_dir),
            threads=max(1, int(self.request.num_cpus)),
            timeout_s=timeout_s,
            course=Shipment(course.digest, [self.ray.put(course)]),
            data=Shipment(data.digest, [self.ray.put(data)]) if data else None,
            grade_function=config.grade_function,
        )

    def _current(self, batch: NodeBatch) -> NodeBatch:
        """`batch` with the course files as they are now: a service runs for weeks, and the
        staff fix a check and regrade while it runs (the nodes keep each version apart)."""
        assert self.assignment is not None
        course = course_bundle(self.assignment)
        if course.digest == batch.course.digest:
            return batch
        return dataclasses.replace(batch, course=Shipment(course.digest, [self.ray.put(course)]))

    def _slots(self) -> int:
        """How many grades the cluster runs at once now (nodes come and go)."""
        if time.monotonic() - self._resources_at >= RESOURCES_EVERY_S:
            assert self.assignment is not None
            self._resources_at = time.monotonic()
            try:
                placement, _ = place_on(
                    self.assignment,
                    self.request,
                    self.ray.cluster_resources(),
                    self._device,
                    self.address,
                )
                self.jobs = placement.jobs
            except BadInput:  # every node is gone for now: keep the tasks queued in Ray
                pass
        return max(1, self.jobs)

    def _files(self, job: Job) -> Bundle | dict[str, Any]:
        """The student's files as local grading copies them, or their `rejected` reply."""
        assert self.assignment is not None
        with ScratchFolder("send") as scratch:
            try:
                prepared = prepare(job.student.path, self.assignment, scratch)
            except BadInput as error:
                return _lost("rejected", str(error), job)
            return pack(prepared.folder, skip=False)

    def _reply(self, ref: Any, job: Job) -> dict[str, Any]:
        """The node's reply, checked; a lost or failed task's reply."""
        exceptions = self.ray.exceptions
        try:
            text = self.ray.get(ref)
        except exceptions.TaskCancelledError:
            return _lost("timeout", "the grade's task was cancelled", job)
        except exceptions.RayTaskError as error:  # the node could not grade at all: stop
            cause = error.cause
            message = f"on a cluster node: {one_line(str(cause), 500)}"
            raise (BadInput if isinstance(cause, BadInput) else GraderError)(message) from None
        except exceptions.RayError as error:
            return _lost(
                "crashed",
                f"the grade's task was lost {MAX_RETRIES + 1} times ({type(error).__name__}: "
                "its worker or node died)",
                job,
            )
        reply = checked_reply(text)
        self.nodes[reply["node"]] += 1
        self.overheads.append(max(0.0, time.monotonic() - job.started - reply["duration_s"]))
        return reply


def cache_key(folder: Path | None) -> str:
    """The name of the batch's reference cache on the nodes: kept in `folder` (the batch's
    OUT/.cache/reference), so the nodes' cache lives as long as the local one would."""
    if folder is None:
        return secrets.token_hex(8)
    path = folder / "cluster-key"
    with contextlib.suppress(OSError, UnicodeDecodeError):
        key = path.read_text(encoding="ascii").strip()
        if re.fullmatch(r"[0-9a-f]{16}", key):
            return key
    key = secrets.token_hex(8)
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, key.encode())
    return key


def _lost(status: str, message: str, job: Job) -> dict[str, Any]:
    return {"status": status, "message": message, "duration_s": time.monotonic() - job.started}


def checked_reply(text: Any) -> dict[str, Any]:
    """A node's reply as plain data of the expected shape; GraderError otherwise."""
    try:
        reply = json.loads(text)
        assert isinstance(reply, dict) and reply.get("status") in STATUSES
        assert isinstance(reply.get("message", ""), str)
        assert isinstance(reply.get("node"), str)
        reply["duration_s"] = float(reply.get("duration_s", 0.0))
        assert isinstance(reply.get("report"), dict | None)
        formats = reply.get("formats", {})
        assert isinstance(formats, dict) and all(isinstance(v, str) for v in formats.values())
        cache = reply.get("cache", {})
        assert isinstance(cache, dict)
        reply["cache"] = {
            k: cache[k]
            for k in ("hits", "misses", "uncacheable", "compute_s", "saved_s")
            if isinstance(cache.get(k), int | float)
        }
    except (AssertionError, TypeError, ValueError) as error:
        raise GraderError(f"a cluster node sent a malformed reply ({error})") from None
    return reply


def course_bundle(assignment: Assignment) -> Bundle:
    """The course files a node needs to grade `assignment`: its folder and its reference."""
    folder = pack(assignment.folder, prefix=f"assignments/{assignment.name}/".encode())
    entries = [
        (b"assignments", 0o755, None),
        (f"assignments/{assignment.name}".encode(), 0o755, None),
    ]
    entries += folder.entries
    if assignment.reference_path.is_file():
        entries += [(b"reference", 0o755, None)]
        entries += [
            (
                f"reference/{assignment.reference_path.name}".encode(),
                0o644,
                assignment.reference_path.read_bytes(),
            )
        ]
    return Bundle(tuple(entries))


def data_bundle(assignment: Assignment) -> Bundle | None:
    """MNIST as this machine has it, for an assignment that trains (None: the nodes use the
    sample shipped in the package, as this machine does)."""
    toml = tomllib.loads((assignment.folder / "assignment.toml").read_text(encoding="utf-8"))
    if "training" not in toml:
        return None
    files = locate(mnist_folder())
    if files is None:
        return None
    entries = [(b"mnist", 0o755, None)]
    entries += [(f"mnist/{p.name}".encode(), 0o644, p.read_bytes()) for p in sorted(files.values())]
    return Bundle(tuple(entries))
