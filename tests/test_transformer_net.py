"""The image transformation network: sizes, instance normalisation, residual blocks, upsampling."""

from __future__ import annotations

import pytest
import torch

from nstutil import NSTError
from nstutil.transformer_net import MIN_SIDE, ResidualBlock, TransformerNet, UpsampleConv


def _small(**kw):
    torch.manual_seed(0)
    return TransformerNet(channels=(4, 8, 8), blocks=1, **kw)


@pytest.mark.parametrize("shape", [(8, 8), (13, 21), (30, 17), (32, 32)])
def test_the_output_keeps_any_input_size(shape):
    out = _small()(torch.rand(2, 3, *shape))
    assert out.shape == (2, 3, *shape)


def test_the_paper_layout_is_the_default():
    net = TransformerNet()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size[0] for c in convs[:3]] == [9, 3, 3]
    assert [c.stride[0] for c in convs[:3]] == [1, 2, 2]
    assert [c.out_channels for c in convs[:3]] == [32, 64, 128]
    assert len(net.residuals) == 5
    assert convs[-1].kernel_size == (9, 9) and convs[-1].out_channels == 3
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.ConvTranspose2d)) for m in net.modules())
    assert net.config == {"channels": [32, 64, 128], "blocks": 5, "norm": "instance", "upsample": "nearest"}


def test_too_small_an_input_is_one_line():
    with pytest.raises(NSTError, match=f"at least {MIN_SIDE} px"):
        _small()(torch.rand(1, 3, MIN_SIDE - 1, 20))
    with pytest.raises(NSTError, match="B×3×H×W"):
        _small()(torch.rand(3, 16, 16))


@pytest.mark.parametrize("option", [{"norm": "layer"}, {"upsample": "bilinear"}, {"channels": (4, 8)}])
def test_unknown_options_are_refused(option):
    with pytest.raises(NSTError):
        TransformerNet(**option)


def test_instance_norm_styles_each_photo_alone_batch_norm_does_not():
    photos = torch.rand(3, 3, 16, 16)
    for norm, independent in (("instance", True), ("batch", False)):
        net = _small(norm=norm).train()
        alone = net(photos[:1])
        together = net(photos)[:1]
        assert torch.allclose(alone, together, atol=1e-5) is independent, norm


def test_a_residual_block_with_a_zero_last_layer_is_the_identity():
    block = ResidualBlock(8)
    with torch.no_grad():
        conv = block.body[3][1]
        conv.weight.zero_()
        conv.bias.zero_()
    block.body[4].weight.data.zero_()  # the last normalisation's scale: its output is then its shift, zero
    block.body[4].bias.data.zero_()
    x = torch.randn(1, 8, 10, 10)
    assert torch.equal(block(x), x)


def test_transposed_convolution_leaves_a_checkerboard_upsampling_does_not():
    # Equal weights and a flat input: any pattern in the output comes from how often each pixel is covered.
    flat = torch.ones(1, 1, 8, 8)
    spreads = {}
    for mode in ("nearest", "transposed"):
        layer = UpsampleConv(1, 1, mode)
        conv = layer.conv if mode == "transposed" else layer.conv[1]
        with torch.no_grad():
            conv.weight.fill_(1.0)
            conv.bias.zero_()
        inner = layer(flat)[0, 0, 2:-2, 2:-2]  # away from the borders
        spreads[mode] = (inner.max() - inner.min()).item()
        if mode == "transposed":
            # Some pixels are covered by 4 kernel taps, their neighbours by 2 or 1: a pattern of period 2.
            for rows in (slice(0, None, 2), slice(1, None, 2)):
                for cols in (slice(0, None, 2), slice(1, None, 2)):
                    assert inner[rows, cols].unique().numel() == 1
            assert inner[0, 0] != inner[0, 1]
    assert spreads["nearest"] == 0.0
    assert spreads["transposed"] > 1.0
