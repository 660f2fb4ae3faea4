"""Public checks: the model's interface and size, training within the budget, held-out accuracy.

The model is trained once per grade (the `trained` fixture) and shared by the last three
checks. Test labels never enter the sandbox: the worker returns logits for the test images
and the accuracy is computed here.
"""

import pytest

from grader import training
from grader.compare import expect, fail
from grader.data.mnist import load_mnist
from grader.sandbox.proxy import WorkerCrashed, WorkerTimeout

SETTINGS = training.TrainingSettings.next_to(__file__)
SPEED_HINT = (
    "Keep X and y on the device and index batches there (no DataLoader copies), use batches of "
    "64-256, and train for fewer epochs; the budgets are in the README."
)


@pytest.fixture(scope="module")
def shared() -> dict:
    """The one training run of this grade, or the error that ended it."""
    return {}


@pytest.fixture
def trained(student, device, named_rng, shared) -> training.TrainingRun:
    """The submission's model, built and trained once on the training split."""
    first = "run" not in shared
    if first:
        data = load_mnist()
        try:
            shared["run"] = training.train(
                student,
                data.x_train,
                data.y_train,
                settings=SETTINGS,
                device=device,
                budget_s=SETTINGS.budget(device, data.kind),
                seed=int(named_rng("training").integers(2**31)),
                held_out=data.x_test,
            )
        except Exception as error:
            shared["run"] = error
            raise
    run = shared["run"]
    if isinstance(run, (WorkerTimeout, WorkerCrashed)) and not first:
        fail(f"no trained model to check: {run.message}")
    if isinstance(run, Exception):
        raise run
    return run


@pytest.mark.points(10)
@pytest.mark.hint(
    "Start with nn.Flatten() (or x.view(len(x), -1)) and end with nn.Linear(..., 10); "
    "return raw logits, one row per image."
)
def test_model_maps_images_to_ten_logits(student, device):
    """build_model() maps (N, 1, 28, 28) images to (N, 10) logits"""
    images = load_mnist().x_train
    model = training.build_model(student)
    for n in (1, 7):
        training.logits(student, model, images[:n], device)


@pytest.mark.points(5)
@pytest.mark.hint("Use fewer or narrower layers: e.g. 784-256-256-10 has 269,322 parameters.")
def test_model_has_at_most_a_million_parameters(student, metrics):
    """The model has at most 1,000,000 parameters

    The count is the number of values in the parameter arrays this process received (the
    worker sends the arrays, never a count), read from each module's own registry rather
    than through `parameters()`, which a submission can override or patch.

    What cannot be verified: the worker runs the student's code, which can change anything
    there. A model that keeps weights outside torch's registry (plain tensors), or a
    submission that patches the harness functions or torch's tensor conversion, can send
    fewer arrays than its forward uses. Showing that the arrays received are the weights
    that produced the held-out logits would take running the model's forward in this
    process on them, and for a module the student defined that means running the
    student's code here, which is what the sandbox exists to prevent. The count therefore
    bounds the parameters the model registers with torch, as its code reports them.
    """
    model = training.build_model(student)
    count = training.count_parameters(student, model)
    metrics["parameters"] = count
    expect(count > 0, "the model has no parameters, so there is nothing to train.")
    expect(
        count <= SETTINGS.max_parameters,
        f"the model has {count:,} parameters; at most {SETTINGS.max_parameters:,} are allowed.",
    )


@pytest.mark.points(10)
@pytest.mark.timeout(SETTINGS.call_limit())
@pytest.mark.hint(SPEED_HINT)
def test_train_finishes_within_the_budget(trained, device, metrics):
    """train() finishes within the time budget

    Timed by this process from the call of train() until the trained model's outputs for the
    held-out images are in, so that training put off until the model is first used counts.
    """
    data = load_mnist()
    metrics.update(
        training_s=round(trained.seconds, 2),
        budget_s=trained.budget_s,
        device=training.describe_device(device),
        data=data.description,
    )
    if isinstance(trained.held_out, WorkerTimeout):
        raise training.BudgetExceeded(
            f"the trained model's outputs for the held-out images did not come within "
            f"{SETTINGS.call_limit()(device):g} s of the call of train(): the work it put off "
            "until the model was used counts as training time."
        )
    if not trained.within_budget:
        raise training.BudgetExceeded(
            f"train() was still running after its budget of {trained.budget_s:g} s on {device} "
            "and was stopped there; the model is graded as it was then."
        )


@pytest.mark.points(5)
@pytest.mark.timeout(SETTINGS.call_limit())
def test_train_updates_the_weights_on_the_device(trained, device, metrics):
    """train() updates the model's weights, on `device`"""
    metrics["weights_changed"] = round(trained.changed, 3)
    expect(
        trained.changed >= 0.5,
        f"train() changed {trained.changed:.0%} of the model's parameter values; training "
        "should change most of them.",
        hint="Train the model you are given (in place): optimizer = Adam(model.parameters()), "
        "and call loss.backward() and optimizer.step() for every batch.",
    )
    expect(
        trained.devices == (device,),
        f"after train() the model's parameters are on {' and '.join(trained.devices) or 'none'}, "
        f"not on {device}.",
        hint="Call model.to(device) at the start of train(), and create every tensor on device.",
    )


@pytest.mark.points(60)
@pytest.mark.timeout(SETTINGS.call_limit())
def test_held_out_accuracy(student, trained, reference, device, credit, metrics):
    """Held-out accuracy (points on a linear scale, see the README)"""
    data = load_mnist()
    ramp = SETTINGS.accuracy[data.kind]
    accuracy = training.held_out_accuracy(trained, data.y_test)
    metrics.update(
        accuracy=round(accuracy, 4),
        training_s=round(trained.seconds, 2),
        device=training.describe_device(device),
        parameters=trained.parameters,
        data=data.description,
    )
    message = (
        f"{accuracy:.2%} held-out accuracy on the {data.description}: full points from "
        f"{ramp.full:.1%}, none at {ramp.zero:.1%} or below"
    )
    try:
        figures = reference.benchmark(
            data.x_train, data.y_train, data.x_test, data.y_test, device, SETTINGS.cpu_threads
        )
    except pytest.skip.Exception:  # a student bundle without the reference's figures
        figures = None
    if figures is not None:
        metrics.update(
            reference_accuracy=round(figures["accuracy"], 4),
            reference_training_s=round(figures["training_s"], 2),
        )
        message += (
            f"; the reference reaches {figures['accuracy']:.2%} in "
            f"{figures['training_s']:.1f} s on the same data and device"
        )
    if trained.stopped:
        message += " (train() was stopped at its budget)"
    fraction = ramp.fraction(accuracy)
    if fraction < 1:
        message += (
            ". To gain accuracy: more epochs within the budget, a learning-rate schedule, "
            "or a small CNN (see the README)"
        )
    credit.award(fraction, message + ".")
