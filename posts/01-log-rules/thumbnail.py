"""Draw the listing thumbnail of post 01: a float32 product of probabilities underflows, a sum of logs does not.

Run from anywhere: ``python posts/01-log-rules/thumbnail.py`` writes ``thumbnail.png`` next to this file.
"""

import math
from pathlib import Path

import torch

from backprop.plots import INK, LINESTYLES, PALETTE, save_thumbnail, subplots

torch.manual_seed(0)
p = torch.empty(150).uniform_(0.05, 0.95)
n = torch.arange(1, p.numel() + 1)
sum_of_logs = p.double().log().cumsum(0)
running = p.cumprod(0)  # float32
alive = running > 0
last = int(alive.sum())

fig, ax = subplots()
ax.plot(n, sum_of_logs, color=PALETTE["blue"], lw=7, alpha=0.4, solid_capstyle="butt", label="sum of logs")
ax.plot(n[alive], running[alive].double().log(), color=PALETTE["vermillion"], ls=LINESTYLES[1], lw=2.2,
        label="log of the product")
ax.plot(n[last], sum_of_logs[last], "x", color=PALETTE["vermillion"], ms=12, mew=3)
floor = math.log(torch.finfo(torch.float32).smallest_normal * torch.finfo(torch.float32).eps)
ax.axhline(floor, color=INK, ls=LINESTYLES[3], lw=1)  # ln of the smallest positive float32
ax.set_title(r"float32: $\ln \prod p_i$ vs $\sum \ln p_i$")
ax.set_xlabel("number of probabilities, n")
ax.set_ylabel("log of the product")
ax.legend(loc="upper right")
save_thumbnail(fig, Path(__file__).with_name("thumbnail.png"))
