"""VGG19: the layer table in both naming schemes, the weights, and the feature extractor.

Introduced in lesson 2 (Features). Everything that takes a layer name in nstutil resolves it here, so the paper's
block names (``relu4_2``) and the PyTorch tutorial's flat names (``conv_4``, counted by convolution) are accepted
everywhere, and one table defines both.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .device import resolve_device
from .errors import NSTError

__all__ = [
    "LayerInfo",
    "LAYERS",
    "resolve_layer",
    "layer_names",
    "min_image_side",
    "VGGFeatures",
    "load_vgg19",
    "WeightsWarning",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CAFFE_MEAN_BGR",
    "CAFFE_URL",
]

# Convolutions per block and their channels: configuration "E" of Simonyan & Zisserman (2014), i.e. VGG19.
_BLOCKS: Tuple[Tuple[int, int], ...] = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The Caffe VGG19 expects BGR pixels in 0-255 with this per-channel mean subtracted.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# The original Caffe weights converted to a torchvision-layout state dict, as jcjohnson's ports use them.
CAFFE_URL = "https://web.eecs.umich.edu/~justincj/models/vgg19-d01eb7cb.pth"


@dataclass(frozen=True)
class LayerInfo:
    """One module of ``torchvision.models.vgg19().features``.

    ``index`` is its position in ``features``; ``name`` the paper's block name (``conv4_2``); ``flat_name`` the
    PyTorch tutorial's name (``conv_10``); ``kind`` is ``"conv"``, ``"relu"`` or ``"pool"``; ``channels`` the
    number of output channels; ``stride`` how many input pixels one output pixel steps over; ``receptive_field``
    the side, in input pixels, of the square one output pixel sees.
    """

    index: int
    name: str
    flat_name: str
    kind: str
    block: int
    channels: int
    stride: int
    receptive_field: int

    @property
    def label(self) -> str:
        """Both names, for menus and tables: ``"relu4_2 · relu_10"``."""
        return f"{self.name} · {self.flat_name}"


def _build_table() -> Tuple[LayerInfo, ...]:
    layers: List[LayerInfo] = []
    conv_count = 0
    stride, field = 1, 1
    for block, (n_convs, channels) in enumerate(_BLOCKS, start=1):
        for i in range(1, n_convs + 1):
            conv_count += 1
            field += 2 * stride  # a 3x3 convolution widens the view by one pixel of the current grid each side
            for kind in ("conv", "relu"):
                layers.append(
                    LayerInfo(len(layers), f"{kind}{block}_{i}", f"{kind}_{conv_count}", kind, block, channels,
                              stride, field)
                )
        field += stride  # 2x2 max-pool, stride 2
        stride *= 2
        # The tutorial names a pool after the convolution before it: pool1 is pool_2.
        layers.append(LayerInfo(len(layers), f"pool{block}", f"pool_{conv_count}", "pool", block, channels,
                                stride, field))
    return tuple(layers)


LAYERS: Tuple[LayerInfo, ...] = _build_table()
_BY_NAME: Dict[str, LayerInfo] = {**{l.name: l for l in LAYERS}, **{l.flat_name: l for l in LAYERS}}


def layer_names(scheme: str = "paper") -> List[str]:
    """All 37 layer names in network order, in the ``"paper"`` (``relu4_2``) or ``"tutorial"`` (``relu_10``) scheme."""
    if scheme not in ("paper", "tutorial"):
        raise NSTError(f"unknown layer naming scheme {scheme!r}: use 'paper' or 'tutorial'")
    return [l.name if scheme == "paper" else l.flat_name for l in LAYERS]


def resolve_layer(name: str) -> LayerInfo:
    """The table entry for a layer named in either scheme (``"relu4_2"`` or ``"relu_10"``, any case)."""
    if isinstance(name, LayerInfo):
        return name
    key = str(name).strip().lower()
    if key not in _BY_NAME:
        raise NSTError(
            f"unknown VGG19 layer {name!r}: use a paper name ({', '.join(layer_names('paper'))}) "
            f"or a tutorial name (conv_1 ... conv_16, relu_1 ... relu_16, pool_2, pool_4, pool_8, pool_12, pool_16)"
        )
    return _BY_NAME[key]


def min_image_side(layers: Iterable[str]) -> int:
    """The smallest image side, in pixels, for which every layer given still has at least one pixel."""
    deepest = max((resolve_layer(n) for n in layers), key=lambda l: l.index, default=None)
    if deepest is None:
        return 1
    # Every pool up to the layer halves the map, rounding down.
    return deepest.stride


class WeightsWarning(UserWarning):
    """Pretrained weights could not be had, and nstutil carried on with random ones."""


class _ReLU(nn.ReLU):
    """``nn.ReLU`` that each call may run in place or not: :class:`VGGFeatures` works in place except where the
    convolution's output is itself one of the activations asked for (a full-size tensor less per layer)."""

    def forward(self, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:  # type: ignore[override]
        return torch.relu_(x) if inplace else torch.relu(x)

    def _get_name(self) -> str:
        return "ReLU"  # printed models read like torchvision's


def _make_features() -> nn.Sequential:
    """An untrained VGG19 ``features`` stack, module for module the layout of torchvision's."""
    modules: List[nn.Module] = []
    in_channels = 3
    for layer in LAYERS:
        if layer.kind == "conv":
            modules.append(nn.Conv2d(in_channels, layer.channels, kernel_size=3, padding=1))
            in_channels = layer.channels
        elif layer.kind == "relu":
            modules.append(_ReLU())
        else:
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*modules)


