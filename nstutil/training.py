"""Training a network with Adam: steps, a progress bar, a loss curve, checkpoints, interruption, several processes.

Introduced in lesson 10. This module knows nothing about style: it trains any ``model`` on any ``loss`` over
batches a ``batches(step)`` function gives, so the style network of lesson 10 and other networks share it. What
it does, and why:

- **Batches are a function of the step** (:class:`nstutil.photos.PhotoCrops` is one). A run resumed from a
  checkpoint then sees the batches the uninterrupted run would have seen, and on the CPU it ends with the same
  weights, bit for bit (the tests check this).
- **Checkpoints** (:func:`save_checkpoint`): the model's and Adam's state, the step, the loss curve and the caller's
  ``meta`` (what the run is for), written atomically every ``checkpoint_every`` steps, at the end, and when the run
  is stopped. ``resume=True`` continues from one, after checking its ``meta`` is this run's.
- **Ctrl-C and SIGTERM** (a cluster's scheduler ending a job) stop the run after the step in progress and write a
  checkpoint; a second Ctrl-C stops at once.
- **Several processes**: under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in PyTorch's
  DistributedDataParallel (NCCL on GPUs, gloo on CPUs); every process takes its share of each step's batch and the
  gradients are averaged, so N processes compute what one process computes on the whole batch. Only the first
  process shows progress and writes files. A network with batch normalisation would see smaller batches per
  process; the style networks use instance normalisation, which is per image.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .device import model_device
from .errors import NSTError
from .images import write_atomically
from .interrupts import STOP_SIGNALS

__all__ = ["train", "TrainingResult", "Step", "save_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT",
           "world", "is_main_process", "distributed_device"]

CHECKPOINT_FORMAT = "nstutil-training-checkpoint"
Batch = Union[torch.Tensor, Sequence[torch.Tensor]]
STOP_REASONS = ("completed", "interrupted", "nonfinite", "callback")


@dataclass
class Step:
    """What the callback gets after each step: the step number (1 = the first), the loss of the batch before the
    update (averaged over processes), the seconds since training began (over resumed runs too), the loss object the
    loss function returned (this process's part) and the model."""

    step: int
    loss: float
    elapsed: float
    value: object
    model: nn.Module


@dataclass
class TrainingResult:
    """What :func:`train` did: ``losses[k]`` is the loss of step k+1 and ``times[k]`` the seconds at its end,
    including earlier runs resumed from; ``stop_reason`` is one of ``"completed"``, ``"interrupted"`` (Ctrl-C,
    SIGTERM or SIGHUP), ``"nonfinite"`` (the loss became NaN or infinite; the weights are those before that step) or
    ``"callback"``."""

    model: nn.Module
    steps: int
    losses: List[float]
    times: List[float]
    stop_reason: str
    checkpoint: Optional[Path] = None
    meta: Dict[str, object] = field(default_factory=dict)
    stop_signal: Optional[str] = None  # "SIGINT", "SIGTERM" or "SIGHUP" when a signal stopped the run

    @property
    def seconds(self) -> float:
        """Training time so far, in seconds."""
        return self.times[-1] if self.times else 0.0


def world() -> Tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` unless running under torch.distributed."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """Whether this process writes files and shows progress (rank 0, or no distributed run)."""
    return world()[0] == 0


def distributed_device() -> Optional[torch.device]:
    """Under ``torchrun`` on a machine with CUDA GPUs, this process's GPU (``cuda:LOCAL_RANK``); else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
    return None


def _start_distributed(device: torch.device) -> None:
    """Join the process group ``torchrun`` describes in the environment, if there is one and it is not joined."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not torch.distributed.is_available():
        return
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def save_checkpoint(path: Union[str, os.PathLike], model: nn.Module, optimizer: torch.optim.Optimizer, step: int,
                    losses: List[float], times: List[float], meta: Optional[dict] = None) -> Path:
    """Write a training checkpoint atomically (a file ``torch.load(weights_only=True)`` reads)."""
    state = {"format": CHECKPOINT_FORMAT, "version": 1, "step": int(step), "model": model.state_dict(),
             "optimizer": optimizer.state_dict(), "losses": [float(x) for x in losses],
             "times": [float(x) for x in times], "meta": dict(meta or {})}
    path = Path(path).expanduser()
    return write_atomically(path, lambda stream: torch.save(state, stream), suffix=path.suffix)


def load_checkpoint(path: Union[str, os.PathLike]) -> dict:
    """A checkpoint :func:`save_checkpoint` wrote, as a dict; anything else is one :class:`NSTError` line."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise NSTError(f"checkpoint {str(path)!r} does not exist: train without resuming, or check the path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors alike: the file is not a checkpoint we can read
        reason = str(exc).strip().splitlines()[0][:80] if str(exc).strip() else type(exc).__name__
        raise NSTError(f"checkpoint {str(path)!r} cannot be read ({reason}): delete it to start afresh") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise NSTError(f"{str(path)!r} is not an nstutil training checkpoint: give the .ckpt file a training run "
                       f"wrote, or delete it to start afresh")
    return state


def _meta_differences(saved: dict, wanted: dict) -> List[str]:
    return sorted(key for key in set(saved) | set(wanted) if saved.get(key) != wanted.get(key))


def _share(batch: Batch, rank: int, size: int) -> Batch:
    """This process's part of a batch (or of each tensor of a tuple of batches)."""
    if size == 1:
        return batch
    tensors = [batch] if isinstance(batch, torch.Tensor) else list(batch)
    n = tensors[0].shape[0]
    if n % size:
        raise NSTError(f"a batch of {n} cannot be shared by {size} processes: use a batch size divisible by {size}")
    parts = [t[rank * n // size:(rank + 1) * n // size] for t in tensors]
    return parts[0] if isinstance(batch, torch.Tensor) else type(batch)(parts)


def _to(batch: Batch, device: torch.device) -> Batch:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    return type(batch)(t.to(device, non_blocking=True) for t in batch)


class _StopRequests:
    """Turns the first SIGINT, SIGTERM or SIGHUP into a request to stop after the current step (a step cut in half
    could leave Adam's update half applied); a second SIGINT raises KeyboardInterrupt at once. Only the main thread
    can take signals; elsewhere this does nothing. (:class:`nstutil.interrupts.StopSignals` is the optimisation's
    rule: there the first signal interrupts at once, and the best image so far is kept.)"""

    def __init__(self) -> None:
        self.requested: Optional[str] = None
        self._previous: Dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> "_StopRequests":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _total(value: object) -> torch.Tensor:
    total = getattr(value, "total", value)
    if not isinstance(total, torch.Tensor) or total.dim() != 0:
        raise NSTError("the loss function must return a scalar tensor, or an object whose .total is one")
    return total


def train(model: nn.Module, loss: Callable[[nn.Module, Batch], object], batches: Callable[[int], Batch], *,
          steps: int, lr: float = 1e-3, checkpoint: Union[None, str, os.PathLike] = None,
          checkpoint_every: Optional[int] = None, resume: bool = False, meta: Optional[dict] = None,
          callback: Optional[Callable[[Step], Optional[bool]]] = None, progress: bool = True,
          desc: str = "training") -> TrainingResult:
    """Train ``model`` (in place) with Adam for ``steps`` steps in total and return a :class:`TrainingResult`.

    Step k (0-based) calls ``loss(model, batches(k))``, which returns a scalar tensor or an object whose ``total``
    is one (such as :class:`nstutil.PerceptualLoss`'s result), then takes one Adam step with learning rate ``lr``.
    The model decides the device; batches are moved there. With ``checkpoint`` (a path) the state is written
    every ``checkpoint_every`` steps, at the end and when stopped (Ctrl-C, SIGTERM, a callback returning True);
    ``resume=True`` continues from that file if it exists (an :class:`NSTError` if its ``meta`` differs from
    ``meta``; ``steps`` counts the steps done before too). ``callback(Step)`` runs after every step. See the module
    docstring for several processes. Introduced in lesson 10.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise NSTError(f"steps is {steps!r}: give a whole number of training steps (0 or more)")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise NSTError(f"lr is {lr!r}: give a positive learning rate such as 1e-3")
    if checkpoint_every is not None and (not isinstance(checkpoint_every, int) or checkpoint_every < 1):
        raise NSTError(f"checkpoint_every is {checkpoint_every!r}: give a whole number of steps (1 or more)")
    meta = dict(meta or {})
    checkpoint = Path(checkpoint).expanduser() if checkpoint is not None else None
    device = model_device(model)
    _start_distributed(device)
    rank, size = world()
    main = rank == 0
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=lr)
    done, losses, times = 0, [], []
    if resume and checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint)
        differences = _meta_differences(state["meta"], meta)
        if differences:
            raise NSTError(f"checkpoint {str(checkpoint)!r} is from another run (its {', '.join(differences)} "
                           f"differ): resume with the same settings, or delete it to start afresh")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        done, losses, times = state["step"], list(state["losses"]), list(state["times"])
    net = model
    if size > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def write() -> Optional[Path]:
        if checkpoint is None or not main:
            return checkpoint
        return save_checkpoint(checkpoint, model, optimizer, done, losses, times, meta)

    from tqdm.auto import tqdm

    bar = tqdm(total=steps, initial=min(done, steps), desc=desc, unit="step", disable=not (progress and main),
               leave=False)
    reason = "completed"
    start = time.perf_counter() - (times[-1] if times else 0.0)
    was_training = model.training
    model.train()
    try:
        with _StopRequests() as stops:
            while done < steps:
                batch = _to(_share(batches(done), rank, size), device)
                optimizer.zero_grad(set_to_none=True)
                value = loss(net, batch)
                total = _total(value)
                # One reduction carries the loss (for the curve) and whether any process was asked to stop.
                shared = torch.stack([total.detach().float(), torch.tensor(float(stops.requested is not None),
                                                                           device=total.device)])
                if size > 1:
                    torch.distributed.all_reduce(shared)
                    shared[0] /= size
                number, stop_asked = shared.tolist()
                if not math.isfinite(number):
                    reason = "nonfinite"
                    break
                total.backward()
                optimizer.step()
                done += 1
                losses.append(number)
                times.append(time.perf_counter() - start)
                bar.update(1)
                if done % 10 == 0 or done == steps:
                    bar.set_postfix_str(f"loss {number:.4g}", refresh=False)
                if checkpoint_every and done % checkpoint_every == 0 and done < steps:
                    write()
                if callback is not None and callback(Step(done, number, times[-1], value, model)):
                    reason = "callback"
                    break
                # Under several processes only the shared flag counts, so that all of them stop at the same step.
                if stop_asked or (size == 1 and stops.requested is not None):
                    reason = "interrupted"
                    break
    finally:
        bar.close()
        model.train(was_training)
    written = write()
    return TrainingResult(model, done, losses, times, reason, written, meta, stops.requested)
