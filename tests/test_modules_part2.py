"""Embedding, BatchNorm1d, LayerNorm and Conv2d modules: .g against the functional
backwards and autograd."""

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
    MultiHeadAttention,
    ReLU,
    Sequential,
)
from backprop.optim import sgd_step
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
@given(
    idx_shape=shapes(min_dims=0, max_dims=3, max_side=5),
    num=st.integers(1, 6),
    dim=st.integers(1, 5),
    dtype=dtypes,
    seed=seeds,
)
def test_embedding_module(idx_shape, num, dim, dtype, seed):
    layer = Embedding(
        num, dim, generator=torch.Generator().manual_seed(seed), dtype=dtype
    )
    idx = make_index(idx_shape, num, "strided", seed=seed)
    out = _run_backward(layer, idx, seed + 1)
    assert out.shape == (*idx_shape, dim)
    assert not hasattr(idx, "g"), "integer indices have no gradient"
    assert layer.parameters() == [layer.table]
    assert_matches(layer.table.g, embedding_backward(out.g, idx, layer.table))
    _, expected = autograd_grads(F.embedding, [idx, layer.table], out.g)
    assert_matches(layer.table.g, expected)


@settings(max_examples=40, deadline=None)
@given(
    shape=shapes(min_dims=2, max_dims=3, max_side=5),
    dtype=dtypes,
    layout=layouts,
    seed=seeds,
)
def test_batchnorm1d_module(shape, dtype, layout, seed):
    assume(shape[0] * math.prod(shape[2:]) >= 2)
    layer = BatchNorm1d(shape[1], dtype=dtype)
    # Move the parameters away from ones and zeros so a swapped gamma/beta would show.
    layer.gamma += make_tensor((shape[1],), dtype, seed=seed)
    layer.beta += make_tensor((shape[1],), dtype, seed=seed + 1)
    x = make_tensor(shape, dtype, layout, seed=seed + 2)
    out = _run_backward(layer, x, seed + 3)
    assert layer.parameters() == [layer.gamma, layer.beta]
    for got, functional in zip(
        (x.g, layer.gamma.g, layer.beta.g),
        batchnorm_backward(out.g, x, layer.gamma, layer.beta),
        strict=True,
    ):
        assert torch.equal(got, functional)
    if (
        dtype == torch.float64
    ):  # float32 is checked against autograd in test_normalization
        expected = autograd_grads(
            lambda x_, g_, b_: F.batch_norm(x_, None, None, g_, b_, training=True),
            [x, layer.gamma, layer.beta],
            out.g,
        )
        for got, e in zip((x.g, layer.gamma.g, layer.beta.g), expected, strict=True):
            assert_matches(got, e)


@settings(max_examples=40, deadline=None)
@given(
    batch=batch_shapes(), d=st.integers(1, 6), dtype=dtypes, layout=layouts, seed=seeds
)
def test_layernorm_module(batch, d, dtype, layout, seed):
    layer = LayerNorm(d, dtype=dtype)
    layer.gamma += make_tensor((d,), dtype, seed=seed)
    layer.beta += make_tensor((d,), dtype, seed=seed + 1)
    x = make_tensor((*batch, d), dtype, layout, seed=seed + 2)
    out = _run_backward(layer, x, seed + 3)
    assert layer.parameters() == [layer.gamma, layer.beta]
    for got, functional in zip(
        (x.g, layer.gamma.g, layer.beta.g),
        layernorm_backward(out.g, x, layer.gamma, layer.beta),
        strict=True,
    ):
        assert torch.equal(got, functional)
    if (
        dtype == torch.float64
    ):  # float32 is checked against autograd in test_normalization
        expected = autograd_grads(
            lambda x_, g_, b_: F.layer_norm(x_, (d,), g_, b_),
            [x, layer.gamma, layer.beta],
            out.g,
        )
        for got, e in zip((x.g, layer.gamma.g, layer.beta.g), expected, strict=True):
            assert_matches(got, e)


