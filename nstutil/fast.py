r"""The engine's fast paths: the same numbers as :mod:`nstutil.losses`, computed the way this machine does fastest.

Introduced in lesson 5 (Optimisation), where a run evaluates the loss hundreds of times. Lessons 3 and 4 teach the
formulas in :mod:`nstutil.losses`; this module computes them for the engine (:class:`~nstutil.Objective`,
:class:`~nstutil.PerceptualLoss`):

- :func:`gram` and :func:`style_loss` run each Gram product as a oneDNN convolution or a matrix product, whichever
  a one-off timing on this CPU finds faster for that shape (:func:`_by_convolution`); matrix products use
  channels-last maps as ``positions × channels`` views, without copies.
- :func:`content_loss_in_pass` and :func:`style_loss_in_pass` attach a loss to the forward pass: in the backward
  pass the loss's gradient and the gradient coming back through the network are added in one step (the style loss's
  in one matrix product), instead of autograd making a second full-size gradient per loss layer and adding the two.
- :func:`channels_last_weights` stores VGG19's convolution weights in the layout of a ``channels_last`` pass for
  the length of a run, so that no convolution converts its weight on every call.
- :func:`upsample_convolve` is the style networks' "upsample, then convolve" (lesson 10) computed at the small size,
  with 4/9 of the multiplications; :func:`convolve_to_few_channels` its last convolution, to RGB, by columns.

The tests check every path against :mod:`nstutil.losses` in float64.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from time import perf_counter
from typing import Dict, Iterator, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .errors import NSTError
from .losses import (_check_content_inputs, _check_convention, _check_features, _check_style_target,
                     _content_denominator, _mask_power, style_denominator)
from .vgg import VGGFeatures, resolve_layer

__all__ = ["gram", "style_loss", "content_loss_in_pass", "style_loss_in_pass", "channels_last_weights",
           "upsample_convolve", "convolve_to_few_channels"]

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



def gram(features: torch.Tensor, convention: str = "tutorial") -> torch.Tensor:
    """:func:`nstutil.losses.gram_matrix` (without a mask), each product by the faster path on this machine."""
    _check_convention(convention)
    _check_features(features, "gram_matrix's input")
    _, c, h, w = features.shape
    # The convolution's weight gradient is not differentiable here, so a Gram that takes gradients is a product.
    by_convolution = not (features.requires_grad and torch.is_grad_enabled()) and _by_convolution(features, "gram")
    product = _gram_product(features, by_convolution)
    return product / (c * h * w) if convention == "tutorial" else product


def style_loss(generated: torch.Tensor, target_gram: torch.Tensor, convention: str = "tutorial",
               mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:func:`nstutil.losses.style_loss` against a Gram matrix, with :class:`_StyleLossInPass`'s cheaper backward
    when the target takes no gradient."""
    _check_convention(convention)
    _check_features(generated, "style_loss's generated features")
    if mask is not None:
        power = _mask_power(mask)
        return style_loss(generated * mask, target_gram * power, convention) / power.pow(2)
    _check_style_target(generated, target_gram)
    if target_gram.requires_grad:
        squared = (gram(generated, convention) - target_gram).pow(2)
        return squared.mean() if convention == "tutorial" else squared.sum() / style_denominator(generated)
    return _StyleLossInPass.apply(generated, target_gram, convention)[1]


