"""The image transformation network of Johnson, Alahi & Fei-Fei (2016): a photo in, the styled photo out, one pass.

Introduced in lesson 10 (A network that styles in one pass). The layout is the paper's (its supplementary material,
"Network architectures"), with the two changes every later implementation made:

- a 9×9 convolution (32 channels), two strided 3×3 convolutions down (64, 128 channels, each halving the size),
  five residual blocks of two 3×3 convolutions (128 channels), two ×2 upsampling steps (64, 32 channels) and a 9×9
  convolution back to RGB;
- **instance normalisation** instead of the paper's batch normalisation: Ulyanov, Vedaldi & Lempitsky (2016),
  "Instance Normalization: The Missing Ingredient for Fast Stylization", normalise each image's channels by that
  image's own mean and standard deviation, so the contrast of one photo never depends on the others in its batch;
- **upsample, then convolve** instead of transposed convolutions: Odena, Dumoulin & Olah (2016, Distill),
  "Deconvolution and Checkerboard Artifacts" show that a stride-2 transposed convolution whose kernel does not divide
  by the stride covers some output pixels twice as often as their neighbours, which leaves a checkerboard;
- reflection padding everywhere (zero padding darkens the borders), as pytorch/examples' ``fast_neural_style``.

The last layer is the paper's scaled tanh, here onto [0, 1]: ``(1 + tanh(y)) / 2``, so that every value the network
makes is a colour a picture can show. Without it (``output="linear"``, the layout of pytorch/examples) the network
learns colours far outside [0, 1] that lower the training loss but are clamped away when the picture is shown. On
held-out photos (the light widths, 128 px, random VGG19 weights, 150 steps) the clamped pictures' mean loss was 0.66
against 0.20 for the values the network was trained on; with the tanh the two are the same, and 0.07.
``norm="batch"`` and ``upsample="transposed"`` exist so that lesson 10 can show what the two choices above avoid.
Any input size of at least :data:`MIN_SIDE` pixels works: the network pads the input (by reflection) to a multiple
of 4 and crops the output back.
"""

from __future__ import annotations

from typing import Dict, Tuple, Union

import torch
from torch import nn
import torch.nn.functional as F

from .errors import NSTError
from .fast import convolve_to_few_channels, upsample_convolve

__all__ = ["TransformerNet", "ResidualBlock", "ConvLayer", "UpsampleConv", "OutputLayer", "NORMS", "UPSAMPLES",
           "WIDTHS", "OUTPUTS", "MIN_SIDE"]

NORMS = ("instance", "batch", "none")
UPSAMPLES = ("nearest", "transposed")
OUTPUTS = ("tanh", "linear")
# The widths of the three levels by name: the paper's, and half of them ("light": a quarter of the multiplications,
# for styling large photos on a laptop's CPU; benchmarks/README.md measures what it costs in loss).
WIDTHS = {"johnson": (32, 64, 128), "light": (16, 32, 64)}
# Two halvings leave a quarter of the side; a 3×3 reflection pad there needs at least 2 pixels.
MIN_SIDE = 8
_MULTIPLE = 4


def _relu() -> nn.Module:
    # In place: nothing reads the normalised map after its ReLU, and a 1024 px photo's maps are 100 MB each.
    return nn.ReLU(inplace=True)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        # affine: each channel gets a learned scale and shift after normalising, as in Ulyanov et al.
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


class ConvLayer(nn.Sequential):
    """Reflection padding then a convolution, so the output keeps the input's size (÷ ``stride``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> None:
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(in_channels, out_channels, kernel, stride))


class OutputLayer(ConvLayer):
    """The last layer, to RGB: a :class:`ConvLayer` computed column by column, which is faster for 3 channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padding, conv = self
        return convolve_to_few_channels(padding(x), conv)


