"""Training photos: a folder read recursively, bad files skipped and counted, the held-out split, seeded crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nstutil import NSTError
from nstutil.photos import BUNDLED_HELD_OUT, PhotoCrops, find_photos, split_photos


def _photo(path, size=(80, 70), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    _photo(tmp_path / "a.png")
    _photo(tmp_path / "sub" / "deeper" / "b.jpg", seed=1)
    _photo(tmp_path / "sub" / "c.JPEG", seed=2)
    _photo(tmp_path / "tiny.png", size=(20, 90))
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    (tmp_path / "notes.txt").write_text("ignored")
    _photo(tmp_path / ".hidden" / "d.png")
    return tmp_path


def test_a_folder_is_searched_recursively_and_bad_files_counted(folder):
    photos = find_photos(folder)
    assert [p.relative_to(folder).as_posix() for p in photos.paths] == ["a.png", "sub/c.JPEG", "sub/deeper/b.jpg"]
    assert sorted(photos.skipped.values()) == ["empty", "smaller than 64 px", "unreadable"]
    assert "3 photos" in photos.summary() and "1 empty" in photos.summary() and "1 unreadable" in photos.summary()


@pytest.mark.parametrize("case", ["missing", "file", "empty", "unreadable"])
def test_no_usable_photo_is_one_line(tmp_path, case):
    target = tmp_path / "photos"
    if case == "file":
        target.write_text("x")
    elif case != "missing":
        target.mkdir()
        if case == "unreadable":
            (target / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(NSTError) as info:
        find_photos(target)
    assert "\n" not in str(info.value) and "photos" in str(info.value)


def test_the_bundled_set_holds_out_its_default_photos():
    bundled = find_photos()
    training, held_out = bundled.split()
    assert sorted(p.name for p in held_out) == sorted(BUNDLED_HELD_OUT)
    assert not set(training) & set(held_out) and len(training) + len(held_out) == len(bundled.paths)


def test_a_split_is_seeded_disjoint_and_complete(tmp_path):
    paths = [tmp_path / f"{k}.png" for k in range(10)]
    training, held_out = split_photos(paths, 0.3, seed=1)
    assert len(held_out) == 3 and sorted(training + held_out) == sorted(paths)
    assert split_photos(paths, 0.3, seed=1) == (training, held_out)
    assert split_photos(paths, 0.3, seed=2) != (training, held_out)
    assert split_photos(paths[:1], 0.3) == (paths[:1], [])
    assert len(split_photos(paths[:2], 0.01)[1]) == 1  # at least one held out, at least one left


def test_crops_are_a_function_of_the_step(folder):
    crops = PhotoCrops(find_photos(folder).paths, 32, seed=3)
    first = crops.batch(5, 4)
    assert first.shape == (4, 3, 32, 32) and 0.0 <= first.min() and first.max() <= 1.0
    assert torch.equal(first, PhotoCrops(find_photos(folder).paths, 32, seed=3).batch(5, 4))
    assert not torch.equal(first, crops.batch(6, 4))
    assert not torch.equal(first, PhotoCrops(find_photos(folder).paths, 32, seed=4).batch(5, 4))
    assert crops.fixed().shape == (3, 3, 32, 32)


def test_crops_flip_some_photos(tmp_path):
    # One photo, no zoom, crop = the whole photo: each crop is the photo or its mirror image.
    photo = torch.from_numpy(np.asarray(Image.open(_photo(tmp_path / "p.png", size=(64, 64))),
                                        dtype=np.float32) / 255).permute(2, 0, 1)
    crops = PhotoCrops([tmp_path / "p.png"], 64, zoom=(1.0, 1.0)).batch(0, 16)
    flipped = [torch.allclose(c, photo.flip(-1), atol=1e-6) for c in crops]
    assert all(f or torch.allclose(c, photo, atol=1e-6) for f, c in zip(flipped, crops))
    assert 0 < sum(flipped) < 16
