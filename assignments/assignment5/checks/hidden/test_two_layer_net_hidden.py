"""Hidden checks for assignment5's TwoLayerNet against PyTorch autograd.

The network initialises its own random weights, so each check reads them back
(`net.params`) and computes the reference from those. Inputs are chosen so that no hidden
unit sits within 1e-3 of ReLU's kink, where a numerical gradient (h = 1e-4) would be wrong,
and labels are drawn among the classes the net gives at least 5% probability, so that the
textbook's 1e-7 inside the log moves a numerical gradient by less than 2e-6 (relative).
Numerical gradients are compared at 2e-5 of the largest entry; backprop gradients at 1e-7.
"""

import numpy as np
import pytest

from grader.compare import as_array, assert_close, fail

SIZES = (4, 6, 3)  # input, hidden, output: tiny, numerical_gradient runs in the sandbox
KEYS = ("W1", "b1", "W2", "b2")
NUMERICAL_RTOL = 2e-5

BACKPROP_HINT = (
    "Backprop through the layers in reverse order after a forward pass: "
    "SoftmaxWithLoss.backward divides by the batch size and Affine's db sums dout over axis=0."
)
NUMERICAL_HINT = (
    "numerical_gradient: for each entry, central difference (f(x+h) - f(x-h)) / (2*h) with "
    "h = 1e-4, then restore the entry; the loss must see the perturbed params (the layers "
    "share the params arrays)."
)
LOSS_HINT = (
    "loss(x, t) is the batch MEAN of SoftmaxWithLoss over predict(x); a numerical gradient "
    "differentiates this loss, so it can only be right once the loss is."
)


def _grads(value, name: str) -> dict:
    if not isinstance(value, dict) or set(value) != set(KEYS):
        fail(f"{name} must return a dict with the keys W1, b1, W2, b2.")
    return value


def _setup(student, reference, rng, n: int):
    """A fresh net (weight_init_std=0.5), its params, a batch away from ReLU kinks, labels."""
    net = student.TwoLayerNet(*SIZES, weight_init_std=0.5)
    params = _grads(net.params, "params")
    params = {k: as_array(params[k], name=f"params['{k}']") for k in KEYS}
    for _ in range(100):
        x = rng.standard_normal((n, SIZES[0]))
        hidden = x @ params["W1"] + params["b1"]
        if np.min(np.abs(hidden)) > 1e-3:
            break
    scores, *_ = reference.two_layer_net(x, np.zeros(n), *(params[k] for k in KEYS))
    likely = reference.softmax(scores) >= 0.05
    labels = np.array([rng.choice(np.flatnonzero(row)) for row in likely])
    return net, params, x, labels


def _loss_slack(reference, scores, labels) -> float:
    """Absolute slack for a loss computed as -log(y + 1e-7), as the textbook does."""
    y = reference.softmax(scores)[np.arange(len(labels)), labels]
    return 2e-7 * float(np.mean(1.0 / y)) + 1e-12


def _check_loss(net, reference, params, x, labels) -> None:
    """The loss a numerical gradient differentiates, checked first: a wrong loss is named as
    such, not as a wrong numerical gradient."""
    scores, loss, *_ = reference.two_layer_net(x, labels, *(params[k] for k in KEYS))
    assert_close(
        net.loss(x.copy(), labels.copy()),
        loss,
        rtol=1e-9,
        atol=_loss_slack(reference, scores, labels),
        name="TwoLayerNet.loss(x, t)",
    )


def _compare(got: dict, want: dict, what: str, rtol: float, against: str = "") -> None:
    for key in KEYS:
        w = np.asarray(want[key])
        atol = rtol * float(np.max(np.abs(w))) + 1e-300
        assert_close(got[key], w, rtol=rtol, atol=atol, name=f"{what}['{key}']{against}")


