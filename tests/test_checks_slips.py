"""The commonest slips in the exercises (issue 23.1): a wrong transpose, a wrong axis, a lost batch dimension, an
in-place change, a NumPy detour. Each check must answer with a sentence about the student's own line, not with
PyTorch's message about the check's hidden tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nstutil import checks


def gram_no_transpose(features):
    b, c, h, w = features.shape
    F = features.reshape(b, c, h * w)
    G = F @ F
    return G / (c * h * w)


def gram_dot_T(features):
    b, c, h, w = features.shape
    F = features.reshape(b, c, h * w)
    G = F @ F.T
    return G / (c * h * w)


def gram_wrong_axis(features):
    b, c, h, w = features.shape
    F = features.reshape(b, c, h * w)
    G = F @ F.transpose(0, 1)
    return G / (c * h * w)


def gram_lost_batch(features):
    b, c, h, w = features.shape
    F = features.reshape(c, h * w)
    return F @ F.t() / (c * h * w)


def gram_in_place(features):
    b, c, h, w = features.shape
    features /= c * h * w
    F = features.reshape(b, c, h * w)
    return F @ F.transpose(1, 2) * (c * h * w)


def gram_numpy(features):
    b, c, h, w = features.shape
    F = features.reshape(b, c, h * w).numpy()
    G = np.matmul(F, F.transpose(0, 2, 1))
    return torch.from_numpy(G) / (c * h * w)


def gram_view_after_transpose(features):
    b, c, h, w = features.shape
    F = features.transpose(2, 3).view(b, c, h * w)
    return F @ F.transpose(1, 2) / (c * h * w)


def content_wrong_axis(generated, target):
    return (generated - target).pow(2).mean(dim=4)


def feature_map_unpack(image, layer, model):
    b, c, h, w, _ = model(image, [layer])[layer].shape
    return None


SLIPS = [
    (checks.gram_matrix, gram_no_transpose, ["`G = F @ F`", "F @ F.transpose(1, 2)", "not by F itself"]),
    (checks.gram_matrix, gram_dot_T, ["`G = F @ F.T`", "reverses all its dimensions", ".transpose(1, 2)"]),
    (checks.gram_matrix, gram_wrong_axis, ["`G = F @ F.transpose(0, 1)`", "swaps the wrong dimensions"]),
    (checks.gram_matrix, gram_lost_batch, ["keep the batch dimension"]),
    (checks.gram_matrix, gram_in_place, ["`features /= c * h * w`", "in place"]),
    (checks.gram_matrix, gram_numpy, ["leaves PyTorch for NumPy", "gradients cannot flow"]),
    (checks.gram_matrix, gram_view_after_transpose, ["`F = features.transpose(2, 3).view(b, c, h * w)`",
                                                     ".reshape"]),
    (checks.content_loss, content_wrong_axis, ["`return (generated - target).pow(2).mean(dim=4)`",
                                               "dimension the tensor does not have"]),
    (checks.average_feature_map, feature_map_unpack, ["wrong number of names", "(b, C, H, W)"]),
]


@pytest.mark.parametrize("check, wrong, phrases", SLIPS, ids=[w.__name__ for _, w, _ in SLIPS])
def test_slip_is_named_in_a_sentence(check, wrong, phrases, capsys):
    assert check(wrong) is False
    out, err = capsys.readouterr()
    line = out.strip()
    assert out.count("\n") == 1 and err == "", (out, err)
    for phrase in phrases:
        assert phrase in line, line
    # PyTorch's own wording about the check's hidden tensors is gone
    for raw in ("batch2", "Expected size", "Can't call numpy", "mat1 and mat2", "raised RuntimeError"):
        assert raw not in line, line
