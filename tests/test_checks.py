"""Integer arguments (sizes, strides, paddings, dims): every public entry point
takes numpy's integers as ints and refuses bools (True would pass for 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from backprop._checks import as_int, require_int
from backprop.attention import (
    attention_backward_blockwise,
    causal_mask,
)
from backprop.broadcasting import broadcast_shape, unbroadcast
from backprop.conv import col2im, conv2d, conv2d_backward, im2col
from backprop.jacobian import jacobian_size
from backprop.modules import (
    BatchNorm1d,
    Conv2d,
    Embedding,
    LayerNorm,
    Lin,
    MultiHeadAttention,
)
from backprop.softmax import (
    log_softmax,
    log_softmax_backward,
    logsumexp,
    logsumexp_backward,
    softmax,
    softmax_backward,
)

gen = torch.Generator().manual_seed(0)
X = torch.randn(1, 2, 5, 6, generator=gen, dtype=torch.float64)  # (N, C, h, w)
W = torch.randn(3, 2, 2, 3, generator=gen, dtype=torch.float64)  # (O, C, kh, kw)
Q, K, V = (torch.randn(2, 5, 3, generator=gen, dtype=torch.float64) for _ in "qkv")
G_ATT = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64)
S = torch.randn(3, 4, generator=gen, dtype=torch.float64)
G_S = torch.randn(3, 4, generator=gen, dtype=torch.float64)


def _conv_grad_x(stride: int) -> torch.Tensor:
    """torch autograd's gradient of conv2d(X, W, stride) w.r.t. X, for ones."""
    x = X.clone().requires_grad_()
    F.conv2d(x, W, stride=stride).sum().backward()
    assert x.grad is not None
    return x.grad


def _torch_attention_grad_q() -> torch.Tensor:
    q = Q.clone().requires_grad_()
    out = torch.softmax(q @ K.transpose(-2, -1) / 3**0.5, dim=-1) @ V
    out.backward(G_ATT)
    assert q.grad is not None
    return q.grad


def _torch_softmax_grad(dim: int, f) -> torch.Tensor:
    s = S.clone().requires_grad_()
    f(s, dim).backward(G_S if f is not torch.logsumexp else G_S.sum(dim))
    assert s.grad is not None
    return s.grad


# name -> (call with the integer under test, a valid value, the expected result of
# that value computed independently: torch, or a closed form).
ENTRY_POINTS = {
    "im2col kernel_size": (
        lambda v: im2col(X, v),
        2,
        lambda n: F.unfold(X, n),
    ),
    "im2col stride": (
        lambda v: im2col(X, 2, stride=v),
        2,
        lambda n: F.unfold(X, 2, stride=n),
    ),
    "im2col padding": (
        lambda v: im2col(X, 2, padding=v),
        1,
        lambda n: F.unfold(X, 2, padding=n),
    ),
    "col2im output_size": (
        lambda v: col2im(F.unfold(X[..., :5], 2), v, 2),
        5,
        lambda n: F.fold(F.unfold(X[..., :5], 2), n, 2),
    ),
    "col2im stride": (
        lambda v: col2im(F.unfold(X, 2, stride=2), (5, 6), 2, stride=v),
        2,
        lambda n: F.fold(F.unfold(X, 2, stride=2), (5, 6), 2, stride=n),
    ),
    "conv2d stride": (
        lambda v: conv2d(X, W, None, stride=v),
        2,
        lambda n: F.conv2d(X, W, stride=n),
    ),
    "conv2d padding": (
        lambda v: conv2d(X, W, None, padding=v),
        1,
        lambda n: F.conv2d(X, W, padding=n),
    ),
    "conv2d_backward stride": (
        lambda v: conv2d_backward(
            torch.ones_like(F.conv2d(X, W, stride=2)), X, W, None, stride=v
        )[0],
        2,
        _conv_grad_x,
    ),
    "Conv2d kernel_size": (
        lambda v: tuple(Conv2d(2, 3, v).w.shape),
        2,
        lambda n: (3, 2, n, n),
    ),
    "Conv2d stride": (
        lambda v: tuple(Conv2d(2, 3, 2, stride=v)(X.float()).shape),
        2,
        lambda n: tuple(F.conv2d(X, W[..., :2], stride=n).shape),
    ),
    "Conv2d padding": (
        lambda v: tuple(Conv2d(2, 3, 2, padding=v)(X.float()).shape),
        1,
        lambda n: tuple(F.conv2d(X, W[..., :2], padding=n).shape),
    ),
    "Conv2d c_in": (
        lambda v: tuple(Conv2d(v, 3, 2).w.shape),
        2,
        lambda n: (3, n, 2, 2),
    ),
    "Lin n_in": (lambda v: tuple(Lin(v, 3).w.shape), 4, lambda n: (n, 3)),
    "Lin n_out": (lambda v: tuple(Lin(4, v).w.shape), 3, lambda n: (4, n)),
    "Embedding num": (
        lambda v: tuple(Embedding(v, 2).table.shape),
        5,
        lambda n: (n, 2),
    ),
    "Embedding dim": (
        lambda v: tuple(Embedding(5, v).table.shape),
        2,
        lambda n: (5, n),
    ),
    "BatchNorm1d c": (lambda v: tuple(BatchNorm1d(v).gamma.shape), 3, lambda n: (n,)),
    "LayerNorm d": (lambda v: tuple(LayerNorm(v).gamma.shape), 3, lambda n: (n,)),
    "MultiHeadAttention d_model": (
        lambda v: tuple(MultiHeadAttention(v, 2).w_q.shape),
        4,
        lambda n: (n, n),
    ),
    "MultiHeadAttention n_heads": (
        lambda v: MultiHeadAttention(4, v).n_heads,
        2,
        lambda n: n,
    ),
    "causal_mask lq": (
        lambda v: causal_mask(v),
        3,
        lambda n: ~torch.ones(n, n, dtype=torch.bool).triu(1),
    ),
    "causal_mask lk": (
        lambda v: causal_mask(2, v),
        3,
        lambda n: ~torch.ones(2, n, dtype=torch.bool).triu(1),
    ),
    "attention_backward_blockwise block_size": (
        lambda v: attention_backward_blockwise(G_ATT, Q, K, V, block_size=v)[0],
        2,
        lambda n: _torch_attention_grad_q(),
    ),
    "broadcast_shape a": (
        lambda v: broadcast_shape((v, 1), (3,)),
        2,
        lambda n: tuple(torch.broadcast_shapes((n, 1), (3,))),
    ),
    "unbroadcast shape": (
        lambda v: unbroadcast(torch.ones(2, 3, dtype=torch.float64), (v, 3)),
        1,
        lambda n: torch.ones(2, 3, dtype=torch.float64).sum(0, keepdim=True),
    ),
    "jacobian_size out_shape": (
        lambda v: tuple(jacobian_size((v, 4), (3,))),
        2,
        lambda n: (n * 4 * 3, n * 4 * 3 * 4),
    ),
    "softmax dim": (
        lambda v: softmax(S, dim=v),
        0,
        lambda n: torch.softmax(S, n),
    ),
    "log_softmax dim": (
        lambda v: log_softmax(S, dim=v),
        0,
        lambda n: torch.log_softmax(S, n),
    ),
    "logsumexp dim": (
        lambda v: logsumexp(S, dim=v),
        0,
        lambda n: torch.logsumexp(S, n),
    ),
    "softmax_backward dim": (
        lambda v: softmax_backward(G_S, S, dim=v),
        0,
        lambda n: _torch_softmax_grad(n, torch.softmax),
    ),
    "log_softmax_backward dim": (
        lambda v: log_softmax_backward(G_S, S, dim=v),
        0,
        lambda n: _torch_softmax_grad(n, torch.log_softmax),
    ),
    "logsumexp_backward dim": (
        lambda v: logsumexp_backward(G_S.sum(0), S, dim=v),
        0,
        lambda n: _torch_softmax_grad(n, torch.logsumexp),
    ),
}


