"""Jupyter widgets for experimenting with neural style transfer (lessons 5, 6 and the playground, lesson 12).

- :class:`LayerChooser` (``chooser.py``) — every VGG19 layer as a content and/or style layer, grouped by block and
  named in both schemes, a weight per chosen layer, α and β as exact numbers beside logarithmic sliders
  (``weight_slider.py``), the presets, and the resulting ``nstutil.style_transfer(...)`` call to paste;
  :meth:`LayerChooser.config` returns its keyword arguments.
- :class:`RunPanel` (``run_panel.py``) — content and style images (bundled or uploaded, ``image_picker.py``), the
  controls of lesson 8 (colours, style scale, a second style, coarse-to-fine: ``controls.py``), Run / Stop / Save,
  a progress bar, a live preview, a live loss plot (``loss_plot.py``) and evaluations per second. A run goes in a
  background thread so that the kernel stays free to receive the Stop click; ``run(wait=True)`` blocks instead (for
  notebooks run by nbval/CI). The optimisation never draws: ``live.py`` draws from its own thread.
- :class:`FeatureMapExplorer` (``explorer.py``) — an image × a layer → the average feature map, the most active
  channels and the Gram matrix as a heat map.
- :class:`OnePassBox` (``one_pass.py``) — the run panel's *Optimise* | *One pass* mode: a trained style network
  (lesson 10) or AdaIN decoder (lesson 11), given or loaded from its file, styles the content in one pass, timed and
  scored with the optimisation's own objective.
- :func:`playground` (``playground.py``) — chooser and run panel together (lesson 12); ``network=`` starts it in
  one pass.

Everything works with untrained weights (``NSTUTIL_WEIGHTS=random``) and says so visibly.
Plots are drawn with matplotlib's Agg canvas into PNG bytes shown by ``widgets.Image``: that updates live in
JupyterLab, and passes nbval (see NOTES.md §6).
"""

from ._common import bundled_images, default_size, default_steps
from .chooser import LayerChooser
from .controls import ControlsBox
from .explorer import FeatureMapExplorer
from .image_picker import ImagePicker
from .loss_plot import LossPlot, loss_plot_png
from .one_pass import OnePassBox
from .playground import playground
from .run_panel import RunPanel
from .weight_slider import WeightSlider

__all__ = [
    "LayerChooser",
    "RunPanel",
    "FeatureMapExplorer",
    "ImagePicker",
    "ControlsBox",
    "OnePassBox",
    "WeightSlider",
    "LossPlot",
    "playground",
    "bundled_images",
    "default_size",
    "default_steps",
    "loss_plot_png",
]
