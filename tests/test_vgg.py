"""The VGG19 layer table, the feature extractor and the weights (files written here; no network)."""

from __future__ import annotations

import copy
import os
import pickle
import shlex
import urllib.error
import warnings

import pytest
import torch
from torch import nn

import nstutil
import nstutil.vgg as vgg_module
from nstutil.fast import channels_last_weights
from nstutil import LAYERS, NSTError, WeightsWarning, layer_names, load_vgg19, min_image_side, resolve_layer

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def names_from_torchvision(features):
    """(paper name, flat name) for each module, counted independently of nstutil from torchvision's modules."""
    out = []
    block, conv_in_block, conv_count = 1, 0, 0
    for module in features:
        if isinstance(module, nn.Conv2d):
            conv_in_block += 1
            conv_count += 1
            out.append((f"conv{block}_{conv_in_block}", f"conv_{conv_count}"))
        elif isinstance(module, nn.ReLU):
            out.append((f"relu{block}_{conv_in_block}", f"relu_{conv_count}"))
        elif isinstance(module, nn.MaxPool2d):
            out.append((f"pool{block}", f"pool_{conv_count}"))
            block += 1
            conv_in_block = 0
        else:  # pragma: no cover
            raise AssertionError(f"unexpected module {module}")
    return out


def manual_activations(features, image):
    """Every module's output of a torchvision ``features`` stack for an RGB [0, 1] image, ImageNet-normalised."""
    x = (image - IMAGENET_MEAN) / IMAGENET_STD
    outs = []
    with torch.no_grad():
        for module in features:
            x = module(x)
            outs.append(x.clone())  # torchvision's ReLUs work in place
    return outs


# ----------------------------------------------------------------------------------------------- layer table

def test_table_matches_torchvision_module_types(torchvision_vgg19):
    features = torchvision_vgg19.features
    assert len(LAYERS) == len(features) == 37
    kinds = {nn.Conv2d: "conv", nn.ReLU: "relu", nn.MaxPool2d: "pool"}
    for layer, module in zip(LAYERS, features):
        assert layer.index == list(features).index(module)
        assert layer.kind == kinds[type(module)], layer
        if isinstance(module, nn.Conv2d):
            assert layer.channels == module.out_channels


def test_table_names_both_ways(torchvision_vgg19):
    expected = names_from_torchvision(torchvision_vgg19.features)
    assert layer_names("paper") == [p for p, _ in expected]
    assert layer_names("tutorial") == [f for _, f in expected]
    for index, (paper, flat) in enumerate(expected):
        by_paper, by_flat = resolve_layer(paper), resolve_layer(flat)
        assert by_paper.index == by_flat.index == index
        assert by_paper.flat_name == flat and by_flat.name == paper
        assert resolve_layer(paper.upper()).index == index  # any case


def test_table_known_correspondences():
    pairs = {"conv_4": "conv2_2", "relu_10": "relu4_2", "pool_2": "pool1", "pool_4": "pool2", "pool_8": "pool3",
             "pool_12": "pool4", "pool_16": "pool5", "conv_1": "conv1_1", "conv_5": "conv3_1",
             "relu_16": "relu5_4"}
    for flat, paper in pairs.items():
        assert resolve_layer(flat).name == paper
        assert resolve_layer(paper).flat_name == flat
    # The tutorial's style layers conv_1..conv_5 are not the paper's conv1_1..conv5_1.
    assert [resolve_layer(f"conv_{i}").name for i in range(1, 6)] == ["conv1_1", "conv1_2", "conv2_1", "conv2_2",
                                                                      "conv3_1"]
    gatys = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    assert [resolve_layer(n).flat_name for n in gatys] == ["relu_1", "relu_3", "relu_5", "relu_9", "relu_13"]
    conv_indexes = [l.index for l in LAYERS if l.kind == "conv"]
    assert conv_indexes == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    assert [l.index for l in LAYERS if l.kind == "relu"] == [i + 1 for i in conv_indexes]


