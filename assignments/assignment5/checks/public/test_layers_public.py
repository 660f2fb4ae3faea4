"""Public checks for assignment5: the README's worked examples, with the numbers in full.

These run on your machine exactly as they run in the grade. Random inputs here only serve
shape checks; the value checks use the small examples printed in README.md.
"""

import numpy as np
import pytest

from grader.compare import as_array, assert_close, expect, fail

APPLE, APPLE_NUM, ORANGE, ORANGE_NUM, TAX = 100, 2, 150, 3, 1.1


def _pair(value, name: str) -> tuple:
    """The (dx, dy) tuple a two-input backward returns."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        fail(f"{name} must return a tuple (dx, dy), got {type(value).__name__}.")
    return tuple(value)


def _shop(student):
    """The textbook's shopping graph: (apple*num + orange*num) * tax, with its four layers."""
    mul_apple, mul_orange = student.MulLayer(), student.MulLayer()
    add_fruit, mul_tax = student.AddLayer(), student.MulLayer()
    apple_price = mul_apple.forward(APPLE, APPLE_NUM)
    orange_price = mul_orange.forward(ORANGE, ORANGE_NUM)
    all_price = add_fruit.forward(apple_price, orange_price)
    price = mul_tax.forward(all_price, TAX)
    layers = (mul_apple, mul_orange, add_fruit, mul_tax)
    return layers, (apple_price, orange_price, all_price, price)


@pytest.mark.points(2)
@pytest.mark.hint("MulLayer.forward returns x * y and AddLayer.forward returns x + y.")
def test_apple_orange_forward(student):
    _, (apple_price, orange_price, all_price, price) = _shop(student)
    assert_close(apple_price, 200.0, rtol=1e-12, name="MulLayer.forward(100, 2) (apple price)")
    assert_close(orange_price, 450.0, rtol=1e-12, name="MulLayer.forward(150, 3) (orange price)")
    assert_close(all_price, 650.0, rtol=1e-12, name="AddLayer.forward(200, 450) (all price)")
    assert_close(price, 715.0, rtol=1e-12, name="MulLayer.forward(650, 1.1) (total price)")


@pytest.mark.points(6)
@pytest.mark.hint(
    "MulLayer.backward returns (dout * y, dout * x): each input gets the OTHER input "
    "(do not swap them); AddLayer.backward returns (dout, dout).",
    function=("MulLayer.backward", "AddLayer.backward"),
)
def test_apple_orange_backward(student):
    (mul_apple, mul_orange, add_fruit, mul_tax), _ = _shop(student)
    dall_price, dtax = _pair(mul_tax.backward(1), "MulLayer.backward")
    dapple_price, dorange_price = _pair(add_fruit.backward(dall_price), "AddLayer.backward")
    dapple, dapple_num = _pair(mul_apple.backward(dapple_price), "MulLayer.backward")
    dorange, dorange_num = _pair(mul_orange.backward(dorange_price), "MulLayer.backward")
    for got, want, name in [
        (dall_price, 1.1, "d(all price) from MulLayer.backward(1) of the tax layer"),
        (dtax, 650.0, "dtax from MulLayer.backward(1) of the tax layer"),
        (dapple_price, 1.1, "d(apple price) from AddLayer.backward"),
        (dorange_price, 1.1, "d(orange price) from AddLayer.backward"),
        (dapple, 2.2, "dapple from MulLayer.backward of the apple layer"),
        (dapple_num, 110.0, "dapple_num from MulLayer.backward of the apple layer"),
        (dorange, 3.3, "dorange from MulLayer.backward of the orange layer"),
        (dorange_num, 165.0, "dorange_num from MulLayer.backward of the orange layer"),
    ]:
        assert_close(got, want, rtol=1e-12, name=name)


@pytest.mark.points(2)
@pytest.mark.hint("Relu zeroes x <= 0 in forward, and zeroes dout at the same places in backward.")
def test_relu_worked_example(student):
    x = np.array([[1.0, -0.5], [-2.0, 3.0]])
    layer = student.Relu()
    assert_close(layer.forward(x.copy()), [[1.0, 0.0], [0.0, 3.0]], name="Relu.forward(x)")
    dout = np.array([[5.0, 6.0], [7.0, 8.0]])
    assert_close(layer.backward(dout), [[5.0, 0.0], [0.0, 8.0]], name="Relu.backward(dout)")


