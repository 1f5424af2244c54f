"""Feed-forward style transfer (issue 19): the network's loss against L-BFGS on held-out photos, and its speed.

    python benchmarks/bench_feed_forward.py                                  # the full run: 128 px, 20 min
    python benchmarks/bench_feed_forward.py --size 64 --minutes 1 --pass-sizes 256,512 --json out.json
    python benchmarks/bench_feed_forward.py --device cuda --size 256 --minutes 5    # on a GPU

What is measured (every figure is a loss or a time; random VGG19 weights are fine, see benchmarks/README.md):

1. **Optimisation levels.** For each held-out photo (the bundled set holds out chelsea and coffee), resized so its
   longer side is ``--size``, L-BFGS from the photo (``nstutil.style_transfer``, the tutorial recipe) for the
   largest of ``--levels`` evaluations; the level for N evaluations is the mean over the photos of the best loss
   after N evaluations. Johnson et al. (Fig. 5) report their networks reach the loss of 50 to 100 L-BFGS iterations.
2. **Training to those levels.** ``nstutil.feed_forward``'s network trained on the other bundled photos at
   ``--size`` px, batch ``--batch``, for ``--minutes`` of training time; every ``--eval-every`` seconds of training
   the held-out loss (the mean loss of the network's clamped outputs for the same photos, with the same objective)
   is measured, off the training clock. Reported: the training time to each level (target: the 50-evaluation level
   within 20 minutes at 128 px on the 2-core CPU). ``--plot`` draws held-out loss against training time with the
   levels as lines.
3. **Speed.** One pass of the network at each of ``--pass-sizes`` (longer side; the fastest of 5 after a warm-up)
   against one optimisation evaluation (forward and backward through VGG19) at the same size, and, at the first
   size, a whole L-BFGS run until it reaches the network's loss there (target: 1024 px in under 2 s on the 2-core
   CPU). Johnson et al.'s Table 1 (Titan X): 0.015 s against 9.52 s for 300 iterations at 256 px.
4. **Peak memory** of one training step (batch 4 at 256 px) and of styling at the largest pass size: the process's
   peak resident memory above what it held before (Linux ``VmHWM``, reset first), or CUDA's peak allocation.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402

import nstutil  # noqa: E402
from nstutil.feed_forward import held_out_loss, stylize  # noqa: E402
from nstutil.photos import PhotoCrops, find_photos  # noqa: E402
from nstutil.training import train  # noqa: E402
from nstutil.transformer_net import WIDTHS, TransformerNet  # noqa: E402


def _peak_memory_of(fn, device: torch.device) -> float:
    """MiB of peak memory ``fn()`` needs above what the process (or the GPU) holds before it."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated(device) - before) / 2 ** 20
    status = Path("/proc/self/status")
    if not status.exists():
        return math.nan

    def field(name: str) -> float:
        for line in status.read_text().splitlines():
            if line.startswith(name):
                return float(line.split()[1]) / 1024
        return math.nan

    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size
    except OSError:
        return math.nan
    before = field("VmRSS:")
    fn()
    return field("VmHWM:") - before


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _fastest_time(fn, device: torch.device, repeats: int = 5) -> float:
    """The fastest of ``repeats`` runs after a warm-up: on a shared machine, the run no other process slowed."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def optimisation_levels(photos, style, model, levels):
    """Mean over ``photos`` of L-BFGS's best loss after each number of evaluations in ``levels``; seconds per
    evaluation."""
    best_at = {n: [] for n in levels}
    seconds = []
    for photo in photos:
        start = time.perf_counter()
        run = nstutil.style_transfer(photo, style, steps=max(levels), model=model, progress=False)
        seconds.append((time.perf_counter() - start) / len(run.history))
        totals = [r.total for r in run.history]
        for n in levels:
            best_at[n].append(min(totals[:n]))
    return {n: statistics.mean(v) for n, v in best_at.items()}, statistics.mean(seconds)


def training_curve(loss, model, training, held_out, args, device):
    """Train until ``--minutes`` of training time, measuring the held-out loss every ``--eval-every`` seconds."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        net = TransformerNet(args.network).to(device)
    crops = PhotoCrops(training, args.size, seed=args.seed)
    held = [p.to(device) for p in held_out]
    curve = [(0.0, 0, _held_out(net, loss, held))]
    spent = {"eval": 0.0, "next": args.eval_every}

    def callback(step):
        training_time = step.elapsed - spent["eval"]
        if training_time >= spent["next"] or training_time >= args.minutes * 60:
            start = time.perf_counter()
            curve.append((training_time, step.step, _held_out(net, loss, held)))
            net.train()
            spent["eval"] += time.perf_counter() - start
            spent["next"] = training_time + args.eval_every
            print(f"  {training_time:7.1f} s, step {step.step:5d}: held-out loss {curve[-1][2]:.4g}", flush=True)
        return training_time >= args.minutes * 60

    result = train(net, lambda n, batch: loss(n(batch), batch), lambda k: crops.batch(k, args.batch),
                   steps=10 ** 9, callback=callback, progress=False)
    return net, curve, result


