"""AdaIN (issue 20): the decoder's loss against L-BFGS with the same objective on held-out pairs, and its speed.

    python benchmarks/bench_adain.py                                   # the full run: 128 px, 20 min of training
    python benchmarks/bench_adain.py --size 64 --minutes 0.5 --pass-sizes 256,512 --json out.json   # a smoke run
    python benchmarks/bench_adain.py --device cuda --size 256 --minutes 5 --pass-sizes 256,512,1024

What is measured (losses and times; random VGG19 weights serve, see benchmarks/README.md):

1. **Optimisation levels.** For each held-out (photo, style) pair (bundled: chelsea and coffee × the held-out style),
   at ``--size`` px, L-BFGS on the picture itself from the photo, minimising the paper's loss
   (:class:`nstutil.adain_training.AdaINLoss`: relu4_1 against the AdaIN target + 10 × mean/std at relu1_1…relu4_1)
   — the same number the decoder is trained on; the level for N evaluations is the mean over pairs of the best loss
   after N evaluations (``--levels``).
2. **Training to those levels.** The decoder trained on the other photos and styles at ``--size`` px, batch
   ``--batch``, for ``--minutes``; every ``--eval-every`` seconds of training the held-out loss (clamped outputs,
   off the training clock). Reported: the training time to each level, and the curve (``--json``).
3. **Speed.** One stylisation (encode photo and style, AdaIN, decode) at each of ``--pass-sizes`` (longer side of
   photo and style; the fastest of 3 after a warm-up), and training steps per second. The paper (Pascal Titan X): 56
   images/s at 256 px, 15 at 512.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402

import nstutil  # noqa: E402
from nstutil.adain import Decoder, stylize_arbitrary  # noqa: E402
from nstutil.adain_training import BUNDLED_STYLES, AdaINLoss, held_out_pairs_loss  # noqa: E402
from nstutil.images import IMAGES_DIR, image_path, load_image  # noqa: E402
from nstutil.photos import PhotoCrops, find_photos, split_photos  # noqa: E402
from nstutil.training import train  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def lbfgs_levels(loss: AdaINLoss, contents: torch.Tensor, styles: torch.Tensor, levels) -> dict:
    """Mean over pairs of the best loss after each number of L-BFGS evaluations, optimising the picture."""
    best_at = {n: [] for n in levels}
    seconds = []
    for i in range(contents.shape[0]):
        for j in range(styles.shape[0]):
            photo, style = contents[i:i + 1].to(loss.device), styles[j:j + 1].to(loss.device)
            x = photo.clone().requires_grad_(True)
            optimiser = torch.optim.LBFGS([x], lr=1.0, max_iter=max(levels), history_size=100,
                                          line_search_fn="strong_wolfe")
            trace = []

            def closure():
                optimiser.zero_grad()
                value = loss(lambda _target: x, photo, style).total  # the "decoder" is the picture itself
                value.backward()
                trace.append(value.item())
                return value

            start = time.perf_counter()
            while len(trace) < max(levels):
                before = len(trace)
                optimiser.step(closure)
                if len(trace) == before:
                    break
            seconds.append(time.perf_counter() - start)
            for n in levels:
                best_at[n].append(min(trace[:n]))
    return {"levels": {n: statistics.mean(v) for n, v in best_at.items()}, "seconds_per_pair": statistics.mean(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--eval-every", type=float, default=30.0, help="seconds of training between evaluations")
    parser.add_argument("--levels", default="10,50,100")
    parser.add_argument("--pass-sizes", default="256,512,1024")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--weights", default="random:0")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="write every figure here")
    args = parser.parse_args()
    device = torch.device(args.device)
    levels = [int(x) for x in args.levels.split(",")]
    vgg = nstutil.load_vgg19(args.weights, device=device)
    loss = AdaINLoss(vgg)
    photos = find_photos(None)
    train_photos, kept_photos = photos.split()
    train_styles, kept_styles = split_photos([IMAGES_DIR / n for n in BUNDLED_STYLES], 0.2)
    contents = PhotoCrops(kept_photos, args.size).fixed()
    styles = PhotoCrops(kept_styles, args.size).fixed()
    report = {"machine": platform.platform(), "device": str(device), "threads": torch.get_num_threads(),
              "size": args.size, "batch": args.batch, "weights": vgg.weights_name}

    report["lbfgs"] = lbfgs_levels(loss, contents, styles, levels)
    print(f"L-BFGS levels at {args.size} px: {report['lbfgs']}", flush=True)

    torch.manual_seed(0)
    decoder = Decoder().to(device)
    photo_crops, style_crops = PhotoCrops(train_photos, args.size), PhotoCrops(train_styles, args.size, seed=1)
    curve = [(0.0, 0, held_out_pairs_loss(decoder, loss, contents, styles))]
    clock = {"next": args.eval_every, "off": 0.0}  # "off": seconds spent evaluating, kept off the training clock

    def evaluate(step) -> bool:
        trained_for = step.elapsed - clock["off"]
        if trained_for >= clock["next"]:
            clock["next"] += args.eval_every
            start = time.perf_counter()
            curve.append((trained_for, step.step, held_out_pairs_loss(step.model, loss, contents, styles)))
            clock["off"] += time.perf_counter() - start
            print(f"  {trained_for:7.1f} s, step {step.step}: held-out loss {curve[-1][2]:.4g}", flush=True)
        return trained_for >= args.minutes * 60

    result = train(decoder, lambda d, batch: loss(d, *batch),
                   lambda k: (photo_crops.batch(k, args.batch), style_crops.batch(k, args.batch)),
                   steps=10 ** 9, lr=args.lr, callback=evaluate, progress=False)
    if curve[-1][1] != result.steps:  # (an evaluation at the last step already measured it)
        curve.append((result.seconds - clock["off"], result.steps, held_out_pairs_loss(decoder, loss, contents,
                                                                                        styles)))
    seconds = curve[-1][0]
    report["curve"] = curve
    report["steps_per_second"] = result.steps / seconds
    report["time_to_level"] = {n: next((t for t, _, h in curve if h <= level), None)
                               for n, level in report["lbfgs"]["levels"].items()}
    print(f"training: {result.steps} steps in {seconds:.1f} s ({report['steps_per_second']:.3g} steps/s); "
          f"held-out {curve[0][2]:.4g} -> {curve[-1][2]:.4g}; time to levels {report['time_to_level']}", flush=True)

    speed = {}
    for px in (int(x) for x in args.pass_sizes.split(",")):
        photo = load_image(image_path("chelsea"), px)
        style = load_image(image_path("waves"), px)
        times = []
        for _ in range(4):
            _sync(device)
            start = time.perf_counter()
            stylize_arbitrary(decoder, photo, style, model=vgg)
            _sync(device)
            times.append(time.perf_counter() - start)
        speed[px] = min(times[1:])  # the fastest after a warm-up: on a shared machine, the run nothing slowed
        print(f"one stylisation at {px} px: {speed[px]:.3f} s ({1 / speed[px]:.3g} images/s)", flush=True)
    report["stylise_seconds"] = speed
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
