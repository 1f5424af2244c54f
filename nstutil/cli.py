"""The command line: ``python -m nstutil`` (or ``nstutil``) runs one style transfer and writes the image."""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .colour import PRESERVE_COLORS
from .errors import NSTError
from .estimate import plan_run
from .images import DEFAULT_CONTENT, DEFAULT_STYLE, check_writable, image_path, save_image
from .losses import CONVENTIONS, STYLE_STATISTICS
from .presets import INIT_CHOICES, PRESETS
from .optimisation import DEFAULT_LR
from .transfer import OPTIMIZERS, Evaluation, style_transfer

__all__ = ["main", "build_parser", "parse_layers"]

EXAMPLES = """\
examples:
  nstutil                                    the bundled cat in the bundled mosaic style
  nstutil --content me.jpg --style starry.jpg -o me-starry.png --size 384
  nstutil --preset gatys --steps 500 --save-every 100
  nstutil --style-layers relu1_1,relu2_1,relu3_1:0.5 --style-weight 1e5
  nstutil --style mosaic,waves --style-blend 3,1                 two styles, three parts mosaic
  nstutil --style mosaic,waves --style-masks left.png,right.png  one style per region
  nstutil --preserve-colors luminance --style-scale 0.5          the photo's colours, finer strokes
  nstutil --size 512 --scales 128,256 --steps 200,100,50         coarse-to-fine: 128, 256 then 512 px
  NSTUTIL_WEIGHTS=random nstutil --steps 20   offline smoke test with untrained weights
  nstutil train --help, nstutil stylize --help   style networks: train one for a style, style in one pass

layers may be named as in the paper (relu4_2) or as in the PyTorch tutorial (conv_4 = conv2_2).
exit status: 0 done, 1 the run diverged (best image still written), 2 bad input, 130 interrupted
(best image so far still written).
"""


def parse_layers(text: str) -> Dict[str, float]:
    """``"relu1_1,relu2_1:0.5"`` -> ``{"relu1_1": 1.0, "relu2_1": 0.5}`` (weight 1 where none is given)."""
    layers: Dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, weight = item.partition(":")
        try:
            layers[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"layer weight {weight!r} in {item!r} is not a number") from None
    return layers


def _number_list(kind):
    """An argparse type: comma-separated numbers of ``kind`` (``"3,1"`` -> ``[3.0, 1.0]``)."""
    def parse(text: str) -> list:
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    return parse


# The default run goes coarse to fine: this many evaluations at half the size, then as many at the size. At the
# default 256 px it ends within 0.5 % of the loss of 300 evaluations at one size, in 0.6x of the time
# (benchmarks/bench_coarse_to_fine.py; benchmarks/README.md). Smaller sizes keep one scale.
DEFAULT_COARSE_TO_FINE = (150, 150)
DEFAULT_COARSE_TO_FINE_FROM = 256
DEFAULT_STEPS = 300


