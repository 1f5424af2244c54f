"""Drawing a running optimisation without slowing it: the callback only hands over the latest state, a separate
thread draws it.

Drawing the preview and the loss plot costs tens of milliseconds, several evaluations at 128 px; drawing them in
the optimisation's callback made runs 1.6-3x slower (issue 13). Here the callback stores a reference to the latest
evaluation and, only when the drawer has asked for one, a copy of the image; the drawer thread updates the
status (cheap) a few times a second and draws a picture only as often as drawing then takes at most ``budget`` of
the time (5 %: a draw that takes 60 ms is followed by at least 1.2 s without one).
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional


class LiveDrawer:
    """Calls ``show_status(evaluation)`` and ``draw_frame(image, history)`` from its own thread while a run goes.

    ``offer(evaluation)`` is the optimisation's callback side: O(1), it never draws. ``start()`` before the run,
    ``stop()`` after it (it waits for a draw in progress to finish, so that nothing draws after it returns).
    """

    def __init__(self, show_status: Callable[[object], None], draw_frame: Callable[[object, list], None], *,
                 min_interval: float = 0.25, budget: float = 0.05, tick: float = 0.2) -> None:
        self._show_status = show_status
        self._draw_frame = draw_frame
        self.min_interval = float(min_interval)
        self.budget = float(budget)
        self.tick = float(tick)
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._latest = None
        self._frame = None
        self._want_frame = False
        self._finished = False
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        """Start drawing; the first evaluation offered is drawn at once (the start image)."""
        self._latest, self._frame, self._want_frame, self._finished = None, None, True, False
        self._wake.clear()
        self._thread = threading.Thread(target=self._loop, name="nstutil-drawer", daemon=True)
        self._thread.start()

    def offer(self, evaluation) -> None:
        """Called after every evaluation, in the optimisation's thread: keep it, copy the image when asked to."""
        self._latest = evaluation
        if self._want_frame:
            frame = (evaluation.image, list(evaluation.history))
            with self._lock:
                self._frame, self._want_frame = frame, False
            self._wake.set()

    def stop(self) -> None:
        """Stop drawing and wait for the thread (the caller then draws the final state itself)."""
        self._finished = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        next_frame = 0.0
        while True:
            self._wake.wait(self.tick)
            self._wake.clear()
            with self._lock:
                frame, self._frame = self._frame, None
            if self._finished:
                return
            if self._latest is not None:
                self._show_status(self._latest)
            if frame is not None:
                began = time.perf_counter()
                self._draw_frame(*frame)
                cost = time.perf_counter() - began
                next_frame = time.monotonic() + max(self.min_interval, cost / self.budget)
            if not self._want_frame and time.monotonic() >= next_frame:
                with self._lock:
                    self._want_frame = self._frame is None
