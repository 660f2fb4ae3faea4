"""Public checks for assignment4: the textbook's worked examples of numerical differentiation.

Self-contained (the expected numbers are the textbook's), so a student can read exactly what
is asked. When a result is wrong, the check recognises the usual bugs (a forward
difference, an h so small that rounding wipes the difference out) and names them.
"""

import numpy as np
import pytest

from grader.compare import as_array, assert_close
from grader.portable import runs_in_worker

FORWARD = (
    "Your result matches the forward difference (f(x+h) - f(x)) / h, whose error is of order h. "
    "Use the central difference (f(x+h) - f(x-h)) / (2*h): its error is of order h**2."
)
TOO_SMALL = (
    "Your result is 0: h is too small. With h like 1e-50, x + h rounds back to x in float64, "
    "so f(x+h) - f(x-h) is 0. Use h = 1e-4."
)


@runs_in_worker
def function_1(x):
    """The textbook's y = 0.01 x^2 + 0.1 x."""
    return 0.01 * x**2 + 0.1 * x


@runs_in_worker
def function_2(x):
    """The textbook's f(x0, x1) = x0^2 + x1^2."""
    return x[0] ** 2 + x[1] ** 2


def _forward_gradient(f, x, h=1e-4):
    """What a forward difference would return, to recognise that bug."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    fx = f(x)
    for idx in np.ndindex(x.shape):
        tmp_val = x[idx]
        x[idx] = tmp_val + h
        grad[idx] = (f(x) - fx) / h
        x[idx] = tmp_val
    return grad


def _hint_for(got, want, forward):
    """The hint naming the bug `got` looks like, or None to use the check's own hint."""
    got = np.asarray(got, dtype=np.float64)
    if got.shape != np.shape(want):
        return None
    if np.all(got == 0) and np.any(np.asarray(want) != 0):
        return TOO_SMALL
    if np.allclose(got, forward, rtol=1e-9, atol=1e-12):
        return FORWARD
    return None


@pytest.mark.points(10)
@pytest.mark.hint("numerical_diff(f, x, h=1e-4) returns (f(x+h) - f(x-h)) / (2*h).")
def test_numerical_diff_textbook_examples(student):
    for x, want in [(5.0, 0.1999999999990898), (10.0, 0.2999999999986347)]:
        got = as_array(student.numerical_diff(function_1, x), name=f"numerical_diff(f, {x})")
        forward = (function_1(x + 1e-4) - function_1(x)) / 1e-4
        assert_close(
            got,
            np.float64(want),
            rtol=1e-9,
            name=f"numerical_diff(0.01*x**2 + 0.1*x, {x})",
            hint=_hint_for(got, want, forward),
        )


@pytest.mark.points(12)
@pytest.mark.hint(
    "For each element: save tmp_val = x[idx], evaluate f at x[idx] = tmp_val + h and at "
    "tmp_val - h, take (fxh1 - fxh2) / (2*h), then put x[idx] = tmp_val back."
)
def test_numerical_gradient_textbook_examples(student):
    for point, want in [
        ((3.0, 4.0), (6.0, 8.0)),
        ((0.0, 2.0), (0.0, 4.0)),
        ((3.0, 0.0), (6.0, 0.0)),
    ]:
        x = np.array(point)
        got = as_array(student.numerical_gradient(function_2, x), name="numerical_gradient")
        name = f"numerical_gradient(x0**2 + x1**2, {list(point)})"
        assert_close(
            got,
            np.array(want),
            rtol=0.0,
            atol=1e-8,
            name=name,
            hint=_hint_for(got, want, _forward_gradient(function_2, point)),
        )
