"""The widgets driven from Python: set values, click buttons, check what changes.

Small images, random VGG19 weights, few evaluations: the whole file runs in well under a minute on 2 CPU cores.
"""

from __future__ import annotations

import ast
import io
import math
import threading
import time

import ipywidgets as widgets
import pytest
import torch
from PIL import Image

import nstutil
from nstutil import widgets as W

SIZE = 32


@pytest.fixture()
def panel(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # uploads/ and outputs/ are made in the working folder, as next to a notebook
    p = W.RunPanel(W.LayerChooser("tutorial"), size=SIZE, steps=8, min_redraw_s=0, model=model,
                   output="outputs/out.png")
    yield p
    p.stop()
    assert p.wait(120), "a run did not end"


def _png_bytes(size=(40, 30), colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def _wait_for(predicate, timeout=180.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


# ------------------------------------------------------------------------------------------------- chooser


def test_chooser_offers_every_layer_grouped_by_block_in_both_names():
    chooser = W.LayerChooser("tutorial")
    assert list(chooser.content_boxes) == [layer.name for layer in nstutil.LAYERS]
    assert list(chooser.style_boxes) == [layer.name for layer in nstutil.LAYERS]
    assert len(chooser.blocks.children) == 5
    for block, child in enumerate(chooser.blocks.children, start=1):
        rows = child.children[1:]
        names = [layer.name for layer in nstutil.LAYERS if layer.block == block]
        assert len(rows) == len(names)
        for row, name in zip(rows, names):
            label = row.children[0].value
            assert nstutil.resolve_layer(name).label in label
            assert row.children[1] is chooser.content_boxes[name]
            assert row.children[3] is chooser.style_boxes[name]
    assert "relu4_2 · relu_10" in chooser.blocks.children[3].children[4].children[0].value
    assert isinstance(chooser.content_weight.slider, widgets.FloatLogSlider)
    assert isinstance(chooser.style_weight.slider, widgets.FloatLogSlider)


@pytest.mark.parametrize("name", ["tutorial", "gatys", "coursera", "jcjohnson"])
def test_preset_sets_everything(name):
    chooser = W.LayerChooser("tutorial" if name != "tutorial" else "gatys")
    chooser.set_layer("pool5", content=True, style=True)  # something no preset has, to see it cleared
    chooser.preset.value = name
    preset = nstutil.PRESETS[name]

    def paper(layers):
        return {nstutil.resolve_layer(n).name: float(w) for n, w in layers.items()}

    cfg = chooser.config()
    assert cfg == {
        "preset": name,
        "content_layers": paper(preset.content_layers),
        "style_layers": paper(preset.style_layers),
        "content_weight": preset.content_weight,
        "style_weight": preset.style_weight,
        "tv_weight": preset.tv_weight,
        "convention": preset.convention,
        "init": preset.init,
    }
    assert not chooser.modified
    assert chooser.style_weight.value == preset.style_weight
    assert chooser.style_weight.number.value == preset.style_weight  # the number shown is the recipe's
    # Only chosen layers have editable weights.
    for layer_name, box in chooser.style_boxes.items():
        assert chooser.style_weights[layer_name].disabled == (not box.value)


@pytest.mark.parametrize("name", ["tutorial", "gatys", "coursera", "jcjohnson"])
def test_preset_survives_the_browser_snapping_its_sliders(name):
    """The browser snaps a log slider to its 10^0.1 steps and sends the snapped value back (β 40 -> 39.81)."""
    chooser = W.LayerChooser("tutorial" if name != "tutorial" else "gatys")
    chooser.preset.value = name
    preset = nstutil.PRESETS[name]
    for weight in (chooser.content_weight, chooser.style_weight):
        exponent = round(math.log10(weight.value), 1)
        weight.slider.value = 10 ** exponent * (1 + 1e-12)  # what JavaScript's Math.pow sends back
    cfg = chooser.config()
    assert (cfg["content_weight"], cfg["style_weight"]) == (preset.content_weight, preset.style_weight)
    assert not chooser.modified and "changed from the preset" not in chooser.summary.value
    call = ast.parse(chooser.call_code()).body[0].value
    shown = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    assert (shown["content_weight"], shown["style_weight"]) == (preset.content_weight, preset.style_weight)


def test_weight_slider_moves_with_the_exact_value_and_sets_it_when_dragged():
    chooser = W.LayerChooser("coursera")
    beta = chooser.style_weight
    assert beta.slider.value == pytest.approx(10 ** 1.6)  # the step nearest to 40
    beta.number.value = 123.456  # typed: exact
    assert chooser.config()["style_weight"] == 123.456 and beta.slider.value == pytest.approx(10 ** 2.1)
    beta.slider.value = 10 ** 3.3  # dragged: the slider's position, to 3 significant digits
    assert chooser.config()["style_weight"] == 2000.0 and beta.number.value == 2000.0
    assert chooser.modified and "style_weight=2000" in chooser.call_code()
    beta.number.value = 0.0  # no style term: allowed, the slider rests at its lowest step
    assert chooser.config()["style_weight"] == 0.0 and beta.slider.value == pytest.approx(10 ** -2)


def test_tutorial_preset_uses_the_tutorial_layers_under_their_paper_names():
    cfg = W.LayerChooser("tutorial").config()
    assert list(cfg["content_layers"]) == ["conv2_2"]  # the tutorial's conv_4
    assert list(cfg["style_layers"]) == ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"]


def test_toggling_layers_and_weights_changes_config_summary_and_code():
    chooser = W.LayerChooser("gatys")
    seen = []
    chooser.on_change(lambda: seen.append(chooser.config()))
    chooser.style_boxes["conv3_1"].value = True
    assert chooser.style_weights["conv3_1"].disabled is False
    chooser.style_weights["conv3_1"].value = 0.75
    chooser.content_boxes["relu4_2"].value = False
    chooser.content_boxes["relu5_2"].value = True
    chooser.style_weight.value = 1e4
    cfg = chooser.config()
    assert cfg["style_layers"]["conv3_1"] == 0.75
    assert list(cfg["style_layers"]) == ["relu1_1", "relu2_1", "conv3_1", "relu3_1", "relu4_1", "relu5_1"]
    assert cfg["content_layers"] == {"relu5_2": 1.0}
    assert cfg["style_weight"] == 1e4
    assert chooser.modified and "changed from the preset" in chooser.summary.value
    assert seen and seen[-1] == cfg
    assert "conv3_1 · conv_5" in chooser.summary.value
    assert "&#x27;conv3_1&#x27;: 0.75" in chooser.code.value
    chooser.apply_preset("gatys")
    assert not chooser.modified and "conv3_1" not in chooser.config()["style_layers"]


def test_set_layer_accepts_both_naming_schemes():
    chooser = W.LayerChooser("tutorial")
    chooser.set_layer("relu_10", content=True, content_weight=2)
    assert chooser.config()["content_layers"]["relu4_2"] == 2.0


def test_shown_call_is_python_with_the_same_arguments():
    chooser = W.LayerChooser("coursera")
    chooser.set_layer("relu3_3", style=True, style_weight=0.125)
    chooser.tv_weight.value = 0.01
    tree = ast.parse(chooser.call_code())
    call = tree.body[0].value
    assert ast.unparse(call.func) == "nstutil.style_transfer"
    assert [ast.unparse(a) for a in call.args] == ["nstutil.DEFAULT_CONTENT", "nstutil.DEFAULT_STYLE"]
    kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    assert kwargs == chooser.config()


def test_no_style_layer_is_flagged():
    chooser = W.LayerChooser("tutorial")
    for box in chooser.style_boxes.values():
        box.value = False
    assert "at least one style layer" in chooser.summary.value


def test_unknown_preset_is_a_one_line_error():
    with pytest.raises(nstutil.NSTError, match="unknown preset 'nope'"):
        W.LayerChooser("nope")


# ----------------------------------------------------------------------------------------------- run panel


def test_panel_says_when_weights_are_random(panel):
    assert "RANDOM" in panel.weights_note.value and "random:0" in panel.weights_note.value
    assert "random weights" in panel.preview_title.value and "random weights" in panel.plot_title.value


def test_sizes_and_steps_default_to_environment(monkeypatch, model):
    monkeypatch.setenv("NSTUTIL_SIZE", "40")
    monkeypatch.setenv("NSTUTIL_STEPS", "7")
    p = W.RunPanel(model=model)
    assert (p.size.value, p.steps.value) == (40, 7)
    assert "steps=7, size=40" in p.chooser.code.value
    monkeypatch.setenv("NSTUTIL_STEPS", "many")
    with pytest.raises(nstutil.NSTError, match="NSTUTIL_STEPS"):
        W.default_steps()


def test_panel_config_is_what_the_code_shows(panel):
    cfg = panel.config()
    assert cfg["content"] == nstutil.DEFAULT_CONTENT and cfg["style"] == nstutil.DEFAULT_STYLE
    assert (cfg["steps"], cfg["size"], cfg["optimizer"]) == (8, SIZE, "lbfgs")
    code = panel.chooser.code.value
    assert "nstutil.image_path(&#x27;chelsea.png&#x27;)" in code and "steps=8, size=32" in code
    panel.steps.value = 9
    assert "steps=9" in panel.chooser.code.value


def test_the_optimizer_follows_the_preset_and_the_d2l_run_is_d2ls(panel):
    """d2l's preset runs Adam (lr 0.3, its schedule, on the normalised image); the dropdown follows the preset."""
    panel.chooser.preset.value = "d2l"
    assert panel.optimizer.value == "adam" and panel.config()["optimizer"] == "adam"
    result = panel.run(wait=True, steps=2)
    assert (result.settings["optimizer"], result.settings["lr"], result.settings["parametrisation"]) == (
        "adam", 0.3, "network_input")
    panel.chooser.preset.value = "tutorial"
    assert panel.optimizer.value == "lbfgs"


def test_before_the_first_run_the_bar_shows_the_budget(panel):
    assert (panel.progress.value, panel.progress.max, panel.progress.description) == (0, 8, "0 / 8")
    panel.steps.value = 12
    assert (panel.progress.max, panel.progress.description) == (12, "0 / 12")


def test_blocking_run_updates_progress_preview_and_plot_and_ends_by_itself(panel):
    preview0, plot0 = panel.preview.value, panel.plot.value
    result = panel.run(wait=True)
    assert result is panel.result and result.stop_reason == "completed"
    assert len(result.history) == 8
    assert panel.progress.value == 8 and panel.progress.description == "8 / 8"
    assert panel.progress.bar_style == "success"
    # When run() returns, the panel shows the best image and the whole curve (drawn last, by the caller).
    assert panel.preview.value == W._common.png(result.image) and panel.preview_updates >= 1
    assert panel.plot.value != plot0 and panel.preview.value != preview0
    assert Image.open(io.BytesIO(panel.plot.value)).size[0] > 100
    assert "finished" in panel.status.value and "evaluations/s" in panel.status.value
    assert not panel.run_button.disabled and panel.stop_button.disabled and not panel.save_button.disabled
    assert not panel.running


def test_the_optimisation_thread_never_draws(panel, monkeypatch):
    """Drawing took 1.6-3x the run's time when the callback drew (issue 13): only the drawer thread may, and the
    caller once at the end. The callback's own work is a reference and, when asked, one image copy."""
    drawn_in = []
    original = panel._draw

    def draw(image, history):
        drawn_in.append((threading.current_thread().name, len(history)))
        original(image, history)

    monkeypatch.setattr(panel, "_draw", draw)
    monkeypatch.setattr(panel._drawer, "_draw_frame", draw)
    panel.steps.value = 40
    result = panel.run(wait=True)
    final = [entry for entry in drawn_in if entry[0] == threading.current_thread().name]
    assert final == [(threading.current_thread().name, len(result.history))]  # the final picture only
    assert all(name == "nstutil-drawer" for name, _ in drawn_in[:-1])
    assert drawn_in[-1] == final[0]


def test_counting_is_the_same_everywhere(panel):
    """Evaluations are numbered from 0 (the start image) in the status, the plot and TransferResult alike."""
    result = panel.run(wait=True)
    status = panel.status.value
    assert "after 8 evaluations (0–7; 0 = the start image)" in status
    assert f"best image: evaluation {result.best_evaluation} (shown)" in status
    assert [r.evaluation for r in result.history] == list(range(8))
    assert panel._loss_plot.axes.get_xlim()[1] == 7  # the plot ends at the last evaluation's number


def test_a_run_of_one_evaluation_reads_and_plots_as_one(panel):
    result = panel.run(wait=True, steps=1)
    assert len(result.history) == 1
    assert "after 1 evaluation (0 = the start image)" in panel.status.value
    assert "after 1 evaluations" not in panel.status.value  # ("18.1 evaluations/s" may follow)
    low, high = panel._loss_plot.axes.get_xlim()
    assert (low, high) == (-0.5, 1.5)  # not -0.05 … 0.05
    ticks = [t for t in panel._loss_plot.axes.get_xticks() if low <= t <= high]
    assert ticks == [0, 1]


def test_run_button_starts_a_background_run_and_stop_ends_it_within_one_evaluation(panel):
    panel.steps.value = 100_000
    preview0, plot0 = panel.preview.value, panel.plot.value
    panel.run_button.click()
    assert panel.running and panel.run_button.disabled and not panel.stop_button.disabled
    _wait_for(lambda: panel.preview_updates >= 2 and panel.plot_updates >= 2, what="two live updates")
    assert panel.preview.value != preview0 and panel.plot.value != plot0
    _wait_for(lambda: "evaluations/s" in panel.status.value, what="the rate in the status")
    assert panel.progress.value >= 1 and "running:" in panel.status.value
    panel.run_button.click()  # a second Run while running is refused with a message
    assert "already going" in panel.message.value
    seen = len(panel.history)
    panel.stop_button.click()
    assert panel.wait(120)
    result = panel.result
    assert result.stop_reason == "callback"
    # The evaluation running when Stop was pressed finishes; no further one starts.
    assert seen <= len(result.history) <= seen + 2
    totals = [r.total for r in result.history]
    assert result.best_evaluation == totals.index(min(totals))
    assert torch.equal(panel.best_image, result.image)
    assert "stopped" in panel.status.value and panel.progress.bar_style == "warning"
    assert panel.progress.description == f"{len(result.history)} / 100000"
    assert not panel.run_button.disabled and panel.stop_button.disabled


def test_refused_settings_end_with_a_message_not_a_traceback(panel):
    for box in panel.chooser.style_boxes.values():
        box.value = False
    assert panel.run(wait=True) is None
    assert isinstance(panel.error, nstutil.NSTError)
    assert "Run failed: style_layers is empty" in panel.message.value
    assert not panel.run_button.disabled and panel.stop_button.disabled and not panel.running


def test_playground_shares_one_configuration(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    box = W.playground("gatys", model=model, size=SIZE, steps=2)
    assert box.children == (box.chooser, box.panel)
    box.chooser.set_layer("conv1_1", style=True)
    assert "conv1_1" in box.panel.config()["style_layers"]
    assert box.panel.run(wait=True).stop_reason == "completed"


def test_playground_starts_every_preset_from_the_photo(model, tmp_path, monkeypatch):
    """Issue 13.5: gatys starts from noise in its paper, and 100 evaluations from noise still look like noise; the
    playground starts every preset from the content image (the rest of the recipe exact) and says so."""
    monkeypatch.chdir(tmp_path)
    box = W.playground("tutorial", model=model, size=SIZE, steps=2)
    chooser = box.chooser
    for name in nstutil.PRESETS:
        chooser.preset.value = name
        assert chooser.config()["init"] == "content" and not chooser.modified
        assert "init='content'" in chooser.call_code()
        noted = "nst-start-note" in chooser.preset_info.value
        assert noted == (nstutil.PRESETS[name].init != "content"), name
    chooser.preset.value = "gatys"
    assert "its source starts from noise" in chooser.preset_info.value
    result = box.panel.run(wait=True)
    # The run starts from the photo (to float rounding: its content loss is nil).
    assert result.settings["init"] == "content" and result.history[0].content < 1e-9
    # The recipe's own start is one choice away.
    chooser.init.value = "noise"
    assert chooser.modified and box.panel.config()["init"] == "noise"
    # Lesson 5's chooser (no pinned start) still applies each preset's own start.
    assert W.LayerChooser("gatys").config()["init"] == "noise"


# ------------------------------------------------------------------------------------------------ explorer


def test_explorer_shows_average_map_channels_and_gram_and_follows_the_layer(model):
    explorer = W.FeatureMapExplorer(layer="relu1_1", size=SIZE, k=4, model=model)
    assert explorer.updates == 1
    first = (explorer.average.value, explorer.channels.value, explorer.gram.value)
    assert all(Image.open(io.BytesIO(b)).size[0] > 50 for b in first)
    assert "relu1_1 · relu_1" in explorer.info.value and "64 channels of 21×32" in explorer.info.value
    assert "Gram matrix 64×64" in explorer.info.value and "random weights" in explorer.info.value
    explorer.layer.value = "relu3_1"
    assert explorer.updates == 2
    assert "256 channels of 5×8" in explorer.info.value
    assert explorer.gram.value != first[2] and explorer.average.value != first[0]
    explorer.k.value = 2
    assert explorer.updates == 3
    assert (len(explorer.layer.options)) == len(nstutil.LAYERS)
    assert dict(explorer.layer.options)["relu4_2 · relu_10"] == "relu4_2"


def test_explorer_keeps_pyplot_clean(model):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    W.FeatureMapExplorer(layer="conv2_1", size=SIZE, model=model)
    assert plt.get_fignums() == before


def test_explorer_reports_a_too_small_image_in_one_line(model):
    explorer = W.FeatureMapExplorer(layer="relu1_1", size=16, model=model)
    explorer.layer.value = "pool5"  # 16 px halves to nothing after five pools
    text = explorer.message.value
    assert "Feature maps not shown: the image is 11×16 px, too small for pool5" in text and "\n" not in text
    assert explorer.updates == 1
    # relu1_1's pictures are not left beside a message about pool5.
    assert explorer.pictures.layout.display == "none" and explorer.info.value == ""
    explorer.layer.value = "relu2_1"
    assert explorer.updates == 2 and explorer.message.value == ""
    assert explorer.pictures.layout.display is None and "relu2_1" in explorer.info.value


def test_explorer_pictures_are_shown_at_the_size_they_are_drawn(model):
    """Scaled down, the channel grid's titles were unreadable (it was drawn 1900 px wide, shown 420 px)."""
    explorer = W.FeatureMapExplorer(layer="relu2_1", size=SIZE, k=8, model=model)
    for picture in (explorer.average, explorer.gram, explorer.channels):
        width = Image.open(io.BytesIO(picture.value)).size[0]
        assert picture.layout.width == f"{width}px"
    assert Image.open(io.BytesIO(explorer.channels.value)).size[0] >= 500  # 8 maps in rows of 4


def test_images_by_bundled_name_or_path(model, tmp_path):
    p = W.RunPanel(content="waves.png", style="brick", size=SIZE, steps=1, model=model)
    assert p.content.path == nstutil.IMAGES_DIR / "waves.png" and p.style.path.stem == "brick"
    assert p.content.is_bundled and "nstutil.image_path(&#x27;waves.png&#x27;)" in p.chooser.code.value
    own = tmp_path / "own.png"
    own.write_bytes(_png_bytes())
    p = W.RunPanel(content=own, size=SIZE, steps=1, model=model)
    assert p.content.path == own.resolve() and not p.content.is_bundled
    with pytest.raises(nstutil.NSTError, match="does not exist"):
        W.RunPanel(style="no_such_picture", model=model)
