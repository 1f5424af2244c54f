"""What the lessons share: the set-up of their first code cell, and the figure of runs side by side.

Introduced in lesson 1 (every lesson's first code cell). :func:`setup` reads the class's settings
(``$NSTUTIL_SIZE``, ``$NSTUTIL_STEPS``: CI runs the lessons small and fast, a teacher may set them for a slow room),
loads the network once and says which weights it has, so that a student with random weights knows why nothing looks
stylised. :func:`plot_runs` draws the figure lessons 5 and 8 use to compare runs: the loss curves beside the images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

import torch

from .environment import env_int
from .errors import NSTError
from .images import DEFAULT_CONTENT, DEFAULT_STYLE, load_image, to_pil
from .threads import use_free_cores
from .vgg import VGGFeatures, load_vgg19

__all__ = ["Lesson", "setup", "plot_runs"]


@dataclass
class Lesson:
    """A lesson's settings and shared objects: ``size`` (longer side, px), ``steps`` (evaluations per run), the
    network ``model`` (None if the lesson needs none), ``weights`` (a line saying which weights it has) and the
    bundled ``content`` and ``style`` images at ``size``."""

    size: int
    steps: Optional[int]
    model: Optional[VGGFeatures]
    weights: str
    content: torch.Tensor
    style: torch.Tensor


def setup(size: int = 256, steps: Optional[int] = None, *, model: bool = True,
          random_means: str = "not stylised", show: bool = True) -> Lesson:
    """The lesson's settings — ``$NSTUTIL_SIZE`` / ``$NSTUTIL_STEPS`` when set, else ``size`` and ``steps`` (None:
    the lesson runs no optimisation) — the network (ImageNet weights if available, else random; lesson 2), and the
    bundled content and style images. ``random_means`` finishes the warning shown with random weights ("RANDOM —
    not stylised"). Prints one line with all of it (``show=False``: silent). Introduced in lesson 1."""
    size = env_int("NSTUTIL_SIZE", size)
    steps = env_int("NSTUTIL_STEPS", steps) if steps is not None else None
    use_free_cores()  # one PyTorch thread per free core: on a busy machine all cores make every cell crawl
    net = load_vgg19() if model else None
    if net is None:
        weights = "no network"
    else:
        weights = f"VGG19 weights: {net.weights_name}" + ("" if net.is_pretrained else f" (RANDOM — {random_means})")
    lesson = Lesson(size, steps, net, weights, load_image(DEFAULT_CONTENT, size, role="content image"),
                    load_image(DEFAULT_STYLE, size, role="style image"))
    if show:
        print(f"{size} px" + (f", {steps} evaluations per run" if steps else "") + f"; {weights}")
    return lesson


def plot_runs(runs: Mapping[str, "TransferResult"], title: str = "", *, x: str = "evaluation"):  # noqa: F821
    """One figure: each run's total loss (log scale) against ``x`` (``"evaluation"`` or ``"seconds"``; a
    coarse-to-fine run draws one curve per scale), then each run's image with its best loss. Returns the figure.
    Introduced in lesson 5."""
    import matplotlib.pyplot as plt

    if x not in ("evaluation", "seconds"):
        raise NSTError(f"plot_runs' x is {x!r}: use 'evaluation' or 'seconds'")
    fig, axes = plt.subplots(1, 1 + len(runs), figsize=(4.7 + 3.3 * len(runs), 3.4),
                             gridspec_kw={"width_ratios": [1.5] + [1] * len(runs)})
    curves = axes[0]
    for name, result in runs.items():
        scales = sorted({record.scale for record in result.history})
        for scale in scales:
            part = [record for record in result.history if record.scale == scale]
            xs = [record.evaluation if x == "evaluation" else record.elapsed for record in part]
            curves.plot(xs, [record.total for record in part],
                        label=name if len(scales) == 1 else f"{name}, at {scale} px")
    curves.set_yscale("log")
    curves.set_xlabel(x)
    curves.set_ylabel("total loss")
    curves.legend(fontsize=8)
    for ax, (name, result) in zip(axes[1:], runs.items()):
        ax.imshow(to_pil(result.image))
        ax.set_title(f"{name}: {len(result.history)} evaluations\nloss {result.best_loss:.3g}", fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
