r"""What the loss is: an objective built once from a recipe and the images, that scores any image.

Introduced in lesson 5 (Optimisation). The loss of a generated image :math:`x` is

.. math:: L(x) = \alpha \sum_l w_l L_{content}^l(x) + \beta \sum_l w_l L_{style}^l(x) + \gamma\, TV(x)

:class:`Objective` computes everything that does not depend on :math:`x` once, when it is built: the content image's
activations, the style images' Gram matrices (blended when there are several, or one per region when there are
masks). Scoring an image is then one forward pass: ``objective(image)`` returns its :class:`LossRecord`. *How* the
loss is minimised is :mod:`nstutil.optimisation`'s business; :func:`nstutil.style_transfer` puts the two together.

Each layer's part is a small object (:class:`ContentTerm`, :class:`StyleTerm`) that turns that layer's activation into
a number, so a new kind of loss plugs in here without touching the optimisation (the split pystiche makes between
its perceptual loss and its image optimisation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch

from .device import model_device
from .errors import NSTError
from .fast import content_loss_in_pass, gram, style_loss, style_loss_in_pass
from .losses import channel_statistics, content_loss, mean_std_loss, total_variation_loss
from .presets import Preset
from .regions import mask_at_layer
from .vgg import VGGFeatures

__all__ = ["LossRecord", "ContentTerm", "StyleTerm", "LossTerms", "Objective"]

StyleTarget = Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]


@dataclass
class LossRecord:
    """The loss of one evaluation. ``content``, ``style`` and ``tv`` are weighted (``total`` is their sum);
    ``content_layers`` and ``style_layers`` hold each layer's unweighted loss; ``elapsed`` is seconds since the
    optimisation started; ``scale`` is the longer side, in pixels, of the image evaluated (coarse-to-fine runs
    evaluate several)."""

    evaluation: int
    total: float
    content: float
    style: float
    tv: float
    content_layers: Dict[str, float]
    style_layers: Dict[str, float]
    elapsed: float
    scale: int = 0


class ContentTerm:
    """One layer's content loss: the generated activation against the content image's, in a convention."""

    def __init__(self, layer: str, target: torch.Tensor, convention: str) -> None:
        self.layer = layer
        self.target = target
        self.convention = convention

    def __call__(self, activation: torch.Tensor) -> torch.Tensor:
        return content_loss(activation, self.target, self.convention)

    def in_pass(self, activation: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(activation, loss)`` with the loss attached to the activation the pass carries on with (same value
        as calling the term; a cheaper backward, see :func:`~nstutil.fast.content_loss_in_pass`)."""
        return content_loss_in_pass(activation, self.target, self.convention)


