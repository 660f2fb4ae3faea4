"""Assignment 8: train a digit classifier on MNIST, on the GPU, within a time budget.

Read README.md first. This is the course's PyTorch assignment: use torch and torch.nn
freely. Both functions raise NotImplementedError until you write them; run
`grade assignment8` to see your score.
"""

import torch
import torch.nn.functional as F
from torch import nn


def build_model() -> nn.Module:
    """Return a new, untrained model mapping (N, 1, 28, 28) images to (N, 10) logits.

    Inputs are float32 pixels in [0, 1]; return raw scores (no softmax), one row per image.
    At most 1,000,000 parameters. A good start: nn.Sequential(nn.Flatten(),
    nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)).
    """
    raise NotImplementedError


def train(model: nn.Module, X: torch.Tensor, y: torch.Tensor, device: torch.device) -> None:
    """Train `model` in place on the whole training set, within the time budget.

    X: float32 (N, 1, 28, 28) in [0, 1]; y: int64 (N,) labels 0-9; both already on `device`
    (a torch.device, "cuda" on the grading machine). Move the model there first
    (model.to(device)), then loop over epochs and shuffled batches: forward, cross-entropy
    loss, backward, optimizer step. Return nothing; the grader evaluates `model` afterwards.
    """
    raise NotImplementedError
