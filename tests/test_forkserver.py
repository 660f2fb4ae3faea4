"""Workers forked from the fork server's template behave exactly like workers started anew."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import FIXTURES, ROOT, survivors, unique_marker

from grader import cleanup
from grader.runner import grade
from grader.sandbox import forkserver
from grader.sandbox.limits import Limits
from grader.sandbox.proxy import Sandbox, StudentError, SubmissionProxy, use_fork_server

PROBE = """
import os
import numpy as np


def noise():
    return float(np.random.rand())


def shout(text):
    print(text)
    return len(text)


def spin():
    while True:
        pass


def leave(code):
    os._exit(code)


def daemon(marker):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv("/bin/sleep", ["sleep", marker])
        os._exit(0)
    os.wait()
"""


@pytest.fixture
def template() -> Iterator[forkserver.ForkServer]:
    if not use_fork_server():
        assert not forkserver.supported()
        pytest.fail("this platform has no fork server; these checks need Linux")
    server = forkserver.current()
    assert server is not None and server.ready(wait_s=30)
    yield server
    forkserver.disable()


@pytest.fixture
def submission(tmp_path: Path) -> Path:
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "probe.py").write_text(PROBE)
    return folder


def parent(sandbox: Sandbox, proxy: SubmissionProxy) -> int:
    """Who started the running worker, read from the grader's /proc (the worker itself sees
    only its own PID namespace)."""
    proxy.noise()  # started and answering
    stat = Path(f"/proc/{sandbox.pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def started(folder: Path, **limits) -> tuple[Sandbox, SubmissionProxy]:
    sandbox = Sandbox(folder, "probe", Limits(call_timeout_s=2.0, **limits))
    return sandbox, SubmissionProxy(sandbox)


def test_workers_are_forked_from_the_template_once_it_is_ready(template, submission):
    sandbox, proxy = started(submission)
    try:
        assert parent(sandbox, proxy) == template.process.pid
        assert proxy.shout("hello") == 5
    finally:
        sandbox.close()
    assert "hello" in sandbox.output.text()  # complete once the worker is stopped


def test_a_forked_worker_is_hardened_like_a_fresh_one(template, submission):
    """Down to the forbidden library it hides, which the template finds once for all."""
    boxes = []
    for expected_parent in (template.process.pid, os.getpid()):
        sandbox = Sandbox(submission, "probe", Limits(call_timeout_s=2.0), ("torch",))
        boxes.append(sandbox)
        try:
            assert parent(sandbox, SubmissionProxy(sandbox)) == expected_parent
        finally:
            sandbox.close()
        forkserver.disable()
    forked, fresh = boxes
    assert forked.protections == fresh.protections
    assert forked.applied_limits == fresh.applied_limits
    if importlib.util.find_spec("torch") is not None:
        assert "torch" in forked.protections["forbidden files"], forked.protections


def test_forked_workers_do_not_share_random_state(template, submission):
    values = []
    for _ in range(2):
        sandbox, proxy = started(submission)
        try:
            values.append(proxy.noise())
        finally:
            sandbox.close()
    assert values[0] != values[1]


def test_timeouts_and_exits_are_reported_and_the_worker_forked_again(template, submission):
    sandbox, proxy = started(submission)
    try:
        with pytest.raises(StudentError, match="did not finish within 2 s"):
            proxy.spin()
        assert parent(sandbox, proxy) == template.process.pid
        with pytest.raises(StudentError, match="exited with code 7"):
            proxy.leave(7)
        assert parent(sandbox, proxy) == template.process.pid
        assert sandbox.starts == 3
    finally:
        sandbox.close()


def test_a_dead_template_means_fresh_workers_not_failures(template, submission):
    os.kill(template.process.pid, signal.SIGKILL)
    template.process.wait()
    sandbox, proxy = started(submission)
    try:
        assert parent(sandbox, proxy) == os.getpid()
    finally:
        sandbox.close()
    assert forkserver.current() is None


def test_grades_are_identical_with_and_without_the_template(template, course, make_submission):
    submission = make_submission("assignment1", lambda s: s.replace("-0.2)", "-0.6)"))
    forked = grade("assignment1", submission, course=course, device="cpu")
    forkserver.disable()
    fresh = grade("assignment1", submission, course=course, device="cpu")
    outcome = [(t.id, t.status, t.score, t.message) for t in fresh.tests]
    assert [(t.id, t.status, t.score, t.message) for t in forked.tests] == outcome
    assert forked.worker["protections"] == fresh.worker["protections"]
    assert fresh.score < 100


def test_the_sandbox_works_on_a_copy_and_cleans_it_up(submission):
    sandbox, proxy = started(submission)
    try:
        parent(sandbox, proxy)
        folder = sandbox.folder
        assert folder is not None and (folder / "submission" / "probe.py").is_file()
        assert folder.resolve() != submission.parent.resolve()
    finally:
        sandbox.close()
    assert not folder.exists()
    assert (submission / "probe.py").read_text() == PROBE
    assert sorted(p.name for p in submission.parent.iterdir()) == ["submission"]


def test_a_sandbox_closed_for_later_is_stopped_and_read_at_once_and_cleaned_up_after(
    template, submission
):
    sandbox, proxy = started(submission)
    marker = unique_marker()
    proxy.shout("hello")
    proxy.daemon(marker)
    folder = sandbox.folder
    groups = _cgroup_folders(sandbox.pid)
    assert folder is not None and folder.is_dir() and all(g.is_dir() for g in groups)
    sandbox.close(finish_later=True)
    assert survivors(marker) == []
    assert "hello" in sandbox.output.text()
    cleanup.finish()
    assert not folder.exists()
    assert not [g for g in groups if g.exists()]


def _cgroup_folders(pid: int) -> list[Path]:
    """The folders of the worker's cgroups (none where the grader may not create them)."""
    from grader.sandbox.cgroups import PREFIX

    found = []
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if PREFIX in path:
            for name in controllers.split(",") if controllers else [""]:
                found.append(Path("/sys/fs/cgroup", name, path.lstrip("/")))
    return found


