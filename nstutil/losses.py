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
"""

from __future__ import annotations

import math
from time import perf_counter
from typing import Dict, Optional, Tuple

import torch
from torch.autograd.function import once_differentiable

from .errors import NSTError

__all__ = ["CONVENTIONS", "STYLE_STATISTICS", "gram_matrix", "content_loss", "style_loss", "channel_statistics",
           "mean_std_loss", "total_variation_loss", "content_loss_in_pass", "style_loss_in_pass"]

CONVENTIONS: Tuple[str, ...] = ("tutorial", "coursera", "gatys")
# What the style loss compares: Gram matrices (Gatys et al.), or each channel's mean and standard deviation.
STYLE_STATISTICS: Tuple[str, ...] = ("gram", "mean_std")
# Added to a channel's variance before its square root, as AdaIN does: a constant channel's gradient stays finite.
STD_EPS = 1e-5


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise NSTError(f"unknown loss convention {convention!r}: use one of {', '.join(CONVENTIONS)}")


def _check_features(features: torch.Tensor, what: str) -> None:
    if not isinstance(features, torch.Tensor) or features.dim() != 4:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise NSTError(f"{what} has shape {shape}: pass a feature map of shape 1×C×H×W")


# Which way each Gram product is computed here, decided once per process and shape by timing both ways (see
# _by_convolution): {(product, channels, height, width, channels-last, threads): through the convolution}.
_PRODUCT_PATHS: Dict[Tuple[object, ...], bool] = {}
# The timing runs on at most this many positions of the map: enough for a steady rate, cheap at 2048 px.
_TIMING_POSITIONS = 1 << 15
_TIMING_ROUNDS = 5
# The convolution must be clearly faster (1.25×) to be chosen. Near-ties keep the plain product, so that timing noise
# (a CPU shared with other programs) rarely changes the choice, and with it the float rounding, between processes.
_CONVOLUTION_MARGIN = 0.8


def _by_convolution(features: torch.Tensor, product: str) -> bool:
    """Whether ``product`` ("gram": F Fᵀ, or "apply": F·dG) of this feature map goes through oneDNN's convolution.

    On the CPU, PyTorch's convolution library (oneDNN) and its matrix product (MKL or OpenBLAS) rank differently
    from one CPU to the next: on a 2-core AMD EPYC with AVX-512, oneDNN ran a 64-channel 256×256 Gram in 1.1 ms
    against 3.2; on one with AVX2 only it was slower than the matrix product at 256 and 512 channels. So the first
    product of each shape times both ways (a few milliseconds, on a slice of the map) and the faster one is kept
    for the rest of the process. Both give the same sums up to float rounding. On GPUs the matrix product stays:
    cuDNN's convolutions may use TF32, and the Gram matrices must stay full fp32.
    """
    if not (features.device.type == "cpu" and features.dtype == torch.float32 and features.shape[0] == 1
            and torch.backends.mkldnn.is_available()):
        return False
    key = (product, *features.shape[1:], _is_channels_last(features), torch.get_num_threads())
    if key not in _PRODUCT_PATHS:
        _PRODUCT_PATHS[key] = _convolution_is_faster(features, product)
    return _PRODUCT_PATHS[key]


def _convolution_is_faster(features: torch.Tensor, product: str) -> bool:
    """Time ``product`` both ways, in turns, on the first rows of ``features``; the first turn only warms up."""
    _, c, h, w = features.shape
    layout = torch.channels_last if _is_channels_last(features) else torch.contiguous_format
    sample = features[:, :, :max(1, min(h, _TIMING_POSITIONS // w))].detach().contiguous(memory_format=layout)
    d_gram = torch.eye(c, dtype=features.dtype).unsqueeze(0)
    best = {True: math.inf, False: math.inf}
    with torch.no_grad():
        for round_ in range(_TIMING_ROUNDS + 1):
            for by_convolution in (True, False):
                start = perf_counter()
                if product == "gram":
                    _gram_product(sample, by_convolution)
                else:
                    _apply_product(sample, d_gram, by_convolution)
                seconds = perf_counter() - start
                if round_:
                    best[by_convolution] = min(best[by_convolution], seconds)
    return best[True] < _CONVOLUTION_MARGIN * best[False]


def _is_channels_last(features: torch.Tensor) -> bool:
    return features.is_contiguous(memory_format=torch.channels_last) and not features.is_contiguous()


def _gram_product(features: torch.Tensor, by_convolution: bool) -> torch.Tensor:
    """``F Fᵀ`` per image (B×C×C), unnormalised."""
    b, c, h, w = features.shape
    if by_convolution:
        # F Fᵀ is the weight gradient of a 1×1 convolution whose input and output gradient are both F.
        weight = features.new_empty(c, c, 1, 1)
        return torch.ops.aten.convolution_backward(features, features, weight, None, [1, 1], [0, 0], [1, 1], False,
                                                   [0, 0], 1, [False, True, False])[1].view(1, c, c)
    if _is_channels_last(features):
        # Positions × channels is a view of a channels-last map, so no copy is made.
        flat = features.permute(0, 2, 3, 1).reshape(b, h * w, c)
        return flat.transpose(1, 2) @ flat
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2)


def _apply_product(features: torch.Tensor, d_gram: torch.Tensor, by_convolution: bool,
                   add_to: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``dG·F`` for a symmetric B×C×C ``dG``, plus ``add_to`` if given, shaped and laid out like ``features``."""
    b, c, h, w = features.shape
    if by_convolution:
        # A 1×1 convolution with dG as its weight (dG is symmetric, so which index is the output does not matter).
        product = torch.conv2d(features, d_gram.view(c, c, 1, 1))
        return product if add_to is None else product.add_(add_to)
    if _is_channels_last(features):
        flat = features.permute(0, 2, 3, 1).reshape(b, h * w, c)       # a view
        if add_to is None:
            product = flat @ d_gram
        else:
            # The matrix product adds add_to as it writes: no second pass over a full-size tensor.
            add_to = add_to.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(b, h * w, c)
            product = torch.baddbmm(add_to, flat, d_gram)
        return product.view(b, h, w, c).permute(0, 3, 1, 2)           # channels-last layout
    flat = features.reshape(b, c, h * w)
    product = d_gram @ flat if add_to is None else torch.baddbmm(add_to.reshape(b, c, h * w), d_gram, flat)
    return product.view(b, c, h, w)


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
    # The convolution's weight gradient is not differentiable here, so a Gram that takes gradients is a product.
    by_convolution = not (features.requires_grad and torch.is_grad_enabled()) and _by_convolution(features, "gram")
    gram = _gram_product(features, by_convolution)
    if convention == "tutorial":
        gram = gram / (c * h * w)
    return gram


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


