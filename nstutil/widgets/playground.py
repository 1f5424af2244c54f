"""The playground: a layer chooser above a run panel, sharing one configuration (lesson 9)."""

from __future__ import annotations

import ipywidgets as widgets

from .chooser import LayerChooser
from .run_panel import RunPanel


def playground(preset: str = "tutorial", **panel_kwargs) -> widgets.VBox:
    """A layer chooser above a run panel, sharing one configuration. ``.chooser`` and ``.panel`` are attached.

    Every preset starts from the content image here (its other settings are the recipe's, exactly): a student
    presses Run and expects to watch the photo take on the style within the default budget. From noise, as the
    gatys and jcjohnson recipes start, 100 evaluations at 128 px still show mostly noise; the chooser says so and
    **Start from** gives the recipe's own start back.
    """
    chooser = LayerChooser(preset, start="content")
    panel = RunPanel(chooser, **panel_kwargs)
    box = widgets.VBox([chooser, panel])
    box.add_class("nst-playground")
    box.chooser = chooser
    box.panel = panel
    return box
