"""Thumbnail for post 10: the embedding table's gradient lights up only the rows of words used."""

from pathlib import Path

import torch

from backprop import plots
from backprop.functional import embedding_backward

torch.manual_seed(0)
vocab = ["a", "and", "bird", "cat", "dog", "flew", "mat", "on", "ran", "sat", "the", "tree"]
tokens = "the cat sat on the mat and the dog sat".split()
idx = torch.tensor([vocab.index(t) for t in tokens])
table = torch.randn(len(vocab), 16, dtype=torch.float64)
grad_table = embedding_backward(torch.randn(len(tokens), 16, dtype=torch.float64), idx, table)
counts = torch.bincount(idx, minlength=len(vocab)).tolist()

fig, ax = plots.subplots(height=3.2)
plots.show_matrix(ax, grad_table, annotate=False)
ax.set_aspect("auto")
ax.set_yticks(range(len(vocab)), [f"{w} ×{c}" for w, c in zip(vocab, counts)], fontsize=7)
ax.set_xticks([])
ax.set_xlabel("embedding dimension", fontsize=8)
ax.set_title("∂L/∂E: only the rows of used tokens", fontsize=10)
plots.save_thumbnail(fig, Path(__file__).with_name("thumbnail.png"))
