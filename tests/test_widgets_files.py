"""Uploads and Save in the run panel: what lands where, under which name, and what the student reads.

Every test runs in its own working folder (the notebook's folder, for the panel): ``uploads/`` and ``outputs/`` are
made there.
"""

from __future__ import annotations

import datetime
import io
from pathlib import Path

import pytest
import torch
from PIL import Image

import nstutil
from nstutil import widgets as W

SIZE = 32


@pytest.fixture(scope="module")
def model():
    return nstutil.load_vgg19("random")


@pytest.fixture()
def folder(tmp_path, monkeypatch):
    work = tmp_path / "notebooks"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture()
def panel(model, folder):
    return W.RunPanel(W.LayerChooser("tutorial"), size=SIZE, steps=2, model=model, output="outputs/out.png")


def _png_bytes(colour=(200, 30, 30), size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def _upload(picker, name, content):
    """What the browser does: the FileUpload widget's value becomes the chosen file."""
    picker.upload.value = ({"name": name, "type": "image/png", "size": len(content), "content": memoryview(content),
                            "last_modified": datetime.datetime.now()},)


# ------------------------------------------------------------------------------------------------- uploads


def test_an_upload_is_kept_next_to_the_notebook_and_named_as_a_student_reads_it(panel, folder):
    picker = panel.style
    _upload(picker, "my holiday photo.png", _png_bytes())
    assert picker.path == folder / "uploads" / "my_holiday_photo.png" and picker.path.exists()
    assert picker.source() == "'uploads/my_holiday_photo.png'"
    assert "nstutil" not in picker.source() and "/tmp" not in panel.chooser.code.value
    assert "&#x27;uploads/my_holiday_photo.png&#x27;,  # style image" in panel.chooser.code.value
    assert "uploaded my holiday photo.png, kept as &#x27;uploads/my_holiday_photo.png&#x27;" in panel.message.value
    # The drop-down names it in full, and the button counts the file it took (it read "Upload (0)").
    assert picker.dropdown.label == "my_holiday_photo.png (uploaded)"
    assert picker.dropdown.layout.width == "max-content"
    assert len(picker.upload.value) == 1
    # The pasted call finds the file from the notebook's folder, and the panel's run uses it.
    result = panel.run(wait=True)
    assert result.settings["style_path"] == str(picker.path)


def test_a_bad_upload_names_the_file_not_a_temporary_path_and_changes_nothing(panel, folder):
    before, code = panel.style.path, panel.chooser.code.value
    _upload(panel.style, "notes.txt", b"this is not an image")
    text = panel.message.value
    assert "style upload &#x27;notes.txt&#x27; was not used" in text
    assert "nstutil_upload_" not in text and "/tmp" not in text and str(folder) not in text
    assert "\n" not in text and "Traceback" not in text
    assert panel.style.path == before and panel.chooser.code.value == code
    assert not (folder / "uploads").exists()  # only images are kept
    assert panel.style.upload.value == ()  # "(0)": nothing was taken


def test_the_same_picture_uploaded_twice_is_kept_once_and_another_of_that_name_beside_it(panel, folder):
    assert panel.content.add_upload("cat.png", _png_bytes((10, 20, 30)))
    assert panel.content.add_upload("cat.png", _png_bytes((10, 20, 30)))
    assert sorted(p.name for p in (folder / "uploads").iterdir()) == ["cat.png"]
    assert panel.content.add_upload("cat.png", _png_bytes((200, 200, 0)))
    assert panel.content.path.name == "cat-2.png"
    labels = [label for label, _ in panel.content.dropdown.options if "uploaded" in label]
    assert labels == ["cat.png (uploaded)", "cat-2.png (uploaded)"]


# ---------------------------------------------------------------------------------------------------- save


def test_save_writes_the_best_image_and_numbers_rather_than_overwrites(panel, folder):
    panel.save_button.click()
    assert "Nothing to save" in panel.message.value
    panel.run(wait=True)
    panel.save_button.click()
    first = folder / "outputs" / "out.png"
    assert first.exists() and "Saved the best image to outputs/out.png" in panel.message.value
    saved = nstutil.load_image(first)
    assert torch.allclose(saved, panel.result.image, atol=1 / 255 + 1e-6)
    written = first.read_bytes()
    panel.save_button.click()
    assert first.read_bytes() == written  # the first image is still there
    assert (folder / "outputs" / "out-2.png").exists()
    assert "outputs/out-2.png (outputs/out.png exists already and was kept)" in panel.message.value


def test_save_makes_folders_only_inside_the_working_folder(panel, folder, tmp_path):
    panel.run(wait=True)
    outside = tmp_path / "nonexistent_dir" / "x.png"
    panel.save_path.value = str(outside)
    panel.save_button.click()
    assert "Not saved: folder" in panel.message.value and "does not exist" in panel.message.value
    assert not outside.parent.exists()
    (tmp_path / "elsewhere").mkdir()
    assert panel.save(tmp_path / "elsewhere" / "x.png") == tmp_path / "elsewhere" / "x.png"  # an existing folder
    assert panel.save("results/week1/x.png") == Path("results/week1/x.png")  # inside: made as asked
    assert (folder / "results" / "week1" / "x.png").exists()


def test_save_never_writes_over_an_input_image(panel, folder):
    assert panel.content.add_upload("mine.png", _png_bytes())
    before = panel.content.path.read_bytes()
    panel.run(wait=True)
    panel.save_path.value = "uploads/mine.png"
    assert panel.save() == Path("uploads/mine-2.png")
    assert panel.content.path.read_bytes() == before
