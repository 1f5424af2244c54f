"""The live drawing behind the run panel (``LiveDrawer``) and the loss plot it draws (``LossPlot``), without a run."""

from __future__ import annotations

import threading
import time

import pytest

from nstutil.transfer import LossRecord
from nstutil.widgets.live import LiveDrawer
from nstutil.widgets.loss_plot import LossPlot, loss_plot_png


class _Evaluation:
    """What style_transfer hands its callback, reduced to what the drawer reads; counts its image copies."""

    copies = 0

    def __init__(self, history):
        self.history = history
        self.record = history[-1]
        self.steps = 1000

    @property
    def image(self):
        _Evaluation.copies += 1
        return f"image {self.record.evaluation}"


def _record(i, total=None):
    total = 1.0 / (i + 1) if total is None else total
    return LossRecord(i, total, total / 2, total / 2, 0.0, {}, {}, 0.01 * (i + 1))


def _offer_until(drawer, history, predicate, timeout=60.0):
    """Offer evaluations one by one (as an optimisation would) until ``predicate()`` or the timeout."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the drawer did not get there"
        history.append(_record(len(history)))
        drawer.offer(_Evaluation(history))
        time.sleep(0.002)


# ----------------------------------------------------------------------------------------------- the drawer


def test_the_drawer_draws_in_its_own_thread_starting_with_the_first_evaluation():
    frames, statuses, threads = [], [], set()

    def draw(image, history):
        threads.add(threading.current_thread().name)
        frames.append((image, len(history)))

    drawer = LiveDrawer(lambda ev: statuses.append(len(ev.history)), draw, min_interval=0.0, tick=0.01)
    drawer.start()
    history = []
    _offer_until(drawer, history, lambda: len(frames) >= 3 and statuses)
    drawer.stop()
    assert frames[0] == ("image 0", 1)  # the start image is shown at once
    assert threads == {"nstutil-drawer"}
    assert [n for _, n in frames] == sorted(n for _, n in frames)
    assert statuses == sorted(statuses)


def test_the_callback_copies_an_image_only_when_the_drawer_wants_one():
    frames = []
    drawer = LiveDrawer(lambda ev: None, lambda image, history: frames.append(image), min_interval=3600, tick=0.01)
    _Evaluation.copies = 0
    drawer.start()
    history = []
    _offer_until(drawer, history, lambda: len(history) >= 200)
    drawer.stop()
    # One frame (the start image) in an hour-long interval, so one copy for 200 evaluations.
    assert frames == ["image 0"] and _Evaluation.copies == 1


def test_drawing_takes_at_most_its_budget_of_the_time():
    cost = 0.05
    began = []

    def slow_draw(image, history):
        began.append(time.monotonic())
        time.sleep(cost)

    drawer = LiveDrawer(lambda ev: None, slow_draw, min_interval=0.0, budget=0.25, tick=0.01)
    drawer.start()
    history = []
    _offer_until(drawer, history, lambda: len(began) >= 3)
    drawer.stop()
    gaps = [b - a for a, b in zip(began, began[1:])]
    # A 50 ms draw with a 25 % budget: at least 200 ms from one draw's start to the next.
    assert min(gaps) >= cost / 0.25 - 0.01


def test_nothing_is_drawn_after_stop_returns():
    frames = []
    drawer = LiveDrawer(lambda ev: None, lambda image, history: frames.append(image), min_interval=0.0, tick=0.01)
    drawer.start()
    history = []
    _offer_until(drawer, history, lambda: len(frames) >= 1)
    drawer.stop()
    seen = list(frames)
    history.append(_record(len(history)))
    drawer.offer(_Evaluation(history))
    time.sleep(0.1)
    assert frames == seen


# -------------------------------------------------------------------------------------------------- the plot


def test_the_legend_sits_above_the_curves():
    plot = LossPlot()
    plot.png([_record(i) for i in range(50)])
    legend = plot.axes.get_legend().get_window_extent()
    axes = plot.axes.get_window_extent()
    assert legend.y0 >= axes.y1 - 1  # it can never cover the curves' right end
    assert [t.get_text() for t in plot.axes.get_legend().get_texts()] == ["total", "content", "style"]


def test_one_plot_redrawn_from_empty_to_long_to_short_histories():
    plot = LossPlot()
    empty = plot.png([])
    assert plot.placeholder.get_text() == "press Run" and plot.axes.get_legend() is None
    plot.png([_record(i) for i in range(400)])
    assert plot.axes.get_xlim() == (0, 399) and plot.axes.get_yscale() == "log"
    assert len(plot.lines["total"].get_xdata()) <= 301  # thinned to about the plot's width, last one kept
    assert plot.lines["total"].get_xdata()[-1] == 399
    assert plot.lines["tv"].get_xdata() == [] or len(plot.lines["tv"].get_xdata()) == 0  # no TV term, no TV curve
    plot.png([_record(0)])
    assert plot.axes.get_xlim() == (-0.5, 1.5) and plot.lines["total"].get_marker() == "o"
    assert plot.placeholder.get_text() == ""
    assert plot.png([]) == empty
    assert loss_plot_png([]) == empty


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0.0])
def test_points_a_log_scale_cannot_show_are_left_out(bad):
    plot = LossPlot()
    plot.png([_record(0), _record(1, total=bad), _record(2)])
    assert list(plot.lines["total"].get_xdata()) == [0, 2]