def _default_plan(size: int, scales: Optional[List[int]], steps) -> tuple:
    """The ``(scales, steps)`` a run uses when ``--steps`` is not given: coarse to fine from half the size at
    sizes from 256 px on, else 300 evaluations (per scale, if ``--scales`` is given)."""
    if steps is not None:
        return scales, steps
    if scales is None and size >= DEFAULT_COARSE_TO_FINE_FROM:
        return [size // 2], list(DEFAULT_COARSE_TO_FINE)
    return scales, DEFAULT_STEPS


def _steps(text: str):
    """``--steps``: one whole number, or one per scale (``"200,100,50"``)."""
    counts = [_positive_int(part) for part in text.split(",") if part.strip()]
    if not counts:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return counts[0] if len(counts) == 1 else counts


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (its ``--help`` is the command's manual)."""
    parser = argparse.ArgumentParser(
        prog="nstutil",
        description="Neural style transfer (Gatys et al.): repaint a content image in the style of another with "
                    "VGG19 features, Gram matrices and L-BFGS over the pixels. With no options it styles the "
                    "bundled content image with the bundled style image and prints where it wrote the result.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    io = parser.add_argument_group("images")
    io.add_argument("-c", "--content", default=str(DEFAULT_CONTENT), metavar="IMAGE",
                    help="content image: a path or a bundled name such as 'astronaut' (default: %(default)s)")
    io.add_argument("-s", "--style", default=str(DEFAULT_STYLE), metavar="IMAGE[,IMAGE...]",
                    help="style image(s): paths or bundled names such as 'waves', comma-separated for several "
                         "(default: %(default)s)")
    io.add_argument("-o", "--output", metavar="FILE",
                    help="where to write the result (.png, .jpg); default: CONTENT-STYLE.png in the current "
                         "folder, never overwriting an existing file")
    io.add_argument("--size", type=_positive_int, default=256, metavar="PX",
                    help="longer side of the content image and the result, in pixels (default: %(default)s)")
    io.add_argument("--style-size", type=_positive_int, metavar="PX",
                    help="longer side of the style image (default: the same as --size)")
    io.add_argument("--init-image", metavar="IMAGE", help="start from this picture (resized to the content's size)")
    io.add_argument("--save-every", type=_positive_int, metavar="N",
                    help="also write the image every N evaluations, as OUTPUT-NNNN.png")

    recipe = parser.add_argument_group("recipe (unset options come from --preset)")
    recipe.add_argument("--preset", choices=sorted(PRESETS), default="tutorial",
                        help="a known recipe of layers, weights and loss convention (default: %(default)s)")
    recipe.add_argument("--content-layers", type=parse_layers, metavar="L[:W],...",
                        help="content layers with optional weights, e.g. relu4_2")
    recipe.add_argument("--style-layers", type=parse_layers, metavar="L[:W],...",
                        help="style layers with optional weights, e.g. relu1_1,relu2_1:0.5")
    recipe.add_argument("--content-weight", type=float, metavar="ALPHA", help="weight of the content loss")
    recipe.add_argument("--style-weight", type=float, metavar="BETA", help="weight of the style loss")
    recipe.add_argument("--tv-weight", type=float, metavar="GAMMA", help="weight of the total-variation loss")
    recipe.add_argument("--convention", choices=CONVENTIONS, help="which normalisation of the losses")
    recipe.add_argument("--init", choices=INIT_CHOICES, help="starting image")
    recipe.add_argument("--style-statistic", choices=STYLE_STATISTICS,
                        help="what the style loss compares: Gram matrices (gram) or each channel's mean and "
                             "standard deviation (mean_std)")

    control = parser.add_argument_group("controls (Gatys et al. 2017; jcjohnson/neural-style)")
    control.add_argument("--style-blend", type=_number_list(float), metavar="W,W,...",
                         help="one weight per style image (default: equal); normalised to sum 1")
    control.add_argument("--style-masks", metavar="MASK,MASK,...",
                         help="one mask picture per style image over the content image: white = this style")
    control.add_argument("--style-scale", type=float, metavar="S",
                         help="style image size relative to the content (0.5: finer strokes; default 1)")
    control.add_argument("--preserve-colors", choices=PRESERVE_COLORS,
                         help="keep the content's colours: luminance-only transfer, or the style's colours "
                              "matched to the content's first (histogram)")
    control.add_argument("--scales", type=_number_list(int), metavar="PX,PX,...",
                         help="coarse-to-fine: optimise at these sizes first (increasing; --size is added last)")

    run = parser.add_argument_group("optimisation")
    run.add_argument("--steps", type=_steps, metavar="N[,N...]",
                     help="loss evaluations, each one forward and one backward pass; with --scales one number "
                          "per scale, or one for each. Default: 150 at half the size, then 150 at the size "
                          "(from 256 px on: about the loss of 300 at one size in 0.6x of the time), else 300. The "
                          "PyTorch tutorial's '300 steps' are 320 evaluations")
    run.add_argument("--optimizer", choices=OPTIMIZERS, default="lbfgs", help="(default: %(default)s)")
    run.add_argument("--lr", type=float, help=f"learning rate (default: {DEFAULT_LR['lbfgs']:g} for L-BFGS, {DEFAULT_LR['adam']:g} for Adam)")
    run.add_argument("--seed", type=int, default=0, help="seed for the noise of --init noise/blend "
                                                          "(default: %(default)s)")
    run.add_argument("--weights", metavar="WHICH",
                     help="VGG19 weights: auto, imagenet, caffe, random, random:SEED or a state-dict file "
                          "(default: $NSTUTIL_WEIGHTS, else auto = imagenet if available, random with a warning)")
    run.add_argument("--pooling", choices=("max", "avg"), default="max", help="(default: %(default)s)")
    run.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def _default_output(content: Path, styles: Sequence[Path]) -> Path:
    stem = f"{content.stem}-{'+'.join(style.stem for style in styles)}"
    candidate = Path(f"{stem}.png")
    k = 1
    while candidate.exists():
        candidate = Path(f"{stem}-{k}.png")
        k += 1
    return candidate


def _snapshot_path(output: Path, evaluation: int) -> Path:
    return output.with_name(f"{output.stem}-{evaluation:04d}{output.suffix}")


def _warning_line(message, category, filename, lineno, line=None) -> str:
    # A warning written for notebooks in short lines (WeightsWarning) is still one line on the command line.
    return f"nstutil: warning: {' '.join(str(message).split())}\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("train", "stylize"):  # the style-network sub-commands (lesson 10)
        from .cli_networks import main as networks_main
        return networks_main(argv)
    warnings.formatwarning = _warning_line  # a command prints its warnings as lines, not as source excerpts
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except NSTError as exc:
        print(f"nstutil: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Interrupted while loading, before the optimisation (which handles Ctrl-C itself) began.
        print("nstutil: interrupted before the optimisation started; nothing written", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    for name in ("content_weight", "style_weight", "tv_weight", "lr"):
        value = getattr(args, name)
        if value is not None and not math.isfinite(value):
            raise NSTError(f"--{name.replace('_', '-')} is {value}: give a finite number")
    if args.style_scale is not None and not math.isfinite(args.style_scale):
        raise NSTError(f"--style-scale is {args.style_scale}: give a finite number > 0")
    content = image_path(args.content, role="content image")
    names = [name.strip() for name in args.style.split(",") if name.strip()]
    styles = [image_path(name, role="style image" if len(names) == 1 else f"style image {k + 1}")
              for k, name in enumerate(names)]
    masks = None
    if args.style_masks is not None:
        masks = [image_path(name.strip(), role=f"style mask {k + 1}")
                 for k, name in enumerate(args.style_masks.split(",")) if name.strip()]
    init = image_path(args.init_image, role="init image") if args.init_image else args.init
    output = Path(args.output) if args.output else _default_output(content, styles)
    inputs: List[Path] = [content, *styles, *(masks or []), *([init] if args.init_image else [])]
    check_writable(output, protect=inputs)
    args.scales, args.steps = _default_plan(args.size, args.scales, args.steps)
    # Refuse a run that would not fit in memory now, and say how long and how large a long run will be.
    plan = plan_run(content, args.size, args.steps, preset=args.preset, content_layers=args.content_layers,
                    style_layers=args.style_layers, weights=args.weights, pooling=args.pooling, device=args.device,
                    scales=args.scales)
    if plan is not None:
        print(f"nstutil: estimate: {plan.summary()}", file=sys.stderr)

    def save_snapshots(event: Evaluation) -> None:
        n = event.record.evaluation
        if n > 0 and n % args.save_every == 0:
            save_image(event.image, _snapshot_path(output, n), protect=inputs)

    result = style_transfer(
        content, styles if len(styles) > 1 else styles[0],
        preset=args.preset, weights=args.weights, content_layers=args.content_layers,
        style_layers=args.style_layers, content_weight=args.content_weight, style_weight=args.style_weight,
        tv_weight=args.tv_weight, convention=args.convention, style_statistic=args.style_statistic,
        style_blend=args.style_blend, style_masks=masks, style_scale=args.style_scale,
        preserve_colors=args.preserve_colors, scales=args.scales, steps=args.steps, optimizer=args.optimizer,
        lr=args.lr, init=init, seed=args.seed, size=args.size, style_size=args.style_size,
        pooling=args.pooling, device=args.device, callback=save_snapshots if args.save_every else None,
        progress=not args.quiet,
    )
    # Ctrl-C during the save must not leave a half-written file: save_image is atomic, and a second Ctrl-C
    # while writing is ignored.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        written = result.save(output)
    finally:
        signal.signal(signal.SIGINT, previous)
    last = result.history[result.best_evaluation] if result.best_evaluation >= 0 else None
    summary = f" (loss {last.total:.4g})" if last else ""
    if result.stop_reason == "interrupted":
        print(f"nstutil: interrupted: {result.message}; wrote {written}{summary}", file=sys.stderr)
        return 130
    if result.stop_reason == "nonfinite":
        print(f"nstutil: error: {result.message}; wrote {written}{summary}", file=sys.stderr)
        return 1
    print(f"wrote {os.fspath(written)}{summary} after {len(result.history)} evaluations "
          f"with {result.settings['weights']} weights")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
