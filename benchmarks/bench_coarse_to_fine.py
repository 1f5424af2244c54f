"""Time to quality: coarse-to-fine (``scales=``) against one scale, in lockstep, loss against seconds.

    python benchmarks/bench_coarse_to_fine.py --size 512 --layers gatys --single 300 --plans 128,256,512:100,100,100
    python benchmarks/bench_coarse_to_fine.py --size 256 --layers tutorial --single 300 --plans 128,256:150,150
    python benchmarks/bench_coarse_to_fine.py ... --json out.json --plot out.png

The single-scale run (``--single`` evaluations at ``--size``) and each coarse-to-fine plan (``SCALES:STEPS``) run in
one process, in turns of one loss evaluation each (bench_speed.py's lockstep), on the same seeded random VGG19,
photos and recipe. Each side's clock is the sum of its own turns, so machine noise hits every side alike. A
coarse-to-fine run's loss at a coarse scale is another problem's loss; only its evaluations at the full size count
towards "time to quality": the clock at its first full-size evaluation whose loss is at most the single run's final
(best) loss. The target of issue 12 is <= 0.4x of the single run's time at 512 px with Gatys's layers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import torch  # noqa: E402

import nstutil  # noqa: E402
from bench_speed import LAYER_SETS, STYLE_WEIGHTS, lockstep, machine_description  # noqa: E402


def parse_plan(text: str):
    """``"128,256,512:100,100,100"`` -> ([128, 256, 512], [100, 100, 100])."""
    scales, steps = text.split(":")
    return [int(s) for s in scales.split(",")], [int(n) for n in steps.split(",")]


def runner(content, style, model, layers, style_weight, scales, steps):
    content_layers, style_layers = layers

    def run(report):
        def callback(event):
            report((event.record.total, event.record.scale))

        nstutil.style_transfer(content, style, preset="tutorial", model=model, content_layers=content_layers,
                               style_layers=style_layers, style_weight=style_weight, content_weight=1.0,
                               tv_weight=0.0, convention="tutorial", init="content", scales=scales, steps=steps,
                               callback=callback, progress=False)

    return run


def time_to(clock, losses, size, target):
    """Own-clock seconds at the first full-size evaluation with loss <= target (nan if never)."""
    for seconds, (loss, scale) in zip(clock, losses):
        if scale == size and loss <= target:
            return float(seconds)
    return math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--layers", choices=sorted(LAYER_SETS), default="gatys")
    parser.add_argument("--single", type=int, default=300, help="evaluations of the single-scale run")
    parser.add_argument("--plans", nargs="+", default=["128,256,512:100,100,100"], help="SCALES:STEPS, one or more")
    parser.add_argument("--content", default="chelsea")
    parser.add_argument("--style", default="mosaic")
    parser.add_argument("--json")
    parser.add_argument("--plot")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = nstutil.load_vgg19("random")
    content = nstutil.load_image(nstutil.image_path(args.content), args.size)
    style = nstutil.load_image(nstutil.image_path(args.style), args.size)
    layers, style_weight = LAYER_SETS[args.layers], STYLE_WEIGHTS[args.layers]
    plans = [([args.size], [args.single])] + [parse_plan(p) for p in args.plans]
    names = [f"{'+'.join(map(str, s))} px: {'+'.join(map(str, n))} evaluations" for s, n in plans]
    logs = lockstep([runner(content, style, model, layers, style_weight, s, n) for s, n in plans],
                    torch.device("cpu"))

    for line in machine_description():
        print(line)
    print(f"{args.size} px, {args.layers} layers (style weight {style_weight:g}), random:0 weights, "
          f"{args.content} / {args.style}, content start")
    single = logs[0]
    target = min(loss for loss, _ in single.losses)
    single_time = single.clock[-1]
    print("| run | seconds | final loss (full size) | seconds to the single run's final loss | ratio |")
    print("|---|---|---|---|---|")
    rows = []
    for name, (scales, _), log in zip(names, plans, logs):
        full = [loss for loss, scale in log.losses if scale == args.size]
        reach = time_to(log.clock, log.losses, args.size, target)
        reached = "not reached | –" if math.isnan(reach) else f"{reach:.1f} | {reach / single_time:.2f}x"
        print(f"| {name} | {log.clock[-1]:.1f} | {min(full):.5g} ({100 * (min(full) / target - 1):+.1f} %) | "
              f"{reached} |")
        rows.append(dict(name=name, scales=scales, clock=log.clock, losses=log.losses, final=min(full),
                         seconds=log.clock[-1], to_target=reach))
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(dict(size=args.size, layers=args.layers, target=target, rows=rows), stream)
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4))
        for row in rows:
            points = [(t, loss) for t, (loss, scale) in zip(row["clock"], row["losses"]) if scale == args.size]
            ax.plot(*zip(*points), label=row["name"])
        ax.axhline(target, color="grey", linestyle=":", label="single run's final loss")
        ax.set_yscale("log")
        ax.set_xlabel("seconds (each run's own clock, lockstep)")
        ax.set_ylabel(f"total loss at {args.size} px")
        ax.set_title(f"{args.size} px, {args.layers} layers, random weights: loss at full size against time",
                     fontsize=9)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
