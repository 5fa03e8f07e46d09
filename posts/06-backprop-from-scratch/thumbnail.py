"""Thumbnail for post 6: the loss curves of the digits network trained with hand-written gradients."""

from pathlib import Path

import torch

from backprop import plots
from backprop.data import load_digits
from backprop.functional import mse
from backprop.modules import MSE, Lin, Model, ReLU
from backprop.optim import sgd_step

# The post's training run: 64 -> 50 -> 1, MSE on the digit value, plain SGD.
x_train, y_train, x_valid, y_valid = load_digits()
t_train, t_valid = y_train.float()[:, None], y_valid.float()[:, None]
generator = torch.Generator().manual_seed(0)
model = Model([Lin(64, 50, input_needs_grad=False, generator=generator), ReLU(), Lin(50, 1, generator=generator)], MSE())
train, valid = [], [float(model(x_valid, t_valid))]
for epoch in range(40):
    order = torch.randperm(len(x_train), generator=generator)
    total = 0.0
    for start in range(0, len(order), 64):
        idx = order[start : start + 64]
        total += float(model(x_train[idx], t_train[idx])) * len(idx)
        model.backward()
        sgd_step(model.parameters(), 0.01)
    train.append(total / len(order))
    valid.append(float(model(x_valid, t_valid)))
baseline = float(mse(torch.full_like(t_valid, float(t_train.mean())), t_valid))

fig, ax = plots.subplots()
ax.plot(range(1, 41), train, label="training", linestyle=plots.LINESTYLES[0])
ax.plot(range(0, 41), valid, label="validation", linestyle=plots.LINESTYLES[1])
ax.axhline(baseline, color=plots.PALETTE["black"], linestyle=plots.LINESTYLES[3], linewidth=1.5, label="mean digit")
ax.set_yscale("log")
ax.set_xlabel("epoch")
ax.set_ylabel("MSE")
ax.set_title("Trained with hand-written gradients")
ax.legend()
plots.save_thumbnail(fig, Path(__file__).with_name("thumbnail.png"))