@settings(max_examples=40, deadline=None)
@given(cfg=conv_configs(), bias=st.booleans(), dtype=dtypes, layout=layouts, seed=seeds)
def test_conv2d_module(cfg, bias, dtype, layout, seed):
    o, c, kh, kw = cfg["w_shape"]
    stride, padding = cfg["stride"], cfg["padding"]
    layer = Conv2d(
        c,
        o,
        (kh, kw),
        stride,
        padding,
        bias=bias,
        generator=torch.Generator().manual_seed(seed),
        dtype=dtype,
    )
    if bias:
        layer.b += make_tensor((o,), dtype, seed=seed)
    x = make_tensor(cfg["x_shape"], dtype, layout, seed=seed + 1)
    out = _run_backward(layer, x, seed + 2)
    assert layer.parameters() == ([layer.w, layer.b] if bias else [layer.w])
    grad_x, grad_w, grad_b = conv2d_backward(
        out.g, x, layer.w, layer.b, stride, padding
    )
    assert torch.equal(x.g, grad_x) and torch.equal(layer.w.g, grad_w)
    assert (grad_b is None) == (not bias)
    if bias:
        assert torch.equal(layer.b.g, grad_b)
    expected = autograd_grads(
        lambda x_, w_, b_: F.conv2d(x_, w_, b_, stride, padding),
        [x, layer.w, layer.b],
        out.g,
    )
    assert_matches(x.g, expected[0])
    assert_matches(layer.w.g, expected[1])
    if bias:
        assert_matches(layer.b.g, expected[2])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_model_of_part2_layers_matches_autograd(dtype):
    # Embedding -> LayerNorm -> Lin -> MSE: each layer's output is the next one's input,
    # so .g flows from the loss back to the embedding table.
    gen = torch.Generator().manual_seed(0)
    emb, norm, lin = (
        Embedding(7, 4, generator=gen, dtype=dtype),
        LayerNorm(4, dtype=dtype),
        Lin(4, 2, generator=gen, dtype=dtype),
    )
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
    for got, expected in zip(
        (p.g for p in params), autograd_grads(torch_model, params), strict=True
    ):
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
    for got, expected in zip(
        (t.g for t in params), autograd_grads(torch_net, params, out.g), strict=True
    ):
        assert_matches(got, expected)


