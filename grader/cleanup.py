"""Cleanup that need not hold up a grade: it runs on one thread while the next grade starts.

Once a grade's worker is killed and what it printed is read, what is left (reaping its
processes, removing its cgroup, its folder and the grade's copy of the submission) changes
nothing in the grade, yet costs milliseconds of waiting on other processes, ten and more
on a busy machine; so does getting the fork server's next worker ready (`forkserver`).
`defer` queues such a job; one thread runs the jobs in order.
`finish` waits until every job queued so far has run: interpreter exit does, and so must
whoever leaves by `os._exit` (a batch's grading process). A job touches only what its own
grade owned, so a grade started meanwhile never meets it.
"""

from __future__ import annotations

import atexit
import queue
import threading
import traceback
from collections.abc import Callable

_jobs: queue.Queue[Callable[[], None]] | None = None
_lock = threading.Lock()


def defer(job: Callable[[], None]) -> None:
    """Run `job` on the cleanup thread, after the jobs queued before it."""
    global _jobs
    with _lock:
        if _jobs is None:
            _jobs = queue.Queue()
            threading.Thread(target=_run, args=(_jobs,), name="cleanup", daemon=True).start()
            atexit.register(finish)
        _jobs.put(job)


def finish() -> None:
    """Wait until every job queued so far has run."""
    if _jobs is not None:
        _jobs.join()


def _run(jobs: queue.Queue[Callable[[], None]]) -> None:
    while True:
        job = jobs.get()
        try:
            job()
        except Exception:  # a bug: say so, and go on with the next job
            traceback.print_exc()
        finally:
            jobs.task_done()
