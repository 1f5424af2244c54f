"""PyTorch's threads on a busy CPU: a run as a notebook cell makes it, before and after nstutil.threads.

    python benchmarks/bench_threads.py                 # 128 px, 100 evaluations, 1 competing busy process
    python benchmarks/bench_threads.py --evals 30 --busy 0,1 --json threads.json

Each case runs in a fresh Python process (PyTorch's thread setting is per process), with seeded random weights,
``nstutil.style_transfer`` at ``--size`` px for ``--evals`` evaluations, while ``--busy`` other processes spin
on the CPU (plain Python loops started by this script and stopped after each case). Cases:

- ``default``: PyTorch's own thread count (one per core), the run in the main thread, as a notebook cell ran it;
- ``thread``: the same in a background ``threading.Thread``, as the playground's Run button ran it;
- ``free cores``: ``nstutil.threads.use_free_cores()`` first (what ``nstutil.lesson.setup()`` now does), then
  the run in the main thread;
- ``1 thread``: ``torch.set_num_threads(1)``, for reference.

Prints one table of seconds per run (median of ``--repeats``) and the threads used. The machine's other load
(other users) adds to the competing processes; run it twice and compare.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CASE_CODE = r"""
import sys, threading, time, json
import torch
import nstutil
from nstutil.threads import use_free_cores
case, size, evals = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if case == "free cores":
    use_free_cores()
elif case == "1 thread":
    torch.set_num_threads(1)
model = nstutil.load_vgg19("random")
def run():
    return nstutil.style_transfer(nstutil.DEFAULT_CONTENT, nstutil.DEFAULT_STYLE, size=size, steps=evals,
                                  model=model, progress=False)
run_small = lambda: nstutil.style_transfer(nstutil.DEFAULT_CONTENT, nstutil.DEFAULT_STYLE, size=32, steps=2,
                                           model=model, progress=False)
run_small()  # warm-up: first-call costs are not what is measured
box = {}
start = time.perf_counter()
if case == "thread":
    worker = threading.Thread(target=lambda: box.setdefault("r", run()))
    worker.start(); worker.join()
else:
    run()
print(json.dumps({"seconds": time.perf_counter() - start, "threads": torch.get_num_threads()}))
"""

CASES = ["default", "thread", "free cores", "1 thread"]


def spinners(count: int) -> list:
    """``count`` processes that keep one core busy each (stopped by the caller)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def run_case(case: str, size: int, evals: int, busy: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("NSTUTIL_THREADS", None)
    env.pop("OMP_NUM_THREADS", None)
    procs = spinners(busy)
    try:
        time.sleep(1.0 if busy else 0.0)  # let the spinners take their cores before the free-core count looks
        out = subprocess.run([sys.executable, "-c", CASE_CODE, case, str(size), str(evals)], env=env,
                             capture_output=True, text=True)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    if out.returncode != 0:
        raise SystemExit(f"case {case!r} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--evals", type=int, default=100)
    parser.add_argument("--busy", default="1", help="comma-separated numbers of competing busy processes")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    cases = [c.strip() for c in args.cases.split(",")]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; {args.size} px, "
          f"{args.evals} evaluations, random weights; load average before: {os.getloadavg()[0]:.1f}")
    rows = []
    for busy in [int(b) for b in args.busy.split(",")]:
        for case in cases:
            runs = [run_case(case, args.size, args.evals, busy) for _ in range(args.repeats)]
            row = {"busy": busy, "case": case, "seconds": statistics.median(r["seconds"] for r in runs),
                   "threads": runs[0]["threads"]}
            rows.append(row)
            print(f"busy processes {busy}  {case:11}  threads {row['threads']}  {row['seconds']:6.1f} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
