"""Loading any picture as 1×3×H×W float32 in [0, 1], refusing bad files with the path named, saving atomically."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import nstutil
from nstutil import NSTError, load_image, save_image


def _check_tensor(t, height, width):
    assert isinstance(t, torch.Tensor)
    assert t.dtype == torch.float32
    assert t.shape == (1, 3, height, width)
    assert t.min() >= 0.0 and t.max() <= 1.0


def test_rgb_png_exact(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    path = tmp_path / "rgb.png"
    Image.fromarray(array, "RGB").save(path)
    t = load_image(path)
    _check_tensor(t, 5, 7)
    expected = torch.from_numpy(array).permute(2, 0, 1).float().div(255).unsqueeze(0)
    assert torch.equal(t, expected)


def test_grey(tmp_path):
    array = np.array([[0, 100, 255], [50, 200, 30]], dtype=np.uint8)
    path = tmp_path / "grey.png"
    Image.fromarray(array, "L").save(path)
    t = load_image(path)
    _check_tensor(t, 2, 3)
    for c in range(3):
        assert torch.equal(t[0, c], torch.from_numpy(array).float() / 255)


def test_rgba_transparent_becomes_white(tmp_path):
    array = np.array([[[255, 0, 0, 0], [0, 0, 255, 255]],
                      [[0, 0, 0, 128], [10, 20, 30, 255]]], dtype=np.uint8)
    path = tmp_path / "rgba.png"
    Image.fromarray(array, "RGBA").save(path)
    t = load_image(path)
    _check_tensor(t, 2, 2)
    px = lambda y, x: t[0, :, y, x].tolist()  # noqa: E731
    assert px(0, 0) == pytest.approx([1.0, 1.0, 1.0])  # fully transparent red → white
    assert px(0, 1) == pytest.approx([0.0, 0.0, 1.0])  # opaque blue
    assert px(1, 1) == pytest.approx([10 / 255, 20 / 255, 30 / 255])
    half = 1 - 128 / 255  # black at alpha 128 over white
    assert px(1, 0) == pytest.approx([half] * 3, abs=1.5 / 255)


def test_palette(tmp_path):
    img = Image.new("P", (3, 1))
    palette = [255, 0, 0, 0, 255, 0, 20, 40, 60] + [0] * (256 * 3 - 9)
    img.putpalette(palette)
    img.putdata([0, 1, 2])
    path = tmp_path / "palette.png"
    img.save(path)
    assert Image.open(path).mode == "P"
    t = load_image(path)
    _check_tensor(t, 1, 3)
    assert t[0, :, 0, 0].tolist() == pytest.approx([1, 0, 0])
    assert t[0, :, 0, 1].tolist() == pytest.approx([0, 1, 0])
    assert t[0, :, 0, 2].tolist() == pytest.approx([20 / 255, 40 / 255, 60 / 255])


def test_palette_with_transparency(tmp_path):
    img = Image.new("P", (2, 1))
    img.putpalette([0, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    img.putdata([0, 1])
    path = tmp_path / "palette-transparent.png"
    img.save(path, transparency=0)  # palette entry 0 (black) is transparent
    t = load_image(path)
    assert t[0, :, 0, 0].tolist() == pytest.approx([1, 1, 1])
    assert t[0, :, 0, 1].tolist() == pytest.approx([0, 0, 1])


def test_cmyk(tmp_path):
    img = Image.new("CMYK", (3, 1))
    img.putdata([(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 0, 255)])
    path = tmp_path / "cmyk.tif"
    img.save(path)
    assert Image.open(path).mode == "CMYK"
    t = load_image(path)
    _check_tensor(t, 1, 3)
    assert t[0, :, 0, 0].tolist() == pytest.approx([1, 1, 1])  # no ink: white
    assert t[0, :, 0, 1].tolist() == pytest.approx([0, 1, 1])  # cyan
    assert t[0, :, 0, 2].tolist() == pytest.approx([0, 0, 0])  # black


def test_16_bit_grey(tmp_path):
    array = np.array([[0, 1000, 32768], [65535, 257, 40000]], dtype=np.uint16)
    path = tmp_path / "grey16.png"
    Image.fromarray(array).save(path)
    assert Image.open(path).mode.startswith("I")
    t = load_image(path)
    _check_tensor(t, 2, 3)
    expected = torch.from_numpy(array.astype(np.float32) / 65535.0)
    for c in range(3):
        torch.testing.assert_close(t[0, c], expected, rtol=0, atol=1e-6)
    # Not clipped at 255: 1000/65535 stays small, 40000/65535 is not white.
    assert t[0, 0, 0, 1].item() < 0.02 and t[0, 0, 1, 2].item() < 0.7


def test_exif_orientation(tmp_path):
    """Orientation 6: the stored picture is shown turned 90° clockwise, so its left half comes out on top."""
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red
    stored[:, 20:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored, "RGB").save(path, exif=exif, quality=95)
    t = load_image(path)
    _check_tensor(t, 40, 20)  # height and width swapped
    top, bottom = t[0, :, 5, 10], t[0, :, 34, 10]
    assert top[0] > 0.8 and top[2] < 0.2  # red on top
    assert bottom[2] > 0.8 and bottom[0] < 0.2  # blue below


def test_size_is_the_longer_side(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (40, 20), (10, 200, 30)).save(path)
    t = load_image(path, size=32)
    _check_tensor(t, 16, 32)
    assert t[0, :, 8, 16].tolist() == pytest.approx([10 / 255, 200 / 255, 30 / 255], abs=1e-3)
    tall = tmp_path / "tall.png"
    Image.new("RGB", (21, 60)).save(tall)
    _check_tensor(load_image(tall, size=40), 40, 14)
    _check_tensor(load_image(tall, size=120), 120, 42)  # enlarging too
    _check_tensor(load_image(path, size=(10, 12)), 10, 12)  # an exact (height, width)
    with pytest.raises(NSTError):
        load_image(path, size=0)


def test_pixel_guard(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (20, 20)).save(path)
    with pytest.raises(NSTError) as info:
        load_image(path, max_pixels=100)
    assert str(path) in str(info.value) and "400" in str(info.value)
    _check_tensor(load_image(path, max_pixels=400), 20, 20)


def _png_header_only(width, height):
    """A PNG whose header claims width × height pixels, followed by a tiny (wrong) image body."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + \
        chunk(b"IEND", b"")


