"""The typical mistakes of each layer's backward, for `check_backward` and
`exercise`: one catalogue per name of `backprop.exercises.LAYERS`."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import grad as conv_grad

from backprop.exercises.cases import attention_forward, autograd, normalise
from backprop.exercises.catalogues.parts import Catalogue, Mistake

__all__ = ["LAYER_CATALOGUES", "embedding_assigned", "one_write_per_row", "onehot"]

# --- linear layer: the bias is where the batch shows --------------------------------

_BIAS = "see 'The gradient of the bias' in post 3 and 'The backward: where the forward "
_BIAS += "copies, the backward sums' in post 4"


def _lin_mistakes(out_in: bool) -> tuple[Mistake, ...]:
    def right(grad_out: Tensor, x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
        if out_in:
            return grad_out @ w, grad_out.T @ x
        return grad_out @ w.T, x.T @ grad_out

    return (
        Mistake(
            "it is not summed over the batch",
            "b is added to every example of the batch (broadcast), so its gradient "
            f"is the sum over the batch axis, grad_out.sum(0); {_BIAS}",
            lambda g, x, w, b: (*right(g, x, w), g),
        ),
        Mistake(
            "it sums grad_out over the features (axis 1) instead of over the batch "
            "(axis 0)",
            f"b is added to every row, so its gradient is grad_out.sum(0); {_BIAS}",
            lambda g, x, w, b: (*right(g, x, w), g.sum(1)),
        ),
        Mistake(
            "it sums grad_out over everything, to one number",
            "b has one entry per output, and each gets the sum of its own column "
            f"of grad_out, grad_out.sum(0); {_BIAS}",
            lambda g, x, w, b: (*right(g, x, w), g.sum()),
        ),
    )


# --- relu -------------------------------------------------------------------------

_RELU_MISTAKES = (
    Mistake(
        "it is wrong only where x is exactly 0, relu's kink",
        "torch.relu's gradient is 0 there, so pass grad_out where x > 0 (not x >= 0); "
        "see '5. clamp_min(0) against ReLU at exactly 0' in post 13",
        lambda g, x: g * (x >= 0),
    ),
    Mistake(
        "it passes grad_out everywhere",
        "relu's slope is 1 where x > 0 and 0 where x < 0: grad_out * (x > 0)",
        lambda g, x: g,
    ),
    Mistake(
        "it multiplies by relu(x) instead of relu's slope",
        "the local derivative of relu is 1 where x > 0 and 0 elsewhere, not relu(x)",
        lambda g, x: g * x.clamp_min(0),
    ),
)


# --- gelu ---------------------------------------------------------------------------

_GELU = "see 'The GELU' in post 15"
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_GELU_A = 0.044715


def _gelu_terms(
    x: Tensor, approximate: str, how: str = "right"
) -> tuple[Tensor, Tensor]:
    """The product rule's two terms of gelu's slope, Φ(x) and x φ(x), in one form,
    the right way or with the mistake ``how``."""
    if approximate == "none":
        cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
        density = torch.exp(-0.5 * x**2)
        if how != "no 1/sqrt(2 pi)":
            density = density / math.sqrt(2 * math.pi)
        return cdf, x * density
    c = 1.0 if how == "no sqrt(2/pi)" else _SQRT_2_OVER_PI
    u = _SQRT_2_OVER_PI * (x + _GELU_A * x**3)
    if how == "tanh from exp":
        t = (torch.exp(2 * u) - 1) / (torch.exp(2 * u) + 1)
    else:
        t = torch.tanh(u)
    tanh_slope = 1 - t if how == "1 - tanh" else 1 - t**2
    return 0.5 * (1 + t), 0.5 * x * tanh_slope * c * (1 + 3 * _GELU_A * x**2)


def _gelu_with(how: str) -> Callable[[Tensor, Tensor, str], Tensor]:
    def answer(g: Tensor, x: Tensor, approximate: str = "tanh") -> Tensor:
        if how == "tanh form always":
            approximate = "tanh"
        elif how == "exact form always":
            approximate = "none"
        cdf, x_density = _gelu_terms(x, approximate, how)
        if how == "cdf only":
            return g * cdf
        if how == "x density only":
            return g * x_density
        return g * (cdf + x_density)

    return answer


_GELU_MISTAKES = (
    Mistake(
        "it is Φ(x) alone: the product rule's x φ(x) term is missing",
        "gelu(x) = x Φ(x) is a product, and x appears in both factors: the slope is "
        "Φ(x) + x φ(x) (for the tanh form, ½(1 + tanh u) + ½ x tanh'(u) du/dx); "
        + _GELU,
        _gelu_with("cdf only"),
    ),
    Mistake(
        "it is x φ(x) alone: the product rule's Φ(x) term is missing",
        "the derivative of the factor x, times Φ(x), is the slope's first term: "
        f"Φ(x) + x φ(x) (for the tanh form, ½(1 + tanh u) first); {_GELU}",
        _gelu_with("x density only"),
    ),
    Mistake(
        "the exact form's density φ(x) is missing its 1/√(2π)",
        "the normal density is φ(x) = exp(-x²/2) / √(2π), the derivative of "
        f"Φ(x) = ½(1 + erf(x/√2)); {_GELU}",
        _gelu_with("no 1/sqrt(2 pi)"),
    ),
    Mistake(
        "the tanh form's du/dx is missing its √(2/π)",
        "u = √(2/π) (x + 0.044715 x³), so du/dx = √(2/π) (1 + 3 · 0.044715 x²); "
        f"{_GELU}",
        _gelu_with("no sqrt(2/pi)"),
    ),
    Mistake(
        "tanh' is written as 1 - tanh u instead of 1 - tanh² u",
        "the derivative of tanh is 1 - tanh², the square of tanh taken from 1; "
        + _GELU,
        _gelu_with("1 - tanh"),
    ),
    Mistake(
        "it uses the tanh form's slope for approximate='none' too",
        "approximate='none' is the exact form, x Φ(x) with Φ from erf, whose slope is "
        f"Φ(x) + x φ(x): the tanh form is only close to it; {_GELU}",
        _gelu_with("tanh form always"),
    ),
    Mistake(
        "it uses the exact form's slope for approximate='tanh' too",
        "approximate='tanh' differentiates the tanh approximation itself, "
        "½(1 + tanh u) + ½ x (1 - tanh² u) du/dx, which is only close to Φ + x φ; "
        + _GELU,
        _gelu_with("exact form always"),
    ),
    Mistake(
        "tanh is written with exp(2u), which overflows for large x",
        "for x = 30, u is near 990 and exp(2u) is inf even in float64, so "
        f"(exp(2u) - 1) / (exp(2u) + 1) is nan: use torch.tanh; {_GELU}",
        _gelu_with("tanh from exp"),
    ),
)


# --- mse ----------------------------------------------------------------------------

_MSE_MISTAKES = (
    Mistake(
        "it divides by the rows (N) instead of by the number of values averaged",
        "the mean runs over every value of pred, pred.numel() of them; see bug 2 "
        "in post 13",
        lambda p, t: 2 * (p - t) / p.shape[0],
    ),
    Mistake(
        "it is the gradient of the mean absolute error",
        "the derivative of a square e² is 2e, not the sign of e",
        lambda p, t: torch.sign(p - t) / p.numel(),
    ),
)


# --- logsumexp, softmax, log-softmax, cross-entropy -----------------------------------

_OVERFLOW_HINT = (
    "exp(800) overflows even float64, giving nan or inf: subtract each row's maximum "
    "before exp"
)


def _unstable_softmax(x: Tensor, dim: int = -1) -> Tensor:
    return x.exp() / x.exp().sum(dim, keepdim=True)


_LOGSUMEXP_MISTAKES = (
    Mistake(
        "it takes exp of the raw x, which overflows for large x",
        _OVERFLOW_HINT + " (the log-sum-exp trick, in post 2)",
        lambda g, x: g[:, None] * _unstable_softmax(x),
    ),
    Mistake(
        "the derivative of the log is missing",
        "d ln(s)/ds = 1/s: divide exp(x) by the row's sum, which makes it a softmax "
        "(the gradient of log-sum-exp, in post 2)",
        lambda g, x: g[:, None] * (x - x.amax(-1, keepdim=True)).exp(),
    ),
    Mistake(
        "the softmax runs over the batch (dim 0) instead of along the row (dim -1)",
        "log-sum-exp reduces each row, so its gradient is the softmax of each row "
        "(the gradient of log-sum-exp, in post 2)",
        lambda g, x: g[:, None] * torch.softmax(x, dim=0),
    ),
)


def _softmax_backward(g: Tensor, s: Tensor, dim: int = -1) -> Tensor:
    return s * (g - (g * s).sum(dim, keepdim=True))


_SOFTMAX_MISTAKES = (
    Mistake(
        "it uses only the diagonal of softmax's Jacobian, s(1 - s)",
        "every output depends on every input of its row, so subtract "
        "s * sum(grad_out * s) over the row; see 'Softmax, one row at a time' in "
        "post 7",
        lambda g, x: g * torch.softmax(x, -1) * (1 - torch.softmax(x, -1)),
    ),
    Mistake(
        "the sum runs over the batch (dim 0) instead of along the row (dim -1)",
        "dim -1 is the dimension softmax normalises; see 'Softmax, one row at a time' "
        "in post 7",
        lambda g, x: _softmax_backward(g, torch.softmax(x, -1), dim=0),
    ),
    Mistake(
        "it takes exp of the raw x, which overflows for large x",
        _OVERFLOW_HINT + "; see 'Never compute exp of raw logits' in post 7",
        lambda g, x: _softmax_backward(g, _unstable_softmax(x)),
    ),
)

_LOG_SOFTMAX_MISTAKES = (
    Mistake(
        "it uses only the diagonal of log-softmax's Jacobian, 1 - s",
        "the LSE term is used by every output of the row: subtract s * sum(grad_out) "
        "over the row; see 'logsumexp: its gradient is softmax' in post 7",
        lambda g, x: g * (1 - torch.softmax(x, -1)),
    ),
    Mistake(
        "the sum runs over the batch (dim 0) instead of along the row (dim -1)",
        "dim -1 is the dimension log-softmax normalises; see 'logsumexp: its "
        "gradient is softmax' in post 7",
        lambda g, x: g - torch.softmax(x, -1) * g.sum(0, keepdim=True),
    ),
    Mistake(
        "it takes exp of the raw x, which overflows for large x",
        _OVERFLOW_HINT + "; see 'Never compute exp of raw logits' in post 7",
        lambda g, x: g - _unstable_softmax(x) * g.sum(-1, keepdim=True),
    ),
)


def onehot(target: Tensor, like: Tensor) -> Tensor:
    return F.one_hot(target, like.shape[-1]).to(like.dtype)


_CROSS_ENTROPY_MISTAKES = (
    Mistake(
        "the one-hot term is missing",
        "the target's logit also gets -1/N directly from -log p[target]: "
        "(softmax - onehot) / N; see 'Cross-entropy: most of the Jacobian cancels' "
        "in post 7",
        lambda z, t: torch.softmax(z, -1) / z.shape[0],
    ),
    Mistake(
        "it takes exp of the raw logits, which overflows for large logits",
        _OVERFLOW_HINT + "; see 'Never compute exp of raw logits' in post 7",
        lambda z, t: (_unstable_softmax(z) - onehot(t, z)) / z.shape[0],
    ),
)


# --- embedding ----------------------------------------------------------------------


def _lookups(grad_out: Tensor, idx: Tensor, table: Tensor) -> tuple[Tensor, Tensor]:
    return idx.reshape(-1), grad_out.reshape(-1, table.shape[1])


def embedding_assigned(grad_out: Tensor, idx: Tensor, table: Tensor) -> Tensor:
    flat, rows = _lookups(grad_out, idx, table)
    grad_table = torch.zeros_like(table)
    grad_table[flat] += rows  # a repeated row keeps one of its writes
    return grad_table


def one_write_per_row(
    got: Tensor, grad_out: Tensor, idx: Tensor, table: Tensor
) -> bool:
    """Every row is right, except repeated rows, which hold one of their lookups."""
    flat, rows = _lookups(grad_out, idx, table)
    got = got.to(table.dtype)
    tolerance = 1e-6 if table.dtype == torch.float64 else 1e-3
    scale = max(rows.abs().max().item(), 1e-12) if rows.numel() else 1.0
    repeated = False
    for row in range(table.shape[0]):
        mine = rows[flat == row]
        if len(mine) == 0:
            candidates = torch.zeros_like(table[row])[None]
        elif len(mine) == 1:
            candidates = mine
        else:
            repeated = True
            candidates = mine
        differences = (candidates - got[row]).abs().amax(-1)
        if not bool((differences <= tolerance * scale).any()):
            return False
    return repeated


def _embedding_unused_not_zero(grad_out: Tensor, idx: Tensor, table: Tensor) -> Tensor:
    flat, rows = _lookups(grad_out, idx, table)
    grad_table = torch.full_like(table, 0.5)  # torch.empty: whatever was in memory
    grad_table[flat] = 0
    return grad_table.index_add_(0, flat, rows)


def _wrong_only_on_unused(
    got: Tensor, grad_out: Tensor, idx: Tensor, table: Tensor
) -> bool:
    flat, rows = _lookups(grad_out, idx, table)
    right = torch.zeros_like(table).index_add_(0, flat, rows)
    tolerance = 1e-6 if table.dtype == torch.float64 else 1e-3
    scale = max(right.abs().max().item(), 1e-12)
    wrong = (got.to(table.dtype) - right).abs().amax(-1) > tolerance * scale
    used = torch.zeros(table.shape[0], dtype=torch.bool)
    used[flat] = True
    return bool(wrong.any()) and not bool((wrong & used).any())


_EMBEDDING_MISTAKES = (
    Mistake(
        "it is wrong only on rows looked up more than once",
        "such a row gets the sum of the gradients of all its lookups; accumulate "
        "(+=, index_add_) instead of assigning (=): with a tensor of indices, "
        "grad[idx] += g assigns too, one write per row; see '`grad[idx] += g` does "
        "not accumulate' in post 10 and bug 9 in post 13",
        embedding_assigned,
        matches=one_write_per_row,
    ),
    Mistake(
        "it is the right answer plus the table itself",
        "start the gradient from zeros (torch.zeros_like(table)), not from a copy of "
        "the table; see 'The backward is a scatter-add' in post 10",
        lambda g, i, t: t + torch.zeros_like(t).index_add_(*_index_rows(g, i, t)),
    ),
    Mistake(
        "it is wrong only on rows never looked up",
        "their gradient is 0, so start from torch.zeros, not torch.empty; see 'The "
        "backward is a scatter-add' in post 10",
        _embedding_unused_not_zero,
        matches=_wrong_only_on_unused,
    ),
)


def _index_rows(
    grad_out: Tensor, idx: Tensor, table: Tensor
) -> tuple[int, Tensor, Tensor]:
    flat, rows = _lookups(grad_out, idx, table)
    return 0, flat, rows


# --- batch norm and layer norm ----------------------------------------------------

_NORM_PATHS = "see 'Three ways for x_i to reach the loss' in post 9"


def _norm_mistakes(kind: str) -> tuple[Mistake, ...]:
    dim = 0 if kind == "batchnorm" else -1

    def grad_x_of(
        how: str, axis: int = dim, no_eps: bool = False, x_hat_too: bool = False
    ) -> Callable[..., object]:
        """The mistake in grad_x only, or (x_hat_too) in grad_gamma's x_hat too."""

        def answer(
            g: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5
        ) -> tuple[Tensor, Tensor, Tensor]:
            e = 0.0 if no_eps else eps
            wrong = autograd(
                lambda x, gamma, beta: normalise(x, gamma, beta, axis, e, how),
                (x, gamma, beta),
                g,
            )
            right = autograd(
                lambda x, gamma, beta: normalise(x, gamma, beta, dim, eps, "right"),
                (x, gamma, beta),
                g,
            )
            return wrong[0], (wrong if x_hat_too else right)[1], right[2]

        return answer

    other = "over the batch (dim 0)" if kind == "layernorm" else "over a row (dim 1)"
    mistakes = [
        Mistake(
            "it has only the direct path, gamma * grad_out / sigma",
            "x also moves the mean and the variance, and those two paths add the "
            "terms -mean(grad_x_hat) and -x_hat * mean(grad_x_hat * x_hat), with "
            f"grad_x_hat = gamma * grad_out; {_NORM_PATHS}",
            grad_x_of("constant stats"),
        ),
        Mistake(
            "the path through the mean is missing (the -mean(grad_x_hat) term)",
            _NORM_PATHS,
            grad_x_of("constant mean"),
        ),
        Mistake(
            "the path through the variance is missing (the "
            "-x_hat * mean(grad_x_hat * x_hat) term)",
            _NORM_PATHS,
            grad_x_of("constant variance"),
        ),
        Mistake(
            "x_hat and grad_x use the unbiased variance (dividing by m - 1)",
            "the forward divides by m (x.var(unbiased=False)), and grad_gamma's x_hat "
            "is the forward's; see 'Batch norm divides by m, and x.var() divides by "
            "m - 1' in post 9",
            grad_x_of("unbiased", x_hat_too=True),
        ),
        Mistake(
            "it is the gradient with the unbiased variance (dividing by m - 1)",
            "the forward divides by m; see 'Batch norm divides by m, and x.var() "
            "divides by m - 1' in post 9",
            grad_x_of("unbiased"),
        ),
        Mistake(
            "it is the gradient without eps",
            "keep eps inside the square root, sigma = sqrt(var + eps), in the "
            "backward too; see 'Why each feature's gradient sums to zero' in post 9",
            grad_x_of("right", no_eps=True),
        ),
        Mistake(
            f"it is the gradient of a normalisation {other}",
            f"{kind} takes its mean and variance over dim {dim}; see 'Batch norm's "
            "formula with the axis changed is not layer norm's' in post 9",
            grad_x_of("right", axis=1 - dim % 2),
        ),
    ]
    mistakes += [
        Mistake(
            "gamma is left out of grad_x_hat = gamma * grad_out",
            "y = gamma * x_hat + beta, so the gradient reaching x_hat is grad_out "
            f"times gamma; {_NORM_STEPS}",
            _by_hand(dim, with_gamma=False),
        ),
        Mistake(
            "grad_gamma multiplies grad_out by x instead of by x_hat",
            "gamma scales the normalised x_hat, so grad_gamma = (grad_out * x_hat)"
            ".sum(0); see 'The gradients of gamma and beta' in post 9",
            _by_hand(dim, gamma_from_x=True),
        ),
        Mistake(
            "the term through the variance has the wrong sign",
            "the variance path subtracts: grad_x = (grad_x_hat - mean(grad_x_hat) - "
            f"x_hat * mean(grad_x_hat * x_hat)) / sigma; {_NORM_STEPS}",
            _by_hand(dim, variance_sign=1.0),
        ),
        Mistake(
            "it divides by sigma² (the variance) instead of by sigma",
            "x_hat = (x - mean) / sigma with sigma = sqrt(var + eps), so the backward "
            f"divides by sigma once; {_NORM_STEPS}",
            _by_hand(dim, power=2),
        ),
        Mistake(
            "it sums where the formula takes means",
            "the mean and the variance average over the group, so their paths bring "
            f"means, mean(grad_x_hat) and mean(grad_x_hat * x_hat); {_NORM_STEPS}",
            _by_hand(dim, reduce="sum"),
        ),
    ]
    if kind == "layernorm":
        mistakes.append(
            Mistake(
                "gamma is factored out of the means as in batch norm",
                "in layer norm gamma varies along the normalised dimension: take the "
                "means of grad_x_hat = grad_out * gamma; see '8. Layer norm with "
                "gamma pulled out of the means' in post 13",
                _layernorm_gamma_outside,
            )
        )
    return tuple(mistakes)


