"""Public checks for assignment2: the README's worked examples and simple properties.

These run without the reference solution: every expected value is written out or computed
here with the math module.
"""

import math

import numpy as np
import pytest

from grader.compare import as_array, assert_close, expect

STEP_HINT = (
    "step_function(x) is 1 where x > 0 and 0 where x <= 0, elementwise on an array (an if "
    "statement only handles one number): np.array(x > 0, dtype=int)."
)
SIGMOID_HINT = "sigmoid(x) = 1 / (1 + exp(-x)), elementwise, same shape as x."
RELU_HINT = "relu(x) = max(x, 0) elementwise (np.maximum(0, x)), same shape as x."
LEAKY_HINT = (
    "leaky_relu(x, alpha) is x where x > 0 and alpha * x elsewhere; use the alpha argument "
    "(default 0.01), not a fixed number."
)
SOFTPLUS_HINT = "softplus(x) = log(1 + exp(x)); the stable form is max(x, 0) + log1p(exp(-|x|))."
TANH_HINT = "tanh(x) = (exp(x) - exp(-x)) / (exp(x) + exp(-x)); np.tanh computes it safely."
ELU_HINT = (
    "elu(x, alpha) is x for x > 0 and alpha * (exp(x) - 1) for x <= 0; use the alpha "
    "argument (default 1.0)."
)
IDENTITY_HINT = "identity_function(x) returns x unchanged: same values, same shape."
SIGMOID_GRAD_HINT = (
    "sigmoid'(x) = sigmoid(x) * (1 - sigmoid(x)): compute y = sigmoid(x) and use y in both "
    "factors, not x."
)
RELU_GRAD_HINT = (
    "relu'(x) is 1 where x > 0 and 0 where x < 0 (any value in [0, 1] at x == 0): "
    "np.array(x > 0, dtype=float), not relu(x)."
)
TANH_GRAD_HINT = (
    "tanh'(x) = 1 - tanh(x)**2: square tanh(x), not x, and use a tanh that stays finite for "
    "large |x| (np.tanh)."
)


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


@pytest.mark.points(3)
@pytest.mark.hint(STEP_HINT)
def test_step_function_example(student):
    got = student.step_function(np.array([-1.0, 1.0, 2.0]))
    assert_close(got, np.array([0, 1, 1]), rtol=0, name="step_function([-1, 1, 2])", hint=STEP_HINT)


@pytest.mark.points(2)
@pytest.mark.hint("Convert the comparison to numbers: (x > 0).astype(int).")
def test_step_function_returns_numbers_not_booleans(student):
    got = as_array(student.step_function(np.array([-1.0, 1.0, 2.0])), name="step_function")
    expect(
        got.dtype.kind in "iuf",
        f"step_function returned an array of dtype {got.dtype}; expected numbers 0 and 1 "
        "(int or float), not True/False.",
        hint="Convert the comparison to numbers: (x > 0).astype(int) or "
        "np.array(x > 0, dtype=int).",
    )


@pytest.mark.points(3)
@pytest.mark.hint(SIGMOID_HINT)
def test_sigmoid_examples(student):
    assert_close(student.sigmoid(np.array(0.0)), 0.5, name="sigmoid(0)", hint=SIGMOID_HINT)
    x = [-1.0, 1.0, 2.0]
    assert_close(
        student.sigmoid(np.array(x)),
        np.array([_sigmoid(v) for v in x]),
        rtol=1e-9,
        name="sigmoid([-1, 1, 2])",
        hint=SIGMOID_HINT,
    )


@pytest.mark.points(2)
@pytest.mark.hint(SIGMOID_HINT)
def test_sigmoid_symmetry_and_range(student):
    x = np.linspace(-10.0, 10.0, 41)
    s = as_array(student.sigmoid(x.copy()), name="sigmoid(x)", hint=SIGMOID_HINT)
    s_neg = as_array(student.sigmoid(-x), name="sigmoid(-x)", hint=SIGMOID_HINT)
    expect(
        s.shape == x.shape and s_neg.shape == x.shape,
        f"sigmoid(x) for x of shape {x.shape} returned shape {s.shape}.",
        hint=SIGMOID_HINT,
    )
    expect(
        bool(np.all((s > 0) & (s < 1))),
        "sigmoid(x) must lie strictly between 0 and 1 for x in [-10, 10].",
        hint=SIGMOID_HINT,
    )
    assert_close(
        s + s_neg, np.ones_like(x), rtol=1e-12, name="sigmoid(x) + sigmoid(-x)", hint=SIGMOID_HINT
    )


