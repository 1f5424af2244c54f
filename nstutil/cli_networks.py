"""The command line for style networks: ``python -m nstutil train`` and ``python -m nstutil stylize`` (lesson 10).

``train`` fits Johnson et al.'s image transformation network to one style on a folder of photos and writes a
network file; ``stylize`` styles photos with such a file in one pass. ``python -m nstutil`` without a sub-command
stays image optimisation (:mod:`nstutil.cli`).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import List, Optional, Sequence

from .colour import PRESERVE_COLORS
from .errors import NSTError
from .images import check_writable, image_path, save_image
from .output_files import check_output
from .presets import PRESETS
from .settings import parse_layers, positive_int
from .transformer_net import WIDTHS

__all__ = ["main", "build_parser", "SUBCOMMANDS"]

SUBCOMMANDS = ("train", "stylize")

TRAIN_EXAMPLES = """\
examples:
  nstutil train --style mosaic -o mosaic.net.pth                    the bundled photos, 256 px, 2000 steps
  nstutil train --style starry.jpg --photos coco/train2014 -o starry.net.pth --steps 40000
  nstutil train --style mosaic --size 128 --steps 500 -o m.net.pth   a class-sized run on a laptop
  nstutil train --style mosaic -o mosaic.net.pth --resume --steps 4000   continue from its checkpoint
  torchrun --nproc-per-node 4 -m nstutil train --style mosaic --photos DIR --batch 16 -o m.net.pth
  nstutil train --arbitrary --photos coco/ --styles wikiart/ -o adain.dec.pth    an AdaIN decoder: any style

A checkpoint OUTPUT.ckpt is written every --checkpoint-every steps, at the end, and on Ctrl-C or SIGTERM; --resume
continues from it. exit status: 0 done, 1 the loss became NaN or infinite (the last checkpoint is kept), 2 bad input,
130 (Ctrl-C), 143 (SIGTERM) or 129 (SIGHUP): stopped after the step in progress, checkpoint and network written.
"""

STYLIZE_EXAMPLES = """\
examples:
  nstutil stylize --net mosaic.net.pth photo.jpg -o photo-mosaic.png
  nstutil stylize --net mosaic.net.pth photo.jpg --size 1024 --strength 0.7 --preserve-colors luminance
  nstutil stylize --net mosaic.net.pth a.jpg b.jpg c.jpg -o styled/      several photos into a folder
  nstutil stylize --decoder adain.dec.pth --style waves photo.jpg --alpha 0.8 -o out.png     any style (AdaIN)
  nstutil stylize --decoder adain.dec.pth --style a.jpg,b.jpg --style-blend 1,1 photo.jpg
  nstutil stylize --decoder adain.dec.pth --style a.jpg,b.jpg --style-masks m1.png,m2.png photo.jpg