def test_strides_and_receptive_fields(torchvision_vgg19):
    """From torchvision's kernel sizes and strides: r grows by (k − 1)·jump, jump by the stride."""
    field, jump = 1, 1
    for layer, module in zip(LAYERS, torchvision_vgg19.features):
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d)):
            k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
            s = module.stride if isinstance(module.stride, int) else module.stride[0]
            field += (k - 1) * jump
            jump *= s
        assert (layer.receptive_field, layer.stride) == (field, jump), layer.name
    known = {"conv1_1": (3, 1), "pool1": (6, 2), "conv2_2": (14, 2), "conv3_1": (24, 4), "relu4_2": (84, 8),
             "pool4": (124, 16), "relu5_1": (156, 16), "pool5": (268, 32)}
    for name, expected in known.items():
        assert (resolve_layer(name).receptive_field, resolve_layer(name).stride) == expected, name
    assert resolve_layer("relu4_2").label == "relu4_2 · relu_10"


def test_unknown_layer_lists_valid_names():
    with pytest.raises(NSTError) as info:
        resolve_layer("relu6_1")
    message = str(info.value)
    assert "relu6_1" in message
    for valid in ("conv1_1", "relu4_2", "pool5", "relu5_4", "conv_1", "conv_16", "relu_16", "pool_2", "pool_16"):
        assert valid in message
    assert "\n" not in message
    with pytest.raises(NSTError):
        layer_names("keras")


def test_min_image_side_and_strides():
    assert min_image_side(["relu1_1"]) == 1
    assert min_image_side(["pool1"]) == 2
    assert min_image_side(["relu5_1", "relu1_1"]) == 16
    assert min_image_side(["pool_16"]) == 32
    assert min_image_side([]) == 1


def test_min_image_side_is_tight(vgg):
    for name in ("relu3_1", "relu5_1", "pool4"):
        side = min_image_side([name])
        out = vgg(torch.rand(1, 3, side, side), [name])[name]
        assert out.shape[-2:] == (1, 1)
        if side > 1:
            smaller = side - 1
            with pytest.raises(RuntimeError):
                shape = vgg(torch.rand(1, 3, smaller, smaller), [name])[name].shape
                if min(shape[-2:]) == 0:
                    raise RuntimeError("empty")


# -------------------------------------------------------------------------------------------- the extractor

def test_activations_equal_torchvision_run(vgg, torchvision_vgg19, make_image):
    features = copy.deepcopy(torchvision_vgg19.features)
    features.load_state_dict(vgg.features.state_dict())
    image = make_image(40, 36, seed=1)
    expected = manual_activations(features, image)
    paper = layer_names("paper")
    flat = layer_names("tutorial")
    asked = [paper[i] if i % 2 else flat[i] for i in range(37)]  # both schemes in one call
    with torch.no_grad():
        got = vgg(image, asked)
    assert list(got) == asked
    for i, name in enumerate(asked):
        torch.testing.assert_close(got[name], expected[i], rtol=1e-4, atol=1e-5, msg=name)


def test_both_names_of_one_layer_are_both_returned(vgg, make_image):
    image = make_image(32, 32)
    with torch.no_grad():
        got = vgg(image, ["relu4_2", "relu_10", "conv_4"])
    assert set(got) == {"relu4_2", "relu_10", "conv_4"}
    torch.testing.assert_close(got["relu4_2"], got["relu_10"])
    assert got["conv_4"].shape == (1, 128, 16, 16)
    assert got["relu4_2"].shape == (1, 512, 4, 4)
    assert (got["conv_4"] < 0).any()  # before the ReLU
    assert vgg(image, []) == {}


def test_torchvision_in_place_relus_do_not_overwrite_conv_outputs(vgg, torchvision_vgg19, make_image):
    features = copy.deepcopy(torchvision_vgg19.features)  # its ReLUs work in place
    features.load_state_dict(vgg.features.state_dict())
    wrapped = nstutil.VGGFeatures(features)
    image = make_image(32, 32)
    names = ["conv1_1", "relu1_1", "conv2_1", "relu2_1"]
    with torch.no_grad():
        got, expected = wrapped(image, names), vgg(image, names)
    assert (got["conv1_1"] < 0).any() and (got["conv2_1"] < 0).any()
    for name in names:
        torch.testing.assert_close(got[name], expected[name], msg=name)


