"""Draw the listing thumbnail: the softmax Jacobian diag(p) - p p^T for four logits."""

from pathlib import Path

import torch

from backprop import plots
from backprop.functional import softmax

z = torch.tensor([2.0, 1.0, 0.1, -1.0], dtype=torch.float64)
p = softmax(z)
jacobian = torch.diag(p) - torch.outer(p, p)

fig, ax = plots.subplots(height=3.2)  # save_thumbnail sets the final size
plots.show_matrix(ax, jacobian, title=r"softmax Jacobian  diag(p) $-$ p p$^\top$")
ax.set_xticks(range(4), [f"$z_{c + 1}$" for c in range(4)])
ax.set_yticks(range(4), [f"$p_{c + 1}$" for c in range(4)])
plots.save_thumbnail(fig, Path(__file__).with_name("thumbnail.png"))
