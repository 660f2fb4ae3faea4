"""Checks award points only for what the trusted side computed or received as data.

Each submission here attacks a check through what the worker writes back or reports about
itself: changing the arrays a check passed in (so the reference computes on them), a timed
call whose result was never looked at, a parameter count reported by code running next to
the student's, a worker that hides what it did to an argument. Each must score what an
untouched stub scores on the checks it attacks: nothing.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from support import ROOT

from grader.course import load_course
from grader.runner import grade

COURSE = load_course(ROOT)


def graded(tmp_path: Path, assignment: str, source: str, keyword: str | None = None):
    """Grade a one-file submission holding `source` as the assignment's module."""
    folder = tmp_path / "submission"
    folder.mkdir()
    module = COURSE.assignment(assignment).module
    (folder / f"{module}.py").write_text(textwrap.dedent(source))
    return grade(assignment, folder, course=COURSE, device="cpu", keyword=keyword)


def passed(result) -> set[str]:
    return {t.id.split("::")[-1] for t in result.tests if t.status == "passed"}


CONVOLUTION_ZEROING_ITS_WEIGHTS = """
    import numpy as np


    class Convolution:
        def __init__(self, W, b, stride=1, pad=0):
            W[...] = 0.0
            b[...] = 0.0
            self.W, self.b, self.stride, self.pad = W, b, stride, pad

        def forward(self, x):
            FN, _, FH, FW = self.W.shape
            N, _, H, W = x.shape
            out_h = (H + 2 * self.pad - FH) // self.stride + 1
            out_w = (W + 2 * self.pad - FW) // self.stride + 1
            return np.zeros((N, FN, out_h, out_w))
"""


def test_a_layer_that_zeroes_the_weights_it_was_given_earns_nothing(tmp_path):
    result = graded(tmp_path, "assignment7", CONVOLUTION_ZEROING_ITS_WEIGHTS)
    assert passed(result) == set()
    assert result.score == 0


BATCH_NORM_ZEROING_GAMMA_AND_BETA = """
    import numpy as np


    class BatchNormalization:
        def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
            gamma[...] = 0.0
            beta[...] = 0.0
            self.running_mean, self.running_var = running_mean, running_var

        def forward(self, x, train_flg=True):
            return np.zeros_like(x)
"""


def test_batch_norm_that_zeroes_gamma_and_beta_earns_nothing_for_its_outputs(tmp_path):
    result = graded(tmp_path, "assignment5", BATCH_NORM_ZEROING_GAMMA_AND_BETA)
    # Returning a new array leaves the input unchanged: that one rule it does keep.
    assert passed(result) == {"test_forward_leaves_input_unchanged[batch_norm]"}


FORWARD_RETURNING = """
    import numpy as np


    class Convolution:
        def __init__(self, W, b, stride=1, pad=0):
            self.W = W

        def forward(self, x):
            return {value}
"""


@pytest.mark.parametrize("value", ["None", "np.zeros((8, 8, 26, 26))"], ids=["none", "zeros"])
def test_speed_is_paid_only_for_a_correct_result(tmp_path, value):
    source = FORWARD_RETURNING.format(value=value)
    result = graded(tmp_path, "assignment7", source, keyword="vectorised")
    checks = {t.id.split("::")[-1]: t for t in result.tests}
    assert checks["test_convolution_is_vectorised"].status == "failed"
    assert "forward" in checks["test_convolution_is_vectorised"].message
    assert result.score == 0


LOOPED_CONVOLUTION_REMEMBERING_ITS_ANSWERS = """
    import numpy as np


    class Convolution:
        def __init__(self, W, b, stride=1, pad=0):
            self.W, self.b = W, b
            self.answers = {}

        def forward(self, x):
            key = x.tobytes()
            if key not in self.answers:
                FN, _, FH, FW = self.W.shape
                N, _, H, W = x.shape
                out = np.empty((N, FN, H - FH + 1, W - FW + 1))
                for n in range(N):
                    for f in range(FN):
                        for i in range(H - FH + 1):
                            for j in range(W - FW + 1):
                                window = x[n, :, i : i + FH, j : j + FW]
                                out[n, f, i, j] = np.sum(window * self.W[f]) + self.b[f]
                self.answers[key] = out
            return self.answers[key]
"""


def test_speed_is_measured_on_inputs_the_layer_has_not_seen(tmp_path):
    source = LOOPED_CONVOLUTION_REMEMBERING_ITS_ANSWERS
    result = graded(tmp_path, "assignment7", source, keyword="vectorised")
    assert result.tests[0].status == "failed"
    assert "took" in result.tests[0].message


NOT_RESTORING_AND_HIDING_IT = """
    import sys

    import numpy as np

    sys.modules["grader.sandbox.worker"]._changes = lambda refs, *snapshots: []


    def numerical_gradient(f, x, h=1e-4):
        grad = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            tmp_val = x[idx]
            x[idx] = tmp_val + h
            fxh1 = f(x)
            x[idx] = tmp_val - h
            grad[idx] = (fxh1 - f(x)) / (2 * h)
        return grad
"""


def test_a_worker_hiding_that_it_left_x_perturbed_fails_the_restore_check(tmp_path):
    result = graded(tmp_path, "assignment4", NOT_RESTORING_AND_HIDING_IT, keyword="restores")
    assert result.tests[0].status == "failed"
    assert "not restored" in result.tests[0].message


BIG_MODEL = """
    import torch
    from torch import nn


    def build_model():
        {patch}
        return nn.Sequential(
            nn.Flatten(), nn.Linear(784, 2700), nn.ReLU(), nn.Linear(2700, 10)
        )
"""
PATCHES = {
    "harness_count": (
        "import grader.sandbox.torch_harness as harness; "
        "harness.describe = lambda model: {'parameters': 1000, 'devices': ['cpu']}"
    ),
    "module_parameters": (
        "nn.Module.parameters = "
        "lambda self, recurse=True: iter(list(self[-1]._parameters.values()))"
    ),
}


@pytest.mark.parametrize("patch", list(PATCHES))
def test_parameter_count_comes_from_the_parameters_received(tmp_path, patch):
    source = textwrap.dedent(BIG_MODEL).replace("{patch}", PATCHES[patch])
    result = graded(tmp_path, "assignment8", source, keyword="million")
    check = result.tests[0]
    assert check.status == "failed"
    assert "2,146,510 parameters" in check.message
    assert check.metrics["parameters"] == 784 * 2700 + 2700 + 2700 * 10 + 10


def test_the_harness_reads_parameters_from_the_modules_registries(monkeypatch):
    import torch

    from grader.sandbox import torch_harness

    shared = torch.nn.Linear(3, 3)
    model = torch.nn.Sequential(
        shared, torch.nn.ReLU(), torch.nn.Sequential(shared, torch.nn.Linear(3, 2))
    )
    expected = list(model.parameters())
    monkeypatch.setattr(torch.nn.Module, "parameters", lambda self, recurse=True: iter([]))
    assert [id(p) for p in torch_harness.registered(model)] == [id(p) for p in expected]
