"""The matrix-product floor of one loss evaluation: what it would cost if nothing but its products took time.

Run from the repository root::

    python benchmarks/bench_floor.py --sizes 256 --layers tutorial
    python benchmarks/bench_floor.py --sizes 128,256,512 --layers tutorial,gatys --against avx2_table.json

An evaluation's arithmetic is almost all in matrix products: each convolution up to the deepest loss layer, forward
and its input gradient (the network is frozen, so no weight gradients), and each style layer's Gram product and its
backward product (``benchmarks/flops.py`` counts them). This script times exactly those calls, one by one, on the
shapes, layouts (channels-last) and paths (matrix product or oneDNN convolution, the faster) nstutil uses, each on
warm caches and as the median of ``--repeats`` calls, and adds them up. The sum is a floor: ReLU, pooling, the
gradient sums, the loss terms and the optimiser's step come on top. With ``--against`` (a ``bench_speed.py --json``
file from the same machine) it prints, per configuration, the fastest any implementation of these products could
be against the tutorial's algorithm (baseline ms / floor ms), and how far above the floor nstutil runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import nstutil  # noqa: E402
from nstutil import fast  # noqa: E402
from nstutil.vgg import resolve_layer  # noqa: E402
from bench_speed import LAYER_SETS  # noqa: E402


def _median_ms(call, repeats):
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def floor_ms(size, layers_name, repeats):
    """{part: ms} for one evaluation at ``size`` px with the layer set ``layers_name``."""
    content_layers, style_layers = LAYER_SETS[layers_name]
    style_indices = {resolve_layer(n).index for n in style_layers}
    deepest = max(resolve_layer(n).index for n in content_layers + style_layers)
    model = nstutil.load_vgg19("random:0")
    x = model.normalize(torch.rand(1, 3, size, size)).contiguous(memory_format=torch.channels_last)
    parts = {"convolutions": 0.0, "input gradients": 0.0, "Gram products": 0.0, "Gram backward products": 0.0}
    with torch.no_grad(), fast.channels_last_weights(model, content_layers + style_layers):
        for index, module in enumerate(model.features[:deepest + 1]):
            if isinstance(module, torch.nn.Conv2d):
                w, b = module.weight, module.bias
                out = F.conv2d(x, w, b, padding=1)
                grad = torch.randn_like(out)
                parts["convolutions"] += _median_ms(lambda: F.conv2d(x, w, b, padding=1), repeats)
                parts["input gradients"] += _median_ms(lambda: torch.ops.aten.convolution_backward(
                    grad, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, False, False]), repeats)
                x = out
            else:
                x = module(x)
            if index in style_indices:
                c = x.shape[1]
                d_gram = torch.eye(c).unsqueeze(0)
                features = x
                parts["Gram products"] += min(
                    _median_ms(lambda: fast._gram_product(features, by), repeats) for by in (False, True))
                parts["Gram backward products"] += min(
                    _median_ms(lambda: fast._apply_product(features, d_gram, by), repeats) for by in (False, True))
    parts["total"] = sum(parts.values())
    return parts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="256", help="comma-separated image sizes, px (default 256)")
    parser.add_argument("--layers", default="tutorial", help="comma-separated layer sets: tutorial, gatys")
    parser.add_argument("--repeats", type=int, default=9, help="timed calls per product (median)")
    parser.add_argument("--against", type=Path, help="a bench_speed.py --json file measured on this machine")
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    measured = {}
    if args.against:
        for row in json.loads(args.against.read_text())["results"]:
            measured[(row["size"], row["layers"])] = row
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print("| px | layers | convolutions ms | input gradients ms | Gram ms | Gram backward ms | floor ms |"
          + (" baseline ms | nstutil ms | baseline / floor | nstutil above the floor |" if measured else ""))
    print("|---|---|---|---|---|---|---|" + ("---|---|---|---|" if measured else ""))
    for size in [int(s) for s in args.sizes.split(",")]:
        for layers_name in args.layers.split(","):
            p = floor_ms(size, layers_name, args.repeats)
            line = (f"| {size} | {layers_name} | {p['convolutions']:.1f} | {p['input gradients']:.1f} | "
                    f"{p['Gram products']:.1f} | {p['Gram backward products']:.1f} | {p['total']:.1f} |")
            row = measured.get((size, layers_name))
            if row:
                line += (f" {row['baseline_ms']:.1f} | {row['nstutil_ms']:.1f} | "
                         f"{row['baseline_ms'] / p['total']:.2f}× | "
                         f"{row['nstutil_ms'] - p['total']:.1f} ms ({row['nstutil_ms'] / p['total'] - 1:.0%}) |")
            print(line, flush=True)


if __name__ == "__main__":
    main()
