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
    """Look up the rows of ``table`` named by ``idx``.

    idx:   integer tensor of any shape, entries in [0, num_embeddings)
    table: (num_embeddings, dim)
    out:   idx.shape + (dim,),   out[..., :] = table[idx[...], :]

    Equal to ``one_hot(idx) @ table`` without building the one-hot matrix.
    """
    _check_embedding_inputs(idx, table)
    return table[idx]


def embedding_backward(grad_out: Tensor, idx: Tensor, table: Tensor) -> Tensor:
    """Gradient of the loss with respect to ``table`` (``idx`` has none: it is integers).

    grad_out:   idx.shape + (dim,)
    grad_table: (num_embeddings, dim),   grad_table[r] = sum of grad_out[p] over every
                                          position p with idx[p] == r

    This is ``one_hot(idx)ᵀ @ grad_out`` (the weight gradient of a matrix product),
    computed as a scatter-add: rows looked up several times accumulate every
    gradient they received; rows never looked up get zero.
    """
    _check_embedding_inputs(idx, table)
    require_float("grad_out", grad_out)
    require_same_dtype(table=table, grad_out=grad_out)
    dim = table.shape[1]
    require_shape("grad_out", grad_out, (*idx.shape, dim), "idx.shape + (dim,), the output's shape")

    grad_table = torch.zeros(table.shape, dtype=table.dtype, device=table.device)
    # Flatten the lookups into a list of (row, gradient vector) pairs, then add each
    # vector into its row. index_add_ accumulates repeated rows; an assignment would not.
    grad_table.index_add_(0, idx.reshape(-1), grad_out.reshape(-1, dim))
    return grad_table
