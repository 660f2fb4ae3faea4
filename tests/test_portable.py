"""Functions marked `runs_in_worker` run next to the student's code, and carry nothing else.

A check's function that the student's code calls many times (assignment4's loss) can travel
to the worker as its own source text instead of being called back over the pipe. The worker
must receive that function's text and nothing else of the check's file, the function must
find nothing of the trusted process where it runs, the trusted side must never run a
function a worker sends, and a function that needs anything but its arguments, NumPy, math
and builtins must be refused where the check defines it.
"""

from __future__ import annotations

import builtins
import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
from test_hostile_wire import FORGE

from grader.portable import runs_in_worker
from grader.sandbox.codec import Decoder, Encoder, ProtocolError, WorkerFunction, define_function
from grader.sandbox.limits import Limits
from grader.sandbox.proxy import Sandbox, SubmissionProxy, WorkerCrashed

SECRET = "hidden-answer-4242"  # the rest of a "check file": it must never reach the worker


def secret_helper(x):
    return SECRET


@runs_in_worker
def loss(x, scale=2.0):
    """The textbook's f(x0, x1) = x0^2 + x1^2, scaled."""
    return scale * (x[0] ** 2 + x[1] ** 2) + math.pi * 0


STUDENT = '''
import numpy as np


def gradient(f, x, h=1e-4):
    grad = np.zeros_like(x)
    for i in range(x.size):
        keep = x[i]
        x[i] = keep + h
        high = f(x)
        x[i] = keep - h
        grad[i] = (high - f(x)) / (2 * h)
        x[i] = keep
    return grad


def describe(f):
    """Everything the function carries with it, as the student's code can see it."""
    code = f.__code__
    return {
        "type": type(f).__name__,
        "file": code.co_filename,
        "globals": sorted(f.__globals__),
        "consts": repr(code.co_consts),
        "names": list(code.co_names),
        "defaults": repr(f.__defaults__),
        "module": repr(f.__module__),
    }


def tamper_and_call(f, x):
    """Whatever the student does to the function stays in the worker."""
    f.__globals__["np"] = None
    f.__defaults__ = (1000.0,)
    return f(x)


def call(f, *args):
    return f(*args)


def call_then_fail(f, *args):
    f(*args)
    raise ValueError("the student's own bug, later")


def closure_of(f):
    """The values the function closes over, as the student's code sees them."""
    return [cell.cell_contents for cell in f.__closure__ or ()]


def scribble_and_call(f, x):
    """Writes into every array the function closes over, then calls it."""
    for value in closure_of(f):
        if isinstance(value, np.ndarray):
            value[...] = 0
    return f(x)


def perturb_and_call(f, x):
    """Like numerical_gradient: perturbs x in place, then calls f."""
    x[0] += 1.0
    return f(x)


def keep(f):
    """Keeps the function past the call that brought it."""
    global _kept
    _kept = f


def call_kept(x):
    return _kept(x)


def forge_with(f, header):
    """`forge`, in a call that was given `f`."""
    _forge(header)


class Counter:
    def __init__(self):
        self.count = 0

    def step(self, amounts):
        for amount in amounts:
            self.count += amount
        return self.count

    def fail_at(self, count):
        if self.count >= count:
            raise ValueError(f"the student's bug at {self.count}")
        self.count += 1


def ask_grader_to_run(f):
    """Asks the grader to call back function number 0 of this call, which the grader never
    registered: the function it sent here runs here, never there at the worker's request."""
    channel = _channel()
    channel.send({"op": "callback", "id": 0, "args": {"$t": [1.0]}, "kwargs": {"$d": []}})
    reply, _ = channel.recv(from_grader=True)
    return [reply.get("op"), reply.get("message")]
'''


@pytest.fixture
def student(tmp_path: Path):
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "student.py").write_text(STUDENT + "\n" + FORGE)
    box = Sandbox(folder, "student", Limits(call_timeout_s=5.0))
    yield SubmissionProxy(box)
    box.close()


