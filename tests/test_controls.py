"""The controls of issue 9: several styles, colour, scale, masks, coarse-to-fine, start images, reconstructions,
the mean/std style statistic, and the objective that scores any image."""

from __future__ import annotations

import math

import pytest
import torch

import nstutil
from nstutil import NSTError, build_objective, style_transfer
from nstutil.colour import luminance, match_histogram, rgb_to_yiq
from nstutil.losses import channel_statistics, gram_matrix, mean_std_loss, style_loss
from nstutil.regions import mask_at_layer


def run(content, style, vgg, **kwargs):
    kwargs.setdefault("steps", 4)
    kwargs.setdefault("progress", False)
    return style_transfer(content, style, model=vgg, **kwargs)


def half_mask(height, width, left=True):
    mask = torch.zeros(height, width)
    if left:
        mask[:, : width // 2] = 1.0
    else:
        mask[:, width // 2:] = 1.0
    return mask


# ------------------------------------------------------------------------------------------- several styles

def test_blend_one_zero_is_exactly_the_single_style_run(vgg, make_image):
    content, a, b = make_image(32, 32, seed=1), make_image(32, 32, seed=2), make_image(40, 36, seed=3)
    single = run(content, a, vgg, steps=6)
    blended = run(content, [a, b], vgg, steps=6, style_blend=[1, 0])
    assert [r.total for r in blended.history] == [r.total for r in single.history]
    assert torch.equal(blended.image, single.image)
    assert blended.settings["style_blend"] == [1.0, 0.0]


def test_blend_target_is_the_weighted_sum_of_grams(vgg, make_image):
    content, a, b = make_image(32, 32, seed=1), make_image(32, 32, seed=2), make_image(32, 32, seed=3)
    image = make_image(32, 32, seed=4)
    objective = build_objective(content, [a, b], model=vgg, style_blend=[3, 1])
    with torch.no_grad():
        fa, fb, fx = vgg(a, ["conv_1"]), vgg(b, ["conv_1"]), vgg(image, ["conv_1"])
        target = 0.75 * gram_matrix(fa["conv_1"]) + 0.25 * gram_matrix(fb["conv_1"])
        expected = style_loss(fx["conv_1"], target).item()
    assert objective(image).style_layers["conv_1"] == pytest.approx(expected, rel=1e-5)
    # and it is not the loss against either style alone
    assert expected != pytest.approx(style_loss(fx["conv_1"], fa["conv_1"]).item(), rel=1e-3)


def test_equal_blend_by_default(vgg, make_image):
    result = run(make_image(32, 32), [make_image(32, 32, seed=1)] * 4, vgg, steps=1)
    assert result.settings["style_blend"] == [0.25] * 4


# ------------------------------------------------------------------------------------------------- masks

def test_all_ones_mask_is_exactly_the_unmasked_run(vgg, make_image):
    content, style = make_image(32, 32, seed=5), make_image(32, 32, seed=6)
    plain = run(content, style, vgg, steps=6)
    masked = run(content, style, vgg, steps=6, style_masks=[torch.ones(32, 32)])
    assert [r.total for r in masked.history] == [r.total for r in plain.history]
    assert torch.equal(masked.image, plain.image)


def test_all_ones_masks_for_two_styles_give_the_blends_gradient(vgg, make_image):
    """Σ b_k |G - A_k|² and |G - Σ b_k A_k|² differ by a constant (Σ b_k = 1): same gradient, so the same run."""
    content, a, b = make_image(32, 32, seed=5), make_image(32, 32, seed=6), make_image(32, 32, seed=7)
    ones = [torch.ones(32, 32)] * 2
    image = make_image(32, 32, seed=8)
    grads = []
    for masks in (None, ones):
        objective = build_objective(content, [a, b], model=vgg, style_blend=[2, 1], style_masks=masks)
        x = image.clone().requires_grad_(True)
        objective.loss(x)[0].backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-9)


def test_masks_send_each_style_to_its_region(vgg, make_image):
    """With complementary masks, each half's guided Gram is compared with its own style only."""
    content, a, b = make_image(32, 32, seed=9), make_image(32, 32, seed=10), make_image(32, 32, seed=11)
    image = make_image(32, 32, seed=12)
    left, right = half_mask(32, 32), half_mask(32, 32, left=False)
    objective = build_objective(content, [a, b], model=vgg, style_masks=[left, right], style_layers=["relu2_1"])
    with torch.no_grad():
        f = vgg(image, ["relu2_1"])["relu2_1"]
        ga, gb = gram_matrix(vgg(a, ["relu2_1"])["relu2_1"]), gram_matrix(vgg(b, ["relu2_1"])["relu2_1"])
        ml, mr = mask_at_layer(left[None, None], "relu2_1"), mask_at_layer(right[None, None], "relu2_1")
        by_hand = 0.5 * (((gram_matrix(f * ml) / ml.pow(2).mean()) - ga).pow(2).mean()
                         + ((gram_matrix(f * mr) / mr.pow(2).mean()) - gb).pow(2).mean())
    assert objective(image).style_layers["relu2_1"] == pytest.approx(by_hand.item(), rel=1e-4)


def test_mask_at_layer_lines_up_with_the_features(vgg):
    mask = torch.zeros(1, 1, 37, 45)
    mask[..., :, :20] = 1.0
    for layer in ("relu1_1", "pool1", "relu2_1", "relu3_1", "relu4_2", "relu5_1"):
        features = vgg(torch.rand(1, 3, 37, 45), [layer])[layer]
        small = mask_at_layer(mask, layer)
        assert small.shape[-2:] == features.shape[-2:], layer
        assert 0.0 <= small.min() and small.max() <= 1.0
    # relu2_1 is after one 2×2 pooling: each position is the mean of 4 pixels; column 9 straddles the edge (20).
    small = mask_at_layer(mask, "relu2_1")
    assert small[0, 0, 0, 9].item() == 1.0 and small[0, 0, 0, 10].item() == 0.0
    soft = mask_at_layer(torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]), "relu2_1")
    assert soft.item() == 0.25


