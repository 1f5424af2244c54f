"""Masks drawn on a transparent layer: transparency means "not this region" (nstutil.regions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nstutil import NSTError, load_image
from nstutil.regions import load_masks


def _rgba(path, alpha):
    """A white picture (RGB all 255) whose alpha is ``alpha`` (H×W uint8)."""
    rgba = np.full((*alpha.shape, 4), 255, dtype=np.uint8)
    rgba[..., 3] = alpha
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def test_transparent_outside_is_not_the_region(tmp_path):
    alpha = np.zeros((16, 20), dtype=np.uint8)
    alpha[:, :10] = 255  # the left half painted (opaque white), the right half transparent (white underneath)
    (mask,), _ = load_masks([_rgba(tmp_path / "left.png", alpha)], 1, (16, 20))
    assert torch.all(mask[..., :10] == 1) and torch.all(mask[..., 10:] == 0)


def test_half_transparent_is_a_soft_edge_and_palette_transparency_counts(tmp_path):
    alpha = np.full((8, 8), 128, dtype=np.uint8)
    (mask,), _ = load_masks([_rgba(tmp_path / "soft.png", alpha)], 1, (8, 8))
    assert torch.allclose(mask, torch.full_like(mask, 128 / 255), atol=1 / 255)
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([255, 255, 255, 255, 255, 255])  # both entries white; entry 0 is transparent
    palette.paste(1, (4, 0, 8, 8))
    palette.save(tmp_path / "palette.png", transparency=0)
    (mask,), _ = load_masks([tmp_path / "palette.png"], 1, (8, 8))
    assert torch.all(mask[..., :4] == 0) and torch.all(mask[..., 4:] == 1)


def test_all_transparent_mask_is_refused(tmp_path):
    with pytest.raises(NSTError, match="transparent"):
        load_masks([_rgba(tmp_path / "empty.png", np.zeros((8, 8), dtype=np.uint8))], 1, (8, 8))


def test_images_still_compose_transparency_over_white(tmp_path):
    path = _rgba(tmp_path / "logo.png", np.zeros((4, 4), dtype=np.uint8))
    assert torch.all(load_image(path) == 1)