_NORM_STEPS = "see 'From six steps to one formula' in post 9"


def _by_hand(
    dim: int,
    gamma_from_x: bool = False,
    variance_sign: float = -1.0,
    power: int = 1,
    reduce: str = "mean",
    with_gamma: bool = True,
) -> Callable[..., tuple[Tensor, Tensor, Tensor]]:
    """The one-formula backward over ``dim``, with one of its typical slips."""

    def answer(
        g: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5
    ) -> tuple[Tensor, Tensor, Tensor]:
        sigma = torch.sqrt(x.var(dim, keepdim=True, unbiased=False) + eps)
        x_hat = (x - x.mean(dim, keepdim=True)) / sigma
        g_hat = g * gamma if with_gamma else g

        def average(t: Tensor) -> Tensor:
            if reduce == "sum":
                return t.sum(dim, keepdim=True)
            return t.mean(dim, keepdim=True)

        centred = (
            g_hat - average(g_hat) + variance_sign * x_hat * average(g_hat * x_hat)
        )
        grad_gamma = (g * (x if gamma_from_x else x_hat)).sum(0)
        return centred / sigma**power, grad_gamma, g.sum(0)

    return answer


def _layernorm_gamma_outside(
    g: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5
) -> tuple[Tensor, Tensor, Tensor]:
    inv_sigma = torch.rsqrt(x.var(-1, keepdim=True, unbiased=False) + eps)
    x_hat = (x - x.mean(-1, keepdim=True)) * inv_sigma
    centred = g - g.mean(-1, keepdim=True) - x_hat * (g * x_hat).mean(-1, keepdim=True)
    return gamma * inv_sigma * centred, (g * x_hat).sum(0), g.sum(0)


