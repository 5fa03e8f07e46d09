"""Layers as objects that remember their inputs, so ``backward()`` needs no inputs.

This is the refactor of fast.ai's lesson 13 (``03_backprop``). Each layer is a
`Module`: calling it runs ``forward`` and stores the inputs
(``self.args``) and the output (``self.out``); ``backward()`` then runs
``bwd(out, *args)``, which reads the upstream gradient from ``out.g`` and
writes the gradients of the inputs and of the parameters.

The fast.ai naming convention: a gradient lives in ``.g`` on the tensor it is
the gradient of. ``inp.g`` is ∂L/∂inp, ``self.w.g`` is ∂L/∂w. Because layer
*i*'s output *is* layer *i + 1*'s input (the same tensor object), writing
``inp.g`` in one layer hands the upstream gradient to the layer before it.

The maths lives in `backprop.functional`; the modules only wire it up::

    model = Model([Lin(784, 50, input_needs_grad=False), ReLU(), Lin(50, 1)], MSE())
    loss = model(x, y)  # forward: every layer stores its inputs and output
    model.backward()  # loss first, then the layers in reverse: fills every .g
    sgd_step(model.named_parameters(), lr=0.1)  # from backprop.optim

A module knows its parts, as ``torch.nn.Module`` does: ``parameters()``,
``named_parameters()`` (``"layers.0.w"``), ``train()`` and ``eval()`` are written
once, in `Module`, and reach every module inside, however deeply nested. The
optimisers that read the ``.g`` gradients are in `backprop.optim`.

Nothing here uses ``torch.autograd``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import torch

from backprop._checks import (
    as_int,
    grad_of,
    require_float,
    require_int_pair,
    require_ndim,
    require_positive_int,
    require_same_dtype,
    set_grad,
    shape_str,
)
from backprop.attention import (
    _attention_probs,
    _check_attention_inputs,
    attention,
    attention_backward,
    causal_mask,
)
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
from backprop.normalization import _layernorm_keeping_stats

__all__ = [
    "MSE",
    "BatchNorm1d",
    "Conv2d",
    "CrossEntropy",
    "Embedding",
    "LayerNorm",
    "Lin",
    "Model",
    "Module",
    "MultiHeadAttention",
    "ReLU",
    "Sequential",
]


INTERMEDIATES = ("recompute", "keep")


def _intermediates(value: object) -> str:
    """The ``intermediates`` argument, checked: what a backward gets from its forward.

    ``"recompute"``: only the forward's inputs and output, as the functional
    backwards take them (they compute the rest again). ``"keep"``: also what the
    forward computed along the way and the backward reads (layer norm's statistics,
    attention's softmax, the GELU's tanh), as autograd keeps it.
    """
    if value not in INTERMEDIATES:
        raise ValueError(f"intermediates must be 'recompute' or 'keep', got {value!r}")
    return str(value)


class Module:
    r"""A layer: ``forward`` computes, ``bwd`` fills the gradients.

    Subclasses implement ``forward(*args)`` and ``bwd(out, *args)``, each with
    its own named inputs, and name their parameters in ``parameter_names``.
    After ``out = layer(*args)`` and once ``out.g`` holds
    $\partial L / \partial \mathrm{out}$, ``layer.backward()`` sets ``.g`` on
    the inputs that need one and on every parameter.

    A module knows its parts, as ``torch.nn.Module`` does: the modules it holds
    in its attributes (directly, or in a list or tuple) are its children, and
    `parameters`, `named_parameters`, `train`, `eval` and the ``repr`` walk
    every module inside, however deeply nested, each module and each tensor
    once. A parameter's name is the path of attributes that reaches it first,
    e.g. ``"blocks.0.attention.w_q"``; list items are numbered.

    A module keeps its inputs and output (and their ``.g``) until it is called
    again: the memory a backward pass needs, like the tensors autograd saves.

    Attributes
    ----------
    parameter_names : tuple of str
        The attributes holding the module's own parameters, in order, e.g.
        ``("w", "b")``; one holding None (a layer without bias) is skipped.
        Read when asked, so a parameter replaced by another tensor is followed.
    args : tuple of Tensor
        The inputs of the last call.
    out : Tensor
        The output of the last call.
    input_needs_grad : bool
        False when the input is data, whose gradient nothing reads.
    training : bool
        True in training mode (the default), False in evaluation mode.

    Examples
    --------
    >>> class Square(Module):
    ...     def forward(self, inp):
    ...         return inp**2
    ...     def bwd(self, out, inp):
    ...         inp.g = 2 * inp * out.g
    >>> x = torch.tensor([1.0, -3.0])
    >>> layer = Square()
    >>> out = layer(x)
    >>> out.g = torch.ones(2)
    >>> layer.backward()
    >>> x.g
    tensor([ 2., -6.])

    Parts are found wherever they are held:

    >>> gen = torch.Generator().manual_seed(0)
    >>> model = Model([Lin(3, 4, generator=gen), ReLU()], MSE())
    >>> model
    Model(
      (layers): Sequential(
        (0): Lin(3, 4, bias=True)
        (1): ReLU()
      )
      (loss): MSE()
    )
    >>> list(model.named_parameters())
    ['layers.0.w', 'layers.0.b']
    >>> model.eval().layers.layers[1].training
    False
    """

    # False when the input is data (the first layer's input, e.g. the images):
    # nothing reads its gradient, so a layer may skip computing it (Lin does).
    # autograd skips it in the same way for tensors that do not require a gradient.
    input_needs_grad: bool = True

    # Training or evaluation mode, as in torch: only layers whose forward differs
    # between the two (BatchNorm1d) read it.
    training: bool = True

    # The attributes that hold this module's own parameters (not its children's).
    parameter_names: ClassVar[tuple[str, ...]] = ()

    # Attributes holding a list of modules whose items are named by their position
    # alone ("0", "1", ...), as torch's Sequential names its layers; the items of
    # any other list are named after it ("heads.0").
    numbered_parts: ClassVar[tuple[str, ...]] = ()

    def named_children(self) -> dict[str, Module]:
        """The modules this one holds directly, by attribute name, each once.

        Found in the attributes, in the order they were first assigned: a
        `Module`, or the modules in a list or tuple (``"layers.0"``, or ``"0"``
        for an attribute in ``numbered_parts``). Found when asked rather than
        recorded when assigned, so a layer replaced or appended later is seen.

        Returns
        -------
        dict of str to Module
        """
        children: dict[str, Module] = {}
        seen: set[int] = set()

        def add(name: str, value: object) -> None:
            if isinstance(value, Module) and id(value) not in seen:
                seen.add(id(value))
                children[name] = value

        for attr, value in vars(self).items():
            if isinstance(value, list | tuple):
                prefix = "" if attr in self.numbered_parts else f"{attr}."
                for i, item in enumerate(value):
                    add(f"{prefix}{i}", item)
            else:
                add(attr, value)
        return children

    def named_modules(self) -> dict[str, Module]:
        """This module (named ``""``) and every module inside it, each once.

        Depth first, in the order of `named_children`; a module reached by
        several paths (held twice) is named by the first.

        Returns
        -------
        dict of str to Module
            Dotted paths, e.g. ``"blocks.0.attn"``.
        """
        found: dict[str, Module] = {"": self}
        seen = {id(self)}

        def visit(module: Module, prefix: str) -> None:
            for name, child in module.named_children().items():
                if id(child) not in seen:
                    seen.add(id(child))
                    found[prefix + name] = child
                    visit(child, f"{prefix}{name}.")

        visit(self, "")
        return found

    def modules(self) -> list[Module]:
        """This module and every module inside it, each once (`named_modules`)."""
        return list(self.named_modules().values())

    def named_parameters(self) -> dict[str, torch.Tensor]:
        """Every parameter, by the dotted path that reaches it, each tensor once.

        A module's own parameters (its ``parameter_names``) come first, then its
        children's, in order. A tensor that two modules share (tied weights) is
        listed once, under its first name.

        Returns
        -------
        dict of str to Tensor
            E.g. ``"layers.0.w"``, ``"blocks.1.attention.w_q"``.

        Raises
        ------
        TypeError
            If an attribute named in ``parameter_names`` holds neither a tensor
            nor None.

        Examples
        --------
        >>> gen = torch.Generator().manual_seed(0)
        >>> net = Sequential(Lin(3, 4, generator=gen), ReLU(), Lin(4, 1, bias=False))
        >>> {name: tuple(p.shape) for name, p in net.named_parameters().items()}
        {'0.w': (3, 4), '0.b': (4,), '2.w': (4, 1)}
        """
        named: dict[str, torch.Tensor] = {}
        seen: set[int] = set()
        for path, module in self.named_modules().items():
            for attr in module.parameter_names:
                p = getattr(module, attr, None)
                if p is None:
                    continue
                if not isinstance(p, torch.Tensor):
                    raise TypeError(
                        f"{type(module).__name__}.{attr} is named in parameter_names "
                        f"but holds a {type(p).__name__}, not a tensor"
                    )
                if id(p) not in seen:
                    seen.add(id(p))
                    named[f"{path}.{attr}" if path else attr] = p
        return named

    def parameters(self) -> list[torch.Tensor]:
        """The tensors that training updates, each once, in `named_parameters` order.

        Examples
        --------
        >>> layer = Lin(3, 2)
        >>> [tuple(p.shape) for p in layer.parameters()]
        [(3, 2), (2,)]
        """
        return list(self.named_parameters().values())

    def train(self, mode: bool = True) -> Self:
        """Training or evaluation mode, for this module and every module inside.

        Parameters
        ----------
        mode : bool, default True
            True for training mode, False for evaluation mode.

        Returns
        -------
        Module
            The module itself.
        """
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self) -> Self:
        """Evaluation mode everywhere inside, ``train(False)``; returns the module.

        Batch norm then uses its running statistics, wherever it is nested.
        """
        return self.train(False)

    def extra_repr(self) -> str:
        """The module's own settings, shown in its ``repr``: ``"3, 2, bias=True"``."""
        return ""

    def __repr__(self) -> str:
        # As torch's: the settings, then each child on its own line, indented.
        settings = self.extra_repr()
        lines = [settings] if settings else []
        children = self.named_children()
        if not children:
            return f"{type(self).__name__}({''.join(lines)})"
        for name, child in children.items():
            lines.append(f"({name}): " + repr(child).replace("\n", "\n  "))
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        out = self.forward(*args)
        # Kept once the forward has succeeded: backward() never pairs one call's
        # inputs with another call's output.
        self.args, self.out = args, out
        return out

    # Each subclass names its own inputs, e.g. forward(self, inp); `*args: Any`
    # lets the type checker accept any such signature in place of this one.
    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The layer's output for its inputs; implemented by every subclass."""
        raise NotImplementedError

    def backward(self) -> None:
        """Fill ``.g`` from ``self.out.g`` for the inputs of the last call.

        Raises
        ------
        RuntimeError
            If the module has not been called yet, or ``self.out.g`` is not set.
        """
        self._require_forward()
        self.bwd(self.out, *self.args)

    def _require_forward(
        self, caller: str | None = None, call: str = "out = layer(x)"
    ) -> None:
        """Raise a clear error if the module has not been called on an input yet.

        ``backward()`` differentiates the last call, so it needs one. A subclass
        that overrides ``backward()`` calls this first. ``caller`` names the
        object whose ``backward()`` was called (by default, the module's class)
        and ``call`` shows how to call it.
        """
        if not hasattr(self, "out"):
            name = caller or type(self).__name__
            raise RuntimeError(
                f"{name}.backward() was called before any forward pass: call it on "
                f"an input first ({call}); backward() differentiates the last call"
            )

    def bwd(self, out: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        """Read ``out.g`` and set ``.g`` on the inputs and parameters (a subclass's)."""
        raise NotImplementedError


class Lin(Module):
    r"""The linear layer $Y = XW + b$: ``(..., n_in) -> (..., n_out)``.

    Backward (see `backprop.functional.lin_backward`), with $X$ the input
    (``inp``), $W$ = ``w``, $G$ = ``out.g`` and the batch dimensions flattened
    into rows:

    $$\frac{\partial L}{\partial X} = G W^\top, \qquad
    \frac{\partial L}{\partial W} = X^\top G, \qquad
    \frac{\partial L}{\partial b} = \mathbf{1}^\top G,$$

    where $\mathbf{1}^\top G$ sums the rows of $G$.

    With ``input_needs_grad=False`` (for a first layer, whose input is data)
    ``inp.g`` is not computed: for MNIST's 784 inputs that product costs as much
    as the forward pass.

    Parameters
    ----------
    n_in, n_out : int
        Input and output features, positive.
    bias : bool, optional
        Whether the layer has a bias ``b``.
    input_needs_grad : bool, optional
        False to skip the input's gradient (a first layer).
    generator : torch.Generator or None, optional
        For the initial weights, Kaiming: $W \sim \mathcal{N}(0, 2 / n_\text{in})$.
    dtype : torch.dtype, optional
        Floating-point dtype of the parameters.
    device : torch.device, str or None, optional
        Where the parameters live.

    Attributes
    ----------
    w : Tensor
        Shape (n_in, n_out).
    b : Tensor or None
        Shape (n_out,), starting at zeros; None without a bias.

    Raises
    ------
    ValueError
        If ``n_in`` or ``n_out`` is not a positive int or ``dtype`` is not
        floating point; in the forward, if the input does not end in ``n_in``.

    Examples
    --------
    >>> layer = Lin(3, 2, generator=torch.Generator().manual_seed(0))
    >>> x = torch.randn(4, 3)
    >>> out = layer(x)
    >>> out.g = torch.ones(4, 2)
    >>> layer.backward()
    >>> x.g.shape, layer.w.g.shape, layer.b.g.tolist()  # b.g sums over 4 rows
    (torch.Size([4, 3]), torch.Size([3, 2]), [4.0, 4.0])
    """

    parameter_names = ("w", "b")

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
        n_in = require_positive_int("n_in", n_in)
        n_out = require_positive_int("n_out", n_out)
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        self.input_needs_grad = input_needs_grad
        # Kaiming (He) initialisation: weights ~ N(0, 2 / n_in). Each output sums
        # n_in products, so its variance grows with n_in; dividing by n_in keeps it
        # fixed, and the factor 2 makes up for ReLU zeroing half of the values.
        # Activations then keep their scale through many ReLU layers instead of
        # shrinking to 0 or blowing up. Drawn on the CPU, so a seed gives the same
        # weights on every device.
        w = torch.randn(n_in, n_out, generator=generator, dtype=dtype) * math.sqrt(
            2 / n_in
        )
        self.w = w.to(device)
        self.b = torch.zeros(n_out, dtype=dtype, device=device) if bias else None

    @classmethod
    def from_tensors(
        cls,
        w: torch.Tensor,
        b: torch.Tensor | None = None,
        *,
        input_needs_grad: bool = True,
    ) -> Lin:
        """A layer whose parameters are the given tensors.

        The tensors are used as they are, not copied: training updates them in
        place. Pass clones to keep the originals (e.g. to give the same starting
        weights to a ``torch.nn.Linear``, whose ``weight`` is ``w.T``).

        Parameters
        ----------
        w : Tensor
            Weights, shape (n_in, n_out), floating point.
        b : Tensor or None, optional
            Bias, shape (n_out,), the dtype of ``w``; None for no bias.
        input_needs_grad : bool, optional
            As for `Lin`.

        Returns
        -------
        Lin
            The layer, holding ``w`` and ``b`` themselves.

        Raises
        ------
        ValueError
            If ``w`` is not a floating-point matrix, or ``b`` does not have shape
            (n_out,) and ``w``'s dtype.

        Examples
        --------
        >>> layer = Lin.from_tensors(torch.eye(2), torch.tensor([1.0, -1.0]))
        >>> layer(torch.tensor([[3.0, 4.0]]))
        tensor([[4., 3.]])
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
        layer = cls(
            n_in,
            n_out,
            bias=b is not None,
            input_needs_grad=input_needs_grad,
            generator=torch.Generator(),
            dtype=w.dtype,
            device=w.device,
        )
        layer.w, layer.b = w, b
        return layer

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return lin(inp, self.w, self.b)

    def bwd(self, out: torch.Tensor, inp: torch.Tensor) -> None:
        grad_x, grad_w, grad_b = lin_backward(
            grad_of(out), inp, self.w, self.b, need_grad_x=self.input_needs_grad
        )
        set_grad(self.w, grad_w)
        if self.input_needs_grad:
            set_grad(inp, grad_x)
        if self.b is not None:
            set_grad(self.b, grad_b)

    def extra_repr(self) -> str:
        n_in, n_out = self.w.shape
        return f"{n_in}, {n_out}, bias={self.b is not None}"


class ReLU(Module):
    r"""$\max(x, 0)$ elementwise; ``inp.g = out.g`` where $x > 0$, else 0.

    Examples
    --------
    >>> relu = ReLU()
    >>> x = torch.tensor([-1.0, 0.0, 2.0])
    >>> out = relu(x)
    >>> out.g = torch.tensor([5.0, 5.0, 5.0])
    >>> relu.backward()
    >>> out, x.g
    (tensor([0., 0., 2.]), tensor([0., 0., 5.]))
    """

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return relu(inp)

    def bwd(self, out: torch.Tensor, inp: torch.Tensor) -> None:
        set_grad(inp, relu_backward(grad_of(out), inp))


class MSE(Module):
    r"""Mean squared error, a loss: the mean of $(\text{pred} - \text{target})^2$.

    ``MSE()(pred, target)``: ``pred`` and ``target`` must have the same shape
    (any); $L$ averages over every one of their values. A loss starts the
    backward chain ($\partial L / \partial L = 1$), so ``backward()`` needs no
    upstream gradient: it sets ``pred.g`` to
    $2 (\text{pred} - \text{target}) / (\text{number of values})$. The target
    gets no gradient.

    Raises
    ------
    ValueError
        In the forward, if the shapes differ (no broadcasting).

    Examples
    --------
    >>> loss_fn = MSE()
    >>> pred = torch.tensor([1.0, 3.0])
    >>> loss_fn(pred, torch.zeros(2))
    tensor(5.)
    >>> loss_fn.backward()
    >>> pred.g
    tensor([1., 3.])
    """

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return mse(pred, target)

    def bwd(self, out: torch.Tensor, pred: torch.Tensor, target: torch.Tensor) -> None:
        set_grad(pred, mse_backward(pred, target))


class CrossEntropy(Module):
    r"""Mean cross-entropy, a loss: ``CrossEntropy()(logits, target)``.

    ``logits`` has shape (N, C), $N$ examples and $C$ classes, and ``target``
    holds the $N$ target classes $t_i$, integers of shape (N,). ``backward()``
    starts the chain, setting ``logits.g`` to
    $(\operatorname{softmax}(\text{logits}) - \operatorname{onehot}(t)) / N$.

    Raises
    ------
    ValueError
        In the forward, if the shapes or the class indices are invalid.

    Examples
    --------
    >>> loss_fn = CrossEntropy()
    >>> logits = torch.zeros(2, 4)
    >>> round(loss_fn(logits, torch.tensor([0, 3])).item(), 4)  # log 4
    1.3863
    >>> loss_fn.backward()
    >>> logits.g[0]
    tensor([-0.3750,  0.1250,  0.1250,  0.1250])
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return cross_entropy(logits, target)

    def bwd(
        self, out: torch.Tensor, logits: torch.Tensor, target: torch.Tensor
    ) -> None:
        set_grad(logits, cross_entropy_backward(logits, target))


class Sequential(Module):
    """Layers applied one after the other; itself a layer.

    Backward is the chain rule: each layer's output is the next layer's input,
    so running the layers' ``backward`` in reverse passes ``.g`` from the end
    back to the start.

    Parameters
    ----------
    *layers : Module
        The layers, in the order the forward applies them.

    Raises
    ------
    ValueError
        If a layer is not a `Module`.

    Examples
    --------
    >>> gen = torch.Generator().manual_seed(0)
    >>> net = Sequential(Lin(3, 4, generator=gen), ReLU(), Lin(4, 1, generator=gen))
    >>> x = torch.randn(5, 3)
    >>> out = net(x)
    >>> out.g = torch.ones(5, 1)
    >>> net.backward()
    >>> x.g.shape, len(net.parameters())
    (torch.Size([5, 3]), 4)
    """

    numbered_parts = ("layers",)  # named "0", "1", ... as in torch

    def __init__(self, *layers: Module) -> None:
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise ValueError(
                    f"layers[{i}] must be a Module, got {type(layer).__name__}"
                )
        self.layers = list(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def bwd(self, out: torch.Tensor, x: torch.Tensor) -> None:
        for layer in reversed(self.layers):
            layer.backward()


class Model(Module):
    """Layers and a loss: ``model(x, target)`` returns the loss.

    The lesson's ``Model``: ``backward()`` fills every ``.g``. The loss's
    backward starts the chain (it sets ``.g`` on the last layer's output), then
    the layers run backward in reverse. A `Module` itself, so ``parameters()``,
    ``train()`` and ``eval()`` reach every layer, however deeply nested.

    Parameters
    ----------
    layers : sequence of Module
        The layers, applied in order (held as a `Sequential`).
    loss : Module
        The loss, called as ``loss(prediction, target)``.

    Raises
    ------
    ValueError
        If ``loss`` or a layer is not a `Module`.

    Examples
    --------
    >>> gen = torch.Generator().manual_seed(0)
    >>> layers = [Lin(3, 4, generator=gen), ReLU(), Lin(4, 1, generator=gen)]
    >>> model = Model(layers, MSE())
    >>> x, y = torch.randn(8, 3), torch.randn(8, 1)
    >>> loss = model(x, y)
    >>> model.backward()
    >>> {name: p.g.shape for name, p in model.named_parameters().items()}
    {'layers.0.w': torch.Size([3, 4]), 'layers.0.b': torch.Size([4]),
     'layers.2.w': torch.Size([4, 1]), 'layers.2.b': torch.Size([1])}
    """

    def __init__(self, layers: Sequence[Module], loss: Module) -> None:
        if not isinstance(loss, Module):
            raise ValueError(f"loss must be a Module, got {type(loss).__name__}")
        self.layers = Sequential(*layers)
        self.loss = loss

    def forward(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(self.layers(x), target)

    def backward(self) -> None:
        """The loss's backward, then the layers' in reverse: fills every ``.g``.

        Raises
        ------
        RuntimeError
            If the model has not been called yet.
        """
        self._require_forward("Model", call="loss = model(x, target)")
        self.bwd(self.out, *self.args)

    def bwd(self, out: torch.Tensor, x: torch.Tensor, target: torch.Tensor) -> None:
        self.loss.backward()
        self.layers.backward()

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The last layer's output for ``x``, without the loss (e.g. logits)."""
        return self.layers(x)


# ---------------------------------------------------------------------------
# Part 2 layers: Embedding, BatchNorm, LayerNorm, Conv2d.
# Each is a Module as above: forward calls the functional forward, bwd reads
# out.g and sets .g on the input (not on Embedding's integer indices) and on
# every parameter, and parameter_names names them.
# ---------------------------------------------------------------------------


class Embedding(Module):
    r"""A learned lookup table: integer ``idx`` (any shape) -> ``idx.shape + (dim,)``.

    The input is integers, so it has no gradient: ``backward()`` sets only
    ``table.g``, a scatter-add in which repeated indices accumulate
    (`backprop.functional.embedding_backward`).

    Parameters
    ----------
    num : int
        Number of rows (the indices run over 0 .. num - 1).
    dim : int
        Features per row.
    generator : torch.Generator or None, optional
        For the initial table, $\mathcal{N}(0, 1)$ like ``torch.nn.Embedding``.
    dtype : torch.dtype, optional
        Floating-point dtype of the table.
    device : torch.device, str or None, optional
        Where the table lives.

    Attributes
    ----------
    table : Tensor
        Shape (num, dim).

    Raises
    ------
    ValueError
        If ``num`` or ``dim`` is not a positive int; in the forward, if an index
        is out of range.

    Examples
    --------
    >>> emb = Embedding(5, 2, generator=torch.Generator().manual_seed(0))
    >>> out = emb(torch.tensor([1, 3, 1]))
    >>> out.g = torch.ones(3, 2)
    >>> emb.backward()
    >>> emb.table.g                      # row 1 is looked up twice
    tensor([[0., 0.],
            [2., 2.],
            [0., 0.],
            [1., 1.],
            [0., 0.]])
    """

    input_needs_grad = False  # indices are not differentiable
    parameter_names = ("table",)

    def __init__(
        self,
        num: int,
        dim: int,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        num = require_positive_int("num", num)
        dim = require_positive_int("dim", dim)
        self.table = torch.randn(num, dim, generator=generator, dtype=dtype).to(device)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return embedding(idx, self.table)

    def bwd(self, out: torch.Tensor, idx: torch.Tensor) -> None:
        set_grad(self.table, embedding_backward(grad_of(out), idx, self.table))

    def extra_repr(self) -> str:
        num, dim = self.table.shape
        return f"{num}, {dim}"


class BatchNorm1d(Module):
    r"""Batch normalisation of ``(N, c)`` or ``(N, c, L)`` inputs, per channel.

    In training mode (the default, ``train()``) every call normalises with the
    mean $\mu$ and biased variance $\sigma^2$ of its batch, the $m = N$ (or
    $N L$) values of each channel, and updates the running statistics in place,
    with $\alpha$ = ``momentum``:

    $$\hat\mu \leftarrow (1 - \alpha) \hat\mu + \alpha \mu, \qquad
    \hat\sigma^2 \leftarrow (1 - \alpha) \hat\sigma^2
    + \alpha \frac{m}{m - 1} \sigma^2.$$

    The running variance is the *unbiased* one (divided by $m - 1$), as in
    ``torch.nn.BatchNorm1d``, even though the batch is normalised with the biased
    one. In evaluation mode (``eval()``) the running statistics are constants,

    $$y = \gamma \frac{x - \hat\mu}{\sqrt{\hat\sigma^2 + \epsilon}} + \beta,$$

    an affine map per channel, so one example's output no longer depends on the
    rest of its batch, a batch of one works, and the backward has no batch
    coupling: ``inp.g`` is ``out.g`` times $\gamma / \sqrt{\hat\sigma^2 + \epsilon}$.
    ``backward()`` differentiates the last call in the mode it ran in, even if
    the mode has changed since.

    Parameters
    ----------
    c : int
        Number of channels (features), the size of axis 1 of the input.
    eps : float
        Added to the variance before the square root.
    momentum : float
        Weight of the current batch in the running statistics, in [0, 1].
    dtype, device
        Of the parameters and running statistics.

    Attributes
    ----------
    gamma, beta : Tensor
        Parameters, shape (c,), starting at ones and zeros.
    running_mean, running_var : Tensor
        Shape (c,), starting at zeros and ones; not parameters (no gradient).
    training : bool
        True in training mode.

    Raises
    ------
    ValueError
        For a non-positive ``c``, a ``momentum`` outside [0, 1], an input that is
        not (N, c) or (N, c, L) with ``c`` channels, or, in training mode, one
        value per channel.

    Examples
    --------
    >>> bn = BatchNorm1d(3)
    >>> _ = bn(torch.randn(8, 3) * 2 + 5)   # training: batch statistics
    >>> bn.running_mean.shape
    torch.Size([3])
    >>> bn.eval()(torch.randn(1, 3)).shape  # evaluation: a batch of one is fine
    torch.Size([1, 3])
    """

    # running_mean and running_var are updated by the forward, not by training.
    parameter_names = ("gamma", "beta")

    def __init__(
        self,
        c: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        c = require_positive_int("c", c)
        if (
            isinstance(momentum, bool)
            or not isinstance(momentum, int | float)
            or not (0 <= momentum <= 1)
        ):
            raise ValueError(f"momentum must be a number in [0, 1], got {momentum!r}")
        self.eps, self.momentum = eps, float(momentum)
        self.gamma = torch.ones(c, dtype=dtype, device=device)
        self.beta = torch.zeros(c, dtype=dtype, device=device)
        self.running_mean = torch.zeros(c, dtype=dtype, device=device)
        self.running_var = torch.ones(c, dtype=dtype, device=device)

    def _eval_scale_shift(self, inp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """gamma / sigma and the running mean, shaped to broadcast over ``inp``."""
        shape = (1, -1) + (1,) * (inp.ndim - 2)
        inv_sigma = torch.rsqrt(self.running_var + self.eps)
        return (self.gamma * inv_sigma).reshape(shape), self.running_mean.reshape(shape)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        if inp.ndim not in (2, 3):
            raise ValueError(
                "BatchNorm1d expects inp of shape (n, c) or (n, c, L), "
                f"got shape {shape_str(inp)}"
            )
        require_float("inp", inp)
        require_same_dtype(inp=inp, gamma=self.gamma)
        if inp.shape[1] != self.gamma.shape[0]:
            raise ValueError(
                f"inp has {inp.shape[1]} channels (shape {shape_str(inp)}) but "
                f"BatchNorm1d has {self.gamma.shape[0]}"
            )
        # backward() differentiates this forward even if the mode changes in between
        # (bn.eval() before bn.backward()): record the mode, eps and, in evaluation,
        # the statistics this forward uses.
        self.saved_training, self.saved_eps = self.training, self.eps
        if not self.training:
            scale, mean = self._eval_scale_shift(inp)
            inv_sigma = torch.rsqrt(self.running_var + self.eps).reshape(mean.shape)
            # A copy of the mean: a call in training mode updates it in place.
            self.saved_stats = scale, mean.clone(), inv_sigma
            return scale * (inp - mean) + self.beta.reshape(mean.shape)
        out = batchnorm(inp, self.gamma, self.beta, self.eps)  # checks the shapes
        axes = (0, *range(2, inp.ndim))
        m = inp.numel() // inp.shape[1]
        mean = inp.mean(dim=axes)
        unbiased_var = ((inp - mean.reshape(1, -1, *([1] * (inp.ndim - 2)))) ** 2).sum(
            dim=axes
        ) / (m - 1)
        # In place, like torch's buffers: whoever holds these tensors sees the update.
        self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
        self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased_var)
        return out

    def bwd(self, out: torch.Tensor, inp: torch.Tensor) -> None:
        if self.saved_training:  # the forward used the batch's statistics
            grads = batchnorm_backward(
                grad_of(out), inp, self.gamma, self.beta, self.saved_eps
            )
            for t, g in zip((inp, self.gamma, self.beta), grads, strict=True):
                set_grad(t, g)
            return
        # Evaluation: mean and sigma are constants, y = scale * (x - mean) + beta per
        # channel. Every value's gradient is its own out.g times its channel's scale.
        scale, mean, inv_sigma = self.saved_stats
        x_hat = (inp - mean) * inv_sigma
        axes = (0, *range(2, inp.ndim))
        grad_out = grad_of(out)
        set_grad(inp, grad_out * scale)
        set_grad(self.gamma, (grad_out * x_hat).sum(dim=axes))
        set_grad(self.beta, grad_out.sum(dim=axes))

    def extra_repr(self) -> str:
        return f"{self.gamma.shape[0]}"


class LayerNorm(Module):
    r"""Layer normalisation over the last dimension: ``(..., d) -> (..., d)``.

    $y = \gamma (x - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta$ with $\mu$ and
    $\sigma^2$ the mean and biased variance of each example's ``d`` features.
    Each example is normalised with its own statistics, so unlike batch norm it
    behaves the same in training and at inference.

    Parameters
    ----------
    d : int
        Features, the size of the last dimension.
    eps : float, optional
        Added to the variance before the square root.
    dtype : torch.dtype, optional
        Dtype of the parameters.
    device : torch.device, str or None, optional
        Where the parameters live.
    intermediates : {"recompute", "keep"}, default "recompute"
        Whether the backward computes each vector's mean and $1/\sigma$ again
        from the input, or reads them as the forward kept them (``saved``; two
        numbers per vector). The gradients are the same.

    Attributes
    ----------
    gamma, beta : Tensor
        Parameters, shape (d,), starting at ones and zeros.

    Raises
    ------
    ValueError
        If ``d`` is not a positive int or ``intermediates`` is neither value; in
        the forward, if the input does not end in ``d``.

    Examples
    --------
    >>> norm = LayerNorm(3)
    >>> x = torch.tensor([[1.0, 2.0, 3.0]])
    >>> out = norm(x)
    >>> out.g = torch.ones(1, 3)
    >>> norm.backward()
    >>> norm.beta.g, norm.gamma.g.round(decimals=4)  # gamma.g: the normalised x
    (tensor([1., 1., 1.]), tensor([-1.2247,  0.0000,  1.2247]))
    """

    parameter_names = ("gamma", "beta")

    def __init__(
        self,
        d: int,
        eps: float = 1e-5,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        intermediates: str = "recompute",
    ) -> None:
        d = require_positive_int("d", d)
        self.eps = eps
        self.intermediates = _intermediates(intermediates)
        self.gamma = torch.ones(d, dtype=dtype, device=device)
        self.beta = torch.zeros(d, dtype=dtype, device=device)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        if self.intermediates == "recompute":
            return layernorm(inp, self.gamma, self.beta, self.eps)
        out, self.saved = _layernorm_keeping_stats(inp, self.gamma, self.beta, self.eps)
        return out

    def bwd(self, out: torch.Tensor, inp: torch.Tensor) -> None:
        stats = self.saved if self.intermediates == "keep" else None
        grads = layernorm_backward(
            grad_of(out), inp, self.gamma, self.beta, self.eps, stats=stats
        )
        for t, g in zip((inp, self.gamma, self.beta), grads, strict=True):
            set_grad(t, g)

    def extra_repr(self) -> str:
        return f"{self.gamma.shape[0]}"


class Conv2d(Module):
    r"""2-D convolution: ``(N, c_in, h, w) -> (N, c_out, h_out, w_out)``.

    The forward and backward are `backprop.functional.conv2d` and
    `backprop.functional.conv2d_backward`.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels, positive.
    kernel_size : int or (int, int)
        (kh, kw), or one int for a square kernel.
    stride, padding : int or (int, int), optional
        As for `backprop.functional.conv2d`: one int or (vertical, horizontal).
    bias : bool, optional
        Whether the layer has a bias ``b``.
    generator : torch.Generator or None, optional
        For the initial weights, Kaiming as in `Lin` with fan-in
        $C_\text{in} k_h k_w$ (each output sums that many products):
        $W \sim \mathcal{N}(0, 2 / (C_\text{in} k_h k_w))$.
    dtype : torch.dtype, optional
        Floating-point dtype of the parameters.
    device : torch.device, str or None, optional
        Where the parameters live.

    Attributes
    ----------
    w : Tensor
        Shape (c_out, c_in, kh, kw).
    b : Tensor or None
        Shape (c_out,), starting at zeros; None without a bias.

    Raises
    ------
    ValueError
        If a size is not a positive int or ``kernel_size`` is not an int or a
        pair; in the forward, as `backprop.functional.conv2d`.

    Examples
    --------
    >>> conv = Conv2d(3, 8, 3, padding=1, generator=torch.Generator().manual_seed(0))
    >>> x = torch.randn(2, 3, 5, 5)
    >>> out = conv(x)
    >>> out.g = torch.ones_like(out)
    >>> conv.backward()
    >>> out.shape, x.g.shape, conv.w.g.shape
    (torch.Size([2, 8, 5, 5]), torch.Size([2, 3, 5, 5]), torch.Size([8, 3, 3, 3]))
    """

    parameter_names = ("w", "b")

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
        c_in = require_positive_int("c_in", c_in)
        c_out = require_positive_int("c_out", c_out)
        is_int = as_int(kernel_size) is not None  # numpy's integers too, not a bool
        kernel = (kernel_size, kernel_size) if is_int else kernel_size
        if not (isinstance(kernel, tuple | list) and len(kernel) == 2):
            raise ValueError(
                f"kernel_size must be an int or a pair of ints, got {kernel_size!r}"
            )
        kh, kw = (
            require_positive_int("kernel height", kernel[0]),
            require_positive_int("kernel width", kernel[1]),
        )
        # Checked now rather than at the first call; kept as given, for the repr.
        require_int_pair("stride", stride, 1)
        require_int_pair("padding", padding, 0)
        self.stride, self.padding = stride, padding
        fan_in = c_in * kh * kw
        w = torch.randn(c_out, c_in, kh, kw, generator=generator, dtype=dtype)
        self.w = (w * math.sqrt(2 / fan_in)).to(device)
        self.b = torch.zeros(c_out, dtype=dtype, device=device) if bias else None

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return conv2d(inp, self.w, self.b, self.stride, self.padding)

    def bwd(self, out: torch.Tensor, inp: torch.Tensor) -> None:
        grad_x, grad_w, grad_b = conv2d_backward(
            grad_of(out), inp, self.w, self.b, self.stride, self.padding
        )
        set_grad(inp, grad_x)
        set_grad(self.w, grad_w)
        if self.b is not None:
            set_grad(self.b, grad_b)

    def extra_repr(self) -> str:
        c_out, c_in, kh, kw = self.w.shape
        return (
            f"{c_in}, {c_out}, kernel_size=({kh}, {kw}), "
            f"stride={self.stride}, padding={self.padding}, bias={self.b is not None})"
        )


class MultiHeadAttention(Module):
    """Multi-head self-attention on ``(N, T, d_model)``, with weights used as ``x @ w``.

    With ``n_heads`` heads of ``d = d_model / n_heads`` features each ($d$, a
    head's dimension, as on the notation page)::

        q, k, v = x @ w_q + b_q,  x @ w_k + b_k,  x @ w_v + b_v     (N, T, d_model)
        split:  (N, T, d_model) -> (N, T, n_heads, d) -> (N, n_heads, T, d)
        heads = attention(q, k, v, mask) per head (batched)       (N, n_heads, T, d)
        merge:  the reverse transpose and reshape                     (N, T, d_model)
        out   = merged @ w_o + b_o                                    (N, T, d_model)

    Backward runs the same steps in reverse: ``lin_backward`` through the output
    projection; splitting the gradient into heads (the backward of a reshape and a
    transpose is the reverse reshape and transpose); ``attention_backward`` per
    head; merging; and ``lin_backward`` through each projection. ``x`` feeds q, k
    and v, so its gradient is the sum of three, with ``grad_q`` the gradient of
    the loss with respect to q (its heads merged back to (N, T, d_model)), and
    likewise ``grad_k`` and ``grad_v``::

        x.g = grad_q @ w_qᵀ + grad_k @ w_kᵀ + grad_v @ w_vᵀ

    Equal to ``torch.nn.MultiheadAttention(d_model, n_heads, batch_first=True)``
    with ``in_proj_weight = cat([w_q.T, w_k.T, w_v.T])``, ``in_proj_bias =
    cat([b_q, b_k, b_v])``, ``out_proj.weight = w_o.T`` and ``out_proj.bias = b_o``
    (torch stores weights as (out, in)); ``causal=True`` is its boolean
    ``attn_mask`` that is True above the diagonal (torch marks what is *forbidden*,
    `backprop.attention.causal_mask` what is allowed). As torch's, a sequence of
    no positions (T = 0) gives an empty output and zero parameter gradients.

    Parameters
    ----------
    d_model : int
        Features per position; a multiple of ``n_heads``.
    n_heads : int
        Number of heads.
    causal : bool
        If True, position i attends to positions 0..i only.
    dtype : torch.dtype
        Floating-point dtype of the parameters.
    generator : torch.Generator or None
        For the initial weights, drawn from N(0, 1 / d_model); biases start at 0.
    intermediates : {"recompute", "keep"}, default "recompute"
        Whether ``attention_backward`` computes the scores and their softmax $P$
        again from q and k, or reads $P$ as the forward kept it (in ``saved``,
        shape (N, n_heads, T, T)). The gradients are the same.

    Attributes
    ----------
    w_q, w_k, w_v, w_o : Tensor
        Shape (d_model, d_model), used as ``x @ w``.
    b_q, b_k, b_v, b_o : Tensor
        Shape (d_model,).

    Raises
    ------
    ValueError
        If ``d_model`` or ``n_heads`` is not a positive int, ``d_model`` is not a
        multiple of ``n_heads``, ``intermediates`` is neither value, or the input
        is not (N, T, d_model) in the parameters' dtype.

    Examples
    --------
    >>> gen = torch.Generator().manual_seed(0)
    >>> mha = MultiHeadAttention(6, 2, causal=True, generator=gen)
    >>> x = torch.randn(4, 5, 6)
    >>> out = mha(x)
    >>> out.shape
    torch.Size([4, 5, 6])
    >>> out.g = torch.randn_like(out)
    >>> mha.backward()
    >>> x.g.shape, mha.w_q.g.shape, mha.b_o.g.shape
    (torch.Size([4, 5, 6]), torch.Size([6, 6]), torch.Size([6]))
    """

    parameter_names = ("w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o")

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        causal: bool = False,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
        intermediates: str = "recompute",
    ) -> None:
        self.intermediates = _intermediates(intermediates)
        d_model = require_positive_int("d_model", d_model)
        n_heads = require_positive_int("n_heads", n_heads)
        if d_model % n_heads != 0:
            raise ValueError(
                "d_model must be a multiple of n_heads (each head gets "
                f"d_model / n_heads features), got d_model={d_model} "
                f"and n_heads={n_heads}"
            )
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        self.n_heads, self.causal = n_heads, bool(causal)
        std = 1 / math.sqrt(d_model)  # projections keep the inputs' scale

        def weight() -> torch.Tensor:
            return torch.randn(d_model, d_model, generator=generator, dtype=dtype) * std

        self.w_q, self.w_k, self.w_v, self.w_o = weight(), weight(), weight(), weight()
        self.b_q, self.b_k, self.b_v, self.b_o = (
            torch.zeros(d_model, dtype=dtype) for _ in range(4)
        )

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        """(N, T, d_model) -> (N, h, T, d_head): one slice of features per head."""
        n, length, d_model = t.shape
        d_head = d_model // self.n_heads
        return t.reshape(n, length, self.n_heads, d_head).transpose(1, 2)

    @staticmethod
    def _merge(t: torch.Tensor) -> torch.Tensor:
        """(N, h, T, d_head) -> (N, T, d_model): the inverse of ``_split``."""
        n, heads, length, d_head = t.shape
        return t.transpose(1, 2).reshape(n, length, heads * d_head)

    def _mask(self, length: int, device: torch.device) -> torch.Tensor | None:
        return causal_mask(length, device=device) if self.causal else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        require_float("x", x)
        require_ndim("x", x, 3)
        d_model = self.w_q.shape[0]
        if x.shape[-1] != d_model:
            raise ValueError(
                f"x has {x.shape[-1]} features (shape {shape_str(x)}) but "
                f"MultiHeadAttention has d_model={d_model}; x must be (N, T, {d_model})"
            )
        require_same_dtype(x=x, w_q=self.w_q)
        q = self._split(lin(x, self.w_q, self.b_q))
        k = self._split(lin(x, self.w_k, self.b_k))
        v = self._split(lin(x, self.w_v, self.b_v))
        length = x.shape[1]
        # The mask of this call: backward() uses it even if self.causal changes.
        self.saved_mask = self._mask(length, x.device) if length else None
        # T = 0: no position attends and none is attended to, so the heads are
        # empty (N, h, 0, d_head), as torch's output is empty.
        probs = None
        if not length:
            heads = v
        elif self.intermediates == "keep":
            _check_attention_inputs(q, k, v, self.saved_mask)  # as attention() does
            probs = _attention_probs(q, k, self.saved_mask)
            heads = probs @ v
        else:
            heads = attention(q, k, v, self.saved_mask)
        merged = self._merge(heads)
        # Saved for the backward, as autograd saves what a backward formula reads.
        self.saved = q, k, v, merged, probs
        return lin(merged, self.w_o, self.b_o)

    def bwd(self, out: torch.Tensor, x: torch.Tensor) -> None:
        q, k, v, merged, probs = self.saved
        grad_merged, grad_w_o, grad_b_o = lin_backward(
            grad_of(out), merged, self.w_o, self.b_o
        )
        set_grad(self.w_o, grad_w_o)
        set_grad(self.b_o, grad_b_o)
        # lin_backward computes grad_x unless told not to (need_grad_x=False).
        assert grad_merged is not None
        grad_heads = self._split(grad_merged)  # the backward of merge is split
        if x.shape[1]:
            grad_q, grad_k, grad_v = attention_backward(
                grad_heads, q, k, v, self.saved_mask, probs=probs
            )
        else:  # T = 0: every gradient is empty
            grad_q, grad_k, grad_v = grad_heads, grad_heads, grad_heads
        grad_x = torch.zeros_like(x)
        for grad_heads, w, b in (
            (grad_q, self.w_q, self.b_q),
            (grad_k, self.w_k, self.b_k),
            (grad_v, self.w_v, self.b_v),
        ):
            grad_in, grad_w, grad_b = lin_backward(self._merge(grad_heads), x, w, b)
            assert grad_in is not None
            grad_x += grad_in  # x is used three times: the gradients add up
            set_grad(w, grad_w)
            set_grad(b, grad_b)
        set_grad(x, grad_x)

    def extra_repr(self) -> str:
        d_model = self.w_q.shape[0]
        return f"{d_model}, {self.n_heads}, causal={self.causal}"
