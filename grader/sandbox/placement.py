"""Where a worker runs, and how its calls wait: awake on two CPUs, or asleep on one.

A call into the worker is two wake-ups: the grader's request wakes the worker, its reply
wakes the grader. Asleep, each wake-up costs a scheduler round, and on a virtual machine
waking an idle CPU, or switching one from one process's address space to another, costs
more than the whole call. Two ways round it, chosen per grading process:

* A grader with a CPU to spare for its worker (`spin_seconds`: a lone grader allowed two
  CPUs or more, or one of a pool's processes where the CPUs number twice the processes, and
  a CPU of the machine idle when the worker starts) has
  each end of the channel poll awake for a moment (`SPIN_S`), yielding the CPU to anything
  else runnable between polls, before it sleeps, so a quick
  reply is read on a CPU that never left its process. At most `SPIN_S` of CPU is spent on a
  wait that turns out long, once per message, and spins that give up back off
  (`Channel._missed`).
  That pays while the grader calls again within the worker's spin; a grader that pauses
  longer between calls (its own reference step and comparison, as most checks do between
  their calls) finds the worker asleep on an idle CPU every time, and on a virtual
  machine waking it costs more than the call (a bare pipe's round trip: 20 µs back to back,
  330 µs after a 1 ms pause; 45 µs on one CPU). So once `Pace` sees such pauses in a row,
  the sandbox co-locates the worker as below and both ends stop spinning, for the rest of
  that worker's life.
* Graders side by side with no CPU to spare (`prefer_slot`: a pool's processes): `co_locate`
  puts each worker's processes and the grader thread that calls it on one CPU once the
  worker is ready (its import ran on whatever CPU was free, alongside the grader's own
  start-up), the CPU its slot names, so two graders do not pin onto one CPU by chance, and
  `CoLocation.release` gives the thread its CPUs back when the worker goes. Nothing is done
  where only one CPU is allowed or the platform has no `sched_setaffinity`.

A spinning worker holds a CPU, so the grading process's own torch (its references) gets one
thread fewer per worker while a grade runs (`TorchThreads`): with as many intra-op threads
as CPUs, every reference operation waited for a thread the spinning worker had displaced
(assignment7's grade a fifth slower), and tensors as small as a check's gain nothing from a
second thread anyway.

This is placement, not confinement: the worker may widen its own affinity again, only
within the CPUs its cgroup's cpuset allows (the kernel's rule, which no affinity call can
break), or stop polling, and gains nothing by either but slower calls. It cannot reach the
grader's threads: they lie outside its PID namespace, and a root grader's worker runs as
another uid without capabilities.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

AVAILABLE = hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity")
_slot: tuple[int, int] | None = None  # (this process's slot, how many) when set by a pool
# A lone grader's channel: how long each read polls before it sleeps. Long enough for a call
# whose arguments are a few small arrays (assignment6's optimizers: about 50 µs of decoding,
# running and encoding in the worker) and for the grader's own comparison between two calls,
# during which the worker waits: at 50 µs both ends slept on most such calls, and each
# wake-up cost 40-60 µs on a virtual machine (a call took 200 µs; at 0.5 ms, 60 µs).
SPIN_S = 500e-6


# Pauses between calls longer than a worker's spin, in a row, after which its grader
# co-locates it (`Pace`): a few, so that the pause before a grade's first call (pytest's
# set-up), or a check's one slow step, does not end the spin of a grader that calls quickly.
LONG_PAUSES = 3


class Pace:
    """How long a grader pauses between the calls into one spinning worker: `note` says when
    the last `LONG_PAUSES` pauses all outlasted the worker's spin (`spin_s`), so that each call
    found it asleep and had to wake its CPU."""

    def __init__(self, spin_s: float) -> None:
        self.spin_s = spin_s
        self._long = 0
        self._replied: float | None = None  # when the last reply was read

    def replied(self, now: float) -> None:
        """A reply was read at `now` (`time.monotonic`)."""
        self._replied = now

    def note(self, now: float) -> bool:
        """A call starts at `now`: whether the pauses before it say co-locate."""
        if self._replied is None:
            return False
        if now - self._replied <= self.spin_s:
            self._long = 0
            return False
        self._long += 1
        return self._long >= LONG_PAUSES


def prefer_slot(slot: int, slots: int) -> None:
    """This process is number `slot` of `slots` grading side by side: its workers go to the
    allowed CPU that number picks (wrapping round), wherever it happens to run."""
    global _slot
    _slot = (slot, slots) if slots > 1 else None


def spin_seconds(loadavg: str = "/proc/loadavg") -> float:
    """How long each end of the next worker's channel polls awake before it sleeps:
    `SPIN_S` where the CPUs allowed number at least twice the graders side by side (one for
    each end of every channel) and a CPU is idle right now (fewer tasks runnable, this one
    included, than the machine has CPUs: on a busy machine a spin takes a CPU from someone),
    else 0 (its worker is co-located, or its calls simply sleep)."""
    if not AVAILABLE:
        return 0.0
    graders = _slot[1] if _slot is not None else 1
    try:
        if len(os.sched_getaffinity(0)) < 2 * graders:
            return 0.0
    except OSError:
        return 0.0
    return SPIN_S if _runnable(loadavg) < (os.cpu_count() or 1) else 0.0


def _runnable(loadavg: str) -> int:
    """Tasks runnable on the machine now (the fourth field of /proc/loadavg, "running/all");
    0 where it cannot be read."""
    try:
        with open(loadavg, "rb") as source:
            return int(source.read().split()[3].split(b"/")[0])
    except (OSError, IndexError, ValueError):
        return 0


def allowed_cpus() -> list[int] | None:
    """The CPUs the calling thread may run on, which its next worker takes (None where the
    platform cannot say)."""
    if not AVAILABLE:
        return None
    try:
        return sorted(os.sched_getaffinity(0))
    except OSError:
        return None


def threads_beside_workers(threads: int) -> int:
    """How many of `threads` intra-op threads the grading process keeps beside a spinning
    worker: one CPU fewer than its share of the allowed CPUs (at least one)."""
    graders = _slot[1] if _slot is not None else 1
    share = len(os.sched_getaffinity(0)) // graders
    return max(1, min(threads, share - 1))


class TorchThreads:
    """torch's intra-op threads in this process, held to `threads_beside_workers` from the
    first `fit` beside a spinning worker after torch is imported (a grade imports it only if
    a reference needs it), and to one while the worker is co-located, until `restore`."""

    def __init__(self) -> None:
        self._set: tuple[int, int] | None = None  # (before, what fit set)

    def fit(self, spinning: bool, co_located: bool = False) -> None:
        """`spinning`: whether the grade's worker polls before it sleeps (`spin_seconds`,
        as it was worked out for that worker); `co_located`: whether it shares the grader
        thread's one CPU (`co_locate`). Then the grader thread's intra-op threads would share
        that CPU too, or run on another, whose wake-up, on a virtual machine, a small
        reference operation waits for at its end (10-20 ms for assignment7's first `unfold`
        on two threads): one thread."""
        torch = sys.modules.get("torch")
        if torch is None or not hasattr(torch, "set_num_threads"):
            return
        threads = torch.get_num_threads()
        if self._set is None:
            if not (spinning or co_located):
                return
            before = threads
        else:
            before, current = self._set
            if threads != current:  # someone else chose since: hands off
                return
        wanted = 1 if co_located else threads_beside_workers(before)
        if wanted != threads:
            torch.set_num_threads(wanted)
        self._set = (before, wanted)

    def restore(self) -> None:
        """Put the thread count back, unless something else changed it meanwhile."""
        if self._set is None:
            return
        before, wanted = self._set
        self._set = None
        torch = sys.modules["torch"]
        if before != wanted and torch.get_num_threads() == wanted:
            torch.set_num_threads(before)


class CoLocation:
    """A worker and the grader thread that calls it, both held on `cpu` until `release`."""

    def __init__(self, cpu: int, thread: int, mask: set[int], threads: set[int]) -> None:
        self.cpu = cpu
        self._thread = thread  # the pinned thread's id, so any thread may release it
        self._mask = mask  # its CPUs before
        self._threads = threads  # the process's threads before: later ones inherited the pin

    def release(self, processes: list[int] = ()) -> None:
        """Give the thread its CPUs back, and so every thread started meanwhile that still
        holds only this CPU (it inherited the pin from the thread that started it); and to
        `processes` (a worker that goes on running)."""
        pinned = {self.cpu}
        for task in [self._thread, *(_tasks(os.getpid()) - self._threads)]:
            with contextlib.suppress(OSError):
                if os.sched_getaffinity(task) == pinned:
                    os.sched_setaffinity(task, self._mask)
        _pin(processes, self._mask)


def co_locate(processes: list[int]) -> CoLocation | None:
    """Put `processes` (a worker's) and the calling thread on one CPU; None where nothing
    was done (one CPU allowed, no such call, the CPU refused)."""
    if not AVAILABLE:
        return None
    try:
        mask = os.sched_getaffinity(0)
    except OSError:
        return None
    cpu = _choose(mask)
    if cpu is None or not _pin(processes, {cpu}):
        return None
    thread = threading.get_native_id()
    threads = _tasks(os.getpid())
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        _pin(processes, mask)
        return None
    return CoLocation(cpu, thread, mask, threads)


def _choose(allowed: set[int]) -> int | None:
    """The CPU for this thread's next worker: its slot's, else the one it runs on."""
    if len(allowed) < 2:
        return None
    if _slot is not None:
        ordered = sorted(allowed)
        return ordered[_slot[0] % len(ordered)]
    cpu = current_cpu()
    return cpu if cpu in allowed else None


def current_cpu() -> int | None:
    """The CPU the calling thread last ran on (Linux: field 39 of its /proc stat)."""
    try:
        with open("/proc/thread-self/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[36])
    except (OSError, IndexError, ValueError):
        return None


def _pin(processes: list[int], cpus: set[int]) -> bool:
    """Set the CPUs of every thread of `processes`; whether any took them (a process may
    end meanwhile; a CPU outside its cpuset is refused)."""
    done = False
    for pid in processes:
        for task in _tasks(pid) or {pid}:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(task, cpus)
                done = True
    return done


def _tasks(pid: int) -> set[int]:
    """The thread ids of process `pid` (empty where /proc cannot say)."""
    try:
        return {int(task) for task in os.listdir(f"/proc/{pid}/task")}
    except (OSError, ValueError):
        return set()
