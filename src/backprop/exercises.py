"""Exercises: a grader that runs your backward pass and says, in words, what is wrong.

`check_backward` takes the name of a layer and a hand-written backward with
exactly the signature of the library's ``<name>_backward`` (see
`backprop.functional`), runs it on a few small random cases chosen to expose
mistakes (a batch of 1 and a larger batch, non-square shapes so that a transpose
cannot hide, float64 and float32, repeated indices, a mask, stride and padding),
and compares every gradient it returns with ``torch.autograd``'s.

A wrong answer never raises: a gradient of the wrong shape, the wrong number of
gradients, ``None``, an exception from the candidate or a candidate that runs far
too long all end up in the `Report`. When a gradient is wrong the report
compares it with the right answer and says what kind of wrong it is: transposed,
off by a constant factor (and which one), off by its sign, not summed over the
batch, wrong only on rows looked up more than once, right only for a batch of 1
or on square shapes, or close but beyond float64's precision.

`check_gradient` does the same for any function of tensors, and
`exercise` / `exercise_gradient` are what a post's exercise cells call:
they show the report and raise `ExerciseNotDone` until the answer is right,
so that "Run all" in a notebook stops at the first unsolved exercise.

Like `backprop.gradcheck`, this module is an oracle, so it calls
``torch.autograd``; the layers themselves never do.
"""

from __future__ import annotations

import functools
import itertools
import math
import signal
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TypeGuard

import torch
import torch.nn.functional as F
from torch import Tensor

from backprop._checks import shape_str

__all__ = [
    "LAYERS",
    "ExerciseNotDone",
    "Report",
    "check_backward",
    "check_gradient",
    "exercise",
    "exercise_gradient",
]

f64, f32 = torch.float64, torch.float32

# A right answer computed another way differs from autograd's by rounding only:
# about 1e-15 relative in float64, 1e-7 in float32. A difference is measured
# against the largest entry of the right answer, so near-zero entries cannot
# raise a false alarm.
_TOLERANCE = {f64: (1e-9, 1e-12), f32: (1e-4, 1e-6)}
# Looser, for recognising a known mistake (a transpose, a factor, a variant):
# the candidate may also have rounded differently.
_RECOGNISE = {f64: (1e-6, 1e-9), f32: (1e-3, 1e-5)}
# Within this (relative) of the right answer but beyond _TOLERANCE: a precision
# issue rather than a wrong formula.
_PRECISION_BAND = 1e-3

_TORCH_DIR = str(Path(torch.__file__).parent)
_THIS_FILE = str(Path(__file__))


# ----------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------


@dataclass
class Report:
    """What the grader found: ``ok``, a headline, the diagnoses and the cases tried.

    ``print(report)`` gives plain text (lines of at most 88 characters); as the
    last expression of a notebook cell the report shows as Markdown. It is truthy
    when the candidate is right.

    Attributes
    ----------
    name : str
        The layer or function checked, e.g. ``"lin"``.
    ok : bool
        True when every gradient matched autograd's on every case.
    headline : str
        One line: what was checked, or what went wrong.
    problems : list of str
        One paragraph per diagnosis, each naming the gradient it is about.
    cases : list of str
        One line per case tried, starting with ``✓`` or ``✗``.
    unsolved : bool
        True when the candidate raised ``NotImplementedError`` (a stub).

    Examples
    --------
    >>> from backprop.exercises import check_backward
    >>> from backprop.functional import relu_backward
    >>> report = check_backward("relu", relu_backward)
    >>> report.ok
    True
    >>> report.assert_ok()
    """

    name: str
    ok: bool
    headline: str
    problems: list[str] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)
    unsolved: bool = False

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        lines = _wrap(self.headline)
        for problem in self.problems:
            lines += _wrap(problem, indent="- ", subsequent="  ")
        if self.cases and not self.ok:
            lines.append("Cases tried:")
            for case in self.cases:
                lines += _wrap(case, indent="  ", subsequent="      ")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_markdown_(self) -> str:
        parts = [f"**{_md(self.headline)}**"]
        if self.problems:
            parts.append("\n".join(f"- {_md(problem)}" for problem in self.problems))
        if self.cases and not self.ok:
            parts.append(
                "Cases tried:\n\n" + "\n".join(f"- {_md(c)}" for c in self.cases)
            )
        return "\n\n".join(parts)

    def assert_ok(self) -> None:
        """Raise ``AssertionError`` with the report unless the candidate is right.

        Raises
        ------
        AssertionError
            When ``ok`` is False; the message is the whole report.

        Examples
        --------
        >>> from backprop.exercises import check_backward
        >>> from backprop.functional import mse_backward
        >>> check_backward("mse", mse_backward).assert_ok()
        """
        if not self.ok:
            raise AssertionError("\n" + str(self))


def _wrap(text: str, indent: str = "", subsequent: str = "  ") -> list[str]:
    out = []
    for number, paragraph in enumerate(text.split("\n")):
        first = indent if number == 0 else subsequent
        out += textwrap.wrap(
            paragraph,
            width=88,
            initial_indent=first,
            subsequent_indent=subsequent,
            break_long_words=False,
            break_on_hyphens=False,
        ) or [first.rstrip()]
    return out


def _md(text: str) -> str:
    # Markdown would read "*" as emphasis and "_" inside names such as grad_w likewise;
    # code-like names are in backticks already, so only bare asterisks need escaping.
    return text.replace("*", "\\*").replace("\n", "  \n")


# ----------------------------------------------------------------------------------
# Cases, and what we know about the mistakes each one can reveal
# ----------------------------------------------------------------------------------


@dataclass
class _Variant:
    """A known wrong answer for one gradient, and what it means."""

    grad: str
    value: Tensor
    meaning: str


@dataclass
class _Spot:
    """Entries of one gradient where a known mistake, and only it, goes wrong."""

    grad: str
    mask: Tensor  # bool, the gradient's shape (or broadcastable to it)
    meaning: str


@dataclass
class _Case:
    label: str
    args: tuple[object, ...]  # the candidate's positional arguments
    expected: tuple[Tensor, ...]  # autograd's gradients, in the candidate's order
    grads: tuple[str, ...]  # their names: "grad_x", ...
    batch: int | None = None  # the batch size where that means something
    square: bool | None = None  # None: square shapes do not apply to this case
    # Named sizes for naming a constant factor: symbol -> (value, what it is).
    sizes: dict[str, tuple[float, str]] = field(default_factory=dict)
    variants: list[_Variant] = field(default_factory=list)
    spots: list[_Spot] = field(default_factory=list)
    note: str = ""  # said when the candidate returns nan or inf on this case
    factor_hints: dict[str, str] = field(default_factory=dict)


@dataclass
class _Layer:
    signature: str
    grads: tuple[str, ...]
    coverage: str
    make_cases: Callable[[torch.Generator], list[_Case]]
    loss: bool = False  # a loss's backward takes no grad_out

    @property
    def bare(self) -> bool:
        return len(self.grads) == 1


def _randn(gen: torch.Generator, *shape: int, dtype: torch.dtype = f64) -> Tensor:
    return torch.randn(shape, generator=gen, dtype=f64).to(dtype)


def _is_float(t: object) -> TypeGuard[Tensor]:
    return isinstance(t, Tensor) and t.is_floating_point()


def _autograd(
    forward: Callable[..., Tensor], inputs: Sequence[object], grad_out: Tensor | None
) -> list[Tensor]:
    """Gradients of ``sum(forward(*inputs) * grad_out)`` for each float tensor input."""
    leaves = [
        t.detach().clone().requires_grad_() if _is_float(t) else t for t in inputs
    ]
    wrt = [t for t in leaves if _is_float(t)]
    with torch.enable_grad():
        out = forward(*leaves)
        seed = torch.ones_like(out) if grad_out is None else grad_out
        grads = torch.autograd.grad(out, wrt, seed, allow_unused=True)
    return [
        torch.zeros_like(t) if g is None else g.detach()
        for t, g in zip(wrt, grads, strict=True)
    ]


def _ones_variants(
    forward: Callable[..., Tensor],
    inputs: Sequence[object],
    grad_out: Tensor,
    grads: Sequence[str],
) -> list[_Variant]:
    """The gradient for a grad_out of all ones: forgetting to multiply by grad_out."""
    values = _autograd(forward, inputs, torch.ones_like(grad_out))
    meaning = (
        "it is the gradient for a grad_out of all ones: multiply by grad_out, the "
        "gradient arriving from the layer after (the chain rule)"
    )
    return [
        _Variant(name, value, meaning)
        for name, value in zip(grads, values, strict=True)
    ]


