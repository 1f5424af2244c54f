"""What the light style network costs in loss: the paper's widths against half of them, trained side by side.

    python benchmarks/bench_network_widths.py --steps 400 --json widths.json

Both networks (:data:`nstutil.transformer_net.WIDTHS`) start from the same seed and see the same crops of the
bundled training photos (``--size`` px, batch ``--batch``), with the same perceptual loss (the tutorial recipe) and
Adam; they take their steps in turns (one step each), so a busy machine slows both alike. Every ``--every`` steps,
off the clock, each network's held-out loss (the mean loss of its styled held-out photos, as
``benchmarks/bench_feed_forward.py`` measures it) is printed; each network's step times are summed on its own clock
(the median step is the figure to compare, a quiet machine's). Random VGG19 weights serve: every figure is a loss.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402

import nstutil  # noqa: E402
from nstutil.feed_forward import held_out_loss  # noqa: E402
from nstutil.photos import PhotoCrops, find_photos  # noqa: E402
from nstutil.transformer_net import WIDTHS, TransformerNet  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weights", default="random:0")
    parser.add_argument("--style", default="mosaic")
    parser.add_argument("--json")
    args = parser.parse_args(argv)

    model = nstutil.load_vgg19(args.weights)
    loss = nstutil.PerceptualLoss(nstutil.image_path(args.style, role="style image"), model=model,
                                  style_size=args.size)
    training, kept_out = find_photos().split()
    crops = PhotoCrops(training, args.size, seed=0)
    held = [nstutil.load_image(p, args.size) for p in kept_out]
    nets, optimisers, step_times = {}, {}, {}
    for name in WIDTHS:
        torch.manual_seed(0)
        nets[name] = TransformerNet(name)
        optimisers[name] = torch.optim.Adam(nets[name].parameters(), lr=args.lr)
        step_times[name] = []
    curve = {name: [] for name in WIDTHS}
    print(f"{torch.get_num_threads()} threads; {args.size} px, batch {args.batch}; {len(training)} training photos, "
          f"held out: {', '.join(p.name for p in kept_out)}", flush=True)
    for step in range(1, args.steps + 1):
        batch = crops.batch(step - 1, args.batch)
        for name, net in nets.items():
            start = time.perf_counter()
            optimisers[name].zero_grad()
            loss(net(batch), batch).total.backward()
            optimisers[name].step()
            step_times[name].append(time.perf_counter() - start)
        if step % args.every == 0 or step == args.steps:
            for name, net in nets.items():
                curve[name].append((step, statistics.mean(held_out_loss(net, loss, p) for p in held)))
                net.train()
            print(f"step {step:5d}: held-out loss " + ", ".join(
                f"{name} {curve[name][-1][1]:.4g}" for name in WIDTHS), flush=True)
    for name in WIDTHS:
        print(f"{name}: median step {statistics.median(step_times[name]):.3f} s, "
              f"{sum(step_times[name]):.0f} s on its clock", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "curve": curve, "median_step_s": {
            name: statistics.median(times) for name, times in step_times.items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
