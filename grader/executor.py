"""Where a batch's grades run: the seam between the batch engine and the machines.

`grader.batch` decides who to grade and records each reply (results/<student>.json, the
gradebook, the summary); an `Executor` decides where the grades run. `LocalExecutor` is
the pool of grading processes on this machine (`grader.pool`, the default);
`grader.cluster.RayExecutor` sends each submission to a Ray cluster. Both are handed the
same jobs and `WorkerConfig` and answer each job with the same reply: a dict with `status`,
`message`, `duration_s`, and for a graded submission `report`, `formats` and `cache`. The
grading service (`grader.server.dispatch`) runs its queue through the same executors, feeding
them work as it comes (`more`).

Nothing here writes files or prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from grader.course import Assignment
from grader.pool import Job, Pool, WorkerConfig
from grader.runner import resolve_device

OnReply = Callable[[Job, dict[str, Any]], None]
More = Callable[[int], list[Job]]
OnCheck = Callable[[Job, str, bool], None]


@dataclass(frozen=True)
class Placement:
    """How a batch will run: the device its grades use, how many run at once, where (for
    people), and notes every report of the batch carries (a GPU assignment graded on CPU)."""

    device: str
    jobs: int
    where: str = ""
    notes: tuple[str, ...] = ()


class Executor(Protocol):
    """Runs a batch's grades somewhere; see the module docstring."""

    def place(self, assignment: Assignment, device: str) -> Placement:
        """Decide the device ("auto" resolved) and how many grades run at once."""
        ...

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
        """Grade every job, calling `on_reply` once per job as it ends. `timeout_s` is how
        long one grade may take; `logs` is where grading processes' stderr may go. With
        `more` (the service), keep taking work: `more(free)` is asked for up to `free` new
        jobs whenever a grade could start (it may wait for work while none is running); the
        run ends when it returns none and nothing is left. `on_check(job, name, hidden)`
        hears each check as it starts, where the executor can tell (the local pool, with
        `WorkerConfig.report_checks`)."""
        ...

    def describe(self) -> dict[str, Any] | None:
        """What summary.json says about where the batch ran (None: nothing to add)."""
        ...


class LocalExecutor:
    """The pool of grading processes on this machine."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs

    def place(self, assignment: Assignment, device: str) -> Placement:
        return Placement(device if device == "cpu" else resolve_device(device), self.jobs)

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
        size = self.jobs if more is not None else min(self.jobs, len(tasks))
        with Pool(size, config, timeout_s, logs) as pool:
            pool.run(tasks, on_reply, more, on_check)

    def describe(self) -> dict[str, Any] | None:
        return None
