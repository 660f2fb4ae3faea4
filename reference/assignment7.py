"""Reference solution for assignment7 (convolution with im2col), computed with PyTorch.

`im2col`/`col2im` are `F.unfold`/`F.fold` rearranged into the textbook's layout (rows
(n, oy, ox), columns (c, ky, kx)); the layers' forward and backward passes are `F.conv2d`
and `F.max_pool2d` with autograd. NumPy in, NumPy out; float64 on the grade's device.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F

from grader.torchref import numpy, tensor


def output_size(size: int, kernel: int, stride: int = 1, pad: int = 0) -> int:
    """Number of window positions along one axis: (size + 2*pad - kernel) // stride + 1."""
    return (size + 2 * pad - kernel) // stride + 1


def im2col(
    input_data: np.ndarray, filter_h: int, filter_w: int, stride: int = 1, pad: int = 0
) -> np.ndarray:
    """(N, C, H, W) -> (N*out_h*out_w, C*filter_h*filter_w): one row per window.

    F.unfold gives (N, C*filter_h*filter_w, out_h*out_w) with the columns already in
    (c, ky, kx) order, so only the last two axes swap before flattening the batch.
    """
    x = tensor(input_data)
    cols = F.unfold(x, (filter_h, filter_w), stride=stride, padding=pad)  # (N, CK, L)
    return numpy(cols.transpose(1, 2).reshape(-1, cols.shape[1]))


def col2im(
    col: np.ndarray,
    input_shape: tuple[int, int, int, int],
    filter_h: int,
    filter_w: int,
    stride: int = 1,
    pad: int = 0,
) -> np.ndarray:
    """(N*out_h*out_w, C*filter_h*filter_w) -> (N, C, H, W), summing overlapping windows."""
    n, c, h, w = input_shape
    cols = tensor(col).reshape(n, -1, c * filter_h * filter_w).transpose(1, 2)  # (N, CK, L)
    img = F.fold(cols, (h, w), (filter_h, filter_w), stride=stride, padding=pad)
    return numpy(img)


def conv_forward(
    x: np.ndarray, W: np.ndarray, b: np.ndarray, stride: int = 1, pad: int = 0
) -> np.ndarray:
    """(N, C, H, W) with filters W (FN, C, FH, FW) and bias b (FN,) -> (N, FN, out_h, out_w)."""
    return numpy(F.conv2d(tensor(x), tensor(W), tensor(b), stride=stride, padding=pad))


def conv_backward(
    x: np.ndarray, W: np.ndarray, b: np.ndarray, dout: np.ndarray, stride: int = 1, pad: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dW, db) of sum(conv(x) * dout), shaped like x, W and b."""
    xt, Wt, bt = (tensor(a, requires_grad=True) for a in (x, W, b))
    out = F.conv2d(xt, Wt, bt, stride=stride, padding=pad)
    out.backward(tensor(dout))
    return numpy(xt.grad), numpy(Wt.grad), numpy(bt.grad)


def pool_forward(x: np.ndarray, pool_h: int, pool_w: int, stride: int = 2) -> np.ndarray:
    """Max over each (pool_h, pool_w) window: (N, C, H, W) -> (N, C, out_h, out_w)."""
    return numpy(F.max_pool2d(tensor(x), (pool_h, pool_w), stride=stride))


def pool_backward(
    x: np.ndarray, pool_h: int, pool_w: int, dout: np.ndarray, stride: int = 2
) -> np.ndarray:
    """dx of sum(maxpool(x) * dout): each dout value goes to its window's maximum.

    Checks feed inputs whose window maxima are unique; with ties max_pool2d picks one of
    the tied positions (its own rule), while the course asks for the first, as np.argmax.
    """
    xt = tensor(x, requires_grad=True)
    out = F.max_pool2d(xt, (pool_h, pool_w), stride=stride)
    out.backward(tensor(dout))
    return numpy(xt.grad)
