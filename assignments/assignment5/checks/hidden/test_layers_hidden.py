"""Hidden checks for assignment5's basic layers against PyTorch autograd.

Each check builds a fresh layer, runs forward then backward on seeded random inputs and
compares every output and gradient with the float64 reference. What a layer writes into an
argument stays in the worker (only the input-unchanged check asks for it with
`student.inplace`), so such a layer fails that check alone.
"""

import numpy as np
import pytest

from grader.compare import as_array, assert_close, assert_equal, expect, fail


def _close(got, want, name: str, rtol: float = 1e-7) -> None:
    """Relative error `rtol`, with a floor relative to the largest expected value."""
    want = np.asarray(want)
    floor = 1e-9 * float(np.max(np.abs(want))) if want.size else 0.0
    assert_close(got, want, rtol=rtol, atol=floor + 1e-300, name=name)


def _pair(value, name: str) -> tuple:
    """The (dx, dy) tuple a two-input backward returns."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        fail(f"{name} must return a tuple (dx, dy), got {type(value).__name__}.")
    return tuple(value)


def _loss_tolerance(reference, x, labels) -> float:
    """Absolute slack for a loss computed as -log(y + 1e-7), as the textbook does."""
    y = reference.softmax(x)[np.arange(len(labels)), labels]
    return 2e-7 * float(np.mean(1.0 / y)) + 1e-12


@pytest.mark.points(3)
@pytest.mark.hint("MulLayer.forward returns x * y.", function="MulLayer.forward")
@pytest.mark.hint(
    "MulLayer.backward returns (dout * y, dout * x): do not swap x and y.",
    function="MulLayer.backward",
)
def test_mul_layer_matches_autograd(student, reference, rng):
    x, y, dout = (rng.standard_normal((3, 4)) for _ in range(3))
    out, dx, dy = reference.mul(x, y, dout)
    layer = student.MulLayer()
    _close(layer.forward(x.copy(), y.copy()), out, "MulLayer.forward(x, y)")
    got_dx, got_dy = _pair(layer.backward(dout.copy()), "MulLayer.backward")
    _close(got_dx, dx, "dx from MulLayer.backward(dout)")
    _close(got_dy, dy, "dy from MulLayer.backward(dout)")


@pytest.mark.points(2)
@pytest.mark.hint("AddLayer.forward returns x + y.", function="AddLayer.forward")
@pytest.mark.hint(
    "AddLayer.backward passes dout unchanged to both inputs: (dout, dout).",
    function="AddLayer.backward",
)
def test_add_layer_matches_autograd(student, reference, rng):
    x, y, dout = (rng.standard_normal((3, 4)) for _ in range(3))
    out, dx, dy = reference.add(x, y, dout)
    layer = student.AddLayer()
    _close(layer.forward(x.copy(), y.copy()), out, "AddLayer.forward(x, y)")
    got_dx, got_dy = _pair(layer.backward(dout.copy()), "AddLayer.backward")
    _close(got_dx, dx, "dx from AddLayer.backward(dout)")
    _close(got_dy, dy, "dy from AddLayer.backward(dout)")


@pytest.mark.points(3)
@pytest.mark.hint(
    "Relu.forward returns max(0, x) elementwise (np.maximum(0, x)) and remembers where x <= 0.",
    function="Relu.forward",
)
@pytest.mark.hint(
    "Relu.backward passes dout where x > 0 and gives 0 where x <= 0.", function="Relu.backward"
)
def test_relu_matches_autograd(student, reference, rng):
    x, dout = rng.standard_normal((6, 7)), rng.standard_normal((6, 7))
    out, dx = reference.relu(x, dout)
    layer = student.Relu()
    _close(layer.forward(x.copy()), out, "Relu.forward(x)")
    _close(layer.backward(dout.copy()), dx, "Relu.backward(dout)")


@pytest.mark.points(3)
@pytest.mark.hint(
    "Sigmoid.forward returns 1 / (1 + exp(-x)) elementwise and stores it for backward.",
    function="Sigmoid.forward",
)
@pytest.mark.hint(
    "Sigmoid.backward is dout * y * (1 - y) with y the forward output (store it in forward), "
    "not the input x.",
    function="Sigmoid.backward",
)
def test_sigmoid_matches_autograd(student, reference, rng):
    x, dout = 3.0 * rng.standard_normal((6, 7)), rng.standard_normal((6, 7))
    out, dx = reference.sigmoid(x, dout)
    layer = student.Sigmoid()
    _close(layer.forward(x.copy()), out, "Sigmoid.forward(x)")
    _close(layer.backward(dout.copy()), dx, "Sigmoid.backward(dout)")


def _check_affine(student, reference, x, M: int, rng) -> None:
    D = int(np.prod(x.shape[1:]))
    W, b = rng.standard_normal((D, M)), rng.standard_normal(M)
    dout = rng.standard_normal((x.shape[0], M))
    out, dx, dW, db = reference.affine(x, W, b, dout)
    layer = student.Affine(W.copy(), b.copy())
    _close(layer.forward(x.copy()), out, f"Affine.forward(x) for x of shape {x.shape}")
    _close(layer.backward(dout.copy()), dx, "dx from Affine.backward(dout)")
    _close(layer.dW, dW, "dW from Affine.backward(dout)")
    _close(layer.db, db, "db from Affine.backward(dout)")


@pytest.mark.points(4)
@pytest.mark.hint("Affine.forward returns x @ W + b.", function="Affine.forward")
@pytest.mark.hint(
    "dx = dout @ W.T; dW = x.T @ dout; db sums dout over the batch axis (axis=0), so it has "
    "b's shape.",
    function="Affine.backward",
)
def test_affine_matches_autograd(student, reference, rng):
    _check_affine(student, reference, rng.standard_normal((5, 6)), 3, rng)


@pytest.mark.points(4)
@pytest.mark.hint(
    "Flatten x per sample with x.reshape(N, -1) in forward and reshape dx back to x's "
    "original shape in backward; db sums dout over the batch axis (axis=0)."
)
def test_affine_4d_input_matches_autograd(student, reference, rng):
    _check_affine(student, reference, rng.standard_normal((4, 2, 3, 3)), 5, rng)


@pytest.mark.points(4)
@pytest.mark.hint(
    "The loss is the batch MEAN of -log(softmax) of the true class; backward returns "
    "(y - t) / batch size. Subtract the row max before exp."
)
def test_softmax_with_loss_one_hot_matches_torch(student, reference, rng):
    x, labels = 2.0 * rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    t = np.eye(5)[labels]
    loss, dx = reference.softmax_with_loss(x, t)
    layer = student.SoftmaxWithLoss()
    got = layer.forward(x.copy(), t.copy())
    tolerance = _loss_tolerance(reference, x, labels)
    name = "SoftmaxWithLoss.forward(x, t) with one-hot t"
    assert_close(got, loss, rtol=1e-9, atol=tolerance, name=name)
    _close(layer.backward(), dx, "SoftmaxWithLoss.backward() with one-hot t")


@pytest.mark.points(4)
@pytest.mark.hint(
    "With label indices t (N,), subtract 1 at [arange(N), t] of y, then divide by the "
    "batch size; the loss is the batch MEAN of -log(y[arange(N), t])."
)
def test_softmax_with_loss_labels_matches_torch(student, reference, rng):
    x, labels = 2.0 * rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    loss, dx = reference.softmax_with_loss(x, labels)
    layer = student.SoftmaxWithLoss()
    got = layer.forward(x.copy(), labels.copy())
    tolerance = _loss_tolerance(reference, x, labels)
    name = "SoftmaxWithLoss.forward(x, t) with label indices t"
    assert_close(got, loss, rtol=1e-9, atol=tolerance, name=name)
    _close(layer.backward(), dx, "SoftmaxWithLoss.backward() with label indices t")


def _mul(student, rng):
    inputs = [rng.standard_normal((4, 5)), rng.standard_normal((4, 5))]
    return inputs, lambda x, y: student.MulLayer().forward(x, y)


def _add(student, rng):
    inputs = [rng.standard_normal((4, 5)), rng.standard_normal((4, 5))]
    return inputs, lambda x, y: student.AddLayer().forward(x, y)


def _relu(student, rng):
    return [rng.standard_normal((4, 5))], lambda x: student.Relu().forward(x)


def _sigmoid(student, rng):
    return [rng.standard_normal((4, 5))], lambda x: student.Sigmoid().forward(x)


def _affine(student, rng):
    W, b = rng.standard_normal((12, 3)), rng.standard_normal(3)
    return [rng.standard_normal((2, 3, 2, 2))], lambda x: student.Affine(W, b).forward(x)


def _softmax_with_loss(student, rng):
    inputs = [rng.standard_normal((4, 5)), rng.integers(0, 5, 4)]
    return inputs, lambda x, t: student.SoftmaxWithLoss().forward(x, t)


def _dropout(student, rng):
    return [rng.standard_normal((4, 5))], lambda x: student.Dropout(0.5).forward(x)


def _batch_norm(student, rng):
    gamma, beta = np.ones(5), np.zeros(5)
    layer = student.BatchNormalization(gamma, beta)
    return [rng.standard_normal((4, 5))], lambda x: layer.forward(x, train_flg=True)


# case id: (the layer's class, its inputs and a call of its forward on them)
INPUT_CASES = {
    "mul": ("MulLayer", _mul),
    "add": ("AddLayer", _add),
    "relu": ("Relu", _relu),
    "sigmoid": ("Sigmoid", _sigmoid),
    "affine": ("Affine", _affine),
    "softmax_with_loss": ("SoftmaxWithLoss", _softmax_with_loss),
    "dropout": ("Dropout", _dropout),
    "batch_norm": ("BatchNormalization", _batch_norm),
}


@pytest.mark.points(1)
@pytest.mark.hint(
    "forward must not change its input in place: build the output in a new array "
    "(e.g. out = x.copy(), or x = x - mean rather than x -= mean)."
)
@pytest.mark.parametrize("layer", list(INPUT_CASES))
def test_forward_leaves_input_unchanged(student, rng, layer):
    cls, case = INPUT_CASES[layer]
    inputs, forward = case(student, rng)
    before = [a.copy() for a in inputs]
    with student.inplace(*inputs):
        forward(*inputs)
    for i, (after, original) in enumerate(zip(inputs, before, strict=True)):
        assert_equal(after, original, name=f"input #{i + 1} of {cls}.forward after the call")


@pytest.mark.points(3)
@pytest.mark.hint(
    "Non-inverted dropout: in training, out = x * mask with mask = rand > dropout_ratio "
    "(no division by 1 - dropout_ratio; that is inverted dropout), and backward returns "
    "dout * mask with the same mask."
)
def test_dropout_train_keeps_or_zeroes(student, rng):
    shape = (20, 30)
    x = rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    layer = student.Dropout(dropout_ratio=0.4)
    out = as_array(layer.forward(x.copy(), train_flg=True), name="Dropout.forward(x)")
    expect(out.shape == shape, f"Dropout.forward(x): shape {out.shape}, expected {shape}.")
    kept = out != 0
    assert_equal(out, np.where(kept, x, 0.0), name="Dropout.forward(x) (each value x or 0)")
    dout = rng.uniform(0.5, 2.0, shape)
    dx = layer.backward(dout.copy())
    assert_equal(dx, np.where(kept, dout, 0.0), name="Dropout.backward(dout)")


@pytest.mark.points(3)
@pytest.mark.hint(
    "Keep a unit when np.random.rand(*x.shape) > dropout_ratio: about 1 - dropout_ratio of "
    "the units survive; draw a new mask of x's shape on every training forward."
)
def test_dropout_keep_fraction(student, rng):
    x = rng.uniform(0.5, 2.0, (200, 100))
    for ratio in (0.2, 0.6):
        layer = student.Dropout(dropout_ratio=ratio)
        out = as_array(layer.forward(x.copy()), name=f"Dropout({ratio}).forward(x)")
        kept = float(np.mean(out != 0)) if out.shape == x.shape else float("nan")
        expect(
            abs(kept - (1 - ratio)) < 0.03,
            f"Dropout(dropout_ratio={ratio}) in training kept a fraction {kept:.3f} of "
            f"{x.size} units, expected about {1 - ratio:.2f}.",
        )


@pytest.mark.points(3)
@pytest.mark.hint(
    "Non-inverted dropout: at test time (train_flg=False) return x * (1 - dropout_ratio), "
    "with no random mask."
)
def test_dropout_test_mode_scales(student, reference, rng):
    x = rng.standard_normal((8, 9))
    layer = student.Dropout(dropout_ratio=0.3)
    want = reference.dropout_test(x, 0.3)
    for call in ("first", "second"):
        got = layer.forward(x.copy(), train_flg=False)
        _close(got, want, f"Dropout(0.3).forward(x, train_flg=False), {call} call", rtol=1e-12)
