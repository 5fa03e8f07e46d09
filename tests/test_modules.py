"""Modules' .g gradients against the functional backwards and torch.autograd; SGD on
the digits (sgd_step itself: test_optim.py)."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from backprop import modules, transformer
from backprop.data import load_digits
from backprop.functional import (
    cross_entropy,
    cross_entropy_backward,
    lin,
    lin_backward,
    mse,
    mse_backward,
    relu,
    relu_backward,
)
from backprop.modules import (
    MSE,
    CrossEntropy,
    Lin,
    Model,
    Module,
    ReLU,
    Sequential,
)
from backprop.optim import sgd_step
from oracles import assert_matches, autograd_grads, torch_lin
from strategies import (
    batch_shapes,
    dims,
    dtypes,
    layouts,
    make_tensor,
    seeds,
    shapes,
    small_dims,
)


def _torch_mse(pred, target):
    return torch.nn.functional.mse_loss(pred, target)


def _torch_cross_entropy(logits, target):
    return torch.nn.functional.cross_entropy(logits, target)


# --- single layers ---------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    batch=batch_shapes(),
    n_in=small_dims,
    n_out=small_dims,
    dtype=dtypes,
    layout=layouts,
    bias=st.booleans(),
    seed=seeds,
)
def test_lin_gradients(batch, n_in, n_out, dtype, layout, bias, seed):
    x = make_tensor((*batch, n_in), dtype, layout, seed=seed)
    w = make_tensor((n_in, n_out), dtype, layout, seed=seed + 1)
    b = make_tensor((n_out,), dtype, seed=seed + 2) if bias else None
    grad_out = make_tensor((*batch, n_out), dtype, layout, seed=seed + 3)

    layer = Lin.from_tensors(w, b)
    out = layer(x)
    assert_matches(out, torch_lin(x, w, b))
    out.g = grad_out
    layer.backward()

    oracle = autograd_grads(torch_lin, [x, w, b], grad_out)
    functional = lin_backward(grad_out, x, w, b)
    got_grads = [x.g, w.g, b.g if bias else None]
    for got, expected_autograd, expected_functional in zip(
        got_grads, oracle, functional, strict=True
    ):
        if expected_autograd is None:
            assert got is None and expected_functional is None
            continue
        assert_matches(got, expected_autograd)
        assert_matches(got, expected_functional)
    assert layer.parameters() == ([w, b] if bias else [w])


@settings(max_examples=40, deadline=None)
@given(
    batch=batch_shapes(),
    n_in=small_dims,
    n_out=small_dims,
    dtype=dtypes,
    layout=layouts,
    seed=seeds,
)
def test_lin_skips_the_input_gradient_of_data(batch, n_in, n_out, dtype, layout, seed):
    x = make_tensor((*batch, n_in), dtype, layout, seed=seed)
    w = make_tensor((n_in, n_out), dtype, seed=seed + 1)
    b = make_tensor((n_out,), dtype, seed=seed + 2)
    grad_out = make_tensor((*batch, n_out), dtype, layout, seed=seed + 3)

    layer = Lin.from_tensors(w, b, input_needs_grad=False)
    layer(x).g = grad_out
    layer.backward()

    assert not hasattr(x, "g")
    _, grad_w, grad_b = autograd_grads(torch_lin, [x, w, b], grad_out)
    assert_matches(w.g, grad_w)
    assert_matches(b.g, grad_b)


@settings(max_examples=50, deadline=None)
@given(shape=shapes(min_dims=1, max_dims=4), dtype=dtypes, layout=layouts, seed=seeds)
def test_relu_gradients(shape, dtype, layout, seed):
    x = make_tensor(shape, dtype, layout, seed=seed)
    grad_out = make_tensor(shape, dtype, layout, seed=seed + 1)
    layer = ReLU()
    out = layer(x)
    assert_matches(out, torch.relu(x))
    out.g = grad_out
    layer.backward()
    (expected,) = autograd_grads(torch.relu, [x], grad_out)
    assert_matches(x.g, expected)
    assert_matches(x.g, relu_backward(grad_out, x))
    assert layer.parameters() == []


@settings(max_examples=50, deadline=None)
@given(shape=shapes(min_dims=1, max_dims=4), dtype=dtypes, layout=layouts, seed=seeds)
def test_mse_gradients(shape, dtype, layout, seed):
    pred = make_tensor(shape, dtype, layout, seed=seed)
    target = make_tensor(shape, dtype, seed=seed + 1)
    loss_fn = MSE()
    loss = loss_fn(pred, target)
    assert_matches(loss, _torch_mse(pred, target))
    assert_matches(loss, mse(pred, target))
    loss_fn.backward()  # a loss starts the chain: no upstream gradient to set
    expected, _ = autograd_grads(_torch_mse, [pred, target])
    assert_matches(pred.g, expected)
    assert_matches(pred.g, mse_backward(pred, target))
    assert not hasattr(target, "g")


@settings(max_examples=50, deadline=None)
@given(n=dims, n_classes=dims, dtype=dtypes, layout=layouts, seed=seeds)
def test_cross_entropy_gradients(n, n_classes, dtype, layout, seed):
    logits = make_tensor((n, n_classes), dtype, layout, seed=seed, scale=3.0)
    target = torch.randint(
        0, n_classes, (n,), generator=torch.Generator().manual_seed(seed)
    )
    loss_fn = CrossEntropy()
    loss = loss_fn(logits, target)
    assert_matches(loss, _torch_cross_entropy(logits, target))
    assert_matches(loss, cross_entropy(logits, target))
    loss_fn.backward()
    expected, no_grad = autograd_grads(_torch_cross_entropy, [logits, target])
    assert no_grad is None
    assert_matches(logits.g, expected)
    assert_matches(logits.g, cross_entropy_backward(logits, target))


# --- whole models ----------------------------------------------------------


def _torch_mlp(x, w1, b1, w2, b2):
    return torch_lin(torch.relu(torch_lin(x, w1, b1)), w2, b2)


def _functional_mlp_grads(x, params, grad_pred):
    """The chain rule written out with the functional backwards, layer by layer."""
    w1, b1, w2, b2 = params
    h = lin(x, w1, b1)
    a = relu(h)
    grad_a, grad_w2, grad_b2 = lin_backward(grad_pred, a, w2, b2)
    grad_h = relu_backward(grad_a, h)
    grad_x, grad_w1, grad_b1 = lin_backward(grad_h, x, w1, b1)
    return grad_x, [grad_w1, grad_b1, grad_w2, grad_b2]


def _mlp_params(n_in, n_hidden, n_out, dtype, layout, seed):
    return [
        make_tensor((n_in, n_hidden), dtype, layout, seed=seed + 1),
        make_tensor((n_hidden,), dtype, seed=seed + 2),
        make_tensor((n_hidden, n_out), dtype, layout, seed=seed + 3),
        make_tensor((n_out,), dtype, seed=seed + 4),
    ]


def _model(params, loss, input_needs_grad=True):
    w1, b1, w2, b2 = params
    first = Lin.from_tensors(w1, b1, input_needs_grad=input_needs_grad)
    return Model([first, ReLU(), Lin.from_tensors(w2, b2)], loss)


@settings(max_examples=50, deadline=None)
@given(
    batch=batch_shapes().filter(lambda b: len(b) > 0),
    n_in=small_dims,
    n_hidden=small_dims,
    n_out=small_dims,
    dtype=dtypes,
    layout=layouts,
    seed=seeds,
)
def test_mlp_with_mse(batch, n_in, n_hidden, n_out, dtype, layout, seed):
    x = make_tensor((*batch, n_in), dtype, layout, seed=seed)
    target = make_tensor((*batch, n_out), dtype, seed=seed + 5)
    params = _mlp_params(n_in, n_hidden, n_out, dtype, layout, seed)
    model = _model(params, MSE())

    loss = model(x, target)
    assert_matches(loss, _torch_mse(_torch_mlp(x, *params), target))
    model.backward()

    def loss_of(x, *params):
        return _torch_mse(_torch_mlp(x, *params), target)

    oracle = autograd_grads(loss_of, [x, *params])
    grad_pred = mse_backward(_torch_mlp(x, *params), target)
    grad_x, grad_params = _functional_mlp_grads(x, params, grad_pred)
    assert model.parameters() == params
    assert_matches(x.g, oracle[0])
    assert_matches(x.g, grad_x)
    for p, expected_autograd, expected_functional in zip(
        params, oracle[1:], grad_params, strict=True
    ):
        assert_matches(p.g, expected_autograd)
        assert_matches(p.g, expected_functional)


@settings(max_examples=50, deadline=None)
@given(
    n=dims,
    n_in=small_dims,
    n_hidden=small_dims,
    n_classes=small_dims,
    dtype=dtypes,
    layout=layouts,
    input_needs_grad=st.booleans(),
    seed=seeds,
)
def test_mlp_with_cross_entropy(
    n, n_in, n_hidden, n_classes, dtype, layout, input_needs_grad, seed
):
    x = make_tensor((n, n_in), dtype, layout, seed=seed)
    target = torch.randint(
        0, n_classes, (n,), generator=torch.Generator().manual_seed(seed)
    )
    params = _mlp_params(n_in, n_hidden, n_classes, dtype, layout, seed)
    model = _model(params, CrossEntropy(), input_needs_grad=input_needs_grad)

    loss = model(x, target)
    assert_matches(loss, _torch_cross_entropy(_torch_mlp(x, *params), target))
    model.backward()

    def loss_of(x, *params):
        return _torch_cross_entropy(_torch_mlp(x, *params), target)

    oracle = autograd_grads(loss_of, [x, *params])
    logits = _torch_mlp(x, *params)
    grad_x, grad_params = _functional_mlp_grads(
        x, params, cross_entropy_backward(logits, target)
    )
    if input_needs_grad:
        assert_matches(x.g, oracle[0])
        assert_matches(x.g, grad_x)
    else:
        assert not hasattr(x, "g")
    for p, expected_autograd, expected_functional in zip(
        params, oracle[1:], grad_params, strict=True
    ):
        assert_matches(p.g, expected_autograd)
        assert_matches(p.g, expected_functional)


def test_sequential_is_a_layer():
    x = make_tensor((5, 4), seed=1)
    params = _mlp_params(4, 3, 2, torch.float64, "contiguous", seed=2)
    w1, b1, w2, b2 = params
    block = Sequential(Lin.from_tensors(w1, b1), ReLU(), Lin.from_tensors(w2, b2))
    out = block(x)
    assert_matches(out, _torch_mlp(x, *params))
    grad_out = make_tensor((5, 2), seed=3)
    out.g = grad_out
    block.backward()
    oracle = autograd_grads(_torch_mlp, [x, *params], grad_out)
    assert block.parameters() == params
    for got, expected in zip([x.g] + [p.g for p in params], oracle, strict=True):
        assert_matches(got, expected)


def test_model_accepts_any_module_and_rejects_others():
    with pytest.raises(
        ValueError, match="layers\\[1\\] must be a Module, got function"
    ):
        Sequential(ReLU(), lambda x: x)
    with pytest.raises(ValueError, match="loss must be a Module, got function"):
        Model([ReLU()], lambda pred, target: 0.0)
    assert isinstance(Sequential(), Module)


# --- construction ----------------------------------------------------------


def test_lin_init_is_kaiming():
    n_in, n_out = 1000, 400
    layer = Lin(n_in, n_out, generator=torch.Generator().manual_seed(0))
    assert layer.w.shape == (n_in, n_out) and layer.w.dtype == torch.float32
    assert torch.equal(layer.b, torch.zeros(n_out))
    assert abs(layer.w.std().item() / math.sqrt(2 / n_in) - 1) < 0.02
    assert abs(layer.w.mean().item()) < 0.01 * math.sqrt(2 / n_in)  # 6 standard errors


def test_kaiming_init_keeps_the_scale_through_relu_layers():
    # The reason for the init: 20 Lin-ReLU layers neither shrink nor blow up the
    # activations.
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(500, 200, generator=generator, dtype=torch.float64)
    h = x
    for _ in range(20):
        h = ReLU()(Lin(200, 200, generator=generator, dtype=torch.float64)(h))
    mean_square = (h**2).mean().item()
    # x's mean square is 1; each ReLU halves it and the next layer's init doubles it
    # again.
    assert 0.3 < mean_square < 3, mean_square


def test_lin_construction_options():
    a = Lin(3, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    b = Lin(3, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert torch.equal(a.w, b.w) and a.w.dtype == torch.float64
    no_bias = Lin(3, 2, bias=False)
    assert no_bias.b is None and no_bias.parameters() == [no_bias.w]
    assert Lin(3, 2, device="cpu").w.device.type == "cpu"


def test_lin_from_tensors_uses_the_tensors_and_leaves_the_random_state_alone():
    w, b = torch.randn(3, 2), torch.randn(2)
    state = torch.get_rng_state()
    layer = Lin.from_tensors(w, b)
    assert torch.equal(torch.get_rng_state(), state)
    assert layer.w is w and layer.b is b
    assert Lin.from_tensors(w).b is None


def test_lin_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n_in must be a positive int, got 0"):
        Lin(0, 3)
    with pytest.raises(ValueError, match=r"n_out must be a positive int, got 2\.5"):
        Lin(3, 2.5)
    with pytest.raises(
        ValueError, match=r"dtype must be a floating-point dtype, got torch\.int64"
    ):
        Lin(3, 2, dtype=torch.int64)
    with pytest.raises(
        ValueError, match=r"w must have 2 dimension\(s\), got shape \(3,\)"
    ):
        Lin.from_tensors(torch.randn(3))
    with pytest.raises(
        ValueError, match=r"b has shape \(4,\) but w has shape \(3, 5\)"
    ):
        Lin.from_tensors(torch.randn(3, 5), torch.randn(4))
    with pytest.raises(
        ValueError, match=r"b has dtype torch\.float64 but w has dtype torch\.float32"
    ):
        Lin.from_tensors(torch.randn(3, 5), torch.randn(5, dtype=torch.float64))
    # A mistake in the forward pass is caught by the functional checks, naming the
    # shapes.
    with pytest.raises(
        ValueError, match=r"x has 4 features \(shape \(2, 4\)\) but w has 3 rows"
    ):
        Lin(3, 5)(torch.randn(2, 4))
    with pytest.raises(
        ValueError, match=r"pred has shape \(6, 1\) but target has shape \(6,\)"
    ):
        MSE()(torch.randn(6, 1), torch.randn(6))


# --- backward() before a forward ---------------------------------------------

# Classes whose constructor needs more than small ints; every other class in
# modules.__all__ and transformer.__all__ is built by _construct from its signature
# alone.
SPECIAL_CONSTRUCTORS = {"Model": lambda: Model([ReLU()], MSE())}


def _construct(cls):
    """An instance made of small arguments: 4 for every required argument, a ReLU
    where a module or a list of modules is asked for."""
    if cls.__name__ in SPECIAL_CONSTRUCTORS:
        return SPECIAL_CONSTRUCTORS[cls.__name__]()
    args = []
    for param in inspect.signature(cls).parameters.values():
        if param.default is not param.empty or param.kind in (
            param.VAR_POSITIONAL,
            param.VAR_KEYWORD,
        ):
            continue
        annotation = str(param.annotation)
        if "Module" in annotation:
            args.append([ReLU()] if "Sequence" in annotation else ReLU())
        else:
            args.append(4)
    return cls(*args)


# Every class with a backward() (not the optimisers, which have none).
WITH_BACKWARD = [
    getattr(module, name)
    for module in (modules, transformer)
    for name in module.__all__
    if inspect.isclass(getattr(module, name))
    and hasattr(getattr(module, name), "backward")
]


def test_every_module_class_is_covered():
    names = {cls.__name__ for cls in WITH_BACKWARD}
    assert {"Module", "Model", "Lin", "BatchNorm1d", "MultiHeadAttention"} <= names
    assert {"Residual", "TransformerBlock", "TinyGPT", "TokenCrossEntropy"} <= names


@pytest.mark.parametrize("cls", WITH_BACKWARD, ids=lambda cls: cls.__name__)
def test_backward_before_a_forward_says_what_to_do(cls):
    try:
        layer = _construct(cls)
    except Exception as error:  # a new class whose constructor needs more
        pytest.fail(f"add {cls.__name__} to SPECIAL_CONSTRUCTORS ({error})")
    match = rf"^{cls.__name__}\.backward\(\) was called before any forward pass: "
    match += r"call it on an input first \("
    with pytest.raises(RuntimeError, match=match):
        layer.backward()


def test_backward_without_out_g_says_what_to_set():
    layer = Lin(3, 2)
    layer(torch.randn(4, 3))
    match = r"the output \(shape \(4, 2\)\) has no gradient \.g: set out\.g"
    with pytest.raises(RuntimeError, match=match):
        layer.backward()


def test_a_failed_forward_leaves_the_last_call_to_differentiate():
    layer = Lin(3, 2)
    x = torch.randn(4, 3)
    out = layer(x)
    with pytest.raises(ValueError, match="features"):
        layer(torch.randn(5, 7))  # the wrong width: refused
    out.g = torch.ones(4, 2)
    layer.backward()  # still the call on x
    torch.testing.assert_close(x.g, out.g @ layer.w.T)


# --- training --------------------------------------------------------------


def test_sgd_training_on_the_digits():
    x_train, y_train, x_valid, y_valid = load_digits(seed=0)
    generator = torch.Generator().manual_seed(0)
    layers = [
        Lin(64, 50, input_needs_grad=False, generator=generator),
        ReLU(),
        Lin(50, 10, generator=generator),
    ]
    model = Model(layers, CrossEntropy())

    def accuracy(x, y):
        return (model.predict(x).argmax(dim=1) == y).float().mean().item()

    initial_loss = model(x_train, y_train).item()
    batch_size, lr = 64, 0.2
    for _epoch in range(5):
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            model(x_train[batch], y_train[batch])
            model.backward()
            sgd_step(model.parameters(), lr)
    final_loss = model(x_train, y_train).item()

    assert initial_loss > 1.5  # about log(10) = 2.3 for a fresh model
    assert final_loss < 0.25 * initial_loss
    assert accuracy(x_valid, y_valid) > 0.9  # such an MLP reaches about 0.97