EXITING = """
import json, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from grader.runner import grade
from grader.sandbox.proxy import use_fork_server
from grader.sandbox import forkserver
assert use_fork_server() and forkserver.current().ready(wait_s=30)
import os, time
from grader import cleanup
cleanup.defer(lambda: time.sleep(1))  # cleanup that runs late, as on a busy machine
result = grade("assignment1", Path(sys.argv[2]), device="cpu")
print(json.dumps([os.getpid(), result.score]))
"""


def test_a_grade_leaves_no_folder_and_no_cgroup_once_its_process_exits(tmp_path):
    """A grade returns before its worker's folder and cgroup and its copy of the submission
    are removed; the grading process still removes them all before it exits."""
    from grader.sandbox import cgroups

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", EXITING, str(ROOT), str(FIXTURES / "assignment1" / "correct")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "TMPDIR": str(scratch)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pid, score = json.loads(done.stdout)
    assert score == 100
    assert list(scratch.iterdir()) == []
    prefix = f"{cgroups.PREFIX}{pid}-"
    assert not [g for p in set(cgroups._parents().values()) for g in p.glob(f"{prefix}*")]


def test_the_next_worker_is_a_spare_the_template_forked_beforehand(template, submission):
    """Starting it waits for no other process: its request goes straight to the spare."""
    first, proxy = started(submission)
    try:
        assert parent(first, proxy) == template.process.pid
    finally:
        first.close(finish_later=True)
    cleanup.finish()  # the spare is made off the grade's path
    spare = template.spare
    assert spare is not None and spare != first.pid
    second, proxy = started(submission)
    try:
        assert parent(second, proxy) == template.process.pid
        assert second.pid == spare
        assert proxy.shout("spare") == 5
    finally:
        second.close(finish_later=True)
    cleanup.finish()
    assert template.spare not in (None, spare)
    assert not _zombie_of(first.pid, template.process.pid)  # the template reaped it


def test_a_spare_that_died_is_passed_over(template, submission):
    sandbox, proxy = started(submission)
    try:
        parent(sandbox, proxy)
    finally:
        sandbox.close()
    cleanup.finish()
    spare = template.spare
    assert spare is not None
    os.kill(spare, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not _zombie_of(spare, template.process.pid):
        assert time.monotonic() < deadline, "the spare did not die"
        time.sleep(0.01)
    sandbox, proxy = started(submission)
    try:
        assert parent(sandbox, proxy) == template.process.pid
        assert sandbox.pid != spare
    finally:
        sandbox.close()


def _zombie_of(pid: int, parent_pid: int) -> bool:
    """Whether `pid` is a child of `parent_pid` that has exited and is not reaped yet."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] == "Z" and int(fields[1]) == parent_pid
