"""Small data sets for training the hand-written networks, all offline.

Nothing here downloads anything, ever:

- :func:`load_digits` uses scikit-learn's handwritten digits (1797 images of
  8x8 pixels), which ship inside scikit-learn itself.
- :func:`load_mnist` reads the course's ``mnist.pkl.gz`` (50,000 + 10,000
  images of 28x28 pixels) from a file you already have.

Both return a :class:`Split` of tensors ``(x_train, y_train, x_valid, y_valid)``:
``x`` float32 of shape ``(n, n_pixels)``, normalised to mean 0 and standard
deviation 1 *using the training images only*; ``y`` int64 class indices ``(n,)``.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from backprop._checks import shape_str

__all__ = ["Split", "load_digits", "load_mnist", "normalize"]


class Split(NamedTuple):
    """A training and a validation set.

    It unpacks as ``x_train, y_train, x_valid, y_valid``.

    Attributes
    ----------
    x_train, x_valid : torch.Tensor
        Images, float32, shape ``(n, n_pixels)``, normalised with the training
        set's statistics.
    y_train, y_valid : torch.Tensor
        Class indices, int64, shape ``(n,)``.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_valid: torch.Tensor
    y_valid: torch.Tensor


def normalize(
    x_train: torch.Tensor, x_valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Scale both sets with the mean and standard deviation of ``x_train``.

    Both become $(x - \mu) / \sigma$ with one $\mu$ and one $\sigma$ over all
    training pixels, as in the course. The statistics come from the training set
    alone: the validation set stands in for data we have not seen yet, so letting
    its values shape the preprocessing would be a small peek at the answers.
    (Per-pixel statistics would also divide by zero: some border pixels are 0 in
    every training image.)

    Parameters
    ----------
    x_train, x_valid : torch.Tensor
        Floating-point images, any shapes.

    Returns
    -------
    tuple of torch.Tensor
        ``(x_train, x_valid)`` normalised; ``x_train`` then has mean 0 and
        standard deviation 1.

    Examples
    --------
    >>> normalize(torch.tensor([1.0, 3.0]), torch.tensor([5.0]))
    (tensor([-0.7071,  0.7071]), tensor([2.1213]))
    """
    mean, std = x_train.mean(), x_train.std()
    return (x_train - mean) / std, (x_valid - mean) / std


def _stratified_split(
    y: torch.Tensor, valid_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(train, valid)``: a seeded shuffle, then a share of each class.

    Taking the same fraction of every class keeps the class balance of the
    two sets equal, so validation accuracy is not skewed by the draw.
    """
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=generator)
    is_valid = torch.zeros(len(y), dtype=torch.bool)
    for label in torch.unique(y):
        of_class = order[y[order] == label]  # this class's indices, in shuffled order
        n_valid = round(valid_fraction * len(of_class))
        is_valid[of_class[:n_valid]] = True
    # Keep the shuffled order in both sets, so mini-batches mix the classes.
    return order[~is_valid[order]], order[is_valid[order]]


def _digits_file() -> Path | None:
    """Where scikit-learn keeps the digits, found without importing it (or None).

    ``import sklearn.datasets`` imports SciPy and takes about a second; the data is
    one small gzipped CSV inside the package, which numpy reads in milliseconds.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    for package in spec.submodule_search_locations:
        path = Path(package, "datasets", "data", "digits.csv.gz")
        if path.is_file():
            return path
    return None


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 images ``(1797, 64)`` (floats 0..16) and their labels ``(1797,)``.

    The arrays scikit-learn's ``load_digits`` returns, read from its file directly;
    through scikit-learn itself if the file is not where, or not what, it used to be.
    """
    path = _digits_file()
    if path is not None:
        # As scikit-learn reads it: 64 pixel columns, then the label.
        with gzip.open(path, "rt", encoding="utf-8") as f:
            table = np.loadtxt(f, delimiter=",")
        if table.shape == (1797, 65):
            return table[:, :-1], table[:, -1].astype(int)
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    return digits.data, digits.target


