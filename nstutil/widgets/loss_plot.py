"""The loss curve the run panel shows: total, content and style loss (and TV when used) against evaluations."""

from __future__ import annotations

import math
from typing import Sequence

from ._common import figure, figure_png


def loss_plot_png(history: Sequence, *, title: str = "loss", width: float = 5.0, height: float = 3.0) -> bytes:
    """PNG bytes of total, content and style loss (and TV when used) against evaluations, log scale."""
    fig = figure(width, height)
    ax = fig.add_subplot(1, 1, 1)
    if history:
        xs = [r.evaluation for r in history]
        for key, colour in (("total", "black"), ("content", "tab:blue"), ("style", "tab:orange"), ("tv", "tab:green")):
            ys = [float(getattr(r, key, 0.0) or 0.0) for r in history]
            if key == "tv" and not any(ys):
                continue
            points = [(x, y) for x, y in zip(xs, ys) if y > 0 and math.isfinite(y)]
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], label=key, color=colour,
                        linewidth=2 if key == "total" else 1.2)
        if ax.lines:
            ax.set_yscale("log")
            ax.legend(loc="upper right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "press Run", ha="center", va="center", transform=ax.transAxes, color="#888")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("evaluation")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return figure_png(fig)
