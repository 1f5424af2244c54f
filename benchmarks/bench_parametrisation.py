"""Does the exact-start parametrisation cost quality per evaluation? Reflection (now) against sigmoid (until 2026-11).

    python benchmarks/bench_parametrisation.py                 # 128 px, 300 evaluations, tutorial and gatys
    python benchmarks/bench_parametrisation.py --size 256 --steps 300 --json out.json

nstutil optimises a variable z and shows the network x = reflect(z) (the identity inside [0, 1]); until 2026-11 it
used x = sigmoid(z), starting from the start image moved 1/255 inside (0, 1). Both are run here, on the same photos,
recipes and random weights (pretrained ones cannot be had here), by swapping nstutil.optimisation's pair of
functions (reflect, variable_for). A loss evaluation costs the same with either (the map is a few element-wise
operations on a 3-channel image), so quality per evaluation is quality per second; the script also times both.
It reports the loss after 50/100/200/all evaluations and how many evaluations each needs to reach the other's final
loss.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import nstutil
from nstutil import optimisation

EDGE = 1.0 / 255.0
PARAMETRISATIONS = {
    "reflect": (optimisation.reflect, optimisation.variable_for),
    "sigmoid": (torch.sigmoid, lambda image: torch.logit(image.clamp(EDGE, 1.0 - EDGE))),
}


def run(parametrisation: str, content, style, model, preset: str, steps: int, style_weight):
    optimisation.reflect, optimisation.variable_for = PARAMETRISATIONS[parametrisation]
    kwargs = dict(preset=preset, steps=steps, model=model, progress=False)
    if style_weight is not None:
        kwargs["style_weight"] = style_weight
    start = time.perf_counter()
    result = nstutil.style_transfer(content, style, **kwargs)
    seconds = time.perf_counter() - start
    return [r.total for r in result.history], seconds


def reached(losses, target):
    """Evaluations needed to reach ``target`` (None if never)."""
    best = float("inf")
    for n, loss in enumerate(losses, start=1):
        best = min(best, loss)
        if best <= target:
            return n
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--photos", default="chelsea,astronaut,coffee")
    parser.add_argument("--presets", default="tutorial,gatys")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = nstutil.load_vgg19("random")
    style = nstutil.load_image(nstutil.DEFAULT_STYLE, args.size)
    rows = []
    print(f"{args.size} px, {args.steps} evaluations, random:0 weights, torch {torch.__version__}")
    print("preset   photo       | loss after 50 / 100 / 200 / all: reflect ; sigmoid"
          " | evals to the other's final: reflect, sigmoid | s/run reflect, sigmoid")
    for preset in args.presets.split(","):
        # Gatys' layers with random weights need a larger style weight to move at all (benchmarks/README.md).
        style_weight = 1e9 if preset == "gatys" else None
        for photo in args.photos.split(","):
            content = nstutil.load_image(nstutil.image_path(photo), args.size)
            curves, seconds = {}, {}
            for name in ("reflect", "sigmoid"):
                curves[name], seconds[name] = run(name, content, style, model, preset, args.steps, style_weight)
            marks = [m for m in (50, 100, 200) if m < args.steps] + [args.steps]

            def at(losses):
                return " / ".join(f"{min(losses[:m]):.4g}" for m in marks)

            to_other = (reached(curves["reflect"], min(curves["sigmoid"])),
                        reached(curves["sigmoid"], min(curves["reflect"])))
            print(f"{preset:8} {photo:11} | {at(curves['reflect'])} ; {at(curves['sigmoid'])} | "
                  f"{to_other[0]}, {to_other[1]} | {seconds['reflect']:.1f}, {seconds['sigmoid']:.1f}", flush=True)
            rows.append(dict(preset=preset, photo=photo, size=args.size, curves=curves, seconds=seconds,
                             reflect_to_sigmoid_final=to_other[0], sigmoid_to_reflect_final=to_other[1]))
    optimisation.reflect, optimisation.variable_for = PARAMETRISATIONS["reflect"]
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(rows, stream)


if __name__ == "__main__":
    main()
