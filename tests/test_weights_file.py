"""The shareable float16 weights file: ``python -m nstutil.weights export/verify`` and loading it (no network).

The sources are seeded random weights and state dicts the tests write; ``--from imagenet`` is tested offline.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import urllib.error
from pathlib import Path

import pytest
import torch

from nstutil import load_vgg19
from nstutil import vgg as vgg_module
from nstutil import weights as weights_module
from nstutil.weights import export_weights, main

ROOT = Path(__file__).resolve().parent.parent
FEATURE_KEYS = list(vgg_module._make_features().state_dict())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(path, printed lines) of ``export --from random:3``, written once for the module."""
    path = tmp_path_factory.mktemp("export") / "vgg19-random3-fp16.pth"
    written = export_weights(path, "random:3")
    return path, written


def _run_main(argv, capsys):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_export_is_a_float16_features_state_dict(exported):
    path, written = exported
    assert 38e6 < path.stat().st_size < 42e6  # 20,024,384 parameters × 2 bytes, not 548 MB
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert list(state) == FEATURE_KEYS and len(state) == 32
    assert all(t.dtype == torch.float16 for t in state.values())
    info = state._metadata["nstutil"]
    assert info["format"] == weights_module.WEIGHTS_FILE_FORMAT and info["source"] == "random:3"
    assert info["input_convention"] == "imagenet" and info["dtype"] == "float16"
    assert written.sha256 == _sha256(path) and written.parameters == 20_024_384
    # The values are random:3's, rounded to float16.
    reference = vgg_module._random_state_dict(3)
    for key in FEATURE_KEYS:
        assert torch.equal(state[key], reference[key].half())


def test_export_loads_in_plain_torchvision(exported):
    """The metadata rides in _metadata, which load_state_dict ignores: torchvision takes the file as it is."""
    import torchvision

    with torch.device("meta"):
        model = torchvision.models.vgg19(weights=None)
    features = model.features.to_empty(device="cpu")
    features.load_state_dict(torch.load(exported[0], weights_only=True), strict=True)
    assert features[0].weight.dtype == torch.float32
    assert torch.equal(features[0].weight, vgg_module._random_state_dict(3)["0.weight"].half().float())


def test_load_vgg19_reads_the_export_as_float32(exported, monkeypatch, make_image):
    path = exported[0]
    for model in (load_vgg19(path), load_vgg19(str(path))):
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert model.weights_name == f"random:3 from {path}" and not model.is_pretrained
        assert model.input_convention == "imagenet"
    monkeypatch.setenv("NSTUTIL_WEIGHTS", str(path))
    model = load_vgg19()
    assert model.weights_name.endswith(str(path))
    exact = load_vgg19("random:3")
    image = make_image(48, 48, seed=2)
    with torch.no_grad():
        got, want = model(image, ["relu3_1"])["relu3_1"], exact(image, ["relu3_1"])["relu3_1"]
    assert not torch.equal(got, want)  # float16 storage does change something ...
    assert ((got - want).abs().max() / want.abs().max()).item() < 5e-3  # ... but little


def test_export_is_reproducible_whatever_the_name(exported, tmp_path):
    again = export_weights(tmp_path / "another-name.pth", "random:3")
    assert again.sha256 == exported[1].sha256


def test_export_from_a_file_records_it(tmp_path, full_vgg19_state, torchvision_vgg19, capsys):
    source = tmp_path / "my-vgg19.pth"
    torch.save(full_vgg19_state, source)  # the full torchvision layout, float32
    out = tmp_path / "share" / "vgg19-fp16.pth"
    status, text, err = _run_main(["export", out, "--from", source], capsys)
    assert status == 0 and err == ""
    state = torch.load(out, weights_only=True)
    info = state._metadata["nstutil"]
    assert info["source"] == "file my-vgg19.pth" and info["source_sha256"] == _sha256(source)
    assert torch.equal(state["10.weight"], torchvision_vgg19.features[10].weight.half())
    assert f"sha256: {_sha256(out)}" in text and "file my-vgg19.pth" in text
    # Re-exporting an export keeps its recorded source.
    again = export_weights(tmp_path / "copy.pth", out)
    assert again.source == "file my-vgg19.pth"


def test_caffe_export_keeps_caffe_input(tmp_path, torchvision_vgg19):
    source = tmp_path / "vgg19-d01eb7cb.pth"  # the Caffe conversion's name: taken as Caffe's input convention
    torch.save(torchvision_vgg19.features.state_dict(), source)
    out = tmp_path / "caffe-fp16.pth"  # the export's name says nothing; the file records it
    written = export_weights(out, source)
    assert written.input_convention == "caffe"
    assert load_vgg19(out).input_convention == "caffe"
    # --convention overrides what the source implies.
    other = export_weights(tmp_path / "other.pth", source, convention="imagenet")
    assert load_vgg19(other.path).input_convention == "imagenet"


