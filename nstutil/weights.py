"""The VGG19 weights file format, and the tool that writes one to share: the 16 convolutions as a float16
features-only state dict (~40 MB, not 548 MB).

A classroom behind a firewall needs the pretrained weights once, on a share, not 30 downloads::

    python -m nstutil.weights export vgg19-fp16.pth                # torchvision's ImageNet VGG19 (downloads once)
    python -m nstutil.weights export vgg19-caffe-fp16.pth --from caffe
    python -m nstutil.weights export vgg19-fp16.pth --from vgg19-dcbb9e9d.pth   # a state dict copied by hand
    python -m nstutil.weights verify /share/vgg19-fp16.pth         # what it is, where from, its SHA-256
    python -m nstutil.weights compare --from imagenet              # what float16 storage changes

The file is a plain state dict in the layout of ``torchvision.models.vgg19().features`` (keys ``0.weight`` ...
``34.bias``), loadable with ``torch.load(path, weights_only=True)`` and by torchvision itself. Its source and input
convention (``imagenet`` or ``caffe``) are recorded in the state dict's ``_metadata`` (see
:data:`WEIGHTS_FILE_FORMAT`), with a digest of the tensors. ``load_vgg19(path)`` and
``NSTUTIL_WEIGHTS=path`` load it as float32 with the recorded input convention. Exit status: 0 done, 2 bad input
or a bad file (one line on stderr).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch

from . import __version__
from .errors import NSTError
from .images import write_atomically
from .output_files import same_file
from .presets import GATYS_STYLE_LAYERS
from .vgg import (CAFFE_URL, VGGFeatures, _features_state, _hub_checkpoint, _imagenet_url, _load_weights,
                  _make_features, _read_state_dict)

__all__ = ["WEIGHTS_FILE_FORMAT", "WeightsFile", "read_weights_file", "export_weights", "verify_weights", "float16_effect",
           "sha256_file", "main"]

# What ``python -m nstutil.weights export`` records in the state dict's ``_metadata`` under the key "nstutil" (the
# attribute torch keeps for module versions; load_state_dict ignores keys that name no module, and
# torch.load(weights_only=True) keeps it), so the file stays a plain tensors-only features state dict.
WEIGHTS_FILE_FORMAT = "nstutil-vgg19-features"
_INFO_KEY = "nstutil"


def _export_info(state: Dict[str, torch.Tensor]) -> Optional[Dict[str, object]]:
    """The provenance an nstutil weights file records (source, input convention, ...); None for any other file."""
    metadata = getattr(state, "_metadata", None)
    info = metadata.get(_INFO_KEY) if isinstance(metadata, dict) else None
    if isinstance(info, dict) and info.get("format") == WEIGHTS_FILE_FORMAT:
        return dict(info)
    return None


def read_weights_file(path: Path) -> Tuple[Dict[str, torch.Tensor], Dict[str, torch.Tensor], str, Optional[dict]]:
    """(the file's state dict as stored, its features as float32, input convention, nstutil export info or None).

    The input convention is the one an nstutil export records; otherwise a file named like the Caffe conversion
    (``vgg19-d01eb7cb*``) is Caffe's and everything else torchvision's (ImageNet).
    """
    what = f"weights file {str(path)!r}"
    raw = _read_state_dict(path, "weights file")
    info = _export_info(raw)
    features = _features_state(raw, what)
    if info is None:
        return raw, features, "caffe" if path.name.startswith("vgg19-d01eb7cb") else "imagenet", None
    convention = info.get("input_convention")
    if convention not in ("imagenet", "caffe"):
        raise NSTError(f"{what} records the input convention {convention!r}, not 'imagenet' or 'caffe': export it "
                       f"again with python -m nstutil.weights export")
    return raw, features, str(convention), info


_FORMAT_VERSION = 1
# torch.hub names a checkpoint after the first hex digits of its SHA-256, so a copy made by hand is recognised by
# its content, whatever it is called now.
_KNOWN_CHECKPOINTS = {"dcbb9e9d": "imagenet", "d01eb7cb": "caffe"}


@dataclass(frozen=True)
class WeightsFile:
    """What :func:`export_weights` wrote or :func:`verify_weights` found."""

    path: Path
    sha256: str
    size_bytes: int
    layout: str                   # "features" (16 convolutions) or "full model" (features and classifier)
    dtype: str                    # of the feature tensors as stored, e.g. "float16"
    parameters: int               # in the 16 convolutions
    source: Optional[str]         # "imagenet", "caffe", "random:SEED", "file NAME"; None when the file records none
    input_convention: str         # "imagenet" or "caffe"
    nstutil_version: Optional[str]

    def describe(self) -> List[str]:
        """The lines the command line prints."""
        size = f"{self.size_bytes / 2 ** 20:.1f} MiB"
        kind = "nstutil weights file" if self.nstutil_version else "VGG19 state dict (not an nstutil export)"
        lines = [f"{self.path}: {kind}, {self.layout}, {self.parameters:,} convolution parameters as {self.dtype}, "
                 f"{size}"]
        if self.source is None:
            lines.append(f"source: not recorded; input convention: {self.input_convention} (from the file name)")
        else:
            lines.append(f"source: {_describe_source(self.source)}; input convention: {self.input_convention}; "
                         f"written by nstutil {self.nstutil_version}")
        lines.append(f"sha256: {self.sha256}")
        return lines


def _describe_source(source: str) -> str:
    if source == "imagenet":
        return f"imagenet (torchvision's VGG19_Weights.IMAGENET1K_V1, {_imagenet_url()})"
    if source == "caffe":
        return f"caffe (the original Caffe VGG19 as converted for PyTorch, {CAFFE_URL})"
    if source.startswith("random"):
        return f"{source} (seeded random weights: untrained, for tests only)"
    return source


def sha256_file(path: Union[str, os.PathLike]) -> str:
    """The SHA-256 of a file, as ``sha256sum`` prints it."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _tensors_digest(state: Dict[str, torch.Tensor]) -> str:
    """SHA-256 over the keys and raw bytes of the tensors, in order: changes if any stored value changes."""
    digest = hashlib.sha256()
    for key, tensor in state.items():
        digest.update(key.encode())
        digest.update(tensor.contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _source_weights(source: str, convention: Optional[str]) -> Tuple[Dict[str, torch.Tensor], str, str, dict]:
    """(features as float32, source as recorded, input convention, extra provenance) for ``--from``."""
    source = os.fspath(source)
    if source == "auto":
        raise NSTError("--from auto could quietly fall back to random weights: say --from imagenet, caffe, "
                       "random[:SEED] or a state-dict file")
    extra: dict = {}
    if source in ("imagenet", "caffe") or source.startswith("random"):
        state, recorded, detected = _load_weights(source)
    else:
        path = Path(source).expanduser()
        if not path.exists() and os.sep not in source and not source.endswith((".pth", ".pt")):
            raise NSTError(f"unknown source {source!r}: use imagenet, caffe, random, random:SEED or the path of a "
                           f"VGG19 state-dict file")
        _, state, detected, info = read_weights_file(path)
        digest = sha256_file(path)
        known = _KNOWN_CHECKPOINTS.get(digest[:8])
        if info is not None:
            recorded = str(info["source"])  # re-exporting an export keeps where it came from
        elif known is not None:
            recorded, detected = known, ("caffe" if known == "caffe" else "imagenet")
        else:
            recorded = f"file {path.name}"
        extra["source_sha256"] = digest
    return state, recorded, convention or detected, extra


def _source_files(source: Union[str, os.PathLike]) -> List[Path]:
    """The files ``--from`` reads: a path, or torch.hub's cached checkpoint for imagenet and caffe."""
    source = os.fspath(source)
    if source == "imagenet":
        return [_hub_checkpoint(_imagenet_url())]
    if source == "caffe":
        return [_hub_checkpoint(CAFFE_URL)]
    if source == "auto" or source.startswith("random"):
        return []
    return [Path(source).expanduser()]


def export_weights(out: Union[str, os.PathLike], source: Union[str, os.PathLike] = "imagenet", *,
                   convention: Optional[str] = None, force: bool = False) -> WeightsFile:
    """Write VGG19's 16 convolutions from ``source`` to ``out`` as a float16 features-only state dict.

    ``source``: ``"imagenet"`` (torch.hub's cache, downloaded there if possible), ``"caffe"``, ``"random"`` or
    ``"random:SEED"``, or the path of a VGG19 state dict (full model or features, any float dtype; an nstutil export
    keeps its recorded source; torch.hub's ImageNet and Caffe files are recognised by their SHA-256). ``convention``
    overrides the input convention (``"imagenet"`` or ``"caffe"``). The same source always gives the same bytes.
    An existing ``out`` is replaced only with ``force``; the file is written atomically.
    """
    if convention not in (None, "imagenet", "caffe"):
        raise NSTError(f"input convention {convention!r} is not known: use 'imagenet' or 'caffe'")
    # The file the output names, with links and ".." followed (through a folder that does not exist, too, where a
    # plain exists() says False): that is the file compared and written, and no missing folder is made.
    out = Path(os.path.realpath(Path(out).expanduser().parent)) / Path(out).name
    for original in _source_files(source):
        if same_file(original, out):
            raise NSTError(f"output {str(out)!r} is the source file {str(original)!r}: write the export to "
                           f"another file")
    if out.exists() and not force:
        raise NSTError(f"output {str(out)!r} exists: choose another name or pass --force to replace it")
    if out.is_dir():
        raise NSTError(f"output {str(out)!r} is a directory: give a file name such as {str(out / 'vgg19-fp16.pth')!r}")
    features, recorded, convention, extra = _source_weights(source, convention)
    state: Dict[str, torch.Tensor] = OrderedDict()
    for key, value in features.items():
        if value.abs().max() > torch.finfo(torch.float16).max:
            raise NSTError(f"{key!r} of {recorded} has values beyond float16's range (±65504): it cannot be "
                           f"stored as float16")
        state[key] = value.half()
    info = {"format": WEIGHTS_FILE_FORMAT, "version": _FORMAT_VERSION, "source": recorded,
            "input_convention": convention, "dtype": "float16", "tensors_sha256": _tensors_digest(state),
            "nstutil_version": __version__, **extra}
    state._metadata = OrderedDict({_INFO_KEY: info})  # type: ignore[attr-defined]
    # Saved through a stream, the archive's inner folder is named "archive", not after the file, so the bytes (and
    # the SHA-256) do not depend on the output's name.
    write_atomically(out, lambda stream: torch.save(state, stream))
    return verify_weights(out)


def verify_weights(path: Union[str, os.PathLike]) -> WeightsFile:
    """Check a weights file: a VGG19 state dict with the right shapes and finite values; for an nstutil export
    also its layout (exactly the 32 feature tensors), dtype (float16) and the digest recorded at export.

    Raises :class:`NSTError` (one line) for anything else: not VGG19, truncated, pickled code, damaged.
    """
    path = Path(path).expanduser()
    raw, features, convention, info = read_weights_file(path)
    full = any(k.startswith("features.") for k in raw)
    prefix = "features." if full else ""
    stored = {k: raw[prefix + k] for k in features}
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in stored.values()})
    what = f"weights file {str(path)!r}"
    if info is not None:
        if set(raw) != set(features):
            extra = sorted(set(raw) - set(features))[0]
            raise NSTError(f"{what} claims to be an nstutil export but holds {extra!r} besides VGG19's 32 feature "
                           f"tensors: export it again")
        if dtypes != ["float16"]:
            raise NSTError(f"{what} claims to be an nstutil export but stores {', '.join(dtypes)}, not float16: "
                           f"export it again")
        if _tensors_digest(stored) != info.get("tensors_sha256"):
            raise NSTError(f"{what}: its tensors do not match the digest recorded at export, so the file was "
                           f"changed or damaged: copy or export it again")
    return WeightsFile(
        path=path, sha256=sha256_file(path), size_bytes=path.stat().st_size,
        layout="full model (features and classifier)" if full else "features (16 convolutions)",
        dtype="/".join(dtypes), parameters=sum(t.numel() for t in stored.values()),
        source=None if info is None else str(info.get("source")), input_convention=convention,
        nstutil_version=None if info is None else str(info.get("nstutil_version")),
    )


