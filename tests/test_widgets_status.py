"""What the playground says (issue 23.6): the size a coarse-to-fine run stopped at, and the changed-marker on the
line that changed."""

from __future__ import annotations

import pytest

from nstutil import widgets as W

SIZE = 48


@pytest.fixture()
def panel(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NSTUTIL_THREADS", "1")  # no load measurement per run in tests
    return W.RunPanel(W.LayerChooser("tutorial"), size=SIZE, steps=3, model=model)


def test_a_stop_during_coarse_to_fine_names_the_size_it_stopped_at(panel):
    panel.controls.coarse_to_fine.value = 2  # 24 px, then 48 px
    original = panel._callback
    panel._callback = lambda event: (len(event.history) >= 2 and panel._stop.set()) or original(event)
    result = panel.run(wait=True)
    assert result.stop_reason == "callback" and result.history[-1].scale == 24
    status = panel.status.value
    assert "stopped at the 24 px stage</b> of 24 px → 48 px" in status, status
    assert "blurry" in status and "reach 48 px" in status


def test_a_finished_coarse_to_fine_run_or_a_one_size_stop_says_nothing_of_stages(panel):
    panel.controls.coarse_to_fine.value = 2
    panel.run(wait=True)
    assert "stage" not in panel.status.value
    panel.controls.coarse_to_fine.value = 1
    original = panel._callback
    panel._callback = lambda event: (len(event.history) >= 2 and panel._stop.set()) or original(event)
    panel.run(wait=True)
    assert "stopped" in panel.status.value and "stage" not in panel.status.value


def _summary_lines(chooser) -> dict:
    lines = chooser.summary.value.split("<br>")
    return {line.split("</b>")[0].replace("<b>", "").rstrip(":"): line for line in lines}


def test_the_changed_marker_is_on_the_line_that_changed():
    chooser = W.LayerChooser("tutorial")
    assert "changed from the preset" not in chooser.summary.value
    chooser.content_boxes["relu4_2"].value = True  # a content layer only
    lines = _summary_lines(chooser)
    assert "changed from the preset" in lines["Content"], lines
    assert "changed from the preset" not in lines["Style"], lines
    assert "Weights and settings" not in lines
    chooser.content_boxes["relu4_2"].value = False
    chooser.style_boxes["relu2_1"].value = True
    lines = _summary_lines(chooser)
    assert "changed from the preset" in lines["Style"] and "changed from the preset" not in lines["Content"]
    chooser.style_boxes["relu2_1"].value = False
    chooser.tv_weight.value = 1.0
    lines = _summary_lines(chooser)
    assert "changed from the preset" in lines["Weights and settings"], lines
    assert "changed" not in lines["Content"] and "changed" not in lines["Style"]


def test_preview_and_loss_plot_come_right_after_run_and_before_the_controls(panel):
    order = list(panel.children)
    flat = [w for box in order for w in ([box] + list(getattr(box, "children", ())))]
    buttons = next(i for i, box in enumerate(order) if panel.run_button in getattr(box, "children", ()))
    images = next(i for i, box in enumerate(order)
                  if any(panel.preview in getattr(v, "children", ()) for v in getattr(box, "children", ())))
    assert images == buttons + 2  # Run, its status line, then the preview and the loss plot
    assert order.index(panel.controls_section) > images and panel.controls_section in flat
