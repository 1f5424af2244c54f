"""Which parametrisation reaches a given loss in fewest evaluations, with an exact start?

    python benchmarks/bench_parametrisation.py                 # 128 px, 300 evaluations, tutorial and gatys
    python benchmarks/bench_parametrisation.py --size 256 --steps 300 --json out.json

nstutil optimises a variable z and shows the network an image x(z) that cannot leave the box [0, 1] by more than
1/255. Three maps are compared on the same photos, recipes and random weights (pretrained ones cannot be had here),
by swapping nstutil.optimisation's pair of functions (squash, variable_for):
- stretched (now): x = (1 + 2/255) sigmoid(z) - 1/255; the start is reached to float rounding, black and white too;
- sigmoid (until 2026-11): x = sigmoid(z), the start moved 1/255 inside (0, 1), so the first loss is off;
- reflect: x = z folded back into [0, 1] at 0 and 1 (the identity inside); the start is exact.
A loss evaluation costs the same with each (a few element-wise operations on a 3-channel image), so quality per
evaluation is quality per second; the script also times the runs. It reports the loss after 50/100/200/all
evaluations and how many evaluations each needs to reach the final loss of the former sigmoid.
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
    "stretched": (optimisation.squash, optimisation.variable_for),
    "sigmoid": (torch.sigmoid, lambda image: torch.logit(image.clamp(EDGE, 1.0 - EDGE))),
    "reflect": (lambda z: torch.where(torch.remainder(z, 2.0) <= 1.0, torch.remainder(z, 2.0),
                                      2.0 - torch.remainder(z, 2.0)),
                lambda image: image.clamp(0.0, 1.0)),
}


def run(parametrisation: str, content, style, model, preset: str, steps: int, style_weight):
    optimisation.squash, optimisation.variable_for = PARAMETRISATIONS[parametrisation]
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
    names = list(PARAMETRISATIONS)
    print("preset   photo       | loss after 50 / 100 / 200 / all: " + " ; ".join(names)
          + " | evals to sigmoid's final: " + ", ".join(names) + " | s/run")
    for preset in args.presets.split(","):
        # Gatys' layers with random weights need a larger style weight to move at all (benchmarks/README.md).
        style_weight = 1e9 if preset == "gatys" else None
        for photo in args.photos.split(","):
            content = nstutil.load_image(nstutil.image_path(photo), args.size)
            curves, seconds = {}, {}
            for name in names:
                curves[name], seconds[name] = run(name, content, style, model, preset, args.steps, style_weight)
            marks = [m for m in (50, 100, 200) if m < args.steps] + [args.steps]

            def at(losses):
                return " / ".join(f"{min(losses[:m]):.4g}" for m in marks)

            to_sigmoid = {name: reached(curves[name], min(curves["sigmoid"])) for name in names}
            print(f"{preset:8} {photo:11} | " + " ; ".join(at(curves[n]) for n in names) + " | "
                  + ", ".join(str(to_sigmoid[n]) for n in names) + " | "
                  + ", ".join(f"{seconds[n]:.1f}" for n in names), flush=True)
            rows.append(dict(preset=preset, photo=photo, size=args.size, curves=curves, seconds=seconds,
                             evaluations_to_sigmoid_final=to_sigmoid))
    optimisation.squash, optimisation.variable_for = PARAMETRISATIONS["stretched"]
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(rows, stream)


if __name__ == "__main__":
    main()