@pytest.mark.points(4)
@pytest.mark.hint(
    "predict returns the scores relu(x @ W1 + b1) @ W2 + b2 (no softmax); loss is the batch "
    "mean cross-entropy; accuracy is the fraction with argmax(scores) == true class "
    "(t one-hot or label indices)."
)
def test_two_layer_net_predict_loss_accuracy(student, reference, rng):
    net, params, x, labels = _setup(student, reference, rng, n=8)
    t = np.eye(SIZES[2])[labels]
    scores, loss, accuracy, _ = reference.two_layer_net(x, labels, *(params[k] for k in KEYS))
    got = net.predict(x.copy())
    atol = 1e-9 * np.max(np.abs(scores))
    assert_close(got, scores, rtol=1e-7, atol=atol, name="TwoLayerNet.predict(x)")
    slack = _loss_slack(reference, scores, labels)
    for target, kind in [(t, "one-hot"), (labels, "label indices")]:
        assert_close(
            net.loss(x.copy(), target.copy()),
            loss,
            rtol=1e-9,
            atol=slack,
            name=f"TwoLayerNet.loss(x, t) with {kind} t",
        )
        assert_close(
            net.accuracy(x.copy(), target.copy()),
            accuracy,
            rtol=1e-12,
            name=f"TwoLayerNet.accuracy(x, t) with {kind} t",
        )


@pytest.mark.points(5)
@pytest.mark.hint(BACKPROP_HINT, function="TwoLayerNet.gradient")
def test_two_layer_net_gradient_matches_autograd(student, reference, rng):
    net, params, x, labels = _setup(student, reference, rng, n=4)
    t = np.eye(SIZES[2])[labels]
    *_, want = reference.two_layer_net(x, labels, *(params[k] for k in KEYS))
    got = _grads(net.gradient(x.copy(), t.copy()), "TwoLayerNet.gradient(x, t)")
    _compare(got, want, "TwoLayerNet.gradient(x, t)", rtol=1e-7)


@pytest.mark.points(3)
@pytest.mark.hint(LOSS_HINT, function="TwoLayerNet.loss")
@pytest.mark.hint(NUMERICAL_HINT, function="TwoLayerNet.numerical_gradient")
def test_two_layer_net_numerical_gradient_matches_autograd(student, reference, rng):
    net, params, x, labels = _setup(student, reference, rng, n=4)
    _check_loss(net, reference, params, x, labels)
    *_, want = reference.two_layer_net(x, labels, *(params[k] for k in KEYS))
    what = "TwoLayerNet.numerical_gradient(x, t)"
    got = _grads(net.numerical_gradient(x.copy(), labels.copy()), what)
    _compare(got, want, what, rtol=NUMERICAL_RTOL)


@pytest.mark.points(3)
@pytest.mark.hint(LOSS_HINT, function="TwoLayerNet.loss")
@pytest.mark.hint(
    "gradient() and numerical_gradient() disagree; the autograd checks tell which one is "
    "wrong. Backprop: SoftmaxWithLoss.backward divides by the batch size, Affine's db sums "
    "dout over axis=0. Numerical: central difference (f(x+h) - f(x-h)) / (2*h) on the "
    "params arrays, which the layers must share.",
    function=("TwoLayerNet.gradient", "TwoLayerNet.numerical_gradient"),
)
def test_two_layer_net_backprop_agrees_with_numerical(student, reference, rng):
    net, params, x, labels = _setup(student, reference, rng, n=4)
    _check_loss(net, reference, params, x, labels)
    numerical = net.numerical_gradient(x.copy(), labels.copy())
    numerical = _grads(numerical, "TwoLayerNet.numerical_gradient(x, t)")
    numerical = {
        k: as_array(numerical[k], name=f"TwoLayerNet.numerical_gradient(x, t)['{k}']") for k in KEYS
    }
    what = "TwoLayerNet.gradient(x, t)"
    backprop = _grads(net.gradient(x.copy(), labels.copy()), what)
    against = " against your TwoLayerNet.numerical_gradient"
    _compare(backprop, numerical, what, rtol=NUMERICAL_RTOL, against=against)
