"""Layers as objects that remember their inputs, so ``backward()`` needs no arguments.

This is the refactor of fast.ai's lesson 13 (``03_backprop``). Each layer is a
:class:`Module`: calling it runs ``forward`` and stores the inputs
(``self.args``) and the output (``self.out``); ``backward()`` then runs
``bwd(out, *args)``, which reads the upstream gradient from ``out.g`` and
writes the gradients of the inputs and of the parameters.

The fast.ai naming convention: a gradient lives in ``.g`` on the tensor it is
the gradient of. ``inp.g`` is dL/d(inp), ``self.w.g`` is dL/dw. Because layer
*i*'s output *is* layer *i + 1*'s input (the same tensor object), writing
``inp.g`` in one layer hands the upstream gradient to the layer before it.

The maths lives in :mod:`backprop.functional`; the modules only wire it up::

    model = Model([Lin(784, 50, input_needs_grad=False), ReLU(), Lin(50, 1)], MSE())
    loss = model(x, y)      # forward: every layer stores its inputs and output
    model.backward()        # loss first, then the layers in reverse: fills every .g
    sgd_step(model.parameters(), lr=0.1)

Nothing here uses ``torch.autograd``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from backprop._checks import require_float, require_ndim, require_same_dtype, shape_str
from backprop.conv import IntPair
from backprop.functional import (
    batchnorm,
    batchnorm_backward,
    conv2d,
    conv2d_backward,
    cross_entropy,
    cross_entropy_backward,
    embedding,
    embedding_backward,
    layernorm,
    layernorm_backward,
    lin,
    lin_backward,
    mse,
    mse_backward,
    relu,
    relu_backward,
)


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class Module:
    """A layer: ``forward`` computes, ``bwd`` fills the gradients.

    Subclasses implement ``forward(*args)`` and ``bwd(out, *args)``; layers with
    parameters also override ``parameters()``. After ``out = layer(*args)`` and
    once ``out.g`` holds dL/d(out), ``layer.backward()`` sets ``.g`` on the
    inputs that need one and on every parameter.

    A module keeps its inputs and output (and their ``.g``) until it is called
    again: the memory a backward pass needs, like the tensors autograd saves.
    """

    # False when the input is data (the first layer's input, e.g. the images):
    # nothing reads its gradient, so a layer may skip computing it (Lin does).
    # autograd skips it in the same way for tensors that do not require a gradient.
    input_needs_grad: bool = True

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        self.args = args
        self.out = self.forward(*args)
        return self.out

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def backward(self) -> None:
        self.bwd(self.out, *self.args)

    def bwd(self, out: torch.Tensor, *args: torch.Tensor) -> None:
        raise NotImplementedError

    def parameters(self) -> list[torch.Tensor]:
        """The tensors that training updates; none for a layer without parameters."""
        return []


class Lin(Module):
    """The linear layer ``x @ w + b``: ``(..., n_in) -> (..., n_out)``.

    Parameters ``w`` ``(n_in, n_out)`` and ``b`` ``(n_out,)`` (or no bias).

    Backward (see :func:`backprop.functional.lin_backward`)::

        inp.g = out.g @ w^T        w.g = inp^T @ out.g        b.g = out.g summed over the batch

    With ``input_needs_grad=False`` (for a first layer, whose input is data)
    ``inp.g`` is not computed: for MNIST's 784 inputs that product costs as much
    as the forward pass.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        bias: bool = True,
        input_needs_grad: bool = True,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        _positive_int("n_in", n_in)
        _positive_int("n_out", n_out)
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        self.input_needs_grad = input_needs_grad
        # Kaiming (He) initialisation: weights ~ N(0, 2 / n_in). Each output sums
        # n_in products, so its variance grows with n_in; dividing by n_in keeps it
        # fixed, and the factor 2 makes up for ReLU zeroing half of the values.
        # Activations then keep their scale through many ReLU layers instead of
        # shrinking to 0 or blowing up. Drawn on the CPU, so a seed gives the same
        # weights on every device.
        w = torch.randn(n_in, n_out, generator=generator, dtype=dtype) * math.sqrt(2 / n_in)
        self.w = w.to(device)
        self.b = torch.zeros(n_out, dtype=dtype, device=device) if bias else None

    @classmethod
    def from_tensors(
        cls, w: torch.Tensor, b: torch.Tensor | None = None, *, input_needs_grad: bool = True
    ) -> Lin:
        """A layer whose parameters are ``w`` ``(n_in, n_out)`` and ``b`` ``(n_out,)`` or None.

        The tensors are used as they are, not copied: training updates them in
        place. Pass clones to keep the originals (e.g. to give the same starting
        weights to a ``torch.nn.Linear``, whose ``weight`` is ``w.T``).
        """
        require_float("w", w)
        require_ndim("w", w, 2)
        if b is not None:
            require_float("b", b)
            require_same_dtype(w=w, b=b)
            if b.shape != (w.shape[1],):
                raise ValueError(
                    f"b has shape {shape_str(b)} but w has shape {shape_str(w)}, "
                    f"so b must have shape ({w.shape[1]},): one bias per output"
                )
        n_in, n_out = w.shape
        # A throwaway generator: the random weights are replaced just below, and
        # the global random state stays untouched.
        layer = cls(n_in, n_out, bias=b is not None, input_needs_grad=input_needs_grad,
                    generator=torch.Generator(), dtype=w.dtype, device=w.device)
        layer.w, layer.b = w, b
        return layer

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return lin(inp, self.w, self.b)

    def bwd(self, out: torch.Tensor, inp: torch.Tensor) -> None:
        grad_x, self.w.g, grad_b = lin_backward(out.g, inp, self.w, self.b, need_grad_x=self.input_needs_grad)
        if self.input_needs_grad:
            inp.g = grad_x
        if self.b is not None:
            self.b.g = grad_b

    def parameters(self) -> list[torch.Tensor]:
        return [self.w] if self.b is None else [self.w, self.b]

    def __repr__(self) -> str:
        n_in, n_out = self.w.shape
        return f"Lin({n_in}, {n_out}, bias={self.b is not None})"