@pytest.mark.points(3)
@pytest.mark.hint(RELU_HINT)
def test_relu_example(student):
    got = student.relu(np.array([-2.0, -0.5, 0.0, 0.5, 3.0]))
    assert_close(
        got,
        np.array([0.0, 0.0, 0.0, 0.5, 3.0]),
        rtol=0,
        name="relu([-2, -0.5, 0, 0.5, 3])",
        hint=RELU_HINT,
    )


@pytest.mark.points(2)
@pytest.mark.hint(LEAKY_HINT)
def test_leaky_relu_example(student):
    x = np.array([-2.0, 0.0, 3.0])
    assert_close(
        student.leaky_relu(x.copy()),
        np.array([-0.02, 0.0, 3.0]),
        rtol=1e-12,
        name="leaky_relu([-2, 0, 3])",
        hint=LEAKY_HINT,
    )
    assert_close(
        student.leaky_relu(x.copy(), alpha=0.1),
        np.array([-0.2, 0.0, 3.0]),
        rtol=1e-12,
        name="leaky_relu([-2, 0, 3], alpha=0.1)",
        hint=LEAKY_HINT,
    )


@pytest.mark.points(2)
@pytest.mark.hint(SOFTPLUS_HINT)
def test_softplus_examples(student):
    assert_close(
        student.softplus(np.array(0.0)),
        math.log(2.0),
        rtol=1e-12,
        name="softplus(0)",
        hint=SOFTPLUS_HINT,
    )
    x = np.linspace(-5.0, 5.0, 21)
    a = as_array(student.softplus(x.copy()), name="softplus(x)", hint=SOFTPLUS_HINT)
    b = as_array(student.softplus(-x), name="softplus(-x)", hint=SOFTPLUS_HINT)
    expect(
        a.shape == x.shape and b.shape == x.shape,
        f"softplus(x) for x of shape {x.shape} returned shape {a.shape}.",
        hint=SOFTPLUS_HINT,
    )
    assert_close(
        a - b,
        x,
        rtol=1e-9,
        atol=1e-12,
        name="softplus(x) - softplus(-x) (should be x)",
        hint=SOFTPLUS_HINT,
    )


@pytest.mark.points(2)
@pytest.mark.hint(TANH_HINT)
def test_tanh_examples(student):
    x = np.array([-1.0, 0.0, 1.0])
    t = math.tanh(1.0)
    assert_close(
        student.tanh(x.copy()),
        np.array([-t, 0.0, t]),
        rtol=1e-12,
        name="tanh([-1, 0, 1])",
        hint=TANH_HINT,
    )


@pytest.mark.points(2)
@pytest.mark.hint(ELU_HINT)
def test_elu_examples(student):
    x = np.array([-1.0, 0.0, 2.0])
    e = math.exp(-1.0) - 1.0
    assert_close(
        student.elu(x.copy()),
        np.array([e, 0.0, 2.0]),
        rtol=1e-9,
        name="elu([-1, 0, 2])",
        hint=ELU_HINT,
    )
    assert_close(
        student.elu(x.copy(), alpha=2.0),
        np.array([2.0 * e, 0.0, 2.0]),
        rtol=1e-9,
        name="elu([-1, 0, 2], alpha=2.0)",
        hint=ELU_HINT,
    )


@pytest.mark.points(1)
@pytest.mark.hint(IDENTITY_HINT)
def test_identity_function_example(student):
    x = np.array([[1.0, -2.0], [3.5, 0.0]])
    assert_close(
        student.identity_function(x.copy()),
        x,
        rtol=0,
        name="identity_function(x)",
        hint=IDENTITY_HINT,
    )


DERIVATIVE_EXAMPLES = {
    "sigmoid_grad": (
        [0.0, 2.0],
        [0.25, _sigmoid(2.0) * (1.0 - _sigmoid(2.0))],
        1e-9,
        SIGMOID_GRAD_HINT,
    ),
    "relu_grad": ([-1.0, 0.5, 2.0], [0.0, 1.0, 1.0], 0.0, RELU_GRAD_HINT),
    "tanh_grad": ([0.0, 1.0], [1.0, 1.0 - math.tanh(1.0) ** 2], 1e-9, TANH_GRAD_HINT),
}


@pytest.mark.points(1)
@pytest.mark.hint("Each derivative is evaluated at x: sigmoid_grad(x) = d sigmoid(x) / dx.")
@pytest.mark.parametrize("name", list(DERIVATIVE_EXAMPLES))
def test_derivative_examples(student, name):
    x, want, rtol, hint = DERIVATIVE_EXAMPLES[name]
    assert_close(
        getattr(student, name)(np.array(x)),
        np.array(want),
        rtol=rtol,
        name=f"{name}([{', '.join(f'{v:g}' for v in x)}])",
        hint=hint,
    )
