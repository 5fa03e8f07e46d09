"""Draw the listing thumbnail: hand-written gradients against autograd for three classic bugs."""

from pathlib import Path

import torch

from backprop import plots
from backprop.functional import lin, lin_backward, mse, relu, relu_backward
from backprop.gradcheck import gradcheck

torch.manual_seed(0)
f64 = torch.float64


def tied(x, w):
    return lin(relu(lin(x, w)), w)


def tied_backward_buggy(grad_out, x, w):
    z = lin(x, w)
    grad_h, grad_w, _ = lin_backward(grad_out, relu(z), w)
    grad_x, grad_w, _ = lin_backward(relu_backward(grad_h, z), x, w)   # overwrites grad_w
    return grad_x, grad_w


checks = {
    "= instead of +=": gradcheck(tied, tied_backward_buggy, [torch.randn(5, 3, dtype=f64), torch.randn(3, 3, dtype=f64)]).rows[1],
    "missing 1/N": gradcheck(mse, lambda g, p, t: (g * 2 * (p - t), None),
                             [torch.randn(8, 1, dtype=f64), torch.randn(8, 1, dtype=f64)]).rows[0],
    "wrong axis": gradcheck(lin, lambda g, x, w, b: (g @ w.T, x.T @ g, g.sum(1)),
                            [torch.randn(4, 3, dtype=f64), torch.randn(3, 4, dtype=f64), torch.randn(4, dtype=f64)]).rows[2],
}
fig, axes = plots.subplots(1, 3, height=3.2)
for ax, (title, row) in zip(axes, checks.items()):
    ref, hand = row.autograd_grad.flatten(), row.grad.flatten()
    lo, hi = min(ref.min(), hand.min()).item(), max(ref.max(), hand.max()).item()
    ax.plot([lo, hi], [lo, hi], ":", color=plots.PALETTE["black"], linewidth=1.2)
    ax.scatter(ref, hand, s=18, color=plots.PALETTE["vermillion"], edgecolor=plots.PALETTE["black"], linewidth=0.4, zorder=3)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
axes[0].set_ylabel("hand-written")
axes[1].set_xlabel("autograd")
plots.save_thumbnail(fig, Path(__file__).with_name("thumbnail.png"))
