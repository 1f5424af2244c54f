"""A run's inputs: the images checked and loaded once, then brought to each scale, with the colour controls.

Introduced in lesson 8 (Controlling the result). :func:`prepare` checks the recipe and loads the content, style and
mask images at the result's size; :meth:`RunInputs.at_scale` gives them at a coarser scale (styles keep their size
relative to the content); :func:`network_images` applies the colour control (Gatys et al. 2017) to what the network
compares, and :func:`presenter` puts the content's colours back on what the user sees. :mod:`nstutil.transfer` runs
the optimisation on them.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch

from .colour import PRESERVE_COLORS, combine_luminance, grey, luminance, match_histogram, match_luminance
from .errors import NSTError
from .images import ImageLike, Size, load_image, resize_image, scaled_shape
from .objective import normalised_blend
from .presets import INIT_CHOICES, LayerSpec, Preset
from .regions import MaskLike, load_masks
from .settings import Controls, RecipeChoice
from .vgg import min_image_side, resolve_layer

__all__ = ["InputPaths", "RunInputs", "PreparedRun", "prepare", "plan_scales", "start_image", "network_images",
           "presenter", "check_size", "is_init_path", "whole_number", "BLEND_NOISE"]

# init="blend" is deeplearning.ai's start in its TensorFlow 2 assignment (the version public now): the content image
# plus uniform noise in [-BLEND_NOISE, BLEND_NOISE], clipped to [0, 1]. (Its 2018 TensorFlow 1 version blended
# 0.6 x U(-20, 20) with 0.4 x the mean-subtracted content, in 0-255 units: another start, not reproduced here.)
BLEND_NOISE = 0.25


@dataclass
class InputPaths:
    """Where a run's pictures came from (None for an image given as a tensor)."""

    content: Optional[str] = None
    styles: List[Optional[str]] = field(default_factory=list)
    masks: Optional[List[Optional[str]]] = None


@dataclass
class RunInputs:
    """The checked images of a run at full size, before any colour transform."""

    content: Optional[torch.Tensor]
    styles: List[torch.Tensor]
    masks: Optional[List[torch.Tensor]]
    size: Tuple[int, int]                       # (H, W) of the result
    paths: InputPaths

    def at_scale(self, scale: int) -> "RunInputs":
        """The same images for a result whose longer side is ``scale`` (styles keep their size relative to it)."""
        shape = scaled_shape(self.size, scale)
        factor = scale / max(self.size)
        return RunInputs(
            content=None if self.content is None else resize_image(self.content, shape),
            styles=[resize_image(s, max(1, round(max(s.shape[-2:]) * factor))) for s in self.styles],
            masks=None if self.masks is None else [resize_image(m, shape) for m in self.masks],
            size=shape, paths=self.paths)


@dataclass
class PreparedRun:
    """What :func:`prepare` gives: the resolved recipe, the images at full size, the normalised blend, the start."""

    recipe: Preset
    inputs: RunInputs
    blend: List[float]
    init: Union[str, os.PathLike, torch.Tensor]


def image_input(image: ImageLike, size: Size, role: str) -> Tuple[torch.Tensor, Optional[str]]:
    """A checked 1×3×H×W image in [0, 1] (resized to ``size`` if given) and its path, from a tensor or a file."""
    if isinstance(image, torch.Tensor):
        if image.dim() != 4 or image.shape[:2] != (1, 3):
            raise NSTError(f"{role} has shape {tuple(image.shape)}: pass 1×3×H×W (as load_image returns) or a path")
        if not torch.isfinite(image).all():
            raise NSTError(f"{role} contains NaN or infinite pixels: pass an image with values in [0, 1]")
        image = image.detach().float().clamp(0.0, 1.0)
        return (image if size is None else resize_image(image, size, role=role)), None
    return load_image(image, size, role=role), os.fspath(image)


def check_size(image: torch.Tensor, layers: Sequence[str], role: str) -> None:
    """An :class:`NSTError` naming ``role`` if ``image`` is too small for the deepest of ``layers``."""
    layers = list(layers)
    need = min_image_side(layers)
    height, width = image.shape[-2:]
    if min(height, width) < need:
        deepest = max(layers, key=lambda n: resolve_layer(n).index)
        raise NSTError(f"{role} is {width}×{height} px but layer {deepest} needs at least {need} px on each side: "
                       f"use a larger size or a shallower layer")


