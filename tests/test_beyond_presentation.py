"""Notebook 07's plots, widgets and the peak-memory meter."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from rlhf_lessons.course import plots, widgets  # noqa: E402
from rlhf_lessons.measure.evaluate import PeakRSS  # noqa: E402


def test_plot_frontier_and_friends_return_axes():
    df = pd.DataFrame({"method": ["sft", "best_of_n", "dpo"], "sqrt_kl": [0.0, 1.2, 2.0],
                       "gold_score": [0.0, 0.3, -0.1], "gold_lo": [-0.2, 0.1, -0.3],
                       "gold_hi": [0.2, 0.5, 0.1], "kl_bound": [False, True, False]})
    for ax in (plots.plot_frontier(df), plots.plot_zero_variance([2, 3], [0.5, 0.3], 3),
               plots.plot_dpo_beta(np.array([0.2, 0.7]), 0.1)):
        assert isinstance(ax, Axes)
    assert len(plots.plot_frontier(df).lines) >= 3
    plt.close("all")


def test_beyond_widgets_render_once_with_defaults():
    box = widgets.make_dpo_beta_widget(np.array([-1.0, 0.5, 3.0]), beta=0.1)
    assert box.children[0].value == 0.1
    box = widgets.make_group_size_widget(np.array([0, 2, 4]), 4, group_size=3)
    assert box.children[0].value == 3 and box.children[0].max == 4
    plt.close("all")


def test_peak_rss_sees_an_allocation_during_the_block():
    start = PeakRSS.rss_mb()
    with PeakRSS() as m:
        x = np.full(64 * 2 ** 20 // 8, 2.0)  # 64 MB, written, alive at the exit
    assert m.peak_mb >= start + 48, (start, m.peak_mb)
    assert m.wall_s >= 0 and x[0] == 2.0