def test_activations_arrive_as_the_pass_reaches_them(vgg, make_image):
    seen = []
    handle = vgg.features[5].register_forward_hook(lambda *a: seen.append("conv2_1 ran"))
    try:
        with torch.no_grad():
            for name, activation in vgg.activations(make_image(32, 32), ["relu2_1", "conv1_1", "conv_1"]):
                seen.append(name)
                assert activation.shape[1] == (64 if name != "relu2_1" else 128)
    finally:
        handle.remove()
    assert seen == ["conv1_1", "conv_1", "conv2_1 ran", "relu2_1"]


@pytest.mark.parametrize("names", [["relu1_1", "relu2_1"], ["conv1_1", "conv1_2", "relu2_2"]])
def test_channels_last_pass_same_values(vgg, make_image, names):
    image = make_image(40, 36, seed=2)
    with torch.no_grad():
        plain, nhwc = vgg(image, names), vgg(image, names, channels_last=True)
    for name in names:
        assert nhwc[name].is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(nhwc[name], plain[name], rtol=1e-4, atol=1e-5, msg=name)


def test_forward_stops_after_deepest_layer(vgg, make_image):
    calls = [0] * len(vgg.features)
    hooks = [m.register_forward_hook(lambda mod, inp, out, i=i: calls.__setitem__(i, calls[i] + 1))
             for i, m in enumerate(vgg.features)]
    try:
        with torch.no_grad():
            vgg(make_image(32, 32), ["relu2_1", "conv_1"])
        deepest = resolve_layer("relu2_1").index
        assert calls == [1] * (deepest + 1) + [0] * (len(calls) - deepest - 1)
        calls[:] = [0] * len(calls)
        with torch.no_grad():
            vgg(make_image(32, 32), ["pool_16"])
        assert calls == [1] * 37
    finally:
        for h in hooks:
            h.remove()


def test_no_weight_gradients(vgg, make_image):
    assert all(not p.requires_grad for p in vgg.parameters())
    assert not vgg.training
    image = make_image(32, 32).requires_grad_(True)
    out = vgg(image, ["relu3_1"])["relu3_1"]
    out.square().sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_avg_pooling(vgg, make_image):
    avg = load_vgg19("random", pooling="avg")
    assert avg.pooling == "avg"
    pools = [m for m in avg.features if isinstance(m, (nn.AvgPool2d, nn.MaxPool2d))]
    assert len(pools) == 5 and all(isinstance(m, nn.AvgPool2d) for m in pools)
    assert all(isinstance(m, nn.MaxPool2d) for m in vgg.features if isinstance(m, (nn.AvgPool2d, nn.MaxPool2d)))
    image = make_image(32, 32, seed=2)
    with torch.no_grad():
        got = avg(image, ["relu1_2", "pool1", "conv2_1"])
        by_max = vgg(image, ["pool1"])
    torch.testing.assert_close(got["pool1"], nn.functional.avg_pool2d(got["relu1_2"], 2))
    assert not torch.allclose(got["pool1"], by_max["pool1"])
    with pytest.raises(NSTError, match="pooling"):
        load_vgg19("random", pooling="min")


def test_caffe_input_convention(vgg, make_image):
    features = copy.deepcopy(vgg.features)
    caffe = nstutil.VGGFeatures(features, input_convention="caffe", weights_name="test")
    image = make_image(8, 8, seed=3)
    bgr255 = image[:, [2, 1, 0]] * 255.0
    expected = bgr255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    torch.testing.assert_close(caffe.normalize(image), expected, rtol=1e-5, atol=1e-4)
    with torch.no_grad():
        got = caffe(image, ["conv1_1"])["conv1_1"]
        manual = nn.functional.conv2d(expected, features[0].weight, features[0].bias, padding=1)
    torch.testing.assert_close(got, manual, rtol=1e-4, atol=1e-3)
    # ImageNet normalisation for the default convention.
    torch.testing.assert_close(vgg.normalize(image), (image - IMAGENET_MEAN) / IMAGENET_STD)


# ------------------------------------------------------------------------------------------------- weights

