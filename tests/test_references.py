"""Each reference's published losses, rebuilt in plain torch from its code's formulas, against nstutil's presets.

The references (read, not copied; see the lessons' closing notes for the addresses):

* the PyTorch tutorial (``advanced_source/neural_style_tutorial.py``): content ``conv_4``, style ``conv_1..conv_5``,
  Gram / (a·b·c·d), ``F.mse_loss``, style weight 1e6;
* d2l (``chapter_computer-vision/neural-style.md``, PyTorch tab): ``torchvision`` VGG19 ``features[0..28]`` with its
  in-place ReLUs, style indices 0, 5, 10, 19, 28 and content 25, Gram / (c·h·w), mean-squared errors, TV
  ½(mean|Δx| + mean|Δy|) on the ImageNet-normalised image, weights 1, 1e4, 10;
* leongatys/PytorchNeuralStyleTransfer (``NeuralStyleTransfer.ipynb``): its own VGG with ``F.relu`` outputs r11 … r51
  and r42, Caffe input (BGR, mean subtracted, × 255), Gram / (h·w), ``nn.MSELoss``, style weights 1e3/n²;
* deeplearning.ai's assignment (TensorFlow 2 version): Σ(a_C − a_G)² / (4 n_H n_W n_C), raw Gram matrices,
  Σ(G_S − G_G)² / (4 n_C² (n_H n_W)²), 0.2 per style layer, J = 10 J_content + 40 J_style, and its start.

Everything runs on the same seeded weights (a ``torchvision`` VGG19 with weights of its own) and the same images;
start loss and per-layer losses must agree to 1e-5 relative.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nstutil
from nstutil.presets import GATYS_STYLE_LAYERS
from nstutil.vgg import VGGFeatures

REL = 1e-5


def close(a, b, rel=REL) -> bool:
    return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-12)


@pytest.fixture(scope="module")
def images():
    from conftest import smooth_image

    content = smooth_image(64, 64, seed=11)
    style = smooth_image(64, 64, seed=12)
    # The image scored: away from the content, so that every term is non-zero.
    scored = (content + 0.2 * (torch.rand(content.shape, generator=torch.Generator().manual_seed(13)) - 0.5))
    return content, style, scored.clamp(0, 1)


def nst_model(torchvision_vgg19, convention: str = "imagenet") -> VGGFeatures:
    """nstutil's extractor around the same seeded weights as the reference code."""
    return VGGFeatures(copy.deepcopy(torchvision_vgg19.features), input_convention=convention, weights_name="seeded")


# --- the PyTorch tutorial -------------------------------------------------------------------------------------------

