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

``im2col`` and ``col2im`` are written here with index arithmetic and a
scatter-add; they equal ``torch.nn.functional.unfold`` and ``fold``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from backprop._checks import (
    require_float,
    require_int_pair,
    require_ndim,
    require_same_dtype,
    require_shape,
    shape_str,
)

__all__ = ["col2im", "conv2d", "conv2d_backward", "im2col"]

# A size, stride or padding: one int for both directions, or (vertical, horizontal).
IntPair = int | tuple[int, int]


def _pair(name: str, value: IntPair, minimum: int) -> tuple[int, int]:
    """An int or (int, int) as (vertical, horizontal), each at least ``minimum``;
    numpy's integers are ints, a bool is not."""
    return require_int_pair(name, value, minimum)


def _output_size(
    x_shape: tuple[int, ...],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    source: str | None = None,
) -> tuple[int, int]:
    """(Ho, Wo); raises when the kernel does not fit in the padded input.

    ``source`` says where the size came from, for the error message.
    """
    (height, width), (kh, kw) = x_shape[-2:], kernel
    padded = (height + 2 * padding[0], width + 2 * padding[1])
    if kh > padded[0] or kw > padded[1]:
        source = source or f"x has shape {shape_str(x_shape)}"
        raise ValueError(
            f"kernel of size ({kh}, {kw}) is larger than the padded input of size "
            f"({padded[0]}, {padded[1]}) ({source}, padding={padding})"
        )
    return (padded[0] - kh) // stride[0] + 1, (padded[1] - kw) // stride[1] + 1


def _window_indices(
    out_size: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int]
) -> tuple[Tensor, Tensor]:
    """Row and column of the padded input read by each (kernel offset, window).

    rows[di, i] = i * stride_h + di: kernel row di of the window in output row i.
    Shapes (kh, Ho) and (kw, Wo); cols likewise with the horizontal sizes.
    """
    rows = torch.arange(kernel[0])[:, None] + stride[0] * torch.arange(out_size[0])
    cols = torch.arange(kernel[1])[:, None] + stride[1] * torch.arange(out_size[1])
    return rows, cols


def im2col(
    x: Tensor, kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0
) -> Tensor:
    """Every kh x kw window of the zero-padded ``x``, one window per column.

    Written with index arithmetic: window (i, j) reads padded row
    ``i * stride_h + di`` and column ``j * stride_w + dj`` for every kernel offset
    (di, dj), so one advanced-indexing read gathers every window at once.

    Parameters
    ----------
    x : Tensor
        Images, shape (N, C, H, W), floating point.
    kernel_size : int or (int, int)
        (kh, kw); an int for a square kernel.
    stride, padding : int or (int, int)
        Step between windows (at least 1) and zeros added on each side (at
        least 0), as (vertical, horizontal) or one int for both.

    Returns
    -------
    Tensor
        cols, shape (N, C * kh * kw, Ho * Wo). Column l is window
        (l // Wo, l % Wo) in row-major order; its entries are ordered (channel,
        kernel row, kernel column), the order of ``w.reshape(O, C * kh * kw)``.
        Equal to ``torch.nn.functional.unfold(x, kernel_size, 1, padding, stride)``.

    Raises
    ------
    ValueError
        If x is not 4-D floating point, an argument is not an int or a pair
        of valid ints, or the kernel is larger than the padded input.

    Examples
    --------
    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> cols = im2col(x, 3)           # four 3 x 3 windows of a 4 x 4 image
    >>> cols.shape
    torch.Size([1, 9, 4])
    >>> cols[0, :, 0].tolist()        # the top-left window, in reading order
    [0.0, 1.0, 2.0, 4.0, 5.0, 6.0, 8.0, 9.0, 10.0]
    """
    require_float("x", x)
    require_ndim("x", x, 4)
    kernel = _pair("kernel_size", kernel_size, 1)
    stride, padding = _pair("stride", stride, 1), _pair("padding", padding, 0)
    out_h, out_w = _output_size(tuple(x.shape), kernel, stride, padding)
    n, c, h, w = x.shape
    (ph, pw), (kh, kw) = padding, kernel

    padded = x.new_zeros(n, c, h + 2 * ph, w + 2 * pw)
    padded[:, :, ph : ph + h, pw : pw + w] = x
    rows, cols = _window_indices((out_h, out_w), kernel, stride)
    rows, cols = rows.to(x.device), cols.to(x.device)
    # Index shapes (kh, 1, Ho, 1) and (1, kw, 1, Wo) broadcast to (kh, kw, Ho, Wo):
    # windows[n, c, di, dj, i, j] = padded[n, c, i * sh + di, j * sw + dj].
    windows = padded[:, :, rows[:, None, :, None], cols[None, :, None, :]]
    return windows.reshape(n, c * kh * kw, out_h * out_w)


