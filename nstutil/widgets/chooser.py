"""The layer chooser: every VGG19 layer as a content and/or style layer, the weights, the presets, and the
resulting ``nstutil.style_transfer(...)`` call to paste (lesson 5 and the playground, lesson 12)."""

from __future__ import annotations

import html
from typing import Callable, Dict, List, Optional

import ipywidgets as widgets

from ..errors import NSTError
from ..losses import CONVENTIONS as CONVENTION_CHOICES
from ..presets import PRESETS
from ..settings import RecipeChoice
from ..transfer import INIT_CHOICES
from ..vgg import LAYERS, resolve_layer
from ._common import fmt
from .weight_slider import WeightSlider

LAYERS_BY_BLOCK: Dict[int, List] = {}
for _layer in LAYERS:
    LAYERS_BY_BLOCK.setdefault(_layer.block, []).append(_layer)
del _layer

_ROW_HEADER = (
    "<div style='display:grid;grid-template-columns:190px 90px 80px 90px 80px 150px;font-weight:bold'>"
    "<span>layer (paper · tutorial)</span><span>content</span><span>weight</span>"
    "<span>style</span><span>weight</span><span>channels · field</span></div>"
)


def _preset_layers(layers) -> Dict[str, float]:
    """A preset's layers (list or dict, either naming scheme) as paper name -> weight."""
    if isinstance(layers, dict):
        items = layers.items()
    else:
        items = ((name, 1.0) for name in layers)
    return {resolve_layer(name).name: float(weight) for name, weight in items}


