"""The playground in a real browser: JupyterLab + headless Chromium (Debian's ``chromium``, driven by playwright).

Starts JupyterLab on 127.0.0.1 with a token, serving a temporary copy of notebooks/12_playground.ipynb; opens it,
runs all cells, checks that a preset's α and β survive the rendered sliders, ticks a style layer, presses Run, waits
until the live preview and the loss plot have changed, presses Stop, checks the run stopped, presses Save twice
(the second file is numbered), uploads a style image through the file chooser, opens the controls, makes one short
run with a second style, the photo's colours and two sizes, and saves screenshots that must not be blank.

Runs as part of plain ``pytest`` when /usr/bin/chromium and playwright are installed; skipped with the reason
otherwise. Set NSTUTIL_BROWSER_ARTIFACTS=DIR to keep the screenshots.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

import nstutil

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for browser_jupyter, whatever pytest's import mode
import browser_jupyter as bj  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "12_playground.ipynb"

_missing = bj.missing_requirements()
pytestmark = [pytest.mark.skipif(_missing is not None, reason=f"browser test skipped: {_missing}")]

# Small and offline, as in CI.
KERNEL_ENV = {"NSTUTIL_WEIGHTS": "random", "NSTUTIL_SIZE": "48", "NSTUTIL_STEPS": "6"}
TIMEOUT_MS = 120_000  # waiting for the kernel and the run
ACTION_MS = 30_000  # one click or key press


def _src(page, selector: str) -> str:
    return page.eval_on_selector(selector, "el => el.getAttribute('src') || ''")


def _wait_src_changes(page, selector: str, old: str, times: int = 1) -> str:
    """Wait until the image's src has changed ``times`` times (each update makes a new blob URL)."""
    src = old
    for _ in range(times):
        page.wait_for_function(
            "([sel, old]) => { const el = document.querySelector(sel); "
            "return el && el.getAttribute('src') && el.getAttribute('src') !== old; }",
            arg=[selector, src], timeout=TIMEOUT_MS)
        src = _src(page, selector)
    return src


def _shown(page, selector: str):
    """The element, scrolled into view first (JupyterLab's notebook scrolls inside its own panel)."""
    locator = page.locator(selector)
    locator.scroll_into_view_if_needed(timeout=ACTION_MS)
    return locator


def _not_blank(png: Path) -> float:
    from PIL import Image, ImageStat

    with Image.open(png) as img:
        stat = ImageStat.Stat(img.convert("L"))
    return stat.var[0]


