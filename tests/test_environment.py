"""Environment variables named in their errors, sizes refused in one line before memory is asked for, blend
weights that overflow, and the command line's device and weights messages."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nstutil
from nstutil import NSTError, WeightsWarning, cli, env_int
from nstutil.objective import normalised_blend

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


@pytest.mark.parametrize("value, message", [("abc", "not a whole number"), ("-1", "at least 1"),
                                            ("0", "at least 1"), ("2.5", "not a whole number")])
def test_env_int_names_the_variable(monkeypatch, value, message):
    monkeypatch.setenv("NSTUTIL_SIZE", value)
    with pytest.raises(NSTError, match=message) as info:
        env_int("NSTUTIL_SIZE", 256)
    assert f"NSTUTIL_SIZE={value!r}" in str(info.value)


def test_env_int_default_and_value(monkeypatch):
    monkeypatch.delenv("NSTUTIL_SIZE", raising=False)
    assert env_int("NSTUTIL_SIZE", 256) == 256
    monkeypatch.setenv("NSTUTIL_SIZE", " 96 ")
    assert env_int("NSTUTIL_SIZE", 256) == 96


def _setup_cells():
    """(notebook, source) of each lesson's and exercise's cell that reads NSTUTIL_SIZE."""
    for path in sorted([*NOTEBOOKS.glob("0*.ipynb"), *(NOTEBOOKS / "exercises").glob("*.ipynb")]):
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] == "code" and "NSTUTIL_SIZE" in source:
                yield path.relative_to(NOTEBOOKS), source


@pytest.mark.parametrize("variable", ["NSTUTIL_SIZE", "NSTUTIL_STEPS"])
def test_lesson_setup_cells_name_a_bad_variable(monkeypatch, variable):
    """Each set-up cell, run with a bad value, stops at that line with the variable's name (no int() error)."""
    monkeypatch.setenv(variable, "abc")
    cells = list(_setup_cells())
    assert len(cells) >= 13
    for notebook, source in cells:
        if variable not in source:
            continue
        with pytest.raises(NSTError, match=f"{variable}='abc'"):
            exec(compile(source, str(notebook), "exec"), {})  # stops before any model is loaded


def test_bad_nstutil_weights_names_the_variable(monkeypatch):
    monkeypatch.setenv("NSTUTIL_WEIGHTS", "garbage")
    with pytest.raises(NSTError, match="NSTUTIL_WEIGHTS='garbage'.*unknown weights"):
        nstutil.load_vgg19()
    with pytest.raises(NSTError) as info:
        nstutil.load_vgg19("garbage")  # given directly: no variable to name
    assert "NSTUTIL_WEIGHTS" not in str(info.value)


def test_huge_resize_is_refused_before_allocating():
    image = torch.rand(1, 3, 8, 8)
    with pytest.raises(NSTError, match="over the limit of 40,000,000") as info:
        nstutil.resize_image(image, 64_000_000, role="style image")
    assert "style image" in str(info.value) and "style-scale" in str(info.value)


def _png(path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
    return str(path)


def test_cli_style_scale_1e6_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NSTUTIL_WEIGHTS", "random")
    content = _png(tmp_path / "c.png")
    status = cli.main(["--content", content, "--style", content, "--style-scale", "1e6", "--size", "32",
                       "--steps", "1", "-q", "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("nstutil: error: the style image would be resized") and \
        err.count("\n") == 1, err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cli_cuda_without_gpu_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NSTUTIL_WEIGHTS", "random")
    content = _png(tmp_path / "c.png")
    status = cli.main(["--content", content, "--style", content, "--device", "cuda", "--size", "256",
                       "--steps", "1000", "-q", "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert status == 2 and "no CUDA GPU" in err and err.count("\n") == 1, err


def test_blend_weights_that_overflow_their_sum():
    assert normalised_blend([1e308, 1e308], 2) == [0.5, 0.5]
    assert normalised_blend([1e308, 3e307], 2) == pytest.approx([10 / 13, 3 / 13])
    with pytest.raises(NSTError, match="all zero"):
        normalised_blend([0, 0], 2)


def test_cli_prints_the_weights_warning_once(tmp_path, monkeypatch):
    """Offline, the estimate and the run each load the weights ("auto" falls back to random): one warning."""
    import nstutil.vgg as vgg

    monkeypatch.delenv("NSTUTIL_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nothing cached
    monkeypatch.setattr(vgg, "_unreachable", lambda url, timeout=5.0: "download.pytorch.org cannot be reached")
    loads = []

    def estimate(*args, weights=None, **kwargs):  # the estimate of a long run loads the weights to time a pass
        loads.append(vgg.load_vgg19(weights))

    monkeypatch.setattr(cli, "plan_run", estimate)
    content = _png(tmp_path / "c.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli.main(["--content", content, "--style", content, "--size", "32", "--steps", "1", "-q",
                         "-o", str(tmp_path / "o.png")]) == 0
    assert len(loads) == 1 and not loads[0].is_pretrained
    found = [str(w.message) for w in caught if issubclass(w.category, WeightsWarning)]
    assert len(found) == 1, found
