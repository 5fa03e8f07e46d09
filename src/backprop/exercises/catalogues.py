"""The catalogues: for each exercise, the typical wrong answers and what they mean.

A `Mistake` is a wrong answer a reader is likely to write, as a function with the
exercise's own signature (the candidate's), with a name ("the direct path of x is
missing") and a one-line hint that points back at the post's section. When a
reader's answer equals a mistake's answer on every case, on every gradient the
mistake gets wrong, the report names the mistake instead of describing the
difference in general terms.

A layer's catalogue is `CATALOGUES[name]` for `check_backward(name, ...)`. A post's
own exercise (`check_gradient` / `exercise_gradient`) names its catalogue with
``catalogue="<exercise>"``, the name of its ``exercise-<name>`` cell, and the
catalogue holds an `Example`: the post's forward and inputs, on which the tests
feed every mistake to the grader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from backprop.exercises.cases import attention_forward, autograd, normalise

__all__ = ["CATALOGUES", "Catalogue", "Example", "Mistake"]


@dataclass(frozen=True)
class Mistake:
    """A typical wrong answer to one exercise.

    ``answer`` takes what the reader's function takes and returns what it
    returns, with the mistake made. ``matches(got, *args)``, for a mistake whose
    answer is not unique (which write wins at a repeated index), says whether the
    first gradient ``got`` is this mistake. With ``needs_right``, ``answer`` gets
    the right answer (as the candidate returns it) before the arguments: for a
    forward that holds constants the catalogue cannot see, such as a post's target.
    """

    name: str
    hint: str
    answer: Callable[..., object]
    matches: Callable[..., bool] | None = None
    needs_right: bool = False


@dataclass(frozen=True)
class Example:
    """A post's exercise as the post sets it: the forward, the inputs, their names."""

    forward: Callable[..., Tensor]
    inputs: list[Tensor]
    names: list[str]
    along: Tensor | None = None


@dataclass(frozen=True)
class Catalogue:
    """The typical mistakes of one exercise, and where the exercise is."""

    post: str
    mistakes: tuple[Mistake, ...]
    example: Callable[[], Example] | None = None  # post exercises only


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------------
# Layers (check_backward, exercise)
# ----------------------------------------------------------------------------------

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


def _onehot(target: Tensor, like: Tensor) -> Tensor:
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
        lambda z, t: (_unstable_softmax(z) - _onehot(t, z)) / z.shape[0],
    ),
)


# --- embedding ----------------------------------------------------------------------


def _lookups(grad_out: Tensor, idx: Tensor, table: Tensor) -> tuple[Tensor, Tensor]:
    return idx.reshape(-1), grad_out.reshape(-1, table.shape[1])


def _embedding_assigned(grad_out: Tensor, idx: Tensor, table: Tensor) -> Tensor:
    flat, rows = _lookups(grad_out, idx, table)
    grad_table = torch.zeros_like(table)
    grad_table[flat] += rows  # a repeated row keeps one of its writes
    return grad_table


def _one_write_per_row(
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
        _embedding_assigned,
        matches=_one_write_per_row,
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
        how: str, axis: int = dim, no_eps: bool = False
    ) -> Callable[..., object]:
        def answer(
            g: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5
        ) -> tuple[Tensor, Tensor, Tensor]:
            e = 0.0 if no_eps else eps
            wrong = autograd(
                lambda x: normalise(x, gamma, beta, axis, e, how), (x,), g
            )[0]
            right = autograd(
                lambda x, gamma, beta: normalise(x, gamma, beta, dim, eps, "right"),
                (x, gamma, beta),
                g,
            )
            return wrong, right[1], right[2]

        return answer

    other = "over the batch (dim 0)" if kind == "layernorm" else "over a row (dim 1)"
    mistakes = [
        Mistake(
            "it has only the direct path, gamma * grad_out / sigma",
            "x also moves the mean and the variance, and those two paths add the "
            f"terms -mean(h) and -x_hat * mean(h * x_hat); {_NORM_PATHS}",
            grad_x_of("constant stats"),
        ),
        Mistake(
            "the path through the mean is missing (the -mean(h) term)",
            _NORM_PATHS,
            grad_x_of("constant mean"),
        ),
        Mistake(
            "the path through the variance is missing (the -x_hat * mean(h * x_hat) "
            "term)",
            _NORM_PATHS,
            grad_x_of("constant variance"),
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
    if kind == "layernorm":
        mistakes.append(
            Mistake(
                "gamma is factored out of the means as in batch norm",
                "in layer norm gamma varies along the normalised dimension: take the "
                "means of h = grad_out * gamma; see '8. Layer norm with gamma pulled "
                "out of the means' in post 13",
                _layernorm_gamma_outside,
            )
        )
    return tuple(mistakes)


def _layernorm_gamma_outside(
    g: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, eps: float = 1e-5
) -> tuple[Tensor, Tensor, Tensor]:
    inv_sigma = torch.rsqrt(x.var(-1, keepdim=True, unbiased=False) + eps)
    x_hat = (x - x.mean(-1, keepdim=True)) * inv_sigma
    centred = g - g.mean(-1, keepdim=True) - x_hat * (g * x_hat).mean(-1, keepdim=True)
    return gamma * inv_sigma * centred, (g * x_hat).sum(0), g.sum(0)


# --- convolution ------------------------------------------------------------------

_CONV = "see 'The backward, from the linear layer' in post 11"


def _conv_right(
    g: Tensor, x: Tensor, w: Tensor, b: Tensor, stride: int, padding: int
) -> list[Tensor]:
    return autograd(
        lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding), (x, w, b), g
    )


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
)


