"""Public checks for assignment3: the losses on the README's worked examples.

The textbook's MSE and cross-entropy example (a 10-class output with the true class 2) and a
two-example batch for the fused softmax cross-entropy, with one-hot and index targets.
"""

import numpy as np
import pytest

from grader.compare import as_array, assert_close, fail

Y_GOOD = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
Y_BAD = np.array([0.1, 0.05, 0.1, 0.0, 0.05, 0.1, 0.0, 0.6, 0.0, 0.0])
T_TWO = np.eye(10)[2]

MSE_HINT = (
    "The course's MSE is 0.5 * sum((y - t)**2) over all elements: keep the factor 0.5, and sum "
    "rather than average."
)
CEE_HINT = (
    "cross_entropy_error(y, t) = -sum(t * log(y + 1e-7)) / N. A 1-D y is a batch of one, and t "
    "may be one-hot (the same shape as y): take the log of y where t is 1 (t.argmax(axis=1) "
    "gives the label indices)."
)
MEAN_HINT = "Divide by the batch size: the loss is the mean over the N examples, not their sum."
SCE_HINT = (
    "softmax_cross_entropy(logits, t) is the mean over the batch of "
    "-log_softmax(logits)[true class]; t may be one-hot rows or label indices."
)


def _loss(got, want, batch, *, name, hint, rtol):
    """Compare a scalar loss; say so when it is the batch sum instead of the mean."""
    value = as_array(got, name=name, hint=hint)
    if (
        batch > 1
        and value.shape == ()
        and bool(np.isfinite(value))
        and abs(float(value) - batch * want) <= 1e-4 * abs(batch * want)
    ):
        fail(
            f"{name}: got {float(value):.6g}, {batch} times the expected {want:.6g} "
            "(the sum over the batch).",
            hint=MEAN_HINT,
        )
    assert_close(value, np.float64(want), rtol=rtol, name=name, hint=hint)


@pytest.mark.points(5)
@pytest.mark.hint(MSE_HINT)
def test_mse_textbook_example(student):
    """mean_squared_error textbook example."""
    assert_close(
        student.mean_squared_error(Y_GOOD, T_TWO),
        np.float64(0.0975),
        rtol=1e-9,
        name="mean_squared_error(y, t) with y[2] = 0.6",
        hint=MSE_HINT,
    )
    assert_close(
        student.mean_squared_error(Y_BAD, T_TWO),
        np.float64(0.5975),
        rtol=1e-9,
        name="mean_squared_error(y, t) with y[2] = 0.1",
        hint=MSE_HINT,
    )


@pytest.mark.points(5)
@pytest.mark.hint(CEE_HINT)
def test_cross_entropy_textbook_example(student):
    """cross_entropy_error textbook example."""
    assert_close(
        student.cross_entropy_error(Y_GOOD, T_TWO),
        np.float64(0.510825457099338),
        rtol=1e-6,
        name="cross_entropy_error(y, t) with y[2] = 0.6",
        hint=CEE_HINT,
    )
    assert_close(
        student.cross_entropy_error(Y_BAD, T_TWO),
        np.float64(2.302584092994546),
        rtol=1e-6,
        name="cross_entropy_error(y, t) with y[2] = 0.1",
        hint=CEE_HINT,
    )


@pytest.mark.points(4)
@pytest.mark.hint(SCE_HINT)
def test_softmax_cross_entropy_example(student):
    """softmax_cross_entropy on a batch of two."""
    logits = np.array([[0.3, 2.9, 4.0], [2.3, -0.9, 3.6]])
    labels = np.array([2, 0])
    want = 0.9277074360201438
    _loss(
        student.softmax_cross_entropy(logits, labels),
        want,
        2,
        name="softmax_cross_entropy(logits, t) with index targets [2, 0]",
        hint=SCE_HINT,
        rtol=1e-6,
    )
    _loss(
        student.softmax_cross_entropy(logits, np.eye(3)[labels]),
        want,
        2,
        name="softmax_cross_entropy(logits, t) with one-hot targets",
        hint=SCE_HINT,
        rtol=1e-6,
    )