def content_loss_in_pass(generated: torch.Tensor, target: torch.Tensor,
                        convention: str = "tutorial") -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`nstutil.losses.content_loss` taken in the middle of a forward pass: ``(features, loss)``, where ``features`` are
    ``generated`` again, for the pass to carry on with.

    Same value. In the backward pass, the gradient coming back through the network and this
    loss's gradient are then added in one step, instead of autograd making a second full-size gradient for this
    layer and adding the two. :class:`~nstutil.Objective` uses it (lesson 5).
    """
    _check_content_inputs(generated, target, convention)
    return _ContentLossInPass.apply(generated, target, convention)


def style_loss_in_pass(generated: torch.Tensor, target_gram: torch.Tensor,
                       convention: str = "tutorial") -> Tuple[torch.Tensor, torch.Tensor]:
    """:func:`nstutil.losses.style_loss` against a Gram matrix (that takes no gradient) in the middle of a forward pass:
    ``(features, loss)``, as :func:`content_loss_in_pass`. The backward writes this loss's gradient and the
    gradient coming back through the network in one matrix product. :class:`~nstutil.Objective` uses it (lesson 5).
    """
    _check_convention(convention)
    _check_features(generated, "style_loss's generated features")
    if target_gram.requires_grad:
        raise NSTError("style_loss_in_pass got a target that takes gradients: pass a fixed Gram matrix (detached)")
    _check_style_target(generated, target_gram)
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

    The forward is :func:`nstutil.losses.style_loss`'s own arithmetic (same values). Autograd's backward of ``F Fᵀ`` spends two
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
        diff = gram(generated, convention) - target_gram        # one target broadcasts over a batch
        squared = diff.pow(2)
        if convention == "tutorial":
            loss = squared.mean()
            scale = 2.0 / squared.numel()                 # d mean(d²) / d G
            norm = float(c * h * w)
        else:
            loss = squared.sum() / style_denominator(generated)
            scale = 2.0 / style_denominator(generated)
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


@contextmanager
def channels_last_weights(model: VGGFeatures, layers: Sequence[str]) -> Iterator[None]:
    """Within the block, the weights of ``model``'s convolutions up to the deepest of ``layers`` are stored
    channels-last, like the activations of a ``channels_last`` pass: otherwise every convolution converts its weight
    on every call (7 ms per evaluation for Gatys's layers on a 2-core CPU, a twentieth of it at 128 px). The values
    do not change, and the usual layout is back afterwards, also after an error or Ctrl-C.
    :func:`~nstutil.style_transfer` runs in one."""
    deepest = max((resolve_layer(name).index for name in layers), default=-1)
    convolutions = [m for m in model.features[:deepest + 1] if isinstance(m, nn.Conv2d)]
    try:
        for conv in convolutions:
            conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last)
        yield
    finally:
        for conv in convolutions:
            conv.weight.data = conv.weight.data.contiguous()


def _fold_phases(kernel: torch.Tensor, dim: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """A 3-tap kernel along ``dim`` as the two 2-tap kernels it applies to a ×2 nearest-upsampled signal: an even
    output pixel sees input pixels (i-1, i, i), an odd one (i, i, i+1)."""
    before, centre, after = kernel.unbind(dim)
    return torch.stack([before, centre + after], dim), torch.stack([before + centre, after], dim)


def upsample_convolve(x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    """``conv(reflection_pad(nearest_upsample(x, ×2), 1))`` for a 3×3, stride-1, unpadded ``conv``, computed at
    ``x``'s own size.

    After a ×2 nearest upsampling, the 3×3 window of every output pixel covers only 2×2 distinct input pixels,
    and which 2×2 depends on the pixel's phase (even or odd row, even or odd column). So the 3×3 kernel folds into
    four 2×2 kernels, one per phase; one 2×2 convolution with the four stacked, over ``x`` padded by one replicated
    pixel (a one-pixel reflection of the upsampled image repeats its edge), gives all four phases, which are then
    interleaved. The same picture (float rounding aside) with 4/9 of the multiplications and without the 4× larger
    upsampled copy; :class:`nstutil.transformer_net.UpsampleConv` uses it.
    """
    weight, bias = conv.weight, conv.bias
    if weight.shape[-2:] != (3, 3) or conv.stride != (1, 1) or conv.padding != (0, 0) or conv.dilation != (1, 1) \
            or conv.groups != 1:
        raise NSTError("upsample_convolve needs a 3×3 convolution with stride 1, no padding, dilation or groups")
    out_channels = weight.shape[0]
    kernels = torch.cat([by_column for by_row in _fold_phases(weight, 2) for by_column in _fold_phases(by_row, 3)])
    biases = None if bias is None else bias.repeat(4)
    phases = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), kernels, biases)
    batch, height, width = x.shape[0], x.shape[-2], x.shape[-1]
    # phases[:, (row phase a, column phase b)] at (i + a, j + b) is the output pixel (2i + a, 2j + b).
    phases = phases.view(batch, 2, 2, out_channels, height + 1, width + 1)
    upsampled = phases.new_empty(batch, out_channels, height, 2, width, 2)
    for a in (0, 1):
        for b in (0, 1):
            upsampled[:, :, :, a, :, b] = phases[:, a, b, :, a:a + height, b:b + width]
    return upsampled.view(batch, out_channels, 2 * height, 2 * width)


def convolve_to_few_channels(x: torch.Tensor, conv: torch.nn.Conv2d) -> torch.Tensor:
    """``conv(x)`` for an unpadded, stride-1 ``conv`` with few output channels (the style network's 9×9 to RGB).

    oneDNN computes a convolution with 3 output channels far below its usual speed. Each column of the k×k kernel
    is a k×1 convolution, so one k×1 convolution with k times the output channels computes all columns' parts at
    once, and shifting each part by its column and adding gives the result: the same sums in another order.
    """
    weight, bias = conv.weight, conv.bias
    if conv.stride != (1, 1) or conv.padding != (0, 0) or conv.dilation != (1, 1) or conv.groups != 1:
        raise NSTError("convolve_to_few_channels needs a convolution with stride 1, no padding, dilation or groups")
    out_channels, width = weight.shape[0], x.shape[-1] - weight.shape[-1] + 1
    by_column = weight.permute(3, 0, 1, 2).flatten(0, 1).unsqueeze(-1)  # (column, channel) × in × k × 1
    parts = torch.nn.functional.conv2d(x, by_column).unflatten(1, (weight.shape[-1], out_channels))
    result = parts[:, 0, :, :, :width]
    for column in range(1, weight.shape[-1]):
        result = result + parts[:, column, :, :, column:column + width]
    return result if bias is None else result + bias.view(-1, 1, 1)
