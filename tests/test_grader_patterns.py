"""The grader's patterns, tried on wrong answers that are in no catalogue.

Each answer below is a slip a learner makes that no exercise's catalogue lists:
the grader must fail it, say what it is, and never name something it is not.
The right answers these slips start from are the library's backwards (tested
against autograd in tests/test_*.py) or autograd itself.
"""

from __future__ import annotations

import math

import pytest
import torch

from backprop import functional as fn
from backprop.autograd import Tensor
from backprop.broadcasting import unbroadcast
from backprop.exercises import LAYERS, check_backward, check_gradient
from backprop.exercises.cases import autograd
from backprop.exercises.catalogues import CATALOGUES
from backprop.exercises.patterns import PATTERNS
from backprop.softmax import softmax, softmax_backward

F = torch.nn.functional
f64, f32 = torch.float64, torch.float32


def text(report: object) -> str:
    return " ".join(str(report).split())


def problems(report) -> str:
    """What the report says, without its list of cases (whose labels name things)."""
    return text(report).split("Cases tried:")[0]


def post_exercise(name: str, candidate, **options):
    """Grade ``candidate`` on a post's exercise as its cell does."""
    example = CATALOGUES[name].example()
    return check_gradient(
        example.forward,
        candidate,
        example.inputs,
        names=example.names,
        along=example.along,
        catalogue=name,
        **options,
    )


def right_of(name: str):
    """Autograd's answer to a post's exercise, as a function of its arguments."""
    example = CATALOGUES[name].example()

    def gradients(grad_out, *inputs):
        found = autograd(example.forward, inputs, grad_out)
        return found[0] if len(found) == 1 else tuple(found)

    return gradients


def no_catalogue_name(report, name: str) -> None:
    for mistake in CATALOGUES[name].mistakes:
        assert mistake.name not in text(report), (mistake.name, str(report))


# ----------------------------------------------------------------------------------
# 1. Unstable answers fail, with the reason
# ----------------------------------------------------------------------------------


def _logsumexp_global_max(g, x):
    shifted = (x - x.max()).exp()  # one maximum for the whole batch
    return g[:, None] * shifted / shifted.sum(-1, keepdim=True)


def _log_softmax_global_max(g, x):
    top = x.max()
    lse = (x - top).exp().sum(-1, keepdim=True).log() + top
    return g - (x - lse).exp() * g.sum(-1, keepdim=True)


def _log_softmax_two_steps(g, x):
    return softmax_backward(g / softmax(x), x)  # through 1/softmax


@pytest.mark.parametrize(
    ("name", "answer", "reason"),
    [
        ("logsumexp", _logsumexp_global_max, "one maximum for the whole batch"),
        ("log_softmax", _log_softmax_global_max, "one maximum for the whole batch"),
        ("log_softmax", _log_softmax_two_steps, "a route through 1/softmax"),
    ],
)
def test_an_unstable_answer_fails_with_its_reason(name, answer, reason):
    report = check_backward(name, answer)
    words = problems(report)
    assert not report.ok
    assert (
        "right on the ordinary cases, but nan or inf where the values are extreme"
        in (words)
    )
    assert reason in words
    others = {
        "one maximum for the whole batch": "a route through 1/softmax",
        "a route through 1/softmax": "one maximum for the whole batch",
    }
    assert others[reason] not in words  # the other unstable route is not blamed
    no_catalogue_name(report, name)


def test_the_issue_batches_make_the_global_maximum_nan():
    # The rows of the issue: [800, 799, 790] beside [0.5, -1, 2].
    x = torch.tensor([[800.0, 799.0, 790.0], [0.5, -1.0, 2.0]], dtype=f64)
    g = torch.ones(2, dtype=f64)
    assert not torch.isfinite(_logsumexp_global_max(g, x)).all()
    logits = torch.tensor([[0.0, 120.0, 5.0]], dtype=f32)
    assert not torch.isfinite(
        _log_softmax_two_steps(torch.ones_like(logits), logits)
    ).all()