def test_conv2d_kaiming_initialisation():
    layer = Conv2d(
        16, 64, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    assert layer.w.shape == (64, 16, 3, 3) and torch.equal(
        layer.b, torch.zeros(64, dtype=torch.float64)
    )
    assert abs(layer.w.std().item() - math.sqrt(2 / (16 * 9))) < 0.05 * math.sqrt(
        2 / (16 * 9)
    )


def test_bad_constructor_arguments_and_inputs():
    with pytest.raises(ValueError, match=r"num must be a positive int, got 0"):
        Embedding(0, 3)
    with pytest.raises(ValueError, match=r"c must be a positive int, got 2.0"):
        BatchNorm1d(2.0)
    with pytest.raises(
        ValueError,
        match=r"kernel_size must be an int or a pair of ints, got \(1, 2, 3\)",
    ):
        Conv2d(1, 1, (1, 2, 3))
    with pytest.raises(ValueError, match=r"kernel width must be a positive int, got 0"):
        Conv2d(1, 1, (3, 0))
    with pytest.raises(
        ValueError,
        match=r"BatchNorm1d expects inp of shape \(n, c\) or \(n, c, L\), "
        r"got shape \(2, 3, 4, 4\)",
    ):
        BatchNorm1d(3)(torch.randn(2, 3, 4, 4))
    with pytest.raises(
        ValueError, match=r"x has 3 channels \(shape \(1, 3, 4, 4\)\) but w expects 2"
    ):
        Conv2d(2, 4, 3)(torch.randn(1, 3, 4, 4))


# ------------------------------------------------------------------ batch norm modes


def _torch_batchnorm(layer: BatchNorm1d) -> torch.nn.BatchNorm1d:
    """torch's module with our layer's parameters, momentum and running statistics."""
    c = layer.gamma.shape[0]
    theirs = torch.nn.BatchNorm1d(
        c, eps=layer.eps, momentum=layer.momentum, dtype=layer.gamma.dtype
    )
    with torch.no_grad():
        theirs.weight.copy_(layer.gamma)
        theirs.bias.copy_(layer.beta)
        theirs.running_mean.copy_(layer.running_mean)
        theirs.running_var.copy_(layer.running_var)
    return theirs


@settings(max_examples=40, deadline=None)
@given(
    shape=shapes(min_dims=2, max_dims=3, max_side=5),
    momentum=st.sampled_from([0.1, 0.5, 1.0, 0.0, 0.3]),
    steps=st.integers(1, 4),
    dtype=dtypes,
    seed=seeds,
)
def test_batchnorm1d_running_statistics_match_torch(
    shape, momentum, steps, dtype, seed
):
    assume(shape[0] * math.prod(shape[2:]) >= 2)
    layer = BatchNorm1d(shape[1], momentum=momentum, dtype=dtype)
    theirs = _torch_batchnorm(layer)
    for step in range(steps):
        # Batches far from mean 0 and variance 1, so the update is visible.
        x = make_tensor(shape, dtype, seed=seed + step, scale=3.0) + 2.0
        out = layer(x)
        with torch.no_grad():
            expected = theirs.train()(x)
        tol = tolerance(dtype)
        if dtype == torch.float64:  # float32 outputs are checked in test_normalization
            torch.testing.assert_close(out, expected, **tol)
        torch.testing.assert_close(layer.running_mean, theirs.running_mean, **tol)
        torch.testing.assert_close(layer.running_var, theirs.running_var, **tol)


def test_batchnorm1d_running_var_is_the_unbiased_variance():
    # momentum 1 keeps only the last batch: its variance, divided by m - 1 = 3.
    layer = BatchNorm1d(1, momentum=1.0, dtype=torch.float64)
    x = torch.tensor([[1.0], [2.0], [4.0], [9.0]], dtype=torch.float64)
    layer(x)
    assert layer.running_mean.item() == pytest.approx(4.0)
    assert layer.running_var.item() == pytest.approx(((x - 4) ** 2).sum().item() / 3)
    assert layer.running_var.item() == pytest.approx(x.var(unbiased=True).item())


@settings(max_examples=40, deadline=None)
@given(
    shape=shapes(min_dims=2, max_dims=3, max_side=5),
    dtype=dtypes,
    layout=layouts,
    seed=seeds,
)
def test_batchnorm1d_eval_mode_matches_torch(shape, dtype, layout, seed):
    # Batches of one included: evaluation mode has no batch statistics.
    layer = BatchNorm1d(shape[1], dtype=dtype)
    layer.gamma += make_tensor((shape[1],), dtype, seed=seed)
    layer.beta += make_tensor((shape[1],), dtype, seed=seed + 1)
    layer.running_mean += make_tensor((shape[1],), dtype, seed=seed + 2)
    layer.running_var *= make_tensor((shape[1],), dtype, seed=seed + 3).abs() + 0.5
    theirs = _torch_batchnorm(layer).eval()
    assert layer.eval() is layer and not layer.training
    x = make_tensor(shape, dtype, layout, seed=seed + 4)
    running = layer.running_mean.clone(), layer.running_var.clone()
    out = _run_backward(layer, x, seed + 5)
    assert torch.equal(layer.running_mean, running[0])
    assert torch.equal(layer.running_var, running[1])

    x_leaf = x.detach().clone().requires_grad_()
    expected = theirs(x_leaf)
    expected.backward(out.g)
    torch.testing.assert_close(out, expected.detach(), **tolerance(dtype))
    ours = (x.g, layer.gamma.g, layer.beta.g)
    for got, e in zip(
        ours, (x_leaf.grad, theirs.weight.grad, theirs.bias.grad), strict=True
    ):
        assert_matches(got, e)
    # No batch coupling: each value's gradient is its own out.g times gamma / sigma.
    sigma = (layer.running_var + layer.eps).sqrt().reshape(1, -1, *([1] * (x.ndim - 2)))
    gamma = layer.gamma.reshape(sigma.shape)
    torch.testing.assert_close(x.g, out.g * gamma / sigma, **tolerance(dtype))


def test_batchnorm1d_batch_of_one_needs_eval_mode():
    layer = BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"more than one value per channel.*\(1, 3\)"):
        layer(torch.randn(1, 3))
    with pytest.raises(
        ValueError, match="more than 1 value per channel"
    ):  # so does torch
        torch.nn.BatchNorm1d(3)(torch.randn(1, 3))
    assert layer.eval()(torch.randn(1, 3)).shape == (1, 3)


