"""Assignment 7: convolution and max pooling layers built on im2col.

Fill in every function and method marked `raise NotImplementedError`. Use NumPy only.
Shapes follow the textbook: images are (N, C, H, W), filters are (FN, C, FH, FW), and a
window count along one axis is out_h = (H + 2*pad - FH) // stride + 1.
"""

import numpy as np


def im2col(
    input_data: np.ndarray, filter_h: int, filter_w: int, stride: int = 1, pad: int = 0
) -> np.ndarray:
    """Unroll every filter-sized window of a batch of images into one row.

    Inputs:
    - input_data: (N, C, H, W) images.
    - filter_h, filter_w: window height and width.
    - stride: step between windows; pad: zeros added on every side of H and W.

    Returns:
    - col: (N*out_h*out_w, C*filter_h*filter_w). Rows are ordered (n, oy, ox): all
      windows of image 0 row by row, then image 1, ... Columns are ordered (c, ky, kx),
      the order of W.reshape(FN, -1), so that im2col(x) @ W.reshape(FN, -1).T convolves.

    Loop over the filter_h*filter_w positions inside a window (not over windows).
    Do not modify input_data.
    """
    raise NotImplementedError


def col2im(
    col: np.ndarray,
    input_shape: tuple[int, int, int, int],
    filter_h: int,
    filter_w: int,
    stride: int = 1,
    pad: int = 0,
) -> np.ndarray:
    """Fold rows of windows back into images: the reverse of im2col for gradients.

    Inputs:
    - col: (N*out_h*out_w, C*filter_h*filter_w), laid out as im2col returns it.
    - input_shape: (N, C, H, W) of the images im2col was applied to.
    - filter_h, filter_w, stride, pad: as given to im2col.

    Returns:
    - img: (N, C, H, W). A pixel covered by several windows receives the SUM of their
      values (overlaps accumulate); the padding is cut off.
    """
    raise NotImplementedError


class Convolution:
    """Convolution layer: out[n, f] = sum over (c, ky, kx) of x windows * W[f] + b[f]."""

    def __init__(self, W: np.ndarray, b: np.ndarray, stride: int = 1, pad: int = 0) -> None:
        """W: filters (FN, C, FH, FW); b: biases (FN,); stride and pad as in im2col."""
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.dW = None
        self.db = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Convolve a batch.

        Inputs:
        - x: (N, C, H, W).

        Returns:
        - out: (N, FN, out_h, out_w). Keep what backward needs (x, its im2col matrix,
          the reshaped filters) on self. Do not modify x.
        """
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Backpropagate through the last forward.

        Inputs:
        - dout: (N, FN, out_h, out_w), the gradient of the loss with respect to out.

        Returns:
        - dx: (N, C, H, W). Also sets self.dW (FN, C, FH, FW) and self.db (FN,).
        """
        raise NotImplementedError


class Pooling:
    """Max pooling: the largest value of each (pool_h, pool_w) window, channel by channel."""

    def __init__(self, pool_h: int, pool_w: int, stride: int = 2, pad: int = 0) -> None:
        """Window size (pool_h, pool_w) and stride; pad is always 0 in this course."""
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Max-pool a batch.

        Inputs:
        - x: (N, C, H, W).

        Returns:
        - out: (N, C, out_h, out_w), out_h = (H - pool_h) // stride + 1. Remember where
          each maximum was (np.argmax: the first maximum when values tie). Do not modify x.
        """
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        """Backpropagate through the last forward.

        Inputs:
        - dout: (N, C, out_h, out_w).

        Returns:
        - dx: (N, C, H, W): each dout value added at the position of its window's
          (first) maximum, zero elsewhere.
        """
        raise NotImplementedError
