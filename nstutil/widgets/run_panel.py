"""The run panel: Run, Stop, Save, progress, live preview, live loss plot and evaluations per second, around
:func:`nstutil.style_transfer` (lesson 5 and the playground, lesson 12), or one pass of a trained network or
decoder (``one_pass.py``)."""

from __future__ import annotations

import base64
import html
import os
import threading
from pathlib import Path
from typing import Optional, Union

import ipywidgets as widgets

from ..errors import NSTError
from ..images import load_image, save_image
from ..threads import use_free_cores
from ..transfer import OPTIMIZERS as OPTIMIZER_CHOICES
from ..device import model_device
from ..vgg import load_vgg19
from ._common import bundled_images, default_size, default_steps, one_line, png, show_message, weights_html
from .chooser import LayerChooser
from .controls import ControlsBox
from .image_picker import ImagePicker
from .live import LiveDrawer
from .loss_plot import LossPlot
from .one_pass import STYLE_NETWORK, OnePassBox, network_style, style_choices


def _count(n: int) -> str:
    return f"{n} evaluation" + ("" if n == 1 else "s")


def _numbered(n: int) -> str:
    """How the evaluations are numbered, as everywhere in nstutil: from 0, the start image."""
    if n == 0:
        return "none"
    return "0 = the start image" if n == 1 else f"0–{n - 1}; 0 = the start image"


def _rate(done: int, record) -> str:
    """The optimisation's own rate: evaluations over its clock (which starts after the set-up)."""
    return f"{done / record.elapsed:.1f}" if record.elapsed > 0 else "–"


def _stage_note(kwargs: dict, result) -> str:
    """For a coarse-to-fine run that ended before its last size: which size it stopped at, and why the image is
    blurry (that stage's image, enlarged to the full size); "" otherwise."""
    scales = list(kwargs.get("scales") or [])
    if len(scales) < 2 or not result.history:
        return ""
    reached = result.history[-1].scale
    if reached is None or reached >= max(scales):
        return ""
    sizes = " → ".join(f"{s} px" for s in scales)
    return (f" · <b>stopped at the {reached} px stage</b> of {sizes}: the image is that stage's, enlarged (so "
            f"blurry); let a run reach {max(scales)} px for a sharp one")


def _check_folder(folder: Path) -> None:
    """A missing folder is fine inside the working folder (save_image makes it); elsewhere it is a typo."""
    if folder.is_dir():
        return
    try:
        folder.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        raise NSTError(f"folder {str(folder)!r} does not exist: create it first, or save inside this folder "
                       f"(e.g. outputs/result.png)") from None


def _download_link(path: Path) -> str:
    """A link that hands the saved file to the browser (a Voila page's visitor cannot reach the server's disk)."""
    mime = "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/png"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = html.escape(path.name, quote=True)
    return f"<a class='nst-download' download='{name}' href='data:{mime};base64,{data}'>Download {name}</a>"


def _unused(path: Path) -> Path:
    """``path``, or the first of ``stem-2``, ``stem-3`` … beside it that does not exist yet."""
    candidate, k = path, 2
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
        k += 1
    return candidate


_REASONS = {"completed": "finished", "callback": "stopped", "interrupted": "interrupted",
            "nonfinite": "stopped: the loss became infinite or NaN"}


