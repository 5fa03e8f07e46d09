"""Embedding, BatchNorm1d, LayerNorm and Conv2d modules: .g against the functional backwards and autograd."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from backprop.functional import (
    batchnorm_backward,
    conv2d_backward,
    embedding_backward,
    layernorm_backward,
)
from backprop.modules import (
    MSE,
    BatchNorm1d,
    Conv2d,
    Embedding,
    LayerNorm,
    Lin,
    Model,
    ReLU,
    Sequential,
    sgd_step,
)
from oracles import assert_matches, autograd_grads
from strategies import (
    batch_shapes,
    conv_configs,
    dtypes,
    layouts,
    make_index,
    make_tensor,
    seeds,
    shapes,
    tolerance,
)



def _run_backward(layer, inp, seed):
    """Forward, then a random upstream gradient on the output, then backward()."""
    out = layer(inp)
    out.g = make_tensor(tuple(out.shape), out.dtype, seed=seed)
    layer.backward()
    return out


@settings(max_examples=40, deadline=None)
@given(idx_shape=shapes(min_dims=0, max_dims=3, max_side=5), num=st.integers(1, 6), dim=st.integers(1, 5), dtype=dtypes, seed=seeds)
def test_embedding_module(idx_shape, num, dim, dtype, seed):
    layer = Embedding(num, dim, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    idx = make_index(idx_shape, num, "strided", seed=seed)
    out = _run_backward(layer, idx, seed + 1)
    assert out.shape == (*idx_shape, dim)
    assert not hasattr(idx, "g"), "integer indices have no gradient"
    assert layer.parameters() == [layer.table]
    assert_matches(layer.table.g, embedding_backward(out.g, idx, layer.table))
    _, expected = autograd_grads(F.embedding, [idx, layer.table], out.g)
    assert_matches(layer.table.g, expected)


@settings(max_examples=40, deadline=None)
@given(shape=shapes(min_dims=2, max_dims=3, max_side=5), dtype=dtypes, layout=layouts, seed=seeds)
def test_batchnorm1d_module(shape, dtype, layout, seed):
    assume(shape[0] * math.prod(shape[2:]) >= 2)
    layer = BatchNorm1d(shape[1], dtype=dtype)
    # Move the parameters away from ones and zeros so a swapped gamma/beta would show.
    layer.gamma += make_tensor((shape[1],), dtype, seed=seed)
    layer.beta += make_tensor((shape[1],), dtype, seed=seed + 1)
    x = make_tensor(shape, dtype, layout, seed=seed + 2)
    out = _run_backward(layer, x, seed + 3)
    assert layer.parameters() == [layer.gamma, layer.beta]
    for got, functional in zip((x.g, layer.gamma.g, layer.beta.g), batchnorm_backward(out.g, x, layer.gamma, layer.beta)):
        assert torch.equal(got, functional)
    if dtype == torch.float64:  # float32 is checked against autograd in test_normalization
        expected = autograd_grads(
            lambda x_, g_, b_: F.batch_norm(x_, None, None, g_, b_, training=True), [x, layer.gamma, layer.beta], out.g
        )
        for got, e in zip((x.g, layer.gamma.g, layer.beta.g), expected):
            assert_matches(got, e)


@settings(max_examples=40, deadline=None)
@given(batch=batch_shapes(), d=st.integers(1, 6), dtype=dtypes, layout=layouts, seed=seeds)
def test_layernorm_module(batch, d, dtype, layout, seed):
    layer = LayerNorm(d, dtype=dtype)
    layer.gamma += make_tensor((d,), dtype, seed=seed)
    layer.beta += make_tensor((d,), dtype, seed=seed + 1)
    x = make_tensor((*batch, d), dtype, layout, seed=seed + 2)
    out = _run_backward(layer, x, seed + 3)
    assert layer.parameters() == [layer.gamma, layer.beta]
    for got, functional in zip((x.g, layer.gamma.g, layer.beta.g), layernorm_backward(out.g, x, layer.gamma, layer.beta)):
        assert torch.equal(got, functional)
    if dtype == torch.float64:  # float32 is checked against autograd in test_normalization
        expected = autograd_grads(lambda x_, g_, b_: F.layer_norm(x_, (d,), g_, b_), [x, layer.gamma, layer.beta], out.g)
        for got, e in zip((x.g, layer.gamma.g, layer.beta.g), expected):
            assert_matches(got, e)


@settings(max_examples=40, deadline=None)
@given(cfg=conv_configs(), bias=st.booleans(), dtype=dtypes, layout=layouts, seed=seeds)
def test_conv2d_module(cfg, bias, dtype, layout, seed):
    o, c, kh, kw = cfg["w_shape"]
    stride, padding = cfg["stride"], cfg["padding"]
    layer = Conv2d(c, o, (kh, kw), stride, padding, bias=bias, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    if bias:
        layer.b += make_tensor((o,), dtype, seed=seed)
    x = make_tensor(cfg["x_shape"], dtype, layout, seed=seed + 1)
    out = _run_backward(layer, x, seed + 2)
    assert layer.parameters() == ([layer.w, layer.b] if bias else [layer.w])
    grad_x, grad_w, grad_b = conv2d_backward(out.g, x, layer.w, layer.b, stride, padding)
    assert torch.equal(x.g, grad_x) and torch.equal(layer.w.g, grad_w)
    expected = autograd_grads(lambda x_, w_, b_: F.conv2d(x_, w_, b_, stride, padding), [x, layer.w, layer.b], out.g)
    assert_matches(x.g, expected[0])
    assert_matches(layer.w.g, expected[1])
    if bias:
        assert_matches(layer.b.g, expected[2])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_model_of_part2_layers_matches_autograd(dtype):
    # Embedding -> LayerNorm -> Lin -> MSE: each layer's output is the next one's input,
    # so .g flows from the loss back to the embedding table.
    gen = torch.Generator().manual_seed(0)
    emb, norm, lin = Embedding(7, 4, generator=gen, dtype=dtype), LayerNorm(4, dtype=dtype), Lin(4, 2, generator=gen, dtype=dtype)
    model = Model([emb, norm, lin], MSE())
    idx = torch.tensor([[0, 3, 3], [6, 0, 1]])
    target = torch.randn(2, 3, 2, generator=gen, dtype=torch.float64).to(dtype)
    loss = model(idx, target)
    model.backward()

    def torch_model(table, gamma, beta, w, b):
        h = F.layer_norm(F.embedding(idx, table), (4,), gamma, beta)
        return F.mse_loss(h @ w + b, target)

    params = [emb.table, norm.gamma, norm.beta, lin.w, lin.b]
    torch.testing.assert_close(loss, torch_model(*params), **tolerance(dtype))
    for got, expected in zip((p.g for p in params), autograd_grads(torch_model, params)):
        assert_matches(got, expected)
    assert model.parameters() == params
    sgd_step(model.parameters(), lr=0.1)  # every parameter has a gradient to step with


def test_stacked_convolutions_pass_gradients_back_to_the_input():
    gen = torch.Generator().manual_seed(0)
    first = Conv2d(2, 3, 3, padding=1, generator=gen, dtype=torch.float64)
    second = Conv2d(3, 4, (2, 3), stride=2, generator=gen, dtype=torch.float64)
    net = Sequential(first, ReLU(), second)
    x = torch.randn(2, 2, 6, 5, generator=gen, dtype=torch.float64)
    out = net(x)
    out.g = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    net.backward()

    def torch_net(x_, w1, b1, w2, b2):
        return F.conv2d(F.relu(F.conv2d(x_, w1, b1, 1, 1)), w2, b2, 2, 0)

    params = [x, first.w, first.b, second.w, second.b]
    for got, expected in zip((t.g for t in params), autograd_grads(torch_net, params, out.g)):
        assert_matches(got, expected)


def test_conv2d_kaiming_initialisation():
    layer = Conv2d(16, 64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert layer.w.shape == (64, 16, 3, 3) and torch.equal(layer.b, torch.zeros(64, dtype=torch.float64))
    assert abs(layer.w.std().item() - math.sqrt(2 / (16 * 9))) < 0.05 * math.sqrt(2 / (16 * 9))


def test_bad_constructor_arguments_and_inputs():
    with pytest.raises(ValueError, match=r"num must be a positive int, got 0"):
        Embedding(0, 3)
    with pytest.raises(ValueError, match=r"c must be a positive int, got 2.0"):
        BatchNorm1d(2.0)
    with pytest.raises(ValueError, match=r"kernel_size must be an int or a pair of ints, got \(1, 2, 3\)"):
        Conv2d(1, 1, (1, 2, 3))
    with pytest.raises(ValueError, match=r"kernel width must be a positive int, got 0"):
        Conv2d(1, 1, (3, 0))
    with pytest.raises(ValueError, match=r"BatchNorm1d expects inp of shape \(n, c\) or \(n, c, L\), got shape \(2, 3, 4, 4\)"):
        BatchNorm1d(3)(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match=r"x has 3 channels \(shape \(1, 3, 4, 4\)\) but w expects 2"):
        Conv2d(2, 4, 3)(torch.randn(1, 3, 4, 4))
