"""The diagnoses: compare one returned gradient with the right one and say what
kind of wrong it is, then what the cases say together.

The general diagnoses apply to any gradient (the shape, transposed, a constant
factor, the sign, not summed, close but beyond float64's precision, nan); the
known mistakes of each exercise (its catalogue) come first, as the variants and
spots of each case.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

import torch
from torch import Tensor

from backprop._checks import shape_str
from backprop.exercises.cases import Case, Variant, dtype_label, f32, f64

# A right answer computed another way differs from autograd's by rounding only:
# about 1e-15 relative in float64, 1e-7 in float32. A difference is measured
# against the largest entry of the right answer, so near-zero entries cannot
# raise a false alarm.
TOLERANCE = {f64: (1e-9, 1e-12), f32: (1e-4, 1e-6)}
# Looser, for recognising a known mistake (a transpose, a factor, a variant):
# the candidate may also have rounded differently.
RECOGNISE = {f64: (1e-6, 1e-9), f32: (1e-3, 1e-5)}
# Within this (relative) of the right answer but beyond TOLERANCE: a precision
# issue rather than a wrong formula.
_PRECISION_BAND = 1e-3


@dataclass
class Verdict:
    ok: bool
    key: str = ""  # the same mistake in several cases has the same key
    message: str = ""
    # For key "factor" or "single": the candidate's answer over the right one.
    ratio: float = 1.0
    # Other explanations that fit this case too, as (key, message): a bias gradient
    # of shape (1, n) is an extra axis of size 1, and, for a batch of 1, also not
    # summed over the batch. Across cases, the explanation that fits every case is
    # given (see `general`).
    also: tuple[tuple[str, str], ...] = ()


def close(got: Tensor, want: Tensor, tolerance: tuple[float, float]) -> bool:
    """Equal up to ``tolerance``, relative to ``want``'s largest finite entry.

    nan and inf must sit at the same places (and infs have the same sign), so that
    an answer that overflows is recognised as the known mistake that overflows.
    """
    if got.shape != want.shape:
        return False
    if not want.numel():
        return True
    finite = torch.isfinite(want)
    if not torch.equal(finite, torch.isfinite(got)):
        return False
    if not torch.equal(got[~finite].nan_to_num(), want[~finite].nan_to_num()):
        return False
    if not finite.any():
        return True
    rtol, atol = tolerance
    scale = want[finite].abs().max().item()
    diff = (got[finite] - want[finite]).abs().max().item()
    return diff <= atol + rtol * scale


def _fraction(value: float) -> str:
    if abs(value - round(value)) < 1e-9:
        return str(round(value))
    return f"{value:.3g}"


def _factor_candidates(sizes: dict[str, tuple[float, str]]) -> list[tuple[str, float]]:
    """Expressions a constant factor may be, simplest first: 2, N, 1/N, √d, N/C,
    N·T, ...

    A bare 2 comes first: when a size of the case is 2 too, the plain number is
    the safer name (the other cases, where that size differs, decide).
    """
    # A size of 1 is kept: it still names ratios such as N/C when N = 1.
    bases = [(name, float(value)) for name, (value, _) in sizes.items() if value > 0]
    out: list[tuple[str, float]] = [("2", 2.0), ("1/2", 0.5)]
    for name, value in bases:
        out += [(name, value), (f"1/{name}", 1 / value)]
    for name, value in bases:
        out += [(f"√{name}", math.sqrt(value)), (f"1/√{name}", 1 / math.sqrt(value))]
    for (a, va), (b, vb) in itertools.permutations(bases, 2):
        out.append((f"{a}/{b}", va / vb))
    for size in (2, 3):
        for group in itertools.combinations(bases, size):
            product = "·".join(name for name, _ in group)
            value = math.prod(v for _, v in group)
            out += [(product, value), (f"1/({product})", 1 / value)]
    for name, value in bases:
        out += [(f"2{name}", 2 * value), (f"1/(2{name})", 1 / (2 * value))]
        out += [(f"2/{name}", 2 / value), (f"{name}/2", value / 2)]
        out += [(f"{name}²", value**2), (f"1/{name}²", 1 / value**2)]
    return out


def _symbols(expression: str, sizes: dict[str, tuple[float, str]]) -> list[str]:
    """The sizes an expression such as ``1/(N·H_out·W_out)`` is made of."""
    return [
        n for n in dict.fromkeys(re.findall(r"[A-Za-z_]+", expression)) if n in sizes
    ]


def factor_names(ratio: float, case: Case) -> list[str]:
    """Every expression (``"1/N"``, ``"-2"``, ...) equal to ``ratio`` in this case."""
    sign = "-" if ratio < 0 else ""
    size = abs(ratio)
    return [
        sign + expression
        for expression, value in _factor_candidates(case.sizes)
        if abs(size - value) <= 1e-6 * value
    ]


def factor_text(expression: str, ratio: float, cases: list[Case]) -> str:
    """'×1/N (N = the batch size)', or '×0.37' when no expression names it."""
    if not expression:
        return f"×{ratio:.4g}"
    first = cases[0]
    symbols = _symbols(expression, first.sizes)
    if len(cases) == 1:
        legend = ", ".join(
            f"{n} = {_fraction(first.sizes[n][0])}, {first.sizes[n][1]}"
            for n in symbols
        )
    else:
        legend = ", ".join(f"{n} = {first.sizes[n][1]}" for n in symbols)
    return f"×{expression}" + (f" ({legend})" if legend else "")


def factor_message(
    name: str,
    expression: str,
    ratio: float,
    cases: list[Case],
    note: str,
    where: str = "the same in every entry",
) -> str:
    """Say that ``name`` is off by ``expression`` (or by ``ratio``) in ``cases``."""
    first = cases[0]
    text = factor_text(expression, ratio, cases)
    hint = first.factor_hints.get(expression, "")
    if not hint and expression in ("2", "1/2"):
        hint = "a factor 2 is extra" if expression == "2" else "a factor 2 is missing"
    hint = hint or "a constant is missing or extra"
    end = "" if hint.endswith("?") else "."
    return (
        f"{name} is right up to a constant factor: it is {text} the right answer, "
        f"{where}. {hint[0].upper()}{hint[1:]}{end}{note}"
    )


def factor_groups(
    name: str, found: list[tuple[int, Case, Verdict]]
) -> list[tuple[str, list[int]]]:
    """One message per factor, named consistently across cases where one name fits all.

    A ratio of 2 is "×2" in one case and "×N" in another where N = 2; the name that
    fits every case (×1/N when N differs from case to case) is the diagnosis.
    """
    options = [factor_names(verdict.ratio, case) for _, case, verdict in found]
    common = [e for e in options[0] if all(e in other for other in options[1:])]
    note = found[0][2].message  # the dtype note, if any
    first = found[0][2].ratio
    same = all(abs(v.ratio - first) <= 1e-6 * abs(first) for _, _, v in found)
    if common or same:
        # One name for every case; or, when none fits them all, the same number
        # (×3 is ×T where T = 3, and ×√d where d = 9: it is 3).
        cases = [case for _, case, _ in found]
        expression = common[0] if common else ""
        message = factor_message(name, expression, first, cases, note)
        return [(message, [number for number, _, _ in found])]
    groups: dict[str, tuple[str, list[int]]] = {}
    for (number, case, verdict), names in zip(found, options, strict=True):
        expression = names[0] if names else ""
        key = expression or f"{verdict.ratio:.4g}"
        if key not in groups:
            message = factor_message(name, expression, verdict.ratio, [case], note)
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


def telling(variants: list[Variant], name: str, want: Tensor) -> list[Variant]:
    """The known wrong answers for ``name`` that can be told apart from the right one.

    A mistake can be harmless in a case (leaving out a path that contributes
    nothing there) or give all zeros; a candidate matching such a variant says
    nothing about that mistake.
    """
    recognise = RECOGNISE[want.dtype]
    top = want.abs().max().item() if want.numel() else 0.0
    return [
        v
        for v in variants
        if v.grad == name
        and not close(v.value, want, recognise)
        and (v.value.shape != want.shape or v.value.abs().max().item() > 1e-6 * top)
    ]


def article(word: str) -> str:
    """'an int', 'an ndarray' (read "en-dee-array"), 'a list'."""
    vowel = word[:1].lower() in "aeiou" or word.lower().startswith("nd")
    return ("an " if vowel else "a ") + word


def _shape_rule(case: Case, name: str) -> str:
    """Why a returned value has the shape it must have."""
    if case.kind == "JVP":
        return "a JVP has the shape of the output it measures the motion of"
    if case.kind == "value":
        return f"a value has the shape of what {case.reference} returns"
    return "a gradient has the shape of what it is the gradient of"


def _permutation(
    g: Tensor, want: Tensor, recognise: tuple[float, float]
) -> tuple[int, ...] | None:
    """An order of ``g``'s axes, other than its own, that gives the right answer."""
    if g.ndim != want.ndim or g.ndim < 2 or sorted(g.shape) != sorted(want.shape):
        return None
    for order in itertools.permutations(range(g.ndim)):
        if order == tuple(range(g.ndim)):
            continue
        moved = g.permute(order)
        if moved.shape == want.shape and close(moved, want, recognise):
            return order
    return None


