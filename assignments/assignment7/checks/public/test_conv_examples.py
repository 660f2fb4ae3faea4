"""Public checks for assignment7: the textbook's im2col shapes and the README's worked examples."""

import numpy as np
import pytest

from grader.compare import as_array, assert_close, expect

X_TINY = np.arange(9.0).reshape(1, 1, 3, 3)
W_TINY = np.ones((1, 1, 2, 2))
B_TINY = np.array([1.0])

X_POOL = np.array([[[[1.0, 3, 2, 0], [4, 2, 1, 5], [0, 1, 7, 2], [3, 2, 1, 6]]]])


@pytest.mark.points(4)
@pytest.mark.hint(
    "One row per window position, one column per (channel, ky, kx): "
    "shape (N*out_h*out_w, C*filter_h*filter_w), out_h = (H + 2*pad - filter_h)//stride + 1."
)
def test_im2col_textbook_shapes(student, rng):
    x1 = rng.random((1, 3, 7, 7))
    col1 = as_array(student.im2col(x1, 5, 5, stride=1, pad=0), name="im2col(x1, 5, 5)")
    expect(
        col1.shape == (9, 75),
        f"im2col(x1, 5, 5) for x1 of shape (1, 3, 7, 7) has shape {col1.shape}, expected (9, 75).",
    )
    x2 = rng.random((10, 3, 7, 7))
    col2 = as_array(student.im2col(x2, 5, 5, stride=1, pad=0), name="im2col(x2, 5, 5)")
    expect(
        col2.shape == (90, 75),
        f"im2col(x2, 5, 5) for x2 of shape (10, 3, 7, 7) has shape {col2.shape}, "
        "expected (90, 75).",
    )


@pytest.mark.points(4)
@pytest.mark.hint(
    "out = im2col(x) @ W.reshape(FN, -1).T + b, reshaped to (N, out_h, out_w, FN) and "
    "transposed to (N, FN, out_h, out_w)."
)
def test_convolution_tiny_forward(student):
    layer = student.Convolution(W_TINY, B_TINY, stride=1, pad=0)
    out = layer.forward(X_TINY.copy())
    want = np.array([[[[9.0, 13.0], [21.0, 25.0]]]])
    assert_close(out, want, rtol=1e-12, atol=1e-12, name="Convolution.forward (README example)")


@pytest.mark.hint(
    "dx = col2im(dout_flat @ col_W.T, ...), dW = (col.T @ dout_flat).transpose(1, 0) reshaped "
    "to (FN, C, FH, FW), db = dout_flat.sum(axis=0), with "
    "dout_flat = dout.transpose(0, 2, 3, 1).reshape(-1, FN).",
    function="Convolution.backward",
)
@pytest.mark.points(4)
def test_convolution_tiny_backward(student):
    layer = student.Convolution(W_TINY, B_TINY, stride=1, pad=0)
    layer.forward(X_TINY.copy())
    dx = layer.backward(np.ones((1, 1, 2, 2)))
    assert_close(
        dx,
        np.array([[[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]]]),
        rtol=1e-12,
        atol=1e-12,
        name="dx from Convolution.backward (README example)",
        hint="dx = col2im(dout_flat @ col_W.T, x.shape, ...): col2im must accumulate (+=) the "
        "windows that overlap, so the centre pixel, in all 4 windows, gets 4.",
    )
    assert_close(
        layer.dW,
        np.array([[[[8.0, 12.0], [20.0, 24.0]]]]),
        rtol=1e-12,
        atol=1e-12,
        name="dW from Convolution.backward (README example)",
        hint="dW = col.T @ dout_flat, then transpose(1, 0) and reshape to (FN, C, FH, FW).",
    )
    assert_close(
        layer.db,
        np.array([4.0]),
        rtol=1e-12,
        atol=1e-12,
        name="db from Convolution.backward (README example)",
        hint="db sums dout over the batch and every output position: shape (FN,).",
    )


@pytest.mark.points(3)
@pytest.mark.hint(
    "Reshape im2col(x) to (-1, pool_h*pool_w), take the max of each row, reshape to "
    "(N, out_h, out_w, C) and transpose to (N, C, out_h, out_w)."
)
def test_pooling_tiny_forward(student):
    layer = student.Pooling(2, 2, stride=2)
    out = layer.forward(X_POOL.copy())
    want = np.array([[[[4.0, 5.0], [3.0, 7.0]]]])
    assert_close(out, want, rtol=0, atol=0, name="Pooling.forward (README example)")


@pytest.mark.points(3)
@pytest.mark.hint(
    "Each dout value goes to the position of its window's maximum; put dout in im2col's row "
    "order first with dout.transpose(0, 2, 3, 1).",
    function="Pooling.backward",
)
def test_pooling_tiny_backward(student):
    layer = student.Pooling(2, 2, stride=2)
    layer.forward(X_POOL.copy())
    dx = layer.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    want = np.zeros((1, 1, 4, 4))
    want[0, 0, 1, 0], want[0, 0, 1, 3], want[0, 0, 3, 0], want[0, 0, 2, 2] = 1, 2, 3, 4
    assert_close(dx, want, rtol=0, atol=0, name="Pooling.backward (README example)")