def _random_state_dict(seed: int) -> Dict[str, torch.Tensor]:
    """Seeded weights with torchvision's initialisation for VGG (Kaiming normal, fan-out, zero bias)."""
    features = _make_features()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in features:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
    return features.state_dict()


def _hub_checkpoint(url: str) -> Path:
    """Where torch.hub keeps (or would keep) the file at ``url``; honours ``TORCH_HOME``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _read_state_dict(path: Path, what: str) -> Dict[str, torch.Tensor]:
    from .weights_archive import check_archive, diagnose_load_error

    check_archive(path, what)  # damage and compressed (inflating) entries, before torch.load reads anything
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols it merely might not support; the outcome is reported below.
            warnings.simplefilter("ignore", UserWarning)
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise NSTError(f"{what} {str(path)!r} does not exist: give the path of a VGG19 state dict") from None
    except IsADirectoryError:
        raise NSTError(f"{what} {str(path)!r} is a directory: give the path of a VGG19 state dict file") from None
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError or EOFError depending on the damage
        raise diagnose_load_error(exc, path, what) from None
    if not isinstance(loaded, dict):
        raise NSTError(f"{what} {str(path)!r} holds a {type(loaded).__name__}, not a state dict: "
                       f"save one with torch.save(model.state_dict(), path)")
    return loaded


def _features_state(state: Dict[str, torch.Tensor], what: str) -> Dict[str, torch.Tensor]:
    """The ``features`` part of a full-model or features-only VGG19 state dict, checked against the table, as float32.

    Any floating dtype is accepted (a float16 export is widened here); non-finite values are refused, since they
    would silently turn every activation into NaN.
    """
    if any(k.startswith("features.") for k in state):
        state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    with torch.device("meta"):  # only the keys and shapes are needed: no memory, no initialisation
        expected = _make_features().state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise NSTError(f"{what} is not a VGG19 state dict (no {missing[0]!r} among its keys): give torchvision's "
                       f"vgg19 layout, the full model or its 'features' part")
    for key, reference in expected.items():
        got = state[key]
        if not isinstance(got, torch.Tensor) or got.shape != reference.shape:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise NSTError(f"{what} has {key!r} of shape {shape}, VGG19 needs {tuple(reference.shape)}: "
                           f"give weights of torchvision's vgg19 (not vgg16 or another network)")
        if not got.is_floating_point():
            raise NSTError(f"{what} has {key!r} of dtype {got.dtype}, not floating point: give real VGG19 weights")
    features = {k: state[k].float() for k in expected}  # checked as float32: CPU float16 arithmetic is slow
    for key, value in features.items():
        # A sum is non-finite if any value is (or if it overflows, which real weights cannot): 100x faster here
        # than isfinite(value).all(), which then only confirms.
        if not torch.isfinite(value.sum()) and not torch.isfinite(value).all():
            raise NSTError(f"{what} has non-finite values (inf or NaN) in {key!r}: the file is damaged; copy or "
                           f"export it again")
    return features


def _fetch(url: str, what: str, how_to: str) -> Dict[str, torch.Tensor]:
    """A checkpoint from torch.hub's cache, downloading it there if it is not cached yet."""
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True, weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NSTError(f"{what} weights are not cached at {_hub_checkpoint(url)} and could not be downloaded "
                       f"({reason}): {how_to}") from None


