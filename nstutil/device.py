"""Where a run happens: one rule for every part of nstutil.

Introduced in lesson 5 (Optimisation). The rule, in order:

1. A model that is passed in decides: the run happens where its weights are. nstutil never moves a caller's model
   (nor a cached one), so a notebook's ``model`` stays where the notebook put it.
2. Otherwise the ``device`` asked for, checked: a device this machine lacks is one clear :class:`NSTError`.
3. Otherwise the default: :func:`load_vgg19` loads onto the CPU (a lesson's tensors are CPU tensors), while a run
   that loads its own model (:func:`nstutil.style_transfer`, the command line) takes a CUDA GPU when there is one.

A model together with another device is refused before anything runs. Results come back on the CPU.
"""

from __future__ import annotations

from typing import Optional, Union

import torch

from .errors import NSTError

__all__ = ["DeviceLike", "resolve_device", "model_device", "best_device"]

DeviceLike = Union[None, str, torch.device]


def best_device() -> torch.device:
    """A CUDA GPU when this machine has one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def model_device(model: torch.nn.Module) -> torch.device:
    """The device a model's weights are on (the CPU for a model without parameters)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _checked(device: Union[str, torch.device]) -> torch.device:
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise NSTError(f"device {device!r} is not a device name: use 'cpu', 'cuda' or 'cuda:N'") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise NSTError(f"device {str(device)!r} asked for, but this machine has no CUDA GPU: use device 'cpu'")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise NSTError(f"device {str(device)!r} asked for, but this machine has {torch.cuda.device_count()} "
                           f"GPU(s): use 'cuda:0' to 'cuda:{torch.cuda.device_count() - 1}'")
    elif chosen.type != "cpu":
        raise NSTError(f"device {str(device)!r} is not supported: use 'cpu' or 'cuda'")
    return chosen


def _same(a: torch.device, b: torch.device) -> bool:
    """Whether two devices are the same place ('cuda' means the current GPU)."""
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True
    current = torch.cuda.current_device()
    return (a.index if a.index is not None else current) == (b.index if b.index is not None else current)


def resolve_device(device: DeviceLike = None, model: Optional[torch.nn.Module] = None, *,
                   default: str = "best") -> torch.device:
    """The device a run uses, by the rule of this module.

    ``model``, when given, decides; ``device`` may then be left out or name the same device, anything else is an
    :class:`NSTError` (one line) rather than a silent move of the model. Without a model, ``device`` is checked
    (a CUDA device on a machine without one is an error) and ``None`` means ``default``: ``"best"`` (CUDA when
    available) or ``"cpu"``. Introduced in lesson 5.
    """
    if model is not None:
        where = model_device(model)
        if device is not None and not _same(_checked(device), where):
            raise NSTError(f"the model given is on {where} but device {str(device)!r} was asked for: leave device "
                           f"out (the model decides), or load the model there with load_vgg19(device="
                           f"{str(device)!r})")
        return where
    if device is not None:
        return _checked(device)
    if default == "best":
        return best_device()
    return torch.device(default)
