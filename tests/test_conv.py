"""conv2d, conv2d_backward, im2col and col2im against torch, autograd, finite
differences and explicit loops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from backprop.conv import col2im, conv2d, conv2d_backward, im2col
from oracles import autograd_grads, finite_difference_grads
from strategies import conv_configs, dtypes, layouts, make_tensor, seeds, tolerance


def _pair(v):
    return (v, v) if isinstance(v, int) else v


def _out_shape(cfg):
    (n, _, h, w), (o, _, kh, kw) = cfg["x_shape"], cfg["w_shape"]
    (sh, sw), (ph, pw) = _pair(cfg["stride"]), _pair(cfg["padding"])
    return n, o, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def _inputs(cfg, dtype, x_layout, w_layout, with_bias, seed):
    x = make_tensor(cfg["x_shape"], dtype, x_layout, seed=seed)
    w = make_tensor(cfg["w_shape"], dtype, w_layout, seed=seed + 1)
    b = (
        make_tensor((cfg["w_shape"][0],), dtype, "strided", seed=seed + 2)
        if with_bias
        else None
    )
    grad_out = make_tensor(_out_shape(cfg), dtype, x_layout, seed=seed + 3)
    return x, w, b, grad_out


@settings(max_examples=60, deadline=None)
@given(
    cfg=conv_configs(),
    dtype=dtypes,
    x_layout=layouts,
    w_layout=layouts,
    with_bias=st.booleans(),
    seed=seeds,
)
def test_conv2d_matches_torch(cfg, dtype, x_layout, w_layout, with_bias, seed):
    x, w, b, _ = _inputs(cfg, dtype, x_layout, w_layout, with_bias, seed)
    out = conv2d(x, w, b, cfg["stride"], cfg["padding"])
    assert out.shape == _out_shape(cfg) and out.dtype == dtype
    torch.testing.assert_close(
        out, F.conv2d(x, w, b, cfg["stride"], cfg["padding"]), **tolerance(dtype)
    )


@settings(max_examples=80, deadline=None)
@given(
    cfg=conv_configs(),
    dtype=dtypes,
    x_layout=layouts,
    w_layout=layouts,
    with_bias=st.booleans(),
    seed=seeds,
)
def test_conv2d_backward_matches_autograd(
    cfg, dtype, x_layout, w_layout, with_bias, seed
):
    x, w, b, grad_out = _inputs(cfg, dtype, x_layout, w_layout, with_bias, seed)
    stride, padding = cfg["stride"], cfg["padding"]
    expected = autograd_grads(
        lambda x_, w_, b_: F.conv2d(x_, w_, b_, stride, padding), [x, w, b], grad_out
    )
    got = conv2d_backward(grad_out, x, w, b, stride, padding)
    assert len(got) == 3
    for name, g, e, t in zip(
        ("grad_x", "grad_w", "grad_b"), got, expected, (x, w, b), strict=True
    ):
        if t is None:
            assert g is None, f"{name} must be None when b is None"
            continue
        assert g.shape == t.shape and g.dtype == dtype, name
        torch.testing.assert_close(
            g, e, **tolerance(dtype), msg=lambda m, name=name: f"{name}: {m}"
        )


@settings(max_examples=15, deadline=None)
@given(cfg=conv_configs(max_side=4), seed=seeds)
def test_conv2d_backward_matches_finite_differences(cfg, seed):
    x, w, b, grad_out = _inputs(
        cfg, torch.float64, "contiguous", "contiguous", True, seed
    )
    s, p = cfg["stride"], cfg["padding"]
    grad_x, grad_w, grad_b = conv2d_backward(grad_out, x, w, b, s, p)
    fd = dict(rtol=1e-6, atol=1e-6)
    expected = finite_difference_grads(
        lambda x_, w_, b_: conv2d(x_, w_, b_, s, p), (x, w, b), grad_out
    )
    for got, fd_grad in zip((grad_x, grad_w, grad_b), expected, strict=True):
        torch.testing.assert_close(got, fd_grad, **fd)


@settings(max_examples=30, deadline=None)
@given(cfg=conv_configs(max_side=5), layout=layouts, seed=seeds)
def test_im2col_columns_are_the_padded_windows(cfg, layout, seed):
    # An independent im2col: loop over the windows of an explicitly zero-padded input.
    x = make_tensor(cfg["x_shape"], torch.float64, layout, seed=seed)
    _, _, kh, kw = cfg["w_shape"]
    (sh, sw), (ph, pw) = _pair(cfg["stride"]), _pair(cfg["padding"])
    _, _, out_h, out_w = _out_shape(cfg)
    padded = F.pad(x, (pw, pw, ph, ph))
    cols = im2col(x, (kh, kw), cfg["stride"], cfg["padding"])
    assert cols.shape == (x.shape[0], x.shape[1] * kh * kw, out_h * out_w)
    for i in range(out_h):
        for j in range(out_w):
            window = padded[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
            torch.testing.assert_close(
                cols[:, :, i * out_w + j],
                window.reshape(x.shape[0], -1),
                rtol=0,
                atol=0,
            )


def _kernel_size(cfg, as_int):
    """The kernel as a pair, or as one int when it is square and ``as_int`` asks so."""
    kh, kw = cfg["w_shape"][-2:]
    return kh if as_int and kh == kw else (kh, kw)


@settings(max_examples=80, deadline=None)
@given(
    cfg=conv_configs(), dtype=dtypes, layout=layouts, as_int=st.booleans(), seed=seeds
)
def test_im2col_equals_unfold(cfg, dtype, layout, as_int, seed):
    x = make_tensor(cfg["x_shape"], dtype, layout, seed=seed)
    kernel, stride, padding = _kernel_size(cfg, as_int), cfg["stride"], cfg["padding"]
    cols = im2col(x, kernel, stride, padding)
    expected = F.unfold(x, kernel, padding=padding, stride=stride)
    assert cols.shape == expected.shape and cols.dtype == dtype
    # Pure copying: equal bit for bit, not just within a tolerance.
    assert torch.equal(cols, expected)


@settings(max_examples=80, deadline=None)
@given(
    cfg=conv_configs(), dtype=dtypes, layout=layouts, as_int=st.booleans(), seed=seeds
)
def test_col2im_equals_fold(cfg, dtype, layout, as_int, seed):
    kernel, stride, padding = _kernel_size(cfg, as_int), cfg["stride"], cfg["padding"]
    n, c, h, w = cfg["x_shape"]
    _, _, out_h, out_w = _out_shape(cfg)
    kh, kw = cfg["w_shape"][-2:]
    cols = make_tensor((n, c * kh * kw, out_h * out_w), dtype, layout, seed=seed)
    size = (h, w) if not as_int or h != w else h
    image = col2im(cols, size, kernel, stride, padding)
    expected = F.fold(cols, (h, w), kernel, padding=padding, stride=stride)
    assert image.shape == (n, c, h, w) and image.dtype == dtype
    torch.testing.assert_close(image, expected, **tolerance(dtype))


@settings(max_examples=40, deadline=None)
@given(cfg=conv_configs(), seed=seeds)
def test_col2im_is_the_transpose_of_im2col(cfg, seed):
    # <im2col(x), c> = <x, col2im(c)> for every x and c: col2im is the adjoint.
    kernel, stride, padding = cfg["w_shape"][-2:], cfg["stride"], cfg["padding"]
    x = make_tensor(cfg["x_shape"], torch.float64, seed=seed)
    n, c, h, w = cfg["x_shape"]
    _, _, out_h, out_w = _out_shape(cfg)
    cols = make_tensor((n, c * kernel[0] * kernel[1], out_h * out_w), seed=seed + 1)
    lhs = (im2col(x, kernel, stride, padding) * cols).sum()
    rhs = (x * col2im(cols, (h, w), kernel, stride, padding)).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_col2im_checks_the_shape_of_cols():
    with pytest.raises(
        ValueError, match=r"cols has shape \(1, 9, 5\).*4 windows.*\(N, C \* 9, 4\)"
    ):
        col2im(torch.randn(1, 9, 5), (4, 4), 3)
    with pytest.raises(ValueError, match=r"cols has shape \(1, 8, 4\)"):
        col2im(torch.randn(1, 8, 4), (4, 4), 3)
    with pytest.raises(ValueError, match=r"cols must have 3 dimension"):
        col2im(torch.randn(9, 4), (4, 4), 3)
    with pytest.raises(
        ValueError,
        match=r"larger than the padded input of size \(2, 4\) "
        r"\(output_size is \(2, 4\)",
    ):
        col2im(torch.randn(1, 9, 1), (2, 4), 3)
    with pytest.raises(
        ValueError, match=r"kernel_size must be at least 1, got \(0, 2\)"
    ):
        im2col(torch.randn(1, 1, 4, 4), (0, 2))


def test_overlapping_windows_accumulate_in_the_input_gradient():
    # A 1-channel 3x3 input, a 2x2 kernel of ones, stride 1: the centre pixel lies in
    # all four windows, edges in two, corners in one. With grad_out all ones, grad_x
    # counts the windows covering each pixel (the adjoint of im2col adds, it does not
    # overwrite).
    x = torch.randn(1, 1, 3, 3, dtype=torch.float64)
    w = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    grad_x, _, _ = conv2d_backward(torch.ones(1, 1, 2, 2, dtype=torch.float64), x, w)
    expected = torch.tensor(
        [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], dtype=torch.float64
    )
    torch.testing.assert_close(grad_x[0, 0], expected, rtol=0, atol=0)


# ------------------------------------------------------------------------- bad input


def test_channel_mismatch_names_both_shapes():
    with pytest.raises(
        ValueError,
        match=r"x has 3 channels \(shape \(2, 3, 5, 5\)\) but w expects 4 "
        r"\(shape \(8, 4, 3, 3\)",
    ):
        conv2d(torch.randn(2, 3, 5, 5), torch.randn(8, 4, 3, 3))
    with pytest.raises(ValueError, match=r"x has 3 channels.*w expects 1"):
        conv2d_backward(
            torch.randn(2, 8, 3, 3), torch.randn(2, 3, 5, 5), torch.randn(8, 1, 3, 3)
        )


def test_kernel_larger_than_padded_input():
    with pytest.raises(
        ValueError,
        match=r"kernel of size \(5, 3\) is larger than the padded input of size "
        r"\(4, 6\).*\(1, 1, 2, 4\)",
    ):
        conv2d(torch.randn(1, 1, 2, 4), torch.randn(1, 1, 5, 3), padding=1)
    with pytest.raises(
        ValueError,
        match=r"kernel of size \(3, 3\) is larger than the padded input of "
        r"size \(2, 2\)",
    ):
        im2col(torch.randn(1, 1, 2, 2), 3)


def test_bias_shape_stride_padding_and_dims():
    x, w = torch.randn(1, 2, 5, 5), torch.randn(4, 2, 3, 3)
    with pytest.raises(
        ValueError,
        match=r"b must have shape \(4,\) \(one per output channel of w, whose "
        r"shape is \(4, 2, 3, 3\)\), got shape \(2,\)",
    ):
        conv2d(x, w, torch.zeros(2))
    with pytest.raises(ValueError, match=r"stride must be at least 1, got 0"):
        conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match=r"padding must be at least 0, got \(1, -1\)"):
        conv2d(x, w, padding=(1, -1))
    with pytest.raises(
        ValueError, match=r"stride must be an int or a pair of ints, got 1.5"
    ):
        conv2d(x, w, stride=1.5)
    with pytest.raises(
        ValueError, match=r"padding must be an int or a pair of ints, got \(1, 1, 1\)"
    ):
        conv2d(x, w, padding=(1, 1, 1))
    with pytest.raises(
        ValueError, match=r"x must have 4 dimension\(s\), got shape \(2, 5, 5\)"
    ):
        conv2d(x[0], w)
    with pytest.raises(
        ValueError, match=r"w has dtype torch.float64 but x has dtype torch.float32"
    ):
        conv2d(x, w.double())


def test_grad_out_shape_is_checked():
    x, w = torch.randn(1, 2, 5, 5), torch.randn(4, 2, 3, 3)
    with pytest.raises(
        ValueError,
        match=r"grad_out must have shape \(1, 4, 2, 2\).*got shape \(1, 4, 3, 3\)",
    ):
        conv2d_backward(torch.randn(1, 4, 3, 3), x, w, stride=2)
