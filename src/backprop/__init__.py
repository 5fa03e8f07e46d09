"""Backpropagation from scratch.

Every layer's forward pass sits next to its hand-derived backward pass; the tests
check each backward against ``torch.autograd`` and central finite differences.
The layers never call autograd: only `backprop.gradcheck` and
`backprop.exercises` (which use it as the reference) and `backprop.bench` (which
times against it) do; `backprop.autograd` is our own, built from the hand-derived
backwards.

Modules, one per concept:

- `backprop.functional` — every forward and backward as a pure function
- `backprop.broadcasting` — ``unbroadcast``, the backward of broadcasting
- `backprop.jacobian` — explicit Jacobians and vector–Jacobian products
- `backprop.gradcheck` — finite differences and gradient checks
- `backprop.exercises` — the grader of the posts' exercises
- `backprop.autograd` — a small reverse-mode autograd on a tape
- `backprop.modules` — ``Module`` classes with ``.g`` gradients
- `backprop.optim` — ``sgd_step`` and ``AdamW``, on the ``.g`` gradients
- `backprop.transformer` — a small GPT from those modules
- `backprop.data` — handwritten digits, offline
- `backprop.plots` — the figures' shared style
- `backprop.bench` — ``python -m backprop.bench``: our backward timed against autograd's

The distribution is called ``backprop-from-scratch`` (``pip install
backprop-from-scratch``); the import name is ``backprop``.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
