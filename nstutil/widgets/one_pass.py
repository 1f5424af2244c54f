"""The playground's one-pass mode: style the content with a trained network (lesson 10) or an AdaIN decoder
(lesson 11) instead of optimising the pixels, timed, and scored with the optimisation's own objective.

The three generations of style transfer then sit side by side in one panel: press Run in *Optimise*, then in
*One pass*, and compare the two losses (the same number: :func:`nstutil.build_objective` of the chooser's recipe,
the images and the controls) and the two times. The styling is :func:`nstutil.feed_forward.stylize` or
:func:`nstutil.adain.stylize_arbitrary` itself; a network file is read with :func:`nstutil.network_file.load_network`.
"""

from __future__ import annotations

import html
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Union

import ipywidgets as widgets
import torch
from torch import nn

from ..adain import DECODER_KIND, Decoder, load_decoder, stylize_arbitrary
from ..colour import grey, luminance
from ..errors import NSTError
from ..feed_forward import stylize
from ..images import load_image
from ..network_file import STYLE_NETWORK_KIND as STYLE_NETWORK, NetworkFile, load_network
from ..objective import LossRecord
from ..transfer import build_objective
from ..transformer_net import TransformerNet
from ..weights import sha256_file
from ._common import bundled_images, fmt, one_line, show_message

__all__ = ["OPTIMISE", "ONE_PASS", "OnePassBox", "OnePassResult", "as_network_file", "network_style", "one_pass"]

OPTIMISE, ONE_PASS = "optimise", "one pass"
KIND_NAMES = {STYLE_NETWORK: "style network (lesson 10)", DECODER_KIND: "AdaIN decoder (lesson 11)"}
# The keyword arguments of a run that say how to optimise, not what the objective is.
_RUN_ONLY = ("init", "steps", "optimizer", "seed", "scales")

NetworkLike = Union[NetworkFile, nn.Module, str, os.PathLike, object]


@dataclass
class OnePassResult:
    """What a one-pass Run gives: the ``image`` (1×3×H×W, CPU, [0, 1]), the ``seconds`` the pass took, its ``loss``
    under the run's objective (a :class:`~nstutil.LossRecord`, as the optimisation records one per evaluation),
    the network's ``kind``, the ``settings`` it was styled with, and ``notes``: the warnings the styling gave (a
    decoder trained with other VGG19 weights), one line each."""

    image: torch.Tensor
    seconds: float
    loss: LossRecord
    kind: str
    settings: Dict[str, object] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


def as_network_file(network: NetworkLike, device: Optional[torch.device] = None) -> NetworkFile:
    """A trained style network or AdaIN decoder as a :class:`~nstutil.network_file.NetworkFile`: a file's path
    (loaded on ``device``), a loaded file, what :func:`~nstutil.feed_forward.train_network` or
    :func:`~nstutil.adain_training.train_decoder` returned (its ``meta`` kept), or the bare network. Anything else
    is one :class:`NSTError` line."""
    if isinstance(network, (str, os.PathLike)):
        if not str(network).strip():
            raise NSTError("no network file given: type the path of a .pth file 'python -m nstutil train' wrote")
        loaded = load_network(network, device=device)
    elif isinstance(network, NetworkFile):
        loaded = network
    else:
        # TrainedNetwork and TrainedDecoder carry the network and the meta its file would hold.
        module = getattr(network, "model", network)
        meta = dict(getattr(network, "meta", None) or {})
        if isinstance(module, Decoder):
            loaded = load_decoder(module)
            loaded.meta.update(meta)
        elif isinstance(module, TransformerNet):
            loaded = NetworkFile(module, STYLE_NETWORK, dict(module.config), meta)
        else:
            raise NSTError(f"a {type(network).__name__} is not a trained network: give a style network (lesson 10), "
                           f"an AdaIN decoder (lesson 11), or the path of the file 'python -m nstutil train' wrote")
        loaded.path = getattr(network, "path", None)
    if loaded.kind not in KIND_NAMES:
        raise NSTError(f"the network holds a {loaded.kind!r} network, which one pass cannot use: give a style "
                       f"network or an AdaIN decoder")
    return loaded


