"""nstutil: neural style transfer (Gatys et al.) for teaching.

The notebooks in ``notebooks/`` teach the method lesson by lesson; this package holds the real code they call:
images (:mod:`nstutil.images`), the VGG19 layer table and features (:mod:`nstutil.vgg`), the losses
(:mod:`nstutil.losses`; the engine's fast paths in :mod:`nstutil.fast`), the recipes (:mod:`nstutil.presets`), a
run's settings (:mod:`nstutil.settings`), where it runs (:mod:`nstutil.device`), what the loss of an image is
(:mod:`nstutil.objective`) and of a batch (:mod:`nstutil.perceptual`), how it is minimised
(:mod:`nstutil.optimisation`), style transfer in one call with its controls (:mod:`nstutil.transfer`,
:mod:`nstutil.colour`, :mod:`nstutil.regions`), feature maps (:mod:`nstutil.feature_maps`), the lessons' shared set-up
(:mod:`nstutil.lesson`), the widgets (:mod:`nstutil.widgets`) and the command line (:mod:`nstutil.cli`).
"""

from .device import resolve_device
from .environment import env_int
from .errors import NSTError
from .images import (DEFAULT_CONTENT, DEFAULT_STYLE, IMAGES_DIR, check_writable, image_path, load_image,
                     resize_image, save_image, show_images, to_pil)
from .losses import (CONVENTIONS, STYLE_STATISTICS, channel_statistics, content_loss, gram_matrix, mean_std_loss,
                     style_loss, total_variation_loss)
from .objective import LossRecord, Objective
from .optimisation import Evaluation
from .perceptual import BatchLoss, PerceptualLoss
from .presets import PRESETS, Preset, get_preset, resolve_recipe
from .transfer import TransferResult, build_objective, style_transfer
from . import lesson  # noqa: E402  (the lessons' shared set-up: nstutil.lesson.setup)
from .vgg import LAYERS, LayerInfo, VGGFeatures, WeightsWarning, layer_names, load_vgg19, min_image_side, resolve_layer
# Binds nstutil.adain to the function (the fusion); the module is nstutil.adain in sys.modules, so
# "from nstutil.adain import Decoder" works, while "import nstutil.adain as m" would give the function.
from .adain import adain, stylize_arbitrary  # noqa: E402  (also registers the decoder's network-file kind)

__version__ = "0.1.0"

__all__ = [
    "NSTError", "DEFAULT_CONTENT", "DEFAULT_STYLE", "IMAGES_DIR", "check_writable", "image_path", "load_image",
    "resize_image", "save_image", "show_images", "to_pil", "CONVENTIONS", "STYLE_STATISTICS", "channel_statistics",
    "content_loss", "gram_matrix", "mean_std_loss", "style_loss", "total_variation_loss", "Objective", "PRESETS",
    "Preset", "get_preset", "resolve_recipe", "Evaluation", "LossRecord", "TransferResult", "build_objective",
    "style_transfer", "LAYERS", "LayerInfo", "VGGFeatures", "WeightsWarning", "layer_names", "load_vgg19",
    "min_image_side", "resolve_layer", "PerceptualLoss", "BatchLoss", "resolve_device", "env_int", "lesson", "adain",
    "stylize_arbitrary",
]
