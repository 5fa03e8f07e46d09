"""Draw the listing thumbnail of post 02: secant lines of x² closing in on the tangent at x = 1.

Run from anywhere: ``python posts/02-chain-rule/thumbnail.py`` writes ``thumbnail.png`` next to this file.
"""

from pathlib import Path

import torch

from backprop.plots import INK, LINESTYLES, PALETTE, save_thumbnail, subplots

x0 = 1.0
xs = torch.linspace(-0.5, 2.5, 200)

fig, ax = subplots()
ax.plot(xs, xs**2, color=INK, lw=3, label="$x^2$")
ax.plot(xs, x0**2 + 2 * x0 * (xs - x0), color=PALETTE["vermillion"], lw=2.5, label="tangent, slope 2")
for h, colour, style in [(1.0, PALETTE["blue"], LINESTYLES[1]), (0.5, PALETTE["green"], LINESTYLES[2]),
                         (0.25, PALETTE["purple"], LINESTYLES[3])]:
    slope = ((x0 + h) ** 2 - x0**2) / h
    ax.plot(xs, x0**2 + slope * (xs - x0), color=colour, ls=style, lw=2, label=f"secant, slope {slope:g}")
    ax.plot([x0 + h], [(x0 + h) ** 2], "o", color=colour, ms=6)
ax.plot([x0], [x0**2], "o", color=INK, ms=8)
ax.set_xlim(-0.5, 2.5)
ax.set_ylim(-1.0, 5.0)
ax.set_xlabel("x")
ax.set_ylabel("f(x)")
ax.legend(loc="upper left", fontsize=9)
save_thumbnail(fig, Path(__file__).with_name("thumbnail.png"))