def _attention_by_hand(g, q, k, v, mask=None, shift=None):
    """The backward of attention with the softmax written out: ``shift`` is what is
    subtracted from the scores before exp (None: nothing)."""
    scale = 1 / math.sqrt(q.shape[-1])
    scores = q @ k.transpose(-2, -1) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    if shift == "row":
        scores = scores - scores.amax(-1, keepdim=True)
    elif shift == "all":
        scores = scores - scores.max()
    e = scores.exp()
    p = e / e.sum(-1, keepdim=True)
    grad_v = p.transpose(-2, -1) @ g
    grad_p = g @ v.transpose(-2, -1)
    grad_s = p * (grad_p - (grad_p * p).sum(-1, keepdim=True))
    return grad_s @ k * scale, grad_s.transpose(-2, -1) @ q * scale, grad_v


@pytest.mark.parametrize(
    ("shift", "reason"),
    [(None, "overflows float32"), ("all", "one maximum for all the scores")],
)
def test_attention_without_each_rows_maximum_fails(shift, reason):
    assert check_backward(
        "attention", lambda *a: _attention_by_hand(*a, shift="row")
    ).ok
    report = check_backward("attention", lambda *a: _attention_by_hand(*a, shift=shift))
    words = problems(report)
    assert not report.ok and "nan or inf where the values are extreme" in words
    assert reason in words
    no_catalogue_name(report, "attention")


@pytest.mark.parametrize(
    "name",
    ["logsumexp", "softmax", "log_softmax", "cross_entropy", "attention"],
)
def test_the_softmax_family_has_extreme_cases_in_both_dtypes(name):
    cases = LAYERS[name].make_cases(torch.Generator())
    extreme = [c for c in cases if "extreme" in c.traits]
    assert {c.expected[0].dtype for c in extreme} == {f64, f32}
    labels = " ".join(c.label for c in extreme)
    assert "near 800 and near 0" in labels or "near 120 and near 0" in labels
    for case in extreme:  # the right answers there are finite
        assert all(torch.isfinite(e).all() for e in case.expected)
    if name != "attention":
        assert "hundreds apart" in labels


def test_post_exercises_of_the_softmax_family_have_extreme_points():
    def unstable_smoothing(logits, target):
        e = logits.exp()  # no maximum subtracted
        n, c = logits.shape
        q = 0.9 * F.one_hot(target, c).to(logits.dtype) + 0.1 / c
        return (e / e.sum(-1, keepdim=True) - q) / n

    report = post_exercise("label-smoothing", unstable_smoothing)
    assert not report.ok and "extreme" in problems(report)
    assert "subtract each row's own maximum" in problems(report)

    def unstable_self_attention(g, x, w_q, w_k, w_v):
        q, k, v = x @ w_q, x @ w_k, x @ w_v
        return _self_attention_chain(x, w_q, w_k, w_v, _attention_by_hand(g, q, k, v))

    report = post_exercise("self-attention", unstable_self_attention)
    assert not report.ok and "nan or inf where the values are extreme" in text(report)
    dtypes = {p.inputs[0].dtype for p in _points("self-attention") if p.traits}
    assert dtypes == {f64, f32}


def _points(name):
    example = CATALOGUES[name].example()
    from backprop.exercises.catalogues.parts import Point

    return CATALOGUES[name].more(Point(example.inputs), torch.Generator())


def _self_attention_chain(x, w_q, w_k, w_v, grads):
    grad_q, grad_k, grad_v = grads
    grad_x = grad_q @ w_q.T + grad_k @ w_k.T + grad_v @ w_v.T
    return grad_x, x.T @ grad_q, x.T @ grad_k, x.T @ grad_v


# ----------------------------------------------------------------------------------
# 2. Slips named for what they are
# ----------------------------------------------------------------------------------


