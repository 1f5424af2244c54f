"""The playground: a layer chooser above a run panel, sharing one configuration (lesson 7)."""

from __future__ import annotations

import ipywidgets as widgets

from .chooser import LayerChooser
from .run_panel import RunPanel


def playground(preset: str = "tutorial", **panel_kwargs) -> widgets.VBox:
    """A layer chooser above a run panel, sharing one configuration. ``.chooser`` and ``.panel`` are attached."""
    chooser = LayerChooser(preset)
    panel = RunPanel(chooser, **panel_kwargs)
    box = widgets.VBox([chooser, panel])
    box.add_class("nst-playground")
    box.chooser = chooser
    box.panel = panel
    return box