def _permuted_message(
    name: str, g: Tensor, order: tuple[int, ...], expected_shape: str, note: str
) -> str:
    moved = [axis for axis in range(g.ndim) if order[axis] != axis]
    if len(moved) == 2:
        a, b = moved
        how = f"axes {a} and {b} are swapped (.transpose({a}, {b}) puts them back)"
    else:
        how = f"its axes are in the wrong order (.permute{order} puts them back)"
    sizes = (
        f"it has shape {shape_str(g)} instead of {expected_shape}"
        if tuple(g.shape) != tuple(g.permute(order).shape)
        else "equal sizes hide this, since the shape is the same"
    )
    return (
        f"{name} has its axes in the wrong order: {how}; {sizes}. Check the order "
        f"of the indices where it is computed (an einsum, a permute, a product).{note}"
    )


def _unsummed(
    name: str,
    g: Tensor,
    want: Tensor,
    of: str,
    recognise: tuple[float, float],
    expected_shape: str,
) -> tuple[str, str] | None:
    """'Not summed over axes ...': a sum over some of ``g``'s axes gives ``want``."""
    for axes in _reductions(g, want):
        if close(g.sum(axes), want, recognise):
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
            return (
                f"unsummed{axes}",
                f"{name} has shape {shape_str(g)} instead of {expected_shape}: {how}.",
            )
    return None


