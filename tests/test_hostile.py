"""Hostile submissions: each is contained, scores what it earned, and never hangs the grader.

Each case injects code into the correct assignment1 submission. The per-call timeout is cut
to 2 s so the suite stays fast; the grade must still complete with every check reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import survivors, unique_marker

from grader.runner import grade

FAST = {"call_timeout_s": 2.0, "import_timeout_s": 10.0}


def replace_function(name: str, body: str) -> callable:
    """A transform that swaps the body of top-level function `name` for `body`."""

    def transform(source: str) -> str:
        header = f"def {name}(x1, x2):\n"
        start = source.index(header) + len(header)
        end = source.index("\n\n\n", start)
        indented = "".join(f"    {line}\n" for line in body.strip().splitlines())
        return source[:start] + indented.rstrip("\n") + source[end:]

    return transform


def graded(course, make_submission, transform):
    assignment = course.assignment("assignment1")
    limits = assignment.limits.with_overrides(**FAST)
    return grade(
        "assignment1",
        make_submission("assignment1", transform),
        course=course,
        limits=limits,
        device="cpu",
    )


def by_name(result):
    return {t.id.split("::")[-1]: t for t in result.tests}


def test_infinite_loop_in_a_call_times_out_only_the_checks_that_call_it(course, make_submission):
    result = graded(course, make_submission, replace_function("AND", "while True:\n    pass"))
    checks = by_name(result)
    for name in (
        "test_and_truth_table",
        "test_xor_truth_table",
        "test_gates_accept_numpy_integers[AND]",
        "test_gates_accept_numpy_integers[XOR]",
    ):
        assert checks[name].status == "timeout"
        assert "did not finish within 2 s" in checks[name].message
        assert "Hint" not in checks[name].message
    assert checks["test_or_truth_table"].status == "passed"
    assert checks["test_gates_accept_numpy_integers[OR]"].status == "passed"
    assert checks["test_perceptron_generalises_on_separable_data"].status == "passed"
    assert result.score == 100 - 7 - 8 - 1 - 2
    assert result.worker["starts"] >= 2


def test_sys_exit_at_import_fails_every_check_with_the_reason(course, make_submission):
    result = graded(course, make_submission, lambda s: "import sys\nsys.exit(0)\n" + s)
    assert result.score == 0
    assert all(t.status == "error" for t in result.tests)
    assert all("sys.exit(0) was called" in t.message for t in result.tests)
    assert result.worker["starts"] == 1


def test_syntax_error_reports_the_students_line(course, make_submission):
    result = graded(
        course, make_submission, lambda s: s.replace("def XOR(x1, x2):", "def XOR(x1, x2)")
    )
    assert result.score == 0
    message = result.tests[0].message
    assert "could not be imported" in message
    assert "SyntaxError" in message
    assert message.count("perceptron.py, line") == 1


def test_os_exit_in_a_call_is_a_crash_and_the_worker_restarts(course, make_submission):
    result = graded(course, make_submission, replace_function("OR", "import os\nos._exit(0)"))
    checks = by_name(result)
    assert checks["test_or_truth_table"].status == "error"
    assert "exited with code 0" in checks["test_or_truth_table"].message
    assert checks["test_and_truth_table"].status == "passed"
    assert checks["test_perceptron_learns_gate[AND]"].status == "passed"
    assert result.score == 100 - 7 - 8 - 1 - 2


def test_huge_allocation_hits_the_memory_limit(course, make_submission):
    result = graded(
        course,
        make_submission,
        replace_function("NAND", "big = np.ones(6 * 1024**3 // 8)\nreturn 1"),
    )
    checks = by_name(result)
    assert checks["test_nand_truth_table"].status == "error"
    assert "MemoryError" in checks["test_nand_truth_table"].message
    assert checks["test_and_truth_table"].status == "passed"


def test_printing_50_megabytes_is_captured_and_capped(course, make_submission):
    result = graded(
        course,
        make_submission,
        lambda s: s.replace(
            "def XOR(x1, x2):\n", "def XOR(x1, x2):\n    print('x' * 50_000_000)\n"
        ),
    )
    assert result.score == 100
    assert len(result.student_output) < 70 * 1024
    assert "more bytes of output dropped" in result.student_output


def test_monkeypatching_numpy_and_builtins_in_the_worker_changes_nothing(course, make_submission):
    patch = (
        "import builtins, numpy.testing\n"
        "np.allclose = lambda *a, **k: True\n"
        "np.array_equal = lambda *a, **k: True\n"
        "numpy.testing.assert_allclose = lambda *a, **k: None\n"
        "builtins.isinstance = lambda *a: True\n"
    )
    result = graded(
        course,
        make_submission,
        lambda s: s.replace("\ndef AND", "\n" + patch + "\ndef AND", 1).replace(
            "np.array([0.5, 0.5]), -0.7", "np.array([0.5, 0.5]), 0.7"
        ),
    )
    checks = by_name(result)
    assert checks["test_and_truth_table"].status == "failed"
    assert "AND(0, 0): got 1, expected 0" in checks["test_and_truth_table"].message


def test_object_whose_eq_is_always_true_never_passes(course, make_submission):
    liar = (
        "class Liar:\n"
        "    def __eq__(self, other):\n        return True\n"
        "    def __bool__(self):\n        return True\n"
        "def AND(x1, x2):\n    return Liar()\n"
    )
    result = graded(course, make_submission, lambda s: s + "\n\n" + liar)
    check = by_name(result)["test_and_truth_table"]
    assert check.status == "failed"
    assert "expected an array, got an object" in check.message


def test_ndarray_subclass_comes_back_as_a_plain_array(course, make_submission):
    subclass = (
        "class Agreeable(np.ndarray):\n"
        "    def __eq__(self, other):\n        return np.ones(np.shape(self), dtype=bool)\n"
        "_predict = Perceptron.predict\n"
        "def _lying_predict(self, X):\n"
        "    return np.zeros(len(X), dtype=int).view(Agreeable)\n"
        "Perceptron.predict = _lying_predict\n"
    )
    result = graded(course, make_submission, lambda s: s + "\n\n" + subclass)
    checks = by_name(result)
    assert checks["test_predict_is_vectorised"].status == "failed"
    assert checks["test_perceptron_generalises_on_separable_data"].status == "failed"


def test_frame_and_gc_inspection_finds_no_expected_values(course, make_submission):
    snoop = (
        "import gc, sys\n"
        "frame, names = sys._getframe(), set()\n"
        "while frame is not None:\n"
        "    names.update(frame.f_locals)\n"
        "    frame = frame.f_back\n"
        "if 'want' in names or 'expected' in names:\n"
        "    return 'found the answer'\n"
        "arrays = [o for o in gc.get_objects() if isinstance(o, np.ndarray)]\n"
        "return 0"
    )
    result = graded(course, make_submission, replace_function("AND", snoop))
    check = by_name(result)["test_and_truth_table"]
    assert check.status == "failed"
    assert "AND(1, 1): got 0, expected 1" in check.message


@pytest.mark.parametrize("value", ["np.array(['1'], dtype=object)", "lambda: 1"])
def test_unsendable_return_values_fail_the_check_cleanly(course, make_submission, value):
    result = graded(course, make_submission, replace_function("AND", f"return {value}"))
    check = by_name(result)["test_and_truth_table"]
    assert check.status in ("failed", "error")
    assert check.score == 0
    assert np.isfinite(result.score)


def test_importing_a_forbidden_library_is_refused_before_running(course, make_submission):
    result = graded(course, make_submission, lambda s: "import torch\n" + s)
    assert result.score == 0
    assert all("line 1 imports torch, which this assignment does not allow" in t.message
               for t in result.tests)  # fmt: skip
    assert result.worker["starts"] == 0


def test_a_hidden_import_of_a_forbidden_library_fails_at_run_time(course, make_submission):
    sneaky = 'import importlib\nreturn int(importlib.import_module("to" + "rch").tensor(1))'
    result = graded(course, make_submission, replace_function("AND", sneaky))
    check = by_name(result)["test_and_truth_table"]
    assert check.status == "error"
    assert "torch may not be used in this assignment" in check.message
    assert by_name(result)["test_or_truth_table"].status == "passed"


def _protected(result, protection: str) -> bool:
    return result.worker["protections"].get(protection, "").startswith("active")


@pytest.mark.parametrize(
    "target",
    ["reference/assignment1.py", "assignments/assignment1/checks/hidden/test_perceptron.py"],
)
def test_course_files_cannot_be_read_from_the_worker(course, make_submission, target):
    path = course.root / target
    body = f"return len(open({str(path)!r}).read())"
    result = graded(course, make_submission, replace_function("AND", body))
    check = by_name(result)["test_and_truth_table"]
    if not _protected(result, "filesystem"):
        assert result.worker["protections"]["filesystem"].startswith("unavailable")
        return
    assert check.status == "error"
    # Denied by Landlock, or absent from the worker's own root altogether.
    assert "PermissionError" in check.message or "FileNotFoundError" in check.message


def test_files_outside_the_workers_folder_cannot_be_written(course, make_submission, tmp_path):
    target = tmp_path / "results.json"
    body = f"open({str(target)!r}, 'w').write('{{\"score\": 100}}')\nreturn 0"
    result = graded(course, make_submission, replace_function("AND", body))
    if not _protected(result, "filesystem"):
        assert result.worker["protections"]["filesystem"].startswith("unavailable")
        assert target.exists()
        return
    assert not target.exists()
    message = by_name(result)["test_and_truth_table"].message
    # Denied by Landlock, or absent from the worker's private /tmp altogether.
    assert "PermissionError" in message or "FileNotFoundError" in message


def test_the_worker_has_no_network(course, make_submission):
    import socket

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    body = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nreturn 0"
    try:
        result = graded(course, make_submission, replace_function("AND", body))
    finally:
        server.close()
    check = by_name(result)["test_and_truth_table"]
    if not _protected(result, "network"):
        assert result.worker["protections"]["network"].startswith("unavailable")
        assert check.status == "failed"
        return
    assert check.status == "error"
    assert "Error" in check.message


def test_the_worker_cannot_signal_processes_outside_the_sandbox(course, make_submission):
    import subprocess

    victim = subprocess.Popen(["sleep", "30"])
    body = f"import os, signal\nos.kill({victim.pid}, signal.SIGKILL)\nreturn 0"
    try:
        result = graded(course, make_submission, replace_function("AND", body))
        alive = victim.poll() is None
    finally:
        victim.kill()
        victim.wait()
    if not _protected(result, "signals") and not _protected(result, "privileges"):
        assert result.worker["protections"]["signals"].startswith("unavailable")
        assert not alive
        return
    assert alive
    message = by_name(result)["test_and_truth_table"].message
    # Refused by Landlock's scope, or the process is not even visible from the worker's PID
    # namespace.
    assert "PermissionError" in message or "ProcessLookupError" in message


def test_a_setsid_background_process_does_not_outlive_the_grade(course, make_submission):
    marker = unique_marker()
    body = (
        "import os\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        f"    os.execv('/bin/sleep', ['sleep', {marker!r}])\n"
        "return 0"
    )
    result = graded(course, make_submission, replace_function("AND", body))
    assert by_name(result)["test_and_truth_table"].status == "failed"
    assert survivors(marker) == []


def test_conftest_and_test_files_in_a_submission_are_never_run(course, make_submission, tmp_path):
    marker = tmp_path / "conftest-ran"
    submission = make_submission("assignment1")
    hook = f"open({str(marker)!r}, 'w').write('ran')\n"
    (submission / "conftest.py").write_text(hook)
    (submission / "test_mine.py").write_text(hook + "def test_x():\n    pass\n")
    assignment = course.assignment("assignment1")
    result = grade("assignment1", submission, course=course, device="cpu",
                   limits=assignment.limits.with_overrides(**FAST))  # fmt: skip
    assert result.score == 100
    assert not marker.exists()
    assert all(t.id.startswith(("public/", "hidden/")) for t in result.tests)


def test_a_numpy_shadow_module_fools_nobody(course, make_submission):
    submission = make_submission("assignment1")
    (submission / "numpy.py").write_text(
        "allclose = lambda *a, **k: True\narray_equal = lambda *a, **k: True\n"
    )
    assignment = course.assignment("assignment1")
    result = grade("assignment1", submission, course=course, device="cpu",
                   limits=assignment.limits.with_overrides(**FAST))  # fmt: skip
    assert result.score == 100


def test_ignoring_sigterm_does_not_survive_a_timeout(course, make_submission):
    body = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass"
    result = graded(course, make_submission, replace_function("AND", body))
    assert by_name(result)["test_and_truth_table"].status == "timeout"
    assert by_name(result)["test_or_truth_table"].status == "passed"


def test_hundreds_of_child_processes_are_all_killed(course, make_submission):
    marker = unique_marker()
    body = (
        "import os\n"
        "started = 0\n"
        "for _ in range(300):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        f"        os.execv('/bin/sleep', ['sleep', {marker!r}])\n"
        "    started += 1\n"
        "return started"
    )
    assignment = course.assignment("assignment1")
    result = grade(
        "assignment1",
        make_submission("assignment1", replace_function("AND", body)),
        course=course,
        device="cpu",
        limits=assignment.limits.with_overrides(call_timeout_s=30.0),
        keyword="test_and_truth_table",
    )
    check = by_name(result)["test_and_truth_table"]
    assert check.status == "failed", check.message
    assert int(float(check.message.split("got ")[1].split(",")[0])) > 100
    assert survivors(marker) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("def f(n):\n    return f(n + 1)\nreturn f(0)", "RecursionError"),
        (
            "import sys\nsys.setrecursionlimit(10**7)\n"
            "def f(n):\n    return f(n + 1) + 1\nreturn f(0)",
            "",
        ),
    ],
    ids=["recursion-error", "c-stack-overflow"],
)
def test_deep_recursion_fails_the_check_not_the_grader(course, make_submission, body, expected):
    result = graded(course, make_submission, replace_function("AND", body))
    check = by_name(result)["test_and_truth_table"]
    assert check.status in ("error", "timeout")
    assert expected in check.message
    assert by_name(result)["test_or_truth_table"].status == "passed"


def test_a_correct_answer_after_a_long_sleep_is_a_timeout(course, make_submission):
    body = "import time\ntime.sleep(3)\nreturn 1 if x1 and x2 else 0"
    result = graded(course, make_submission, replace_function("AND", body))
    assert by_name(result)["test_and_truth_table"].status == "timeout"


def test_the_shipped_mnist_sample_is_out_of_reach_in_a_source_checkout(course, make_submission):
    import grader

    sample = Path(grader.__file__).parent / "data" / "mnist_sample.npz"
    body = f"return len(open({str(sample)!r}, 'rb').read())"
    result = graded(course, make_submission, replace_function("AND", body))
    if not _protected(result, "filesystem"):
        assert result.worker["protections"]["filesystem"].startswith("unavailable")
        return
    message = by_name(result)["test_and_truth_table"].message
    assert "PermissionError" in message or "FileNotFoundError" in message


def test_a_trajectory_the_student_empties_in_the_worker_fails_its_checks_cleanly(
    course, make_submission
):
    """assignment6 runs fifty updates in one call into the worker (`student.run`); an update
    that empties the list the loop fills sends back a short trajectory, which fails its check
    with a message, never the grader."""
    clearing = """

_correct_update = Adam.update


def _update(self, params, grads):
    import sys

    _correct_update(self, params, grads)
    for value in list(sys._getframe(1).f_locals.values()):
        if isinstance(value, list):
            value.clear()


Adam.update = _update
"""
    result = grade(
        "assignment6",
        make_submission("assignment6", lambda source: source + clearing),
        course=course,
        device="cpu",
        keyword="trajectory and Adam",
    )
    tests = by_name(result)
    assert set(tests) == {
        "test_trajectory_on_random_gradients[Adam]",
        "test_trajectory_on_textbook_function[Adam]",
    }
    for test in tests.values():
        assert test.status == "failed"
        assert test.score == 0
        assert "did not come back" in test.message
