"""The cases: for each layer, a family of small random inputs chosen to expose
mistakes, with autograd's gradients and what the diagnoses need to know about them
(the sizes that name a constant factor, what a nan means there)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeGuard

import torch
import torch.nn.functional as F
from torch import Tensor

from backprop._checks import shape_str

f64, f32 = torch.float64, torch.float32


@dataclass
class Variant:
    """A known wrong answer for one gradient, and what it means."""

    grad: str
    value: Tensor
    meaning: str


@dataclass
class Spot:
    """Entries of one gradient where a known mistake, and only it, goes wrong."""

    grad: str
    mask: Tensor  # bool, the gradient's shape (or broadcastable to it)
    meaning: str


@dataclass
class Case:
    label: str
    args: tuple[object, ...]  # the candidate's positional arguments
    expected: tuple[Tensor, ...]  # autograd's gradients, in the candidate's order
    grads: tuple[str, ...]  # their names: "grad_x", ...
    batch: int | None = None  # the batch size where that means something
    square: bool | None = None  # None: square shapes do not apply to this case
    # Named sizes for naming a constant factor: symbol -> (value, what it is).
    sizes: dict[str, tuple[float, str]] = field(default_factory=dict)
    variants: list[Variant] = field(default_factory=list)
    spots: list[Spot] = field(default_factory=list)
    note: str = ""  # said when the candidate returns nan or inf on this case
    factor_hints: dict[str, str] = field(default_factory=dict)
    # What a returned value has the shape of, when not its input ("grad_x": "x").
    of: dict[str, str] = field(default_factory=dict)
    # What sets this case apart, for the patterns across cases: "mask", "stride",
    # "padding", "dilation", "extreme" (values where a naive formula overflows).
    traits: frozenset[str] = frozenset()
    # "gradient", "JVP" for a forward-mode check (it has the output's shape), or
    # "value" for a forward's value, checked against a reference function.
    kind: str = "gradient"
    # Whose answer ``expected`` is, as the report names it: "autograd", or the
    # reference function of a value ("cross_entropy").
    reference: str = "autograd"


@dataclass
class Layer:
    signature: str
    grads: tuple[str, ...]
    coverage: str
    make_cases: Callable[[torch.Generator], list[Case]]
    loss: bool = False  # a loss's backward takes no grad_out
    # Patterns this exercise opts out of (backprop.exercises.patterns.PATTERNS).
    skip: frozenset[str] = frozenset()

    @property
    def bare(self) -> bool:
        return len(self.grads) == 1


def randn(gen: torch.Generator, *shape: int, dtype: torch.dtype = f64) -> Tensor:
    return torch.randn(shape, generator=gen, dtype=f64).to(dtype)


def is_float(t: object) -> TypeGuard[Tensor]:
    return isinstance(t, Tensor) and t.is_floating_point()


def autograd(
    forward: Callable[..., Tensor], inputs: Sequence[object], grad_out: Tensor | None
) -> list[Tensor]:
    """Gradients of ``sum(forward(*inputs) * grad_out)`` for each float tensor input."""
    leaves = [t.detach().clone().requires_grad_() if is_float(t) else t for t in inputs]
    wrt = [t for t in leaves if is_float(t)]
    with torch.enable_grad():
        out = forward(*leaves)
        seed = torch.ones_like(out) if grad_out is None else grad_out
        grads = torch.autograd.grad(out, wrt, seed, allow_unused=True)
    return [
        torch.zeros_like(t) if g is None else g.detach()
        for t, g in zip(wrt, grads, strict=True)
    ]


def ones_variants(
    forward: Callable[..., Tensor],
    inputs: Sequence[object],
    grad_out: Tensor,
    grads: Sequence[str],
) -> list[Variant]:
    """The gradient for a grad_out of all ones: forgetting to multiply by grad_out."""
    values = autograd(forward, inputs, torch.ones_like(grad_out))
    meaning = (
        "it is the gradient for a grad_out of all ones: multiply by grad_out, the "
        "gradient arriving from the layer after (the chain rule)"
    )
    return [
        Variant(name, value, meaning) for name, value in zip(grads, values, strict=True)
    ]


def dtype_label(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def case_label(dtype: torch.dtype, **named: object) -> str:
    parts = []
    for name, value in named.items():
        text = shape_str(value) if isinstance(value, Tensor) else str(value)
        parts.append(f"{name} {text}")
    return ", ".join(parts) + f", {dtype_label(dtype)}"


_BATCH_HINTS = {
    "1/N": "did you average over the batch instead of summing?",
    "N": "is a 1/N missing, or did you sum where a single row was meant?",
}
_ATTENTION_HINTS = {
    "√d": "the 1/√d of the scores is missing in the backward",
    "1/√d": "is the 1/√d scale applied twice?",
}
# For the posts' own exercises, whose catalogues name N the batch and d the width
# of q and k.
FACTOR_HINTS = _BATCH_HINTS | _ATTENTION_HINTS


# --- linear layer -----------------------------------------------------------------

_LIN_SHAPES = [(1, 3, 5, f64), (6, 4, 3, f64), (4, 4, 4, f64), (5, 2, 7, f32)]
_LIN_GRADS = ("grad_x", "grad_w", "grad_b")
_LIN_OUT_IN_GRADS = ("grad_x", "grad_weight", "grad_bias")


def _lin_cases(gen: torch.Generator, weight_out_in: bool) -> list[Case]:
    cases = []
    for n, n_in, n_out, dtype in _LIN_SHAPES:
        x = randn(gen, n, n_in, dtype=dtype)
        w_shape = (n_out, n_in) if weight_out_in else (n_in, n_out)
        w = randn(gen, *w_shape, dtype=dtype)
        b = randn(gen, n_out, dtype=dtype)
        grad_out = randn(gen, n, n_out, dtype=dtype)

        def forward(
            x: Tensor, w: Tensor, b: Tensor, out_in: bool = weight_out_in
        ) -> Tensor:
            return F.linear(x, w if out_in else w.T, b)

        # The names of the stub: nn.Linear's layout calls them weight and bias.
        grads = _LIN_OUT_IN_GRADS if weight_out_in else _LIN_GRADS
        expected = autograd(forward, (x, w, b), grad_out)
        variants = ones_variants(forward, (x, w, b), grad_out, grads)
        named = {"weight": w, "bias": b} if weight_out_in else {"w": w, "b": b}
        cases.append(
            Case(
                label=case_label(dtype, x=x, **named),
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


def _relu_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for shape, dtype in [((1, 7), f64), ((5, 3), f64), ((4, 4), f64), ((3, 6), f32)]:
        x = randn(gen, *shape, dtype=dtype)
        x.view(-1)[::4] = 0.0  # exact zeros: relu's kink, where conventions differ
        grad_out = randn(gen, *shape, dtype=dtype)
        expected = autograd(torch.relu, (x,), grad_out)
        cases.append(
            Case(
                label=case_label(dtype, x=x) + ", some x exactly 0",
                args=(grad_out, x),
                expected=tuple(expected),
                grads=("grad_x",),
                batch=shape[0],
                variants=ones_variants(torch.relu, (x,), grad_out, ("grad_x",)),
                spots=[
                    Spot(
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


# --- gelu ---------------------------------------------------------------------------

_GELU_LARGE_NOTE = (
    "x has entries of ±30 in this case, where exp(2u) overflows even float64: "
    "use torch.tanh (and torch.erf) rather than writing them with exp"
)


def _gelu_cases(gen: torch.Generator) -> list[Case]:
    configs = [  # shape, approximate, entries of ±30, dtype
        ((1, 7), "tanh", False, f64),
        ((5, 3), "none", False, f64),
        ((4, 6), "tanh", True, f64),
        ((6, 4), "none", True, f64),
        ((3, 5), "tanh", True, f32),
        ((2, 6), "none", False, f32),
    ]
    cases = []
    for shape, approximate, large, dtype in configs:
        # Spread over the region where gelu bends (its slope goes from 0 to 1).
        x = randn(gen, *shape) * 2.5
        if large:  # where a formula written with exp overflows
            x.view(-1)[::5] = 30.0
            x.view(-1)[2::5] = -30.0
        x = x.to(dtype)
        grad_out = randn(gen, *shape, dtype=dtype)

        def forward(x: Tensor, approximate: str = approximate) -> Tensor:
            return F.gelu(x, approximate=approximate)

        expected = autograd(forward, (x,), grad_out)
        cases.append(
            Case(
                label=case_label(dtype, x=x)
                + f", approximate {approximate!r}"
                + (", some x ±30" if large else ""),
                args=(grad_out, x, approximate),
                expected=tuple(expected),
                grads=("grad_x",),
                batch=shape[0],
                variants=ones_variants(forward, (x,), grad_out, ("grad_x",)),
                note=_GELU_LARGE_NOTE if large else "",
            )
        )
    return cases


# --- mse ----------------------------------------------------------------------------


def _mse(pred: Tensor, target: Tensor) -> Tensor:
    return ((pred - target) ** 2).mean()


def _mse_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for shape, dtype in [((1, 3), f64), ((6, 1), f64), ((4, 4), f64), ((5, 2), f32)]:
        pred = randn(gen, *shape, dtype=dtype)
        target = randn(gen, *shape, dtype=dtype)
        (expected,) = autograd(lambda p, t=target: _mse(p, t), (pred,), None)
        cases.append(
            Case(
                label=case_label(dtype, pred=pred, target=target),
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

_SOFTMAX_SHAPES = [((1, 5), f64, ""), ((6, 3), f64, ""), ((4, 4), f64, "")]
_SOFTMAX_SHAPES += [((3, 5), f32, "")]
# Values where a formula that is right on paper breaks in floating point, each
# chosen to catch one unstable route and no other: every row near 800 (exp of the
# raw x overflows), rows near 800 next to rows near 0 (one maximum for the whole
# batch, x.max(), sends the small rows' exps to 0), and rows whose entries lie
# hundreds apart with their maximum at 0 (exp of the smallest underflows to 0, so a
# route through 1/softmax or log(softmax) divides by 0). The spreads pass float32's
# limits (exp overflows past 88, underflows below -104) or float64's (709, -745).
_SOFTMAX_SHAPES += [((3, 4), f64, "large"), ((2, 5), f32, "large")]
_SOFTMAX_SHAPES += [((4, 3), f64, "mixed"), ((2, 4), f32, "mixed")]
_SOFTMAX_SHAPES += [((3, 5), f64, "wide"), ((3, 5), f32, "wide")]
_WIDE_ROWS = {
    f64: [[0, -900, -5, -400, -1], [-800, 0, -3, -450, -760], [-2, -770, 0, -20, -300]],
    f32: [[0, -120, -5, -60, -1], [-200, 0, -3, -90, -150], [-2, -40, 0, -130, -7]],
}
_STRESS_LABEL = {
    "large": "{x} near 800",
    "mixed": "rows of {x} near 800 and near 0",
    "wide": "entries of {x} hundreds apart in a row",
}
_STRESS_NOTE = {
    "large": "{x} has entries near 800 in this case, and exp(800) overflows even "
    "float64: subtract each row's maximum before exp (the stable softmax)",
    "mixed": "this batch has rows near 800 next to rows near 0: exp(800) overflows, "
    "and subtracting one maximum for the whole batch ({x}.max()) sends the small "
    "rows' exps to 0; subtract each row's own maximum, "
    "{x}.amax(-1, keepdim=True)",
    "wide": "the entries of each row lie hundreds apart, so exp of the smallest "
    "underflows to 0 even after subtracting the row's maximum: a route through "
    "1/softmax or log(softmax) then divides by 0 or takes log(0). Work with "
    "{x} - logsumexp({x}) instead",
}


def _logits(
    gen: torch.Generator, shape: tuple[int, int], dtype: torch.dtype, stress: str
) -> Tensor:
    x = randn(gen, *shape)
    if stress == "large":
        x = x * 5 + 800
    elif stress == "mixed":  # alternate rows: near 800, then near 0
        x[::2] = x[::2] * 5 + 800
    elif stress == "wide":
        x = torch.tensor(_WIDE_ROWS[dtype], dtype=f64) + 0.3 * x.clamp(-1, 1).abs()
        x = x - x.amax(-1, keepdim=True)
    return x.to(dtype)


def _stress(case: Case, stress: str, x: str) -> Case:
    """Mark a case of extreme logits: its label, its note, its trait."""
    if stress:
        case.label += ", " + _STRESS_LABEL[stress].format(x=x)
        case.note = _STRESS_NOTE[stress].format(x=x)
        case.traits = frozenset({"extreme"})
        case.batch = case.square = None  # not a case about the batch or the shapes
    return case


def _softmax_family_cases(gen: torch.Generator, kind: str) -> list[Case]:
    forward = {
        "logsumexp": lambda x: torch.logsumexp(x, dim=-1),
        "softmax": lambda x: torch.softmax(x, dim=-1),
        "log_softmax": lambda x: torch.log_softmax(x, dim=-1),
    }[kind]
    cases = []
    for shape, dtype, stress in _SOFTMAX_SHAPES:
        x = _logits(gen, shape, dtype, stress)
        grad_shape = shape[:1] if kind == "logsumexp" else shape
        grad_out = randn(gen, *grad_shape, dtype=dtype)
        (expected,) = autograd(forward, (x,), grad_out)
        variants = ones_variants(forward, (x,), grad_out, ("grad_x",))
        case = Case(
            label=case_label(dtype, x=x),
            args=(grad_out, x),
            expected=(expected,),
            grads=("grad_x",),
            batch=shape[0],
            square=shape[0] == shape[1],
            sizes={"N": (shape[0], "the rows"), "C": (shape[1], "the columns")},
            variants=variants,
        )
        cases.append(_stress(case, stress, "x"))
    return cases


def _cross_entropy_cases(gen: torch.Generator) -> list[Case]:
    cases = []
    for shape, dtype, stress in _SOFTMAX_SHAPES:
        logits = _logits(gen, shape, dtype, stress)
        target = torch.randint(shape[1], shape[:1], generator=gen)
        # target holds integers, so autograd returns only the logits' gradient.
        (expected,) = autograd(F.cross_entropy, (logits, target), None)
        n = shape[0]
        case = Case(
            label=case_label(dtype, logits=logits, target=target),
            args=(logits, target),
            expected=(expected,),
            grads=("grad_logits",),
            batch=n,
            square=shape[0] == shape[1],
            sizes={"N": (n, "the batch size"), "C": (shape[1], "the classes")},
            factor_hints={
                "N": "the 1/N of the mean over the batch is missing",
                "1/N": "did you divide by N twice?",
                "N/C": "did you divide by the classes (C) instead of the batch (N)?",
                "1/C": "did you divide by the classes (C) as well as the batch (N)?",
            },
        )
        cases.append(_stress(case, stress, "logits"))
    return cases


# --- embedding --------------------------------------------------------------------


def _embedding_cases(gen: torch.Generator) -> list[Case]:
    configs = [  # idx, rows of the table, width, dtype
        (torch.tensor([2]), 4, 3, f64),
        (torch.tensor([1, 3, 1, 0, 3, 1]), 5, 3, f64),
        (torch.tensor([[4, 0, 4, 2], [5, 4, 0, 1]]), 7, 2, f64),
        (torch.tensor([0, 2, 2, 3]), 4, 4, f64),
        (torch.tensor([3, 1, 3]), 5, 2, f32),
    ]
    cases = []
    for idx, rows, width, dtype in configs:
        table = randn(gen, rows, width, dtype=dtype)
        grad_out = randn(gen, *idx.shape, width, dtype=dtype)
        (expected,) = autograd(F.embedding, (idx, table), grad_out)
        counts = torch.bincount(idx.reshape(-1), minlength=rows)
        has_repeats = bool((counts > 1).any())
        # Where the right answer sums several lookups, or none: the general
        # "repeated indices" diagnosis (the catalogue names the mistakes).
        spots = [
            Spot(
                "grad_table",
                (counts > 1)[:, None].expand(rows, width),
                "it is wrong only on rows looked up more than once: such a row gets "
                "the sum of the gradients of all its lookups",
            ),
            Spot(
                "grad_table",
                (counts == 0)[:, None].expand(rows, width),
                "it is wrong only on rows never looked up: their gradient is 0",
            ),
        ]
        variants = ones_variants(F.embedding, (idx, table), grad_out, ("grad_table",))
        cases.append(
            Case(
                label=case_label(dtype, idx=idx, table=table)
                + (", repeated indices" if has_repeats else ""),
                args=(grad_out, idx, table),
                expected=(expected,),
                grads=("grad_table",),
                batch=idx.numel(),
                sizes={
                    "n": (idx.numel(), "the lookups, idx.numel()"),
                    "V": (rows, "the rows of the table"),
                    "D": (width, "the width of the table"),
                },
                variants=variants,
                spots=spots,
            )
        )
    return cases


# --- batch norm and layer norm ----------------------------------------------------


def normalise(
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


def _norm_cases(gen: torch.Generator, kind: str) -> list[Case]:
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
        x = (randn(gen, *shape) * scale + 1.5).to(dtype)
        gamma = randn(gen, shape[1], dtype=dtype)
        beta = randn(gen, shape[1], dtype=dtype)
        grad_out = randn(gen, *shape, dtype=dtype)
        inputs = (x, gamma, beta)

        def right(x: Tensor, g: Tensor, b: Tensor, dim: int = dim) -> Tensor:
            return normalise(x, g, b, dim, eps, "right")

        expected = autograd(right, inputs, grad_out)
        grads = ("grad_x", "grad_gamma", "grad_beta")
        variants = ones_variants(right, inputs, grad_out, grads)
        cases.append(
            Case(
                label=case_label(dtype, x=x, gamma=gamma, beta=beta),
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


def _conv_cases(gen: torch.Generator) -> list[Case]:
    configs = [  # x shape, w shape, stride, padding, dtype
        ((1, 2, 5, 6), (3, 2, 3, 2), 1, 0, f64),
        ((2, 3, 6, 5), (2, 3, 3, 3), 2, 1, f64),
        ((3, 1, 7, 7), (4, 1, 2, 2), 2, 0, f64),
        ((2, 2, 5, 5), (2, 2, 3, 3), 1, 1, f32),
    ]
    cases = []
    for x_shape, w_shape, stride, padding, dtype in configs:
        x = randn(gen, *x_shape, dtype=dtype)
        w = randn(gen, *w_shape, dtype=dtype)
        b = randn(gen, w_shape[0], dtype=dtype)

        def forward(
            x: Tensor, w: Tensor, b: Tensor, s: int = stride, p: int = padding
        ) -> Tensor:
            return F.conv2d(x, w, b, stride=s, padding=p)

        out_shape = forward(x, w, b).shape
        grad_out = randn(gen, *out_shape, dtype=dtype)
        grads = ("grad_x", "grad_w", "grad_b")
        inputs = (x, w, b)
        expected = autograd(forward, inputs, grad_out)
        variants = ones_variants(forward, inputs, grad_out, grads)
        traits = {"stride"} if stride > 1 else set()
        traits |= {"padding"} if padding > 0 else set()
        cases.append(
            Case(
                label=case_label(dtype, x=x, w=w, b=b)
                + f", stride {stride}, padding {padding}",
                args=(grad_out, x, w, b, stride, padding),
                expected=tuple(expected),
                grads=grads,
                batch=x_shape[0],
                sizes={
                    "N": (x_shape[0], "the batch size"),
                    "H_out": (out_shape[2], "the output's height"),
                    "W_out": (out_shape[3], "the output's width"),
                    "C_in": (x_shape[1], "the input channels"),
                    "C_out": (w_shape[0], "the output channels"),
                },
                variants=variants,
                factor_hints=_BATCH_HINTS
                | {
                    "1/(N·H_out·W_out)": "did you average grad_out instead of "
                    "summing it? Every output position adds b, so grad_b sums them",
                },
                traits=frozenset(traits),
            )
        )
    return cases


# --- attention ----------------------------------------------------------------------


def attention_forward(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None
) -> Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def _attention_cases(gen: torch.Generator) -> list[Case]:
    configs = [  # leading dims, Lq, Lk, d, dv, mask or extreme scores, dtype
        ((), 1, 5, 4, 3, None, f64),
        ((), 3, 5, 4, 2, None, f64),
        ((2,), 4, 4, 3, 5, "causal", f64),
        ((), 4, 6, 4, 3, "random", f64),
        ((), 3, 4, 2, 3, "random", f32),
        ((), 3, 5, 4, 3, "large", f32),
        ((), 4, 3, 4, 2, "mixed", f64),
        ((), 2, 4, 3, 3, "mixed", f32),
    ]
    cases = []
    for lead, lq, lk, d, dv, kind, dtype in configs:
        q = randn(gen, *lead, lq, d)
        k = randn(gen, *lead, lk, d)
        v = randn(gen, *lead, lk, dv, dtype=dtype)
        grad_out = randn(gen, *lead, lq, dv, dtype=dtype)
        if kind in _ATTENTION_SHIFTS:
            # Every key gets the same last coordinate, so a query's last coordinate
            # shifts its whole row of scores: the probabilities are those of the
            # ordinary scores, but exp of the raw scores overflows or, with one
            # maximum for all rows, underflows in the rows far below it.
            shifts = torch.tensor(_ATTENTION_SHIFTS[kind][dtype], dtype=f64)
            k[..., -1] = 1.0
            q[..., -1] = shifts[:lq] * math.sqrt(d)
        q, k = q.to(dtype), k.to(dtype)
        mask = None
        if kind == "causal":
            mask = torch.ones(lq, lk, dtype=torch.bool).tril()
        elif kind == "random":
            mask = torch.rand(lq, lk, generator=gen) < 0.6
            mask[torch.arange(lq), torch.randint(lk, (lq,), generator=gen)] = True
        inputs = (q, k, v, mask)
        grads = ("grad_q", "grad_k", "grad_v")
        expected = autograd(attention_forward, inputs, grad_out)
        variants = ones_variants(attention_forward, inputs, grad_out, grads)
        args = (grad_out, q, k, v) if mask is None else (grad_out, q, k, v, mask)
        label = case_label(dtype, q=q, k=k, v=v)
        traits: set[str] = set()
        note = ""
        if mask is not None:
            label += f", {kind} mask {shape_str(mask)}"
            traits.add("mask")
        elif kind is not None:
            top = max(_ATTENTION_SHIFTS[kind][dtype])
            label += ", " + _ATTENTION_LABEL[kind].format(top=f"{top:g}")
            traits.add("extreme")
            note = _ATTENTION_NOTE[kind]
        cases.append(
            Case(
                label=label,
                args=args,
                expected=tuple(expected),
                grads=grads,
                batch=None if kind in _ATTENTION_SHIFTS else lq,
                sizes={
                    "d": (d, "the width of q and k"),
                    "Lq": (lq, "the queries"),
                    "Lk": (lk, "the keys"),
                },
                variants=variants,
                factor_hints=_ATTENTION_HINTS,
                note=note,
                traits=frozenset(traits),
            )
        )
    return cases


# The score each query's row is shifted by: past exp's range in float32 (88) or
# float64 (709), and, in "mixed", rows near 0 beside rows far above.
_ATTENTION_SHIFTS = {
    "large": {f32: [100.0, 140.0, 120.0]},
    "mixed": {f64: [800.0, 0.0, 760.0, 0.5], f32: [120.0, 0.0]},
}
_ATTENTION_LABEL = {
    "large": "scores of 100 and more",
    "mixed": "rows of scores near {top} and near 0",
}
_ATTENTION_NOTE = {
    "large": "the scores pass 100 in this case, and exp(100) overflows float32: "
    "subtract each row's maximum score before exp, as a stable softmax does",
    "mixed": "this case has rows of scores far above 0 next to rows near 0: "
    "exp of the large scores overflows, and one maximum for all the scores sends "
    "the small rows' exps to 0; subtract each query's own maximum, "
    "scores.amax(-1, keepdim=True)",
}


# --- the registry -----------------------------------------------------------------

_COVER_BATCH = "batch of 1 and larger, non-square and square, float64 and float32"
_COVER_EXTREME = (
    ", rows near 800, rows near 800 beside rows near 0, entries hundreds apart"
)

LAYERS: dict[str, Layer] = {
    "lin": Layer(
        "lin_backward(grad_out, x, w, b) -> (grad_x, grad_w, grad_b), w (n_in, n_out)",
        _LIN_GRADS,
        _COVER_BATCH,
        lambda gen: _lin_cases(gen, weight_out_in=False),
    ),
    "lin_out_in": Layer(
        "lin_out_in_backward(grad_out, x, weight, bias) -> (grad_x, grad_weight, "
        "grad_bias), weight (n_out, n_in) as nn.Linear stores it, "
        "out = x @ weight.T + bias",
        _LIN_OUT_IN_GRADS,
        _COVER_BATCH,
        lambda gen: _lin_cases(gen, weight_out_in=True),
    ),
    "relu": Layer(
        "relu_backward(grad_out, x) -> grad_x",
        ("grad_x",),
        "exact zeros in x, float64 and float32",
        _relu_cases,
    ),
    "gelu": Layer(
        "gelu_backward(grad_out, x, approximate='tanh') -> grad_x, approximate "
        "'tanh' or 'none' (exact) as in torch.nn.GELU",
        ("grad_x",),
        "batch of 1 and larger, non-square, the tanh and exact forms, x of ±30, "
        "float64 and float32",
        _gelu_cases,
    ),
    "mse": Layer(
        "mse_backward(pred, target) -> grad_pred",
        ("grad_pred",),
        "one and several columns, float64 and float32",
        _mse_cases,
        loss=True,
    ),
    "logsumexp": Layer(
        "logsumexp_backward(grad_out, x, dim=-1) -> grad_x",
        ("grad_x",),
        _COVER_BATCH + _COVER_EXTREME,
        lambda gen: _softmax_family_cases(gen, "logsumexp"),
    ),
    "softmax": Layer(
        "softmax_backward(grad_out, x, dim=-1) -> grad_x",
        ("grad_x",),
        _COVER_BATCH + _COVER_EXTREME,
        lambda gen: _softmax_family_cases(gen, "softmax"),
    ),
    "log_softmax": Layer(
        "log_softmax_backward(grad_out, x, dim=-1) -> grad_x",
        ("grad_x",),
        _COVER_BATCH + _COVER_EXTREME,
        lambda gen: _softmax_family_cases(gen, "log_softmax"),
    ),
    "cross_entropy": Layer(
        "cross_entropy_backward(logits, target) -> grad_logits",
        ("grad_logits",),
        _COVER_BATCH + _COVER_EXTREME,
        _cross_entropy_cases,
        loss=True,
    ),
    "embedding": Layer(
        "embedding_backward(grad_out, idx, table) -> grad_table",
        ("grad_table",),
        "repeated and unused rows, 1-D and 2-D idx, float64 and float32",
        _embedding_cases,
    ),
    "batchnorm": Layer(
        "batchnorm_backward(grad_out, x, gamma, beta, eps=1e-5) "
        "-> (grad_x, grad_gamma, grad_beta), x (N, C)",
        ("grad_x", "grad_gamma", "grad_beta"),
        "batches of 3 to 8, non-square and square, float64 and float32",
        lambda gen: _norm_cases(gen, "batchnorm"),
    ),
    "layernorm": Layer(
        "layernorm_backward(grad_out, x, gamma, beta, eps=1e-5) "
        "-> (grad_x, grad_gamma, grad_beta), x (N, D)",
        ("grad_x", "grad_gamma", "grad_beta"),
        _COVER_BATCH,
        lambda gen: _norm_cases(gen, "layernorm"),
    ),
    "conv2d": Layer(
        "conv2d_backward(grad_out, x, w, b, stride=1, padding=0) "
        "-> (grad_x, grad_w, grad_b)",
        ("grad_x", "grad_w", "grad_b"),
        "batch of 1 and larger, stride 1 and 2, padding 0 and 1, float64 and float32",
        _conv_cases,
    ),
    "attention": Layer(
        "attention_backward(grad_out, q, k, v, mask=None) -> (grad_q, grad_k, grad_v)",
        ("grad_q", "grad_k", "grad_v"),
        "one and several queries, a leading batch dimension, causal and random masks, "
        "scores past 100 and rows of very different scales, float64 and float32",
        _attention_cases,
    ),
}
"""The layers `check_backward` and `exercise` know, by name: each with the
signature its candidate must have, the gradients it returns and the cases tried."""
