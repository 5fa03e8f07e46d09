"""Tests for backprop.data: shapes, dtypes, normalisation, split hygiene, offline
MNIST."""

from __future__ import annotations

import gzip
import pickle
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sklearn_digits

import backprop.data
from backprop.data import (
    Split,
    _digits_arrays,
    _stratified_split,
    load_digits,
    load_mnist,
)


@pytest.fixture(scope="module")
def digits() -> Split:
    return load_digits()


def test_digits_shapes_and_dtypes(digits: Split) -> None:
    x_train, y_train, x_valid, y_valid = digits
    assert x_train.dtype == x_valid.dtype == torch.float32
    assert y_train.dtype == y_valid.dtype == torch.int64
    assert x_train.shape == (len(y_train), 64) and x_valid.shape == (len(y_valid), 64)
    assert len(y_train) + len(y_valid) == 1797
    # 20% of each class, rounded per class: close to 20% overall.
    assert abs(len(y_valid) - 0.2 * 1797) <= 10
    assert set(y_train.tolist()) == set(y_valid.tolist()) == set(range(10))


def test_digits_training_split_is_normalised(digits: Split) -> None:
    x_train = digits.x_train.double()
    assert abs(x_train.mean().item()) < 1e-5
    assert abs(x_train.std().item() - 1) < 1e-5
    # The validation set uses the training statistics, so it is only roughly
    # standardised.
    assert abs(digits.x_valid.double().mean().item()) < 0.1
    assert abs(digits.x_valid.double().std().item() - 1) < 0.1


def _labelled_images(x: torch.Tensor, y: torch.Tensor) -> Counter:
    """A multiset of (raw image bytes, label) pairs."""
    return Counter(
        (image.tobytes(), label)
        for image, label in zip(x.numpy(), y.tolist(), strict=True)
    )


def test_digits_split_is_a_partition_of_the_original_images(digits: Split) -> None:
    raw = sklearn_digits()
    original = _labelled_images(
        torch.tensor(raw.data, dtype=torch.float32), torch.tensor(raw.target)
    )
    # Undo the normalisation: the raw pixels are the integers 0..16, so the 17 distinct
    # normalised values are (v - mean) / std for v = 0..16, which gives mean and std.
    values = digits.x_train.double().unique()
    assert len(values) == 17
    std = 16 / (values.max() - values.min())
    mean = -values.min() * std

    def unnormalise(x: torch.Tensor) -> torch.Tensor:
        return (x.double() * std + mean).round().float()

    train = _labelled_images(unnormalise(digits.x_train), digits.y_train)
    valid = _labelled_images(unnormalise(digits.x_valid), digits.y_valid)
    # Every original (image, label) exactly as often as in the data set: none lost, none
    # duplicated, so no image is in both sets (identical images that occur twice in the
    # original may land one in each set; they are different samples).
    assert train + valid == original


def test_split_indices_are_disjoint_and_cover_everything() -> None:
    y = torch.tensor(sklearn_digits().target)
    train, valid = _stratified_split(y, 0.2, seed=3)
    assert set(train.tolist()).isdisjoint(valid.tolist())
    assert sorted(train.tolist() + valid.tolist()) == list(range(len(y)))


def test_digits_split_is_stratified(digits: Split) -> None:
    counts_train = torch.bincount(digits.y_train, minlength=10).double()
    counts_valid = torch.bincount(digits.y_valid, minlength=10).double()
    fraction = counts_valid / (counts_train + counts_valid)
    assert torch.all((fraction - 0.2).abs() < 0.01)


def test_digits_is_deterministic_by_seed(digits: Split) -> None:
    again = load_digits(seed=0)
    for a, b in zip(digits, again, strict=True):
        assert torch.equal(a, b)
    other = load_digits(seed=1)
    assert not torch.equal(digits.y_train, other.y_train)


def test_digits_valid_fraction() -> None:
    split = load_digits(valid_fraction=0.5)
    assert abs(len(split.y_valid) - 1797 / 2) <= 10
    with pytest.raises(
        ValueError, match=r"valid_fraction must be strictly between 0 and 1, got 1.5"
    ):
        load_digits(valid_fraction=1.5)
    with pytest.raises(ValueError, match=r"valid_fraction.*got 0"):
        load_digits(valid_fraction=0)


def test_digits_read_from_the_file_are_scikit_learns() -> None:
    pixels, labels = _digits_arrays()
    raw = sklearn_digits()
    assert pixels.shape == (1797, 64) and labels.shape == (1797,)
    assert pixels.dtype == raw.data.dtype and labels.dtype == raw.target.dtype
    assert np.array_equal(pixels, raw.data)
    assert np.array_equal(labels, raw.target)


