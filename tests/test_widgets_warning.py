"""The warning a notebook shows when pretrained weights cannot be had: short lines, pointing at the student's code.

It was one dense paragraph attributed to IPython's interactiveshell.py, after a "Downloading: ..." line for a
download that could not happen (issue 13).
"""

from __future__ import annotations

import warnings

import pytest
import torch

import nstutil
from nstutil import WeightsWarning
from nstutil import vgg as vgg_module
from nstutil.cli import _warning_line


@pytest.fixture()
def offline(monkeypatch, tmp_path):
    """An empty torch.hub cache, and a network that does not answer (simulated: no real request is made)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.delenv("NSTUTIL_WEIGHTS", raising=False)
    monkeypatch.setattr(vgg_module, "_cache", {})
    monkeypatch.setattr(vgg_module, "_unreachable",
                        lambda url, timeout=5.0: "download.pytorch.org cannot be reached (simulated)")

    def no_download(*args, **kwargs):
        raise AssertionError("a download was tried although the server cannot be reached")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    return tmp_path / "torch-home"


def _the_warning(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = call()
    found = [w for w in caught if issubclass(w.category, WeightsWarning)]
    assert len(found) == 1, [str(w.message) for w in caught]
    return found[0], model


def test_the_warning_points_at_the_callers_line_and_says_what_happened_and_what_to_do(offline, capfd):
    warning, model = _the_warning(lambda: nstutil.load_vgg19())
    assert warning.filename == __file__  # this test, as it would be the student's cell; not nstutil, not IPython
    lines = str(warning.message).splitlines()
    url, folder = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", str(offline / "hub" / "checkpoints")
    assert len(lines) == 4 and all(len(line.replace(url, "").replace(folder, "")) < 110 for line in lines)
    assert lines[0].startswith("Pretrained VGG19 weights unavailable") and "RANDOM" in lines[0]
    assert lines[1] == "Why: they are not in torch.hub's cache and download.pytorch.org cannot be reached (simulated)."
    assert lines[2] == f"Fix: download {url} into {folder} and restart, or set NSTUTIL_WEIGHTS=random to hide this."
    # the classroom route the teacher's guide recommends (issue 23.6)
    assert lines[3] == "In a class: put the file on a share, set NSTUTIL_WEIGHTS=/share/vgg19-dcbb9e9d.pth " \
                       "(notebooks/README.md).", lines[3]
    assert "Downloading" not in capfd.readouterr().err  # no download was started
    assert model.weights_name == "random:0"


def test_the_warning_points_at_the_callers_line_from_deeper_inside_nstutil(offline):
    content = torch.rand(1, 3, 32, 32)
    warning, result = _the_warning(lambda: nstutil.style_transfer(content, content, steps=1, progress=False))
    assert warning.filename == __file__  # through style_transfer -> load_vgg19 -> the loader
    assert result.settings["weights"] == "random:0"


def test_a_failed_download_is_reported_the_same_way(monkeypatch, offline):
    import urllib.error

    monkeypatch.setattr(vgg_module, "_unreachable", lambda url, timeout=5.0: None)  # the server answers, but …

    def broken(url, *args, **kwargs):
        raise urllib.error.URLError("connection reset (simulated)")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", broken)
    warning, _ = _the_warning(lambda: nstutil.load_vgg19())
    lines = str(warning.message).splitlines()
    assert len(lines) == 4 and "could not be downloaded" in lines[1] and "connection reset" in lines[1]
    assert warning.filename == __file__


def test_the_command_line_still_prints_it_as_one_line(offline):
    warning, _ = _the_warning(lambda: nstutil.load_vgg19())
    line = _warning_line(warning.message, warning.category, warning.filename, warning.lineno)
    assert line.startswith("nstutil: warning: Pretrained VGG19 weights unavailable") and line.count("\n") == 1
