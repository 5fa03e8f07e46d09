"""Thumbnail for post 4: a bias vector stretched over the rows of a batch."""

from pathlib import Path

import torch
from matplotlib.patches import Rectangle

from backprop import plots

xw = torch.tensor([[1.5, -0.3, -2.2], [0.6, -1.1, -1.4], [0.4, 0.8, -0.7], [-0.4, -0.6, 0.2]])
b = torch.tensor([1.0, -2.0, 0.5])

# Five columns: three matrices with a narrow column for "+" and "=" between them.
fig, axes = plots.subplots(1, 5, height=3.2, gridspec_kw={"width_ratios": [3, 0.7, 3, 0.7, 3]})
left, plus, middle, equals, right = axes
plots.show_matrix(left, xw, title="X·W  (N, n_out)", annotate=False)
plots.show_matrix(middle, b.expand(4, 3), title="b  (n_out,)", annotate=False)
for i in range(1, 4):  # the stretched rows are reused copies of the bias
    middle.add_patch(Rectangle((-0.5, i - 0.5), 3, 1, facecolor="white", alpha=0.6, edgecolor="none"))
middle.add_patch(Rectangle((-0.5, -0.5), 3, 1, fill=False, edgecolor=plots.INK, linewidth=2.5))
plots.show_matrix(right, xw + b, title="X·W + b", annotate=False)
for ax in (left, middle, right):
    ax.title.set_fontsize(10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("auto")
for ax, sign in ((plus, "+"), (equals, "=")):
    ax.axis("off")
    ax.text(0.5, 0.5, sign, fontsize=20, ha="center", va="center", transform=ax.transAxes)
plots.save_thumbnail(fig, Path(__file__).with_name("thumbnail.png"))
