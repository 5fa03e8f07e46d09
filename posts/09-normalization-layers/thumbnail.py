"""Draw the listing thumbnail of post 9: batch norm's input gradient sums to zero per feature.

Run from anywhere: python posts/09-normalization-layers/thumbnail.py
"""

from pathlib import Path

import torch

from backprop import plots
from backprop.functional import batchnorm_backward

torch.manual_seed(0)
n, c, eps = 32, 6, 1e-5
x = torch.randn(n, c, dtype=torch.float64) * torch.linspace(0.5, 2, c, dtype=torch.float64) + 1
gamma = torch.randn(c, dtype=torch.float64)
beta = torch.randn(c, dtype=torch.float64)
grad_out = torch.randn(n, c, dtype=torch.float64)

full = batchnorm_backward(grad_out, x, gamma, beta, eps)[0]
sigma = (x.var(0, correction=0) + eps).sqrt()
naive = gamma / sigma * grad_out  # treats the batch mean and standard deviation as constants

features = torch.arange(c)
fig, ax = plots.subplots()
ax.axhline(0, color=plots.INK, lw=0.8)
ax.plot(features + 0.1, naive.sum(0), "D", color=plots.PALETTE["vermillion"], mfc="white",
        mew=2, ms=9, label="naive: μ, σ constant")
ax.plot(features - 0.1, full.sum(0), "o", color=plots.PALETTE["blue"], ms=9, label="full backward")
ax.set_xticks(features.tolist())
ax.set_xlabel("feature j")
ax.set_ylabel(r"$\sum_i \partial L / \partial x_{ij}$")
ax.set_title("Batch norm: input gradient per feature")
ax.legend(loc="upper left")
plots.save_thumbnail(fig, Path(__file__).with_name("thumbnail.png"))
