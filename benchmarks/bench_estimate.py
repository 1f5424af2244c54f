"""How close nstutil.estimate's time and memory estimates come to what runs then take.

Run from the repository root::

    python benchmarks/bench_estimate.py                       # 256, 512, 1024 px; Gatys and tutorial layers
    python benchmarks/bench_estimate.py --sizes 2048 --layers gatys --evals 2048:3

Each configuration runs in a fresh subprocess (so that its peak memory is its own): it reads its resident memory,
measures the speed (``estimate.measure_speed``: the short calibration run the command line makes), estimates the
run, then runs ``nstutil.style_transfer`` on the bundled images (square, random VGG19 weights) and reports the run's
wall time and its peak memory (``VmHWM`` growth since the imports, so the weights, the libraries' first-use memory and
the calibration are in it, as they are in the estimate). The time estimate is linear in the evaluations, so a
short run checks it as well as a long one. L-BFGS keeps at most one pair per evaluation, so the memory of a run of
fewer than 20 evaluations is estimated with that many pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LAYER_SETS = {
    "gatys": (["relu4_2"], ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]),
    "tutorial": (["conv_4"], ["conv_1", "conv_2", "conv_3", "conv_4", "conv_5"]),
}


def _kib(key):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1])
    raise KeyError(key)


def child(spec):
    """One configuration, in this (fresh) process; prints one JSON line."""
    import torch

    import nstutil
    from nstutil import estimate

    # What the command line has when it estimates: the libraries imported, nothing else yet.
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")                                          # VmHWM := VmRSS
    start_kib = _kib("VmRSS")

    content_layers, style_layers = LAYER_SETS[spec["layers"]]
    size, evals = spec["size"], spec["evals"]
    t0 = time.perf_counter()
    model = nstutil.load_vgg19(f"random:{spec['seed']}")
    speed = estimate.measure_speed(content_layers, style_layers, model=model, device="cpu")
    calibration_s = time.perf_counter() - t0
    # A short run fills fewer L-BFGS pairs than a long one (at most one per evaluation): estimate those it has.
    guess = estimate.estimate_run(size, size, evals, content_layers, style_layers, speed=speed,
                                  available=estimate.available_memory("cpu"),
                                  history_size=min(estimate.HISTORY_SIZE, evals))
    content = nstutil.load_image(nstutil.DEFAULT_CONTENT, (size, size))
    style = nstutil.load_image(nstutil.DEFAULT_STYLE, (size, size))
    t1 = time.perf_counter()
    result = nstutil.style_transfer(content, style, model=model, content_layers=content_layers,
                                    style_layers=style_layers, steps=evals, init="content", progress=False,
                                    style_weight=1e9 if spec["layers"] == "gatys" else 1e6)
    run_s = time.perf_counter() - t1
    elapsed = [r.elapsed for r in result.history]
    print(json.dumps(dict(
        size=size, layers=spec["layers"], evals=len(result.history), threads=torch.get_num_threads(),
        estimate_s=guess.seconds, run_s=run_s, calibration_s=calibration_s,
        per_eval_s=(elapsed[-1] - elapsed[1]) / (len(elapsed) - 2) if len(elapsed) > 2 else None,
        estimate_per_eval_s=speed.evaluation_seconds(estimate.evaluation_flops(size, size, content_layers,
                                                                               style_layers)),
        overhead_s=speed.overhead, gflops=1e-9 / speed.seconds_per_flop,
        estimate_mib=guess.memory / 2 ** 20, peak_mib=(_kib("VmHWM") - start_kib) / 1024,
        available_gib=guess.available / 2 ** 30 if guess.available else None, largest_side=guess.largest,
        load_after=os.getloadavg()[0])))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="256,512,1024", help="square sides in px (default 256,512,1024)")
    p.add_argument("--layers", default="gatys,tutorial", help="layer sets (default gatys,tutorial)")
    p.add_argument("--evals", default="256:40,512:20,1024:8,2048:3",
                   help="evaluations per run, SIZE:N pairs (default 256:40,512:20,1024:8,2048:3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random VGG19 weights")
    p.add_argument("--json", default=None, help="also write the results to this file")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    evals = {int(k): int(v) for k, v in (item.split(":") for item in args.evals.split(","))}
    print(f"command: python benchmarks/bench_estimate.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"load average at start: {os.getloadavg()}")
    rows = []
    env = dict(os.environ, NSTUTIL_WEIGHTS="random",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    for size in (int(s) for s in args.sizes.split(",")):
        for layers in (x.strip() for x in args.layers.split(",")):
            spec = dict(size=size, layers=layers, evals=evals.get(size, 5), seed=args.seed)
            out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                                 capture_output=True, text=True, env=env, cwd=str(ROOT))
            if out.returncode != 0:
                raise RuntimeError(f"child failed:\n{out.stderr[-3000:]}")
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"[{size}px {layers}] {row['evals']} evals: estimated {row['estimate_s']:.1f} s, took "
                  f"{row['run_s']:.1f} s ({row['estimate_s'] / row['run_s'] - 1:+.0%}); memory estimated "
                  f"{row['estimate_mib']:.0f} MiB, peak {row['peak_mib']:.0f} MiB "
                  f"({row['estimate_mib'] / row['peak_mib'] - 1:+.0%}); load {row['load_after']:.1f}", flush=True)
    print()
    print("| px | layers | evals | estimated s | run s | time error | per eval: estimated / measured s | "
          "estimated MiB | peak MiB | memory error |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['layers']} | {r['evals']} | {r['estimate_s']:.1f} | {r['run_s']:.1f} | "
              f"{r['estimate_s'] / r['run_s'] - 1:+.0%} | {r['estimate_per_eval_s']:.3f} / "
              f"{r['per_eval_s'] or float('nan'):.3f} | {r['estimate_mib']:.0f} | {r['peak_mib']:.0f} | "
              f"{r['estimate_mib'] / r['peak_mib'] - 1:+.0%} |")
    print(f"\nload average at end: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