def _style_denominator(features: torch.Tensor) -> float:
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
        # target, so it takes the same fast path below (k = 1 for an all-ones mask: exactly the unmasked loss).
        _check_features(mask, "style_loss's mask")
        power = _mask_power(mask)
        return style_loss(generated * mask, target_gram * power, convention) / power.pow(2)
    batch, channels = generated.shape[:2]
    if target_gram.shape[-2:] != (channels, channels):
        raise NSTError(f"style_loss got {channels} and {target_gram.shape[-1]} channels: take both feature "
                       f"maps from the same layer")
    if target_gram.dim() == 3 and target_gram.shape[0] not in (1, batch):
        raise NSTError(f"style_loss got {batch} generated image(s) and {target_gram.shape[0]} targets: give one "
                       f"target for all, or one per image")
    if not target_gram.requires_grad:
        # Same value as below, one matrix product cheaper to differentiate (see _StyleLossInPass).
        return _StyleLossInPass.apply(generated, target_gram, convention)[1]
    squared = (gram_matrix(generated, convention) - target_gram).pow(2)
    if convention == "tutorial":
        return squared.mean()
    return squared.sum() / _style_denominator(generated)


def channel_statistics(features: torch.Tensor,
                       mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""Each channel's mean and standard deviation over the positions (two B×C tensors).

    With ``mask`` (1×1×H×W), a weighted mean and deviation with weights :math:`T^2`, so that they describe the
    region the mask selects, as the guided Gram matrix does. The deviation is
    :math:`\sqrt{\mathrm{var} + 10^{-5}}` (as AdaIN), so a constant channel keeps a finite gradient.
    Introduced in lesson 8.
    """
    _check_features(features, "channel_statistics' input")
    if mask is None:
        mean = features.mean(dim=(2, 3))
        variance = (features - mean[..., None, None]).pow(2).mean(dim=(2, 3))
    else:
        weight = mask.pow(2) / mask.pow(2).sum()
        mean = (features * weight).sum(dim=(2, 3))
        variance = ((features - mean[..., None, None]).pow(2) * weight).sum(dim=(2, 3))
    return mean, (variance + STD_EPS).sqrt()


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
    smooth and suits L-BFGS; ``p=1`` is twice d2l's ``½(mean|dx| + mean|dy|)``. Introduced in lesson 4.
    """
    _check_features(image, "total_variation_loss's image")
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs()
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs()
    return dx.pow(p).mean() + dy.pow(p).mean()


def content_loss_in_pass(generated: torch.Tensor, target: torch.Tensor,
                        convention: str = "tutorial") -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`content_loss` taken in the middle of a forward pass: ``(features, loss)``, where ``features`` are
    ``generated`` again, for the pass to carry on with.

    Same value as :func:`content_loss`. In the backward pass, the gradient coming back through the network and this
    loss's gradient are then added in one step, instead of autograd making a second full-size gradient for this
    layer and adding the two. :class:`~nstutil.Objective` uses it (lesson 5).
    """
    _check_content_inputs(generated, target, convention)
    return _ContentLossInPass.apply(generated, target, convention)


def style_loss_in_pass(generated: torch.Tensor, target_gram: torch.Tensor,
                       convention: str = "tutorial") -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`style_loss` against a Gram matrix (that takes no gradient) in the middle of a forward pass:
    ``(features, loss)``, as :func:`content_loss_in_pass`. The backward writes this loss's gradient and the
    gradient coming back through the network in one matrix product. :class:`~nstutil.Objective` uses it (lesson 5).
    """
    _check_convention(convention)
    _check_features(generated, "style_loss's generated features")
    channels = generated.shape[1]
    if target_gram.shape[-2:] != (channels, channels) or target_gram.requires_grad:
        raise NSTError(f"style_loss_in_pass got a {channels}-channel map and a target of shape "
                       f"{tuple(target_gram.shape)}: pass the {channels}×{channels} Gram matrix of the same layer")
    return _StyleLossInPass.apply(generated, target_gram, convention)


class _ContentLossInPass(torch.autograd.Function):
    """``(F, content loss of F)``; the backward returns the incoming gradient plus ``2 (F - P) / denominator``."""

    @staticmethod
    def forward(ctx, generated, target, convention):
        diff = generated - target
        denominator = _content_denominator(generated, convention)
        ctx.set_materialize_grads(False)      # no zero-filled gradient for an output nobody used
        ctx.save_for_backward(diff)
        ctx.scale = 2.0 / denominator
        # detach(), not the input itself: autograd's view of a returned input loses the channels-last strides.
        return generated.detach(), diff.pow(2).sum() / denominator

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_features, grad_loss):
        if grad_loss is None:
            return grad_features, None, None
        diff, = ctx.saved_tensors
        scale = grad_loss * ctx.scale
        if grad_features is None:
            return diff * scale, None, None
        return torch.addcmul(grad_features, diff, scale), None, None


