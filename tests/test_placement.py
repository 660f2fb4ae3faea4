"""How a worker's calls wait. A lone grader's channel polls awake on two CPUs before it
sleeps, and backs off where that does not pay. A pool's worker runs on the CPU of the
grader thread that calls it, and only while it lives: the thread gets its CPUs back when the
worker goes, the worker cannot move the grader, and nothing is pinned where there is nothing
to choose."""

from __future__ import annotations

import os
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader import pool
from grader.sandbox import placement
from grader.sandbox.codec import MAX_SPIN_BACKOFF, Channel, scalar_reply
from grader.sandbox.limits import Limits
from grader.sandbox.proxy import Sandbox, SubmissionProxy

PROBE = textwrap.dedent(
    """
    import os

    def cpus():
        return sorted(os.sched_getaffinity(0))

    def spins():
        \"\"\"How long each of the worker's channels polls before it sleeps.\"\"\"
        import gc

        return [o.spin_s for o in gc.get_objects() if type(o).__name__ == "Channel"]

    def move(pid, cpus):
        \"\"\"Set the CPUs of task `pid` (0: this one); the error's name if refused.\"\"\"
        try:
            os.sched_setaffinity(pid, cpus)
        except OSError as error:
            return type(error).__name__
        return "done"
    """
)
needs_two_cpus = pytest.mark.skipif(
    not placement.AVAILABLE or len(os.sched_getaffinity(0)) < 2,
    reason="needs sched_setaffinity and two CPUs",
)


@pytest.fixture
def box(tmp_path: Path, monkeypatch):
    """A sandbox on the probe, started by one of as many grading processes side by side as
    there are CPUs (so it is co-located); the test thread's CPUs are put back whatever the
    test does."""
    monkeypatch.setattr(placement, "_slot", None)
    placement.prefer_slot(0, len(os.sched_getaffinity(0)) if placement.AVAILABLE else 2)
    yield from _sandbox(tmp_path)


@pytest.fixture
def lone_box(tmp_path: Path, monkeypatch):
    """A sandbox on the probe, started by a lone grading process on a machine with a CPU
    idle (whatever the tests beside this one are doing)."""
    monkeypatch.setattr(placement, "_slot", None)
    monkeypatch.setattr(placement, "_runnable", lambda loadavg: 1)
    yield from _sandbox(tmp_path)


@pytest.fixture(autouse=True)
def _cpus_restored():
    mask = os.sched_getaffinity(0) if placement.AVAILABLE else None
    yield
    if mask is not None:
        os.sched_setaffinity(0, mask)


def _sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "probe.py").write_text(PROBE)
    sandbox = Sandbox(folder, "probe", Limits(call_timeout_s=5.0))
    yield sandbox
    sandbox.close()


@needs_two_cpus
def test_a_ready_worker_and_the_calling_thread_share_one_cpu_until_the_worker_closes(box):
    mask = os.sched_getaffinity(0)
    assert SubmissionProxy(box).cpus() == [box._placement.cpu]
    cpu = box._placement.cpu
    assert cpu in mask
    assert os.sched_getaffinity(0) == {cpu}
    for pid in box._worker_processes():
        assert os.sched_getaffinity(pid) == {cpu}
    box.close()
    assert os.sched_getaffinity(0) == mask


@needs_two_cpus
def test_a_stopped_worker_gives_the_thread_its_cpus_back_before_it_closes(box):
    mask = os.sched_getaffinity(0)
    SubmissionProxy(box).cpus()
    box.stop()
    assert box._placement is None
    assert os.sched_getaffinity(0) == mask


@needs_two_cpus
def test_a_restarted_worker_is_placed_again_and_the_thread_released_in_between(box):
    proxy = SubmissionProxy(box)
    mask = os.sched_getaffinity(0)
    proxy.cpus()
    box._kill()
    assert os.sched_getaffinity(0) == mask
    assert proxy.cpus() == [box._placement.cpu]


