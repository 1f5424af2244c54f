r"""The perceptual loss of a batch: the course's content and style losses, for training networks.

Introduced in lesson 10 (A network that styles in one pass). Johnson, Alahi & Fei-Fei (2016) train an image
transformation network with the loss that image optimisation minimises, averaged over a batch of photos:

.. math:: L = \frac{1}{B} \sum_{b=1}^{B} \Big( \alpha \sum_l w_l L_{content}^l(y_b, x_b)
          + \beta \sum_l w_l L_{style}^l(y_b, s) + \gamma\, TV(y_b) \Big)

where :math:`y_b` is the network's output for photo :math:`x_b` and :math:`s` the style image. The style targets
are computed once, when the loss is built; the content targets come with each batch. :class:`PerceptualLoss` runs
the same per-layer terms and forward pass as :class:`~nstutil.Objective` (:class:`~nstutil.objective.LossTerms`), so
for one image and a fixed content image the two give the same number — what is a loss stays apart from how it is
minimised (pystiche's ``loss.PerceptualLoss`` and ``optim.image_optimization``).
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import torch

from .device import DeviceLike, resolve_device
from .errors import NSTError
from .images import ImageLike, Size
from .inputs import image_input
from .objective import LossRecord, LossTerms
from .settings import RecipeChoice, check_keywords
from .vgg import VGGFeatures, load_vgg19

__all__ = ["PerceptualLoss", "BatchLoss"]


class BatchLoss:
    """The loss of one batch. ``total`` is a differentiable scalar (the batch mean of the images' total losses);
    ``content``, ``style`` and ``tv`` (weighted) and ``content_layers``, ``style_layers`` (each layer's unweighted
    loss) are plain numbers, read from the device only when first asked for."""

    def __init__(self, total: torch.Tensor, values: torch.Tensor, terms: LossTerms) -> None:
        self.total = total
        self.values = values
        self._terms = terms
        self._numbers: Optional[list] = None

    def record(self, evaluation: int = 0, elapsed: float = 0.0) -> LossRecord:
        """These numbers as a :class:`~nstutil.LossRecord`, as image optimisation records them."""
        if self._numbers is None:
            self._numbers = self.values.tolist()
        return self._terms.record(self._numbers, evaluation, elapsed)

    @property
    def content(self) -> float:
        return self.record().content

    @property
    def style(self) -> float:
        return self.record().style

    @property
    def tv(self) -> float:
        return self.record().tv

    @property
    def content_layers(self) -> Dict[str, float]:
        return self.record().content_layers

    @property
    def style_layers(self) -> Dict[str, float]:
        return self.record().style_layers

    def __repr__(self) -> str:
        return (f"BatchLoss(total={self.record().total:.6g}, content={self.content:.6g}, style={self.style:.6g}, "
                f"tv={self.tv:.6g})")


class PerceptualLoss(LossTerms):
    """The perceptual loss of a recipe and style, for batches: ``loss(images, contents)``.

    Built like :func:`nstutil.build_objective` but without a content image: ``style`` is one image (a 1×3×H×W tensor
    in [0, 1] or a path) or a list of them (weighed by ``style_blend``), resized so its longer side is
    ``style_size`` when given; the recipe is ``preset`` with any recipe keyword of :func:`nstutil.style_transfer`
    (the fields of :class:`nstutil.settings.RecipeChoice`: ``content_layers``, ``style_weight``, ``tv_weight`` …)
    replaced. ``model`` reuses
    a loaded VGG19 (it decides the device and is never moved), else ``weights`` are loaded on ``device`` (a CUDA GPU
    when there is one; see :mod:`nstutil.device`).

    ``loss(images, contents)`` takes two B×3×H×W batches in [0, 1] — the generated images and the content images
    they must keep the layout of — and returns a :class:`BatchLoss` whose ``total`` is the mean over the batch of
    each image's loss, the number :class:`~nstutil.Objective` gives for that image and its content image.
    Introduced in lesson 10.
    """

    def __init__(self, style: Union[ImageLike, Sequence[ImageLike]], *, preset: str = "tutorial",
                 model: Optional[VGGFeatures] = None, weights: Optional[str] = None, device: DeviceLike = None,
                 style_size: Size = None, style_blend: Optional[Sequence[float]] = None, **choices: object) -> None:
        check_keywords(choices, RecipeChoice, where="PerceptualLoss")
        device = resolve_device(device, model)
        recipe = RecipeChoice(**choices).resolve(preset)
        styles = list(style) if isinstance(style, (list, tuple)) else [style]
        if not styles:
            raise NSTError("PerceptualLoss got no style image: give a style image (a path or a 1×3×H×W tensor)")
        if not recipe.style_layers:
            raise NSTError("style_layers is empty, so the style image would not be used: give at least one style "
                           "layer")
        images = [image_input(s, style_size, "style image" if len(styles) == 1 else f"style image {k + 1}")[0]
                  for k, s in enumerate(styles)]
        net = model if model is not None else load_vgg19(weights, device=device)
        super().__init__(net, recipe, content=True, styles=images, style_blend=style_blend)

    def __call__(self, images: torch.Tensor, contents: Optional[torch.Tensor] = None) -> BatchLoss:
        """The :class:`BatchLoss` of ``images`` (B×3×H×W) against ``contents`` (B×3×H×W, the same shape; may be
        left out when the recipe has no content layers)."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise NSTError(f"PerceptualLoss got images of shape {shape}: pass a batch B×3×H×W in [0, 1]")
        if self.content_layers:
            if contents is None:
                raise NSTError("PerceptualLoss needs the content images with the generated ones: "
                               "loss(images, contents)")
            if contents.shape != images.shape:
                raise NSTError(f"PerceptualLoss got images {tuple(images.shape)} and contents "
                               f"{tuple(contents.shape)}: give one content image per generated image, same size")
        total, values = self.evaluate(images.to(self.device), self.content_terms_for(contents))
        return BatchLoss(total, values, self)