def _dtype_label(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _label(dtype: torch.dtype, **named: object) -> str:
    parts = []
    for name, value in named.items():
        text = shape_str(value) if isinstance(value, Tensor) else str(value)
        parts.append(f"{name} {text}")
    return ", ".join(parts) + f", {_dtype_label(dtype)}"


_BATCH_HINTS = {
    "1/N": "did you average over the batch instead of summing?",
    "N": "is a 1/N missing, or did you sum where a single row was meant?",
}


# --- linear layer -----------------------------------------------------------------

_LIN_SHAPES = [(1, 3, 5, f64), (6, 4, 3, f64), (4, 4, 4, f64), (5, 2, 7, f32)]


def _lin_cases(gen: torch.Generator, weight_out_in: bool) -> list[_Case]:
    cases = []
    for n, n_in, n_out, dtype in _LIN_SHAPES:
        x = _randn(gen, n, n_in, dtype=dtype)
        w_shape = (n_out, n_in) if weight_out_in else (n_in, n_out)
        w = _randn(gen, *w_shape, dtype=dtype)
        b = _randn(gen, n_out, dtype=dtype)
        grad_out = _randn(gen, n, n_out, dtype=dtype)

        def forward(
            x: Tensor, w: Tensor, b: Tensor, out_in: bool = weight_out_in
        ) -> Tensor:
            return F.linear(x, w if out_in else w.T, b)

        grads = ("grad_x", "grad_w", "grad_b")
        expected = _autograd(forward, (x, w, b), grad_out)
        variants = _ones_variants(forward, (x, w, b), grad_out, grads)
        variants.append(
            _Variant(
                "grad_b",
                grad_out.sum(1),
                "it sums grad_out over the features (axis 1) instead of over the batch "
                "(axis 0): b is added to every row, so its gradient is grad_out.sum(0)",
            )
        )
        cases.append(
            _Case(
                label=_label(dtype, x=x, w=w, b=b),
                args=(grad_out, x, w, b),
                expected=tuple(expected),
                grads=grads,
                batch=n,
                square=n == n_in == n_out,
                sizes={
                    "N": (n, "the batch size"),
                    "n_in": (n_in, "the inputs"),
                    "n_out": (n_out, "the outputs"),
                },
                variants=variants,
                factor_hints=_BATCH_HINTS,
            )
        )
    return cases


# --- relu ---------------------------------------------------------------------------


def _relu_cases(gen: torch.Generator) -> list[_Case]:
    cases = []
    for shape, dtype in [((1, 7), f64), ((5, 3), f64), ((4, 4), f64), ((3, 6), f32)]:
        x = _randn(gen, *shape, dtype=dtype)
        x.view(-1)[::4] = 0.0  # exact zeros: relu's kink, where conventions differ
        grad_out = _randn(gen, *shape, dtype=dtype)
        expected = _autograd(torch.relu, (x,), grad_out)
        cases.append(
            _Case(
                label=_label(dtype, x=x) + ", some x exactly 0",
                args=(grad_out, x),
                expected=tuple(expected),
                grads=("grad_x",),
                batch=shape[0],
                variants=_ones_variants(torch.relu, (x,), grad_out, ("grad_x",)),
                spots=[
                    _Spot(
                        "grad_x",
                        x == 0,
                        "it is wrong only where x is exactly 0, relu's kink: "
                        "torch.relu's gradient is 0 there, so pass grad_out where "
                        "x > 0 (not x >= 0)",
                    )
                ],
            )
        )
    return cases


# --- mse ----------------------------------------------------------------------------


def _mse(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred - target) ** 2).mean()


def _mse_cases(gen: torch.Generator) -> list[_Case]:
    cases = []
    for shape, dtype in [((1, 3), f64), ((6, 1), f64), ((4, 4), f64), ((5, 2), f32)]:
        pred = _randn(gen, *shape, dtype=dtype)
        target = _randn(gen, *shape, dtype=dtype)
        (expected,) = _autograd(lambda p, t=target: _mse(p, t), (pred,), None)
        cases.append(
            _Case(
                label=_label(dtype, pred=pred, target=target),
                args=(pred, target),
                expected=(expected,),
                grads=("grad_pred",),
                batch=shape[0],
                square=shape[0] == shape[1],
                sizes={
                    "n": (pred.numel(), "the number of values averaged, pred.numel()"),
                    "N": (shape[0], "the rows of pred"),
                    "d": (shape[1], "the columns of pred"),
                },
                factor_hints={
                    "n": "the 1/n of the mean is missing",
                    "1/2": "the 2 of the derivative of a square is missing",
                },
            )
        )
    return cases


# --- logsumexp, softmax, log-softmax, cross-entropy -----------------------------------

_SOFTMAX_SHAPES = [((1, 5), f64, 1.0), ((6, 3), f64, 1.0), ((4, 4), f64, 1.0)]
_SOFTMAX_SHAPES += [((3, 5), f32, 1.0), ((3, 4), f64, 800.0)]
_LARGE_NOTE = (
    "x has entries near 800 in this case, and exp(800) overflows even float64: "
    "subtract each row's maximum before exp (the stable softmax)"
)


def _logits(
    gen: torch.Generator, shape: tuple[int, int], dtype: torch.dtype, scale: float
) -> Tensor:
    x = _randn(gen, *shape, dtype=dtype)
    return x if scale == 1 else (x * 5 + scale).to(dtype)


def _softmax_family_cases(gen: torch.Generator, kind: str) -> list[_Case]:
    forward = {
        "logsumexp": lambda x: torch.logsumexp(x, dim=-1),
        "softmax": lambda x: torch.softmax(x, dim=-1),
        "log_softmax": lambda x: torch.log_softmax(x, dim=-1),
    }[kind]
    cases = []
    for shape, dtype, scale in _SOFTMAX_SHAPES:
        x = _logits(gen, shape, dtype, scale)
        grad_shape = shape[:1] if kind == "logsumexp" else shape
        grad_out = _randn(gen, *grad_shape, dtype=dtype)
        (expected,) = _autograd(forward, (x,), grad_out)
        s = torch.softmax(x, dim=-1)
        variants = _ones_variants(forward, (x,), grad_out, ("grad_x",))
        if kind == "softmax":
            variants += [
                _Variant(
                    "grad_x",
                    grad_out * s * (1 - s),
                    "it uses only the diagonal of softmax's Jacobian, s(1 - s): every "
                    "output depends on every input of its row, so subtract "
                    "s * sum(grad_out * s) over the row",
                ),
                _Variant(
                    "grad_x",
                    s * (grad_out - (grad_out * s).sum(0, keepdim=True)),
                    "the sum runs over the batch (dim 0) instead of along the row "
                    "(dim -1), the dimension softmax normalises",
                ),
            ]
        if kind == "log_softmax":
            variants += [
                _Variant(
                    "grad_x",
                    grad_out * (1 - s),
                    "it uses only the diagonal of log-softmax's Jacobian, 1 - s: "
                    "subtract s * sum(grad_out) over the row",
                ),
                _Variant(
                    "grad_x",
                    grad_out - s * grad_out.sum(0, keepdim=True),
                    "the sum runs over the batch (dim 0) instead of along the row "
                    "(dim -1), the dimension log-softmax normalises",
                ),
            ]
        extra = ", x near 800" if scale != 1 else ""
        cases.append(
            _Case(
                label=_label(dtype, x=x) + extra,
                args=(grad_out, x),
                expected=(expected,),
                grads=("grad_x",),
                batch=shape[0],
                square=shape[0] == shape[1],
                sizes={"N": (shape[0], "the rows"), "C": (shape[1], "the columns")},
                variants=variants,
                note=_LARGE_NOTE if scale != 1 else "",
            )
        )
    return cases


def _cross_entropy_cases(gen: torch.Generator) -> list[_Case]:
    cases = []
    for shape, dtype, scale in _SOFTMAX_SHAPES:
        logits = _logits(gen, shape, dtype, scale)
        target = torch.randint(shape[1], shape[:1], generator=gen)
        # target holds integers, so autograd returns only the logits' gradient.
        (expected,) = _autograd(F.cross_entropy, (logits, target), None)
        n = shape[0]
        s = torch.softmax(logits, dim=-1)
        extra = ", logits near 800" if scale != 1 else ""
        cases.append(
            _Case(
                label=_label(dtype, logits=logits, target=target) + extra,
                args=(logits, target),
                expected=(expected,),
                grads=("grad_logits",),
                batch=n,
                square=shape[0] == shape[1],
                sizes={"N": (n, "the batch size"), "C": (shape[1], "the classes")},
                variants=[
                    _Variant(
                        "grad_logits",
                        s / n,
                        "the one-hot term is missing: the target's logit also gets "
                        "-1/N directly from -log p[target]",
                    )
                ],
                note=_LARGE_NOTE.replace("x has", "logits has") if scale != 1 else "",
                factor_hints={
                    "N": "the 1/N of the mean over the batch is missing",
                    "1/N": "did you divide by N twice?",
                    "N/C": "did you divide by the classes (C) instead of the "
                    "batch (N)?",
                },
            )
        )
    return cases