def test_a_bias_gradient_with_keepdim_has_an_extra_axis_not_unsummed():
    def lin_keepdim(g, x, w, b):
        return g @ w.T, x.T @ g, g.sum(0, keepdim=True)

    words = problems(check_backward("lin", lin_keepdim))
    assert "grad_b has the right numbers with an extra axis of size 1" in words
    assert "keepdim=True" in words and "not summed" not in words
    assert "[every case]" in words

    def scale_shift_keepdim(g, y, gamma, beta):
        return g * gamma, (g * y).sum(0), g.sum(0, keepdim=True)

    words = problems(post_exercise("scale-shift", scale_shift_keepdim))
    assert "grad_beta has the right numbers with an extra axis of size 1" in words
    assert "not summed" not in words


def test_a_missing_sum_on_a_batch_of_1_is_still_not_summed():
    # On the batch of 1 the answer looks like keepdim; the larger batches decide.
    words = problems(check_backward("lin", lambda g, x, w, b: (g @ w.T, x.T @ g, g)))
    assert "not summed over the batch" in words and "axis of size 1" not in words


def test_self_attention_without_the_scale_is_times_root_d():
    def no_scale(g, x, w_q, w_k, w_v):
        grads = _attention_by_hand(g, x @ w_q, x @ w_k, x @ w_v, shift="row")
        root_d = math.sqrt(w_q.shape[1])
        grad_q, grad_k, grad_v = grads[0] * root_d, grads[1] * root_d, grads[2]
        return _self_attention_chain(x, w_q, w_k, w_v, (grad_q, grad_k, grad_v))

    report = post_exercise("self-attention", no_scale)
    words = problems(report)
    for grad in ("grad_w_q", "grad_w_k"):
        assert f"{grad} is right up to a constant factor: it is ×√d" in words
    assert "the width of q and k" in words and "1/√d of the scores is missing" in words
    assert "factor 2" not in words and "×2" not in words


def test_residual_layernorm_beta_doubled_is_times_2_not_a_size():
    right = right_of("residual-layernorm")

    def doubled(g, x, gamma, beta):
        grad_x, grad_gamma, grad_beta = right(g, x, gamma, beta)
        return grad_x, grad_gamma, 2 * grad_beta

    words = problems(post_exercise("residual-layernorm", doubled))
    assert "grad_beta is right up to a constant factor: it is ×2 the right" in words
    assert "×B" not in words and "×N" not in words


def test_a_factor_that_changes_from_row_to_row_is_not_one_constant():
    def layernorm_times_variance(g, x, gamma, beta, eps=1e-5):
        grad_x, grad_gamma, grad_beta = fn.layernorm_backward(g, x, gamma, beta, eps)
        return grad_x * (1 + x.var(-1, keepdim=True)), grad_gamma, grad_beta

    words = problems(check_backward("layernorm", layernorm_times_variance))
    assert "a factor that changes from row to row" in words
    assert "constant factor" not in words and "the same in every entry" not in words

    def batchnorm_times_variance(g, x, gamma, beta, eps=1e-5):
        grad_x, grad_gamma, grad_beta = fn.batchnorm_backward(g, x, gamma, beta, eps)
        return grad_x * (1 + x.var(0)), grad_gamma, grad_beta

    words = problems(check_backward("batchnorm", batchnorm_times_variance))
    assert "a factor that changes from column to column" in words
    assert "constant factor" not in words


def test_layernorm_sigma_squared_is_named_and_not_a_constant():
    def sigma_squared(g, x, gamma, beta, eps=1e-5):
        var = x.var(-1, keepdim=True, unbiased=False) + eps
        x_hat = (x - x.mean(-1, keepdim=True)) / var.sqrt()
        g_hat = g * gamma
        centred = g_hat - g_hat.mean(-1, keepdim=True)
        centred = centred - x_hat * (g_hat * x_hat).mean(-1, keepdim=True)
        return centred / var, (g * x_hat).sum(0), g.sum(0)

    words = problems(check_backward("layernorm", sigma_squared))
    assert "divides by sigma² (the variance) instead of by sigma" in words
    assert "×0." not in words and "constant factor" not in words


