"""The exercise grader: right answers pass, and each kind of mistake is named.

Every wrong backward below is written deliberately with one known mistake; the test
checks that the report says which gradient is wrong and what the mistake is. The
right answers are the library's own backwards, which tests/test_*.py check
against autograd and finite differences independently of the grader.
"""

from __future__ import annotations

import math
import signal
import threading
import time

import nbformat
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from backprop import functional as fn
from backprop.exercises import (
    LAYERS,
    ExerciseNotDone,
    Report,
    check_backward,
    check_forward,
    check_gradient,
    exercise,
    exercise_forward,
    exercise_gradient,
)
from backprop.exercises.catalogues import CATALOGUES
from backprop.exercises.catalogues.parts import Point
from strategies import seeds, wrong_factors

F = torch.nn.functional
f64, f32 = torch.float64, torch.float32


def lin_out_in_backward(grad_out, x, w, b):
    """The nn.Linear layout, (n_out, n_in), through the library's (n_in, n_out) one."""
    grad_x, grad_w, grad_b = fn.lin_backward(grad_out, x, w.T, b)
    return grad_x, grad_w.T, grad_b


RIGHT = {name: getattr(fn, f"{name}_backward", None) for name in LAYERS}
RIGHT["lin_out_in"] = lin_out_in_backward


def text(report: Report) -> str:
    return " ".join(str(report).split())  # one line, so a wrapped phrase still matches


def assert_lines_fit(report: Report) -> None:
    too_long = [line for line in str(report).splitlines() if len(line) > 88]
    assert not too_long, too_long


# ----------------------------------------------------------------------------------
# Right answers
# ----------------------------------------------------------------------------------


def test_every_backward_of_the_library_has_an_exercise():
    backwards = {name.removesuffix("_backward") for name in fn.__all__}
    backwards = {name for name in backwards if f"{name}_backward" in fn.__all__}
    assert backwards <= set(LAYERS), backwards - set(LAYERS)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_right_backward_is_ok_in_one_sentence(name):
    report = check_backward(name, RIGHT[name])
    assert report.ok and bool(report), str(report)
    assert report.problems == []
    assert str(report).startswith(f"✓ {name}:")
    for grad in LAYERS[name].grads:
        assert grad in str(report)  # says what was checked
    assert "autograd" in str(report) and "cases" in str(report)
    report.assert_ok()
    assert_lines_fit(report)


@settings(max_examples=10, deadline=None)
@given(seed=seeds, name=st.sampled_from(sorted(LAYERS)))
def test_right_backward_is_ok_for_any_seed(seed, name):
    report = check_backward(name, RIGHT[name], seed=seed)
    assert report.ok, str(report)


def test_cases_cover_what_the_issue_asks():
    def labels(name):
        return " ".join(
            case.label for case in LAYERS[name].make_cases(torch.Generator())
        )

    for name in ("lin", "lin_out_in", "layernorm", "cross_entropy", "softmax"):
        cases = LAYERS[name].make_cases(torch.Generator())
        assert any(case.batch == 1 for case in cases), name
        assert any(case.batch and case.batch > 1 for case in cases), name
        assert any(case.square is False for case in cases), name
        assert {case.expected[0].dtype for case in cases} == {
            torch.float64,
            torch.float32,
        }
    assert "repeated indices" in labels("embedding")
    assert "mask" in labels("attention")
    assert "stride 2, padding 1" in labels("conv2d")
    gelu = LAYERS["gelu"].make_cases(torch.Generator())
    assert {case.args[2] for case in gelu} == {"tanh", "none"}
    assert any(case.batch == 1 for case in gelu)
    assert {case.expected[0].dtype for case in gelu} == {torch.float64, torch.float32}
    for approximate in ("tanh", "none"):  # large inputs, in both forms
        assert any(
            case.args[2] == approximate and case.args[1].abs().max() >= 30
            for case in gelu
        ), approximate


def test_the_grader_leaves_the_global_random_state_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    check_backward("attention", RIGHT["attention"])
    torch.testing.assert_close(torch.rand(3), expected)


def test_unknown_name_is_an_error_listing_the_names():
    with pytest.raises(ValueError, match="lin, lin_out_in, relu"):
        check_backward("linear", RIGHT["lin"])


# ----------------------------------------------------------------------------------
# Answers that are not gradients at all: reported, never raised
# ----------------------------------------------------------------------------------


def test_none():
    report = check_backward("relu", lambda g, x: None)
    assert not report.ok
    assert "grad_x is None" in text(report) and "(1, 7)" in text(report)


def test_not_a_tensor():
    report = check_backward("relu", lambda g, x: (g * (x > 0)).numpy())
    assert not report.ok and "grad_x is an ndarray, not a tensor" in text(report)


