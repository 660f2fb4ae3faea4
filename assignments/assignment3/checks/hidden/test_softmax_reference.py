"""Hidden checks for assignment3: softmax and log_softmax against torch on the grade's device.

Seeded random 1-D and 2-D inputs, rows of very different scales (which catch a max taken
over the wrong axis or over the whole array), large gaps for log_softmax, and inputs left
unmodified.
"""

import numpy as np
import pytest

from grader.compare import as_array, assert_close, assert_equal, fail

RTOL = 1e-9
ATOL = 1e-15

FORMULA_HINT = (
    "softmax(x) = exp(x - max(x)) / sum(exp(x - max(x))) over the last axis; the outputs are "
    "positive and sum to 1."
)
ROWWISE_HINT = (
    "For a 2-D x softmax works on each row separately: take the max and the sum over the last "
    "axis, np.max(x, axis=-1, keepdims=True) and np.sum(e, axis=-1, keepdims=True), not axis=0."
)
ROW_MAX_HINT = (
    "Work row by row: subtract each row's own max, np.max(x, axis=-1, keepdims=True), and divide "
    "by each row's own sum. A global max or the max over axis=0 shifts rows of a smaller scale "
    "so far down that exp underflows to 0 and the row becomes 0/0 = NaN."
)
NORMALISE_HINT = (
    "Normalise each row by its own sum: exp_x / np.sum(exp_x, axis=-1, keepdims=True). With "
    "axis=0 or without keepdims=True the division uses the wrong sums."
)
IN_PLACE_HINT = (
    "Do not modify x: write x = x - np.max(x, axis=-1, keepdims=True), which makes a new "
    "array, not x -= ..., which changes the caller's array."
)
ARGUMENTS_HINT = (
    "Do not modify the arrays you are given: z = logits - m makes a new array, logits -= m "
    "(or y += 1e-7, t[...] = ...) changes the caller's."
)
LOG_SOFTMAX_HINT = (
    "log_softmax works on each row: (x - max) - log(sum(exp(x - max))) with the max and the "
    "sum over axis=-1 and keepdims=True."
)
LOG_GAP_HINT = (
    "Do not compute log(softmax(x)): a probability that underflows to 0 gives log(0) = -inf. "
    "Use log_softmax(x) = (x - max) - log(sum(exp(x - max))) over the last axis."
)


def _rows(got, want, name, hint):
    """Compare a 2-D softmax; name the likely bug: NaN rows, wrong sums or wrong values."""
    value = as_array(got, name=name, hint=hint)
    if value.shape != want.shape:
        fail(f"{name}: shape {value.shape} but expected {want.shape} (the shape of x).", hint=hint)
    if not bool(np.all(np.isfinite(value))):
        assert_close(value, want, rtol=RTOL, atol=ATOL, name=name, hint=ROW_MAX_HINT)
    sums = value.sum(axis=-1)
    if not bool(np.allclose(sums, 1.0, rtol=0.0, atol=1e-9)):
        worst = int(np.argmax(np.abs(sums - 1.0)))
        fail(f"{name}: row {worst} sums to {sums[worst]:.6g}, not 1.", hint=NORMALISE_HINT)
    assert_close(value, want, rtol=RTOL, atol=ATOL, name=name, hint=hint)


@pytest.mark.points(1)
@pytest.mark.hint(FORMULA_HINT)
def test_softmax_1d_matches_torch(student, reference, rng):
    """softmax of a 1-D vector vs torch."""
    x = rng.normal(0.0, 2.0, size=10)
    want = reference.softmax(x)
    assert_close(
        student.softmax(x),
        want,
        rtol=RTOL,
        atol=ATOL,
        name="softmax(x), x of shape (10,)",
        hint=FORMULA_HINT,
    )


@pytest.mark.points(5)
@pytest.mark.hint(ROWWISE_HINT)
def test_softmax_2d_matches_torch(student, reference, rng):
    """softmax of a 2-D batch vs torch."""
    x = rng.normal(0.0, 2.0, size=(6, 5))
    want = reference.softmax(x)
    _rows(student.softmax(x), want, "softmax(x), x of shape (6, 5)", ROWWISE_HINT)


@pytest.mark.points(5)
@pytest.mark.hint(ROW_MAX_HINT)
def test_softmax_rows_with_different_scales(student, reference):
    """softmax of rows of different scales."""
    x = np.array(
        [
            [1000.0, 1001.0, 1002.0, 999.0],
            [-3.0, 0.0, 2.0, 1.0],
            [-1000.0, -1001.0, -998.0, -999.0],
        ]
    )
    want = reference.softmax(x)
    _rows(student.softmax(x), want, "softmax(x) for rows around 1000, 0 and -1000", ROW_MAX_HINT)


@pytest.mark.points(2)
@pytest.mark.hint(IN_PLACE_HINT)
def test_softmax_leaves_input_unchanged(student, rng):
    """softmax leaves its input unchanged."""
    x = rng.normal(0.0, 2.0, size=8)
    before = x.copy()
    with student.inplace(x):
        student.softmax(x)
    assert_equal(x, before, name="x after softmax(x)", hint=IN_PLACE_HINT)


def _inputs(rng, function: str) -> tuple[np.ndarray, ...]:
    """Arguments for `function`: scores or probabilities (6, 4), and targets where it takes
    them (one-hot for cross_entropy_error and mean_squared_error, labels for the fused loss)."""
    scores = rng.normal(0.0, 2.0, size=(6, 4))
    labels = rng.integers(0, 4, size=6)
    probabilities = 0.9 * rng.dirichlet(np.ones(4), size=6) + 0.025
    return {
        "log_softmax": (scores,),
        "cross_entropy_error": (probabilities, np.eye(4)[labels]),
        "mean_squared_error": (probabilities, np.eye(4)[labels]),
        "softmax_cross_entropy": (scores, labels),
    }[function]


@pytest.mark.points(1)
@pytest.mark.hint(ARGUMENTS_HINT)
@pytest.mark.parametrize(
    "function",
    ["log_softmax", "cross_entropy_error", "mean_squared_error", "softmax_cross_entropy"],
)
def test_input_left_unchanged(student, rng, function):
    """Input left unchanged"""
    inputs = _inputs(rng, function)
    before = [a.copy() for a in inputs]
    with student.inplace(*inputs):
        getattr(student, function)(*inputs)
    for i, (after, original) in enumerate(zip(inputs, before, strict=True)):
        assert_equal(after, original, name=f"argument #{i + 1} after {function}(...)")


@pytest.mark.points(2)
@pytest.mark.hint(LOG_SOFTMAX_HINT)
def test_log_softmax_2d_matches_torch(student, reference, rng):
    """log_softmax of a 2-D batch vs torch."""
    x = rng.normal(0.0, 2.0, size=(5, 7))
    want = reference.log_softmax(x)
    assert_close(
        student.log_softmax(x),
        want,
        rtol=RTOL,
        atol=1e-12,
        name="log_softmax(x), x of shape (5, 7)",
        hint=LOG_SOFTMAX_HINT,
    )


@pytest.mark.points(6)
@pytest.mark.hint(LOG_GAP_HINT)
def test_log_softmax_large_gaps_stay_finite(student, reference):
    """log_softmax with large gaps stays finite."""
    x = np.array([[0.0, 1000.0, -1000.0], [5.0, 3.0, 800.0]])
    want = reference.log_softmax(x)
    assert_close(
        student.log_softmax(x),
        want,
        rtol=RTOL,
        atol=1e-12,
        name="log_softmax([[0, 1000, -1000], [5, 3, 800]])",
        hint=LOG_GAP_HINT,
    )
