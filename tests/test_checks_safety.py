"""Self-checks never change the caller's objects and stop a function that runs too long (nstutil._checking)."""

from __future__ import annotations

import time

import torch

import nstutil
from nstutil import _checking, checks


def _state(model):
    return ({name: (p.dtype, p.device, p.requires_grad) for name, p in model.named_parameters()},
            {name: t.clone() for name, t in model.state_dict().items()})


def test_a_function_that_changes_the_model_leaves_the_shared_one_alone(capsys):
    shared = nstutil.load_vgg19("random")  # the model the check uses and the notebook holds
    before = _state(shared)

    def meddling(image, layer, model):
        model.requires_grad_(True)
        with torch.no_grad():
            model.features[0].weight.mul_(2.0)
        model.double()
        return model(image.double(), [layer])[layer][0].mean(dim=0).float()

    assert checks.average_feature_map(meddling) is False  # its doubled first convolution gives other maps
    after = _state(shared)
    assert after[0] == before[0]
    assert all(torch.equal(after[1][k], before[1][k]) for k in before[1])
    assert shared(torch.rand(1, 3, 32, 32), ["relu1_1"])["relu1_1"].dtype == torch.float32
    assert "average_feature_map" in capsys.readouterr().out


def test_a_correct_function_still_passes_with_the_copy(capsys):
    assert checks.average_feature_map(lambda image, layer, model: model(image, [layer])[layer][0].mean(dim=0))
    assert "✔" in capsys.readouterr().out


def test_a_function_that_never_returns_is_stopped(monkeypatch, capsys):
    monkeypatch.setattr(_checking, "TIME_LIMIT", 0.5)

    def stuck(features):
        while True:
            try:
                time.sleep(0.05)
            except Exception:  # a student's catch-all must not swallow the time limit
                pass

    assert checks.gram_matrix(stuck) is False
    out = capsys.readouterr().out
    assert "gram_matrix" in out and "did not return within 0.5 s" in out and out.count("\n") == 1
    # The limit is gone afterwards: a slow but finishing function is not stopped later.
    time.sleep(0.7)
    assert checks.gram_matrix(lambda f: nstutil.gram_matrix(f))
