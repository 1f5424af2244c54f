"""The controls of lesson 8 in the run panel: colour mode, style scale, a second style with its share, coarse-to-fine.

Each must reach ``panel.config()`` and the code box's call, and the panel's run must be that call.
"""

from __future__ import annotations

import ast
import html

import pytest
import torch

import nstutil
from nstutil import widgets as W
from nstutil.widgets.controls import scales_for

SIZE = 48


@pytest.fixture(scope="module")
def model():
    return nstutil.load_vgg19("random")


@pytest.fixture()
def panel(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return W.RunPanel(W.LayerChooser("tutorial"), size=SIZE, steps=3, model=model)


def _shown_call(panel) -> dict:
    """The code box's call, evaluated: its keyword arguments, and ``content``/``style`` as paths."""
    code = panel.chooser.code.value
    source = html.unescape(code[code.index("<pre"):].split(">", 1)[1].rsplit("</pre>", 1)[0])
    call = ast.parse(source).body[0].value
    assert ast.unparse(call.func) == "nstutil.style_transfer"
    shown = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    shown["content"], shown["style"] = (eval(ast.unparse(a), {"nstutil": nstutil}) for a in call.args)
    return shown


def _config_as_shown(panel) -> dict:
    cfg = panel.config()
    cfg.pop("seed")  # the default, not shown
    return cfg


def test_untouched_controls_add_nothing(panel):
    cfg = panel.config()
    assert not {"preserve_colors", "style_scale", "style_blend", "scales"} & set(cfg)
    assert cfg["style"] == nstutil.DEFAULT_STYLE
    assert _shown_call(panel) == _config_as_shown(panel)


def test_each_control_reaches_the_config_and_the_code_box(panel):
    controls = panel.controls
    controls.preserve_colors.value = "histogram"
    controls.style_scale.value = 0.35000000000000003  # as a browser may send a slider step
    controls.use_second.value = True
    controls.second.dropdown.value = nstutil.image_path("brick")
    controls.share.value = 0.25
    controls.coarse_to_fine.value = 3
    cfg = panel.config()
    assert cfg["preserve_colors"] == "histogram" and cfg["style_scale"] == 0.35
    assert cfg["style"] == [nstutil.DEFAULT_STYLE, nstutil.image_path("brick")]
    assert cfg["style_blend"] == [0.75, 0.25]
    assert cfg["scales"] == [12, 24, 48]
    assert _shown_call(panel) == _config_as_shown(panel)
    assert "# style images" in panel.chooser.code.value
    # Back to the defaults: the call is the plain one again.
    controls.preserve_colors.value = "plain"
    controls.style_scale.value = 1.0
    controls.use_second.value = False
    controls.coarse_to_fine.value = 1
    assert not {"preserve_colors", "style_scale", "style_blend", "scales"} & set(panel.config())


def test_the_second_style_is_off_until_ticked(panel):
    controls = panel.controls
    assert controls.second.dropdown.disabled and controls.share.disabled and controls.second.upload.disabled
    assert controls.style_blend() is None
    controls.use_second.value = True
    assert not controls.second.dropdown.disabled and not controls.share.disabled
    assert controls.style_blend() == [0.5, 0.5]


def test_coarse_to_fine_sizes_and_the_budget_they_make(panel):
    assert scales_for(128, 1) is None and scales_for(128, 2) == [64, 128] and scales_for(128, 3) == [32, 64, 128]
    assert panel.progress.description == "0 / 3"
    panel.controls.coarse_to_fine.value = 2
    assert panel.progress.description == "0 / 6"  # 3 evaluations at each of 2 sizes
    result = panel.run(wait=True)
    assert [r.scale for r in result.history] == [24, 24, 24, 48, 48, 48]
    assert panel.progress.description == "6 / 6" and "after 6 evaluations" in panel.status.value
    assert result.image.shape[-1] == SIZE
    marks = [t.get_text() for t in panel._loss_plot.axes.texts if "px" in t.get_text()]
    assert marks == [" 24 px", " 48 px"]  # where each size begins, on the loss plot


def test_the_panels_run_is_the_shown_call(panel, model, monkeypatch):
    """The panel hands style_transfer exactly the code box's call (plus its model and callback), and the engine
    ran with every control: the settings the result records say so."""
    import nstutil.transfer

    calls = []
    real = nstutil.transfer.style_transfer

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(nstutil.transfer, "style_transfer", spy)
    controls = panel.controls
    controls.preserve_colors.value = "luminance"
    controls.style_scale.value = 0.5
    controls.use_second.value = True
    controls.share.value = 0.3
    controls.coarse_to_fine.value = 2
    result = panel.run(wait=True)
    assert result.stop_reason == "completed", panel.message.value
    (passed,) = calls
    assert passed.pop("model") is model and callable(passed.pop("callback")) and passed.pop("progress") is False
    assert passed.pop("device") is None and passed.pop("seed") == 0
    assert passed == _shown_call(panel)
    settings = result.settings
    assert settings["preserve_colors"] == "luminance" and settings["style_scale"] == 0.5
    assert settings["style_blend"] == pytest.approx([0.7, 0.3]) and settings["scales"] == [24, 48]
    assert settings["style_paths"] == [str(nstutil.DEFAULT_STYLE), str(controls.second.path)]
    # Luminance mode keeps the content's colours: the result's chrominance is the content's (issue 9's check).
    content = nstutil.load_image(nstutil.DEFAULT_CONTENT, SIZE)
    iq = nstutil.colour.rgb_to_yiq(result.image)[:, 1:]
    assert torch.allclose(iq, nstutil.colour.rgb_to_yiq(content)[:, 1:], atol=2 / 255)
