"""Backpropagation from scratch.

Every layer's forward pass sits next to its hand-derived backward pass; the tests
check each backward against ``torch.autograd`` and central finite differences.
The layers never call autograd: only :mod:`backprop.gradcheck` and
:mod:`backprop.exercises` (which use it as the reference) and :mod:`backprop.bench`
(which times against it) do.

Modules, one per concept:

- :mod:`backprop.functional` — every forward and backward as a pure function
- :mod:`backprop.broadcasting` — ``unbroadcast``, the backward of broadcasting
- :mod:`backprop.jacobian` — explicit Jacobians and vector–Jacobian products
- :mod:`backprop.gradcheck` — finite differences and gradient checks
- :mod:`backprop.exercises` — the grader of the posts' exercises
- :mod:`backprop.modules` — ``Module`` classes with ``.g`` gradients, SGD
- :mod:`backprop.data` — handwritten digits, offline
- :mod:`backprop.plots` — the figures' shared style
- :mod:`backprop.bench` — ``python -m backprop.bench``: our backward timed against autograd's
"""

__version__ = "0.1.0"
