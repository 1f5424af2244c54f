"""The command line end to end: ``python -m nstutil`` in a subprocess, random weights, tiny images, few steps.

The bad-input runs are independent, so they are started together (a few at a time) by a module fixture and
checked one per test.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nstutil

REPO = Path(__file__).resolve().parent.parent
PARALLEL = 4


def _env(**extra):
    env = dict(os.environ)
    env["NSTUTIL_WEIGHTS"] = "random"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("PYTHONWARNINGS", None)
    env.update(extra)
    return env


def _cmd(*args):
    return [sys.executable, "-m", "nstutil", *map(str, args)]


def _write_png(path, height=40, width=48, seed=0):
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    Image.fromarray(coarse, "RGB").resize((width, height), Image.BILINEAR).save(path)
    return path


class _Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def _prepare_bad_cases(root: Path):
    """{name: (folder, args, output path, extra check)}; each case has a folder of its own."""
    cases = {}

    def case(name, make_args, check=None):
        folder = root / name.replace(" ", "_")
        folder.mkdir()
        content = _write_png(folder / "content.png", seed=1)
        style = _write_png(folder / "style.png", seed=2)
        output = folder / "out.png"
        base = ["--size", 32, "--steps", 3, "-q"]
        cases[name] = (folder, base + make_args(folder, content, style, output), output, check)

    def standard(content, style, output):
        return ["--content", content, "--style", style, "-o", output]

    case("missing file", lambda f, c, s, o: standard(f / "nope.png", s, o))
    case("directory", lambda f, c, s, o: standard(c, f, o))

    def non_image(f, c, s, o):
        (f / "notes.png").write_text("not a picture\n" * 10)
        return standard(f / "notes.png", s, o)

    case("non-image", non_image)

    def truncated(f, c, s, o):
        big = _write_png(f / "big.png", 64, 64, seed=3)
        noise = np.random.default_rng(3).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
        Image.fromarray(noise, "RGB").save(big)
        data = big.read_bytes()
        (f / "cut.png").write_bytes(data[: len(data) // 2])
        big.unlink()
        return standard(c, f / "cut.png", o)

    case("truncated", truncated)

    def zero_byte(f, c, s, o):
        (f / "zero.png").write_bytes(b"")
        return standard(f / "zero.png", s, o)

    case("zero-byte", zero_byte)

    def bomb(f, c, s, o):
        import struct
        import zlib

        def chunk(kind, data):
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        header = struct.pack(">IIBBBBB", 9000, 9000, 8, 2, 0, 0, 0)
        (f / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
                                     chunk(b"IDAT", zlib.compress(b"\0" * 9)) + chunk(b"IEND", b""))
        return standard(f / "bomb.png", s, o)

    case("pixel bomb", bomb)
    case("unknown layer", lambda f, c, s, o: standard(c, s, o) + ["--style-layers", "relu1_1,relu9_9"])
    case("empty style layers", lambda f, c, s, o: standard(c, s, o) + ["--style-layers", ""])
    case("negative weight", lambda f, c, s, o: standard(c, s, o) + ["--style-weight=-1"])
    case("NaN weight", lambda f, c, s, o: standard(c, s, o) + ["--content-weight", "nan"])
    case("negative layer weight", lambda f, c, s, o: standard(c, s, o) + ["--content-layers", "relu4_2:-2"])
    case("too small for the layers", lambda f, c, s, o: standard(c, s, o) + ["--preset", "gatys", "--size", 12])

    def under_a_file(f, c, s, o):
        (f / "file.txt").write_text("x")
        return standard(c, s, f / "file.txt" / "out.png")

    case("unwritable output", under_a_file)
    case("output is an input", lambda f, c, s, o: standard(c, s, c))
    case("output is the style image", lambda f, c, s, o: standard(c, s, f / "." / "style.png"))
    case("output without image extension", lambda f, c, s, o: standard(c, s, f / "out.txt"))

    def wrong_shape(f, c, s, o):
        state = nstutil.vgg._random_state_dict(0)
        state["10.weight"] = torch.zeros(256, 64, 3, 3)
        torch.save(state, f / "weights.pth")
        return standard(c, s, o) + ["--weights", f / "weights.pth"]

    case("wrong-shape weights", wrong_shape)

    def malicious(f, c, s, o):
        torch.save(_Payload(f / "PWNED"), f / "evil.pth")
        return standard(c, s, o) + ["--weights", f / "evil.pth"]

    case("malicious pickle", malicious, check=lambda f: not (f / "PWNED").exists())
    case("unknown weights", lambda f, c, s, o: standard(c, s, o) + ["--weights", "imagenet21k"])

    def two_styles(f, c, s, o):
        return ["--content", c, "--style", f"{s},{c}", "-o", o]

    case("blend of the wrong count", lambda f, c, s, o: two_styles(f, c, s, o) + ["--style-blend", "1,2,3"])
    case("negative blend", lambda f, c, s, o: two_styles(f, c, s, o) + ["--style-blend=1,-1"])
    case("NaN blend", lambda f, c, s, o: two_styles(f, c, s, o) + ["--style-blend", "nan,1"])
    case("mask count", lambda f, c, s, o: two_styles(f, c, s, o) + ["--style-masks", s])

    def mask_not_an_image(f, c, s, o):
        (f / "mask.png").write_text("not a picture\n" * 10)
        return standard(c, s, o) + ["--style-masks", f / "mask.png"]

    case("mask not an image", mask_not_an_image)
    case("scales not increasing", lambda f, c, s, o: standard(c, s, o) + ["--scales", "16,8"])
    case("scales past size", lambda f, c, s, o: standard(c, s, o) + ["--scales", "16,64"])
    case("steps per scale", lambda f, c, s, o: standard(c, s, o) + ["--scales", "16", "--steps", "2,2,2"])
    case("zero style scale", lambda f, c, s, o: standard(c, s, o) + ["--style-scale", "0"])
    case("missing init image", lambda f, c, s, o: standard(c, s, o) + ["--init-image", f / "start.png"])
    return cases


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-bad")
    cases = _prepare_bad_cases(root)
    before = {name: sorted(p.name for p in folder.iterdir()) for name, (folder, *_rest) in cases.items()}
    results, running, queue = {}, {}, list(cases)
    deadline = time.monotonic() + 600
    while queue or running:
        if time.monotonic() > deadline:
            for proc in running.values():
                proc.kill()
            pytest.fail(f"command-line runs still going after 600 s: {sorted(running)}")
        while queue and len(running) < PARALLEL:
            name = queue.pop(0)
            folder, args, _, _ = cases[name]
            running[name] = subprocess.Popen(_cmd(*args), cwd=folder, env=_env(), stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, text=True)
        for name, proc in list(running.items()):
            if proc.poll() is not None:
                out, err = proc.communicate()
                results[name] = (proc.returncode, out, err)
                del running[name]
        time.sleep(0.05)
    return cases, before, results


BAD_CASES = ["missing file", "directory", "non-image", "truncated", "zero-byte", "pixel bomb", "unknown layer",
             "empty style layers", "negative weight", "NaN weight", "negative layer weight",
             "too small for the layers", "unwritable output", "output is an input", "output is the style image",
             "output without image extension", "wrong-shape weights", "malicious pickle", "unknown weights",
             "blend of the wrong count", "negative blend", "NaN blend", "mask count", "mask not an image",
             "scales not increasing", "scales past size", "steps per scale", "zero style scale",
             "missing init image"]

# What the one-line message must mention for each case (the input it names).
MENTIONS = {
    "missing file": "nope.png", "directory": "directory", "non-image": "notes.png", "truncated": "cut.png",
    "zero-byte": "zero.png", "pixel bomb": "bomb.png", "unknown layer": "relu9_9", "empty style layers": "style",
    "negative weight": "style_weight", "NaN weight": "content-weight", "negative layer weight": "relu4_2",
    "too small for the layers": "relu5_1", "unwritable output": "file.txt", "output is an input": "input",
    "output is the style image": "input", "output without image extension": "out.txt",
    "wrong-shape weights": "weights.pth", "malicious pickle": "evil.pth", "unknown weights": "imagenet21k",
    "blend of the wrong count": "style_blend", "negative blend": "style_blend", "NaN blend": "style_blend",
    "mask count": "style_masks", "mask not an image": "mask.png", "scales not increasing": "increasing",
    "scales past size": "scale 64", "steps per scale": "steps", "zero style scale": "style_scale",
    "missing init image": "start.png",
}


@pytest.mark.parametrize("name", BAD_CASES)
def test_bad_input_exits_2_with_one_line(bad_runs, name):
    cases, before, results = bad_runs
    folder, args, output, check = cases[name]
    code, out, err = results[name]
    assert code == 2, (code, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("nstutil: error: "), err
    assert MENTIONS[name] in lines[0], err
    assert out == ""
    # No output file and nothing else left behind (no temporary or snapshot files).
    assert sorted(p.name for p in folder.iterdir()) == before[name]
    assert not output.exists()
    if check is not None:
        assert check(folder)


def test_every_listed_case_ran(bad_runs):
    assert set(bad_runs[2]) == set(BAD_CASES)


def test_input_files_untouched_when_output_is_an_input(bad_runs):
    cases, _, _ = bad_runs
    folder = cases["output is an input"][0]
    fresh = _write_png(folder.parent / "fresh.png", seed=1)
    assert (folder / "content.png").read_bytes() == fresh.read_bytes()


@pytest.mark.parametrize("args, message", [(["--steps", "0"], "--steps"), (["--optimizer", "sgd"], "--optimizer"),
                                           (["--preserve-colors", "sepia"], "--preserve-colors"),
                                           (["--style-blend", "1,x"], "--style-blend"),
                                           (["--scales", "a"], "--scales"),
                                           (["--style-statistic", "median"], "--style-statistic"),
                                           (["--parametrisation", "pixels"], "--parametrisation"),
                                           (["--optimizer", "lbfgs", "--lr-decay", "0.8", "--lr-decay-every", "5",
                                             "--steps", "2", "--size", "32"], "schedule Adam's learning rate")])
def test_argument_errors(tmp_path, args, message):
    proc = subprocess.run(_cmd(*args, "-o", tmp_path / "out.png"), cwd=tmp_path, env=_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("nstutil: error: ") and message in last
    assert list(tmp_path.iterdir()) == []


def test_success_writes_file_and_snapshots(tmp_path):
    content = _write_png(tmp_path / "content.png", 30, 45, seed=1)
    style = _write_png(tmp_path / "style.png", seed=2)
    output = tmp_path / "result" / "out.png"
    proc = subprocess.run(_cmd("--content", content, "--style", style, "-o", output, "--size", 48, "--steps", 5,
                               "--save-every", 2, "-q"), cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert str(output) in proc.stdout and "5 evaluations" in proc.stdout
    assert "Traceback" not in proc.stderr
    image = nstutil.load_image(output)
    assert image.shape == (1, 3, 32, 48)
    names = sorted(p.name for p in output.parent.iterdir())
    assert names == ["out-0002.png", "out-0004.png", "out.png"]
    assert nstutil.load_image(output.parent / "out-0004.png").shape == (1, 3, 32, 48)


def test_every_control_flag_end_to_end(tmp_path):
    """Two styles blended 3:1 with a mask each, luminance-only transfer, a style scale, coarse-to-fine with steps
    per scale, a start image and the style statistic: one run, and each shows in what was written."""
    content = _write_png(tmp_path / "content.png", 40, 48, seed=1)
    style_a = _write_png(tmp_path / "a.png", seed=2)
    style_b = _write_png(tmp_path / "b.png", seed=3)
    start = _write_png(tmp_path / "start.png", 20, 24, seed=4)
    left = np.zeros((40, 48), dtype=np.uint8)
    left[:, :24] = 255
    Image.fromarray(left).save(tmp_path / "left.png")
    Image.fromarray(255 - left).save(tmp_path / "right.png")
    proc = subprocess.run(_cmd("--content", content, "--style", f"{style_a},{style_b}", "--style-blend", "3,1",
                               "--style-masks", f"{tmp_path / 'left.png'},{tmp_path / 'right.png'}",
                               "--preserve-colors", "luminance", "--style-scale", "0.5", "--scales", "24",
                               "--steps", "3,4", "--init-image", start, "--style-statistic", "mean_std",
                               "--size", 48, "-q"),
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "content-a+b.png" in proc.stdout and "7 evaluations" in proc.stdout
    result = nstutil.load_image(tmp_path / "content-a+b.png")
    assert result.shape == (1, 3, 40, 48)
    from nstutil.colour import rgb_to_yiq

    # luminance-only transfer: the content's chrominance (8-bit rounding aside)
    original = nstutil.load_image(content)
    assert (rgb_to_yiq(result)[:, 1:] - rgb_to_yiq(original)[:, 1:]).abs().max() <= 1.5 / 255
    proc = subprocess.run(_cmd("--content", content, "--style", f"{style_a},{style_b}", "--style-blend", "3,1",
                               "--size", 48, "--steps", 2, "-q", "--preserve-colors", "histogram", "-o",
                               tmp_path / "hist.png"),
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "hist.png").exists()


def test_flat_grey_style_with_histogram_matching(tmp_path):
    content = _write_png(tmp_path / "content.png", seed=1)
    Image.new("RGB", (40, 40), (128, 128, 128)).save(tmp_path / "grey.png")
    proc = subprocess.run(_cmd("--content", content, "--style", tmp_path / "grey.png", "--preserve-colors",
                               "histogram", "--size", 32, "--steps", 2, "-q", "-o", tmp_path / "out.png"),
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert torch.isfinite(nstutil.load_image(tmp_path / "out.png")).all()


def test_default_output_never_overwrites(tmp_path):
    content = _write_png(tmp_path / "cat.png", seed=1)
    style = _write_png(tmp_path / "paint.png", seed=2)
    (tmp_path / "cat-paint.png").write_bytes(b"existing")
    proc = subprocess.run(_cmd("--content", content, "--style", style, "--size", 32, "--steps", 2, "-q",
                               "--preset", "gatys", "--optimizer", "adam", "--init", "blend", "--tv-weight", 1e-3,
                               "--content-layers", "relu_10", "--style-layers", "relu1_1,relu2_1:0.5"),
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "cat-paint.png").read_bytes() == b"existing"
    assert "cat-paint-1.png" in proc.stdout
    assert nstutil.load_image(tmp_path / "cat-paint-1.png").shape == (1, 3, 27, 32)  # 40×48 → longer side 32


def test_diverged_run_exits_1_and_writes_best(tmp_path):
    content = _write_png(tmp_path / "content.png", seed=1)
    style = _write_png(tmp_path / "style.png", seed=2)
    output = tmp_path / "out.png"
    proc = subprocess.run(_cmd("--content", content, "--style", style, "-o", output, "--size", 32, "--steps", 2,
                               "-q", "--preset", "gatys", "--content-weight", "3e38"),
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1, proc.stderr
    assert "nstutil: error:" in proc.stderr and "Traceback" not in proc.stderr
    assert output.exists()


def test_ctrl_c_writes_best_image_and_exits_130(tmp_path):
    content = _write_png(tmp_path / "content.png", seed=1)
    style = _write_png(tmp_path / "style.png", seed=2)
    output = tmp_path / "out.png"
    proc = subprocess.Popen(_cmd("--content", content, "--style", style, "-o", output, "--size", 48,
                                 "--steps", 100000, "--save-every", 1, "-q"),
                            cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        snapshot = tmp_path / "out-0001.png"
        deadline = time.monotonic() + 120
        while not snapshot.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert snapshot.exists(), "no progress within 120 s"
        assert not output.exists()
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err and str(output) in err
    assert nstutil.load_image(output).shape == (1, 3, 40, 48)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_help(tmp_path):
    proc = subprocess.run(_cmd("--help"), cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    text = proc.stdout
    assert text.startswith("usage: nstutil")
    assert "examples:" in text
    for option in ("--content", "--style", "--output", "--size", "--steps", "--weights", "--preset",
                   "--style-layers", "--content-weight", "--optimizer", "--init", "--seed", "--device",
                   "--tv-weight", "--save-every", "--style-blend", "--style-masks", "--style-scale",
                   "--preserve-colors", "--scales", "--init-image", "--style-statistic", "--lr-decay",
                   "--lr-decay-every", "--parametrisation"):
        assert option in text, option
    assert "conv_4 = conv2_2" in text and "320" in text


def test_main_in_process(tmp_path, capsys, monkeypatch):
    """``nstutil.cli.main`` returns the status instead of exiting (the console script's entry point)."""
    from nstutil.cli import main, parse_layers

    monkeypatch.setenv("NSTUTIL_WEIGHTS", "random")
    assert parse_layers("relu1_1, relu2_1:0.5,,") == {"relu1_1": 1.0, "relu2_1": 0.5}
    assert main(["--content", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o.png")]) == 2
    assert capsys.readouterr().err.startswith("nstutil: error: content image")
    content = _write_png(tmp_path / "content.png", seed=1)
    assert main(["--content", str(content), "--style", str(content), "-o", str(tmp_path / "o.png"), "--size",
                 "32", "--steps", "2", "-q"]) == 0
    assert (tmp_path / "o.png").exists()


@pytest.mark.parametrize("argv, scales, steps", [
    ([], None, 300),                                           # the default plan: style_transfer's, one scale
    (["--size", "512"], None, 300),
    (["--steps", "200"], None, 200),
    (["--scales", "64,128"], [64, 128], 300),                  # --scales alone: 300 at each
    (["--scales", "128", "--steps", "20,10"], [128], [20, 10]),
])
def test_default_plan_reaches_style_transfer(tmp_path, monkeypatch, argv, scales, steps):
    """The command line's plan is style_transfer's (nstutil.settings.DEFAULT_STEPS at one scale unless asked
    otherwise), and it is what style_transfer and the estimate are given."""
    from nstutil import cli

    seen = {}

    def fake_plan_run(content, size, **kwargs):
        seen["estimate"] = (kwargs["controls"].scales, kwargs["controls"].steps)

    def fake_style_transfer(content, style, **kwargs):
        seen["run"] = (kwargs["scales"], kwargs["steps"])
        raise nstutil.NSTError("stop here")

    monkeypatch.setattr(cli, "plan_run", fake_plan_run)
    monkeypatch.setattr(cli, "style_transfer", fake_style_transfer)
    assert cli.main(["-o", str(tmp_path / "o.png"), "-q", *argv]) == 2
    assert seen == {"estimate": (scales, steps), "run": (scales, steps)}


@pytest.mark.parametrize("argv, keywords", [
    ([], {}),
    (["--preset", "gatys", "--style-layers", "relu1_1,relu2_1:0.5", "--tv-weight", "0.01", "--steps", "3"],
     dict(preset="gatys", style_layers={"relu1_1": 1.0, "relu2_1": 0.5}, tv_weight=0.01, steps=3)),
    (["--style", "mosaic,waves", "--style-blend", "3,1", "--style-scale", "0.5", "--preserve-colors", "histogram",
      "--scales", "24", "--steps", "2,2", "--style-statistic", "mean_std"],
     dict(style=["mosaic", "waves"], style_blend=[3, 1], style_scale=0.5, preserve_colors="histogram", scales=[24],
          steps=[2, 2], style_statistic="mean_std")),
])
def test_the_command_line_and_python_record_the_same_settings(tmp_path, monkeypatch, argv, keywords):
    """The same arguments given to `python -m nstutil` and to style_transfer() make the same run: its settings are
    recorded alike (both are bound to nstutil.settings' RecipeChoice and Controls)."""
    from nstutil import cli

    recorded = []
    real = cli.style_transfer

    def recording(*args, **kwargs):
        kwargs["steps"] = 2 if kwargs["steps"] == 300 else kwargs["steps"]       # keep the default run short
        result = real(*args, **kwargs)
        recorded.append(result.settings)
        return result

    monkeypatch.setattr(cli, "style_transfer", recording)
    monkeypatch.setattr(cli, "plan_run", lambda *args, **kwargs: None)
    assert cli.main(["-o", str(tmp_path / "o.png"), "-q", "--size", "32", "--weights", "random", *argv]) == 0
    keywords = dict(keywords)
    styles = [nstutil.image_path(name) for name in keywords.pop("style", ["mosaic"])]
    keywords.setdefault("steps", 2)
    result = nstutil.style_transfer(nstutil.image_path("chelsea"), styles if len(styles) > 1 else styles[0],
                                    size=32, weights="random", progress=False, **keywords)
    assert recorded[0] == result.settings