# --- convolution ------------------------------------------------------------------

_CONV = "see 'The backward, from the linear layer' in post 11"


def _conv_input_grad(
    shape: torch.Size, w: Tensor, g: Tensor, stride: int, padding: int
) -> Tensor:
    out: Tensor = conv_grad.conv2d_input(  # type: ignore[no-untyped-call]  # untyped
        shape, w, g, stride=stride, padding=padding
    )
    return out


def _conv_weight_grad(
    x: Tensor, shape: torch.Size, g: Tensor, stride: int, padding: int
) -> Tensor:
    out: Tensor = conv_grad.conv2d_weight(  # type: ignore[no-untyped-call]  # untyped
        x, shape, g, stride=stride, padding=padding
    )
    return out


def _conv_right(
    g: Tensor, x: Tensor, w: Tensor, b: Tensor, stride: int, padding: int
) -> list[Tensor]:
    # torch's own gradients of a convolution, without building a graph: the
    # catalogue calls this for every mistake on every case.
    grad_x = _conv_input_grad(x.shape, w, g, stride=stride, padding=padding)
    grad_w = _conv_weight_grad(x, w.shape, g, stride=stride, padding=padding)
    return [grad_x, grad_w, g.sum((0, 2, 3))]


def _conv_padded_grad(
    g: Tensor, x: Tensor, w: Tensor, b: Tensor, stride: int, padding: int
) -> tuple[Tensor, ...]:
    padded = F.pad(x, (padding,) * 4)
    return tuple(
        autograd(lambda x, w, b: F.conv2d(x, w, b, stride=stride), (padded, w, b), g)
    )


