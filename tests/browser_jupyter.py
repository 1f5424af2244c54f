"""Helpers for the real-browser test: a throw-away JupyterLab server and a headless Chromium page.

Used by tests/test_browser.py. Not a test module itself (pytest only collects test_*.py).

- ``jupyter_lab(root, env=...)`` starts JupyterLab on 127.0.0.1 (a free port) with a random token, serving ``root``,
  with its own config/runtime/workspace directories so no user setting leaks in; it yields the base URL and token and
  always kills the server (and its kernels) on exit.
- ``voila(notebook, env=...)`` serves one notebook as a Voila page on 127.0.0.1 (a free port); yields its URL and
  always kills the server (and its kernels) on exit.
- ``chromium_page()`` launches Debian's /usr/bin/chromium through Python playwright (never ``playwright install``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM = Path(os.environ.get("NSTUTIL_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]


def missing_requirements() -> str | None:
    """Why the browser test cannot run here, or None when it can."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (install it with: apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Python playwright is not installed (pip install playwright; do not run `playwright install`)"
    for module in ("jupyterlab", "jupyterlab_widgets"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.3)
    raise TimeoutError(f"JupyterLab did not answer within {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop the server and everything it started (kernels), by process group of the process we started."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def jupyter_lab(root: Path, *, env: dict | None = None, timeout: float = 90):
    """Run JupyterLab serving ``root``; yield (base_url, token, log_path). The server is killed on exit."""
    work = Path(tempfile.mkdtemp(prefix="nst_lab_"))
    config_dir = work / "config"
    (config_dir / "labconfig").mkdir(parents=True)
    # No "would you like news?" toast over the notebook.
    (config_dir / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    # Render every cell (no windowing), so that widgets below the fold are in the DOM with their text.
    tracker = work / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    port = free_port()
    token = secrets.token_hex(16)
    log = work / "jupyter.log"
    full_env = dict(os.environ)
    full_env.update(
        {
            "JUPYTER_CONFIG_DIR": str(config_dir),
            "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
            "JUPYTERLAB_WORKSPACES_DIR": str(work / "workspaces"),
            "JUPYTERLAB_SETTINGS_DIR": str(work / "settings"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    full_env.update(env or {})
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_remote_access=False",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        "--ServerApp.terminals_enabled=False",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
        cmd.append("--allow-root")
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            cmd, cwd=root, env=full_env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for_server(f"{base}/api/status?token={token}", proc, log, timeout)
        yield base, token, log
    finally:
        _kill_group(proc)
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def voila(notebook: Path, *, env: dict | None = None, timeout: float = 60):
    """Serve ``notebook`` with Voila on 127.0.0.1; yield (url, log_path). The server is killed on exit.

    Readiness is the port accepting connections: fetching the page would start a kernel and run the notebook.
    """
    work = Path(tempfile.mkdtemp(prefix="nst_voila_"))
    port = free_port()
    log = work / "voila.log"
    full_env = dict(os.environ)
    full_env.update({"JUPYTER_CONFIG_DIR": str(work / "config"), "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
                     "JUPYTER_DATA_DIR": str(work / "data"), "PYTHONUNBUFFERED": "1"})
    full_env.update(env or {})
    cmd = [sys.executable, "-m", "voila", str(notebook), "--no-browser", "--Voila.ip=127.0.0.1", f"--port={port}",
           "--Voila.port_retries=0"]
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=notebook.parent, env=full_env, stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Voila exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"Voila did not listen within {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/", log
    finally:
        _kill_group(proc)
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def chromium_page(*, width: int = 1400, height: int = 1000):
    """A fresh headless Chromium page (playwright, Debian's chromium). Closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            yield page
        finally:
            browser.close()


def run_all_cells(page, timeout_ms: float = 120_000) -> None:
    """Run every cell of the open notebook through JupyterLab's own command and wait until the kernel is idle
    and every code cell has an execution count."""
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands.hasCommand('notebook:run-all-cells')",
                           timeout=timeout_ms)
    wait_kernel_idle(page, timeout_ms)
    wait_widget_manager(page, timeout_ms)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')];
            return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""",
        timeout=timeout_ms,
    )
    wait_kernel_idle(page, timeout_ms)


def wait_kernel_idle(page, timeout_ms: float = 120_000) -> None:
    """Wait until the notebook's kernel exists and reports idle."""
    page.wait_for_function(
        """() => {
            const app = window.jupyterapp;
            const panel = app && app.shell.currentWidget;
            const kernel = panel && panel.sessionContext && panel.sessionContext.session
                           && panel.sessionContext.session.kernel;
            return !!kernel && kernel.status === 'idle';
        }""",
        timeout=timeout_ms,
    )


def wait_widget_manager(page, timeout_ms: float = 120_000) -> None:
    """Wait until ipywidgets' manager listens on the notebook's kernel (its comm target ``jupyter.widget``).

    Why: a kernel can be idle before the widget manager exists (JupyterLab creates it asynchronously once the
    session is ready, and later still on a loaded machine). A widget made before then is lost: JupyterLab answers
    its ``comm_open`` with a ``comm_close`` because no target is registered, and that output stays "Loading
    widget..." or "Error displaying widget: model not found" while widgets made later render. That is how the
    playground's first widget (the layer chooser, ``.nst-code``) went missing in some full test runs although the
    run panel below it rendered. ``_targetRegistry`` is JupyterLab's KernelConnection's own record of comm targets.
    """
    page.wait_for_function(
        """() => {
            const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
            const kernel = panel && panel.sessionContext && panel.sessionContext.session
                           && panel.sessionContext.session.kernel;
            return !!kernel && !!kernel._targetRegistry && 'jupyter.widget' in kernel._targetRegistry;
        }""",
        timeout=timeout_ms,
    )
