"""style_transfer: exact evaluation counts, the PyTorch tutorial's losses, stopping, Ctrl-C, NaN, bad input."""

from __future__ import annotations

import copy
import importlib.util
import math
from pathlib import Path

import pytest
import torch

import nstutil
import nstutil.objective as objective_module
from nstutil import NSTError, content_loss, style_loss, style_transfer, total_variation_loss

REPO = Path(__file__).resolve().parent.parent


def _tutorial():
    """The benchmark's faithful rebuild of the PyTorch neural-style tutorial, used here as the oracle."""
    path = REPO / "benchmarks" / "tutorial_baseline.py"
    assert path.is_file(), f"the tutorial oracle {path} is missing"
    spec = importlib.util.spec_from_file_location("tutorial_baseline_oracle", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tutorial():
    return _tutorial()


@pytest.fixture(scope="module")
def tutorial_cnn(vgg, torchvision_vgg19):
    """torchvision's ``vgg19().features`` (in-place ReLUs and all) holding nstutil's random weights."""
    features = copy.deepcopy(torchvision_vgg19.features)
    features.load_state_dict(vgg.features.state_dict())
    return features.eval()


def run(content, style, vgg, **kwargs):
    kwargs.setdefault("steps", 4)
    kwargs.setdefault("progress", False)
    return style_transfer(content, style, model=vgg, **kwargs)


def tutorial_losses(tutorial, cnn, content, style, image):
    """The tutorial's (weighted style score, weighted content score, per-layer style losses) at ``image``.

    Runs the tutorial's own ``run_style_transfer`` and leaves it from its first closure: the first evaluation is
    that of the starting image.
    """
    seen = {}

    class Leave(Exception):
        pass

    def first(run_count, style_score, content_score):
        seen["style"], seen["content"] = style_score.item(), content_score.item()
        raise Leave

    model, style_losses, _ = tutorial.get_style_model_and_losses(
        cnn, tutorial.CNN_NORMALIZATION_MEAN, tutorial.CNN_NORMALIZATION_STD, style, content)
    model(image)
    seen["layers"] = [sl.loss.item() for sl in style_losses]
    with pytest.raises(Leave):
        tutorial.run_style_transfer(cnn, tutorial.CNN_NORMALIZATION_MEAN, tutorial.CNN_NORMALIZATION_STD,
                                    content, style, image.clone(), num_steps=300, on_evaluation=first)
    return seen


# ---------------------------------------------------------------------------------------- tutorial oracle

@pytest.mark.parametrize("shape", [(32, 40), (37, 29)])
def test_tutorial_losses_equal_the_tutorials(tutorial, tutorial_cnn, vgg, make_image, shape):
    # The tutorial needs the style image at the content image's size (its content-loss module sees both).
    content = make_image(*shape, seed=10)
    style = make_image(*shape, seed=11)
    start = make_image(*shape, seed=12)  # a third image, so that the content loss is not zero
    result = run(content, style, vgg, preset="tutorial", init=start, steps=1)
    first = result.history[0]
    oracle = tutorial_losses(tutorial, tutorial_cnn, content, style, start)
    assert oracle["content"] > 0 and oracle["style"] > 0
    assert first.content == pytest.approx(oracle["content"], rel=1e-5)
    assert first.style == pytest.approx(oracle["style"], rel=1e-5)
    assert first.total == pytest.approx(oracle["content"] + oracle["style"], rel=1e-5)
    assert list(first.style_layers) == [f"conv_{i}" for i in range(1, 6)]
    assert list(first.content_layers) == ["conv_4"]
    for ours, theirs in zip(first.style_layers.values(), oracle["layers"]):
        assert ours == pytest.approx(theirs, rel=1e-5)


def test_tutorial_losses_with_explicit_recipe(tutorial, tutorial_cnn, vgg, make_image):
    """The same numbers when the tutorial's recipe is spelt out, in paper names, rather than taken from the preset."""
    content, style = make_image(32, 32, seed=20), make_image(32, 32, seed=21)
    result = run(content, style, vgg, preset="gatys", convention="tutorial", init="content", steps=1,
                 content_layers=["conv2_2"], style_layers=["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"],
                 content_weight=1, style_weight=1e6, tv_weight=0)
    oracle = tutorial_losses(tutorial, tutorial_cnn, content, style, content.clone())
    assert result.history[0].style == pytest.approx(oracle["style"], rel=1e-5)
    assert result.history[0].content == pytest.approx(oracle["content"], abs=1e-9)
    assert result.history[0].content < 1e-6  # the content image against itself


def test_first_evaluation_is_the_tutorials_on_a_photo_with_black_and_white(tutorial, tutorial_cnn, vgg):
    """history[0] of the tutorial preset is the tutorial's loss at the content image itself, also where the photo
    has pure black and white pixels (a start moved 1/255 inside (0, 1), as a plain sigmoid needs, is 0.4 % off)."""
    content = nstutil.load_image(nstutil.image_path("astronaut"), size=48)
    content[..., :6, :6] = 0.0
    content[..., -6:, -6:] = 1.0
    style = nstutil.load_image(nstutil.DEFAULT_STYLE, size=(48, 48))
    first = run(content, style, vgg, preset="tutorial", steps=1).history[0]
    oracle = tutorial_losses(tutorial, tutorial_cnn, content, style, content.clone())
    assert oracle["content"] == 0.0 and first.content < 1e-10  # the start is reached to float rounding
    assert first.style == pytest.approx(oracle["style"], rel=1e-5)
    assert first.total == pytest.approx(oracle["style"], rel=1e-5)


def test_tutorial_preset_matches_the_tutorial():
    recipe = nstutil.get_preset("tutorial")
    tutorial = _tutorial()
    assert list(recipe.content_layers) == tutorial.CONTENT_LAYERS_DEFAULT
    assert list(recipe.style_layers) == tutorial.STYLE_LAYERS_DEFAULT
    assert (recipe.content_weight, recipe.style_weight, recipe.convention, recipe.init) == (1, 1e6, "tutorial",
                                                                                            "content")


# ------------------------------------------------------------------------------------ the loss it records

def test_history_zero_by_hand_gatys(vgg, make_image):
    """The weighted sum α Σ w Lc + β Σ w Ls + γ TV, computed here from nstutil's parts, is history[0]."""
    content, style, start = make_image(32, 32, seed=30), make_image(40, 32, seed=31), make_image(32, 32, seed=32)
    content_w = {"relu4_2": 1.0, "relu_5": 0.5}
    style_w = {"relu1_1": 0.2, "relu_3": 0.3, "relu5_1": 0.7}
    result = run(content, style, vgg, preset="gatys", init=start, steps=1, content_layers=content_w,
                 style_layers=style_w, content_weight=2.0, style_weight=1e3, tv_weight=0.5)
    with torch.no_grad():
        fs, fc, fx = vgg(start, [*content_w, *style_w]), vgg(content, list(content_w)), vgg(style, list(style_w))
        lc = {n: content_loss(fs[n], fc[n], "gatys").item() for n in content_w}
        ls = {n: style_loss(fs[n], fx[n], "gatys").item() for n in style_w}
        tv = total_variation_loss(start).item()
    first = result.history[0]
    for n in content_w:
        assert first.content_layers[n] == pytest.approx(lc[n], rel=1e-4)
    for n in style_w:
        assert first.style_layers[n] == pytest.approx(ls[n], rel=1e-4)
    assert first.content == pytest.approx(2.0 * sum(content_w[n] * lc[n] for n in content_w), rel=1e-4)
    assert first.style == pytest.approx(1e3 * sum(style_w[n] * ls[n] for n in style_w), rel=1e-4)
    assert first.tv == pytest.approx(0.5 * tv, rel=1e-4)
    assert first.total == pytest.approx(first.content + first.style + first.tv, rel=1e-6)
    assert first.evaluation == 0 and first.elapsed >= 0


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
@pytest.mark.parametrize("steps", [1, 7])
def test_steps_count_evaluations_exactly(vgg, make_image, optimizer, steps):
    forwards = []
    handle = vgg.features[0].register_forward_hook(lambda *a: forwards.append(1))
    try:
        result = run(make_image(32, 32), make_image(32, 32, seed=1), vgg, optimizer=optimizer, steps=steps)
    finally:
        handle.remove()
    assert len(result.history) == steps
    assert [r.evaluation for r in result.history] == list(range(steps))
    # One forward pass per evaluation, plus one each for the content and the style targets.
    assert len(forwards) == steps + 2
    assert result.stop_reason == "completed"
    assert result.best_evaluation == min(range(steps), key=lambda i: result.history[i].total)
    assert result.best_loss == result.history[result.best_evaluation].total


def test_loss_decreases(vgg, make_image):
    for optimizer in ("lbfgs", "adam"):
        result = run(make_image(32, 32), make_image(32, 32, seed=2), vgg, optimizer=optimizer, steps=12,
                     init="noise")
        assert result.best_loss < 0.7 * result.history[0].total, optimizer
        assert result.history[-1].total < result.history[0].total


def test_pixels_stay_in_range(vgg, make_image):
    seen = []

    def watch(ev):
        seen.append((ev.image.min().item(), ev.image.max().item()))

    for optimizer, lr in (("adam", 5.0), ("lbfgs", 100.0)):
        seen.clear()
        result = run(make_image(32, 32), make_image(32, 32, seed=3), vgg, optimizer=optimizer, lr=lr, steps=6,
                     callback=watch, style_weight=1e9)
        assert len(seen) == 6
        assert all(lo >= 0.0 and hi <= 1.0 for lo, hi in seen)
        assert result.image.min() >= 0 and result.image.max() <= 1
        assert result.image.shape == (1, 3, 32, 32) and result.image.dtype == torch.float32


@pytest.mark.parametrize("init", ["noise", "blend", "content"])
def test_same_seed_same_image(vgg, make_image, init):
    content, style = make_image(32, 32, seed=4), make_image(32, 32, seed=5)
    a = run(content, style, vgg, init=init, seed=3, steps=5)
    b = run(content, style, vgg, init=init, seed=3, steps=5)
    assert torch.equal(a.image, b.image)
    assert [r.total for r in a.history] == [r.total for r in b.history]
    if init != "content":
        c = run(content, style, vgg, init=init, seed=4, steps=5)
        assert not torch.equal(a.image, c.image)


def test_init_images(vgg, make_image):
    content = make_image(32, 32, seed=6)
    starts = {}
    for init in ("content", "noise", "blend"):
        run(content, make_image(32, 32, seed=7), vgg, init=init, seed=9, steps=1,
            callback=lambda ev, init=init: starts.update({init: ev.image}))
    noise = torch.rand(content.shape, generator=torch.Generator().manual_seed(9))
    # The first evaluation is at the start, to float rounding (the stretched sigmoid reaches 0 and 1).
    torch.testing.assert_close(starts["content"], content, atol=1e-6, rtol=0)
    torch.testing.assert_close(starts["noise"], noise, atol=1e-6, rtol=0)
    # deeplearning.ai's TensorFlow 2 start: the content plus U(-0.25, 0.25), clipped.
    torch.testing.assert_close(starts["blend"], (content + 0.25 * (2 * noise - 1)).clamp(0, 1), atol=1e-6, rtol=0)


def test_layers_list_dict_and_both_schemes(vgg, make_image):
    content, style = make_image(32, 32, seed=8), make_image(32, 32, seed=9)
    as_list = run(content, style, vgg, content_layers="relu_10", style_layers=["relu_1", "relu_3"], steps=3)
    as_dict = run(content, style, vgg, content_layers={"relu4_2": 1}, style_layers={"relu1_1": 1.0, "relu2_1": 1},
                  steps=3)
    assert [r.total for r in as_list.history] == pytest.approx([r.total for r in as_dict.history], rel=1e-6)
    assert torch.equal(as_list.image, as_dict.image)
    assert set(as_list.history[0].style_layers) == {"relu_1", "relu_3"}  # names kept as given
    weighted = run(content, style, vgg, content_layers={"relu4_2": 1}, style_layers={"relu1_1": 1.0, "relu2_1": 3},
                   steps=1)
    s = weighted.history[0].style_layers
    beta = nstutil.get_preset("tutorial").style_weight
    assert weighted.history[0].style == pytest.approx(beta * (s["relu1_1"] + 3 * s["relu2_1"]), rel=1e-5)
    assert weighted.settings["style_layers"] == {"relu1_1": 1.0, "relu2_1": 3.0}


def test_no_content_layers_is_texture_synthesis(vgg, make_image):
    result = run(make_image(32, 32), make_image(32, 32, seed=1), vgg, content_layers=[], init="noise", steps=3)
    assert all(r.content == 0 and r.content_layers == {} for r in result.history)
    assert result.history[0].style > 0


def test_paths_as_inputs(vgg, tmp_path, make_image):
    content_path, style_path = tmp_path / "content.png", tmp_path / "style.png"
    nstutil.save_image(make_image(30, 60, seed=1), content_path)
    nstutil.save_image(make_image(80, 80, seed=2), style_path)
    result = run(content_path, style_path, vgg, size=40, steps=2)
    assert result.image.shape == (1, 3, 20, 40)
    assert result.settings["content_path"] == str(content_path)
    with pytest.raises(NSTError, match="input"):
        result.save(content_path)
    with pytest.raises(NSTError, match="input"):
        result.save(style_path)
    written = result.save(tmp_path / "result.png")
    torch.testing.assert_close(nstutil.load_image(written), result.image, atol=1 / 255, rtol=0)


def test_intermediates(vgg, make_image):
    result = run(make_image(32, 32), make_image(32, 32, seed=1), vgg, steps=7, intermediate_every=3)
    assert [n for n, _ in result.intermediates] == [0, 3, 6]
    assert all(img.shape == (1, 3, 32, 32) for _, img in result.intermediates)


# ------------------------------------------------------------------------------- stopping and going wrong

def _recording_callback(images, stop_at=None, action=None):
    def callback(ev):
        images.append(ev.image)
        assert ev.record is ev.history[-1]
        if stop_at is not None and ev.record.evaluation == stop_at:
            return action()
        return None

    return callback


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_callback_stops_the_run(vgg, make_image, optimizer):
    images = []
    result = run(make_image(32, 32), make_image(32, 32, seed=1), vgg, optimizer=optimizer, steps=50, init="noise",
                 callback=_recording_callback(images, stop_at=4, action=lambda: True))
    assert result.stop_reason == "callback"
    assert len(result.history) == 5 and len(images) == 5
    best = min(range(5), key=lambda i: result.history[i].total)
    assert result.best_evaluation == best
    assert torch.equal(result.image, images[best])
    assert "callback" in result.message


@pytest.mark.parametrize("how", ["callback", "interrupted", "completed"])
def test_best_image_is_the_lowest_loss_not_the_last(vgg, make_image, how):
    """Adam with a large step overshoots: the loss goes up after the start, so the best image is not the last."""
    images = []

    def stop():
        if how == "interrupted":
            raise KeyboardInterrupt
        return True

    try:
        result = run(make_image(32, 32), make_image(32, 32, seed=1), vgg, optimizer="adam", lr=0.5, steps=6,
                     callback=_recording_callback(images, stop_at=4 if how != "completed" else None, action=stop))
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped style_transfer")
    assert result.stop_reason == how
    totals = [r.total for r in result.history]
    best = min(range(len(totals)), key=totals.__getitem__)
    assert best != len(totals) - 1, "precondition: the loss must not be lowest at the end"
    assert result.best_evaluation == best and result.best_loss == totals[best]
    assert torch.equal(result.image, images[best])
    assert not torch.equal(result.image, images[-1])


def test_callback_false_does_not_stop(vgg, make_image):
    result = run(make_image(32, 32), make_image(32, 32, seed=1), vgg, steps=4, callback=lambda ev: False)
    assert result.stop_reason == "completed" and len(result.history) == 4


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_keyboard_interrupt_keeps_best_image(vgg, make_image, optimizer):
    images = []

    def interrupt():
        raise KeyboardInterrupt

    try:
        result = run(make_image(32, 32), make_image(32, 32, seed=1), vgg, optimizer=optimizer, steps=50,
                     init="noise", callback=_recording_callback(images, stop_at=3, action=interrupt))
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped style_transfer")
    assert result.stop_reason == "interrupted"
    assert len(result.history) == 4
    best = min(range(4), key=lambda i: result.history[i].total)
    assert torch.equal(result.image, images[best])
    assert "interrupted" in result.message


def test_nan_mid_run_stops_and_keeps_last_finite(vgg, make_image, monkeypatch):
    real = objective_module.style_loss_in_pass
    calls = {"n": 0}
    n_style = len(nstutil.get_preset("tutorial").style_layers)

    def poisoned(generated, target, convention):
        calls["n"] += 1
        features, value = real(generated, target, convention)
        return features, value * math.nan if calls["n"] > 3 * n_style else value  # evaluation 3 and later

    monkeypatch.setattr(objective_module, "style_loss_in_pass", poisoned)
    images = []
    with pytest.warns(RuntimeWarning, match="nan") as record:
        result = run(make_image(32, 32), make_image(32, 32, seed=1), vgg, steps=20, init="noise",
                     callback=_recording_callback(images))
    assert result.stop_reason == "nonfinite"
    assert len(result.history) == 4 and math.isnan(result.history[-1].total)
    assert all(math.isfinite(r.total) for r in result.history[:3])
    assert torch.isfinite(result.image).all()
    best = min(range(3), key=lambda i: result.history[i].total)
    assert result.best_evaluation == best and torch.equal(result.image, images[best])
    assert "Lower" in str(record[0].message) and result.message == str(record[0].message)


def test_infinite_loss_from_a_huge_weight(vgg, make_image):
    start = make_image(32, 32, seed=2)
    with pytest.warns(RuntimeWarning):
        result = run(make_image(32, 32), make_image(32, 32, seed=1), vgg, preset="gatys", content_weight=3e38,
                     init=start, steps=10)
    assert result.stop_reason == "nonfinite"
    assert len(result.history) == 1 and math.isinf(result.history[0].total)
    assert torch.isfinite(result.image).all()
    torch.testing.assert_close(result.image, start, atol=1e-6, rtol=0)  # nothing better than the start


def test_interrupt_outside_the_closure_is_caught(vgg, make_image, monkeypatch):
    """Ctrl-C may arrive anywhere in the loop, e.g. inside the optimiser's bookkeeping."""
    real_step = torch.optim.Adam.step
    count = {"n": 0}

    def step(self, closure=None):
        count["n"] += 1
        if count["n"] == 3:
            raise KeyboardInterrupt
        return real_step(self, closure)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    try:
        result = run(make_image(32, 32), make_image(32, 32, seed=1), vgg, optimizer="adam", steps=10)
    except KeyboardInterrupt:
        pytest.fail("KeyboardInterrupt escaped style_transfer")
    assert result.stop_reason == "interrupted" and len(result.history) == 2
    assert torch.isfinite(result.image).all()


# ------------------------------------------------------------------------------------------------ bad input

BAD_INPUTS = {
    "unknown content layer": dict(content_layers=["relu4_9"]),
    "unknown style layer": dict(style_layers=["conv_1", "relu_99"]),
    "no style layers (list)": dict(style_layers=[]),
    "no style layers (dict)": dict(style_layers={}),
    "no layers at all": dict(style_layers=[], content_layers=[]),
    "negative content weight": dict(content_weight=-1.0),
    "NaN style weight": dict(style_weight=math.nan),
    "infinite tv weight": dict(tv_weight=math.inf),
    "text weight": dict(style_weight="lots"),
    "negative layer weight": dict(style_layers={"relu1_1": -0.5}),
    "NaN layer weight": dict(content_layers={"relu4_2": math.nan}),
    "unknown init": dict(init="zeros"),
    "init of the wrong size": dict(init=torch.rand(1, 3, 16, 16)),
    "unknown optimizer": dict(optimizer="sgd"),
    "zero steps": dict(steps=0),
    "negative steps": dict(steps=-5),
    "fractional steps": dict(steps=2.5),
    "boolean steps": dict(steps=True),
    "text steps": dict(steps="10"),
    "zero lr": dict(lr=0.0),
    "NaN lr": dict(lr=math.nan),
    "unknown convention": dict(convention="keras"),
    "unknown preset": dict(preset="picasso"),
    "intermediate_every 0": dict(intermediate_every=0),
    "unknown device": dict(device="warp-drive"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input(vgg, make_image, case):
    with pytest.raises(NSTError) as info:
        run(make_image(32, 32), make_image(32, 32, seed=1), vgg, **BAD_INPUTS[case])
    assert "\n" not in str(info.value)


def test_image_too_small_for_the_deepest_layer(vgg, make_image):
    with pytest.raises(NSTError, match="relu5_1") as info:
        run(make_image(15, 40), make_image(32, 32), vgg, preset="gatys")
    assert "16" in str(info.value)
    with pytest.raises(NSTError, match="style image"):
        run(make_image(32, 32), make_image(12, 40), vgg, preset="gatys")
    run(make_image(16, 16), make_image(16, 16), vgg, preset="gatys", steps=1)  # just enough


def test_bad_image_tensors(vgg, make_image):
    with pytest.raises(NSTError, match="content image"):
        run(torch.rand(1, 1, 32, 32), make_image(32, 32), vgg)
    with pytest.raises(NSTError, match="style image"):
        run(make_image(32, 32), torch.rand(3, 32, 32), vgg)
    bad = make_image(32, 32)
    bad[0, 0, 3, 3] = math.nan
    with pytest.raises(NSTError, match="NaN"):
        run(bad, make_image(32, 32), vgg)


def test_bad_image_files(vgg, tmp_path, make_image):
    with pytest.raises(NSTError, match="missing.png"):
        run(tmp_path / "missing.png", make_image(32, 32), vgg)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(NSTError, match="empty.png"):
        run(make_image(32, 32), tmp_path / "empty.png", vgg)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu(vgg, make_image):
    with pytest.raises(NSTError, match="GPU"):
        run(make_image(32, 32), make_image(32, 32), vgg, device="cuda")


def test_bad_pooling_or_weights():
    img = torch.rand(1, 3, 32, 32)
    with pytest.raises(NSTError, match="pooling"):
        style_transfer(img, img, weights="random", pooling="median", steps=1, progress=False)
    with pytest.raises(NSTError, match="weights"):
        style_transfer(img, img, weights="imagenet-v2", steps=1, progress=False)


def test_gram_of_style_target_is_computed_once(vgg, make_image, monkeypatch):
    """Style targets are Gram matrices computed once, not per evaluation (and match gram_matrix)."""
    calls = []
    real = objective_module.gram

    def counting(features, convention="tutorial"):
        calls.append(tuple(features.shape))
        return real(features, convention)

    monkeypatch.setattr(objective_module, "gram", counting)
    run(make_image(32, 32), make_image(32, 32, seed=1), vgg, steps=3)
    assert len(calls) == 5  # one per style layer, before the loop
    # (and the loss itself still uses the real Gram through style_loss)
    assert nstutil.fast.gram is real


def test_a_run_leaves_the_models_weights_as_they_were(vgg, make_image):
    convolutions = [m for m in vgg.features if isinstance(m, torch.nn.Conv2d)]
    weights = [c.weight.clone() for c in convolutions]
    run(make_image(32, 32), make_image(32, 32, seed=1), vgg, preset="gatys", steps=3)
    assert all(c.weight.is_contiguous() and torch.equal(c.weight, w) for c, w in zip(convolutions, weights))
