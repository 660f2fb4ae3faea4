"""Hostile workers against the report path and the sync entries of replies.

A worker may send any frame: reports (`WorkerFunction.reporting_to`) need no answer, so it can
send many in one call, name any number it was given, and carry sync entries that reach what
`student.inplace` names. Whatever it sends, it must never reach a trusted object that
`inplace` does not name, never run an observer as a callback (whose return value and
exception go back to it), and never make the grader keep more than a message's worth of data
per call.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
from test_hostile_wire import FORGE
from test_portable import STUDENT, loss

from grader.portable import runs_in_worker
from grader.sandbox.limits import Limits
from grader.sandbox.proxy import Sandbox, SubmissionProxy, WorkerCrashed

ATTACKS = '''
def send_frames(*args, frames="[]"):
    """Write forged frames (JSON headers, zeroed blobs of the sizes given), then hang."""
    fd = _channel().write_fd
    _os.set_blocking(fd, True)
    for header, sizes in _json.loads(frames):
        text = _json.dumps({**header, "blobs": sizes}, separators=(",", ":")).encode()
        data = memoryview(_struct.pack(">IQ", len(text), sum(sizes)) + text + bytes(sum(sizes)))
        while data:
            data = data[_os.write(fd, data):]
    while True:
        _time.sleep(1)


def as_callback(f, point):
    """Call the observer of the reporting function `f` (number 0) as if it were a callback,
    and return what the grader answered."""
    channel = _channel()
    channel.send({"op": "callback", "id": 0, "args": {"$t": [point]}, "kwargs": {"$d": []}})
    reply, _ = channel.recv(from_grader=True)
    return [reply.get("op"), reply.get("value"), reply.get("message")]


def flood(f, x, size=1 << 20, count=64):
    """Report `count` calls of f, each at a point of `size` bytes, then return normally."""
    fd = _channel().write_fd
    _os.set_blocking(fd, True)
    n = size // 8
    text = _json.dumps({"op": "report", "id": 0, "kwargs": {"$d": []}, "sync": [],
                        "args": {"$t": [{"$a": 0, "dtype": "<f8", "shape": [n]}]},
                        "blobs": [size]}, separators=(",", ":")).encode()
    frame = _struct.pack(">IQ", len(text), size) + text + bytes(size)
    for _ in range(count):
        data = memoryview(frame)
        while data:
            data = data[_os.write(fd, data):]
    return count


def call_back_many(f, frame="{}", count=64):
    """Send the callback `frame` (with a zeroed 1 MB blob) `count` times, each answered."""
    channel = _channel()
    header = _json.loads(frame)
    for _ in range(count):
        channel.send(header, [bytes(1 << 20)])
        channel.recv(from_grader=True)
    return count
'''


@pytest.fixture
def student(tmp_path: Path):
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "student.py").write_text(STUDENT + "\n" + FORGE + "\n" + ATTACKS)
    box = Sandbox(folder, "student", Limits(call_timeout_s=5.0, max_message_mb=8))
    yield SubmissionProxy(box)
    box.close()


def _frames(*frames) -> str:
    return json.dumps(list(frames))


def test_a_report_cannot_alias_an_unnamed_argument_into_what_inplace_names(student):
    """The report's sync puts the trusted `other` (an argument inplace does not name) into
    the named dict by reference; the final reply then writes `other`'s bytes, which the
    grader now finds reachable from the named dict."""
    params = {"W": np.ones(3)}
    other = np.ones(3)  # say, the input a reference is computed on afterwards
    # Numbering: f (no values), params 0, params["W"] 1, other 2; the observer is number 0.
    report = {"op": "report", "id": 0, "args": {"$t": [1.0]}, "kwargs": {"$d": []},
              "sync": [[0, {"$d": [["W", {"$r": 2}]]}]]}  # fmt: skip
    result = {"op": "result", "value": None, "sync": [[2, 0]]}
    seen = []
    with student.inplace(params), contextlib.suppress(WorkerCrashed):
        student.send_frames(
            loss.reporting_to(seen.append), params, other,
            frames=_frames([report, []], [result, [24]]),
        )  # fmt: skip
    np.testing.assert_array_equal(other, np.ones(3))
    assert params["W"] is not other


def test_a_report_cannot_reach_the_values_a_worker_function_closes_over(student):
    """The same through a function's values, which a reference may read afterwards."""
    a = np.ones(3)

    @runs_in_worker
    def reads_a(x):
        return float(a @ x)

    params = {"W": np.ones(3)}
    # Numbering: a (reads_a's value) 0, params 1, params["W"] 2; the observer is number 0.
    report = {"op": "report", "id": 0, "args": {"$t": [1.0]}, "kwargs": {"$d": []},
              "sync": [[1, {"$d": [["W", {"$r": 0}]]}]]}  # fmt: skip
    result = {"op": "result", "value": None, "sync": [[0, 0]]}
    with student.inplace(params), contextlib.suppress(WorkerCrashed):
        student.send_frames(
            reads_a.reporting_to(print), params, frames=_frames([report, []], [result, [24]])
        )
    np.testing.assert_array_equal(a, np.ones(3))
    assert params["W"] is not a


