"""Thumbnail for post 15: the small GPT's loss, with our gradients and with autograd's.

The post's training run (the tied model, steps, batch size, learning-rate schedule,
AdamW's betas and weight decay), in float64 so that the two curves are the same run.
"""

import math
from pathlib import Path

import torch

from backprop import plots
from backprop.modules import Model
from backprop.optim import AdamW
from backprop.transformer import TinyGPT, TokenCrossEntropy

torch.set_num_threads(1)
f64 = torch.float64
n_digits, vocab, steps, batch_size = 8, 10, 250, 48


def sorting_batch(n, generator):
    digits = torch.randint(vocab, (n, n_digits), generator=generator)
    sequence = torch.cat([digits, digits.sort(dim=1).values], dim=1)
    inputs, targets = sequence[:, :-1], sequence[:, 1:].clone()
    targets[:, : n_digits - 1] = -1
    return inputs, targets


def learning_rate(step, peak=1e-2, warmup=25):
    """The post's: a short warm-up, then a cosine decay to zero."""
    cosine = 0.5 * (1 + math.cos(math.pi * step / steps))
    return peak * min(1, (step + 1) / warmup) * cosine


def train(use_autograd):
    gen = torch.Generator().manual_seed(0)
    gpt = TinyGPT(
        vocab, 2 * n_digits - 1, 48, 4, 192, 2, tie_weights=True, generator=gen,
        dtype=f64,
    )  # fmt: skip
    model = Model([gpt], TokenCrossEntropy())
    named = gpt.named_parameters()
    groups = [  # weight decay on the matrices and embedding tables only
        {"params": {n: p for n, p in named.items() if p.ndim == 2}},
        {
            "params": {n: p for n, p in named.items() if p.ndim != 2},
            "weight_decay": 0.0,
        },
    ]
    optimiser = AdamW(groups, betas=(0.9, 0.99), weight_decay=0.1)
    batches = torch.Generator().manual_seed(5)
    curve = []
    for step in range(steps):
        inputs, targets = sorting_batch(batch_size, batches)
        if use_autograd:
            params = gpt.parameters()
            for p in params:
                p.requires_grad_(True)
            loss = TokenCrossEntropy()(gpt(inputs), targets)
            grads = torch.autograd.grad(loss, params)
            for p, g in zip(params, grads, strict=True):
                p.requires_grad_(False)
                p.g = g
        else:
            loss = model(inputs, targets)
            model.backward()
        optimiser.lr = learning_rate(step)
        optimiser.step()
        curve.append(loss.item())
    return curve


fig, ax = plots.subplots(height=3.2)
ax.plot(train(False), label="our backward", linewidth=3)
ax.plot(train(True), "--", label="autograd", color=plots.PALETTE["orange"])
ax.set_yscale("log")
ax.set_xlabel("step", fontsize=9)
ax.set_ylabel("loss", fontsize=9)
ax.set_title("a small GPT learns to sort, on hand-written gradients", fontsize=9)
ax.legend(fontsize=8)
plots.save_thumbnail(fig, Path(__file__).with_name("thumbnail.png"))
