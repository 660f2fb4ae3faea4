"""Hidden checks for assignment3: the losses against torch on the grade's device.

Seeded random batches with one-hot and index targets (compared with F.nll_loss, F.mse_loss
and F.cross_entropy), a zero probability at the true class, and logits of 1e4 for the fused
loss. Losses are compared loosely enough (1e-5) that the 1e-7 delta inside the log is allowed
either way except where a probability is 0.
"""

import numpy as np
import pytest

from grader.compare import as_array, assert_close, fail

MEAN_HINT = "Divide by the batch size: the loss is the mean over the N examples, not their sum."
ONE_HOT_HINT = (
    "t may be one-hot rows of the same shape as y: convert them with t.argmax(axis=1), or "
    "compute -sum(t * log(y + 1e-7)) directly, then divide by the batch size."
)
INDICES_HINT = (
    "t may hold label indices, shape (N,), instead of one-hot rows: pick each row's "
    "probability with y[np.arange(N), t]. One-hot and index targets give the same loss."
)
DELTA_HINT = (
    "Add a small delta inside the log, np.log(y + 1e-7): a probability of 0 at the true class "
    "gives log(0) = -inf. (Here y is 1-D, a batch of one, and t is one-hot.)"
)
MSE_HINT = (
    "The course's MSE is 0.5 * sum((y - t)**2) over all elements: keep the factor 0.5, and sum "
    "rather than average over the batch."
)
SCE_HINT = (
    "softmax_cross_entropy(logits, t) is the mean over the batch of "
    "-log_softmax(logits)[true class]; t may be one-hot rows or label indices."
)
OVERFLOW_HINT = (
    "exp(1e4) overflows to inf: subtract each row's max from the logits before exp (the "
    "log-sum-exp trick), log_softmax = z - log(sum(exp(z))) with z = logits - max."
)
FUSED_HINT = (
    "Compute the log-softmax directly, z - log(sum(exp(z))) with z = logits - max, instead of "
    "log(softmax(logits) + 1e-7): at logits of 1e4 the true class's probability underflows to "
    "0 and the 1e-7 caps each loss at 16.1."
)


def _loss(got, want, batch, *, name, hint, rtol, atol):
    """Compare a scalar loss; say so when it is the batch sum instead of the mean."""
    value = as_array(got, name=name, hint=hint)
    want = float(want)
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
    assert_close(value, np.float64(want), rtol=rtol, atol=atol, name=name, hint=hint)


def _probabilities(rng, n, c):
    """Random probability rows, each entry at least 0.02 / c."""
    return 0.98 * rng.dirichlet(np.ones(c), size=n) + 0.02 / c


@pytest.mark.points(5)
@pytest.mark.hint(ONE_HOT_HINT)
def test_cross_entropy_one_hot_batch(student, reference, rng):
    """cross_entropy_error, one-hot batch."""
    y = _probabilities(rng, 6, 5)
    t = np.eye(5)[rng.integers(0, 5, size=6)]
    want = reference.cross_entropy_error(y, t)
    _loss(
        student.cross_entropy_error(y, t),
        want,
        6,
        name="cross_entropy_error(y, t), y of shape (6, 5), one-hot t",
        hint=ONE_HOT_HINT,
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.points(5)
@pytest.mark.hint(INDICES_HINT)
def test_cross_entropy_index_targets(student, reference, rng):
    """cross_entropy_error, index targets."""
    y = _probabilities(rng, 6, 5)
    labels = rng.integers(0, 5, size=6)
    want = reference.cross_entropy_error(y, np.eye(5)[labels])
    _loss(
        student.cross_entropy_error(y, labels),
        want,
        6,
        name="cross_entropy_error(y, t), y of shape (6, 5), t label indices of shape (6,)",
        hint=INDICES_HINT,
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.points(5)
@pytest.mark.hint(DELTA_HINT)
def test_cross_entropy_zero_probability_is_finite(student, reference):
    """cross_entropy_error with y = 0 at the true class."""
    y = np.array([0.2, 0.0, 0.8])
    t = np.array([0.0, 1.0, 0.0])
    want = reference.cross_entropy_error(y, t)
    assert_close(
        student.cross_entropy_error(y, t),
        want,
        rtol=1e-6,
        name="cross_entropy_error([0.2, 0, 0.8], [0, 1, 0])",
        hint=DELTA_HINT,
    )


@pytest.mark.points(4)
@pytest.mark.hint(MSE_HINT)
def test_mse_batch_matches_torch(student, reference, rng):
    """mean_squared_error of a batch vs torch."""
    y = _probabilities(rng, 4, 3)
    t = np.eye(3)[rng.integers(0, 3, size=4)]
    want = reference.mean_squared_error(y, t)
    assert_close(
        student.mean_squared_error(y, t),
        want,
        rtol=1e-9,
        name="mean_squared_error(y, t), y of shape (4, 3)",
        hint=MSE_HINT,
    )


@pytest.mark.points(6)
@pytest.mark.hint(SCE_HINT)
def test_softmax_cross_entropy_one_hot_batch(student, reference, rng):
    """softmax_cross_entropy, one-hot batch."""
    logits = rng.uniform(-2.0, 2.0, size=(6, 4))
    t = np.eye(4)[rng.integers(0, 4, size=6)]
    want = reference.softmax_cross_entropy(logits, t)
    _loss(
        student.softmax_cross_entropy(logits, t),
        want,
        6,
        name="softmax_cross_entropy(logits, t), logits of shape (6, 4), one-hot t",
        hint=SCE_HINT,
        rtol=1e-6,
        atol=5e-5,
    )


@pytest.mark.points(5)
@pytest.mark.hint(SCE_HINT)
def test_softmax_cross_entropy_index_targets(student, reference, rng):
    """softmax_cross_entropy, index targets."""
    logits = rng.uniform(-2.0, 2.0, size=(6, 4))
    labels = rng.integers(0, 4, size=6)
    want = reference.softmax_cross_entropy(logits, labels)
    _loss(
        student.softmax_cross_entropy(logits, labels),
        want,
        6,
        name="softmax_cross_entropy(logits, t), t label indices of shape (6,)",
        hint=SCE_HINT,
        rtol=1e-6,
        atol=5e-5,
    )


@pytest.mark.points(10)
@pytest.mark.hint(FUSED_HINT)
def test_softmax_cross_entropy_large_logits(student, reference):
    """softmax_cross_entropy with logits of 1e4."""
    logits = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4], [0.0, 0.0, 1e4]])
    labels = np.array([1, 0, 2])
    for row, label in zip(logits, labels, strict=True):
        batch = row.reshape(1, 3)
        target = np.array([label])
        want = reference.softmax_cross_entropy(batch, target)
        name = f"softmax_cross_entropy([[{', '.join(f'{v:g}' for v in row)}]], [{label}])"
        value = as_array(student.softmax_cross_entropy(batch, target), name=name, hint=FUSED_HINT)
        hint = FUSED_HINT if bool(np.all(np.isfinite(value))) else OVERFLOW_HINT
        assert_close(value, want, rtol=1e-9, name=name, hint=hint)
