"""The known recipes: which layers, which weights, which loss convention and which starting image.

Introduced in lesson 4 (Losses); used by :func:`nstutil.style_transfer`, the command line and the widgets.
Each recipe is stated as its source states it; see ``shared`` NOTES §2 and the lesson for the differences.
:func:`resolve_recipe` applies a caller's overrides to a preset and checks every value once.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

from .errors import NSTError
from .losses import CONVENTIONS, STYLE_STATISTICS
from .vgg import resolve_layer

__all__ = ["GATYS_STYLE_LAYERS", "Preset", "PRESETS", "get_preset", "resolve_recipe", "LayerSpec", "INIT_CHOICES",
           "TV_INPUTS", "OPTIMIZERS", "PARAMETRISATIONS", "OPTIMIZER_SETTINGS"]

INIT_CHOICES: Tuple[str, ...] = ("content", "noise", "blend")
# What the total-variation term measures: the [0, 1] RGB image, or the network's input (the image normalised as the
# network expects it, which is what d2l computes its TV on: ImageNet-normalised, each channel divided by its std).
TV_INPUTS: Tuple[str, ...] = ("image", "network_input")
OPTIMIZERS: Tuple[str, ...] = ("lbfgs", "adam")
# What the optimiser changes (lesson 5, nstutil.optimisation): "squash", a variable whose stretched sigmoid is the
# image, so the network never sees a pixel far outside [0, 1]; or "network_input", the normalised image the network
# sees, unconstrained (d2l's SynthesizedImage: the ImageNet-normalised picture itself is the parameter).
PARAMETRISATIONS: Tuple[str, ...] = ("squash", "network_input")
# A preset's learning rate and schedule belong to its optimiser: choosing another optimiser drops them (each then
# takes that optimiser's default) unless they are chosen too.
OPTIMIZER_SETTINGS: Tuple[str, ...] = ("lr", "lr_decay", "lr_decay_every")

LayerSpec = Union[None, str, Sequence[str], Mapping[str, float]]

#: Gatys et al.'s style layers (relu1_1 … relu5_1), the deep presets' and the weights check's.
GATYS_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@dataclass(frozen=True)
class Preset:
    """A complete style-transfer recipe. Layer weights map a layer name (either scheme) to its weight."""

    name: str
    description: str
    content_layers: Mapping[str, float]
    style_layers: Mapping[str, float]
    content_weight: float
    style_weight: float
    tv_weight: float = 0.0
    convention: str = "tutorial"
    init: str = "content"
    style_statistic: str = "gram"
    tv_p: float = 2.0
    tv_input: str = "image"
    optimizer: str = "lbfgs"
    lr: Optional[float] = None          # None: the optimiser's default (nstutil.optimisation.DEFAULT_LR)
    lr_decay: float = 1.0               # Adam's learning rate is multiplied by this every lr_decay_every steps
    lr_decay_every: int = 0             # 0: never
    parametrisation: str = "squash"


PRESETS: Dict[str, Preset] = {
    "tutorial": Preset(
        name="tutorial",
        description="The PyTorch neural-style tutorial: content conv_4 (= conv2_2), style conv_1..conv_5 "
                    "(= conv1_1, conv1_2, conv2_1, conv2_2, conv3_1), style weight 1e6, content weight 1, "
                    "starting from the content image.",
        content_layers={"conv_4": 1.0},
        style_layers={f"conv_{i}": 1.0 for i in range(1, 6)},
        content_weight=1.0,
        style_weight=1e6,
        convention="tutorial",
        init="content",
    ),
    "gatys": Preset(
        name="gatys",
        description="Gatys, Ecker & Bethge (2015): content relu4_2, style relu1_1..relu5_1 with w_l = 1/5, "
                    "alpha/beta = 1e-3, the paper's losses (1/2 sum of squares; sum/(4 N^2 M^2)), from white noise.",
        content_layers={"relu4_2": 1.0},
        style_layers={name: 0.2 for name in GATYS_STYLE_LAYERS},
        content_weight=1.0,
        style_weight=1e3,
        convention="gatys",
        init="noise",
    ),
    "coursera": Preset(
        name="coursera",
        description="The deeplearning.ai assignment, its TensorFlow 2 version (the one public now): content "
                    "block5_conv4 (Keras' conv output is after its ReLU, so relu5_4), style relu1_1..relu5_1 with 0.2 "
                    "each, alpha = 10, beta = 40, its normalised losses, from the content image plus uniform noise "
                    "in [-0.25, 0.25], clipped to [0, 1] (init 'blend'). That version feeds raw [0, 1] RGB to the "
                    "Caffe-trained VGG19; nstutil feeds the network the input its weights expect.",
        content_layers={"relu5_4": 1.0},
        style_layers={name: 0.2 for name in GATYS_STYLE_LAYERS},
        content_weight=10.0,
        style_weight=40.0,
        convention="coursera",
        init="blend",
    ),
    "jcjohnson": Preset(
        name="jcjohnson",
        description="jcjohnson/neural-style's defaults: content relu4_2, style relu1_1..relu5_1, content weight 5, "
                    "style weight 100; Gram / (C H W) with mean-squared errors, which is the 'tutorial' convention "
                    "for one image. Its weights were tuned for the Caffe VGG19 (weights='caffe'). Two things "
                    "differ from its code: its total variation (weight 1e-3) is 1/2 the sum of squared neighbour "
                    "differences of its 0-256 Caffe image, about 1e5 x H x W times nstutil's mean on the [0, 1] "
                    "image, so tv_weight 1e-3 here is a far weaker term; and its -init random starts from the "
                    "ImageNet mean colour plus Gaussian noise of standard deviation 0.001 in those units (an almost "
                    "flat image), where nstutil's 'noise' is uniform in [0, 1].",
        content_layers={"relu4_2": 1.0},
        style_layers={name: 1.0 for name in GATYS_STYLE_LAYERS},
        content_weight=5.0,
        style_weight=100.0,
        tv_weight=1e-3,
        convention="tutorial",
        init="noise",
    ),
    "d2l": Preset(
        name="d2l",
        description="Dive into Deep Learning, 'Neural Style Transfer' (PyTorch code): the layers its code really "
                    "reads — torchvision's ReLUs work in place, so the outputs it keeps at features 0, 5, 10, 19 "
                    "and 25 are relu1_1, relu2_1, relu3_1, relu4_1 and relu4_4, and only conv5_1 (features 28, the "
                    "last module it runs) stays a convolution output; style weight 1e4 on each, content weight 1 "
                    "(relu4_4); Gram / (C H W) with mean-squared errors ('tutorial' convention); total variation "
                    "1/2 (mean|dx| + mean|dy|) on the ImageNet-normalised image with weight 10 (here p = 1, "
                    "tv_input 'network_input' and tv_weight 5 = 10 x 1/2); from the content image; minimised as "
                    "d2l does: Adam with learning rate 0.3, times 0.8 every 50 steps (its StepLR), on the "
                    "ImageNet-normalised pixels themselves, unconstrained (parametrisation 'network_input'). d2l "
                    "runs 500 steps: give steps=500 to run its whole loop. d2l keeps its last image, nstutil hands "
                    "back the lowest-loss one.",
        content_layers={"relu4_4": 1.0},
        style_layers={name: 1.0 for name in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "conv5_1")},
        content_weight=1.0,
        style_weight=1e4,
        tv_weight=5.0,
        convention="tutorial",
        init="content",
        tv_p=1.0,
        tv_input="network_input",
        optimizer="adam",
        lr=0.3,
        lr_decay=0.8,
        lr_decay_every=50,
        parametrisation="network_input",
    ),
    "gatys-notebook": Preset(
        name="gatys-notebook",
        description="leongatys/PytorchNeuralStyleTransfer (NeuralStyleTransfer.ipynb): content relu4_2 (weight "
                    "1), style relu1_1..relu5_1, Gram / M with a mean-squared error (its GramMSELoss is C^2 times "
                    "the 'tutorial' style loss), style weights 1e3 / C^2 per layer — which makes 1e3 on each "
                    "layer's 'tutorial' loss — from the content image. Its network is the Caffe VGG19 on BGR "
                    "0-255 mean-subtracted input: use weights='caffe'.",
        content_layers={"relu4_2": 1.0},
        style_layers={name: 1.0 for name in GATYS_STYLE_LAYERS},
        content_weight=1.0,
        style_weight=1e3,
        convention="tutorial",
        init="content",
    ),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name raises an error listing the presets."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise NSTError(f"unknown preset {name!r}: use one of {', '.join(PRESETS)}") from None


def check_weight(value: float, what: str) -> float:
    """``value`` as a float, or an :class:`NSTError` naming ``what`` unless it is a finite number >= 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise NSTError(f"{what} {value!r} is not a number: give a finite number >= 0") from None
    if not math.isfinite(number) or number < 0:
        raise NSTError(f"{what} is {value!r}: give a finite number >= 0")
    return number