def test_random_weights_are_seeded(vgg):
    assert vgg.weights_name == "random:0" and not vgg.is_pretrained
    again = load_vgg19("random:0")  # another cache key, so built again
    assert again is not vgg
    for (k, a), (_, b) in zip(vgg.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
    other = load_vgg19("random:1")
    assert other.weights_name == "random:1"
    assert not torch.equal(other.features[0].weight, vgg.features[0].weight)
    with pytest.raises(NSTError, match="random:"):
        load_vgg19("random:x")


def test_random_weights_same_after_cache_cleared(vgg, monkeypatch):
    monkeypatch.setattr(vgg_module, "_cache", {})
    fresh = load_vgg19("random")
    assert fresh is not vgg
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), vgg.state_dict().values()))


def _check_same_activations(model, features, image):
    expected = manual_activations(features, image)
    names = ["conv1_1", "relu2_2", "pool3", "relu5_1", "conv_16"]
    with torch.no_grad():
        got = model(image, names)
    for name in names:
        torch.testing.assert_close(got[name], expected[resolve_layer(name).index], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layout", ["full", "features"])
def test_state_dict_file_loads(layout, torchvision_vgg19, full_vgg19_state, tmp_path, make_image, vgg):
    path = tmp_path / f"vgg19-{layout}.pth"
    state = full_vgg19_state if layout == "full" else torchvision_vgg19.features.state_dict()
    if layout == "full":
        assert any(k.startswith("classifier.") for k in state) and any(k.startswith("features.") for k in state)
    torch.save(state, path)
    model = load_vgg19(path)
    assert model.weights_name == str(path) and model.input_convention == "imagenet"
    assert not torch.equal(model.features[0].weight, vgg.features[0].weight)
    _check_same_activations(model, torchvision_vgg19.features, make_image(32, 32, seed=4))
    # As a string too, and from the environment variable.
    assert torch.equal(load_vgg19(str(path)).features[-3].weight, torchvision_vgg19.features[-3].weight)


def test_env_var_chooses_weights(monkeypatch, tmp_path, torchvision_vgg19):
    monkeypatch.setenv("NSTUTIL_WEIGHTS", "random:1")
    assert load_vgg19().weights_name == "random:1"
    path = tmp_path / "mine.pth"
    torch.save(torchvision_vgg19.features.state_dict(), path)
    monkeypatch.setenv("NSTUTIL_WEIGHTS", str(path))
    model = load_vgg19()
    assert model.weights_name == str(path)
    assert torch.equal(model.features[0].weight, torchvision_vgg19.features[0].weight)
    # An explicit argument wins over the environment.
    assert load_vgg19("random:1").weights_name == "random:1"


def test_wrong_shape_file(tmp_path, full_vgg19_state):
    state = dict(full_vgg19_state)
    state["features.2.weight"] = torch.zeros(32, 64, 3, 3)
    path = tmp_path / "wrong-shape.pth"
    torch.save(state, path)
    with pytest.raises(NSTError) as info:
        load_vgg19(path)
    assert str(path) in str(info.value) and "shape" in str(info.value)


def test_other_network_file(tmp_path):
    import torchvision

    path = tmp_path / "vgg11.pth"
    with torch.device("meta"):
        vgg11 = torchvision.models.vgg11()
    torch.save({k: torch.zeros(v.shape) for k, v in vgg11.features.state_dict().items()}, path)
    with pytest.raises(NSTError) as info:
        load_vgg19(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"not a torch file at all", b"PK\x03\x04broken zip"])
