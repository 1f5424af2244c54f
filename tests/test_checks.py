"""nstutil.checks: the real functions pass every check; known wrong answers get the right hint; unfinished
exercises are "not done yet"; every outcome is one printed line and True or False, never an exception."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import nstutil
from nstutil import checks
from nstutil.feature_maps import average_feature_map
from nstutil.vgg import IMAGENET_MEAN, IMAGENET_STD

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def _run(check, fn, capsys):
    """(returned value, the printed line); asserts exactly one line was printed and nothing went to stderr."""
    result = check(fn)
    out, err = capsys.readouterr()
    assert out.endswith("\n") and out.count("\n") == 1, out
    assert err == ""
    return result, out.strip()


# ----------------------------------------------------------------------------- right answers

def _closure_maker(x, optimizer, loss_fn):
    def closure():
        optimizer.zero_grad()
        loss = loss_fn(x)
        loss.backward()
        return loss
    return closure


def _load_image_by_hand(path):
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)


def _to_pil_by_hand(image):
    return Image.fromarray((image[0].clamp(0, 1).permute(1, 2, 0) * 255).byte().numpy())  # truncates: passes


RIGHT = {
    "load_image": [nstutil.load_image, _load_image_by_hand],
    "to_pil": [nstutil.to_pil, _to_pil_by_hand],
    "normalize": [lambda x: (x - MEAN) / STD, lambda x: nstutil.load_vgg19("random").normalize(x)],
    "gram_matrix": [nstutil.gram_matrix,
                    lambda f: torch.einsum("bchw,bdhw->bcd", f, f) / f[0].numel()],
    "content_loss": [nstutil.content_loss, lambda g, t: torch.nn.functional.mse_loss(g, t)],
    "style_loss": [nstutil.style_loss,
                   lambda g, s: (nstutil.gram_matrix(g) - nstutil.gram_matrix(s)).pow(2).mean()],
    "total_loss": [lambda c, s, a, b: a * sum(c) + b * sum(s),
                   lambda c, s, a, b: a * torch.stack(c).sum() + b * torch.stack(s).sum()],
    "deeplearning_ai_total_cost": [lambda c, s, a, b: a * sum(c) + b * sum(s)],
    "total_variation_loss": [nstutil.total_variation_loss],
    "closure": [_closure_maker],
    "average_feature_map": [average_feature_map,
                            lambda image, layer, model: model(image, [layer])[layer].mean(dim=1)[0]],
    "instance_norm": [lambda x: torch.nn.functional.instance_norm(x)],  # more in test_checks_networks.py
    "residual_block": [lambda x, body: x + body(x)],
}


@pytest.mark.parametrize("name, fn", [(n, f) for n, fns in RIGHT.items() for f in fns])
def test_right_answers_pass(name, fn, capsys):
    passed, line = _run(getattr(checks, name), fn, capsys)
    assert passed is True, line
    assert line.startswith(f"✔ {name}: passed")


def test_every_check_is_exercised():
    assert sorted(RIGHT) == sorted(checks.__all__)


# ----------------------------------------------------------------------------- wrong answers

def _flat(f):
    return f.reshape(f.shape[0], f.shape[1], -1)


def _raw_gram(f):
    return _flat(f) @ _flat(f).transpose(1, 2)


def _closure_without_zero_grad(x, optimizer, loss_fn):
    def closure():
        loss = loss_fn(x)
        loss.backward()
        return loss
    return closure


def _closure_without_backward(x, optimizer, loss_fn):
    def closure():
        optimizer.zero_grad()
        return loss_fn(x)
    return closure


def _closure_returning_nothing(x, optimizer, loss_fn):
    def closure():
        optimizer.zero_grad()
        loss_fn(x).backward()
    return closure


def _closure_that_clamps(x, optimizer, loss_fn):
    def closure():
        with torch.no_grad():
            x.clamp_(0.2, 0.8)
        return _closure_maker(x, optimizer, loss_fn)()
    return closure


def _closure_made_once(x, optimizer, loss_fn):
    loss = loss_fn(x)

    def closure():
        optimizer.zero_grad()
        loss.backward(retain_graph=True)
        return loss
    return closure


def _closure_called(x, optimizer, loss_fn):
    return _closure_maker(x, optimizer, loss_fn)()  # returns the loss, not the function


def _grey_loader(path):
    pixels = np.asarray(Image.open(path), dtype=np.float32) / 255  # no convert("RGB")
    return torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0) if pixels.ndim == 3 else torch.from_numpy(pixels)


def _wrong_style_sum(g, s):
    return (nstutil.gram_matrix(g) - nstutil.gram_matrix(s)).pow(2).sum()


WRONG = [
    # lesson 1
    ("load_image", lambda p: torch.from_numpy(np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255),
     "returns shape (8, 13, 3), not (1, 3, 8, 13): that is Pillow's H×W×3 layout"),
    ("load_image", lambda p: _load_image_by_hand(p)[0], "add the batch dimension"),
    ("load_image", lambda p: _load_image_by_hand(p) * 255, "divide by 255"),
    ("load_image", lambda p: _load_image_by_hand(p).flip(1), "BGR"),
    ("load_image", lambda p: _load_image_by_hand(p).double(), "float64, not float32"),
    ("load_image", lambda p: Image.open(p), "returns a Pillow image"),
    ("load_image", lambda p: np.asarray(Image.open(p)), "NumPy"),
    ("load_image", lambda p: _load_image_by_hand(p).transpose(2, 3), "width and height are swapped"),
    ("load_image", _grey_loader, "convert the picture to RGB"),
    ("to_pil", lambda t: Image.fromarray((t[0].permute(1, 2, 0) * 255).byte().numpy()), "clamp(0, 1)"),
    ("to_pil", lambda t: Image.fromarray(t[0].clamp(0, 1).permute(1, 2, 0).byte().numpy()), "multiply by 255"),
    ("to_pil", lambda t: Image.fromarray((t[0].clamp(0, 1) * 255).byte().reshape(5, 8, 3).numpy()), "scrambled"),
    ("to_pil", lambda t: t, "not a Pillow image"),
    ("to_pil", lambda t: Image.fromarray((t[0].clamp(0, 1) * 255).byte().permute(2, 1, 0).numpy()), "not 8×5"),
    ("normalize", lambda x: x - MEAN, "also divide by the standard deviation"),
    ("normalize", lambda x: x - MEAN / STD, "write (x − mean) / std"),
    ("normalize", lambda x: (x - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD), "1×3×1×1"),
    ("normalize", lambda x: x.sub_(MEAN).div_(STD), "in place"),
    ("normalize", lambda x: ((x - MEAN) / STD).detach(), "no gradient flows"),
    # lesson 3
    ("gram_matrix", lambda f: _raw_gram(f) / (f.shape[2] * f.shape[3]), "divided by H·W only: also divide by C"),
    ("gram_matrix", _raw_gram, "not normalised: divide F·Fᵀ by C·H·W"),
    ("gram_matrix", lambda f: _raw_gram(f) / f.shape[1], "divided by C only: also divide by H·W"),
    ("gram_matrix", lambda f: (_flat(f).transpose(1, 2) @ _flat(f)) / f[0].numel(), "not Fᵀ·F"),
    ("gram_matrix", lambda f: (_raw_gram(f) / f[0].numel())[0], "keep the batch dimension"),
    ("gram_matrix", lambda f: (_raw_gram(f) / f[0].numel()).sum().item(), "returns a Python float"),
    ("gram_matrix", lambda f: torch.tensor((_raw_gram(f) / f[0].numel()).tolist()), "no gradient flows"),
    ("gram_matrix", lambda f: _flat(f) @ _flat(f).detach().transpose(1, 2) / f[0].numel(), "gradient is not"),
    ("gram_matrix", lambda f: _flat(f)[:, :, : f.shape[1]] / f[0].numel(), "not symmetric"),
    ("gram_matrix", lambda f: None, "returns None"),
    ("gram_matrix", lambda f: 2 * nstutil.gram_matrix(f), "constant factor of 2"),
    ("gram_matrix", lambda f, g: nstutil.gram_matrix(f), "it must take a 1×C×H×W feature map"),
    ("gram_matrix", lambda f: f.reshape(5), "raised RuntimeError"),
    # lesson 4
    ("content_loss", lambda g, t: (g - t).pow(2).sum(), "summed the squared differences: take the mean"),
    ("content_loss", lambda g, t: 0.5 * (g - t).pow(2).sum(), "Gatys"),
    ("content_loss", lambda g, t: (g - t).abs().mean(), "square the differences"),
    ("content_loss", lambda g, t: (g - t).pow(2), "not one number: reduce it to one number with .mean()"),
    ("content_loss", lambda g, t: (g - t).pow(2).mean().item(), "returns a Python float"),
    ("style_loss", lambda g, s: (g - s).pow(2).mean(), "compares the feature maps, not their Gram matrices"),
    ("style_loss", _wrong_style_sum, "summed over the C×C entries"),
    ("style_loss", lambda g, s: (_raw_gram(g) - _raw_gram(s)).pow(2).mean(), "not normalised"),
    ("style_loss", lambda g, s: (nstutil.gram_matrix(g) - _raw_gram(s) / g[0].numel()).pow(2).mean(),
     "its own size"),
    ("total_loss", lambda c, s, a, b: b * sum(c) + a * sum(s), "the weights are swapped"),
    ("total_loss", lambda c, s, a, b: a * sum(c) / len(c) + b * sum(s) / len(s), "add them up"),
    ("total_loss", lambda c, s, a, b: sum(c) + sum(s), "forgot the weights"),
    ("total_loss", lambda c, s, a, b: a * c[0] + b * s[0], "only the first"),
    ("total_loss", lambda c, s, a, b: (a * sum(c) + b * sum(s)).item(), "returns a Python float"),
    ("total_variation_loss", lambda x: (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean(), "add the vertical ones"),
    ("total_variation_loss", lambda x: nstutil.total_variation_loss(x, p=1.0), "square them"),
    ("total_variation_loss", lambda x: (x[..., :, 1:] - x[..., :, :-1]).pow(2).sum()
     + (x[..., 1:, :] - x[..., :-1, :]).pow(2).sum(), "take the mean"),
    # lesson 5
    ("closure", _closure_without_zero_grad, "forgets optimizer.zero_grad()"),
    ("closure", _closure_without_backward, "call loss.backward()"),
    ("closure", _closure_returning_nothing, "returns None: return the loss"),
    ("closure", _closure_that_clamps, "changes x inside the closure"),
    ("closure", _closure_made_once, "when the closure is made"),
    ("closure", _closure_called, "not a function: end with 'return closure'"),
    # lesson 6
    ("average_feature_map", lambda i, l, m: m(i, [l])[l].mean(dim=1), "keeps the batch dimension"),
    ("average_feature_map", lambda i, l, m: m(i, [l])[l][0].sum(dim=0), "summed the channels"),
    ("average_feature_map", lambda i, l, m: m(i, [l])[l][0], "average them"),
    ("average_feature_map", lambda i, l, m: m(m.normalize(i), [l])[l][0].mean(dim=0), "already normalises"),
    ("average_feature_map", lambda i, l, m: m(i, ["relu2_1"])["relu2_1"][0].mean(dim=0), "use the layer argument"),
]


@pytest.mark.parametrize("name, fn, hint", WRONG, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(WRONG)])
def test_wrong_answers_named_with_a_hint(name, fn, hint, capsys):
    passed, line = _run(getattr(checks, name), fn, capsys)
    assert passed is False
    assert line.startswith(f"✘ {name}: ") and hint in line, line


# ----------------------------------------------------------------------------- unfinished and bad input

def _not_done(*args):
    # YOUR CODE HERE
    raise NotImplementedError()


def _closure_not_done(x, optimizer, loss_fn):
    def closure():
        # YOUR CODE HERE
        raise NotImplementedError()
    return closure


@pytest.mark.parametrize("name", checks.__all__)
def test_unfinished_exercise_is_not_done_yet(name, capsys):
    for fn in (_not_done, _closure_not_done) if name == "closure" else (_not_done,):
        passed, line = _run(getattr(checks, name), fn, capsys)
        assert passed is False
        assert line == f"○ {name}: not done yet (replace raise NotImplementedError() with your code)"


@pytest.mark.parametrize("name", checks.__all__)
@pytest.mark.parametrize("bad", [None, 3, "gram_matrix", torch.zeros(2, 2)], ids=["None", "int", "str", "tensor"])
def test_not_a_function(name, bad, capsys):
    passed, line = _run(getattr(checks, name), bad, capsys)
    assert passed is False and "not a function" in line and line.startswith(f"✘ {name}: ")


@pytest.mark.parametrize("name", checks.__all__)
def test_a_function_that_raises_or_returns_junk(name, capsys):
    def boom(*args):
        raise ValueError("something\nover several lines")

    passed, line = _run(getattr(checks, name), boom, capsys)
    assert passed is False and "raised ValueError: something" in line and "several" not in line
    passed, line = _run(getattr(checks, name), lambda *args: object(), capsys)
    assert passed is False and line.startswith(f"✘ {name}: ")


def test_checks_do_not_disturb_the_global_random_state():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    checks.gram_matrix(nstutil.gram_matrix)
    checks.closure(_closure_maker)
    assert torch.equal(torch.rand(3), expected)