def test_wrong_number_of_gradients():
    report = check_backward("lin", lambda g, x, w, b: (g @ w.T, x.T @ g))
    assert not report.ok
    assert "returned 2 values, but it returns 3: (grad_x, grad_w, grad_b)" in text(
        report
    )


def test_a_tuple_where_a_bare_tensor_is_returned():
    report = check_backward("relu", lambda g, x: (g * (x > 0),))
    assert not report.ok and "bare tensor" in text(report)


def test_a_tensor_where_a_tuple_is_returned():
    report = check_backward("lin", lambda g, x, w, b: g @ w.T)
    assert not report.ok and "returned a Tensor" in text(report)


def test_not_a_function():
    report = check_backward("relu", torch.zeros(3))
    assert not report.ok and "expected a function" in text(report)


def test_a_candidate_that_raises_is_reported_with_its_last_frame():
    def my_lin_backward(grad_out, x, w, b):
        grad_x = grad_out @ w  # the transpose is missing: shapes do not fit
        return grad_x, x.T @ grad_out, grad_out.sum(0)

    report = check_backward("lin", my_lin_backward)
    words = text(report)
    assert not report.ok
    assert "raised RuntimeError" in words
    assert "in my_lin_backward" in words and "grad_x = grad_out @ w" in words
    assert "case 1" in words
    assert "Traceback" not in words and "File " not in words


def test_not_implemented_is_unsolved_and_shows_the_hint():
    def stub(grad_out, x):
        raise NotImplementedError("hint: relu's slope is 1 where x > 0")

    report = check_backward("relu", stub)
    assert not report.ok and report.unsolved
    assert "not written yet" in text(report) and "slope is 1 where x > 0" in text(
        report
    )


def test_a_wrong_answer_is_not_unsolved():
    assert not check_backward("relu", lambda g, x: g).unsolved


def test_endless_loop_is_stopped_in_the_main_thread():
    def forever(grad_out, x):
        while True:
            pass

    started = time.perf_counter()
    report = check_backward("relu", forever, timeout=0.3)
    assert time.perf_counter() - started < 3
    assert not report.ok and "took longer than 0.3 s" in text(report)


def test_slow_candidate_is_stopped_outside_the_main_thread():
    def slow(grad_out, x):
        time.sleep(2)
        return grad_out * (x > 0)

    reports = []
    worker = threading.Thread(
        target=lambda: reports.append(check_backward("relu", slow, timeout=0.2))
    )
    started = time.perf_counter()
    worker.start()
    worker.join()
    assert time.perf_counter() - started < 1.5
    assert "took longer than 0.2 s" in text(reports[0])


def test_an_alarm_armed_outside_survives_the_time_limit():
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30)
        check_backward("relu", RIGHT["relu"], timeout=5)
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 20 < left <= 30
        assert signal.getsignal(signal.SIGALRM) is not None and not fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ----------------------------------------------------------------------------------
# Diagnoses: each is recognised by comparing with the right answer
# ----------------------------------------------------------------------------------


def test_wrong_shape_names_the_expected_shape():
    report = check_backward("relu", lambda g, x: (g * (x > 0)).sum(1))
    assert "grad_x has shape (1,) but must have shape (1, 7), x's shape" in text(report)


def test_right_numbers_in_the_wrong_shape():
    report = check_backward("relu", lambda g, x: (g * (x > 0)).reshape(-1))
    # On case 1 it only lacks an axis of size 1; the other cases say more.
    assert "right numbers in the wrong shape: (7,) instead of (1, 7)" in text(report)
    assert "axis of size 1" not in text(report)


def test_transposed_weight_gradient():
    report = check_backward("lin", lambda g, x, w, b: (g @ w.T, g.T @ x, g.sum(0)))
    words = text(report)
    assert "grad_w is wrong" in words and "grad_w is transposed" in words
    assert "(5, 3)" in words and "(3, 5), w's shape" in words


def test_transposed_weight_gradient_in_the_nn_linear_layout():
    report = check_backward("lin_out_in", lambda g, x, w, b: (g @ w, x.T @ g, g.sum(0)))
    # The stub's names: nn.Linear's layout calls them weight and bias.
    words = text(report)
    assert "grad_weight is transposed" in words and "(5, 3), weight's shape" in words
    assert "grad_w " not in words


def test_transposed_on_square_shapes_says_square_shapes_hide_it():
    def backward(g, x, w, b):
        grad_w = g.T @ x if w.shape[0] == w.shape[1] else x.T @ g
        return g @ w.T, grad_w, g.sum(0)

    words = text(check_backward("lin", backward))
    assert "grad_w is transposed" in words and "Square shapes hide this" in words