def tutorial_reference(features, content, style, image):
    """The tutorial's model: Normalization, then conv_i / relu_i (not in place) / pool_i, losses after conv_4 and
    conv_1..conv_5; returns (total, [content losses], [style losses])."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(-1, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(-1, 1, 1)

    def gram(x):
        a, b, c, d = x.size()
        f = x.view(a * b, c * d)
        return torch.mm(f, f.t()).div(a * b * c * d)

    def run(x):
        out, i = {}, 0
        x = (x - mean) / std
        for layer in features:
            if isinstance(layer, torch.nn.Conv2d):
                i += 1
                x = layer(x)
                out[f"conv_{i}"] = x
            elif isinstance(layer, torch.nn.ReLU):
                x = F.relu(x)
            else:
                x = layer(x)
            if i == 5:
                break
        return out

    with torch.no_grad():
        c_t, s_t = run(content), run(style)
        out = run(image)
    contents = [F.mse_loss(out["conv_4"], c_t["conv_4"])]
    styles = [F.mse_loss(gram(out[f"conv_{k}"]), gram(s_t[f"conv_{k}"])) for k in range(1, 6)]
    return 1e6 * sum(styles) + 1 * sum(contents), contents, styles


@pytest.mark.parametrize("at", ["start", "elsewhere"])
def test_tutorial_preset_is_the_tutorial(torchvision_vgg19, images, at):
    content, style, image = images
    image = content if at == "start" else image  # the tutorial starts from the content image
    total, contents, styles = tutorial_reference(torchvision_vgg19.features, content, style, image)
    record = nstutil.build_objective(content, style, preset="tutorial", model=nst_model(torchvision_vgg19))(image)
    assert close(record.total, total)
    assert close(record.content_layers["conv_4"], contents[0])
    for k, value in enumerate(styles, start=1):
        assert close(record.style_layers[f"conv_{k}"], value), k


# --- d2l ------------------------------------------------------------------------------------------------------------

D2L_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
D2L_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def d2l_loss_fn(features, content, style):
    """d2l's ``compute_loss`` in plain torch, as a function of the *normalised* image X (its ``SynthesizedImage``):
    ``net`` = features[0..28] (torchvision's ReLUs in place), ``extract_features`` keeping indices 0, 5, 10, 19, 28
    (style) and 25 (content), its three losses; returns X -> (total, [contents_l], [styles_l], tv_l)."""
    net = torch.nn.Sequential(*[copy.deepcopy(features[i]) for i in range(29)])
    assert all(m.inplace for m in net if isinstance(m, torch.nn.ReLU))  # torchvision's, as d2l uses them
    style_idx, content_idx = [0, 5, 10, 19, 28], [25]

    def extract(x):
        contents, styles = [], []
        for i in range(len(net)):
            x = net[i](x)
            if i in style_idx:
                styles.append(x)
            if i in content_idx:
                contents.append(x)
        return contents, styles

    def gram(x):
        c, n = x.shape[1], x.numel() // x.shape[1]
        x = x.reshape(c, n)
        return x @ x.T / (c * n)

    def tv(y):
        return 0.5 * ((y[:, :, 1:, :] - y[:, :, :-1, :]).abs().mean() + (y[:, :, :, 1:] - y[:, :, :, :-1]).abs().mean())

    with torch.no_grad():
        contents_y, _ = extract((content - D2L_MEAN) / D2L_STD)
        _, styles_y = extract((style - D2L_MEAN) / D2L_STD)
        styles_gram = [gram(y) for y in styles_y]

    def compute_loss(x):
        contents_hat, styles_hat = extract(x)
        contents_l = [(a - b).square().mean() * 1 for a, b in zip(contents_hat, contents_y)]
        styles_l = [(gram(a) - g).square().mean() * 1e4 for a, g in zip(styles_hat, styles_gram)]
        tv_l = tv(x) * 10
        return sum(styles_l + contents_l + [tv_l]), contents_l, styles_l, tv_l

    return compute_loss


def d2l_reference(features, content, style, image):
    """d2l's losses of ``image`` (in [0, 1]; d2l scores its normalised version)."""
    with torch.no_grad():
        return d2l_loss_fn(features, content, style)((image - D2L_MEAN) / D2L_STD)


def d2l_training_loop(features, content, style, epochs, lr=0.3):
    """d2l's ``train`` in plain torch: X starts as the normalised content and is the parameter; Adam (lr 0.3),
    StepLR(50, 0.8) stepped after every epoch; returns each epoch's loss (computed before its step) and the
    learning rate each epoch's step used."""
    compute_loss = d2l_loss_fn(features, content, style)
    x = torch.nn.Parameter(((content - D2L_MEAN) / D2L_STD).clone())
    trainer = torch.optim.Adam([x], lr=lr)
    scheduler = torch.optim.lr_scheduler.StepLR(trainer, 50, 0.8)
    losses, rates = [], []
    for _ in range(epochs):
        trainer.zero_grad()
        total, _, _, _ = compute_loss(x)
        total.backward()
        losses.append(total.item())
        rates.append(trainer.param_groups[0]["lr"])
        trainer.step()
        scheduler.step()
    return losses, rates


@pytest.mark.parametrize("at", ["start", "elsewhere"])
def test_d2l_preset_is_d2l_code_as_published(torchvision_vgg19, images, at):
    content, style, image = images
    image = content if at == "start" else image  # d2l starts from the content image
    total, contents_l, styles_l, tv_l = d2l_reference(torchvision_vgg19.features, content, style, image)
    record = nstutil.build_objective(content, style, preset="d2l", model=nst_model(torchvision_vgg19))(image)
    assert close(record.total, total)
    assert close(record.tv, tv_l)
    assert close(record.content_layers["relu4_4"], contents_l[0])
    preset = nstutil.get_preset("d2l")
    for name, value in zip(preset.style_layers, styles_l):
        assert close(preset.style_weight * record.style_layers[name], value), name


def test_d2l_preset_runs_d2ls_adam_loop(torchvision_vgg19):
    """style_transfer(preset="d2l") is d2l's training loop: Adam with lr 0.3 on the normalised image itself gives
    the same loss at each of the first 20 steps (1e-5 relative). Later the two runs part by float rounding alone:
    Adam divides each gradient by its own size, so a pixel whose gradient is near 0 takes a full step whichever sign
    rounding gives it (here from step 28, at about 2e-4)."""
    from conftest import smooth_image

    content, style = smooth_image(32, 32, seed=21), smooth_image(32, 32, seed=22)
    losses, _ = d2l_training_loop(torchvision_vgg19.features, content, style, 20)
    result = nstutil.style_transfer(content, style, preset="d2l", steps=20, progress=False,
                                    model=nst_model(torchvision_vgg19))
    ours = [record.total for record in result.history]
    assert (result.settings["optimizer"], result.settings["lr"], result.settings["parametrisation"]) == (
        "adam", 0.3, "network_input")
    assert len(ours) == 20
    for k in range(20):
        assert close(ours[k], losses[k]), (k, ours[k], losses[k])
    assert ours[-1] < 0.5 * ours[0]  # it did optimise


def test_d2l_preset_decays_the_learning_rate_at_step_50_as_steplr(torchvision_vgg19):
    """d2l's StepLR(50, 0.8) makes step 50 (the 51st) the first at 0.24; the preset's run is the undecayed run up
    to the image that step 50 is taken from, and differs from the next one on."""
    from conftest import smooth_image

    content, style = smooth_image(32, 32, seed=21), smooth_image(32, 32, seed=22)
    _, rates = d2l_training_loop(torchvision_vgg19.features, content, style, 52)
    assert rates[49] == 0.3 and math.isclose(rates[50], 0.24) and math.isclose(rates[51], 0.24)
    kw = dict(preset="d2l", steps=52, progress=False, model=nst_model(torchvision_vgg19))
    d2l = [r.total for r in nstutil.style_transfer(content, style, **kw).history]
    flat = [r.total for r in nstutil.style_transfer(content, style, lr_decay_every=0, **kw).history]
    assert d2l[:51] == flat[:51]
    assert d2l[51] != flat[51]


def test_choosing_lbfgs_drops_the_presets_adam_settings():
    recipe = nstutil.resolve_recipe("d2l", optimizer="lbfgs")
    assert (recipe.optimizer, recipe.lr, recipe.lr_decay, recipe.lr_decay_every) == ("lbfgs", None, 1.0, 0)
    assert recipe.parametrisation == "network_input"  # what is optimised is not the optimiser's setting
    assert nstutil.resolve_recipe("d2l", optimizer="adam", lr=0.1).lr_decay_every == 50
    with pytest.raises(nstutil.NSTError, match="schedule Adam's learning rate"):
        nstutil.resolve_recipe("d2l", optimizer="lbfgs", lr_decay_every=50, lr_decay=0.8)
    with pytest.raises(nstutil.NSTError, match="parametrisation 'pixels' is not known"):
        nstutil.resolve_recipe("tutorial", parametrisation="pixels")
    with pytest.raises(nstutil.NSTError, match="lr_decay is 0"):
        nstutil.resolve_recipe("d2l", lr_decay=0)
    with pytest.raises(nstutil.NSTError, match="lr_decay_every is -1"):
        nstutil.resolve_recipe("d2l", lr_decay_every=-1)


def test_d2l_reads_relu_outputs_not_the_conv_outputs_its_text_names(torchvision_vgg19, images):
    """The trap: with in-place ReLUs, what d2l keeps at a conv index is that conv's ReLU output (except at 28)."""
    content, style, image = images
    _, _, styles_l, _ = d2l_reference(torchvision_vgg19.features, content, style, image)
    as_text_says = nstutil.build_objective(
        content, style, preset="d2l", model=nst_model(torchvision_vgg19),
        style_layers=["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"])(image)
    first = 1e4 * as_text_says.style_layers["conv1_1"]
    assert not close(first, styles_l[0], rel=1e-2)
    assert close(1e4 * as_text_says.style_layers["conv5_1"], styles_l[4])  # the last module: no ReLU ran after it


def test_d2l_tv_is_not_twice_nstutils_p1_on_the_same_picture(images):
    """nstutil's p = 1 TV of the [0, 1] image is not twice d2l's: d2l measures the normalised image."""
    _, _, image = images
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    y = (image - mean) / std
    d2l_tv = 0.5 * ((y[:, :, 1:] - y[:, :, :-1]).abs().mean() + (y[..., 1:] - y[..., :-1]).abs().mean())
    ratio = (nstutil.total_variation_loss(image, p=1) / d2l_tv).item()
    assert 0.4 < ratio < 0.5  # 2 × std ≈ 0.45, not 2
    assert close(0.5 * nstutil.total_variation_loss(y, p=1), d2l_tv)


# --- leongatys/PytorchNeuralStyleTransfer ---------------------------------------------------------------------------

def gatys_notebook_reference(features, content, style, image):
    """The notebook's VGG (``F.relu`` after each conv, max pooling), its Caffe preprocessing, GramMatrix / (h·w),
    GramMSELoss, style weights 1e3/n² and content weight 1; returns (total, {layer: unweighted loss})."""
    convs = [m for m in features if isinstance(m, torch.nn.Conv2d)]
    names = ["11", "12", "21", "22", "31", "32", "33", "34", "41", "42", "43", "44", "51", "52", "53", "54"]

    def vgg(x, keys):
        out = {}
        for k, (name, conv) in enumerate(zip(names, convs)):
            x = F.relu(conv(x))
            out["r" + name] = x
            if name.endswith("2") and name[0] in "12" or name.endswith("4"):
                x = F.max_pool2d(x, 2, 2)
            if all(key in out for key in keys):
                break
        return [out[key] for key in keys]

    def prep(rgb):
        bgr = rgb[:, [2, 1, 0]]
        return (bgr - torch.tensor([0.40760392, 0.45795686, 0.48501961]).view(1, 3, 1, 1)) * 255

    def gram(x):
        b, c, h, w = x.size()
        f = x.view(b, c, h * w)
        return torch.bmm(f, f.transpose(1, 2)) / (h * w)

    style_layers, content_layers = ["r11", "r21", "r31", "r41", "r51"], ["r42"]
    weights = [1e3 / n ** 2 for n in [64, 128, 256, 512, 512]] + [1e0]
    with torch.no_grad():
        targets = [gram(a) for a in vgg(prep(style), style_layers)] + vgg(prep(content), content_layers)
        out = vgg(prep(image), style_layers + content_layers)
    fns = [lambda a, t: F.mse_loss(gram(a), t)] * 5 + [F.mse_loss]
    layer = [fn(a, t) for fn, a, t in zip(fns, out, targets)]
    total = sum(w * v for w, v in zip(weights, layer))
    return total, dict(zip(style_layers + content_layers, layer))


@pytest.mark.parametrize("at", ["start", "elsewhere"])
def test_gatys_notebook_preset_is_the_notebook(torchvision_vgg19, images, at):
    content, style, image = images
    image = content if at == "start" else image  # the notebook starts from the content image
    total, layer = gatys_notebook_reference(torchvision_vgg19.features, content, style, image)
    record = nstutil.build_objective(content, style, preset="gatys-notebook",
                                     model=nst_model(torchvision_vgg19, "caffe"))(image)
    assert close(record.total, total)
    assert close(record.content_layers["relu4_2"], layer["r42"])
    for name, channels in zip(GATYS_STYLE_LAYERS, [64, 128, 256, 512, 512]):
        # GramMSELoss (Gram / M) is C² × the tutorial convention's loss (Gram / (C M)).
        assert close(channels ** 2 * record.style_layers[name], layer["r" + name[4] + "1"]), name


# --- deeplearning.ai (TensorFlow 2 version) -------------------------------------------------------------------------

def coursera_reference(a_c, a_s_by_layer, a_g_by_layer, a_g_content):
    """The assignment's costs on N×H×W×C activations (TensorFlow's layout), in torch."""
    def content_cost(a_c, a_g):
        _, h, w, c = a_g.shape
        return (a_c - a_g).square().sum() / (4 * h * w * c)

    def layer_style_cost(a_s, a_g):
        _, h, w, c = a_g.shape
        unrolled = lambda a: a.reshape(h * w, c).T  # noqa: E731  (C × HW)
        gs, gg = unrolled(a_s) @ unrolled(a_s).T, unrolled(a_g) @ unrolled(a_g).T
        return (gs - gg).square().sum() / (4 * c ** 2 * (h * w) ** 2)

    j_content = content_cost(a_c, a_g_content)
    layers = [layer_style_cost(a_s_by_layer[k], a_g_by_layer[k]) for k in range(len(a_g_by_layer))]
    j_style = sum(0.2 * v for v in layers)
    return 10 * j_content + 40 * j_style, j_content, layers


def test_coursera_preset_is_the_assignments_costs(vgg, images):
    content, style, image = images
    preset = nstutil.get_preset("coursera")
    names = list(preset.style_layers)
    with torch.no_grad():
        nhwc = lambda x, ls: [t.permute(0, 2, 3, 1) for t in vgg(x, ls).values()]  # noqa: E731
        a_c = nhwc(content, ["relu5_4"])[0]
        a_g_content = nhwc(image, ["relu5_4"])[0]
        total, j_content, layers = coursera_reference(a_c, nhwc(style, names), nhwc(image, names), a_g_content)
    record = nstutil.build_objective(content, style, preset="coursera", model=vgg)(image)
    assert close(record.total, total)
    assert close(record.content_layers["relu5_4"], j_content)
    for name, value in zip(names, layers):
        assert close(record.style_layers[name], value), name


def test_coursera_total_cost_matches_the_assignments_printed_values():
    """The assignment's total-cost checks use NumPy's seeded generator, so they are reproducible here."""
    p = nstutil.get_preset("coursera")
    total = lambda jc, js, a=p.content_weight, b=p.style_weight: a * jc + b * js  # noqa: E731
    assert total(0.2, 0.8) == 34                                     # TF2: J == 34
    assert math.isclose(total(0.3, 0.5, 3, 8), 4.9)                  # TF2: alpha, beta passed
    np.random.seed(1)
    assert f"{total(np.random.uniform(0, 1), np.random.uniform(0, 1)):.4f}" == "32.9832"   # TF2's printed J
    np.random.seed(3)
    assert total(np.random.randn(), np.random.randn()) == pytest.approx(35.34667875478276, rel=1e-15)  # TF1


def test_blend_start_is_the_tf2_assignments(vgg, make_image):
    """init='blend': the content plus U(−0.25, 0.25), clipped to [0, 1] (the TensorFlow 2 assignment's start)."""
    content = make_image(64, 64, seed=5)
    run = nstutil.style_transfer(content, None, init="blend", steps=1, intermediate_every=1, model=vgg,
                                 content_layers=["relu1_1"], style_layers=[], progress=False)
    start = run.intermediates[0][1]
    diff = start - content
    assert start.min() >= 0 and start.max() <= 1
    assert diff.abs().max() <= 0.25 + 1e-6
    inside = (start > 0) & (start < 1)
    spread = diff[inside].std().item()
    assert abs(spread - 0.25 / math.sqrt(3)) < 0.01  # U(−a, a) has standard deviation a/√3


def test_tv_settings_are_checked_with_one_clear_line():
    assert nstutil.resolve_recipe("tutorial", tv_p=1, tv_input="network_input").tv_p == 1.0
    with pytest.raises(nstutil.NSTError, match="tv_input 'pixels' is not known: use one of image, network_input"):
        nstutil.resolve_recipe("d2l", tv_input="pixels")
    with pytest.raises(nstutil.NSTError, match="tv_p is 0"):
        nstutil.resolve_recipe("d2l", tv_p=0)
    with pytest.raises(nstutil.NSTError, match="tv_p"):
        nstutil.resolve_recipe("d2l", tv_p=float("nan"))


# --- jcjohnson/neural-style (neural_style.lua): what its code does where nstutil's jcjohnson preset differs ----------

JCJ_MEAN_BGR = torch.tensor([103.939, 116.779, 123.68]).view(3, 1, 1)   # its preprocess: BGR, × 256, minus this


def jcjohnson_tv_gradient(x, strength=1.0):
    """``nn.TVLoss:updateGradInput`` of neural_style.lua in torch (its TV has no forward value, only this gradient),
    on a C×H×W Caffe-preprocessed image."""
    grad = torch.zeros_like(x)
    x_diff = x[:, :-1, :-1] - x[:, :-1, 1:]
    y_diff = x[:, :-1, :-1] - x[:, 1:, :-1]
    grad[:, :-1, :-1] += x_diff + y_diff
    grad[:, :-1, 1:] -= x_diff
    grad[:, 1:, :-1] -= y_diff
    return grad * strength


def test_jcjohnsons_tv_is_half_the_sum_of_squares_on_its_caffe_image(make_image):
    """Its gradient is that of ½ Σ (dx² + dy²) over the (H−1)×(W−1) corner, in 0–256 units: about 1e5 × H × W times
    nstutil's TV of the [0, 1] image, so the jcjohnson preset's tv_weight 1e-3 is not its code's term."""
    rgb = make_image(24, 32, seed=7)[0].double()
    caffe = (rgb[[2, 1, 0]] * 256 - JCJ_MEAN_BGR.double()).requires_grad_(True)
    half_sum = 0.5 * ((caffe[:, :-1, :-1] - caffe[:, :-1, 1:]) ** 2 + (caffe[:, :-1, :-1] - caffe[:, 1:, :-1]) ** 2).sum()
    half_sum.backward()
    assert torch.allclose(caffe.grad, jcjohnson_tv_gradient(caffe.detach()), rtol=1e-12, atol=1e-9)
    ratio = half_sum.item() / nstutil.total_variation_loss(rgb[None]).item()
    h, w = rgb.shape[-2:]
    assert 0.85 < ratio / (0.5 * 256 ** 2 * 3 * h * w) < 1.0   # edges aside, ½·256²·3·H·W ≈ 1e5·H·W


def test_jcjohnsons_random_start_is_an_almost_flat_mean_colour(make_image):
    """``-init random``: randn × 0.001 in its Caffe units, deprocessed — the ImageNet mean colour to 1e-4; nstutil's
    init='noise' is uniform in [0, 1] (standard deviation 1/√12 ≈ 0.29), a different start."""
    torch.manual_seed(0)
    caffe = torch.randn(3, 32, 32, dtype=torch.float64) * 0.001
    rgb = ((caffe + JCJ_MEAN_BGR.double()) / 256.0)[[2, 1, 0]]
    assert (rgb - torch.tensor([123.68, 116.779, 103.939]).double().view(3, 1, 1) / 256).abs().max() < 1e-4
    assert nstutil.get_preset("jcjohnson").init == "noise"
    start = nstutil.style_transfer(make_image(32, 32), None, preset="jcjohnson", steps=1, intermediate_every=1,
                                   content_layers=["relu1_1"], style_layers=[], progress=False,
                                   model=nstutil.load_vgg19("random")).intermediates[0][1]
    assert abs(start.std().item() - 1 / math.sqrt(12)) < 0.02


# --- AdaIN: Huang & Belongie's eq. 8, and naoto0804/pytorch-AdaIN's calc_mean_std ----------------------------------

def test_adain_is_eq8_with_population_deviations_and_matches_the_reference_code(make_image):
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(2, 8, 6, 5, generator=g) * 2 + 1, torch.randn(2, 8, 6, 5, generator=g) * 0.5 - 2
    eps = 1e-5

    def stats(f, unbiased):
        flat = f.flatten(2)
        return flat.mean(2)[..., None, None], (flat.var(2, unbiased=unbiased) + eps).sqrt()[..., None, None]

    def eq8(unbiased):
        (mx, sx), (my, sy) = stats(x, unbiased), stats(y, unbiased)
        return sy * (x - mx) / sx + my

    ours = nstutil.adain(x, y)
    assert torch.allclose(ours, eq8(unbiased=False), rtol=1e-5, atol=1e-5)   # the paper's σ (÷ HW), ε inside √
    assert torch.allclose(ours, eq8(unbiased=True), rtol=1e-3, atol=1e-3)    # the reference code's (÷ HW − 1)


# --- leongatys/NeuralImageSynthesis (ExampleNotebooks/ColourControl.ipynb): colour control -------------------------

def gatys_match_color(target_img, source_img, mode, eps=1e-5):
    """The notebook's ``match_color`` in NumPy (H×W×3 float images), before its final clamp to [0, 1]."""
    def centred_cov(img):
        mu = img.mean(0).mean(0)
        x = (img - mu).transpose(2, 0, 1).reshape(3, -1)
        return mu, x, x @ x.T / x.shape[1] + eps * np.eye(3)

    def sqrt_sym(c):
        values, vectors = np.linalg.eigh(c)
        return vectors @ np.diag(np.sqrt(values)) @ vectors.T

    _, t, ct = centred_cov(target_img)
    mu_s, _, cs = centred_cov(source_img)
    if mode == "chol":
        ts = np.linalg.cholesky(cs) @ np.linalg.inv(np.linalg.cholesky(ct)) @ t
    elif mode == "pca":
        ts = sqrt_sym(cs) @ np.linalg.inv(sqrt_sym(ct)) @ t
    else:
        qt = sqrt_sym(ct)
        ts = np.linalg.inv(qt) @ sqrt_sym(qt @ cs @ qt) @ np.linalg.inv(qt) @ t
    return ts.reshape(3, *target_img.shape[:2]).transpose(1, 2, 0) + mu_s


@pytest.mark.parametrize("mode", ["chol", "pca", "sym"])
def test_match_histogram_is_gatys_match_color(make_image, mode):
    """``preserve_colors="histogram"``: the style recoloured as the notebook's match_color(style, content, mode)
    does (nstutil leaves out its final clamp, as its docstring says)."""
    style, content = make_image(20, 24, seed=31).double(), make_image(16, 16, seed=32).double()
    ours = nstutil.colour.match_histogram(style, content, mode=mode)[0].permute(1, 2, 0).numpy()
    theirs = gatys_match_color(style[0].permute(1, 2, 0).numpy(), content[0].permute(1, 2, 0).numpy(), mode)
    assert np.allclose(ours, theirs, rtol=1e-9, atol=1e-9)


def test_combine_luminance_is_the_notebooks_yuv_recombination_for_a_grey_result(make_image):
    """The notebook puts the result's luminance (the mean of its channels) back with the content's chrominance in
    YUV (its rgb2luv / luv2rgb, rounded coefficients); nstutil uses YIQ. For a grey result inside the RGB cube the
    two pictures agree up to those coefficients' rounding: with Y's row the same, either gives content − Y_c + Y_x."""
    content = make_image(16, 16, seed=41).double()
    result = nstutil.colour.grey(0.3 + 0.4 * make_image(16, 16, seed=42).double().mean(1, keepdim=True))
    yuv = np.array([[.299, .587, .114], [-.147, -.288, .436], [.615, -.515, -.1]])
    rgb = np.array([[1, 0, 1.139], [1, -.395, -.580], [1, 2.03, 0]])
    c = content[0].reshape(3, -1).numpy()
    luv = yuv @ c
    luv[0] = result[0].mean(0).reshape(-1).numpy()
    theirs = (rgb @ luv).reshape(3, 16, 16)
    ours = nstutil.colour.combine_luminance(result, content)[0].numpy()
    # Where a pixel leaves the RGB cube the notebook clamps R, G, B and nstutil clamps Y (combine_luminance).
    inside = ((theirs >= 0) & (theirs <= 1)).all(0)
    assert inside.mean() > 0.5
    assert np.abs(ours - theirs)[:, inside].max() < 5e-3


def test_guided_gram_is_gatys_gram_matrix_guided_with_normalised_guides():
    """Spatial control (SpatialControl.ipynb): the notebook normalises each guide T to T / √mean(T²) and takes
    (F∘T)(F∘T)ᵀ / M; nstutil's guided Gram with the 'gatys-notebook' normalisation (Gram / M) is the same matrix."""
    g = torch.Generator().manual_seed(5)
    features = torch.rand(1, 6, 10, 12, generator=g, dtype=torch.float64)
    mask = (torch.rand(1, 1, 10, 12, generator=g, dtype=torch.float64) > 0.4).double() * 0.8
    guide = (mask[0, 0] / mask[0, 0].pow(2).mean().sqrt()).numpy()
    f = (features[0].numpy() * guide).reshape(6, -1)
    theirs = f @ f.T / f.shape[1]
    m = features.shape[2] * features.shape[3]
    ours = nstutil.gram_matrix(features, "gatys", mask=mask)[0].numpy() / m   # Gram / M, as the notebook
    assert np.allclose(ours, theirs, rtol=1e-12)