# --- embedding --------------------------------------------------------------------


def _embedding_cases(gen: torch.Generator) -> list[_Case]:
    configs = [  # idx, rows of the table, width, dtype
        (torch.tensor([2]), 4, 3, f64),
        (torch.tensor([1, 3, 1, 0, 3, 1]), 5, 3, f64),
        (torch.tensor([[4, 0, 4, 2], [5, 4, 0, 1]]), 7, 2, f64),
        (torch.tensor([0, 2, 2, 3]), 4, 4, f64),
        (torch.tensor([3, 1, 3]), 5, 2, f32),
    ]
    cases = []
    for idx, rows, width, dtype in configs:
        table = _randn(gen, rows, width, dtype=dtype)
        grad_out = _randn(gen, *idx.shape, width, dtype=dtype)
        (expected,) = _autograd(F.embedding, (idx, table), grad_out)
        counts = torch.bincount(idx.reshape(-1), minlength=rows)
        repeated = (counts > 1)[:, None].expand(rows, width)
        unused = (counts == 0)[:, None].expand(rows, width)
        spots = [
            _Spot(
                "grad_table",
                repeated,
                "it is wrong only on rows looked up more than once: such a row gets "
                "the sum of the gradients of all its lookups; accumulate (+=, "
                "index_add_) instead of assigning (=)",
            ),
            _Spot(
                "grad_table",
                unused,
                "it is wrong only on rows never looked up: their gradient is 0, so "
                "start from torch.zeros, not torch.empty",
            ),
        ]
        has_repeats = bool((counts > 1).any())
        variants = _ones_variants(F.embedding, (idx, table), grad_out, ("grad_table",))
        variants.append(
            _Variant(
                "grad_table",
                table + expected,
                "it is the right answer plus the table itself: start the gradient "
                "from zeros (torch.zeros_like(table)), not from a copy of the table",
            )
        )
        cases.append(
            _Case(
                label=_label(dtype, idx=idx, table=table)
                + (", repeated indices" if has_repeats else ""),
                args=(grad_out, idx, table),
                expected=(expected,),
                grads=("grad_table",),
                batch=idx.numel(),
                variants=variants,
                spots=spots,
            )
        )
    return cases


# --- batch norm and layer norm ----------------------------------------------------


def _norm(
    x: Tensor, gamma: Tensor, beta: Tensor, dim: int, eps: float, how: str
) -> Tensor:
    """A normalisation over ``dim`` in plain torch, correct or with a known mistake."""
    mean = x.mean(dim, keepdim=True)
    var = x.var(dim, keepdim=True, unbiased=how == "unbiased")
    if how in ("constant stats", "constant mean"):
        mean = mean.detach()
    if how in ("constant stats", "constant variance"):
        var = var.detach()
    return gamma * (x - mean) / torch.sqrt(var + eps) + beta


_NORM_MISTAKES = {
    "constant stats": "it has only the direct path, gamma * grad_out / sigma: x also "
    "moves the mean and the variance, and those two paths add the terms "
    "-mean(h) and -x_hat * mean(h * x_hat)",
    "constant mean": "the path through the mean is missing (the -mean(h) term)",
    "constant variance": "the path through the variance is missing (the "
    "-x_hat * mean(h * x_hat) term)",
    "unbiased": "it is the gradient with the unbiased variance (dividing by m - 1); "
    "the forward divides by m",
}


def _norm_cases(gen: torch.Generator, kind: str) -> list[_Case]:
    eps = 1e-5
    dim = 0 if kind == "batchnorm" else -1
    # Not two features for layer norm: x_hat is then ±1 whatever x is, the gradient
    # almost 0, and float32's comparison would measure rounding noise.
    shapes = [((8, 3), f64), ((6, 4), f64), ((4, 4), f64), ((5, 3), f32)]
    if kind == "layernorm":
        shapes.insert(0, ((1, 5), f64))
    else:
        shapes.insert(0, ((3, 5), f64))
    cases = []
    for shape, dtype in shapes:
        # An offset and a scale per column, so paths through the mean and the
        # variance matter.
        scale = torch.linspace(0.5, 2.0, shape[1], dtype=f64)
        x = (_randn(gen, *shape) * scale + 1.5).to(dtype)
        gamma = _randn(gen, shape[1], dtype=dtype)
        beta = _randn(gen, shape[1], dtype=dtype)
        grad_out = _randn(gen, *shape, dtype=dtype)
        inputs = (x, gamma, beta)

        def right(x: Tensor, g: Tensor, b: Tensor, dim: int = dim) -> Tensor:
            return _norm(x, g, b, dim, eps, "right")

        expected = _autograd(right, inputs, grad_out)
        grads = ("grad_x", "grad_gamma", "grad_beta")
        variants = _ones_variants(right, inputs, grad_out, grads)
        for how, meaning in _NORM_MISTAKES.items():
            value = _autograd(
                lambda x, g, b, dim=dim, how=how: _norm(x, g, b, dim, eps, how),
                inputs,
                grad_out,
            )[0]
            variants.append(_Variant("grad_x", value, meaning))
        no_eps = _autograd(
            lambda x, g, b: _norm(x, g, b, dim, 0.0, "right"), inputs, grad_out
        )
        variants.append(
            _Variant(
                "grad_x",
                no_eps[0],
                "it is the gradient without eps: keep eps inside the square root, "
                "sigma = sqrt(var + eps), in the backward too",
            )
        )
        if shape[0] > 1:
            other = (
                "over the batch (dim 0)"
                if kind == "layernorm"
                else "over a row (dim 1)"
            )
            wrong_axis = _autograd(
                lambda x, g, b: _norm(x, g, b, 1 - dim % 2, eps, "right"),
                inputs,
                grad_out,
            )
            variants.append(
                _Variant(
                    "grad_x",
                    wrong_axis[0],
                    f"it is the gradient of a normalisation {other}: {kind} takes its "
                    f"mean and variance over dim {dim}",
                )
            )
        if kind == "layernorm":
            x_hat = _norm(
                x, torch.ones_like(gamma), torch.zeros_like(beta), -1, eps, "right"
            )
            inv_sigma = torch.rsqrt(x.var(-1, keepdim=True, unbiased=False) + eps)
            g = grad_out
            factored = (
                gamma
                * inv_sigma
                * (
                    g
                    - g.mean(-1, keepdim=True)
                    - x_hat * (g * x_hat).mean(-1, keepdim=True)
                )
            )
            variants.append(
                _Variant(
                    "grad_x",
                    factored,
                    "gamma is factored out of the means as in batch norm, but in layer "
                    "norm gamma varies along the normalised dimension: take the means "
                    "of h = grad_out * gamma",
                )
            )
        cases.append(
            _Case(
                label=_label(dtype, x=x, gamma=gamma, beta=beta),
                args=(grad_out, x, gamma, beta),
                expected=tuple(expected),
                grads=grads,
                batch=shape[0],
                square=shape[0] == shape[1],
                sizes={
                    "N": (shape[0], "the batch size"),
                    "C": (shape[1], "the features"),
                },
                variants=variants,
                factor_hints=_BATCH_HINTS,
            )
        )
    return cases


# --- convolution ------------------------------------------------------------------


