"""Every forward and its hand-written backward, as pure functions.

Naming convention:

- ``foo(inputs...)`` is a forward; ``foo_backward`` sits next to it in the same module.
- Every backward takes the upstream gradient first, then the forward's inputs,
  and returns the gradients of those inputs in the same order
  (e.g. ``lin_backward(grad_out, x, w, b) -> (grad_x, grad_w, grad_b)``; a
  single gradient is returned bare, not in a tuple).
- Losses' backwards take the forward's inputs and return the gradient of the
  mean loss with respect to the prediction (e.g. ``mse_backward(pred, target)``):
  a loss is the end of the chain, so its upstream gradient is 1.
- Shapes and dtypes are checked before any arithmetic; mistakes raise ``ValueError``.

Each function is defined in the module of its concept (`backprop.linear`,
`backprop.activations`, `backprop.softmax`, `backprop.losses`,
`backprop.broadcasting`, `backprop.embedding`, `backprop.normalization`,
`backprop.conv`, `backprop.attention`) and re-exported here, the one place to
import them from.
"""

from backprop.activations import gelu, gelu_backward, gelu_inner, relu, relu_backward
from backprop.attention import attention, attention_backward, attention_probs
from backprop.broadcasting import unbroadcast
from backprop.conv import conv2d, conv2d_backward
from backprop.embedding import embedding, embedding_backward
from backprop.linear import lin, lin_backward
from backprop.losses import cross_entropy, cross_entropy_backward, mse, mse_backward
from backprop.normalization import (
    batchnorm,
    batchnorm_backward,
    layernorm,
    layernorm_backward,
    layernorm_with_stats,
)
from backprop.softmax import (
    log_softmax,
    log_softmax_backward,
    logsumexp,
    logsumexp_backward,
    softmax,
    softmax_backward,
)

__all__ = [
    "attention",
    "attention_backward",
    "attention_probs",
    "batchnorm",
    "batchnorm_backward",
    "conv2d",
    "conv2d_backward",
    "cross_entropy",
    "cross_entropy_backward",
    "embedding",
    "embedding_backward",
    "gelu",
    "gelu_backward",
    "gelu_inner",
    "layernorm",
    "layernorm_backward",
    "layernorm_with_stats",
    "lin",
    "lin_backward",
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "logsumexp_backward",
    "mse",
    "mse_backward",
    "relu",
    "relu_backward",
    "softmax",
    "softmax_backward",
    "unbroadcast",
]
