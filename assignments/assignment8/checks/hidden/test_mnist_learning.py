"""Hidden checks: the model starts untrained, and train() learns the labels it is given.

Together they catch a submission that ships what it learned elsewhere (pretrained weights
in build_model, answers looked up in train) instead of training on X and y.
"""

import numpy as np
import pytest

from grader import training
from grader.compare import expect
from grader.data.mnist import load_mnist

SETTINGS = training.TrainingSettings.next_to(__file__)
SHIFT = 3
SHARE = 0.25


@pytest.mark.points(5)
@pytest.mark.hint(
    "build_model() returns a new, randomly initialised model; learning happens in train()."
)
def test_fresh_model_is_untrained(student, device):
    """A model fresh from build_model() is at chance level"""
    data = load_mnist()
    model = training.build_model(student)
    accuracy = training.accuracy(student, model, data.x_test, data.y_test, device)
    expect(
        accuracy <= 0.3,
        f"a model fresh from build_model() already classifies {accuracy:.0%} of the held-out "
        "images correctly.",
    )


@pytest.mark.points(5)
@pytest.mark.timeout(SETTINGS.call_limit(SHARE))
@pytest.mark.hint("Fit the labels y you are given: compute the loss from model(X) and y only.")
def test_train_learns_the_labels_it_is_given(student, device, rng):
    """train() learns relabelled digits (d -> d + 3 mod 10) from a quarter of the data"""
    data = load_mnist()
    chosen = np.sort(rng.choice(len(data.x_train), len(data.x_train) // 4, replace=False))
    run = training.train(
        student,
        data.x_train[chosen],
        (data.y_train[chosen] + SHIFT) % 10,
        settings=SETTINGS,
        device=device,
        budget_s=SETTINGS.budget(device, data.kind) * SHARE,
        seed=int(rng.integers(2**31)),
        held_out=data.x_test,
    )
    relabelled = (data.y_test + SHIFT) % 10
    accuracy = training.held_out_accuracy(run, relabelled)
    expect(
        accuracy >= 0.5,
        f"trained on {len(chosen):,} images whose labels were changed from d to (d + {SHIFT}) "
        f"mod 10, the model predicts the changed labels for only {accuracy:.0%} of the "
        "held-out images.",
    )