def _positive_number(value: object, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise NSTError(f"{what} {value!r} is not a number: give a number > 0, e.g. 1.0") from None
    if not (math.isfinite(number) and number > 0):
        raise NSTError(f"{what} is {value!r}: give a finite number > 0, e.g. 0.5 for a finer style")
    return number


def whole_number(value: object, what: str) -> int:
    """``value`` if it is a whole number >= 1 (not a bool), else an :class:`NSTError` naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NSTError(f"{what} is {value!r}: give a whole number >= 1")
    return value


def plan_scales(scales: Optional[Sequence[int]], steps: Union[int, Sequence[int]],
                 longer: int) -> Tuple[List[int], List[int]]:
    """The sizes to optimise at (increasing, ending at the result's longer side) and the evaluations at each."""
    if scales is None:
        sizes = [longer]
    else:
        if isinstance(scales, (int, str)):
            raise NSTError(f"scales is {scales!r}: give a list of sizes (longer sides, px), e.g. [128, 256, 512]")
        sizes = [whole_number(s, "a scale") for s in scales]
        if not sizes or any(b <= a for a, b in zip(sizes, sizes[1:])):
            raise NSTError(f"scales {list(scales)} are not increasing: give increasing sizes, e.g. [128, 256, 512]")
        if sizes[-1] > longer:
            raise NSTError(f"scale {sizes[-1]} is past the result's size ({longer} px): the last scale is the "
                           f"result's size; give smaller scales or a larger size")
        if sizes[-1] < longer:
            sizes.append(longer)
    if isinstance(steps, (list, tuple)):
        counts = [whole_number(n, "steps") for n in steps]
        if len(counts) != len(sizes):
            raise NSTError(f"steps has {len(counts)} numbers for {len(sizes)} scales ({', '.join(map(str, sizes))}):"
                           f" give one number, or one per scale")
    else:
        counts = [whole_number(steps, "steps")] * len(sizes)
    return sizes, counts


def load_inputs(content: Optional[ImageLike], styles: List[ImageLike], *, size: Size, style_size: Size,
                 style_scale: float, style_masks: Optional[Sequence[MaskLike]]) -> RunInputs:
    """The content (at ``size``), style (at ``style_size``, else the result's size, times ``style_scale``) and
    mask images (at the result's size), loaded once; without a content image the result has the first style
    image's shape."""
    paths = InputPaths()
    content_image = None
    style_images = []
    if content is not None:
        content_image, paths.content = image_input(content, size, "content image")
    for k, style in enumerate(styles):
        # One resampling from the file: the style at (style_size, else the result's size) × style_scale.
        if style_size is not None:
            target = style_size
        elif isinstance(style, torch.Tensor):
            target = max(style.shape[-2:])
        else:
            target = max(content_image.shape[-2:]) if content_image is not None else size
        if style_scale != 1.0:
            target = _times(target if target is not None else max(load_image(style).shape[-2:]), style_scale)
        image, path = image_input(style, target, "style image" if len(styles) == 1 else f"style image {k + 1}")
        style_images.append(image)
        paths.styles.append(path)
    if content_image is not None:
        shape = tuple(content_image.shape[-2:])
    elif isinstance(size, (tuple, list)):  # texture synthesis: the result has the first style image's shape
        shape = (int(size[0]), int(size[1]))
    else:
        first = tuple(style_images[0].shape[-2:])
        shape = scaled_shape(first, int(size) if size is not None else round(max(first) / style_scale))
    masks = None
    if style_masks is not None:
        masks, paths.masks = load_masks(style_masks, len(style_images), shape)
    return RunInputs(content_image, style_images, masks, shape, paths)


def _times(size: Union[int, Sequence[int]], factor: float) -> Union[int, Tuple[int, int]]:
    """A size (longer side, or (height, width)) multiplied by ``factor``, at least 1 pixel."""
    if isinstance(size, (tuple, list)):
        return tuple(max(1, round(int(s) * factor)) for s in size)
    return max(1, round(int(size) * factor))


def is_init_path(init: object) -> bool:
    """Whether ``init`` names a picture rather than one of :data:`INIT_CHOICES`."""
    if isinstance(init, os.PathLike):
        return True
    return isinstance(init, str) and init not in INIT_CHOICES and (
        os.path.exists(init) or os.sep in init or bool(os.path.splitext(init)[1]))


def start_image(init: Union[str, ImageLike], full: RunInputs, first: RunInputs, seed: int) -> torch.Tensor:
    """The starting image at the first scale's size (``first``); a given image must have the result's size."""
    if isinstance(init, torch.Tensor):
        image, _ = image_input(init, None, "init image")
        if tuple(image.shape[-2:]) != full.size:
            raise NSTError(f"init image has shape {tuple(image.shape)}, the result {(1, 3, *full.size)}: give a "
                           f"starting image of the content image's size (or a path: it is resized)")
        return resize_image(image, first.size)
    if is_init_path(init):
        return load_image(init, first.size, role="init image")
    if init not in INIT_CHOICES:
        raise NSTError(f"init {init!r} is not known: use one of {', '.join(INIT_CHOICES)}, an image tensor or the "
                       f"path of a picture")
    if init != "noise" and first.content is None:
        raise NSTError(f"init {init!r} needs a content image: use init='noise' for texture synthesis")
    if init == "content":
        return first.content.clone()
    noise = torch.rand((1, 3, *first.size), generator=torch.Generator().manual_seed(seed))
    if init == "noise":
        return noise
    return (first.content + BLEND_NOISE * (2.0 * noise - 1.0)).clamp(0.0, 1.0)


def network_images(inputs: RunInputs, preserve_colors: Optional[str]) -> Tuple[Optional[torch.Tensor],
                                                                              List[torch.Tensor]]:
    """The content and style images the network compares, after the colour control (Gatys et al. 2017)."""
    content, styles = inputs.content, inputs.styles
    if preserve_colors == "luminance":
        return grey(luminance(content)), [match_luminance(s, content) for s in styles]
    if preserve_colors == "histogram":
        return content, [match_histogram(s, content) for s in styles]
    return content, styles


def presenter(inputs: RunInputs, preserve_colors: Optional[str]) -> Optional[Callable[[torch.Tensor],
                                                                                      torch.Tensor]]:
    """What turns an optimised image into the picture shown: for luminance-only transfer, the content's colours
    put back onto the result's luminance."""
    if preserve_colors != "luminance":
        return None
    content = inputs.content
    return lambda image: combine_luminance(image, content.to(image.device))


def _recipe_for(recipe: Preset, content: object, styles: list, content_layers: LayerSpec,
                style_layers: LayerSpec) -> Preset:
    """The recipe without the layers of an image that is not there (content or texture reconstruction)."""
    if content is None:
        if content_layers:
            raise NSTError("content_layers are given but there is no content image: pass a content image, or "
                           "content_layers=[] for texture synthesis")
        recipe = dataclasses.replace(recipe, content_layers={})
    if not styles:
        if style_layers:
            raise NSTError("style_layers are given but there is no style image: pass a style image, or "
                           "style_layers=[] for a content reconstruction")
        recipe = dataclasses.replace(recipe, style_layers={})
    elif not recipe.style_layers:
        raise NSTError("style_layers is empty, so the style image would not be used: give at least one style layer, "
                       "e.g. ['relu1_1', 'relu2_1'], or style=None for a content reconstruction")
    if not recipe.content_layers and not recipe.style_layers:
        raise NSTError("no content layers and no style layers: give at least one layer to compare, e.g. "
                       "style_layers=['relu1_1', 'relu2_1']")
    return recipe


def prepare(content: Optional[ImageLike], style: Union[None, ImageLike, Sequence[ImageLike]], *, preset: str,
            recipe: RecipeChoice, controls: Controls, init: Union[None, str, os.PathLike, torch.Tensor],
            size: Size, style_size: Size) -> PreparedRun:
    """Everything checked and loaded once, before the network runs."""
    styles = [] if style is None else list(style) if isinstance(style, (list, tuple)) else [style]
    if content is None and not styles:
        raise NSTError("no content image and no style image: give at least one of them")
    resolved = _recipe_for(recipe.resolve(preset), content, styles, recipe.content_layers, recipe.style_layers)
    if init is None:
        init = resolved.init if content is not None else "noise"
    preserve_colors = controls.preserve_colors
    if preserve_colors is not None:
        if preserve_colors not in PRESERVE_COLORS:
            raise NSTError(f"preserve_colors {preserve_colors!r} is not known: use one of "
                           f"{', '.join(map(repr, PRESERVE_COLORS))} or None")
        if content is None or not styles:
            raise NSTError(f"preserve_colors={preserve_colors!r} needs a content image and a style image")
    scale = 1.0 if controls.style_scale is None else _positive_number(controls.style_scale, "style_scale")
    blend = normalised_blend(controls.style_blend, len(styles)) if styles else []
    inputs = load_inputs(content, styles, size=size, style_size=style_size, style_scale=scale,
                         style_masks=controls.style_masks)
    return PreparedRun(resolved, inputs, blend, init)