@pytest.mark.parametrize(
    ("axes", "said"), [((0, 1), "axes 0 and 1"), ((2, 3), "axes 2 and 3")]
)
def test_conv_weight_gradient_with_axes_swapped_is_not_reshape(axes, said):
    def swapped_axes(g, x, w, b, stride, padding):
        grad_x, grad_w, grad_b = fn.conv2d_backward(g, x, w, b, stride, padding)
        return grad_x, grad_w.transpose(*axes).contiguous(), grad_b

    words = problems(check_backward("conv2d", swapped_axes))
    assert f"grad_w has its axes in the wrong order: {said} are swapped" in words
    assert "reshape it" not in words


def test_factors_are_named_by_the_sizes_they_are():
    def smoothing_over_n_c(logits, target):
        n, c = logits.shape
        q = 0.9 * F.one_hot(target, c).to(logits.dtype) + 0.1 / c
        return (softmax(logits) - q) / (n * c)

    words = problems(post_exercise("label-smoothing", smoothing_over_n_c))
    assert "×1/C (C = the classes)" in words and "N/n" not in words

    def conv_bias_averaged(g, x, w, b, stride, padding):
        grad_x, grad_w, _ = fn.conv2d_backward(g, x, w, b, stride, padding)
        return grad_x, grad_w, g.mean((0, 2, 3))

    words = problems(check_backward("conv2d", conv_bias_averaged))
    assert "×1/(N·H_out·W_out)" in words and words.count("constant factor") == 1
    assert "did you average grad_out instead of summing it?" in words.lower()

    def bag_over_all_positions(g, idx, table):
        rows = (g / idx.numel())[:, None, :].expand(*idx.shape, -1)
        return fn.embedding_backward(rows, idx, table)

    report = post_exercise("bag-of-words", bag_over_all_positions)
    assert "×1/B (B = the sentences)" in problems(report)
    no_catalogue_name(report, "bag-of-words")


def test_the_residual_in_the_wrong_order_is_one_slip():
    def reversed_residual(x, w, t):
        grad_r = 2 * (t - (w * x + x))  # r = t - v
        return grad_r * (w + 1), grad_r * x, -grad_r

    words = problems(post_exercise("skip", reversed_residual))
    assert "grad_x, grad_w, grad_t all have the wrong sign" in words
    assert "t - v for v - t" in words
    assert "minus sign of t is missing" not in words and words.count("sign") == 1


def test_a_jvp_of_the_wrong_shape_is_told_a_jvp_has_the_outputs_shape():
    report = post_exercise("jvp", lambda x, w, u: (1 - torch.tanh(x @ w) ** 2).sum(0))
    words = problems(report)
    assert "a JVP has the shape of the output" in words
    assert "gradient of" not in words


def test_label_smoothing_hints_say_alpha_as_the_post_does():
    hints = " ".join(m.hint + m.name for m in CATALOGUES["label-smoothing"].mistakes)
    assert "α" in hints and "ε" not in hints


# ----------------------------------------------------------------------------------
# 3. Patterns across cases, for every exercise
# ----------------------------------------------------------------------------------


def test_swapped_gamma_and_beta():
    def swapped(g, x, gamma, beta, eps=1e-5):
        grad_x, grad_gamma, grad_beta = fn.layernorm_backward(g, x, gamma, beta, eps)
        return grad_x, grad_beta, grad_gamma

    words = problems(check_backward("layernorm", swapped))
    assert "grad_gamma and grad_beta are swapped" in words
    assert "(grad_x, grad_gamma, grad_beta)" in words
    assert "constant factor" not in words and "does not match" not in words