def _size_one_axes(
    name: str,
    g: Tensor,
    want: Tensor,
    expected_shape: str,
    recognise: tuple[float, float],
) -> str | None:
    """The right numbers with an axis of size 1 too many or too few."""
    if g.numel() != want.numel() or g.ndim == want.ndim:
        return None
    if [s for s in g.shape if s != 1] != [s for s in want.shape if s != 1]:
        return None
    if not close(g.reshape(want.shape), want, recognise):
        return None
    if g.ndim > want.ndim:
        return (
            f"{name} has the right numbers with an extra axis of size 1: shape "
            f"{shape_str(g)} instead of {expected_shape}. A sum with keepdim=True, or "
            "[None] / unsqueeze, keeps that axis: leave it out (e.g. .sum(0), "
            "without keepdim)."
        )
    return (
        f"{name} has the right numbers but lacks an axis of size 1: shape "
        f"{shape_str(g)} instead of {expected_shape}. Keep it (keepdim=True in the "
        "sum, or .reshape to the input's shape)."
    )


def _axis_factor(
    name: str, g: Tensor, want: Tensor, recognise: tuple[float, float], note: str
) -> tuple[str, str] | None:
    """A factor that is constant along each row (or column) but differs between
    them: not one constant."""
    if want.ndim < 2:
        return None
    rows_first = want.reshape(-1, want.shape[-1])
    got_rows = g.reshape(-1, want.shape[-1])
    for axis, (w, h) in (
        ("rows", (rows_first, got_rows)),
        ("columns", (rows_first.T, got_rows.T)),
    ):
        if w.shape[0] < 2:
            continue
        scale = (w * w).sum(1)
        if (scale <= 0).any():
            continue
        ratios = (h * w).sum(1) / scale
        if not close(h, ratios[:, None] * w, recognise):
            continue
        top = ratios.abs().max().item()
        if (ratios - ratios[0]).abs().max().item() <= 1e-3 * top:
            continue  # one constant after all
        if bool(((ratios - 1).abs() <= 1e-3).any()):
            continue  # some right: "wrong only in rows ..." says more
        shown = ", ".join(
            f"×{r:.3g} in {axis[:-1]} {i}" for i, r in enumerate(ratios[:3].tolist())
        )
        more = ", …" if len(ratios) > 3 else ""
        what = "row" if axis == "rows" else "column"
        return (
            f"axisfactor:{axis}",
            f"{name} is the right answer times a factor that changes from {what} to "
            f"{what} ({shown}{more}): not one constant, but a quantity of each "
            f"{what} that is missing, extra or taken to the wrong power (a σ, a "
            f"count, a sum of the {what}?).{note}",
        )
    return None