def test_masks_from_picture_files(vgg, make_image, tmp_path):
    content, a, b = make_image(32, 48, seed=1), make_image(32, 32, seed=2), make_image(32, 32, seed=3)
    left = torch.ones(1, 3, 32, 48)
    left[..., 24:] = 0.0
    nstutil.save_image(left, tmp_path / "left.png")
    nstutil.save_image(1 - left, tmp_path / "right.png")
    from_files = run(content, [a, b], vgg, style_masks=[tmp_path / "left.png", tmp_path / "right.png"], steps=2)
    tensors = [half_mask(32, 48), half_mask(32, 48, left=False)]
    from_tensors = run(content, [a, b], vgg, style_masks=tensors, steps=2)
    assert from_files.history[0].total == pytest.approx(from_tensors.history[0].total, rel=1e-5)
    assert from_files.settings["mask_paths"] == [str(tmp_path / "left.png"), str(tmp_path / "right.png")]
    with pytest.raises(NSTError, match="input"):
        from_files.save(tmp_path / "left.png")


# ------------------------------------------------------------------------------------------------- colour

def test_luminance_mode_keeps_the_content_chrominance(vgg, make_image, tmp_path):
    content = make_image(32, 32, seed=13)
    content[..., :4, :4] = 0.0  # pure black and white too
    content[..., -4:, -4:] = 1.0
    style = make_image(32, 32, seed=14)
    result = run(content, style, vgg, preserve_colors="luminance", steps=8, style_weight=1e9)
    assert result.image.min() >= 0 and result.image.max() <= 1
    iq_result, iq_content = rgb_to_yiq(result.image)[:, 1:], rgb_to_yiq(content)[:, 1:]
    assert (iq_result - iq_content).abs().max() <= 1 / 255
    saved = nstutil.load_image(result.save(tmp_path / "lum.png"))
    assert (rgb_to_yiq(saved)[:, 1:] - iq_content).abs().max() <= 1.5 / 255  # 8-bit rounding of each channel
    # ... while the luminance did change
    assert (luminance(result.image) - luminance(content)).abs().max() > 0.01


def test_luminance_mode_optimises_luminance_images(vgg, make_image):
    content, style = make_image(32, 32, seed=13), make_image(32, 32, seed=14)
    seen = []
    run(content, style, vgg, preserve_colors="luminance", steps=2,
        callback=lambda ev: seen.append(ev.image))
    # what the callback shows has the content's colours, not the grey image the network sees
    assert (rgb_to_yiq(seen[0])[:, 1:] - rgb_to_yiq(content)[:, 1:]).abs().max() < 1e-5
    assert rgb_to_yiq(seen[0])[:, 1:].abs().max() > 0.01