def test_a_reply_cannot_alias_an_unnamed_argument_for_the_next_call(student):
    """Without reports: one reply aliases, the next call (the same inplace block, the same
    arguments, as a loop over steps does) writes through the alias."""
    params = {"W": np.ones(3)}
    grads = {"W": np.ones(3)}
    # Numbering: params 0, params["W"] 1, grads 2, grads["W"] 3.
    alias = {"op": "result", "value": None, "sync": [[0, {"$d": [["W", {"$r": 3}]]}]]}
    with student.inplace(params):
        with contextlib.suppress(WorkerCrashed):
            student.send_frames(params, grads, frames=_frames([alias, []]))
        student._sandbox._kill()  # the forging worker hangs
        # params["W"] is now grads["W"] itself, if the alias landed: numbered 1 and 3 alike.
        write = {"op": "result", "value": None, "sync": [[1, 0]]}
        with contextlib.suppress(WorkerCrashed):
            student.send_frames(params, grads, frames=_frames([write, [24]]))
    np.testing.assert_array_equal(grads["W"], np.ones(3))


def test_a_result_is_never_the_trusted_sides_own_argument(student):
    """A legitimate worker never sends a reference in a result: a forged one must not hand
    the check its own (unnamed) argument as the student's result."""
    x = np.ones(3)
    forged = {"op": "result", "value": {"$r": 0}}
    try:
        got = student.forge_after(x, forged)
    except WorkerCrashed:
        return
    assert got is not x


def test_a_worker_cannot_run_an_observer_as_a_callback(student):
    """An observer's return value is dropped and what it raises fails the check: a worker
    that names it in a callback instead would read the one and swallow the other."""

    def observer(point):
        if point > 0:
            raise AssertionError("expected 0.5 at this point")  # the check's evidence
        return "the reference's answer"

    op, value, message = student.as_callback(loss.reporting_to(observer), 1.0)
    assert op == "callback_error"
    assert "expected 0.5" not in message
    op, value, message = student.as_callback(loss.reporting_to(observer), -1.0)
    assert (op, value) == ("callback_error", None)


def test_a_worker_cannot_make_a_callback_run_as_an_observer(student):
    calls = []

    def callback(x):
        calls.append(x)
        return x

    report = {"op": "report", "id": 0, "args": {"$t": [1.0]}, "kwargs": {"$d": []}}
    result = {"op": "result", "value": None}
    with contextlib.suppress(WorkerCrashed):
        student.send_frames(callback, frames=_frames([report, []], [result, []]))
    assert calls == []


def test_reports_cannot_make_the_grader_keep_more_than_a_message_limit_per_call(student):
    """Reports need no answer: a worker can send them as fast as the pipe takes them, and an
    observer that records its points (as assignment4's does) keeps every one."""
    kept = []

    def record(point):
        kept.append(np.array(point, dtype=np.float64))

    x = np.ones(2)
    try:
        student.flood(loss.reporting_to(record), x, size=1 << 20, count=64)
    except WorkerCrashed as error:
        assert "report" in error.message
    assert sum(p.nbytes for p in kept) <= 8 << 20


def test_callbacks_cannot_make_the_grader_keep_more_than_a_message_limit_per_call(student):
    """A callback is answered, so it floods more slowly than a report, but a check's function
    that records its points keeps them all the same."""
    kept = []

    def record(point):
        kept.append(np.array(point, dtype=np.float64))
        return 0.0

    n = (1 << 20) // 8
    callback = {
        "op": "callback",
        "id": 0,
        "args": {"$t": [{"$a": 0, "dtype": "<f8", "shape": [n]}]},
        "kwargs": {"$d": []},
    }
    with pytest.raises(WorkerCrashed, match="calls back and reports of more than 8 MB"):
        student.call_back_many(record, frame=json.dumps(callback), count=64)
    assert sum(p.nbytes for p in kept) <= 8 << 20


def test_an_observer_that_stops_the_check_leaves_no_stale_reply_for_the_next_call(student):
    """Reports need no answer, so the worker goes on with the call while the observer runs:
    when the observer stops the check (pytest.fail), the old call's later reports and its
    result must never be read as the next call's reply."""

    def stop(x):
        pytest.fail("the check stops here")

    with pytest.raises(pytest.fail.Exception, match="the check stops here"):
        student.gradient(loss.reporting_to(stop), np.array([1.0, 2.0]))
    x = np.array([3.0, 4.0])
    np.testing.assert_allclose(student.gradient(loss, x), [12.0, 16.0], rtol=1e-6)
    assert student.call(loss, np.array([1.0, 1.0])) == pytest.approx(4.0)