def _reshape_message(name: str, g: Tensor, expected_shape: str) -> str:
    return (
        f"{name} has the right numbers in the wrong shape: {shape_str(g)} "
        f"instead of {expected_shape}; reshape it."
    )


def judge(
    name: str, got: object, want: Tensor, case: Case, skip: frozenset[str] = frozenset()
) -> Verdict:
    """Compare one returned gradient with autograd's and diagnose the difference.

    ``skip`` holds the patterns the exercise opts out of (``"permuted"``,
    ``"size-1 axis"``, ``"axis factor"``).
    """
    of = case.of.get(name, _input_of(name))
    if got is None:
        return Verdict(
            False,
            "none",
            f"{name} is None; it should be a tensor of shape {shape_str(want)}, "
            f"{of}'s shape (did a line forget its return?)",
        )
    if not isinstance(got, Tensor):
        return Verdict(
            False,
            "type",
            f"{name} is {article(type(got).__name__)}, not a tensor; it should be a "
            f"tensor of shape {shape_str(want)}",
        )
    if not got.is_floating_point():
        made_of = "a value" if case.kind == "value" else "a gradient"
        return Verdict(
            False,
            "int",
            f"{name} has dtype {dtype_label(got.dtype)}: {made_of} is made of real "
            f"numbers, so it should have {of}'s dtype, {dtype_label(want.dtype)}",
        )
    g = got.detach().to(want.dtype)
    recognise = RECOGNISE[want.dtype]
    expected_shape = f"{shape_str(want)}, {of}'s shape"

    if g.shape != want.shape:
        for variant in telling(case.variants, name, want):
            if close(g, variant.value, recognise):
                return Verdict(
                    False,
                    "variant:" + variant.meaning,
                    f"{name} has shape {shape_str(g)} instead of {expected_shape}: "
                    f"{variant.meaning}.",
                )
        order = None if "permuted" in skip else _permutation(g, want, recognise)
        if order is not None and g.ndim == 2:
            return Verdict(
                False,
                "transposed",
                f"{name} is transposed: it has shape {shape_str(g)}, but "
                f"{_shape_rule(case, name)}, {expected_shape}. Its transpose is "
                "right: swap the order of the product (and transpose each factor).",
            )
        if order is not None:
            return Verdict(
                False,
                "permuted",
                _permuted_message(name, g, order, expected_shape, ""),
            )
        unsummed = (
            None
            if case.kind == "value"  # "broadcast in the forward" is a gradient's
            else _unsummed(name, g, want, of, recognise, expected_shape)
        )
        size_one = (
            None
            if "size-1 axis" in skip
            else _size_one_axes(name, g, want, expected_shape, recognise)
        )
        if size_one is not None:
            also = [unsummed] if unsummed else []
            also.append(("reshape", _reshape_message(name, g, expected_shape)))
            return Verdict(False, "size-1 axis", size_one, also=tuple(also))
        if unsummed is not None:
            return Verdict(False, *unsummed)
        if g.numel() == want.numel() and close(g.reshape(want.shape), want, recognise):
            return Verdict(False, "reshape", _reshape_message(name, g, expected_shape))
        if want.ndim == 2 and want.shape[1] == 1 and g.shape == (want.shape[0],) * 2:
            n = want.shape[0]
            return Verdict(
                False,
                "broadcast",
                f"{name} has shape {shape_str(g)} instead of {expected_shape}: an "
                f"({n}, 1) tensor met an ({n},) one and broadcast to ({n}, {n}), "
                "pairing every row with every other. Make the two shapes equal "
                "(e.g. target.reshape(pred.shape)).",
            )
        return Verdict(
            False,
            "shape",
            f"{name} has shape {shape_str(g)} but must have shape {expected_shape} "
            f"({_shape_rule(case, name)}).",
        )

    if not torch.isfinite(g).all() and torch.isfinite(want).all():
        bad = int((~torch.isfinite(g)).sum())
        note = f" {case.note}." if case.note else ""
        return Verdict(
            False,
            "nonfinite",
            f"{name} has {bad} nan or inf entries where the right answer is "
            f"finite.{note}",
        )

    # Right to the precision of the dtype it came back in: the dtype is the mistake.
    own_tolerance = TOLERANCE.get(got.dtype, TOLERANCE[want.dtype])
    right_values = close(g, want, TOLERANCE[want.dtype])
    if right_values or (got.dtype != want.dtype and close(g, want, own_tolerance)):
        if got.dtype != want.dtype and case.kind == "value":
            return Verdict(
                False,
                "dtype",
                f"{name} has dtype {dtype_label(got.dtype)} but the inputs are "
                f"{dtype_label(want.dtype)}: compute in the inputs' dtype (a tensor "
                "made without dtype=, or .float(), changes it).",
            )
        if got.dtype != want.dtype:
            return Verdict(
                False,
                "dtype",
                f"{name} has dtype {dtype_label(got.dtype)} but {of} is "
                f"{dtype_label(want.dtype)}: create new tensors with {of}'s dtype "
                f"(e.g. torch.zeros_like({of}), or dtype={of}.dtype).",
            )
        return Verdict(True)

    dtype_note = ""
    if got.dtype != want.dtype:
        dtype_note = (
            f" (It also has dtype {dtype_label(got.dtype)} instead of "
            f"{dtype_label(want.dtype)}.)"
        )
    for variant in telling(case.variants, name, want):
        if close(g, variant.value, recognise):
            return Verdict(
                False,
                "variant:" + variant.meaning,
                f"{name}: {variant.meaning}.{dtype_note}",
            )
    if (
        want.ndim == 2
        and want.shape[0] == want.shape[1]
        and close(g, want.T, recognise)
    ):
        return Verdict(
            False,
            "transposed",
            f"{name} is transposed: its transpose is right. Square shapes hide this, "
            "since a transposed square matrix has the same shape; swap the order of "
            f"the product (and transpose each factor).{dtype_note}",
            # On a square, a transpose reshaped is the transpose.
            also=(("reshaped", ""),),
        )
    if want.ndim > 2 and "permuted" not in skip:
        order = _permutation(g, want, recognise)
        if order is not None:
            return Verdict(
                False,
                "permuted",
                _permuted_message(name, g, order, expected_shape, dtype_note),
            )
    non_square = want.ndim == 2 and want.shape[0] != want.shape[1]
    if (
        non_square
        and 1 not in want.shape
        and close(g, want.T.reshape(want.shape), recognise)
    ):
        return Verdict(
            False,
            "reshaped",
            f"{name} holds the transpose of the right answer, reshaped to "
            f"{of}'s shape: use a transpose (.T), not .reshape or .view, to "
            f"turn a matrix around.{dtype_note}",
        )

    scale = (want * want).sum().item()
    general = _difference(name, g, want, dtype_note, case.reference)
    if scale > 0:
        ratio = (g * want).sum().item() / scale
        constant = (
            abs(ratio - 1) > 1e-3 and ratio != 0 and close(g, ratio * want, recognise)
        )
        if constant and want.numel() == 1:
            # One number is a multiple of any other: only several cases with the
            # same ratio (see `general`) make it a factor.
            return Verdict(
                False, "single", general, ratio=ratio, also=(("mismatch", general),)
            )
        if constant:
            also = [("mismatch", general)]
            rows = want.reshape(-1, want.shape[-1]).shape[0] if want.ndim >= 2 else 0
            if rows == 1 and "axis factor" not in skip:
                # One row: a factor of each row is one constant here. (Its words
                # come from a case with several rows: see `general`.)
                also.insert(0, ("axisfactor:rows", ""))
            if abs(ratio + 1) <= 1e-6:
                return Verdict(
                    False,
                    "sign",
                    f"{name} has the wrong sign: it is exactly minus the right answer. "
                    "Check the order of a subtraction (e.g. pred - target, not "
                    f"target - pred) or a stray minus.{dtype_note}",
                    ratio=-1.0,
                    also=tuple(also),
                )
            # Named in factor_groups, where every case's ratio is known.
            return Verdict(False, "factor", dtype_note, ratio=ratio, also=tuple(also))
    if "axis factor" not in skip:
        varying = _axis_factor(name, g, want, recognise, dtype_note)
        if varying is not None:
            return Verdict(False, *varying, also=(("mismatch", general),))

    rtol, atol = TOLERANCE[want.dtype]
    top = want.abs().max().item()
    wrong = (g - want).abs() > atol + rtol * top
    for spot in case.spots:
        mask = spot.mask.expand(want.shape)
        if spot.grad == name and mask.any() and not (wrong & ~mask).any():
            return Verdict(False, "spot:" + spot.meaning, f"{name}: {spot.meaning}.")

    relative = (g - want).abs().max().item() / max(top, atol)
    if relative < _PRECISION_BAND and want.dtype == f64:
        return Verdict(
            False,
            "precision",
            f"{name} is close but not within float64's precision: it differs from the "
            f"right answer by {relative:.1e} (relative), where two right answers agree "
            "to about 1e-15. That is a precision issue rather than a wrong formula: a "
            "step in float32 (torch.tensor or torch.zeros without dtype=), or a small "
            f"constant such as eps left out or added.{dtype_note}",
        )
    return Verdict(False, "mismatch", general)


