"""PerceptualLoss: the course's loss over batches, checked against the single-image Objective."""

from __future__ import annotations

import copy

import pytest
import torch

from nstutil import NSTError, Objective, PerceptualLoss, resolve_recipe
from nstutil.losses import content_loss, style_loss

PRESETS = ["tutorial", "gatys", "coursera", "jcjohnson"]


def _batch(make_image, n, size=32, seed=0):
    return torch.cat([make_image(size, size, seed=seed + k) for k in range(n)])


@pytest.mark.parametrize("preset", PRESETS)
def test_a_batch_of_one_equals_the_objective(vgg, make_image, preset):
    style, content, image = make_image(40, 40, seed=9), make_image(32, 32, seed=1), make_image(32, 32, seed=2)
    loss = PerceptualLoss(style, preset=preset, model=vgg)
    objective = Objective(vgg, resolve_recipe(preset), content=content, styles=[style])
    got, want = loss(image, content), objective(image)
    assert got.total.item() == pytest.approx(want.total, rel=1e-5)
    for name in ("content", "style", "tv"):
        assert getattr(got, name) == pytest.approx(getattr(want, name), rel=1e-5, abs=1e-12)
    assert got.style_layers == pytest.approx(want.style_layers, rel=1e-5)
    assert got.content_layers == pytest.approx(want.content_layers, rel=1e-5)


@pytest.mark.parametrize("preset,statistic", [(p, "gram") for p in PRESETS] + [("gatys", "mean_std")])
def test_a_batch_is_the_mean_of_its_images(vgg, make_image, preset, statistic):
    style = make_image(40, 40, seed=9)
    loss = PerceptualLoss(style, preset=preset, model=vgg, style_statistic=statistic, tv_weight=1.0)
    images, contents = _batch(make_image, 3, seed=10), _batch(make_image, 3, seed=20)
    batch = loss(images, contents)
    singles = [loss(images[k:k + 1], contents[k:k + 1]) for k in range(3)]
    mean = sum(s.total.item() for s in singles) / 3
    assert batch.total.item() == pytest.approx(mean, rel=1e-5)
    for name in ("content", "style", "tv"):
        assert getattr(batch, name) == pytest.approx(sum(getattr(s, name) for s in singles) / 3, rel=1e-5)
    # Not a trivially equal sum: the three images' losses differ.
    assert len({round(s.total.item(), 6) for s in singles}) == 3


@pytest.mark.parametrize("convention", ["tutorial", "coursera", "gatys"])
def test_the_loss_functions_average_a_batch(make_image, convention):
    features = torch.randn(3, 8, 6, 5, generator=torch.Generator().manual_seed(0))
    target = torch.randn(3, 8, 6, 5, generator=torch.Generator().manual_seed(1))
    style_target = torch.randn(1, 8, 7, 7, generator=torch.Generator().manual_seed(2))
    for loss, other in ((content_loss, target), (style_loss, style_target)):
        batch = loss(features, other, convention)
        singles = [loss(features[k:k + 1], other if other.shape[0] == 1 else other[k:k + 1], convention)
                   for k in range(3)]
        assert batch.item() == pytest.approx(sum(s.item() for s in singles) / 3, rel=1e-5)


@pytest.mark.parametrize("preset", ["tutorial", "gatys"])
def test_the_batch_gradient_equals_the_objectives_in_float64(vgg, make_image, preset):
    model = copy.deepcopy(vgg).double()
    style = make_image(32, 32, seed=9).double()
    images, contents = _batch(make_image, 2, size=24, seed=3).double(), _batch(make_image, 2, size=24, seed=7).double()
    loss = PerceptualLoss(style, preset=preset, model=model, tv_weight=0.5)
    x = images.clone().requires_grad_(True)
    loss(x, contents).total.backward()
    for k in range(2):
        objective = Objective(model, resolve_recipe(preset, tv_weight=0.5), content=contents[k:k + 1],
                              styles=[style])
        single = images[k:k + 1].clone().requires_grad_(True)
        objective.loss(single)[0].backward()
        # The batch mean: each image's gradient is its own objective's, divided by the batch size.
        torch.testing.assert_close(x.grad[k:k + 1] * 2, single.grad, rtol=1e-9, atol=1e-12)


def test_gradcheck_through_the_batch_loss(vgg, make_image):
    model = copy.deepcopy(vgg).double()
    style = make_image(16, 16, seed=9).double()
    loss = PerceptualLoss(style, model=model, style_layers=["conv_1", "conv_2"], content_layers=["conv_2"],
                          tv_weight=1.0)
    contents = _batch(make_image, 2, size=8, seed=3).double()
    images = _batch(make_image, 2, size=8, seed=5).double().requires_grad_(True)
    scale = 1.0 / loss(images, contents).total.item()
    assert torch.autograd.gradcheck(lambda x: loss(x, contents).total * scale, (images,), fast_mode=True)


def test_a_network_trains_through_it(vgg, make_image):
    """The loss gives gradients to a network's parameters (what training needs), and a step lowers it."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.Sigmoid())
    loss = PerceptualLoss(make_image(32, 32, seed=9), model=vgg)
    contents = _batch(make_image, 2, seed=4)
    first = loss(net(contents), contents)
    first.total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    assert all(p.grad is None for p in vgg.parameters())


def test_bad_input_is_one_line(vgg, make_image, tmp_path):
    loss = PerceptualLoss(make_image(32, 32), model=vgg)
    for call, words in (
        (lambda: loss(make_image(32, 32)), "contents"),
        (lambda: loss(make_image(32, 32), make_image(24, 24)), "(1, 3, 24, 24)"),
        (lambda: loss(torch.rand(3, 32, 32), None), "B×3×H×W"),
        (lambda: PerceptualLoss(tmp_path / "missing.png", model=vgg), "missing.png"),
        (lambda: PerceptualLoss([], model=vgg), "no style image"),
        (lambda: PerceptualLoss(make_image(32, 32), model=vgg, style_layers=[]), "style_layers"),
        (lambda: PerceptualLoss(make_image(32, 32), model=vgg, preset="nope"), "'nope'"),
    ):
        with pytest.raises(NSTError) as info:
            call()
        assert "\n" not in str(info.value) and words in str(info.value), str(info.value)


def test_several_styles_blend(vgg, make_image):
    a, b = make_image(32, 32, seed=1), make_image(32, 32, seed=2)
    image, content = make_image(32, 32, seed=3), make_image(32, 32, seed=4)
    blended = PerceptualLoss([a, b], model=vgg, style_blend=[1, 0])
    only_a = PerceptualLoss(a, model=vgg)
    assert blended(image, content).total.item() == pytest.approx(only_a(image, content).total.item(), rel=1e-6)
