"""Where the posts' own exercises are checked besides the post's inputs: other
shapes (so that a transpose or a wrong axis cannot hide), other values, extreme
values for the softmax family, and the sizes a constant factor is named by.

Each ``more_<exercise>(point, gen)`` makes its points from the post's, keeping
what the post's forward holds fixed: post 6's loss holds a target of 4 rows, so
every x has 4 rows; post 9's running statistics have 3 features, so every x has
3 columns. Each ``sizes_<exercise>(inputs)`` names the sizes of one point.
"""

from __future__ import annotations

import torch
from torch import Tensor

from backprop.exercises.catalogues.parts import Point, Sizes

__all__ = [
    "more_bag",
    "more_batchnorm_eval",
    "more_cross_entropy",
    "more_divide",
    "more_elementwise",
    "more_jvp",
    "more_label_smoothing",
    "more_matrix",
    "more_residual_layernorm",
    "more_scale_shift",
    "more_self_attention",
    "more_shortcut",
    "more_skip",
    "more_tied",
    "rows_and_columns",
    "sizes_bag",
    "sizes_batch",
    "sizes_residual_layernorm",
    "sizes_self_attention",
    "sizes_tied",
]


def _randn(gen: torch.Generator, *shape: int, like: Tensor) -> Tensor:
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(like.dtype)


# --- sizes -------------------------------------------------------------------------


def sizes_batch(inputs: list[Tensor]) -> Sizes:
    """N, the rows of the first input: the batch."""
    return {"N": (inputs[0].shape[0], "the batch size")}


def rows_and_columns(inputs: list[Tensor]) -> Sizes:
    """N and C, the first input's rows and columns (a batch of logits)."""
    rows, columns = inputs[0].shape
    return {"N": (rows, "the batch size"), "C": (columns, "the classes")}


def sizes_bag(inputs: list[Tensor]) -> Sizes:
    sentences, length = inputs[0].shape
    return {
        "B": (sentences, "the sentences"),
        "T": (length, "the positions of a sentence"),
    }


def sizes_self_attention(inputs: list[Tensor]) -> Sizes:
    x, w_q = inputs[0], inputs[1]
    return {
        "d": (w_q.shape[1], "the width of q and k"),
        "T": (x.shape[0], "the positions"),
    }


def sizes_tied(inputs: list[Tensor]) -> Sizes:
    idx, table = inputs
    return {
        "B": (idx.shape[0], "the sentences"),
        "T": (idx.shape[1], "the positions of a sentence"),
        "V": (table.shape[0], "the vocabulary"),
        "D": (table.shape[1], "the width of the table"),
    }


def sizes_residual_layernorm(inputs: list[Tensor]) -> Sizes:
    batch, length, width = inputs[0].shape
    return {
        "B": (batch, "the batch size"),
        "T": (length, "the positions"),
        "D": (width, "the features"),
    }


# --- points ------------------------------------------------------------------------


def more_elementwise(point: Point, gen: torch.Generator) -> list[Point]:
    """An elementwise function of one input (softplus, tanh): other shapes."""
    (x,) = point.inputs
    spread = float(x.abs().max()) if x.numel() else 1.0
    shapes = [(2, 5), (6,)] if x.ndim == 2 else [(3, 4), (5,)]
    return [Point([_randn(gen, *shape, like=x) * spread / 2]) for shape in shapes]


def more_skip(point: Point, gen: torch.Generator) -> list[Point]:
    """Inputs of one shape, used entry by entry: other shapes."""
    x = point.inputs[0]
    return [
        Point([_randn(gen, *shape, like=x) for _ in point.inputs])
        for shape in [(6,), (2, 3)]
    ]


def more_matrix(point: Point, gen: torch.Generator) -> list[Point]:
    """One (N, C) input: taller, square and wider."""
    x = point.inputs[0]
    return [Point([_randn(gen, *shape, like=x)]) for shape in [(4, 6), (3, 3), (6, 2)]]