def test_reshape_instead_of_transpose():
    report = check_backward(
        "lin", lambda g, x, w, b: (g @ w.T, (g.T @ x).reshape(w.shape), g.sum(0))
    )
    assert "use a transpose (.T), not .reshape" in text(report)


def test_averaging_over_the_batch_is_a_factor_one_over_n_and_right_for_batch_of_1():
    report = check_backward("lin", lambda g, x, w, b: (g @ w.T, x.T @ g, g.mean(0)))
    words = text(report)
    assert (
        "grad_b is right up to a constant factor: it is ×1/N (N = the batch size)"
        in words
    )
    assert "did you average over the batch instead of summing?" in words.lower()
    assert "Right for a batch of 1 but not for larger batches" in words
    assert "grad_x" not in words.split("Cases tried")[0]  # only grad_b is blamed


def test_missing_one_over_n_is_a_factor_n():
    report = check_backward("mse", lambda p, t: 2 * (p - t))
    assert "×n (n = the number of values averaged" in text(report)
    assert "1/n of the mean is missing" in text(report)


def test_extra_factor_two():
    report = check_backward("mse", lambda p, t: 4 * (p - t) / p.numel())
    assert "it is ×2 the right answer" in text(report)


def test_missing_factor_two():
    report = check_backward("mse", lambda p, t: (p - t) / p.numel())
    assert "it is ×1/2 the right answer" in text(report)
    assert "2 of the derivative of a square is missing" in text(report)


def test_factor_is_named_consistently_across_cases():
    # On case 5 the ratio is 3/4 and on case 2 it is 2: only N/C names every case.
    def backward(logits, target):
        onehot = F.one_hot(target, logits.shape[1]).to(logits.dtype)
        return (torch.softmax(logits, 1) - onehot) / logits.shape[1]

    words = text(check_backward("cross_entropy", backward))
    assert (
        "×N/C" in words
        and "divide by the classes (C) instead of the batch (N)" in words
    )
    assert "Right only on square shapes" in words


@settings(max_examples=15, deadline=None)
@given(factor=wrong_factors)
def test_any_constant_factor_is_recognised(factor):
    report = check_backward("softmax", lambda g, x: factor * fn.softmax_backward(g, x))
    words = text(report)
    assert "grad_x is right up to a constant factor" in words, words


def test_sign():
    report = check_backward("mse", lambda p, t: 2 * (t - p) / p.numel())
    assert "grad_pred has the wrong sign" in text(report)
    assert "pred - target, not target - pred" in text(report)


def test_bias_gradient_unsummed_over_the_batch():
    report = check_backward("lin", lambda g, x, w, b: (g @ w.T, x.T @ g, g))
    words = text(report)
    assert "grad_b has shape (1, 5) instead of (5,), b's shape" in words
    assert "not summed over the batch" in words and "[every case]" in words


def test_bias_summed_over_the_features_instead_of_the_batch():
    report = check_backward("lin", lambda g, x, w, b: (g @ w.T, x.T @ g, g.sum(1)))
    assert "over the features (axis 1) instead of over the batch (axis 0)" in text(
        report
    )


def test_conv_bias_gradient_summed_over_the_batch_only():
    def backward(g, x, w, b, stride, padding):
        grad_x, grad_w, _ = fn.conv2d_backward(g, x, w, b, stride, padding)
        return grad_x, grad_w, g.sum(0)

    report = check_backward("conv2d", backward)
    assert "grad_b has shape (3, 3, 5) instead of (3,)" in text(report)
    assert "not summed over axes (1, 2)" in text(report)


def test_embedding_assignment_instead_of_accumulation():
    def backward(grad_out, idx, table):
        grad_table = torch.zeros_like(table)
        grad_table[idx.reshape(-1)] = grad_out.reshape(-1, table.shape[1])  # = not +=
        return grad_table

    report = check_backward("embedding", backward)
    words = text(report)
    assert "grad_table: it is wrong only on rows looked up more than once" in words
    assert "accumulate (+=, index_add_) instead of assigning (=)" in words
    assert "case 1 " not in words.split("Cases tried")[0]  # no repeats in case 1


def test_embedding_starting_from_the_table():
    def backward(grad_out, idx, table):
        grad_table = table.clone()
        return grad_table.index_add_(
            0, idx.reshape(-1), grad_out.reshape(-1, table.shape[1])
        )

    assert "not from a copy of the table" in text(check_backward("embedding", backward))


