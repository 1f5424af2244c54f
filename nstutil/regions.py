"""Spatial control: masks that say where on the content image each style goes (Gatys et al. 2017, spatial control).

Introduced in lesson 8 (Controlling the result). A mask is an H×W map in [0, 1] over the content image, one per style
image: 1 where that style should be, 0 where it should not, anything between for a soft edge. In a picture,
white means this style, black or transparent means not. Each style's Gram
matrices are then *guided*: computed over the mask's region only (:func:`nstutil.gram_matrix` with ``mask=``).

How a mask reaches a layer's resolution: by the same 2×2 steps of stride 2 as the network's pooling layers, but
averaging (:func:`mask_at_layer`). A layer after *k* poolings has a map of ``H // 2**k`` × ``W // 2**k`` positions, so
the mask is average-pooled *k* times: each position of the layer gets the mean of the mask over the image pixels
it sits over, and a soft or hard edge stays where it was. (Gatys et al. also describe eroding the mask to the
positions whose whole receptive field lies inside the region; simple resizing is their default and ours.)
"""

from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from .errors import NSTError
from .images import load_image, resize_image
from .vgg import resolve_layer

__all__ = ["MaskLike", "load_masks", "mask_at_layer"]

MaskLike = Union[str, os.PathLike, torch.Tensor]


def _as_mask(mask: MaskLike, index: int) -> Tuple[torch.Tensor, Optional[str]]:
    """A 1×1×h×w float mask in [0, 1] (any size) and its path, from a tensor or a picture file."""
    what = f"style mask {index + 1}"
    if isinstance(mask, torch.Tensor):
        t = mask.detach().float()
        while t.dim() > 2 and t.shape[0] == 1:
            t = t[0]
        if t.dim() != 2:
            raise NSTError(f"{what} has shape {tuple(mask.shape)}: give an H×W tensor (or 1×1×H×W) with values "
                           f"in [0, 1], or a picture")
        if not torch.isfinite(t).all() or t.min() < 0 or t.max() > 1:
            raise NSTError(f"{what} has values outside [0, 1] (or NaN): give values from 0 (not this style) to 1")
        return t[None, None].cpu(), None
    if not isinstance(mask, (str, os.PathLike)):
        raise NSTError(f"{what} is a {type(mask).__name__}: give an H×W tensor in [0, 1] or the path of a picture")
    # A picture's brightness is the mask (white = this style); colours count by their mean. Transparent parts are
    # outside (composed over black): a region painted on a transparent layer means that region alone.
    return load_image(mask, role=what, background=(0, 0, 0)).mean(dim=1, keepdim=True), os.fspath(mask)


def load_masks(masks: Sequence[MaskLike], count: int, size: Tuple[int, int]) -> Tuple[List[torch.Tensor],
                                                                                         List[Optional[str]]]:
    """``count`` masks as 1×1×H×W tensors at ``size`` = (H, W) (resized if needed), and their paths (or None).

    Raises :class:`NSTError` for a wrong number of masks, a mask that is not a picture or not in [0, 1], or a
    mask that selects nothing. Introduced in lesson 8.
    """
    if isinstance(masks, (str, os.PathLike, torch.Tensor)):
        masks = [masks]
    masks = list(masks)
    if len(masks) != count:
        raise NSTError(f"style_masks has {len(masks)} mask(s) for {count} style image(s): give one mask per style")
    tensors, paths = [], []
    for k, mask in enumerate(masks):
        tensor, path = _as_mask(mask, k)
        if tuple(tensor.shape[-2:]) != tuple(size):
            tensor = resize_image(tensor, size)
        if tensor.max() <= 0:
            raise NSTError(f"style mask {k + 1} is all black (or transparent), so its style would go nowhere: paint "
                           f"its region opaque white")
        tensors.append(tensor)
        paths.append(path)
    return tensors, paths


def mask_at_layer(mask: torch.Tensor, layer: str) -> torch.Tensor:
    """``mask`` (1×1×H×W over the image) at the resolution of ``layer``'s feature map (either naming scheme).

    Average-pooled once for every pooling layer before ``layer`` (2×2, stride 2, odd edges dropped as the
    network drops them), so it lines up position by position with the layer's activations. Introduced in lesson 8.
    """
    info = resolve_layer(layer)
    for _ in range(info.stride.bit_length() - 1):  # stride = 2 ** (poolings before the layer)
        mask = F.avg_pool2d(mask, kernel_size=2, stride=2)
    return mask