def test_unreadable_file(tmp_path, content):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(NSTError) as info:
        load_vgg19(path)
    assert str(path) in str(info.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(NSTError) as info:
        load_vgg19(tmp_path / "nope.pth")
    assert "nope.pth" in str(info.value)
    with pytest.raises(NSTError):
        load_vgg19(tmp_path)
    with pytest.raises(NSTError, match="unknown weights"):
        load_vgg19("imagenett")


class _Payload:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def test_payload_really_runs_code(tmp_path):
    """The malicious pickle of the next test does what it claims when loaded unsafely (so that test can fail)."""
    marker = tmp_path / "proof"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump", "inside a state dict"])
def test_malicious_pickle_refused(tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    if how == "torch.save":
        torch.save(_Payload(marker), path)
    elif how == "pickle.dump":
        with open(path, "wb") as stream:
            pickle.dump(_Payload(marker), stream)
    else:
        torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "evil": _Payload(marker)}, path)
    with pytest.raises(NSTError) as info:
        load_vgg19(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def _offline(monkeypatch, tmp_path):
    """An empty torch.hub cache and no network (the download fails at once, as on this machine)."""
    home = tmp_path / "torch-home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.delenv("NSTUTIL_WEIGHTS", raising=False)
    monkeypatch.setattr(vgg_module, "_cache", {})

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("no network (simulated by the test)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    return home


def test_imagenet_unavailable_is_an_error(monkeypatch, tmp_path):
    home = _offline(monkeypatch, tmp_path)
    with pytest.raises(NSTError) as info:
        load_vgg19("imagenet")
    message = str(info.value)
    assert "vgg19-dcbb9e9d.pth" in message  # which file to get
    assert str(home) in message  # where to put it
    assert "random" in message  # or how to run without it
    assert "\n" not in message


def test_caffe_unavailable_is_an_error(monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    with pytest.raises(NSTError, match="vgg19-d01eb7cb"):
        load_vgg19("caffe")


def test_auto_falls_back_to_random_with_warning(monkeypatch, tmp_path, vgg):
    _offline(monkeypatch, tmp_path)
    with pytest.warns(WeightsWarning) as record:
        model = load_vgg19()  # NSTUTIL_WEIGHTS unset → "auto"
    text = str(record[0].message)
    assert "RANDOM" in text.upper() and "vgg19-dcbb9e9d.pth" in text
    assert model.weights_name.startswith("random") and not model.is_pretrained
    assert torch.equal(model.features[0].weight, vgg.features[0].weight)


def test_cached_imagenet_file_is_used_without_network(monkeypatch, tmp_path, torchvision_vgg19, full_vgg19_state,
                                                       make_image):
    home = _offline(monkeypatch, tmp_path)
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(full_vgg19_state, checkpoints / "vgg19-dcbb9e9d.pth")
    try:
        model = load_vgg19("imagenet")
        assert model.weights_name == "imagenet" and model.is_pretrained and model.input_convention == "imagenet"
        _check_same_activations(model, torchvision_vgg19.features, make_image(32, 32, seed=5))
        with warnings.catch_warnings():
            warnings.simplefilter("error", WeightsWarning)
            auto = load_vgg19("auto")
        assert auto.weights_name == "imagenet"
        assert torch.equal(auto.features[0].weight, torchvision_vgg19.features[0].weight)
    finally:
        vgg_module._cache.clear()  # (monkeypatch restores the real cache too)


def test_cached_caffe_file_uses_caffe_input(monkeypatch, tmp_path, torchvision_vgg19):
    home = _offline(monkeypatch, tmp_path)
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(torchvision_vgg19.features.state_dict(), checkpoints / "vgg19-d01eb7cb.pth")
    try:
        model = load_vgg19("caffe")
        assert model.input_convention == "caffe" and model.weights_name == "caffe"
        # A local file with the Caffe conversion's name is taken as Caffe too.
        assert load_vgg19(checkpoints / "vgg19-d01eb7cb.pth").input_convention == "caffe"
    finally:
        vgg_module._cache.clear()


def test_channels_last_weights_only_inside_the_block_and_same_values(vgg, make_image):
    image = make_image(32, 32, seed=9)
    before = vgg(image, ["relu3_1"])["relu3_1"]
    convolutions = [m for m in vgg.features if isinstance(m, torch.nn.Conv2d)]
    weights = [c.weight.clone() for c in convolutions]
    with pytest.raises(KeyboardInterrupt):
        with channels_last_weights(vgg, ["relu3_1", "conv_2"]):
            # Up to conv3_1 (the deepest asked for) channels-last; the rest untouched.
            assert [c.weight.is_contiguous() for c in convolutions[:6]] == [False] * 5 + [True]
            inside = vgg(image, ["relu3_1"], channels_last=True)["relu3_1"]
            assert vgg(image, ["relu3_1"])["relu3_1"].is_contiguous()  # e.g. the explorer during a run
            raise KeyboardInterrupt  # a stopped run gives the layout back too
    assert all(c.weight.is_contiguous() for c in convolutions)
    assert all(torch.equal(c.weight, w) for c, w in zip(convolutions, weights))
    torch.testing.assert_close(inside, before, rtol=1e-5, atol=1e-6)
    assert vgg(image, ["relu3_1"])["relu3_1"].is_contiguous()
