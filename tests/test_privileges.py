"""A grader running as root hands the worker a uid of its own, so root's powers stay outside."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

from grader.sandbox.limits import Limits
from grader.sandbox.privileges import (
    CAP_DAC_READ_SEARCH,
    is_root,
    python_readable_by_others,
    world_readable,
)
from grader.sandbox.proxy import Sandbox, SubmissionProxy
from grader.sandbox.worker import process_limit

PROBE = """
import os, resource, time


def process_limit():
    return resource.getrlimit(resource.RLIMIT_NPROC)[0]


def identity():
    status = dict(
        line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines()
        if ":\\t" in line
    )
    return [os.getuid(), os.geteuid(), os.getgid(), os.getgroups(), int(status["CapEff"], 16)]


def write_here():
    with open("scratch.txt", "w") as f:
        f.write("mine")
    return open("scratch.txt").read()


def fork_many(n):
    started = 0
    for _ in range(n):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        started += 1
    return started
"""


@pytest.fixture
def worker(tmp_path: Path):
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "probe.py").write_text(PROBE)
    box = Sandbox(folder, "probe", Limits(call_timeout_s=10.0, processes=20))
    yield SubmissionProxy(box), box
    box.close()


def unprivileged(box: Sandbox) -> bool:
    """Whether the worker runs without root; if not, the only accepted reason must hold."""
    state = box.protections["privileges"]
    if state.startswith("unavailable"):
        grader_package = str(Path(__file__).parents[1] / "grader" / "sandbox")
        assert not box.protections["filesystem"].startswith("active"), state
        assert not python_readable_by_others(grader_package), state
        return False
    assert state.startswith("active" if is_root() else "not needed"), state
    return True


def test_the_worker_never_runs_as_root(worker):
    proxy, box = worker
    uid, euid, gid, groups, capabilities = proxy.identity()
    if not unprivileged(box):
        assert uid == 0
        return
    if not is_root():
        assert uid == os.getuid()
        return
    assert uid != 0 and euid != 0 and gid != 0
    assert groups == []
    assert capabilities & ~(1 << CAP_DAC_READ_SEARCH) == 0


def test_the_worker_still_writes_its_own_folder(worker):
    proxy, _ = worker
    assert proxy.write_here() == "mine"


def test_the_process_count_limit_binds_the_worker(worker):
    proxy, box = worker
    if not is_root():
        # Its uid is shared with the user's other programs: the limit sits above them.
        limit = proxy.process_limit()
        assert limit > 20 and limit != resource.RLIM_INFINITY  # RLIM_INFINITY is -1
        assert proxy.fork_many(5) == 5
        return
    started = proxy.fork_many(60)
    if unprivileged(box):
        assert proxy.process_limit() == 20
        assert started < 20


def test_a_shared_uid_gets_its_allowance_on_top_of_the_tasks_running_now(tmp_path, monkeypatch):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("0.52 0.58 0.59 3/1873 40211\n")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert process_limit(20, str(loadavg)) == 1873 + 20
    assert process_limit(20, str(tmp_path / "no-proc")) is None
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # its own uid once privileges drop
    assert process_limit(20, str(loadavg)) == 20


SHARED_UID_WORKER = """
import os, resource
os.geteuid = lambda: 1000  # as a student's own grader runs
from grader.sandbox.worker import apply_limits
assert "RLIMIT_NPROC" in apply_limits({"processes": 20})
tasks = int(open("/proc/loadavg").read().split()[3].split("/")[1])
print(resource.getrlimit(resource.RLIMIT_NPROC)[0] - tasks)
"""


def test_a_worker_sharing_the_users_uid_may_start_its_allowance_beyond_the_running_tasks():
    probe = subprocess.run(
        [sys.executable, "-c", SHARED_UID_WORKER], cwd=ROOT, capture_output=True, text=True
    )
    assert probe.returncode == 0, probe.stderr
    headroom = int(probe.stdout)
    # Tasks of other programs may start or end between the two readings: a loose upper bound.
    assert 0 < headroom < 1000


def test_world_readable_needs_every_folder_above_to_be_searchable(tmp_path: Path):
    inner = tmp_path / "outer" / "inner"
    inner.mkdir(parents=True)
    target = inner / "lib.py"
    target.write_text("x = 1\n")
    for path in (tmp_path, tmp_path / "outer", inner):
        path.chmod(0o755)
    target.chmod(0o644)
    above_open = all(os.stat(p).st_mode & stat.S_IXOTH for p in tmp_path.parents)
    assert world_readable(str(target)) == above_open
    (tmp_path / "outer").chmod(0o700)
    assert not world_readable(str(target))
    (tmp_path / "outer").chmod(0o755)
    target.chmod(0o600)
    assert not world_readable(str(target))