def test_right_only_on_square_shapes():
    # Dividing by the classes instead of the batch: the sizes agree when N == C.
    def backward(logits, target):
        onehot = F.one_hot(target, logits.shape[1]).to(logits.dtype)
        return (fn.softmax(logits) - onehot) / logits.shape[1]

    words = text(check_backward("cross_entropy", backward))
    assert "Right only on square shapes" in words
    assert "✓ case 3: logits (4, 4)" in str(check_backward("cross_entropy", backward))


def test_right_only_for_a_batch_of_1():
    def backward(g, x, w, b):
        return g @ w.T, x.T @ g, g[0]  # the first row instead of the sum over rows

    words = text(check_backward("lin", backward))
    assert "Right for a batch of 1 but not for larger batches" in words


def test_precision_issue_in_float64():
    def backward(g, x, w, b):
        grad_w = (x.float().T @ g.float()).to(x.dtype)  # a float32 step
        return g @ w.T, grad_w, g.sum(0)

    report = check_backward("lin", backward)
    words = text(report)
    assert "grad_w is close but not within float64's precision" in words
    assert "precision issue rather than a wrong formula" in words and "float32" in words


def test_wrong_dtype():
    report = check_backward("relu", lambda g, x: (g * (x > 0)).to(torch.float32))
    assert "grad_x has dtype float32 but x is float64" in text(report)


def test_forgetting_grad_out():
    report = check_backward("relu", lambda g, x: (x > 0).to(x.dtype))
    assert "gradient for a grad_out of all ones: multiply by grad_out" in text(report)


def test_unstable_softmax_overflows_on_large_logits():
    def backward(g, x):
        s = x.exp() / x.exp().sum(-1, keepdim=True)
        return s * (g - (g * s).sum(-1, keepdim=True))

    words = text(check_backward("softmax", backward))
    assert "nan or inf" in words and "subtract each row's maximum" in words


def test_softmax_diagonal_only():
    def backward(g, x):
        s = fn.softmax(x)
        return g * s * (1 - s)

    assert "only the diagonal of softmax's Jacobian" in text(
        check_backward("softmax", backward)
    )


def test_softmax_sum_over_the_wrong_axis():
    def backward(g, x):
        s = fn.softmax(x)
        return s * (g - (g * s).sum(0, keepdim=True))

    assert "runs over the batch (dim 0)" in text(check_backward("softmax", backward))


def test_relu_kink_convention():
    report = check_backward("relu", lambda g, x: g * (x >= 0))
    assert "wrong only where x is exactly 0" in text(report)
    assert "x > 0 (not x >= 0)" in text(report)


def test_mse_broadcast_n_1_against_n():
    def backward(pred, target):
        return 2 * (pred - target.squeeze(-1)) / pred.numel()

    words = text(check_backward("mse", backward))
    assert "grad_pred has shape (6, 6) instead of (6, 1)" in words
    assert "broadcast to (6, 6)" in words


def test_batchnorm_without_the_paths_through_mean_and_variance():
    def backward(g, x, gamma, beta, eps=1e-5):
        _, grad_gamma, grad_beta = fn.batchnorm_backward(g, x, gamma, beta, eps)
        return (
            gamma * g / torch.sqrt(x.var(0, unbiased=False) + eps),
            grad_gamma,
            grad_beta,
        )

    assert "it has only the direct path" in text(check_backward("batchnorm", backward))


@pytest.mark.parametrize(
    ("how", "words"),
    [
        ("constant mean", "path through the mean is missing"),
        ("constant variance", "path through the variance is missing"),
        ("unbiased", "unbiased variance"),
    ],
)
def test_batchnorm_known_mistakes(how, words):
    from backprop.exercises.cases import autograd as _autograd
    from backprop.exercises.cases import normalise as _norm

    def backward(g, x, gamma, beta, eps=1e-5):
        wrong = _autograd(lambda x: _norm(x, gamma, beta, 0, eps, how), (x,), g)[0]
        _, grad_gamma, grad_beta = fn.batchnorm_backward(g, x, gamma, beta, eps)
        return wrong, grad_gamma, grad_beta

    assert words in text(check_backward("batchnorm", backward))


def test_batchnorm_without_eps():
    def backward(g, x, gamma, beta, eps=1e-5):
        grad_x, _, _ = fn.batchnorm_backward(g, x, gamma, beta, 0.0)
        return (grad_x, *fn.batchnorm_backward(g, x, gamma, beta, eps)[1:])

    assert "the gradient without eps" in text(check_backward("batchnorm", backward))


def test_layernorm_with_gamma_factored_out_as_in_batchnorm():
    def backward(g, x, gamma, beta, eps=1e-5):
        _, grad_gamma, grad_beta = fn.layernorm_backward(g, x, gamma, beta, eps)
        ones = torch.ones_like(gamma)
        grad_x, _, _ = fn.layernorm_backward(g, x, ones, beta, eps)
        return gamma * grad_x, grad_gamma, grad_beta

    assert "gamma is factored out of the means" in text(
        check_backward("layernorm", backward)
    )


