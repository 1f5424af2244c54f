"""What storing VGG19's weights as float16 (``python -m nstutil.weights export``) changes, on weights made here.

    python benchmarks/bench_weights_float16.py                     # 128 px, 300 evaluations, tutorial and gatys
    python benchmarks/bench_weights_float16.py --size 256 --json out.json

The shared file stores every weight rounded to float16 and nstutil loads it back as float32; the computation stays
float32. Pretrained weights cannot be downloaded here, so two kinds of weights are measured, each against its own
float16 round trip, with :func:`nstutil.weights.float16_effect` (the same as ``python -m nstutil.weights compare``):

- ``random:0``: torchvision's initialisation of VGG19 (Kaiming-normal weights, zero biases), seeded;
- ``wide-range``: the same weights with each layer multiplied by its own factor 10^u, u uniform in [-1, 1] (0.1x to
  10x), and biases drawn from N(0, 0.1²). float16 rounds every normal number to the same relative precision
  (2^-11), whatever its size; it loses relative precision only below 6.1e-5 (subnormal numbers) and overflows above
  65504. Trained weights span a wider range than the initialisation and have non-zero biases; this state dict puts
  weights at both ends of that range on purpose. It is not ImageNet's VGG19: with it, run
  ``python -m nstutil.weights compare --from imagenet`` instead.

For each: the largest change of any entry of every style layer's Gram matrix (content image), relative to the
largest entry; the relative change of the total loss after ``--steps`` evaluations of each preset; the mean and
largest change of the result's pixels in 8-bit levels. Also how many weights are subnormal in float16. As a
control, the same run (``tutorial``) with ``random:0``'s float32 weights nudged by a relative 2^-20 (256 times less
than float16's rounding): how much of the result's change is L-BFGS amplifying any difference at all. Use
``OMP_NUM_THREADS=1`` on a shared machine; nothing here is timed. Figures (128 px, 2026-11-23): notebooks/README.md,
"What float16 storage changes".
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Dict

import torch

from nstutil import DEFAULT_CONTENT, DEFAULT_STYLE, style_transfer
from nstutil.vgg import VGGFeatures, _make_features, load_vgg19
from nstutil.weights import float16_effect

FLOAT16_SMALLEST_NORMAL = 2.0 ** -14  # 6.1e-5


def wide_range_state(seed: int = 0) -> Dict[str, torch.Tensor]:
    """``random:seed``'s features with per-layer weight scales 10^U(-1, 1) and N(0, 0.1²) biases."""
    state = load_vgg19(f"random:{seed}").features.state_dict()
    generator = torch.Generator().manual_seed(1000 + seed)
    out = {}
    for key, value in state.items():
        if key.endswith(".weight"):
            out[key] = value * 10.0 ** (2 * torch.rand((), generator=generator).item() - 1)
        else:
            out[key] = 0.1 * torch.randn(value.shape, generator=generator)
    _make_features().load_state_dict(out)  # the layout the weights loader expects
    return out


def _subnormal_share(state: Dict[str, torch.Tensor]) -> float:
    weights = torch.cat([v.flatten() for k, v in state.items() if k.endswith(".weight")])
    small = (weights != 0) & (weights.abs() < FLOAT16_SMALLEST_NORMAL)
    return small.double().mean().item()


def nudged_control(size: int, steps: int) -> Dict[str, float]:
    """The tutorial run with random:0's weights against the same weights times (1 ± 2^-20), signs seeded."""
    state = load_vgg19("random:0").features.state_dict()
    generator = torch.Generator().manual_seed(7)
    nudged = {k: v * (1 + 2.0 ** -20 * (2 * torch.randint(0, 2, v.shape, generator=generator) - 1))
              for k, v in state.items()}
    models = []
    for weights in (state, nudged):
        features = _make_features()
        features.load_state_dict(weights)
        models.append(VGGFeatures(features, input_convention="imagenet", weights_name="random:0"))
    runs = [style_transfer(DEFAULT_CONTENT, DEFAULT_STYLE, preset="tutorial", size=size, steps=steps, model=m,
                           progress=False) for m in models]
    losses = [r.history[-1].total for r in runs]
    change = 255.0 * (runs[1].image - runs[0].image).abs()
    return {"loss tutorial": abs(losses[1] - losses[0]) / abs(losses[0]),
            "pixels mean tutorial": change.mean().item(), "pixels max tutorial": change.max().item()}


def _print(title: str, figures: Dict[str, float], args: argparse.Namespace) -> None:
    print(f"{title} ({args.size} px, {args.steps} evaluations)", flush=True)
    for key, value in figures.items():
        print(f"  {key:<30} {value:.3g}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128, help="image size in px (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=300, help="loss evaluations per run (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--control-only", action="store_true", help="only the nudged float32 control run")
    args = parser.parse_args()
    results = {"control: random:0 nudged by 2^-20": nudged_control(args.size, args.steps)}
    _print("control, random:0 in float32 nudged by 2^-20", results["control: random:0 nudged by 2^-20"], args)
    if not args.control_only:
        with tempfile.TemporaryDirectory() as folder:
            wide = Path(folder) / "wide-range.pth"
            torch.save(wide_range_state(), wide)
            for name, source in (("random:0", "random:0"), ("wide-range", str(wide))):
                state = load_vgg19(source).features.state_dict()
                effect = float16_effect(source, size=args.size, steps=args.steps)
                effect["weights subnormal in float16"] = _subnormal_share(state)
                effect["largest |weight|"] = max(v.abs().max().item() for v in state.values())
                results[name] = effect
                _print(f"{name}: float16 storage against float32", effect, args)
    if args.json:
        args.json.write_text(json.dumps({"size": args.size, "steps": args.steps, "results": results}, indent=1))


if __name__ == "__main__":
    main()
