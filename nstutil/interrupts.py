"""Stopping a command-line run by a signal without losing its result.

A run stops on Ctrl-C (SIGINT) by catching ``KeyboardInterrupt`` and keeping the best image so far
(:class:`~nstutil.optimisation.Minimiser`). :class:`StopSignals` makes the signals that schedulers, ``timeout`` and a
closing terminal send (SIGTERM, SIGHUP) stop it the same way, and makes every signal after the first a no-op: a
second Ctrl-C, pressed while the first is being handled (the network's weights restored, the image written), would
otherwise interrupt that handling and lose the result.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Dict, Optional

__all__ = ["StopSignals", "STOP_SIGNALS"]

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class StopSignals:
    """Within the block, the first of SIGINT, SIGTERM and SIGHUP raises ``KeyboardInterrupt`` and later ones only
    print that the run is already stopping; after :meth:`hold` none raises. :attr:`received` is the first signal's number (None if none came);
    :attr:`exit_status` is the shell's ``128 + number`` for it (130 for Ctrl-C, 143 for SIGTERM).

    Outside the main thread (where Python cannot set handlers) it does nothing.
    """

    def __init__(self, program: str = "nstutil") -> None:
        self.program = program
        self.received: Optional[int] = None
        self._previous: Dict[int, object] = {}
        self._holding = False

    @property
    def name(self) -> str:
        """The first signal's name (``"SIGTERM"``), or ``""``."""
        return signal.Signals(self.received).name if self.received is not None else ""

    @property
    def exit_status(self) -> int:
        return 128 + (self.received if self.received is not None else signal.SIGINT)

    def hold(self) -> None:
        """From now on no signal raises: the result is being written (it is a no-op outside the block)."""
        self._holding = True

    def _handle(self, signum: int, frame) -> None:
        if self.received is None:
            self.received = signum
            if not self._holding:
                raise KeyboardInterrupt(signal.Signals(signum).name)
        print(f"{self.program}: {signal.Signals(signum).name} ignored: already stopping, writing the best image "
              f"so far", file=sys.stderr, flush=True)

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