def _indices(flags: Tensor) -> str:
    numbers = flags.nonzero().flatten().tolist()
    shown = ", ".join(map(str, numbers[:8])) + (", ..." if len(numbers) > 8 else "")
    return shown


def _difference(
    name: str, g: Tensor, want: Tensor, note: str, reference: str = "autograd"
) -> str:
    """Where ``g`` differs from ``want``, in general terms: how many entries, which
    rows or columns when the others are right, the ratio where it is constant."""
    if g.ndim == 0:  # one number (a loss): the two numbers say it all
        return (
            f"{name} does not match: yours is {g.item():.6g}, {reference}'s "
            f"{want.item():.6g}.{note}"
        )
    rtol, atol = TOLERANCE[want.dtype]
    difference = (g - want).abs()
    wrong = difference > atol + rtol * want.abs().max().item()
    count = int(wrong.sum())
    text = f"{name} does not match: {count} of {g.numel()} entries are wrong"
    if want.ndim >= 2 and count:
        rows = wrong.reshape(want.shape[0], -1).any(1)
        columns = wrong.reshape(-1, want.shape[-1]).any(0)
        if not rows.all():
            text += f", only in rows {_indices(rows)} of {want.shape[0]}"
        if not columns.all():
            text += f", only in columns {_indices(columns)} of {want.shape[-1]}"
    if count and want.numel() > 1:
        ratios = g[wrong] / want[wrong]
        ratio = ratios.mean().item() if ratios.numel() else 0.0
        spread = (ratios - ratio).abs().max().item() / max(abs(ratio), 1e-12)
        if torch.isfinite(ratios).all() and abs(ratio) > 1e-12 and spread <= 1e-2:
            about = "" if spread <= 1e-6 else "about "
            text += f"; on those entries it is {about}×{ratio:.4g} the right answer"
    position = tuple(int(i) for i in torch.unravel_index(difference.argmax(), g.shape))
    where = f"[{', '.join(map(str, position))}]"
    return (
        f"{text}; the largest difference is at {name}{where}: yours "
        f"{g[position].item():.4g}, {reference}'s {want[position].item():.4g}.{note}"
    )