class StyleTerm:
    r"""One layer's style loss against one or several style images.

    Without masks, the target is the blend :math:`\sum_k b_k A_k` of the styles' statistics (as
    jcjohnson/neural-style's ``-style_blend_weights``): one comparison per evaluation. With masks, each style is
    compared on its own region, :math:`\sum_k b_k L(G_{T_k}(x), A_k)` with the guided statistic of Gatys et al.
    (2017). ``statistic`` is ``"gram"`` or ``"mean_std"`` (:func:`nstutil.losses.mean_std_loss`).
    """

    def __init__(self, layer: str, targets: Sequence[StyleTarget], blend: Sequence[float], convention: str,
                 statistic: str, masks: Optional[Sequence[torch.Tensor]] = None) -> None:
        self.layer = layer
        self.convention = convention
        self.statistic = statistic
        if masks is None:
            self.parts = [(_blend(targets, blend), None, 1.0)]
        else:
            self.parts = [(t, m, b) for t, m, b in zip(targets, masks, blend) if b > 0]

    def __call__(self, activation: torch.Tensor) -> torch.Tensor:
        total = None
        for target, mask, weight in self.parts:
            if self.statistic == "gram":
                value = style_loss(activation, target, self.convention, mask=mask)
            else:
                value = mean_std_loss(activation, target, mask=mask)
            value = value if weight == 1.0 else weight * value
            total = value if total is None else total + value
        return total

    def in_pass(self, activation: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(activation, loss)``, as :meth:`ContentTerm.in_pass`. Only one unmasked Gram target has the fused
        backward (:func:`~nstutil.fast.style_loss_in_pass`); other losses stay a branch of their own."""
        if len(self.parts) == 1 and self.statistic == "gram":
            target, mask, _ = self.parts[0]
            if mask is None and not target.requires_grad:
                return style_loss_in_pass(activation, target, self.convention)
        return activation, self(activation)


def _blend(targets: Sequence[StyleTarget], blend: Sequence[float]) -> StyleTarget:
    """The weighted sum of the styles' statistics (a Gram matrix, or a (mean, std) pair)."""
    if isinstance(targets[0], tuple):
        return tuple(_blend([t[i] for t in targets], blend) for i in range(2))
    total = blend[0] * targets[0]
    for weight, target in zip(blend[1:], targets[1:]):
        total = total + weight * target
    return total


class LossTerms:
    """What every loss of a recipe shares: the style terms (targets computed once, here), the layer weights, and the
    forward pass that scores a batch of images against content targets given with it.

    :class:`Objective` fixes the content targets once (one content image, image optimisation);
    :class:`nstutil.PerceptualLoss` takes them from each batch (training a network). Both run :meth:`evaluate`, so
    the two generations of style transfer use the same code for the same loss.
    """

    def __init__(self, model: VGGFeatures, recipe: Preset, *, content: bool, styles: Sequence[torch.Tensor] = (),
                 style_blend: Optional[Sequence[float]] = None,
                 style_masks: Optional[Sequence[torch.Tensor]] = None) -> None:
        self.model = model
        self.recipe = recipe
        self.device = model_device(model)
        self._content_weights = dict(recipe.content_layers) if content else {}
        style_w = dict(recipe.style_layers) if styles else {}
        if not self._content_weights and not style_w:
            raise NSTError("nothing to optimise: give a content image with content layers, or style images with "
                           "style layers")
        blend = normalised_blend(style_blend, len(styles)) if styles else []
        self.style_terms: Dict[str, StyleTerm] = {}
        # Channels-last (NHWC) convolutions are faster on CPUs (oneDNN) and on GPUs (cuDNN); the values are the same.
        with torch.no_grad():
            if style_w:
                per_style = [model(s.to(self.device), list(style_w), channels_last=True) for s in styles]
                for name in style_w:
                    targets = [self._statistic(features[name]) for features in per_style]
                    masks = None if style_masks is None else [
                        mask_at_layer(m.to(self.device), name) for m in style_masks]
                    self.style_terms[name] = StyleTerm(name, targets, blend, recipe.convention,
                                                       recipe.style_statistic, masks)
        self.content_layers = list(self._content_weights)
        self.layers = list(dict.fromkeys([*self.content_layers, *self.style_terms]))
        self._content_w = torch.tensor(list(self._content_weights.values()), device=self.device)
        self._style_w = torch.tensor([style_w[n] for n in self.style_terms], device=self.device)

    def _statistic(self, features: torch.Tensor) -> StyleTarget:
        if self.recipe.style_statistic == "gram":
            return gram(features, self.recipe.convention)
        return channel_statistics(features)

    @torch.no_grad()
    def content_terms_for(self, contents: Optional[torch.Tensor]) -> Dict[str, ContentTerm]:
        """One :class:`ContentTerm` per content layer, its target the activations of ``contents`` (B×3×H×W)."""
        if not self.content_layers:
            return {}
        targets = self.model(contents.to(self.device), self.content_layers, channels_last=True)
        return {n: ContentTerm(n, targets[n], self.recipe.convention) for n in self.content_layers}

    def evaluate(self, images: torch.Tensor,
                 content_terms: Dict[str, ContentTerm]) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(total, values)``: the differentiable total loss of ``images`` (the batch mean) and, detached, all the
        numbers of its :class:`LossRecord` in one tensor (total, content, style, tv, then each content and style
        layer's loss), so that recording them costs one transfer to the host."""
        c_terms: Dict[str, torch.Tensor] = {}
        s_terms: Dict[str, torch.Tensor] = {}
        # Each loss right after its layer, not all after the pass: the backward pass then takes each layer's loss
        # gradient only when it reaches that layer, instead of holding them all from its start (that cost 50-70 MB
        # of peak memory at 512 px), and no activation is kept alive here through the backward pass.
        # Each term sends back the activation its loss is attached to, so that in the backward pass its gradient
        # joins the network's in one step (see ContentTerm.in_pass).
        forward_pass = self.model.activations(images, self.layers, channels_last=True)
        reached = next(forward_pass, None)
        while reached is not None:
            name, activation = reached
            if name in content_terms:
                activation, c_terms[name] = content_terms[name].in_pass(activation)
            if name in self.style_terms:
                activation, s_terms[name] = self.style_terms[name].in_pass(activation)
            reached = _send(forward_pass, activation)
        zero = images.new_zeros(())
        # Stacked in the recipe's order (the record's labels), not the order the pass reached the layers.
        c_stack = torch.stack([c_terms[n] for n in self.content_layers]) if c_terms else images.new_zeros(0)
        s_stack = torch.stack([s_terms[n] for n in self.style_terms]) if s_terms else images.new_zeros(0)
        recipe = self.recipe
        c_total = recipe.content_weight * (c_stack * self._content_w).sum()
        s_total = recipe.style_weight * (s_stack * self._style_w).sum()
        tv_total = recipe.tv_weight * self._total_variation(images) if recipe.tv_weight else zero
        total = c_total + s_total + tv_total
        values = torch.cat([torch.stack([total, c_total, s_total, tv_total]), c_stack, s_stack]).detach()
        return total, values

    def _total_variation(self, images: torch.Tensor) -> torch.Tensor:
        """The recipe's total variation: of the image, or of the network's normalised input (d2l's), power tv_p."""
        measured = self.model.normalize(images) if self.recipe.tv_input == "network_input" else images
        return total_variation_loss(measured, p=self.recipe.tv_p)

    def record(self, values: Sequence[float], evaluation: int = 0, elapsed: float = 0.0,
               scale: int = 0) -> LossRecord:
        """The :class:`LossRecord` of the numbers :meth:`evaluate` returned (as a list)."""
        n = len(self.content_layers)
        return LossRecord(evaluation, values[0], values[1], values[2], values[3],
                          dict(zip(self.content_layers, values[4:4 + n])),
                          dict(zip(self.style_terms, values[4 + n:])), elapsed, scale)


class Objective(LossTerms):
    """The loss of a recipe (:class:`~nstutil.Preset`, e.g. from :func:`nstutil.resolve_recipe`) for these images.

    ``content`` (1×3×H×W, or None for texture synthesis) and ``styles`` (a list of 1×3×H'×W' images, empty for a
    content reconstruction) are what the network compares with; ``style_blend`` weighs the styles (normalised to sum
    1; equal by default); ``style_masks`` (1×1×H×W over the generated image, one per style) guide each style to its
    region. Targets are computed once, here. ``objective(image)`` scores an image; :meth:`loss` is the
    differentiable version the optimisation calls. Introduced in lesson 5.
    """

    def __init__(self, model: VGGFeatures, recipe: Preset, *, content: Optional[torch.Tensor] = None,
                 styles: Sequence[torch.Tensor] = (), style_blend: Optional[Sequence[float]] = None,
                 style_masks: Optional[Sequence[torch.Tensor]] = None) -> None:
        super().__init__(model, recipe, content=content is not None, styles=styles, style_blend=style_blend,
                         style_masks=style_masks)
        self.content_terms = self.content_terms_for(content)

    def loss(self, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(total, values)`` for one image: :meth:`LossTerms.evaluate` against the content image's targets."""
        return self.evaluate(image, self.content_terms)

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> LossRecord:
        """The loss record of ``image`` (1×3×H×W in [0, 1]): what the optimisation would record for it."""
        _, values = self.loss(image.to(self.device))
        return self.record(values.tolist(), scale=max(image.shape[-2:]))


def _send(generator: Iterator, value: object) -> object:
    """``generator.send(value)``, or None when the generator is done."""
    try:
        return generator.send(value)
    except StopIteration:
        return None


def normalised_blend(style_blend: Optional[Sequence[float]], count: int) -> List[float]:
    """One weight per style image, checked (finite, >= 0, not all zero) and divided by their sum (equal by
    default), as jcjohnson/neural-style's ``-style_blend_weights``."""
    if style_blend is None:
        return [1.0 / count] * count if count > 1 else [1.0] * count
    if isinstance(style_blend, (int, float)):
        style_blend = [style_blend]
    weights = list(style_blend)
    if len(weights) != count:
        raise NSTError(f"style_blend has {len(weights)} weight(s) for {count} style image(s): give one weight per "
                       f"style image")
    checked = []
    for k, weight in enumerate(weights):
        try:
            number = float(weight)
        except (TypeError, ValueError):
            raise NSTError(f"style_blend weight {k + 1} ({weight!r}) is not a number: give numbers >= 0") from None
        if not number >= 0 or number == float("inf"):
            raise NSTError(f"style_blend weight {k + 1} is {weight!r}: give finite numbers >= 0")
        checked.append(number)
    largest = max(checked)
    if largest <= 0:
        raise NSTError("style_blend weights are all zero: give at least one style a weight > 0")
    relative = [w / largest for w in checked]  # first, so that huge weights (1e308, 1e308) cannot overflow the sum
    return [w / sum(relative) for w in relative]
