"""Hidden checks for assignment4: gradient descent on the textbook's f(x0, x1) = x0^2 + x1^2.

The expected trajectories come from the reference (numerical gradients in torch float64),
which reproduces the textbook's numbers. When x ends up wrong, the first recorded step is
compared with the steps the usual bugs would take (uphill, without lr, zero gradient, a
forward difference, x left perturbed) so the hint can name the bug.
"""

import numpy as np
import pytest

from grader.compare import as_array, assert_close, expect, fail
from grader.portable import runs_in_worker

UPDATE_HINT = (
    "Each step records x.copy() in the history, then moves against the gradient: "
    "x -= lr * numerical_gradient(f, x)."
)
BEFORE = "history[0] must be init_x: append x.copy() to the history before each step, not after it."
COPY = (
    "Every row of history is the same array: append x.copy(), not x itself, since "
    "x -= lr * grad changes x in place."
)
STEP_HINTS = {
    "ascent": "The first step went uphill (x + lr * grad): that is gradient ascent. "
    "Gradient descent subtracts: x -= lr * grad.",
    "no_lr": "The first step was x - grad: the learning rate lr is ignored. Use x -= lr * grad.",
    "zero": "x did not move on the first step: numerical_gradient returned zeros "
    "(is h too small? with h = 1e-50, x + h == x in float64). Use x -= lr * grad with h = 1e-4.",
    "forward": "The first step used a forward difference (f(x+h) - f(x)) / h; its error of "
    "order h adds up over the steps. Use the central difference in numerical_gradient.",
    "not_restored": "Each step also moved x by -h: numerical_gradient does not restore "
    "x[idx] = tmp_val after perturbing it.",
}


@runs_in_worker  # called 400 times per descent: next to the student's code, not over the pipe
def function_2(x):
    """The textbook's f(x0, x1) = x0^2 + x1^2 (its gradient is 2x)."""
    return x[0] ** 2 + x[1] ** 2


def run_descent(student, init_x, **kwargs):
    """Call the student's gradient_descent, returning (x, history) as arrays."""
    result = student.gradient_descent(function_2, init_x.copy(), **kwargs)
    expect(
        isinstance(result, tuple | list) and len(result) == 2,
        "gradient_descent must return a pair (x, history).",
    )
    x = as_array(result[0], name="x returned by gradient_descent")
    return x, as_array(result[1], name="history returned by gradient_descent")


def descent_hint(init_x, lr, history, h=1e-4):
    """Name the bug the first recorded step looks like, or None for the check's own hint."""
    if history.ndim < 1 or history.shape[1:] != init_x.shape or len(history) < 2:
        return None
    if not np.array_equal(history[0], init_x):
        return COPY if np.all(history == history[0]) else BEFORE
    grad = 2 * init_x
    candidates = {
        None: -lr * grad,
        "ascent": lr * grad,
        "no_lr": -grad,
        "zero": 0 * grad,
        "forward": -lr * (grad + h),
        "not_restored": -lr * grad - h,
    }
    step = history[1] - history[0]
    best = min(candidates, key=lambda k: float(np.max(np.abs(step - candidates[k]))))
    return STEP_HINTS.get(best)


@pytest.mark.points(8)
@pytest.mark.hint(UPDATE_HINT)
def test_gradient_descent_reaches_minimum(student, reference):
    init_x = np.array([-3.0, 4.0])
    x, history = run_descent(student, init_x, lr=0.1, step_num=100)
    want, _ = reference.gradient_descent(function_2, init_x, lr=0.1, step_num=100)
    assert_close(
        x,
        want,
        rtol=0.0,
        atol=1e-11,
        name="gradient_descent(f, [-3, 4], lr=0.1): x after 100 steps "
        "(textbook: [-6.1e-10, 8.1e-10])",
        hint=descent_hint(init_x, 0.1, history),
    )


@pytest.mark.points(5)
@pytest.mark.hint(
    "A learning rate of 10 is far too large: every step overshoots and |x| grows. Make sure "
    "each step is x -= lr * grad with the lr passed in."
)
def test_gradient_descent_large_lr_diverges(student):
    init_x = np.array([-3.0, 4.0])
    x, history = run_descent(student, init_x, lr=10.0, step_num=100)
    expect(
        x.shape == init_x.shape,
        f"gradient_descent returned x of shape {x.shape}, expected {init_x.shape}.",
    )
    size = float(np.max(np.abs(x)))
    if not size > 1e6:
        fail(
            f"gradient_descent(f, [-3, 4], lr=10): 100 steps should diverge (the textbook ends "
            f"near [-2.6e13, -1.3e12]), but x = {np.array2string(x, precision=4)}.",
            hint=descent_hint(init_x, 10.0, history),
        )


@pytest.mark.points(6)
@pytest.mark.hint(UPDATE_HINT)
def test_gradient_descent_tiny_lr_barely_moves(student, reference):
    init_x = np.array([-3.0, 4.0])
    x, history = run_descent(student, init_x, lr=1e-10, step_num=100)
    want, _ = reference.gradient_descent(function_2, init_x, lr=1e-10, step_num=100)
    expect(
        x.shape == init_x.shape,
        f"gradient_descent returned x of shape {x.shape}, expected {init_x.shape}.",
    )
    assert_close(
        x - init_x,
        want - init_x,
        rtol=0.0,
        atol=1e-10,
        name="gradient_descent(f, [-3, 4], lr=1e-10): x - init_x after 100 steps "
        "(textbook: x = [-2.99999994, 3.99999992])",
        hint=descent_hint(init_x, 1e-10, history),
    )


@pytest.mark.points(8)
@pytest.mark.hint(BEFORE)
def test_gradient_descent_history(student):
    init_x = np.array([1.0, -2.0, 0.5])
    _, history = run_descent(student, init_x, step_num=7)
    if history.shape != (7, *init_x.shape):
        fail(
            f"gradient_descent returned a history of shape {history.shape}, expected "
            f"(step_num, *x.shape) = "
            f"{(7, *init_x.shape)} for step_num=7 and x of shape {init_x.shape}.",
            hint="Collect one x.copy() per step in a list and return np.array(that list).",
        )
    if not np.array_equal(history[0], init_x):
        fail(
            f"gradient_descent(f, init_x, step_num=7): history[0] is "
            f"{np.array2string(history[0], precision=6)}, expected init_x = "
            f"{np.array2string(init_x)}.",
            hint=descent_hint(init_x, 0.01, history),
        )