def _conv_cases(gen: torch.Generator) -> list[_Case]:
    configs = [  # x shape, w shape, stride, padding, dtype
        ((1, 2, 5, 6), (3, 2, 3, 2), 1, 0, f64),
        ((2, 3, 6, 5), (2, 3, 3, 3), 2, 1, f64),
        ((3, 1, 7, 7), (4, 1, 2, 2), 2, 0, f64),
        ((2, 2, 5, 5), (2, 2, 3, 3), 1, 1, f32),
    ]
    cases = []
    for x_shape, w_shape, stride, padding, dtype in configs:
        x = _randn(gen, *x_shape, dtype=dtype)
        w = _randn(gen, *w_shape, dtype=dtype)
        b = _randn(gen, w_shape[0], dtype=dtype)

        def forward(
            x: Tensor, w: Tensor, b: Tensor, s: int = stride, p: int = padding
        ) -> Tensor:
            return F.conv2d(x, w, b, stride=s, padding=p)

        out_shape = forward(x, w, b).shape
        grad_out = _randn(gen, *out_shape, dtype=dtype)
        grads = ("grad_x", "grad_w", "grad_b")
        inputs = (x, w, b)
        expected = _autograd(forward, inputs, grad_out)
        variants = _ones_variants(forward, inputs, grad_out, grads)
        variants.append(
            _Variant(
                "grad_w",
                expected[1].flip(-2, -1),
                "it is the right answer with the kernel flipped: the forward is a "
                "cross-correlation (no flip), so grad_w correlates the input patches "
                "with grad_out, without flipping",
            )
        )
        cases.append(
            _Case(
                label=_label(dtype, x=x, w=w, b=b)
                + f", stride {stride}, padding {padding}",
                args=(grad_out, x, w, b, stride, padding),
                expected=tuple(expected),
                grads=grads,
                batch=x_shape[0],
                sizes={"N": (x_shape[0], "the batch size")},
                variants=variants,
                factor_hints=_BATCH_HINTS,
            )
        )
    return cases


# --- attention ----------------------------------------------------------------------


def _attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def _attention_cases(gen: torch.Generator) -> list[_Case]:
    configs = [  # leading dims, Lq, Lk, d, dv, mask, dtype
        ((), 1, 5, 4, 3, None, f64),
        ((), 3, 5, 4, 2, None, f64),
        ((2,), 4, 4, 3, 5, "causal", f64),
        ((), 4, 6, 4, 3, "random", f64),
        ((), 3, 4, 2, 3, "random", f32),
    ]
    cases = []
    for lead, lq, lk, d, dv, mask_kind, dtype in configs:
        q = _randn(gen, *lead, lq, d, dtype=dtype)
        k = _randn(gen, *lead, lk, d, dtype=dtype)
        v = _randn(gen, *lead, lk, dv, dtype=dtype)
        grad_out = _randn(gen, *lead, lq, dv, dtype=dtype)
        mask = None
        if mask_kind == "causal":
            mask = torch.ones(lq, lk, dtype=torch.bool).tril()
        elif mask_kind == "random":
            mask = torch.rand(lq, lk, generator=gen) < 0.6
            mask[torch.arange(lq), torch.randint(lk, (lq,), generator=gen)] = True
        inputs = (q, k, v, mask)
        grads = ("grad_q", "grad_k", "grad_v")
        expected = _autograd(_attention, inputs, grad_out)
        variants = _ones_variants(_attention, inputs, grad_out, grads)
        if mask is not None:
            unmasked = _autograd(_attention, (q, k, v), grad_out)
            for name, value in zip(grads, unmasked, strict=True):
                variants.append(
                    _Variant(
                        name,
                        value,
                        "it is the gradient without the mask: recompute the scores "
                        "with "
                        "the mask in the backward too (masked scores get probability 0 "
                        "and so no gradient)",
                    )
                )
        args = (grad_out, q, k, v) if mask is None else (grad_out, q, k, v, mask)
        label = _label(dtype, q=q, k=k, v=v)
        if mask is not None:
            label += f", {mask_kind} mask {shape_str(mask)}"
        cases.append(
            _Case(
                label=label,
                args=args,
                expected=tuple(expected),
                grads=grads,
                batch=lq,
                sizes={
                    "d": (d, "the width of q and k"),
                    "Lq": (lq, "the queries"),
                    "Lk": (lk, "the keys"),
                },
                variants=variants,
                factor_hints={
                    "√d": "the 1/√d of the scores is missing in the backward",
                    "1/√d": "is the 1/√d scale applied twice?",
                },
            )
        )
    return cases


# --- the registry -----------------------------------------------------------------

_COVER_BATCH = "batch of 1 and larger, non-square and square, float64 and float32"

LAYERS: dict[str, _Layer] = {
    "lin": _Layer(
        "lin_backward(grad_out, x, w, b) -> (grad_x, grad_w, grad_b), w (n_in, n_out)",
        ("grad_x", "grad_w", "grad_b"),
        _COVER_BATCH,
        lambda gen: _lin_cases(gen, weight_out_in=False),
    ),
    "lin_out_in": _Layer(
        "lin_out_in_backward(grad_out, x, w, b) -> (grad_x, grad_w, grad_b), "
        "w (n_out, n_in) as nn.Linear stores it, out = x @ w.T + b",
        ("grad_x", "grad_w", "grad_b"),
        _COVER_BATCH,
        lambda gen: _lin_cases(gen, weight_out_in=True),
    ),
    "relu": _Layer(
        "relu_backward(grad_out, x) -> grad_x",
        ("grad_x",),
        "exact zeros in x, float64 and float32",
        _relu_cases,
    ),
    "mse": _Layer(
        "mse_backward(pred, target) -> grad_pred",
        ("grad_pred",),
        "one and several columns, float64 and float32",
        _mse_cases,
        loss=True,
    ),
    "logsumexp": _Layer(
        "logsumexp_backward(grad_out, x, dim=-1) -> grad_x",
        ("grad_x",),
        _COVER_BATCH + ", x near 800",
        lambda gen: _softmax_family_cases(gen, "logsumexp"),
    ),
    "softmax": _Layer(
        "softmax_backward(grad_out, x, dim=-1) -> grad_x",
        ("grad_x",),
        _COVER_BATCH + ", x near 800",
        lambda gen: _softmax_family_cases(gen, "softmax"),
    ),
    "log_softmax": _Layer(
        "log_softmax_backward(grad_out, x, dim=-1) -> grad_x",
        ("grad_x",),
        _COVER_BATCH + ", x near 800",
        lambda gen: _softmax_family_cases(gen, "log_softmax"),
    ),
    "cross_entropy": _Layer(
        "cross_entropy_backward(logits, target) -> grad_logits",
        ("grad_logits",),
        _COVER_BATCH + ", logits near 800",
        _cross_entropy_cases,
        loss=True,
    ),
    "embedding": _Layer(
        "embedding_backward(grad_out, idx, table) -> grad_table",
        ("grad_table",),
        "repeated and unused rows, 1-D and 2-D idx, float64 and float32",
        _embedding_cases,
    ),
    "batchnorm": _Layer(
        "batchnorm_backward(grad_out, x, gamma, beta, eps=1e-5) "
        "-> (grad_x, grad_gamma, grad_beta), x (N, C)",
        ("grad_x", "grad_gamma", "grad_beta"),
        "batches of 3 to 8, non-square and square, float64 and float32",
        lambda gen: _norm_cases(gen, "batchnorm"),
    ),
    "layernorm": _Layer(
        "layernorm_backward(grad_out, x, gamma, beta, eps=1e-5) "
        "-> (grad_x, grad_gamma, grad_beta), x (N, D)",
        ("grad_x", "grad_gamma", "grad_beta"),
        _COVER_BATCH,
        lambda gen: _norm_cases(gen, "layernorm"),
    ),
    "conv2d": _Layer(
        "conv2d_backward(grad_out, x, w, b, stride=1, padding=0) "
        "-> (grad_x, grad_w, grad_b)",
        ("grad_x", "grad_w", "grad_b"),
        "batch of 1 and larger, stride 1 and 2, padding 0 and 1, float64 and float32",
        _conv_cases,
    ),
    "attention": _Layer(
        "attention_backward(grad_out, q, k, v, mask=None) -> (grad_q, grad_k, grad_v)",
        ("grad_q", "grad_k", "grad_v"),
        "one and several queries, a leading batch dimension, causal and random masks, "
        "float64 and float32",
        _attention_cases,
    ),
}
"""The layers `check_backward` and `exercise` know, by name: each with the
signature its candidate must have, the gradients it returns and the cases tried."""


# ----------------------------------------------------------------------------------
# Running the candidate: time limit, exceptions
# ----------------------------------------------------------------------------------


class _TimeUp(BaseException):
    """Raised in the candidate by the alarm; a BaseException, so ``except Exception``
    in the candidate cannot swallow it."""


@dataclass
class _Outcome:
    value: object = None
    error: BaseException | None = None
    timed_out: bool = False