class RunPanel(widgets.VBox):
    """Run style transfer with the chooser's configuration and watch it: Run, Stop, Save, progress, preview,
    loss plot, evaluations per second.

    ``run()`` starts a background thread and returns at once (the kernel stays free, Stop works);
    ``run(wait=True)`` runs in the caller and returns the :class:`~nstutil.TransferResult` — use it in notebooks
    run by nbval/CI, where nobody clicks. Stop (button or :meth:`stop`) ends the run after the current evaluation
    and keeps the best image; a run nobody stops ends after its evaluations. The VGG19 model is loaded once
    (pass ``model=`` to share one). The optimisation never draws: a separate thread shows the progress a few times
    a second and redraws the preview and the loss plot as often as drawing then takes at most 5 % of the time, and
    at most once per ``min_redraw_s`` seconds (:mod:`~nstutil.widgets.live`). Evaluations are numbered from 0 (the
    start image), as in :attr:`TransferResult.history <nstutil.TransferResult>`. Uploaded images are kept in
    ``upload_dir`` (relative to the notebook's folder); Save numbers its files rather than overwrite one. With
    ``download=True`` (a web page: classroom/playground.ipynb under Voila) Save also offers the file as a download
    link and the *Save as* and *Network* boxes are hidden (a network is then only the one given as ``network``).

    ``network``: a trained style network (lesson 10) or AdaIN decoder (lesson 11) — a file's path, a loaded file,
    or what the training returned — for the *One pass* mode (:mod:`~nstutil.widgets.one_pass`); the panel then
    starts in that mode (``mode="optimise"`` to start in the other). The *Network* field loads one later. In one
    pass, Run styles the content at the chosen size with it, shows the time and the loss under the same objective
    the optimisation reports (and that loss as a level on the last optimisation's curve), and Save saves it.
    """

    def __init__(self, chooser: Optional[LayerChooser] = None, *, content=None, style=None,
                 size: Optional[int] = None, steps: Optional[int] = None, optimizer: Optional[str] = None,
                 weights: Optional[str] = None, model=None, min_redraw_s: float = 0.25,
                 output: Union[str, os.PathLike] = "outputs/playground.png",
                 upload_dir: Union[str, os.PathLike] = "uploads", second_style=None, device=None,
                 seed: int = 0, download: bool = False, network=None, mode: Optional[str] = None) -> None:
        from ..images import DEFAULT_CONTENT, DEFAULT_STYLE

        self.chooser = chooser if chooser is not None else LayerChooser()
        self.model = model if model is not None else load_vgg19(weights, device=device)
        self.device = device
        self.seed = seed
        self.download = download
        self.result = None
        self.error: Optional[BaseException] = None
        self.history: list = []
        self.best_image = None
        self.preview_updates = 0
        self.plot_updates = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._running = False
        self._loss_plot = LossPlot()
        self._drawer = LiveDrawer(self._show_running, self._draw, min_interval=min_redraw_s)

        self.weights_note = widgets.HTML(weights_html(self.model))
        self.message = widgets.HTML()
        self.message.add_class("nst-message")
        self.content = ImagePicker("content", content if content is not None else DEFAULT_CONTENT,
                                   message_widget=self.message, upload_dir=upload_dir)
        self.style = ImagePicker("style", style if style is not None else DEFAULT_STYLE,
                                 message_widget=self.message, upload_dir=upload_dir)
        self._build_settings(size, steps, optimizer)
        self.controls = ControlsBox(second_style=second_style, message_widget=self.message, upload_dir=upload_dir)
        self.controls_section = widgets.Accordion(
            [self.controls], selected_index=None,
            titles=("Controls (lesson 8): colours, style scale, a second style, coarse-to-fine",))
        self.controls_section.add_class("nst-controls-section")
        self._build_run_controls(output)
        self.one_pass = OnePassBox(network, mode=mode, device=model_device(self.model), message_widget=self.message)
        self._optimised: list = []  # the last optimisation's history: the curve a one-pass loss is drawn against
        if download:  # a web page's visitor gets the file in the browser and cannot name a path on the server
            self.save_path.layout.display = "none"
            self.one_pass.path.layout.display = self.one_pass.load_button.layout.display = "none"
        self._connect()
        self._show_images_start()
        self._update_call()
        super().__init__([
            self.weights_note,
            widgets.HBox([self.content, self.style]),
            widgets.HBox([self.size, self.steps, self.optimizer]),
            self.one_pass,
            widgets.HBox([self.run_button, self.stop_button, self.progress]),
            self.status,
            widgets.HBox([widgets.VBox([self.preview_title, self.preview]),
                          widgets.VBox([self.plot_title, self.plot])]),
            widgets.HBox([self.save_path, self.save_button]),
            self.message,
            # Last: opened, the controls are taller than a screen, and Run must stay next to what it shows
            # (the preview and the loss plot right under the button, not below the fold).
            self.controls_section,
        ])
        self.add_class("nst-run-panel")
        self.one_pass.on_change(self._mode_changed)
        self._mode_changed()

    # -- building

    def _build_settings(self, size, steps, optimizer) -> None:
        small = {"description_width": "80px"}
        self.size = widgets.BoundedIntText(value=size or default_size(), min=16, max=2048, description="Size (px)",
                                           style=small, layout=widgets.Layout(width="170px"))
        self.steps = widgets.BoundedIntText(value=steps or default_steps(), min=1, max=100_000,
                                            description="Evaluations", style=small,
                                            layout=widgets.Layout(width="190px"))
        self.steps.add_class("nst-steps")
        if optimizer is None:  # the preset's own (Adam for d2l); it follows the chooser's preset (_connect)
            optimizer = self._preset_optimizer(self.chooser.preset.value)
        if optimizer not in OPTIMIZER_CHOICES:
            raise NSTError(f"optimizer {optimizer!r} is not known: use one of {', '.join(OPTIMIZER_CHOICES)}")
        self.optimizer = widgets.Dropdown(options=OPTIMIZER_CHOICES, value=optimizer, description="Optimizer",
                                          style=small, layout=widgets.Layout(width="190px"))

    def _preset_optimizer(self, name: str) -> str:
        """The optimiser preset ``name`` of the chooser runs with (d2l's is Adam)."""
        preset = self.chooser._presets.get(name)
        return getattr(preset, "optimizer", "lbfgs")

    def _build_run_controls(self, output) -> None:
        small = {"description_width": "80px"}
        self.run_button = widgets.Button(description="Run", icon="play", button_style="success")
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger", disabled=True)
        self.save_button = widgets.Button(description="Save", icon="save", disabled=True)
        self.save_path = widgets.Text(value=str(output), description="Save as", style=small,
                                      layout=widgets.Layout(width="330px"))
        for w, cls in ((self.run_button, "nst-run"), (self.stop_button, "nst-stop"),
                       (self.save_button, "nst-save"), (self.save_path, "nst-save-path")):
            w.add_class(cls)
        self.progress = widgets.IntProgress(value=0, min=0, max=self.steps.value,
                                            description=f"0 / {self.steps.value}", bar_style="info",
                                            style={"description_width": "120px"},
                                            layout=widgets.Layout(width="460px"))
        self.progress.add_class("nst-progress")
        self.status = widgets.HTML("Not started.")
        self.status.add_class("nst-status")
        self.preview_title = widgets.HTML("<b>Preview</b>" + self._random_tag())
        self.plot_title = widgets.HTML("<b>Loss</b> (log scale)" + self._random_tag())
        self.preview = widgets.Image(format="png", layout=widgets.Layout(width="256px"))
        self.preview.add_class("nst-preview")
        self.plot = widgets.Image(format="png", layout=widgets.Layout(width="400px"))
        self.plot.add_class("nst-plot")

    def _connect(self) -> None:
        self.run_button.on_click(lambda _: self.run())
        self.stop_button.on_click(lambda _: self.stop())
        self.save_button.on_click(lambda _: self.save())
        for w in (self.size, self.steps, self.optimizer):
            w.observe(lambda _: self._update_call(), names="value")
        self.chooser.preset.observe(
            lambda change: setattr(self.optimizer, "value", self._preset_optimizer(change["new"])), names="value")
        for picker in (self.content, self.style):
            picker.dropdown.observe(lambda _: self._update_call(), names="value")
        self.controls.on_change(self._update_call)
        self.one_pass.strength.observe(lambda _: self._update_call(), names="value")
        for w in (self.steps, self.size, self.controls.coarse_to_fine):
            w.observe(lambda _: self._budget_changed(), names="value")

    # -- public

    @property
    def running(self) -> bool:
        """True while a run is going."""
        return self._running

    def config(self) -> dict:
        """All keyword arguments the next run passes to :func:`nstutil.style_transfer` (model and callback aside):
        the chooser's recipe, the images, size, evaluations, optimizer, and the controls set away from their
        defaults. With a second style, ``style`` is the list of both."""
        cfg = self.chooser.config()
        style = [self.style.path, self.controls.second.path] if self.controls.use_second.value else self.style.path
        cfg.update(content=self.content.path, style=style, steps=int(self.steps.value), size=int(self.size.value),
                   optimizer=self.optimizer.value, seed=self.seed)
        cfg.update(self.controls.config(int(self.size.value)))
        return cfg

    def run(self, wait: bool = False, **overrides):
        """Start a run with the current settings (``overrides`` replace single keyword arguments).

        ``wait=False``: in a background thread; returns the thread. ``wait=True``: here; returns the result
        (or None when the settings were refused; the message says why): a :class:`~nstutil.TransferResult`, or in
        *One pass* mode a :class:`~nstutil.widgets.one_pass.OnePassResult`.
        """
        with self._lock:
            if self._running:
                show_message(self.message, "A run is already going: press Stop first.", "info")
                return self._thread if not wait else None
            self._running = True
        self._stop.clear()
        self.result = None
        self.error = None
        self.history = []
        self.best_image = None
        kwargs = self.config()
        kwargs.update(overrides)
        use_free_cores()  # set here, in the kernel's thread: the run's thread takes PyTorch's setting from it
        work = self._work_one_pass if self.one_pass.active else self._work
        self._start_ui(kwargs)
        if wait:
            work(kwargs)
            return self.result
        self._thread = threading.Thread(target=work, args=(kwargs,), name="nstutil-run", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        """Ask the running optimisation to end after its current evaluation (it keeps the best image)."""
        if self._running:
            self._stop.set()
            self.status.value = self.status.value + " — <b>stopping…</b>"

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for a background run to end; True when none is running any more."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self._running

    def save(self, path: Optional[Union[str, os.PathLike]] = None) -> Optional[Path]:
        """Write the best image of the last run (PNG/JPEG by extension) and return where it went, or None.

        Never over an input image, never over an earlier file (``x.png`` taken: ``x-2.png``, ``x-3.png`` …; the
        message says so), and a missing folder is made only inside the working folder (``outputs/``): a path
        elsewhere must name a folder that exists.
        """
        image = self.result.image if self.result is not None else self.best_image
        if image is None:
            show_message(self.message, "Nothing to save yet: press Run first.", "error")
            return None
        asked = Path(path if path is not None else self.save_path.value).expanduser()
        protect = [self.content.path, self.style.path, *bundled_images().values()]
        try:
            _check_folder(asked.parent)
            target = _unused(asked)
            written = save_image(image, target, protect=protect)
        except Exception as exc:  # noqa: BLE001 - one line for the student
            show_message(self.message, f"Not saved: {one_line(exc)}", "error")
            return None
        kept = f" ({asked} exists already and was kept)" if target != asked else ""
        if self.download:  # the server's path means nothing to a web page's visitor
            show_message(self.message, "The best image is ready:", "ok")
            self.message.value += " " + _download_link(Path(written))
        else:
            show_message(self.message, f"Saved the best image to {written}{kept}", "ok")
        return Path(written)

    # -- the run

    def _start_ui(self, kwargs: dict) -> None:
        one = self.one_pass.active
        self.run_button.disabled = True
        self.stop_button.disabled = one  # one pass is over before a click could arrive
        self.save_button.disabled = True
        self._show_budget(self._budget(kwargs))
        self.progress.bar_style = "info"
        self.status.value = "Styling in one pass…" if one else "Starting…"
        self.preview_title.value = "<b>Preview</b>" + self._random_tag()
        if not one:
            self.plot.value = self._loss_plot.png([], empty_text="starting…")
        show_message(self.message, "")

    def _work(self, kwargs: dict) -> None:
        from ..transfer import style_transfer

        self._drawer.start()
        try:
            self.result = style_transfer(**kwargs, model=self.model, callback=self._callback, progress=False,
                                         device=self.device)
        except Exception as exc:  # noqa: BLE001 - the panel shows one line, the test can read .error
            self.error = exc
            show_message(self.message, f"Run failed: {one_line(exc)}", "error")
        finally:
            try:
                self._drawer.stop()
                self._finish_ui(kwargs)
            finally:
                with self._lock:
                    self._running = False

    def _callback(self, event) -> bool:
        """After every evaluation, in the optimisation's thread: hand the state to the drawer, nothing more."""
        self.history = event.history
        self._drawer.offer(event)
        return self._stop.is_set()

    def _show_running(self, event) -> None:
        """Progress bar and status line for the latest evaluation (the drawer's thread, a few times a second)."""
        done = len(event.history)
        record = event.history[done - 1]
        self.progress.value = min(done, self.progress.max)
        self.progress.description = f"{done} / {event.steps}"
        stopping = " — <b>stopping…</b>" if self._stop.is_set() else ""
        self.status.value = (f"running: {done} of {event.steps} evaluations ({_numbered(done)}) · "
                             f"<b>{_rate(done, record)} evaluations/s</b> · loss {record.total:.4g} "
                             f"(content {record.content:.3g}, style {record.style:.3g}){stopping}")

    def _finish_ui(self, kwargs: dict) -> None:
        self.run_button.disabled = False
        self.stop_button.disabled = True
        result = self.result
        if result is None:
            self.progress.bar_style = "danger"
            self.status.value = "Run failed."
            self.plot.value = self._loss_plot.png([], empty_text="no run")
            return
        self.history = result.history
        self._optimised = result.history
        self.best_image = result.image
        self._draw(result.image, self.history)
        self.save_button.disabled = False
        done = len(result.history)  # one record per loss evaluation; history[0] is the start image
        self.progress.value = min(done, self.progress.max)
        self.progress.description = f"{done} / {self._budget(kwargs)}"
        self.progress.bar_style = "success" if result.stop_reason == "completed" else "warning"
        rate = f" · {_rate(done, result.history[-1])} evaluations/s" if done else ""
        best = f"best image: evaluation {result.best_evaluation} (shown)" if result.best_evaluation >= 0 else \
            "no evaluation finished (the start image is shown)"
        self.status.value = (f"<b>{_REASONS.get(result.stop_reason, result.stop_reason)}</b> after "
                             f"{_count(done)} ({_numbered(done)}){rate} · {best}{_stage_note(kwargs, result)}")

    def _work_one_pass(self, kwargs: dict) -> None:
        """Style in one pass (:meth:`OnePassBox.run`), then show the image, its time and its loss."""
        try:
            self.result = self.one_pass.run(kwargs, self.model)
        except Exception as exc:  # noqa: BLE001 - one line, as for an optimisation run
            self.error = exc
            show_message(self.message, f"Run failed: {one_line(exc)}", "error")
        finally:
            try:
                self._finish_one_pass()
            finally:
                with self._lock:
                    self._running = False

    def _finish_one_pass(self) -> None:
        self.run_button.disabled = False
        result = self.result
        if result is None:
            self.progress.bar_style = "danger"
            self.status.value = "Run failed."
            return
        self.best_image = result.image
        self.preview.value = png(result.image)
        self.preview_updates += 1
        loss = result.loss.total
        # Two lines: the preview is 256 px wide, and the title must not push the loss plot aside.
        self.preview_title.value = (f"<b>One pass</b>{self._random_tag()}<br>{result.seconds:.3f} s · loss {loss:.4g}")
        self.plot.value = self._loss_plot.png(self._optimised, reference=loss, reference_label=f"one pass {loss:.3g}",
                                              empty_text="Run in Optimise mode to compare")
        self.plot_updates += 1
        self.progress.value = self.progress.max = 1
        self.progress.description = "1 pass"
        self.progress.bar_style = "success"
        self.save_button.disabled = False
        self.status.value = self.one_pass.status_html(result)
        if result.notes:
            show_message(self.message, result.notes[0], "info")

    def _draw(self, image, history) -> None:
        if image is not None:
            self.preview.value = png(image)
            self.preview_updates += 1
        if history:
            self.plot.value = self._loss_plot.png(history)
            self.plot_updates += 1

    # -- UI helpers

    def _random_tag(self) -> str:
        name = str(getattr(self.model, "weights_name", ""))
        return " <span style='color:#b00020'>(random weights)</span>" if name.startswith("random") else ""

    def _budget(self, kwargs: dict) -> int:
        """The evaluations a run with these arguments makes: ``steps`` at each coarse-to-fine size (one pass: 1)."""
        if self.one_pass.active:
            return 1
        return int(kwargs["steps"]) * len(kwargs.get("scales") or [None])

    def _mode_changed(self) -> None:
        """One pass greys out what only optimisation uses; a style network's own style is chosen and fixed."""
        one = self.one_pass.active
        for w in (self.steps, self.optimizer, self.controls.coarse_to_fine):
            w.disabled = one
        own = None
        if one and self.one_pass.kind == STYLE_NETWORK:
            own = network_style(self.one_pass.loaded, style_choices(self.style))
            if own is None:  # the student can still upload it; the loss is measured against the chosen style
                name = self.one_pass.loaded.meta.get("style") or "its style"
                show_message(self.message, f"The network was trained for {name}, which is not among the style "
                             f"images: upload it, or the loss is measured against the chosen style", "info")
            else:
                self.style.dropdown.value = own
        fixed = own is not None
        for w in (self.style.dropdown, self.style.upload):
            w.disabled = fixed
        # One network, one style: the second style and the style scale would change nothing.
        single = one and self.one_pass.kind == STYLE_NETWORK
        for w in (self.controls.use_second, self.controls.style_scale):
            w.disabled = single
        self.style.dropdown.tooltip = "the network's own style" if fixed else None
        self._budget_changed()
        self._update_call()

    def _budget_changed(self) -> None:
        """Between runs the bar shows the next run's budget: 0 of the evaluations it will make."""
        if not self._running:
            self._show_budget(self._budget(self.config()))

    def _show_budget(self, evaluations: int) -> None:
        self.progress.max = max(1, evaluations)
        self.progress.value = 0
        self.progress.description = f"0 / {evaluations}"

    def _show_images_start(self) -> None:
        try:
            self.preview.value = png(load_image(self.content.path, self.size.value, role="content"))
        except Exception as exc:  # noqa: BLE001
            show_message(self.message, f"content image: {one_line(exc)}", "error")
        self.plot.value = self._loss_plot.png([])

    def _update_call(self) -> None:
        style = self.style.source()
        if self.controls.use_second.value:
            style = f"[{style}, {self.controls.second.source()}]"
        self.one_pass.show_code(self.config(), self.content.source(), style)
        self.chooser.set_call_context(content=self.content.source(), style=style, steps=int(self.steps.value),
                                      size=int(self.size.value), optimizer=self.optimizer.value,
                                      **self.controls.config(int(self.size.value)))