def col2im(
    cols: Tensor,
    output_size: IntPair,
    kernel_size: IntPair,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> Tensor:
    """Add every column back into the window it came from: the adjoint of ``im2col``.

    Each entry of ``cols`` is added (a scatter-add, ``index_add_``) to the pixel
    of the zero-padded image that ``im2col`` copied it from; pixels shared by
    overlapping windows collect the sum of every window's entry, and the padding
    border is dropped at the end. As a matrix, col2im is the transpose of
    im2col: ``<im2col(x), c> = <x, col2im(c)>`` for every x and c.

    Parameters
    ----------
    cols : Tensor
        Shape (N, C * kh * kw, L), floating point, with L = Ho * Wo the number
        of windows im2col cuts from an image of ``output_size``.
    output_size : int or (int, int)
        (H, W) of the image to rebuild (before padding).
    kernel_size, stride, padding : int or (int, int)
        As in `im2col`.

    Returns
    -------
    Tensor
        Shape (N, C, H, W). Equal to ``torch.nn.functional.fold(cols,
        output_size, kernel_size, 1, padding, stride)``.

    Raises
    ------
    ValueError
        If cols is not 3-D floating point, its sizes do not match the windows of
        ``output_size``, an argument is invalid, or the kernel is larger than the
        padded image.

    Examples
    --------
    >>> ones = torch.ones(1, 4, 4)    # 2 x 2 windows of a 3 x 3 image, all ones
    >>> col2im(ones, 3, 2)[0, 0]      # how many windows cover each pixel
    tensor([[1., 2., 1.],
            [2., 4., 2.],
            [1., 2., 1.]])
    """
    require_float("cols", cols)
    require_ndim("cols", cols, 3)
    size = _pair("output_size", output_size, 1)
    kernel = _pair("kernel_size", kernel_size, 1)
    stride, padding = _pair("stride", stride, 1), _pair("padding", padding, 0)
    source = f"output_size is {size}"
    out_h, out_w = _output_size(size, kernel, stride, padding, source)
    (h, w), (ph, pw), (kh, kw) = size, padding, kernel
    n, k, length = cols.shape
    if k % (kh * kw) != 0 or length != out_h * out_w:
        raise ValueError(
            f"cols has shape {shape_str(cols)} but a {kh} x {kw} kernel over an image "
            f"of size ({h}, {w}) with stride={stride} and padding={padding} gives "
            f"{out_h * out_w} windows of C * {kh * kw} values: expected shape "
            f"(N, C * {kh * kw}, {out_h * out_w})"
        )
    c = k // (kh * kw)

    padded_w = w + 2 * pw
    rows, cols_idx = _window_indices((out_h, out_w), kernel, stride)
    # Flat position in the padded image of every (di, dj, i, j), in cols' order.
    flat = rows[:, None, :, None] * padded_w + cols_idx[None, :, None, :]
    flat = flat.reshape(-1).to(cols.device)
    padded = cols.new_zeros(n, c, (h + 2 * ph) * padded_w)
    # index_add_ adds repeated indices up: a pixel in several windows gets them all.
    padded.index_add_(2, flat, cols.reshape(n, c, kh * kw * length))
    padded = padded.reshape(n, c, h + 2 * ph, padded_w)
    return padded[:, :, ph : ph + h, pw : pw + w]


def _check_conv_inputs(x: Tensor, w: Tensor, b: Tensor | None) -> None:
    require_float("x", x)
    require_float("w", w)
    require_ndim("x", x, 4)
    require_ndim("w", w, 4)
    require_same_dtype(x=x, w=w)
    if x.shape[1] != w.shape[1]:
        raise ValueError(
            f"x has {x.shape[1]} channels (shape {shape_str(x)}) but w expects "
            f"{w.shape[1]} (shape {shape_str(w)}, "
            "i.e. (out_channels, in_channels, kh, kw))"
        )
    if b is not None:
        require_float("b", b)
        require_same_dtype(x=x, b=b)
        why = f"one per output channel of w, whose shape is {shape_str(w)}"
        require_shape("b", b, (w.shape[0],), why)


def conv2d(
    x: Tensor,
    w: Tensor,
    b: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> Tensor:
    r"""2-D convolution (cross-correlation) via im2col and one matrix product.

    With ``cols = im2col(x)`` of shape (N, K, L), $K = C k_h k_w$ and
    $L = H_o W_o$, every image is one product $W \, \mathrm{cols}_n + b$ with
    $W$ the weights reshaped to (O, K), so

    $$\mathrm{out}[n, o, i, j] = b_o + \sum_{c, d_i, d_j}
    w[o, c, d_i, d_j] \, x_{\mathrm{pad}}[n, c, i s_h + d_i, j s_w + d_j].$$

    Parameters
    ----------
    x : Tensor
        Images, shape (N, C, H, W), floating point.
    w : Tensor
        Kernels, shape (O, C, kh, kw), the dtype of ``x``.
    b : Tensor or None, optional
        Bias, shape (O,), one per output channel; None for none.
    stride : int or (int, int), optional
        Step between windows, at least 1: one int for both directions or
        (vertical, horizontal).
    padding : int or (int, int), optional
        Zeros added on each side, at least 0, as for ``stride``.

    Returns
    -------
    Tensor
        Shape (N, O, Ho, Wo) with $H_o = \lfloor (H + 2 p_h - k_h) / s_h \rfloor + 1$
        (and $W_o$ likewise). Equal to
        ``torch.nn.functional.conv2d(x, w, b, stride, padding)``.

    Raises
    ------
    ValueError
        If x or w is not 4-D floating point, their channels or dtypes differ, b
        is not (O,), stride or padding is invalid, or the kernel is larger than
        the padded input; the message names the shapes.

    Examples
    --------
    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> w = torch.ones(1, 1, 3, 3)            # sums each 3 x 3 window
    >>> conv2d(x, w)
    tensor([[[[45., 54.],
              [81., 90.]]]])
    >>> conv2d(x, w, stride=2, padding=1).shape
    torch.Size([1, 1, 2, 2])
    """
    _check_conv_inputs(x, w, b)
    out_channels, _, kh, kw = w.shape
    stride, padding = _pair("stride", stride, 1), _pair("padding", padding, 0)
    out_h, out_w = _output_size(tuple(x.shape), (kh, kw), stride, padding)

    cols = im2col(x, (kh, kw), stride, padding)  # (N, K, L)
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
    r"""The gradients of `conv2d`'s inputs: (grad_x, grad_w, grad_b).

    With ``cols = im2col(x)`` of shape (N, K, L), $G$ the upstream
    gradient reshaped to (N, O, L) and $W$ the weights reshaped to (O, K), the
    backward is a linear layer's, applied per window:

    $$\frac{\partial L}{\partial b} = \sum_{n, l} G_{n, :, l}, \qquad
    \frac{\partial L}{\partial W} = \sum_n G_n \, \mathrm{cols}_n^\top, \qquad
    \frac{\partial L}{\partial x} = \mathrm{col2im}(W^\top G_n).$$

    $\partial L / \partial W$ is the correlation of the input patches with the
    upstream gradient and $\partial L / \partial x$ the transposed convolution
    of it with $w$: col2im adds each column back into its window (a
    scatter-add), so pixels shared by overlapping windows collect every window's
    gradient.

    Parameters
    ----------
    grad_out : Tensor
        $\partial L / \partial \mathrm{out}$, shape (N, O, Ho, Wo), the output's.
    x : Tensor
        The forward's images, shape (N, C, H, W), floating point.
    w : Tensor
        The forward's kernels, shape (O, C, kh, kw).
    b : Tensor or None, optional
        The forward's bias, shape (O,), or None.
    stride, padding : int or (int, int), optional
        As in the forward.

    Returns
    -------
    grad_x : Tensor
        Shape (N, C, H, W).
    grad_w : Tensor
        Shape (O, C, kh, kw).
    grad_b : Tensor or None
        Shape (O,); None when ``b`` is None.

    Raises
    ------
    ValueError
        If the inputs are invalid as for `conv2d`, or ``grad_out`` does not
        have the output's shape and dtype.

    Examples
    --------
    >>> x, w = torch.randn(2, 3, 5, 5), torch.randn(4, 3, 3, 3)
    >>> grad_out = torch.ones(2, 4, 3, 3)
    >>> grad_x, grad_w, grad_b = conv2d_backward(grad_out, x, w, torch.zeros(4))
    >>> grad_x.shape, grad_w.shape, grad_b.tolist()   # b.g counts 2 * 3 * 3 uses
    (torch.Size([2, 3, 5, 5]), torch.Size([4, 3, 3, 3]), [18.0, 18.0, 18.0, 18.0])
    """
    _check_conv_inputs(x, w, b)
    out_channels, _, kh, kw = w.shape
    stride, padding = _pair("stride", stride, 1), _pair("padding", padding, 0)
    out_h, out_w = _output_size(tuple(x.shape), (kh, kw), stride, padding)
    require_float("grad_out", grad_out)
    require_same_dtype(x=x, grad_out=grad_out)
    out_shape = (x.shape[0], out_channels, out_h, out_w)
    require_shape("grad_out", grad_out, out_shape, "the output's shape")

    cols = im2col(x, (kh, kw), stride, padding)  # (N, K, L)
    g = grad_out.reshape(x.shape[0], out_channels, out_h * out_w)  # (N, O, L)

    grad_b = g.sum(dim=(0, 2)) if b is not None else None
    grad_w = (
        (g @ cols.transpose(1, 2)).sum(dim=0).reshape(w.shape)
    )  # (N, O, K) summed over n
    grad_cols = w.reshape(out_channels, -1).T @ g  # (K, O) @ (N, O, L) -> (N, K, L)
    grad_x = col2im(grad_cols, (x.shape[-2], x.shape[-1]), (kh, kw), stride, padding)
    return grad_x, grad_w, grad_b
