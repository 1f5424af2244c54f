"""The playground's One pass mode (issue 20.5): a trained style network or AdaIN decoder styles the content in one
pass, timed and scored with the optimisation's objective; unavailable without one; a bad file is one line.

Untrained toy networks (seeded) and the random-weights VGG19 at 40 px: what is checked is that the panel gives
exactly what nstutil.feed_forward.stylize / nstutil.adain.stylize_arbitrary give, not how the pictures look.
"""

from __future__ import annotations

import pytest
import torch

import nstutil
from nstutil import widgets as W
from nstutil.adain import Decoder, stylize_arbitrary
from nstutil.feed_forward import image_sha256, stylize
from nstutil.network_file import save_network
from nstutil.transformer_net import TransformerNet
from nstutil.widgets.one_pass import ONE_PASS, OPTIMISE, OnePassResult

SIZE = 40


@pytest.fixture(scope="module")
def style_net():
    torch.manual_seed(0)
    return TransformerNet(channels=(4, 8, 8), blocks=1).eval()


@pytest.fixture(scope="module")
def net_file(style_net, tmp_path_factory):
    """The network as 'nstutil train' writes it: with the style it was trained for in its meta."""
    meta = {"style": nstutil.DEFAULT_STYLE.name, "style_sha256": image_sha256(nstutil.DEFAULT_STYLE),
            "size": 32, "steps": 12, "vgg_weights": "random"}
    return save_network(tmp_path_factory.mktemp("net") / "mosaic.net.pth", style_net, meta=meta)


@pytest.fixture(scope="module")
def decoder():
    torch.manual_seed(0)
    net = Decoder(widths=(16, 8, 8)).eval()
    with torch.no_grad():  # an untrained decoder's picture is mostly below 0, which the clamp would flatten
        net.layers[-1].bias.fill_(0.5)
    return net


def _panel(model, network=None, **kwargs):
    return W.RunPanel(W.LayerChooser("tutorial", start="content"), size=SIZE, steps=4, min_redraw_s=0,
                      model=model, output="outputs/out.png", network=network, **kwargs)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # outputs/ and uploads/ are made in the working folder, as next to a notebook


def _objective_loss(panel, image, **changes):
    cfg = {k: v for k, v in panel.config().items() if k not in ("init", "steps", "optimizer", "seed", "scales")}
    cfg.update(changes)
    return nstutil.build_objective(cfg.pop("content"), cfg.pop("style"), model=panel.model, **cfg)(image).total


def test_one_pass_is_unavailable_without_a_network(model):
    panel = _panel(model)
    box = panel.one_pass
    assert box.mode.disabled and not box.active and box.mode.value == OPTIMISE
    assert "Load" in box.mode.tooltips[1] and "trained network" in box.note.value
    box.mode.value = ONE_PASS  # as if forced from code: nothing to run it with, so it goes back
    assert box.mode.value == OPTIMISE
    result = panel.run(wait=True)
    assert isinstance(result, nstutil.TransferResult) and len(result.history) == 4


def test_a_style_network_file_styles_the_content_as_stylize_does(model, net_file, style_net):
    panel = _panel(model, network=str(net_file))
    box = panel.one_pass
    assert box.active and box.mode.value == ONE_PASS and not box.mode.disabled
    # The style is the network's own, found by the hash its file records, and fixed while in one pass.
    assert panel.style.path == nstutil.DEFAULT_STYLE and panel.style.dropdown.disabled
    assert "style network" in box.note.value and nstutil.DEFAULT_STYLE.name in box.note.value
    assert panel.steps.disabled and panel.controls.use_second.disabled
    assert "feed_forward.stylize(network" in box.code_line.value

    result = panel.run(wait=True)
    assert isinstance(result, OnePassResult) and result.kind == "transformer"
    expected = stylize(style_net, panel.content.path, size=SIZE)
    assert torch.equal(result.image, expected)
    assert max(result.image.shape[-2:]) == SIZE
    assert result.image.shape == nstutil.load_image(panel.content.path, SIZE).shape
    # The loss is the one the optimisation would report for this image, and the panel shows it and the time.
    assert result.loss.total == pytest.approx(_objective_loss(panel, result.image), rel=1e-6)
    assert f"{result.loss.total:.4g}" in panel.status.value and "one pass" in panel.status.value
    assert f"{result.loss.total:.4g}" in panel.preview_title.value and " s" in panel.preview_title.value
    assert result.seconds > 0 and panel.progress.bar_style == "success" and not panel.save_button.disabled

    box.strength.value = 0.5
    assert torch.equal(panel.run(wait=True).image, stylize(style_net, panel.content.path, size=SIZE, strength=0.5))


def test_a_decoder_uses_the_style_alpha_and_the_blend_of_two_styles(model, decoder):
    panel = _panel(model, network=decoder)
    box = panel.one_pass
    assert box.active and box.kind == "adain-decoder" and not panel.style.dropdown.disabled
    assert box.strength.description == "Strength α"

    box.strength.value = 0.0
    zero = panel.run(wait=True).image
    assert torch.equal(zero, stylize_arbitrary(decoder, panel.content.path, panel.style.path, alpha=0.0, size=SIZE,
                                               style_size=SIZE, model=model))
    # α = 0 decodes the photo's own features: no style image changes it.
    panel.style.dropdown.value = nstutil.image_path("waves")
    assert torch.equal(panel.run(wait=True).image, zero)

    box.strength.value = 1.0
    single = panel.run(wait=True).image
    panel.controls.use_second.value = True
    panel.controls.second.dropdown.value = nstutil.DEFAULT_STYLE
    panel.controls.share.value = 0.0  # the second style's weight 0: the first style alone
    result = panel.run(wait=True)
    assert result.settings["style_blend"] == [1.0, 0.0]
    assert torch.allclose(result.image, single, atol=1e-5)
    panel.controls.share.value = 0.5
    half = panel.run(wait=True)
    assert torch.equal(half.image, stylize_arbitrary(decoder, panel.content.path,
                                                     [nstutil.image_path("waves"), nstutil.DEFAULT_STYLE],
                                                     style_blend=[0.5, 0.5], size=SIZE, style_size=SIZE,
                                                     model=model))
    assert not torch.equal(half.image, single)  # the second style now counts
    assert half.loss.total == pytest.approx(_objective_loss(panel, half.image), rel=1e-6)