def test_swapped_query_and_key_weights():
    right = right_of("self-attention")

    def swapped(g, x, w_q, w_k, w_v):
        grad_x, grad_w_q, grad_w_k, grad_w_v = right(g, x, w_q, w_k, w_v)
        return grad_x, grad_w_k, grad_w_q, grad_w_v

    assert "grad_w_q and grad_w_k are swapped" in problems(
        post_exercise("self-attention", swapped)
    )

    def from_the_other(g, x, w_q, w_k, w_v):
        grad_x, grad_w_q, _, grad_w_v = right(g, x, w_q, w_k, w_v)
        return grad_x, grad_w_q, grad_w_q, grad_w_v  # one line copied

    words = problems(post_exercise("self-attention", from_the_other))
    assert "grad_w_k holds grad_w_q's right gradient" in words


@pytest.mark.parametrize(
    ("name", "order", "said"),
    [
        ("skip", (2, 0, 1), "the gradients are returned in the wrong order"),
        ("scale-shift", (0, 2, 1), "grad_gamma and grad_beta are swapped"),
        ("shortcut", (0, 1, 2, 5, 4, 3), "grad_w2 and grad_w_s are swapped"),
    ],
)
def test_swapped_return_order_of_post_exercises(name, order, said):
    example = CATALOGUES[name].example()
    out = example.forward(*example.inputs)
    right = right_of(name)

    def permuted(*args):
        found = right(*args) if out.ndim else right(None, *args)
        return tuple(found[i] for i in order)

    assert said in problems(post_exercise(name, permuted))


def test_swapped_lin_outputs_of_different_shapes():
    words = problems(
        check_backward("lin", lambda g, x, w, b: (x.T @ g, g @ w.T, g.sum(0)))
    )
    assert "grad_x and grad_w are swapped" in words


def test_a_mask_lost_in_no_catalogue_is_said_to_be_the_mask():
    def renormalised_never(g, q, k, v, mask=None):
        # P * mask after an unmasked softmax, not renormalised: in no catalogue.
        def forward(q, k, v):
            p = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1)
            return (p if mask is None else p * mask) @ v

        return tuple(autograd(forward, (q, k, v), g))

    report = check_backward("attention", renormalised_never)
    words = problems(report)
    assert "right on every case without a mask and wrong on every masked one" in words
    no_catalogue_name(report, "attention")


def _conv_dense_grad_x(g, x, w, b, stride, padding):
    """grad_x as if the windows were taken at every position (stride ignored)."""

    def dense(x):
        return F.conv2d(x, w, b, padding=padding)

    spread = torch.zeros_like(dense(x))
    spread[..., : g.shape[-2], : g.shape[-1]] = g
    return autograd(dense, (x,), spread)[0]


def test_a_stride_slip_in_grad_x_only_is_said_to_be_the_stride():
    def stride_in_grad_w_only(g, x, w, b, stride, padding):
        _, grad_w, grad_b = fn.conv2d_backward(g, x, w, b, stride, padding)
        return _conv_dense_grad_x(g, x, w, b, stride, padding), grad_w, grad_b

    report = check_backward("conv2d", stride_in_grad_w_only)
    words = problems(report)
    assert "grad_x: right at stride 1 and wrong at every stride of 2" in words
    assert "padding" not in words.split("stride of 2")[0]
    no_catalogue_name(report, "conv2d")


def test_a_padding_slip_is_said_to_be_the_padding():
    def cropped_from_the_corner(g, x, w, b, stride, padding):
        padded = F.pad(x, (padding,) * 4)
        grad_padded, grad_w, grad_b = autograd(
            lambda p, w, b: F.conv2d(p, w, b, stride=stride), (padded, w, b), g
        )
        height, width = x.shape[-2:]
        return grad_padded[..., :height, :width], grad_w, grad_b  # not p:p + H

    words = problems(check_backward("conv2d", cropped_from_the_corner))
    assert "grad_x: right without padding and wrong with it" in words


def test_a_one_element_gradient_averaged_is_named_a_factor():
    # Post 6's featured slip: b2 averaged over the batch instead of summed.
    right = right_of("shortcut")

    def b2_averaged(x, w1, b1, w2, b2, w_s):
        grads = list(right(None, x, w1, b1, w2, b2, w_s))
        grads[4] = grads[4] / x.shape[0]
        return tuple(grads)

    words = problems(post_exercise("shortcut", b2_averaged))
    assert (
        "grad_b2 is right up to a constant factor: it is ×1/N (N = the batch" in words
    )
    assert "did you average over the batch instead of summing?" in words.lower()