def test_histogram_mode_uses_the_colour_matched_style(vgg, make_image):
    content, style = make_image(32, 32, seed=15), make_image(32, 32, seed=16)
    image = make_image(32, 32, seed=17)
    matched = build_objective(content, style, model=vgg, preserve_colors="histogram")(image)
    by_hand = build_objective(content, match_histogram(style, content), model=vgg)(image)
    plain = build_objective(content, style, model=vgg)(image)
    assert matched.style == pytest.approx(by_hand.style, rel=1e-6)
    assert matched.style != pytest.approx(plain.style, rel=1e-3)


def test_histogram_mode_with_a_flat_grey_style(vgg, make_image):
    result = run(make_image(32, 32, seed=1), torch.full((1, 3, 32, 32), 0.5), vgg,
                 preserve_colors="histogram", steps=3)
    assert torch.isfinite(result.image).all() and all(math.isfinite(r.total) for r in result.history)


# -------------------------------------------------------------------------------------------------- scale

def test_style_scale_resizes_the_style_relative_to_the_content(vgg, make_image, tmp_path):
    content, style = make_image(32, 48, seed=18), make_image(40, 40, seed=19)
    nstutil.save_image(style, tmp_path / "style.png")
    image = make_image(32, 48, seed=20)
    scaled = build_objective(content, tmp_path / "style.png", model=vgg, style_scale=0.5)(image)
    half = nstutil.load_image(tmp_path / "style.png", 24)  # 0.5 × the content's longer side
    by_hand = build_objective(content, half, model=vgg)(image)
    assert scaled.style == pytest.approx(by_hand.style, rel=1e-5)
    assert scaled.style != pytest.approx(build_objective(content, tmp_path / "style.png", model=vgg)(image).style,
                                         rel=1e-3)


# ---------------------------------------------------------------------------------------- coarse-to-fine

def test_coarse_to_fine_covers_every_scale_and_returns_full_size(vgg, make_image):
    content, style = make_image(40, 64, seed=21), make_image(64, 64, seed=22)
    seen = []
    result = run(content, style, vgg, scales=[16, 32, 64], steps=[3, 2, 4],
                 callback=lambda ev: seen.append((ev.record.scale, tuple(ev.image.shape[-2:]), ev.steps)))
    assert result.image.shape == (1, 3, 40, 64)
    assert [r.scale for r in result.history] == [16] * 3 + [32] * 2 + [64] * 4
    assert [r.evaluation for r in result.history] == list(range(9))
    assert [s[1] for s in seen] == [(10, 16)] * 3 + [(20, 32)] * 2 + [(40, 64)] * 4
    assert all(s[2] == 9 for s in seen)
    assert result.settings["scales"] == [16, 32, 64] and result.settings["steps"] == [3, 2, 4]
    assert result.best_evaluation >= 5  # the best image is from the last scale


def test_coarse_to_fine_starts_each_scale_from_the_last(vgg, make_image):
    content, style = make_image(32, 32, seed=23), make_image(32, 32, seed=24)
    firsts = {}

    def keep(ev):
        firsts.setdefault(ev.record.scale, ev.image)
        if ev.record.scale == 16:
            keep.best = ev.best_image

    result = run(content, style, vgg, scales=[16], size=32, steps=5, callback=keep)
    assert len(result.history) == 10  # one number: that many at each scale, the size appended
    upsampled = nstutil.resize_image(keep.best, (32, 32))
    torch.testing.assert_close(firsts[32], upsampled, atol=1e-6, rtol=0)


def test_a_stop_at_a_coarse_scale_still_returns_full_size(vgg, make_image):
    result = run(make_image(32, 48), make_image(32, 32, seed=1), vgg, scales=[16, 32, 48], steps=4,
                 callback=lambda ev: ev.record.evaluation == 2)
    assert result.stop_reason == "callback" and len(result.history) == 3
    assert result.image.shape == (1, 3, 32, 48)
    assert "upsampled" in result.message


