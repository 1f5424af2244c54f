"""The time and memory estimate's logic (nstutil.estimate): counts, monotonicity, refusal, the largest size that
fits. No timings are asserted here; benchmarks/bench_estimate.py measures the estimate's accuracy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nstutil import NSTError, PRESETS
from nstutil import estimate as est
from nstutil.settings import Controls

GATYS = (["relu4_2"], ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"])
TUTORIAL = (["conv_4"], ["conv_1", "conv_2", "conv_3", "conv_4", "conv_5"])
REPO = Path(__file__).resolve().parent.parent
GIB = 1 << 30


def test_flops_by_hand_for_one_layer():
    # conv1_1 only, 4×6 px: 3→64 channels, 3×3 kernel, forward and input gradient; its Gram forward and backward.
    conv = 2 * 3 * 64 * 9 * 24
    gram = 2 * 64 * 64 * 24
    assert est.evaluation_flops(4, 6, [], ["conv1_1"]) == 2 * conv + 2 * gram
    assert est.evaluation_flops(4, 6, ["conv1_1"], []) == 2 * conv


def test_flops_known_totals_and_names_in_both_schemes():
    # NOTES §4 / benchmarks README: 24.8 GFLOP (Gatys layers) and 8.7 GFLOP (tutorial layers) at 128 px.
    assert est.evaluation_flops(128, 128, *GATYS) / 1e9 == pytest.approx(24.8, abs=0.05)
    assert est.evaluation_flops(128, 128, *TUTORIAL) / 1e9 == pytest.approx(8.7, abs=0.05)
    flat = (["relu_10"], ["relu_1", "relu_3", "relu_5", "relu_9", "relu_13"])
    assert est.evaluation_flops(96, 80, *flat) == est.evaluation_flops(96, 80, *GATYS)


@pytest.mark.parametrize("layers", [GATYS, TUTORIAL])
def test_memory_grows_with_pixels_towards_proportional(layers):
    sizes = [64, 128, 256, 512, 1024, 2048]
    memory = [est.memory_needed(s, s, *layers) for s in sizes]
    assert memory == sorted(memory) and len(set(memory)) == len(memory)
    # The fixed part (weights, libraries) fades: at large sizes, 4× the pixels is nearly 4× the memory.
    assert 3.5 < (memory[-1] - memory[0]) / (memory[-2] - memory[0]) < 4.2
    assert est.memory_needed(300, 200, *layers) == est.memory_needed(200, 300, *layers)


def test_memory_grows_with_depth_history_and_asked_conv_outputs():
    deeper = est.memory_needed(256, 256, ["relu4_2"], ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"])
    shallower = est.memory_needed(256, 256, ["relu4_2"], ["relu1_1", "relu2_1", "relu3_1", "relu4_1"])
    assert deeper > shallower
    assert est.memory_needed(256, 256, *GATYS, history_size=100) > est.memory_needed(256, 256, *GATYS)
    # Asking for a convolution's output keeps it besides its ReLU's (which then cannot run in place).
    assert est.memory_needed(256, 256, [], ["conv1_2", "relu2_1"]) > est.memory_needed(256, 256, [], ["relu1_2",
                                                                                                        "relu2_1"])


def test_history_pairs_cost_two_image_vectors_each():
    extra = est.memory_needed(100, 50, *GATYS, history_size=11) - est.memory_needed(100, 50, *GATYS, history_size=10)
    assert extra == 2 * 3 * 100 * 50 * 4


def test_largest_side_is_the_boundary():
    available = 3 * GIB
    side = est.largest_side(600, 900, *GATYS, available)
    assert side > 0
    h, w = est.scaled_shape((600, 900), side)
    assert max(h, w) == side and est.memory_needed(h, w, *GATYS) <= available
    assert est.memory_needed(*est.scaled_shape((600, 900), side + 1), *GATYS) > available
    assert est.largest_side(600, 900, *GATYS, 1) == 0


def test_estimate_refuses_only_when_over_the_available_memory():
    need = est.memory_needed(512, 512, *GATYS)
    ok = est.estimate_run(512, 512, 100, *GATYS, available=need)
    assert ok.fits and ok.largest >= 512 and ok.seconds is None
    short = est.estimate_run(512, 512, 100, *GATYS, available=need - 1)
    assert not short.fits and short.largest == 511
    assert est.estimate_run(512, 512, 100, *GATYS).fits          # unknown available memory: no refusal


def test_estimate_time_and_scales():
    speed = est.Speed(overhead=0.01, seconds_per_flop=1e-11)
    one = est.estimate_run(256, 256, 10, *GATYS, speed=speed)
    per_eval = 0.01 + est.evaluation_flops(256, 256, *GATYS) * 1e-11
    assert one.seconds == pytest.approx(11 * per_eval)             # ten evaluations and the targets' passes
    two = est.estimate_run(256, 256, [30, 10], *GATYS, scales=[128], speed=speed)
    coarse = 0.01 + est.evaluation_flops(128, 128, *GATYS) * 1e-11
    assert two.shapes == ((128, 128), (256, 256)) and two.evaluations == 40
    assert two.seconds == pytest.approx(31 * coarse + 11 * per_eval)
    assert two.memory == one.memory                                 # memory is the largest scale's
    with pytest.raises(NSTError, match="one per scale"):
        est.estimate_run(256, 256, [1, 2, 3], *GATYS, scales=[128])


def test_speed_fit_is_a_line_and_survives_noise():
    line = est.Speed.fit([1e9, 4e9], [0.03, 0.09])
    assert line.overhead == pytest.approx(0.01) and line.seconds_per_flop == pytest.approx(2e-11)
    # Noise that makes the larger run look no slower, or the line start below zero: throughput only.
    assert est.Speed.fit([1e9, 4e9], [0.05, 0.04]) == est.Speed(0.0, 0.04 / 4e9)
    assert est.Speed.fit([1e9, 4e9], [0.01, 0.09]) == est.Speed(0.0, 0.09 / 4e9)


def test_summary_wording():
    e = est.Estimate(((1024, 1024),), 300, int(2.6 * GIB), 12 * 60 + 10, None, None)
    assert e.summary() == "about 12 min, 2.6 GiB"
    assert est.Estimate(((64, 64),), 3, GIB, None, None, None).summary() == "about 1.0 GiB"
    assert est.Estimate(((64, 64),), 3, GIB, 42.4, None, None).summary() == "about 42 s, 1.0 GiB"
    assert est.Estimate(((64, 64),), 3, GIB, 3 * 3600, None, None).summary() == "about 3.0 h, 1.0 GiB"


def test_available_memory_is_read_from_the_os():
    available = est.available_memory("cpu")
    assert available is None or available > 0


def test_plan_refuses_with_the_largest_size_that_fits(tmp_path):
    from PIL import Image

    path = tmp_path / "wide.png"
    Image.new("RGB", (300, 200)).save(path)
    available = est.memory_needed(200, 300, *GATYS)
    with pytest.raises(NSTError) as caught:
        est.plan_run(path, 301, controls=Controls(steps=10), preset="gatys", available=available)
    message = str(caught.value)
    assert "\n" not in message and "301×201 px" in message and "the largest size that fits is --size" in message
    largest = int(message.rsplit(" ", 1)[1])
    assert largest == est.largest_side(200, 300, *GATYS, available) and 300 <= largest < 301


def test_plan_of_a_short_run_measures_nothing(tmp_path, monkeypatch):
    from PIL import Image

    path = tmp_path / "small.png"
    Image.new("RGB", (40, 30)).save(path)

    def no_measuring(*args, **kwargs):
        raise AssertionError("a short run must not be timed")

    monkeypatch.setattr(est, "measure_speed", no_measuring)
    assert est.plan_run(path, 32, controls=Controls(steps=3), preset="tutorial") is None
    assert est.plan_run(tmp_path / "missing.png", 32, controls=Controls(steps=3)) is None     # load_image reports missing files


def test_plan_of_a_long_run_uses_the_measured_speed(tmp_path, monkeypatch):
    from PIL import Image

    path = tmp_path / "photo.png"
    Image.new("RGB", (400, 300)).save(path)
    speed = est.Speed(0.02, 1e-11)
    seen = {}

    def measured(content_layers, style_layers, *, model, device):
        seen.update(content=list(content_layers), style=list(style_layers), weights=model.weights_name)
        return speed

    monkeypatch.setattr(est, "measure_speed", measured)
    plan = est.plan_run(path, 256, controls=Controls(steps=300), preset="gatys", weights="random")
    assert seen == dict(content=list(PRESETS["gatys"].content_layers), style=list(PRESETS["gatys"].style_layers),
                        weights="random:0")
    assert plan.shapes == ((192, 256),)
    assert plan.seconds == pytest.approx(301 * speed.evaluation_seconds(est.evaluation_flops(192, 256, *GATYS)))


def test_command_line_refuses_a_size_that_cannot_fit(tmp_path):
    out = tmp_path / "out.png"
    run = subprocess.run([sys.executable, "-m", "nstutil", "--size", "60000", "--preset", "gatys", "-o", str(out)],
                         capture_output=True, text=True, cwd=tmp_path,
                         env={"NSTUTIL_WEIGHTS": "random", "PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nstutil: error: ")
    assert "GiB of memory" in lines[0] and "the largest size that fits is --size" in lines[0]
    assert list(tmp_path.iterdir()) == []