def more_scale_shift(point: Point, gen: torch.Generator) -> list[Point]:
    """y (N, K), gamma and beta (K,): other widths, a batch of 1, square."""
    y = point.inputs[0]
    return [
        Point(
            [_randn(gen, n, k, like=y), _randn(gen, k, like=y), _randn(gen, k, like=y)]
        )
        for n, k in [(4, 6), (1, 4), (3, 3)]
    ]


def more_jvp(point: Point, gen: torch.Generator) -> list[Point]:
    """x (N, n_in), w (n_in, n_out) and a direction u for x: other shapes."""
    x = point.inputs[0]
    out = []
    for n, n_in, n_out in [(2, 5, 3), (4, 4, 4)]:
        out.append(
            Point(
                [_randn(gen, n, n_in, like=x), _randn(gen, n_in, n_out, like=x)],
                along=_randn(gen, n, n_in, like=x),
            )
        )
    return out


def more_shortcut(point: Point, gen: torch.Generator) -> list[Point]:
    """Post 6's network with other input widths and hidden sizes; the batch and the
    output width stay, since the loss holds a target of that shape."""
    x, w1, _, w2, _, _ = point.inputs
    batch, outputs = x.shape[0], w2.shape[1]
    out = []
    for width, hidden in [(batch + 1, 3), (batch + 3, 8)]:
        shapes = [(width, hidden), (hidden,), (hidden, outputs), (outputs,)]
        shapes.append((width, outputs))
        params = [_randn(gen, *s, like=w1) / 3 for s in shapes]
        out.append(Point([_randn(gen, batch, width, like=x), *params]))
    return out


_WIDE_LOGITS = [[0.0, -300.0, -5.0, 2.0], [-250.0, 0.0, 1.0, -120.0]]
_MIXED_LOGITS = [[800.0, 797.0, 790.0, 799.0], [0.5, -1.0, 2.0, 0.3]]
_LOGITS_NOTE = {
    "wide": "the logits of a row lie hundreds apart, so exp of the smallest "
    "underflows to 0 even after subtracting the row's maximum: a route through "
    "1/softmax or log(softmax) divides by 0 or takes log(0)",
    "mixed": "this batch has rows near 800 next to rows near 0: exp(800) overflows, "
    "and one maximum for the whole batch sends the small rows' exps to 0; "
    "subtract each row's own maximum",
}


def more_label_smoothing(point: Point, gen: torch.Generator) -> list[Point]:
    """Other batch sizes and classes, then logits hundreds apart and rows of very
    different scales, in float64 and float32."""
    logits, _ = point.inputs
    out = []
    for n, c in [(3, 5), (4, 4)]:
        target = torch.randint(c, (n,), generator=gen)
        out.append(Point([_randn(gen, n, c, like=logits), target]))
    for kind, rows in [("wide", _WIDE_LOGITS), ("mixed", _MIXED_LOGITS)]:
        for dtype in (torch.float64, torch.float32):
            values = torch.tensor(rows, dtype=dtype)
            target = torch.randint(values.shape[1], (values.shape[0],), generator=gen)
            label = "logits hundreds apart" if kind == "wide" else "rows near 800 and 0"
            note = _LOGITS_NOTE[kind]
            out.append(
                Point([values, target], None, label, note, frozenset({"extreme"}))
            )
    return out


