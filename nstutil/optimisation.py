r"""How the loss is minimised: L-BFGS (or Adam) over the pixels of the generated image.

Introduced in lesson 5 (Optimisation). The optimiser changes a variable :math:`z` of the image's shape, and the image
is a sigmoid of :math:`z` stretched a margin :math:`\varepsilon = 1/255` past each end of :math:`[0, 1]`:

.. math:: x = (1 + 2\varepsilon)\,\sigma(z) - \varepsilon, \qquad
          z_0 = \operatorname{logit}\!\Big(\frac{x_0 + \varepsilon}{1 + 2\varepsilon}\Big)

so every image the network sees is a picture (no clamp behind the optimiser's back, which makes the PyTorch tutorial's
loss jump), and the start :math:`x_0` is reached to float rounding — a photo's pure black and white pixels included,
so the first evaluation is the tutorial's loss at the start image. A plain sigmoid (nstutil until 2026-11) cannot
reach 0 or 1 and had to move the start 1/255 inside; folding :math:`z` back into the box by reflection is exact but
reached a given loss up to 3x later on some photos (``benchmarks/bench_parametrisation.py``). Images handed back
(``Outcome``, ``Evaluation``, intermediates) are clamped to :math:`[0, 1]`.

With ``parametrisation="network_input"`` the optimiser changes the network's input itself (the ImageNet-normalised
image, or Caffe's), unconstrained, as d2l does; the images shown are then clamped like the others. Adam's learning
rate may follow a step schedule (``lr_decay`` every ``lr_decay_every`` steps: torch's ``StepLR``, d2l's 0.8 every 50).

``steps`` counts **loss evaluations** (one forward and one backward pass each), exactly. The PyTorch tutorial's
``num_steps=300`` loop runs 16 ``LBFGS.step`` calls of 20 iterations, i.e. 320 evaluations.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import torch

from .objective import LossRecord, Objective
from .presets import OPTIMIZERS, PARAMETRISATIONS
from .vgg import VGGFeatures

__all__ = ["OPTIMIZERS", "PARAMETRISATIONS", "DEFAULT_LR", "Evaluation", "Outcome", "Minimiser", "MARGIN", "squash",
           "variable_for", "parametrised"]

DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.05}
# Curvature pairs L-BFGS keeps. The tutorial's default is 100; 20 costs 5x less bookkeeping per step and reached
# the same losses in the benchmarks.
LBFGS_HISTORY = 20

Presenter = Callable[[torch.Tensor], torch.Tensor]


# How far past 0 and 1 the image may go, so that 0 and 1 themselves are reached at a finite z.
MARGIN = 1.0 / 255.0


def squash(z: torch.Tensor) -> torch.Tensor:
    """The image for the optimised variable ``z``: a sigmoid stretched to (-MARGIN, 1 + MARGIN). Lesson 5."""
    return torch.sigmoid(z) * (1.0 + 2.0 * MARGIN) - MARGIN


def variable_for(image: torch.Tensor) -> torch.Tensor:
    """The variable ``z`` the optimiser starts from so that ``squash(z)`` is ``image`` (clamped to [0, 1])."""
    return torch.logit((image.clamp(0.0, 1.0) + MARGIN) / (1.0 + 2.0 * MARGIN))


def parametrised(parametrisation: str, model: VGGFeatures, start: torch.Tensor
                 ) -> Tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """``(z, image_of)``: the variable the optimiser starts from and the map from it to the [0, 1]-scale image.

    ``"squash"``: :func:`variable_for` and :func:`squash`. ``"network_input"``: ``z`` is ``model``'s input for
    ``start`` (:meth:`~nstutil.vgg.VGGFeatures.normalize`) and ``image_of`` undoes that normalisation, so the
    network sees ``z`` itself, to float rounding (d2l's parametrisation). Lesson 5."""
    if parametrisation == "squash":
        return variable_for(start), squash
    mean, std = model.mean.to(start.device), model.std.to(start.device)
    flip = model.input_convention == "caffe"    # Caffe's input is BGR

    def image_of(z: torch.Tensor) -> torch.Tensor:
        image = z * std + mean
        return image.flip(1) if flip else image

    return model.normalize(start.to(mean.device)), image_of


class Evaluation:
    """What a ``callback`` sees after each evaluation. Return ``True`` from the callback to stop the run."""

    def __init__(self, record: LossRecord, history: List[LossRecord], steps: int, current: torch.Tensor,
                 best: torch.Tensor, present: Optional[Presenter] = None) -> None:
        self.record = record
        self.history = history
        self.steps = steps
        self._current = current
        self._best = best
        self._present = present

    def _shown(self, image: torch.Tensor) -> torch.Tensor:
        image = image.detach()
        if self._present is not None:
            image = self._present(image)
        return image.to("cpu", copy=True)

    @property
    def image(self) -> torch.Tensor:
        """The image just evaluated, 1×3×H×W on the CPU (a copy; at the current scale of a coarse-to-fine run)."""
        return self._shown(self._current)

    @property
    def best_image(self) -> torch.Tensor:
        """The lowest-loss image so far at the current scale, 1×3×H×W on the CPU (a copy)."""
        return self._shown(self._best)


@dataclass
class Outcome:
    """How one :meth:`Minimiser.minimise` ended: ``reason`` (``"completed"``, ``"callback"``, ``"interrupted"``,
    ``"nonfinite"``), the lowest-loss image (on the objective's device; the start if no evaluation finished) and its
    index in the history (-1 if none)."""

    reason: str
    best: torch.Tensor
    best_evaluation: int


class _Stop(Exception):
    """Raised inside the closure to leave the optimiser's step at once."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Minimiser:
    """Minimises one objective after another (the scales of a coarse-to-fine run) into one history.

    ``total_steps`` is the number of evaluations of the whole run (for the callback and the progress bar);
    ``callback(evaluation)`` runs after each and stops the run by returning True; every ``intermediate_every``
    evaluations the image is kept in :attr:`intermediates`. Use it as a context manager: during the run,
    denormal floats are flushed to zero and cuDNN autotunes. Introduced in lesson 5.
    """

    def __init__(self, *, total_steps: int, optimizer: str = "lbfgs", lr: Optional[float] = None,
                 lr_decay: float = 1.0, lr_decay_every: int = 0, parametrisation: str = "squash",
                 callback: Optional[Callable[[Evaluation], Optional[bool]]] = None,
                 intermediate_every: Optional[int] = None, progress: bool = True) -> None:
        self.total_steps = total_steps
        self.optimizer = optimizer
        self.lr = DEFAULT_LR[optimizer] if lr is None else lr
        # Adam only (checked by nstutil.resolve_recipe): a step schedule restarts at each scale of a coarse-to-fine run.
        self.lr_decay = lr_decay
        self.lr_decay_every = lr_decay_every
        self.parametrisation = parametrisation
        self.callback = callback
        self.intermediate_every = intermediate_every
        self.progress = progress
        self.history: List[LossRecord] = []
        self.intermediates: List[Tuple[int, torch.Tensor]] = []
        self._t0: Optional[float] = None
        self._bar = None

    def __enter__(self) -> "Minimiser":
        from tqdm.auto import tqdm

        self._bar = tqdm(total=self.total_steps, desc="style transfer", unit="eval", disable=not self.progress,
                         leave=False)
        self._benchmark = torch.backends.cudnn.benchmark
        # Tiny gradients become denormal floats, which make CPU convolutions up to 10x slower; zero them instead.
        torch.set_flush_denormal(True)
        return self

    def __exit__(self, *exc) -> None:
        torch.backends.cudnn.benchmark = self._benchmark
        torch.set_flush_denormal(False)
        self._bar.close()

    def minimise(self, objective: Objective, start: torch.Tensor, steps: int, *, scale: int = 0,
                 present: Optional[Presenter] = None) -> Outcome:
        """Run ``steps`` evaluations of ``objective`` from ``start`` (1×3×H×W in [0, 1]); the records go to
        :attr:`history`. ``present`` turns an evaluated image into what the user sees (e.g. colours put back)."""
        device = objective.device
        torch.backends.cudnn.benchmark = device.type == "cuda"
        # Contiguous whatever the input's strides (a permuted HWC array, say): L-BFGS flattens z.grad with .view().
        start = start.detach().to(device, torch.float32).clamp(0.0, 1.0)
        z, image_of = parametrised(self.parametrisation, objective.model, start)
        z = z.detach().contiguous().requires_grad_(True)
        schedule = None
        if self.optimizer == "lbfgs":
            # No tolerances: the run ends after exactly `steps` evaluations, not when L-BFGS thinks it converged.
            opt = torch.optim.LBFGS([z], lr=self.lr, max_iter=steps, max_eval=steps, history_size=LBFGS_HISTORY,
                                    tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")
        else:
            opt = torch.optim.Adam([z], lr=self.lr)
            if self.lr_decay_every and self.lr_decay != 1:
                schedule = torch.optim.lr_scheduler.StepLR(opt, self.lr_decay_every, self.lr_decay)
        if self._t0 is None:
            self._t0 = time.perf_counter()
        first = len(self.history)
        best = {"loss": math.inf, "image": start.clone(), "evaluation": -1}

        def closure() -> torch.Tensor:
            n = len(self.history)
            if n - first >= steps:
                raise _Stop("completed")
            opt.zero_grad(set_to_none=True)
            image = image_of(z)
            total, values = objective.loss(image)
            total.backward()
            record = objective.record(values.tolist(), n, time.perf_counter() - self._t0, scale)
            self.history.append(record)
            self._bar.update(1)
            if not math.isfinite(record.total):
                raise _Stop("nonfinite")
            picture = image.detach().clamp(0.0, 1.0)
            if record.total < best["loss"]:
                best.update(loss=record.total, image=picture, evaluation=n)
            if self.intermediate_every and n % self.intermediate_every == 0:
                shown = picture if present is None else present(picture)
                self.intermediates.append((n, shown.to("cpu", copy=True)))
            if n % 10 == 0:
                self._bar.set_postfix_str(f"loss {record.total:.4g}", refresh=False)
            if self.callback is not None and self.callback(
                    Evaluation(record, self.history, self.total_steps, picture, best["image"], present)):
                raise _Stop("callback")
            return total

        reason = "completed"
        try:
            if self.optimizer == "lbfgs":
                while len(self.history) - first < steps:
                    opt.step(closure)
            else:
                for _ in range(steps):
                    opt.step(closure)
                    if schedule is not None:
                        schedule.step()
        except _Stop as stop:
            reason = stop.reason
        except KeyboardInterrupt:
            reason = "interrupted"
        return Outcome(reason, best["image"], best["evaluation"])