@pytest.mark.parametrize("make, says", [
    (lambda d: d / "missing.pth", "does not exist"),
    (lambda d: (d / "notes.pth").write_text("not a network") and d / "notes.pth", "is not a network file"),
])
def test_a_bad_network_file_is_one_line(model, tmp_path, make, says):
    panel = _panel(model)
    panel.one_pass.path.value = str(make(tmp_path))
    panel.one_pass.load_button.click()
    text = panel.message.value
    assert "Network not loaded" in text and says in text and "\n" not in text and "Traceback" not in text
    assert panel.one_pass.mode.disabled and not panel.one_pass.active
    # Given to the playground from code, the same file is the same line, and the playground still optimises.
    box = W.playground(network=str(make(tmp_path)), size=SIZE, steps=2, model=model)
    assert "Network not loaded" in box.panel.message.value and box.panel.one_pass.mode.value == OPTIMISE


def test_a_file_loaded_in_the_field_enables_one_pass(model, net_file):
    panel = _panel(model)
    panel.one_pass.path.value = str(net_file)
    panel.one_pass.load_button.click()
    assert "Loaded a style network" in panel.message.value and not panel.one_pass.mode.disabled
    assert panel.one_pass.mode.value == OPTIMISE  # loading does not switch: the student chooses
    panel.one_pass.mode.value = ONE_PASS
    assert panel.one_pass.active and panel.style.path == nstutil.DEFAULT_STYLE


def test_back_to_optimise_runs_the_optimisation_as_before(model, style_net):
    panel = _panel(model, network=style_net)
    one = panel.run(wait=True)
    assert isinstance(one, OnePassResult)
    panel.one_pass.mode.value = OPTIMISE
    assert not panel.steps.disabled and not panel.style.dropdown.disabled and not panel.controls.use_second.disabled
    result = panel.run(wait=True)
    assert isinstance(result, nstutil.TransferResult) and len(result.history) == 4
    same = nstutil.style_transfer(**panel.config(), model=model, progress=False)
    assert torch.equal(result.image, same.image)
    # Back in one pass, the loss plot shows that optimisation's curve with the one-pass level across it.
    panel.one_pass.mode.value = ONE_PASS
    again = panel.run(wait=True)
    assert panel._loss_plot.reference.get_visible()
    assert list(panel._loss_plot.reference.get_ydata()) == [again.loss.total] * 2
    assert len(panel._loss_plot.lines["total"].get_xdata()) == 4


def test_save_keeps_earlier_files(model, style_net, tmp_path):
    panel = _panel(model, network=style_net)
    panel.run(wait=True)
    first, second = panel.save(), panel.save()
    assert first.resolve() == (tmp_path / "outputs" / "out.png").resolve()
    assert second.resolve() == (tmp_path / "outputs" / "out-2.png").resolve()
    assert torch.equal(nstutil.load_image(first), nstutil.load_image(second))


def test_the_playground_opens_in_one_pass_with_what_training_returned(model, style_net):
    trained = type("Trained", (), {"model": style_net, "meta": {"style": "somewhere-else.jpg"}})()
    box = W.playground(network=trained, size=SIZE, steps=2, model=model)
    assert box.panel.one_pass.active and "somewhere-else.jpg" in box.panel.one_pass.note.value
    # Its style is not among the pictures: the student is told, and can still choose or upload it.
    assert "not among the style images" in box.panel.message.value and not box.panel.style.dropdown.disabled
    assert not W.playground(network=trained, mode=OPTIMISE, size=SIZE, model=model).panel.one_pass.active


def test_a_web_page_hides_the_network_field_but_takes_the_network_given(model, style_net):
    page = _panel(model, network=style_net, download=True)  # Voila: visitors cannot name files on the server
    assert page.one_pass.path.layout.display == "none" and page.one_pass.load_button.layout.display == "none"
    assert page.one_pass.active and isinstance(page.run(wait=True), OnePassResult)


def test_colours_apply_and_the_loss_is_the_optimisations_for_them(model, style_net):
    from nstutil.colour import grey, luminance

    panel = _panel(model, network=style_net)
    panel.controls.preserve_colors.value = "luminance"
    result = panel.run(wait=True)
    assert torch.equal(result.image, stylize(style_net, panel.content.path, size=SIZE, preserve_colors="luminance"))
    # Luminance-only transfer compares luminance images (as the optimisation does): the result's luminance is scored.
    assert result.loss.total == pytest.approx(_objective_loss(panel, grey(luminance(result.image))), rel=1e-6)


def test_a_decoder_trained_with_other_weights_is_said_in_one_line(model, decoder):
    from nstutil.network_file import NetworkFile

    other = NetworkFile(decoder, "adain-decoder", {"widths": [16, 8, 8], "in_channels": 512},
                        {"vgg_weights": "imagenet"})
    panel = _panel(model, network=other)
    result = panel.run(wait=True)
    assert result.notes and "imagenet" in result.notes[0]
    assert "trained with the VGG19 weights" in panel.message.value and "\n" not in panel.message.value
