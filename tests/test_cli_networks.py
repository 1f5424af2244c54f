"""``nstutil train`` and ``nstutil stylize``: a run end to end, and bad input as one line with exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nstutil.cli import main
from nstutil.images import image_path, load_image


@pytest.fixture(autouse=True)
def random_weights(monkeypatch):
    monkeypatch.setenv("NSTUTIL_WEIGHTS", "random")


@pytest.fixture(scope="module")
def net_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    out = folder / "mosaic.net.pth"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NSTUTIL_WEIGHTS", "random")
        assert main(["train", "--size", "16", "--steps", "3", "--batch", "1", "-o", str(out), "-q",
                     "--loss-curve", str(folder / "curve.csv")]) == 0
    return out


def test_train_writes_a_network_a_checkpoint_and_a_curve(net_file, capsys):
    assert net_file.exists() and (net_file.parent / "mosaic.net.pth.ckpt").exists()
    lines = (net_file.parent / "curve.csv").read_text().splitlines()
    assert lines[0] == "step,seconds,loss" and len(lines) == 4


def test_resume_continues_to_more_steps(net_file, capsys):
    assert main(["train", "--size", "16", "--steps", "4", "--batch", "1", "-o", str(net_file), "-q",
                 "--resume"]) == 0
    assert "4 steps" in capsys.readouterr().out
    assert torch.load(net_file, weights_only=True)["meta"]["steps"] == 4


def test_resume_with_other_settings_is_refused(net_file, capsys):
    before = net_file.read_bytes()
    assert main(["train", "--size", "24", "--steps", "5", "--batch", "1", "-o", str(net_file), "-q",
                 "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another run" in err and "size" in err
    assert net_file.read_bytes() == before


def test_stylize_keeps_the_photos_size(net_file, tmp_path, capsys):
    out = tmp_path / "cat.png"
    assert main(["stylize", "--net", str(net_file), "chelsea", "-o", str(out)]) == 0
    assert load_image(out).shape == load_image(image_path("chelsea")).shape
    assert main(["stylize", "--net", str(net_file), "chelsea", "coffee", "-o", str(tmp_path / "many"),
                 "--size", "40", "--strength", "0.5", "--preserve-colors", "luminance"]) == 0
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["chelsea-mosaic.png", "coffee-mosaic.png"]


def _bad_cases(tmp_path, net_file):
    empty = tmp_path / "empty"
    empty.mkdir()
    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()
    (unreadable / "x.jpg").write_bytes(b"garbage")
    (tmp_path / "style.png").write_text("not a picture")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "vgg.pth")
    out = str(tmp_path / "o.net.pth")
    return {
        "missing folder": ["train", "--photos", str(tmp_path / "nowhere"), "-o", out],
        "empty folder": ["train", "--photos", str(empty), "-o", out],
        "no readable photo": ["train", "--photos", str(unreadable), "-o", out],
        "style not an image": ["train", "--style", str(tmp_path / "style.png"), "-o", out, "--steps", "1"],
        "size too small": ["train", "--size", "4", "-o", out, "--steps", "1"],
        "resume without checkpoint": ["train", "--resume", "-o", out],
        "existing output": ["train", "-o", str(net_file)],
        "not a network": ["stylize", "--net", str(tmp_path / "vgg.pth"), "chelsea", "-o", str(tmp_path / "a.png")],
        "picture as network": ["stylize", "--net", str(image_path("chelsea")), "chelsea", "-o",
                               str(tmp_path / "a.png")],
        "photo too small": ["stylize", "--net", str(net_file), "chelsea", "--size", "5", "-o",
                            str(tmp_path / "a.png")],
        "output over input": ["stylize", "--net", str(net_file), str(image_path("chelsea")), "-o",
                              str(image_path("chelsea"))],
    }


@pytest.mark.parametrize("case", ["missing folder", "empty folder", "no readable photo", "style not an image",
                                  "size too small", "resume without checkpoint", "existing output",
                                  "not a network", "picture as network", "photo too small", "output over input"])
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(net_file, tmp_path, capsys, case):
    argv = _bad_cases(tmp_path, net_file)[case]
    before = {p: p.read_bytes() for p in [net_file, image_path("chelsea")]}
    listing = sorted(tmp_path.rglob("*"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("nstutil: error: ") and err.count("\n") == 1, err
    assert sorted(tmp_path.rglob("*")) == listing
    assert all(p.read_bytes() == b for p, b in before.items())


def test_help_and_the_plain_command_stay(capsys):
    for argv, option in ((["train", "--help"], "--photos"), (["stylize", "--help"], "--strength")):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 0 and option in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "style networks" in capsys.readouterr().out


def test_sigterm_stops_training_and_writes_the_checkpoint_and_the_network(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "m.net.pth"
    env = dict(os.environ, NSTUTIL_WEIGHTS="random", PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    run = subprocess.Popen([sys.executable, "-m", "nstutil", "train", "--size", "16", "--batch", "1", "--steps",
                            "100000", "--checkpoint-every", "1", "-q", "-o", str(out)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out.parent / "m.net.pth.ckpt").exists():  # training is under way, its handlers installed
            assert run.poll() is None and time.monotonic() < deadline, run.stderr.read() if run.poll() else ""
            time.sleep(0.2)
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 143, err
    assert "stopped by SIGTERM" in err
    saved = torch.load(out, weights_only=True)
    assert saved["meta"]["steps"] == torch.load(out.parent / "m.net.pth.ckpt", weights_only=True)["step"] >= 1


def test_a_light_network_is_half_as_wide_and_styles_from_its_file(tmp_path, capsys):
    out = tmp_path / "light.net.pth"
    assert main(["train", "--size", "16", "--steps", "1", "--batch", "1", "--network", "light", "-o", str(out),
                 "-q"]) == 0
    saved = torch.load(out, weights_only=True)
    assert saved["meta"]["network"]["channels"] == [16, 32, 64]
    assert main(["stylize", "--net", str(out), "chelsea", "--size", "24", "-o", str(tmp_path / "cat.png")]) == 0
    assert load_image(tmp_path / "cat.png").shape[-1] == 24
    assert main(["train", "--arbitrary", "--network", "light", "--steps", "1", "-o", str(tmp_path / "d.pth")]) == 2
    assert "leave out --network" in capsys.readouterr().err