def load_digits(valid_fraction: float = 0.2, seed: int = 0) -> Split:
    """scikit-learn's 1797 handwritten digits as a seeded, stratified split.

    The images ship with scikit-learn: nothing is downloaded. Each class is split
    in the same proportion, after a seeded shuffle.

    Parameters
    ----------
    valid_fraction : float, default 0.2
        Share of each class in the validation set, strictly between 0 and 1.
    seed : int, default 0
        The same seed always gives the same split.

    Returns
    -------
    Split
        ``x`` float32 ``(n, 64)`` (8x8 pixels, originally 0..16), normalised with
        the training set's mean and std; ``y`` int64 ``(n,)`` in ``0..9``.

    Raises
    ------
    ValueError
        If ``valid_fraction`` is not strictly between 0 and 1.

    Examples
    --------
    >>> x_train, y_train, x_valid, y_valid = load_digits()
    >>> x_train.shape, x_valid.shape
    (torch.Size([1438, 64]), torch.Size([359, 64]))
    """
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(
            f"valid_fraction must be strictly between 0 and 1, got {valid_fraction}"
        )
    pixels, labels = _digits_arrays()
    x = torch.tensor(pixels, dtype=torch.float32)
    y = torch.tensor(labels, dtype=torch.int64)
    train, valid = _stratified_split(y, valid_fraction, seed)
    x_train, x_valid = normalize(x[train], x[valid])
    return Split(x_train, y[train], x_valid, y[valid])


MNIST_MISSING = """\
{path} not found.
mnist.pkl.gz comes with the fast.ai course (part 2's first notebook, 01_matmul,
saves it as data/mnist.pkl.gz next to the notebooks). Copy that file to
{path}, or pass its location: load_mnist("path/to/mnist.pkl.gz").
This library never downloads anything; load_digits() needs no file at all."""


def load_mnist(path: str | os.PathLike[str]) -> Split:
    """The course's MNIST from a local ``mnist.pkl.gz``, as a `Split`.

    The file is a gzipped pickle of numpy arrays
    ``((x_train, y_train), (x_valid, y_valid), (x_test, y_test))`` with ``x``
    floats in [0, 1] of shape ``(n, 784)``; the test set is not used. Nothing is
    downloaded.

    Parameters
    ----------
    path : str or os.PathLike
        Where the course's ``mnist.pkl.gz`` is.

    Returns
    -------
    Split
        50,000 training and 10,000 validation images: ``x`` float32
        ``(n, 784)``, normalised with the training set's mean and std; ``y``
        int64 ``(n,)``.

    Raises
    ------
    FileNotFoundError
        Saying where the file comes from, when ``path`` does not exist.
    ValueError
        If the arrays in the file do not have the expected shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(MNIST_MISSING.format(path=path))
    with gzip.open(path, "rb") as f:
        # The file was pickled by Python 2; latin-1 maps its byte strings one to one.
        (x_train, y_train), (x_valid, y_valid), _ = pickle.load(f, encoding="latin-1")

    tensors = {
        "x_train": torch.as_tensor(np.asarray(x_train), dtype=torch.float32),
        "y_train": torch.as_tensor(np.asarray(y_train), dtype=torch.int64),
        "x_valid": torch.as_tensor(np.asarray(x_valid), dtype=torch.float32),
        "y_valid": torch.as_tensor(np.asarray(y_valid), dtype=torch.int64),
    }
    for part in ("train", "valid"):
        x, y = tensors[f"x_{part}"], tensors[f"y_{part}"]
        if x.ndim != 2 or y.shape != (x.shape[0],):
            raise ValueError(
                f"{path}: expected x_{part} of shape (n, n_pixels) and y_{part} of "
                "shape (n,), "
                f"got x_{part} {shape_str(x)} and y_{part} {shape_str(y)}"
            )
    x_train, x_valid = normalize(tensors["x_train"], tensors["x_valid"])
    return Split(x_train, tensors["y_train"], x_valid, tensors["y_valid"])
