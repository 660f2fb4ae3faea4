"""assignment5 accepts what its README promises to accept, and its reference is self-consistent.

The README allows any batch-norm eps from 1e-8 to 1e-5 and a cross-entropy with or without the
textbook's 1e-7 inside the log; correct submissions written those ways must score full points.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from support import ROOT

from grader.course import Course
from grader.runner import grade

_spec = importlib.util.spec_from_file_location(
    "reference_assignment5", ROOT / "reference" / "assignment5.py"
)
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)

ACCEPTED = {
    "batch_norm_eps_1e-5": ("10e-7", "1e-5"),
    "batch_norm_eps_1e-8": ("10e-7", "1e-8"),
    "cross_entropy_without_delta": (
        "np.log(y[np.arange(batch_size), t] + 1e-7)",
        "np.log(y[np.arange(batch_size), t])",
    ),
}


@pytest.mark.parametrize("variant", list(ACCEPTED))
def test_accepted_variant_scores_full_points(
    variant: str, course: Course, make_submission: Callable[..., Path]
) -> None:
    old, new = ACCEPTED[variant]

    def transform(source: str) -> str:
        assert old in source
        return source.replace(old, new)

    result = grade("assignment5", make_submission("assignment5", transform), course=course)
    failed = [f"{t.id}: {t.message}" for t in result.tests if t.status != "passed"]
    assert failed == []
    assert result.score == result.max_score


def test_reference_batch_norm_running_stats_use_the_biased_variance() -> None:
    batches = np.random.default_rng(0).normal(size=(3, 5, 2))
    mean, var = reference.batch_norm_running_stats(batches, 0.9)
    want_mean, want_var = np.zeros(2), np.zeros(2)
    for x in batches:
        want_mean = 0.9 * want_mean + 0.1 * x.mean(axis=0)
        want_var = 0.9 * want_var + 0.1 * x.var(axis=0)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-12)
    np.testing.assert_allclose(var, want_var, rtol=1e-12)


def test_reference_softmax_with_loss_takes_one_hot_or_labels() -> None:
    rng = np.random.default_rng(1)
    x, labels = rng.normal(size=(4, 3)), np.array([0, 2, 1, 2])
    loss_labels, dx_labels = reference.softmax_with_loss(x, labels)
    loss_one_hot, dx_one_hot = reference.softmax_with_loss(x, np.eye(3)[labels])
    np.testing.assert_allclose(loss_labels, loss_one_hot, rtol=1e-14)
    np.testing.assert_allclose(dx_labels, (reference.softmax(x) - np.eye(3)[labels]) / 4)
    np.testing.assert_allclose(dx_one_hot, dx_labels, rtol=1e-14)