@pytest.mark.points(2)
@pytest.mark.hint(
    "Sigmoid.forward returns 1 / (1 + exp(-x)) elementwise and stores it for backward.",
    function="Sigmoid.forward",
)
@pytest.mark.hint(
    "Sigmoid.backward is dout * y * (1 - y) with y the forward output (store it in forward), "
    "not the input x.",
    function="Sigmoid.backward",
)
def test_sigmoid_worked_example(student):
    layer = student.Sigmoid()
    out = layer.forward(np.array([[0.0, 2.0, -2.0]]))
    assert_close(out, [[0.5, 0.8807970779778823, 0.11920292202211755]], name="Sigmoid.forward")
    dx = layer.backward(np.ones((1, 3)))
    assert_close(dx, [[0.25, 0.1049935854035065, 0.1049935854035065]], name="Sigmoid.backward")


@pytest.mark.points(3)
@pytest.mark.hint(
    "out = x @ W + b; dx = dout @ W.T; dW = x.T @ dout; db sums dout over the batch axis "
    "(axis=0), so it has b's shape."
)
def test_affine_worked_example(student):
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    W = np.array([[1.0, 0.0, -1.0, 2.0], [0.0, 1.0, 1.0, 0.0], [2.0, -1.0, 0.0, 1.0]])
    b = np.array([0.5, -0.5, 1.0, 0.0])
    layer = student.Affine(W, b)
    out = layer.forward(x.copy())
    assert_close(out, [[7.5, -1.5, 2.0, 5.0], [16.5, -1.5, 2.0, 14.0]], name="Affine.forward")
    dx = layer.backward(np.array([[1.0, 0.0, 2.0, 1.0], [0.0, 1.0, 1.0, -1.0]]))
    assert_close(dx, [[1.0, 2.0, 3.0], [-3.0, 2.0, -2.0]], name="dx from Affine.backward(dout)")
    dW = [[1.0, 4.0, 6.0, -3.0], [2.0, 5.0, 9.0, -3.0], [3.0, 6.0, 12.0, -3.0]]
    assert_close(layer.dW, dW, name="dW from Affine.backward(dout)")
    assert_close(layer.db, [1.0, 1.0, 3.0, 0.0], name="db from Affine.backward(dout)")


@pytest.mark.points(3)
@pytest.mark.hint(
    "The loss is the batch MEAN of -log(softmax); backward returns (y - t) / batch size "
    "for every sample."
)
def test_softmax_with_loss_uniform_scores(student):
    layer = student.SoftmaxWithLoss()
    loss = layer.forward(np.zeros((2, 4)), np.array([0, 3]))
    name = "SoftmaxWithLoss.forward(x, t) for equal scores (log 4)"
    assert_close(loss, np.log(4.0), rtol=0.0, atol=1e-6, name=name)
    dx = layer.backward()
    want = [[-0.375, 0.125, 0.125, 0.125], [0.125, 0.125, 0.125, -0.375]]
    assert_close(dx, want, name="SoftmaxWithLoss.backward()")


@pytest.mark.points(2)
@pytest.mark.hint(
    "params holds W1 (input, hidden), b1 (hidden,), W2 (hidden, output), b2 (output,) with "
    "weights weight_init_std * randn; each gradient has its parameter's shape (Affine's db "
    "sums dout over axis=0)."
)
def test_two_layer_net_shapes(student, rng):
    shapes = {"W1": (4, 5), "b1": (5,), "W2": (5, 3), "b2": (3,)}
    net = student.TwoLayerNet(4, 5, 3)
    x, t = rng.standard_normal((2, 4)), np.eye(3)[[0, 2]]
    scores = as_array(net.predict(x), name="predict(x)")
    expect(scores.shape == (2, 3), f"predict(x) for x of shape (2, 4): shape {scores.shape}.")
    for what, values in [("params", net.params), ("gradient(x, t)", net.gradient(x, t))]:
        if not isinstance(values, dict) or set(values) != set(shapes):
            fail(f"{what} must be a dict with the keys W1, b1, W2, b2.")
        for key, shape in shapes.items():
            got = as_array(values[key], name=f"{what}['{key}']").shape
            expect(got == shape, f"{what}['{key}'] has shape {got}, expected {shape}.")
    W1 = as_array(student.TwoLayerNet(50, 40, 10, weight_init_std=0.5).params["W1"], name="W1")
    expect(
        bool(0.4 < np.std(W1) < 0.6),
        f"TwoLayerNet(..., weight_init_std=0.5): W1 has std {np.std(W1):.3g}, expected 0.5.",
    )
