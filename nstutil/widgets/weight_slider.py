"""A weight that spans orders of magnitude (α, β): a logarithmic slider to explore with, and a number that is exact.

A ``FloatLogSlider`` alone cannot hold a preset's numbers: the browser snaps it to its steps of 10^0.1 and sends
the snapped value back, so β = 40 became 39.81 and the preset looked changed (issue 13). Here the number field
holds the value; the slider is only a view of it. Setting the value (typing it, or a preset) moves the slider to
its nearest step and leaves the value alone, and the snapped position the browser reports back is recognised and
ignored. Dragging the slider sets the value to its position, rounded to 3 significant digits (39.8, not 39.8107).
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import traitlets


def _round3(x: float) -> float:
    return float(f"{x:.3g}")


class WeightSlider(widgets.HBox):
    """``.value`` is the exact weight (observe it like any widget's value); ``.slider`` and ``.number`` show it."""

    value = traitlets.Float(0.0)

    def __init__(self, value: float, *, description: str, min_exponent: float, max_exponent: float,
                 step: float = 0.1, css_class: str = "") -> None:
        self._step = step
        self.slider = widgets.FloatLogSlider(base=10, min=min_exponent, max=max_exponent, step=step, readout=False,
                                             description=description, style={"description_width": "110px"},
                                             layout=widgets.Layout(width="330px"))
        self.number = widgets.BoundedFloatText(value=value, min=0.0, max=1e15,
                                               layout=widgets.Layout(width="110px"))
        super().__init__([self.slider, self.number])
        if css_class:
            self.add_class(css_class)
            self.number.add_class(f"{css_class}-value")
        self.value = float(value)
        self._place_slider()
        self.observe(lambda change: self._on_value(), names="value")
        self.number.observe(lambda change: setattr(self, "value", float(change["new"])), names="value")
        self.slider.observe(self._slider_moved, names="value")

    def _exponent(self) -> float:
        """The slider step nearest to the value (the lowest one for 0)."""
        low, high = self.slider.min, self.slider.max
        if self.value <= 0:
            return low
        steps = round((math.log10(self.value) - low) / self._step)
        return min(high, low + steps * self._step)

    def _place_slider(self) -> None:
        self._placing = True
        try:
            self.slider.value = 10.0 ** self._exponent()
        finally:
            self._placing = False

    def _on_value(self) -> None:
        if self.number.value != self.value:
            self.number.value = self.value
        self._place_slider()

    def _slider_moved(self, change) -> None:
        if self._placing or change["new"] <= 0:
            return
        # The browser's snapped copy of the position this value put the slider at: not a move by the student.
        if abs(math.log10(change["new"]) - self._exponent()) < self._step / 100:
            return
        self.value = _round3(change["new"])
