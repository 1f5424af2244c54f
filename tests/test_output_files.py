"""Output files: everything that would stop the write is found before the run, and a file the user protected is
neither replaced without ``force`` nor loses its permissions (nstutil.output_files, save_image, the CLI)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch
from PIL import Image

import nstutil
from nstutil import NSTError, save_image
from nstutil.output_files import check_output, temporary_prefix

NAME_MAX = os.pathconf("/tmp", "PC_NAME_MAX")


def _image(seed=0):
    return torch.rand((1, 3, 6, 5), generator=torch.Generator().manual_seed(seed))


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def _write_png(path, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8), "RGB").save(path)
    return path


def test_read_only_output_is_refused_unless_forced(tmp_path):
    target = tmp_path / "keep.png"
    save_image(_image(1), target)
    target.chmod(0o444)
    before = target.read_bytes()
    with pytest.raises(NSTError, match="read-only.*--force") as info:
        save_image(_image(2), target)
    assert "keep.png" in str(info.value) and "\n" not in str(info.value)
    assert target.read_bytes() == before
    save_image(_image(2), target, force=True)
    assert target.read_bytes() != before
    assert _mode(target) == 0o444  # forced, but still the user's read-only file
    assert sorted(os.listdir(tmp_path)) == ["keep.png"]


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o664])
def test_replaced_file_keeps_its_permissions(tmp_path, mode):
    target = tmp_path / "private.png"
    save_image(_image(1), target)
    target.chmod(mode)
    save_image(_image(2), target)
    assert _mode(target) == mode
    assert torch.equal(nstutil.load_image(target), (_image(2) * 255 + 0.5).floor() / 255)
    fresh = save_image(_image(3), tmp_path / "new.png")
    assert _mode(fresh) == 0o644  # a new file is readable by all, as before


def test_format_pillow_reads_but_cannot_write_is_refused(tmp_path):
    assert ".psd" in Image.registered_extensions()  # Pillow knows the extension (it reads PSD)
    with pytest.raises(NSTError, match=r"cannot write.*\.png") as info:
        check_output(tmp_path / "out.psd")
    assert "out.psd" in str(info.value)
    check_output(tmp_path / "out.webp")  # one it writes is fine
    assert os.listdir(tmp_path) == []


def test_name_too_long_is_refused_before_writing(tmp_path):
    too_long = tmp_path / ("x" * (NAME_MAX - 3) + ".png")
    with pytest.raises(NSTError, match=f"limit of {NAME_MAX}"):
        check_output(too_long)
    with pytest.raises(NSTError, match="shorter name"):
        check_output(tmp_path / ("d" * (NAME_MAX + 1)) / "out.png")  # a folder to be made, too long
    assert os.listdir(tmp_path) == []


def test_longest_legal_name_leaves_room_for_the_temporary_file(tmp_path):
    longest = tmp_path / ("y" * (NAME_MAX - 4) + ".png")
    assert len(temporary_prefix(longest, ".png")) + 8 + len(".png") <= NAME_MAX
    written = save_image(_image(), longest)
    assert os.listdir(tmp_path) == [longest.name]
    assert nstutil.load_image(written).shape == (1, 3, 6, 5)


def test_cli_refuses_before_the_run(tmp_path, capsys, monkeypatch):
    """Read-only output, an unwritable format and snapshot names too long: exit 2, one line, no run started."""
    from nstutil import cli

    def no_run(*args, **kwargs):
        raise AssertionError("the run started")

    monkeypatch.setattr(cli, "style_transfer", no_run)
    monkeypatch.setattr(cli, "plan_run", no_run)
    monkeypatch.setenv("NSTUTIL_WEIGHTS", "random")
    content = _write_png(tmp_path / "content.png")
    protected = tmp_path / "protected.png"
    save_image(_image(), protected)
    protected.chmod(0o400)
    base = ["--content", str(content), "--style", str(content), "--size", "32", "--steps", "2", "-q"]
    snapshots_too_long = tmp_path / ("z" * (NAME_MAX - 6) + ".png")  # fits, but z...-0010.png does not
    old_snapshot = tmp_path / "run-0020.png"  # from an earlier run, made read-only
    save_image(_image(), old_snapshot)
    old_snapshot.chmod(0o444)
    for output, extra, message in ((protected, [], "read-only"), (tmp_path / "o.psd", [], "cannot write"),
                                   (snapshots_too_long, ["--save-every", "10"], "limit"),
                                   (tmp_path / "run.png", ["--save-every", "10"], "run-0020.png' exists and is "
                                                                                  "read-only")):
        assert cli.main([*base, "-o", str(output), *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("nstutil: error: output") and message in err and err.count("\n") == 1, err
    assert _mode(protected) == 0o400


def test_cli_force_replaces_a_read_only_output(tmp_path, capsys, monkeypatch):
    from nstutil import cli

    monkeypatch.setenv("NSTUTIL_WEIGHTS", "random")
    content = _write_png(tmp_path / "content.png")
    protected = tmp_path / "protected.png"
    save_image(_image(), protected)
    protected.chmod(0o440)
    before = protected.read_bytes()
    assert cli.main(["--content", str(content), "--style", str(content), "--size", "32", "--steps", "2", "-q",
                     "-o", str(protected), "--force"]) == 0
    assert protected.read_bytes() != before and _mode(protected) == 0o440


def test_transfer_result_save_refuses_read_only_unless_forced(tmp_path):
    image = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(4))
    result = nstutil.style_transfer(image, image, size=32, steps=1, weights="random", progress=False)
    target = tmp_path / "result.png"
    save_image(_image(), target)
    target.chmod(0o444)
    with pytest.raises(NSTError, match="read-only"):
        result.save(target)
    result.save(target, force=True)
    assert nstutil.load_image(target).shape == result.image.shape and _mode(target) == 0o444