# A cross-entropy's value (post 1), in float64 and float32: the large logits are
# beyond exp's range in that dtype (709.8 in float64, 88.7 in float32), and the
# gaps beyond the smallest exp it holds (e^-745 in float64, e^-104 in float32).
# Each point: its label, the rows in each dtype, the targets, and what it breaks.
# A loss is one number, inf wherever one row's is: each formula that is right on
# paper (a shift by the row's mean, by the target's logit, by one maximum for the
# batch, log of the softmax) fails on its own set of points, so that an answer
# is named only for the mistake it makes.
_CE_EXTREME: list[tuple[str, dict[torch.dtype, list[list[float]]], list[int], str]] = [
    (
        "rows of very different scales",
        {
            torch.float64: [
                [800, 797, 790, 799],
                [0.5, -1, 2, 0.3],
                [-800, -803, -795, -810],
            ],
            torch.float32: [
                [120, 117, 110, 119],
                [0.5, -1, 2, 0.3],
                [-120, -123, -115, -130],
            ],
        },
        [1, 2, 0],
        "this batch has a row of large logits, a row near 0 and a row of very "
        "negative ones: exp of the first overflows to inf, exp of the last underflows "
        "to 0 (log 0 = -inf), and one maximum for the whole batch sends the other "
        "rows' exps to 0; subtract each row's own maximum",
    ),
    (
        "logits thousands apart, the target far below",
        {
            torch.float64: [[0, -3000, -5, 2], [-900, 0, 1, -120]],
            torch.float32: [[0, -400, -5, 2], [-250, 0, 1, -120]],
        },
        [1, 0],
        "the logits of a row lie far apart and the target is far below the "
        "maximum: its probability underflows to 0, so log(softmax) is log(0) = -inf, "
        "and exp(z - c) overflows for a shift c below the maximum (the row's mean, "
        "the target's logit); compute max + ln(sum(exp(z - max))) - z_t",
    ),
    (
        "logits thousands apart, the target the largest",
        {
            torch.float64: [[2, -3000, -5, 0], [-900, 0, 1, -120]],
            torch.float32: [[2, -400, -5, 0], [-250, 0, 1, -120]],
        },
        [0, 2],
        "the target is its row's largest logit and the others lie far below: "
        "a shift by anything less than the row's maximum, such as the row's mean, "
        "sends exp to inf; shift by each row's maximum",
    ),
    (
        "the target just beyond exp's range below the maximum",
        {
            torch.float64: [[0, -720, -5, 2], [-900, 0, 1, -120]],
            torch.float32: [[0, -92, -5, 2], [-250, 0, 1, -120]],
        },
        [1, 2],
        "the target's logit lies further below the row's maximum than exp's range "
        "(709.8 in float64, 88.7 in float32): exp(z - z_t) overflows; shift by the "
        "row's maximum, not by the target's logit",
    ),
]


def more_cross_entropy(point: Point, gen: torch.Generator) -> list[Point]:
    """A batch of 1, other batches and classes, in float64 and float32; then rows
    of very different scales in one batch, and logits far apart in a row."""
    out = []
    for n, c, dtype in [
        (1, 6, torch.float64),
        (7, 3, torch.float64),
        (3, 5, torch.float32),
    ]:
        values = _randn(gen, n, c, like=torch.zeros((), dtype=dtype))
        out.append(Point([values * 3, torch.randint(c, (n,), generator=gen)]))
    for label, rows, targets, note in _CE_EXTREME:
        for dtype, logits in rows.items():
            out.append(
                Point(
                    [torch.tensor(logits, dtype=dtype), torch.tensor(targets)],
                    label=label,
                    note=note,
                    traits=frozenset({"extreme"}),
                )
            )
    return out


def more_tied(point: Point, gen: torch.Generator) -> list[Point]:
    """Other sentences, lengths, vocabularies and widths, each with a token used
    twice and V != D, then a square table (V = D) and a float32 one."""
    out = []
    for sentences, length, vocabulary, width, dtype in [
        (1, 5, 4, 3, torch.float64),
        (2, 2, 5, 5, torch.float64),
        (3, 2, 7, 3, torch.float32),
    ]:
        idx = torch.randint(vocabulary, (sentences, length), generator=gen)
        idx.view(-1)[-1] = idx.view(-1)[0]  # a token used twice
        like = torch.zeros((), dtype=dtype)
        out.append(Point([idx, _randn(gen, vocabulary, width, like=like)]))
    return out


