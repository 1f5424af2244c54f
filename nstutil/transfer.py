r"""Style transfer in one call: the images and the controls in, the result out.

Introduced in lesson 5 (Optimisation); the controls in lesson 8 (Controlling the result). :func:`style_transfer`
prepares the images (sizes, several styles, colour, masks), builds an :class:`~nstutil.objective.Objective` per scale
and minimises each with a :class:`~nstutil.optimisation.Minimiser`, the next scale starting from the last one's
best image upsampled (coarse-to-fine). :func:`build_objective` gives the objective alone, to score any image.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from .colour import grey, luminance
from .device import resolve_device
from .errors import NSTError
from .fast import channels_last_weights
from .images import ImageLike, Size, resize_image, save_image, scaled_shape
from .inputs import (PreparedRun, check_size, is_init_path, network_images, plan_scales, prepare, presenter,
                     start_image, whole_number)
from .objective import LossRecord, Objective
from .optimisation import OPTIMIZERS, Evaluation, Minimiser
from .presets import INIT_CHOICES, LayerSpec, Preset
from .regions import MaskLike
from .settings import DEFAULT_STEPS, Controls, RecipeChoice, bind, check_keywords, field_names
from .vgg import VGGFeatures, load_vgg19

__all__ = ["LossRecord", "Evaluation", "TransferResult", "style_transfer", "build_objective", "INIT_CHOICES",
           "OPTIMIZERS"]


@dataclass
class TransferResult:
    """The outcome of :func:`style_transfer`.

    ``image`` is the lowest-loss image evaluated at the last scale reached, at full size (1×3×H×W, CPU, [0, 1]);
    ``history`` has one record per loss evaluation across all scales, ``history[0]`` being the starting image;
    ``stop_reason`` is ``"completed"``, ``"callback"``, ``"interrupted"`` (Ctrl-C) or ``"nonfinite"`` (the loss
    became NaN or infinite); ``message`` says so in words.
    """

    image: torch.Tensor
    history: List[LossRecord]
    stop_reason: str
    best_evaluation: int
    message: str
    settings: Dict[str, object]
    intermediates: List[Tuple[int, torch.Tensor]] = field(default_factory=list)

    @property
    def best_loss(self) -> float:
        """The total loss of :attr:`image` (at the scale it was evaluated)."""
        return self.history[self.best_evaluation].total if self.best_evaluation >= 0 else math.inf

    def save(self, path: Union[str, os.PathLike], *, protect: Sequence[Union[str, os.PathLike]] = (),
             force: bool = False):
        """Write :attr:`image` atomically to ``path``, never over the run's input images (nor over a read-only
        file unless ``force``)."""
        inputs = [p for p in self.settings.get("input_paths", ()) if p]
        return save_image(self.image, path, protect=[*inputs, *protect], force=force)


def build_objective(content: Optional[ImageLike], style: Union[None, ImageLike, Sequence[ImageLike]], *,
                    preset: str = "tutorial", model: Optional[VGGFeatures] = None, weights: Optional[str] = None,
                    device: Union[None, str, torch.device] = None, size: Size = None, style_size: Size = None,
                    preserve_colors: Optional[str] = None, **choices) -> Objective:
    """The :class:`~nstutil.objective.Objective` that :func:`style_transfer` would minimise (at full size), to
    score any image: ``build_objective(content, style, size=256)(image).total``. Takes the same recipe and control
    keywords (``content_layers``, ``style_weight``, ``style_blend``, ``style_masks``, ``style_scale`` …).
    Introduced in lesson 5."""
    check_keywords(choices, RecipeChoice, Controls, where="build_objective")
    device = resolve_device(device, model)
    run = prepare(content, style, preset=preset, recipe=bind(RecipeChoice, choices),
                  controls=bind(Controls, {**choices, "preserve_colors": preserve_colors}), init=None, size=size,
                  style_size=style_size)
    net = model if model is not None else load_vgg19(weights, device=device)
    content_net, styles_net = network_images(run.inputs, preserve_colors)
    return Objective(net, run.recipe, content=content_net, styles=styles_net, style_blend=run.blend,
                     style_masks=run.inputs.masks)


def style_transfer(
    content: Optional[ImageLike],
    style: Union[None, ImageLike, Sequence[ImageLike]],
    *,
    preset: str = "tutorial",
    weights: Optional[Union[str, os.PathLike]] = None,
    content_layers: LayerSpec = None,
    style_layers: LayerSpec = None,
    content_weight: Optional[float] = None,
    style_weight: Optional[float] = None,
    tv_weight: Optional[float] = None,
    convention: Optional[str] = None,
    style_statistic: Optional[str] = None,
    tv_p: Optional[float] = None,
    tv_input: Optional[str] = None,
    optimizer: Optional[str] = None,
    lr: Optional[float] = None,
    lr_decay: Optional[float] = None,
    lr_decay_every: Optional[int] = None,
    parametrisation: Optional[str] = None,
    style_blend: Optional[Sequence[float]] = None,
    style_masks: Optional[Sequence[MaskLike]] = None,
    style_scale: Optional[float] = None,
    preserve_colors: Optional[str] = None,
    scales: Optional[Sequence[int]] = None,
    steps: Union[int, Sequence[int]] = DEFAULT_STEPS,
    init: Union[None, str, os.PathLike, torch.Tensor] = None,
    seed: int = 0,
    size: Size = None,
    style_size: Size = None,
    pooling: str = "max",
    device: Union[None, str, torch.device] = None,
    model: Optional[VGGFeatures] = None,
    callback: Optional[Callable[[Evaluation], Optional[bool]]] = None,
    intermediate_every: Optional[int] = None,
    progress: bool = True,
) -> TransferResult:
    """Make an image with ``content``'s layout and ``style``'s textures (Gatys et al.).

    **Images.** ``content`` and ``style`` are 1×3×H×W tensors in [0, 1] or image paths (resized so the longer side
    is ``size``; the style image to the content's longer side unless ``style_size`` is given). ``style=None``
    reconstructs the content from its layers alone (give ``init="noise"``); ``content=None`` synthesises the style's
    texture alone (the result has the style image's shape, longer side ``size``).

    **Recipe.** Every setting left at ``None`` comes from ``preset`` (see :data:`nstutil.PRESETS`). Layers are a
    name, a list of names (weight 1 each) or a mapping name -> weight, in either naming scheme; either list may be
    empty. ``style_statistic`` is ``"gram"`` or ``"mean_std"`` (channel means and deviations, Li et al. 2017).
    ``tv_p`` is the power of the total variation's neighbour differences (2, or 1 as d2l) and ``tv_input`` what it
    measures (``"image"``, or ``"network_input"``: the normalised image the network sees, as d2l). The optimiser is
    part of the recipe too: ``optimizer`` (``"lbfgs"`` or ``"adam"``), its learning rate ``lr`` (default 1 for
    L-BFGS, 0.05 for Adam), Adam's step schedule (``lr`` times ``lr_decay`` every ``lr_decay_every`` steps, as
    torch's ``StepLR``) and ``parametrisation``: what the optimiser changes, ``"squash"`` (a variable whose
    stretched sigmoid is the image, lesson 5) or ``"network_input"`` (the normalised image itself, unconstrained,
    as d2l). Choosing another optimiser than the preset's drops the preset's learning rate and schedule.

    **Controls** (lesson 8). ``style`` may be a list; ``style_blend`` weighs the styles (normalised to sum 1, equal
    by default) and each layer's target is the blend of their Gram matrices (jcjohnson/neural-style's
    ``-style_blend_weights``). ``style_masks``, one per style (H×W in [0, 1], tensors or pictures), send each style
    to its region of the content image (Gatys et al. 2017; see :mod:`nstutil.regions`). ``style_scale`` resizes the
    style images relative to the content (0.5: half size, so finer strokes; jcjohnson's ``-style_scale``).
    ``preserve_colors="luminance"`` transfers on luminance alone and puts the content's colours back;
    ``"histogram"`` first gives the style images the content's colour mean and covariance (:mod:`nstutil.colour`).
    ``scales`` (e.g. ``[128, 256, 512]``) optimises coarse-to-fine: at each size in turn, each starting from the
    last one's best image upsampled; ``steps`` is one number (for each scale) or one per scale.

    **Run.** ``steps`` is the exact number of loss evaluations; ``history[0]`` is the starting image's loss, and
    each record says its ``scale``. ``init`` is ``"content"``, ``"noise"`` (uniform, from ``seed``), ``"blend"``
    (the content plus uniform noise in [-0.25, 0.25], clipped: deeplearning.ai's TensorFlow 2 start), an image tensor or a picture's path. ``model`` reuses a loaded :func:`load_vgg19`
    (then ``weights`` and ``pooling`` are its own). ``callback(evaluation)`` runs after every evaluation and stops
    the run by returning ``True``. A stopped, interrupted (Ctrl-C) or diverged run returns the best image so far.
    The same seed on the CPU gives the same image. Introduced in lesson 5.
    """
    choices, controls = bind(RecipeChoice, locals()), bind(Controls, locals())
    device = resolve_device(device, model)
    run = prepare(content, style, preset=preset, recipe=choices, controls=controls, init=init, size=size,
                  style_size=style_size)
    recipe, inputs, init = run.recipe, run.inputs, run.init
    if intermediate_every is not None:
        whole_number(intermediate_every, "intermediate_every")
    sizes, counts = plan_scales(controls.scales, controls.steps, max(inputs.size))
    smallest = inputs.at_scale(sizes[0])
    if smallest.content is not None:
        check_size(smallest.content, [*recipe.content_layers, *recipe.style_layers],
                    "content image" if len(sizes) == 1 else f"content image at scale {sizes[0]}")
    for k, image in enumerate(smallest.styles):
        check_size(image, list(recipe.style_layers),
                    ("style image" if len(smallest.styles) == 1 else f"style image {k + 1}")
                    + ("" if len(sizes) == 1 else f" at scale {sizes[0]}"))
    start = start_image(init, inputs, smallest, seed)
    if preserve_colors == "luminance":
        start = grey(luminance(start))

    net = model if model is not None else load_vgg19(weights, pooling=pooling, device=device)
    minimiser = Minimiser(total_steps=sum(counts), optimizer=recipe.optimizer, lr=recipe.lr,
                          lr_decay=recipe.lr_decay, lr_decay_every=recipe.lr_decay_every,
                          parametrisation=recipe.parametrisation, callback=callback,
                          intermediate_every=intermediate_every, progress=progress)
    settings = _settings(recipe, controls, run, net, device, preset=preset, sizes=sizes, counts=counts,
                         lr=minimiser.lr, seed=seed)

    with minimiser, \
            channels_last_weights(net, [*recipe.content_layers, *recipe.style_layers]):
        for k, (scale, count) in enumerate(zip(sizes, counts)):
            at_scale = inputs.at_scale(scale)
            content_net, styles_net = network_images(at_scale, preserve_colors)
            objective = Objective(net, recipe, content=content_net, styles=styles_net, style_blend=run.blend,
                                  style_masks=at_scale.masks)
            outcome = minimiser.minimise(objective, start, count, scale=scale,
                                         present=presenter(at_scale, preserve_colors))
            if outcome.reason != "completed" or k == len(sizes) - 1:
                break
            start = resize_image(outcome.best.cpu(), scaled_shape(inputs.size, sizes[k + 1]))

    best = resize_image(outcome.best.cpu(), inputs.size)
    present = presenter(inputs, preserve_colors)
    image = present(best) if present is not None else best
    message = _message(outcome.reason, minimiser.history, outcome.best_evaluation, sum(counts), scale,
                       max(inputs.size))
    if outcome.reason == "nonfinite":
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return TransferResult(image=image.to("cpu", copy=True), history=minimiser.history, stop_reason=outcome.reason,
                          best_evaluation=outcome.best_evaluation, message=message, settings=settings,
                          intermediates=minimiser.intermediates)


def _settings(recipe: Preset, controls: Controls, run: PreparedRun, net: VGGFeatures, device: torch.device,
              **plan) -> Dict[str, object]:
    """The record of what a run did: the resolved recipe and controls, the plan, the model and the inputs."""
    paths, init = run.inputs.paths, run.init
    record: Dict[str, object] = dict(preset=plan["preset"], weights=net.weights_name)
    record.update({name: getattr(recipe, name) for name in field_names(RecipeChoice)})
    record.update({name: getattr(controls, name) for name in field_names(Controls)})
    record.update(
        content_layers=dict(recipe.content_layers), style_layers=dict(recipe.style_layers), style_blend=run.blend,
        style_masks=paths.masks, style_scale=controls.style_scale or 1.0, scales=plan["sizes"],
        steps=plan["counts"], lr=plan["lr"], seed=plan["seed"],
        init=init if isinstance(init, str) and init in INIT_CHOICES else "image",
        pooling=net.pooling, device=str(device), size=run.inputs.size,
        content_path=paths.content, style_path=paths.styles[0] if paths.styles else None,
        style_paths=paths.styles, mask_paths=paths.masks,
        input_paths=[paths.content, *paths.styles, *(paths.masks or []),
                     os.fspath(init) if is_init_path(init) else None])
    return record


def _message(reason: str, history: List[LossRecord], best: int, steps: int, scale: int, full: int) -> str:
    done = len(history)
    if best < 0:
        kept = "no evaluation finished; kept the start"
    else:
        kept = f"kept the best image, from evaluation {best}"
        if scale != full:
            kept += f" (at {scale} px, upsampled to {full} px)"
    if reason == "completed":
        return f"completed {done} evaluations; {kept}"
    if reason == "callback":
        return f"stopped by the callback after {done} of {steps} evaluations; {kept}"
    if reason == "interrupted":
        return f"interrupted after {done} of {steps} evaluations; {kept}"
    bad = history[-1].total if history else math.nan
    return (f"the loss became {bad} at evaluation {done - 1}, so the run stopped; {kept}. Lower the style or "
            f"content weight or the learning rate")