def general(
    name: str, cases: list[Case], verdicts: list[dict[str, Verdict]]
) -> list[tuple[str, str, list[int]]]:
    """The general diagnoses of one gradient, one message per kind of mistake.

    Each case's verdict may fit several explanations (`Verdict.also`); the first
    one that fits every case where the gradient is wrong is given, so that a bias
    gradient of shape (1, n) is "not summed over the batch" when the larger batches
    say so, and a factor that fits one case while another case shows something
    else is not offered. Failing that, each case gets its own.
    """
    wrong = [
        (number, case, found[name])
        for number, (case, found) in enumerate(zip(cases, verdicts, strict=True), 1)
        if not found[name].ok
    ]
    options = [[(v.key, v.message), *v.also] for _, _, v in wrong]
    keys = [{key for key, _ in option} for option in options]
    common = next((k for k, _ in options[0] if all(k in ks for ks in keys)), None)
    if common is None:
        groups: dict[str, tuple[str, list[int]]] = {}
        factors = []
        for number, case, verdict in wrong:
            if verdict.key == "factor":
                factors.append((number, case, verdict))
            else:
                groups.setdefault(verdict.key, (verdict.message, []))[1].append(number)
        found = list(groups.values()) + (
            factor_groups(name, factors) if factors else []
        )
        return [(name, message, numbers) for message, numbers in found]
    numbers = [number for number, _, _ in wrong]
    if common == "factor":
        return [(name, m, n) for m, n in factor_groups(name, wrong)]
    if common == "single":
        return [(name, _single(name, wrong), numbers)]
    # The first case's words: its shapes are the ones the case list starts with;
    # unless it has none for this explanation (a factor of each row, on one row).
    message = dict(reversed(options[0]))[common] or next(
        v.message for _, _, v in wrong if v.key == common
    )
    if common == "mismatch" and len(wrong) > 1:
        # Its counts, rows and ratio are those of one case; the others differ.
        message = f"{message} (The numbers are case {numbers[0]}'s.)"
    return [(name, message, numbers)]