def _imagenet_url() -> str:
    from torchvision.models import VGG19_Weights

    return VGG19_Weights.IMAGENET1K_V1.url


def _how_to_get_imagenet() -> str:
    url = _imagenet_url()
    return (f"on a machine with internet access download {url} and copy it to {_hub_checkpoint(url)} "
            f"(set TORCH_HOME to use another cache), or pass weights='random' to run untrained")


def _unreachable(url: str, timeout: float = 5.0) -> Optional[str]:
    """None when ``url`` answers (through any proxy urllib is set up for), otherwise why not, in a few words."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # the server answered: let the download report what is wrong
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{url.split('/')[2]} cannot be reached ({getattr(reason, 'strerror', None) or reason})"


def _stacklevel_outside_package() -> int:
    """``stacklevel`` for a warning raised in the caller of this function that names the first frame outside
    nstutil: the student's notebook cell or script, however deep in nstutil the warning comes from."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _load_weights(weights: str) -> Tuple[Dict[str, torch.Tensor], str, str]:
    """(features state dict, the name of what was loaded, input convention) for a ``weights`` setting."""
    if weights == "auto":
        url = _imagenet_url()
        try:
            # Not cached and no way to download: say so without torch.hub's "Downloading: ..." line first.
            unreachable = None if _hub_checkpoint(url).exists() else _unreachable(url)
            if unreachable:
                raise NSTError(f"they are not in torch.hub's cache and {unreachable}")
            return _features_state(_fetch(url, "ImageNet VGG19", _how_to_get_imagenet()), "imagenet"), \
                "imagenet", "imagenet"
        except NSTError as exc:
            why = str(exc).split(": on a machine with internet access")[0]
            warnings.warn(WeightsWarning(
                "Pretrained VGG19 weights unavailable: using RANDOM weights (everything runs, but nothing will "
                "look stylised).\n"
                f"Why: {why}.\n"
                f"Fix: download {url} into {_hub_checkpoint(url).parent} and restart, or set "
                f"NSTUTIL_WEIGHTS=random to hide this.\n"
                f"In a class: put the file on a share, set NSTUTIL_WEIGHTS=/share/{url.rsplit('/', 1)[-1]} "
                f"(notebooks/README.md)."
            ), stacklevel=_stacklevel_outside_package())
            return _random_state_dict(0), "random:0", "imagenet"
    if weights == "imagenet":
        return _features_state(_fetch(_imagenet_url(), "ImageNet VGG19", _how_to_get_imagenet()), "imagenet"), \
            "imagenet", "imagenet"
    if weights == "caffe":
        how_to = (f"on a machine with internet access download {CAFFE_URL} and copy it to "
                  f"{_hub_checkpoint(CAFFE_URL)} (set TORCH_HOME to use another cache)")
        return _features_state(_fetch(CAFFE_URL, "Caffe VGG19", how_to), "caffe"), "caffe", "caffe"
    if weights == "random" or weights.startswith("random:"):
        seed_text = weights.partition(":")[2] or "0"
        try:
            seed = int(seed_text)
        except ValueError:
            raise NSTError(f"weights {weights!r}: the seed after 'random:' must be an integer, e.g. 'random:1'") \
                from None
        return _random_state_dict(seed), f"random:{seed}", "imagenet"
    path = Path(weights).expanduser()
    if not path.exists() and os.sep not in weights and not weights.endswith((".pth", ".pt")):
        raise NSTError(f"unknown weights {weights!r}: use 'auto', 'imagenet', 'caffe', 'random', 'random:SEED' "
                       f"or the path of a VGG19 state dict file")
    from .weights import read_weights_file  # the file format's module, which builds on this one

    _, state, convention, info = read_weights_file(path)
    # An export names what it holds, so that a random export still reads as random (VGGFeatures.is_pretrained).
    name = f"{info['source']} from {path}" if info is not None else str(path)
    return state, name, convention


