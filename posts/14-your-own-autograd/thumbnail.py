"""Thumbnail for post 14: the tape of post 6's network and the order of its replay."""

from pathlib import Path

import torch

from backprop import plots
from backprop.autograd import Tensor, mse

torch.manual_seed(0)
x, t = torch.randn(8, 4), torch.randn(8, 1)
w1, b1, w2, b2 = (
    Tensor(p, requires_grad=True)
    for p in (torch.randn(4, 3), torch.zeros(3), torch.randn(3, 1), torch.zeros(1))
)
loss = mse((x @ w1 + b1).relu() @ w2 + b2, t)
names = {id(w1): "W1", id(b1): "b1", id(w2): "W2", id(b2): "b2"}

ops = [node for node in loss.tape() if node.op]
op_of = {id(node): node.op for node in ops}
position = {id(node): (i, 0.0) for i, node in enumerate(ops)}
for node in ops:
    for parent in node.parents:
        if id(parent) in names:
            position[id(parent)] = (position[id(node)][0], 1.0)

fig, ax = plots.subplots(height=3.2)
box = dict(boxstyle="round,pad=0.35", facecolor="white",
           edgecolor=plots.PALETTE["black"])
for node_id, (x_pos, y_pos) in position.items():
    label = names.get(node_id) or op_of[node_id]
    ax.text(x_pos, y_pos, label, ha="center", va="center", fontsize=12, bbox=box,
            zorder=3)
for node in ops:
    for parent in node.parents:
        if id(parent) in position:
            ax.annotate("", xy=position[id(node)], xytext=position[id(parent)],
                        arrowprops=dict(arrowstyle="->", color=plots.PALETTE["blue"],
                                        shrinkA=15, shrinkB=15, linewidth=1.6))
for step, node in enumerate(reversed(ops), start=1):
    ax.text(position[id(node)][0], -0.5, str(step), ha="center", va="center",
            fontsize=12, color=plots.PALETTE["vermillion"])
ax.set_title("a tape, replayed backwards", fontsize=12)
ax.set_xlim(-0.6, len(ops) - 0.4)
ax.set_ylim(-0.8, 1.4)
ax.axis("off")
plots.save_thumbnail(fig, Path(__file__).with_name("thumbnail.png"))
