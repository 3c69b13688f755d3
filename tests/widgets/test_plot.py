"""The loss plot of the training section."""

import pytest

pytest.importorskip("napari")


def test_plot_without_validation_draws_no_dice(qtbot, make_napari_viewer):
    from napari_unet.engine.train import TrainProgress
    from napari_unet.widgets._plot import LossPlot

    plot = LossPlot()
    qtbot.addWidget(plot)
    for step in range(1, 4):
        progress = TrainProgress(step, 3, 1.0 / step, step, None, 1e6, None)
        progress.mean_loss = 0.5
        plot.add(progress)
    assert plot.smoothed == [0.5, 0.5, 0.5] and plot.dice == []
    plot.resize(300, 150)
    assert not plot.grab().isNull()
