r"""Arbitrary style in one pass (Huang & Belongie 2017): encode, fuse with AdaIN, decode.

Introduced in lesson 11 (Any style in one pass). Optimisation (lessons 5-8 and the playground) fits one picture; a style network
(lesson 10) is trained for one style. Huang & Belongie's model takes any style image at run time:

- the **encoder** is VGG19 up to relu4_1, fixed (nstutil's own :class:`~nstutil.VGGFeatures`, any of its weights);
- the **fusion** is adaptive instance normalisation: each channel of the content's features is shifted and scaled
  so that its mean and standard deviation become the style's,

  .. math:: \mathrm{AdaIN}(x, y) = \sigma(y)\,\frac{x - \mu(x)}{\sigma(x)} + \mu(y)

  (:func:`adain`; the statistics are :func:`nstutil.channel_statistics`, the ones lesson 8's mean/std style loss
  compares, with the same :math:`\sqrt{\mathrm{var} + 10^{-5}}`);
- the **decoder** (:class:`Decoder`) mirrors the encoder, with nearest-neighbour upsampling where the encoder pools,
  reflection padding and no normalisation, and is trained (:mod:`nstutil.adain_training`) to turn fused features
  back into a picture.

The paper's controls act on the fused features (:func:`fuse`): the content-style trade-off
:math:`\alpha` (:math:`(1-\alpha) f(c) + \alpha\,\mathrm{AdaIN}(f(c), f(s))`), interpolation between several styles
with weights, spatial control with masks (lesson 8's masks: each style's AdaIN uses the content's statistics over
its region), and colour preservation (lesson 8's histogram matching of the style to the photo, first).
:func:`stylize_arbitrary` runs the whole model. The design documents' "content encoder, style encoder, fusion,
deconvolution network" are :func:`encode` (the same VGG for both), :func:`fuse` and :class:`Decoder`.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from .colour import PRESERVE_COLORS, combine_luminance, match_histogram
from .device import DeviceLike, model_device, resolve_device
from .errors import NSTError
from .images import ImageLike, Size, image_path
from .inputs import image_input
from .losses import STD_EPS, channel_statistics
from .network_file import NetworkFile, load_network, register_network
from .regions import MaskLike, load_masks, mask_at_layer
from .vgg import VGGFeatures, load_vgg19, min_image_side

__all__ = ["adain", "fuse", "encode", "Decoder", "stylize_arbitrary", "load_decoder", "DECODER_KIND",
           "ENCODER_LAYER", "STYLE_LAYERS"]

# The encoder's last layer (the paper's), and the layers whose mean and deviation the style loss compares.
ENCODER_LAYER = "relu4_1"
STYLE_LAYERS: Tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
# The kind of network file a trained decoder is (nstutil.network_file).
DECODER_KIND = "adain-decoder"
# relu4_1 sits after three poolings: a picture is encoded to one position per 8×8 pixels.
STRIDE = 8

Statistics = Tuple[torch.Tensor, torch.Tensor]


def _check_features(features: object, what: str) -> None:
    if not isinstance(features, torch.Tensor) or features.dim() != 4:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise NSTError(f"{what} has shape {shape}: pass a feature map B×C×H×W (such as encode returns)")


def _statistics(style: Union[torch.Tensor, Statistics], eps: float, what: str) -> Statistics:
    if isinstance(style, (tuple, list)) and len(style) == 2:
        return style[0], style[1]
    _check_features(style, what)
    return channel_statistics(style, eps=eps)


def adain(content_features: torch.Tensor, style_features: Union[torch.Tensor, Statistics], eps: float = STD_EPS,
          *, content_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""Adaptive instance normalisation: ``content_features`` with each channel's mean and standard deviation
    replaced by the style's (Huang & Belongie 2017, eq. 8).

    ``content_features`` is B×C×H×W; ``style_features`` is a B×C×H'×W' feature map of the same layer (any size; B
    may be 1 for one style for all) or its ``(mean, std)`` from :func:`nstutil.channel_statistics`. Deviations
    are :math:`\sqrt{\mathrm{var} + \epsilon}` (population variance, as :func:`~nstutil.channel_statistics`):
    with ``eps=0`` the output's statistics are the style's exactly. ``content_mask`` (1×1×H×W at the features'
    resolution) takes the content's statistics over that region only (spatial control). Introduced in lesson 11.
    """
    _check_features(content_features, "adain's content features")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise NSTError(f"adain's eps is {eps!r}: give a small number of 0 or more, such as 1e-5")
    style_mean, style_std = _statistics(style_features, eps, "adain's style features")
    if style_mean.shape[-1] != content_features.shape[1]:
        raise NSTError(f"adain got {content_features.shape[1]} content and {style_mean.shape[-1]} style channels: "
                       f"take both feature maps from the same layer")
    mean, std = channel_statistics(content_features, content_mask, eps=eps)
    # A constant channel with eps=0 has std 0: it stays constant (at the style's mean) instead of becoming NaN.
    normalised = (content_features - mean[..., None, None]) / std.clamp_min(1e-12)[..., None, None]
    return normalised * style_std[..., None, None] + style_mean[..., None, None]


