"""Thumbnail for post 11: a 5 x 5 image and the four overlapping windows of a 3 x 3 kernel, stride 2."""

from pathlib import Path

import matplotlib.patches
import numpy as np

from backprop import plots

fig, ax = plots.subplots(height=3.2)
ax.imshow(np.zeros((5, 5)), cmap="Greys", vmin=0, vmax=1)
for (r, c), value in np.ndenumerate(np.arange(25).reshape(5, 5)):
    ax.text(c, r, str(value), ha="center", va="center", fontsize=9)
colours = [plots.PALETTE[c] for c in ("blue", "orange", "green", "vermillion")]
for window, (colour, style) in enumerate(zip(colours, plots.LINESTYLES)):
    top, left, inset = 2 * (window // 2), 2 * (window % 2), 0.08 * (window + 1)
    ax.add_patch(matplotlib.patches.Rectangle(
        (left - 0.5 + inset, top - 0.5 + inset), 3 - 2 * inset, 3 - 2 * inset,
        fill=False, edgecolor=colour, linestyle=style, linewidth=2.5))
ax.set_xticks([])
ax.set_yticks([])
ax.grid(False)
for spine in ax.spines.values():
    spine.set_visible(False)
ax.set_title("im2col: a 3 × 3 kernel, stride 2", fontsize=10)
plots.save_thumbnail(fig, Path(__file__).with_name("thumbnail.png"))
