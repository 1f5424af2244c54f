r"""The optimisation loop: style transfer by minimising the loss over the pixels.

Introduced in lesson 5 (Optimisation). The generated image minimises

.. math:: L = \alpha \sum_l w_l L_{content}^l + \beta \sum_l w_l L_{style}^l + \gamma\, TV

over its pixels, with L-BFGS (or Adam). Pixels stay in [0, 1] because the optimiser works on an unconstrained
variable :math:`z` and the image is :math:`\sigma(z)`: every image the network ever sees is a valid picture, and
nothing is clamped behind the optimiser's back (the PyTorch tutorial's in-closure clamp makes its loss jump).

``steps`` counts **loss evaluations** (one forward and one backward pass each), exactly. The PyTorch tutorial's
``num_steps=300`` loop runs 16 ``LBFGS.step`` calls of 20 iterations, i.e. 320 evaluations; pass ``steps=320``
to compare like with like.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from .errors import NSTError
from .images import ImageLike, Size, load_image, save_image
from .losses import CONVENTIONS, content_loss, gram_matrix, style_loss, total_variation_loss
from .presets import get_preset
from .vgg import VGGFeatures, load_vgg19, min_image_side, resolve_layer

__all__ = ["LossRecord", "Evaluation", "TransferResult", "style_transfer", "INIT_CHOICES", "OPTIMIZERS"]

INIT_CHOICES: Tuple[str, ...] = ("content", "noise", "blend")
OPTIMIZERS: Tuple[str, ...] = ("lbfgs", "adam")
# deeplearning.ai's starting point: 60 % noise, 40 % content.
BLEND_NOISE_RATIO = 0.6
# Starting pixels are kept this far inside (0, 1) so that the logit of the starting image is finite.
_EDGE = 1.0 / 255.0
_DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.05}
_LBFGS_HISTORY = 20

LayerSpec = Union[None, str, Sequence[str], Mapping[str, float]]


@dataclass
class LossRecord:
    """The loss of one evaluation. ``content``, ``style`` and ``tv`` are weighted (``total`` is their sum);
    ``content_layers`` and ``style_layers`` hold each layer's unweighted loss; ``elapsed`` is seconds since the
    optimisation started."""

    evaluation: int
    total: float
    content: float
    style: float
    tv: float
    content_layers: Dict[str, float]
    style_layers: Dict[str, float]
    elapsed: float


class Evaluation:
    """What a ``callback`` sees after each evaluation. Return ``True`` from the callback to stop the run."""

    def __init__(self, record: LossRecord, history: List[LossRecord], steps: int, current: torch.Tensor,
                 best: torch.Tensor) -> None:
        self.record = record
        self.history = history
        self.steps = steps
        self._current = current
        self._best = best

    @property
    def image(self) -> torch.Tensor:
        """The image just evaluated, 1×3×H×W on the CPU (a copy)."""
        return self._current.detach().to("cpu", copy=True)

    @property
    def best_image(self) -> torch.Tensor:
        """The lowest-loss image so far, 1×3×H×W on the CPU (a copy)."""
        return self._best.detach().to("cpu", copy=True)


@dataclass
class TransferResult:
    """The outcome of :func:`style_transfer`.

    ``image`` is the lowest-loss image evaluated (1×3×H×W, CPU, [0, 1]); ``history`` has one record per loss
    evaluation, ``history[0]`` being the starting image; ``stop_reason`` is ``"completed"``, ``"callback"``,
    ``"interrupted"`` (Ctrl-C) or ``"nonfinite"`` (the loss became NaN or infinite); ``message`` says so in words.
    """

    image: torch.Tensor
    history: List[LossRecord]
    stop_reason: str
    best_evaluation: int
    message: str
    settings: Dict[str, object]
    intermediates: List[Tuple[int, torch.Tensor]] = field(default_factory=list)

    @property
    def best_loss(self) -> float:
        """The total loss of :attr:`image`."""
        return self.history[self.best_evaluation].total if self.best_evaluation >= 0 else math.inf

    def save(self, path: Union[str, os.PathLike], *, protect: Iterable[Union[str, os.PathLike]] = ()):
        """Write :attr:`image` atomically to ``path``, never over the run's input images."""
        inputs = [p for p in (self.settings.get("content_path"), self.settings.get("style_path")) if p]
        return save_image(self.image, path, protect=[*inputs, *protect])


