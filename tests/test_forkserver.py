"""Workers forked from the fork server's template behave exactly like workers started anew."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    forked, proxy = started(submission)
    try:
        assert parent(forked, proxy) == template.process.pid
    finally:
        forked.close()
    forkserver.disable()
    fresh, proxy = started(submission)
    try:
        assert parent(fresh, proxy) == os.getpid()
    finally:
        fresh.close()
    assert forked.protections == fresh.protections
    assert forked.applied_limits == fresh.applied_limits


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