@pytest.mark.parametrize("width, height", [(8000, 6000), (100_000, 100_000)])
def test_decompression_bomb_header(tmp_path, width, height):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(width, height))
    assert path.stat().st_size < 200
    with pytest.raises(NSTError) as info:
        load_image(path)
    assert str(path) in str(info.value)
    assert "pixel" in str(info.value)


def test_missing_file(tmp_path):
    path = tmp_path / "missing.png"
    with pytest.raises(NSTError) as info:
        load_image(path)
    assert str(path) in str(info.value) and "does not exist" in str(info.value)


def test_directory(tmp_path):
    with pytest.raises(NSTError) as info:
        load_image(tmp_path)
    assert str(tmp_path) in str(info.value) and "directory" in str(info.value)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(NSTError) as info:
        load_image(path)
    assert str(path) in str(info.value) and "empty" in str(info.value)


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture\n" * 20)
    with pytest.raises(NSTError) as info:
        load_image(path)
    assert str(path) in str(info.value) and "not an image" in str(info.value)


@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_truncated_image(tmp_path, fmt):
    whole = tmp_path / f"whole.{fmt}"
    noise = np.random.default_rng(1).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise, "RGB").save(whole)
    data = whole.read_bytes()
    path = tmp_path / f"truncated.{fmt}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NSTError) as info:
        load_image(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_role_words_the_message(tmp_path):
    with pytest.raises(NSTError, match="^style image"):
        load_image(tmp_path / "x.png", role="style image")


def test_image_path_bundled_names():
    assert nstutil.image_path("chelsea") == nstutil.DEFAULT_CONTENT
    assert nstutil.DEFAULT_CONTENT.is_file() and nstutil.DEFAULT_STYLE.is_file()
    with pytest.raises(NSTError) as info:
        nstutil.image_path("no-such-picture")
    assert "chelsea.png" in str(info.value)


# --------------------------------------------------------------------------------------------------- saving

def _grid_image(h=6, w=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 3, h, w), generator=g).float() / 255


