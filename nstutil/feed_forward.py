"""Feed-forward style transfer (Johnson, Alahi & Fei-Fei 2016): train a network for one style, then style any
photo in one pass.

Introduced in lesson 10 (A network that styles in one pass). Image optimisation (lessons 5-8 and the playground)
runs VGG19 forward and backward hundreds of times per picture. Johnson et al. train an image transformation network
(:class:`nstutil.transformer_net.TransformerNet`) once, on many photos, to minimise the same perceptual loss
(:class:`nstutil.PerceptualLoss`: the course's content and style terms, presets and conventions); styling is then
one pass of that network. :func:`train_network` does the training with :func:`nstutil.training.train` on
:class:`nstutil.photos.PhotoCrops`, :func:`stylize` the styling, and :mod:`nstutil.network_file` the file a class
shares.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch
from torch import nn

from .colour import PRESERVE_COLORS, combine_luminance, match_histogram
from .device import DeviceLike, model_device, resolve_device
from .errors import NSTError
from .images import ImageLike, Size, image_path
from .inputs import image_input
from .network_file import NetworkFile, load_network, save_network
from .perceptual import PerceptualLoss
from .photos import PhotoCrops, PhotoSet, find_photos
from .training import Step, TrainingResult, is_main_process, train
from .transformer_net import MIN_SIDE, TransformerNet
from .vgg import VGGFeatures, load_vgg19
from .weights import sha256_file

__all__ = ["train_network", "TrainedNetwork", "stylize", "held_out_loss", "checkpoint_path", "image_sha256"]

DEFAULT_SIZE = 256
DEFAULT_STEPS = 2000
DEFAULT_BATCH = 4
DEFAULT_LR = 1e-3
# The held-out loss at the end of training uses at most this many held-out photos (the first, sorted): a fifth of
# COCO would be 16,000 photos in one tensor.
HELD_OUT_EVALUATED = 32


@dataclass
class TrainedNetwork:
    """What :func:`train_network` gives back: the network (``model``, in eval mode), the trainer's ``result`` (loss
    curve, steps, why it stopped), the ``meta`` written into the network file, the held-out photos and the network's
    mean loss on (at most :data:`HELD_OUT_EVALUATED` of) them (the loss of its clamped output, as
    :func:`held_out_loss` computes it, on each photo's centre square), the perceptual
    ``loss`` used, and where the file went."""

    model: TransformerNet
    result: TrainingResult
    meta: Dict[str, object]
    held_out: List[Path]
    held_out_loss: Optional[float]
    loss: PerceptualLoss
    path: Optional[Path] = None
    training_photos: List[Path] = field(default_factory=list)


def image_sha256(image: ImageLike) -> str:
    """SHA-256 of a picture file's bytes, or of a tensor's float32 pixels."""
    if isinstance(image, torch.Tensor):
        return hashlib.sha256(image.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()
    return sha256_file(image)


def checkpoint_path(output: Union[str, os.PathLike]) -> Path:
    """Where training for ``output`` keeps its checkpoint: ``OUTPUT.ckpt`` beside it."""
    output = Path(output).expanduser()
    return output.with_name(output.name + ".ckpt")


def _photo_set(photos: Union[None, str, os.PathLike, PhotoSet, Sequence[Path]]) -> PhotoSet:
    if isinstance(photos, PhotoSet):
        return photos
    if photos is None or isinstance(photos, (str, os.PathLike)):
        return find_photos(photos)
    paths = [Path(p) for p in photos]
    if not paths:
        raise NSTError("no training photos given: give a folder of JPEG or PNG photos, or leave photos out for "
                       "the bundled ones")
    return PhotoSet(Path(os.path.commonpath([str(p.parent) for p in paths])), sorted(paths))


def held_out_loss(model: nn.Module, loss: PerceptualLoss, photos: torch.Tensor) -> float:
    """The mean perceptual loss of the network's styled (clamped) versions of ``photos`` (B×3×H×W), one photo at
    a time: the number to compare with optimisation's loss for the same photo."""
    was_training = model.training
    model.eval()
    device = model_device(model)
    totals = []
    with torch.no_grad():
        for k in range(photos.shape[0]):
            photo = photos[k:k + 1].to(device)
            styled = model(photo).clamp(0.0, 1.0)
            totals.append(loss(styled.to(loss.device), photo.to(loss.device)).total.item())
    model.train(was_training)
    return sum(totals) / len(totals)


def train_network(style: ImageLike, photos: Union[None, str, os.PathLike, PhotoSet, Sequence[Path]] = None, *,
                  size: int = DEFAULT_SIZE, steps: int = DEFAULT_STEPS, batch_size: int = DEFAULT_BATCH,
                  lr: float = DEFAULT_LR, seed: int = 0, preset: str = "tutorial", weights: Optional[str] = None,
                  model: Optional[VGGFeatures] = None, device: DeviceLike = None, style_size: Size = None,
                  held_out: Union[int, float] = 0.2, network: Optional[dict] = None,
                  output: Union[None, str, os.PathLike] = None, checkpoint_every: Optional[int] = None,
                  resume: bool = False, callback: Optional[Callable[[Step], Optional[bool]]] = None,
                  progress: bool = True, **recipe) -> TrainedNetwork:
    """Train a style network for ``style`` on ``photos`` and return a :class:`TrainedNetwork`.

    ``photos``: a folder (searched recursively; see :func:`nstutil.photos.find_photos`), a list of paths, or
    ``None`` for the bundled photos. A share ``held_out`` of them (the bundled set: chelsea and coffee) is kept out
    of training to measure the network on photos it never saw. Each of ``steps`` Adam steps (learning rate ``lr``)
    sees ``batch_size`` seeded random ``size``×``size`` crops. The loss is :class:`nstutil.PerceptualLoss` of
    ``preset`` with any ``recipe`` keywords (``style_weight``, ``content_layers``, ``tv_weight`` ...) replaced, the
    style image resized to ``style_size`` (default: ``size``). ``model`` reuses a loaded VGG19 (it decides the
    device), else ``weights`` are loaded on ``device`` (a CUDA GPU when there is one). ``network`` passes options
    to :class:`TransformerNet` (``channels``, ``blocks``, ``norm``, ``upsample``). ``seed`` fixes the network's
    starting weights and the crops: on the CPU two runs give the same weights.

    With ``output`` the network file is written there at the end (and on Ctrl-C), and a checkpoint
    (:func:`checkpoint_path`) every ``checkpoint_every`` steps; ``resume=True`` continues from that checkpoint.
    ``callback(Step)`` runs after every step (return True to stop). Introduced in lesson 10.
    """
    for name, value in (("size", size), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise NSTError(f"{name} is {value!r}: give a whole number of at least 1")
    if size < MIN_SIDE:
        raise NSTError(f"size {size} is too small for the style network: give at least {MIN_SIDE} px")
    if not isinstance(style, torch.Tensor):
        style = image_path(style, role="style image")
    photo_set = _photo_set(photos)
    training, kept_out = photo_set.split(held_out, seed=seed)
    if not training:
        raise NSTError(f"no photo left to train on in {str(photo_set.folder)!r}: add photos or hold fewer out")
    if model is None:
        device = resolve_device(device)
        model = load_vgg19(weights, device=device)
    loss = PerceptualLoss(style, preset=preset, model=model, style_size=size if style_size is None else style_size,
                          **recipe)
    # The starting weights come from the seed alone, without disturbing the caller's random numbers.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = TransformerNet(**(network or {}))
    net = net.to(loss.device)
    crops = PhotoCrops(training, size, seed=seed)
    style_tensor, style_path = image_input(style, None, "style image")
    meta = {
        "style": Path(style_path).name if style_path else "(tensor)",
        "style_sha256": image_sha256(style_path or style_tensor),
        "recipe": dataclasses.asdict(loss.recipe), "style_size": size if style_size is None else style_size,
        "size": size, "batch_size": batch_size, "lr": lr, "seed": seed, "vgg_weights": model.weights_name,
        "photos": str(photo_set.folder), "training_photos": len(training),
        "held_out_photos": [p.name for p in kept_out], "network": dict(net.config),
    }
    checkpoint = checkpoint_path(output) if output is not None else None
    result = train(net, lambda network_, batch: loss(network_(batch), batch), lambda step: crops.batch(step,
                   batch_size), steps=steps, lr=lr, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                   resume=resume, meta=meta, callback=callback, progress=progress, desc="training the style network")
    net.eval()
    held = None
    if kept_out:
        held = held_out_loss(net, loss, PhotoCrops(kept_out, size, seed=seed).fixed(HELD_OUT_EVALUATED))
    final = dict(meta, steps=result.steps, seconds=round(result.seconds, 3), final_loss=(
        result.losses[-1] if result.losses else None), held_out_loss=held)
    written = None
    if output is not None and is_main_process():
        written = save_network(output, net, meta=final)
    return TrainedNetwork(net, result, final, kept_out, held, loss, written, training)


def _network(network: Union[nn.Module, NetworkFile, str, os.PathLike], device: DeviceLike) -> nn.Module:
    if isinstance(network, NetworkFile):
        network = network.model
    if isinstance(network, nn.Module):
        resolve_device(device, network)  # the network decides; another device asked for is one line
        return network
    return load_network(network, device=resolve_device(device, default="cpu")).model


def stylize(network: Union[nn.Module, NetworkFile, str, os.PathLike], image: ImageLike, *, size: Size = None,
            strength: float = 1.0, preserve_colors: Optional[str] = None, device: DeviceLike = None) -> torch.Tensor:
    """``image`` styled by ``network`` in one pass: a 1×3×H×W tensor in [0, 1] on the CPU, the image's size.

    ``network`` is a trained :class:`TransformerNet` (it decides the device), a loaded :class:`NetworkFile` or the
    path of one (loaded on ``device``, default the CPU). ``image`` is a path or a 1×3×H×W tensor, resized so its
    longer side is ``size`` when given (any size of at least 8 px works). ``strength`` blends the result with the
    photo (0: the photo, 1: the network's output). ``preserve_colors`` keeps the photo's colours, as lesson 8's
    controls do but after the pass: ``"luminance"`` puts the photo's chrominance (YIQ) under the result's
    luminance; ``"histogram"`` matches the result's colour mean and covariance to the photo's (lesson 8 matches
    the style image's before optimising; a trained network has no style image left to change).
    """
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0:
        raise NSTError(f"strength is {strength!r}: give a number from 0 (the photo) to 1 (fully styled)")
    if preserve_colors is not None and preserve_colors not in PRESERVE_COLORS:
        raise NSTError(f"preserve_colors {preserve_colors!r} is not known: use one of "
                       f"{', '.join(PRESERVE_COLORS)}, or leave it out")
    net = _network(network, device)
    photo, _ = image_input(image if isinstance(image, torch.Tensor) else image_path(image, role="photo"), size,
                           "photo")
    if min(photo.shape[-2:]) < MIN_SIDE:
        raise NSTError(f"photo is {photo.shape[-1]}×{photo.shape[-2]} px: the style network needs at least "
                       f"{MIN_SIDE} px a side; give a larger size")
    where = model_device(net)
    was_training = net.training
    net.eval()
    with torch.inference_mode():
        x = photo.to(where)
        styled = net(x).clamp(0.0, 1.0)
        if strength < 1.0:
            styled = strength * styled + (1.0 - strength) * x
        if preserve_colors == "luminance":
            styled = combine_luminance(styled, x)
        elif preserve_colors == "histogram":
            styled = match_histogram(styled, x).clamp(0.0, 1.0)
    net.train(was_training)
    return styled.float().cpu()
