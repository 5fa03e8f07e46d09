"""Embedding: looking rows up in a table, and the scatter-add that is its backward.

An embedding is a matrix product in disguise. With ``one_hot(idx)`` of shape
``idx.shape + (num_embeddings,)``,

    embedding(idx, table) = one_hot(idx) @ table

so each output vector is the row ``table[idx[...]]``. The backward of ``x @ table``
with respect to ``table`` is ``xᵀ @ grad_out``; with ``x = one_hot(idx)`` that means:
add every upstream gradient vector into the row it was looked up from. When an
index appears several times its row receives the SUM of those gradients. Writing
``grad_table[idx] = grad_out`` instead (``=`` where ``+=`` is meant) silently keeps
only one of them — the classic bug that ``index_add_`` avoids.
"""

from __future__ import annotations

import torch
from torch import Tensor

from backprop._checks import (
    require_float,
    require_index,
    require_ndim,
    require_same_device,
    require_same_dtype,
    require_shape,
    shape_str,
)

__all__ = ["embedding", "embedding_backward"]


def _check_embedding_inputs(idx: Tensor, table: Tensor) -> None:
    require_index("idx", idx)
    require_float("table", table)
    require_ndim("table", table, 2)
    require_same_device(table=table, idx=idx)
    if idx.numel() == 0:
        return
    num_embeddings = table.shape[0]
    # Negative indices would silently count from the end (table[-1]); refuse them too.
    bad = (idx < 0) | (idx >= num_embeddings)
    if bad.any():
        position = tuple(int(i) for i in bad.nonzero()[0])
        value = int(idx[position])
        raise ValueError(
            f"idx contains {value} at position {position}, but table of shape "
            f"{shape_str(table)} has {num_embeddings} rows: indices must be in "
            f"[0, {num_embeddings - 1}]"
        )


def embedding(idx: Tensor, table: Tensor) -> Tensor:
    r"""Look up the rows of ``table`` named by ``idx``: ``out[p] = table[idx[p]]``.

    Equal to $\operatorname{onehot}(\mathrm{idx})\, T$ without building the
    one-hot matrix.

    Parameters
    ----------
    idx : torch.Tensor
        Integer indices (int64 or int32) of any shape, each in
        ``[0, num_embeddings)``.
    table : torch.Tensor
        The embedding table $T$, shape ``(num_embeddings, dim)``.

    Returns
    -------
    torch.Tensor
        Shape ``idx.shape + (dim,)``.

    Raises
    ------
    ValueError
        If an index is out of range (naming it and its position), ``idx`` is not
        integer, or ``table`` is not a 2-D floating-point tensor on ``idx``'s
        device.

    Examples
    --------
    >>> table = torch.arange(6.0).reshape(3, 2)
    >>> embedding(torch.tensor([2, 0, 2]), table)
    tensor([[4., 5.],
            [0., 1.],
            [4., 5.]])
    """
    _check_embedding_inputs(idx, table)
    return table[idx]


def embedding_backward(grad_out: Tensor, idx: Tensor, table: Tensor) -> Tensor:
    r"""The gradient of `embedding` with respect to ``table`` (``idx`` has none).

    Row $r$ receives the sum of the upstream gradients of every position that
    looked it up,

    $$
    \frac{\partial L}{\partial T_r} = \sum_{p \,:\, \mathrm{idx}_p = r} G_p ,
    $$

    which is $\operatorname{onehot}(\mathrm{idx})^\top G$, the weight gradient of a
    matrix product, computed as a scatter-add: rows looked up several times
    accumulate every gradient they received; rows never looked up get zero.

    Parameters
    ----------
    grad_out : torch.Tensor
        $\partial L / \partial\,\mathrm{out}$, shape ``idx.shape + (dim,)``.
    idx, table : torch.Tensor
        The forward's inputs.

    Returns
    -------
    torch.Tensor
        $\partial L / \partial T$, shape ``(num_embeddings, dim)``.

    Raises
    ------
    ValueError
        If ``grad_out`` does not have the output's shape or ``table``'s dtype, or
        the inputs are invalid for `embedding`.

    Examples
    --------
    >>> table = torch.zeros(3, 2)
    >>> embedding_backward(torch.ones(3, 2), torch.tensor([2, 0, 2]), table)
    tensor([[1., 1.],
            [0., 0.],
            [2., 2.]])
    """
    _check_embedding_inputs(idx, table)
    require_float("grad_out", grad_out)
    require_same_dtype(table=table, grad_out=grad_out)
    dim = table.shape[1]
    require_shape(
        "grad_out",
        grad_out,
        (*idx.shape, dim),
        "idx.shape + (dim,), the output's shape",
    )

    grad_table = torch.zeros(table.shape, dtype=table.dtype, device=table.device)
    # Flatten the lookups into a list of (row, gradient vector) pairs, then add each
    # vector into its row. index_add_ accumulates repeated rows; an assignment would
    # not.
    grad_table.index_add_(0, idx.reshape(-1), grad_out.reshape(-1, dim))
    return grad_table
