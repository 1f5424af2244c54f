"""How long a style transfer will take and how much memory it needs, known before it runs.

Users of jcjohnson/neural-style asked for "a clear way to calculate the memory usage before running" (its issue
#122). This module answers both questions from the VGG19 layer table:

* **Memory** is counted, not guessed: what autograd keeps for the backward pass at every layer up to the deepest
  loss layer (each ReLU's output, each max-pool's int64 indices, the image), the targets, the gradients in flight
  at the widest layer, L-BFGS's ``history_size`` pairs of image-sized vectors and the network's weights. Two
  constants (the gradients in flight, and the libraries' fixed first-use memory) were fitted to peak memory
  measured on a CPU (benchmarks/bench_estimate.py checks the model at several sizes).
* **Time** is the FLOPs of one evaluation (convolutions forward and backward, Gram products) divided by what this
  machine does per second, measured by a very short run at two small sizes (:func:`measure_speed`): a fixed cost
  per evaluation plus a cost per FLOP. No speed figure of any particular CPU or GPU is built in.

The command line uses :func:`plan_run`: it refuses a size that would not fit in the memory the OS says is
available (naming the largest size that fits) and prints "about N min, M GiB" before a long run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch

from .device import resolve_device
from .errors import NSTError
from .images import scaled_shape
from .inputs import plan_scales
from .optimisation import LBFGS_HISTORY
from .presets import get_preset
from .settings import Controls, RecipeChoice
from .vgg import LAYERS, LayerInfo, VGGFeatures, min_image_side, resolve_layer

__all__ = ["Speed", "Estimate", "evaluation_flops", "memory_needed", "available_memory", "largest_side",
           "measure_speed", "estimate_run", "plan_run"]

GIB = float(1 << 30)
_FLOAT, _INDEX = 4, 8                      # bytes of a float32, of an int64 max-pool index
#: L-BFGS pairs kept by style_transfer (torch.optim.LBFGS's own default is 100).
# Image-sized float vectors besides the history pairs: L-BFGS's direction, previous gradient and line-search
# copies, the optimised variable and its gradient, the image, the best image so far, the start and content images.
_IMAGE_VECTORS = 12
# Fitted to peak memory (VmHWM) measured on a 2-core AMD EPYC CPU, 128 to 1024 px, Gatys and tutorial layers: the
# gradients and temporaries in flight are about one widest map, and the libraries' first-use memory (oneDNN's
# kernels and caches, the allocator's slack) about 250 MiB. The estimate came within -12 % .. +23 % of the peak
# (within 12 % from 256 px up); benchmarks/bench_estimate.py checks it.
_IN_FLIGHT = 1.0
_FIXED = 250 * (1 << 20)
# The speed calibration: longer sides in px and evaluations per size (the first of each is a warm-up).
CALIBRATION_SIDES = (64, 128)
CALIBRATION_EVALUATIONS = 3
# A run is "long", and worth an estimate, when its FLOPs are at least this many times the calibration's.
_LONG_RUN = 50

Layers = Union[str, Sequence[str], Dict[str, float]]


def _names(layers: Optional[Layers]) -> List[str]:
    if layers is None:
        return []
    return [layers] if isinstance(layers, str) else list(layers)


def _used(content_layers: Optional[Layers], style_layers: Optional[Layers]) -> Tuple[List[LayerInfo], List[LayerInfo],
                                                                                    int]:
    """Resolved content and style layers, and the index of the deepest one (where the pass stops)."""
    content = [resolve_layer(n) for n in _names(content_layers)]
    style = [resolve_layer(n) for n in _names(style_layers)]
    if not content and not style:
        raise NSTError("no content and no style layers: give at least one layer, e.g. relu4_2")
    return content, style, max(l.index for l in content + style)


def _map(layer: LayerInfo, height: int, width: int) -> int:
    """Values in ``layer``'s output for an image of height × width (each pool halves, rounding down)."""
    return layer.channels * (height // layer.stride) * (width // layer.stride)


def evaluation_flops(height: int, width: int, content_layers: Optional[Layers], style_layers: Optional[Layers]) -> int:
    """FLOPs of one loss evaluation: every convolution up to the deepest loss layer forward and backward (input
    gradient only; the weights are frozen), and each style layer's Gram ``F Fᵀ`` with its one-product backward.
    ReLU, pooling, the losses and the optimiser are left out (well under 1 %)."""
    _, style, deepest = _used(content_layers, style_layers)
    flops, in_channels = 0, 3
    for layer in LAYERS[:deepest + 1]:
        if layer.kind == "conv":
            pixels = (height // layer.stride) * (width // layer.stride)
            flops += 2 * (2 * in_channels * layer.channels * 9 * pixels)
            in_channels = layer.channels
    for layer in style:
        flops += 2 * (2 * layer.channels * _map(layer, height, width))
    return flops


def _weights_bytes() -> int:
    """The whole VGG19 ``features`` stack's weights and biases, as :func:`~nstutil.load_vgg19` keeps them."""
    total, in_channels = 0, 3
    for layer in LAYERS:
        if layer.kind == "conv":
            total += (in_channels * 9 + 1) * layer.channels
            in_channels = layer.channels
    return total * _FLOAT


def _memory_parts(height: int, width: int, content_layers: Optional[Layers], style_layers: Optional[Layers],
                  history_size: int) -> Tuple[int, int, int]:
    """Floats (kept for the backward pass and as targets, the widest map, image-sized vectors) of a run."""
    content, style, deepest = _used(content_layers, style_layers)
    asked = {l.index for l in content + style}
    image = 3 * height * width
    kept = image
    widest = image
    for layer in LAYERS[:deepest + 1]:
        values = _map(layer, height, width)
        widest = max(widest, values)
        if layer.kind == "relu" or (layer.kind == "conv" and layer.index == deepest):
            kept += values
        elif layer.kind == "conv" and layer.index in asked:
            kept += values                 # its output is kept apart from the ReLU's, which then is not in place
        elif layer.kind == "pool":
            kept += values * _INDEX // _FLOAT
    kept += sum(2 * _map(l, height, width) for l in content)          # the target and the saved difference
    kept += sum(2 * l.channels ** 2 for l in style)                   # the target Gram and the saved difference
    return kept, widest, (2 * history_size + _IMAGE_VECTORS) * image


def memory_needed(height: int, width: int, content_layers: Optional[Layers], style_layers: Optional[Layers], *,
                  history_size: int = LBFGS_HISTORY) -> int:
    """Peak bytes a style transfer of a height × width image needs, the network's weights included.

    Counted: what the backward pass keeps from the forward pass (the input image; each ReLU's output, which its
    ReLU, the next convolution or pool and any loss share; a second map where a convolution's own output is asked
    for; each max-pool's int64 indices; each content layer's difference from its target), the content targets and
    Gram matrices, the gradients in flight at the widest layer, L-BFGS's ``history_size`` pairs and other
    image-sized vectors, the weights, and the libraries' fixed memory.
    """
    kept, widest, vectors = _memory_parts(height, width, content_layers, style_layers, history_size)
    return int((kept + _IN_FLIGHT * widest + vectors) * _FLOAT + _weights_bytes() + _FIXED)


def available_memory(device: Union[None, str, torch.device] = None) -> Optional[int]:
    """Bytes the OS (or, for a GPU, the CUDA driver) says a new allocation can have now; None if unknown."""
    device = resolve_device(device, default="cpu")
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def largest_side(height: int, width: int, content_layers: Optional[Layers], style_layers: Optional[Layers],
                 available: int, *, history_size: int = LBFGS_HISTORY) -> int:
    """The longest longer side (px) at this aspect ratio whose run fits in ``available`` bytes; 0 if none does."""
    def fits(side: int) -> bool:
        return memory_needed(*scaled_shape((height, width), side), content_layers, style_layers,
                             history_size=history_size) <= available

    low = min_image_side([*_names(content_layers), *_names(style_layers)])
    if not fits(low):
        return 0
    high = low
    while fits(high * 2):
        high *= 2
    high *= 2                                                       # fits(low .. high // 2), not fits(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


@dataclass(frozen=True)
class Speed:
    """Seconds per evaluation on one device as ``overhead + flops * seconds_per_flop``, from :func:`measure_speed`.

    ``overhead`` is what does not grow with the image (Python, the optimiser's bookkeeping, per-call copies of the
    weights), ``seconds_per_flop`` the inverse of the throughput on large maps."""

    overhead: float
    seconds_per_flop: float

    def evaluation_seconds(self, flops: float) -> float:
        """Seconds one evaluation of ``flops`` FLOPs takes."""
        return self.overhead + flops * self.seconds_per_flop

    @staticmethod
    def fit(flops: Sequence[float], seconds: Sequence[float]) -> "Speed":
        """The line through two (FLOPs, seconds) measurements; if timing noise makes it fall or start below zero,
        the throughput of the larger one with no fixed cost."""
        (f1, t1), (f2, t2) = sorted(zip(flops, seconds))
        slope = (t2 - t1) / (f2 - f1) if f2 > f1 else 0.0
        overhead = t1 - slope * f1
        if slope <= 0 or overhead < 0:
            return Speed(0.0, t2 / f2)
        return Speed(overhead, slope)


_speeds: Dict[Tuple[object, ...], Speed] = {}


def measure_speed(content_layers: Layers, style_layers: Layers, *, model: VGGFeatures,
                  device: Union[None, str, torch.device] = None) -> Speed:
    """Time :data:`CALIBRATION_EVALUATIONS` evaluations of these layers at each of :data:`CALIBRATION_SIDES`
    (random square images; the first evaluation of each warms up) and fit a :class:`Speed`. Measured once per
    process, device and layers; well under a second on a laptop CPU."""
    from .transfer import style_transfer  # the engine imports this module's users, not this module

    device = resolve_device(device, model)
    key = (str(device), tuple(_names(content_layers)), tuple(_names(style_layers)), torch.get_num_threads())
    if key in _speeds:
        return _speeds[key]
    noise = torch.Generator().manual_seed(0)
    flops, seconds = [], []
    for side in CALIBRATION_SIDES:
        content, style = (torch.rand(1, 3, side, side, generator=noise) for _ in range(2))
        result = style_transfer(content, style, model=model, device=device, content_layers=content_layers,
                                style_layers=style_layers, steps=CALIBRATION_EVALUATIONS, init="content",
                                progress=False)
        times = [record.elapsed for record in result.history]
        seconds.append((times[-1] - times[0]) / (len(times) - 1))
        flops.append(evaluation_flops(side, side, content_layers, style_layers))
    _speeds[key] = Speed.fit(flops, seconds)
    return _speeds[key]


def _calibration_flops(content_layers: Layers, style_layers: Layers) -> int:
    return sum(CALIBRATION_EVALUATIONS * evaluation_flops(s, s, content_layers, style_layers)
               for s in CALIBRATION_SIDES)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class Estimate:
    """What a run of ``evaluations`` evaluations over images of the given sizes (the last is the largest) needs.

    ``seconds`` is None when no speed was measured; ``available`` is None when the OS does not say; ``largest`` is
    the longest longer side that fits at this aspect ratio (0 if none; None when ``available`` is unknown)."""

    shapes: Tuple[Tuple[int, int], ...]
    evaluations: int
    memory: int
    seconds: Optional[float]
    available: Optional[int]
    largest: Optional[int]

    @property
    def fits(self) -> bool:
        """Whether the run fits in the available memory (True when that is unknown)."""
        return self.available is None or self.memory <= self.available

    def summary(self) -> str:
        """``"about 12 min, 2.6 GiB"`` (the time only when it was estimated)."""
        memory = f"{self.memory / GIB:.1f} GiB"
        return f"about {_duration(self.seconds)}, {memory}" if self.seconds is not None else f"about {memory}"


def estimate_run(height: int, width: int, steps: Union[int, Sequence[int]], content_layers: Optional[Layers],
                 style_layers: Optional[Layers], *, scales: Optional[Sequence[int]] = None,
                 speed: Optional[Speed] = None, available: Optional[int] = None,
                 history_size: int = LBFGS_HISTORY) -> Estimate:
    """Estimate a run on a height × width content image: ``steps`` evaluations (one number, or one per scale),
    coarse to fine over ``scales`` (longer sides; the image's own size is the last) if given.

    Time is each scale's evaluations at ``speed`` plus one evaluation's worth per scale for its targets (None
    without ``speed``); memory is the largest scale's; ``available`` bytes (None: unknown) decide ``fits`` and
    ``largest``."""
    # The same sizes and counts, and the same one-line errors, as style_transfer itself.
    sides, counts = plan_scales(scales, steps, max(height, width))
    shapes = tuple(scaled_shape((height, width), s) for s in sides)
    memory = max(memory_needed(h, w, content_layers, style_layers, history_size=history_size) for h, w in shapes)
    seconds = None
    if speed is not None:
        seconds = sum((n + 1) * speed.evaluation_seconds(evaluation_flops(h, w, content_layers, style_layers))
                      for n, (h, w) in zip(counts, shapes))
    largest = None if available is None else largest_side(height, width, content_layers, style_layers, available,
                                                          history_size=history_size)
    return Estimate(shapes, sum(counts), memory, seconds, available, largest)


def _image_shape(path: Union[str, os.PathLike], size: Optional[int]) -> Optional[Tuple[int, int]]:
    """(height, width) of the image at ``path`` once load_image has turned it upright and resized it, read from
    its header only; None if it cannot be read (load_image then reports why)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
            if img.getexif().get(0x0112) in (5, 6, 7, 8):       # EXIF orientations that swap the sides
                width, height = height, width
    except Exception:  # a missing or damaged file is load_image's to report, with its own wording
        return None
    return scaled_shape((height, width), size) if size is not None else (height, width)


def plan_run(content: Union[str, os.PathLike], size: Optional[int], *, preset: str = "tutorial",
             recipe: Optional[RecipeChoice] = None, controls: Optional[Controls] = None,
             weights: Optional[str] = None, pooling: str = "max", device: Union[None, str, torch.device] = None,
             available: Optional[int] = None) -> Optional[Estimate]:
    """The command line's check before it runs: a run on the image at ``content``, resized to ``size``, with the
    ``preset``'s layers unless ``recipe`` chooses others, and ``controls``' plan (scales and steps).

    Raises :class:`NSTError` (one line: the memory needed, the memory available and the largest size that fits)
    when the run would not fit in the memory the OS says is available (or ``available`` bytes, if given). Returns
    the estimate when the run is long (its FLOPs many times those of :func:`measure_speed`'s short run, which then
    gives the time), else None: a short run is not worth even a short measurement."""
    from .vgg import load_vgg19

    recipe = recipe if recipe is not None else RecipeChoice()
    controls = controls if controls is not None else Controls()
    steps, scales = controls.steps, controls.scales
    shape = _image_shape(content, size)
    if shape is None:
        return None
    chosen = get_preset(preset)
    content_layers = chosen.content_layers if recipe.content_layers is None else recipe.content_layers
    style_layers = chosen.style_layers if recipe.style_layers is None else recipe.style_layers
    # Adam keeps two image-sized moments (one "pair"); L-BFGS its history of pairs.
    history_size = LBFGS_HISTORY if (recipe.optimizer or chosen.optimizer) == "lbfgs" else 1
    device = resolve_device(device)
    available = available_memory(device) if available is None else available
    estimate = estimate_run(*shape, steps, content_layers, style_layers, scales=scales, available=available,
                            history_size=history_size)
    if not estimate.fits:
        h, w = estimate.shapes[-1]
        where = (f"the largest size that fits is --size {estimate.largest}" if estimate.largest else
                 "no size fits: use fewer or shallower layers")
        raise NSTError(f"{w}×{h} px would need about {estimate.memory / GIB:.1f} GiB of memory, but "
                       f"{available / GIB:.1f} GiB is available: {where}")
    _, counts = plan_scales(scales, steps, max(shape))
    run_flops = sum(n * evaluation_flops(h, w, content_layers, style_layers)
                    for n, (h, w) in zip(counts, estimate.shapes))
    if run_flops < _LONG_RUN * _calibration_flops(content_layers, style_layers):
        return None
    speed = measure_speed(content_layers, style_layers, model=load_vgg19(weights, pooling=pooling, device=device),
                          device=device)
    return estimate_run(*shape, steps, content_layers, style_layers, scales=scales, speed=speed,
                        available=available, history_size=history_size)
