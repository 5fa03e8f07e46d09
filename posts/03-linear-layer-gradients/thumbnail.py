"""Draw the listing thumbnail of post 03: the shapes of G @ W.T = dL/dX and X.T @ G = dL/dW.

Run from anywhere: ``python posts/03-linear-layer-gradients/thumbnail.py`` writes ``thumbnail.png``
next to this file.
"""

from pathlib import Path

from matplotlib.patches import Rectangle

from backprop.plots import PALETTE, save_thumbnail, subplots

N, n_in, n_out = 5, 4, 3
G_COLOUR, W_COLOUR, X_COLOUR = PALETTE["orange"], PALETTE["blue"], PALETTE["green"]


def grid(ax, left, top, rows, cols, colour, name):
    for r in range(rows):
        for c in range(cols):
            ax.add_patch(Rectangle((left + c, top - r - 1), 1, 1, fc=colour, ec="white", lw=1.2))
    ax.text(left + cols / 2, top + 0.3, name, ha="center", va="bottom", fontsize=12)
    return left + cols


def product(ax, top, factors, result):
    middle = top - max(rows for rows, *_ in [*factors, result]) / 2
    x = 0.0
    for k, (rows, cols, colour, name) in enumerate(factors):
        x = grid(ax, x, top, rows, cols, colour, name)
        ax.text(x + 0.6, middle, "@" if k == 0 else "=", ha="center", va="center", fontsize=15)
        x += 1.2
    grid(ax, x, top, *result)


fig, ax = subplots()
product(ax, 12.0, [(N, n_out, G_COLOUR, "$G$"), (n_out, n_in, W_COLOUR, r"$W^\top$")],
        (N, n_in, X_COLOUR, r"$\partial L/\partial X$"))
product(ax, 5.2, [(n_in, N, X_COLOUR, r"$X^\top$"), (N, n_out, G_COLOUR, "$G$")],
        (n_in, n_out, W_COLOUR, r"$\partial L/\partial W$"))
ax.set_xlim(-0.3, 13.6)
ax.set_ylim(-0.3, 13.4)
ax.set_aspect("equal")
ax.axis("off")
save_thumbnail(fig, Path(__file__).with_name("thumbnail.png"))