@pytest.mark.parametrize("seed", [0, 7])
def test_digits_split_is_the_one_through_scikit_learn(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    fast = load_digits(valid_fraction=0.3, seed=seed)
    # Without the file, load_digits falls back to scikit-learn's own loader.
    monkeypatch.setattr(backprop.data, "_digits_file", lambda: None)
    through_sklearn = load_digits(valid_fraction=0.3, seed=seed)
    for ours, theirs in zip(fast, through_sklearn, strict=True):
        assert ours.dtype == theirs.dtype
        assert torch.equal(ours, theirs)


def test_digits_fall_back_to_scikit_learn_when_the_file_has_changed(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    changed = tmp_path / "digits.csv.gz"
    with gzip.open(changed, "wt") as f:
        f.write("0,1,2\n3,4,5\n")  # not 1797 rows of 64 pixels and a label
    monkeypatch.setattr(backprop.data, "_digits_file", lambda: changed)
    pixels, labels = _digits_arrays()
    raw = sklearn_digits()
    assert np.array_equal(pixels, raw.data) and np.array_equal(labels, raw.target)


def test_load_digits_does_not_import_scikit_learn() -> None:
    code = (
        "import sys\n"
        "from backprop.data import load_digits\n"
        "load_digits()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sklearn', 'scipy')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


def _write_fake_mnist(
    path, n_train: int = 30, n_valid: int = 12, seed: int = 0
) -> tuple:
    rng = np.random.default_rng(seed)
    x_train = rng.random((n_train, 784), dtype=np.float32)
    y_train = rng.integers(0, 10, n_train)
    x_valid = rng.random((n_valid, 784), dtype=np.float32)
    y_valid = rng.integers(0, 10, n_valid)
    x_test, y_test = rng.random((5, 784), dtype=np.float32), rng.integers(0, 10, 5)
    with gzip.open(path, "wb") as f:
        pickle.dump(((x_train, y_train), (x_valid, y_valid), (x_test, y_test)), f)
    return x_train, y_train, x_valid, y_valid


def test_load_mnist_from_a_fake_file(tmp_path) -> None:
    path = tmp_path / "mnist.pkl.gz"
    x_train, y_train, x_valid, y_valid = _write_fake_mnist(path)
    split = load_mnist(path)
    assert isinstance(split, Split)
    assert split.x_train.dtype == split.x_valid.dtype == torch.float32
    assert split.y_train.dtype == split.y_valid.dtype == torch.int64
    assert split.x_train.shape == (30, 784) and split.x_valid.shape == (12, 784)
    assert torch.equal(split.y_train, torch.from_numpy(y_train).long())
    assert torch.equal(split.y_valid, torch.from_numpy(y_valid).long())
    # Normalised with the training set's statistics, computed here independently in
    # float64.
    x_train64, x_valid64 = x_train.astype(np.float64), x_valid.astype(np.float64)
    mean, std = x_train64.mean(), x_train64.std(ddof=1)
    expected_train = torch.from_numpy((x_train64 - mean) / std)
    expected_valid = torch.from_numpy((x_valid64 - mean) / std)
    torch.testing.assert_close(
        split.x_train.double(), expected_train, rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(
        split.x_valid.double(), expected_valid, rtol=1e-5, atol=1e-5
    )
    # str paths work too
    assert torch.equal(load_mnist(str(path)).x_train, split.x_train)


def test_load_mnist_missing_file_says_what_to_do(tmp_path) -> None:
    path = tmp_path / "nowhere" / "mnist.pkl.gz"
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(path)
    message = str(info.value)
    assert str(path) in message
    assert "fast.ai course" in message  # where the file comes from
    assert "Copy that file to" in message  # where to put it
    assert "never downloads" in message


def test_load_mnist_rejects_a_malformed_file(tmp_path) -> None:
    path = tmp_path / "bad.pkl.gz"
    x = np.zeros((4, 784), dtype=np.float32)
    with gzip.open(path, "wb") as f:
        pickle.dump(
            ((x, np.zeros(3, dtype=np.int64)), (x, np.zeros(4, dtype=np.int64)), None),
            f,
        )
    message = r"y_train of shape \(n,\), got x_train \(4, 784\) and y_train \(3,\)"
    with pytest.raises(ValueError, match=message):
        load_mnist(path)
