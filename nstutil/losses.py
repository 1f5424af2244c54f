r"""Gram matrices, content and style losses in three conventions, and total variation.

Introduced in lessons 3 (Gram matrices) and 4 (Losses). With :math:`F` a layer's activations reshaped to
:math:`C \times M` (:math:`M = H W` positions) and :math:`P`, :math:`A` the targets' activations and Gram matrix:

============  ==============================  ================================  ===============================================
convention    Gram                            content loss                      style loss (one layer)
============  ==============================  ================================  ===============================================
tutorial      :math:`F F^T / (b C H W)`       mean of :math:`(F - P)^2`         mean over :math:`C^2` of :math:`(G - A)^2`
coursera      :math:`F F^T`                   :math:`\sum (F-P)^2 / (4 H W C)`  :math:`\sum (G - A)^2 / (4 C^2 (H W)^2)`
gatys         :math:`F F^T`                   :math:`\tfrac12 \sum (F - P)^2`   :math:`\sum (G - A)^2 / (4 C^2 M^2)`
============  ==============================  ================================  ===============================================

"tutorial" is the PyTorch neural-style tutorial (and, for one image, jcjohnson/neural-style's ``/(C·H·W)`` Gram
with mean-squared errors); "coursera" is the deeplearning.ai assignment; "gatys" is Gatys et al. (2015). The
coursera and gatys style losses are the same formula; they differ in the content loss and in the usual weights.

Two controls from Gatys et al. (2017) and Li et al. (2017) live here too: a *guided* Gram matrix, computed over the
positions a mask selects (spatial control, lesson 8), and a second style statistic, each channel's mean and
standard deviation (:func:`mean_std_loss`, lesson 8).

A batch (B×C×H×W) gets the mean of its images' losses. The engine computes the same numbers faster (the
products timed per CPU, losses attached to the forward pass): :mod:`nstutil.fast`, which the tests check against
these formulas.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from .errors import NSTError

__all__ = ["CONVENTIONS", "STYLE_STATISTICS", "gram_matrix", "content_loss", "style_loss", "channel_statistics",
           "mean_std_loss", "total_variation_loss", "style_denominator"]

CONVENTIONS: Tuple[str, ...] = ("tutorial", "coursera", "gatys")
# What the style loss compares: Gram matrices (Gatys et al.), or each channel's mean and standard deviation.
STYLE_STATISTICS: Tuple[str, ...] = ("gram", "mean_std")
# Added to a channel's variance before its square root, as AdaIN's reference code does (naoto0804/pytorch-AdaIN,
# calc_mean_std, eps 1e-5): a constant channel's gradient stays finite. That code's variance is torch's unbiased one
# (/ (HW - 1)); nstutil's is the population variance of the paper's formula (/ HW).
STD_EPS = 1e-5


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise NSTError(f"unknown loss convention {convention!r}: use one of {', '.join(CONVENTIONS)}")


def _check_features(features: torch.Tensor, what: str) -> None:
    if not isinstance(features, torch.Tensor) or features.dim() != 4:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise NSTError(f"{what} has shape {shape}: pass a feature map of shape 1×C×H×W")


def _mask_power(mask: torch.Tensor) -> torch.Tensor:
    """Mean of the squared mask: the share of the positions a guided Gram sums over (1 for an all-ones mask)."""
    return mask.pow(2).mean()


def gram_matrix(features: torch.Tensor, convention: str = "tutorial",
                mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""The Gram matrix :math:`G = F F^T` of a B×C×H×W feature map, one C×C matrix per image (B×C×C).

    ``"tutorial"`` divides by :math:`b C H W` as the PyTorch tutorial does (b = 1 per image here);
    ``"coursera"`` and ``"gatys"`` leave it unnormalised. :math:`G_{ij}` is the inner product of channel i's and
    channel j's maps over all positions, so it keeps which features occur together and forgets where.
    Introduced in lesson 3.

    ``mask`` (1×1×H×W, values in [0, 1], at the feature map's resolution) gives the *guided* Gram matrix of Gatys
    et al. (2017): :math:`(F \circ T)(F \circ T)^T / \overline{T^2}`, the co-activations of the positions the mask
    selects, divided by the mask's mean square so that it is on the scale of a whole-image Gram (an all-ones mask
    gives exactly the plain Gram). Introduced in lesson 8.
    """
    if mask is not None:
        _check_features(mask, "gram_matrix's mask")
        return gram_matrix(features * mask, convention) / _mask_power(mask)
    _check_convention(convention)
    _check_features(features, "gram_matrix's input")
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)              # one row per channel, one column per position
    gram = flat @ flat.transpose(1, 2)
    return gram / (c * h * w) if convention == "tutorial" else gram


