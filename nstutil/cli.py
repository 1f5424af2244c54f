"""The command line: ``python -m nstutil`` (or ``nstutil``) runs one style transfer and writes the image."""

from __future__ import annotations

import argparse
import dataclasses
import glob
import math
import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

from .errors import NSTError
from .estimate import plan_run
from .images import DEFAULT_CONTENT, DEFAULT_STYLE, check_writable, image_path, save_image
from .device import resolve_device
from .interrupts import StopSignals
from .presets import INIT_CHOICES, PRESETS
from .settings import (OPTIMISER_FIELDS, Controls, RecipeChoice, add_options, field_names, from_options, parse_layers,
                       positive_int)
from .transfer import Evaluation, style_transfer

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
exit status: 0 done, 1 the run diverged (best image still written), 2 bad input, 130 interrupted by Ctrl-C,
143 by SIGTERM, 129 by SIGHUP (the best image so far still written in each case).
"""


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
    io.add_argument("--force", action="store_true",
                    help="replace OUTPUT even if it is read-only (it keeps its permissions)")
    io.add_argument("--size", type=positive_int, default=256, metavar="PX",
                    help="longer side of the content image and the result, in pixels (default: %(default)s)")
    io.add_argument("--style-size", type=positive_int, metavar="PX",
                    help="longer side of the style image (default: the same as --size)")
    io.add_argument("--init-image", metavar="IMAGE", help="start from this picture (resized to the content's size)")
    io.add_argument("--save-every", type=positive_int, metavar="N",
                    help="also write the image every N evaluations, as OUTPUT-NNNN.png")

    recipe = parser.add_argument_group("recipe (unset options come from --preset)")
    recipe.add_argument("--preset", choices=sorted(PRESETS), default="tutorial",
                        help="a known recipe of layers, weights and loss convention (default: %(default)s)")
    add_options(recipe, RecipeChoice, [name for name in field_names(RecipeChoice) if name not in OPTIMISER_FIELDS])
    recipe.add_argument("--init", choices=INIT_CHOICES, help="starting image")

    control = parser.add_argument_group("controls (Gatys et al. 2017; jcjohnson/neural-style)")
    add_options(control, Controls, [name for name in field_names(Controls) if name != "steps"])

    run = parser.add_argument_group("optimisation")
    add_options(run, Controls, ["steps"])
    add_options(run, RecipeChoice, OPTIMISER_FIELDS)
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
    # SIGTERM and SIGHUP stop a run like Ctrl-C (the best image is written); a second signal is ignored.
    progress = {"evaluations": 0}
    with StopSignals() as stop, _each_warning_once():
        try:
            return _run(args, stop, progress)
        except NSTError as exc:
            print(f"nstutil: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            # The optimisation handles a signal itself; this one came while loading, or while finishing.
            when = (f"while finishing, after {progress['evaluations']} evaluations" if progress["evaluations"]
                    else "before the optimisation started")
            print(f"nstutil: {_stopped_by(stop)} {when}; nothing written", file=sys.stderr)
            return stop.exit_status


@contextmanager
def _each_warning_once() -> Iterator[None]:
    """Within the block a warning whose text was shown already is not shown again: the estimate and the run each
    load the weights, and offline each would say that the pretrained ones are missing. (A "once" filter does not
    hold: every catch_warnings block, such as load_image's, resets the registry it keeps.)"""
    shown = set()
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if (category, str(message)) not in shown:
            shown.add((category, str(message)))
            previous(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


def _stopped_by(stop: StopSignals) -> str:
    return "interrupted" if stop.name in ("", "SIGINT") else f"stopped by {stop.name}"


def _run(args: argparse.Namespace, stop: StopSignals, progress: Dict[str, int]) -> int:
    for name in ("content_weight", "style_weight", "tv_weight", "lr", "lr_decay"):
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
        masks = [image_path(name, role=f"style mask {k + 1}") for k, name in enumerate(args.style_masks)]
    init = image_path(args.init_image, role="init image") if args.init_image else args.init
    output = Path(args.output) if args.output else _default_output(content, styles)
    inputs: List[Path] = [content, *styles, *(masks or []), *([init] if args.init_image else [])]
    check_writable(output, protect=inputs, force=args.force)
    if args.save_every:  # the snapshots' names are longer: they must fit too, and none may be read-only
        check_writable(_snapshot_path(output, 9999), protect=inputs)
        pattern = f"{glob.escape(output.stem)}-[0-9]*{glob.escape(output.suffix)}"
        for snapshot in sorted(output.parent.glob(pattern)):
            check_writable(snapshot, protect=inputs)
    resolve_device(args.device)  # "cuda" without a GPU: one line now, before the estimate loads anything
    recipe = from_options(RecipeChoice, args)
    controls = from_options(Controls, args, style_masks=masks)
    # Refuse a run that would not fit in memory now, and say how long and how large a long run will be.
    plan = plan_run(content, args.size, preset=args.preset, recipe=recipe, controls=controls, weights=args.weights,
                    pooling=args.pooling, device=args.device)
    if plan is not None:
        print(f"nstutil: estimate: {plan.summary()}", file=sys.stderr)

    def after_evaluation(event: Evaluation) -> None:
        n = event.record.evaluation
        progress["evaluations"] = n + 1
        if args.save_every and n > 0 and n % args.save_every == 0:
            save_image(event.image, _snapshot_path(output, n), protect=inputs)

    result = style_transfer(
        content, styles if len(styles) > 1 else styles[0],
        preset=args.preset, weights=args.weights, **recipe.given(), **dataclasses.asdict(controls),
        init=init, seed=args.seed, size=args.size, style_size=args.style_size,
        pooling=args.pooling, device=args.device, callback=after_evaluation,
        progress=not args.quiet,
    )
    # A signal during the save must neither leave a half-written file (save_image is atomic) nor stop the save.
    stop.hold()
    written = save_image(result.image, output, protect=inputs, force=args.force)
    last = result.history[result.best_evaluation] if result.best_evaluation >= 0 else None
    summary = f" (loss {last.total:.4g})" if last else ""
    if result.stop_reason == "interrupted":
        print(f"nstutil: {_stopped_by(stop)}: {result.message}; wrote {written}{summary}", file=sys.stderr)
        return stop.exit_status
    if result.stop_reason == "nonfinite":
        print(f"nstutil: error: {result.message}; wrote {written}{summary}", file=sys.stderr)
        return 1
    print(f"wrote {os.fspath(written)}{summary} after {len(result.history)} evaluations "
          f"with {result.settings['weights']} weights")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