class _Stop(Exception):
    """Raised inside the closure to leave the optimiser's step at once."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _check_weight(value: float, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise NSTError(f"{what} {value!r} is not a number: give a finite number >= 0") from None
    if not math.isfinite(number) or number < 0:
        raise NSTError(f"{what} is {value!r}: give a finite number >= 0")
    return number


def _layer_weights(layers: LayerSpec, what: str) -> Dict[str, float]:
    """``{layer: weight}`` from a name, a list of names (weight 1 each) or a mapping; every name checked."""
    if isinstance(layers, str):
        layers = [layers]
    pairs = list(layers.items()) if isinstance(layers, Mapping) else [(name, 1.0) for name in layers]
    weights: Dict[str, float] = {}
    for name, weight in pairs:
        resolve_layer(name)
        weights[name] = _check_weight(weight, f"{what} weight for {name}")
    return weights


def _image_input(image: ImageLike, size: Size, role: str) -> Tuple[torch.Tensor, Optional[str]]:
    if isinstance(image, torch.Tensor):
        if image.dim() != 4 or image.shape[:2] != (1, 3):
            raise NSTError(f"{role} has shape {tuple(image.shape)}: pass 1×3×H×W (as load_image returns) or a path")
        if not torch.isfinite(image).all():
            raise NSTError(f"{role} contains NaN or infinite pixels: pass an image with values in [0, 1]")
        return image.detach().float().clamp(0.0, 1.0), None
    return load_image(image, size, role=role), os.fspath(image)


def _check_size(image: torch.Tensor, layers: Iterable[str], role: str) -> None:
    layers = list(layers)
    need = min_image_side(layers)
    height, width = image.shape[-2:]
    if min(height, width) < need:
        deepest = max(layers, key=lambda n: resolve_layer(n).index)
        raise NSTError(f"{role} is {width}×{height} px but layer {deepest} needs at least {need} px on each side: "
                       f"use a larger size or a shallower layer")


def _initial_image(init: Union[str, torch.Tensor], content: torch.Tensor, seed: int) -> torch.Tensor:
    if isinstance(init, torch.Tensor):
        if init.shape != content.shape:
            raise NSTError(f"init image has shape {tuple(init.shape)}, the content image {tuple(content.shape)}: "
                           f"give a starting image of the content image's size")
        return init.detach().float().clamp(0.0, 1.0)
    if init not in INIT_CHOICES:
        raise NSTError(f"init {init!r} is not known: use one of {', '.join(INIT_CHOICES)} or pass an image tensor")
    if init == "content":
        return content.clone()
    noise = torch.rand(content.shape, generator=torch.Generator().manual_seed(seed))
    if init == "noise":
        return noise
    return (1.0 - BLEND_NOISE_RATIO) * content + BLEND_NOISE_RATIO * noise


def _pick_device(device: Union[None, str, torch.device]) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise NSTError(f"device {device!r} is not a device name: use 'cpu', 'cuda' or 'cuda:N'") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise NSTError(f"device {device!r} asked for, but this machine has no CUDA GPU: use device='cpu'")
    return chosen


def style_transfer(
    content: ImageLike,
    style: ImageLike,
    *,
    preset: str = "tutorial",
    weights: Optional[Union[str, os.PathLike]] = None,
    content_layers: LayerSpec = None,
    style_layers: LayerSpec = None,
    content_weight: Optional[float] = None,
    style_weight: Optional[float] = None,
    tv_weight: Optional[float] = None,
    convention: Optional[str] = None,
    steps: int = 300,
    optimizer: str = "lbfgs",
    lr: Optional[float] = None,
    init: Union[None, str, torch.Tensor] = None,
    seed: int = 0,
    size: Size = None,
    style_size: Size = None,
    pooling: str = "max",
    device: Union[None, str, torch.device] = None,
    model: Optional[VGGFeatures] = None,
    callback: Optional[Callable[[Evaluation], Optional[bool]]] = None,
    intermediate_every: Optional[int] = None,
    progress: bool = True,
) -> TransferResult:
    """Make an image with ``content``'s layout and ``style``'s textures (Gatys et al.).

    ``content`` and ``style`` are 1×3×H×W tensors in [0, 1] or image paths (resized so the longer side is
    ``size``; the style image to the content's longer side unless ``style_size`` is given). Every setting left at
    ``None`` comes from ``preset`` (see :data:`nstutil.PRESETS`). Layers are a name, a list of names (weight 1
    each) or a mapping name -> weight, in either naming scheme. ``steps`` is the exact number of loss evaluations;
    ``history[0]`` is the starting image's loss. ``init`` is ``"content"``, ``"noise"`` (uniform, from ``seed``),
    ``"blend"`` (40 % content, 60 % noise) or a starting image. ``model`` reuses a loaded :func:`load_vgg19`
    (then ``weights`` and ``pooling`` are its own). ``callback(evaluation)`` runs after every evaluation and stops
    the run by returning ``True``. A stopped, interrupted (Ctrl-C) or diverged run returns the best image so far.
    The same seed on the CPU gives the same image. Introduced in lesson 5.
    """
    recipe = get_preset(preset)
    convention = recipe.convention if convention is None else convention
    if convention not in CONVENTIONS:
        raise NSTError(f"unknown loss convention {convention!r}: use one of {', '.join(CONVENTIONS)}")
    content_w = _layer_weights(recipe.content_layers if content_layers is None else content_layers, "content layer")
    style_w = _layer_weights(recipe.style_layers if style_layers is None else style_layers, "style layer")
    if not style_w:
        raise NSTError("style_layers is empty: give at least one style layer, e.g. ['relu1_1', 'relu2_1']")
    alpha = _check_weight(recipe.content_weight if content_weight is None else content_weight, "content_weight")
    beta = _check_weight(recipe.style_weight if style_weight is None else style_weight, "style_weight")
    gamma = _check_weight(recipe.tv_weight if tv_weight is None else tv_weight, "tv_weight")
    init = recipe.init if init is None else init
    if optimizer not in OPTIMIZERS:
        raise NSTError(f"optimizer {optimizer!r} is not known: use one of {', '.join(OPTIMIZERS)}")
    lr = _DEFAULT_LR[optimizer] if lr is None else lr
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise NSTError(f"lr is {lr!r}: give a finite learning rate > 0")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise NSTError(f"steps is {steps!r}: give a whole number of loss evaluations >= 1")
    if intermediate_every is not None and (not isinstance(intermediate_every, int) or intermediate_every < 1):
        raise NSTError(f"intermediate_every is {intermediate_every!r}: give a whole number >= 1, or None")

    content_image, content_path = _image_input(content, size, "content image")
    if style_size is None and not isinstance(style, torch.Tensor):
        style_size = max(content_image.shape[-2:])
    style_image, style_path = _image_input(style, style_size, "style image")
    _check_size(content_image, [*content_w, *style_w], "content image")
    _check_size(style_image, style_w, "style image")
    start_image = _initial_image(init, content_image, seed)

    device = _pick_device(device)
    net = model if model is not None else load_vgg19(weights, pooling=pooling, device=device)
    net = net.to(device)
    content_names, style_names = list(content_w), list(style_w)
    all_names = list(dict.fromkeys(content_names + style_names))
    settings: Dict[str, object] = dict(
        preset=preset, weights=net.weights_name, content_layers=content_w, style_layers=style_w,
        content_weight=alpha, style_weight=beta, tv_weight=gamma, convention=convention, steps=steps,
        optimizer=optimizer, lr=lr, init=init if isinstance(init, str) else "image", seed=seed,
        pooling=net.pooling, device=str(device), content_path=content_path, style_path=style_path,
        size=tuple(content_image.shape[-2:]),
    )

    # Channels-last (NHWC) convolutions are faster on CPUs (oneDNN) and on GPUs (cuDNN); the values are the same.
    with torch.no_grad():
        content_targets = net(content_image.to(device), content_names, channels_last=True)
        style_targets = {n: gram_matrix(f, convention) for n, f in
                         net(style_image.to(device), style_names, channels_last=True).items()}
    content_layer_w = torch.tensor([content_w[n] for n in content_names], device=device)
    style_layer_w = torch.tensor([style_w[n] for n in style_names], device=device)

    start = start_image.to(device).clamp(_EDGE, 1.0 - _EDGE)
    # Contiguous whatever the input's strides (a permuted HWC array, say): L-BFGS flattens z.grad with .view().
    z = torch.logit(start).contiguous().requires_grad_(True)
    if optimizer == "lbfgs":
        # No tolerances: the run ends after exactly `steps` evaluations, not when L-BFGS thinks it has converged.
        opt = torch.optim.LBFGS([z], lr=lr, max_iter=steps, max_eval=steps, history_size=_LBFGS_HISTORY,
                                tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
    else:
        opt = torch.optim.Adam([z], lr=lr)

    history: List[LossRecord] = []
    intermediates: List[Tuple[int, torch.Tensor]] = []
    best = {"loss": math.inf, "image": start.detach().clone(), "evaluation": -1}
    zero = torch.zeros((), device=device)
    bar = _progress_bar(steps, progress)
    t0 = time.perf_counter()

    def closure() -> torch.Tensor:
        n = len(history)
        if n >= steps:
            raise _Stop("completed")
        opt.zero_grad(set_to_none=True)
        image = torch.sigmoid(z)
        c_terms: Dict[str, torch.Tensor] = {}
        s_terms: Dict[str, torch.Tensor] = {}
        # Each loss right after its layer, not all after the pass: the backward pass then takes each layer's loss
        # gradient only when it reaches that layer, instead of holding them all from its start (that cost 50-70 MB
        # of peak memory at 512 px), and no activation is kept alive here through the backward pass.
        for name, activation in net.activations(image, all_names, channels_last=True):
            if name in content_w:
                c_terms[name] = content_loss(activation, content_targets[name], convention)
            if name in style_w:
                s_terms[name] = style_loss(activation, style_targets[name], convention)
        del activation
        c_stack = torch.stack([c_terms[n] for n in content_names]) if c_terms else zero.new_zeros(0)
        s_stack = torch.stack([s_terms[n] for n in style_names])
        c_total = alpha * (c_stack * content_layer_w).sum()
        s_total = beta * (s_stack * style_layer_w).sum()
        tv_total = gamma * total_variation_loss(image) if gamma else zero
        total = c_total + s_total + tv_total
        total.backward()
        # One transfer to the host per evaluation for everything that is recorded.
        values = torch.cat([torch.stack([total, c_total, s_total, tv_total]).detach(), c_stack.detach(),
                            s_stack.detach()]).tolist()
        record = LossRecord(n, values[0], values[1], values[2], values[3],
                            dict(zip(content_names, values[4:4 + len(content_names)])),
                            dict(zip(style_names, values[4 + len(content_names):])),
                            time.perf_counter() - t0)
        history.append(record)
        bar.update(1)
        if not math.isfinite(record.total):
            raise _Stop("nonfinite")
        if record.total < best["loss"]:
            best.update(loss=record.total, image=image.detach().clone(), evaluation=n)
        if intermediate_every and n % intermediate_every == 0:
            intermediates.append((n, image.detach().to("cpu", copy=True)))
        if n % 10 == 0:
            bar.set_postfix_str(f"loss {record.total:.4g}", refresh=False)
        if callback is not None and callback(Evaluation(record, history, steps, image, best["image"])):
            raise _Stop("callback")
        return total

    reason = "completed"
    previous_benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = device.type == "cuda"
    # Tiny gradients become denormal floats, which make CPU convolutions up to 10x slower; zero them instead.
    torch.set_flush_denormal(True)
    try:
        if optimizer == "lbfgs":
            while len(history) < steps:
                opt.step(closure)
        else:
            for _ in range(steps):
                opt.step(closure)
    except _Stop as stop:
        reason = stop.reason
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        torch.backends.cudnn.benchmark = previous_benchmark
        torch.set_flush_denormal(False)
        bar.close()

    message = _message(reason, history, best["evaluation"], steps)
    if reason == "nonfinite":
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return TransferResult(image=best["image"].to("cpu", copy=True), history=history, stop_reason=reason,
                          best_evaluation=best["evaluation"], message=message, settings=settings,
                          intermediates=intermediates)


def _progress_bar(steps: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=steps, desc="style transfer", unit="eval", disable=not enabled, leave=False)


def _message(reason: str, history: List[LossRecord], best: int, steps: int) -> str:
    done = len(history)
    kept = f"kept the best image, from evaluation {best}" if best >= 0 else "no evaluation finished; kept the start"
    if reason == "completed":
        return f"completed {done} evaluations; {kept}"
    if reason == "callback":
        return f"stopped by the callback after {done} of {steps} evaluations; {kept}"
    if reason == "interrupted":
        return f"interrupted after {done} of {steps} evaluations; {kept}"
    bad = history[-1].total if history else math.nan
    return (f"the loss became {bad} at evaluation {done - 1}, so the run stopped; {kept}. Lower the style or "
            f"content weight or the learning rate")