def _model(state: Dict[str, torch.Tensor], convention: str, name: str) -> VGGFeatures:
    features = _make_features()
    features.load_state_dict(state)
    return VGGFeatures(features, input_convention=convention, weights_name=name)


def float16_effect(source: Union[str, os.PathLike] = "imagenet", *, size: int = 256, steps: int = 300,
                   presets: Sequence[str] = ("tutorial", "gatys")) -> Dict[str, float]:
    """What storing ``source``'s weights as float16 changes, measured on the bundled content and style images.

    Returns ``{"gram relu1_1": ..., ..., "loss tutorial": ..., "pixels mean tutorial": ..., ...}``: for each style
    layer the largest change of any Gram-matrix entry relative to the largest entry (content image at ``size`` px);
    for each preset the relative change of the total loss after ``steps`` evaluations, and the mean and the largest
    change of the result's pixels in 8-bit levels (L-BFGS amplifies any rounding difference along the way, so the
    results are not pixel-identical even where the losses agree). Everything else is identical: the images, the seed, float32 arithmetic.
    """
    from .images import DEFAULT_CONTENT, DEFAULT_STYLE, load_image
    from .losses import gram_matrix
    from .transfer import style_transfer

    state, recorded, convention, _ = _source_weights(source, None)
    exact = _model(state, convention, recorded)
    rounded = _model({k: v.half().float() for k, v in state.items()}, convention, f"{recorded} as float16")
    content = load_image(DEFAULT_CONTENT, size)
    effect: Dict[str, float] = {}
    with torch.no_grad():
        grams = [{n: gram_matrix(f) for n, f in m(content, list(GATYS_STYLE_LAYERS)).items()} for m in (exact, rounded)]
    for name in GATYS_STYLE_LAYERS:
        reference = grams[0][name].double()
        effect[f"gram {name}"] = ((grams[1][name].double() - reference).abs().max() / reference.abs().max()).item()
    for preset in presets:
        runs = [style_transfer(DEFAULT_CONTENT, DEFAULT_STYLE, preset=preset, size=size, steps=steps, model=m,
                               progress=False) for m in (exact, rounded)]
        losses = [r.history[-1].total for r in runs]
        effect[f"loss {preset}"] = abs(losses[1] - losses[0]) / abs(losses[0])
        change = 255.0 * (runs[1].image - runs[0].image).abs()
        effect[f"pixels mean {preset}"] = change.mean().item()
        effect[f"pixels max {preset}"] = change.max().item()
    return effect


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nstutil.weights",
        description="Write, check and compare the shareable float16 VGG19 weights file (~40 MB).",
        epilog="exit status: 0 done, 2 bad input or a bad file. Use the file with NSTUTIL_WEIGHTS=FILE or "
               "load_vgg19('FILE').")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{export,verify,compare}")
    export = commands.add_parser("export", help="write the float16 features file and print its SHA-256")
    export.add_argument("out", metavar="OUT.pth", help="the file to write")
    export.add_argument("--from", dest="source", default="imagenet", metavar="SOURCE",
                        help="imagenet (default), caffe, random[:SEED] or a VGG19 state-dict file")
    export.add_argument("--convention", choices=("imagenet", "caffe"),
                        help="the input convention to record (default: the source's)")
    export.add_argument("--force", action="store_true", help="replace OUT.pth if it exists")
    verify = commands.add_parser("verify", help="check a weights file, say what it is and print its SHA-256")
    verify.add_argument("file", metavar="FILE")
    compare = commands.add_parser("compare", help="measure what float16 storage changes (Grams, final losses)")
    compare.add_argument("--from", dest="source", default="imagenet", metavar="SOURCE",
                         help="imagenet (default), caffe, random[:SEED] or a VGG19 state-dict file")
    compare.add_argument("--size", type=int, default=256, metavar="PX", help="image size (default: %(default)s)")
    compare.add_argument("--steps", type=int, default=300, metavar="N",
                         help="loss evaluations per run (default: %(default)s)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``python -m nstutil.weights``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "export":
            written = export_weights(args.out, args.source, convention=args.convention, force=args.force)
            print("wrote " + "\n".join(written.describe()))
            print(f"use it with NSTUTIL_WEIGHTS={written.path} (or load_vgg19('{written.path}')); check a copy with "
                  f"python -m nstutil.weights verify FILE: the sha256 must be the same")
        elif args.command == "verify":
            found = verify_weights(args.file)
            lines = found.describe()
            print("\n".join(lines[:-1]))
            print("checked: VGG19's 16 convolutions, the right shapes, finite values"
                  + ("; float16 tensors match the digest recorded at export" if found.nstutil_version else ""))
            print(lines[-1])
        else:
            if args.size < 32 or args.steps < 1:
                raise NSTError("compare needs --size of at least 32 px (relu5_1) and --steps of at least 1")
            effect = float16_effect(args.source, size=args.size, steps=args.steps)
            print(f"float16 storage of {args.source} against float32 ({args.size} px, {args.steps} evaluations):")
            for key, value in effect.items():
                unit = " levels of 255" if key.startswith("pixels") else " (relative)"
                print(f"  {key:<22} {value:.3g}{unit}" if math.isfinite(value) else f"  {key:<22} {value}")
    except NSTError as exc:
        print(f"nstutil.weights: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
