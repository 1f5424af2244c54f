"""One device rule (nstutil.device): a model passed in decides, and nothing in nstutil moves a model."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import nstutil
from nstutil import build_objective, load_vgg19, style_transfer
from nstutil.device import model_device, resolve_device
from nstutil.estimate import available_memory
from test_colour import raises_one_line as _one_line  # one NSTError line naming each word

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")


def _meta_model(vgg):
    """A VGG with the shared model's structure whose weights live on another device (meta, no memory)."""
    import copy

    with torch.device("meta"):
        other = copy.deepcopy(vgg).to("meta")
    return other


def test_the_model_decides(vgg):
    assert resolve_device(None, vgg) == torch.device("cpu")
    assert resolve_device("cpu", vgg) == torch.device("cpu")
    assert resolve_device(torch.device("cpu"), vgg) == torch.device("cpu")


def test_defaults():
    assert resolve_device(default="cpu") == torch.device("cpu")
    assert resolve_device() == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert load_vgg19("random").features[0].weight.device == torch.device("cpu")


def test_a_model_with_another_device_is_one_line_and_nothing_moves(vgg, make_image):
    elsewhere = _meta_model(vgg)
    before = {p.device for p in elsewhere.parameters()}
    image = make_image(32, 32)
    for call in (lambda: style_transfer(image, image, model=elsewhere, device="cpu", steps=1, progress=False),
                 lambda: build_objective(image, image, model=elsewhere, device="cpu")):
        _one_line(call, "meta", "'cpu'", "leave device out")
    assert {p.device for p in elsewhere.parameters()} == before
    assert model_device(elsewhere).type == "meta"


def test_bad_device_names():
    _one_line(lambda: resolve_device("gpu"), "'gpu'", "'cpu', 'cuda'")
    _one_line(lambda: resolve_device(42), "42")


@NO_GPU
def test_cuda_without_a_gpu_is_refused_before_anything_runs(vgg, make_image, tmp_path):
    cached = load_vgg19("random")
    missing = tmp_path / "missing.png"
    # The device is checked first: the missing image is not even looked at.
    _one_line(lambda: style_transfer(missing, missing, model=vgg, device="cuda", steps=1, progress=False),
              "'cuda'", "no CUDA GPU")
    _one_line(lambda: style_transfer(missing, missing, device="cuda:1", weights="random", steps=1, progress=False),
              "no CUDA GPU")
    _one_line(lambda: available_memory("cuda"), "no CUDA GPU")
    _one_line(lambda: nstutil.PerceptualLoss(make_image(32, 32), model=vgg, device="cuda"), "no CUDA GPU")
    assert load_vgg19("random") is cached
    assert all(p.device.type == "cpu" for p in cached.parameters())
    assert all(p.device.type == "cpu" for p in vgg.parameters())


@NO_GPU
def test_cli_device_cuda_without_a_gpu(tmp_path, make_image):
    content = tmp_path / "c.png"
    nstutil.save_image(make_image(40, 48), content)
    out = tmp_path / "out.png"
    env = {**os.environ, "NSTUTIL_WEIGHTS": "random"}
    run = subprocess.run([sys.executable, "-m", "nstutil", "-c", str(content), "-s", str(content), "-o", str(out), "--device",
                          "cuda", "--steps", "2"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr
    assert "no CUDA GPU" in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()


def test_a_run_returns_cpu_results_and_leaves_the_cached_model_where_it_was(make_image):
    cached = load_vgg19("random")
    result = style_transfer(make_image(32, 32), make_image(32, 32, seed=1), model=cached, steps=2, progress=False)
    assert result.image.device.type == "cpu"
    assert result.settings["device"] == "cpu"
    assert load_vgg19("random") is cached and model_device(cached).type == "cpu"
