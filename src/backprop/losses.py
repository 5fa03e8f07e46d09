"""Losses: mean squared error and cross-entropy, and their gradients.

A loss ends the forward pass with a single number, so its backward needs no
upstream gradient (it is ``dL/dL = 1``): ``mse_backward(pred, target)`` and
``cross_entropy_backward(logits, target)`` take the forward's inputs and return
the gradient of the mean loss with respect to the prediction.
"""

from __future__ import annotations

import torch

from backprop._checks import (
    require_float,
    require_index,
    require_ndim,
    require_same_dtype,
    shape_str,
)
from backprop.broadcasting import broadcast_shape
from backprop.softmax import log_softmax, softmax

__all__ = ["cross_entropy", "cross_entropy_backward", "mse", "mse_backward"]


def _check_pred_target(pred: torch.Tensor, target: torch.Tensor) -> None:
    require_float("pred", pred)
    require_float("target", target)
    require_same_dtype(pred=pred, target=target)
    if pred.shape != target.shape:
        message = (
            f"pred has shape {shape_str(pred)} but target has shape "
            f"{shape_str(target)}; "
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
        if pred.shape == (*target.shape, 1):
            message += "; use pred.squeeze(-1) or target.unsqueeze(-1)"
        elif target.shape == (*pred.shape, 1):
            message += "; use target.squeeze(-1) or pred.unsqueeze(-1)"
        raise ValueError(message)
    if pred.numel() == 0:
        raise ValueError(
            f"pred has shape {shape_str(pred)}: the mean of no elements is undefined"
        )


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""Mean squared error, $\frac{1}{N} \sum_j (\hat y_j - y_j)^2$ over all elements.

    ``pred`` and ``target`` must have exactly the same shape. The classic trap is
    a prediction of shape ``(n, 1)`` against a target of shape ``(n,)``:
    ``pred - target`` broadcasts to ``(n, n)`` and the loss is silently wrong,
    so a shape mismatch is an error here.

    Parameters
    ----------
    pred : torch.Tensor
        Predictions $\hat y$, any non-empty shape.
    target : torch.Tensor
        Targets $y$, ``pred``'s shape and dtype.

    Returns
    -------
    torch.Tensor
        The mean loss, a scalar (shape ``()``).

    Raises
    ------
    ValueError
        If the shapes differ (saying what they would broadcast to), the tensors
        are empty, not floating-point, or of different dtypes.

    Examples
    --------
    >>> mse(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]))
    tensor(5.)
    """
    _check_pred_target(pred, target)
    return ((pred - target) ** 2).mean()


def mse_backward(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""The gradient of `mse` with respect to ``pred``: $\frac{2}{N} (\hat y - y)$.

    A loss ends the chain, so there is no upstream gradient
    ($\partial L / \partial L = 1$).

    Parameters
    ----------
    pred, target : torch.Tensor
        The forward's inputs, of one shape.

    Returns
    -------
    torch.Tensor
        $\partial L / \partial \hat y$, ``pred``'s shape.

    Raises
    ------
    ValueError
        As `mse`.

    Examples
    --------
    >>> mse_backward(torch.tensor([1.0, 3.0]), torch.tensor([0.0, 0.0]))
    tensor([1., 3.])
    """
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
            f"target has shape {shape_str(target)} but logits has shape "
            f"{shape_str(logits)}; "
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
    r"""Mean cross-entropy of ``logits`` against class indices ``target``.

    $$
    L = \frac{1}{n} \sum_i \Big(\operatorname{logsumexp}(z_i) - z_{i, t_i}\Big)
      = -\frac{1}{n} \sum_i \log \operatorname{softmax}(z_i)_{t_i}
    $$

    Going through `log_softmax` (rather than ``softmax(...).log()``) keeps it
    stable for large logits.

    Parameters
    ----------
    logits : torch.Tensor
        Unnormalised scores $z$, shape ``(n, c)``, floating-point.
    target : torch.Tensor
        Class indices $t$, shape ``(n,)``, int64 or int32, in ``[0, c)``.

    Returns
    -------
    torch.Tensor
        The mean loss, a scalar.

    Raises
    ------
    ValueError
        If the shapes do not fit, a target is not a class index (naming it), the
        batch is empty, or the tensors are on different devices.

    Examples
    --------
    >>> cross_entropy(torch.zeros(2, 4), torch.tensor([0, 3]))  # log 4
    tensor(1.3863)
    """
    _check_logits_target(logits, target)
    n = logits.shape[0]
    log_probs = log_softmax(logits, dim=1)
    # Row i picks out column target[i]: the log-probability of the right class.
    return -log_probs[torch.arange(n, device=logits.device), target.long()].mean()


def _one_hot(
    target: torch.Tensor, num_classes: int, like: torch.Tensor
) -> torch.Tensor:
    """``(n, num_classes)`` with a 1 at ``[i, target[i]]``; ``like``'s dtype, device."""
    onehot = torch.zeros(
        target.shape[0], num_classes, dtype=like.dtype, device=like.device
    )
    onehot[torch.arange(target.shape[0], device=like.device), target.long()] = 1
    return onehot


def cross_entropy_backward(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    r"""The gradient of `cross_entropy` with respect to ``logits``.

    Per row, $\partial / \partial z_j \big(\operatorname{logsumexp}(z) - z_t\big)
    = \operatorname{softmax}(z)_j - [j = t]$; the mean over the batch divides by
    $n$:

    $$
    \frac{\partial L}{\partial z}
      = \frac{\operatorname{softmax}(z) - \operatorname{onehot}(t)}{n}.
    $$

    Parameters
    ----------
    logits, target : torch.Tensor
        The forward's inputs, ``(n, c)`` and ``(n,)``.

    Returns
    -------
    torch.Tensor
        $\partial L / \partial z$, shape ``(n, c)``; each row sums to 0.

    Raises
    ------
    ValueError
        As `cross_entropy`.

    Examples
    --------
    >>> cross_entropy_backward(torch.zeros(1, 4), torch.tensor([3]))
    tensor([[ 0.2500,  0.2500,  0.2500, -0.7500]])
    """
    _check_logits_target(logits, target)
    n, c = logits.shape
    return (softmax(logits, dim=1) - _one_hot(target, c, logits)) / n