class LayerChooser(widgets.VBox):
    """Choose content and style layers, their weights, α, β, TV weight, convention and start image.

    ``chooser.config()`` is the dict of keyword arguments for :func:`nstutil.style_transfer`; the code box shows
    the same as a call to paste. ``chooser.content_boxes[name]`` / ``style_boxes[name]`` are the checkboxes and
    ``content_weights[name]`` / ``style_weights[name]`` the weight fields, keyed by paper layer name.

    ``start``: a start image that every preset keeps (the playground's ``"content"``, so that a short run shows
    the photo changing); ``None`` (lesson 5): each preset sets its own, as its source does.
    """

    def __init__(self, preset: str = "tutorial", *, presets: Optional[dict] = None,
                 start: Optional[str] = None) -> None:
        self._presets = dict(presets) if presets is not None else dict(PRESETS)
        if preset not in self._presets:
            raise NSTError(f"unknown preset {preset!r}: use one of {', '.join(self._presets)}")
        self._listeners: List[Callable[[], None]] = []
        self._updating = False
        self._call_context: Dict[str, object] = {}
        self._applied: Optional[dict] = None
        self.start = start

        self._build_recipe_controls(preset)
        self.blocks = self._build_layer_table()
        self.summary = widgets.HTML()
        self.code = widgets.HTML()
        self.code.add_class("nst-code")

        for w in [self.convention, self.init, self.content_weight, self.style_weight, self.tv_weight,
                  *self.content_boxes.values(), *self.style_boxes.values(),
                  *self.content_weights.values(), *self.style_weights.values()]:
            w.observe(self._on_change, names="value")
        self.preset.observe(lambda change: self.apply_preset(change["new"]), names="value")

        super().__init__([
            widgets.HTML("<b>Layers and weights</b> — tick a layer as content and/or style layer; "
                         "open a block to see its layers."),
            widgets.HBox([self.preset, self.preset_info]),
            widgets.HBox([self.content_weight, self.style_weight]),
            widgets.HBox([self.tv_weight, self.convention, self.init]),
            self.blocks,
            self.summary,
            self.code,
        ])
        self.add_class("nst-chooser")
        self.apply_preset(preset)

    # -- building

    def _choices(self, attribute: str, known) -> List[str]:
        """The known choices plus any other string a preset uses for ``attribute``."""
        choices = list(known)
        for p in self._presets.values():
            value = getattr(p, attribute, None)
            if isinstance(value, str) and value not in choices:
                choices.append(value)
        return choices

    def _build_recipe_controls(self, preset: str) -> None:
        self.preset = widgets.Dropdown(options=list(self._presets), value=preset, description="Preset",
                                       layout=widgets.Layout(width="260px"))
        self.preset.add_class("nst-preset")
        self.preset_info = widgets.HTML()
        self.convention = widgets.Dropdown(options=self._choices("convention", CONVENTION_CHOICES),
                                           description="Convention", layout=widgets.Layout(width="260px"))
        self.init = widgets.Dropdown(options=self._choices("init", INIT_CHOICES), description="Start from",
                                     layout=widgets.Layout(width="260px"))
        self.init.add_class("nst-init")
        if self.start is not None:
            if self.start not in self.init.options:
                raise NSTError(f"start {self.start!r} is not known: use one of {', '.join(self.init.options)}")
            self.init.value = self.start
        # Exact numbers beside logarithmic sliders: a preset's α and β are its own, not the slider's nearest step.
        self.content_weight = WeightSlider(1.0, description="α (content)", min_exponent=-4, max_exponent=4,
                                           css_class="nst-alpha")
        self.style_weight = WeightSlider(1e6, description="β (style)", min_exponent=-2, max_exponent=10,
                                         css_class="nst-beta")
        self.tv_weight = widgets.BoundedFloatText(value=0.0, min=0.0, max=1e12, description="TV weight",
                                                  style={"description_width": "110px"},
                                                  layout=widgets.Layout(width="260px"))

    def _build_layer_table(self) -> widgets.Accordion:
        """One accordion section per VGG19 block, one row per layer: its names, the two boxes and two weights."""
        self.content_boxes: Dict[str, widgets.Checkbox] = {}
        self.style_boxes: Dict[str, widgets.Checkbox] = {}
        self.content_weights: Dict[str, widgets.FloatText] = {}
        self.style_weights: Dict[str, widgets.FloatText] = {}
        sections = []
        for block, layers in LAYERS_BY_BLOCK.items():
            rows = [self._layer_row(layer) for layer in layers]
            sections.append(widgets.VBox([widgets.HTML(_ROW_HEADER)] + rows))
        blocks = widgets.Accordion(
            children=sections,
            titles=tuple(f"Block {b}: {layers[0].name} … pool{b} ({layers[0].channels} channels)"
                         for b, layers in LAYERS_BY_BLOCK.items()),
        )
        blocks.add_class("nst-blocks")
        return blocks

    def _layer_row(self, layer) -> widgets.HBox:
        name = layer.name
        cbox = widgets.Checkbox(value=False, indent=False, description="", layout=widgets.Layout(width="90px"))
        sbox = widgets.Checkbox(value=False, indent=False, description="", layout=widgets.Layout(width="90px"))
        cw = widgets.FloatText(value=1.0, disabled=True, layout=widgets.Layout(width="80px"))
        sw = widgets.FloatText(value=1.0, disabled=True, layout=widgets.Layout(width="80px"))
        cbox.add_class(f"nst-content-{name}")
        sbox.add_class(f"nst-style-{name}")
        cw.add_class(f"nst-content-weight-{name}")
        sw.add_class(f"nst-style-weight-{name}")
        self.content_boxes[name], self.style_boxes[name] = cbox, sbox
        self.content_weights[name], self.style_weights[name] = cw, sw
        label = widgets.HTML(f"<code>{html.escape(layer.label)}</code>", layout=widgets.Layout(width="190px"))
        info = widgets.HTML(f"<span style='color:#666'>{layer.channels} ch · {layer.receptive_field} px</span>",
                            layout=widgets.Layout(width="150px"))
        return widgets.HBox([label, cbox, cw, sbox, sw, info])

    # -- state

    def apply_preset(self, name: str) -> None:
        """Set every control from preset ``name`` (layers, weights, α, β, TV, convention, start image)."""
        if name not in self._presets:
            raise NSTError(f"unknown preset {name!r}: use one of {', '.join(self._presets)}")
        p = self._presets[name]
        content = _preset_layers(p.content_layers)
        style = _preset_layers(p.style_layers)
        self._updating = True
        try:
            if self.preset.value != name:
                self.preset.value = name
            for layer in LAYERS:
                n = layer.name
                self.content_boxes[n].value = n in content
                self.content_weights[n].value = content.get(n, 1.0)
                self.style_boxes[n].value = n in style
                self.style_weights[n].value = style.get(n, 1.0)
            self.content_weight.value = float(p.content_weight)
            self.style_weight.value = float(p.style_weight)
            self.tv_weight.value = float(p.tv_weight or 0.0)
            if getattr(p, "convention", None) in self.convention.options:
                self.convention.value = p.convention
            if self.start is None and getattr(p, "init", None) in self.init.options:
                self.init.value = p.init
            self._open_block(content, style)
        finally:
            self._updating = False
        self.preset_info.value = f"<i>{html.escape(getattr(p, 'description', ''))}</i>" + self._start_note(p)
        self._applied = self.config()
        self._refresh()

    def _start_note(self, p) -> str:
        """When the start is pinned and the preset's source starts elsewhere: say so, and why."""
        own = getattr(p, "init", None)
        if self.start is None or own is None or own == self.start:
            return ""
        return (f"<br><span class='nst-start-note' style='color:#6b4e00'>Here it starts from the {self.start} "
                f"image (<b>Start from</b>), so that a short run visibly changes the photo; its source starts from "
                f"{html.escape(own)}, where the picture has to emerge out of it, which takes far more evaluations. "
                f"Choose <b>{html.escape(own)}</b> to run the recipe exactly.</span>")

    def _open_block(self, content: Dict[str, float], style: Dict[str, float]) -> None:
        """Open the block of the content layer, where the first change is usually made."""
        deepest = max([resolve_layer(n) for n in [*content, *style]], key=lambda l: l.index, default=None)
        first = next(iter(content), None) or (deepest.name if deepest else None)
        self.blocks.selected_index = (resolve_layer(first).block - 1) if first else None

    def set_layer(self, name: str, *, content: Optional[bool] = None, style: Optional[bool] = None,
                  content_weight: Optional[float] = None, style_weight: Optional[float] = None) -> None:
        """Change one layer (either naming scheme), as ticking its boxes and typing its weights would."""
        n = resolve_layer(name).name
        if content is not None:
            self.content_boxes[n].value = bool(content)
        if content_weight is not None:
            self.content_weights[n].value = float(content_weight)
        if style is not None:
            self.style_boxes[n].value = bool(style)
        if style_weight is not None:
            self.style_weights[n].value = float(style_weight)

    def recipe(self) -> RecipeChoice:
        """The recipe as chosen (layers by paper name, in network order), as :class:`nstutil.settings.RecipeChoice`."""
        return RecipeChoice(
            content_layers={n: float(self.content_weights[n].value) for n, box in self.content_boxes.items()
                            if box.value},
            style_layers={n: float(self.style_weights[n].value) for n, box in self.style_boxes.items() if box.value},
            content_weight=float(self.content_weight.value), style_weight=float(self.style_weight.value),
            tv_weight=float(self.tv_weight.value), convention=self.convention.value)

    def config(self) -> dict:
        """Keyword arguments for :func:`nstutil.style_transfer` as chosen: the preset, :meth:`recipe` and the start."""
        return {"preset": self.preset.value, **self.recipe().given(), "init": self.init.value}

    @property
    def modified(self) -> bool:
        """True when something was changed after the preset was applied."""
        return self._applied is not None and self.config() != self._applied

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every change of the configuration."""
        self._listeners.append(callback)

    def set_call_context(self, **context) -> None:
        """What the shown call puts around the chosen configuration: ``content``/``style`` (Python source for
        the two images) and any further keyword arguments (e.g. ``steps=100, size=128``)."""
        self._call_context = dict(context)
        self._refresh_code()

    def call_code(self, content: Optional[str] = None, style: Optional[str] = None, **extra) -> str:
        """The configuration as a ``nstutil.style_transfer(...)`` call a student can paste."""
        context = dict(self._call_context)
        context.update({k: v for k, v in (("content", content), ("style", style)) if v is not None})
        context.update(extra)
        content_src = context.pop("content", "nstutil.DEFAULT_CONTENT")
        style_src = context.pop("style", "nstutil.DEFAULT_STYLE")
        cfg = self.config()

        def layers(d: Dict[str, float]) -> str:
            return "{" + ", ".join(f"{n!r}: {fmt(w)}" for n, w in d.items()) + "}"

        lines = [
            "result = nstutil.style_transfer(",
            f"    {content_src},  # content image",
            f"    {style_src},  # style image{'s' if style_src.startswith('[') else ''}",
            f"    preset={cfg['preset']!r},",
            f"    content_layers={layers(cfg['content_layers'])},",
            f"    style_layers={layers(cfg['style_layers'])},",
            f"    content_weight={fmt(cfg['content_weight'])}, style_weight={fmt(cfg['style_weight'])}, "
            f"tv_weight={fmt(cfg['tv_weight'])},",
            f"    convention={cfg['convention']!r}, init={cfg['init']!r},",
        ]
        line = ""
        for k, v in context.items():  # the run's settings, a few to a line
            item = f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
            if line and len(line) + len(item) > 100:
                lines.append(line.rstrip())
                line = ""
            line = (line or "    ") + item + ", "
        if line:
            lines.append(line.rstrip())
        lines.append(")")
        return "\n".join(lines)

    # -- internals

    def _on_change(self, change) -> None:
        owner = change["owner"]
        for name, box in self.content_boxes.items():
            if owner is box:
                self.content_weights[name].disabled = not box.value
        for name, box in self.style_boxes.items():
            if owner is box:
                self.style_weights[name].disabled = not box.value
        if not self._updating:
            self._refresh()

    def _refresh(self) -> None:
        for name in self.content_boxes:
            self.content_weights[name].disabled = not self.content_boxes[name].value
            self.style_weights[name].disabled = not self.style_boxes[name].value
        cfg = self.config()

        def describe(d: Dict[str, float]) -> str:
            if not d:
                return "<i>none</i>"
            return ", ".join(f"{html.escape(resolve_layer(n).label)} ({fmt(w)})" for n, w in d.items())

        def changed(*keys: str) -> str:
            # The mark goes on the line that changed: a new content layer must not mark the Style line.
            applied = self._applied or {}
            moved = self._applied is not None and any(cfg.get(k) != applied.get(k) for k in keys)
            return " <i>(changed from the preset)</i>" if moved else ""

        others = [k for k in cfg if k not in ("content_layers", "style_layers")]
        warn = ""
        if not cfg["style_layers"]:
            warn = "<br><span style='color:#b00020'>Choose at least one style layer.</span>"
        settings = changed(*others)
        self.summary.value = (f"<b>Content:</b> {describe(cfg['content_layers'])}{changed('content_layers')}<br>"
                              f"<b>Style:</b> {describe(cfg['style_layers'])}{changed('style_layers')}"
                              + (f"<br><b>Weights and settings:</b>{settings}" if settings else "") + warn)
        self._refresh_code()
        for callback in list(self._listeners):
            callback()

    def _refresh_code(self) -> None:
        self.code.value = ("<div style='font-size:90%'>The same run in code:</div>"
                           f"<pre style='background:#f6f8fa;padding:6px;margin:0;user-select:text'>"
                           f"{html.escape(self.call_code())}</pre>")