@needs_two_cpus
def test_a_thread_started_while_pinned_gets_the_cpus_back_with_its_starter(box):
    """Threads inherit their starter's CPUs (a thread pool a reference starts, say)."""
    mask = os.sched_getaffinity(0)
    SubmissionProxy(box).cpus()
    release = threading.Event()
    started = threading.Thread(target=release.wait)
    started.start()
    try:
        assert os.sched_getaffinity(started.native_id) == {box._placement.cpu}
        box.close()
        assert os.sched_getaffinity(started.native_id) == mask
    finally:
        release.set()
        started.join()


@needs_two_cpus
def test_the_worker_cannot_move_the_grader_and_widens_itself_only_within_its_cpus(box):
    proxy = SubmissionProxy(box)
    mask = os.sched_getaffinity(0)
    proxy.cpus()
    cpu = box._placement.cpu
    other = sorted(mask - {cpu})
    if box.protections["processes"].startswith("active"):  # else it sees us: same uid or not
        for task in (os.getpid(), threading.get_native_id()):  # outside its PID namespace
            assert proxy.move(task, other) != "done"
    assert os.sched_getaffinity(0) == {cpu}
    # Its own CPUs it may change (placement, not confinement), within what it is allowed.
    assert proxy.move(0, list(range(os.cpu_count() or 1))) == "done"
    assert set(proxy.cpus()) <= mask


@needs_two_cpus
def test_a_worker_set_to_train_gets_every_cpu_back(box, monkeypatch):
    mask = os.sched_getaffinity(0)
    SubmissionProxy(box).cpus()
    monkeypatch.setattr(Sandbox, "_request", lambda self, *args, **kwargs: None)
    box.harness("prepare", (), label="preparing torch in the worker")
    assert box._placement is None
    assert os.sched_getaffinity(0) == mask
    for pid in box._worker_processes():
        assert os.sched_getaffinity(pid) == mask


@pytest.mark.skipif(not placement.AVAILABLE, reason="needs sched_setaffinity")
def test_nothing_is_pinned_where_only_one_cpu_is_allowed(box):
    one = {min(os.sched_getaffinity(0))}
    os.sched_setaffinity(0, one)
    assert SubmissionProxy(box).cpus() == sorted(one)
    assert box._placement is None
    assert os.sched_getaffinity(0) == one


def test_nothing_is_pinned_where_the_platform_cannot(box, monkeypatch):
    monkeypatch.setattr(placement, "AVAILABLE", False)
    mask = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    assert SubmissionProxy(box).cpus()
    assert box._placement is None
    if mask is not None:
        assert os.sched_getaffinity(0) == mask


def test_a_pools_processes_take_one_cpu_each_by_their_slot(monkeypatch):
    monkeypatch.setattr(placement, "_slot", None)
    placement.prefer_slot(1, 3)
    assert placement._choose({0, 4, 6}) == 4
    placement.prefer_slot(4, 5)
    assert placement._choose({0, 4, 6}) == 4  # more processes than CPUs: round the CPUs
    placement.prefer_slot(0, 1)  # one process: the CPU it runs on
    assert placement._slot is None
    assert placement._choose({0}) is None


def test_pools_side_by_side_give_their_processes_distinct_slots(monkeypatch, tmp_path):
    slots = []

    class Started:
        def __init__(self, config, log, slot, count):
            self.slot = slot
            slots.append((slot, count))

        def stop(self, wait_s):
            pass

    monkeypatch.setattr(pool, "GradingProcess", Started)
    monkeypatch.setattr(pool, "_SLOTS", pool.Slots())
    first_pool = pool.Pool(2, config=None, timeout_s=1.0, logs=tmp_path)
    second_pool = pool.Pool(2, config=None, timeout_s=1.0, logs=tmp_path)
    first = first_pool._start()
    first_pool._start()
    second_pool._start()
    first.ready = True
    first_pool._discard(first)  # it died; the next process takes its slot
    second_pool._start()
    assert slots == [(0, 2), (1, 2), (2, 3), (0, 2)]


