"""Hidden checks for the Convolution and Pooling layers against F.conv2d and F.max_pool2d."""

import numpy as np
import pytest

from grader.compare import as_array, assert_close, expect

# (N, C, H, W, FN, FH, FW, stride, pad)
CONV_CASES = {
    "5x5-k3-s1-p0": (2, 3, 5, 5, 3, 3, 3, 1, 0),
    "7x5-k3-s2-p1": (2, 2, 7, 5, 4, 3, 3, 2, 1),
    "6x8-k2x3-s1-p2": (1, 3, 6, 8, 2, 2, 3, 1, 2),
    "8x7-k2-s3-p0": (3, 2, 8, 7, 3, 2, 2, 3, 0),
}

# (N, C, H, W, pool_h, pool_w, stride)
POOL_CASES = {
    "4x4-p2-s2": (2, 3, 4, 4, 2, 2, 2),
    "7x5-p3-s2": (2, 2, 7, 5, 3, 3, 2),
    "5x6-p2x3-s1": (1, 3, 5, 6, 2, 3, 1),
}

SIZE_HINT = "out_h = (H + 2*pad - FH)//stride + 1 and likewise out_w (pad on both sides)."
CONV_HINT = (
    "out = im2col(x) @ W.reshape(FN, -1).T + b, reshaped to (N, out_h, out_w, FN) and "
    "transposed to (N, FN, out_h, out_w); im2col's columns must be in (c, ky, kx) order to "
    "match W.reshape(FN, -1)."
)
DX_HINT = (
    "dx = col2im(dout_flat @ col_W.T, x.shape, FH, FW, stride, pad) with "
    "dout_flat = dout.transpose(0, 2, 3, 1).reshape(-1, FN); col2im must accumulate (+=) "
    "overlapping windows."
)
DW_HINT = "dW = col.T @ dout_flat, then transpose(1, 0) and reshape to (FN, C, FH, FW)."
DB_HINT = "db sums dout over the batch and every output position: np.sum(dout_flat, axis=0)."
POOL_HINT = (
    "im2col(x) reshaped to (-1, pool_h*pool_w) has one channel's window per row only if "
    "im2col's columns are in (c, ky, kx) order; take the max of each row, reshape to "
    "(N, out_h, out_w, C) and transpose to (N, C, out_h, out_w)."
)
POOL_BACK_HINT = (
    "Each dout value goes to its window's maximum: put dout in im2col's row order with "
    "dout.transpose(0, 2, 3, 1), scatter it into a (rows, pool_h*pool_w) array at arg_max, "
    "then col2im, which accumulates (+=) where windows overlap."
)


def _forward_checked(layer, x, want, what, hint):
    """layer.forward(x), checked against `want` (shape first) before any gradient is compared."""
    out = as_array(layer.forward(x), name=f"{what}.forward(x)")
    expect(
        out.shape == want.shape,
        f"{what}.forward(x) for x of shape {x.shape} has shape {out.shape}, expected {want.shape}.",
        hint=SIZE_HINT,
    )
    assert_close(out, want, rtol=1e-9, atol=1e-12, name=f"{what}.forward(x)", hint=hint)
    return out


def _conv_setup(case, rng):
    N, C, H, W, FN, FH, FW, stride, pad = case
    x = rng.standard_normal((N, C, H, W))
    weights = rng.standard_normal((FN, C, FH, FW))
    bias = rng.standard_normal(FN)
    return x, weights, bias, stride, pad


def _conv_run(student, reference, case, rng):
    """Forward and backward through the student's layer: (layer, dx, want_dx, want_dW, want_db)."""
    x, weights, bias, stride, pad = _conv_setup(case, rng)
    want = reference.conv_forward(x, weights, bias, stride=stride, pad=pad)
    dout = rng.standard_normal(want.shape)
    wants = reference.conv_backward(x, weights, bias, dout, stride=stride, pad=pad)
    layer = student.Convolution(weights, bias, stride=stride, pad=pad)
    what = f"Convolution(W of shape {weights.shape}, stride={stride}, pad={pad})"
    _forward_checked(layer, x, want, what, CONV_HINT)
    dx = layer.backward(dout)
    return layer, dx, *wants