def network_style(loaded: NetworkFile, candidates: Iterable[Union[str, os.PathLike]]) -> Optional[Path]:
    """The picture among ``candidates`` that a style network was trained for: the one whose SHA-256 its file
    records, else (a file without one) the one of the recorded name; None when it is not among them."""
    digest, name = loaded.meta.get("style_sha256"), loaded.meta.get("style")
    for candidate in candidates:
        path = Path(candidate)
        if digest and path.is_file() and sha256_file(path) == digest:
            return path
        if not digest and name and path.name == name:
            return path
    return None


def _describe(loaded: NetworkFile) -> str:
    """The loaded network in a line: what it is and, from its file's meta, what it was trained for."""
    meta = loaded.meta
    where = f" from <code>{html.escape(Path(loaded.path).name)}</code>" if loaded.path else ""
    trained = [f"{meta['size']} px" if meta.get("size") else "",
               f"{meta['steps']} steps" if meta.get("steps") else "",
               f"VGG19 weights {meta['vgg_weights']}" if meta.get("vgg_weights") else ""]
    trained = ", ".join(t for t in trained if t)
    text = f"<b>{KIND_NAMES[loaded.kind]}</b>{where}"
    if loaded.kind == STYLE_NETWORK:
        style = html.escape(str(meta.get("style") or "a style its file does not name"))
        text += f", trained for the style <b>{style}</b>"
    else:
        text += ": any style image, the controls below apply"
    return text + (f" ({trained})" if trained else "")


def _style_size(cfg: dict) -> int:
    """The decoder's style image at the objective's size: the result's longer side × the style scale."""
    return max(1, round(int(cfg["size"]) * float(cfg.get("style_scale") or 1.0)))


def one_pass(loaded: NetworkFile, cfg: dict, model, *, strength: float = 1.0) -> OnePassResult:
    """Style ``cfg["content"]`` at ``cfg["size"]`` with ``loaded`` in one pass and score the result.

    ``cfg`` holds :func:`nstutil.style_transfer`'s keyword arguments (the run panel's ``config()``); ``model`` is the
    VGG19 that encodes (a decoder) and scores. A style network uses ``strength`` and ``preserve_colors``; its
    objective is the first style image with the chooser's recipe. A decoder uses the style image(s),
    ``style_blend``, ``style_scale`` and ``preserve_colors``, ``strength`` as AdaIN's α. The loss is the objective
    the optimisation would minimise with the same settings (with luminance-only colours it compares luminance
    images, as the optimisation does, so the result's luminance is scored).
    """
    styles = list(cfg["style"]) if isinstance(cfg["style"], (list, tuple)) else [cfg["style"]]
    scored = {k: v for k, v in cfg.items() if k not in _RUN_ONLY}
    colours = cfg.get("preserve_colors")
    network = loaded.kind == STYLE_NETWORK
    if network:  # one network, one style: the objective has only that style, unscaled
        styles = styles[:1]
        scored.update(style=styles[0])
        scored.pop("style_blend", None)
        scored.pop("style_scale", None)
    # Read the pictures before the clock starts: the time is the pass's, as the optimisation's rate is its own.
    photo = load_image(cfg["content"], cfg["size"], role="content image")
    pictures = [] if network else [
        load_image(s, _style_size(cfg), role="style image" if len(styles) == 1 else f"style image {k + 1}")
        for k, s in enumerate(styles)]
    with warnings.catch_warnings(record=True) as caught:
        # A decoder trained with other VGG19 weights warns: in a widget that belongs in the message line, not in
        # a stderr box.
        warnings.simplefilter("always", UserWarning)
        start = time.perf_counter()
        if network:
            image = stylize(loaded.model, photo, strength=strength, preserve_colors=colours)
        else:
            image = stylize_arbitrary(loaded, photo, pictures, alpha=strength, style_blend=cfg.get("style_blend"),
                                      preserve_colors=colours, model=model)
        seconds = time.perf_counter() - start
    objective = build_objective(scored.pop("content"), scored.pop("style"), model=model, **scored)
    loss = objective(grey(luminance(image)) if colours == "luminance" else image)
    settings = dict(cfg, strength=strength, kind=loaded.kind)
    notes = [str(w.message).splitlines()[0] for w in caught if issubclass(w.category, UserWarning)]
    return OnePassResult(image=image, seconds=seconds, loss=loss, kind=loaded.kind, settings=settings, notes=notes)


