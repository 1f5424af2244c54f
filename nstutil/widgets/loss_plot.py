"""The loss curve the run panel shows: total, content and style loss (and TV when used) against evaluations.

Drawing it must cost the optimisation little (the panel redraws it while a run goes), so :class:`LossPlot` keeps
one figure and only replaces the curves' data: no new figure, no layout pass, one legend row above the axes where
it never covers the curves' ends, and at most a few hundred points per curve.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

from ._common import figure, figure_png

_CURVES = (("total", "black", 2.0), ("content", "tab:blue", 1.2), ("style", "tab:orange", 1.2),
           ("tv", "tab:green", 1.2))
_MAX_POINTS = 300  # more than the plot's width in pixels would not show


class LossPlot:
    """One loss figure, redrawn from a history of :class:`~nstutil.LossRecord` as PNG bytes."""

    def __init__(self, *, width: float = 5.0, height: float = 3.0, dpi: int = 80) -> None:
        from matplotlib.ticker import MaxNLocator

        self.figure = figure(width, height, dpi)
        # Fixed margins instead of tight_layout (which costs as much as the drawing): room for the legend row
        # above, the log-scale tick labels on the left and the axis label below.
        self.figure.subplots_adjust(left=0.15, right=0.97, top=0.86, bottom=0.17)
        self.axes = self.figure.add_subplot(1, 1, 1)
        self.axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        self.axes.set_xlabel("evaluation (0 = the start image)")
        self.axes.grid(True, which="major", alpha=0.3)
        self.lines = {key: self.axes.plot([], [], color=colour, linewidth=width_, label=key)[0]
                      for key, colour, width_ in _CURVES}
        # The playground's one-pass result: its total loss as a level across the optimisation's curve.
        self.reference = self.axes.axhline(1.0, color="tab:red", linestyle="--", linewidth=1.2, visible=False)
        self.placeholder = self.axes.text(0.5, 0.5, "", ha="center", va="center", transform=self.axes.transAxes,
                                          color="#888")
        self._marks: list = []

    def png(self, history: Sequence, *, empty_text: str = "press Run", reference: Optional[float] = None,
            reference_label: str = "one pass") -> bytes:
        """PNG bytes of the curves of ``history`` (log scale); ``empty_text`` in the middle when it is empty.
        ``reference``: a total loss drawn as a dashed level (the one-pass result against the optimisation's
        curve), labelled ``reference_label``."""
        ax = self.axes
        step = max(1, math.ceil(len(history) / _MAX_POINTS))
        shown = list(history[::step])
        if history and shown[-1] is not history[-1]:
            shown.append(history[-1])  # the latest evaluation is always drawn
        drawn = []
        for key, line in self.lines.items():
            points = [(r.evaluation, float(getattr(r, key, 0.0) or 0.0)) for r in shown]
            points = [(x, y) for x, y in points if y > 0 and math.isfinite(y)]
            if key == "tv" and not points:
                line.set_data([], [])
                continue
            line.set_data([x for x, _ in points], [y for _, y in points])
            # A single evaluation is a point, not a line: mark it.
            line.set_marker("o" if len(points) == 1 else "")
            if points:
                drawn.append(line)
        shown_reference = reference is not None and reference > 0 and math.isfinite(reference)
        self.reference.set_visible(shown_reference)
        if shown_reference:
            self.reference.set_ydata([reference, reference])
            self.reference.set_label(reference_label)
        self.placeholder.set_text("" if drawn else empty_text)
        if shown_reference and not drawn:  # no curve to compare with yet: the level alone, around its value
            ax.set_yscale("log")
            # The level a third of the way up, below the placeholder text in the middle (not struck through).
            ax.set_ylim(reference / 10, reference * 100)
            ax.set_xlim(0, 1)
        elif drawn:
            ax.set_yscale("log")
            ax.relim(visible_only=True)  # not the hidden one-pass level
            ax.autoscale(True, axis="y")  # the empty plot fixed the limits
            last = history[-1].evaluation
            # One evaluation would otherwise give an axis from -0.05 to 0.05.
            ax.set_xlim(-0.5 if last < 2 else 0, max(last, 1) + (0.5 if last < 2 else 0))
        else:
            ax.set_yscale("linear")
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
        self._mark_scales(history)
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()
        if shown_reference:
            drawn.append(self.reference)
        if drawn:
            ax.legend(handles=drawn, loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=len(drawn), fontsize=8,
                      frameon=False, borderaxespad=0.0, handlelength=1.5)
        return figure_png(self.figure)

    def _mark_scales(self, history: Sequence) -> None:
        """A coarse-to-fine run: a dotted line where each size begins, labelled with the size (the loss jumps)."""
        for artist in self._marks:
            artist.remove()
        self._marks = []
        starts = [r for r, before in zip(history[1:], history)
                  if getattr(r, "scale", 0) != getattr(before, "scale", 0)]
        if not starts:
            return
        transform = self.axes.get_xaxis_transform()  # x in evaluations, y in axes fractions
        for r in [history[0], *starts]:
            if r is not history[0]:
                self._marks.append(self.axes.axvline(r.evaluation, color="#888", linestyle=":", linewidth=1))
            self._marks.append(self.axes.text(r.evaluation, 0.02, f" {r.scale} px", transform=transform,
                                              fontsize=7, color="#666", va="bottom"))


def loss_plot_png(history: Sequence, *, width: float = 5.0, height: float = 3.0) -> bytes:
    """PNG bytes of total, content and style loss (and TV when used) against evaluations, log scale."""
    return LossPlot(width=width, height=height).png(history)
