"""A small reverse-mode autograd, built from the backwards this library derives by hand.

A `Tensor` wraps a ``torch.Tensor`` (``.data``) and, after ``backward()``,
holds the gradient of the loss with respect to it (``.grad``, same shape). Every
operation on Tensors computes its result with plain torch and records, on the
result, its inputs (``_parents``) and a function (``_backward``) that turns the
gradient of the result into the gradients of the inputs: the *local* derivative
applied to the *global* one flowing back from the loss, as in post 2's chain rule.

``loss.backward()`` lays the recorded operations out on a tape in topological
order (every tensor after the tensors it was computed from), then replays the tape
in reverse: each operation receives the sum of the gradients of every use of its
result and hands its inputs their share. A tensor used twice receives two
contributions, and they add up (the multivariable chain rule sums over paths).

The local derivatives are the ones derived in the posts: ``lin_backward`` for
``@``, ``unbroadcast`` for every broadcasting operation, ``relu_backward``,
``mse_backward`` and ``cross_entropy_backward``. Nothing here uses
``torch.autograd``: the wrapped tensors never require a gradient.

Example::

    w = Tensor(torch.randn(3, 2), requires_grad=True)
    b = Tensor(torch.zeros(2), requires_grad=True)
    loss = mse((x @ w + b).relu(), y)
    loss.backward()       # fills w.grad (3, 2) and b.grad (2,)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import torch

from backprop._checks import shape_str
from backprop.activations import relu, relu_backward
from backprop.broadcasting import broadcast_shape, unbroadcast
from backprop.linear import lin_backward
from backprop.losses import cross_entropy as _cross_entropy
from backprop.losses import cross_entropy_backward, mse_backward
from backprop.losses import mse as _mse

__all__ = ["Tensor", "cross_entropy", "mse"]

# Gradient of the result -> gradients of the inputs, in the order of _parents; None
# for an input that needs no gradient (backward() never reads it).
BackwardFn = Callable[[torch.Tensor], tuple[torch.Tensor | None, ...]]


class Tensor:
    """A ``torch.Tensor`` that records the operations applied to it, for ``backward()``.

    Parameters
    ----------
    data : torch.Tensor, float, int or list
        The values; stored as ``.data``, a plain torch tensor that never
        requires a gradient of its own.
    requires_grad : bool
        True for a leaf whose gradient ``backward()`` should fill (a parameter).
        Needs floating-point data.

    Attributes
    ----------
    data : torch.Tensor
        The values, any shape.
    grad : torch.Tensor or None
        dL/d(data), same shape and dtype as ``data``, after ``loss.backward()``;
        None before. Filled for leaves that require a gradient; like torch, it
        accumulates over calls of ``backward()`` (set it to None between steps).
        No two leaves share a ``.grad``'s memory, so updating one in place
        (``p.grad.zero_()``) leaves the others as they are.
    requires_grad : bool
        True for leaves that asked for it and for every result computed from one.

    Raises
    ------
    ValueError
        If ``requires_grad`` is True and ``data`` is not floating point.

    Examples
    --------
    >>> x = Tensor(torch.tensor([1.0, -2.0, 3.0]), requires_grad=True)
    >>> loss = (x * x + 2 * x).relu().sum()     # x used three times
    >>> loss.backward()
    >>> x.grad                                  # 2x + 2 where x*x + 2x > 0, else 0
    tensor([4., 0., 8.])
    """

    def __init__(
        self, data: torch.Tensor | float | int | list[Any], requires_grad: bool = False
    ) -> None:
        # detach(): the values only, so torch.autograd never records anything here.
        data = torch.as_tensor(data).detach()
        if requires_grad and not data.is_floating_point():
            raise ValueError(
                "only floating-point tensors can require a gradient, "
                f"got dtype {data.dtype}"
            )
        self.data = data
        self.grad: torch.Tensor | None = None
        self.requires_grad = bool(requires_grad)
        self._parents: tuple[Tensor, ...] = ()
        self._backward: BackwardFn | None = None
        self._op = ""

    @staticmethod
    def _result(
        data: torch.Tensor, parents: tuple[Tensor, ...], backward: BackwardFn, op: str
    ) -> Tensor:
        """The output of an operation; it remembers how it was made if a gradient may
        flow through it (some parent requires one), and is a constant otherwise."""
        out = Tensor(data)
        if any(p.requires_grad for p in parents):
            out.requires_grad = True
            out._parents, out._backward, out._op = parents, backward, op
        return out

    # -------------------------------------------------------------- a few properties

    @property
    def shape(self) -> torch.Size:
        return self.data.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.data.dtype

    @property
    def parents(self) -> tuple[Tensor, ...]:
        """The tensors this one was computed from; empty for a leaf or a constant."""
        return self._parents

    @property
    def op(self) -> str:
        """The operation that made this tensor ("+", "@", "relu"...); "" for a leaf."""
        return self._op

    def item(self) -> float:
        """The value of a one-element tensor as a Python number."""
        return self.data.item()

    def __repr__(self) -> str:
        made_by = f", op={self._op!r}" if self._op else ""
        flag = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.data.tolist()}{flag}{made_by})"

    # --------------------------------------------------- elementwise, with broadcasting

    def __add__(self, other: Operand) -> Tensor:
        other = _lift(other, self)
        _check_broadcast("+", self, other)

        def backward(g: torch.Tensor) -> tuple[torch.Tensor, ...]:
            # d(a + b)/da = 1: each input gets g, summed over what broadcasting copied.
            return unbroadcast(g, self.shape), unbroadcast(g, other.shape)

        out = self.data + other.data
        return Tensor._result(out, (self, other), backward, "+")

    def __sub__(self, other: Operand) -> Tensor:
        other = _lift(other, self)
        _check_broadcast("-", self, other)

        def backward(g: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return unbroadcast(g, self.shape), unbroadcast(-g, other.shape)

        out = self.data - other.data
        return Tensor._result(out, (self, other), backward, "-")

    def __mul__(self, other: Operand) -> Tensor:
        other = _lift(other, self)
        _check_broadcast("*", self, other)

        def backward(g: torch.Tensor) -> tuple[torch.Tensor, ...]:
            # d(a * b)/da = b and d(a * b)/db = a, elementwise.
            return (
                unbroadcast(g * other.data, self.shape),
                unbroadcast(g * self.data, other.shape),
            )

        out = self.data * other.data
        return Tensor._result(out, (self, other), backward, "*")

    # A number or torch.Tensor on the left: 2 - x calls x.__rsub__(2).
    def __radd__(self, other: Operand) -> Tensor:
        return _lift(other, self) + self

    def __rsub__(self, other: Operand) -> Tensor:
        return _lift(other, self) - self

    def __rmul__(self, other: Operand) -> Tensor:
        return _lift(other, self) * self

    def __neg__(self) -> Tensor:
        return self * -1

    # --------------------------------------------------------------- matrix product

    def __matmul__(self, other: Operand) -> Tensor:
        """``a @ b`` for ``a`` of shape (..., k) and a matrix ``b`` of shape (k, m)."""
        other = _lift(other, self)
        a, b = self.shape, other.shape
        if len(b) != 2 or len(a) < 1 or a[-1] != b[0]:
            raise ValueError(
                "a @ b needs a of shape (..., k) and a matrix b of shape (k, m), "
                f"got a of shape {shape_str(a)} and b of shape {shape_str(b)}"
            )

        def backward(g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
            # The linear layer's backward without a bias: g @ bᵀ and aᵀ @ g.
            grad_a, grad_b, _ = lin_backward(
                g, self.data, other.data, need_grad_x=self.requires_grad
            )
            return grad_a, grad_b

        out = self.data @ other.data
        return Tensor._result(out, (self, other), backward, "@")

    def __rmatmul__(self, other: Operand) -> Tensor:
        return _lift(other, self) @ self

    # ----------------------------------------------------------- functions of one input

    def relu(self) -> Tensor:
        """``max(x, 0)`` elementwise; gradient ``g`` where ``x > 0``, else 0."""

        def backward(g: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return (relu_backward(g, self.data),)

        return Tensor._result(relu(self.data), (self,), backward, "relu")

    def exp(self) -> Tensor:
        """``e^x`` elementwise; ``e^x`` is its own derivative: gradient ``g * e^x``."""
        out = torch.exp(self.data)

        def backward(g: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return (g * out,)

        return Tensor._result(out, (self,), backward, "exp")

    def log(self) -> Tensor:
        """Natural logarithm elementwise; gradient ``g / x``."""

        def backward(g: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return (g / self.data,)

        return Tensor._result(torch.log(self.data), (self,), backward, "log")

    def sum(self) -> Tensor:
        """Sum of every element, a scalar; every element gets the scalar's gradient."""

        def backward(g: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return (g * torch.ones_like(self.data),)

        return Tensor._result(self.data.sum(), (self,), backward, "sum")

    def mean(self) -> Tensor:
        """Mean of every element, a scalar; each element gets 1/numel of the grad."""

        def backward(g: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return (g * torch.ones_like(self.data) / self.data.numel(),)

        return Tensor._result(self.data.mean(), (self,), backward, "mean")

    # ------------------------------------------------------------------------- backward

    def tape(self) -> list[Tensor]:
        """The tape: this tensor and every tensor it was computed from that needs a
        gradient, in topological order (each after the tensors it was made from).

        A depth-first walk from this tensor, without recursion so that long chains
        do not hit Python's recursion limit: a tensor is appended once all of its
        parents are. ``backward()`` replays the tape in reverse.

        Returns
        -------
        list of Tensor
            Leaves and results; the last element is ``self``.

        Examples
        --------
        >>> x = Tensor(torch.ones(2), requires_grad=True)
        >>> [t.op or "leaf" for t in ((x * 2).relu().sum()).tape()]
        ['leaf', '*', 'relu', 'sum']
        """
        order: list[Tensor] = []
        visited: set[Tensor] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:
            node, parents_done = stack.pop()
            if parents_done:
                order.append(node)
            elif node not in visited:
                visited.add(node)
                stack.append((node, True))
                stack.extend((p, False) for p in node._parents if p.requires_grad)
        return order

    def backward(self) -> None:
        """Fill ``.grad`` on every leaf this scalar was computed from that requires it.

        Starts from dL/dL = 1 and replays the tape in reverse, so each operation
        runs once every use of its result has sent back its gradient.

        Raises
        ------
        ValueError
            If this tensor is not a scalar (one element), or no leaf it was
            computed from requires a gradient.
        """
        if self.data.numel() != 1:
            raise ValueError(
                f"backward() starts from a scalar (a loss), but this tensor has shape "
                f"{shape_str(self.shape)}; reduce it first, e.g. with .sum() or .mean()"
            )
        if not self.requires_grad:
            raise ValueError(
                "backward() found nothing to differentiate: no tensor this one was "
                "computed from has requires_grad=True"
            )
        grads = {self: torch.ones_like(self.data)}
        # How many tensors on the tape were handed each gradient's memory: a + b
        # hands the gradient it received to both a and b, unchanged.
        receivers = Counter([_storage(grads[self])])
        for node in reversed(self.tape()):
            g = grads.pop(node)  # complete: every use of node is later on the tape
            if node._backward is None:  # a leaf: keep its gradient
                if node.grad is not None:
                    node.grad = node.grad + g  # out of place: a new tensor
                elif receivers[_storage(g)] > 1:
                    # Shared with another tensor: a copy of its own, as torch makes,
                    # so that updating one .grad in place cannot change another.
                    node.grad = g.clone()
                else:
                    node.grad = g
                continue
            returned = _checked(node, node._backward(g))
            for parent, grad in zip(node._parents, returned, strict=True):
                if parent.requires_grad and grad is not None:
                    # Each gradient in its tensor's dtype, as torch casts them: a
                    # float32 weight times a float64 constant gets a float32 .grad.
                    grad = grad.to(parent.dtype)
                    # A tensor used several times: the gradients of its uses add up.
                    grads[parent] = grads[parent] + grad if parent in grads else grad
                    receivers[_storage(grads[parent])] += 1


# What may stand on either side of + - * @: numbers become constants.
Operand = Tensor | torch.Tensor | float | int | bool


def _checked(node: Tensor, returned: object) -> tuple[torch.Tensor | None, ...]:
    """What an operation's backward returned, if it is one gradient per input, each
    of that input's shape (or None where the input needs none); else a ValueError
    naming the operation, rather than a failure further on."""
    op, parents = node._op, node._parents
    count = len(parents)
    one = "(grad,)" if count == 1 else f"({', '.join(['...'] * count)})"
    if not isinstance(returned, tuple | list):
        what = "None" if returned is None else f"a bare {type(returned).__name__}"
        raise ValueError(
            f"the backward of {op!r} returned {what}, but it returns a tuple with one "
            f"gradient per input, {count} here: return {one}, even for one input"
        )
    if len(returned) != count:
        raise ValueError(
            f"the backward of {op!r} returned {len(returned)} gradients for its "
            f"{count} input{'s' if count > 1 else ''}: one per input, in order, "
            "None for an input that needs none"
        )
    for number, (parent, grad) in enumerate(
        zip(parents, returned, strict=True), start=1
    ):
        if grad is None:
            if parent.requires_grad:
                raise ValueError(
                    f"the backward of {op!r} returned None for input {number} (shape "
                    f"{shape_str(parent.shape)}), which needs a gradient"
                )
            continue
        if not isinstance(grad, torch.Tensor):
            raise ValueError(
                f"the backward of {op!r} returned a {type(grad).__name__} for input "
                f"{number}; a gradient is a torch.Tensor of the input's shape"
            )
        if parent.requires_grad and grad.shape != parent.shape:
            raise ValueError(
                f"the backward of {op!r} returned a gradient of shape "
                f"{shape_str(grad.shape)} for input {number}, of shape "
                f"{shape_str(parent.shape)}: a gradient has its input's shape (where "
                "the input was broadcast, sum the gradient back: unbroadcast)"
            )
    return tuple(returned)


def _storage(t: torch.Tensor) -> int:
    """The address of the memory behind ``t``, the same for ``t`` and its views."""
    return t.untyped_storage().data_ptr()


def _lift(value: Operand, like: Tensor) -> Tensor:
    """``value`` as a Tensor; a number becomes a constant (shape ()) of the dtype
    torch gives ``like.data`` combined with that number (its type promotion)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, torch.Tensor):
        return Tensor(value)
    if isinstance(value, bool | int | float):
        # int tensor * 0.5 is float32 and bool tensor * 3 is int64, but a float32
        # tensor * 0.5 stays float32: a number may raise the kind (bool < int <
        # float), never the precision. A constant of that dtype (a bool stays a bool,
        # which changes no dtype) gives like.data's operations the same result dtype.
        # (float16 and bfloat16 round the number to their precision first; torch
        # keeps it in float32 while it computes.)
        is_bool = isinstance(value, bool)
        dtype = torch.bool if is_bool else torch.result_type(like.data, value)
        return Tensor(torch.tensor(value, dtype=dtype, device=like.data.device))
    raise TypeError(
        f"expected a Tensor, a torch.Tensor or a number, got {type(value).__name__}"
    )


def _check_broadcast(op: str, a: Tensor, b: Tensor) -> None:
    """Raise a ValueError naming both shapes when ``a op b`` cannot broadcast."""
    try:
        broadcast_shape(a.shape, b.shape)
    except ValueError as error:
        raise ValueError(f"a {op} b: {error}") from None


def mse(pred: Tensor, target: Operand) -> Tensor:
    """Mean squared error ``mean((pred - target)^2)``, a scalar Tensor.

    Parameters
    ----------
    pred : Tensor
        Predictions, any shape.
    target : Tensor, torch.Tensor or number
        Same shape as ``pred`` (no broadcasting: ``(n, 1)`` against ``(n,)`` is
        an error, not an ``(n, n)`` loss).

    Returns
    -------
    Tensor
        Shape (). Its backward is ``mse_backward``: ``2 (pred - target) / N`` for
        pred, the negative of that for target.

    Raises
    ------
    ValueError
        If the shapes differ (the message names both).

    Examples
    --------
    >>> pred = Tensor(torch.tensor([1.0, 3.0]), requires_grad=True)
    >>> loss = mse(pred, torch.tensor([0.0, 0.0]))
    >>> loss.backward()
    >>> loss.item(), pred.grad
    (5.0, tensor([1., 3.]))
    """
    target = _lift(target, pred)
    value = _mse(pred.data, target.data)  # checks the shapes

    def backward(g: torch.Tensor) -> tuple[torch.Tensor, ...]:
        grad_pred = g * mse_backward(pred.data, target.data)
        return grad_pred, -grad_pred

    return Tensor._result(value, (pred, target), backward, "mse")


def cross_entropy(logits: Tensor, target: torch.Tensor | Tensor) -> Tensor:
    """Mean cross-entropy of ``logits`` against integer class indices, a scalar Tensor.

    Parameters
    ----------
    logits : Tensor
        Shape (n, c), floating point.
    target : torch.Tensor or Tensor
        Shape (n,), int64 or int32 class indices in [0, c). A constant: it gets
        no gradient.

    Returns
    -------
    Tensor
        Shape (). Its backward is ``cross_entropy_backward``:
        ``(softmax(logits) - onehot(target)) / n``.

    Raises
    ------
    ValueError
        If the shapes or the targets are invalid (see
        `backprop.losses.cross_entropy`).

    Examples
    --------
    >>> logits = Tensor(torch.zeros(2, 4), requires_grad=True)
    >>> loss = cross_entropy(logits, torch.tensor([0, 3]))
    >>> round(loss.item(), 4)      # log 4: a uniform guess over four classes
    1.3863
    >>> loss.backward()
    >>> logits.grad[0]
    tensor([-0.3750,  0.1250,  0.1250,  0.1250])
    """
    target = target.data if isinstance(target, Tensor) else target
    value = _cross_entropy(logits.data, target)  # checks the shapes and indices
    return Tensor._result(
        value,
        (logits,),
        lambda g: (g * cross_entropy_backward(logits.data, target),),
        "cross_entropy",
    )
