"""Draw the listing thumbnail: the softmax Jacobian diag(s) - s s^T for four logits."""

from pathlib import Path

import torch

from backprop import plots
from backprop.functional import softmax

z = torch.tensor([2.0, 1.0, 0.1, -1.0], dtype=torch.float64)
s = softmax(z)
jacobian = torch.diag(s) - torch.outer(s, s)

fig, ax = plots.subplots(figsize=(4.8, 3.2))
plots.show_matrix(ax, jacobian, title=r"softmax Jacobian  diag(s) $-$ s s$^\top$")
ax.set_xticks(range(4), [f"$z_{j + 1}$" for j in range(4)])
ax.set_yticks(range(4), [f"$s_{i + 1}$" for i in range(4)])
plots.save_thumbnail(fig, Path(__file__).with_name("thumbnail.png"))
