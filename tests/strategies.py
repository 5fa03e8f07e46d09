"""Hypothesis strategies and tensor factories shared by every test module.

Shapes are small (gradients are checked element by element) but include the
awkward cases: size-1 dimensions, batch size 1, several leading dimensions.
Tensors come contiguous or not: ``layout`` picks a transposed or strided view
holding the same values, since a backward must not assume contiguity.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

DTYPES = (torch.float64, torch.float32)

# (rtol, atol) for comparing a hand-written backward with autograd.
TOLERANCES = {
    torch.float64: dict(rtol=1e-10, atol=1e-10),
    torch.float32: dict(rtol=1e-4, atol=1e-5),
}

dims = st.integers(min_value=1, max_value=6)
small_dims = st.integers(min_value=1, max_value=4)
dtypes = st.sampled_from(DTYPES)
layouts = st.sampled_from(["contiguous", "transposed", "strided"])
seeds = st.integers(min_value=0, max_value=2**31 - 1)


def shapes(
    min_dims: int = 1, max_dims: int = 4, max_side: int = 6
) -> st.SearchStrategy[tuple[int, ...]]:
    """Shapes with every side in [1, max_side], so size-1 dimensions are common."""
    return st.lists(
        st.integers(min_value=1, max_value=max_side),
        min_size=min_dims,
        max_size=max_dims,
    ).map(tuple)


def batch_shapes(max_dims: int = 3) -> st.SearchStrategy[tuple[int, ...]]:
    """Leading batch dimensions: none, one (often of size 1), or several."""
    return shapes(min_dims=0, max_dims=max_dims, max_side=4)


@st.composite
def broadcast_pairs(draw, max_dims: int = 4) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A full shape and a shape that broadcasts to it.

    The small shape may drop leading dimensions and may have any kept dimension
    replaced by 1: every legal way of broadcasting.
    """
    full = draw(shapes(min_dims=0, max_dims=max_dims))
    keep = draw(st.integers(min_value=0, max_value=len(full)))
    tail = full[len(full) - keep :]
    small = tuple(draw(st.sampled_from([d, 1])) for d in tail)
    return full, small


def make_tensor(
    shape: tuple[int, ...],
    dtype: torch.dtype = torch.float64,
    layout: str = "contiguous",
    seed: int = 0,
    scale: float = 1.0,
) -> torch.Tensor:
    """Random normal tensor of ``shape``, optionally as a non-contiguous view."""
    gen = torch.Generator().manual_seed(seed)
    if layout == "contiguous" or len(shape) == 0:
        return (torch.randn(shape, generator=gen, dtype=torch.float64) * scale).to(
            dtype
        )
    if layout == "transposed":
        if len(shape) < 2:
            layout = "strided"
        else:
            # Allocate with the last two dims swapped, then swap back: same shape,
            # not contiguous.
            swapped = (*shape[:-2], shape[-1], shape[-2])
            base = torch.randn(swapped, generator=gen, dtype=torch.float64) * scale
            return base.to(dtype).transpose(-1, -2)
    if layout == "strided":
        # Every other element along the last dimension of a twice-as-wide tensor.
        wide = (*shape[:-1], 2 * shape[-1])
        base = torch.randn(wide, generator=gen, dtype=torch.float64) * scale
        return base.to(dtype)[..., ::2]
    raise ValueError(f"unknown layout {layout!r}")


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    return TOLERANCES[dtype]


@st.composite
def shapes_and_dims(
    draw, min_dims: int = 1, max_dims: int = 4, max_side: int = 5
) -> tuple[tuple[int, ...], int]:
    """A shape and a dimension of it, given as a negative or a non-negative index."""
    shape = draw(
        shapes(min_dims=max(min_dims, 1), max_dims=max_dims, max_side=max_side)
    )
    dim = draw(st.integers(min_value=-len(shape), max_value=len(shape) - 1))
    return shape, dim