def _conv_stride_ignored(
    g: Tensor, x: Tensor, w: Tensor, b: Tensor, stride: int, padding: int
) -> tuple[Tensor, ...]:
    def dense(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
        return F.conv2d(x, w, b, padding=padding)

    spread = torch.zeros_like(dense(x, w, b))
    spread[..., : g.shape[-2], : g.shape[-1]] = g  # window (i, j) starts at row i
    return tuple(autograd(dense, (x, w, b), spread))


def _conv_flipped(
    g: Tensor, x: Tensor, w: Tensor, b: Tensor, stride: int, padding: int
) -> tuple[Tensor, ...]:
    grad_x, grad_w, grad_b = _conv_right(g, x, w, b, stride, padding)
    return grad_x, grad_w.flip(-2, -1), grad_b


def _conv_grad_x_flipped(
    g: Tensor, x: Tensor, w: Tensor, b: Tensor, stride: int, padding: int
) -> tuple[Tensor, ...]:
    _, grad_w, grad_b = _conv_right(g, x, w, b, stride, padding)
    # The transposed convolution with the kernel flipped: the flip belongs to a
    # true convolution, and the forward here is a correlation.
    flipped = _conv_input_grad(
        x.shape, w.flip(-2, -1), g, stride=stride, padding=padding
    )
    return flipped, grad_w, grad_b


def _conv_bias_batch_mean(
    g: Tensor, x: Tensor, w: Tensor, b: Tensor, stride: int, padding: int
) -> tuple[Tensor, ...]:
    grad_x, grad_w, _ = _conv_right(g, x, w, b, stride, padding)
    return grad_x, grad_w, g.sum((2, 3)).mean(0)


def _conv_weight_per_example(
    g: Tensor, x: Tensor, w: Tensor, b: Tensor, stride: int, padding: int
) -> tuple[Tensor, ...]:
    grad_x, _, grad_b = _conv_right(g, x, w, b, stride, padding)
    per_example = torch.stack(
        [
            _conv_weight_grad(
                x[n : n + 1], w.shape, g[n : n + 1], stride=stride, padding=padding
            )
            for n in range(x.shape[0])
        ]
    )
    return grad_x, per_example, grad_b


_CONV_MISTAKES = (
    Mistake(
        "it is the right answer with the kernel flipped",
        "the forward is a cross-correlation (no flip), so grad_w correlates the input "
        "patches with grad_out, without flipping; see 'Strictly, a correlation' in "
        "post 11",
        _conv_flipped,
    ),
    Mistake(
        "it is the gradient of the zero-padded image",
        "the padding is a constant, not an input: cut its rows and columns off, "
        f"grad_x_bar[:, :, p:p + H, p:p + W]; {_CONV}",
        _conv_padded_grad,
    ),
    Mistake(
        "the stride is left out of the backward",
        "window (i, j) starts at row stride * i and column stride * j of the padded "
        f"image, in the backward as in the forward; {_CONV}",
        _conv_stride_ignored,
    ),
    Mistake(
        "grad_x uses the flipped kernel",
        "the forward correlates without flipping, so its backward scatters each "
        "grad_out entry back through the same, unflipped, kernel; see 'Correlation "
        "and transposed convolution' in post 11",
        _conv_grad_x_flipped,
    ),
    Mistake(
        "grad_b averages over the batch instead of summing",
        "b is added at every position of every image, and each use adds its "
        "gradient: grad_out.sum((0, 2, 3)); see 'The bias is shared by every pixel, "
        "not only by every image' in post 11",
        _conv_bias_batch_mean,
    ),
    Mistake(
        "grad_w is not summed over the batch: one kernel gradient per image",
        "every image uses the same kernel, so the images' kernel gradients add up; "
        + _CONV,
        _conv_weight_per_example,
    ),
)


# --- attention ----------------------------------------------------------------------


def _attention_with(
    g: Tensor, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, how: str
) -> tuple[Tensor, Tensor, Tensor]:
    scale = q.shape[-1] ** -0.5
    scores = q @ k.transpose(-2, -1) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    if how == "unmasked, gradient masked":
        scores = q @ k.transpose(-2, -1) * scale
    p = torch.softmax(scores, dim=-1)
    grad_v = p.transpose(-2, -1) @ g
    grad_p = g @ v.transpose(-2, -1)
    if how == "diagonal":
        grad_s = p * (1 - p) * grad_p
    elif how == "queries":  # the softmax's sum over the queries
        grad_s = p * (grad_p - (grad_p * p).sum(-2, keepdim=True))
    else:
        grad_s = p * (grad_p - (grad_p * p).sum(-1, keepdim=True))
        if mask is not None:
            grad_s = grad_s.masked_fill(~mask, 0.0)
    return grad_s @ k * scale, grad_s.transpose(-2, -1) @ q * scale, grad_v


_ATTENTION = "see 'The backward pass, one step at a time' in post 12"

_ATTENTION_MISTAKES = (
    Mistake(
        "it is the gradient without the mask",
        "recompute the scores with the mask in the backward too (masked scores get "
        "probability 0 and so no gradient); see 'The causal mask' in post 12",
        lambda g, q, k, v, mask=None: tuple(autograd(attention_forward, (q, k, v), g)),
    ),
    Mistake(
        "it uses only the diagonal of softmax's Jacobian, P(1 - P)",
        "each probability depends on every score of its row: subtract "
        f"P * sum(grad_P * P) over the row; {_ATTENTION}",
        lambda g, q, k, v, mask=None: _attention_with(g, q, k, v, mask, "diagonal"),
    ),
    Mistake(
        "the softmax's sum runs over the queries (dim -2) instead of the keys (dim -1)",
        f"softmax normalises each query's row of scores, over the keys; {_ATTENTION}",
        lambda g, q, k, v, mask=None: _attention_with(g, q, k, v, mask, "queries"),
    ),
    Mistake(
        "the mask is applied to the gradient only, not to the probabilities",
        "P must be recomputed with the mask (-inf before the softmax): masked keys "
        "have probability 0, which changes every other probability of the row and "
        "grad_v too; see 'The causal mask' in post 12",
        lambda g, q, k, v, mask=None: _attention_with(
            g, q, k, v, mask, "unmasked, gradient masked"
        ),
    ),
    Mistake(
        "masked scores are set to 0 instead of -inf",
        "a score of 0 still gets exp(0) = 1 of the softmax; -inf gets exp(-inf) = 0, "
        "no attention; see 'Minus infinity, and rows with nothing to see' in post 12",
        lambda g, q, k, v, mask=None: _attention_masked_by(g, q, k, v, mask, 0.0),
    ),
    Mistake(
        "the mask is inverted: True is taken as forbidden",
        "mask True means the query may attend to that key: fill the scores where "
        "~mask, scores.masked_fill(~mask, -inf); see 'The causal mask' in post 12",
        lambda g, q, k, v, mask=None: _attention_inverted(g, q, k, v, mask),
    ),
)


def _attention_masked_by(
    g: Tensor, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, fill: float
) -> tuple[Tensor, ...]:
    def forward(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(~mask, fill)
        return torch.softmax(scores, dim=-1) @ v

    return tuple(autograd(forward, (q, k, v), g))


def _attention_inverted(
    g: Tensor, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None
) -> tuple[Tensor, ...]:
    inverted = None if mask is None else ~mask
    return tuple(autograd(attention_forward, (q, k, v, inverted), g))


LAYER_CATALOGUES: dict[str, Catalogue] = {
    "lin": Catalogue("post 3", _lin_mistakes(out_in=False)),
    "lin_out_in": Catalogue("post 3", _lin_mistakes(out_in=True)),
    "relu": Catalogue("post 13", _RELU_MISTAKES),
    "gelu": Catalogue("post 15", _GELU_MISTAKES),
    "mse": Catalogue("post 6", _MSE_MISTAKES),
    "logsumexp": Catalogue("post 2", _LOGSUMEXP_MISTAKES),
    "softmax": Catalogue("post 7", _SOFTMAX_MISTAKES),
    "log_softmax": Catalogue("post 7", _LOG_SOFTMAX_MISTAKES),
    "cross_entropy": Catalogue("post 7", _CROSS_ENTROPY_MISTAKES),
    "embedding": Catalogue("post 10", _EMBEDDING_MISTAKES),
    "batchnorm": Catalogue("post 9", _norm_mistakes("batchnorm")),
    "layernorm": Catalogue("post 9", _norm_mistakes("layernorm")),
    "conv2d": Catalogue("post 11", _CONV_MISTAKES),
    "attention": Catalogue("post 12", _ATTENTION_MISTAKES),
}