@pytest.mark.hint(CONV_HINT)
@pytest.mark.points(3)
@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_convolution_forward(student, reference, rng, case):
    x, weights, bias, stride, pad = _conv_setup(case, rng)
    kept = x.copy()
    layer = student.Convolution(weights, bias, stride=stride, pad=pad)
    want = reference.conv_forward(kept, weights, bias, stride=stride, pad=pad)
    what = f"Convolution(W of shape {weights.shape}, stride={stride}, pad={pad})"
    with student.inplace(x):
        _forward_checked(layer, x, want, what, CONV_HINT)
    assert_close(
        x, kept, rtol=0, atol=0, name="x after Convolution.forward(x)", hint="Do not modify x."
    )


@pytest.mark.hint(DX_HINT, function="Convolution.backward")
@pytest.mark.points(3)
@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_convolution_backward_dx(student, reference, rng, case):
    _, dx, want_dx, _, _ = _conv_run(student, reference, case, rng)
    name = "dx from Convolution.backward(dout)"
    assert_close(dx, want_dx, rtol=1e-9, atol=1e-12, name=name, hint=DX_HINT)


@pytest.mark.hint(DW_HINT + " " + DB_HINT, function="Convolution.backward")
@pytest.mark.points(2)
@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_convolution_param_grads(student, reference, rng, case):
    layer, _, _, want_dW, want_db = _conv_run(student, reference, case, rng)
    name = "dW from Convolution.backward(dout)"
    assert_close(layer.dW, want_dW, rtol=1e-9, atol=1e-12, name=name, hint=DW_HINT)
    name = "db from Convolution.backward(dout)"
    assert_close(layer.db, want_db, rtol=1e-9, atol=1e-12, name=name, hint=DB_HINT)


def _pool_setup(student, reference, case, rng):
    N, C, H, W, ph, pw, stride = case
    x = rng.standard_normal((N, C, H, W))
    kept = x.copy()
    layer = student.Pooling(ph, pw, stride=stride)
    want = reference.pool_forward(kept, ph, pw, stride=stride)
    with student.inplace(x):
        _forward_checked(layer, x, want, f"Pooling({ph}, {pw}, stride={stride})", POOL_HINT)
    assert_close(
        x, kept, rtol=0, atol=0, name="x after Pooling.forward(x)", hint="Do not modify x."
    )
    return layer, kept, want


@pytest.mark.hint(POOL_HINT)
@pytest.mark.points(2)
@pytest.mark.parametrize("case", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_pooling_forward(student, reference, rng, case):
    _pool_setup(student, reference, case, rng)


@pytest.mark.hint(POOL_BACK_HINT, function="Pooling.backward")
@pytest.mark.points(3)
@pytest.mark.parametrize("case", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_pooling_backward(student, reference, rng, case):
    layer, x, out = _pool_setup(student, reference, case, rng)
    _, _, _, _, ph, pw, stride = case
    dout = rng.standard_normal(out.shape)
    want = reference.pool_backward(x, ph, pw, dout, stride=stride)
    dx = layer.backward(dout)
    name = "dx from Pooling.backward(dout)"
    assert_close(dx, want, rtol=1e-12, atol=1e-12, name=name, hint=POOL_BACK_HINT)


@pytest.mark.points(4)
@pytest.mark.hint(
    "When several values tie for the maximum, the whole gradient goes to the first maximum "
    "of the window (np.argmax), not to every tied maximum.",
    function="Pooling.backward",
)
def test_pooling_gradient_ties_go_to_first_max(student):
    # Channel 0 is all zeros (as after a ReLU); channel 1 ties within windows.
    x = np.zeros((1, 2, 4, 4))
    x[0, 1] = [[1, 5, 2, 2], [5, 0, 2, 2], [3, 3, 0, 4], [3, 3, 4, 1]]
    layer = student.Pooling(2, 2, stride=2)
    want_out = np.array([[[[0.0, 0.0], [0.0, 0.0]], [[5.0, 2.0], [3.0, 4.0]]]])
    _forward_checked(layer, x, want_out, "Pooling(2, 2, stride=2)", POOL_HINT)
    dx = layer.backward(np.ones((1, 2, 2, 2)))
    want = np.zeros((1, 2, 4, 4))
    want[0, :, 0::2, 0::2] = 1.0
    want[0, 1, 0, 0], want[0, 1, 0, 1], want[0, 1, 2, 3] = 0.0, 1.0, 1.0
    want[0, 1, 2, 2] = 0.0
    assert_close(dx, want, rtol=0, atol=0, name="dx from Pooling.backward(dout), tied maxima")
