"""Thumbnail for post 5: the block-diagonal Jacobian of a linear layer, I ⊗ Wᵀ."""

from pathlib import Path

import torch

from backprop import plots

w_t = torch.tensor([[-0.9, -1.1, -0.6, -0.9], [1.1, 0.1, 0.4, -1.5]])  # Wᵀ, (n_out, n_in) = (2, 4)
jacobian_2d = torch.kron(torch.eye(3), w_t)  # (N·n_out, N·n_in) = (6, 12)

fig, ax = plots.subplots(height=3.2)  # save_thumbnail sets the final size
plots.show_matrix(ax, jacobian_2d, title="∂Y/∂X for Y = X·W:  I ⊗ Wᵀ", annotate=False)
for block in (1, 2):
    ax.axvline(block * 4 - 0.5, color=plots.INK, linewidth=1.5)
    ax.axhline(block * 2 - 0.5, color=plots.INK, linewidth=1.5)
ax.set_aspect("auto")
ax.set_xticks([])
ax.set_yticks([])
plots.save_thumbnail(fig, Path(__file__).with_name("thumbnail.png"))
