"""Checking a hand-written backward against two independent oracles.

A derivation can be wrong in ways that still produce tensors of the right shape:
a missing ``1/N``, a transposed weight gradient, a sum over the wrong axis, a
flipped sign. :func:`gradcheck` catches these by comparing the hand-written
gradients with

- **central finite differences**, computed in float64: nudge one input element
  by ``±eps`` and watch the output move, ``(f(x + eps) - f(x - eps)) / (2 eps)``;
- **torch.autograd**, PyTorch's own reverse-mode differentiation.

This module is an oracle, so it is the one place in the library that calls
``torch.autograd``; everything else does by hand what autograd does.

A non-scalar output ``y = forward(*inputs)`` is checked through the scalar
``sum(y * grad_out)`` for a random ``grad_out``: its gradient with respect to an
input is exactly what ``backward(grad_out, *inputs)`` must return.

Differences are measured per input over the whole gradient tensor ``a`` against
the oracle's ``b``::

    max |Δ|  = max_j |a[j] - b[j]|
    max rel  = max |Δ| / max(max_j |b[j]|, atol)

The relative difference is taken against the largest entry of ``b`` rather than
entry by entry, so gradient entries that are nearly zero (where ``|a - b| / |b|``
is rounding noise divided by almost nothing) cannot raise a false alarm; ``atol``
keeps a gradient that is zero everywhere from dividing by zero. The table shows
both numbers against both oracles. ``max rel`` against finite differences is the
one to read first: with ``eps = 1e-6`` in float64, about 1e-10 for a right
gradient, about 1e-6 for a float32 step somewhere, 1e-3 and above for a bug or an
input within ``eps`` of a kink. An input is *close* to an oracle when
``max |Δ| <= atol + rtol * max |b|``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from backprop._checks import require_float, require_tensor, shape_str

__all__ = [
    "Backward",
    "GradcheckResult",
    "GradcheckRow",
    "gradcheck",
    "numerical_grad",
]

Backward = Callable[..., object]
"""The type of a hand-written backward.