def _held_out(net, loss, photos):
    return statistics.mean(held_out_loss(net, loss, p) for p in photos)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="training and comparison size (default 128)")
    parser.add_argument("--minutes", type=float, default=20.0, help="training time budget (default 20)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--eval-every", type=float, default=30.0, help="seconds of training between held-out "
                                                                        "measurements (default 30)")
    parser.add_argument("--levels", default="10,50,100", help="L-BFGS evaluation counts (default 10,50,100)")
    parser.add_argument("--pass-sizes", default="256,512,1024", help="longer sides for the speed table")
    parser.add_argument("--weights", default="random:0", help="VGG19 weights (default random:0)")
    parser.add_argument("--style", default="mosaic")
    parser.add_argument("--network", default="johnson", choices=sorted(WIDTHS), help="the network's widths")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--plot", help="write held-out loss against training time here (.png)")
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.levels.split(",")]
    pass_sizes = [int(n) for n in args.pass_sizes.split(",")]
    device = torch.device(args.device)
    model = nstutil.load_vgg19(args.weights, device=device)
    style_path = nstutil.image_path(args.style, role="style image")
    style = nstutil.load_image(style_path, args.size)
    loss = nstutil.PerceptualLoss(style_path, model=model, style_size=args.size)
    training, kept_out = find_photos().split()
    held_out = [nstutil.load_image(p, args.size) for p in kept_out]
    # Memory first, while the process holds little: later runs leave freed memory that the allocator reuses.
    # The network's weights do not change its memory, so an untrained one serves.
    memory_net = TransformerNet(args.network).to(device)
    batch = PhotoCrops(training, 256, seed=0).batch(0, 4).to(device)
    train_loss = nstutil.PerceptualLoss(style_path, model=model, style_size=256)
    memory_train = _peak_memory_of(lambda: train_loss(memory_net(batch), batch).total.backward(), device)
    big = nstutil.load_image(nstutil.DEFAULT_CONTENT, pass_sizes[-1]).to(device)
    memory_style = _peak_memory_of(lambda: stylize(memory_net, big), device)
    del memory_net, batch, train_loss, big
    machine = (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {device}, "
               f"{args.network} network")
    print(f"{machine}; {args.weights} weights; {args.size} px; held out: {', '.join(p.name for p in kept_out)}")
    print(f"peak memory: a training step at 256 px, batch 4: {memory_train:.0f} MiB; styling at "
          f"{pass_sizes[-1]} px: {memory_style:.0f} MiB")

    level, seconds_per_eval = optimisation_levels(held_out, style, model, levels)
    for n in levels:
        print(f"L-BFGS {n:4d} evaluations: mean held-out loss {level[n]:.4g} ({n * seconds_per_eval:.2f} s a photo)")

    print(f"training at {args.size} px, batch {args.batch}, for {args.minutes:g} min of training time:")
    net, curve, result = training_curve(loss, model, training, held_out, args, device)
    reached = {}
    for n in levels:
        hit = next(((t, s) for t, s, value in curve if value <= level[n]), None)
        reached[n] = hit
        print(f"  the {n}-evaluation level: " + (f"after {hit[0]:.0f} s of training ({hit[1]} steps)" if hit
                                                else "not reached"))
    steps_per_second = result.steps / max(curve[-1][0], 1e-9)

    net.eval()
    speed = []
    for k, side in enumerate(pass_sizes):
        photo = nstutil.load_image(nstutil.DEFAULT_CONTENT, side).to(device)
        pass_s = _fastest_time(lambda: stylize(net, photo), device)
        side_loss = nstutil.PerceptualLoss(style_path, model=model, style_size=side)
        image = photo.clone().requires_grad_(True)

        def evaluation():
            image.grad = None
            side_loss(image, photo).total.backward()

        eval_s = _fastest_time(evaluation, device, repeats=2)
        row = {"px": side, "pass_s": pass_s, "evaluation_s": eval_s}
        if k == 0:
            target = side_loss(stylize(net, photo).to(device), photo).total.item()
            totals = []
            start = time.perf_counter()
            run = nstutil.style_transfer(photo.cpu(), style_path, steps=300, model=model, style_size=side,
                                         progress=False, callback=lambda e: (totals.append(e.record.total)
                                                                             or e.record.total <= target))
            row.update(network_loss=target, optimisation_to_that_loss_s=time.perf_counter() - start,
                       optimisation_evaluations=len(run.history), optimisation_reached=min(totals) <= target)
        speed.append(row)
        extra = ""
        if "network_loss" in row:
            extra = (f"; L-BFGS to the network's loss {row['network_loss']:.4g}: "
                     f"{row['optimisation_evaluations']} evaluations, {row['optimisation_to_that_loss_s']:.1f} s"
                     + ("" if row["optimisation_reached"] else " (not reached in 300)"))
        print(f"{side:5d} px: one pass {pass_s:.3f} s, one optimisation evaluation {eval_s:.3f} s{extra}")


    figures = {"machine": machine, "weights": args.weights, "size": args.size, "batch": args.batch,
               "levels": level, "lbfgs_seconds_per_evaluation": seconds_per_eval,
               "curve": [{"seconds": t, "step": s, "held_out_loss": v} for t, s, v in curve],
               "time_to_level": {n: (hit[0] if hit else None) for n, hit in reached.items()},
               "steps_per_second": steps_per_second, "speed": speed, "memory_mib": {
                   "train_256_batch4": memory_train, f"stylize_{pass_sizes[-1]}": memory_style}}
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([t / 60 for t, _, _ in curve], [v for _, _, v in curve], "o-", markersize=3, label="network")
        # One line style per level, named in the legend: the 50- and 100-evaluation levels lie too close together
        # for labels on the lines.
        for n, style in zip(levels, ["--", "-.", ":", (0, (5, 1, 1, 1, 1, 1))] * len(levels)):
            ax.axhline(level[n], linestyle=style, linewidth=0.9, color="grey",
                       label=f"L-BFGS, {n} evaluations ({level[n]:.3g})")
        ax.legend(fontsize=7, loc="upper right")
        ax.set_yscale("log")
        ax.set_xlabel("training time (min)")
        ax.set_ylabel("mean held-out loss")
        ax.set_title(f"{args.size} px, batch {args.batch}, {machine}", fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
