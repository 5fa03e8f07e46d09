"""Tests for backprop.gradcheck: finite differences and the gradient check itself.

The check must pass correct backwards and, above all, FAIL wrong ones: each
classic derivation mistake below is a backward that returns tensors of the right
shape but the wrong values.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from backprop._checks import shape_str
from backprop.gradcheck import GradcheckResult, gradcheck, numerical_grad
from oracles import autograd_grads, finite_difference_grads
from strategies import (
    batch_shapes,
    dtypes,
    layouts,
    make_tensor,
    seeds,
    shapes,
    tolerance,
)

# --- small functions of our own, with hand-written backwards --------------------------


def lin(x, w, b):
    return x @ w + b


def lin_backward(g, x, w, b):
    # y = x w + b over leading batch dims: flatten them to rows.
    rows_x, rows_g = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
    return g @ w.T, rows_x.T @ rows_g, rows_g.sum(0)


def mse(pred, target):
    return ((pred - target) ** 2).mean()


def mse_backward(g, pred, target):
    grad = g * 2 * (pred - target) / pred.numel()
    return grad, -grad


def tanh(x):
    return torch.tanh(x)


def tanh_backward(g, x):
    return g * (1 - torch.tanh(x) ** 2)


def cross_entropy(logits, target):
    # Stable log-softmax, then the mean negative log-likelihood of the target class.
    shifted = logits - logits.max(-1, keepdim=True).values
    log_probs = shifted - shifted.exp().sum(-1, keepdim=True).log()
    return -log_probs[torch.arange(len(target)), target].mean()


def cross_entropy_backward(g, logits, target):
    probs = torch.softmax(logits, -1)
    one_hot = torch.zeros_like(probs)
    one_hot[torch.arange(len(target)), target] = 1
    return g * (probs - one_hot) / len(target), None


def _assert_all_close(result: GradcheckResult) -> None:
    assert result, str(result)
    assert all(row.close for row in result.rows if row.skipped is None)
    result.assert_ok()


def _assert_mismatch(result: GradcheckResult, bad: str, good: list[str]) -> None:
    rows = {row.name: row for row in result.rows}
    assert not result
    assert not rows[bad].close and rows[bad].match == "MISMATCH"
    for name in good:
        assert rows[name].close, str(result)
    with pytest.raises(AssertionError, match=rf"does not match for {bad}\b"):
        result.assert_ok()


# --- numerical_grad -------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    shape=shapes(min_dims=0, max_dims=3, max_side=4),
    dtype=dtypes,
    layout=layouts,
    seed=seeds,
)
def test_numerical_grad_matches_closed_forms(shape, dtype, layout, seed) -> None:
    x = make_tensor(shape, dtype, layout, seed)
    x64 = x.to(torch.float64)
    cube = numerical_grad(lambda t: (t**3).sum(), x)
    assert cube.dtype == torch.float64 and cube.shape == x.shape
    # Central differences err by about eps² (truncation) plus the rounding of f,
    # unit roundoff times the size of the sum, divided by eps: with 64 elements
    # that second term alone can pass 1e-8.
    rounding = torch.finfo(torch.float64).eps * float((x64.abs() ** 3).sum()) / 1e-6
    torch.testing.assert_close(cube, 3 * x64**2, rtol=1e-7, atol=1e-8 + rounding)
    # d/dx log(sum(exp(x))) = softmax(x), over all elements.
    lse = numerical_grad(lambda t: t.reshape(-1).exp().sum().log(), x)
    torch.testing.assert_close(
        lse, torch.softmax(x64.reshape(-1), 0).reshape(x.shape), rtol=1e-7, atol=1e-8
    )


@settings(max_examples=40, deadline=None)
@given(shape=shapes(min_dims=1, max_dims=3, max_side=4), layout=layouts, seed=seeds)
def test_numerical_grad_matches_autograd(shape, layout, seed) -> None:
    x = make_tensor(shape, torch.float64, layout, seed)

    def f(t):
        return (torch.sin(t) * t.flip(-1)).sum()

    (expected,) = autograd_grads(f, [x])
    torch.testing.assert_close(numerical_grad(f, x), expected, rtol=1e-7, atol=1e-8)


def test_numerical_grad_is_float64_even_for_float32_input() -> None:
    # In float32 the same differences would be off by ~1e-2; in float64 by ~1e-10.
    x = make_tensor((4, 3), torch.float32, seed=3)
    grad = numerical_grad(lambda t: (t**2).sum(), x)
    assert grad.dtype == torch.float64
    torch.testing.assert_close(grad, 2 * x.to(torch.float64), rtol=1e-8, atol=1e-9)


def test_numerical_grad_rejects_bad_input() -> None:
    with pytest.raises(
        ValueError,
        match=r"f\(x\) must return a scalar \(one element\), got shape \(3,\)",
    ):
        numerical_grad(lambda t: t * 2, torch.zeros(3))
    with pytest.raises(
        ValueError, match=r"x must be a floating-point tensor, got dtype torch.int64"
    ):
        numerical_grad(lambda t: t.sum(), torch.arange(3))
    with pytest.raises(ValueError, match=r"eps must be positive"):
        numerical_grad(lambda t: t.sum(), torch.zeros(3), eps=-1e-6)


# --- gradcheck passes correct backwards
# -------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    batch=batch_shapes(max_dims=2),
    n_in=st.integers(1, 4),
    n_out=st.integers(1, 4),
    dtype=dtypes,
    layout=layouts,
    seed=seeds,
)
def test_gradcheck_passes_correct_linear(
    batch, n_in, n_out, dtype, layout, seed
) -> None:
    x = make_tensor((*batch, 1 + seed % 3, n_in), dtype, layout, seed)
    w = make_tensor((n_in, n_out), dtype, layout, seed + 1)
    b = make_tensor((n_out,), dtype, layout, seed + 2)
    result = gradcheck(
        lin, lin_backward, [x, w, b], names=["x", "w", "b"], seed=seed + 3
    )
    _assert_all_close(result)
    assert [row.name for row in result.rows] == ["x", "w", "b"]
    assert [row.shape for row in result.rows] == [
        tuple(x.shape),
        tuple(w.shape),
        tuple(b.shape),
    ]
    # The autograd column really is autograd's gradient of sum(y * grad_out).
    assert (
        result.grad_out.shape == lin(x, w, b).shape and result.grad_out.dtype == dtype
    )
    expected = autograd_grads(lin, [x, w, b], result.grad_out)
    for row, grad in zip(result.rows, expected, strict=True):
        torch.testing.assert_close(row.autograd_grad, grad, **tolerance(dtype))
        torch.testing.assert_close(row.grad, grad, **tolerance(dtype))


@settings(max_examples=40, deadline=None)
@given(
    shape=shapes(min_dims=0, max_dims=3, max_side=4),
    dtype=dtypes,
    layout=layouts,
    seed=seeds,
)
def test_gradcheck_passes_correct_mse_and_tanh(shape, dtype, layout, seed) -> None:
    pred = make_tensor(shape, dtype, layout, seed)
    target = make_tensor(shape, dtype, "contiguous", seed + 1)
    _assert_all_close(
        gradcheck(mse, mse_backward, [pred, target], names=["pred", "target"])
    )
    # One input: a bare tensor from backward is fine, and inputs may be a bare tensor
    # too.
    _assert_all_close(gradcheck(tanh, tanh_backward, pred, seed=seed + 3))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 4), c=st.integers(1, 5), dtype=dtypes, seed=seeds)
def test_gradcheck_skips_integer_inputs(n, c, dtype, seed) -> None:
    logits = make_tensor((n, c), dtype, seed=seed + 3)
    target = torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(seed))
    result = gradcheck(
        cross_entropy,
        cross_entropy_backward,
        [logits, target],
        names=["logits", "target"],
    )
    _assert_all_close(result)
    logits_row, target_row = result.rows
    assert logits_row.skipped is None and logits_row.close
    assert target_row.skipped == "integer" and target_row.match == "skipped (integer)"
    assert not target_row.close and not target_row.exact
    # A scalar output is checked with grad_out = 1.
    assert result.grad_out.shape == () and result.grad_out.item() == 1


def test_gradcheck_with_functional_backwards() -> None:
    F = pytest.importorskip("backprop.functional")
    for dtype in (torch.float64, torch.float32):
        x = make_tensor((5, 4), dtype, "transposed", seed=1)
        w = make_tensor((4, 3), dtype, seed=2)
        b = make_tensor((3,), dtype, seed=3)
        _assert_all_close(
            gradcheck(F.lin, F.lin_backward, [x, w, b], names=["x", "w", "b"])
        )
        _assert_all_close(
            gradcheck(
                lambda t: F.softmax(t, 0), lambda g, t: F.softmax_backward(g, t, 0), [x]
            )
        )
        # Loss backwards take no upstream gradient: scale by it (it is 1 here).
        target = make_tensor((5, 4), dtype, seed=4)
        mse_result = gradcheck(
            F.mse,
            lambda g, p, t: (g * F.mse_backward(p, t), None),
            [x, target],
            names=["pred", "target"],
        )
        _assert_all_close(mse_result)
        assert mse_result.rows[1].skipped == "no gradient"
        labels = torch.tensor([0, 2, 1, 2, 0])
        _assert_all_close(
            gradcheck(
                F.cross_entropy,
                lambda g, logits, t: (g * F.cross_entropy_backward(logits, t), None),
                [x, labels],
            )
        )


def test_gradcheck_exact_means_bitwise_equal_to_autograd() -> None:
    x = make_tensor((3, 4), torch.float64, seed=5)
    y = make_tensor((3, 4), torch.float64, seed=6)
    # Autograd's backward of x * y is grad * y and grad * x: the very same operations.
    result = gradcheck(torch.mul, lambda g, x, y: (g * y, g * x), [x, y])
    assert all(row.exact and row.match == "exact" for row in result.rows)
    # Off by one part in 1e8: within rtol=1e-6, so close, but no longer exact.
    result = gradcheck(torch.mul, lambda g, x, y: (g * y * (1 + 1e-8), g * x), [x, y])
    assert result and not result.rows[0].exact and result.rows[0].match == "close"
    assert 0 < result.rows[0].max_rel_autograd < 1e-6
    # Off by one part in 1e4: a mismatch.
    result = gradcheck(torch.mul, lambda g, x, y: (g * y * (1 + 1e-4), g * x), [x, y])
    _assert_mismatch(result, "x0", ["x1"])


def test_gradcheck_random_grad_out_is_seeded() -> None:
    x = make_tensor((3, 4), torch.float32, seed=7)
    first = gradcheck(tanh, tanh_backward, [x], seed=1)
    again = gradcheck(tanh, tanh_backward, [x], seed=1)
    other = gradcheck(tanh, tanh_backward, [x], seed=2)
    assert torch.equal(first.grad_out, again.grad_out)
    assert not torch.equal(first.grad_out, other.grad_out)
    given_grad = make_tensor((3, 4), torch.float32, seed=8)
    assert torch.equal(
        gradcheck(tanh, tanh_backward, [x], grad_out=given_grad).grad_out, given_grad
    )


# --- gradcheck fails wrong backwards
# ---------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    shape=shapes(min_dims=1, max_dims=3, max_side=4),
    dtype=dtypes,
    layout=layouts,
    seed=seeds,
)
def test_gradcheck_fails_missing_one_over_n(shape, dtype, layout, seed) -> None:
    assume(math.prod(shape) >= 2)  # with N = 1 a missing 1/N changes nothing
    pred = make_tensor(shape, dtype, layout, seed)
    target = make_tensor(shape, dtype, "contiguous", seed + 1)

    def forgot_mean(g, pred, target):
        grad_pred, grad_target = mse_backward(g, pred, target)
        return grad_pred * pred.numel(), grad_target

    result = gradcheck(mse, forgot_mean, [pred, target], names=["pred", "target"])
    _assert_mismatch(result, "pred", ["target"])


@settings(max_examples=30, deadline=None)
@given(
    batch=st.integers(1, 4),
    n=st.integers(2, 4),
    dtype=dtypes,
    layout=layouts,
    seed=seeds,
)
def test_gradcheck_fails_transposed_weight_gradient(
    batch, n, dtype, layout, seed
) -> None:
    # A square weight, so the transposed gradient still has the right shape.
    x = make_tensor((batch, n), dtype, layout, seed)
    w = make_tensor((n, n), dtype, layout, seed + 1)
    b = make_tensor((n,), dtype, layout, seed + 2)

    def transposed(g, x, w, b):
        gx, gw, gb = lin_backward(g, x, w, b)
        return gx, gw.T, gb

    result = gradcheck(lin, transposed, [x, w, b], names=["x", "w", "b"], seed=seed + 3)
    _assert_mismatch(result, "w", ["x", "b"])


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 4),
    n_in=st.integers(1, 4),
    dtype=dtypes,
    layout=layouts,
    seed=seeds,
)
def test_gradcheck_fails_bias_summed_over_wrong_axis(
    n, n_in, dtype, layout, seed
) -> None:
    # n rows and n outputs, so summing over the outputs instead of the rows keeps the
    # shape.
    x = make_tensor((n, n_in), dtype, layout, seed)
    w = make_tensor((n_in, n), dtype, layout, seed + 1)
    b = make_tensor((n,), dtype, layout, seed + 2)

    def wrong_axis(g, x, w, b):
        gx, gw, _ = lin_backward(g, x, w, b)
        return gx, gw, g.sum(1)

    result = gradcheck(lin, wrong_axis, [x, w, b], names=["x", "w", "b"], seed=seed + 3)
    _assert_mismatch(result, "b", ["x", "w"])


@settings(max_examples=30, deadline=None)
@given(
    shape=shapes(min_dims=0, max_dims=3, max_side=4),
    dtype=dtypes,
    layout=layouts,
    seed=seeds,
)
def test_gradcheck_fails_wrong_sign(shape, dtype, layout, seed) -> None:
    x = make_tensor(shape, dtype, layout, seed)
    result = gradcheck(
        tanh, lambda g, x: -tanh_backward(g, x), [x], names=["x"], seed=seed + 3
    )
    _assert_mismatch(result, "x", [])


def test_gradcheck_needs_both_oracles() -> None:
    """The hand backward runs in the input's dtype (vs autograd) and in float64 (vs
    finite
    differences); a backward wrong in either run is a mismatch."""
    x = make_tensor((3, 2), torch.float32, seed=4)

    def wrong_in(dtype):
        def backward(g, x):
            return tanh_backward(g, x) * (2 if x.dtype == dtype else 1)

        return backward

    wrong_vs_autograd = gradcheck(tanh, wrong_in(torch.float32), [x], names=["x"])
    assert wrong_vs_autograd.rows[0].max_abs_autograd > 0.1
    assert wrong_vs_autograd.rows[0].max_abs_finite_diff < 1e-8
    _assert_mismatch(wrong_vs_autograd, "x", [])
    wrong_vs_finite_diff = gradcheck(tanh, wrong_in(torch.float64), [x], names=["x"])
    assert wrong_vs_finite_diff.rows[0].max_abs_autograd < 1e-5
    assert wrong_vs_finite_diff.rows[0].max_abs_finite_diff > 0.1
    _assert_mismatch(wrong_vs_finite_diff, "x", [])


def test_gradcheck_fails_wrong_functional_style_backward() -> None:
    F = pytest.importorskip("backprop.functional")
    x, w, b = (
        make_tensor((4, 3), seed=1),
        make_tensor((3, 3), seed=2),
        make_tensor((3,), seed=3),
    )

    def negated_input_grad(g, x, w, b):
        gx, gw, gb = F.lin_backward(g, x, w, b)
        return -gx, gw, gb

    _assert_mismatch(
        gradcheck(F.lin, negated_input_grad, [x, w, b], names=["x", "w", "b"]),
        "x",
        ["w", "b"],
    )


# --- the table
# ---------------------------------------------------------------------------


def test_str_and_markdown_have_a_row_per_input() -> None:
    x = make_tensor((2, 3), seed=1)
    w = make_tensor((3, 3), seed=2)
    b = make_tensor((3,), seed=3)

    def transposed(g, x, w, b):
        gx, gw, gb = lin_backward(g, x, w, b)
        return gx, gw.T, gb

    for backward, w_match in (
        (lin_backward, r"(exact|close)"),
        (transposed, "MISMATCH"),
    ):
        result = gradcheck(
            lin, backward, [x, w, b], names=["inputs", "weights", "bias"]
        )
        text, markdown = str(result), result._repr_markdown_()
        lines = text.splitlines()
        assert len(lines) == 2 + 3  # header, rule, one line per input
        assert re.match(
            r"input\s+shape\s+max \|Δ\| vs autograd\s+max rel vs autograd\s+max \|Δ\| "
            r"vs finite diff\s+max rel vs finite diff\s+match$",
            lines[0],
        )
        for line, name, t in zip(
            lines[2:], ["inputs", "weights", "bias"], [x, w, b], strict=True
        ):
            assert line.split()[0] == name and shape_str(t) in line
        assert re.search(rf"^weights .*{w_match}$", text, flags=re.M)
        md_lines = markdown.strip().splitlines()
        assert len(md_lines) == 2 + 3 and all(
            line.startswith("| ") and line.endswith(" |") for line in md_lines[2:]
        )
        assert r"max \|Δ\| vs autograd" in md_lines[0]
        for md_line, name, t in zip(
            md_lines[2:], ["inputs", "weights", "bias"], [x, w, b], strict=True
        ):
            assert md_line.startswith(f"| {name} | {shape_str(t)} |")
        # Columns line up: every line of the text table starts its columns at the same
        # offsets.
        starts = [m.start() for m in re.finditer(r"(?<=  )\S", lines[1])]
        for line in lines[2:]:
            assert all(line[s - 2 : s] == "  " for s in starts)


def _table_column(result: GradcheckResult, header: str) -> list[str]:
    """The cells of one column of the Markdown table, one per input."""
    rows = [
        line.strip().removeprefix("| ").removesuffix(" |").split(" | ")
        for line in result._repr_markdown_().strip().splitlines()
    ]
    headers = [cell.replace("\\|", "|") for cell in rows[0]]
    return [row[headers.index(header)] for row in rows[2:]]


@pytest.mark.parametrize("error", [0.0, 1e-5, 1e-3, 1.0])
def test_table_shows_relative_error_against_finite_differences(error) -> None:
    # A backward wrong by a known factor, tanh's derivative times (1 + error): its
    # relative error max |a - b| / max |b| is `error` itself. The column must show it.
    # A gradient far from 1 in size, so that the relative error differs from the
    # absolute one.
    x = make_tensor((3, 4), torch.float64, seed=11)
    grad_out = 100 * make_tensor((3, 4), torch.float64, seed=12)

    def backward(g, x):
        return g * (1 - torch.tanh(x) ** 2) * (1 + error)

    # Computed independently: an own finite-difference loop (tests/oracles.py).
    (fd,) = finite_difference_grads(tanh, [x], grad_out)
    expected = float((backward(grad_out, x) - fd).abs().max() / fd.abs().max())
    assert math.isclose(expected, error, rel_tol=1e-3, abs_tol=1e-9)

    result = gradcheck(tanh, backward, [x], grad_out=grad_out)
    assert math.isclose(
        result.rows[0].max_rel_finite_diff, expected, rel_tol=1e-4, abs_tol=1e-9
    )
    (shown,) = _table_column(result, "max rel vs finite diff")
    if error == 0:
        assert float(shown) < 1e-8  # a right gradient: the check's own rounding
    else:
        assert math.isclose(float(shown), error, rel_tol=0.06)  # two digits shown
    # The text table shows the same number in the same column.
    header, _, line = str(result).splitlines()
    assert line[header.index("max rel vs finite diff") :].split()[0] == shown
    # Rounding alone passes; a relative error of 1e-5 or more does not (rtol=1e-6).
    assert bool(result) == (error == 0)


def test_default_names_and_skipped_rows_in_table() -> None:
    logits = make_tensor((3, 4), seed=1)
    target = torch.tensor([0, 3, 1])
    text = str(gradcheck(cross_entropy, cross_entropy_backward, [logits, target]))
    assert re.search(r"^x0\s+\(3, 4\)\s", text, flags=re.M)
    assert re.search(r"^x1\s+\(3,\)\s.*skipped \(integer\)$", text, flags=re.M)


# --- bad input
# ----------------------------------------------------------------------------


def test_gradcheck_rejects_wrong_number_of_gradients() -> None:
    x, w, b = make_tensor((2, 3)), make_tensor((3, 4)), make_tensor((4,))
    with pytest.raises(
        ValueError,
        match=r"backward returned 2 gradient\(s\) for 3 input\(s\) \(x, w, b\)",
    ):
        gradcheck(
            lin,
            lambda g, x, w, b: lin_backward(g, x, w, b)[:2],
            [x, w, b],
            names=["x", "w", "b"],
        )
    with pytest.raises(
        ValueError,
        match=r"backward returned a single tensor for 3 input\(s\) \(x0, x1, x2\)",
    ):
        gradcheck(lin, lambda g, x, w, b: g @ w.T, [x, w, b])


def test_gradcheck_rejects_gradient_of_wrong_shape() -> None:
    x, w, b = make_tensor((2, 3)), make_tensor((3, 4)), make_tensor((4,))

    def transposed_shape(g, x, w, b):
        gx, gw, gb = lin_backward(g, x, w, b)
        return gx, gw.T, gb

    with pytest.raises(
        ValueError,
        match=r"the gradient for w has shape \(4, 3\) but w has shape \(3, 4\)",
    ):
        gradcheck(lin, transposed_shape, [x, w, b], names=["x", "w", "b"])

    def summed_wrong_axis(g, x, w, b):
        gx, gw, _ = lin_backward(g, x, w, b)
        return gx, gw, g.sum(1)

    with pytest.raises(
        ValueError, match=r"the gradient for b has shape \(2,\) but b has shape \(4,\)"
    ):
        gradcheck(lin, summed_wrong_axis, [x, w, b], names=["x", "w", "b"])


def test_gradcheck_rejects_gradient_of_wrong_dtype() -> None:
    x = make_tensor((2, 3), torch.float32)
    with pytest.raises(
        ValueError,
        match=(
            r"the gradient for x0 \(shape \(2, 3\)\) has dtype torch.float64 but x0 "
            r"has dtype torch.float32"
        ),
    ):
        gradcheck(tanh, lambda g, x: tanh_backward(g, x).double(), [x])


def test_gradcheck_rejects_bad_arguments() -> None:
    x = make_tensor((2, 3))
    with pytest.raises(
        ValueError,
        match=r"grad_out has shape \(3, 2\) but forward\(\*inputs\) has shape \(2, 3\)",
    ):
        gradcheck(tanh, tanh_backward, [x], grad_out=make_tensor((3, 2)))
    with pytest.raises(
        ValueError,
        match=(
            r"names must give one name per input: 1 input\(s\), got names=\['a', "
            r"'b'\]"
        ),
    ):
        gradcheck(tanh, tanh_backward, [x], names=["a", "b"])
    with pytest.raises(
        ValueError,
        match=r"nothing to check: no floating-point input among x0 has a gradient",
    ):
        gradcheck(tanh, lambda g, x: None, [x])
    with pytest.raises(
        ValueError, match=r"forward\(\*inputs\) must be a floating-point tensor"
    ):
        gradcheck(lambda t: (t > 0).long(), tanh_backward, [x])
