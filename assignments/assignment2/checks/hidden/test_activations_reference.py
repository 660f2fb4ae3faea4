"""Hidden checks for assignment2: every function against the PyTorch reference.

Random inputs of several shapes (0-d, 1-element, 1-D, 3-D), edge values (0, ±1e-12, ±30,
±1e4), the alpha arguments, relu_grad's subgradient at 0, and inputs left unmodified.
Derivatives are compared with torch autograd.
"""

import numpy as np
import pytest

from grader.compare import as_array, assert_close, expect

SHAPES = [(), (1,), (7,), (2, 3, 4)]
EDGE = np.array([0.0, 1e-12, -1e-12, 30.0, -30.0, 1e4, -1e4])
EDGE_TEXT = "[0, 1e-12, -1e-12, 30, -30, 1e4, -1e4]"
RTOL = 1e-9
ATOL = 1e-15

STEP_HINT = (
    "step_function(x) is 1 where x > 0 and 0 where x <= 0, elementwise on an array of any "
    "shape, 0-d included (an if statement only handles one number): np.array(x > 0, dtype=int)."
)
STEP_EDGE_HINT = (
    "The step is strict: step_function(0) is 0 (use x > 0, not x >= 0), and tiny values such "
    "as 1e-12 still count as positive."
)
SIGMOID_HINT = "sigmoid(x) = 1 / (1 + exp(-x)), elementwise, same shape as x (0-d arrays included)."
RELU_HINT = "relu(x) = max(x, 0) elementwise (np.maximum(0, x)), same shape as x."
LEAKY_HINT = (
    "leaky_relu(x, alpha) is x where x > 0 and alpha * x elsewhere (alpha defaults to 0.01), "
    "same shape as x."
)
LEAKY_ALPHA_HINT = "Use the alpha argument instead of a fixed 0.01: np.where(x > 0, x, alpha * x)."
SOFTPLUS_HINT = (
    "softplus(x) = log(1 + exp(x)); compute it as max(x, 0) + log1p(exp(-|x|)) so it stays "
    "finite and precise for large |x|."
)
TANH_HINT = "tanh(x), elementwise, same shape as x: np.tanh(x)."
TANH_EDGE_HINT = (
    "For large |x| the ratio of exponentials becomes inf / inf = nan: use np.tanh, which stays "
    "finite (tanh(1e4) = 1)."
)
ELU_HINT = (
    "elu(x, alpha) is x for x > 0 and alpha * (exp(x) - 1) for x <= 0 (alpha defaults to "
    "1.0), same shape as x."
)
ELU_ALPHA_HINT = (
    "Multiply the negative branch by the alpha argument: x for x > 0 and alpha * (exp(x) - 1) "
    "for x <= 0."
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
NOT_MODIFIED_HINT = (
    "Do not write into x (x[x < 0] = 0, x *= ..., out=x): the caller still needs it. Work on a "
    "copy (x = x.copy()) or build a new array (np.maximum(0, x), np.where(...))."
)


def _call_text(name, kwargs):
    args = "".join(f", {k}={v}" for k, v in kwargs.items())
    return f"{name}(x{args})"


def _against_reference(student, reference, rng, name, hint, **kwargs):
    """Compare student.NAME with reference.NAME on random inputs of every shape in SHAPES."""
    for shape in SHAPES:
        x = np.asarray(rng.normal(0.0, 3.0, size=shape))
        want = getattr(reference, name)(x, **kwargs)
        got = getattr(student, name)(x.copy(), **kwargs)
        assert_close(
            got,
            want,
            rtol=RTOL,
            atol=ATOL,
            name=f"{_call_text(name, kwargs)} for x of shape {shape}",
            hint=hint,
        )


def _at_edges(student, reference, name, hint, **kwargs):
    """Compare student.NAME with reference.NAME at the EDGE values."""
    want = getattr(reference, name)(EDGE, **kwargs)
    got = getattr(student, name)(EDGE.copy(), **kwargs)
    assert_close(
        got,
        want,
        rtol=RTOL,
        atol=ATOL,
        name=f"{_call_text(name, kwargs)} for x = {EDGE_TEXT}",
        hint=hint,
    )


@pytest.mark.points(3)
@pytest.mark.hint(STEP_HINT)
def test_step_function_matches_reference(student, reference, rng):
    _against_reference(student, reference, rng, "step_function", STEP_HINT)


@pytest.mark.points(3)
@pytest.mark.hint(STEP_EDGE_HINT)
def test_step_function_edge_values(student, reference):
    _at_edges(student, reference, "step_function", STEP_EDGE_HINT)


@pytest.mark.points(3)
@pytest.mark.hint(SIGMOID_HINT)
def test_sigmoid_matches_reference(student, reference, rng):
    _against_reference(student, reference, rng, "sigmoid", SIGMOID_HINT)


@pytest.mark.points(2)
@pytest.mark.hint(SIGMOID_HINT)
def test_sigmoid_edge_values(student, reference):
    _at_edges(student, reference, "sigmoid", SIGMOID_HINT)


@pytest.mark.points(2)
@pytest.mark.hint(RELU_HINT)
def test_relu_matches_reference(student, reference, rng):
    _against_reference(student, reference, rng, "relu", RELU_HINT)


@pytest.mark.points(2)
@pytest.mark.hint(RELU_HINT)
def test_relu_edge_values(student, reference):
    _at_edges(student, reference, "relu", RELU_HINT)


@pytest.mark.points(2)
@pytest.mark.hint(LEAKY_HINT)
def test_leaky_relu_matches_reference(student, reference, rng):
    _against_reference(student, reference, rng, "leaky_relu", LEAKY_HINT)


@pytest.mark.points(3)
@pytest.mark.hint(LEAKY_ALPHA_HINT)
def test_leaky_relu_uses_alpha(student, reference, rng):
    for alpha in (0.2, 0.5):
        _against_reference(student, reference, rng, "leaky_relu", LEAKY_ALPHA_HINT, alpha=alpha)


@pytest.mark.points(2)
@pytest.mark.hint(LEAKY_HINT)
def test_leaky_relu_edge_values(student, reference):
    _at_edges(student, reference, "leaky_relu", LEAKY_HINT)


@pytest.mark.points(2)
@pytest.mark.hint(SOFTPLUS_HINT)
def test_softplus_matches_reference(student, reference, rng):
    _against_reference(student, reference, rng, "softplus", SOFTPLUS_HINT)


@pytest.mark.points(3)
@pytest.mark.hint(SOFTPLUS_HINT)
def test_softplus_edge_values(student, reference):
    _at_edges(student, reference, "softplus", SOFTPLUS_HINT)


@pytest.mark.points(2)
@pytest.mark.hint(TANH_HINT)
def test_tanh_matches_reference(student, reference, rng):
    _against_reference(student, reference, rng, "tanh", TANH_HINT)


@pytest.mark.points(2)
@pytest.mark.hint(TANH_EDGE_HINT)
def test_tanh_edge_values(student, reference):
    _at_edges(student, reference, "tanh", TANH_EDGE_HINT)


@pytest.mark.points(3)
@pytest.mark.hint(ELU_HINT)
def test_elu_matches_reference(student, reference, rng):
    _against_reference(student, reference, rng, "elu", ELU_HINT)


@pytest.mark.points(2)
@pytest.mark.hint(ELU_ALPHA_HINT)
def test_elu_uses_alpha(student, reference, rng):
    for alpha in (0.5, 2.0):
        _against_reference(student, reference, rng, "elu", ELU_ALPHA_HINT, alpha=alpha)


@pytest.mark.points(2)
@pytest.mark.hint(ELU_HINT)
def test_elu_edge_values(student, reference):
    _at_edges(student, reference, "elu", ELU_HINT)


@pytest.mark.points(1)
@pytest.mark.hint(IDENTITY_HINT)
def test_identity_function_matches_reference(student, reference, rng):
    _against_reference(student, reference, rng, "identity_function", IDENTITY_HINT)


@pytest.mark.points(3)
@pytest.mark.hint(SIGMOID_GRAD_HINT)
def test_sigmoid_grad_matches_autograd(student, reference, rng):
    _against_reference(student, reference, rng, "sigmoid_grad", SIGMOID_GRAD_HINT)


@pytest.mark.points(2)
@pytest.mark.hint(SIGMOID_GRAD_HINT)
def test_sigmoid_grad_edge_values(student, reference):
    _at_edges(student, reference, "sigmoid_grad", SIGMOID_GRAD_HINT)


@pytest.mark.points(4)
@pytest.mark.hint(RELU_GRAD_HINT)
def test_relu_grad_matches_autograd(student, reference, rng):
    _against_reference(student, reference, rng, "relu_grad", RELU_GRAD_HINT)


@pytest.mark.points(2)
@pytest.mark.hint(RELU_GRAD_HINT)
def test_relu_grad_at_zero_is_a_subgradient(student):
    x = np.array([0.0, -0.0, 1e-12, -1e-12, 3.0, -3.0])
    got = as_array(student.relu_grad(x.copy()), name="relu_grad(x)", hint=RELU_GRAD_HINT)
    expect(
        got.shape == x.shape,
        f"relu_grad(x) for x of shape {x.shape} returned shape {got.shape}.",
        hint=RELU_GRAD_HINT,
    )
    at_zero = got[:2].astype(np.float64)
    expect(
        bool(np.all((at_zero >= 0) & (at_zero <= 1))),
        f"relu_grad at x = 0.0 and -0.0 returned {at_zero[0]:g} and {at_zero[1]:g}; any value "
        "in [0, 1] is a valid subgradient there, nothing else is.",
        hint=RELU_GRAD_HINT,
    )
    assert_close(
        got[2:],
        np.array([1.0, 0.0, 1.0, 0.0]),
        rtol=0,
        name="relu_grad(x) for x = [1e-12, -1e-12, 3, -3]",
        hint=RELU_GRAD_HINT,
    )


@pytest.mark.points(4)
@pytest.mark.hint(TANH_GRAD_HINT)
def test_tanh_grad_matches_autograd(student, reference, rng):
    _against_reference(student, reference, rng, "tanh_grad", TANH_GRAD_HINT)


@pytest.mark.points(2)
@pytest.mark.hint(TANH_GRAD_HINT)
def test_tanh_grad_edge_values(student, reference):
    _at_edges(student, reference, "tanh_grad", TANH_GRAD_HINT)


MODIFIABLE_CALLS = {
    "step_function": {},
    "sigmoid": {},
    "relu": {},
    "leaky_relu": {"alpha": 0.1},
    "softplus": {},
    "tanh": {},
    "elu": {"alpha": 1.5},
    "identity_function": {},
    "sigmoid_grad": {},
    "relu_grad": {},
    "tanh_grad": {},
}


@pytest.mark.points(1)
@pytest.mark.hint(NOT_MODIFIED_HINT)
@pytest.mark.parametrize("name", list(MODIFIABLE_CALLS))
def test_inputs_not_modified(student, rng, name):
    kwargs = MODIFIABLE_CALLS[name]
    x = rng.normal(0.0, 3.0, size=(2, 3, 4))
    x[0, 0, 0] = 0.0
    arg = x.copy()
    with student.inplace(arg):
        getattr(student, name)(arg, **kwargs)
    expect(
        bool(np.array_equal(arg, x)),
        f"{_call_text(name, kwargs)} changed the values of its input x; the caller's array "
        "must stay as it was.",
        hint=NOT_MODIFIED_HINT,
    )