def layer_weights(layers: LayerSpec, what: str) -> Dict[str, float]:
    """``{layer: weight}`` from a name, a list of names (weight 1 each) or a mapping; every name checked."""
    if isinstance(layers, str):
        layers = [layers]
    pairs = list(layers.items()) if isinstance(layers, Mapping) else [(name, 1.0) for name in layers]
    weights: Dict[str, float] = {}
    for name, weight in pairs:
        resolve_layer(name)
        weights[name] = check_weight(weight, f"{what} weight for {name}")
    return weights


def resolve_recipe(preset: str = "tutorial", **choices: object) -> Preset:
    """Preset ``preset`` with every choice that is not ``None`` replaced, all checked.

    The choices are :class:`Preset`'s fields (``content_layers``, ``style_layers``, ``content_weight``,
    ``style_weight``, ``tv_weight``, ``convention``, ``init``, ``style_statistic``, ``tv_p``, ``tv_input``,
    ``optimizer``, ``lr``, ``lr_decay``, ``lr_decay_every``, ``parametrisation``; :class:`nstutil.settings.RecipeChoice`
    holds them typed). Layers become ``{name: weight}`` dicts (names kept as given, in either scheme); weights must be
    finite and >= 0. ``init`` may be any starting image :func:`~nstutil.style_transfer` accepts, so it is not checked
    here. Choosing an ``optimizer`` other than the preset's drops the preset's ``lr`` and schedule (they were set
    for its optimiser) unless they are chosen too. Introduced in lesson 5.
    """
    recipe = get_preset(preset)
    settable = [f.name for f in dataclasses.fields(Preset) if f.name not in ("name", "description")]
    unknown = sorted(set(choices) - set(settable))
    if unknown:
        raise NSTError(f"resolve_recipe got unknown setting(s) {', '.join(unknown)}: use {', '.join(settable)}")
    chosen = {k: v for k, v in choices.items() if v is not None}
    if chosen.get("optimizer", recipe.optimizer) != recipe.optimizer:
        defaults = {f.name: f.default for f in dataclasses.fields(Preset) if f.name in OPTIMIZER_SETTINGS}
        chosen = {**defaults, **chosen}
    recipe = dataclasses.replace(recipe, **chosen)
    _check_optimiser(recipe)
    if recipe.convention not in CONVENTIONS:
        raise NSTError(f"unknown loss convention {recipe.convention!r}: use one of {', '.join(CONVENTIONS)}")
    if recipe.tv_input not in TV_INPUTS:
        raise NSTError(f"tv_input {recipe.tv_input!r} is not known: use one of {', '.join(TV_INPUTS)}")
    tv_p = check_weight(recipe.tv_p, "tv_p")
    if tv_p == 0:
        raise NSTError("tv_p is 0: give a power > 0 (2: squared differences, 1: absolute differences)")
    if recipe.style_statistic not in STYLE_STATISTICS:
        raise NSTError(f"style statistic {recipe.style_statistic!r} is not known: use one of "
                       f"{', '.join(STYLE_STATISTICS)}")
    return dataclasses.replace(
        recipe,
        content_layers=layer_weights(recipe.content_layers, "content layer"),
        style_layers=layer_weights(recipe.style_layers, "style layer"),
        content_weight=check_weight(recipe.content_weight, "content_weight"),
        style_weight=check_weight(recipe.style_weight, "style_weight"),
        tv_weight=check_weight(recipe.tv_weight, "tv_weight"),
        tv_p=tv_p,
    )