def _assert_equal(got, expected):
    if isinstance(got, torch.Tensor):
        torch.testing.assert_close(got, expected)
    else:
        assert got == expected


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize(
    "as_type", [np.int64, np.int32, int], ids=["numpy.int64", "numpy.int32", "int"]
)
def test_numpy_integers_are_ints(entry, as_type):
    call, value, expected = ENTRY_POINTS[entry]
    _assert_equal(call(as_type(value)), expected(value))


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("bad", [True, False, np.True_, 2.0, "2"], ids=repr)
def test_bools_and_non_integers_are_refused(entry, bad):
    call, _, _ = ENTRY_POINTS[entry]
    argument = entry.split()[-1]
    with pytest.raises(ValueError, match=rf"\b{argument} must .*got"):
        call(bad)


@pytest.mark.parametrize(
    "entry", [e for e in sorted(ENTRY_POINTS) if e.split()[0] in ("im2col", "conv2d")]
)
def test_a_pair_holding_a_bool_is_refused_and_numpy_pairs_work(entry):
    call, value, expected = ENTRY_POINTS[entry]
    with pytest.raises(ValueError, match=r"must be an int or a pair of ints"):
        call((value, True))
    _assert_equal(call((np.int64(value), np.int64(value))), expected(value))


def test_im2col_refuses_true_as_a_kernel_size():
    # True is 1 to Python: it was taken for a 1 x 1 kernel.
    with pytest.raises(ValueError, match=r"kernel_size .* got True \(a bool\)"):
        im2col(X, True)


def test_as_int_and_require_int():
    assert as_int(np.int64(3)) == 3 and type(as_int(np.int64(3))) is int
    assert as_int(torch.tensor(4)) == 4
    for not_an_int in (True, np.True_, torch.tensor(True), 2.0, torch.tensor(2.0), "2"):
        assert as_int(not_an_int) is None, not_an_int
    assert require_int("n", np.int32(0), minimum=0) == 0
    with pytest.raises(ValueError, match=r"n must be a non-negative int, got -1"):
        require_int("n", -1, minimum=0)
    with pytest.raises(ValueError, match=r"n must be an int of at least 2, got 1"):
        require_int("n", 1, minimum=2)
    with pytest.raises(ValueError, match=r"n must be an int, got True \(a bool\)"):
        require_int("n", True)