# --- attention ----------------------------------------------------------------------


def _attention_with(
    g: Tensor, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, how: str
) -> tuple[Tensor, Tensor, Tensor]:
    scale = q.shape[-1] ** -0.5
    scores = q @ k.transpose(-2, -1) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    p = torch.softmax(scores, dim=-1)
    grad_v = p.transpose(-2, -1) @ g
    grad_p = g @ v.transpose(-2, -1)
    if how == "diagonal":
        grad_s = p * (1 - p) * grad_p
    else:  # the softmax's sum over the queries
        grad_s = p * (grad_p - (grad_p * p).sum(-2, keepdim=True))
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
)


# ----------------------------------------------------------------------------------
# The posts' own exercises (check_gradient, exercise_gradient)
# ----------------------------------------------------------------------------------

f64 = torch.float64


# --- post 2: softplus -------------------------------------------------------------

_CHAIN = "see 'The chain rule: derivatives of a chain multiply' in post 2"


def _softplus_example() -> Example:
    def softplus(x: Tensor) -> Tensor:
        return torch.log(1 + torch.exp(x)).sum()

    return Example(softplus, [torch.linspace(-4, 4, 9, dtype=f64)], ["x"])


_SOFTPLUS = Catalogue(
    "post 2",
    (
        Mistake(
            "dy/du alone: du/dx = e^x is missing",
            f"the derivatives of a chain multiply, (1/u) * e^x; {_CHAIN}",
            lambda x: 1 / (1 + x.exp()),
        ),
        Mistake(
            "du/dx alone: the derivative of ln, 1/u, is missing",
            f"the derivatives of a chain multiply, (1/u) * e^x; {_CHAIN}",
            lambda x: x.exp(),
        ),
        Mistake(
            "dy/du and du/dx are added instead of multiplied",
            _CHAIN,
            lambda x: 1 / (1 + x.exp()) + x.exp(),
        ),
        Mistake(
            "ln's slope is taken at x instead of at u = 1 + e^x",
            "d ln(u)/du = 1/u, at the inner function's value; see 'The derivative of "
            "ln' in post 2",
            lambda x: x.exp() / x,
        ),
    ),
    _softplus_example,
)


# --- post 2: a skip connection ----------------------------------------------------

_PATHS_ADD = "see 'When paths meet, gradients add' in post 2"


def _skip_example() -> Example:
    def skip_loss(x: Tensor, w: Tensor, t: Tensor) -> Tensor:
        return ((w * x + x - t) ** 2).sum()

    values = ([1.5, -0.5, 2.0, 0.3], [-2.0, 0.7, 1.1, -0.4], [1.0, 0.2, -1.0, 0.5])
    inputs = [torch.tensor(v, dtype=f64) for v in values]
    return Example(skip_loss, inputs, ["x", "w", "t"])


def _skip_residual(x: Tensor, w: Tensor, t: Tensor) -> Tensor:
    return 2 * (w * x + x - t)