def test_a_one_element_gradient_on_one_case_is_not_a_factor():
    x = torch.randn(4, 3, dtype=f64)
    b = torch.randn(1, dtype=f64)
    report = check_gradient(
        lambda x, b: ((x + b) ** 2).sum(),
        lambda x, b: (2 * (x + b), (2 * (x + b)).sum(0).mean().reshape(1)),
        [x, b],
        names=["x", "b"],
    )
    words = problems(report)
    assert "grad_b does not match" in words and "constant factor" not in words


def test_every_exercise_is_graded_on_several_shapes():
    for name, catalogue in CATALOGUES.items():
        if name in LAYERS:
            cases = LAYERS[name].make_cases(torch.Generator())
            shapes = {tuple(c.expected[0].shape) for c in cases}
        else:
            if catalogue.kind == "gradient":  # a graded value: tests/test_exercises.py
                report = post_exercise(name, _solver(name))
                assert report.ok, str(report)
            points = _points(name)
            shapes = {tuple(p.inputs[0].shape) for p in points}
            shapes.add(tuple(catalogue.example().inputs[0].shape))
        assert len(shapes) >= 3, (name, shapes)


def _solver(name):
    example = CATALOGUES[name].example()
    if example.along is not None:

        def jvp(x, w, u):
            return (1 - torch.tanh(x @ w) ** 2) * (u @ w)

        return jvp
    out = example.forward(*example.inputs)
    right = right_of(name)
    return right if out.ndim else lambda *args: right(None, *args)


def test_a_pattern_can_be_opted_out_of():
    def swapped(g, x, gamma, beta, eps=1e-5):
        grad_x, grad_gamma, grad_beta = fn.layernorm_backward(g, x, gamma, beta, eps)
        return grad_x, grad_beta, grad_gamma

    layer = LAYERS["layernorm"]
    try:
        LAYERS["layernorm"] = type(layer)(
            **{**vars(layer), "skip": frozenset({"swapped"})}
        )
        words = problems(check_backward("layernorm", swapped))
    finally:
        LAYERS["layernorm"] = layer
    assert "swapped" not in words and "grad_gamma" in words
    assert {p.name for p in PATTERNS} >= {"swapped", "same slip", "mask", "stride"}


# ----------------------------------------------------------------------------------
# 4. The learner's own line
# ----------------------------------------------------------------------------------


def test_an_error_inside_a_library_helper_points_at_the_learners_line():
    def my_divide_backward(g, a, b):
        grad_a = g / b
        grad_b = unbroadcast(-g * a / b**2, (7,))  # the wrong shape to undo
        return grad_a, grad_b

    example = CATALOGUES["divide"].example()
    report = check_gradient(
        example.forward, my_divide_backward, example.inputs, names=["a", "b"]
    )
    words = text(report)
    first = words.index("in my_divide_backward, line")
    assert "grad_b = unbroadcast(-g * a / b**2, (7,))" in words
    assert "inside backprop's broadcasting.unbroadcast" in words[first:]


def _through_tape(op):
    def backward(grad_out, *inputs):
        leaves = [Tensor(x, requires_grad=True) for x in inputs]
        (op(*leaves) * grad_out).sum().backward()
        grads = tuple(leaf.grad for leaf in leaves)
        return grads[0] if len(grads) == 1 else grads

    return backward


def _tanh_returning(what):
    def my_tanh(x):
        out = torch.tanh(x.data)

        def backward(g):
            grad = g * (1 - out**2)
            return {"bare": grad, "none": None, "pair": (grad, None)}[what]

        return Tensor._result(out, (x,), backward, "tanh")

    return my_tanh