# --------------------------------------------------------------------------------------- start and reconstructions

def test_init_from_a_picture_file(vgg, make_image, tmp_path):
    start = make_image(20, 30, seed=25)
    nstutil.save_image(start, tmp_path / "start.png")
    seen = []
    result = run(make_image(40, 60, seed=26), make_image(40, 40, seed=27), vgg, init=tmp_path / "start.png",
                 steps=1, callback=lambda ev: seen.append(ev.image))
    torch.testing.assert_close(seen[0], nstutil.load_image(tmp_path / "start.png", (40, 60)), atol=1e-6, rtol=0)
    assert result.settings["init"] == "image"
    with pytest.raises(NSTError, match="input"):
        result.save(tmp_path / "start.png")


def test_content_reconstruction_alone(vgg, make_image):
    content = make_image(32, 32, seed=28)
    result = run(content, None, vgg, style_layers=[], content_layers=["relu2_1"], init="noise", steps=15)
    assert all(r.style == 0 and r.style_layers == {} for r in result.history)
    assert result.best_loss < 0.5 * result.history[0].total


def test_texture_synthesis_alone(vgg, make_image):
    style = make_image(40, 32, seed=29)
    result = run(None, style, vgg, content_layers=[], size=48, steps=15)
    assert result.image.shape == (1, 3, 48, 38)
    assert all(r.content == 0 for r in result.history)
    assert result.best_loss < 0.5 * result.history[0].total
    assert result.settings["init"] == "noise"


# ------------------------------------------------------------------------------------- mean/std statistic

def test_mean_std_statistic(vgg, make_image):
    content, style, image = make_image(32, 32, seed=30), make_image(32, 32, seed=31), make_image(32, 32, seed=32)
    objective = build_objective(content, style, model=vgg, style_statistic="mean_std", style_layers=["relu1_1"])
    with torch.no_grad():
        f, s = vgg(image, ["relu1_1"])["relu1_1"], vgg(style, ["relu1_1"])["relu1_1"]
        mean_f, mean_s = f.mean(dim=(2, 3)), s.mean(dim=(2, 3))
        std_f = (f.var(dim=(2, 3), unbiased=False) + 1e-5).sqrt()
        std_s = (s.var(dim=(2, 3), unbiased=False) + 1e-5).sqrt()
        by_hand = ((mean_f - mean_s).pow(2) + (std_f - std_s).pow(2)).mean().item()
    assert objective(image).style_layers["relu1_1"] == pytest.approx(by_hand, rel=1e-4)
    result = run(content, style, vgg, style_statistic="mean_std", style_weight=10, steps=10)
    assert result.best_loss < result.history[0].total


def test_mean_std_loss_gradient():
    torch.manual_seed(0)
    target = channel_statistics(torch.rand(1, 3, 5, 4, dtype=torch.float64))
    mask = torch.rand(1, 1, 6, 5, dtype=torch.float64)
    x = torch.rand(1, 3, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: mean_std_loss(t, target), (x,))
    assert torch.autograd.gradcheck(lambda t: mean_std_loss(t, target, mask=mask), (x,))


def test_guided_style_loss_gradient():
    torch.manual_seed(1)
    target = gram_matrix(torch.rand(1, 4, 5, 5, dtype=torch.float64))
    mask = torch.rand(1, 1, 6, 5, dtype=torch.float64)
    x = torch.rand(1, 4, 6, 5, dtype=torch.float64, requires_grad=True)
    for convention in nstutil.CONVENTIONS:
        assert torch.autograd.gradcheck(lambda t: style_loss(t, target, convention, mask=mask), (x,))


# --------------------------------------------------------------------------------------- the objective

def test_objective_scores_the_start_as_the_run_records_it(vgg, make_image):
    content, style, start = make_image(32, 32, seed=33), make_image(32, 32, seed=34), make_image(32, 32, seed=35)
    objective = build_objective(content, style, model=vgg, preset="gatys", tv_weight=0.5)
    record = objective(start)
    first = run(content, style, vgg, preset="gatys", tv_weight=0.5, init=start, steps=1).history[0]
    assert record.total == pytest.approx(first.total, rel=1e-6)
    assert record.style_layers == pytest.approx(first.style_layers, rel=1e-6)
    assert record.scale == 32


