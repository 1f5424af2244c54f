"""A run's settings, spelled once: the recipe a caller chose and the controls, as frozen, typed values.

Introduced in lesson 8 (Controlling the result). :func:`nstutil.style_transfer` keeps its flat keywords (the
teaching API, mirroring the established tools' flags) and binds them here at once; :func:`nstutil.build_objective`,
the command line (its option groups are made from these fields), the layer chooser and the time and memory estimate
take the same values, and :attr:`nstutil.TransferResult.settings` is made from them. A new control is one field of
:class:`Controls` (with its command-line flag in the field's metadata), then the code that makes it work.

The default plan (:data:`DEFAULT_STEPS` evaluations at one scale) is the command line's and ``style_transfer``'s
alike; ``benchmarks/bench_default_plan.py`` measured it against coarse-to-fine (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field, fields
from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple, Type, TypeVar, Union

from .colour import PRESERVE_COLORS
from .errors import NSTError
from .losses import CONVENTIONS, STYLE_STATISTICS
from .presets import OPTIMIZERS, PARAMETRISATIONS, TV_INPUTS, LayerSpec, Preset, resolve_recipe
from .regions import MaskLike

__all__ = ["RecipeChoice", "Controls", "DEFAULT_STEPS", "OPTIMISER_FIELDS", "bind", "add_options", "from_options",
           "parse_layers", "positive_int"]

#: Loss evaluations of a run when ``steps`` is not given, at one scale (see the module's note on the default plan).
DEFAULT_STEPS = 300
#: The fields of :class:`RecipeChoice` that say how the loss is minimised (the command line's "optimisation" group).
OPTIMISER_FIELDS = ("optimizer", "lr", "lr_decay", "lr_decay_every", "parametrisation")


def parse_layers(text: str) -> Dict[str, float]:
    """``"relu1_1,relu2_1:0.5"`` -> ``{"relu1_1": 1.0, "relu2_1": 0.5}`` (weight 1 where none is given)."""
    layers: Dict[str, float] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, _, weight = item.partition(":")
        try:
            layers[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"layer weight {weight!r} in {item!r} is not a number") from None
    return layers


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _number_list(kind):
    """An argparse type: comma-separated numbers of ``kind`` (``"3,1"`` -> ``[3.0, 1.0]``)."""
    def parse(text: str) -> list:
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    return parse


def _name_list(text: str) -> list:
    return [part.strip() for part in text.split(",") if part.strip()]


def _steps(text: str) -> Union[int, list]:
    """``--steps``: one whole number, or one per scale (``"200,100,50"``)."""
    counts = [positive_int(part) for part in text.split(",") if part.strip()]
    if not counts:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return counts[0] if len(counts) == 1 else counts


def _option(flag: str, help: str, **argparse_keywords) -> dict:
    """A field's command-line option, kept in the field's metadata."""
    return {"flag": flag, "help": help, **argparse_keywords}


@dataclass(frozen=True)
class RecipeChoice:
    """The recipe settings a caller chose; ``None`` takes the preset's (:func:`nstutil.resolve_recipe`)."""

    content_layers: LayerSpec = field(default=None, metadata=_option(
        "--content-layers", "content layers with optional weights, e.g. relu4_2", type=parse_layers,
        metavar="L[:W],..."))
    style_layers: LayerSpec = field(default=None, metadata=_option(
        "--style-layers", "style layers with optional weights, e.g. relu1_1,relu2_1:0.5", type=parse_layers,
        metavar="L[:W],..."))
    content_weight: Optional[float] = field(default=None, metadata=_option(
        "--content-weight", "weight of the content loss", type=float, metavar="ALPHA"))
    style_weight: Optional[float] = field(default=None, metadata=_option(
        "--style-weight", "weight of the style loss", type=float, metavar="BETA"))
    tv_weight: Optional[float] = field(default=None, metadata=_option(
        "--tv-weight", "weight of the total-variation loss", type=float, metavar="GAMMA"))
    convention: Optional[str] = field(default=None, metadata=_option(
        "--convention", "which normalisation of the losses", choices=CONVENTIONS))
    style_statistic: Optional[str] = field(default=None, metadata=_option(
        "--style-statistic", "what the style loss compares: Gram matrices (gram) or each channel's mean and "
        "standard deviation (mean_std)", choices=STYLE_STATISTICS))
    tv_p: Optional[float] = field(default=None, metadata=_option(
        "--tv-p", "power of the neighbour differences in the total variation (2: squared, 1: absolute, as d2l)",
        type=float, metavar="P"))
    tv_input: Optional[str] = field(default=None, metadata=_option(
        "--tv-input", "what the total variation measures: the [0, 1] image, or the network's normalised input "
        "(as d2l)", choices=TV_INPUTS))
    optimizer: Optional[str] = field(default=None, metadata=_option(
        "--optimizer", "L-BFGS (with a line search) or Adam (default: the preset's; lbfgs except for d2l)",
        choices=OPTIMIZERS))
    lr: Optional[float] = field(default=None, metadata=_option(
        "--lr", "learning rate (default: the preset's, else 1 for L-BFGS, 0.05 for Adam)", type=float,
        metavar="LR"))
    lr_decay: Optional[float] = field(default=None, metadata=_option(
        "--lr-decay", "Adam: multiply the learning rate by this every --lr-decay-every steps (d2l: 0.8)", type=float,
        metavar="F"))
    lr_decay_every: Optional[int] = field(default=None, metadata=_option(
        "--lr-decay-every", "Adam: steps between learning-rate decays (d2l: 50; 0: never)", type=int, metavar="N"))
    parametrisation: Optional[str] = field(default=None, metadata=_option(
        "--parametrisation", "what the optimiser changes: a variable whose squashed value is the image (squash), "
        "or the network's normalised input itself, unconstrained (network_input, as d2l)",
        choices=PARAMETRISATIONS))

    def resolve(self, preset: str) -> Preset:
        """The preset with these choices applied, every value checked."""
        return resolve_recipe(preset, **self.given())

    def given(self) -> Dict[str, object]:
        """The choices that are set (not ``None``), as keywords."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class Controls:
    """The controls of lesson 8 and the plan of a run; ``None`` is "off" (or the default plan)."""

    style_blend: Optional[Sequence[float]] = field(default=None, metadata=_option(
        "--style-blend", "one weight per style image (default: equal); normalised to sum 1",
        type=_number_list(float), metavar="W,W,..."))
    style_masks: Optional[Sequence[MaskLike]] = field(default=None, metadata=_option(
        "--style-masks", "one mask picture per style image over the content image: white = this style, black or "
        "transparent = not",
        type=_name_list, metavar="MASK,MASK,..."))
    style_scale: Optional[float] = field(default=None, metadata=_option(
        "--style-scale", "style image size relative to the content (0.5: finer strokes; default 1)", type=float,
        metavar="S"))
    preserve_colors: Optional[str] = field(default=None, metadata=_option(
        "--preserve-colors", "keep the content's colours: luminance-only transfer, or the style's colours matched "
        "to the content's first (histogram)", choices=PRESERVE_COLORS))
    scales: Optional[Sequence[int]] = field(default=None, metadata=_option(
        "--scales", "coarse-to-fine: optimise at these sizes first (increasing; --size is added last)",
        type=_number_list(int), metavar="PX,PX,..."))
    steps: Union[int, Sequence[int]] = field(default=DEFAULT_STEPS, metadata=_option(
        "--steps", f"loss evaluations, each one forward and one backward pass; with --scales one number per scale, "
        f"or one for each (default: {DEFAULT_STEPS} at one scale). The PyTorch tutorial's '300 steps' are 320 "
        f"evaluations", type=_steps, metavar="N[,N...]"))


Settings = TypeVar("Settings", RecipeChoice, Controls)


def bind(kind: Type[Settings], values: Mapping[str, object]) -> Settings:
    """``kind`` made from the entries of ``values`` named like its fields (e.g. a function's ``locals()``); an
    entry that is ``None`` keeps the field's default."""
    return kind(**{f.name: values[f.name] for f in fields(kind) if values.get(f.name) is not None})


def add_options(group: argparse._ActionsContainer, kind: Type[Settings], names: Optional[Iterable[str]] = None) -> None:
    """Add the command-line options of ``kind``'s fields (those in ``names``, or all) to an argparse group.
    Every option defaults to ``None``: unset, the field's own default applies (:func:`from_options`)."""
    wanted = None if names is None else set(names)
    for f in fields(kind):
        if wanted is None or f.name in wanted:
            option = dict(f.metadata)
            group.add_argument(option.pop("flag"), dest=f.name, default=None, **option)


def from_options(kind: Type[Settings], options: argparse.Namespace, **replaced) -> Settings:
    """``kind`` from parsed command-line options (made by :func:`add_options`), with some values replaced."""
    return dataclasses.replace(bind(kind, vars(options)), **replaced)


def field_names(kind: Type[Settings]) -> Tuple[str, ...]:
    """The keywords ``kind`` binds, in order."""
    return tuple(f.name for f in fields(kind))


def check_keywords(given: Iterable[str], *kinds: Type[Settings], where: str) -> None:
    """An :class:`NSTError` naming the keywords in ``given`` that none of ``kinds`` has."""
    known = [name for kind in kinds for name in field_names(kind)]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise NSTError(f"{where} got unknown keyword(s) {', '.join(unknown)}: use these keywords "
                       f"of style_transfer ({', '.join(known)})")