``backward(grad_out, *inputs)`` returns one gradient (or None) per input, or a bare
tensor when there is one input.
"""

# The comparison with autograd happens in the inputs' own dtype, where two correct
# ways of computing the same gradient differ by rounding: about 1e-7 relative in
# float32, far above the default rtol=1e-6 once a few sums are involved. Below
# float64 the tolerances are raised to at least torch.testing's defaults for that
# dtype (rtol, atol). Finite differences are always compared in float64.
_TOLERANCE_FLOOR: dict[torch.dtype, tuple[float, float]] = {
    torch.float32: (1.3e-6, 1e-5),
    torch.float16: (1e-3, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-5),
}


def numerical_grad(
    f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    r"""The gradient of a scalar-valued ``f`` at ``x`` by central differences.

    For each element $j$ of ``x``,

    $$
    \frac{\partial f}{\partial x_j} \approx
    \frac{f(x + \epsilon e_j) - f(x - \epsilon e_j)}{2 \epsilon} .
    $$

    The error of this formula is about $\epsilon^2$ (the truncated Taylor terms)
    plus the rounding error of ``f`` divided by $\epsilon$. In float32, with a
    relative precision of about $10^{-7}$, that rounding term swamps the result
    ($10^{-7} / 10^{-6}$: only a digit or so survives); in float64 ($10^{-16}$)
    it is about $10^{-10}$. So ``x`` is converted to a float64 copy, ``f`` must
    accept float64, and the result is float64.

    Parameters
    ----------
    f : callable
        ``f(x)`` returns a one-element floating tensor.
    x : torch.Tensor
        Floating-point point at which to differentiate.
    eps : float, default 1e-6
        The step $\epsilon$, positive.

    Returns
    -------
    torch.Tensor
        Shape of ``x``, float64.

    Raises
    ------
    ValueError
        If ``eps`` is not positive or ``f`` does not return a single number.

    Examples
    --------
    >>> grad = numerical_grad(lambda x: (x**2).sum(), torch.tensor([1.0, -2.0]))
    >>> grad.round(decimals=6)
    tensor([ 2., -4.], dtype=torch.float64)
    """
    require_float("x", x)
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    x64 = x.to(torch.float64).contiguous()
    grad = torch.empty_like(x64)
    for j in range(x64.numel()):
        x_plus, x_minus = x64.clone(), x64.clone()
        x_plus.view(-1)[j] += eps
        x_minus.view(-1)[j] -= eps
        grad.view(-1)[j] = (_scalar_of(f(x_plus)) - _scalar_of(f(x_minus))) / (2 * eps)
    return grad


def _scalar_of(value: object) -> float:
    """The single number ``f`` returned, as a Python float."""
    value = require_float("f(x)", value)
    if value.numel() != 1:
        raise ValueError(
            f"f(x) must return a scalar (one element), got shape {shape_str(value)}"
        )
    return float(value.reshape(()).to(torch.float64))


@dataclass(frozen=True)
class GradcheckRow:
    """The check of one input's gradient: a row of a `GradcheckResult`.

    ``exact`` means every element equals autograd's; ``close`` means within
    tolerance of both autograd and finite differences. The gradients themselves
    are kept for display.

    Attributes
    ----------
    name : str
        The input's name.
    shape : tuple of int
        The input's shape.
    exact : bool
        Every element equals autograd's.
    close : bool
        Within tolerance of autograd and of finite differences.
    max_abs_autograd, max_rel_autograd : float
        Largest absolute difference from autograd's gradient, and that relative to
        autograd's largest entry.
    max_abs_finite_diff, max_rel_finite_diff : float
        The same against finite differences.
    skipped : str or None
        Why the input was not checked (an integer input, or ``backward`` returned
        None for it); ``exact`` and ``close`` are then False and the numbers NaN.
    grad, autograd_grad : torch.Tensor or None
        The hand-written gradient and autograd's, in the input's dtype.
    finite_diff_grad : torch.Tensor or None
        The finite-difference gradient, float64.
    """

    name: str
    shape: tuple[int, ...]
    exact: bool
    close: bool
    max_abs_autograd: float
    max_rel_autograd: float
    max_abs_finite_diff: float
    max_rel_finite_diff: float
    skipped: str | None = None
    grad: torch.Tensor | None = field(default=None, repr=False, compare=False)
    autograd_grad: torch.Tensor | None = field(default=None, repr=False, compare=False)
    finite_diff_grad: torch.Tensor | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def match(self) -> str:
        """``"exact"``, ``"close"``, ``"MISMATCH"`` or ``"skipped (...)"``."""
        if self.skipped is not None:
            return f"skipped ({self.skipped})"
        if not self.close:
            return "MISMATCH"
        return "exact" if self.exact else "close"


_HEADER = (
    "input",
    "shape",
    "max |Δ| vs autograd",
    "max rel vs autograd",
    "max |Δ| vs finite diff",
    "max rel vs finite diff",
    "match",
)


@dataclass(frozen=True)
class GradcheckResult:
    """The result of `gradcheck`: one `GradcheckRow` per input.

    Truthy when every checked input is close. ``str(result)`` is an aligned
    plain-text table, and in a notebook or on a Quarto page it shows as a
    Markdown table. Its columns, one row per input: the input's name and shape,
    ``max |Δ|`` and ``max rel`` against autograd, the same two against finite
    differences (the row's ``max_abs_*`` and ``max_rel_*`` attributes), and the
    verdict, `GradcheckRow.match`.

    Attributes
    ----------
    rows : tuple of GradcheckRow
        One per input, in order.
    rtol, atol : float
        The tolerances asked for.
    grad_out : torch.Tensor
        The upstream gradient used.
    """

    rows: tuple[GradcheckRow, ...]
    rtol: float
    atol: float
    grad_out: torch.Tensor = field(repr=False, compare=False)

    def __bool__(self) -> bool:
        return all(row.close for row in self.rows if row.skipped is None)

    def _cells(self) -> list[tuple[str, ...]]:
        return [
            (
                row.name,
                shape_str(row.shape),
                _number(row.max_abs_autograd, row),
                _number(row.max_rel_autograd, row),
                _number(row.max_abs_finite_diff, row),
                _number(row.max_rel_finite_diff, row),
                row.match,
            )
            for row in self.rows
        ]

    def __str__(self) -> str:
        lines = [_HEADER, *self._cells()]
        widths = [max(len(line[c]) for line in lines) for c in range(len(_HEADER))]
        rule = tuple("-" * w for w in widths)
        return "\n".join(
            "  ".join(
                cell.ljust(w) for cell, w in zip(line, widths, strict=True)
            ).rstrip()
            for line in [lines[0], rule, *lines[1:]]
        )

    def _repr_markdown_(self) -> str:
        def markdown_row(cells: Sequence[str]) -> str:
            # A bare "|" would end the cell early.
            return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

        lines = [
            markdown_row(_HEADER),
            "|" + "|".join(["---"] * 2 + ["--:"] * 4 + ["---"]) + "|",
        ]
        lines += [markdown_row(cells) for cells in self._cells()]
        return "\n".join(lines) + "\n"

    def assert_ok(self) -> None:
        """Raise unless every checked input is close.

        Raises
        ------
        AssertionError
            Naming the inputs that do not match, with the table.
        """

        if not self:
            bad = ", ".join(
                row.name for row in self.rows if row.skipped is None and not row.close
            )
            raise AssertionError(
                f"hand-written gradient does not match for {bad} "
                f"(rtol={self.rtol:g}, atol={self.atol:g}):\n{self}"
            )


def _number(value: float, row: GradcheckRow) -> str:
    if row.skipped is not None:
        return "-"
    return "0" if value == 0 else f"{value:.1e}"


def gradcheck(
    forward: Callable[..., torch.Tensor],
    backward: Backward,
    inputs: Sequence[torch.Tensor | None] | torch.Tensor,
    *,
    grad_out: torch.Tensor | None = None,
    names: Sequence[str] | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    eps: float = 1e-6,
    seed: int = 0,
) -> GradcheckResult:
    r"""Check ``backward`` against finite differences and autograd at ``inputs``.

    A non-scalar output $y$ is checked through the scalar
    $\sum y \odot G$ for an upstream gradient $G$: its gradient with respect to
    an input is exactly what ``backward(G, *inputs)`` must return. The hand
    gradients are compared with autograd's in the inputs' own dtype (below
    float64 with at least ``torch.testing``'s default tolerances for the dtype),
    and, after running ``backward`` again on float64 copies, with central finite
    differences in float64. An input is close to an oracle $b$ when
    $\max |a - b| \le \mathrm{atol} + \mathrm{rtol} \cdot \max |b|$.

    Parameters
    ----------
    forward : callable
        ``forward(*inputs)`` returns a floating tensor $y$.
    backward : callable
        ``backward(grad_out, *inputs)`` returns one gradient per input, in order (a
        bare tensor when there is one input), None for an input without one.
    inputs : sequence of torch.Tensor or None, or torch.Tensor
        The forward's inputs. Integer inputs (class indices, say) and None are
        passed through and skipped.
    grad_out : torch.Tensor or None, default None
        The upstream gradient $G = \partial L / \partial y$; when None, 1 for a
        scalar $y$ and otherwise a standard normal tensor drawn with ``seed``.
    names : sequence of str or None, default None
        One name per input for the table; ``x0, x1, ...`` when None.
    rtol, atol : float, default 1e-6 and 1e-8
        Tolerances, non-negative.
    eps : float, default 1e-6
        Finite-difference step, positive.
    seed : int, default 0
        Seed of the random upstream gradient.

    Returns
    -------
    GradcheckResult
        Printable as a table, one row per input: the largest absolute and
        relative differences from autograd and from finite differences, and the
        verdict; ``result.assert_ok()`` raises on a mismatch.

    Raises
    ------
    ValueError
        If nothing can be checked, ``backward`` returns the wrong number of
        gradients or one of the wrong shape or dtype, or an argument is invalid.

    Examples
    --------
    >>> from backprop.functional import lin, lin_backward
    >>> x, w, b = torch.randn(4, 3), torch.randn(3, 2), torch.randn(2)
    >>> result = gradcheck(lin, lin_backward, (x, w, b), names=["x", "w", "b"])
    >>> bool(result), [row.name for row in result.rows]
    (True, ['x', 'w', 'b'])
    >>> result.assert_ok()
    """
    inputs = _as_input_list(inputs)
    names = _input_names(names, len(inputs))
    if not (rtol >= 0 and atol >= 0):
        raise ValueError(
            f"rtol and atol must be non-negative, got rtol={rtol}, atol={atol}"
        )
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")

    out = require_float("forward(*inputs)", forward(*inputs))
    grad_out = _upstream_gradient(grad_out, out, seed)
    hand = _call_backward(backward, grad_out, inputs, names)

    checked = [
        k
        for k, t in enumerate(inputs)
        if t is not None and t.is_floating_point() and hand[k] is not None
    ]
    if not checked:
        raise ValueError(
            f"nothing to check: no floating-point input among {', '.join(names)} has a "
            "gradient"
        )
    from_autograd = _autograd_gradients(forward, inputs, grad_out, checked)

    # The same backward on float64 copies, against finite differences in float64.
    inputs64 = [
        t.to(torch.float64) if t is not None and t.is_floating_point() else t
        for t in inputs
    ]
    grad_out64 = grad_out.to(torch.float64)
    hand64 = _call_backward(backward, grad_out64, inputs64, names)

    rows = []
    for k, (name, t) in enumerate(zip(names, inputs, strict=True)):
        if k not in checked:
            reason = (
                "no input"
                if t is None
                else "integer"
                if not t.is_floating_point()
                else "no gradient"
            )
            shape = () if t is None else tuple(t.shape)
            nan = float("nan")
            rows.append(
                GradcheckRow(
                    name, shape, False, False, nan, nan, nan, nan, skipped=reason
                )
            )
            continue
        # Checked inputs are floating tensors with a gradient (see `checked`).
        grad, grad64, x64 = hand[k], hand64[k], inputs64[k]
        assert t is not None and grad is not None and x64 is not None
        if grad64 is None:
            raise ValueError(
                f"backward returned None for {name} on float64 inputs "
                "but a gradient otherwise"
            )
        loss = _scalar_loss(forward, inputs64, grad_out64, k)
        numerical = numerical_grad(loss, x64, eps)
        rtol_ag, atol_ag = _tolerance_for(t.dtype, rtol, atol)
        abs_ag, rel_ag = _differences(grad, from_autograd[k], atol_ag)
        abs_fd, rel_fd = _differences(grad64, numerical, atol)
        close = _within(abs_ag, from_autograd[k], rtol_ag, atol_ag) and _within(
            abs_fd, numerical, rtol, atol
        )
        rows.append(
            GradcheckRow(
                name,
                tuple(t.shape),
                exact=torch.equal(grad, from_autograd[k]),
                close=close,
                max_abs_autograd=abs_ag,
                max_rel_autograd=rel_ag,
                max_abs_finite_diff=abs_fd,
                max_rel_finite_diff=rel_fd,
                grad=grad,
                autograd_grad=from_autograd[k],
                finite_diff_grad=numerical,
            )
        )
    return GradcheckResult(rows=tuple(rows), rtol=rtol, atol=atol, grad_out=grad_out)


def _as_input_list(
    inputs: Sequence[torch.Tensor | None] | torch.Tensor,
) -> list[torch.Tensor | None]:
    # A lone tensor is one input; iterating over it would silently split it into rows.
    if isinstance(inputs, torch.Tensor):
        return [inputs]
    if not isinstance(inputs, Sequence) or isinstance(inputs, str):
        raise ValueError(
            f"inputs must be a list or tuple of tensors, got {type(inputs).__name__}"
        )
    for k, t in enumerate(inputs):
        if t is not None:
            require_tensor(f"inputs[{k}]", t)
    return list(inputs)


def _input_names(names: Sequence[str] | None, count: int) -> list[str]:
    if names is None:
        return [f"x{k}" for k in range(count)]
    if isinstance(names, str) or len(names) != count:
        raise ValueError(
            f"names must give one name per input: {count} input(s), got names={names!r}"
        )
    return [str(name) for name in names]


_GRAD_OUT_SEED_MIX = 0x9E3779B97F4A7C15 >> 1


def _upstream_gradient(
    grad_out: torch.Tensor | None, out: torch.Tensor, seed: int
) -> torch.Tensor:
    if grad_out is None:
        if out.ndim == 0:
            return torch.ones_like(out)
        # Drawn in float64 on the CPU so the seed gives the same numbers for every dtype
        # and device.
        # Mixed with a constant: callers seed torch with small integers too, and an
        # upstream
        # gradient equal to an input (both `randn` after `manual_seed(0)`) can hide a
        # wrong backward.
        gen = torch.Generator().manual_seed(_GRAD_OUT_SEED_MIX ^ seed)
        return torch.randn(out.shape, generator=gen, dtype=torch.float64).to(
            dtype=out.dtype, device=out.device
        )
    require_float("grad_out", grad_out)
    if grad_out.shape != out.shape:
        raise ValueError(
            f"grad_out has shape {shape_str(grad_out)} but forward(*inputs) has shape "
            f"{shape_str(out)}; "
            "they must be equal"
        )
    if grad_out.dtype != out.dtype or grad_out.device != out.device:
        raise ValueError(
            f"grad_out is {grad_out.dtype} on {grad_out.device} but forward(*inputs) "
            "is "
            f"{out.dtype} on {out.device}; they must match"
        )
    return grad_out


def _call_backward(
    backward: Backward,
    grad_out: torch.Tensor,
    inputs: list[torch.Tensor | None],
    names: list[str],
) -> list[torch.Tensor | None]:
    """``backward(grad_out, *inputs)``: one checked gradient (or None) per input."""
    grads = backward(grad_out, *inputs)
    if grads is None or isinstance(grads, torch.Tensor):
        # A bare gradient (or None) stands for a 1-tuple: fine when there is one input.
        got = "a single " + ("None" if grads is None else "tensor")
        grads = (grads,)
    else:
        got = (
            f"{len(grads)} gradient(s)"
            if isinstance(grads, Sequence)
            else type(grads).__name__
        )
    if not isinstance(grads, Sequence) or len(grads) != len(inputs):
        raise ValueError(
            f"backward returned {got} for {len(inputs)} input(s) ({', '.join(names)}); "
            "it must return one gradient (or None) per input, in order"
        )
    for name, t, g in zip(names, inputs, grads, strict=True):
        if g is None or t is None or not t.is_floating_point():
            continue
        require_tensor(f"the gradient for {name}", g)
        if g.shape != t.shape:
            raise ValueError(
                f"the gradient for {name} has shape {shape_str(g)} but {name} has "
                "shape "
                f"{shape_str(t)}; a gradient has its input's shape"
            )
        if g.dtype != t.dtype:
            raise ValueError(
                f"the gradient for {name} (shape {shape_str(g)}) has dtype {g.dtype} "
                f"but {name} "
                f"has dtype {t.dtype}; a gradient has its input's dtype"
            )
    return list(grads)


def _autograd_gradients(
    forward: Callable[..., torch.Tensor],
    inputs: list[torch.Tensor | None],
    grad_out: torch.Tensor,
    checked: list[int],
) -> dict[int, torch.Tensor]:
    """Autograd's gradients of ``sum(forward(*inputs) * grad_out)``, checked inputs."""
    leaves = [None if t is None else t.detach().clone() for t in inputs]
    targets = []
    for k in checked:
        leaf = leaves[k]
        assert leaf is not None  # checked inputs are tensors
        targets.append(leaf.requires_grad_(True))
    with torch.enable_grad():
        out = forward(*leaves)
        if not out.requires_grad:
            raise ValueError(
                "autograd cannot follow forward: its output does not depend on any "
                "input "
                "through torch operations (does it detach, or go through numpy?)"
            )
        grads = torch.autograd.grad(out, targets, grad_out, allow_unused=True)
    # allow_unused gives None for an input the output does not depend on: its gradient
    # is zero.
    return {
        k: torch.zeros_like(leaf) if g is None else g
        for k, leaf, g in zip(checked, targets, grads, strict=True)
    }


def _scalar_loss(
    forward: Callable[..., torch.Tensor],
    inputs: list[torch.Tensor | None],
    grad_out: torch.Tensor,
    k: int,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> sum(forward(*inputs with inputs[k] = x) * grad_out)``."""

    def loss(x: torch.Tensor) -> torch.Tensor:
        args = list(inputs)
        args[k] = x
        return (forward(*args) * grad_out).sum()

    return loss


def _tolerance_for(dtype: torch.dtype, rtol: float, atol: float) -> tuple[float, float]:
    floor_rtol, floor_atol = _TOLERANCE_FLOOR.get(dtype, (0.0, 0.0))
    return max(rtol, floor_rtol), max(atol, floor_atol)


def _differences(a: torch.Tensor, b: torch.Tensor, atol: float) -> tuple[float, float]:
    """``max |a - b|`` and that divided by ``max(max |b|, atol)``."""
    if b.numel() == 0:
        return 0.0, 0.0
    max_abs = float((a - b).abs().max())
    return max_abs, max_abs / max(float(b.abs().max()), atol, 1e-300)


def _within(max_abs: float, reference: torch.Tensor, rtol: float, atol: float) -> bool:
    scale = float(reference.abs().max()) if reference.numel() else 0.0
    # Written so that a NaN difference is never within tolerance.
    return bool(max_abs <= atol + rtol * scale)
