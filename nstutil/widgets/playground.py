"""The playground: a layer chooser above a run panel, sharing one configuration (lesson 12)."""

from __future__ import annotations

from typing import Optional

import ipywidgets as widgets

from .chooser import LayerChooser
from .run_panel import RunPanel


def playground(preset: str = "tutorial", *, network=None, mode: Optional[str] = None,
               **panel_kwargs) -> widgets.VBox:
    """A layer chooser above a run panel, sharing one configuration. ``.chooser`` and ``.panel`` are attached.

    Every preset starts from the content image here (its other settings are the recipe's, exactly): a student
    presses Run and expects to watch the photo take on the style within the default budget. From noise, as the
    gatys and jcjohnson recipes start, 100 evaluations at 128 px still show mostly noise; the chooser says so and
    **Start from** gives the recipe's own start back.

    ``network``: a trained style network (lesson 10) or AdaIN decoder (lesson 11) — a file's path, a loaded
    :class:`~nstutil.network_file.NetworkFile`, or what ``train_network`` / ``train_decoder`` returned — for the
    *One pass* mode, in which the playground then starts (``mode="optimise"`` to start optimising); its *Network*
    field loads one later. The other keyword arguments go to :class:`RunPanel`.
    """
    chooser = LayerChooser(preset, start="content")
    panel = RunPanel(chooser, network=network, mode=mode, **panel_kwargs)
    box = widgets.VBox([chooser, panel])
    box.add_class("nst-playground")
    box.chooser = chooser
    box.panel = panel
    return box
