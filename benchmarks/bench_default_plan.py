"""Which default plan: one scale (300 evaluations) against coarse-to-fine, over several image pairs and weights.

    python benchmarks/bench_default_plan.py --sizes 256,512 --seeds 0,1 --json plan.json

For each size, image pair and VGG19 weight seed, the one-scale run (``--single`` evaluations at the size) and the
coarse-to-fine plan (128 px doubling up to the size, ``--per-scale`` evaluations at each) run in one process in turns
of one evaluation (bench_speed.py's lockstep), with the default recipe (the tutorial preset, content start). Each
side's clock is the sum of its own turns, so machine noise hits both alike. Reported per case:

- each side's final (best) loss at full size;
- the one-scale run's best loss at the moment the coarse-to-fine run finished (the same time spent): the default
  must never end worse than one scale given the same time;
- the coarse-to-fine run's time to the one-scale run's final loss, as a fraction of the one-scale run's time.

The default in nstutil.settings is chosen from this table (benchmarks/README.md, "The default plan").
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
from bench_coarse_to_fine import time_to  # noqa: E402
from bench_speed import lockstep, machine_description  # noqa: E402

PAIRS = [("chelsea", "mosaic"), ("astronaut", "brick"), ("coffee", "waves"), ("rocket", "hubble_deep_field"),
         ("grace_hopper", "mosaic")]


def coarse_to_fine(size: int) -> list:
    """128, 256, ... up to ``size`` (the sizes of the issue's measurement)."""
    scales = [128]
    while scales[-1] * 2 < size:
        scales.append(scales[-1] * 2)
    return scales + [size]


def runner(content, style, model, scales, steps):
    def run(report):
        nstutil.style_transfer(content, style, preset="tutorial", model=model, init="content", scales=scales,
                               steps=steps, progress=False,
                               callback=lambda event: report((event.record.total, event.record.scale)))
    return run


def best_until(clock, losses, size, seconds):
    """The lowest full-size loss evaluated by ``seconds`` on this run's clock (inf if none)."""
    return min((loss for t, (loss, scale) in zip(clock, losses) if scale == size and t <= seconds),
               default=math.inf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--pairs", type=int, default=len(PAIRS), help="how many of the image pairs")
    parser.add_argument("--single", type=int, default=300)
    parser.add_argument("--per-scale", type=int, default=150)
    parser.add_argument("--json")
    args = parser.parse_args()

    for line in machine_description():
        print(line, flush=True)
    rows = []
    print("| size | content / style | weights | one scale: final loss, s | coarse-to-fine: final loss, s | "
          "one scale's loss at c2f's end | c2f time to one scale's final |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for size in map(int, args.sizes.split(",")):
        scales = coarse_to_fine(size)
        for content_name, style_name in PAIRS[:args.pairs]:
            content = nstutil.load_image(nstutil.image_path(content_name), size)
            style = nstutil.load_image(nstutil.image_path(style_name), size)
            for seed in map(int, args.seeds.split(",")):
                model = nstutil.load_vgg19(f"random:{seed}")
                single, plan = lockstep([runner(content, style, model, [size], args.single),
                                         runner(content, style, model, scales, args.per_scale)],
                                        torch.device("cpu"))
                target = min(loss for loss, _ in single.losses)
                c2f_final = min(loss for loss, scale in plan.losses if scale == size)
                same_time = best_until(single.clock, single.losses, size, plan.clock[-1])
                reach = time_to(plan.clock, plan.losses, size, target)
                row = dict(size=size, content=content_name, style=style_name, seed=seed, single=target,
                           single_seconds=single.clock[-1], c2f=c2f_final, c2f_seconds=plan.clock[-1],
                           single_at_c2f_end=same_time,
                           c2f_to_single_final=reach / single.clock[-1] if not math.isnan(reach) else None)
                rows.append(row)
                ratio = "not reached" if row["c2f_to_single_final"] is None else f"{row['c2f_to_single_final']:.2f}x"
                verdict = "c2f better" if c2f_final < same_time else "one scale better"
                print(f"| {size} | {content_name} / {style_name} | random:{seed} | {target:.5g}, "
                      f"{single.clock[-1]:.0f} | {c2f_final:.5g}, {plan.clock[-1]:.0f} | {same_time:.5g} "
                      f"({verdict}) | {ratio} |", flush=True)
    worse = [r for r in rows if r["c2f"] > r["single_at_c2f_end"]]
    print(f"\ncoarse-to-fine ended worse than one scale given the same time in {len(worse)} of {len(rows)} cases; "
          f"did not reach the one-scale final loss in "
          f"{sum(r['c2f_to_single_final'] is None for r in rows)} of {len(rows)}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