class VGGFeatures(nn.Module):
    """VGG19's convolutional stack returning the named activations asked for.

    Call it with an image (N×3×H×W, RGB in [0, 1]) and layer names in either scheme; it returns a dict from each
    name, exactly as given, to its activation. The input normalisation is inside (ImageNet mean/std, or Caffe's
    BGR 0–255 mean-subtracted input), the forward pass stops after the deepest layer asked for, and the weights
    never take gradients. Introduced in lesson 2.
    """

    def __init__(self, features: nn.Sequential, *, input_convention: str = "imagenet", weights_name: str = "",
                 pooling: str = "max") -> None:
        super().__init__()
        if pooling not in ("max", "avg"):
            raise NSTError(f"pooling {pooling!r} is not known: use 'max' or 'avg'")
        if input_convention not in ("imagenet", "caffe"):
            raise NSTError(f"input convention {input_convention!r} is not known: use 'imagenet' or 'caffe'")
        # torchvision's own ReLUs always work in place, which would overwrite a convolution output asked for.
        features = nn.Sequential(*(_ReLU() if isinstance(m, nn.ReLU) else
                                   nn.AvgPool2d(2, 2) if pooling == "avg" and isinstance(m, nn.MaxPool2d) else m
                                   for m in features))
        self.features = features
        self.features.requires_grad_(False)
        self.eval()
        self.input_convention = input_convention
        self.weights_name = weights_name
        self.pooling = pooling
        if input_convention == "caffe":
            mean, std = torch.tensor(CAFFE_MEAN_BGR) / 255.0, torch.full((3,), 1.0 / 255.0)
        else:
            mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, 3, 1, 1), persistent=False)

    @property
    def is_pretrained(self) -> bool:
        """False when the weights are random, i.e. the activations carry no learned meaning."""
        return not self.weights_name.startswith("random")

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """The network's input for an RGB image in [0, 1]: ImageNet-normalised, or Caffe's BGR 0–255 minus mean."""
        if self.input_convention == "caffe":
            image = image.flip(1)  # RGB -> BGR
        return (image - self.mean) / self.std

    def forward(self, image: torch.Tensor, layers: Sequence[str], *,
                channels_last: bool = False) -> Dict[str, torch.Tensor]:
        """The activations named in ``layers``; ``channels_last`` runs the network in the NHWC memory layout (faster
        on CPUs and GPUs, the same values; the activations returned are then channels-last tensors)."""
        return dict(self.activations(image, layers, channels_last=channels_last))

    def activations(self, image: torch.Tensor, layers: Sequence[str], *,
                    channels_last: bool = False) -> Iterator[Tuple[str, torch.Tensor]]:
        """``(name, activation)`` for each name in ``layers``, shallowest first, each as soon as the pass reaches it.

        :func:`~nstutil.style_transfer` computes each layer's loss right there, so that the backward pass takes
        each layer's loss gradient only when it gets to that layer, rather than holding them all from its start.
        A tensor sent back into the generator (``generator.send(tensor)``) replaces the activation just yielded for
        the rest of the pass: :class:`~nstutil.Objective` sends the one its loss is attached to
        (:func:`~nstutil.fast.style_loss_in_pass`). Introduced in lesson 5.
        """
        wanted: Dict[int, List[str]] = {}
        for name in layers:
            wanted.setdefault(resolve_layer(name).index, []).append(name)
        if not wanted:
            return
        x = self.normalize(image)
        if channels_last:
            # After normalising: per-channel arithmetic on a 3-channel NHWC image vectorises badly.
            x = x.contiguous(memory_format=torch.channels_last)
        last = max(wanted)
        for index, module in enumerate(self.features):
            x = module(x, inplace=index - 1 not in wanted) if isinstance(module, _ReLU) else module(x)
            for name in wanted.get(index, ()):
                # Convolutions answer in their weight's layout, which is channels-last while a run is going on
                # (nstutil.fast.channels_last_weights): a plain pass still hands out the usual layout.
                sent = yield name, (x if channels_last else x.contiguous())
                if sent is not None:
                    x = sent
            if index == last:
                break