def _blend_weights(weights: Optional[Sequence[float]], count: int) -> List[float]:
    if weights is None:
        return [1.0 / count] * count
    weights = [float(w) for w in weights]
    if len(weights) != count:
        raise NSTError(f"style_blend has {len(weights)} weight(s) for {count} style image(s): give one weight per "
                       f"style")
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise NSTError(f"style_blend {weights} has negative or non-finite weights, or sums to 0: give weights of 0 or "
                       f"more, at least one positive")
    total = sum(weights)
    return [w / total for w in weights]


def _check_alpha(alpha: object) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise NSTError(f"alpha is {alpha!r}: give a number from 0 (the photo's own features) to 1 (fully styled)")
    return float(alpha)


def fuse(content_features: torch.Tensor, style_features: Sequence[Union[torch.Tensor, Statistics]], *,
         alpha: float = 1.0, weights: Optional[Sequence[float]] = None,
         masks: Optional[Sequence[torch.Tensor]] = None, eps: float = STD_EPS) -> torch.Tensor:
    r"""The features the decoder turns into the result: AdaIN with the paper's controls.

    ``style_features`` is a list with one feature map (or ``(mean, std)``) per style. Without masks the target is
    :math:`\sum_k w_k\,\mathrm{AdaIN}(f(c), f(s_k))` with ``weights`` normalised to sum to 1 (equal by default).
    ``masks`` (one 1×1×H×W map in [0, 1] per style, at the features' resolution) make the weights local,
    :math:`w_k m_k(x) / \sum_j w_j m_j(x)`, and each style's AdaIN takes the content's statistics over its own
    region; where no mask is set the content's own features are kept. All-ones masks give the unmasked result.
    Then :math:`(1 - \alpha) f(c) + \alpha\,t`: ``alpha=0`` is the content's features. Introduced in lesson 11.
    """
    alpha = _check_alpha(alpha)
    _check_features(content_features, "fuse's content features")
    styles = list(style_features) if isinstance(style_features, (list, tuple)) else [style_features]
    if not styles:
        raise NSTError("fuse got no style features: give one feature map per style image")
    blend = _blend_weights(weights, len(styles))
    if masks is None:
        target = sum(w * adain(content_features, s, eps) for w, s in zip(blend, styles))
    else:
        masks = list(masks)
        if len(masks) != len(styles):
            raise NSTError(f"fuse got {len(masks)} mask(s) for {len(styles)} style(s): give one mask per style")
        local = [w * m for w, m in zip(blend, masks)]
        cover = sum(local)
        for k, m in enumerate(masks):
            if m.shape[-2:] != content_features.shape[-2:] or m.max() <= 0:
                raise NSTError(f"style mask {k + 1} is empty at the encoder's resolution (one position per {STRIDE} "
                               f"px) or of another size: paint a larger region, or style a larger image")
        target = sum(l * adain(content_features, s, eps, content_mask=m) for l, s, m in zip(local, styles, masks))
        # Divide where a style is set; elsewhere the content's own features.
        covered = cover > 0
        target = torch.where(covered, target / torch.where(covered, cover, torch.ones_like(cover)), content_features)
    return content_features if alpha == 0.0 else alpha * target + (1.0 - alpha) * content_features