def _run_with_alarm(function: Callable[[], object], seconds: float) -> _Outcome:
    """Run in this (main) thread; SIGALRM interrupts it after ``seconds``.

    An alarm armed by someone else (a test runner's timeout) is put back
    afterwards with the time it had left, and is honoured if it falls due first.
    """
    started = time.monotonic()
    outer_delay, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    outer_deadline = started + outer_delay if outer_delay > 0 else None

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        outer_due = outer_deadline is not None and time.monotonic() >= outer_deadline
        if outer_due and callable(outer_handler):
            outer_handler(signum, frame)
        raise _TimeUp

    outer_handler = signal.signal(signal.SIGALRM, on_alarm)
    delay = seconds if outer_deadline is None else min(seconds, outer_delay)
    signal.setitimer(signal.ITIMER_REAL, delay)
    try:
        return _Outcome(value=function())
    except _TimeUp:
        return _Outcome(timed_out=True)
    except Exception as error:  # the candidate's own mistake, to be reported
        return _Outcome(error=error)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, outer_handler)
        if outer_deadline is not None:
            left = max(outer_deadline - time.monotonic(), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


def _run_in_thread(function: Callable[[], object], seconds: float) -> _Outcome:
    """Run in a daemon thread; stop waiting after ``seconds`` (it cannot be killed)."""
    outcome = _Outcome()

    def target() -> None:
        try:
            outcome.value = function()
        except Exception as error:
            outcome.error = error

    worker = threading.Thread(target=target, daemon=True, name="exercise-candidate")
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        return _Outcome(timed_out=True)
    return outcome


def _run(function: Callable[[], object], seconds: float) -> _Outcome:
    in_main = threading.current_thread() is threading.main_thread()
    if in_main and hasattr(signal, "setitimer"):
        return _run_with_alarm(function, seconds)
    return _run_in_thread(function, seconds)


def _where(error: BaseException) -> str:
    """The traceback's last frame in the reader's code, as ' (in f, line n: ...)'."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.filename != _THIS_FILE
    ]
    mine = [f for f in frames if not f.filename.startswith(_TORCH_DIR)]
    if not frames:
        return ""
    frame = (mine or frames)[-1]
    code = f": {frame.line.strip()}" if frame.line else ""
    return f" (in {frame.name}, line {frame.lineno}{code})"


def _describe_error(error: BaseException) -> str:
    message = str(error).strip().splitlines()
    first = message[0] if message else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


# ----------------------------------------------------------------------------------
# Comparing one gradient with the right answer, and saying what is wrong
# ----------------------------------------------------------------------------------


@dataclass
class _Verdict:
    ok: bool
    key: str = ""  # the same mistake in several cases has the same key
    message: str = ""
    ratio: float = 1.0  # for key "factor": the candidate's answer over the right one


def _close(got: Tensor, want: Tensor, tolerance: tuple[float, float]) -> bool:
    if got.shape != want.shape:
        return False
    rtol, atol = tolerance
    scale = want.abs().max().item() if want.numel() else 0.0
    diff = (got - want).abs().max().item() if want.numel() else 0.0
    return diff <= atol + rtol * scale


def _fraction(value: float) -> str:
    if abs(value - round(value)) < 1e-9:
        return str(round(value))
    return f"{value:.3g}"


def _factor_candidates(sizes: dict[str, tuple[float, str]]) -> list[tuple[str, float]]:
    """Expressions a constant factor may be, simplest first: N, 1/N, 2, N/C, √d, ..."""
    # A size of 1 is kept: it still names ratios such as N/C when N = 1.
    bases = [(name, float(value)) for name, (value, _) in sizes.items() if value > 0]
    out: list[tuple[str, float]] = []
    for name, value in bases:
        out += [(name, value), (f"1/{name}", 1 / value)]
    out += [("2", 2.0), ("1/2", 0.5)]
    for name, value in bases:
        out += [(f"2{name}", 2 * value), (f"1/(2{name})", 1 / (2 * value))]
        out += [(f"2/{name}", 2 / value), (f"{name}/2", value / 2)]
        out += [(f"√{name}", math.sqrt(value)), (f"1/√{name}", 1 / math.sqrt(value))]
        out += [(f"{name}²", value**2), (f"1/{name}²", 1 / value**2)]
    for (a, va), (b, vb) in itertools.permutations(bases, 2):
        out.append((f"{a}/{b}", va / vb))
    return out


def _factor_names(ratio: float, case: _Case) -> list[str]:
    """Every expression (``"1/N"``, ``"-2"``, ...) equal to ``ratio`` in this case."""
    sign = "-" if ratio < 0 else ""
    size = abs(ratio)
    return [
        sign + expression
        for expression, value in _factor_candidates(case.sizes)
        if abs(size - value) <= 1e-6 * value
    ]


def _factor_message(
    name: str, expression: str, ratio: float, cases: list[_Case], note: str
) -> str:
    """Say that ``name`` is off by ``expression`` (or by ``ratio``) in ``cases``."""
    first = cases[0]
    if expression:
        symbols = [n for n in first.sizes if n in expression.replace("√", "")]
        if len(cases) == 1:
            legend = ", ".join(
                f"{n} = {_fraction(first.sizes[n][0])}, {first.sizes[n][1]}"
                for n in symbols
            )
        else:
            legend = ", ".join(f"{n} = {first.sizes[n][1]}" for n in symbols)
        text = f"×{expression}" + (f" ({legend})" if legend else "")
    else:
        text = f"×{ratio:.4g}"
    hint = first.factor_hints.get(expression, "")
    if not hint and expression in ("2", "1/2"):
        hint = "a factor 2 is extra" if expression == "2" else "a factor 2 is missing"
    hint = hint or "a constant is missing or extra"
    end = "" if hint.endswith("?") else "."
    return (
        f"{name} is right up to a constant factor: it is {text} the right answer, the "
        f"same in every entry. {hint[0].upper()}{hint[1:]}{end}{note}"
    )


def _factor_groups(
    name: str, found: list[tuple[int, _Case, _Verdict]]
) -> list[tuple[str, list[int]]]:
    """One message per factor, named consistently across cases where one name fits all.

    A ratio of 2 is "×2" in one case and "×N" in another where N = 2; the name that
    fits every case (×1/N when N differs from case to case) is the diagnosis.
    """
    options = [_factor_names(verdict.ratio, case) for _, case, verdict in found]
    common = [e for e in options[0] if all(e in other for other in options[1:])]
    note = found[0][2].message  # the dtype note, if any
    if common:
        cases = [case for _, case, _ in found]
        message = _factor_message(name, common[0], found[0][2].ratio, cases, note)
        return [(message, [number for number, _, _ in found])]
    groups: dict[str, tuple[str, list[int]]] = {}
    for (number, case, verdict), names in zip(found, options, strict=True):
        expression = names[0] if names else ""
        key = expression or f"{verdict.ratio:.4g}"
        if key not in groups:
            message = _factor_message(name, expression, verdict.ratio, [case], note)
            groups[key] = (message, [])
        groups[key][1].append(number)
    return list(groups.values())


def _input_of(grad: str) -> str:
    return grad.removeprefix("grad_")


def _reductions(got: Tensor, want: Tensor) -> list[tuple[int, ...]]:
    """Sets of axes of ``got`` whose sum would give ``want``'s shape."""
    extra = got.ndim - want.ndim
    if extra <= 0:
        return []
    out = []
    for axes in itertools.combinations(range(got.ndim), extra):
        kept = tuple(s for i, s in enumerate(got.shape) if i not in axes)
        if kept == tuple(want.shape):
            out.append(axes)
    return out


def _telling(variants: list[_Variant], name: str, want: Tensor) -> list[_Variant]:
    """The known wrong answers for ``name`` that can be told apart from the right one.

    A mistake can be harmless in a case (leaving out a path that contributes
    nothing there) or give all zeros; a candidate matching such a variant says
    nothing about that mistake.
    """
    recognise = _RECOGNISE[want.dtype]
    top = want.abs().max().item() if want.numel() else 0.0
    return [
        v
        for v in variants
        if v.grad == name
        and not _close(v.value, want, recognise)
        and (v.value.shape != want.shape or v.value.abs().max().item() > 1e-6 * top)
    ]


def _judge(name: str, got: object, want: Tensor, case: _Case) -> _Verdict:
    """Compare one returned gradient with autograd's and diagnose the difference."""
    of = _input_of(name)
    if got is None:
        return _Verdict(
            False,
            "none",
            f"{name} is None; it should be a tensor of shape {shape_str(want)}, "
            f"{of}'s shape (did a line forget its return?)",
        )
    if not isinstance(got, Tensor):
        return _Verdict(
            False,
            "type",
            f"{name} is a {type(got).__name__}, not a tensor; it should be a tensor of "
            f"shape {shape_str(want)}",
        )
    if not got.is_floating_point():
        return _Verdict(
            False,
            "int",
            f"{name} has dtype {_dtype_label(got.dtype)}: a gradient is made of real "
            f"numbers, so it should have {of}'s dtype, {_dtype_label(want.dtype)}",
        )
    g = got.detach().to(want.dtype)
    recognise = _RECOGNISE[want.dtype]
    expected_shape = f"{shape_str(want)}, {of}'s shape"

    if g.shape != want.shape:
        for variant in _telling(case.variants, name, want):
            if _close(g, variant.value, recognise):
                return _Verdict(
                    False,
                    "variant:" + variant.meaning,
                    f"{name} has shape {shape_str(g)} instead of {expected_shape}: "
                    f"{variant.meaning}.",
                )
        if want.ndim == 2 and g.shape == want.T.shape and _close(g.T, want, recognise):
            return _Verdict(
                False,
                "transposed",
                f"{name} is transposed: it has shape {shape_str(g)}, but a gradient "
                "has "
                f"the shape of what it is the gradient of, {expected_shape}. Its "
                "transpose is right: swap the order of the product (and transpose "
                "each factor).",
            )
        for axes in _reductions(g, want):
            if _close(g.sum(axes), want, recognise):
                if axes == (0,):
                    how = (
                        f"it is not summed over the batch. {of} is used by every "
                        f"example of the batch (broadcast), so its gradient is the sum "
                        "over the batch axis, e.g. .sum(0)"
                    )
                else:
                    how = (
                        f"it is not summed over axes {axes}: {of} was broadcast over "
                        f"them in the forward, so its gradient sums over them, "
                        f".sum({axes})"
                    )
                return _Verdict(
                    False,
                    f"unsummed{axes}",
                    f"{name} has shape {shape_str(g)} instead of "
                    f"{expected_shape}: {how}.",
                )
        if g.numel() == want.numel() and _close(g.reshape(want.shape), want, recognise):
            return _Verdict(
                False,
                "reshape",
                f"{name} has the right numbers in the wrong shape: {shape_str(g)} "
                f"instead of {expected_shape}; reshape it.",
            )
        if want.ndim == 2 and want.shape[1] == 1 and g.shape == (want.shape[0],) * 2:
            n = want.shape[0]
            return _Verdict(
                False,
                "broadcast",
                f"{name} has shape {shape_str(g)} instead of {expected_shape}: an "
                f"({n}, 1) tensor met an ({n},) one and broadcast to ({n}, {n}), "
                "pairing every row with every other. Make the two shapes equal "
                "(e.g. target.reshape(pred.shape)).",
            )
        return _Verdict(
            False,
            "shape",
            f"{name} has shape {shape_str(g)} but must have shape {expected_shape} "
            "(a gradient has the shape of what it is the gradient of).",
        )

    if not torch.isfinite(g).all() and torch.isfinite(want).all():
        bad = int((~torch.isfinite(g)).sum())
        note = f" {case.note}." if case.note else ""
        return _Verdict(
            False,
            "nonfinite",
            f"{name} has {bad} nan or inf entries where the right answer is "
            f"finite.{note}",
        )

    # Right to the precision of the dtype it came back in: the dtype is the mistake.
    own_tolerance = _TOLERANCE.get(got.dtype, _TOLERANCE[want.dtype])
    right_values = _close(g, want, _TOLERANCE[want.dtype])
    if right_values or (got.dtype != want.dtype and _close(g, want, own_tolerance)):
        if got.dtype != want.dtype:
            return _Verdict(
                False,
                "dtype",
                f"{name} has dtype {_dtype_label(got.dtype)} but {of} is "
                f"{_dtype_label(want.dtype)}: create new tensors with {of}'s dtype "
                f"(e.g. torch.zeros_like({of}), or dtype={of}.dtype).",
            )
        return _Verdict(True)

    dtype_note = ""
    if got.dtype != want.dtype:
        dtype_note = (
            f" (It also has dtype {_dtype_label(got.dtype)} instead of "
            f"{_dtype_label(want.dtype)}.)"
        )
    for variant in _telling(case.variants, name, want):
        if _close(g, variant.value, recognise):
            return _Verdict(
                False,
                "variant:" + variant.meaning,
                f"{name}: {variant.meaning}.{dtype_note}",
            )
    if (
        want.ndim == 2
        and want.shape[0] == want.shape[1]
        and _close(g, want.T, recognise)
    ):
        return _Verdict(
            False,
            "transposed",
            f"{name} is transposed: its transpose is right. Square shapes hide this, "
            "since a transposed square matrix has the same shape; swap the order of "
            f"the product (and transpose each factor).{dtype_note}",
        )
    non_square = want.ndim == 2 and want.shape[0] != want.shape[1]
    if (
        non_square
        and 1 not in want.shape
        and _close(g, want.T.reshape(want.shape), recognise)
    ):
        return _Verdict(
            False,
            "reshaped",
            f"{name} holds the transpose of the right answer, reshaped to "
            f"{of}'s shape: use a transpose (.T), not .reshape or .view, to "
            f"turn a matrix around.{dtype_note}",
        )

    scale = (want * want).sum().item()
    if scale > 0:
        ratio = (g * want).sum().item() / scale
        if abs(ratio - 1) > 1e-3 and ratio != 0 and _close(g, ratio * want, recognise):
            if abs(ratio + 1) <= 1e-6:
                return _Verdict(
                    False,
                    "sign",
                    f"{name} has the wrong sign: it is exactly minus the right answer. "
                    "Check the order of a subtraction (e.g. pred - target, not "
                    f"target - pred) or a stray minus.{dtype_note}",
                )
            # Named in _factor_groups, where every case's ratio is known.
            return _Verdict(False, "factor", dtype_note, ratio=ratio)

    rtol, atol = _TOLERANCE[want.dtype]
    top = want.abs().max().item()
    wrong = (g - want).abs() > atol + rtol * top
    for spot in case.spots:
        mask = spot.mask.expand(want.shape)
        if spot.grad == name and mask.any() and not (wrong & ~mask).any():
            return _Verdict(False, "spot:" + spot.meaning, f"{name}: {spot.meaning}.")

    difference = (g - want).abs()
    relative = difference.max().item() / max(top, atol)
    if relative < _PRECISION_BAND and want.dtype == f64:
        return _Verdict(
            False,
            "precision",
            f"{name} is close but not within float64's precision: it differs from the "
            f"right answer by {relative:.1e} (relative), where two right answers agree "
            "to about 1e-15. That is a precision issue rather than a wrong formula: a "
            "step in float32 (torch.tensor or torch.zeros without dtype=), or a small "
            f"constant such as eps left out or added.{dtype_note}",
        )
    position = tuple(int(i) for i in torch.unravel_index(difference.argmax(), g.shape))
    where = f"[{', '.join(map(str, position))}]"
    return _Verdict(
        False,
        "mismatch",
        f"{name} does not match: {int(wrong.sum())} of {g.numel()} entries are wrong; "
        f"the largest difference is at {name}{where}: yours {g[position].item():.4g}, "
        f"autograd's {want[position].item():.4g}.{dtype_note}",
    )


# ----------------------------------------------------------------------------------
# Grading: every case, then what the cases say together
# ----------------------------------------------------------------------------------


def _clone_args(args: Sequence[object]) -> tuple[object, ...]:
    # The candidate gets copies, so an in-place change cannot affect the next case.
    return tuple(a.clone() if isinstance(a, Tensor) else a for a in args)


def _unpack(
    result: object, grads: Sequence[str], bare: bool, what: str
) -> tuple[object, ...] | str:
    """The returned gradients as a tuple, or a sentence saying why they cannot be."""
    count = len(grads)
    if bare:
        if isinstance(result, tuple | list):
            return (
                f"{what} returned a {type(result).__name__} of {len(result)}, but it "
                f"returns one gradient, {grads[0]}, as a bare tensor (not in a tuple)."
            )
        return (result,)
    if not isinstance(result, tuple | list):
        got = "None" if result is None else f"a {type(result).__name__}"
        return (
            f"{what} returned {got}, but it returns a tuple of {count} gradients: "
            f"({', '.join(grads)})."
        )
    if len(result) != count:
        return (
            f"{what} returned {len(result)} values, but it returns {count}: "
            f"({', '.join(grads)}), in the order of the inputs."
        )
    return tuple(result)


def _grade(
    title: str,
    what: str,
    cases: list[_Case],
    candidate: Callable[..., object],
    bare: bool,
    checked: str,
    timeout: float,
) -> Report:
    if not callable(candidate):
        return Report(
            title,
            False,
            f"✗ {title}: expected a function, got a {type(candidate).__name__} "
            "(pass the function itself, without calling it).",
        )
    verdicts: list[dict[str, _Verdict]] = []
    case_lines: list[str] = []
    for number, case in enumerate(cases, start=1):
        args = _clone_args(case.args)
        outcome = _run(functools.partial(candidate, *args), timeout)
        at = f"case {number} ({case.label})"
        if outcome.timed_out:
            return Report(
                title,
                False,
                f"✗ {title}: stopped on {at}: your function took longer than "
                f"{timeout:g} s (an endless loop, or a Python loop over far too many "
                "elements?).",
                cases=case_lines,
            )
        if isinstance(outcome.error, NotImplementedError):
            hint = str(outcome.error).strip()
            return Report(
                title,
                False,
                f"✗ {title}: not written yet" + (f" ({hint})." if hint else "."),
                unsolved=True,
            )
        if outcome.error is not None:
            return Report(
                title,
                False,
                f"✗ {title}: your function raised {_describe_error(outcome.error)}"
                f"{_where(outcome.error)}, on {at}.",
                cases=case_lines,
            )
        unpacked = _unpack(outcome.value, case.grads, bare, what)
        if isinstance(unpacked, str):
            return Report(title, False, f"✗ {title}: {unpacked}", cases=case_lines)
        found = {
            name: _judge(name, got, want, case)
            for name, got, want in zip(case.grads, unpacked, case.expected, strict=True)
        }
        verdicts.append(found)
        wrong = [name for name, verdict in found.items() if not verdict.ok]
        mark = "✗" if wrong else "✓"
        suffix = f": {', '.join(wrong)} wrong" if wrong else ""
        case_lines.append(f"{mark} case {number}: {case.label}{suffix}")

    grads = cases[0].grads
    wrong_grads = [n for n in grads if any(not v[n].ok for v in verdicts)]
    if not wrong_grads:
        return Report(title, True, f"✓ {title}: {checked}", cases=case_lines)

    found_by_grad: list[tuple[str, str, list[int]]] = []  # (name, message, cases)
    for name in wrong_grads:
        seen: dict[str, tuple[str, list[int]]] = {}
        factors = []
        for number, (case, found) in enumerate(
            zip(cases, verdicts, strict=True), start=1
        ):
            verdict = found[name]
            if verdict.key == "factor":
                factors.append((number, case, verdict))
            elif not verdict.ok:
                seen.setdefault(verdict.key, (verdict.message, []))[1].append(number)
        groups = list(seen.values()) + (
            _factor_groups(name, factors) if factors else []
        )
        found_by_grad += [(name, message, numbers) for message, numbers in groups]
    problems = []
    for message, numbers in _merge_same(found_by_grad):
        if len(cases) == 1:
            problems.append(message)
            continue
        where = "every case" if len(numbers) == len(cases) else _case_list(numbers)
        problems.append(f"{message} [{where}]")
    problems += _patterns(cases, verdicts)
    names = ", ".join(wrong_grads)
    verb = "is" if len(wrong_grads) == 1 else "are"
    headline = f"✗ {title}: {names} {verb} wrong."
    return Report(
        title, False, headline, problems, case_lines if len(cases) > 1 else []
    )


def _merge_same(found: list[tuple[str, str, list[int]]]) -> list[tuple[str, list[int]]]:
    """One line for several gradients that share a mistake ("grad_q, grad_k: ...")."""
    merged: dict[tuple[bool, str, tuple[int, ...]], list[str]] = {}
    for name, message, numbers in found:
        prefix = name + ": "
        shared = message.startswith(prefix)  # "grad_q: it is ..." reads for any name
        body = message[len(prefix) :] if shared else message
        merged.setdefault((shared, body, tuple(numbers)), []).append(name)
    return [
        (f"{', '.join(names)}: {body}" if shared else body, list(numbers))
        for (shared, body, numbers), names in merged.items()
    ]


def _case_list(numbers: list[int]) -> str:
    return ("case " if len(numbers) == 1 else "cases ") + ", ".join(map(str, numbers))


def _patterns(cases: list[_Case], verdicts: list[dict[str, _Verdict]]) -> list[str]:
    """What the cases say together: right only for a batch of 1, or on square shapes."""
    right = [all(v.ok for v in found.values()) for found in verdicts]
    out = []
    ones = [r for case, r in zip(cases, right, strict=True) if case.batch == 1]
    larger = [
        r
        for case, r in zip(cases, right, strict=True)
        if case.batch is not None and case.batch > 1
    ]
    if ones and all(ones) and larger and not any(larger):
        out.append(
            "Right for a batch of 1 but not for larger batches: with one example, "
            "summing over the batch, averaging over it and leaving it out all agree, "
            "so look at how your answer treats the batch."
        )
    square = [r for case, r in zip(cases, right, strict=True) if case.square]
    other = [r for case, r in zip(cases, right, strict=True) if case.square is False]
    if square and all(square) and other and not any(other):
        out.append(
            "Right only on square shapes: a transpose, or a size taken from the wrong "
            "dimension, goes unnoticed when the dimensions are equal. Check each "
            "shape against the derivation."
        )
    return out


# ----------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------


def check_backward(
    name: str, candidate: Callable[..., object], *, seed: int = 0, timeout: float = 10.0
) -> Report:
    """Check a hand-written backward against autograd and say what is wrong with it.

    The candidate has exactly the signature of the library's ``<name>_backward``
    (``backprop.functional``) and returns what it returns: the upstream gradient
    first, then the forward's inputs; the gradients of the inputs in their order,
    a single gradient bare (not in a tuple). Losses (``mse``, ``cross_entropy``)
    take only the forward's inputs. It is called with positional arguments only,
    and with copies, so changing an input in place does no harm.

    | name | candidate |
    |---|---|
    | lin | `(grad_out, x, w, b) -> (grad_x, grad_w, grad_b)`, w (n_in, n_out) |
    | lin_out_in | the same, w (n_out, n_in) as `nn.Linear`: out = x @ w.T + b |
    | relu | `(grad_out, x) -> grad_x` |
    | mse | `(pred, target) -> grad_pred` (of the mean over all values) |
    | logsumexp | `(grad_out, x) -> grad_x`, over the last dimension; grad_out (N,) |
    | softmax | `(grad_out, x) -> grad_x`, over the last dimension |
    | log_softmax | `(grad_out, x) -> grad_x`, over the last dimension |
    | cross_entropy | `(logits, target) -> grad_logits` (of the mean over the batch) |
    | embedding | `(grad_out, idx, table) -> grad_table` |
    | batchnorm | `(grad_out, x, gamma, beta) -> (grad_x, grad_gamma, grad_beta)` |
    | layernorm | `(grad_out, x, gamma, beta) -> (grad_x, grad_gamma, grad_beta)` |
    | conv2d | `(grad_out, x, w, b, stride, padding) -> (grad_x, grad_w, grad_b)` |
    | attention | `(grad_out, q, k, v[, mask]) -> (grad_q, grad_k, grad_v)` |

    Parameters
    ----------
    name : str
        One of the names above (``LAYERS`` holds them).
    candidate : callable
        The backward to check.
    seed : int, optional
        Seeds the random cases (the global random state is left alone).
    timeout : float, optional
        Seconds one call of the candidate may take before it is stopped.

    Returns
    -------
    Report
        ``.ok`` is True when every gradient matches autograd's on every case;
        otherwise the report says what is wrong, naming each gradient.

    Raises
    ------
    ValueError
        If ``name`` is not one of the names above. A wrong candidate never raises:
        its mistakes, exceptions included, are in the report.

    Examples
    --------
    >>> from backprop.exercises import check_backward
    >>> def lin_backward(grad_out, x, w, b):
    ...     return grad_out @ w.T, x.T @ grad_out, grad_out.mean(0)
    >>> report = check_backward("lin", lin_backward)
    >>> report.ok
    False
    >>> "average over the batch instead of summing" in str(report)
    True
    """
    if name not in LAYERS:
        known = ", ".join(LAYERS)
        raise ValueError(f"no exercise for {name!r}; the names are: {known}")
    layer = LAYERS[name]
    cases = layer.make_cases(torch.Generator().manual_seed(seed))
    checked = (
        f"{', '.join(layer.grads)} match{'es' if layer.bare else ''} autograd on "
        f"{len(cases)} cases ({layer.coverage})."
    )
    what = layer.signature.split("(")[0]
    return _grade(name, what, cases, candidate, layer.bare, checked, timeout)


def check_gradient(
    forward: Callable[..., Tensor],
    candidate: Callable[..., object],
    inputs: Sequence[Tensor],
    *,
    names: Sequence[str] | None = None,
    seed: int = 0,
    timeout: float = 10.0,
) -> Report:
    """Check hand-written gradients of any function of tensors against autograd.

    The convention is ``backprop.functional``'s. When ``forward(*inputs)`` is a
    scalar (a loss), the candidate is called as ``candidate(*inputs)`` and returns
    the gradient of that scalar. Otherwise it is called as
    ``candidate(grad_out, *inputs)``, with a random ``grad_out`` of the output's
    shape, and returns the gradient of ``sum(forward(*inputs) * grad_out)``. Either
    way it returns one gradient per floating-point input, in order (integer inputs,
    such as indices, have none), bare when there is only one.

    Parameters
    ----------
    forward : callable
        ``forward(*inputs) -> Tensor``, written with torch operations (autograd
        differentiates it to get the right answer).
    candidate : callable
        The hand-written gradient, as above.
    inputs : sequence of Tensor
        The point at which to check; the candidate receives copies.
    names : sequence of str, optional
        A name per input, used in the report as ``grad_<name>``; default ``x``
        for one input, else ``x0``, ``x1``, ...
    seed : int, optional
        Seeds ``grad_out`` (the global random state is left alone).
    timeout : float, optional
        Seconds the candidate may take before it is stopped.

    Returns
    -------
    Report
        As for `check_backward`.

    Raises
    ------
    ValueError
        If ``inputs`` holds something other than tensors, ``names`` has the wrong
        length, no input is floating-point, or ``forward`` does not return a
        tensor. A wrong candidate never raises.

    Examples
    --------
    >>> import torch
    >>> from backprop.exercises import check_gradient
    >>> def logsumexp(x):
    ...     return x.exp().sum().log()
    >>> def logsumexp_grad(x):
    ...     return x.exp() / x.exp().sum()
    >>> x = torch.randn(5, dtype=torch.float64)
    >>> check_gradient(logsumexp, logsumexp_grad, [x]).ok
    True
    """
    inputs = list(inputs)
    for position, value in enumerate(inputs):
        if not isinstance(value, Tensor):
            raise ValueError(
                f"inputs[{position}] is a {type(value).__name__}; every input must "
                "be a tensor"
            )
    if names is None:
        names = ["x"] if len(inputs) == 1 else [f"x{i}" for i in range(len(inputs))]
    if len(names) != len(inputs):
        raise ValueError(
            f"{len(names)} names for {len(inputs)} inputs: give one per input"
        )
    grads = tuple(
        f"grad_{n}" for n, t in zip(names, inputs, strict=True) if t.is_floating_point()
    )
    if not grads:
        raise ValueError(
            "no input is a floating-point tensor, so nothing has a gradient"
        )
    with torch.no_grad():
        out = forward(*[t.clone() for t in inputs])
    if not isinstance(out, Tensor):
        raise ValueError(f"forward returned a {type(out).__name__}, not a tensor")
    title = getattr(forward, "__name__", "the function")
    if title == "<lambda>":
        title = "the function"
    gen = torch.Generator().manual_seed(seed)
    if out.ndim == 0:
        grad_out = None
        args = tuple(inputs)
        variants: list[_Variant] = []
    else:
        grad_out = _randn(gen, *out.shape, dtype=out.dtype)
        args = (grad_out, *inputs)
        variants = _ones_variants(forward, inputs, grad_out, grads)
    expected = _autograd(forward, inputs, grad_out)
    sizes: dict[str, tuple[float, str]] = {}
    if inputs[0].ndim >= 1 and inputs[0].shape[0] > 1:
        sizes["N"] = (inputs[0].shape[0], f"the first dimension of {names[0]}")
    if inputs[0].numel() > 1 and inputs[0].ndim > 1:
        sizes["n"] = (inputs[0].numel(), f"the number of entries of {names[0]}")
    label = ", ".join(f"{n} {shape_str(t)}" for n, t in zip(names, inputs, strict=True))
    case = _Case(
        label=f"{label}, {_dtype_label(inputs[0].dtype)}",
        args=args,
        expected=tuple(expected),
        grads=grads,
        sizes=sizes,
        variants=variants,
    )
    call = "backward(*inputs)" if grad_out is None else "backward(grad_out, *inputs)"
    checked = (
        f"{', '.join(grads)} match{'es' if len(grads) == 1 else ''} autograd at "
        f"{label}."
    )
    return _grade(title, call, [case], candidate, len(grads) == 1, checked, timeout)


class ExerciseNotDone(Exception):
    """Raised by `exercise` while an exercise is unsolved or wrong.

    In a notebook it shows as a short message instead of a traceback (IPython
    calls ``_render_traceback_``), so "Run all" stops at the first unsolved
    exercise with a sentence, not a wall of frames.

    Parameters
    ----------
    report : Report
        What the grader found; kept as ``.report``.

    Examples
    --------
    >>> from backprop.exercises import ExerciseNotDone, exercise
    >>> def my_relu_backward(grad_out, x):
    ...     raise NotImplementedError("hint: where is relu's slope 1?")
    >>> try:
    ...     exercise("relu", my_relu_backward, show=False)
    ... except ExerciseNotDone as stop:
    ...     print(stop.report.unsolved)
    True
    """

    def __init__(self, report: Report) -> None:
        self.report = report
        if report.unsolved:
            message = (
                f"Exercise {report.name!r} is waiting for you: replace the "
                "NotImplementedError in the cell above with your answer and run the "
                "cell again. (The worked solution comes next, folded.)"
            )
        else:
            message = (
                f"Exercise {report.name!r} is not right yet: the report above says "
                "what is wrong. Fix your function and run the cell again."
            )
        super().__init__(message)

    def _render_traceback_(self) -> list[str]:
        return _wrap(f"{type(self).__name__}: {self}")


def _show(report: Report) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(report)  # type: ignore[no-untyped-call]  # IPython is untyped
    else:
        print(report)


def exercise(
    name: str,
    candidate: Callable[..., object],
    *,
    seed: int = 0,
    timeout: float = 10.0,
    show: bool = True,
) -> None:
    """Grade an exercise: show the report, and raise until the answer is right.

    What a stub cell ends with. It runs `check_backward`, displays the
    report (as Markdown in a notebook, as text elsewhere), and raises
    `ExerciseNotDone` unless the candidate is right, so that running a
    notebook from the top stops at the first unsolved exercise.

    Parameters
    ----------
    name : str
        The layer, as for `check_backward`.
    candidate : callable
        The reader's backward.
    seed : int, optional
        Seeds the random cases, as for `check_backward`.
    timeout : float, optional
        Seconds one call of the candidate may take before it is stopped.
    show : bool, optional
        Display the report (default True).

    Raises
    ------
    ExerciseNotDone
        While the candidate raises ``NotImplementedError`` or is wrong.

    Examples
    --------
    >>> from backprop.exercises import exercise
    >>> from backprop.functional import relu_backward
    >>> exercise("relu", relu_backward, show=False)  # right: no exception
    """
    report = check_backward(name, candidate, seed=seed, timeout=timeout)
    _finish(report, show)


def exercise_gradient(
    forward: Callable[..., Tensor],
    candidate: Callable[..., object],
    inputs: Sequence[Tensor],
    *,
    names: Sequence[str] | None = None,
    seed: int = 0,
    timeout: float = 10.0,
    show: bool = True,
) -> None:
    """Like `exercise`, for `check_gradient`'s exercises.

    Parameters
    ----------
    forward : callable
        ``forward(*inputs) -> Tensor``, as for `check_gradient`.
    candidate : callable
        The reader's gradient, as for `check_gradient`.
    inputs : sequence of Tensor
        The point at which to check.
    names : sequence of str, optional
        A name per input, for the report.
    seed : int, optional
        Seeds ``grad_out``.
    timeout : float, optional
        Seconds the candidate may take before it is stopped.
    show : bool, optional
        Display the report (default True).

    Raises
    ------
    ExerciseNotDone
        While the candidate raises ``NotImplementedError`` or is wrong.

    Examples
    --------
    >>> import torch
    >>> from backprop.exercises import exercise_gradient
    >>> x = torch.randn(3, dtype=torch.float64)
    >>> exercise_gradient(lambda x: (x * x).sum(), lambda x: 2 * x, [x], show=False)
    """
    report = check_gradient(
        forward, candidate, inputs, names=names, seed=seed, timeout=timeout
    )
    _finish(report, show)


def _finish(report: Report, show: bool) -> None:
    if show:
        _show(report)
    if not report.ok:
        raise ExerciseNotDone(report)