_SKIP = Catalogue(
    "post 2",
    (
        Mistake(
            "the direct path of x (the skip connection) is missing",
            "x reaches the sum twice, through u = w x and directly, and the gradients "
            f"of the two paths add: grad_r * (w + 1); {_PATHS_ADD}",
            lambda x, w, t: (
                _skip_residual(x, w, t) * w,
                _skip_residual(x, w, t) * x,
                -_skip_residual(x, w, t),
            ),
        ),
        Mistake(
            "the path of x through the product w x is missing",
            "x reaches the sum twice, through u = w x and directly, and the gradients "
            f"of the two paths add: grad_r * (w + 1); {_PATHS_ADD}",
            lambda x, w, t: (
                _skip_residual(x, w, t),
                _skip_residual(x, w, t) * x,
                -_skip_residual(x, w, t),
            ),
        ),
        Mistake(
            "the minus sign of t is missing",
            "t is subtracted, so its local derivative is -1: grad_t = -grad_r; see "
            "'A small graph, by hand' in post 2",
            lambda x, w, t: (
                _skip_residual(x, w, t) * (w + 1),
                _skip_residual(x, w, t) * x,
                _skip_residual(x, w, t),
            ),
        ),
        Mistake(
            "the 2 of the square is missing",
            "the derivative of r² is 2r, the first step back from L; see 'A small "
            "graph, by hand' in post 2",
            lambda x, w, t: (
                (w * x + x - t) * (w + 1),
                (w * x + x - t) * x,
                -(w * x + x - t),
            ),
        ),
    ),
    _skip_example,
)


# --- post 4: centring, and a scale and shift -----------------------------------------

_SUMS = "see 'The backward: where the forward copies, the backward sums' in post 4"


def _centre_example() -> Example:
    def centre(y: Tensor) -> Tensor:
        return y - y.mean(0)

    return Example(centre, [torch.randn(5, 3, dtype=f64, generator=_gen(4))], ["y"])


_CENTRE = Catalogue(
    "post 4",
    (
        Mistake(
            "it has only the direct path: the path through the mean is missing",
            "Y[i, k] also moves the mean of column k, which every row subtracts: add "
            f"-grad_out.sum(0) / N to every row; {_SUMS}",
            lambda g, y: g,
        ),
        Mistake(
            "the 1/N of the mean is missing",
            "the mean is a sum divided by N, and so is its backward: "
            f"-grad_out.sum(0) / N; {_SUMS}",
            lambda g, y: g - g.sum(0),
        ),
        Mistake(
            "the path through the mean sums over the wrong axis (along the rows)",
            "the mean runs down each column, over the batch (dim 0), so its backward "
            f"sums grad_out over dim 0; {_SUMS}",
            lambda g, y: g - g.mean(1, keepdim=True),
        ),
        Mistake(
            "the path through the mean has the wrong sign",
            f"the mean is subtracted, so its path brings -grad_out.sum(0) / N; {_SUMS}",
            lambda g, y: g + g.sum(0) / y.shape[0],
        ),
        Mistake(
            "the path through the mean is not summed over the column",
            "every entry of column k moves its mean, so each row gets the column's "
            f"sum of grad_out, divided by N: -grad_out.sum(0) / N; {_SUMS}",
            lambda g, y: g - g / y.shape[0],
        ),
    ),
    _centre_example,
)


