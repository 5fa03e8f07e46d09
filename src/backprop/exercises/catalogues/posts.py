"""The typical mistakes of the posts' own exercises, for `check_gradient` and
`exercise_gradient` with ``catalogue="<name>"``: one catalogue per exercise cell,
each with the post's forward and inputs (an `Example`) to grade its mistakes on."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from backprop.exercises.cases import attention_forward, autograd, normalise
from backprop.exercises.catalogues.layers import (
    embedding_assigned,
    one_write_per_row,
    onehot,
)
from backprop.exercises.catalogues.parts import Catalogue, Example, Mistake
from backprop.exercises.catalogues.points import (
    more_bag,
    more_batchnorm_eval,
    more_cross_entropy,
    more_divide,
    more_elementwise,
    more_jvp,
    more_label_smoothing,
    more_matrix,
    more_residual_layernorm,
    more_scale_shift,
    more_self_attention,
    more_shortcut,
    more_skip,
    more_tied,
    rows_and_columns,
    sizes_bag,
    sizes_batch,
    sizes_residual_layernorm,
    sizes_self_attention,
    sizes_tied,
)

__all__ = ["POST_CATALOGUES"]

f64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- post 1: a cross-entropy's value, computed stably ------------------------------

_TRICK = "see 'Overflow, and the log-sum-exp trick' in post 1"
_COMPUTED = "see 'Cross-entropy, computed' in post 1"


def _cross_entropy_example() -> Example:
    gen = _gen(1)
    logits = torch.randn(5, 4, generator=gen) * 3
    targets = torch.randint(4, (5,), generator=gen)
    return Example(F.cross_entropy, [logits, targets], ["logits", "targets"])


def _row_numbers(z: Tensor) -> Tensor:
    return torch.arange(z.shape[0])


def _stable_lse(z: Tensor) -> Tensor:
    top = z.amax(1, keepdim=True)
    return top.squeeze(1) + (z - top).exp().sum(1).log()


def _target_logits(z: Tensor, t: Tensor) -> Tensor:
    return z[_row_numbers(z), t]


def _global_max_lse(z: Tensor) -> Tensor:
    top = z.max()
    return top + (z - top).exp().sum(1).log()


def _naive_probability(z: Tensor) -> Tensor:
    return z.exp() / z.exp().sum(1, keepdim=True)


_CROSS_ENTROPY = Catalogue(
    "post 1",
    (
        Mistake(
            "no maximum is subtracted: exp of the logits overflows or underflows",
            "exp(800) is inf and exp(-800) is 0: take out each row's maximum first, "
            f"z_max + ln(sum(exp(z - z_max))); {_TRICK}",
            lambda z, t: (z.exp().sum(1).log() - _target_logits(z, t)).mean(),
        ),
        Mistake(
            "one maximum for the whole batch is subtracted, not each row's own",
            "a row far below the batch's maximum has every exp(z - z_max) = 0 and "
            "ln 0 = -inf: subtract the row's maximum, z.amax(1, keepdim=True); "
            + _TRICK,
            lambda z, t: (_global_max_lse(z) - _target_logits(z, t)).mean(),
        ),
        Mistake(
            "it takes the log of the softmax probability, which underflows to 0",
            "a probability of e^-1000 is 0 in floating point and ln 0 = -inf: compute "
            "logsumexp(z) - z_t, which never takes the log of a probability; see "
            "'log_softmax is the quotient rule' in post 1",
            lambda z, t: -_target_logits(z.softmax(1).log(), t).mean(),
        ),
        Mistake(
            "it takes the log of exp(z) / sum(exp(z)), a softmax written naively",
            "exp(800) / exp(800) is inf / inf = nan, and a tiny probability is 0: "
            "split the log of the quotient into z_t - logsumexp(z); see "
            "'log_softmax is the quotient rule' in post 1",
            lambda z, t: -_target_logits(_naive_probability(z), t).log().mean(),
        ),
        Mistake(
            "it sums the losses over the batch instead of taking their mean",
            f"the loss is the mean over the N rows, .mean(), not .sum(); {_COMPUTED}",
            lambda z, t: (_stable_lse(z) - _target_logits(z, t)).sum(),
        ),
        Mistake(
            "it returns one loss per row: the mean over the batch is missing",
            "the loss is one number, the mean of logsumexp(z) - z_t over the rows; "
            + _COMPUTED,
            lambda z, t: _stable_lse(z) - _target_logits(z, t),
        ),
        Mistake(
            "the maximum is subtracted inside the log and not added back",
            "ln(sum(exp(z))) = z_max + ln(sum(exp(z - z_max))): the z_max in front "
            f"stays; {_TRICK}",
            lambda z, t: (
                (z - z.amax(1, keepdim=True)).exp().sum(1).log() - _target_logits(z, t)
            ).mean(),
        ),
        Mistake(
            "it has the wrong sign: it is the mean log-probability of the targets",
            "cross-entropy is minus the log-probability, logsumexp(z) - z_t, a "
            f"positive number; {_COMPUTED}",
            lambda z, t: (_target_logits(z, t) - _stable_lse(z)).mean(),
        ),
        Mistake(
            "the target logits are taken as z[:, t], an N by N table, not z[rows, t]",
            "z[:, t] gives every row every target's column; pick one entry per row "
            f"with z[torch.arange(N), t]; {_COMPUTED}",
            lambda z, t: (_stable_lse(z)[:, None] - z[:, t]).mean(),
        ),
        Mistake(
            "it averages the log-probabilities of every class, not the target's",
            "the loss of a row is minus the log-probability of its target class "
            f"only, logsumexp(z) - z_t; {_COMPUTED}",
            lambda z, t: (_stable_lse(z)[:, None] - z).mean(),
        ),
    ),
    _cross_entropy_example,
    more=more_cross_entropy,
    sizes=rows_and_columns,
    kind="value",
)


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
    more=more_elementwise,
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
    more=more_skip,
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
    more=more_matrix,
    sizes=sizes_batch,
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
    more=more_scale_shift,
    sizes=sizes_batch,
)


# --- post 5: a Jacobian-vector product, and the Gram matrix ---------------------------

_JVP = "see 'Elementwise functions have diagonal Jacobians' in post 5"


def _jvp_example() -> Example:
    def tanh_layer(x: Tensor, w: Tensor) -> Tensor:
        return torch.tanh(x @ w)

    gen = _gen(5)
    x, w, u = (
        torch.randn(s, dtype=f64, generator=gen) for s in [(3, 4), (4, 2), (3, 4)]
    )
    return Example(tanh_layer, [x, w], ["x", "w"], along=u)


def _tanh_slope(x: Tensor, w: Tensor) -> Tensor:
    return 1 - torch.tanh(x @ w) ** 2


_JVP_CATALOGUE = Catalogue(
    "post 5",
    (
        Mistake(
            "tanh's slope is missing: it is the JVP of x @ w alone",
            "after x @ w moves by u @ w, tanh scales each entry by its slope, "
            f"1 - tanh(x @ w)²; {_JVP}",
            lambda x, w, u: u @ w,
        ),
        Mistake(
            "it moves x @ w by x @ w instead of by u @ w",
            "moving x along u moves x @ w by u @ w (the linear layer's Jacobian "
            "applied to u); see 'The Jacobian of a linear layer' in post 5",
            lambda x, w, u: _tanh_slope(x, w) * (x @ w),
        ),
        Mistake(
            "tanh's slope is taken at u @ w instead of at x @ w",
            f"the slope is the derivative at the point, x @ w; {_JVP}",
            lambda x, w, u: _tanh_slope(u, w) * (u @ w),
        ),
        Mistake(
            "tanh's slope is written 1 - tanh instead of 1 - tanh²",
            f"d tanh(z)/dz = 1 - tanh(z)²; {_JVP}",
            lambda x, w, u: (1 - torch.tanh(x @ w)) * (u @ w),
        ),
    ),
    _jvp_example,
    more=more_jvp,
)

_GRAM = "see 'The shapes only check' in post 5"


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
    more=more_matrix,
    sizes=sizes_batch,
)


# --- post 6: a shortcut -----------------------------------------------------------

_SHORTCUT = "see 'Your turn' in post 6 and 'When paths meet, gradients add' in post 2"


def _shortcut_example() -> Example:
    gen = _gen(6)
    x = torch.randn(4, 12, dtype=f64, generator=gen)
    target = torch.randn(4, 1, dtype=f64, generator=gen)

    def shortcut_loss(
        x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, w_s: Tensor
    ) -> Tensor:
        hidden = torch.relu(x @ w1 + b1)
        return ((hidden @ w2 + b2 + x @ w_s - target) ** 2).mean()

    shapes = [(12, 10), (10,), (10, 1), (1,), (12, 1)]
    params = [torch.randn(s, dtype=f64, generator=gen) / 3 for s in shapes]
    return Example(shortcut_loss, [x, *params], ["x", "w1", "b1", "w2", "b2", "w_s"])


def _loss_gradient(x: Tensor, grad_w_s: Tensor) -> Tensor:
    """dL/dY_hat, from grad_w_s = x.T @ dL/dY_hat: x has independent rows (fewer
    than columns).

    The post's loss holds its target, which the catalogue cannot see; this recovers
    the one number per example that the target decides.
    """
    return torch.linalg.lstsq(x.T, grad_w_s).solution


def _shortcut_one_path(
    right: tuple[Tensor, ...], x: Tensor, *params: Tensor
) -> tuple[Tensor, ...]:
    grad_x, *rest = right
    w_s = params[-1]
    return (grad_x - _loss_gradient(x, rest[-1]) @ w_s.T, *rest)


def _shortcut_w_s_from_hidden(
    right: tuple[Tensor, ...], x: Tensor, w1: Tensor, b1: Tensor, *params: Tensor
) -> tuple[Tensor, ...]:
    hidden = torch.relu(x @ w1 + b1)
    return (*right[:-1], hidden.T @ _loss_gradient(x, right[-1]))


_SHORTCUT_CATALOGUE = Catalogue(
    "post 6",
    (
        Mistake(
            "the second path into X, through X W_s, is missing",
            "X reaches Ŷ through W1 and through W_s, and the two paths' gradients add: "
            f"grad_x = grad_z @ w1.T + grad_y_hat @ w_s.T; {_SHORTCUT}",
            _shortcut_one_path,
            needs_right=True,
        ),
        Mistake(
            "W_s's gradient uses the hidden activations instead of X",
            "X W_s is a linear layer whose input is X, so grad_w_s = x.T @ grad_y_hat; "
            "see 'The backward pass, one layer at a time' in post 6",
            _shortcut_w_s_from_hidden,
            needs_right=True,
        ),
        Mistake(
            "the 1/N of the mean squared error is missing",
            "grad_y_hat = 2 (Ŷ - t) / N, and every gradient after it inherits the 1/N; "
            "see 'The backward pass, one layer at a time' in post 6",
            lambda right, x, *params: tuple(g * x.shape[0] for g in right),
            needs_right=True,
        ),
    ),
    _shortcut_example,
    more=more_shortcut,
    sizes=sizes_batch,
)


# --- post 7: label smoothing ------------------------------------------------------

_SMOOTH = "see 'Cross-entropy: most of the Jacobian cancels' in post 7"
_ALPHA = 0.1


def _smoothing_example() -> Example:
    def smoothed_ce(logits: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(logits, target, label_smoothing=_ALPHA)

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
            "the target distribution is q = (1 - α) onehot + α / C, and the gradient "
            f"is (softmax - q) / N; {_SMOOTH}",
            lambda z, t: _smoothed(z, t, onehot(t, z)),
        ),
        Mistake(
            "the α / C of the smoothed target is left out",
            "q = (1 - α) onehot + α / C gives every class α / C, and q sums to 1; "
            f"{_SMOOTH}",
            lambda z, t: _smoothed(z, t, (1 - _ALPHA) * onehot(t, z)),
        ),
        Mistake(
            "the target's 1 - α is left out: q = onehot + α / C",
            "the target class gets 1 - α + α / C, so that q sums to 1; " + _SMOOTH,
            lambda z, t: _smoothed(z, t, onehot(t, z) + _ALPHA / z.shape[1]),
        ),
        Mistake(
            "the 1/N of the mean over the batch is missing",
            "the loss is the mean over the batch, so each example's gradient is "
            f"divided by N; {_SMOOTH}",
            lambda z, t: _smoothed(z, t, _smooth_q(z, t)) * z.shape[0],
        ),
    ),
    _smoothing_example,
    more=more_label_smoothing,
    sizes=rows_and_columns,
)


def _smooth_q(z: Tensor, t: Tensor) -> Tensor:
    return (1 - _ALPHA) * onehot(t, z) + _ALPHA / z.shape[1]


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
    more=more_matrix,
    sizes=rows_and_columns,
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


def _eval_x_hat(
    right: tuple[Tensor, ...], g: Tensor, x: Tensor, gamma: Tensor
) -> Tensor:
    """x_hat with the running statistics, which the catalogue cannot see, recovered
    from the right answer: grad_x = gamma / sigma_bar * g gives sigma_bar, and
    grad_gamma = sum(g * (x - mu)) / sigma_bar gives mu (least squares over the
    rows, per feature)."""
    slope = gamma * g  # grad_x * sigma_bar
    sigma_bar = (slope * slope).sum(0) / (slope * right[0]).sum(0)
    mu = ((g * x).sum(0) - sigma_bar * right[1]) / g.sum(0)
    return (x - mu) / sigma_bar


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
        Mistake(
            "grad_gamma and grad_beta are not summed over the batch",
            "gamma and beta serve every row of the batch, so their gradients sum over "
            f"it, .sum(0), in eval mode as in training; {_EVAL}",
            lambda right, g, x, gamma, beta: (
                right[0],
                g * _eval_x_hat(right, g, x, gamma),
                g,
            ),
            needs_right=True,
        ),
        Mistake(
            "grad_x divides by the running variance instead of its square root",
            "sigma_bar = sqrt(running_var + eps): grad_x = gamma / sigma_bar * "
            f"grad_out; {_EVAL}",
            lambda right, g, x, gamma, beta: (
                right[0] ** 2 / (gamma * g),
                right[1],
                right[2],
            ),
            needs_right=True,
        ),
        Mistake(
            "grad_beta averages over the batch instead of summing",
            "beta is added to every row, so its gradient sums them, .sum(0); " + _EVAL,
            lambda right, g, x, gamma, beta: (right[0], right[1], g.mean(0)),
            needs_right=True,
        ),
    ),
    _batchnorm_eval_example,
    more=more_batchnorm_eval,
    sizes=sizes_batch,
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


def _bag_right(g: Tensor, idx: Tensor, table: Tensor) -> Tensor:
    return _bag(g, idx, table, (g / idx.shape[1])[:, None, :].expand(*idx.shape, -1))


def _bag_once_per_sentence(g: Tensor, idx: Tensor, table: Tensor) -> Tensor:
    grad = torch.zeros_like(table)
    for sentence, tokens in enumerate(idx):
        grad[tokens.unique()] += g[sentence] / idx.shape[1]
    return grad


def _bag_assigned(g: Tensor, idx: Tensor, table: Tensor) -> Tensor:
    per_position = (g / idx.shape[1])[:, None, :].expand(*idx.shape, -1)
    return embedding_assigned(per_position, idx, table)


def _bag_one_write(got: Tensor, g: Tensor, idx: Tensor, table: Tensor) -> bool:
    per_position = (g / idx.shape[1])[:, None, :].expand(*idx.shape, -1)
    return one_write_per_row(got, per_position, idx, table)


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
        Mistake(
            "it is the right answer plus the table itself",
            "start the gradient from zeros (torch.zeros_like(table)), not from a copy "
            f"of the table; {_BAG}",
            lambda g, idx, table: table + _bag_right(g, idx, table),
        ),
        Mistake(
            "the 1/T of the mean is applied twice",
            "the mean divides by T once, in its backward as in its forward; " + _BAG,
            lambda g, idx, table: _bag_right(g, idx, table) / idx.shape[1],
        ),
        Mistake(
            "a token used twice in one sentence is counted once",
            "each position is a lookup of its own: a token at two positions gets "
            "2/T of its sentence's gradient; see 'Repeated tokens must add up' in "
            "post 10",
            _bag_once_per_sentence,
        ),
    ),
    _bag_example,
    more=more_bag,
    sizes=sizes_bag,
)


# --- post 10: a table tied to the output projection ---------------------------------

_TYING = "see 'One table, two uses: weight tying' in post 10"


def _tied_example() -> Example:
    def tied_scores(idx: Tensor, table: Tensor) -> Tensor:
        return table[idx] @ table.T

    idx = torch.tensor([[1, 4, 1], [0, 5, 4]])
    table = torch.randn(6, 4, dtype=f64, generator=_gen(10))
    return Example(tied_scores, [idx, table], ["idx", "table"])


def _tied_parts(g: Tensor, idx: Tensor, table: Tensor) -> tuple[Tensor, Tensor]:
    """The lookup's part (a scatter-add of grad_out @ table) and the output
    projection's (grad_out's rows transposed times the looked-up rows), (V, D)."""
    vocabulary, width = table.shape
    lookup = torch.zeros_like(table).index_add_(
        0, idx.reshape(-1), (g @ table).reshape(-1, width)
    )
    output = g.reshape(-1, vocabulary).T @ table[idx].reshape(-1, width)
    return lookup, output


def _tied_output_transposed(g: Tensor, idx: Tensor, table: Tensor) -> Tensor:
    """H^T G, (D, V): the weight gradient of H @ W for W = table.T."""
    vocabulary, width = table.shape
    return table[idx].reshape(-1, width).T @ g.reshape(-1, vocabulary)


def _tied_one_write(g: Tensor, idx: Tensor, table: Tensor) -> Tensor:
    return embedding_assigned(g @ table, idx, table) + _tied_parts(g, idx, table)[1]


def _tied_one_write_matches(got: Tensor, g: Tensor, idx: Tensor, table: Tensor) -> bool:
    lookup_part = got.to(table.dtype) - _tied_parts(g, idx, table)[1]
    return one_write_per_row(lookup_part, g @ table, idx, table)


def _tied_lookups_averaged(g: Tensor, idx: Tensor, table: Tensor) -> Tensor:
    lookup, output = _tied_parts(g, idx, table)
    uses = torch.bincount(idx.reshape(-1), minlength=table.shape[0]).clamp_min(1)
    return lookup / uses[:, None].to(table.dtype) + output


_TIED = Catalogue(
    "post 10",
    (
        Mistake(
            "it is the lookup's part only: the output projection's use is missing",
            "the table is used twice, and the gradients of the two uses add: the "
            f"lookup's scatter-add plus grad_scores.T @ H; {_TYING}",
            lambda g, idx, table: _tied_parts(g, idx, table)[0],
        ),
        Mistake(
            "it is the output projection's part only: the lookup's use is missing",
            "the table is used twice, and the gradients of the two uses add: the "
            f"output's grad_scores.T @ H plus the lookup's scatter-add; {_TYING}",
            lambda g, idx, table: _tied_parts(g, idx, table)[1],
        ),
        Mistake(
            "it is the output projection's part only, and transposed: H.T @ G",
            "H.T @ G is the gradient of W = table.T, (D, V); the table's is its "
            f"transpose, G.T @ H, (V, D), plus the lookup's part; {_TYING}",
            _tied_output_transposed,
        ),
        Mistake(
            "the output projection's part is H.T @ G reshaped to (V, D), not "
            "transposed",
            "H.T @ G is the gradient of W = table.T, (D, V): transpose it, G.T @ H; "
            f".reshape and .view do not turn a matrix around; {_TYING}",
            lambda g, idx, table: (
                _tied_parts(g, idx, table)[0]
                + _tied_output_transposed(g, idx, table).reshape(table.shape)
            ),
        ),
        Mistake(
            "the lookup's part keeps one write per repeated token",
            "grad[idx] = and grad[idx] += with a tensor of indices write a repeated "
            "token's row once: use index_add_; see 'Repeated tokens must add up' in "
            "post 10",
            _tied_one_write,
            matches=_tied_one_write_matches,
        ),
        Mistake(
            "the two uses' gradients are averaged instead of added",
            "a tensor used twice gets the sum of the gradients of its uses, not "
            f"their mean; {_TYING}",
            lambda g, idx, table: (
                (_tied_parts(g, idx, table)[0] + _tied_parts(g, idx, table)[1]) / 2
            ),
        ),
        Mistake(
            "a repeated token gets the mean of its lookups' gradients, not their sum",
            "each use of a token is a lookup of its own, and their gradients add; see "
            "'Repeated tokens must add up' in post 10",
            _tied_lookups_averaged,
        ),
        Mistake(
            "the output projection's part is averaged over the positions",
            "the projection's weight serves every position, so its gradient sums "
            f"over them, G.T @ H, with no 1/(B·T); {_TYING}",
            lambda g, idx, table: (
                _tied_parts(g, idx, table)[0]
                + _tied_parts(g, idx, table)[1] / idx.numel()
            ),
        ),
    ),
    _tied_example,
    more=more_tied,
    sizes=sizes_tied,
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


def _self_attention_scaled_by_d(
    g: Tensor, x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor
) -> tuple[Tensor, ...]:
    def forward(x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor) -> Tensor:
        q, k = x @ w_q, x @ w_k
        scores = q @ k.T / q.shape[-1]
        return torch.softmax(scores, dim=-1) @ (x @ w_v)

    return tuple(autograd(forward, (x, w_q, w_k, w_v), g))


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
        Mistake(
            "the scores are scaled by 1/d instead of 1/√d",
            "S = Q Kᵀ / √d, with d the width of q and k: the same scale in the "
            "backward's P and in grad_q and grad_k; see 'The forward pass in three "
            "steps' in post 12",
            _self_attention_scaled_by_d,
        ),
    ),
    _self_attention_example,
    more=more_self_attention,
    sizes=sizes_self_attention,
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
        Mistake(
            "tanh's derivative is written (1 - tanh(x))²",
            f"the square is on tanh, inside: 1 - tanh(x)²; {_TAPE}",
            lambda g, x: g * (1 - torch.tanh(x)) ** 2,
        ),
        Mistake(
            "it multiplies by tanh(x) itself instead of its derivative",
            "the saved out is tanh(x); the local derivative is 1 - out**2; " + _TAPE,
            lambda g, x: g * torch.tanh(x),
        ),
    ),
    _tanh_example,
    more=more_elementwise,
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
        Mistake(
            "a's gradient passes grad_out on without dividing by b",
            f"a is divided by b, so its local derivative is 1 / b; {_TAPE}",
            lambda g, a, b: (g.clone(), (-g * a / b**2).sum(0)),
        ),
        Mistake(
            "b's gradient leaves a out: -1 / b² alone",
            "d(a / b)/db = -a / b²: the numerator stays in the product, as the "
            f"other factor does in __mul__'s backward; {_TAPE}",
            lambda g, a, b: (g / b, (-g / b**2).sum(0)),
        ),
    ),
    _divide_example,
    more=more_divide,
    sizes=sizes_batch,
)


# --- post 15: a residual connection around a layer norm ---------------------------

_EXERCISE_15 = "'Step 2: a residual connection around a layer norm' in post 15"
_RESIDUAL_LN = f"see {_EXERCISE_15}"
_LN_PATHS = f"see 'Three ways for x_i to reach the loss' in post 9 and {_EXERCISE_15}"
_LN_EPS = 1e-5


def _residual_layernorm_example() -> Example:
    def residual_layernorm(x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        return x + F.layer_norm(x, x.shape[-1:], gamma, beta, eps=_LN_EPS)

    gen = _gen(2)
    inputs = [
        torch.randn(2, 3, 5, generator=gen, dtype=f64) * 2 + 1,
        torch.randn(5, generator=gen, dtype=f64),
        torch.randn(5, generator=gen, dtype=f64),
    ]
    return Example(residual_layernorm, inputs, ["x", "gamma", "beta"])


def _ln_x_hat(x: Tensor) -> tuple[Tensor, Tensor]:
    """x normalised over its last dimension, and 1 / sigma."""
    inv_std = 1 / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + _LN_EPS)
    return (x - x.mean(-1, keepdim=True)) * inv_std, inv_std


def _rows(x: Tensor) -> tuple[int, ...]:
    """The dimensions gamma and beta are broadcast over: all but the last."""
    return tuple(range(x.ndim - 1))


def _residual_ln_grad_x(
    g: Tensor,
    x: Tensor,
    gamma: Tensor,
    *,
    identity: bool = True,
    mean_path: bool = True,
    variance_path: bool = True,
    with_gamma: bool = True,
) -> Tensor:
    """grad_x of y = x + layernorm(x), with the paths a mistake leaves out."""
    x_hat, inv_std = _ln_x_hat(x)
    g_hat = g * gamma if with_gamma else g
    grad_ln = g_hat
    if mean_path:
        grad_ln = grad_ln - g_hat.mean(-1, keepdim=True)
    if variance_path:
        grad_ln = grad_ln - x_hat * (g_hat * x_hat).mean(-1, keepdim=True)
    return g + inv_std * grad_ln if identity else inv_std * grad_ln


def _residual_ln_grads(
    g: Tensor, x: Tensor, gamma: Tensor, beta: Tensor, **leave_out: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """The three gradients, grad_x with the paths ``leave_out`` turns off."""
    grad_x = _residual_ln_grad_x(g, x, gamma, **leave_out)
    return grad_x, (g * _ln_x_hat(x)[0]).sum(_rows(x)), g.sum(_rows(x))


_RESIDUAL_LAYERNORM = Catalogue(
    "post 15",
    (
        Mistake(
            "it is layer norm's gradient alone: the identity path's grad_out is lost",
            "y = x + LN(x) uses x twice, and the identity path adds grad_out "
            "unchanged: grad_x = grad_out + LN's backward; see 'The residual "
            "stream's backward' in post 15",
            lambda g, x, gamma, beta: _residual_ln_grads(
                g, x, gamma, beta, identity=False
            ),
        ),
        Mistake(
            "the path through the mean is missing (the -mean(g_hat) term)",
            f"x also moves the mean of its row; {_LN_PATHS}",
            lambda g, x, gamma, beta: _residual_ln_grads(
                g, x, gamma, beta, mean_path=False
            ),
        ),
        Mistake(
            "the path through the variance is missing (the "
            "-x_hat * mean(g_hat * x_hat) term)",
            f"x also moves the variance of its row; {_LN_PATHS}",
            lambda g, x, gamma, beta: _residual_ln_grads(
                g, x, gamma, beta, variance_path=False
            ),
        ),
        Mistake(
            "gamma is left out of g_hat = grad_out * gamma",
            "LN(x) = gamma * x_hat + beta, so the gradient reaching x_hat is "
            f"grad_out times gamma; {_LN_PATHS}",
            lambda g, x, gamma, beta: _residual_ln_grads(
                g, x, gamma, beta, with_gamma=False
            ),
        ),
        Mistake(
            "gamma's gradient is summed over dim 0 only, as for a 2-D x",
            "gamma is broadcast over every dimension but the last, here (batch, "
            f"position): sum over all of them; {_RESIDUAL_LN}",
            lambda g, x, gamma, beta: (
                _residual_ln_grad_x(g, x, gamma),
                (g * _ln_x_hat(x)[0]).sum(0),
                g.sum(_rows(x)),
            ),
        ),
        Mistake(
            "beta's gradient is summed over dim 0 only, as for a 2-D x",
            "beta is broadcast over every dimension but the last, here (batch, "
            f"position): sum over all of them; {_RESIDUAL_LN}",
            lambda g, x, gamma, beta: (
                _residual_ln_grad_x(g, x, gamma),
                (g * _ln_x_hat(x)[0]).sum(_rows(x)),
                g.sum(0),
            ),
        ),
    ),
    _residual_layernorm_example,
    more=more_residual_layernorm,
    sizes=sizes_residual_layernorm,
)


POST_CATALOGUES: dict[str, Catalogue] = {
    "cross-entropy": _CROSS_ENTROPY,
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
    "weight-tying": _TIED,
    "self-attention": _SELF_ATTENTION,
    "tanh": _TANH,
    "divide": _DIVIDE,
    "residual-layernorm": _RESIDUAL_LAYERNORM,
}