exit status: 0 done, 2 bad input.
"""


def _number_list(text: str) -> List[float]:
    try:
        return [_finite(part) for part in text.split(",")]
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: give numbers separated by commas ({exc})") from None


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The parser of the two sub-commands (each has its own ``--help``)."""
    parser = argparse.ArgumentParser(prog="nstutil", description="Style networks (Johnson et al. 2016): train "
                                     "one for a style, then style photos in one pass.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train", help="train a style network on a folder of photos",
        description="Train Johnson et al.'s image transformation network to repaint any photo in one style, with "
                    "the perceptual loss of the optimisation (same presets and layers), on seeded random crops of "
                    "a folder of photos (default: the bundled photos, two held out).",
        epilog=TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("-s", "--style", metavar="IMAGE",
                       help="style image: a path or a bundled name (default: mosaic)")
    train.add_argument("--arbitrary", action="store_true",
                       help="train an AdaIN decoder for any style (Huang & Belongie 2017) instead of a network for "
                            "one style; the styles come from --styles")
    train.add_argument("--styles", metavar="DIR", help="with --arbitrary: folder of style images (default: the "
                                                        "bundled mosaic, waves and brick)")
    train.add_argument("--photos", metavar="DIR", help="folder of JPEG/PNG training photos, searched recursively "
                                                       "(default: the bundled photos)")
    train.add_argument("-o", "--output", metavar="FILE", help="network file to write (default: STYLE.net.pth)")
    train.add_argument("--size", type=positive_int, default=256, metavar="PX",
                       help="side of the square training crops (default: %(default)s)")
    train.add_argument("--style-size", type=positive_int, metavar="PX",
                       help="longer side of the style image (default: --size)")
    train.add_argument("--steps", type=positive_int, default=2000, help="Adam steps in all, counting those of a "
                                                                       "resumed run (default: %(default)s)")
    train.add_argument("--batch", type=positive_int, help="photos per step (default: 4; --arbitrary 8)")
    train.add_argument("--lr", type=_finite, help="Adam's learning rate (default: 1e-3; --arbitrary 1e-4)")
    train.add_argument("--network", choices=sorted(WIDTHS),
                       help="the style network's widths: johnson (the paper's; the default) or light (half as wide: "
                            "a quarter of the work per photo)")
    train.add_argument("--seed", type=int, default=0, help="seed of the starting weights and the crops "
                                                          "(default: %(default)s)")
    train.add_argument("--held-out", type=_finite, default=0.2, metavar="FRACTION",
                       help="share of a folder's photos kept out of training (default: %(default)s)")
    train.add_argument("--resume", action="store_true", help="continue from OUTPUT.ckpt")
    train.add_argument("--checkpoint-every", type=positive_int, default=100, metavar="N",
                       help="write OUTPUT.ckpt every N steps (default: %(default)s)")
    train.add_argument("--loss-curve", metavar="FILE", help="also write the loss curve (.csv, or .png for a plot)")
    recipe = train.add_argument_group("recipe (unset options come from --preset)")
    recipe.add_argument("--preset", choices=sorted(PRESETS), default="tutorial", help="(default: %(default)s)")
    recipe.add_argument("--content-layers", type=parse_layers, metavar="L[:W],...")
    recipe.add_argument("--style-layers", type=parse_layers, metavar="L[:W],...")
    recipe.add_argument("--content-weight", type=_finite, metavar="ALPHA")
    recipe.add_argument("--style-weight", type=_finite, metavar="BETA", help="(--arbitrary: λ, default 10)")
    recipe.add_argument("--tv-weight", type=_finite, metavar="GAMMA")
    train.add_argument("--weights", metavar="WHICH", help="VGG19 weights, as for the optimisation (default: "
                                                          "$NSTUTIL_WEIGHTS, else auto)")
    train.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available; under torchrun each "
                                        "process's GPU)")
    train.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    stylize = commands.add_parser(
        "stylize", help="style photos with a trained network, one pass each",
        description="Style photos in one pass of a network 'nstutil train' wrote.", epilog=STYLIZE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    stylize.add_argument("--net", metavar="FILE", help="a style network file ('nstutil train')")
    stylize.add_argument("--decoder", metavar="FILE", help="an AdaIN decoder file ('nstutil train --arbitrary'); "
                                                          "give the style with --style")
    stylize.add_argument("--style", metavar="IMAGE[,IMAGE...]",
                         help="with --decoder: style image(s), paths or bundled names, comma-separated")
    stylize.add_argument("--style-blend", type=_number_list, metavar="W,W,...",
                         help="with --decoder: one weight per style (default: equal)")
    stylize.add_argument("--style-masks", metavar="MASK,...", help="with --decoder: one mask picture per style "
                                                                   "(white = this style)")
    stylize.add_argument("--alpha", type=_finite, default=1.0, help="with --decoder: 0 = the photo's own "
                                                                     "features, 1 = fully styled (default: 1)")
    stylize.add_argument("--style-size", type=positive_int, metavar="PX",
                         help="with --decoder: longer side of the style images (default: their own size)")
    stylize.add_argument("photos", nargs="+", metavar="PHOTO", help="photos: paths or bundled names")
    stylize.add_argument("-o", "--output", metavar="PATH",
                         help="output image (one photo) or folder (several); default: PHOTO-NET.png here")
    stylize.add_argument("--size", type=positive_int, metavar="PX",
                         help="longer side of the result (default: the photo's own size)")
    stylize.add_argument("--strength", type=_finite, default=1.0, metavar="S",
                         help="0 = the photo, 1 = fully styled (default: %(default)s)")
    stylize.add_argument("--preserve-colors", choices=PRESERVE_COLORS, help="keep the photo's colours (with "
                         "--decoder, histogram matches the style's colours to the photo's first, as the paper)")
    stylize.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    return parser


def _write_curve(path: Path, losses: List[float], times: List[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        with open(path, "w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["step", "seconds", "loss"])
            writer.writerows([k + 1, f"{t:.3f}", f"{x:.6g}"] for k, (x, t) in enumerate(zip(losses, times)))
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy(range(1, len(losses) + 1), losses)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (batch)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _train(args: argparse.Namespace) -> int:
    from .feed_forward import checkpoint_path, train_network
    from .training import distributed_device, is_main_process

    if args.arbitrary:
        given = [f"--{name.replace('_', '-')}" for name in ("style", "style_size", "network", "content_layers",
                                                           "style_layers", "content_weight", "tv_weight")
                 if getattr(args, name)]
        if given or args.preset != "tutorial":
            raise NSTError(f"--arbitrary trains for any style with the paper's loss: leave out "
                           f"{', '.join(given) or '--preset'} (give style images with --styles, λ with "
                           f"--style-weight)")
    elif args.styles:
        raise NSTError("--styles is for --arbitrary (a decoder for any style): add --arbitrary, or give one style "
                       "with --style")
    style = None if args.arbitrary else image_path(args.style or "mosaic", role="style image")
    default_name = "adain.dec.pth" if args.arbitrary else f"{style.stem}.net.pth"
    output = Path(args.output).expanduser() if args.output else Path(default_name)
    checkpoint = checkpoint_path(output)
    if output.is_dir():
        raise NSTError(f"output {str(output)!r} is a directory: give a file name such as "
                       f"{str(output / default_name)!r}")
    if args.resume and not checkpoint.exists():
        raise NSTError(f"--resume: there is no checkpoint {str(checkpoint)!r}: train without --resume first")
    if not args.resume and checkpoint.exists():
        raise NSTError(f"checkpoint {str(checkpoint)!r} of an earlier run exists: add --resume to continue it, or "
                       f"delete it")
    if not args.resume and output.exists():
        raise NSTError(f"output {str(output)!r} exists: choose another -o, or delete it")
    if args.loss_curve and Path(args.loss_curve).suffix.lower() not in (".csv", ".png", ".svg", ".pdf"):
        raise NSTError(f"--loss-curve {args.loss_curve!r}: end it in .csv, or .png for a plot")
    if not 0.0 <= args.held_out < 1.0:
        raise NSTError(f"--held-out {args.held_out}: give a fraction from 0 to below 1")
    check_output(output, image=False)
    device = args.device or distributed_device()
    estimate = {}

    def report(step) -> None:
        # The first steps include warm-up, so the estimate uses steps 3 to 5.
        if step.step == 2:
            estimate["t"] = step.elapsed
        elif step.step == 5 and is_main_process() and args.steps >= 50:
            per_step = (step.elapsed - estimate["t"]) / 3
            left = per_step * (args.steps - step.step)
            print(f"nstutil: estimate: {per_step:.2f} s a step, about {_duration(left)} for the "
                  f"{args.steps - step.step} steps left", file=sys.stderr)

    if args.arbitrary:
        from .adain_training import DEFAULT_BATCH, DEFAULT_LR, STYLE_WEIGHT, train_decoder

        trained = train_decoder(args.photos, args.styles, size=args.size, steps=args.steps,
                                batch_size=args.batch or DEFAULT_BATCH, seed=args.seed,
                                lr=DEFAULT_LR if args.lr is None else args.lr,
                                style_weight=STYLE_WEIGHT if args.style_weight is None else args.style_weight,
                                weights=args.weights, device=device, held_out=args.held_out, output=output,
                                checkpoint_every=args.checkpoint_every, resume=args.resume, callback=report,
                                progress=not args.quiet)
    else:
        names = ("content_layers", "style_layers", "content_weight", "style_weight", "tv_weight")
        recipe = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
        trained = train_network(style, args.photos, size=args.size, steps=args.steps, batch_size=args.batch or 4,
                                lr=1e-3 if args.lr is None else args.lr, seed=args.seed, preset=args.preset,
                                weights=args.weights, device=device, style_size=args.style_size,
                                held_out=args.held_out, output=output, network={"channels": args.network or "johnson"},
                                checkpoint_every=args.checkpoint_every, resume=args.resume, callback=report,
                                progress=not args.quiet, **recipe)
    if not is_main_process():
        return 0
    result = trained.result
    if args.loss_curve:
        _write_curve(Path(args.loss_curve), result.losses, result.times)
    held = f", held-out loss {trained.held_out_loss:.4g}" if trained.held_out_loss is not None else ""
    last = f"loss {result.losses[-1]:.4g}" if result.losses else "no step taken"
    summary = f"{result.steps} steps in {_duration(result.seconds)}, {last}{held}"
    if result.stop_reason == "interrupted":
        name = result.stop_signal or "SIGINT"
        print(f"nstutil: stopped by {name} after {summary}; wrote {trained.path} and {checkpoint} (--resume "
              f"continues)", file=sys.stderr)
        return 128 + getattr(signal, name)
    if result.stop_reason == "nonfinite":
        print(f"nstutil: error: the loss became NaN or infinite at step {result.steps + 1}: lower --lr or the "
              f"weights; wrote {trained.path} from step {result.steps}", file=sys.stderr)
        return 1
    styles = (f", {len(trained.meta['training_styles'])} training styles" if args.arbitrary else "")
    print(f"wrote {trained.path} ({summary}; {trained.meta['training_photos']} training photos{styles})")
    return 0


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _stylize(args: argparse.Namespace) -> int:
    from .device import resolve_device
    from .feed_forward import stylize
    from .network_file import load_network

    if (args.net is None) == (args.decoder is None):
        raise NSTError("give either --net (a style network) or --decoder (an AdaIN decoder, with --style)")
    arbitrary = args.decoder is not None
    if arbitrary and not args.style:
        raise NSTError("--decoder needs the style: give --style IMAGE (or IMAGE,IMAGE with --style-blend)")
    if arbitrary and args.strength != 1.0:
        raise NSTError("--strength is for --net: with --decoder give --alpha (0 = the photo, 1 = fully styled)")
    extra = [flag for flag, value in (("--style", args.style), ("--style-blend", args.style_blend),
                                      ("--style-masks", args.style_masks), ("--style-size", args.style_size),
                                      ("--alpha", args.alpha != 1.0)) if value]
    if not arbitrary and extra:
        raise NSTError(f"{', '.join(extra)}: for --decoder (any style); a --net network has its style built in")
    photos = [image_path(name, role="photo") for name in args.photos]
    net_path = Path(args.decoder if arbitrary else args.net).expanduser()
    if len(photos) == 1 and not (args.output and Path(args.output).is_dir()):
        outputs = [Path(args.output) if args.output else Path(f"{photos[0].stem}-{net_path.name.split('.')[0]}.png")]
    else:
        folder = Path(args.output) if args.output else Path(".")
        if folder.exists() and not folder.is_dir():
            raise NSTError(f"output {str(folder)!r} is a file: with several photos give a folder")
        outputs = [folder / f"{p.stem}-{net_path.name.split('.')[0]}.png" for p in photos]
    styles = [image_path(name, role="style image") for name in args.style.split(",")] if arbitrary else []
    masks = args.style_masks.split(",") if args.style_masks else None
    for output in outputs:
        check_writable(output, protect=[*photos, net_path, *styles])
    network = load_network(net_path, device=resolve_device(args.device))
    if arbitrary:
        from .adain import load_decoder, stylize_arbitrary

        decoder = load_decoder(network)
        for photo, output in zip(photos, outputs):
            styled = stylize_arbitrary(decoder, photo, styles, alpha=args.alpha, style_blend=args.style_blend,
                                       style_masks=masks, preserve_colors=args.preserve_colors, size=args.size,
                                       style_size=args.style_size)
            written = save_image(styled, output, protect=[*photos, net_path, *styles])
            print(f"wrote {os.fspath(written)} ({styled.shape[-1]}×{styled.shape[-2]})")
        return 0
    from .adain import DECODER_KIND

    if network.kind == DECODER_KIND:
        raise NSTError(f"{str(net_path)!r} is an AdaIN decoder: give it with --decoder and a --style")
    for photo, output in zip(photos, outputs):
        styled = stylize(network, photo, size=args.size, strength=args.strength,
                         preserve_colors=args.preserve_colors)
        written = save_image(styled, output, protect=[*photos, net_path])
        print(f"wrote {os.fspath(written)} ({styled.shape[-1]}×{styled.shape[-2]})")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``nstutil train`` or ``nstutil stylize`` (``argv`` starts with the sub-command); returns the exit
    status."""
    from .cli import _warning_line

    warnings.formatwarning = _warning_line
    args = build_parser().parse_args(argv)
    try:
        return _train(args) if args.command == "train" else _stylize(args)
    except NSTError as exc:
        print(f"nstutil: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nstutil: interrupted before training started; nothing written", file=sys.stderr)
        return 130
