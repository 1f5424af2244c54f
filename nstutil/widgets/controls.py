"""The controls of lesson 8 in the playground: colour mode, style scale, a second style with its blend weight, and
coarse-to-fine.

Each is one keyword argument of :func:`nstutil.style_transfer` (``preserve_colors``, ``style_scale``, a list of two
``style`` images with ``style_blend``, ``scales``); :meth:`ControlsBox.config` gives only those set away from their
defaults, so a plain run's call stays as short as before and every control the student touched is in the code box.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, List, Optional, Union

import ipywidgets as widgets

from .image_picker import ImagePicker

# "plain" stands for preserve_colors=None: a drop-down shows a None value as an empty box.
COLOUR_MODES = (("plain: the style's colours", "plain"),
                ("luminance: keep the photo's colours", "luminance"),
                ("histogram: style recoloured to the photo's", "histogram"))
COARSE_TO_FINE = (("off", 1), ("2 sizes: ½ → full", 2), ("3 sizes: ¼ → ½ → full", 3))


def scales_for(size: int, count: int) -> Optional[List[int]]:
    """``count`` sizes halving down from ``size`` (coarse to fine), or None for one size: 128, 3 -> [32, 64, 128]."""
    if count <= 1:
        return None
    return [max(1, size // 2 ** k) for k in reversed(range(count))]


class ControlsBox(widgets.VBox):
    """Colour mode, style scale, a second style image with its share of the style target, coarse-to-fine."""

    def __init__(self, *, second_style: Optional[Union[str, os.PathLike]] = None,
                 message_widget: Optional[widgets.HTML] = None,
                 upload_dir: Union[str, os.PathLike] = "uploads") -> None:
        wide = {"description_width": "110px"}
        self.preserve_colors = widgets.Dropdown(options=COLOUR_MODES, value="plain", description="Colours",
                                                style=wide, layout=widgets.Layout(width="380px"))
        self.style_scale = widgets.FloatSlider(value=1.0, min=0.25, max=2.0, step=0.05, description="Style scale",
                                               readout_format=".2f", style=wide,
                                               layout=widgets.Layout(width="380px"))
        self.coarse_to_fine = widgets.Dropdown(options=COARSE_TO_FINE, value=1, description="Coarse-to-fine",
                                               style=wide, layout=widgets.Layout(width="300px"))
        self.use_second = widgets.Checkbox(value=False, description="Second style", indent=False,
                                           layout=widgets.Layout(width="120px"))
        self.second = ImagePicker("second style", second_style if second_style is not None else "waves",
                                  message_widget=message_widget, upload_dir=upload_dir, description="")
        self.share = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="its share",
                                         readout_format=".2f", style={"description_width": "70px"},
                                         layout=widgets.Layout(width="260px"))
        for w, cls in ((self.preserve_colors, "nst-colours"), (self.style_scale, "nst-style-scale"),
                       (self.coarse_to_fine, "nst-coarse-to-fine"), (self.use_second, "nst-second-style"),
                       (self.share, "nst-style-share")):
            w.add_class(cls)
        self._listeners: List[Callable[[], None]] = []
        for w in (self.preserve_colors, self.style_scale, self.coarse_to_fine, self.use_second, self.share,
                  self.second.dropdown):
            w.observe(lambda _: self._changed(), names="value")
        super().__init__([
            widgets.HBox([self.preserve_colors, self.style_scale]),
            widgets.HBox([self.use_second, self.second, self.share]),
            self.coarse_to_fine,
        ])
        self.add_class("nst-controls")
        self._enable_second()

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every change of a control."""
        self._listeners.append(callback)

    def style_blend(self) -> Optional[List[float]]:
        """The two styles' blend weights (first, second), or None with one style."""
        if not self.use_second.value:
            return None
        share = round(float(self.share.value), 2)  # the slider's steps, without the browser's float noise
        return [round(1.0 - share, 2), share]

    def config(self, size: int) -> Dict[str, object]:
        """The keyword arguments the controls set away from their defaults (``size``: the result's longer side,
        for the coarse-to-fine sizes). The second style itself is the panel's to add to ``style``."""
        cfg: Dict[str, object] = {}
        if self.preserve_colors.value != "plain":
            cfg["preserve_colors"] = self.preserve_colors.value
        scale = round(float(self.style_scale.value), 2)
        if scale != 1.0:
            cfg["style_scale"] = scale
        blend = self.style_blend()
        if blend is not None:
            cfg["style_blend"] = blend
        scales = scales_for(size, int(self.coarse_to_fine.value))
        if scales is not None:
            cfg["scales"] = scales
        return cfg

    def _enable_second(self) -> None:
        off = not self.use_second.value
        self.second.dropdown.disabled = off
        self.second.upload.disabled = off
        self.share.disabled = off

    def _changed(self) -> None:
        self._enable_second()
        for callback in list(self._listeners):
            callback()