def test_train_and_eval_reach_every_layer_of_a_model():
    norm = BatchNorm1d(4)
    model = Model([Lin(3, 4), norm, ReLU(), Lin(4, 1)], MSE())
    assert model.eval() is model and not norm.training
    assert all(not layer.training for layer in model.layers.layers)
    model.train()
    assert norm.training and model.layers.training


def test_batchnorm1d_bad_momentum_and_channels():
    for bad in (-0.1, 1.5, "0.1", None):
        with pytest.raises(ValueError, match=r"momentum must be a number in \[0, 1\]"):
            BatchNorm1d(3, momentum=bad)
    match = r"inp has 2 channels \(shape \(5, 2\)\) but BatchNorm1d has 3"
    with pytest.raises(ValueError, match=match):
        BatchNorm1d(3).eval()(torch.randn(5, 2))
    # Training mode names the input too, not gamma.
    with pytest.raises(ValueError, match=match):
        BatchNorm1d(3)(torch.randn(5, 2))
    match = r"inp has 5 channels \(shape \(4, 5, 2\)\) but BatchNorm1d has 3"
    with pytest.raises(ValueError, match=match):
        BatchNorm1d(3).train()(torch.randn(4, 5, 2))


@settings(max_examples=40, deadline=None)
@given(
    shape=shapes(min_dims=2, max_dims=3, max_side=5),
    forward_in_training=st.booleans(),
    dtype=dtypes,
    layout=layouts,
    seed=seeds,
)
def test_batchnorm1d_backward_differentiates_the_mode_its_forward_ran_in(
    shape, forward_in_training, dtype, layout, seed
):
    # out = bn(x); bn.eval() (or bn.train()); bn.backward(): the gradient is the
    # one of the forward that ran, with the statistics it used.
    assume(shape[0] * math.prod(shape[2:]) >= 2)
    c = shape[1]
    layer = BatchNorm1d(c, dtype=dtype).train(forward_in_training)
    layer.gamma += make_tensor((c,), dtype, seed=seed)
    layer.beta += make_tensor((c,), dtype, seed=seed + 1)
    layer.running_mean += make_tensor((c,), dtype, seed=seed + 2)
    layer.running_var *= make_tensor((c,), dtype, seed=seed + 3).abs() + 0.5
    running = layer.running_mean.clone(), layer.running_var.clone()
    x = make_tensor(shape, dtype, layout, seed=seed + 4)
    out = layer(x)
    out.g = make_tensor(tuple(out.shape), dtype, seed=seed + 5)
    layer.train(not forward_in_training)
    layer.running_mean += 1.0  # changed after the forward: it must not matter
    layer.running_var *= 2.0
    layer.backward()

    def torch_forward(x_, gamma_, beta_):
        mean, var = (r.clone() for r in running)
        return F.batch_norm(x_, mean, var, gamma_, beta_, forward_in_training)

    expected = autograd_grads(torch_forward, [x, layer.gamma, layer.beta], out.g)
    for got, e in zip((x.g, layer.gamma.g, layer.beta.g), expected, strict=True):
        torch.testing.assert_close(got, e, **tolerance(dtype))


