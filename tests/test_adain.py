"""AdaIN (issue 20): the fusion's statistics, the paper's controls, the decoder, its training, its file, the CLI."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nstutil.adain import (DECODER_KIND, ENCODER_LAYER, Decoder, adain, encode, fuse, load_decoder,
                           stylize_arbitrary)
from nstutil.adain_training import AdaINLoss, train_decoder
from nstutil.cli import main
from nstutil.colour import match_histogram
from nstutil.errors import NSTError
from nstutil.images import image_path, load_image, save_image
from nstutil.losses import channel_statistics, content_loss, mean_std_loss
from nstutil.network_file import load_network, save_network
from nstutil.regions import mask_at_layer
from nstutil.transformer_net import TransformerNet

TOY = {"widths": [16, 8, 8]}


def features(seed: int, b: int = 2, c: int = 8, h: int = 6, w: int = 5, scale: float = 1.0, shift: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, h, w, generator=g) * scale + shift


@pytest.fixture(scope="module")
def toy_decoder():
    torch.manual_seed(0)
    net = Decoder(**TOY).eval()
    with torch.no_grad():  # an untrained decoder's picture is mostly below 0, which the clamp would flatten
        net.layers[-1].bias.fill_(0.5)
    return net


@pytest.fixture(scope="module")
def photo():
    return load_image(image_path("chelsea"), 40)


# --- the fusion -----------------------------------------------------------------------------------------------

def test_adain_output_has_the_styles_mean_and_std():
    content, style = features(0), features(1, h=9, w=3, scale=3.0, shift=2.0)
    out_mean, out_std = channel_statistics(adain(content, style, eps=0.0))
    style_mean, style_std = channel_statistics(style)
    assert torch.allclose(out_mean, style_mean, atol=1e-5) and torch.allclose(out_std, style_std, atol=1e-5)
    # The default eps (1e-5, as the statistics themselves) moves the deviation by float-rounding amounts only.
    out_mean, out_std = channel_statistics(adain(content, style))
    assert torch.allclose(out_std, style_std, rtol=1e-4) and torch.allclose(out_mean, style_mean, atol=1e-5)
    # The layout of the content survives: the output is an affine map of each content channel.
    assert torch.allclose(torch.corrcoef(torch.stack([adain(content, style)[0, 0].flatten(),
                                                      content[0, 0].flatten()]))[0, 1], torch.tensor(1.0))


def test_adain_takes_statistics_and_one_style_for_a_batch():
    content, style = features(0), features(1, b=1)
    assert torch.allclose(adain(content, channel_statistics(style)), adain(content, style))
    assert adain(content, style).shape == content.shape
    with pytest.raises(NSTError, match="same layer"):
        adain(content, features(1, c=4))
    with pytest.raises(NSTError, match="eps"):
        adain(content, style, eps=-1.0)


def test_alpha_zero_is_the_content_and_alpha_is_a_straight_line():
    content, style = features(0), features(1)
    assert torch.equal(fuse(content, [style], alpha=0.0), content)
    half = fuse(content, [style], alpha=0.5)
    assert torch.allclose(half, 0.5 * content + 0.5 * adain(content, style), atol=1e-6)
    for alpha in (-0.1, 1.5, True):
        with pytest.raises(NSTError, match="alpha"):
            fuse(content, [style], alpha=alpha)


def test_interpolation_weights_one_zero_equal_the_single_style():
    content, first, second = features(0), features(1), features(2, scale=4.0)
    assert torch.equal(fuse(content, [first, second], weights=[1, 0]), fuse(content, [first]))
    mixed = fuse(content, [first, second], weights=[3, 1])
    assert torch.allclose(mixed, 0.75 * adain(content, first) + 0.25 * adain(content, second), atol=1e-5)
    with pytest.raises(NSTError, match="one weight per style"):
        fuse(content, [first, second], weights=[1])
    with pytest.raises(NSTError, match="negative"):
        fuse(content, [first, second], weights=[1, -1])


def test_all_ones_masks_equal_no_mask_and_masks_place_each_style():
    content, first, second = features(0, b=1), features(1, b=1), features(2, b=1, scale=5.0, shift=3.0)
    ones = torch.ones(1, 1, 6, 5)
    assert torch.allclose(fuse(content, [first], masks=[ones]), fuse(content, [first]), atol=1e-5)
    assert torch.allclose(fuse(content, [first, second], masks=[ones, ones], weights=[2, 1]),
                          fuse(content, [first, second], weights=[2, 1]), atol=1e-5)
    left = torch.zeros(1, 1, 6, 5)
    left[..., :2] = 1.0
    fused = fuse(content, [first, second], masks=[left, 1 - left])
    # The left columns are the first style's AdaIN of the content's left region, the rest the second's.
    assert torch.allclose(fused[..., :2], adain(content, first, content_mask=left)[..., :2], atol=1e-5)
    assert torch.allclose(fused[..., 2:], adain(content, second, content_mask=1 - left)[..., 2:], atol=1e-5)
    # Where no mask is set the content stays.
    assert torch.equal(fuse(content, [first], masks=[left])[..., 2:], content[..., 2:])


# --- the decoder and the whole model --------------------------------------------------------------------------

def test_decoder_mirrors_the_encoder():
    net = Decoder()
    assert net(torch.zeros(2, 512, 3, 4)).shape == (2, 3, 24, 32)
    kinds = [type(m) for m in net.modules()]
    assert kinds.count(nn.Conv2d) == 9 and kinds.count(nn.ReflectionPad2d) == 9
    assert all(m.mode == "nearest" for m in net.modules() if isinstance(m, nn.Upsample))
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) for m in net.modules())
    with pytest.raises(NSTError, match="widths"):
        Decoder(widths=(8, 8))


def test_stylize_alpha_zero_decodes_the_contents_own_features(vgg, toy_decoder, photo):
    styled = stylize_arbitrary(toy_decoder, photo, "mosaic", alpha=0.0, model=vgg, style_size=32)
    with torch.no_grad():
        expected = toy_decoder(encode(vgg, photo)[0])
    expected = torch.nn.functional.interpolate(expected, size=photo.shape[-2:], mode="bilinear").clamp(0, 1)
    assert styled.shape == photo.shape and torch.allclose(styled, expected, atol=1e-5)
    assert not torch.allclose(styled, stylize_arbitrary(toy_decoder, photo, "mosaic", model=vgg, style_size=32))


def test_stylize_with_weights_and_masks(vgg, toy_decoder, photo):
    single = stylize_arbitrary(toy_decoder, photo, "waves", model=vgg, style_size=32)
    both = stylize_arbitrary(toy_decoder, photo, ["waves", "brick"], style_blend=[1, 0], model=vgg, style_size=32)
    assert torch.equal(single, both)
    masked = stylize_arbitrary(toy_decoder, photo, ["waves"], style_masks=[torch.ones(40, 40)], model=vgg,
                               style_size=32)
    assert torch.allclose(masked, single, atol=1e-5)
    with pytest.raises(NSTError, match="one mask per style"):
        stylize_arbitrary(toy_decoder, photo, ["waves", "brick"], style_masks=[torch.ones(4, 4)], model=vgg)


def test_preserve_colors_matches_the_style_to_the_photo_first(vgg, toy_decoder, photo):
    style = load_image(image_path("waves"), 32)
    kept = stylize_arbitrary(toy_decoder, photo, style, preserve_colors="histogram", model=vgg)
    with torch.no_grad():  # the matched style is used as it is, unclamped (lesson 8's optimisation does the same)
        fused = fuse(encode(vgg, photo)[0], [encode(vgg, match_histogram(style, photo))[0]])
        expected = torch.nn.functional.interpolate(toy_decoder(fused), size=photo.shape[-2:], mode="bilinear")
    assert torch.allclose(kept, expected.clamp(0, 1), atol=1e-6)
    assert not torch.allclose(kept, stylize_arbitrary(toy_decoder, photo, style, model=vgg))


def test_bad_input_is_one_line(vgg, toy_decoder, photo, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    with pytest.raises(NSTError, match="style image"):
        stylize_arbitrary(toy_decoder, photo, str(text), model=vgg)
    with pytest.raises(NSTError, match="alpha"):
        stylize_arbitrary(toy_decoder, photo, "waves", alpha=2, model=vgg)
    with pytest.raises(NSTError, match="preserve_colors"):
        stylize_arbitrary(toy_decoder, photo, "waves", preserve_colors="yes", model=vgg)


# --- the loss, training, the file -----------------------------------------------------------------------------

def test_the_papers_loss_and_its_gradients(vgg, toy_decoder):
    contents = load_image(image_path("chelsea"), (32, 32))
    styles = load_image(image_path("mosaic"), (32, 32))
    loss = AdaINLoss(vgg)
    value = loss(toy_decoder, contents, styles)
    target, _ = loss.targets(contents, styles)
    decoded = toy_decoder(target)
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
    got, style_features = vgg(decoded, layers), vgg(styles, layers)
    style = sum(mean_std_loss(got[n], style_features[n]) for n in layers)
    content = content_loss(got[ENCODER_LAYER], target)
    assert torch.allclose(value.total, content + 10.0 * style, rtol=1e-5)
    assert torch.allclose(value.style, style, rtol=1e-5) and torch.allclose(value.content, content, rtol=1e-5)
    value.total.backward()
    assert all(p.grad is not None for p in toy_decoder.parameters())
    assert all(p.grad is None for p in vgg.parameters())
    toy_decoder.zero_grad(set_to_none=True)


def test_training_lowers_the_held_out_loss_and_the_file_round_trips(vgg, tmp_path, photo):
    out = tmp_path / "toy.dec.pth"
    # The held-out loss is that of the clamped pictures. The toy decoder starts with every output below 0, so every
    # picture clamps to black until its outputs have moved: at lr 1e-3 they are still below 0 after 8 steps.
    trained = train_decoder(size=32, steps=8, batch_size=2, lr=1e-2, model=vgg, decoder=TOY, output=out,
                            progress=False)
    assert trained.result.stop_reason == "completed" and trained.result.steps == 8
    assert trained.held_out_loss < trained.initial_held_out_loss
    assert trained.held_out_styles and not set(trained.held_out_styles) & set(trained.training["styles"])
    loaded = load_decoder(out)
    assert loaded.kind == DECODER_KIND and loaded.meta["steps"] == 8 and loaded.meta["vgg_weights"] == "random:0"
    for a, b in zip(loaded.model.state_dict().values(), trained.model.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(stylize_arbitrary(out, photo, "waves", style_size=32),
                       stylize_arbitrary(trained.model, photo, "waves", model=vgg, style_size=32))


def test_a_style_network_is_not_a_decoder(tmp_path):
    path = save_network(tmp_path / "style.net.pth", TransformerNet(channels=(4, 4, 4), blocks=1))
    with pytest.raises(NSTError, match="not an AdaIN decoder"):
        load_decoder(path)
    assert load_network(path).kind == "transformer"


# --- the command line -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def decoder_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("adain_cli")
    out = folder / "adain.dec.pth"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NSTUTIL_WEIGHTS", "random")
        assert main(["train", "--arbitrary", "--size", "16", "--steps", "2", "--batch", "1", "-o", str(out),
                     "-q"]) == 0
    return out


@pytest.fixture
def random_weights(monkeypatch):
    monkeypatch.setenv("NSTUTIL_WEIGHTS", "random")


def test_cli_trains_resumes_and_stylizes(decoder_file, random_weights, tmp_path, capsys):
    assert main(["train", "--arbitrary", "--size", "16", "--steps", "3", "--batch", "1", "-o", str(decoder_file),
                 "-q", "--resume"]) == 0
    assert "3 steps" in capsys.readouterr().out and load_decoder(decoder_file).meta["steps"] == 3
    mask = torch.zeros(1, 3, 24, 24)
    mask[..., :12] = 1.0
    save_image(mask, tmp_path / "left.png")
    save_image(1 - mask, tmp_path / "right.png")
    out = tmp_path / "out.png"
    assert main(["stylize", "--decoder", str(decoder_file), "--style", "waves,mosaic", "--style-blend", "1,1",
                 "--alpha", "0.8", "--style-masks", f"{tmp_path / 'left.png'},{tmp_path / 'right.png'}",
                 "--preserve-colors", "histogram", "--size", "24", "--style-size", "24", "chelsea",
                 "-o", str(out)]) == 0
    assert load_image(out).shape[-1] == 24


@pytest.mark.parametrize("argv, message", [
    (["--style", "NOTES", "chelsea"], "style image"),
    (["--style", "waves", "--alpha", "1.5", "chelsea"], "alpha"),
    (["--style", "waves,mosaic", "--style-blend", "1,2,3", "chelsea"], "one weight per style"),
    (["chelsea"], "--style"),
])
def test_cli_bad_input_one_line_exit_2(decoder_file, random_weights, tmp_path, capsys, argv, message):
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    argv = [str(notes) if a == "NOTES" else a for a in argv]
    assert main(["stylize", "--decoder", str(decoder_file), *argv, "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nstutil: error:") and message in err[0]


def test_cli_refuses_the_wrong_kind_of_file(decoder_file, random_weights, tmp_path, capsys):
    net = save_network(tmp_path / "style.net.pth", TransformerNet(channels=(4, 4, 4), blocks=1))
    assert main(["stylize", "--decoder", str(net), "--style", "waves", "chelsea", "-o", str(tmp_path / "a.png")]) == 2
    assert "not an AdaIN decoder" in capsys.readouterr().err
    assert main(["stylize", "--net", str(decoder_file), "chelsea", "-o", str(tmp_path / "b.png")]) == 2
    assert "--decoder" in capsys.readouterr().err
    assert main(["train", "--styles", str(tmp_path), "-o", str(tmp_path / "c.pth")]) == 2
    assert "--arbitrary" in capsys.readouterr().err
    assert main(["train", "--arbitrary", "--styles", str(tmp_path / "none"), "-o", str(tmp_path / "d.pth")]) == 2
    assert "style folder" in capsys.readouterr().err