def _scale_shift_example() -> Example:
    def scale_shift(y: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        return y * gamma + beta

    gen = _gen(5)
    inputs = [torch.randn(s, dtype=f64, generator=gen) for s in [(5, 3), (3,), (3,)]]
    return Example(scale_shift, inputs, ["y", "gamma", "beta"])


_SCALE_SHIFT = Catalogue(
    "post 4",
    (
        Mistake(
            "grad_gamma is not summed over the batch",
            "gamma[k] multiplies Y[i, k] in every row i, one path per row: "
            f"(grad_out * y).sum(0); {_SUMS}",
            lambda g, y, gamma, beta: (g * gamma, g * y, g.sum(0)),
        ),
        Mistake(
            "grad_gamma multiplies by gamma instead of by y",
            "the local derivative of y * gamma with respect to gamma is the other "
            f"factor, y: (grad_out * y).sum(0); {_SUMS}",
            lambda g, y, gamma, beta: (g * gamma, (g * gamma).sum(0), g.sum(0)),
        ),
        Mistake(
            "grad_y leaves gamma out",
            "the local derivative of y * gamma with respect to y is gamma, broadcast "
            f"like the forward's: grad_out * gamma; {_SUMS}",
            lambda g, y, gamma, beta: (g, (g * y).sum(0), g.sum(0)),
        ),
        Mistake(
            "grad_beta averages over the batch instead of summing",
            "beta is copied to every row, so its gradient sums them; see 'Do not "
            "divide the bias gradient by the batch size' in post 4",
            lambda g, y, gamma, beta: (g * gamma, (g * y).sum(0), g.mean(0)),
        ),
    ),
    _scale_shift_example,
)


# --- post 5: a Jacobian-vector product, and the Gram matrix ---------------------------

_JVP = "see 'Elementwise functions have diagonal Jacobians' in post 5"


def _jvp_example() -> Example:
    def tanh_layer(x: Tensor, w: Tensor) -> Tensor:
        return torch.tanh(x @ w)

    gen = _gen(5)
    x, w, v = (
        torch.randn(s, dtype=f64, generator=gen) for s in [(3, 4), (4, 2), (3, 4)]
    )
    return Example(tanh_layer, [x, w], ["x", "w"], along=v)


def _tanh_slope(x: Tensor, w: Tensor) -> Tensor:
    return 1 - torch.tanh(x @ w) ** 2


_JVP_CATALOGUE = Catalogue(
    "post 5",
    (
        Mistake(
            "tanh's slope is missing: it is the JVP of x @ w alone",
            "after x @ w moves by v @ w, tanh scales each entry by its slope, "
            f"1 - tanh(x @ w)²; {_JVP}",
            lambda x, w, v: v @ w,
        ),
        Mistake(
            "it moves x @ w by x @ w instead of by v @ w",
            "moving x along v moves x @ w by v @ w (the linear layer's Jacobian "
            "applied to v); see 'The Jacobian of a linear layer' in post 5",
            lambda x, w, v: _tanh_slope(x, w) * (x @ w),
        ),
        Mistake(
            "tanh's slope is taken at v @ w instead of at x @ w",
            f"the slope is the derivative at the point, x @ w; {_JVP}",
            lambda x, w, v: _tanh_slope(v, w) * (v @ w),
        ),
        Mistake(
            "tanh's slope is written 1 - tanh instead of 1 - tanh²",
            f"d tanh(z)/dz = 1 - tanh(z)²; {_JVP}",
            lambda x, w, v: (1 - torch.tanh(x @ w)) * (v @ w),
        ),
    ),
    _jvp_example,
)

_GRAM = "see 'The shortcut: let the shapes decide' in post 5"


def _gram_example() -> Example:
    def gram(x: Tensor) -> Tensor:
        return x.T @ x

    return Example(gram, [torch.randn(4, 3, dtype=f64, generator=_gen(6))], ["x"])


_GRAM_CATALOGUE = Catalogue(
    "post 5",
    (
        Mistake(
            "only the path through B = x: the term from A = x.T is missing",
            "x is used twice, so the gradients of the two uses add: "
            f"x @ grad_out + (grad_out @ x.T).T; {_GRAM}",
            lambda g, x: x @ g,
        ),
        Mistake(
            "only the path through A = x.T: the term from B = x is missing",
            "x is used twice, so the gradients of the two uses add: "
            f"x @ grad_out + (grad_out @ x.T).T; {_GRAM}",
            lambda g, x: (g @ x.T).T,
        ),
        Mistake(
            "it is 2 x @ grad_out: the two paths are taken as equal",
            "the paths give x @ grad_out and x @ grad_out.T, equal only when grad_out "
            f"is symmetric; {_GRAM}",
            lambda g, x: 2 * x @ g,
        ),
    ),
    _gram_example,
)


# --- post 6: a shortcut -----------------------------------------------------------

_SHORTCUT = "see 'Your turn' in post 6 and 'When paths meet, gradients add' in post 2"


def _shortcut_example() -> Example:
    gen = _gen(6)
    x = torch.randn(4, 12, dtype=f64, generator=gen)
    target = torch.randn(4, 1, dtype=f64, generator=gen)

    def shortcut_loss(
        x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, v: Tensor
    ) -> Tensor:
        hidden = torch.relu(x @ w1 + b1)
        return ((hidden @ w2 + b2 + x @ v - target) ** 2).mean()

    shapes = [(12, 10), (10,), (10, 1), (1,), (12, 1)]
    params = [torch.randn(s, dtype=f64, generator=gen) / 3 for s in shapes]
    return Example(shortcut_loss, [x, *params], ["x", "w1", "b1", "w2", "b2", "v"])


def _loss_gradient(x: Tensor, grad_v: Tensor) -> Tensor:
    """dL/dP, from grad_v = x.T @ dL/dP: x has independent rows (fewer than columns).

    The post's loss holds its target, which the catalogue cannot see; this recovers
    the one number per example that the target decides.
    """
    return torch.linalg.lstsq(x.T, grad_v).solution


def _shortcut_one_path(
    right: tuple[Tensor, ...], x: Tensor, *params: Tensor
) -> tuple[Tensor, ...]:
    grad_x, *rest = right
    v = params[-1]
    return (grad_x - _loss_gradient(x, rest[-1]) @ v.T, *rest)


def _shortcut_v_from_hidden(
    right: tuple[Tensor, ...], x: Tensor, w1: Tensor, b1: Tensor, *params: Tensor
) -> tuple[Tensor, ...]:
    hidden = torch.relu(x @ w1 + b1)
    return (*right[:-1], hidden.T @ _loss_gradient(x, right[-1]))


_SHORTCUT_CATALOGUE = Catalogue(
    "post 6",
    (
        Mistake(
            "the second path into X, through X V, is missing",
            "X reaches P through W1 and through V, and the two paths' gradients add: "
            f"grad_x = grad_z @ w1.T + grad_p @ v.T; {_SHORTCUT}",
            _shortcut_one_path,
            needs_right=True,
        ),
        Mistake(
            "V's gradient uses the hidden activations instead of X",
            "X V is a linear layer whose input is X, so grad_v = x.T @ grad_p; see "
            "'The backward pass, one layer at a time' in post 6",
            _shortcut_v_from_hidden,
            needs_right=True,
        ),
        Mistake(
            "the 1/N of the mean squared error is missing",
            "grad_p = 2 (P - T) / N, and every gradient after it inherits the 1/N; see "
            "'The backward pass, one layer at a time' in post 6",
            lambda right, x, *params: tuple(g * x.shape[0] for g in right),
            needs_right=True,
        ),
    ),
    _shortcut_example,
)


# --- post 7: label smoothing ------------------------------------------------------

_SMOOTH = "see 'Cross-entropy: most of the Jacobian cancels' in post 7"
_EPSILON = 0.1


def _smoothing_example() -> Example:
    def smoothed_ce(logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits, target, label_smoothing=_EPSILON)

    gen = _gen(7)
    logits = torch.randn(6, 4, dtype=f64, generator=gen)
    target = torch.randint(0, 4, (6,), generator=gen)
    return Example(smoothed_ce, [logits, target], ["logits", "target"])


def _smoothed(z: Tensor, t: Tensor, q: Tensor) -> Tensor:
    return (torch.softmax(z, -1) - q) / z.shape[0]


_LABEL_SMOOTHING = Catalogue(
    "post 7",
    (
        Mistake(
            "it is the plain cross-entropy gradient, without the smoothing",
            "the target distribution is q = (1 - ε) onehot + ε / C, and the gradient "
            f"is (softmax - q) / N; {_SMOOTH}",
            lambda z, t: _smoothed(z, t, _onehot(t, z)),
        ),
        Mistake(
            "the ε / C of the smoothed target is left out",
            "q = (1 - ε) onehot + ε / C gives every class ε / C, and q sums to 1; "
            f"{_SMOOTH}",
            lambda z, t: _smoothed(z, t, (1 - _EPSILON) * _onehot(t, z)),
        ),
        Mistake(
            "the target's 1 - ε is left out: q = onehot + ε / C",
            "the target class gets 1 - ε + ε / C, so that q sums to 1; " + _SMOOTH,
            lambda z, t: _smoothed(z, t, _onehot(t, z) + _EPSILON / z.shape[1]),
        ),
        Mistake(
            "the 1/N of the mean over the batch is missing",
            "the loss is the mean over the batch, so each example's gradient is "
            f"divided by N; {_SMOOTH}",
            lambda z, t: _smoothed(z, t, _smooth_q(z, t)) * z.shape[0],
        ),
    ),
    _smoothing_example,
)


def _smooth_q(z: Tensor, t: Tensor) -> Tensor:
    return (1 - _EPSILON) * _onehot(t, z) + _EPSILON / z.shape[1]


# --- post 8: the maximum of each row ----------------------------------------------

_KINKS = "see 'Checking functions with kinks' in post 8"


def _row_max_example() -> Example:
    def row_max(x: Tensor) -> Tensor:
        return x.amax(dim=1)

    return Example(row_max, [torch.randn(3, 5, dtype=f64, generator=_gen(8))], ["x"])


def _is_max(x: Tensor, dim: int) -> Tensor:
    return (x == x.amax(dim=dim, keepdim=True)).to(x.dtype)


_ROW_MAX = Catalogue(
    "post 8",
    (
        Mistake(
            "the maximum is taken down the columns (dim 0) instead of along each row",
            f"row_max reduces dim 1, so each row's gradient goes to its own largest "
            f"entry; {_KINKS}",
            lambda g, x: _is_max(x, 0) * g[:, None],
        ),
        Mistake(
            "the row's gradient is spread evenly over the row, as for a mean",
            f"only the largest entry moves the max: its slope is 1, the others' 0; "
            f"{_KINKS}",
            lambda g, x: g[:, None].expand_as(x) / x.shape[1],
        ),
        Mistake(
            "every entry of the row gets the row's gradient",
            "the max moves with its largest entry only; the other entries have slope "
            f"0; {_KINKS}",
            lambda g, x: g[:, None].expand_as(x).clone(),
        ),
        Mistake(
            "it is the softmax of the row, the gradient of log-sum-exp",
            "log-sum-exp is a smooth maximum; the max itself has slope 1 at the "
            f"largest entry and 0 elsewhere; {_KINKS}",
            lambda g, x: torch.softmax(x, 1) * g[:, None],
        ),
    ),
    _row_max_example,
)


# --- post 9: batch norm at inference ----------------------------------------------

_EVAL = "see 'Batch norm at inference' in post 9"


def _batchnorm_eval_example() -> Example:
    gen = _gen(9)
    running_mean = torch.randn(3, dtype=f64, generator=gen)
    running_var = torch.rand(3, dtype=f64, generator=gen) + 0.5

    def batchnorm_eval(x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        return F.batch_norm(
            x, running_mean, running_var, gamma, beta, training=False, eps=1e-5
        )

    x = torch.randn(5, 3, dtype=f64, generator=gen) * 2 + 1
    gamma, beta = (torch.randn(3, dtype=f64, generator=gen) for _ in range(2))
    return Example(batchnorm_eval, [x, gamma, beta], ["x", "gamma", "beta"])


def _batch_statistics(
    g: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, how: str
) -> tuple[Tensor, ...]:
    return tuple(
        autograd(
            lambda x, gamma, beta: normalise(x, gamma, beta, 0, 1e-5, how),
            (x, gamma, beta),
            g,
        )
    )


_BATCHNORM_EVAL = Catalogue(
    "post 9",
    (
        Mistake(
            "it is the training-mode backward, with the paths through the batch's "
            "mean and variance",
            "in eval mode mu and sigma are the running statistics, constants: only "
            f"the direct path is left, gamma / sigma_bar * grad_out; {_EVAL}",
            lambda g, x, gamma, beta: _batch_statistics(g, x, gamma, beta, "right"),
        ),
        Mistake(
            "it normalises with the batch's statistics instead of the running ones",
            "in eval mode x_hat = (x - running_mean) / sqrt(running_var + eps), for "
            f"grad_x and grad_gamma alike; {_EVAL}",
            lambda g, x, gamma, beta: _batch_statistics(
                g, x, gamma, beta, "constant stats"
            ),
        ),
        Mistake(
            "grad_x leaves gamma out",
            "y = gamma * x_hat + beta, so grad_x = gamma / sigma_bar * grad_out; "
            + _EVAL,
            lambda right, g, x, gamma, beta: (right[0] / gamma, right[1], right[2]),
            needs_right=True,
        ),
        Mistake(
            "grad_gamma multiplies grad_out by x instead of by x_hat",
            "gamma multiplies the normalised x_hat, so grad_gamma = "
            f"(grad_out * x_hat).sum(0); {_EVAL}",
            lambda right, g, x, gamma, beta: (right[0], (g * x).sum(0), right[2]),
            needs_right=True,
        ),
    ),
    _batchnorm_eval_example,
)


# --- post 10: a bag of words ------------------------------------------------------

_BAG = "see 'Batches, and the layer as a module' in post 10"


def _bag_example() -> Example:
    def bag_of_words(idx: Tensor, table: Tensor) -> Tensor:
        return table[idx].mean(dim=1)

    idx = torch.tensor([[3, 1, 3, 0], [2, 2, 5, 1], [4, 0, 1, 1]])
    table = torch.randn(6, 5, dtype=f64, generator=_gen(10))
    return Example(bag_of_words, [idx, table], ["idx", "table"])


def _bag(g: Tensor, idx: Tensor, table: Tensor, per_position: Tensor) -> Tensor:
    rows = per_position.reshape(-1, table.shape[1])
    return torch.zeros_like(table).index_add_(0, idx.reshape(-1), rows)


def _bag_assigned(g: Tensor, idx: Tensor, table: Tensor) -> Tensor:
    per_position = (g / idx.shape[1])[:, None, :].expand(*idx.shape, -1)
    return _embedding_assigned(per_position, idx, table)


def _bag_one_write(got: Tensor, g: Tensor, idx: Tensor, table: Tensor) -> bool:
    per_position = (g / idx.shape[1])[:, None, :].expand(*idx.shape, -1)
    return _one_write_per_row(got, per_position, idx, table)


_BAG_OF_WORDS = Catalogue(
    "post 10",
    (
        Mistake(
            "the 1/T of the mean is missing",
            "the mean hands each of a sentence's T positions 1/T of its gradient; "
            + _BAG,
            lambda g, idx, table: _bag(
                g, idx, table, g[:, None, :].expand(*idx.shape, -1)
            ),
        ),
        Mistake(
            "it is wrong only on tokens a sentence uses twice",
            "a repeated token's row gets the sum over all its positions; grad[idx] = "
            f"and grad[idx] += keep one write per row: use index_add_; {_BAG}",
            _bag_assigned,
            matches=_bag_one_write,
        ),
        Mistake(
            "it divides by the batch size B instead of the sentence length T",
            f"the mean runs over the T positions of each sentence (dim 1); {_BAG}",
            lambda g, idx, table: _bag(
                g, idx, table, (g / idx.shape[0])[:, None, :].expand(*idx.shape, -1)
            ),
        ),
    ),
    _bag_example,
)


# --- post 12: self-attention ------------------------------------------------------

_THREE_USES = "see 'X is used three times' in post 12"


def _self_attention_example() -> Example:
    def self_attention(x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor) -> Tensor:
        return attention_forward(x @ w_q, x @ w_k, x @ w_v)

    gen = _gen(12)
    shapes = [(5, 6), (6, 4), (6, 4), (6, 3)]
    inputs = [torch.randn(s, dtype=f64, generator=gen) for s in shapes]
    return Example(self_attention, inputs, ["x", "w_q", "w_k", "w_v"])


def _self_attention_parts(
    g: Tensor, x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    grads = autograd(attention_forward, (x @ w_q, x @ w_k, x @ w_v), g)
    return grads[0], grads[1], grads[2]


def _self_attention_x(
    g: Tensor, x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor, uses: str
) -> tuple[Tensor, ...]:
    grad_q, grad_k, grad_v = _self_attention_parts(g, x, w_q, w_k, w_v)
    terms = {"q": grad_q @ w_q.T, "k": grad_k @ w_k.T, "v": grad_v @ w_v.T}
    grad_x = sum((terms[use] for use in uses), torch.zeros_like(x))
    return grad_x, x.T @ grad_q, x.T @ grad_k, x.T @ grad_v


_SELF_ATTENTION = Catalogue(
    "post 12",
    (
        Mistake(
            "x's gradient has only the path through V",
            "x is used three times, as Q, K and V: add the three paths' gradients, "
            f"grad_q @ w_q.T + grad_k @ w_k.T + grad_v @ w_v.T; {_THREE_USES}",
            lambda g, x, w_q, w_k, w_v: _self_attention_x(g, x, w_q, w_k, w_v, "v"),
        ),
        Mistake(
            "x's gradient has only the path through Q",
            "x is used three times, as Q, K and V: add the three paths' gradients; "
            + _THREE_USES,
            lambda g, x, w_q, w_k, w_v: _self_attention_x(g, x, w_q, w_k, w_v, "q"),
        ),
        Mistake(
            "x's gradient misses the path through K",
            "x is used three times, as Q, K and V: add the three paths' gradients; "
            + _THREE_USES,
            lambda g, x, w_q, w_k, w_v: _self_attention_x(g, x, w_q, w_k, w_v, "qv"),
        ),
        Mistake(
            "x's gradient misses the path through V",
            "x is used three times, as Q, K and V: add the three paths' gradients; "
            + _THREE_USES,
            lambda g, x, w_q, w_k, w_v: _self_attention_x(g, x, w_q, w_k, w_v, "qk"),
        ),
        Mistake(
            "x's gradient misses the path through Q",
            "x is used three times, as Q, K and V: add the three paths' gradients; "
            + _THREE_USES,
            lambda g, x, w_q, w_k, w_v: _self_attention_x(g, x, w_q, w_k, w_v, "kv"),
        ),
    ),
    _self_attention_example,
)


# --- post 14: tanh and division on the tape ---------------------------------------

_TAPE = "see 'Your turn' in post 14"


def _tanh_example() -> Example:
    return Example(
        torch.tanh, [torch.randn(3, 4, dtype=f64, generator=_gen(14))], ["x"]
    )


_TANH = Catalogue(
    "post 14",
    (
        Mistake(
            "it is 1 - tanh(x)² without grad_out",
            "backward(g) gets the upstream gradient g: return g * (1 - out**2); "
            + _TAPE,
            lambda g, x: 1 - torch.tanh(x) ** 2,
        ),
        Mistake(
            "tanh's derivative is written 1 - tanh(x)",
            f"d tanh(x)/dx = 1 - tanh(x)²; {_TAPE}",
            lambda g, x: g * (1 - torch.tanh(x)),
        ),
        Mistake(
            "tanh's derivative is written 1 - x²",
            "the derivative is 1 - tanh(x)², in terms of the output out, not of the "
            f"input x; {_TAPE}",
            lambda g, x: g * (1 - x**2),
        ),
        Mistake(
            "tanh's derivative is written 1 + tanh(x)²",
            f"d tanh(x)/dx = 1 - tanh(x)²: tanh is flat far from 0; {_TAPE}",
            lambda g, x: g * (1 + torch.tanh(x) ** 2),
        ),
    ),
    _tanh_example,
)


def _divide_example() -> Example:
    def divide(a: Tensor, b: Tensor) -> Tensor:
        return a / b

    gen = _gen(15)
    a = torch.randn(3, 4, dtype=f64, generator=gen)
    b = torch.rand(4, dtype=f64, generator=gen) + 0.5
    return Example(divide, [a, b], ["a", "b"])


_DIVIDE = Catalogue(
    "post 14",
    (
        Mistake(
            "b's gradient is not summed over the rows it was copied to",
            "b was broadcast down the rows of a, so its gradient sums over them "
            f"(unbroadcast), as __mul__ does; {_TAPE}",
            lambda g, a, b: (g / b, -g * a / b**2),
        ),
        Mistake(
            "b's gradient has the wrong sign",
            f"d(a / b)/db = -a / b²; {_TAPE}",
            lambda g, a, b: (g / b, (g * a / b**2).sum(0)),
        ),
        Mistake(
            "b's gradient is -a / b instead of -a / b²",
            f"d(1/b)/db = -1/b²; {_TAPE}",
            lambda g, a, b: (g / b, (-g * a / b).sum(0)),
        ),
        Mistake(
            "a's gradient multiplies by b instead of dividing",
            f"d(a / b)/da = 1 / b; {_TAPE}",
            lambda g, a, b: (g * b, (-g * a / b**2).sum(0)),
        ),
    ),
    _divide_example,
)


# ----------------------------------------------------------------------------------
# The registry
# ----------------------------------------------------------------------------------

CATALOGUES: dict[str, Catalogue] = {
    # Layers, by the name check_backward takes.
    "lin": Catalogue("post 3", _lin_mistakes(out_in=False)),
    "lin_out_in": Catalogue("post 3", _lin_mistakes(out_in=True)),
    "relu": Catalogue("post 13", _RELU_MISTAKES),
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
    # The posts' own exercises, by the name of their exercise cell.
    "softplus": _SOFTPLUS,
    "skip": _SKIP,
    "centre": _CENTRE,
    "scale-shift": _SCALE_SHIFT,
    "jvp": _JVP_CATALOGUE,
    "gram": _GRAM_CATALOGUE,
    "shortcut": _SHORTCUT_CATALOGUE,
    "label-smoothing": _LABEL_SMOOTHING,
    "row-max": _ROW_MAX,
    "batchnorm-eval": _BATCHNORM_EVAL,
    "bag-of-words": _BAG_OF_WORDS,
    "self-attention": _SELF_ATTENTION,
    "tanh": _TANH,
    "divide": _DIVIDE,
}
"""Every exercise's typical mistakes: a layer's under its `check_backward` name, a
post's own exercise under the name of its ``exercise-<name>`` cell."""