@needs_two_cpus
def test_a_lone_graders_worker_is_not_pinned_and_both_ends_poll_before_they_sleep(
    lone_box, monkeypatch
):
    monkeypatch.setattr(placement, "LONG_PAUSES", 10**9)  # however this machine's load pauses
    mask = os.sched_getaffinity(0)
    proxy = SubmissionProxy(lone_box)
    assert proxy.cpus() == sorted(mask)
    assert lone_box._placement is None
    assert lone_box._channel.spin_s == placement.SPIN_S
    assert os.sched_getaffinity(0) == mask
    assert [proxy.cpus() for _ in range(200)] == [sorted(mask)] * 200


def test_pace_says_co_locate_after_long_pauses_in_a_row_and_a_short_one_starts_again():
    pace = placement.Pace(spin_s=0.001)
    assert not pace.note(10.0)  # the first call: no reply yet, no pause to judge
    now = 10.0
    for _ in range(placement.LONG_PAUSES - 1):
        pace.replied(now)
        now += 0.002
        assert not pace.note(now)
    pace.replied(now)
    assert not pace.note(now + 0.0005)  # within the spin: the count starts again
    for expected in [False] * (placement.LONG_PAUSES - 1) + [True]:
        pace.replied(now)
        now += 0.01
        assert pace.note(now) is expected


@needs_two_cpus
def test_a_lone_grader_that_pauses_between_calls_co_locates_its_worker_and_both_sleep(
    lone_box,
):
    """Each pause outlasts the worker's spin: it would sleep on its own CPU, and every call
    would wake that CPU. Once settled, it shares the grader thread's CPU until it goes."""
    mask = os.sched_getaffinity(0)
    proxy = SubmissionProxy(lone_box)
    assert proxy.spins() == [placement.SPIN_S]
    for _ in range(placement.LONG_PAUSES):
        time.sleep(placement.SPIN_S * 4)
        proxy.cpus()
    cpu = lone_box._placement.cpu
    assert os.sched_getaffinity(0) == {cpu}
    assert proxy.cpus() == [cpu]
    assert lone_box._channel.spin_s == 0.0
    assert proxy.spins() == [0.0]
    assert lone_box.spins  # its CPU still counts as the worker's for torch's threads
    lone_box.close()
    assert os.sched_getaffinity(0) == mask


@needs_two_cpus
def test_a_settled_worker_set_to_train_gets_every_cpu_back_and_is_not_settled_again(
    lone_box, monkeypatch
):
    mask = os.sched_getaffinity(0)
    proxy = SubmissionProxy(lone_box)
    for _ in range(placement.LONG_PAUSES + 1):
        time.sleep(placement.SPIN_S * 4)
        proxy.cpus()
    assert lone_box._placement is not None
    with monkeypatch.context() as patched:
        patched.setattr(Sandbox, "_request", lambda self, *args, **kwargs: None)
        lone_box.harness("prepare", (), label="preparing torch in the worker")
    assert os.sched_getaffinity(0) == mask
    for _ in range(placement.LONG_PAUSES + 1):
        time.sleep(placement.SPIN_S * 4)
        assert proxy.cpus() == sorted(mask)
    assert lone_box._placement is None