def test_save_round_trip(tmp_path):
    image = _grid_image()
    path = save_image(image, tmp_path / "out.png")
    assert path == tmp_path / "out.png"
    assert os.listdir(tmp_path) == ["out.png"]  # no temporary file left
    assert torch.equal(load_image(path), image)
    assert (path.stat().st_mode & 0o777) == 0o644
    # 3×H×W works too, and a JPEG has the right size.
    jpg = save_image(image[0], tmp_path / "sub" / "out.jpg")
    assert load_image(jpg).shape == (1, 3, 6, 5)


def test_save_refuses_to_overwrite_an_input(tmp_path):
    source = tmp_path / "content.png"
    save_image(_grid_image(seed=1), source)
    before = source.read_bytes()
    for spelling in (source, str(source), tmp_path / "." / "content.png"):
        with pytest.raises(NSTError, match="input"):
            save_image(_grid_image(seed=2), spelling, protect=[source])
    link = tmp_path / "link.png"
    link.symlink_to(source)
    with pytest.raises(NSTError):
        save_image(_grid_image(seed=2), link, protect=[source])
    assert source.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["content.png", "link.png"]


def test_save_unwritable_paths(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(NSTError) as info:
        save_image(_grid_image(), a_file / "out.png")
    assert "out.png" in str(info.value)
    folder = tmp_path / "folder.png"
    folder.mkdir()
    with pytest.raises(NSTError, match="directory"):
        save_image(_grid_image(), folder)
    with pytest.raises(NSTError, match="extension"):
        save_image(_grid_image(), tmp_path / "out.xyz")
    assert sorted(os.listdir(tmp_path)) == ["file.txt", "folder.png"]
    assert os.listdir(folder) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_save_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(NSTError) as info:
            save_image(_grid_image(), folder / "out.png")
        assert "out.png" in str(info.value)
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o700)


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    save_image(_grid_image(seed=3), target)
    before = target.read_bytes()

    def failing_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half a picture")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(NSTError) as info:
        save_image(_grid_image(seed=4), target)
    assert str(target) in str(info.value)
    assert target.read_bytes() == before  # the old file is intact
    assert os.listdir(tmp_path) == ["out.png"]  # and the temporary file is gone

    def interrupted_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        save_image(_grid_image(seed=4), tmp_path / "new.png")
    assert os.listdir(tmp_path) == ["out.png"]


def test_to_pil_and_show_images():
    image = _grid_image(4, 3)
    pil = nstutil.to_pil(image)
    assert pil.size == (3, 4) and pil.mode == "RGB"
    assert np.array_equal(np.asarray(pil), (image[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
    fig = nstutil.show_images([image, image[0]], ["a", "b"])
    assert [ax.get_title() for ax in fig.axes[:2]] == ["a", "b"]
    import matplotlib.pyplot as plt

    plt.close(fig)
    with pytest.raises(NSTError):
        nstutil.show_images([image], ["a", "b"])
    # Four or five a row stay 10 inches wide (a notebook would shrink a wider figure, titles too); two keep 3.2 in each.
    for n, width in [(2, 6.4), (4, 10.0), (5, 10.0)]:
        fig = nstutil.show_images([image] * n, ncols=n)
        assert fig.get_size_inches()[0] == pytest.approx(width)
        plt.close(fig)
    with pytest.raises(NSTError):
        nstutil.to_pil(torch.zeros(2, 3, 4, 4))
