"""What the widgets share: defaults from the environment, the bundled images, numbers as code, PNG helpers and the
one-line messages a student reads."""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Dict

import ipywidgets as widgets

from ..environment import env_int
from ..errors import NSTError
from ..images import IMAGES_DIR, to_pil

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def default_size() -> int:
    """Image size (longer side, px) for widgets: ``$NSTUTIL_SIZE`` or 128."""
    return env_int("NSTUTIL_SIZE", 128)


def default_steps() -> int:
    """Loss evaluations per run for widgets: ``$NSTUTIL_STEPS`` or 100."""
    return env_int("NSTUTIL_STEPS", 100)


def bundled_images() -> Dict[str, Path]:
    """The example images shipped in ``images/``: name (file stem) -> path, sorted by name."""
    if not IMAGES_DIR.is_dir():
        return {}
    files = sorted(p for p in IMAGES_DIR.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return {p.stem: p for p in files}


def one_line(exc: BaseException) -> str:
    """An exception as the one line a student reads: an NSTError's own text, otherwise its type and first line."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, NSTError):
        return first or "invalid input"
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def fmt(x: float) -> str:
    """A number as short Python source: 1 -> '1', 0.2 -> '0.2', 1000000.0 -> '1e6'."""
    x = float(x)
    if x == 0:
        return "0"
    if x == int(x) and abs(x) < 1e5:
        return str(int(x))
    text = f"{x:.6g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def png(image) -> bytes:
    """PNG bytes of a 1x3xHxW tensor in [0, 1]."""
    buf = io.BytesIO()
    to_pil(image).save(buf, format="PNG")
    return buf.getvalue()


def figure(width: float, height: float, dpi: int = 80):
    """A matplotlib Figure on the Agg canvas: no pyplot, no global state, safe from a background thread."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig) -> bytes:
    """PNG bytes of a matplotlib figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    return buf.getvalue()


def pyplot_png(fig) -> bytes:
    """PNG bytes of a pyplot figure, which is then closed so that the notebook does not also show it."""
    import matplotlib.pyplot as plt

    try:
        return figure_png(fig)
    finally:
        plt.close(fig)


def weights_html(model) -> str:
    """A banner naming the model's weights, loud when they are random."""
    name = getattr(model, "weights_name", "?")
    if str(name).startswith("random"):
        return (f"<div style='background:#fff3cd;border:1px solid #e0a800;padding:3px 8px;color:#6b4e00'>"
                f"<b>VGG19 weights: {html.escape(str(name))} — RANDOM, not pretrained.</b> "
                f"Everything runs, but images will not look stylised and feature maps carry no learned meaning.</div>")
    return f"<div style='color:#155724'>VGG19 weights: <b>{html.escape(str(name))}</b> (pretrained)</div>"


def show_message(widget: widgets.HTML, text: str, kind: str = "info") -> None:
    """Put one line in ``widget``: ``kind`` is "info", "error" or "ok" (its colour); empty text clears it."""
    colours = {"info": "#333", "error": "#b00020", "ok": "#155724"}
    widget.value = (f"<span style='color:{colours.get(kind, '#333')}'>{html.escape(text)}</span>" if text else "")