# -------------------------------------------------------------- multi-head attention


def _torch_mha(mha: MultiHeadAttention) -> torch.nn.MultiheadAttention:
    """torch's module holding the same weights, transposed to its (out, in) layout."""
    d_model = mha.w_q.shape[0]
    theirs = torch.nn.MultiheadAttention(
        d_model, mha.n_heads, batch_first=True, dtype=mha.w_q.dtype
    )
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([mha.w_q.T, mha.w_k.T, mha.w_v.T]))
        theirs.in_proj_bias.copy_(torch.cat([mha.b_q, mha.b_k, mha.b_v]))
        theirs.out_proj.weight.copy_(mha.w_o.T)
        theirs.out_proj.bias.copy_(mha.b_o)
    return theirs


def _torch_causal_mask(length: int) -> torch.Tensor:
    """torch's bool attn_mask: True where attention is NOT allowed (j > i)."""
    return torch.ones(length, length, dtype=torch.bool).triu(diagonal=1)


def _random_mha(d_model, n_heads, causal, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    mha = MultiHeadAttention(
        d_model, n_heads, causal=causal, dtype=dtype, generator=gen
    )
    for i, b in enumerate((mha.b_q, mha.b_k, mha.b_v, mha.b_o)):
        # Nonzero biases, so a lost one shows.
        b += make_tensor(b.shape, dtype, seed=seed + 10 + i)
    return mha


mha_configs = st.tuples(
    st.integers(1, 3),  # N, batch of one included
    st.integers(1, 5),  # T, a single position included
    st.integers(1, 3),  # n_heads
    st.integers(1, 3),  # features per head
)


@settings(max_examples=40, deadline=None)
@given(cfg=mha_configs, causal=st.booleans(), dtype=dtypes, layout=layouts, seed=seeds)
def test_multihead_attention_forward_matches_torch(cfg, causal, dtype, layout, seed):
    n, length, n_heads, d_head = cfg
    d_model = n_heads * d_head
    mha = _random_mha(d_model, n_heads, causal, dtype, seed)
    x = make_tensor((n, length, d_model), dtype, layout, seed=seed + 1)
    mask = _torch_causal_mask(length) if causal else None
    with torch.no_grad():
        expected, _ = _torch_mha(mha)(x, x, x, attn_mask=mask, need_weights=False)
    out = mha(x)
    assert out.shape == (n, length, d_model) and out.dtype == dtype
    torch.testing.assert_close(out, expected, **tolerance(dtype))


@settings(max_examples=40, deadline=None)
@given(cfg=mha_configs, causal=st.booleans(), dtype=dtypes, layout=layouts, seed=seeds)
def test_multihead_attention_gradients_match_autograd(cfg, causal, dtype, layout, seed):
    n, length, n_heads, d_head = cfg
    d_model = n_heads * d_head
    assume(d_model != length)  # so a sequence/feature mix-up cannot hide
    mha = _random_mha(d_model, n_heads, causal, dtype, seed)
    x = make_tensor((n, length, d_model), dtype, layout, seed=seed + 1)
    out = _run_backward(mha, x, seed + 2)
    assert len(mha.parameters()) == 8

    theirs = _torch_mha(mha)
    x_leaf = x.detach().clone().requires_grad_()
    mask = _torch_causal_mask(length) if causal else None
    expected, _ = theirs(x_leaf, x_leaf, x_leaf, attn_mask=mask, need_weights=False)
    expected.backward(out.g)
    assert_matches(x.g, x_leaf.grad)
    w_in, b_in = theirs.in_proj_weight.grad, theirs.in_proj_bias.grad
    projections = ((mha.w_q, mha.b_q), (mha.w_k, mha.b_k), (mha.w_v, mha.b_v))
    for i, (w, b) in enumerate(projections):
        rows = slice(i * d_model, (i + 1) * d_model)
        assert_matches(w.g, w_in[rows].T)
        assert_matches(b.g, b_in[rows])
    assert_matches(mha.w_o.g, theirs.out_proj.weight.grad.T)
    assert_matches(mha.b_o.g, theirs.out_proj.bias.grad)


def test_multihead_attention_causal_output_ignores_the_future():
    mha = _random_mha(4, 2, True, torch.float64, 0)
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    changed = x.clone()
    changed[:, 3:] += 10.0  # only positions 3 and 4 change
    assert torch.equal(mha(x)[:, :3], mha(changed)[:, :3])
    assert not torch.allclose(mha(x)[:, 3:], mha(changed)[:, 3:])


def test_multihead_attention_bad_arguments():
    match = r"d_model must be a multiple of n_heads.*d_model=6 and n_heads=4"
    with pytest.raises(ValueError, match=match):
        MultiHeadAttention(6, 4)
    with pytest.raises(ValueError, match=r"n_heads must be a positive int, got 0"):
        MultiHeadAttention(6, 0)
    mha = MultiHeadAttention(6, 2)
    match = r"x has 4 features \(shape \(2, 3, 4\)\) but Multi\w+ has d_model=6"
    with pytest.raises(ValueError, match=match):
        mha(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match=r"x must have 3 dim.*got shape \(3, 6\)"):
        mha(torch.randn(3, 6))


def _torch_mha_grads(mha, x, grad_out, causal):
    """torch's gradients for x and our eight parameters, in mha.parameters() order."""
    theirs = _torch_mha(mha)
    x_leaf = x.detach().clone().requires_grad_()
    mask = _torch_causal_mask(x.shape[1]) if causal else None
    out, _ = theirs(x_leaf, x_leaf, x_leaf, attn_mask=mask, need_weights=False)
    out.backward(grad_out)
    d_model = mha.w_q.shape[0]
    w_in, b_in = theirs.in_proj_weight.grad, theirs.in_proj_bias.grad
    params = []
    for i in range(3):
        rows = slice(i * d_model, (i + 1) * d_model)
        params += [w_in[rows].T, b_in[rows]]
    params += [theirs.out_proj.weight.grad.T, theirs.out_proj.bias.grad]
    return out.detach(), x_leaf.grad, params


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("n", "length"), [(2, 0), (0, 3), (0, 0)])
def test_multihead_attention_on_no_positions_or_no_examples_matches_torch(
    n, length, causal
):
    # torch returns an empty output and zero parameter gradients; so must we.
    mha = _random_mha(6, 2, causal, torch.float64, 0)
    x = torch.randn(n, length, 6, dtype=torch.float64)
    out = mha(x)
    out.g = torch.randn_like(out)
    mha.backward()
    expected, x_grad, param_grads = _torch_mha_grads(mha, x, out.g, causal)
    assert out.shape == expected.shape == (n, length, 6)
    assert x.g.shape == x_grad.shape
    for got, e in zip([p.g for p in mha.parameters()], param_grads, strict=True):
        torch.testing.assert_close(got, e, rtol=0, atol=0)  # zeros, both


@pytest.mark.parametrize("causal", [False, True])
def test_multihead_attention_backward_uses_the_mask_of_its_forward(causal):
    mha = _random_mha(6, 2, causal, torch.float64, 0)
    x = torch.randn(2, 4, 6, dtype=torch.float64)
    out = mha(x)
    out.g = torch.randn_like(out)
    mha.causal = not causal  # changed after the forward: it must not matter
    mha.backward()
    _, x_grad, param_grads = _torch_mha_grads(mha, x, out.g, causal)
    assert_matches(x.g, x_grad)
    for got, e in zip([p.g for p in mha.parameters()], param_grads, strict=True):
        assert_matches(got, e)
