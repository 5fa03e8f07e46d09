"""Scaled dot-product attention, forward and backward, with an optional mask.

Shapes, with any leading (batch, head) dimensions ``...`` EQUAL across q, k and v
(they are not broadcast against each other: a mismatch is an error):

    q (..., Lq, d)    k (..., Lk, d)    v (..., Lk, dv)    out (..., Lq, dv)

Forward, with the scores scaled by 1/sqrt(d) so their variance does not grow with d:

    scores = q @ kᵀ / sqrt(d)                  (..., Lq, Lk)
    scores = -inf where mask is False          (masked keys get weight exp(-inf) = 0)
    p      = softmax(scores, over the keys)    each row sums to 1
    out    = p @ v

``mask`` is boolean, broadcastable to the scores' shape (..., Lq, Lk), True where
query i may attend to key j — the convention of
``torch.nn.functional.scaled_dot_product_attention``. A query row whose mask is
all False would take a softmax over nothing (0 / 0): the result is undefined, so
``attention`` raises ``ValueError`` for it rather than returning nan.

Backward, with g = grad_out, reading the forward from the bottom up:

    grad_v      = pᵀ @ g                              (..., Lk, dv)
    grad_p      = g @ vᵀ                              (..., Lq, Lk)
    grad_scores = softmax_backward(grad_p, scores)    p * (grad_p - sum(grad_p * p))
    grad_q      = grad_scores @ k / sqrt(d)
    grad_k      = grad_scores ᵀ @ q / sqrt(d)

Masked positions have p = 0, so softmax_backward gives them zero gradient: the
mask is a constant and nothing flows through the keys a query could not see.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from backprop._checks import (
    require_float,
    require_int,
    require_ndim,
    require_same_device,
    require_same_dtype,
    require_shape,
    require_tensor,
    shape_str,
)
from backprop.softmax import softmax

__all__ = [
    "attention",
    "attention_backward",
    "attention_backward_blockwise",
    "causal_mask",
]


def causal_mask(
    lq: int, lk: int | None = None, device: torch.device | str | None = None
) -> Tensor:
    r"""A boolean ``(lq, lk)`` mask, True where key $j \le$ query $i$: no looking ahead.

    Aligned at the top left like
    ``scaled_dot_product_attention(..., is_causal=True)``: query $i$ sees keys
    $0, \dots, i$.

    Parameters
    ----------
    lq : int
        Number of queries, positive.
    lk : int or None, default None
        Number of keys, positive; ``lq`` when None.
    device : torch.device, str or None, default None
        Where to create the mask.

    Returns
    -------
    torch.Tensor
        Boolean, shape ``(lq, lk)``.

    Raises
    ------
    ValueError
        If ``lq`` or ``lk`` is not a positive int.

    Examples
    --------
    >>> causal_mask(3)
    tensor([[ True, False, False],
            [ True,  True, False],
            [ True,  True,  True]])
    """
    lq = require_int("lq", lq, minimum=1)
    lk = lq if lk is None else require_int("lk", lk, minimum=1)
    return torch.ones(lq, lk, dtype=torch.bool, device=device).tril()


def _check_attention_inputs(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None
) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        require_float(name, t)
        require_ndim(name, t, min_ndim=2)
    require_same_dtype(q=q, k=k, v=v)
    shapes = f"q {shape_str(q)}, k {shape_str(k)}, v {shape_str(v)}"
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            "q and k must have the same last dimension d (a query is compared with "
            "each key "
            f"by a dot product), got q of shape {shape_str(q)} and k of shape "
            f"{shape_str(k)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same number of positions Lk (one value per key), "
            f"got k of shape {shape_str(k)} and v of shape {shape_str(v)}"
        )
    if not q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
        raise ValueError(
            "q, k and v must have equal leading dimensions (no broadcasting between "
            "them), "
            f"got {shapes}"
        )
    if k.shape[-2] == 0:
        raise ValueError(
            f"k and v must hold at least one position to attend to, got {shapes}"
        )
    if mask is not None:
        _check_mask(mask, (*q.shape[:-1], k.shape[-2]), q)


def _check_mask(mask: Tensor, scores_shape: tuple[int, ...], q: Tensor) -> None:
    require_tensor("mask", mask)
    if mask.dtype != torch.bool:
        raise ValueError(
            "mask must be a boolean tensor (True where attention is allowed), got "
            "dtype "
            f"{mask.dtype} and shape {shape_str(mask)}; e.g. use mask.bool() or mask "
            "!= 0"
        )
    require_same_device(q=q, mask=mask)
    # Broadcastable to the scores WITHOUT changing their shape: align from the right,
    # every mask dimension is 1 or equal to the scores' one.
    fits = mask.ndim <= len(scores_shape) and all(
        m in (1, s)
        for m, s in zip(reversed(mask.shape), reversed(scores_shape), strict=False)
    )
    if not fits:
        raise ValueError(
            f"mask of shape {shape_str(mask)} does not broadcast to the scores' shape "
            f"{shape_str(scores_shape)} (..., Lq, Lk)"
        )
    no_key = ~mask.expand(scores_shape).any(dim=-1)
    if no_key.any():
        position = tuple(int(i) for i in no_key.nonzero()[0])
        raise ValueError(
            f"mask of shape {shape_str(mask)} allows no key for the query at position "
            f"{position} "
            f"of the scores' leading dims {shape_str(scores_shape[:-1])}: a softmax "
            "over nothing "
            "is undefined"
        )


def _masked_scores(q: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
    """q @ kᵀ / sqrt(d), with -inf where the mask forbids attention."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores


def attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    r"""Scaled dot-product attention, $\operatorname{softmax}(Q K^\top / \sqrt{d})\, V$.

    The softmax runs over the keys; where ``mask`` is False a score is $-\infty$,
    so that key gets weight 0. Matches
    ``torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)``.

    Parameters
    ----------
    q : torch.Tensor
        Queries, shape ``(..., Lq, d)``.
    k : torch.Tensor
        Keys, shape ``(..., Lk, d)``.
    v : torch.Tensor
        Values, shape ``(..., Lk, dv)``. The leading dimensions ``...`` are equal
        across ``q``, ``k`` and ``v`` (not broadcast).
    mask : torch.Tensor or None, default None
        Boolean, broadcastable to ``(..., Lq, Lk)``, True where query $i$ may
        attend to key $j$; every query must be allowed at least one key.

    Returns
    -------
    torch.Tensor
        Shape ``(..., Lq, dv)``.

    Raises
    ------
    ValueError
        If the shapes do not fit (naming them), the mask is not boolean, does not
        broadcast, or leaves a query with no key.

    Examples
    --------
    With one key, every query returns that key's value.

    >>> q, k, v = torch.ones(2, 4), torch.ones(1, 4), torch.tensor([[5.0, 6.0]])
    >>> attention(q, k, v)
    tensor([[5., 6.],
            [5., 6.]])
    """
    _check_attention_inputs(q, k, v, mask)
    return _attention_probs(q, k, mask) @ v