@pytest.mark.skipif(not placement.AVAILABLE, reason="needs sched_setaffinity")
def test_a_grader_spins_only_with_a_cpu_to_spare_for_its_worker(monkeypatch, tmp_path):
    monkeypatch.setattr(placement, "_slot", None)
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("0.50 0.40 0.30 1/300 4242\n")  # this process alone runnable
    mask = os.sched_getaffinity(0)
    monkeypatch.setattr(placement.os, "cpu_count", lambda: len(mask))
    assert placement.spin_seconds(loadavg) == (placement.SPIN_S if len(mask) >= 2 else 0.0)
    os.sched_setaffinity(0, {min(mask)})
    assert placement.spin_seconds(loadavg) == 0.0
    os.sched_setaffinity(0, mask)
    eight = set(range(8))
    monkeypatch.setattr(placement.os, "sched_getaffinity", lambda pid: eight)
    monkeypatch.setattr(placement.os, "cpu_count", lambda: 8)
    placement.prefer_slot(0, 4)  # four graders on eight CPUs: a CPU for each end
    assert placement.spin_seconds(loadavg) == placement.SPIN_S
    placement.prefer_slot(0, 5)
    assert placement.spin_seconds(loadavg) == 0.0
    monkeypatch.setattr(placement, "_slot", None)
    loadavg.write_text("7.90 6.00 5.00 8/300 4242\n")  # every CPU busy right now
    assert placement.spin_seconds(loadavg) == 0.0
    loadavg.write_text("7.90 6.00 5.00 7/300 4242\n")  # one idle
    assert placement.spin_seconds(loadavg) == placement.SPIN_S
    loadavg.write_text("garbled")  # unreadable: as if idle (the spins back off by themselves)
    assert placement.spin_seconds(loadavg) == placement.SPIN_S
    monkeypatch.setattr(placement, "AVAILABLE", False)
    assert placement.spin_seconds(loadavg) == 0.0


def _pipe_channel(spin_s: float) -> tuple[Channel, int]:
    read_fd, write_fd = os.pipe()
    channel = Channel(read_fd, write_fd)
    channel.spin_s = spin_s
    return channel, write_fd


def _written_after(channel: Channel, write_fd: int, delay_s: float, value: int) -> int:
    """The value of a frame another thread writes `delay_s` after this read starts."""
    writer = threading.Timer(delay_s, os.write, (write_fd, scalar_reply(value)))
    writer.start()
    header = channel.recv(time.monotonic() + 5)[0]
    writer.join()
    return header["value"]


def test_a_frame_already_there_is_read_by_the_spin():
    channel, write_fd = _pipe_channel(1e-3)
    os.write(write_fd, scalar_reply(7))
    assert channel.recv(time.monotonic() + 5)[0]["value"] == 7
    assert (channel._spin_misses, channel._spin_skips) == (0, 0)


def test_a_spin_that_gives_up_is_skipped_for_more_reads_each_time_until_one_pays():
    """A frame that came after the spin gave up: its CPU was spent for nothing (and, on a
    busy machine, taken from the writer), so later reads sleep at once for a while."""
    channel, write_fd = _pipe_channel(0.02)
    assert _written_after(channel, write_fd, 0.05, 1) == 1
    assert (channel._spin_misses, channel._spin_skips) == (1, 2)
    for value in (2, 3):  # skipped: straight to sleep
        assert _written_after(channel, write_fd, 0.05, value) == value
    assert (channel._spin_misses, channel._spin_skips) == (1, 0)
    assert _written_after(channel, write_fd, 0.05, 4) == 4  # spun again, gave up again
    assert (channel._spin_misses, channel._spin_skips) == (2, 4)
    channel._spin_skips = 0
    os.write(write_fd, scalar_reply(5))
    assert channel.recv(time.monotonic() + 5)[0]["value"] == 5  # a spin that pays resets
    assert (channel._spin_misses, channel._spin_skips) == (0, 0)
    for _ in range(MAX_SPIN_BACKOFF + 2):  # as if every spin gave up
        channel._missed()
    assert channel._spin_misses == MAX_SPIN_BACKOFF
    assert channel._spin_skips == 1 << MAX_SPIN_BACKOFF


def test_a_skipped_spin_still_reads_a_frame_that_is_already_there():
    channel, write_fd = _pipe_channel(1e-3)
    channel._spin_skips = 3
    os.write(write_fd, scalar_reply(6))
    assert channel.recv(time.monotonic() + 5)[0]["value"] == 6
    assert channel._spin_skips == 2