def content_loss(generated: torch.Tensor, target: torch.Tensor, convention: str = "tutorial") -> torch.Tensor:
    r"""How far the generated image's activations are from the content image's, at one layer.

    tutorial: :math:`\mathrm{mean}\,(F - P)^2`; coursera: :math:`\sum (F-P)^2 / (4 H W C)`;
    gatys: :math:`\tfrac12 \sum (F - P)^2`. Introduced in lesson 4.
    """
    _check_content_inputs(generated, target, convention)
    return (generated - target).pow(2).sum() / _content_denominator(generated, convention)


def _check_content_inputs(generated: torch.Tensor, target: torch.Tensor, convention: str) -> None:
    _check_convention(convention)
    _check_features(generated, "content_loss's generated features")
    if generated.shape != target.shape:
        raise NSTError(f"content_loss got features of shapes {tuple(generated.shape)} and {tuple(target.shape)}: "
                       f"the generated and content images must have the same size")


def _content_denominator(features: torch.Tensor, convention: str) -> float:
    """The content loss is the sum of squared differences divided by this: the mean, 4·H·W·C, or 2 (times the
    batch size, so that a batch's loss is the mean of its images' losses)."""
    b, c, h, w = features.shape
    return {"tutorial": float(features.numel()), "coursera": 4.0 * b * h * w * c, "gatys": 2.0 * b}[convention]


def style_denominator(features: torch.Tensor) -> float:
    """The coursera and gatys style losses are the sum of squared Gram differences divided by this, 4·C²·M²
    (times the batch size, as :func:`_content_denominator`)."""
    b, c, h, w = features.shape
    return 4.0 * b * c ** 2 * (h * w) ** 2


