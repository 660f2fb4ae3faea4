"""Tensor helpers for reference solutions.

Reference solutions take and return NumPy arrays (the student's types) but compute in
PyTorch on the device the grade runs on. This module holds that one device so a reference
function reads like the formula: `numpy(torch.sigmoid(tensor(x)))`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

_device = torch.device("cpu")


def set_device(name: str) -> None:
    """Choose the device every reference computation runs on ("cpu" or "cuda")."""
    global _device
    _device = torch.device(name)


def device() -> torch.device:
    """The device reference computations run on."""
    return _device


def tensor(x: Any, dtype: torch.dtype = torch.float64, requires_grad: bool = False) -> torch.Tensor:
    """A copy of `x` on the reference device (float64 unless told otherwise)."""
    t = torch.as_tensor(np.asarray(x), dtype=dtype, device=_device).clone()
    return t.requires_grad_(requires_grad)


def numpy(t: torch.Tensor) -> np.ndarray:
    """A NumPy copy of a tensor, detached and on the host."""
    return t.detach().cpu().numpy()