def more_batchnorm_eval(point: Point, gen: torch.Generator) -> list[Point]:
    """Other batch sizes; the features stay, as many as the running statistics."""
    x, gamma, beta = point.inputs
    return [
        Point(
            [
                _randn(gen, n, x.shape[1], like=x) * 2 + 1,
                _randn(gen, *gamma.shape, like=gamma),
                _randn(gen, *beta.shape, like=beta),
            ]
        )
        for n in (8, 2)
    ]


def more_bag(point: Point, gen: torch.Generator) -> list[Point]:
    """Other sentences, lengths, vocabularies and widths, with repeated tokens."""
    _, table = point.inputs
    out = []
    for sentences, length, vocabulary, width in [(2, 5, 4, 3), (4, 2, 7, 6)]:
        idx = torch.randint(vocabulary, (sentences, length), generator=gen)
        idx[0, -1] = idx[0, 0]  # a token used twice in one sentence
        out.append(Point([idx, _randn(gen, vocabulary, width, like=table)]))
    return out


def more_self_attention(point: Point, gen: torch.Generator) -> list[Point]:
    """Other positions and widths (so that √d differs), then scores hundreds above
    0 in some rows and near 0 in others, in float64 and float32."""
    x = point.inputs[0]
    out = []
    for length, model, d, d_v in [(3, 5, 2, 4), (6, 4, 9, 2)]:
        shapes = [(length, model), (model, d), (model, d), (model, d_v)]
        out.append(Point([_randn(gen, *s, like=x) for s in shapes]))
    for dtype, top in [(torch.float64, 800.0), (torch.float32, 120.0)]:
        like = torch.zeros((), dtype=dtype)
        length, model, d, d_v = 4, 5, 4, 3
        xs = _randn(gen, length, model, like=like)
        w_q, w_k = (_randn(gen, model, d, like=like) for _ in range(2))
        # The last column of x is 1 and reaches only the keys' last coordinate,
        # which is then 1 for every key; the queries' last coordinate is
        # top * x[:, 0]. Each row of scores is shifted by its own constant: the
        # probabilities are those of the small scores, but exp of the raw scores
        # overflows, and one maximum for every row underflows the small rows.
        xs[:, -1] = 1.0
        xs[:, 0] = torch.tensor([1.0, 0.001, 0.9, -0.002], dtype=dtype)
        w_k[-1], w_k[:, -1] = 0.0, 0.0
        w_k[-1, -1] = 1.0
        w_q[:, -1] = 0.0
        w_q[0, -1] = top * d**0.5
        w_v = _randn(gen, model, d_v, like=like)
        out.append(
            Point(
                [xs, w_q, w_k, w_v],
                label=f"rows of scores near {top:g} and near 0",
                note="some rows of scores are far above 0 and others near 0: exp "
                "of the large scores overflows, and one maximum for all the scores "
                "sends the small rows' exps to 0; subtract each row's own maximum",
                traits=frozenset({"extreme"}),
            )
        )
    return out


def more_divide(point: Point, gen: torch.Generator) -> list[Point]:
    """a (R, C) over b (C,): other shapes, b kept away from 0."""
    a, b = point.inputs
    out = []
    for rows, columns in [(2, 5), (4, 3)]:
        away = torch.rand(columns, generator=gen, dtype=torch.float64) + 0.5
        out.append(Point([_randn(gen, rows, columns, like=a), away.to(b.dtype)]))
    return out


def more_residual_layernorm(point: Point, gen: torch.Generator) -> list[Point]:
    """x (B, T, D) and gamma, beta (D,): other batches, lengths and widths."""
    x = point.inputs[0]
    out = []
    for shape in [(3, 2, 4), (1, 4, 6)]:
        width = shape[-1]
        out.append(
            Point(
                [
                    _randn(gen, *shape, like=x) * 2 + 1,
                    _randn(gen, width, like=x),
                    _randn(gen, width, like=x),
                ]
            )
        )
    return out
