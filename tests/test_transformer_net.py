"""The image transformation network: sizes, instance normalisation, residual blocks, upsampling."""

from __future__ import annotations

import pytest
import torch

from nstutil import NSTError
from nstutil.fast import convolve_to_few_channels, upsample_convolve
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
    assert net.config == {"channels": [32, 64, 128], "blocks": 5, "norm": "instance", "upsample": "nearest",
                          "output": "tanh"}


def test_the_tanh_output_is_a_picture_the_linear_one_is_not():
    # Large weights in the last layer push the linear output far outside [0, 1]; the paper's tanh keeps it inside
    # and is exactly (1 + tanh(linear)) / 2 of the same network.
    photos = torch.rand(2, 3, 16, 16)
    linear, squashed = _small(output="linear"), _small(output="tanh")
    squashed.load_state_dict(linear.state_dict())
    with torch.no_grad():
        linear.up[-1][1].weight.mul_(50)
        squashed.up[-1][1].weight.mul_(50)
        raw, out = linear(photos), squashed(photos)
    assert raw.min() < -1 and raw.max() > 2
    assert out.min() >= 0 and out.max() <= 1
    assert torch.allclose(out, (1 + torch.tanh(raw)) / 2, atol=1e-6)


def test_too_small_an_input_is_one_line():
    with pytest.raises(NSTError, match=f"at least {MIN_SIDE} px"):
        _small()(torch.rand(1, 3, MIN_SIDE - 1, 20))
    with pytest.raises(NSTError, match="B×3×H×W"):
        _small()(torch.rand(3, 16, 16))


@pytest.mark.parametrize("option", [{"norm": "layer"}, {"upsample": "bilinear"}, {"channels": (4, 8)},
                                    {"output": "sigmoid"}])
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


@pytest.mark.parametrize("height, width", [(5, 7), (1, 1), (8, 3)])
def test_upsampling_at_the_small_size_equals_upsample_then_convolve(height, width):
    """fast.upsample_convolve (four 2×2 kernels at the small size) gives the picture and gradients of the plain
    'nearest ×2, reflection pad, 3×3 convolution' to float64 rounding."""
    torch.manual_seed(0)
    layer = UpsampleConv(4, 6).double()
    x = torch.randn(2, 4, height, width, dtype=torch.float64, requires_grad=True)
    plain = layer.conv(torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
    fast = layer(x)
    assert fast.shape == plain.shape == (2, 6, 2 * height, 2 * width)
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-12)
    direction = torch.randn_like(plain)
    inputs = [x, layer.conv[1].weight, layer.conv[1].bias]
    for got, expected in zip(torch.autograd.grad(fast, inputs, direction),
                             torch.autograd.grad(plain, inputs, direction)):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_upsample_convolve_refuses_a_convolution_it_cannot_fold():
    with pytest.raises(NSTError, match="3×3 convolution with stride 1"):
        upsample_convolve(torch.zeros(1, 2, 4, 4), torch.nn.Conv2d(2, 2, 3, padding=1))


def test_the_light_network_is_the_paper_layout_at_half_the_widths():
    light, paper = TransformerNet("light"), TransformerNet()
    assert light.config["channels"] == [16, 32, 64] and paper.config["channels"] == [32, 64, 128]
    assert [type(m) for m in light.modules()] == [type(m) for m in paper.modules()]
    with pytest.raises(NSTError, match="network 'tiny' is not known: use one of johnson, light"):
        TransformerNet("tiny")


def test_the_last_layer_by_columns_equals_the_plain_convolution():
    """fast.convolve_to_few_channels (k×1 convolutions shifted and added) = the 9×9 convolution, values and
    gradients, float64."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(5, 3, 9).double()
    x = torch.randn(2, 5, 20, 17, dtype=torch.float64, requires_grad=True)
    plain, by_columns = conv(x), convolve_to_few_channels(x, conv)
    torch.testing.assert_close(by_columns, plain, rtol=0, atol=1e-12)
    direction = torch.randn_like(plain)
    inputs = [x, conv.weight, conv.bias]
    for got, expected in zip(torch.autograd.grad(by_columns, inputs, direction),
                             torch.autograd.grad(plain, inputs, direction)):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
