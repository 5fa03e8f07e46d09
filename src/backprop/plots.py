"""The figures' shared look.

Figures are drawn on an opaque white card with dark ink, so they read the same on
the site's light and dark themes. Colours are the Okabe–Ito palette, which stays
distinguishable for colour-blind readers; line styles differ too, so no
information is carried by colour alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

__all__ = [
    "CARD",
    "CYCLE",
    "FIGURE_HEIGHT",
    "FIGURE_WIDTH",
    "INK",
    "LINESTYLES",
    "PALETTE",
    "STYLE",
    "save_thumbnail",
    "setup",
    "show_matrix",
    "subplots",
]

PALETTE = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "vermillion": "#D55E00",
    "sky": "#56B4E9",
    "purple": "#CC79A7",
    "yellow": "#F0E442",
    "black": "#000000",
}
"""The Okabe–Ito colours by name (Okabe & Ito 2008, "Color Universal Design")."""

CYCLE = [
    PALETTE[c]
    for c in ("blue", "orange", "green", "vermillion", "sky", "purple", "black")
]
"""The order in which lines take the palette's colours."""

LINESTYLES = ["-", "--", "-.", ":"]
"""Line styles to pair with colours, so no information is carried by colour alone."""

INK = "#222222"
"""Text, axes and annotation colour."""

CARD = "#ffffff"
"""The figures' background."""

FIGURE_WIDTH = 7.0
"""Every figure's width in inches: it fits the site's text column (about 800 CSS px)
at ``figure.dpi`` without being scaled down much; posts choose only the height."""

FIGURE_HEIGHT = 4.0
"""The default height in inches."""

STYLE: dict[str, Any] = {
    "figure.figsize": (FIGURE_WIDTH, FIGURE_HEIGHT),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "figure.facecolor": CARD,
    "axes.facecolor": CARD,
    "savefig.facecolor": CARD,
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "legend.frameon": False,
    "axes.edgecolor": INK,
    "axes.labelcolor": INK,
    "text.color": INK,
    "xtick.color": INK,
    "ytick.color": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "axes.prop_cycle": cycler(color=CYCLE),
    "lines.linewidth": 2.0,
    "image.cmap": "viridis",
    "figure.constrained_layout.use": True,
}
"""The Matplotlib settings `setup` applies."""


def setup() -> None:
    """Apply the shared style (`STYLE`); call once at the top of a post or notebook.

    Examples
    --------
    >>> setup()
    >>> plt.rcParams["figure.figsize"] == [FIGURE_WIDTH, FIGURE_HEIGHT]
    True
    """
    # style.use with a dict updates rcParams key by key, like rcParams.update.
    plt.style.use(STYLE)


def subplots(
    nrows: int = 1, ncols: int = 1, *, height: float = FIGURE_HEIGHT, **kwargs: Any
) -> tuple[Figure, Any]:
    """``plt.subplots`` with the shared style applied and the column's width.

    Only the height is a choice: the width is always `FIGURE_WIDTH`, so no figure
    comes out wider than the page's text column.

    Parameters
    ----------
    nrows, ncols : int, default 1
        The grid of axes.
    height : float, default FIGURE_HEIGHT
        Height in inches, positive.
    **kwargs
        Passed on to ``plt.subplots`` (``sharex``, ``gridspec_kw``, ...), except
        ``figsize``.

    Returns
    -------
    fig : matplotlib.figure.Figure
        The figure.
    axes : matplotlib.axes.Axes or numpy.ndarray of Axes
        As ``plt.subplots`` returns them.

    Raises
    ------
    TypeError
        If ``figsize`` is passed: the width is not a choice.
    ValueError
        If ``height`` is not positive.

    Examples
    --------
    >>> fig, (left, right) = subplots(1, 2, height=3)
    >>> [float(size) for size in fig.get_size_inches()]
    [7.0, 3.0]
    >>> plt.close(fig)
    """
    if "figsize" in kwargs:
        raise TypeError(
            f"subplots() sets the width to FIGURE_WIDTH={FIGURE_WIDTH} in to fit the "
            "column; "
            f"pass height=... instead of figsize={kwargs['figsize']!r}"
        )
    if not height > 0:
        raise ValueError(f"height must be a positive number of inches, got {height!r}")
    setup()
    return plt.subplots(nrows, ncols, figsize=(FIGURE_WIDTH, height), **kwargs)


def save_thumbnail(
    fig: Figure,
    path: str | Path,
    *,
    size: tuple[float, float] = (4.8, 3.2),
    dpi: int = 100,
) -> Path:
    """Save ``fig`` as a small listing thumbnail (480 × 320 px by default).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure; it is resized to ``size``.
    path : str or pathlib.Path
        Where to write the image (its suffix picks the format).
    size : tuple of float, default (4.8, 3.2)
        Width and height in inches.
    dpi : int, default 100
        Pixels per inch.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    fig.set_size_inches(*size)
    fig.savefig(path, dpi=dpi, facecolor=CARD, metadata={"Software": None})
    return path


def show_matrix(
    ax: Axes,
    matrix: torch.Tensor | np.ndarray | Sequence[Any],
    *,
    title: str | None = None,
    annotate: bool = True,
    fmt: str = "{:.2g}",
    cmap: str = "RdBu_r",
) -> AxesImage:
    """Draw a small matrix as a grid of cells, optionally with each value written in.

    The colour scale is symmetric around zero, so the sign of each entry is visible.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Where to draw.
    matrix : torch.Tensor, numpy.ndarray or nested sequence
        1-D (drawn as one row) or 2-D.
    title : str or None, default None
        The axes' title.
    annotate : bool, default True
        Write each value in its cell.
    fmt : str, default "{:.2g}"
        Format of the written values.
    cmap : str, default "RdBu_r"
        A diverging colour map.

    Returns
    -------
    matplotlib.image.AxesImage
        The image, e.g. for ``fig.colorbar``.
    """
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu().double().numpy()
    values = np.asarray(matrix, dtype=float)
    if values.ndim == 1:
        values = values[None, :]
    limit = float(np.abs(values).max()) or 1.0
    image = ax.imshow(values, cmap=cmap, vmin=-limit, vmax=limit)
    ax.set_xticks(range(values.shape[1]))
    ax.set_yticks(range(values.shape[0]))
    ax.grid(False)
    if annotate:
        for (i, j), v in np.ndenumerate(values):
            ink = "white" if abs(v) > 0.6 * limit else INK
            ax.text(
                j, i, fmt.format(v), ha="center", va="center", color=ink, fontsize=9
            )
    if title:
        ax.set_title(title)
    return image