@pytest.mark.parametrize("preset", ["tutorial", "gatys"])
def test_objective_gradient_is_the_sum_of_its_terms(vgg, make_image, preset):
    """The losses attached to the pass (fused backward) give the gradient of the plain sum of the terms, each
    computed on the network's activations: float32 against float64, both presets (conv and relu layers)."""
    content, style, image = make_image(32, 32, seed=36), make_image(32, 32, seed=37), make_image(32, 32, seed=38)
    objective = build_objective(content, style, model=vgg, preset=preset)
    recipe = objective.recipe
    x = image.clone().requires_grad_(True)
    total, _ = objective.loss(x)
    total.backward()
    model = vgg.double()
    try:
        ref_x = image.double().requires_grad_(True)
        layers = list(recipe.content_layers) + list(recipe.style_layers)
        generated, photo = model(ref_x, layers), model(content.double(), list(recipe.content_layers))
        painting = model(style.double(), list(recipe.style_layers))
        conv = recipe.convention
        ref = recipe.content_weight * sum(w * nstutil.content_loss(generated[n], photo[n], conv)
                                          for n, w in recipe.content_layers.items())
        ref = ref + recipe.style_weight * sum(w * style_loss(generated[n], painting[n], conv)
                                              for n, w in recipe.style_layers.items())
        ref.backward()
    finally:
        vgg.float()
    assert total.item() == pytest.approx(ref.item(), rel=1e-4)
    torch.testing.assert_close(x.grad.double(), ref_x.grad, rtol=1e-3, atol=1e-4 * ref_x.grad.abs().max().item())


# ------------------------------------------------------------------------------------------------ bad input

BAD = {
    "negative blend": dict(style=2, style_blend=[1, -1]),
    "NaN blend": dict(style=2, style_blend=[1, math.nan]),
    "infinite blend": dict(style=2, style_blend=[1, math.inf]),
    "blend of the wrong count": dict(style=2, style_blend=[1, 2, 3]),
    "all-zero blend": dict(style=2, style_blend=[0, 0]),
    "text blend": dict(style=2, style_blend=["a", 1]),
    "mask count": dict(style=2, style_masks=[torch.ones(32, 32)]),
    "mask not an image": dict(style=1, style_masks=[42]),
    "mask out of range": dict(style=1, style_masks=[torch.full((32, 32), 2.0)]),
    "all-black mask": dict(style=1, style_masks=[torch.zeros(32, 32)]),
    "mask of the wrong shape": dict(style=1, style_masks=[torch.ones(3, 32, 32)]),
    "scales not increasing": dict(style=1, scales=[32, 16], size=32),
    "scales past size": dict(style=1, scales=[16, 64], size=32),
    "scales not numbers": dict(style=1, scales=["a"], size=32),
    "scales as one number": dict(style=1, scales=16, size=32),
    "steps per scale of the wrong count": dict(style=1, scales=[16, 32], steps=[2, 2, 2], size=32),
    "scale too small for the layers": dict(style=1, scales=[8, 32], size=32, preset="gatys"),
    "unknown colour mode": dict(style=1, preserve_colors="sepia"),
    "colour mode without a style": dict(style=0, preserve_colors="luminance", style_layers=[]),
    "zero style scale": dict(style=1, style_scale=0),
    "NaN style scale": dict(style=1, style_scale=math.nan),
    "text style scale": dict(style=1, style_scale="big"),
    "unknown style statistic": dict(style=1, style_statistic="median"),
    "content init without content": dict(style=1, content=False, init="content", content_layers=[]),
    "content layers without content": dict(style=1, content=False, content_layers=["relu4_2"]),
    "style layers without style": dict(style=0, style_layers=["relu1_1"]),
    "neither image": dict(style=0, content=False),
    "init path missing": dict(style=1, init="missing/start.png"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input(vgg, make_image, case):
    kwargs = dict(BAD[case])
    n_styles = kwargs.pop("style")
    content = make_image(32, 32) if kwargs.pop("content", True) else None
    styles = [make_image(32, 32, seed=k) for k in range(n_styles)]
    style = None if not styles else styles[0] if n_styles == 1 else styles
    with pytest.raises(NSTError) as info:
        run(content, style, vgg, **kwargs)
    assert "\n" not in str(info.value)