def test_a_marked_function_runs_in_the_worker_without_calling_back(student, monkeypatch):
    def no_callbacks(*args, **kwargs):
        raise AssertionError("the function was called back in the trusted process")

    monkeypatch.setattr(Sandbox, "_answer_callback", no_callbacks)
    got = student.gradient(loss, np.array([3.0, 4.0]))
    np.testing.assert_allclose(got, [12.0, 16.0], rtol=1e-8)
    assert student.describe(loss)["type"] == "function"


def test_called_in_the_trusted_process_it_runs_there():
    assert isinstance(loss, WorkerFunction)
    assert loss(np.array([1.0, 2.0])) == 10.0
    assert loss(np.array([1.0, 2.0]), scale=1.0) == 5.0


def test_the_worker_receives_the_functions_text_and_nothing_else_of_its_file():
    node = Encoder().encode(loss)
    assert set(node) == {"$w", "name"}
    assert node["$w"].startswith('def loss(x, scale=2.0):\n    """The textbook')
    text = json.dumps(node)
    assert SECRET not in text
    assert "secret_helper" not in text
    assert "runs_in_worker" not in text  # no decorator line either


def test_in_the_worker_the_function_reaches_only_numpy_math_and_builtins(student):
    seen = student.describe(loss)
    assert seen["globals"] == ["__builtins__", "math", "np", "numpy"]
    assert seen["file"] == "<grader's loss>"
    assert seen["defaults"] == "(2.0,)"
    assert SECRET not in json.dumps(seen)
    assert "test_portable" not in json.dumps(seen)


def test_what_the_student_does_to_the_function_stays_in_the_worker(student):
    assert student.tamper_and_call(loss, np.array([1.0, 1.0])) == 2000.0
    assert loss.function.__defaults__ == (2.0,)
    assert loss.function.__globals__["np"] is np
    assert loss(np.array([1.0, 1.0])) == 4.0


def test_the_trusted_side_refuses_a_function_a_worker_sends(student):
    forged = {"op": "result", "value": {"$w": "def f():\n    return 1", "name": "f"}}
    with pytest.raises(WorkerCrashed, match="unexpected function"):
        student.forge(forged)


@pytest.mark.parametrize(
    "node",
    [
        {"$w": "def f():\n    return 1", "name": "f"},
        {"$w": 5, "name": "f"},
        {"$w": "def f():\n    return 1"},
    ],
)
def test_a_decoder_without_make_function_refuses_function_nodes(node):
    with pytest.raises(ProtocolError, match="unexpected function"):
        Decoder([]).decode(node)


def _closes_over(value):
    def reads(x):
        return value

    return reads


def _counter():
    calls = 0

    def counted(x):
        nonlocal calls
        calls += 1
        return x

    return counted


def uses_helper(x):
    return secret_helper(x)


def uses_constant(x):
    return x + len(SECRET)


def default_from_global(x, h=SECRET):
    return x


@pytest.mark.parametrize(
    ("function", "error", "words"),
    [
        (uses_helper, ValueError, "'secret_helper'"),
        (uses_constant, ValueError, "'SECRET'"),
        (default_from_global, ValueError, "cannot run on its own"),
        (lambda x: x, TypeError, "def"),
        (np.sum, TypeError, "def"),
        (_closes_over(secret_helper), TypeError, "reads value, a function"),
        (_closes_over(loss), TypeError, "reads value, a WorkerFunction"),
        (_closes_over([1.0, 2.0]), TypeError, "reads value, a list"),
        (_closes_over({"w": np.ones(2)}), TypeError, "reads value, a dict"),
        (_closes_over(np.array([None])), TypeError, "reads value, a ndarray"),
        (_closes_over(np.random.default_rng(0)), TypeError, "reads value, a Generator"),
        (_closes_over(np.ones(2).view(np.matrix)), TypeError, "reads value, a matrix"),
        (_counter(), ValueError, "assigns calls of an enclosing function"),
    ],
    ids=[
        "helper",
        "constant",
        "default",
        "lambda",
        "builtin",
        "closure-over-a-function",
        "closure-over-a-worker-function",
        "closure-over-a-list",
        "closure-over-a-dict",
        "closure-over-an-object-array",
        "closure-over-a-generator",
        "closure-over-an-array-subclass",
        "nonlocal-write",
    ],
)
def test_a_function_that_needs_more_than_itself_is_refused(function, error, words):
    with pytest.raises(error, match=words):
        runs_in_worker(function)