class _FakeTorch:
    """torch's thread calls alone, so a test sets counts without touching the real pool."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def get_num_threads(self) -> int:
        return self.threads

    def set_num_threads(self, threads: int) -> None:
        self.threads = threads


@pytest.mark.skipif(not placement.AVAILABLE, reason="needs sched_setaffinity")
def test_torch_leaves_a_cpu_to_each_spinning_worker_and_gets_its_threads_back(monkeypatch):
    monkeypatch.setattr(placement, "_slot", None)
    monkeypatch.setattr(placement.os, "sched_getaffinity", lambda pid: set(range(8)))
    torch = _FakeTorch(8)
    monkeypatch.setitem(placement.sys.modules, "torch", torch)
    threads = placement.TorchThreads()
    threads.fit(spinning=True)
    assert torch.threads == 7  # a lone grader's worker spins on the eighth CPU
    torch.threads = 3  # something else set them meanwhile (a later fit keeps its hands off)
    threads.fit(spinning=True)
    assert torch.threads == 3
    threads.restore()
    assert torch.threads == 3  # not put back over what someone else chose
    torch.threads = 8
    placement.prefer_slot(0, 2)  # two graders: four CPUs each, one for each worker
    threads.fit(spinning=True)
    assert torch.threads == 3
    threads.restore()
    assert torch.threads == 8


@pytest.mark.skipif(not placement.AVAILABLE, reason="needs sched_setaffinity")
def test_torch_keeps_one_thread_while_the_worker_shares_the_grader_threads_cpu(monkeypatch):
    """Co-located, the grader thread holds one CPU: a second intra-op thread would share it,
    or run on a CPU whose wake-up a small reference operation waits for."""
    monkeypatch.setattr(placement, "_slot", None)
    monkeypatch.setattr(placement.os, "sched_getaffinity", lambda pid: set(range(8)))
    torch = _FakeTorch(8)
    monkeypatch.setitem(placement.sys.modules, "torch", torch)
    threads = placement.TorchThreads()
    threads.fit(spinning=False, co_located=True)  # a busy machine: co-located from the start
    assert torch.threads == 1
    threads.restore()
    assert torch.threads == 8
    threads.fit(spinning=True)
    assert torch.threads == 7
    threads.fit(spinning=True, co_located=True)  # the spinning worker settled
    assert torch.threads == 1
    threads.restore()
    assert torch.threads == 8


def test_torch_threads_stay_where_no_worker_spins_or_torch_is_not_imported(monkeypatch):
    monkeypatch.setattr(placement, "_slot", None)
    torch = _FakeTorch(2)
    monkeypatch.setitem(placement.sys.modules, "torch", torch)
    threads = placement.TorchThreads()
    threads.fit(spinning=False)  # e.g. a busy machine's worker before it is placed
    threads.restore()
    assert torch.threads == 2
    monkeypatch.delitem(placement.sys.modules, "torch")
    placement.TorchThreads().fit(spinning=True)  # nothing to fit, and torch is not imported
    assert "torch" not in placement.sys.modules


@pytest.mark.skipif(not placement.AVAILABLE, reason="needs sched_setaffinity")
@pytest.mark.parametrize("forked", [False, True], ids=["started", "forked"])
def test_a_worker_runs_on_the_cpus_its_grader_thread_had(tmp_path, monkeypatch, forked):
    """Forked from a template started before the thread's CPUs were narrowed, too."""
    from grader.sandbox import forkserver
    from grader.sandbox.proxy import use_fork_server

    monkeypatch.setattr(placement, "_slot", None)
    try:
        if forked:  # Linux, as sched_setaffinity is: the fork server works there
            assert use_fork_server() and forkserver.current().ready(wait_s=30)
        one = {max(os.sched_getaffinity(0))}
        os.sched_setaffinity(0, one)
        for box in _sandbox(tmp_path):
            assert SubmissionProxy(box).cpus() == sorted(one)
    finally:
        forkserver.disable()
