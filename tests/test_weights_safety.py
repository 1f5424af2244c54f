"""The weights tool's file safety: the output compared with the source by identity, damage called damage, and a
hostile archive refused before anything is inflated (nstutil.weights, nstutil.weights_archive)."""

from __future__ import annotations

import os
import zipfile

import pytest
import torch

from nstutil import NSTError
from nstutil.weights import export_weights, main, verify_weights


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "src.pth"
    export_weights(path, "random:5")
    return path


def _run(argv, capsys):
    status = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return status, captured.err


def test_output_naming_the_source_through_dotdot_is_refused(source, capsys):
    before = source.read_bytes()
    missing = source.parent / "missing"
    status, err = _run(["export", missing / ".." / source.name, "--from", source], capsys)
    assert status == 2 and "is the source file" in err and err.count("\n") == 1, err
    assert source.read_bytes() == before
    assert not missing.exists()  # nothing made on the way
    link = source.parent / "hard.pth"
    os.link(source, link)
    try:
        status, err = _run(["export", link, "--from", source, "--force"], capsys)
        assert status == 2 and "is the source file" in err
    finally:
        link.unlink()
    assert source.read_bytes() == before


def test_dotdot_spelling_of_an_existing_file_still_needs_force(source, tmp_path, capsys):
    precious = tmp_path / "precious.pth"
    precious.write_bytes(b"precious")
    status, err = _run(["export", tmp_path / "missing" / ".." / "precious.pth", "--from", source], capsys)
    assert status == 2 and "--force" in err and precious.read_bytes() == b"precious"


def _rezipped(good, path, compression):
    with zipfile.ZipFile(good) as archive, zipfile.ZipFile(path, "w", compression) as out:
        for entry in archive.infolist():
            out.writestr(entry.filename, archive.read(entry.filename))
    return path


def test_damaged_downloads_are_called_damaged(source, tmp_path, capsys):
    good = source.read_bytes()
    cases = {
        "random bytes": os.urandom(4096),
        "cut short": good[: len(good) // 3],
        "last bytes lost": good[:-40],
    }
    for name, data in cases.items():
        path = tmp_path / f"{name.replace(' ', '-')}.pth"
        path.write_bytes(data)
        status, err = _run(["verify", path], capsys)
        assert status == 2 and "damaged" in err and "pickled code" not in err, (name, err)
        assert err.count("\n") == 1 and "download or copy it again" in err, (name, err)
    recompressed = _rezipped(source, tmp_path / "recompressed.pth", zipfile.ZIP_DEFLATED)
    status, err = _run(["verify", recompressed], capsys)
    assert status == 2 and "compressed entries" in err and "pickled code" not in err, err


def test_hostile_archive_is_refused_before_inflating(tmp_path, monkeypatch):
    """An archive whose entry inflates 64 MiB of zeros from a few kB: refused from the archive's directory alone,
    torch.load never runs."""
    bomb = tmp_path / "bomb.pth"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        with archive.open("archive/data/0", "w") as entry:
            block = bytes(1 << 20)
            for _ in range(64):
                entry.write(block)
    assert bomb.stat().st_size < 1 << 20

    def no_load(*args, **kwargs):
        raise AssertionError("torch.load ran on a hostile archive")

    monkeypatch.setattr(torch, "load", no_load)
    with pytest.raises(NSTError, match="compressed entries") as info:
        verify_weights(bomb)
    assert "67,108,8" in str(info.value)  # 64 MiB and the small pickle