class OnePassBox(widgets.VBox):
    """The mode toggle (*Optimise* | *One pass*), a network file's path with **Load**, the strength (α) slider and a
    line saying what is loaded. *One pass* is disabled until a network is loaded (its tooltip says so).

    ``network`` (optional): what :func:`as_network_file` takes. ``mode`` starts at *One pass* when one is given.
    ``device``: where a file is loaded (the VGG19's device). Errors go to ``message_widget`` as one line.
    """

    def __init__(self, network: NetworkLike = None, *, mode: Optional[str] = None,
                 device: Optional[torch.device] = None, message_widget: Optional[widgets.HTML] = None) -> None:
        self.device = device
        self.message = message_widget if message_widget is not None else widgets.HTML()
        self.loaded: Optional[NetworkFile] = None
        # No description: a ToggleButtons' own label sits above its buttons and breaks the row.
        self.mode = widgets.ToggleButtons(options=[("Optimise", OPTIMISE), ("One pass", ONE_PASS)], value=OPTIMISE,
                                          style={"button_width": "90px"})
        self.path = widgets.Text(placeholder="a .pth file 'python -m nstutil train' wrote", description="Network",
                                 layout=widgets.Layout(width="380px"))
        self.load_button = widgets.Button(description="Load", icon="upload", layout=widgets.Layout(width="90px"))
        # One slider for both kinds: a decoder's α (content 0 … style 1), a network's blend with the photo.
        self.strength = widgets.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.05, description="Strength α",
                                            readout_format=".2f", layout=widgets.Layout(width="320px"))
        self.note = widgets.HTML()
        self.code_line = widgets.HTML()  # the call a one-pass Run makes, to paste (the chooser's is optimisation's)
        self._listeners: List[Callable[[], None]] = []
        for w, cls in ((self.mode, "nst-mode"), (self.path, "nst-network-path"), (self.load_button, "nst-load"),
                       (self.strength, "nst-strength"), (self.note, "nst-network-note"),
                       (self.code_line, "nst-one-pass-code")):
            w.add_class(cls)
        self.load_button.on_click(lambda _: self.load(self.path.value))
        self.mode.observe(lambda _: self._show(), names="value")
        label = widgets.HTML("<b>Mode</b>", layout=widgets.Layout(width="50px", margin="0 0 0 8px"))
        super().__init__([widgets.HBox([label, self.mode, self.path, self.load_button]),
                          widgets.HBox([self.strength, self.note]), self.code_line])
        self.add_class("nst-one-pass")
        self._show()
        if network is not None:
            self.load(network, report_to_message=False)  # a bad one: one line in the message, as from the field
        if mode not in (None, OPTIMISE, ONE_PASS):
            raise NSTError(f"mode {mode!r} is not known: use {OPTIMISE!r} or {ONE_PASS!r}")
        if self.loaded is not None:
            self.mode.value = mode or ONE_PASS  # a network given is a network to use

    @property
    def active(self) -> bool:
        """True in *One pass* mode (only possible with a network loaded)."""
        return self.mode.value == ONE_PASS and self.loaded is not None

    @property
    def kind(self) -> Optional[str]:
        """The loaded network's kind (``"transformer"`` or ``"adain-decoder"``), or None."""
        return self.loaded.kind if self.loaded is not None else None

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after the mode changes or a network is loaded."""
        self._listeners.append(callback)

    def show_code(self, cfg: dict, content: str, style: str) -> None:
        """Show the one-pass call for the run settings ``cfg`` (empty in *Optimise* mode); ``content`` and
        ``style`` are the images as Python source."""
        self.code_line.value = (f"<code style='font-size:85%'>{html.escape(self.code(cfg, content, style))}</code>"
                                if self.active else "")

    def load(self, network: NetworkLike, *, report_to_message: bool = True) -> bool:
        """Load a network file's path (or take a network); True when it worked. A bad file leaves what was loaded
        before and puts one line in the message."""
        try:
            loaded = as_network_file(network, self.device)
        except Exception as exc:  # noqa: BLE001 - one line for the student, never a traceback
            show_message(self.message, f"Network not loaded: {one_line(exc)}", "error")
            return False
        self._take(loaded)
        if report_to_message:
            show_message(self.message, f"Loaded a {KIND_NAMES[loaded.kind]}: choose One pass and press Run.", "ok")
        return True

    def run(self, cfg: dict, model) -> OnePassResult:
        """:func:`one_pass` with the loaded network and the strength slider."""
        if self.loaded is None:
            raise NSTError("no network loaded: give a network file and press Load, or choose Optimise")
        return one_pass(self.loaded, cfg, model, strength=round(float(self.strength.value), 2))

    def status_html(self, result: OnePassResult) -> str:
        """The status line of a one-pass result: the time and the loss, as the optimisation reports its own."""
        r = result.loss
        return (f"<b>one pass</b> ({KIND_NAMES[result.kind]}) in <b>{result.seconds:.3f} s</b> · "
                f"loss {r.total:.4g} (content {r.content:.3g}, style {r.style:.3g}) under the chooser's objective, "
                f"the number the optimisation reports")

    def code(self, cfg: dict, content: str, style: str) -> str:
        """The one-pass call a student can paste (``network`` / ``decoder`` stand for the loaded one); ``content``
        and ``style`` are the images as Python source."""
        strength = fmt(round(float(self.strength.value), 2))
        colours = f", preserve_colors={cfg['preserve_colors']!r}" if cfg.get("preserve_colors") else ""
        if self.kind == STYLE_NETWORK:
            return (f"nstutil.feed_forward.stylize(network, {content}, size={cfg['size']}, "
                    f"strength={strength}{colours})")
        blend = f", style_blend={cfg['style_blend']}" if cfg.get("style_blend") else ""
        return (f"nstutil.adain.stylize_arbitrary(decoder, {content}, {style}, alpha={strength}"
                f"{blend}{colours}, size={cfg['size']}, style_size={_style_size(cfg)}, model=model)")

    # -- internals

    def _take(self, loaded: NetworkFile) -> None:
        self.loaded = loaded
        if loaded.path:
            self.path.value = str(loaded.path)
        self._show()

    def _show(self) -> None:
        """The toggle's state and tooltips, the note, and the strength slider's meaning for the loaded kind."""
        if self.loaded is None:
            self.mode.value = OPTIMISE
            self.mode.disabled = True
            why = ("One pass needs a trained network (lesson 10) or AdaIN decoder (lesson 11): give its file and "
                   "press Load")
            self.mode.tooltips = ["Optimise the pixels (lessons 5-8)", why]
            self.note.value = f"<span style='color:#666'>{html.escape(why)}.</span>"
            self.strength.disabled = True
            self.code_line.value = ""
            self._changed()
            return
        self.mode.disabled = False
        self.mode.tooltips = ["Optimise the pixels (lessons 5-8)",
                              f"Style in one pass with the loaded {KIND_NAMES[self.loaded.kind]}"]
        self.note.value = _describe(self.loaded)
        self.strength.disabled = not self.active
        self.strength.description = "Strength α" if self.kind == DECODER_KIND else "Strength"
        self.strength.tooltip = ("AdaIN's α: 0 decodes the photo's own features, 1 the style's statistics"
                                 if self.kind == DECODER_KIND else
                                 "the result blended with the photo: 0 the photo, 1 the network's output")
        if not self.active:
            self.code_line.value = ""
        self._changed()

    def _changed(self) -> None:
        for callback in list(self._listeners):
            callback()


def style_choices(picker) -> Iterable[Path]:
    """The pictures a style picker offers (bundled and uploaded), for :func:`network_style`."""
    return [Path(value) for _, value in picker.dropdown.options] or list(bundled_images().values())