class ReLU(Module):
    """``max(inp, 0)`` elementwise; ``inp.g = out.g`` where ``inp > 0``, else 0."""

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return relu(inp)

    def bwd(self, out: torch.Tensor, inp: torch.Tensor) -> None:
        inp.g = relu_backward(out.g, inp)

    def __repr__(self) -> str:
        return "ReLU()"


class MSE(Module):
    """Mean squared error, a loss: ``MSE()(pred, target)`` is ``mean((pred - target)^2)``.

    ``pred`` and ``target`` must have the same shape. A loss starts the
    backward chain (dL/dL = 1), so ``backward()`` needs no upstream gradient:
    it sets ``pred.g = 2 (pred - target) / N``. The target gets no gradient.
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return mse(pred, target)

    def bwd(self, out: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> None:
        pred.g = mse_backward(pred, target)

    def __repr__(self) -> str:
        return "MSE()"


class CrossEntropy(Module):
    """Mean cross-entropy, a loss: ``CrossEntropy()(logits, target)`` with logits ``(n, c)``
    and int64 class indices ``target`` ``(n,)``.

    ``backward()`` starts the chain, setting ``logits.g = (softmax(logits) - onehot(target)) / n``.
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return cross_entropy(logits, target)

    def bwd(self, out: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> None:
        logits.g = cross_entropy_backward(logits, target)

    def __repr__(self) -> str:
        return "CrossEntropy()"


class Sequential(Module):
    """Layers applied one after the other; itself a layer.

    Backward is the chain rule: each layer's output is the next layer's input,
    so running the layers' ``backward`` in reverse passes ``.g`` from the end
    back to the start.
    """

    def __init__(self, *layers: Module) -> None:
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise ValueError(f"layers[{i}] must be a Module, got {type(layer).__name__}")
        self.layers = list(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def bwd(self, out: torch.Tensor, x: torch.Tensor) -> None:
        for layer in reversed(self.layers):
            layer.backward()

    def parameters(self) -> list[torch.Tensor]:
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        return "Sequential(" + ", ".join(map(repr, self.layers)) + ")"


class Model:
    """Layers and a loss: ``model(x, target)`` returns the loss; ``backward()`` fills every ``.g``.

    The lesson's ``Model``: the loss's backward starts the chain (it sets
    ``.g`` on the last layer's output), then the layers run backward in reverse.
    """

    def __init__(self, layers: Sequence[Module], loss: Module) -> None:
        if not isinstance(loss, Module):
            raise ValueError(f"loss must be a Module, got {type(loss).__name__}")
        self.layers = Sequential(*layers)
        self.loss = loss

    def __call__(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(self.layers(x), target)

    def backward(self) -> None:
        self.loss.backward()
        self.layers.backward()

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The last layer's output for ``x``, without the loss (e.g. logits for accuracy)."""
        return self.layers(x)

    def parameters(self) -> list[torch.Tensor]:
        return self.layers.parameters()

    def __repr__(self) -> str:
        return f"Model({self.layers!r}, loss={self.loss!r})"


def sgd_step(parameters: Iterable[torch.Tensor], lr: float) -> None:
    """Plain gradient descent, in place: ``p -= lr * p.g`` for every parameter, then clear ``p.g``.

    Clearing the gradient means a forgotten ``backward()`` fails loudly instead
    of taking the same step twice.
    """
    parameters = list(parameters)
    for i, p in enumerate(parameters):
        if getattr(p, "g", None) is None:
            raise ValueError(
                f"parameters[{i}] (shape {shape_str(p)}) has no gradient .g: "
                "run the forward pass and backward() before sgd_step"
            )
    for p in parameters:
        p -= lr * p.g
        p.g = None


# ---------------------------------------------------------------------------
# Part 2 layers: Embedding, BatchNorm, LayerNorm, Conv2d.
# Each is a Module as above: forward calls the functional forward, bwd reads
# out.g and sets .g on the input (not on Embedding's integer indices) and on
# every parameter, and parameters() lists them.
# ---------------------------------------------------------------------------


class Embedding(Module):
    """A learned lookup table: integer ``idx`` (any shape) -> ``idx.shape + (dim,)``.

    ``table`` ``(num, dim)`` starts as N(0, 1), like ``torch.nn.Embedding``. The input
    is integers, so it has no gradient: ``backward()`` sets only ``table.g``, a
    scatter-add in which repeated indices accumulate
    (:func:`backprop.functional.embedding_backward`).
    """

    input_needs_grad = False  # indices are not differentiable

    def __init__(
        self,
        num: int,
        dim: int,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        _positive_int("num", num)
        _positive_int("dim", dim)
        self.table = torch.randn(num, dim, generator=generator, dtype=dtype).to(device)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return embedding(idx, self.table)

    def bwd(self, out: torch.Tensor, idx: torch.Tensor) -> None:
        self.table.g = embedding_backward(out.g, idx, self.table)

    def parameters(self) -> list[torch.Tensor]:
        return [self.table]

    def __repr__(self) -> str:
        num, dim = self.table.shape
        return f"Embedding({num}, {dim})"


class BatchNorm1d(Module):
    """Batch normalisation of ``(n, c)`` or ``(n, c, L)`` inputs, per channel.

    TRAINING-MODE STATISTICS ONLY: every call normalises with the mean and biased
    variance of the batch it is given. There are no running averages and no
    evaluation mode, so predictions for one example depend on the rest of its batch.
    Parameters ``gamma`` (ones) and ``beta`` (zeros), each ``(c,)``.
    """

    def __init__(
        self,
        c: int,
        eps: float = 1e-5,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        _positive_int("c", c)
        self.eps = eps
        self.gamma = torch.ones(c, dtype=dtype, device=device)
        self.beta = torch.zeros(c, dtype=dtype, device=device)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        if inp.ndim not in (2, 3):
            raise ValueError(
                f"BatchNorm1d expects inp of shape (n, c) or (n, c, L), got shape {shape_str(inp)}"
            )
        return batchnorm(inp, self.gamma, self.beta, self.eps)

    def bwd(self, out: torch.Tensor, inp: torch.Tensor) -> None:
        inp.g, self.gamma.g, self.beta.g = batchnorm_backward(
            out.g, inp, self.gamma, self.beta, self.eps
        )

    def parameters(self) -> list[torch.Tensor]:
        return [self.gamma, self.beta]

    def __repr__(self) -> str:
        return f"BatchNorm1d({self.gamma.shape[0]})"


class LayerNorm(Module):
    """Layer normalisation over the last dimension: ``(..., d) -> (..., d)``.

    Each example is normalised with its own statistics, so unlike batch norm it
    behaves the same in training and at inference. Parameters ``gamma`` (ones) and
    ``beta`` (zeros), each ``(d,)``.
    """

    def __init__(
        self,
        d: int,
        eps: float = 1e-5,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        _positive_int("d", d)
        self.eps = eps
        self.gamma = torch.ones(d, dtype=dtype, device=device)
        self.beta = torch.zeros(d, dtype=dtype, device=device)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return layernorm(inp, self.gamma, self.beta, self.eps)

    def bwd(self, out: torch.Tensor, inp: torch.Tensor) -> None:
        inp.g, self.gamma.g, self.beta.g = layernorm_backward(
            out.g, inp, self.gamma, self.beta, self.eps
        )

    def parameters(self) -> list[torch.Tensor]:
        return [self.gamma, self.beta]

    def __repr__(self) -> str:
        return f"LayerNorm({self.gamma.shape[0]})"


class Conv2d(Module):
    """2-D convolution: ``(N, c_in, H, W) -> (N, c_out, Ho, Wo)``.

    Parameters ``w`` ``(c_out, c_in, kh, kw)`` and ``b`` ``(c_out,)`` (or None).
    ``kernel_size``, ``stride`` and ``padding`` are an int or a (vertical,
    horizontal) pair. Kaiming initialisation as in :class:`Lin`, with fan-in
    ``c_in * kh * kw``: each output sums that many products.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        *,
        bias: bool = True,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        _positive_int("c_in", c_in)
        _positive_int("c_out", c_out)
        kernel = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        if not (isinstance(kernel, tuple | list) and len(kernel) == 2):
            raise ValueError(f"kernel_size must be an int or a pair of ints, got {kernel_size!r}")
        kh, kw = _positive_int("kernel height", kernel[0]), _positive_int("kernel width", kernel[1])
        self.stride, self.padding = stride, padding
        fan_in = c_in * kh * kw
        w = torch.randn(c_out, c_in, kh, kw, generator=generator, dtype=dtype)
        self.w = (w * math.sqrt(2 / fan_in)).to(device)
        self.b = torch.zeros(c_out, dtype=dtype, device=device) if bias else None

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return conv2d(inp, self.w, self.b, self.stride, self.padding)

    def bwd(self, out: torch.Tensor, inp: torch.Tensor) -> None:
        inp.g, self.w.g, grad_b = conv2d_backward(
            out.g, inp, self.w, self.b, self.stride, self.padding
        )
        if self.b is not None:
            self.b.g = grad_b

    def parameters(self) -> list[torch.Tensor]:
        return [self.w] if self.b is None else [self.w, self.b]

    def __repr__(self) -> str:
        c_out, c_in, kh, kw = self.w.shape
        return (
            f"Conv2d({c_in}, {c_out}, kernel_size=({kh}, {kw}), "
            f"stride={self.stride}, padding={self.padding}, bias={self.b is not None})"
        )
