"""Self-checks of lesson 10's exercises: right answers pass, known mistakes are named, unfinished ones say so."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nstutil import checks


def _norm(x, dims=(2, 3), unbiased=False, eps=1e-5):
    return (x - x.mean(dim=dims, keepdim=True)) / (x.var(dim=dims, keepdim=True, unbiased=unbiased) + eps).sqrt()


def _not_done(*args):
    raise NotImplementedError()


@pytest.mark.parametrize("answer,passes,words", [
    (lambda x: _norm(x), True, "passed"),
    (lambda x: F.instance_norm(x), True, "passed"),
    (lambda x: _norm(x, dims=(0, 2, 3)), False, "batch normalisation"),
    (lambda x: _norm(x, dims=(1, 2, 3)), False, "layer normalisation"),
    (lambda x: _norm(x, unbiased=True), False, "unbiased"),
    (lambda x: x - x.mean(dim=(2, 3), keepdim=True), False, "only subtracted the mean"),
    (lambda x: _norm(x.detach()), False, "gradient"),
    (_not_done, False, "not done yet"),
])
def test_instance_norm_check(capsys, answer, passes, words):
    assert checks.instance_norm(answer) is passes
    line = capsys.readouterr().out
    assert words in line and line.count("\n") == 1


@pytest.mark.parametrize("answer,passes,words", [
    (lambda x, body: x + body(x), True, "passed"),
    (lambda x, body: body(x), False, "skip connection"),
    (lambda x, body: torch.relu(x + body(x)), False, "ReLU after the sum"),
    (lambda x, body: x.detach() + body(x), False, "gradient"),
    (_not_done, False, "not done yet"),
])
def test_residual_block_check(capsys, answer, passes, words):
    assert checks.residual_block(answer) is passes
    line = capsys.readouterr().out
    assert words in line and line.count("\n") == 1
