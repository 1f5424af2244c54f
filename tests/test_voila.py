"""The playground as a web page: Voila serving classroom/playground.ipynb, driven in a real Chromium.

Starts Voila on 127.0.0.1 (a free port) with the page's notebook, opens it in headless Chromium (Debian's
``chromium`` through playwright), checks that no code is shown and the widgets rendered (chooser, run panel, the
feature-map explorer), presses Run, waits for two live previews, presses Stop, checks the run stopped, presses Save
and checks the download link holds the best image as a PNG of the run's size. Skipped with the reason when Chromium,
playwright or Voila is missing. Also, without a browser: Save's download link (``RunPanel(download=True)``).
"""

from __future__ import annotations

import base64
import io
import os
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for browser_jupyter, whatever pytest's import mode
import browser_jupyter as bj  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "classroom" / "playground.ipynb"
SIZE = 48

_missing = bj.missing_requirements()
if _missing is None:
    try:
        import voila  # noqa: F401
    except ImportError:
        _missing = "voila is not installed (pip install -r requirements.txt)"
needs_browser = pytest.mark.skipif(_missing is not None, reason=f"Voila page test skipped: {_missing}")

KERNEL_ENV = {"NSTUTIL_WEIGHTS": "random", "NSTUTIL_SIZE": str(SIZE), "NSTUTIL_STEPS": "6"}
TIMEOUT_MS = 120_000
ACTION_MS = 30_000


def _src(page, selector: str) -> str:
    return page.eval_on_selector(selector, "el => el.getAttribute('src') || ''")


def test_save_offers_a_download_on_a_page(tmp_path):
    """Without a browser: with download=True, Save puts the best image in a data: link and hides the server path."""
    from PIL import Image

    from nstutil import widgets as nw

    page = nw.playground(download=True, size=32, steps=2, output=tmp_path / "out.png", upload_dir=tmp_path / "up")
    panel = page.panel
    assert panel.save_path.layout.display == "none"
    panel.run(wait=True)
    saved = panel.save()
    assert saved == tmp_path / "out.png"
    message = panel.message.value
    assert str(tmp_path) not in message  # the server's path means nothing to a visitor
    found = re.search(r"<a class='nst-download' download='out.png' href='data:image/png;base64,([^']+)'", message)
    assert found, message
    assert base64.b64decode(found.group(1)) == saved.read_bytes()
    with Image.open(saved) as img:
        assert max(img.size) == 32
    panel.save()  # the second file is numbered, and its link names it
    assert "download='out-2.png'" in panel.message.value
    # Without download=True nothing changes: the path is shown, no link.
    plain = nw.playground(size=32, steps=2, output=tmp_path / "plain.png", model=panel.model)
    plain.panel.run(wait=True)
    plain.panel.save()
    assert "nst-download" not in plain.panel.message.value and "plain.png" in plain.panel.message.value


@needs_browser
def test_playground_page_in_voila(tmp_path):
    shots = Path(os.environ.get("NSTUTIL_BROWSER_ARTIFACTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    with bj.voila(PAGE, env=KERNEL_ENV) as (url, log), bj.chromium_page() as page:
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(url, wait_until="domcontentloaded")
            # The widgets rendered: chooser, run panel and explorer, with the seeded random weights named.
            page.wait_for_selector(".nst-run-panel button.nst-run", state="visible")
            page.wait_for_selector(".nst-explorer")
            assert "RANDOM" in page.locator(".nst-run-panel").text_content()
            assert page.locator(".nst-code").count() == 1  # the chooser's call box is part of the page
            # No notebook code is shown: the page's own source lines are not in the page.
            body = page.locator("body").text_content()
            assert "nw.playground(" not in body and "tempfile.mkdtemp" not in body
            assert not page.locator(".nst-save-path").is_visible()  # visitors do not name server paths

            # A long run, still going when Stop is pressed.
            steps = page.locator(".nst-steps input")
            steps.fill("100000", timeout=ACTION_MS)
            steps.press("Enter", timeout=ACTION_MS)
            page.wait_for_function("() => document.querySelector('.nst-code').textContent.includes('steps=100000')")
            preview = _src(page, "img.nst-preview")
            page.locator("button.nst-run").click(timeout=ACTION_MS)
            for _ in range(2):
                page.wait_for_function(
                    "old => { const el = document.querySelector('img.nst-preview'); "
                    "return el && el.getAttribute('src') && el.getAttribute('src') !== old; }", arg=preview)
                preview = _src(page, "img.nst-preview")
            page.wait_for_selector(".nst-status:has-text('evaluations/s')")
            page.screenshot(path=str(shots / "voila_running.png"))

            page.locator("button.nst-stop").click(timeout=ACTION_MS)
            page.wait_for_selector(".nst-status:has-text('stopped')")
            status = page.locator(".nst-status").text_content()
            done = int(re.search(r"after (\d+) evaluations? \(", status).group(1))
            assert 2 <= done < 100000
            assert page.locator("button.nst-run").is_enabled() and page.locator("button.nst-stop").is_disabled()

            # Save hands the best image to the browser.
            page.locator("button.nst-save").click(timeout=ACTION_MS)
            link = page.wait_for_selector(".nst-message a.nst-download")
            assert link.get_attribute("download") == "playground.png"
            href = link.get_attribute("href")
            assert href.startswith("data:image/png;base64,")
            from PIL import Image

            with Image.open(io.BytesIO(base64.b64decode(href.split(",", 1)[1]))) as img:
                assert img.format == "PNG" and max(img.size) == SIZE
            with page.expect_download() as download:
                link.click()
            assert download.value.suggested_filename == "playground.png"
            page.screenshot(path=str(shots / "voila_saved.png"))
            assert not [e for e in errors if "widget" in e.lower() or "model" in e.lower()], errors
        except Exception:
            page.screenshot(path=str(shots / "voila_failure.png"))
            print(f"screenshots in {shots}; Voila log tail:\n{log.read_text(errors='replace')[-4000:]}")
            raise