_cache: Dict[Tuple[str, str, str], VGGFeatures] = {}


def load_vgg19(weights: Optional[Union[str, os.PathLike]] = None, *, pooling: str = "max",
               device: Optional[Union[str, torch.device]] = None) -> VGGFeatures:
    """VGG19's feature extractor with the weights asked for, frozen and in eval mode.

    ``weights``: ``"imagenet"`` (torchvision's ``VGG19_Weights.IMAGENET1K_V1`` from torch.hub's cache, downloaded
    there if possible; ``TORCH_HOME`` is honoured), ``"caffe"`` (the original Caffe VGG19 as the neural-style ports
    use it, ``vgg19-d01eb7cb.pth``; its BGR 0–255 mean-subtracted input is handled here), ``"random"`` or
    ``"random:SEED"`` (seeded, deterministic, untrained), or the path of a state dict in torchvision's vgg19 layout
    (the full model or ``features`` only, any float dtype; a file named ``vgg19-d01eb7cb*`` is taken as the Caffe
    conversion), such as the float16 file ``python -m nstutil.weights export`` writes, which records its source
    and input convention (see :mod:`nstutil.weights`).
    ``None`` reads ``$NSTUTIL_WEIGHTS`` and falls back to ``"auto"``: imagenet when cached or downloadable,
    otherwise a loud :class:`WeightsWarning` and random weights, so that everything still runs offline.
    Files are read with ``torch.load(weights_only=True)``: a pickle that would run code is refused.
    Named weights are loaded once per process and device, and shared: nothing in nstutil moves a model (see
    :mod:`nstutil.device`), so a shared one stays where it was loaded. ``device`` defaults to the CPU.
    Introduced in lesson 2.
    """
    from_environment = weights is None and bool(os.environ.get("NSTUTIL_WEIGHTS", "").strip())
    if weights is None:
        weights = os.environ.get("NSTUTIL_WEIGHTS", "").strip() or "auto"
    weights = os.fspath(weights)
    target = resolve_device(device, default="cpu")
    key = (weights, pooling, str(target))
    # A file may change between calls; the named sources cannot.
    cacheable = weights in ("imagenet", "caffe") or weights.startswith("random")
    if cacheable and key in _cache:
        return _cache[key]
    try:
        state, name, convention = _load_weights(weights)
    except NSTError as exc:
        if from_environment:  # the user never typed these weights here: say where they came from
            raise NSTError(f"environment variable NSTUTIL_WEIGHTS={weights!r}: {exc}") from None
        raise
    features = _make_features()
    features.load_state_dict(state)
    model = VGGFeatures(features, input_convention=convention, weights_name=name, pooling=pooling).to(target)
    if cacheable:
        _cache[key] = model
    return model
