r"""Optimisers that update parameters in place from their ``.g`` gradients.

`sgd_step` is one step of gradient descent, `AdamW` is torch's ``AdamW`` (with
parameter groups). Both read the gradient each parameter holds in ``.g``
(fast.ai's convention, which `backprop.modules` fills) and clear it after the
step::

    model.backward()  # fills every .g
    sgd_step(model.named_parameters(), lr=0.1)

Before changing anything, each step checks every gradient: it must exist and
have exactly its parameter's shape, dtype and device, as torch requires of
``.grad``. A gradient that merely broadcasts (shape ``(2,)`` for a ``(3, 2)``
parameter) would move every row by the same amount without an error. A
``ValueError`` names the parameter, by its dotted name when the optimiser was
given ``model.named_parameters()``, and no parameter is updated.

A parameter listed twice would be stepped twice per step; it is refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

import torch

from backprop._checks import set_grad, shape_str

__all__ = ["AdamW", "sgd_step"]

# What an optimiser is given: tensors, or named tensors (a dict such as
# `model.named_parameters()`, or (name, tensor) pairs).
Parameters: TypeAlias = (
    Mapping[str, torch.Tensor]
    | Iterable[torch.Tensor]
    | Iterable[tuple[str, torch.Tensor]]
)

# The hyperparameters a group of AdamW may set, and their defaults' names.
_ADAMW_OPTIONS = ("lr", "betas", "eps", "weight_decay")


def _named(parameters: object, where: str) -> list[tuple[str, torch.Tensor]]:
    """``parameters`` as (name, tensor) pairs; an unnamed tensor is ``where[i]``."""
    if isinstance(parameters, torch.Tensor):
        raise TypeError(
            f"{where} must be a list of tensors (e.g. [w]) or a dict of named "
            f"tensors, got one tensor of shape {shape_str(parameters)}: iterating "
            "over it would give its rows"
        )
    if isinstance(parameters, Mapping):
        items: list[object] = list(parameters.items())
    elif isinstance(parameters, Iterable):
        items = list(parameters)
    else:
        raise TypeError(
            f"{where} must be an iterable of tensors or a dict of named tensors, "
            f"got {type(parameters).__name__}"
        )
    named = []
    for i, item in enumerate(items):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            name, p = item
        else:
            name, p = f"{where}[{i}]", item
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(p).__name__}")
        if not p.is_floating_point():
            raise ValueError(
                f"{name} must be a floating-point tensor to be trained, got dtype "
                f"{p.dtype}"
            )
        named.append((name, p))
    return named


def _refuse_duplicates(named: Iterable[tuple[str, torch.Tensor]]) -> None:
    """A tensor listed twice would be updated twice per step."""
    first: dict[int, str] = {}
    for name, p in named:
        if id(p) in first:
            raise ValueError(
                f"the same tensor is listed twice, as {first[id(p)]} and as {name}: "
                "it would be updated twice per step; list each parameter once "
                "(Module.parameters() lists a shared tensor once)"
            )
        first[id(p)] = name


def _checked_grads(
    named: Iterable[tuple[str, torch.Tensor]], caller: str
) -> list[torch.Tensor]:
    """Every parameter's ``.g``, once all are known to match their parameters.

    Raises
    ------
    ValueError
        For the first parameter whose ``.g`` is missing, or is not a tensor of
        exactly its shape, dtype and device.
    """
    grads = []
    for name, p in named:
        g = getattr(p, "g", None)
        if g is None:
            raise ValueError(
                f"{name} (shape {shape_str(p)}) has no gradient .g: run the forward "
                f"pass and backward() before {caller}"
            )
        if not isinstance(g, torch.Tensor):
            raise ValueError(
                f"the gradient .g of {name} is a {type(g).__name__}, not a tensor"
            )
        if g.shape != p.shape or g.dtype != p.dtype or g.device != p.device:
            raise ValueError(
                f"the gradient .g of {name} has shape {shape_str(g)}, dtype "
                f"{g.dtype} and device {g.device}, but {name} has shape "
                f"{shape_str(p)}, dtype {p.dtype} and device {p.device}; a gradient "
                "must match its parameter exactly (one that broadcasts would move "
                "whole rows or columns by the same amount); nothing was updated"
            )
        grads.append(g)
    return grads


def _require_non_negative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


def sgd_step(parameters: Parameters, lr: float) -> None:
    r"""Gradient descent in place: $p \leftarrow p - \eta \, \partial L/\partial p$.

    For every parameter ``p -= lr * p.g``, then ``p.g`` is cleared (set to
    None): a forgotten ``backward()`` then fails loudly instead of taking the
    same step twice.

    Parameters
    ----------
    parameters : iterable of Tensor, or dict of str to Tensor
        The tensors to update, each holding its gradient in ``.g``; named
        (``model.named_parameters()``) for errors that name them.
    lr : float
        The learning rate $\eta$, non-negative.

    Raises
    ------
    ValueError
        If a parameter has no gradient ``.g``, or one whose shape, dtype or
        device differs from the parameter's (no parameter is changed then); if
        a tensor is listed twice; for a negative ``lr``.
    TypeError
        If ``parameters`` is a single tensor, or holds something else.

    Examples
    --------
    >>> w = torch.tensor([1.0, 2.0])
    >>> w.g = torch.tensor([10.0, -10.0])
    >>> sgd_step([w], lr=0.1)
    >>> w, w.g
    (tensor([0., 3.]), None)

    A gradient of another shape is refused, even one that broadcasts:

    >>> w.g = torch.tensor([1.0])
    >>> sgd_step({"w": w}, lr=0.1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the gradient .g of w has shape (1,), dtype torch.float32 and ...
    """
    lr = _require_non_negative("lr", lr)
    named = _named(parameters, "parameters")
    _refuse_duplicates(named)
    grads = _checked_grads(named, "sgd_step")
    for (_, p), g in zip(named, grads, strict=True):
        p -= lr * g
        set_grad(p, None)


class AdamW:
    r"""Adam with decoupled weight decay, as ``torch.optim.AdamW``, on ``.g`` gradients.

    For each parameter $p$ with gradient $g$ = ``p.g``, at step $t = 1, 2, \dots$:

    $$\begin{aligned}
    p &\leftarrow p - \eta \lambda p, \\
    m &\leftarrow \beta_1 m + (1 - \beta_1)\, g, \qquad
    v \leftarrow \beta_2 v + (1 - \beta_2)\, g^2, \\
    p &\leftarrow p - \eta \, \frac{m / (1 - \beta_1^t)}
    {\sqrt{v / (1 - \beta_2^t)} + \epsilon}.
    \end{aligned}$$

    $m$ and $v$ are running means of the gradient and of its square; dividing
    by $1 - \beta^t$ undoes their start at zero. Each parameter moves by about
    $\eta$ per step whatever the scale of its gradient. Like `sgd_step`,
    ``step()`` checks every ``.g`` first and then clears it.

    As in torch, the parameters may come in groups, each a dict with the key
    ``"params"`` and any of ``lr``, ``betas``, ``eps`` and ``weight_decay``
    (the others take the values given here): e.g. weight decay on the matrices
    and embedding tables only, as nanoGPT does.

    Parameters
    ----------
    parameters : iterable of Tensor, dict of str to Tensor, or list of dict
        The tensors to update in place: a list, named tensors
        (``model.named_parameters()``, whose names the errors use), or groups
        ``[{"params": ..., "weight_decay": 0.1}, ...]`` of either.
    lr : float, default 1e-3
        The learning rate $\eta$.
    betas : (float, float), default (0.9, 0.999)
        $\beta_1$ and $\beta_2$, in [0, 1).
    eps : float, default 1e-8
        $\epsilon$, added to the denominator.
    weight_decay : float, default 0.01
        $\lambda$; 0 gives plain Adam.

    Attributes
    ----------
    param_groups : list of dict
        One per group: ``"params"`` (the tensors), ``"names"`` (theirs) and the
        group's hyperparameters, which may be changed between steps.
    lr : float
        The learning rate of every group: setting it sets every group's (a
        schedule); reading it requires the groups to share one.

    Raises
    ------
    ValueError
        For a negative ``lr``, ``eps`` or ``weight_decay``, a beta outside
        [0, 1), a group without ``"params"`` or with an unknown key, no
        parameters, or a tensor listed twice (in one group or two); in
        ``step()``, if a gradient ``.g`` is missing or does not match its
        parameter's shape, dtype and device (nothing is updated then).

    Examples
    --------
    >>> w = torch.tensor([1.0, -1.0])
    >>> opt = AdamW([w], lr=0.1, weight_decay=0.0)
    >>> w.g = torch.tensor([3.0, -0.001])
    >>> opt.step()
    >>> w  # each moved by lr, against its gradient's sign
    tensor([ 0.9000, -0.9000])

    Weight decay on matrices only, by groups of named parameters:

    >>> gen = torch.Generator().manual_seed(0)
    >>> from backprop.modules import Lin
    >>> named = Lin(3, 2, generator=gen).named_parameters()
    >>> opt = AdamW(
    ...     [
    ...         {"params": {n: p for n, p in named.items() if p.ndim >= 2}},
    ...         {"params": {n: p for n, p in named.items() if p.ndim < 2},
    ...          "weight_decay": 0.0},
    ...     ],
    ...     weight_decay=0.1,
    ... )
    >>> [(group["names"], group["weight_decay"]) for group in opt.param_groups]
    [(['w'], 0.1), (['b'], 0.0)]
    """

    def __init__(
        self,
        parameters: Parameters | Iterable[Mapping[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        self.defaults = self._checked_options(defaults, "")
        if isinstance(parameters, Mapping | torch.Tensor):
            items: list[Any] = [parameters]
            groups: list[Mapping[str, Any]] = [{"params": parameters}]
        else:
            items = list(parameters)
            is_group = [isinstance(item, Mapping) for item in items]
            if any(is_group) and not all(is_group):
                raise ValueError(
                    "parameters must be tensors or groups (dicts with 'params'), "
                    "not a mix of both"
                )
            groups = items if items and all(is_group) else [{"params": items}]
        self.param_groups: list[dict[str, Any]] = []
        for i, group in enumerate(groups):
            where = f"param_groups[{i}]: " if len(groups) > 1 else ""
            if "params" not in group:
                raise ValueError(f"{where}a group must have the key 'params'")
            unknown = set(group) - {"params", *_ADAMW_OPTIONS}
            if unknown:
                raise ValueError(
                    f"{where}unknown key(s) {sorted(unknown)}; a group may set "
                    f"{', '.join(_ADAMW_OPTIONS)}"
                )
            options = {k: group.get(k, self.defaults[k]) for k in _ADAMW_OPTIONS}
            label = f"param_groups[{i}]['params']" if len(groups) > 1 else "parameters"
            named = _named(group["params"], label)
            self.param_groups.append(
                {
                    "params": [p for _, p in named],
                    "names": [name for name, _ in named],
                    **self._checked_options(options, where),
                }
            )
        named_all = list(self._named())
        if not named_all:
            raise ValueError("AdamW was given no parameters to update")
        _refuse_duplicates(named_all)
        self.t = 0  # steps taken
        # The running means m and v of each parameter, as torch keeps its state.
        self.state: dict[int, tuple[torch.Tensor, torch.Tensor]] = {
            id(p): (torch.zeros_like(p), torch.zeros_like(p)) for _, p in named_all
        }

    @staticmethod
    def _checked_options(options: Mapping[str, Any], where: str) -> dict[str, Any]:
        checked: dict[str, Any] = {
            name: _require_non_negative(where + name, options[name])
            for name in ("lr", "eps", "weight_decay")
        }
        betas = options["betas"]
        if not (
            isinstance(betas, tuple | list)
            and len(betas) == 2
            and all(
                isinstance(b, int | float) and not isinstance(b, bool) and 0 <= b < 1
                for b in betas
            )
        ):
            raise ValueError(
                f"{where}betas must be two numbers in [0, 1), got {betas!r}"
            )
        checked["betas"] = (float(betas[0]), float(betas[1]))
        return checked

    def _named(self) -> Iterable[tuple[str, torch.Tensor]]:
        for group in self.param_groups:
            yield from zip(group["names"], group["params"], strict=True)

    @property
    def lr(self) -> float:
        """The learning rate of every group (a schedule sets it between steps)."""
        rates = {group["lr"] for group in self.param_groups}
        if len(rates) > 1:
            raise ValueError(
                f"the groups have different learning rates {sorted(rates)}; read "
                "each group's param_groups[i]['lr']"
            )
        return float(rates.pop())

    @lr.setter
    def lr(self, value: float) -> None:
        value = _require_non_negative("lr", value)
        for group in self.param_groups:
            group["lr"] = value

    def step(self) -> None:
        """Update every parameter from its ``.g`` and clear ``.g``.

        Raises
        ------
        ValueError
            If a ``.g`` is missing or does not match its parameter exactly; no
            parameter is changed then.
        """
        grads = iter(_checked_grads(self._named(), "step()"))
        self.t += 1
        for group in self.param_groups:
            lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            correction1 = 1 - beta1**self.t
            correction2 = 1 - beta2**self.t
            for p in group["params"]:
                g = next(grads)
                m, v = self.state[id(p)]
                p.mul_(1 - lr * weight_decay)
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denominator = (v.sqrt() / math.sqrt(correction2)).add_(eps)
                p.addcdiv_(m, denominator, value=-lr / correction1)
                set_grad(p, None)

    def __repr__(self) -> str:
        groups = [
            f"{len(group['params'])} parameters, lr={group['lr']}, "
            f"betas={group['betas']}, eps={group['eps']}, "
            f"weight_decay={group['weight_decay']}"
            for group in self.param_groups
        ]
        if len(groups) == 1:
            return f"AdamW({groups[0]})"
        return "AdamW(" + "; ".join(f"[{g}]" for g in groups) + ")"
