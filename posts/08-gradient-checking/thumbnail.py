"""Draw the listing thumbnail: the V-shaped error of a central difference against the step size."""

from pathlib import Path

import torch

from backprop import plots

eps_grid = torch.logspace(-14, 0, 113, dtype=torch.float64)
fig, ax = plots.subplots(height=3.2)  # save_thumbnail sets the final size
for dtype, colour, style in [(torch.float64, "blue", "-"), (torch.float32, "vermillion", "--")]:
    xs = torch.linspace(0.5, 1.5, 64, dtype=dtype)
    exact = torch.cos(xs.double())
    errors = []
    for eps in eps_grid.tolist():
        eps = torch.tensor(eps, dtype=dtype)
        central = (torch.sin(xs + eps) - torch.sin(xs - eps)) / (2 * eps)
        errors.append((central.double() - exact).abs().median())
    eps_mach = torch.finfo(dtype).eps
    name = str(dtype).replace("torch.", "")
    ax.loglog(eps_grid, torch.stack(errors), color=plots.PALETTE[colour], linestyle=style, label=name)
    ax.axvline(eps_mach ** (1 / 3), color=plots.PALETTE[colour], linestyle=":", linewidth=1.4)
ax.set_xlabel("step size ε")
ax.set_ylabel("|error| of central difference")
ax.set_title(r"best step near $\varepsilon_\mathrm{mach}^{1/3}$")
ax.legend(loc="lower left")
plots.save_thumbnail(fig, Path(__file__).with_name("thumbnail.png"))