def test_a_nested_definition_is_shipped_alone(tmp_path):
    source = textwrap.dedent(
        """
        import numpy as np
        from grader.portable import runs_in_worker

        KEEP_OUT = "not for the worker"


        def factory():
            @runs_in_worker
            def inner(x):
                return np.sum(x)

            return inner
        """
    )
    module = tmp_path / "nested_check.py"
    module.write_text(source)
    namespace = {"__name__": "nested_check"}
    exec(compile(source, str(module), "exec"), namespace)
    shipped = namespace["factory"]()
    assert shipped.source == "def inner(x):\n    return np.sum(x)"


# -- functions that close over data: the values travel with the text, as data ------------


def test_a_function_closing_over_arrays_and_numbers_runs_in_the_worker(student, monkeypatch):
    def no_callbacks(*args, **kwargs):
        raise AssertionError("the function was called back in the trusted process")

    monkeypatch.setattr(Sandbox, "_answer_callback", no_callbacks)
    a = np.array([[2.0, 0.5], [0.5, 1.0]])
    b = np.array([1.0, -1.0])
    scale = 0.5

    @runs_in_worker
    def quadratic(x):
        return scale * x @ a @ x + b @ x

    x = np.array([3.0, 4.0])
    np.testing.assert_allclose(student.gradient(quadratic, x.copy()), a @ x + b, rtol=1e-8)
    seen = student.closure_of(quadratic)
    np.testing.assert_array_equal(seen[0], a)
    np.testing.assert_array_equal(seen[1], b)
    assert seen[2] == scale
    assert student.describe(quadratic)["globals"] == ["__builtins__", "math", "np", "numpy"]


def test_only_the_text_and_the_values_it_reads_travel():
    a = np.arange(3.0)
    unused = SECRET

    @runs_in_worker
    def dot(x):
        return x @ a

    assert unused
    encoder = Encoder()
    node = encoder.encode(dot)
    assert node["$w"] == "def dot(x):\n    return x @ a"
    assert node["free"] == ["a"]
    assert node["cells"] == [{"$a": 0, "dtype": "<f8", "shape": [3]}]
    assert encoder.blobs == [a.tobytes()]
    assert SECRET not in json.dumps(node)


def test_its_values_are_read_each_time_it_is_sent(student):
    scale = 2.0

    @runs_in_worker
    def scaled(x):
        return scale * x

    assert student.call(scaled, 3.0) == 6.0
    scale = 5.0
    assert student.call(scaled, 3.0) == 15.0
    assert scaled(3.0) == 15.0
    scale = secret_helper  # rebound to something that is not data: refused, nothing sent
    with pytest.raises(TypeError, match="reads scale, a function"):
        student.call(scaled, 3.0)


def test_a_value_read_before_it_is_assigned_is_refused():
    def early(x):
        return x + late

    with pytest.raises(TypeError, match="reads late before it is assigned"):
        runs_in_worker(early)
    late = 1.0
    assert runs_in_worker(early)(1.0) == 2.0


def test_what_the_student_writes_into_its_values_stays_in_the_worker(student):
    a = np.ones(3)

    @runs_in_worker
    def total(x):
        return float(a.sum()) + x

    assert student.scribble_and_call(total, 1.0) == 1.0
    np.testing.assert_array_equal(a, np.ones(3))
    assert total(1.0) == 4.0
    assert student.call(total, 1.0) == 4.0  # the next call gets the values afresh