def encode(model: VGGFeatures, images: torch.Tensor, layers: Sequence[str] = (ENCODER_LAYER,)) -> List[torch.Tensor]:
    """The encoder: ``model``'s activations of ``images`` (B×3×H×W in [0, 1]) at ``layers`` (either naming scheme),
    in the order given. Introduced in lesson 11."""
    out = model(images, list(layers))
    return [out[name] for name in layers]


def _conv(in_channels: int, out_channels: int, relu: bool = True) -> List[nn.Module]:
    # Reflection padding, as the paper's decoder: zero padding leaves a dark frame on every decoded picture.
    layers: List[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(in_channels, out_channels, 3)]
    return layers + [nn.ReLU()] if relu else layers


class Decoder(nn.Module):
    """The decoder: VGG19 from relu4_1 back to the picture, mirrored (Huang & Belongie 2017, section 6).

    Each of the encoder's 3×3 convolutions has one here in reverse order, each pooling a 2× nearest-neighbour
    upsampling, with reflection padding and no normalisation (the paper: instance or batch normalisation in the
    decoder would normalise the style away). ``widths`` are the channels of the three blocks (VGG's 256, 128, 64;
    smaller ones make a toy decoder for tests and lessons); ``in_channels`` is the encoder's 512. A B×512×h×w
    feature map gives a B×3×8h×8w picture (RGB, roughly [0, 1]; not clamped). Introduced in lesson 11.
    """

    def __init__(self, widths: Sequence[int] = (256, 128, 64), in_channels: int = 512) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if len(widths) != 3 or min(widths) < 1 or int(in_channels) < 1:
            raise NSTError(f"decoder widths {widths}: give three positive channel counts, such as (256, 128, 64)")
        self.config = {"widths": widths, "in_channels": int(in_channels)}
        w3, w2, w1 = widths
        up = nn.Upsample(scale_factor=2, mode="nearest")
        self.layers = nn.Sequential(
            *_conv(in_channels, w3), up,                                                  # mirrors conv4_1, pool3
            *_conv(w3, w3), *_conv(w3, w3), *_conv(w3, w3), *_conv(w3, w2), up,           # conv3_4..conv3_1, pool2
            *_conv(w2, w2), *_conv(w2, w1), up,                                           # conv2_2, conv2_1, pool1
            *_conv(w1, w1), *_conv(w1, 3, relu=False))                                    # conv1_2, conv1_1

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


register_network(DECODER_KIND, Decoder)


def load_decoder(decoder: Union[Decoder, NetworkFile, str, os.PathLike], device: DeviceLike = None) -> NetworkFile:
    """A decoder as a :class:`~nstutil.network_file.NetworkFile`: a :class:`Decoder` as it is (no meta), a loaded
    file, or a path loaded on ``device`` (default the CPU). A file of another kind (a style network) is one line."""
    if isinstance(decoder, Decoder):
        return NetworkFile(decoder, DECODER_KIND, dict(decoder.config))
    loaded = decoder if isinstance(decoder, NetworkFile) else load_network(decoder, device=resolve_device(
        device, default="cpu"))
    if loaded.kind != DECODER_KIND:
        where = f" {str(loaded.path)!r}" if loaded.path else ""
        raise NSTError(f"network file{where} holds a {loaded.kind!r} network, not an AdaIN decoder: give a file "
                       f"'nstutil train --arbitrary' wrote (a style network goes to 'stylize --net')")
    return loaded


def _encoder_for(loaded: NetworkFile, model: Optional[VGGFeatures], weights: Optional[str],
                 device: torch.device) -> VGGFeatures:
    """The VGG19 the decoder was trained with: ``model``, else ``weights``, else the named weights its file
    records (a decoder only understands the encoder it was trained with), else the default weights."""
    trained_with = loaded.meta.get("vgg_weights")
    if model is None:
        recorded = str(trained_with or "")
        if weights is None and (recorded in ("imagenet", "caffe") or recorded.startswith("random")):
            weights = recorded
        model = load_vgg19(weights, device=device)
    if trained_with and trained_with != model.weights_name:
        warnings.warn(f"the decoder was trained with the VGG19 weights {trained_with!r} but the encoder has "
                      f"{model.weights_name!r}: the pictures will be wrong; give the same weights")
    return model


