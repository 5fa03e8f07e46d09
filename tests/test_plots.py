import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from backprop import plots


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_setup_applies_the_shared_style():
    plots.setup()
    assert matplotlib.colors.to_hex(plt.rcParams["figure.facecolor"]) == plots.CARD
    assert [
        matplotlib.colors.to_hex(c)
        for c in plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ] == [c.lower() for c in plots.CYCLE]


def test_thumbnail_has_the_requested_pixel_size(tmp_path):
    fig, ax = plots.subplots()
    ax.plot([0, 1], [1, 0])
    path = plots.save_thumbnail(fig, tmp_path / "thumb.png", size=(4.8, 3.2), dpi=100)
    image = plt.imread(path)
    assert image.shape[:2] == (320, 480)


def test_show_matrix_uses_a_colour_scale_symmetric_about_zero():
    _fig, ax = plots.subplots()
    m = torch.tensor([[1.0, -3.0], [0.5, 2.0]])
    image = plots.show_matrix(ax, m)
    low, high = image.get_clim()
    assert low == -high == -3.0
    np.testing.assert_array_equal(image.get_array(), m.numpy())
    assert len(ax.texts) == m.numel()


def test_show_matrix_draws_a_vector_as_one_row():
    _fig, ax = plots.subplots()
    image = plots.show_matrix(ax, np.arange(3.0), annotate=False)
    assert image.get_array().shape == (1, 3)
    assert not ax.texts


def test_subplots_always_has_the_column_width():
    fig, _ = plots.subplots(1, 3, height=2.5)
    width, height = fig.get_size_inches()
    assert (width, height) == (plots.FIGURE_WIDTH, 2.5)


def test_subplots_refuses_a_figsize_and_says_why():
    with pytest.raises(TypeError, match="height="):
        plots.subplots(figsize=(12, 3))
    with pytest.raises(ValueError, match="height"):
        plots.subplots(height=0)
