"""Shared fixtures for nstutil's tests: small seeded images and one random-weights VGG19 for the whole session.

Everything runs on the CPU with seeded random weights (pretrained weights cannot be downloaded here), on images of
32-64 px, so that the suite stays fast.
"""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch


@pytest.fixture(scope="session")
def vgg():
    """nstutil's VGG19 feature extractor with seeded random weights (shared; do not modify it in a test)."""
    import nstutil

    return nstutil.load_vgg19("random")


@pytest.fixture(scope="session")
def torchvision_vgg19():
    """``torchvision.models.vgg19()`` with seeded weights of its own in ``features`` (not nstutil's "random").

    The classifier, which nstutil never uses, stays on the meta device (its 120 M parameters would make every
    test that builds or saves it slow); :func:`full_state_dict` turns the model into a full-layout state dict.
    Treat it as read-only; copy it (``copy.deepcopy``) before changing anything.
    """
    import torchvision

    with torch.device("meta"):
        model = torchvision.models.vgg19(weights=None)
    model.features.to_empty(device="cpu")
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for module in model.features:
            if isinstance(module, torch.nn.Conv2d):
                fan_out = module.out_channels * 9
                module.weight.copy_(torch.randn(module.weight.shape, generator=g) * (2.0 / fan_out) ** 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=g) * 0.05)
    return model.eval()


def full_state_dict(model) -> dict:
    """The state dict of a whole torchvision VGG19 (``features.*`` and ``classifier.*`` keys, real shapes).

    Classifier tensors are zeros expanded to their shapes (stride 0), so the file stays small.
    """
    state = {}
    for key, value in model.state_dict().items():
        state[key] = torch.zeros(1).expand(value.shape) if value.is_meta else value
    return state


@pytest.fixture
def full_vgg19_state(torchvision_vgg19):
    """:func:`full_state_dict` of the ``torchvision_vgg19`` fixture."""
    return full_state_dict(torchvision_vgg19)


def smooth_image(height: int, width: int, seed: int = 0, low: float = 0.05, high: float = 0.95) -> torch.Tensor:
    """A seeded 1×3×H×W float32 picture with values in [low, high]: blurred noise, so it has structure."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, height // 4), max(2, width // 4), generator=g)
    fine = torch.rand(1, 3, height, width, generator=g)
    up = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    picture = 0.8 * up + 0.2 * fine
    return (low + (high - low) * picture).float().contiguous()


@pytest.fixture
def make_image():
    """``make_image(h, w, seed=0)`` → a seeded 1×3×H×W image in [0.05, 0.95]."""
    return smooth_image


@pytest.fixture(scope="session")
def model(vgg):
    """The shared random-weights VGG19, under the name the widgets take it by (``model=``)."""
    return vgg