def _single(name: str, wrong: list[tuple[int, Case, Verdict]]) -> str:
    """A gradient of one element: a factor only when several cases agree on it."""
    first = wrong[0][2]
    if len(wrong) < 2:
        return first.message
    ratios = [v.ratio for _, _, v in wrong]
    if all(abs(r + 1) <= 1e-6 for r in ratios):
        return (
            f"{name} has the wrong sign on every case: it is exactly minus the right "
            "answer. Check the order of a subtraction or a stray minus."
        )
    options = [factor_names(v.ratio, case) for _, case, v in wrong]
    common = [e for e in options[0] if all(e in other for other in options[1:])]
    same = all(abs(r - ratios[0]) <= 1e-6 * abs(ratios[0]) for r in ratios)
    if common or same:
        cases = [case for _, case, _ in wrong]
        expression = common[0] if common else ""
        return factor_message(name, expression, ratios[0], cases, "", "on every case")
    return first.message


def merge_same(found: list[tuple[str, str, list[int]]]) -> list[tuple[str, list[int]]]:
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


def case_list(numbers: list[int]) -> str:
    return ("case " if len(numbers) == 1 else "cases ") + ", ".join(map(str, numbers))


def patterns(cases: list[Case], verdicts: list[dict[str, Verdict]]) -> list[str]:
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
