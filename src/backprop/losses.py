"""Losses: mean squared error and cross-entropy, and their gradients.

A loss ends the forward pass with a single number, so its backward needs no
upstream gradient (it is ``dL/dL = 1``): ``mse_backward(pred, target)`` and
``cross_entropy_backward(logits, target)`` take the forward's inputs and return
the gradient of the mean loss with respect to the prediction.
"""

from __future__ import annotations

import torch

from backprop._checks import require_float, require_index, require_ndim, require_same_dtype, shape_str
from backprop.broadcasting import broadcast_shape
from backprop.softmax import log_softmax, softmax


def _check_pred_target(pred: torch.Tensor, target: torch.Tensor) -> None:
    require_float("pred", pred)
    require_float("target", target)
    require_same_dtype(pred=pred, target=target)
    if pred.shape != target.shape:
        message = (
            f"pred has shape {shape_str(pred)} but target has shape {shape_str(target)}; "
            "they must be exactly equal"
        )
        try:
            both = broadcast_shape(pred.shape, target.shape)
            message += (
                f": pred - target would silently broadcast to shape {shape_str(both)}, "
                "comparing every prediction with every target"
            )
        except ValueError:
            pass
        if pred.shape == target.shape + (1,):
            message += "; use pred.squeeze(-1) or target.unsqueeze(-1)"
        elif target.shape == pred.shape + (1,):
            message += "; use target.squeeze(-1) or pred.unsqueeze(-1)"
        raise ValueError(message)
    if pred.numel() == 0:
        raise ValueError(f"pred has shape {shape_str(pred)}: the mean of no elements is undefined")


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error: ``mean((pred - target)^2)`` over all elements; a scalar.

    ``pred`` and ``target`` must have exactly the same shape. The classic trap is
    a prediction of shape ``(n, 1)`` against a target of shape ``(n,)``:
    ``pred - target`` broadcasts to ``(n, n)`` and the loss is silently wrong,
    so a shape mismatch is an error here.
    """
    _check_pred_target(pred, target)
    return ((pred - target) ** 2).mean()


def mse_backward(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gradient of ``mse`` with respect to ``pred``: ``2 (pred - target) / N``, ``N = pred.numel()``."""
    _check_pred_target(pred, target)
    return 2 * (pred - target) / pred.numel()


def _check_logits_target(logits: torch.Tensor, target: torch.Tensor) -> None:
    require_float("logits", logits)
    require_index("target", target)
    require_ndim("logits", logits, 2)
    require_ndim("target", target, 1)
    if target.device != logits.device:
        raise ValueError(
            f"target is on {target.device} but logits is on {logits.device}; "
            "they must be on the same device"
        )
    n, c = logits.shape
    if n == 0:
        raise ValueError(
            f"logits has shape {shape_str(logits)}: a batch of 0 rows has no mean loss"
        )
    if target.shape != (n,):
        raise ValueError(
            f"target has shape {shape_str(target)} but logits has shape {shape_str(logits)}; "
            f"target must have shape ({n},): one class index per row of logits"
        )
    bad = (target < 0) | (target >= c)
    if bad.any():
        position = int(bad.nonzero()[0, 0])
        value = int(target[position])
        raise ValueError(
            f"target[{position}] = {value} is not a class index: logits has shape "
            f"{shape_str(logits)}, so targets must be in [0, {c})"
        )


def cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` ``(n, c)`` against class indices ``target`` ``(n,)``.

    ``loss = mean_i (logsumexp(logits_i) - logits_i[target_i]) = -mean_i log_softmax(logits_i)[target_i]``.
    Going through ``log_softmax`` (rather than ``softmax(...).log()``) keeps it
    stable for large logits.
    """
    _check_logits_target(logits, target)
    n = logits.shape[0]
    log_probs = log_softmax(logits, dim=1)
    # Row i picks out column target[i]: the log-probability of the right class.
    return -log_probs[torch.arange(n, device=logits.device), target.long()].mean()


def _one_hot(target: torch.Tensor, num_classes: int, like: torch.Tensor) -> torch.Tensor:
    """``(n, num_classes)`` with a 1 at ``[i, target[i]]``, in ``like``'s dtype and device."""
    onehot = torch.zeros(target.shape[0], num_classes, dtype=like.dtype, device=like.device)
    onehot[torch.arange(target.shape[0], device=like.device), target.long()] = 1
    return onehot


def cross_entropy_backward(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gradient of ``cross_entropy`` with respect to ``logits``: ``(softmax(logits) - onehot(target)) / n``.

    Per row, ``d/dz_j (logsumexp(z) - z_t) = softmax(z)_j - [j == t]``; the mean
    over the batch divides by ``n``. Shape ``(n, c)``, like ``logits``.
    """
    _check_logits_target(logits, target)
    n, c = logits.shape
    return (softmax(logits, dim=1) - _one_hot(target, c, logits)) / n