def test_a_value_it_closes_over_that_is_also_an_argument_arrives_as_that_argument(student):
    """The textbook's `lambda w: net.loss(x, t)`: f ignores its argument and reads the very
    array numerical_gradient perturbs, as it would in one process."""
    w = np.array([1.0, 2.0])

    @runs_in_worker
    def reads_w(_):
        return float(w.sum())

    assert student.perturb_and_call(reads_w, w) == 4.0
    np.testing.assert_array_equal(w, [1.0, 2.0])  # a copy: the check did not name it
    with student.inplace(w):
        assert student.perturb_and_call(reads_w, w) == 4.0
    np.testing.assert_array_equal(w, [2.0, 2.0])


def test_the_worker_cannot_make_the_grader_run_a_function_sent_to_it(student):
    calls = np.zeros(1)  # what the function would change if the grader ran it

    @runs_in_worker
    def counted(x):
        calls[0] += 1
        return x

    op, message = student.ask_grader_to_run(counted)
    assert op == "callback_error"
    assert "no longer available" in message
    np.testing.assert_array_equal(calls, [0.0])


@pytest.mark.parametrize(
    "forged",
    [
        {"op": "result", "value": {"$w": "def f(x):\n    return a", "name": "f",
                                    "free": ["a"], "cells": [1.0]}},
        {"op": "callback", "id": 0, "kwargs": {"$d": []},
         "args": {"$t": [{"$w": "def f():\n    return 1", "name": "f"}]}},
    ],
    ids=["result", "callback-arguments"],
)  # fmt: skip
def test_the_trusted_side_refuses_a_function_with_values_a_worker_sends(student, forged):
    with pytest.raises(WorkerCrashed, match="unexpected function"):
        student.forge(forged)


def test_a_function_node_is_refused_before_its_values_are_decoded():
    node = {"$w": "def f():\n    return 1", "name": "f", "free": ["a"], "cells": [{"$a": 0}]}
    decoder = Decoder([b"x" * 8])
    with pytest.raises(ProtocolError, match="unexpected function"):
        decoder.decode(node)
    assert decoder.refs == {} and decoder._used_blobs == set()


@pytest.mark.parametrize(
    "extra",
    [
        {"free": "a", "cells": [1.0]},
        {"free": ["a"], "cells": 1.0},
        {"free": ["a", "b"], "cells": [1.0]},
        {"free": ["a b"], "cells": [1.0]},
        {"free": [1], "cells": [1.0]},
    ],
    ids=["free-not-a-list", "cells-not-a-list", "lengths-differ", "not-a-name", "not-a-string"],
)
def test_a_malformed_closure_is_refused_where_functions_are_made(extra):
    node = {"$w": "def f(x):\n    return a", "name": "f", **extra}
    with pytest.raises(ProtocolError, match="bad function closure"):
        Decoder([], make_function=lambda *made: made).decode(node)


def test_each_definition_carries_its_own_values(student):
    for scale in (1.0, 2.0, 3.0):

        @runs_in_worker
        def scaled(x):
            return scale * x  # noqa: B023 (read when sent, which is now)

        assert student.call(scaled, 2.0) == 2.0 * scale


def test_every_definition_is_checked_even_when_its_code_was_read_before(tmp_path):
    source = textwrap.dedent(
        """
        import numpy as np
        from grader.portable import runs_in_worker

        if STAND_IN is not None:
            np = STAND_IN


        @runs_in_worker
        def total(x):
            return np.sum(x)
        """
    )
    module = tmp_path / "imported_twice.py"
    module.write_text(source)
    code = compile(source, str(module), "exec")
    exec(code, {"__name__": "imported_twice", "STAND_IN": None})
    with pytest.raises(ValueError, match="uses the global 'np'"):
        exec(code, {"__name__": "imported_twice", "STAND_IN": math})