def _attention_probs(q: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
    """P = softmax(q kᵀ / sqrt(d)) over the keys, masked: what ``probs=`` takes."""
    return softmax(_masked_scores(q, k, mask), dim=-1)


def attention_backward(
    grad_out: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    *,
    probs: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""The gradients of `attention` with respect to ``q``, ``k`` and ``v``.

    With $G$ = ``grad_out``, $S = Q K^\top / \sqrt{d}$ (masked) and
    $P = \operatorname{softmax}(S)$, reading the forward from the bottom up:

    $$
    \frac{\partial L}{\partial V} = P^\top G, \quad
    \frac{\partial L}{\partial P} = G V^\top, \quad
    \frac{\partial L}{\partial Q} = \frac{\partial L}{\partial S}
      \frac{K}{\sqrt d}, \quad
    \frac{\partial L}{\partial K} = \Big(\frac{\partial L}{\partial S}\Big)^{\!\top}
      \frac{Q}{\sqrt d},
    $$

    where $\partial L / \partial S$ is `softmax_backward` of
    $\partial L / \partial P$. The mask, a constant, gets no gradient, and
    masked positions pass none back.

    Parameters
    ----------
    grad_out : torch.Tensor
        $\partial L / \partial\,\mathrm{out}$, shape ``(..., Lq, dv)``.
    q, k, v, mask : torch.Tensor
        The forward's inputs (``mask`` may be None).
    probs : torch.Tensor or None, default None
        $P$ as the forward computed it, shape ``(..., Lq, Lk)``, when it was kept
        (`backprop.modules.MultiHeadAttention` with ``intermediates="keep"``).
        None computes $S$ and $P$ again from ``q``, ``k`` and the mask; either way
        the result is the same.

    Returns
    -------
    grad_q, grad_k, grad_v : torch.Tensor
        The shapes of ``q``, ``k`` and ``v``.

    Raises
    ------
    ValueError
        If ``grad_out`` does not have the output's shape and dtype, the inputs
        are invalid for `attention`, or ``probs`` is not ``(..., Lq, Lk)``.

    Examples
    --------
    >>> q, k, v = torch.ones(2, 4), torch.ones(1, 4), torch.tensor([[5.0, 6.0]])
    >>> grad_q, grad_k, grad_v = attention_backward(torch.ones(2, 2), q, k, v)
    >>> grad_v
    tensor([[2., 2.]])
    """
    _check_attention_inputs(q, k, v, mask)
    require_float("grad_out", grad_out)
    require_same_dtype(q=q, grad_out=grad_out)
    out_shape = (*q.shape[:-1], v.shape[-1])
    require_shape("grad_out", grad_out, out_shape, "the output's shape (..., Lq, dv)")

    scale = 1 / math.sqrt(q.shape[-1])
    if probs is None:
        p = _attention_probs(q, k, mask)  # S = q kᵀ/√d and its softmax, again
    else:
        scores_shape = (*q.shape[:-1], k.shape[-2])
        require_shape("probs", probs, scores_shape, "the scores' shape (..., Lq, Lk)")
        p = probs

    grad_v = p.transpose(-2, -1) @ grad_out
    grad_p = grad_out @ v.transpose(-2, -1)
    # softmax_backward, from P itself: p * (grad_p - sum(grad_p * p)) along the keys
    grad_scores = p * (grad_p - (grad_p * p).sum(dim=-1, keepdim=True))
    grad_q = grad_scores @ k * scale
    grad_k = grad_scores.transpose(-2, -1) @ q * scale
    return grad_q, grad_k, grad_v


def attention_backward_blockwise(
    grad_out: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    *,
    block_size: int = 64,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""`attention_backward`, a block of keys at a time, never holding a row of $dP$.

    The softmax backward needs, for every query $i$, the dot product
    $D_i = \sum_j dP_{ij} P_{ij}$. Because $O = P V$ and $dP = dO \, V^\top$, that
    sum over the keys is $D_i = \sum_c dO_{ic} O_{ic}$, a number per query computed
    from the output alone. With $D$ in hand, each block $b$ of keys gets its
    gradients independently:

    $$P_b = \exp\bigl(S_b - \operatorname{logsumexp}(S)\bigr), \qquad
    dV_b = P_b^\top dO, \qquad dP_b = dO \, V_b^\top,$$

    $$dS_b = P_b \odot (dP_b - D), \qquad
    dK_b = \frac{dS_b^\top Q}{\sqrt{d}}, \qquad
    dQ \mathrel{+}= \frac{dS_b K_b}{\sqrt{d}},$$

    with $P_b$ of shape (..., Lq, B), the weights of this block's keys. Three
    passes over the key blocks: the row-wise logsumexp of the scores, the output
    $O$, then the gradients. No tensor of shape (..., Lq, Lk) is ever made, which
    is how memory-efficient kernels (FlashAttention) train long sequences.

    Parameters
    ----------
    grad_out : Tensor
        $\partial L / \partial O$, shape (..., Lq, dv).
    q, k, v : Tensor
        Shapes (..., Lq, d), (..., Lk, d), (..., Lk, dv), as in `attention`.
    mask : Tensor or None, optional
        Boolean, broadcastable to (..., Lq, Lk), True where attention is allowed.
    block_size : int, optional
        Number of keys per block (the last block may be shorter).

    Returns
    -------
    grad_q : Tensor
        Shape (..., Lq, d), like ``q``.
    grad_k : Tensor
        Shape (..., Lk, d), like ``k``.
    grad_v : Tensor
        Shape (..., Lk, dv), like ``v``. All three equal `attention_backward`'s
        up to rounding.

    Raises
    ------
    ValueError
        As `attention_backward`, or if ``block_size`` is not a positive int.

    Examples
    --------
    >>> q, k, v = torch.randn(2, 5, 3), torch.randn(2, 7, 3), torch.randn(2, 7, 4)
    >>> g = torch.randn(2, 5, 4)
    >>> blocks = attention_backward_blockwise(g, q, k, v, block_size=3)
    >>> full = attention_backward(g, q, k, v)
    >>> all(torch.allclose(b, f, atol=1e-6) for b, f in zip(blocks, full, strict=True))
    True
    """
    _check_attention_inputs(q, k, v, mask)
    require_float("grad_out", grad_out)
    require_same_dtype(q=q, grad_out=grad_out)
    out_shape = (*q.shape[:-1], v.shape[-1])
    require_shape("grad_out", grad_out, out_shape, "the output's shape (..., Lq, dv)")
    block_size = require_int("block_size", block_size, minimum=1)

    scale = 1 / math.sqrt(q.shape[-1])
    lq, lk = q.shape[-2], k.shape[-2]
    full_mask = None if mask is None else mask.expand(*q.shape[:-1], lk)
    blocks = [slice(start, start + block_size) for start in range(0, lk, block_size)]

    def scores(block: slice) -> Tensor:
        """The scores of every query against the keys in ``block``: (..., Lq, B)."""
        block_mask = None if full_mask is None else full_mask[..., block]
        return _masked_scores(q, k[..., block, :], block_mask)

    # Pass 1: logsumexp over all keys, one block at a time (logaddexp keeps it stable).
    lse = q.new_full((*q.shape[:-1], 1), float("-inf"))
    for block in blocks:
        lse = torch.logaddexp(lse, torch.logsumexp(scores(block), dim=-1, keepdim=True))
    # Pass 2: the output O = P V, block by block, and D = rowsum(dO * O): (..., Lq, 1).
    out = q.new_zeros(*q.shape[:-2], lq, v.shape[-1])
    for block in blocks:
        out = out + torch.exp(scores(block) - lse) @ v[..., block, :]
    row_dot = (grad_out * out).sum(dim=-1, keepdim=True)
    # Pass 3: each block's gradients; only dQ collects contributions from every block.
    grad_q = torch.zeros_like(q)
    grad_k, grad_v = [], []
    for block in blocks:
        p = torch.exp(scores(block) - lse)  # masked keys: exp(-inf) = 0
        grad_p = grad_out @ v[..., block, :].transpose(-2, -1)
        grad_scores = p * (grad_p - row_dot)
        grad_v.append(p.transpose(-2, -1) @ grad_out)
        grad_k.append(grad_scores.transpose(-2, -1) @ q * scale)
        grad_q = grad_q + grad_scores @ k[..., block, :] * scale
    return grad_q, torch.cat(grad_k, dim=-2), torch.cat(grad_v, dim=-2)
