"""Feed-forward style transfer: training lowers the held-out loss, the network file, styling in one pass."""

from __future__ import annotations

import pytest
import torch

from nstutil import NSTError, PerceptualLoss, image_path
from nstutil.colour import rgb_to_yiq
from nstutil.feed_forward import checkpoint_path, held_out_loss, image_sha256, stylize, train_network
from nstutil.network_file import load_network, save_network
from nstutil.photos import PhotoCrops
from nstutil.transformer_net import TransformerNet

SMALL = {"channels": (8, 16, 16), "blocks": 1}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small network trained for a few steps on the bundled photos, written to a file."""
    import nstutil

    out = tmp_path_factory.mktemp("net") / "mosaic.net.pth"
    return train_network("mosaic", size=32, steps=12, batch_size=2, lr=1e-3, model=nstutil.load_vgg19("random"),
                         network=SMALL, output=out, progress=False)


def test_training_lowers_the_held_out_loss(trained):
    torch.manual_seed(0)
    untrained = TransformerNet(**SMALL)  # the same starting weights as the trained one (seed 0)
    photos = PhotoCrops(trained.held_out, 32).fixed()
    before = held_out_loss(untrained, trained.loss, photos)
    assert trained.held_out_loss < 0.5 * before
    assert sorted(p.name for p in trained.held_out) == ["chelsea.png", "coffee.png"]
    assert not set(trained.held_out) & set(trained.training_photos)


def test_the_reported_loss_is_the_perceptual_loss_computed_directly(vgg):
    torch.manual_seed(0)
    start = TransformerNet(**SMALL)
    result = train_network("mosaic", size=32, steps=1, batch_size=2, model=vgg, network=SMALL, progress=False)
    loss = PerceptualLoss(image_path("mosaic"), model=vgg, style_size=32)
    batch = PhotoCrops(result.training_photos, 32, seed=0).batch(0, 2)
    assert result.result.losses[0] == pytest.approx(loss(start(batch), batch).total.item(), rel=1e-5)


def test_the_network_file_round_trips_with_what_it_was_trained_for(trained):
    loaded = load_network(trained.path)
    photo = torch.rand(1, 3, 20, 28)
    assert torch.equal(stylize(loaded, photo), stylize(trained.model, photo))
    meta = loaded.meta
    assert meta["style_sha256"] == image_sha256(image_path("mosaic"))
    assert meta["steps"] == 12 and meta["size"] == 32 and meta["batch_size"] == 2
    assert meta["vgg_weights"].startswith("random") and meta["recipe"]["name"] == "tutorial"
    assert meta["held_out_loss"] == pytest.approx(trained.held_out_loss)
    assert torch.load(trained.path, weights_only=True)["format"] == "nstutil-network"
    assert checkpoint_path(trained.path).exists()


@pytest.mark.parametrize("kind", ["checkpoint", "vgg", "picture", "text", "missing", "other-dict"])
def test_a_file_that_is_not_a_network_is_one_line(trained, tmp_path, kind):
    path = tmp_path / "x.pth"
    if kind == "checkpoint":
        path = checkpoint_path(trained.path)
    elif kind == "vgg":
        torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, path)
    elif kind == "picture":
        path = image_path("chelsea")
    elif kind == "text":
        path.write_text("hello")
    elif kind == "other-dict":
        torch.save({"format": "nstutil-network", "version": 1, "kind": "unknown", "config": {}}, path)
    with pytest.raises(NSTError) as info:
        load_network(path)
    assert "\n" not in str(info.value) and "network" in str(info.value)


def test_styling_keeps_the_size_and_blends_with_strength(trained):
    photo = torch.rand(1, 3, 37, 51)
    styled = stylize(trained.model, photo)
    assert styled.shape == photo.shape and 0.0 <= styled.min() and styled.max() <= 1.0
    assert torch.equal(stylize(trained.model, photo, strength=0.0), photo)
    half = stylize(trained.model, photo, strength=0.5)
    assert torch.allclose(half, 0.5 * styled + 0.5 * photo, atol=1e-6)
    assert stylize(trained.path, "chelsea", size=40).shape == (1, 3, 27, 40)


def test_colour_controls_keep_the_photos_colours(trained):
    photo = torch.rand(1, 3, 24, 24) * 0.5 + 0.25
    styled = stylize(trained.model, photo, preserve_colors="luminance")
    assert torch.allclose(rgb_to_yiq(styled)[:, 1:], rgb_to_yiq(photo)[:, 1:], atol=1e-4)
    matched = stylize(trained.model, photo, preserve_colors="histogram")
    assert torch.allclose(matched.mean(dim=(2, 3)), photo.mean(dim=(2, 3)), atol=0.02)


@pytest.mark.parametrize("call,match", [
    (lambda net: stylize(net, torch.rand(1, 3, 5, 40)), "at least 8 px"),
    (lambda net: stylize(net, torch.rand(1, 3, 20, 20), strength=1.5), "strength"),
    (lambda net: stylize(net, torch.rand(1, 3, 20, 20), preserve_colors="sepia"), "preserve_colors"),
    (lambda net: stylize(net, "no-such-photo.jpg"), "does not exist"),
])
def test_bad_styling_input_is_one_line(trained, call, match):
    with pytest.raises(NSTError, match=match):
        call(trained.model)


def test_bad_training_input_is_one_line(vgg, tmp_path):
    with pytest.raises(NSTError, match="does not exist"):
        train_network("mosaic", tmp_path / "nowhere", model=vgg, steps=1)
    with pytest.raises(NSTError, match="no usable"):
        train_network("mosaic", tmp_path, model=vgg, steps=1)
    (tmp_path / "style.png").write_text("not a picture")
    with pytest.raises(NSTError, match="style image"):
        train_network(tmp_path / "style.png", model=vgg, steps=1)
    with pytest.raises(NSTError, match="too small"):
        train_network("mosaic", model=vgg, steps=1, size=4)


def test_saving_an_unknown_kind_of_network_is_refused(tmp_path):
    with pytest.raises(NSTError, match="register"):
        save_network(tmp_path / "x.pth", torch.nn.Linear(2, 2))


def test_a_file_from_before_the_tanh_output_loads_as_the_linear_network_it_was(tmp_path):
    torch.manual_seed(0)
    linear = TransformerNet(**SMALL, output="linear")
    path = save_network(tmp_path / "old.net.pth", linear)
    state = torch.load(path, weights_only=True)
    del state["config"]["output"]  # as nstutil wrote style networks before the output layer had a choice
    torch.save(state, path)
    loaded = load_network(path)
    assert loaded.config["output"] == "linear"
    photo = torch.rand(1, 3, 16, 16)
    assert torch.equal(loaded.model(photo), linear.eval()(photo))