def _check_optimiser(recipe: Preset) -> None:
    """One clear line for a bad optimiser setting of ``recipe``."""
    if recipe.optimizer not in OPTIMIZERS:
        raise NSTError(f"optimizer {recipe.optimizer!r} is not known: use one of {', '.join(OPTIMIZERS)}")
    if recipe.parametrisation not in PARAMETRISATIONS:
        raise NSTError(f"parametrisation {recipe.parametrisation!r} is not known: use one of "
                       f"{', '.join(PARAMETRISATIONS)}")
    lr = recipe.lr
    if lr is not None and not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr)
                               and lr > 0):
        raise NSTError(f"lr is {lr!r}: give a finite learning rate > 0")
    decay = recipe.lr_decay
    if not (isinstance(decay, (int, float)) and not isinstance(decay, bool) and math.isfinite(decay) and decay > 0):
        raise NSTError(f"lr_decay is {decay!r}: give a finite factor > 0 (0.8: the learning rate times 0.8)")
    every = recipe.lr_decay_every
    if isinstance(every, bool) or not isinstance(every, int) or every < 0:
        raise NSTError(f"lr_decay_every is {every!r}: give a whole number of steps >= 0 (0: never)")
    if recipe.optimizer == "lbfgs" and every and decay != 1:
        raise NSTError("lr_decay and lr_decay_every schedule Adam's learning rate; L-BFGS takes its step length "
                       "from its line search: give optimizer='adam' or leave the schedule out")
