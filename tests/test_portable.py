"""Functions marked `runs_in_worker` run next to the student's code, and carry nothing else.

A check's function that the student's code calls many times (assignment4's loss) can travel
to the worker as its own source text instead of being called back over the pipe. The worker
must receive that function's text and nothing else of the check's file, the function must
find nothing of the trusted process where it runs, the trusted side must never run a
function a worker sends, and a function that needs anything but its arguments, NumPy, math
and builtins must be refused where the check defines it.
"""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
from test_hostile_wire import FORGE

from grader.portable import runs_in_worker
from grader.sandbox.codec import Decoder, Encoder, ProtocolError, WorkerFunction
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
    assert seen["globals"] == ["__builtins__", "loss", "math", "np", "numpy"]
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


def _closure():
    scale = 3.0

    def scaled(x):
        return scale * x

    return scaled


def uses_helper(x):
    return secret_helper(x)


def uses_constant(x):
    return x + len(SECRET)


def default_from_global(x, h=SECRET):
    return x


@pytest.mark.parametrize(
    ("function", "error", "words"),
    [
        (_closure(), ValueError, "enclosing function"),
        (uses_helper, ValueError, "'secret_helper'"),
        (uses_constant, ValueError, "'SECRET'"),
        (default_from_global, ValueError, "cannot run on its own"),
        (lambda x: x, TypeError, "def"),
        (np.sum, TypeError, "def"),
    ],
    ids=["closure", "helper", "constant", "default", "lambda", "builtin"],
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
