"""Public checks for assignment3: softmax and log_softmax on the README's worked examples.

Literal expected values (the textbook's examples) and properties every softmax has: finite
for large inputs, rows summing to 1, invariance to adding a constant.
"""

import numpy as np
import pytest

from grader.compare import as_array, assert_close, fail

FORMULA_HINT = (
    "softmax(x) = exp(x) / sum(exp(x)): exponentiate every score, then divide by the sum of "
    "the exponentials, so the outputs are positive and sum to 1."
)
STABLE_HINT = (
    "Subtract the max before exp: softmax(x) = softmax(x - max(x)), with "
    "np.max(x, axis=-1, keepdims=True). Without it exp(1000) overflows to inf (inf/inf = NaN) "
    "and exp(-1000) underflows to 0 (0/0 = NaN)."
)
NORMALISE_HINT = (
    "Normalise each row by its own sum: exp_x / np.sum(exp_x, axis=-1, keepdims=True). With "
    "axis=0 or without keepdims=True the division uses the wrong sums."
)
LOG_SOFTMAX_HINT = "log_softmax(x) = (x - max(x)) - log(sum(exp(x - max(x)))), over the last axis."


@pytest.mark.points(3)
@pytest.mark.hint(FORMULA_HINT)
def test_softmax_textbook_example(student):
    """softmax textbook example [0.3, 2.9, 4.0]."""
    x = np.array([0.3, 2.9, 4.0])
    want = np.array([0.01821127329554753, 0.24519181293507392, 0.7365969137693786])
    assert_close(
        student.softmax(x), want, rtol=1e-6, name="softmax([0.3, 2.9, 4.0])", hint=FORMULA_HINT
    )


@pytest.mark.points(2)
@pytest.mark.hint(FORMULA_HINT)
def test_softmax_negative_scores_example(student):
    """softmax example with a negative score."""
    x = np.array([2.3, -0.9, 3.6])
    want = np.array([0.21231157131180584, 0.008654287576779275, 0.7790341411114149])
    assert_close(
        student.softmax(x), want, rtol=1e-6, name="softmax([2.3, -0.9, 3.6])", hint=FORMULA_HINT
    )


@pytest.mark.points(5)
@pytest.mark.hint(STABLE_HINT)
def test_softmax_large_inputs_stay_finite(student):
    """softmax([900, 1000, 1000]) stays finite."""
    x = np.array([900.0, 1000.0, 1000.0])
    want = np.array([1.860037988010418e-44, 0.5, 0.5])
    assert_close(
        student.softmax(x),
        want,
        rtol=1e-6,
        atol=1e-15,
        name="softmax([900, 1000, 1000])",
        hint=STABLE_HINT,
    )


@pytest.mark.points(4)
@pytest.mark.hint(NORMALISE_HINT)
def test_softmax_rows_sum_to_one(student, rng):
    """softmax rows sum to 1."""
    x = rng.normal(0.0, 3.0, size=(4, 4))
    got = as_array(student.softmax(x), name="softmax(x) for x of shape (4, 4)", hint=NORMALISE_HINT)
    if got.shape != x.shape:
        fail(
            f"softmax(x): shape {got.shape} but expected {x.shape} (the shape of x).",
            hint=NORMALISE_HINT,
        )
    if not bool(np.all(np.isfinite(got) & (got >= 0.0))):
        fail(
            "softmax(x) for x of shape (4, 4): some values are negative, NaN or Inf.",
            hint=NORMALISE_HINT,
        )
    assert_close(
        got.sum(axis=-1),
        np.ones(4),
        rtol=0.0,
        atol=1e-12,
        name="row sums of softmax(x) for x of shape (4, 4)",
        hint=NORMALISE_HINT,
    )


@pytest.mark.points(4)
@pytest.mark.hint(STABLE_HINT)
def test_softmax_shift_invariance(student, rng):
    """softmax(x + c) equals softmax(x)."""
    x = rng.normal(0.0, 1.0, size=6)
    base = as_array(student.softmax(x), name="softmax(x)", hint=FORMULA_HINT)
    for c in (1000.0, -1000.0):
        assert_close(
            student.softmax(x + c),
            base,
            rtol=1e-9,
            atol=1e-15,
            name=f"softmax(x + {c:g}) compared with softmax(x)",
            hint=STABLE_HINT,
        )


@pytest.mark.points(3)
@pytest.mark.hint(LOG_SOFTMAX_HINT)
def test_log_softmax_textbook_example(student):
    """log_softmax textbook example."""
    x = np.array([0.3, 2.9, 4.0])
    want = np.array([-4.005714464812452, -1.4057144648124522, -0.30571446481245207])
    assert_close(
        student.log_softmax(x),
        want,
        rtol=1e-9,
        atol=1e-12,
        name="log_softmax([0.3, 2.9, 4.0])",
        hint=LOG_SOFTMAX_HINT,
    )