def stylize_arbitrary(decoder: Union[Decoder, NetworkFile, str, os.PathLike], image: ImageLike,
                      style: Union[ImageLike, Sequence[ImageLike]], *, alpha: float = 1.0,
                      style_blend: Optional[Sequence[float]] = None, style_masks: Optional[Sequence[MaskLike]] = None,
                      preserve_colors: Optional[str] = None, size: Size = None, style_size: Size = None,
                      model: Optional[VGGFeatures] = None, weights: Optional[str] = None,
                      device: DeviceLike = None) -> torch.Tensor:
    """``image`` in the style of ``style`` in one pass of encoder, AdaIN and decoder: a 1×3×H×W tensor in [0, 1] on
    the CPU, the image's size.

    ``decoder`` is a trained :class:`Decoder` (it decides the device), a loaded file or its path (loaded on
    ``device``, default the CPU). ``image`` and each style are paths or 1×3×H×W tensors, resized so the longer
    side is ``size`` / ``style_size`` when given. Several styles are mixed with ``style_blend`` (weights, equal by
    default) or placed with ``style_masks`` (one per style, lesson 8's masks: pictures or H×W tensors in [0, 1]);
    ``alpha`` trades content (0) for style (1). ``preserve_colors="histogram"`` matches each style's colours to the
    photo's first (the paper's way); ``"luminance"`` keeps the photo's chrominance under the result afterwards.
    The encoder is ``model``, else VGG19 with ``weights``, else the weights the decoder file records.
    Introduced in lesson 11.
    """
    alpha = _check_alpha(alpha)
    if preserve_colors is not None and preserve_colors not in PRESERVE_COLORS:
        raise NSTError(f"preserve_colors {preserve_colors!r} is not known: use one of {', '.join(PRESERVE_COLORS)}, "
                       f"or leave it out")
    if isinstance(decoder, Decoder):
        resolve_device(device, decoder)  # the decoder decides; another device asked for is one line
    loaded = load_decoder(decoder, device)
    where = model_device(loaded.model)
    encoder = _encoder_for(loaded, model, weights, where)
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    if not styles:
        raise NSTError("no style image given: give at least one style image (a path or a 1×3×H×W tensor)")
    blend = _blend_weights(style_blend, len(styles))
    photo, _ = image_input(image if isinstance(image, torch.Tensor) else image_path(image, role="photo"), size,
                           "photo")
    need = min_image_side([ENCODER_LAYER])
    if min(photo.shape[-2:]) < need:
        raise NSTError(f"photo is {photo.shape[-1]}×{photo.shape[-2]} px: the encoder needs at least {need} px a "
                       f"side; give a larger size")
    style_images = []
    for k, s in enumerate(styles):
        role = "style image" if len(styles) == 1 else f"style image {k + 1}"
        picture, _ = image_input(s if isinstance(s, torch.Tensor) else image_path(s, role=role), style_size, role)
        if min(picture.shape[-2:]) < need:
            raise NSTError(f"{role} is {picture.shape[-1]}×{picture.shape[-2]} px: the encoder needs at least "
                           f"{need} px a side; give a larger style size")
        style_images.append(match_histogram(picture, photo) if preserve_colors == "histogram" else picture)
    masks = None
    if style_masks is not None:
        full, _ = load_masks(style_masks, len(styles), tuple(photo.shape[-2:]))
        masks = [mask_at_layer(m, ENCODER_LAYER).to(where) for m in full]
    net = loaded.model
    was_training = net.training
    net.eval()
    with torch.inference_mode():
        x = photo.to(where)
        (content,) = encode(encoder, x)
        targets = [encode(encoder, s.to(where))[0] for s in style_images]
        styled = net(fuse(content, targets, alpha=alpha, weights=blend, masks=masks))
        if styled.shape[-2:] != x.shape[-2:]:  # sides that are not multiples of 8 lose a few pixels in the encoder
            styled = F.interpolate(styled, size=x.shape[-2:], mode="bilinear", align_corners=False)
        styled = styled.clamp(0.0, 1.0)
        if preserve_colors == "luminance":
            styled = combine_luminance(styled, x)
    net.train(was_training)
    return styled.float().cpu()