class ResidualBlock(nn.Module):
    """Two 3×3 convolutions with normalisation, a ReLU between, added to the input (He et al. 2016).

    ``y = x + norm(conv(relu(norm(conv(x)))))``: the block only has to learn a change to its input, which is
    what a style network does to a photo's features. Without a ReLU after the sum, as in the paper's supplement.
    """

    def __init__(self, channels: int, norm: str = "instance") -> None:
        super().__init__()
        self.body = nn.Sequential(ConvLayer(channels, channels, 3), _norm(norm, channels), _relu(),
                                  ConvLayer(channels, channels, 3), _norm(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleConv(nn.Module):
    """Double the size: nearest-neighbour upsampling then a 3×3 convolution (``upsample="nearest"``), or a stride-2
    3×3 transposed convolution (``"transposed"``, the paper's fractionally strided convolution, which leaves
    checkerboard artefacts)."""

    def __init__(self, in_channels: int, out_channels: int, upsample: str = "nearest") -> None:
        super().__init__()
        self.upsample = upsample
        if upsample == "nearest":
            self.conv = ConvLayer(in_channels, out_channels, 3)
        else:
            self.conv = nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample == "nearest":
            # = self.conv(F.interpolate(x, scale_factor=2, mode="nearest")), at the small size (see fast.py).
            return upsample_convolve(x, self.conv[1])
        return self.conv(x)


class TransformerNet(nn.Module):
    """Johnson et al.'s image transformation network (see the module docstring): B×3×H×W in [0, 1] in, the same
    size out.

    ``channels`` are the widths of the three levels (32, 64, 128 in the paper) or a name in :data:`WIDTHS`
    (``"johnson"``, ``"light"``), ``blocks`` the number of residual blocks (5), ``norm`` one of ``"instance"``
    (default), ``"batch"``, ``"none"``, ``upsample`` one of ``"nearest"`` (default) or ``"transposed"`` and
    ``output`` ``"tanh"`` (default: pixels in [0, 1]) or ``"linear"`` (unbounded). :attr:`config` holds these, so a
    network file can rebuild it.
    """

    def __init__(self, channels: Union[str, Tuple[int, int, int]] = WIDTHS["johnson"], blocks: int = 5,
                 norm: str = "instance", upsample: str = "nearest", output: str = "tanh") -> None:
        super().__init__()
        if norm not in NORMS:
            raise NSTError(f"norm {norm!r} is not known: use one of {', '.join(NORMS)}")
        if upsample not in UPSAMPLES:
            raise NSTError(f"upsample {upsample!r} is not known: use one of {', '.join(UPSAMPLES)}")
        if output not in OUTPUTS:
            raise NSTError(f"output {output!r} is not known: use one of {', '.join(OUTPUTS)}")
        if isinstance(channels, str):
            if channels not in WIDTHS:
                raise NSTError(f"network {channels!r} is not known: use one of {', '.join(WIDTHS)}")
            channels = WIDTHS[channels]
        channels = tuple(int(c) for c in channels)
        if len(channels) != 3 or min(channels) < 1:
            raise NSTError(f"channels {channels!r}: give three positive widths, such as (32, 64, 128)")
        if int(blocks) < 0:
            raise NSTError(f"blocks {blocks!r}: give the number of residual blocks (0 or more; 5 in the paper)")
        c1, c2, c3 = channels
        self.config: Dict[str, object] = {"channels": list(channels), "blocks": int(blocks), "norm": norm,
                                          "upsample": upsample, "output": output}
        self.down = nn.Sequential(
            ConvLayer(3, c1, 9), _norm(norm, c1), _relu(),
            ConvLayer(c1, c2, 3, stride=2), _norm(norm, c2), _relu(),
            ConvLayer(c2, c3, 3, stride=2), _norm(norm, c3), _relu(),
        )
        self.residuals = nn.Sequential(*(ResidualBlock(c3, norm) for _ in range(int(blocks))))
        self.up = nn.Sequential(
            UpsampleConv(c3, c2, upsample), _norm(norm, c2), _relu(),
            UpsampleConv(c2, c1, upsample), _norm(norm, c1), _relu(),
            OutputLayer(c1, 3, 9),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise NSTError(f"the style network got input of shape {shape}: pass a batch B×3×H×W in [0, 1]")
        height, width = x.shape[-2:]
        if min(height, width) < MIN_SIDE:
            raise NSTError(f"the style network got a {width}×{height} image: it needs at least {MIN_SIDE} px on "
                           f"each side; use a larger size")
        # Reflection-pad to a multiple of 4 so the two halvings and doublings give back the same size, then crop.
        pad_h, pad_w = -height % _MULTIPLE, -width % _MULTIPLE
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        y = self.up(self.residuals(self.down(x)))[..., :height, :width]
        return (1 + torch.tanh(y)) / 2 if self.config["output"] == "tanh" else y
