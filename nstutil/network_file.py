"""A trained style network as one file a class can share: the weights and what they were trained for.

Introduced in lesson 10. The file is a ``torch.save`` of plain data — tensors, numbers, strings, lists and dicts —
so ``torch.load(path, weights_only=True)`` reads it without running any code from it (a pickle could). It holds:

- ``format`` (:data:`NETWORK_FORMAT`) and ``version``, so that another kind of file is recognised and refused;
- ``kind`` and ``config``: which network class (:data:`NETWORK_KINDS`) and its constructor's arguments;
- ``state_dict``: the weights;
- ``meta``: what it was trained for — the style image's SHA-256, the recipe, the training size, steps and batch,
  the VGG19 weights' name, the held-out loss — whatever the trainer recorded (JSON-like values only).

Other network kinds (such as a second network lesson's) add themselves with :func:`register_network`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, Optional, Union

import torch
from torch import nn

from .device import DeviceLike, resolve_device
from .errors import NSTError
from .images import write_atomically
from .transformer_net import TransformerNet

__all__ = ["NETWORK_FORMAT", "STYLE_NETWORK_KIND", "NETWORK_KINDS", "NetworkFile", "register_network", "save_network",
           "load_network"]

NETWORK_FORMAT = "nstutil-network"
STYLE_NETWORK_KIND = "transformer"  # a lesson-10 style network (nstutil.adain registers its decoder's kind)
NETWORK_KINDS: Dict[str, Callable[..., nn.Module]] = {STYLE_NETWORK_KIND: TransformerNet}


def register_network(kind: str, builder: Callable[..., nn.Module]) -> None:
    """Let :func:`load_network` rebuild networks of ``kind`` with ``builder(**config)``."""
    NETWORK_KINDS[kind] = builder


@dataclass
class NetworkFile:
    """A loaded network file: the ``model`` (in eval mode), its ``kind`` and ``config``, and its ``meta``."""

    model: nn.Module
    kind: str
    config: Dict[str, object]
    meta: Dict[str, object] = field(default_factory=dict)
    path: Optional[Path] = None


def _kind_of(model: nn.Module) -> str:
    for kind, builder in NETWORK_KINDS.items():
        if type(model) is builder:
            return kind
    raise NSTError(f"a {type(model).__name__} is not a network kind nstutil can save: register it with "
                   f"nstutil.network_file.register_network first")


def _plain(meta: Optional[dict]) -> dict:
    """``meta`` as JSON-like data (weights_only loading accepts nothing else); paths and tuples become strings and
    lists."""
    try:
        return json.loads(json.dumps(dict(meta or {}), default=str))
    except (TypeError, ValueError) as exc:
        raise NSTError(f"network meta cannot be stored ({exc}): give numbers, strings, lists and dicts") from None


def save_network(path: Union[str, os.PathLike], model: nn.Module, *, meta: Optional[dict] = None,
                 protect: Iterable[Union[str, os.PathLike]] = ()) -> Path:
    """Write ``model`` (a :data:`NETWORK_KINDS` network with a ``config``) and ``meta`` to ``path`` atomically;
    paths in ``protect`` (a run's inputs) are never overwritten. Returns the path."""
    path = Path(path).expanduser()
    for other in protect:
        if other is not None and path.exists() and Path(other).exists() and os.path.samefile(path, other):
            raise NSTError(f"output {str(path)!r} is one of the inputs: choose another output path")
    if path.is_dir():
        raise NSTError(f"output {str(path)!r} is a directory: give a file name such as "
                       f"{str(path / 'style.net.pth')!r}")
    state = {"format": NETWORK_FORMAT, "version": 1, "kind": _kind_of(model),
             "config": _plain(getattr(model, "config", {})),
             "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "meta": _plain(meta)}
    return write_atomically(path, lambda stream: torch.save(state, stream), suffix=path.suffix)


def load_network(path: Union[str, os.PathLike], *, device: DeviceLike = None) -> NetworkFile:
    """Read a file :func:`save_network` wrote and rebuild the network on ``device`` (default: the CPU), in eval
    mode. Anything else — a missing file, a VGG19 weights file, a training checkpoint, a picture — is one
    :class:`NSTError` line that says what the file is and what to give instead."""
    path = Path(path).expanduser()
    label = f"network file {str(path)!r}"
    if not path.exists():
        raise NSTError(f"{label} does not exist: check the path, or train one with 'python -m nstutil train'")
    if path.is_dir():
        raise NSTError(f"{label} is a directory: give the .pth file 'python -m nstutil train' wrote")
    target = resolve_device(device, default="cpu")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a torch file at all, or one that needs code to unpickle
        raise NSTError(f"{label} is not a network file (torch.load cannot read it safely): give the .pth file "
                       f"'python -m nstutil train' wrote") from None
    if not isinstance(state, dict) or state.get("format") != NETWORK_FORMAT:
        what = "a file of another kind"
        if isinstance(state, dict) and state.get("format") == "nstutil-training-checkpoint":
            what = "a training checkpoint (resume training from it, or let the training finish)"
        elif isinstance(state, dict) and any(str(k).startswith(("features.", "0.weight")) for k in state):
            what = "VGG19 weights, not a style network"
        raise NSTError(f"{label} is {what}: give the .pth file 'python -m nstutil train' wrote")
    kind = state.get("kind")
    if kind not in NETWORK_KINDS:
        raise NSTError(f"{label} holds a {kind!r} network, which this nstutil does not know: update nstutil")
    config = dict(state.get("config") or {})
    if kind == STYLE_NETWORK_KIND:
        # Style networks saved before the tanh output layer existed have no "output": theirs was linear.
        config.setdefault("output", "linear")
    try:
        model = NETWORK_KINDS[kind](**config)
        model.load_state_dict(state["state_dict"])
    except (TypeError, KeyError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0][:100]
        raise NSTError(f"{label} is damaged or from another version ({reason}): train it again") from None
    return NetworkFile(model.to(target).eval(), kind, config, dict(state.get("meta") or {}), path)