class _StyleLossInPass(torch.autograd.Function):
    """``(F, style loss of F)`` against a Gram ``A`` that takes no gradient, with a hand-written backward.

    The forward is :func:`style_loss`'s own arithmetic (same values). Autograd's backward of ``F Fᵀ`` spends two
    matrix products (one per factor); since ``dL/dG`` is symmetric up to rounding, ``dL/dF = (dG + dGᵀ) F / norm``
    needs one, and it adds the gradient coming back through the network (as it writes, on the matrix-product path;
    right after, on the convolution path). On the tutorial's layers
    (64-channel full-resolution maps) the Gram products are a quarter of the work of an evaluation, so this saves
    about a tenth of it. On the CPU each product runs as a convolution or a matrix product, whichever is faster
    there (see :func:`_by_convolution`); matrix products use channels-last maps as ``positions × channels`` views,
    without copies.
    """

    @staticmethod
    def forward(ctx, generated, target_gram, convention):
        b, c, h, w = generated.shape
        gram = gram_matrix(generated, convention)
        diff = gram - target_gram                         # one target broadcasts over a batch
        squared = diff.pow(2)
        if convention == "tutorial":
            loss = squared.mean()
            scale = 2.0 / squared.numel()                 # d mean(d²) / d G
            norm = float(c * h * w)
        else:
            loss = squared.sum() / _style_denominator(generated)
            scale = 2.0 / _style_denominator(generated)
            norm = 1.0
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(generated, diff)
        ctx.scale_norm = scale / norm
        return generated.detach(), loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_features, grad_loss):
        if grad_loss is None:
            return grad_features, None, None
        generated, diff = ctx.saved_tensors
        d_gram = diff * (grad_loss * ctx.scale_norm)
        d_gram = d_gram + d_gram.transpose(1, 2)
        d_generated = _apply_product(generated, d_gram, _by_convolution(generated, "apply"), add_to=grad_features)
        return d_generated, None, None