def test_layernorm_over_the_wrong_axis():
    from backprop.exercises.cases import autograd as _autograd
    from backprop.exercises.cases import normalise as _norm

    def backward(g, x, gamma, beta, eps=1e-5):
        # the statistics of batch norm (over the batch) instead of over each row
        grad_x = _autograd(lambda x: _norm(x, gamma, beta, 0, eps, "right"), (x,), g)[0]
        return (grad_x, *fn.layernorm_backward(g, x, gamma, beta, eps)[1:])

    assert "normalisation over the batch (dim 0)" in text(
        check_backward("layernorm", backward)
    )


def test_conv_kernel_flipped():
    def backward(g, x, w, b, stride, padding):
        grad_x, grad_w, grad_b = fn.conv2d_backward(g, x, w, b, stride, padding)
        return grad_x, grad_w.flip(-2, -1), grad_b

    assert "grad_w: it is the right answer with the kernel flipped" in text(
        check_backward("conv2d", backward)
    )


def test_attention_mask_left_out_of_the_backward():
    def backward(g, q, k, v, mask=None):
        return fn.attention_backward(g, q, k, v)

    words = text(check_backward("attention", backward))
    assert "grad_q, grad_k, grad_v: it is the gradient without the mask" in words


def test_attention_scale_missing():
    def backward(g, q, k, v, mask=None):
        grad_q, grad_k, grad_v = fn.attention_backward(g, q, k, v, mask)
        return grad_q * q.shape[-1] ** 0.5, grad_k, grad_v

    words = text(check_backward("attention", backward))
    assert "grad_q is right up to a constant factor: it is ×√d" in words
    assert "1/√d of the scores is missing" in words


def test_tied_weights_with_assignment_are_caught_by_check_gradient():
    # Post 13's first bug: w used twice, its second use's gradient overwritten.
    def tied(x, w):
        return fn.lin(fn.relu(fn.lin(x, w)), w)

    def tied_backward_buggy(grad_out, x, w):
        z = fn.lin(x, w)
        grad_h, grad_w, _ = fn.lin_backward(grad_out, fn.relu(z), w)
        grad_x, grad_w, _ = fn.lin_backward(
            fn.relu_backward(grad_h, z), x, w
        )  # = not +=
        return grad_x, grad_w

    gen = torch.Generator().manual_seed(0)
    x, w = (
        torch.randn(5, 3, generator=gen, dtype=torch.float64),
        torch.randn(3, 3, generator=gen, dtype=torch.float64),
    )
    report = check_gradient(tied, tied_backward_buggy, [x, w], names=["x", "w"])
    assert not report.ok and "grad_w does not match" in text(report)
    assert "grad_x" not in str(report).splitlines()[0].split(":", 1)[1]


def test_every_report_fits_88_columns():
    wrong = [
        ("lin", lambda g, x, w, b: (g @ w.T, g.T @ x, g)),
        ("conv2d", lambda g, x, w, b, s, p: (x, w, b)),
        ("attention", lambda g, q, k, v, mask=None: (q, k, v)),
    ]
    for name, backward in wrong:
        report = check_backward(name, backward)
        assert not report.ok
        assert_lines_fit(report)


# ----------------------------------------------------------------------------------
# check_gradient: any function of tensors
# ----------------------------------------------------------------------------------


def logsumexp_rows(x):
    return torch.logsumexp(x, dim=-1)


def test_check_gradient_tensor_output_takes_grad_out_first():
    x = torch.randn(4, 3, dtype=torch.float64)
    report = check_gradient(
        logsumexp_rows, lambda g, x: g[:, None] * torch.softmax(x, -1), [x]
    )
    assert report.ok and "logsumexp_rows: grad_x matches autograd at x (4, 3)" in text(
        report
    )


def test_check_gradient_scalar_output_takes_only_the_inputs():
    x = torch.randn(5, dtype=torch.float64)
    report = check_gradient(
        lambda x: x.exp().sum().log(), lambda x: torch.softmax(x, 0), [x]
    )
    assert report.ok, str(report)


def test_check_gradient_diagnoses_like_check_backward():
    x = torch.randn(4, 3, dtype=torch.float64)
    w = torch.randn(3, 2, dtype=torch.float64)

    def backward(x, w):
        ones = torch.ones(4, 2, dtype=x.dtype)
        return ones @ w.T, (x.T @ ones).T

    report = check_gradient(
        lambda x, w: (x @ w).sum(), backward, [x, w], names=["x", "w"]
    )
    assert "grad_w is transposed" in text(report) and "Cases tried" not in str(report)
    forgot = check_gradient(logsumexp_rows, lambda g, x: torch.softmax(x, -1), [x])
    assert "gradient for a grad_out of all ones" in text(forgot)