@pytest.mark.parametrize("free", [(), ("a",)], ids=["plain", "closure"])
@pytest.mark.parametrize(
    "source",
    ["def g(x):\n    return x", "x = 1", "f = len", ""],
    ids=["another-name", "no-definition", "not-a-def", "empty"],
)
def test_a_text_that_does_not_define_the_function_is_refused(source, free):
    with pytest.raises(ValueError, match="does not define it"):
        define_function("f", source, free, {"__builtins__": builtins})


def test_a_multiline_string_in_a_closure_travels_unchanged(student):
    offset = 1.0

    @runs_in_worker
    def described(x):
        """First line.

        An indented second paragraph, which indenting the text would change.
        """
        text = """a
b"""
        return len(text) + x + offset

    assert "indenting the text" in described.function.__doc__
    assert student.call(described, 1.0) == 5.0


# -- functions that report their calls: evidence for the check, without a round trip -----

H = 1e-4


def perturbed_points(x):
    """The points `gradient` calls f at, in order."""
    points = []
    for i in range(x.size):
        for step in (H, -H):
            point = x.copy()
            point[i] += step
            points.append(point)
    return points


def test_a_reporting_function_runs_in_the_worker_and_its_observer_sees_every_call(
    student, monkeypatch
):
    def no_callbacks(*args, **kwargs):
        raise AssertionError("the function was called back in the trusted process")

    monkeypatch.setattr(Sandbox, "_answer_callback", no_callbacks)
    points = []

    def observer(point):
        points.append(point)
        return 1000.0  # dropped: the student's code gets what loss returns in the worker

    x = np.array([3.0, 4.0])
    got = student.gradient(loss.reporting_to(observer), x.copy())
    np.testing.assert_allclose(got, [12.0, 16.0], rtol=1e-8)
    assert len(points) == 4
    for point, want in zip(points, perturbed_points(x), strict=True):
        np.testing.assert_array_equal(point, want)


def test_the_observer_sees_what_inplace_names_as_it_was_at_each_call(student):
    x = np.array([3.0, 4.0])
    seen = []
    with student.inplace(x):
        student.gradient(loss.reporting_to(lambda point: seen.append(x.copy())), x)
    for now, want in zip(seen, perturbed_points(np.array([3.0, 4.0])), strict=True):
        np.testing.assert_array_equal(now, want)
    np.testing.assert_array_equal(x, [3.0, 4.0])


def test_what_the_observer_raises_fails_the_call_when_it_returns(student):
    def observer(point):
        raise KeyError("the check's own mistake")

    with pytest.raises(KeyError, match="the check's own mistake"):
        student.gradient(loss.reporting_to(observer), np.array([1.0, 1.0]))
    assert student.call(loss, np.array([1.0, 1.0])) == 4.0  # the next call is in step


def test_what_the_observer_found_comes_before_what_the_students_code_raised_after(student):
    def observer(point):
        raise AssertionError("f was called at a point off the grid")

    with pytest.raises(AssertionError, match="off the grid"):
        student.call_then_fail(loss.reporting_to(observer), np.array([1.0, 1.0]))


def test_a_reporting_function_kept_past_its_call_reports_nothing(student):
    points = []
    student.keep(loss.reporting_to(points.append))
    assert student.call_kept(np.array([1.0, 1.0])) == 4.0
    assert points == []


def test_a_reporting_function_travels_only_in_a_call():
    with pytest.raises(TypeError, match="pass it in a call"):
        Encoder().encode(loss.reporting_to(print))