@st.composite
def illegal_broadcast_pairs(
    draw, max_dims: int = 4
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A full shape and a shape that does NOT broadcast to it.

    Either one kept dimension has a size that is neither 1 nor the full size, or
    the small shape has more dimensions than the full one.
    """
    full, small = draw(broadcast_pairs(max_dims=max_dims))
    if draw(st.booleans()) and small:
        i = draw(st.integers(min_value=0, max_value=len(small) - 1))
        wrong = (
            full[len(full) - len(small) + i] + 1
        )  # >= 2, so neither 1 nor the full size
        small = (*small[:i], wrong, *small[i + 1 :])
    else:
        small = (draw(st.integers(min_value=1, max_value=3)), *full)
    return full, small


def make_index(
    shape: tuple[int, ...], high: int, layout: str = "contiguous", seed: int = 0
) -> torch.Tensor:
    """Random int64 indices in [0, high) of ``shape``, maybe as a strided view."""
    gen = torch.Generator().manual_seed(seed)
    if layout == "contiguous" or len(shape) == 0:
        return torch.randint(high, shape, generator=gen)
    # Every other element along the last dimension of a twice-as-wide tensor.
    wide = torch.randint(high, (*shape[:-1], 2 * shape[-1]), generator=gen)
    return wide[..., ::2]


def make_mask(
    shape: tuple[int, ...], seed: int = 0, density: float = 0.5
) -> torch.Tensor:
    """Random boolean attention mask of ``shape``, True with probability ``density``.

    Every row (last dimension) gets at least one True, so no query is left with
    nothing to attend to.
    """
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(shape, generator=gen) < density
    if mask.numel() > 0:
        rows = mask.view(-1, shape[-1])  # a view: writing to it writes to mask
        keep = torch.randint(shape[-1], (rows.shape[0],), generator=gen)
        rows[torch.arange(rows.shape[0]), keep] = True
    return mask


@st.composite
def conv_configs(draw, max_side: int = 7) -> dict:
    """Arguments for a conv2d whose kernel fits the padded input.

    Returns x_shape (N, C, H, W), w_shape (O, C, kh, kw) and stride and padding, each
    either an int or a (vertical, horizontal) pair; kernels odd and even, possibly
    1 x 1 or as large as the padded input, strides that leave rows unused.
    """
    n, c, o = (draw(st.integers(min_value=1, max_value=3)) for _ in range(3))
    kh, kw = (draw(st.integers(min_value=1, max_value=4)) for _ in range(2))
    ph, pw = (draw(st.integers(min_value=0, max_value=2)) for _ in range(2))
    sh, sw = (draw(st.integers(min_value=1, max_value=3)) for _ in range(2))
    if draw(st.booleans()):  # the int form: one value for both directions
        pw, sw = ph, sh
        padding, stride = ph, sh
    else:
        padding, stride = (ph, pw), (sh, sw)
    h = draw(st.integers(min_value=max(1, kh - 2 * ph), max_value=max(max_side, kh)))
    w = draw(st.integers(min_value=max(1, kw - 2 * pw), max_value=max(max_side, kw)))
    return dict(
        x_shape=(n, c, h, w), w_shape=(o, c, kh, kw), stride=stride, padding=padding
    )


@st.composite
def attention_shapes(draw) -> dict:
    """Shapes for attention: q (..., Lq, d), k (..., Lk, d), v (..., Lk, dv); a mask.

    The mask shape broadcasts to the scores (..., Lq, Lk): it may drop leading
    dimensions and have any dimension replaced by 1.
    """
    lead = draw(batch_shapes(max_dims=2))
    lq, lk, d, dv = (draw(st.integers(min_value=1, max_value=5)) for _ in range(4))
    scores = (*lead, lq, lk)
    keep = draw(st.integers(min_value=2, max_value=len(scores)))
    mask = tuple(draw(st.sampled_from([s, 1])) for s in scores[len(scores) - keep :])
    return dict(
        q=(*lead, lq, d), k=(*lead, lk, d), v=(*lead, lk, dv), scores=scores, mask=mask
    )


# A wrong constant factor for a gradient: not 0, not 1, not -1 (the sign has its own
# diagnosis).
wrong_factors = st.floats(min_value=-5, max_value=5).filter(
    lambda f: abs(f) > 0.05 and abs(f - 1) > 0.01 and abs(f + 1) > 0.01
)


attention_mask_kinds = st.sampled_from(["none", "random", "causal"])


def attention_inputs(shapes, dtype, layout, mask_kind, seed):
    """``q, k, v, mask, grad_out`` for ``attention_shapes()``; mask as named."""
    from backprop.attention import causal_mask

    q = make_tensor(shapes["q"], dtype, layout, seed=seed)
    k = make_tensor(shapes["k"], dtype, layout, seed=seed + 1)
    v = make_tensor(shapes["v"], dtype, layout, seed=seed + 2)
    grad_out = make_tensor(
        (*shapes["q"][:-1], shapes["v"][-1]), dtype, layout, seed=seed + 3
    )
    lq, lk = shapes["scores"][-2:]
    mask = {
        "none": None,
        "random": make_mask(shapes["mask"], seed=seed + 4),
        "causal": causal_mask(lq, lk),
    }[mask_kind]
    return q, k, v, mask, grad_out