def test_check_gradient_skips_integer_inputs():
    table = torch.randn(5, 2, dtype=torch.float64)
    idx = torch.tensor([0, 3, 3])
    report = check_gradient(
        F.embedding,
        lambda g, i, t: fn.embedding_backward(g, i, t),
        [idx, table],
        names=["idx", "table"],
    )
    assert report.ok and "grad_table" in str(report) and "grad_idx" not in str(report)


def test_check_gradient_rejects_what_is_not_an_answer():
    with pytest.raises(ValueError, match="inputs\\[0\\] is a list"):
        check_gradient(logsumexp_rows, lambda g, x: x, [[1.0, 2.0]])
    with pytest.raises(ValueError, match="2 names for 1 inputs"):
        check_gradient(
            logsumexp_rows, lambda g, x: x, [torch.randn(2, 2)], names=["a", "b"]
        )


# ----------------------------------------------------------------------------------
# The report and the exercise cells' functions
# ----------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------
# check_forward: a value, no derivative (post 1's cross-entropy)
# ----------------------------------------------------------------------------------


def cross_entropy_by_math(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """An oracle without torch: each row's log-sum-exp with Python's math, its
    maximum taken out, the terms summed exactly (fsum)."""
    losses = []
    for row, target in zip(logits.double().tolist(), targets.tolist(), strict=True):
        top = max(row)
        lse = top + math.log(math.fsum(math.exp(z - top) for z in row))
        losses.append(lse - row[target])
    return math.fsum(losses) / len(losses)


def cross_entropy_points():
    catalogue = CATALOGUES["cross-entropy"]
    example = catalogue.example()
    gen = torch.Generator().manual_seed(0)
    return [example.inputs] + [
        p.inputs for p in catalogue.more(Point(example.inputs), gen)
    ]


def test_the_cross_entropy_reference_is_right_at_every_point():
    points = cross_entropy_points()
    assert len(points) == 12
    broken = dict.fromkeys(
        ["no shift", "log of softmax", "mean shift", "target shift"], 0
    )
    for logits, targets in points:
        want = cross_entropy_by_math(logits, targets)
        got = F.cross_entropy(logits, targets).item()
        assert math.isclose(got, want, rel_tol=1e-5 if logits.dtype == f32 else 1e-12)
        # The points where a formula that is right on paper breaks are there, in
        # the point's own dtype, for each such formula in float64 and in float32.
        for name, formula in [
            ("no shift", lambda z, t: (z.exp().sum(1).log() - z[_rows(z), t]).mean()),
            ("log of softmax", lambda z, t: -z.softmax(1).log()[_rows(z), t].mean()),
            ("mean shift", ce_mean_shift),
            ("target shift", ce_target_shift),
        ]:
            broken[name] += int(not torch.isfinite(formula(logits, targets)))
    assert min(broken.values()) >= 2, broken


def my_cross_entropy(logits, targets):
    """The stable way, as post 1's solution writes it."""
    top = logits.amax(dim=1, keepdim=True)
    lse = top.squeeze(1) + (logits - top).exp().sum(dim=1).log()
    return (lse - logits[torch.arange(len(targets)), targets]).mean()


def my_cross_entropy_gathered(logits, targets):
    top = logits.amax(dim=1, keepdim=True)
    log_p = (logits - top) - (logits - top).exp().sum(1, keepdim=True).log()
    return -log_p.gather(1, targets[:, None]).mean()


def grade_cross_entropy(candidate, seed=0):
    example = CATALOGUES["cross-entropy"].example()
    return check_forward(
        F.cross_entropy,
        candidate,
        example.inputs,
        names=example.names,
        output="loss",
        seed=seed,
        catalogue="cross-entropy",
    )


@settings(max_examples=10, deadline=None)
@given(seeds)
def test_a_stable_cross_entropy_passes_for_any_seed(seed):
    for candidate in (my_cross_entropy, my_cross_entropy_gathered):
        report = grade_cross_entropy(candidate, seed)
        assert report.ok, str(report)
        assert "loss matches cross_entropy" in text(report)
        assert "11 more points" in text(report)


def test_check_forward_without_a_catalogue_checks_the_inputs_given():
    def logsumexp(x):
        return torch.logsumexp(x, dim=-1)

    x = torch.tensor([[1000.0, 999.0, -5.0], [0.5, -1.0, 2.0]], dtype=f64)
    right = check_forward(logsumexp, lambda x: my_cross_entropy_rows(x), [x])
    assert right.ok and "out matches logsumexp at x (2, 3), float64." in text(right)
    naive = check_forward(logsumexp, lambda x: x.exp().sum(-1).log(), [x])
    assert not naive.ok
    assert "out has 1 nan or inf entries where the right answer is finite" in text(
        naive
    )
    assert "logsumexp's" not in text(naive)  # the nan is said, not a difference


def my_cross_entropy_rows(x):
    top = x.amax(-1, keepdim=True)
    return top.squeeze(-1) + (x - top).exp().sum(-1).log()


def test_check_forward_says_what_is_wrong_with_a_value():
    x = torch.randn(4, 3, dtype=f64, generator=torch.Generator().manual_seed(1))

    def total(x):
        return x.sum()

    def check(candidate):
        return text(check_forward(total, candidate, [x], output="total"))

    by_column = check(lambda x: x.sum(0))
    assert (
        "total has shape (3,) but must have shape (), the output's shape" in by_column
    )
    assert "(a value has the shape of what total returns)" in by_column
    assert "returns one value, total, as a bare tensor" in check(lambda x: (x.sum(),))
    assert "has dtype int64: a value is made of real numbers" in check(
        lambda x: x.sum().round().long()
    )
    assert "compute in the inputs' dtype" in check(lambda x: x.float().sum())
    wrong = check(lambda x: x.sum() + 1)
    assert "total does not match: yours is " in wrong
    assert f"total's {x.sum().item():.6g}" in wrong
    assert "autograd" not in wrong and "gradient" not in wrong
    assert "total has shape" in check(lambda x: x)


def test_check_forward_rejects_what_is_not_a_check():
    x = torch.randn(3, dtype=f64)
    with pytest.raises(ValueError, match="not a tensor"):
        check_forward(lambda x: 1.0, lambda x: x, [x])
    with pytest.raises(ValueError, match="every input must be a tensor"):
        check_forward(torch.sum, lambda x: x, [[1.0, 2.0]])
    with pytest.raises(ValueError, match="2 names for 1 inputs"):
        check_forward(torch.sum, lambda x: x, [x], names=["a", "b"])


def test_check_forward_names_a_slip_in_no_catalogue_for_what_it_is():
    # Stable, but log(sum(exp)) of float32 rows taken in float16: right on no case.
    def half(logits, targets):
        return my_cross_entropy(logits.half(), targets).to(logits.dtype)

    words = text(grade_cross_entropy(half))
    assert "loss is wrong" in words
    for mistake in CATALOGUES["cross-entropy"].mistakes:
        assert mistake.name not in words


def _rows(z):
    return torch.arange(z.shape[0])


def ce_clamped(z, t):  # log(softmax) with its zeros clamped away: capped at 27.6
    return -(z.softmax(1).clamp_min(1e-12).log()[_rows(z), t]).mean()


def ce_mean_shift(z, t):  # right on paper; exp overflows when a row spreads far
    mean = z.mean(1, keepdim=True)
    return (mean.squeeze(1) + (z - mean).exp().sum(1).log() - z[_rows(z), t]).mean()


def ce_target_shift(z, t):  # ln(sum(exp(z - z_t))): right on paper, overflows
    return (z - z[_rows(z), t][:, None]).exp().sum(1).log().mean()


def ce_over_every_entry(z, t):  # divided by N·C instead of N
    return (my_cross_entropy_rows(z) - z[_rows(z), t]).sum() / z.numel()


@pytest.mark.parametrize(
    ("candidate", "words"),
    [
        (ce_clamped, "but wrong where the values are extreme"),
        (ce_mean_shift, "but nan or inf where the values are extreme"),
        (ce_target_shift, "but nan or inf where the values are extreme"),
        (ce_over_every_entry, "×1/C (C = the classes) the right answer"),
    ],
)
def test_a_cross_entropy_in_no_catalogue_is_failed_and_described(candidate, words):
    report = grade_cross_entropy(candidate)
    said = text(report)
    assert not report.ok and words in said
    for mistake in CATALOGUES["cross-entropy"].mistakes:
        assert mistake.name not in said, mistake.name


def tied_unsummed(g, idx, table):  # G.T @ H batched, not summed over the batch
    return (
        fn.embedding_backward(g @ table, idx, table) + g.transpose(-1, -2) @ table[idx]
    )


def tied_from_the_table(g, idx, table):  # index_add onto the table, not zeros
    vocabulary, width = table.shape
    lookup = torch.index_add(table, 0, idx.reshape(-1), (g @ table).reshape(-1, width))
    return lookup + g.reshape(-1, vocabulary).T @ table[idx].reshape(-1, width)


def tied_g_reshaped(g, idx, table):  # G reshaped to (V, B·T) instead of transposed
    vocabulary, width = table.shape
    output = g.reshape(vocabulary, -1) @ table[idx].reshape(-1, width)
    return fn.embedding_backward(g @ table, idx, table) + output


@pytest.mark.parametrize(
    ("candidate", "words"),
    [
        (tied_unsummed, "grad_table has shape (2, 6, 4) but must have shape (6, 4)"),
        (tied_from_the_table, "grad_table does not match"),
        (tied_g_reshaped, "grad_table does not match"),
    ],
)
def test_a_tied_gradient_in_no_catalogue_is_failed_and_described(candidate, words):
    example = CATALOGUES["weight-tying"].example()
    report = check_gradient(
        example.forward,
        candidate,
        example.inputs,
        names=example.names,
        catalogue="weight-tying",
    )
    said = text(report)
    assert not report.ok and words in said
    for mistake in CATALOGUES["weight-tying"].mistakes:
        assert mistake.name not in said, mistake.name


def test_exercise_forward_raises_until_right():
    example = CATALOGUES["cross-entropy"].example()
    with pytest.raises(ExerciseNotDone):
        exercise_forward(
            F.cross_entropy,
            lambda z, t: (z.exp().sum(1).log() - z[torch.arange(len(t)), t]).mean(),
            example.inputs,
            output="loss",
            catalogue="cross-entropy",
            show=False,
        )
    exercise_forward(
        F.cross_entropy,
        my_cross_entropy,
        example.inputs,
        output="loss",
        catalogue="cross-entropy",
        show=False,
    )


def test_report_markdown_and_assert_ok():
    report = check_backward("lin", lambda g, x, w, b: (g @ w.T, x.T @ g, g.mean(0)))
    markdown = report._repr_markdown_()
    assert markdown.startswith("**✗ lin: grad_b is wrong.**")
    assert "\n- grad_b is right up to a constant factor" in markdown
    with pytest.raises(AssertionError, match="grad_b is right up to a constant factor"):
        report.assert_ok()
    assert not report


def test_exercise_raises_until_right_with_a_short_message():
    def my_relu_backward(grad_out, x):
        raise NotImplementedError("hint: where is relu's slope 1?")

    with pytest.raises(ExerciseNotDone) as unsolved:
        exercise("relu", my_relu_backward, show=False)
    assert unsolved.value.report.unsolved
    assert "waiting for you" in str(unsolved.value)
    lines = unsolved.value._render_traceback_()
    assert 1 <= len(lines) <= 4 and lines[0].startswith("ExerciseNotDone: ")

    with pytest.raises(ExerciseNotDone) as wrong:
        exercise("relu", lambda g, x: g, show=False)
    assert not wrong.value.report.unsolved and "not right yet" in str(wrong.value)

    assert exercise("relu", fn.relu_backward, show=False) is None


def test_exercise_gradient_raises_until_right():
    x = torch.randn(3, dtype=torch.float64)
    with pytest.raises(ExerciseNotDone):
        exercise_gradient(lambda x: (x * x).sum(), lambda x: x, [x], show=False)
    exercise_gradient(lambda x: (x * x).sum(), lambda x: 2 * x, [x], show=False)


def test_exercise_prints_the_report_outside_a_notebook(capsys):
    exercise("relu", fn.relu_backward)
    assert capsys.readouterr().out.startswith("✓ relu:")


STUB = """\
from backprop.exercises import exercise

def my_relu_backward(grad_out, x):
    raise NotImplementedError("hint: relu passes the gradient where x > 0")

exercise("relu", my_relu_backward)
"""


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_run_all_stops_at_the_first_unsolved_exercise_without_a_traceback_wall(
    tmp_path,
):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(STUB),
        nbformat.v4.new_code_cell("print('after')"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    with pytest.raises(CellExecutionError):
        client.execute()
    stub, after = nb.cells
    assert after.get("outputs", []) == [] and after.get("execution_count") is None
    errors = [o for o in stub.outputs if o.output_type == "error"]
    assert len(errors) == 1 and errors[0].ename == "ExerciseNotDone"
    traceback_lines = errors[0].traceback
    assert len(traceback_lines) <= 4, traceback_lines
    joined = "\n".join(traceback_lines)
    assert (
        "waiting for you" in joined
        and "File " not in joined
        and "Traceback" not in joined
    )
    shown = [o for o in stub.outputs if o.output_type == "display_data"]
    assert shown and "not written yet" in shown[0].data["text/markdown"]
