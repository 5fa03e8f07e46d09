"""Independent oracles: torch.autograd and central finite differences (float64).

The library never calls autograd; these helpers are the only place the tests do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from strategies import tolerance


def autograd_grads(
    forward: Callable[..., torch.Tensor],
    inputs: Sequence[torch.Tensor | None],
    grad_out: torch.Tensor | None = None,
) -> tuple[torch.Tensor | None, ...]:
    """Gradients of ``sum(forward(*inputs) * grad_out)`` with respect to each input.

    With ``grad_out`` None the output must be a scalar (a loss). ``None`` inputs pass
    through and get ``None`` gradients. Inputs are detached copies, so the caller's
    tensors are untouched.
    """
    leaves = [
        None if t is None else t.detach().clone().requires_grad_(t.is_floating_point())
        for t in inputs
    ]
    out = forward(*leaves)
    if grad_out is None:
        out.backward()
    else:
        out.backward(grad_out)
    return tuple(None if t is None or not t.requires_grad else t.grad for t in leaves)


def finite_difference_grad(
    f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Central differences of the scalar ``f`` at ``x``, in float64."""
    x = x.detach().to(torch.float64).clone()
    grad = torch.empty_like(x)
    flat, gflat = x.view(-1), grad.view(-1)
    for i in range(flat.numel()):
        orig = flat[i].item()
        flat[i] = orig + eps
        plus = float(f(x))
        flat[i] = orig - eps
        minus = float(f(x))
        flat[i] = orig
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def finite_difference_grads(
    forward: Callable[..., torch.Tensor],
    inputs: Sequence[torch.Tensor],
    grad_out: torch.Tensor,
    eps: float = 1e-6,
) -> list[torch.Tensor]:
    """Central differences of ``sum(forward(*inputs) * grad_out)``, one per input.

    What a backward given ``grad_out`` must return, found by nudging each input in
    turn with the others held fixed.
    """

    def nudged(position: int) -> Callable[[torch.Tensor], torch.Tensor]:
        def loss(value: torch.Tensor) -> torch.Tensor:
            args = list(inputs)
            args[position] = value
            return (forward(*args) * grad_out).sum()

        return loss

    return [finite_difference_grad(nudged(i), x, eps) for i, x in enumerate(inputs)]


def torch_lin(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None
) -> torch.Tensor:
    """The linear layer ``x @ w + b`` in plain torch, for autograd to differentiate.

    ``torch.nn.functional.linear`` takes the weight as ``(out, in)``, hence ``w.T``.
    """
    return torch.nn.functional.linear(x, w.T, b)


def assert_matches(got: torch.Tensor, expected: torch.Tensor) -> None:
    """Same shape, same dtype, and equal within the tolerance of that dtype."""
    assert got.shape == expected.shape and got.dtype == expected.dtype
    torch.testing.assert_close(got, expected, **tolerance(expected.dtype))
