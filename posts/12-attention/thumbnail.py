"""Thumbnail for post 12: causal attention weights, the masked upper triangle greyed out."""

import math
from pathlib import Path

import matplotlib
import numpy as np
import torch

from backprop import plots
from backprop.attention import causal_mask
from backprop.functional import softmax

torch.manual_seed(0)
n, d = 8, 8
q, k = torch.randn(n, d, dtype=torch.float64), torch.randn(n, d, dtype=torch.float64)
mask = causal_mask(n)
weights = softmax((q @ k.T / math.sqrt(d)).masked_fill(~mask, float("-inf")), dim=-1)

fig, ax = plots.subplots(height=3.2)
colours = matplotlib.colormaps["Blues"].with_extremes(bad="#d0d0d0")
ax.imshow(np.ma.masked_array(weights.numpy(), mask=~mask.numpy()), cmap=colours, vmin=0, vmax=1)
ax.grid(False)
ax.set_xticks([])
ax.set_yticks([])
ax.set_xlabel("key", fontsize=9)
ax.set_ylabel("query", fontsize=9)
ax.set_title("causal attention: P and ∂L/∂S vanish above the diagonal", fontsize=9)
plots.save_thumbnail(fig, Path(__file__).with_name("thumbnail.png"))