def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setattr(vgg_module, "_cache", {})

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("no network (simulated by the test)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)


@pytest.mark.parametrize("source, expect", [("imagenet", "vgg19-dcbb9e9d.pth"), ("caffe", "vgg19-d01eb7cb.pth")])
def test_export_offline_refused_in_one_line(source, expect, monkeypatch, tmp_path, capsys):
    _offline(monkeypatch, tmp_path)
    out = tmp_path / "vgg19-fp16.pth"
    args = ["export", out] + ([] if source == "imagenet" else ["--from", source])  # imagenet is the default
    status, text, err = _run_main(args, capsys)
    assert status == 2 and "error" not in text  # (torch.hub prints the download it tries on stdout)
    assert err.count("\n") == 1 and err.startswith("nstutil.weights: error:") and expect in err
    assert not out.exists() and not list(tmp_path.glob(".vgg19-fp16*"))


@pytest.mark.parametrize("source, expect", [("auto", "random"), ("imagenett", "unknown source"),
                                            ("missing/vgg.pth", "does not exist")])
def test_export_bad_source(source, expect, tmp_path, capsys):
    status, text, err = _run_main(["export", tmp_path / "out.pth", "--from", source], capsys)
    assert status == 2 and err.count("\n") == 1 and expect in err
    assert not (tmp_path / "out.pth").exists()


def test_export_never_overwrites_by_accident(exported, tmp_path, capsys):
    out = tmp_path / "out.pth"
    out.write_bytes(b"precious")
    status, _, err = _run_main(["export", out, "--from", "random"], capsys)
    assert status == 2 and "--force" in err and out.read_bytes() == b"precious"
    status, _, err = _run_main(["export", exported[0], "--from", exported[0], "--force"], capsys)
    assert status == 2 and "is the source file" in err
    assert _run_main(["export", out, "--from", "random", "--force"], capsys)[0] == 0
    assert torch.load(out, weights_only=True)._metadata["nstutil"]["source"] == "random:0"


def test_verify_says_what_and_where_from(exported, capsys):
    status, text, err = _run_main(["verify", exported[0]], capsys)
    assert status == 0 and err == ""
    assert "nstutil weights file" in text and "float16" in text and "source: random:3" in text
    assert "input convention: imagenet" in text and "digest" in text
    assert text.strip().splitlines()[-1] == f"sha256: {_sha256(exported[0])}"


def test_verify_accepts_a_plain_vgg19_file(tmp_path, full_vgg19_state, capsys):
    path = tmp_path / "vgg19-full.pth"
    torch.save(full_vgg19_state, path)
    status, text, _ = _run_main(["verify", path], capsys)
    assert status == 0
    assert "not an nstutil export" in text and "full model" in text and "float32" in text
    assert "source: not recorded" in text


class _Payload:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def _bad_files(folder: Path, exported_path: Path) -> dict:
    """name -> (path, what the one line must say) for each kind of bad file."""
    import torchvision

    good = exported_path.read_bytes()
    cases = {}
    path = folder / "truncated.pth"
    path.write_bytes(good[: len(good) // 2])
    cases["truncated"] = (path, "damaged or truncated")
    with torch.device("meta"):
        vgg11 = torchvision.models.vgg11()
    path = folder / "vgg11.pth"
    torch.save({k: torch.zeros(v.shape) for k, v in vgg11.features.state_dict().items()}, path)
    cases["not VGG19"] = (path, "VGG19")
    path = folder / "evil.pth"
    torch.save(_Payload(folder / "pwned"), path)
    cases["pickled code"] = (path, "pickled code")
    state = torch.load(exported_path, weights_only=True)
    state["16.weight"][0, 0, 0, 0] = float("inf")
    path = folder / "inf.pth"
    torch.save(state, path)
    cases["non-finite"] = (path, "non-finite")
    state = torch.load(exported_path, weights_only=True)
    state["16.weight"][0, 0, 0, 0] += 1.0
    path = folder / "changed.pth"
    torch.save(state, path)
    cases["changed after export"] = (path, "digest")
    cases["missing"] = (folder / "nope.pth", "does not exist")
    cases["a folder"] = (folder, "directory")
    return cases


def test_verify_bad_files_one_line_exit_2(exported, tmp_path, capsys):
    for name, (path, expect) in _bad_files(tmp_path, exported[0]).items():
        status, text, err = _run_main(["verify", path], capsys)
        assert status == 2, name
        assert text == "" and err.count("\n") == 1 and expect in err, (name, err)
        assert err.startswith("nstutil.weights: error:"), name
    assert not (tmp_path / "pwned").exists()


def test_command_line_entry_point(exported):
    """``python -m nstutil.weights`` itself, in a subprocess (the bad-file exits are tested through main())."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "nstutil.weights", "verify", str(exported[0])], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stderr == ""
    assert f"sha256: {_sha256(exported[0])}" in run.stdout


def test_float16_effect_is_small_on_random_weights(monkeypatch):
    """The measurement behind the teacher's guide's figures, at a tiny size and few steps."""
    from nstutil.weights import float16_effect

    effect = float16_effect("random:0", size=32, steps=3, presets=("tutorial",))
    assert set(effect) == {"gram relu1_1", "gram relu2_1", "gram relu3_1", "gram relu4_1", "gram relu5_1",
                           "loss tutorial", "pixels mean tutorial", "pixels max tutorial"}
    assert all(0 < effect[f"gram relu{k}_1"] < 1e-2 for k in range(1, 6))
    assert effect["loss tutorial"] < 1e-2
