"""Settings read from the environment (``NSTUTIL_SIZE``, ``NSTUTIL_STEPS``): a bad value is refused with one line
that names the variable, in the lessons' set-up cells as in the playground."""

from __future__ import annotations

import os

from .errors import NSTError

__all__ = ["env_int"]


def env_int(name: str, default: int, *, minimum: int = 1) -> int:
    """The whole number in environment variable ``name``, or ``default`` when it is unset or blank.

    ``NSTUTIL_SIZE=abc`` or ``NSTUTIL_SIZE=-1`` raise :class:`NSTError` naming the variable and a value to set,
    instead of ``int()``'s ``invalid literal`` or a failure far from the cause. Used by every lesson's set-up cell
    (``SIZE = nstutil.env_int("NSTUTIL_SIZE", 256)``) and the widgets' defaults.
    """
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise NSTError(f"environment variable {name}={text!r} is not a whole number: set it to e.g. {default}, "
                       f"or unset it") from None
    if value < minimum:
        raise NSTError(f"environment variable {name}={text!r} must be at least {minimum}: set it to e.g. "
                       f"{default}, or unset it")
    return value