@pytest.mark.parametrize(
    ("what", "said"),
    [
        (
            "bare",
            "the backward of 'tanh' returned a bare Tensor, but it returns a tuple",
        ),
        ("none", "the backward of 'tanh' returned None, but it returns a tuple"),
        ("pair", "the backward of 'tanh' returned 2 gradients for its 1 input"),
    ],
)
def test_a_closure_returning_the_wrong_thing_is_named_by_its_operation(what, said):
    report = post_exercise("tanh", _through_tape(_tanh_returning(what)))
    words = text(report)
    assert said in words
    if what != "pair":
        assert "return (grad,)" in words
    assert "zip()" not in words


def test_a_closure_returning_a_gradient_of_the_wrong_shape():
    def my_divide(a, b):
        out = a.data / b.data

        def backward(g):
            return g / b.data, -g * a.data / b.data**2  # b's not summed back

        return Tensor._result(out, (a, b), backward, "/")

    report = post_exercise("divide", _through_tape(my_divide))
    assert (
        "the backward of '/' returned a gradient of shape (3, 4) for input 2"
        in text(report)
    )


# ----------------------------------------------------------------------------------
# More wrong answers in no catalogue, per heavily used family
# ----------------------------------------------------------------------------------


def _lin_times_2(g, x, w, b):
    return 2 * g @ w.T, 2 * x.T @ g, 2 * g.sum(0)


def _log_softmax_global_sum(g, x):
    return g - softmax(x) * g.sum()


def _log_softmax_reversed(g, x):
    return softmax(x) * g.sum(-1, keepdim=True) - g


def _cross_entropy_without_mean(z, t):
    return softmax(z) - F.one_hot(t, z.shape[1]).to(z.dtype)


def _attention_grad_k_unscaled(g, q, k, v, mask=None):
    grad_q, grad_k, grad_v = fn.attention_backward(g, q, k, v, mask)
    return grad_q, grad_k * math.sqrt(q.shape[-1]), grad_v


def _attention_q_k_swapped(g, q, k, v, mask=None):
    grad_q, grad_k, grad_v = fn.attention_backward(g, q, k, v, mask)
    return grad_k, grad_q, grad_v


def _conv_negated(g, x, w, b, stride, padding):
    return tuple(-t for t in fn.conv2d_backward(g, x, w, b, stride, padding))


def _conv_grad_w_averaged(g, x, w, b, stride, padding):
    grad_x, grad_w, grad_b = fn.conv2d_backward(g, x, w, b, stride, padding)
    return grad_x, grad_w / x.shape[0], grad_b


def _embedding_averaged(g, idx, table):
    return fn.embedding_backward(g, idx, table) / idx.numel()


def _embedding_transpose_reshaped(g, idx, table):
    return fn.embedding_backward(g, idx, table).T.reshape(table.shape)


def _layernorm_beta_averaged(g, x, gamma, beta, eps=1e-5):
    grad_x, grad_gamma, _ = fn.layernorm_backward(g, x, gamma, beta, eps)
    return grad_x, grad_gamma, g.mean(0)


@pytest.mark.parametrize(
    ("name", "answer", "said", "not_said"),
    [
        ("lin", _lin_times_2, "grad_x, grad_w, grad_b are all ×2 the right", "sign"),
        ("log_softmax", _log_softmax_global_sum, "grad_x does not match", "factor"),
        ("log_softmax", _log_softmax_reversed, "grad_x has the wrong sign", "×"),
        (
            "cross_entropy",
            _cross_entropy_without_mean,
            "×N (N = the batch size)",
            "×n",
        ),
        ("attention", _attention_grad_k_unscaled, "grad_k is right up to", "×2"),
        ("attention", _attention_q_k_swapped, "grad_q and grad_k are swapped", "×"),
        ("conv2d", _conv_negated, "all have the wrong sign", "×"),
        (
            "conv2d",
            _conv_grad_w_averaged,
            "grad_w is right up to a constant factor: it is ×1/N",
            "×1/(N",
        ),
        ("embedding", _embedding_averaged, "×1/n (n = the lookups", "0.1667"),
        (
            "embedding",
            _embedding_transpose_reshaped,
            "use a transpose (.T), not .reshape",
            "Square shapes hide",
        ),
        (
            "layernorm",
            _layernorm_beta_averaged,
            "grad_beta is right up to a constant factor: it is ×1/N",
            "×1/C",
        ),
    ],
)
def test_more_answers_in_no_catalogue(name, answer, said, not_said):
    report = check_backward(name, answer)
    words = problems(report)
    assert not report.ok and said in words and not_said not in words
    no_catalogue_name(report, name)


