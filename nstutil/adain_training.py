r"""Training the AdaIN decoder (Huang & Belongie 2017, section 6): the paper's loss, on photos and style images.

Introduced in lesson 11. Each step takes a batch of content photos :math:`c` and one style image :math:`s` per
photo, encodes both, fuses them (:func:`nstutil.adain.adain`, the target :math:`t`), decodes :math:`g(t)` and
encodes that again. The loss is

.. math:: L = \lVert f(g(t)) - t \rVert^2 + \lambda \sum_{i=1}^{4} \lVert \mu(\phi_i(g(t))) - \mu(\phi_i(s))
          \rVert^2 + \lVert \sigma(\phi_i(g(t))) - \sigma(\phi_i(s)) \rVert^2

with :math:`f` the encoder (relu4_1), :math:`\phi_i` relu1_1…relu4_1 and :math:`\lambda = 10`: the content term
is :func:`nstutil.content_loss` (mean squared error) against the AdaIN target rather than the photo's features, the
style term lesson 8's :func:`nstutil.mean_std_loss`, with one style per image of the batch. The statistics are
:func:`nstutil.channel_statistics`, the ones AdaIN aligns. The training loop is lesson 10's
(:func:`nstutil.training.train`: checkpoints, resume, Ctrl-C, several processes); batches are seeded crops of both
folders (:class:`nstutil.photos.PhotoCrops`), a pure function of the step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .adain import DECODER_KIND, ENCODER_LAYER, STYLE_LAYERS, Decoder, adain, encode
from .device import DeviceLike, model_device, resolve_device
from .errors import NSTError
from .images import IMAGES_DIR
from .losses import channel_statistics, content_loss, mean_std_loss
from .network_file import save_network
from .photos import PhotoCrops, PhotoSet, find_photos, split_photos
from .training import Step, TrainingResult, is_main_process, train
from .vgg import VGGFeatures, load_vgg19, min_image_side, resolve_layer

__all__ = ["AdaINLoss", "AdaINLossValue", "TrainedDecoder", "train_decoder", "BUNDLED_STYLES", "STYLE_WEIGHT"]

STYLE_WEIGHT = 10.0  # the paper's λ
# The bundled style images: two generated paintings and a brick texture.
BUNDLED_STYLES = ("mosaic.png", "waves.png", "brick.png")
DEFAULT_SIZE = 256
DEFAULT_BATCH = 8
DEFAULT_LR = 1e-4  # the paper's
HELD_OUT_PAIRS = 16  # at most this many held-out (photo, style) pairs are evaluated at the end


@dataclass
class AdaINLossValue:
    """One batch's loss: ``total`` (differentiable, content + λ·style), ``content`` and ``style`` (detached
    tensors, the style term unweighted), read as floats through :attr:`content_value` and :attr:`style_value`."""

    total: torch.Tensor
    content: torch.Tensor
    style: torch.Tensor

    @property
    def content_value(self) -> float:
        return float(self.content)

    @property
    def style_value(self) -> float:
        return float(self.style)


class AdaINLoss:
    """The paper's loss for a decoder: ``loss(decoder, contents, styles)`` with B×3×H×W batches in [0, 1] (``styles``
    may be one image for all, and of another size). ``model`` is the encoder (its device is the loss's),
    ``style_weight`` is λ, ``style_layers`` the layers whose mean and deviation are compared (either scheme)."""

    def __init__(self, model: VGGFeatures, *, style_weight: float = STYLE_WEIGHT,
                 style_layers: Sequence[str] = STYLE_LAYERS) -> None:
        if not isinstance(style_weight, (int, float)) or isinstance(style_weight, bool) or style_weight < 0:
            raise NSTError(f"style_weight is {style_weight!r}: give λ, a number of 0 or more (the paper's is 10)")
        self.model = model
        self.style_weight = float(style_weight)
        self.style_layers = [resolve_layer(name).name for name in style_layers]
        if not self.style_layers:
            raise NSTError("style_layers is empty: give at least one layer, such as relu1_1,relu2_1,relu3_1,relu4_1")
        self.device = model_device(model)

    def targets(self, contents: torch.Tensor, styles: torch.Tensor) -> Tuple[torch.Tensor, list]:
        """The AdaIN target ``t`` of each photo and the style's ``(mean, std)`` at each style layer (no gradients)."""
        with torch.no_grad():
            (content,) = encode(self.model, contents.to(self.device))
            style_features = encode(self.model, styles.to(self.device), self.style_layers + [ENCODER_LAYER])
            statistics = [channel_statistics(f) for f in style_features[:-1]]
            return adain(content, style_features[-1]), statistics

    def __call__(self, decoder: Callable[[torch.Tensor], torch.Tensor], contents: torch.Tensor,
                 styles: torch.Tensor) -> AdaINLossValue:
        for batch, what in ((contents, "contents"), (styles, "styles")):
            if not isinstance(batch, torch.Tensor) or batch.dim() != 4 or batch.shape[1] != 3:
                shape = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
                raise NSTError(f"AdaINLoss got {what} of shape {shape}: pass a batch B×3×H×W in [0, 1]")
        target, statistics = self.targets(contents, styles)
        decoded = decoder(target)
        features = encode(self.model, decoded, self.style_layers + [ENCODER_LAYER])
        content = content_loss(features[-1], target)
        style = sum(mean_std_loss(f, s) for f, s in zip(features[:-1], statistics))
        return AdaINLossValue(content + self.style_weight * style, content.detach(), style.detach())


@dataclass
class TrainedDecoder:
    """What :func:`train_decoder` gives back: the ``model`` (a :class:`~nstutil.adain.Decoder` in eval mode), the
    trainer's ``result``, the file's ``meta``, the held-out photos and styles, the mean loss on held-out pairs
    before and after training, the ``loss`` used, and where the file went."""

    model: Decoder
    result: TrainingResult
    meta: Dict[str, object]
    held_out_photos: List[Path]
    held_out_styles: List[Path]
    held_out_loss: Optional[float]
    initial_held_out_loss: Optional[float]
    loss: AdaINLoss
    path: Optional[Path] = None
    training: Dict[str, List[Path]] = field(default_factory=dict)


def _image_set(folder: Union[None, str, os.PathLike, PhotoSet], bundled: Sequence[str], what: str) -> PhotoSet:
    if isinstance(folder, PhotoSet):
        return folder
    if folder is None:
        return PhotoSet(IMAGES_DIR, [IMAGES_DIR / name for name in bundled])
    try:
        return find_photos(folder)
    except NSTError as exc:
        raise NSTError(str(exc).replace("photo folder", f"{what} folder", 1)) from None


def held_out_pairs_loss(decoder: nn.Module, loss: AdaINLoss, contents: torch.Tensor, styles: torch.Tensor) -> float:
    """The mean loss of the decoder's pictures, clamped to [0, 1] as :func:`~nstutil.adain.stylize_arbitrary` shows
    them, on every (photo, style) pair of ``contents`` × ``styles`` (at most :data:`HELD_OUT_PAIRS`), one pair at a
    time, in eval mode and without gradients."""
    was_training = decoder.training
    decoder.eval()
    totals = []
    with torch.no_grad():
        pairs = [(i, j) for i in range(contents.shape[0]) for j in range(styles.shape[0])][:HELD_OUT_PAIRS]
        for i, j in pairs:
            totals.append(loss(lambda target: decoder(target).clamp(0.0, 1.0), contents[i:i + 1],
                               styles[j:j + 1]).total.item())
    decoder.train(was_training)
    return sum(totals) / len(totals)


def train_decoder(photos: Union[None, str, os.PathLike, PhotoSet] = None,
                  styles: Union[None, str, os.PathLike, PhotoSet] = None, *, size: int = DEFAULT_SIZE,
                  steps: int = 2000, batch_size: int = DEFAULT_BATCH, lr: float = DEFAULT_LR, seed: int = 0,
                  style_weight: float = STYLE_WEIGHT, weights: Optional[str] = None,
                  model: Optional[VGGFeatures] = None, device: DeviceLike = None,
                  held_out: Union[int, float] = 0.2, decoder: Optional[dict] = None,
                  output: Union[None, str, os.PathLike] = None, checkpoint_every: Optional[int] = None,
                  resume: bool = False, callback: Optional[Callable[[Step], Optional[bool]]] = None,
                  progress: bool = True) -> TrainedDecoder:
    """Train an AdaIN decoder on ``photos`` and ``styles`` (folders; the bundled photos and styles by default) and
    return a :class:`TrainedDecoder`.

    Each step takes ``batch_size`` seeded random ``size``-px crops of the training photos and as many of the
    training styles, and one Adam step (``lr``) on :class:`AdaINLoss` (λ = ``style_weight``). ``held_out`` photos
    and styles (a fraction or a count of each folder; the bundled photos keep theirs) are never trained on; the
    loss on their pairs is measured before and after. ``decoder`` is :class:`~nstutil.adain.Decoder`'s arguments
    (``{"widths": [32, 16, 8]}`` for a toy one). The encoder is ``model`` or VGG19 with ``weights`` on ``device``.
    With ``output`` the decoder file is written (:mod:`nstutil.network_file`) and training checkpoints go to
    ``OUTPUT.ckpt`` (``resume``, ``checkpoint_every``, Ctrl-C as :func:`nstutil.training.train`).
    Introduced in lesson 11.
    """
    from .feed_forward import checkpoint_path, image_sha256

    need = min_image_side([ENCODER_LAYER])
    if isinstance(size, bool) or not isinstance(size, int) or size < need:
        raise NSTError(f"size is {size!r}: give the crop side in pixels, at least {need}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise NSTError(f"batch_size is {batch_size!r}: give a whole number of images per step (1 or more)")
    device = resolve_device(device, model)
    encoder = model if model is not None else load_vgg19(weights, device=device)
    loss = AdaINLoss(encoder, style_weight=style_weight)
    photo_set = find_photos(None) if photos is None else _image_set(photos, (), "photo")
    style_set = _image_set(styles, BUNDLED_STYLES, "style")
    train_photos, kept_photos = photo_set.split(held_out, seed=seed)
    train_styles, kept_styles = split_photos(style_set.paths, held_out, seed=seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = Decoder(**(decoder or {}))
    net = net.to(loss.device)
    photo_crops = PhotoCrops(train_photos, size, seed=seed)
    style_crops = PhotoCrops(train_styles, size, seed=seed + 1)  # other crops than the photos' at the same step
    evaluation = None
    if kept_photos and kept_styles:
        evaluation = (PhotoCrops(kept_photos, size, seed=seed).fixed(HELD_OUT_PAIRS),
                      PhotoCrops(kept_styles, size, seed=seed).fixed(HELD_OUT_PAIRS))
    initial = held_out_pairs_loss(net, loss, *evaluation) if evaluation is not None and not resume else None
    meta = {
        "kind": DECODER_KIND, "size": size, "batch_size": batch_size, "lr": lr, "seed": seed,
        "style_weight": loss.style_weight, "style_layers": loss.style_layers, "encoder_layer": ENCODER_LAYER,
        "weights": weights if isinstance(weights, str) else None, "vgg_weights": encoder.weights_name,
        "photos": str(photo_set.folder), "styles": str(style_set.folder),
        "training_photos": len(train_photos), "training_styles": [p.name for p in train_styles],
        "style_sha256": [image_sha256(p) for p in train_styles][:64],
        "held_out_photos": [p.name for p in kept_photos], "held_out_styles": [p.name for p in kept_styles],
        "decoder": dict(net.config),
    }
    checkpoint = checkpoint_path(output) if output is not None else None
    result = train(net, lambda decoder_, batch: loss(decoder_, *batch),
                   lambda step: (photo_crops.batch(step, batch_size), style_crops.batch(step, batch_size)),
                   steps=steps, lr=lr, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                   meta=meta, callback=callback, progress=progress, desc="training the AdaIN decoder")
    net.eval()
    held = held_out_pairs_loss(net, loss, *evaluation) if evaluation is not None else None
    final = dict(meta, steps=result.steps, seconds=round(result.seconds, 3),
                 final_loss=result.losses[-1] if result.losses else None, held_out_loss=held,
                 initial_held_out_loss=initial)
    written = save_network(output, net, meta=final) if output is not None and is_main_process() else None
    return TrainedDecoder(net, result, final, kept_photos, kept_styles, held, initial, loss, written,
                          {"photos": train_photos, "styles": train_styles})

