"""The feature-map explorer: an image and a layer -> the average feature map, the most active channels and the
Gram matrix as a heat map (lesson 6 and the playground, lesson 12)."""

from __future__ import annotations

import html
import os
from typing import Optional, Union

import ipywidgets as widgets

from ..errors import NSTError
from ..images import load_image
from ..vgg import LAYERS, load_vgg19, min_image_side, resolve_layer
from ._common import default_size, figure, figure_png, one_line, pyplot_png, show_message, weights_html
from .image_picker import ImagePicker

_DPI = 80
# Figure sizes in inches (at _DPI): the average map, the Gram matrix, the width of the grid of channels.
_AVERAGE = (3.6, 3.2)
_GRAM = (4.4, 3.6)
_CHANNELS_WIDTH = 7.0


class FeatureMapExplorer(widgets.VBox):
    """An image and a layer -> the average feature map, the most active channels, and the Gram matrix heat map."""

    def __init__(self, image=None, layer: str = "relu1_1", *, size: Optional[int] = None, k: int = 8,
                 weights: Optional[str] = None, model=None, device=None,
                 upload_dir: Union[str, os.PathLike] = "uploads") -> None:
        from ..images import DEFAULT_CONTENT

        self.model = model if model is not None else load_vgg19(weights, device=device)
        self.device = device
        self.message = widgets.HTML()
        self.image = ImagePicker("image", image if image is not None else DEFAULT_CONTENT,
                                 message_widget=self.message, upload_dir=upload_dir)
        self.layer = widgets.Dropdown(options=[(l.label, l.name) for l in LAYERS], value=resolve_layer(layer).name,
                                      description="Layer", layout=widgets.Layout(width="260px"))
        self.layer.add_class("nst-explorer-layer")
        self.size = widgets.BoundedIntText(value=size or default_size(), min=16, max=1024, description="Size (px)",
                                           layout=widgets.Layout(width="170px"))
        self.k = widgets.IntSlider(value=k, min=1, max=32, description="Channels",
                                   layout=widgets.Layout(width="300px"))
        self.info = widgets.HTML()
        # Shown at the size they are drawn (80 dpi), so that their text is as large as the notebook's.
        self.average = widgets.Image(format="png", layout=widgets.Layout(width=f"{_AVERAGE[0] * _DPI:.0f}px"))
        self.gram = widgets.Image(format="png", layout=widgets.Layout(width=f"{_GRAM[0] * _DPI:.0f}px"))
        self.channels = widgets.Image(format="png", layout=widgets.Layout(width=f"{_CHANNELS_WIDTH * _DPI:.0f}px"))
        self.pictures = widgets.VBox([widgets.HBox([self.average, self.gram]), self.channels])
        self.updates = 0
        for w in (self.layer, self.size, self.k, self.image.dropdown):
            w.observe(lambda _: self.update(), names="value")
        super().__init__([
            widgets.HTML(weights_html(self.model)),
            widgets.HBox([self.image, self.layer]),
            widgets.HBox([self.size, self.k]),
            self.info,
            self.pictures,
            self.message,
        ])
        self.add_class("nst-explorer")
        self.update()

    def update(self) -> None:
        """Recompute the three pictures for the chosen image and layer."""
        from ..feature_maps import average_feature_map, layer_activations, most_active_channels

        layer = resolve_layer(self.layer.value)
        try:
            image = load_image(self.image.path, int(self.size.value), role="image")
            need = min_image_side([layer.name])
            if min(image.shape[-2:]) < need:
                raise NSTError(f"the image is {image.shape[-2]}×{image.shape[-1]} px, too small for {layer.name}: "
                               f"it needs at least {need} px on each side; raise Size")
            activation = layer_activations(image, [layer.name], model=self.model)[layer.name]
            average = average_feature_map(image, layer.name, model=self.model)
            indices, maps = most_active_channels(image, layer.name, k=int(self.k.value), model=self.model)
        except Exception as exc:  # noqa: BLE001 - one line for the student
            show_message(self.message, f"Feature maps not shown: {one_line(exc)}", "error")
            # The pictures of the previous image or layer would read as this one's: hide them with their caption.
            self.pictures.layout.display = "none"
            self.info.value = ""
            return
        show_message(self.message, "")
        self.pictures.layout.display = None
        self._draw(layer, activation, average, indices, maps)
        self.updates += 1

    def _draw(self, layer, activation, average, indices, maps) -> None:
        from ..feature_maps import plot_channels, plot_gram

        random_note = " (random weights)" if not getattr(self.model, "is_pretrained", True) else ""
        c, h, w = activation.shape
        self.info.value = (f"<code>{html.escape(layer.label)}</code>: {c} channels of {h}×{w} "
                           f"(receptive field {layer.receptive_field} px, stride {layer.stride}); "
                           f"Gram matrix {c}×{c}{random_note}")

        fig = figure(*_AVERAGE, dpi=_DPI)
        ax = fig.add_subplot(1, 1, 1)
        shown = ax.imshow(average.numpy(), cmap="viridis")
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(f"average of {c} channels{random_note}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.tight_layout()
        self.average.value = figure_png(fig)

        fig = figure(*_GRAM, dpi=_DPI)
        fig.set_layout_engine("constrained")
        ax = fig.add_subplot(1, 1, 1)
        plot_gram(activation, layer=layer.name, ax=ax)
        # The layer is named in the line above; a short title stays clear of the colour bar's "1e-5" above it.
        ax.set_title(f"Gram matrix ({c}×{c})", fontsize=9)
        self.gram.value = figure_png(fig)

        ncols = 4
        fig = plot_channels(indices, maps, layer=layer.name, ncols=ncols)
        rows = (len(indices) + ncols - 1) // ncols
        panel = _CHANNELS_WIDTH / ncols  # each map's width; its height follows the map's shape, plus its title
        fig.set_size_inches(_CHANNELS_WIDTH, rows * (panel * h / w + 0.35) + 0.5)
        fig.tight_layout()
        fig.set_dpi(_DPI)
        self.channels.value = pyplot_png(fig)