@pytest.mark.parametrize(
    ("report", "words"),
    [
        ({"id": 1, "args": {"$t": [1.0]}, "kwargs": {"$d": []}}, "bad report id"),
        ({"id": [0], "args": {"$t": [1.0]}, "kwargs": {"$d": []}}, "bad report id"),
        ({"id": 0, "args": [1.0], "kwargs": {"$d": []}}, "bad report arguments"),
        ({"id": 0, "args": {"$t": [{"$w": "def f():\n    return 1", "name": "f"}]},
          "kwargs": {"$d": []}}, "unexpected function"),
        ({"id": 0, "args": {"$t": [1.0]}, "kwargs": {"$d": []}, "sync": [[999_999, 1.0]]},
         "bad sync entry"),
    ],
    ids=["unknown-id", "unhashable-id", "arguments-not-a-tuple", "a-function", "unknown-sync"],
)  # fmt: skip
def test_a_report_the_grader_cannot_take_is_refused_unobserved(student, report, words):
    observed = []
    with pytest.raises(WorkerCrashed, match=words):
        student.forge_with(loss.reporting_to(observed.append), {"op": "report", **report})
    assert observed == []


def test_a_report_in_a_call_that_passed_no_observer_is_refused(student):
    report = {"op": "report", "id": 0, "args": {"$t": [1.0]}, "kwargs": {"$d": []}}
    with pytest.raises(WorkerCrashed, match="bad report id"):
        student.forge(report)


def test_a_bad_observer_number_is_refused_where_functions_are_made():
    node = {"$w": "def f(x):\n    return x", "name": "f", "report": "0"}
    with pytest.raises(ProtocolError, match="bad function observer"):
        Decoder([], make_function=lambda *made: made).decode(node)


def test_an_observer_may_not_call_into_the_worker(student):
    """More reports may wait in the pipe while an observer runs: a call from it would read
    them as its reply, so it is refused, and the call ends in step."""

    def observer(point):
        student.call(loss, point)

    with pytest.raises(RuntimeError, match="may not call into the worker"):
        student.gradient(loss.reporting_to(observer), np.array([1.0, 1.0]))
    assert student.call(loss, np.array([1.0, 1.0])) == 4.0


def test_called_in_the_trusted_process_a_reporting_function_tells_its_observer_first():
    seen = []
    reporting = loss.reporting_to(lambda x, scale=2.0: seen.append((list(x), scale)))
    assert reporting(np.array([1.0, 2.0]), scale=1.0) == 5.0
    assert seen == [([1.0, 2.0], 1.0)]
    assert loss.observer is None  # reporting_to makes a new function


@runs_in_worker
def counts_along(counter, steps):
    """Each step's count, as the worker's counter leaves it."""
    return [counter.step([1.0, step]) for step in steps]


@runs_in_worker
def fails_along(counter, steps):
    for _ in range(steps):
        counter.fail_at(3)
    return "never"


def test_run_loops_over_the_students_object_in_one_request(student, monkeypatch):
    counter = student.Counter()
    requests = []
    request = Sandbox._request
    monkeypatch.setattr(
        Sandbox, "_request", lambda box, *a, **k: requests.append(a[0]) or request(box, *a, **k)
    )
    got = student.run(counts_along, counter, np.arange(4.0), label="Counter.step()")
    assert got == [1.0, 3.0, 6.0, 10.0]
    assert len(requests) == 1
    assert counter.count == 10  # the worker's own object, not a copy
    assert student._sandbox.last_function == "Counter.step"


def test_run_reports_the_students_exception_under_the_label_it_was_given(student):
    from grader.sandbox.proxy import StudentException

    with pytest.raises(StudentException) as raised:
        student.run(fails_along, student.Counter(), 10, label="Counter.fail_at()")
    assert "the student's bug at 3" in str(raised.value)
    assert "Counter.fail_at()" in str(raised.value)


def test_run_takes_only_a_shipped_function_without_an_observer(student):
    with pytest.raises(TypeError, match="runs_in_worker"):
        student.run(lambda counter: counter, student.Counter(), label="Counter()")
    with pytest.raises(TypeError, match="observer"):
        student.run(counts_along.reporting_to(print), student.Counter(), [1.0], label="x()")
