"""Reference solution for assignment8 (MNIST on the GPU), in PyTorch.

A small CNN (two 3x3 convolutions with max pooling, then two linear layers: 206,922
parameters) trained with Adam and a one-cycle learning-rate schedule for 5 epochs. The
whole training set stays on the device: each batch is an index into X and y there, so no
batch is ever copied from the host. `benchmark` trains it the way the grader trains a
submission and is what the report compares the student's accuracy and time with.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from grader.training import time_reference

EPOCHS = 5
BATCH_SIZE = 64
MAX_LR = 3e-3


def build_model() -> nn.Module:
    """(N, 1, 28, 28) -> (N, 10) logits."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),  # (N, 16, 28, 28)
        nn.ReLU(),
        nn.MaxPool2d(2),  # (N, 16, 14, 14)
        nn.Conv2d(16, 32, 3, padding=1),  # (N, 32, 14, 14)
        nn.ReLU(),
        nn.MaxPool2d(2),  # (N, 32, 7, 7)
        nn.Flatten(),  # (N, 1568)
        nn.Linear(32 * 7 * 7, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def train(model: nn.Module, X: torch.Tensor, y: torch.Tensor, device: torch.device) -> None:
    """Minimise cross-entropy on X (N, 1, 28, 28) and y (N,), both already on `device`."""
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=MAX_LR)
    steps = EPOCHS * math.ceil(len(X) / BATCH_SIZE)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=MAX_LR, total_steps=steps)
    for _ in range(EPOCHS):
        order = torch.randperm(len(X), device=device)
        for start in range(0, len(X), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            loss = F.cross_entropy(model(X[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()


def benchmark(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    device: str,
    threads: int,
) -> dict[str, float]:
    """Held-out accuracy and training seconds of this solution on the given uint8 images."""
    data = (x_train, y_train, x_test, y_test)
    return time_reference(build_model, train, data, device=device, threads=threads)