def test_playground_in_jupyterlab(tmp_path):
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    shots = Path(os.environ.get("NSTUTIL_BROWSER_ARTIFACTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)

    with bj.jupyter_lab(root, env=KERNEL_ENV) as (base, token, log), bj.chromium_page() as page:
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        console = []  # the browser's console, printed when the test fails
        page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}", wait_until="domcontentloaded")
            bj.run_all_cells(page, TIMEOUT_MS)

            # The widgets rendered, with the blocking run's result in them.
            page.wait_for_selector(".nst-run-panel .nst-status:has-text('finished')")
            page.screenshot(path=str(shots / "after_run_all.png"), full_page=False)
            assert "RANDOM" in page.locator(".nst-run-panel").text_content()
            code = page.locator(".nst-code").text_content()
            assert "'conv1_1': 1" in code and "'relu2_1'" not in code

            # A preset off the sliders' 10^0.1 grid keeps its numbers once the browser has drawn the sliders.
            _shown(page, ".nst-preset select").select_option("coursera")
            page.wait_for_function("() => document.querySelector('.nst-code').textContent.includes('preset=\\'coursera')")
            page.wait_for_timeout(1000)  # time for a snapped slider value to come back, as it did (β 40 -> 39.81)
            code = page.locator(".nst-code").text_content()
            assert "content_weight=10, style_weight=40," in code, code
            assert "changed from the preset" not in page.locator(".nst-chooser").text_content()
            assert page.locator(".nst-beta-value input").input_value() == "40"
            # Gatys starts from the photo here (issue 13.5), and the chooser says why.
            _shown(page, ".nst-preset select").select_option("gatys")
            page.wait_for_function("() => document.querySelector('.nst-code').textContent.includes('preset=\\'gatys')")
            assert "init='content'" in page.locator(".nst-code").text_content()
            assert "its source starts from noise" in page.locator(".nst-start-note").text_content()
            _shown(page, ".nst-preset select").select_option("tutorial")
            page.wait_for_function("() => document.querySelector('.nst-code').textContent.includes('preset=\\'tutorial')")

            # Tick relu2_1 as a style layer (block 2 is open: the tutorial's content layer conv2_2 is there).
            _shown(page, ".nst-style-relu2_1 input[type=checkbox]").check(timeout=ACTION_MS)
            page.wait_for_function("() => document.querySelector('.nst-code').textContent.includes(\"'relu2_1': 1\")")
            # The rendered log sliders did not round the preset's values.
            assert "content_weight=1, style_weight=1e6" in page.locator(".nst-code").text_content()

            # A long run, so that it is still going when Stop is pressed.
            steps = _shown(page, ".nst-steps input")
            steps.fill("100000", timeout=ACTION_MS)
            steps.press("Enter", timeout=ACTION_MS)
            page.wait_for_function("() => document.querySelector('.nst-code').textContent.includes('steps=100000')")

            preview0, plot0 = _src(page, "img.nst-preview"), _src(page, "img.nst-plot")
            _shown(page, "button.nst-run").click(timeout=ACTION_MS)
            _wait_src_changes(page, "img.nst-preview", preview0, times=2)
            _wait_src_changes(page, "img.nst-plot", plot0, times=2)
            page.wait_for_selector(".nst-status:has-text('evaluations/s')")
            page.screenshot(path=str(shots / "running.png"), full_page=False)

            _shown(page, "button.nst-stop").click(timeout=ACTION_MS)
            page.wait_for_selector(".nst-status:has-text('stopped')")
            status = page.locator(".nst-status").text_content()
            assert "best image: evaluation" in status
            done = int(re.search(r"after (\d+) evaluations? \(", status).group(1))
            assert 2 <= done < 100000  # at least two live previews, far from the end
            assert page.locator("button.nst-run").is_enabled() and page.locator("button.nst-stop").is_disabled()

            _shown(page, "button.nst-save").click(timeout=ACTION_MS)
            page.wait_for_selector(".nst-message:has-text('Saved the best image')")
            assert (root / "outputs" / "playground.png").stat().st_size > 0
            _shown(page, "button.nst-save").click(timeout=ACTION_MS)
            page.wait_for_selector(".nst-message:has-text('playground-2.png')")  # numbered, the first one kept
            assert (root / "outputs" / "playground-2.png").stat().st_size > 0

            # Upload a style image through the browser's file chooser.
            picture = tmp_path / "my style.png"
            shutil.copy(nstutil.image_path("waves.png"), picture)
            with page.expect_file_chooser() as chooser:
                _shown(page, "button.nst-style-upload").click(timeout=ACTION_MS)
            chooser.value.set_files(str(picture))
            page.wait_for_selector(".nst-message:has-text('kept as')")
            assert "Upload (1)" in page.locator("button.nst-style-upload").text_content()
            page.wait_for_function("() => document.querySelector('.nst-code').textContent.includes(\"'uploads/my_style.png'\")")
            assert (root / "uploads" / "my_style.png").exists()

            # The controls of lesson 8 open under their title; a second style goes into the call as a list.
            _shown(page, ".nst-controls-section .jupyter-widget-Collapse-header").click(timeout=ACTION_MS)
            _shown(page, ".nst-second-style input[type=checkbox]").check(timeout=ACTION_MS)
            page.wait_for_function("() => document.querySelector('.nst-code').textContent.includes('# style images')")
            assert "style_blend=[0.5, 0.5]" in page.locator(".nst-code").text_content()
            # One short run with colours kept and two sizes: the call shows both, the bar counts both sizes.
            _shown(page, ".nst-colours select").select_option(index=1)  # luminance
            _shown(page, ".nst-coarse-to-fine select").select_option(index=1)  # 2 sizes
            steps.fill("6", timeout=ACTION_MS)
            steps.press("Enter", timeout=ACTION_MS)
            # The code box follows each control as the kernel answers: wait for the last one typed, not only the first.
            page.wait_for_function("() => ['scales=[24, 48]', 'steps=6'].every("
                                   "t => document.querySelector('.nst-code').textContent.includes(t))")
            code = page.locator(".nst-code").text_content()
            assert "preserve_colors='luminance'" in code and "steps=6" in code, code
            _shown(page, "button.nst-run").click(timeout=ACTION_MS)
            page.wait_for_selector(".nst-status:has-text('finished after 12 evaluations')")
            assert "12 / 12" in page.locator(".nst-progress").text_content()
            _shown(page, ".nst-controls-section")
            page.screenshot(path=str(shots / "controls_run.png"), full_page=False)

            _shown(page, ".nst-run-panel")
            shot = shots / "stopped.png"
            page.screenshot(path=str(shot), full_page=False)
            assert _not_blank(shot) > 100, "the screenshot is blank"
            panel_shot = shots / "panel.png"
            page.locator(".nst-run-panel").screenshot(path=str(panel_shot))
            assert _not_blank(panel_shot) > 100, "the run panel rendered blank"
            assert not [e for e in errors if "widget" in e.lower()], errors
        except Exception:
            page.screenshot(path=str(shots / "failure.png"))
            print(f"screenshots in {shots}; JupyterLab log tail:\n{log.read_text(errors='replace')[-4000:]}")
            print("browser console (last 60 lines):\n" + "\n".join(console[-60:]))
            # A widget output that never rendered says so in its own text ("Loading widget...", "Error displaying
            # widget: model not found"): which one, and the kernel's state, tell a start-up race from a busy kernel.
            print("unrendered widget outputs:", page.evaluate(
                "() => [...document.querySelectorAll('.jp-OutputArea-output')].map(o => o.textContent.trim())"
                ".filter(t => /Loading widget|Error displaying widget/.test(t))"))
            raise
