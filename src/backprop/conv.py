"""2-D convolution as a matrix product over patches (im2col), and its backward.

Shapes: x (N, C, H, W), weight w (O, C, kh, kw), bias b (O,), output (N, O, Ho, Wo) with

    Ho = (H + 2 * padding_h - kh) // stride_h + 1      (Wo likewise)

im2col ("image to columns") cuts every kh x kw window of the zero-padded input,
across all C channels, into a column of length K = C * kh * kw. There are
L = Ho * Wo windows, so ``cols`` has shape (N, K, L). A convolution (strictly a
cross-correlation, as in every deep learning library) is then one matrix product:

    out[n] = w.reshape(O, K) @ cols[n]  + b[:, None]        (O, L) -> (O, Ho, Wo)

which makes the backward the backward of a linear layer, applied per window:

    grad_b    = grad_out summed over n and every output position
    grad_w    = sum_n grad_out[n] @ cols[n]ᵀ                 (O, L) @ (L, K) -> (O, K)
                i.e. the correlation of the input patches with the output gradient
    grad_cols = w.reshape(O, K)ᵀ @ grad_out[n]               (K, O) @ (O, L) -> (K, L)
    grad_x    = col2im(grad_cols)

col2im (``fold``) is the adjoint of im2col: it adds every column back into the
window it came from. Overlapping windows share input pixels, so their gradients
accumulate there, and padding positions are dropped. grad_x is therefore the
transposed convolution of grad_out with w.

``torch.nn.functional.unfold`` and ``fold`` do the cutting and the adding back;
they are plain index shuffling, not autograd.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from backprop._checks import (
    require_float,
    require_ndim,
    require_same_dtype,
    require_shape,
    shape_str,
)

IntPair = int | tuple[int, int]


def _pair(name: str, value: IntPair, minimum: int) -> tuple[int, int]:
    """An int or (int, int) as (vertical, horizontal), each at least ``minimum``."""
    pair = (value, value) if isinstance(value, int) else value
    is_pair = isinstance(pair, tuple | list) and len(pair) == 2
    if not (is_pair and all(isinstance(v, int) for v in pair)):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return tuple(pair)


def _output_size(
    x_shape: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> tuple[int, int]:
    """(Ho, Wo); raises when the kernel does not fit in the padded input."""
    (height, width), (kh, kw) = x_shape[-2:], kernel
    padded = (height + 2 * padding[0], width + 2 * padding[1])
    if kh > padded[0] or kw > padded[1]:
        raise ValueError(
            f"kernel of size ({kh}, {kw}) is larger than the padded input of size "
            f"({padded[0]}, {padded[1]}) (x has shape {shape_str(x_shape)}, padding={padding})"
        )
    return (padded[0] - kh) // stride[0] + 1, (padded[1] - kw) // stride[1] + 1


def im2col(x: Tensor, kh: int, kw: int, stride: IntPair = 1, padding: IntPair = 0) -> Tensor:
    """Every kh x kw window of the zero-padded ``x``, one window per column.

    x:   (N, C, H, W)
    out: (N, C * kh * kw, Ho * Wo); column l is window (l // Wo, l % Wo) in row-major
         order, its entries ordered (channel, kernel row, kernel column) — the same
         order as ``w.reshape(O, C * kh * kw)``.
    """
    require_float("x", x)
    require_ndim("x", x, 4)
    kernel = _pair("kernel size (kh, kw)", (kh, kw), 1)
    stride, padding = _pair("stride", stride, 1), _pair("padding", padding, 0)
    _output_size(tuple(x.shape), kernel, stride, padding)
    return F.unfold(x, kernel, padding=padding, stride=stride)


def _check_conv_inputs(x: Tensor, w: Tensor, b: Tensor | None) -> None:
    require_float("x", x)
    require_float("w", w)
    require_ndim("x", x, 4)
    require_ndim("w", w, 4)
    require_same_dtype(x=x, w=w)
    if x.shape[1] != w.shape[1]:
        raise ValueError(
            f"x has {x.shape[1]} channels (shape {shape_str(x)}) but w expects {w.shape[1]} "
            f"(shape {shape_str(w)}, i.e. (out_channels, in_channels, kh, kw))"
        )
    if b is not None:
        require_float("b", b)
        require_same_dtype(x=x, b=b)
        why = f"one per output channel of w, whose shape is {shape_str(w)}"
        require_shape("b", b, (w.shape[0],), why)


def conv2d(
    x: Tensor, w: Tensor, b: Tensor | None = None, stride: IntPair = 1, padding: IntPair = 0
) -> Tensor:
    """2-D convolution (cross-correlation) via im2col and one matrix product.

    x: (N, C, H, W), w: (O, C, kh, kw), b: (O,) or None; stride and padding an int
    or a (vertical, horizontal) pair; zero padding.
    out: (N, O, Ho, Wo),  Ho = (H + 2 * padding - kh) // stride + 1.

    Matches ``torch.nn.functional.conv2d(x, w, b, stride, padding)``.
    """
    _check_conv_inputs(x, w, b)
    out_channels, _, kh, kw = w.shape
    stride, padding = _pair("stride", stride, 1), _pair("padding", padding, 0)
    out_h, out_w = _output_size(tuple(x.shape), (kh, kw), stride, padding)

    cols = im2col(x, kh, kw, stride, padding)  # (N, K, L)
    out = w.reshape(out_channels, -1) @ cols  # (O, K) @ (N, K, L) -> (N, O, L)
    if b is not None:
        out = out + b[:, None]
    return out.reshape(x.shape[0], out_channels, out_h, out_w)


def conv2d_backward(
    grad_out: Tensor,
    x: Tensor,
    w: Tensor,
    b: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """(grad_x, grad_w, grad_b) of ``conv2d``; grad_b is None when b is.

    With cols = im2col(x) (N, K, L) and g = grad_out reshaped to (N, O, L):

        grad_b = g summed over n and l                          (O,)
        grad_w = sum_n g[n] @ cols[n]ᵀ, reshaped to w's shape   correlation of patches with g
        grad_x = col2im(w.reshape(O, K)ᵀ @ g)                   transposed convolution

    col2im is ``torch.nn.functional.fold``: it sums each column back into its window,
    so pixels shared by overlapping windows collect every window's gradient.
    """
    _check_conv_inputs(x, w, b)
    out_channels, _, kh, kw = w.shape
    stride, padding = _pair("stride", stride, 1), _pair("padding", padding, 0)
    out_h, out_w = _output_size(tuple(x.shape), (kh, kw), stride, padding)
    require_float("grad_out", grad_out)
    require_same_dtype(x=x, grad_out=grad_out)
    out_shape = (x.shape[0], out_channels, out_h, out_w)
    require_shape("grad_out", grad_out, out_shape, "the output's shape")

    cols = im2col(x, kh, kw, stride, padding)  # (N, K, L)
    g = grad_out.reshape(x.shape[0], out_channels, out_h * out_w)  # (N, O, L)

    grad_b = g.sum(dim=(0, 2)) if b is not None else None
    grad_w = (g @ cols.transpose(1, 2)).sum(dim=0).reshape(w.shape)  # (N, O, K) summed over n
    grad_cols = w.reshape(out_channels, -1).T @ g  # (K, O) @ (N, O, L) -> (N, K, L)
    grad_x = F.fold(grad_cols, x.shape[-2:], (kh, kw), padding=padding, stride=stride)
    return grad_x, grad_w, grad_b