def style_loss(generated: torch.Tensor, target: torch.Tensor, convention: str = "tutorial",
               mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""How far the generated image's Gram matrix is from the style image's, at one layer.

    ``target`` is the style image's feature map (B×C×H'×W', any size) or its Gram matrix from
    :func:`gram_matrix` with the same convention (pass the Gram to compute it only once).
    tutorial: :math:`\mathrm{mean}\,(G - A)^2` of the normalised Grams; coursera and gatys:
    :math:`\sum (G - A)^2 / (4 C^2 M^2)` with :math:`M = H W` of the generated image. Introduced in lesson 4.

    ``mask`` (1×1×H×W at the generated features' resolution) compares the generated image's guided Gram matrix
    (see :func:`gram_matrix`) over the region the mask selects with the target: spatial control, lesson 8.
    """
    _check_convention(convention)
    _check_features(generated, "style_loss's generated features")
    target_gram = gram_matrix(target, convention) if target.dim() == 4 else target
    if mask is not None:
        # (G/k - A)² = (G - k A)² / k²: the guided loss is the plain loss of the masked features against the scaled
        # target (k = 1 for an all-ones mask: exactly the unmasked loss).
        _check_features(mask, "style_loss's mask")
        power = _mask_power(mask)
        return style_loss(generated * mask, target_gram * power, convention) / power.pow(2)
    _check_style_target(generated, target_gram)
    squared = (gram_matrix(generated, convention) - target_gram).pow(2)
    if convention == "tutorial":
        return squared.mean()
    return squared.sum() / style_denominator(generated)


def _check_style_target(generated: torch.Tensor, target_gram: torch.Tensor) -> None:
    batch, channels = generated.shape[:2]
    if target_gram.shape[-2:] != (channels, channels):
        raise NSTError(f"style_loss got {channels} and {target_gram.shape[-1]} channels: take both feature "
                       f"maps from the same layer")
    if target_gram.dim() == 3 and target_gram.shape[0] not in (1, batch):
        raise NSTError(f"style_loss got {batch} generated image(s) and {target_gram.shape[0]} targets: give one "
                       f"target for all, or one per image")


def channel_statistics(features: torch.Tensor, mask: Optional[torch.Tensor] = None,
                       eps: float = STD_EPS) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Each channel's mean and standard deviation over the positions (two B×C tensors).

    With ``mask`` (1×1×H×W), a weighted mean and deviation with weights :math:`T^2`, so that they describe the
    region the mask selects, as the guided Gram matrix does. The deviation is
    :math:`\sqrt{\mathrm{var} + 10^{-5}}` (as AdaIN; ``eps`` replaces :math:`10^{-5}`), so a constant channel
    keeps a finite gradient. Introduced in lesson 8.
    """
    _check_features(features, "channel_statistics' input")
    if mask is None:
        mean = features.mean(dim=(2, 3))
        variance = (features - mean[..., None, None]).pow(2).mean(dim=(2, 3))
    else:
        weight = mask.pow(2) / mask.pow(2).sum()
        mean = (features * weight).sum(dim=(2, 3))
        variance = ((features - mean[..., None, None]).pow(2) * weight).sum(dim=(2, 3))
    return mean, (variance + eps).sqrt()


def mean_std_loss(generated: torch.Tensor, target, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""A style loss on each channel's mean and standard deviation instead of the Gram matrix (Li et al. 2017).

    .. math:: L = \frac{1}{C} \sum_{i=1}^{C} (\mu_i - \hat\mu_i)^2 + (\sigma_i - \hat\sigma_i)^2

    Li, Wang, Liu & Hou (2017, "Demystifying Neural Style Transfer") show that matching Gram matrices minimises a
    maximum mean discrepancy with a second-order polynomial kernel, and that matching these first- and
    second-order channel statistics (what AdaIN aligns in one step) transfers style too. ``target`` is the style
    image's feature map or its ``(mean, std)`` from :func:`channel_statistics`. The same formula serves every loss
    convention. ``mask`` restricts the generated image's statistics to a region. Introduced in lesson 8.
    """
    _check_features(generated, "mean_std_loss's generated features")
    target_mean, target_std = channel_statistics(target) if isinstance(target, torch.Tensor) else target
    if target_mean.shape[-1] != generated.shape[1]:
        raise NSTError(f"mean_std_loss got {generated.shape[1]} and {target_mean.shape[-1]} channels: take both "
                       f"feature maps from the same layer")
    mean, std = channel_statistics(generated, mask)
    return ((mean - target_mean).pow(2) + (std - target_std).pow(2)).mean()


def total_variation_loss(image: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    r"""Total variation :math:`\mathrm{mean}\,|x_{i,j+1} - x_{i,j}|^p + \mathrm{mean}\,|x_{i+1,j} - x_{i,j}|^p`.

    It grows with pixel-to-pixel noise, so a small weight on it smooths the result. ``p=2`` (the default) is
    smooth and suits L-BFGS; ``p=1`` takes absolute differences. d2l's ``½(mean|dx| + mean|dy|)`` is half of ``p=1``
    *of the ImageNet-normalised image* (about 2.2 times ``p=1`` of the [0, 1] image); its preset measures that
    (``tv_input="network_input"``). Introduced in lesson 4.
    """
    _check_features(image, "total_variation_loss's image")
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs()
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs()
    return dx.pow(p).mean() + dy.pow(p).mean()