def test_a_factor_no_size_names_on_every_case_is_the_number():
    right = right_of("self-attention")

    def grad_w_v_tripled(g, x, w_q, w_k, w_v):
        grad_x, grad_w_q, grad_w_k, grad_w_v = right(g, x, w_q, w_k, w_v)
        return grad_x, grad_w_q, grad_w_k, 3 * grad_w_v

    words = problems(post_exercise("self-attention", grad_w_v_tripled))
    assert "it is ×3 the right answer" in words and "[every case]" in words
    assert "×T" not in words and "×√d" not in words


def test_a_mean_for_a_sum_at_the_loss_is_one_factor_named_by_the_entries():
    def averaged(x, w, t):
        grad_r = 2 * (w * x + x - t) / x.numel()
        return grad_r * (w + 1), grad_r * x, -grad_r

    words = problems(post_exercise("skip", averaged))
    assert (
        "grad_x, grad_w, grad_t are all ×1/n (n = the number of entries of x)" in words
    )
    assert words.count(" - ") == 1  # one finding


def test_a_dilation_slip_is_said_to_be_the_dilation(monkeypatch):
    # No layer of the series has a dilation yet: an exercise of one, registered
    # here, whose points carry the trait, as conv2d's cases carry "stride".
    from backprop.exercises.catalogues.parts import Catalogue, Point

    def dilated(x, w, dilation):
        return F.conv2d(x, w, dilation=int(dilation))

    def more(point, gen):
        x, w, _ = point.inputs
        return [
            Point([x * 2, w, torch.tensor(2)], traits=frozenset({"dilation"})),
            Point([x[:, :, :-1], -w, torch.tensor(1)]),
            Point(
                [x[:, :, 1:], w * 3, torch.tensor(3)], traits=frozenset({"dilation"})
            ),
        ]

    monkeypatch.setitem(CATALOGUES, "dilated", Catalogue("post 11", (), more=more))

    def dilation_ignored(g, x, w, dilation):
        # The taps taken next to each other in the backward, whatever the dilation.
        spread = torch.zeros_like(F.conv2d(x, w))
        spread[..., : g.shape[-2], : g.shape[-1]] = g
        return tuple(autograd(lambda x, w: F.conv2d(x, w), (x, w), spread))

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 2, 9, 9, dtype=f64, generator=gen)
    w = torch.randn(3, 2, 3, 3, dtype=f64, generator=gen)
    report = check_gradient(
        dilated,
        dilation_ignored,
        [x, w, torch.tensor(1)],
        names=["x", "w", "dilation"],
        catalogue="dilated",
    )
    words = problems(report)
    assert "grad_x, grad_w: right at dilation 1 and wrong with a dilation" in words


def test_one_factor_on_some_gradients_is_not_a_slip_where_all_start():
    # Post 13's bug 11: grad_q and grad_k without the 1/√d, grad_v right.
    def no_scale(g, q, k, v, mask=None):
        grad_q, grad_k, grad_v = fn.attention_backward(g, q, k, v, mask)
        root_d = math.sqrt(q.shape[-1])
        return grad_q * root_d, grad_k * root_d, grad_v

    words = problems(check_backward("attention", no_scale))
    assert "the first step back from the loss" not in words
    for grad in ("grad_q", "grad_k"):
        assert f"{grad} is right up to a constant factor: it is ×√d" in words
