"""Backpropagation from scratch.

Every layer's forward pass sits next to its hand-derived backward pass; the tests
check each backward against ``torch.autograd`` and central finite differences.
The library itself never calls autograd.

Modules, one per concept:

- :mod:`backprop.functional` — every forward and backward as a pure function
- :mod:`backprop.broadcasting` — ``unbroadcast``, the backward of broadcasting
- :mod:`backprop.jacobian` — explicit Jacobians and vector–Jacobian products
- :mod:`backprop.gradcheck` — finite differences and gradient checks
- :mod:`backprop.modules` — ``Module`` classes with ``.g`` gradients, SGD
- :mod:`backprop.data` — handwritten digits, offline
- :mod:`backprop.plots` — the figures' shared style
"""

__version__ = "0.1.0"
