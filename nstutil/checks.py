"""Self-checks for the exercises: ``checks.gram_matrix(my_gram_matrix)`` and one for each other exercise.

Each check is named after the nstutil function it checks, runs the student's function on seeded inputs against
nstutil's own (values, shapes and gradients), prints **one line** and returns ``True`` (passed) or ``False``::

    ✔ gram_matrix: passed (same values and gradients as nstutil.gram_matrix on 2 seeded feature maps)
    ✘ gram_matrix: divided by H·W only: also divide by C (the tutorial's Gram matrix is F·Fᵀ / (C·H·W))
    ○ gram_matrix: not done yet (replace raise NotImplementedError() with your code)

What is wrong is named when it is a known mistake (a normalisation off by a named factor, a sum for a mean,
features compared instead of Gram matrices, a forgotten ``zero_grad`` ...); otherwise the line says what differs.
A check never raises: an unfinished exercise, a function that raises, returns the wrong type or is not a function
at all each give one line, and the notebook goes on. Used by the exercise versions of the lessons
(``notebooks/exercises/``); the losses follow the tutorial's convention (see :mod:`nstutil.losses`).
"""

from __future__ import annotations

import functools
from typing import Callable, List, Sequence

import torch

from . import feature_maps, images, losses
from ._checking import Wrong, call, close, compare, gradients, report, scalar, seeded, tensor_result
from .vgg import IMAGENET_MEAN, IMAGENET_STD, load_vgg19

__all__ = ["load_image", "to_pil", "normalize", "gram_matrix", "content_loss", "style_loss", "total_loss",
           "deeplearning_ai_total_cost", "total_variation_loss", "closure", "average_feature_map", "instance_norm",
           "residual_block"]


def _check(name: str):
    """Turn ``body(fn) -> what passed`` into the check: prints one line, returns True or False."""
    def decorate(body: Callable[[Callable], str]) -> Callable[[Callable], bool]:
        @functools.wraps(body)
        def check(fn: Callable) -> bool:
            return report(name, body, fn)
        check.__annotations__ = {"fn": "Callable", "return": "bool"}  # wraps copied the body's
        return check
    return decorate


# ------------------------------------------------------------------------------------------ lesson 1: images

@_check("load_image")
def load_image(fn: Callable) -> str:
    """Check ``fn(path)``: a picture file as a float32 tensor of shape 1×3×H×W with values in [0, 1] (no resizing),
    as :func:`nstutil.load_image` gives; tried on an RGB and a greyscale PNG written here."""
    import tempfile
    from pathlib import Path

    from PIL import Image

    g = torch.Generator().manual_seed(1)
    with tempfile.TemporaryDirectory() as folder:
        rgb, grey = Path(folder) / "rgb.png", Path(folder) / "grey.png"
        Image.fromarray(torch.randint(0, 256, (8, 13, 3), generator=g, dtype=torch.uint8).numpy()).save(rgb)
        Image.fromarray(torch.randint(0, 256, (6, 5), generator=g, dtype=torch.uint8).numpy(), "L").save(grey)
        for path, label in ((rgb, "an RGB PNG"), (grey, "a greyscale PNG")):
            expected = images.load_image(path)
            got = call(fn, [str(path)], hint="it must take the path of a picture file")
            if isinstance(got, Image.Image):
                raise Wrong("returns a Pillow image: make it a tensor (np.asarray, then torch.from_numpy)")
            _, _, h, w = expected.shape
            one_channel = f"one channel only for {label}: convert the picture to RGB first (img.convert('RGB'))"
            got = tensor_result(got, expected, {
                (h, w, 3): "that is Pillow's H×W×3 layout: permute(2, 0, 1), then unsqueeze(0)",
                (3, h, w): "add the batch dimension with unsqueeze(0)",
                (1, h, w, 3): "that is channels-last: permute to 1×3×H×W",
                (1, 3, w, h): "width and height are swapped: use permute(2, 0, 1), not a transpose",
                (h, w): one_channel, (1, 1, h, w): one_channel, (1, h, w): one_channel,
            }, dtype_hint=": np.asarray(picture, dtype=np.float32) / 255")
            if got.max() > 1.5:
                raise Wrong(f"values go up to {got.max().item():.0f}: divide by 255 to get [0, 1]")
            compare(got, expected, f"on {label}", inputs=expected, mistakes=[
                (lambda e: e.flip(1), "the channels are in BGR order: keep Pillow's RGB order")])
    return "same tensors as nstutil.load_image on an RGB and a greyscale PNG"


@_check("to_pil")
def to_pil(fn: Callable) -> str:
    """Check ``fn(image)``: a 1×3×H×W tensor in [0, 1] as an 8-bit RGB Pillow image, as :func:`nstutil.to_pil`
    makes it (rounding or truncating to 8 bits both pass); values outside [0, 1] must be clamped."""
    import numpy as np
    from PIL import Image

    inside = seeded((1, 3, 5, 8), seed=2)
    for image, label in ((inside, "inside"), (inside * 1.4 - 0.2, "outside")):
        got = call(fn, [image], hint="it must take a 1×3×H×W tensor")
        if not isinstance(got, Image.Image):
            raise Wrong(f"returns a {type(got).__name__}, not a Pillow image: finish with Image.fromarray(an "
                        f"H×W×3 uint8 array)")
        if got.size != (8, 5):
            raise Wrong(f"the picture is {got.size[0]}×{got.size[1]} px, not 8×5: Image.fromarray needs an H×W×3 "
                        f"array (permute(1, 2, 0) of the 3×H×W image)")
        if got.mode != "RGB":
            raise Wrong(f"the picture's mode is {got.mode!r}, not 'RGB': give Image.fromarray an H×W×3 uint8 array")
        pixels = torch.from_numpy(np.asarray(got).astype(np.int64))
        expected = torch.from_numpy(np.asarray(images.to_pil(image)).astype(np.int64))
        if (pixels - expected).abs().max() <= 1:
            continue
        if label == "outside":
            raise Wrong("values outside [0, 1] wrap around: clamp(0, 1) before converting to 8 bits")
        if pixels.max() <= 1:
            raise Wrong("every pixel is 0 or 1: multiply by 255 before converting to 8 bits")
        if (pixels.flatten().sort().values - expected.flatten().sort().values).abs().max() <= 1:
            raise Wrong("the pixels are scrambled: go from 3×H×W to H×W×3 with permute(1, 2, 0), not reshape/view")
        raise Wrong(f"pixels differ from nstutil.to_pil's by up to {(pixels - expected).abs().max().item()} levels "
                    f"of 255: multiply by 255 and convert to uint8")
    return "same pictures as nstutil.to_pil, values outside [0, 1] clamped"


@_check("normalize")
def normalize(fn: Callable) -> str:
    """Check ``fn(image)``: ImageNet normalisation ``(image − mean) / std`` per channel, as the VGG19 model's
    :meth:`~nstutil.VGGFeatures.normalize` does, with :data:`~nstutil.vgg.IMAGENET_MEAN` and ``IMAGENET_STD``."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    reference = lambda x: (x - mean) / std  # noqa: E731
    image = seeded((1, 3, 6, 5), seed=3)
    expected = reference(image)
    got = call(fn, [image], hint="it must take a 1×3×H×W image", errors={
        "must match the size": "shape mean and std as 1×3×1×1 (.view(1, 3, 1, 1)) so they act on each channel"})
    compare(tensor_result(got, expected, {}), expected, inputs=image, mistakes=[
        (lambda x: x - mean, "subtracted the mean only: also divide by the standard deviation (IMAGENET_STD)"),
        (lambda x: x / std, "divided by the standard deviation only: subtract IMAGENET_MEAN first"),
        (lambda x: x - mean / std, "x − mean / std divides only the mean: write (x − mean) / std"),
        (lambda x: x / std - mean, "divided before subtracting: (x − mean) / std, in that order"),
        (lambda x: x * std + mean, "that is the inverse, x·std + mean: normalise with (x − mean) / std"),
        (lambda x: (x - mean.flip(1)) / std.flip(1), "mean and std in BGR order: IMAGENET_MEAN is (R, G, B)"),
    ])
    gradients(fn, [image], reference)
    return "same values and gradients as the model's ImageNet normalisation"


# ------------------------------------------------------------------------------- lesson 3: Gram matrices

@_check("gram_matrix")
def gram_matrix(fn: Callable) -> str:
    """Check ``fn(features)``: the Gram matrix of a 1×C×H×W feature map, 1×C×C, normalised as the tutorial does,
    ``F·Fᵀ / (C·H·W)`` (:func:`nstutil.gram_matrix`)."""
    maps = [seeded((1, 6, 5, 7), seed=4), seeded((1, 4, 9, 3), seed=5)]
    for features in maps:
        b, c, h, w = features.shape
        expected = losses.gram_matrix(features)
        got = call(fn, [features], hint="it must take a 1×C×H×W feature map")
        got = tensor_result(got, expected, {
            (c, c): "keep the batch dimension: reshape to b×C×(H·W) and multiply by .transpose(1, 2)",
            (b, h * w, h * w): "that multiplies positions with positions: F·Fᵀ (C×C), not Fᵀ·F (H·W × H·W)",
            (h * w, h * w): "that multiplies positions with positions: F·Fᵀ (C×C), not Fᵀ·F (H·W × H·W)"})
        if not close(got, got.transpose(-1, -2)):
            raise Wrong("is not symmetric (G[i, j] ≠ G[j, i]): multiply the flattened map by its own transpose")
        flat = lambda f: f.reshape(b, c, h * w)  # noqa: E731
        raw = lambda f: flat(f) @ flat(f).transpose(1, 2)  # noqa: E731
        compare(got, expected, f"on a {c}-channel {h}×{w} map", inputs=features, mistakes=[
            (raw, "not normalised: divide F·Fᵀ by C·H·W (the tutorial's convention)"),
            (lambda f: raw(f) / (h * w), "divided by H·W only: also divide by C"),
            (lambda f: raw(f) / c, "divided by C only: also divide by H·W"),
            (lambda f: raw(f) / (c * c * h * w), "divided by C twice: divide F·Fᵀ by C·H·W"),
            (lambda f: raw(f) / (c * h * w) ** 2, "divided by (C·H·W)²: divide by C·H·W once"),
            (lambda f: f.reshape(b, h * w, c).transpose(1, 2) @ f.reshape(b, h * w, c) / (c * h * w),
             "reshaped to b×(H·W)×C, which mixes channels and positions: reshape to b×C×(H·W)"),
        ])
    gradients(fn, [maps[0]], losses.gram_matrix)
    return "same values and gradients as nstutil.gram_matrix on 2 seeded feature maps"


# -------------------------------------------------------------------------------------- lesson 4: losses

@_check("content_loss")
def content_loss(fn: Callable) -> str:
    """Check ``fn(generated, target)``: the mean of the squared differences of two feature maps, one number (a
    0-dim tensor), as :func:`nstutil.content_loss` with the tutorial's convention."""
    generated, target = seeded((1, 5, 6, 4), seed=6), seeded((1, 5, 6, 4), seed=7)
    n = generated.numel()
    expected = losses.content_loss(generated, target)
    got = scalar(call(fn, [generated, target], hint="it must take (generated, target)"), expected,
                 reduce_hint="reduce it to one number with .mean()")
    compare(got, expected, inputs=(generated - target,), mistakes=[
        (lambda d: d.pow(2).sum(), f"summed the squared differences: take the mean (divide by C·H·W = {n})"),
        (lambda d: 0.5 * d.pow(2).sum(), "½·Σ(F − P)² is Gatys et al.'s convention: the tutorial takes the mean "
                                         "of (F − P)²"),
        (lambda d: d.pow(2).sum() / (4 * n), "Σ(F − P)² / (4·C·H·W) is deeplearning.ai's convention: the tutorial "
                                             "takes the mean, without the 4"),
        (lambda d: d.abs().mean(), "mean of |F − P|: square the differences instead"),
        (lambda d: d.mean(), "mean of F − P: square the differences first, otherwise they cancel out"),
        (lambda d: d.pow(2).mean().sqrt(), "took a square root: the loss is the mean squared difference itself"),
    ])
    gradients(fn, [generated, target], losses.content_loss)
    return "same value and gradient as nstutil.content_loss"


@_check("style_loss")
def style_loss(fn: Callable) -> str:
    """Check ``fn(generated, style)``: the mean squared difference of the two feature maps' Gram matrices
    (tutorial normalisation), one number, as :func:`nstutil.style_loss`; the style map may have another size."""
    generated = seeded((1, 4, 6, 5), seed=8)
    same_size, other_size = seeded((1, 4, 6, 5), seed=9), seeded((1, 4, 8, 9), seed=10)
    c, h, w = generated.shape[1:]
    raw = lambda f: f.flatten(2) @ f.flatten(2).transpose(1, 2)  # noqa: E731
    gram = losses.gram_matrix
    for style, label in ((same_size, "the same size"), (other_size, "another size")):
        expected = losses.style_loss(generated, style)
        got = call(fn, [generated, style], hint="it must take (generated, style)", errors={
            "must match the size": "compare the Gram matrices (C×C), which do not depend on H and W"})
        got = scalar(got, expected, reduce_hint="reduce it to one number with .mean()")
        compare(got, expected, f"with a style map of {label}", inputs=(generated, style), mistakes=[
            (lambda g, s: (g - s).pow(2).mean(), "compares the feature maps, not their Gram matrices: compute the "
                                                 "Gram matrix of both, then the mean of the squared difference"),
            (lambda g, s: (gram(g) - gram(s)).pow(2).sum(), f"summed over the C×C entries: take the mean (divide "
                                                            f"by C² = {c * c})"),
            (lambda g, s: (raw(g) - raw(s)).pow(2).mean(), "the Gram matrices are not normalised: use the "
                                                           "tutorial's gram_matrix, F·Fᵀ / (C·H·W), for both"),
            (lambda g, s: (raw(g) - raw(s)).pow(2).sum() / (4 * c ** 2 * (h * w) ** 2),
             "Σ(G − A)² / (4·C²·M²) with raw Gram matrices is Gatys et al.'s convention: here take the mean of "
             "(G − A)² of the tutorial's Gram matrices"),
            (lambda g, s: (gram(g) - gram(s)).abs().mean(), "mean of |G − A|: square the differences instead"),
            (lambda g, s: (gram(g) - gram(s)).pow(2).mean().sqrt(), "took a square root: the loss is the mean "
                                                                    "squared difference itself"),
            (lambda g, s: (gram(g) - raw(s) / (c * h * w)).pow(2).mean(), "divided the style map's F·Fᵀ by the "
                                                                          "generated map's C·H·W: normalise each "
                                                                          "Gram matrix by its own size"),
        ])
    gradients(fn, [generated, other_size], losses.style_loss)
    return "same values and gradient as nstutil.style_loss, style maps of the same and of another size"


def _weighted_total(content_losses: Sequence, style_losses: Sequence, content_weight: float,
                    style_weight: float):
    return content_weight * sum(content_losses) + style_weight * sum(style_losses)


@_check("total_loss")
def total_loss(fn: Callable) -> str:
    """Check ``fn(content_losses, style_losses, content_weight, style_weight)``: α·Σ content + β·Σ style, where the
    first two are lists of per-layer losses (0-dim tensors) and α, β the weights, as :func:`nstutil.style_transfer`
    adds them up (each layer weighted 1, as in the tutorial); one number."""
    for content, style, alpha, beta in (([1.3], [0.2, 0.7, 0.05, 1.1, 0.4], 1.0, 1e3),
                                        ([0.8, 2.5], [0.3, 0.9], 5.0, 100.0)):
        c_terms = [torch.tensor(v, requires_grad=True) for v in content]
        s_terms = [torch.tensor(v, requires_grad=True) for v in style]
        expected = torch.tensor(_weighted_total(content, style, alpha, beta))
        got = call(fn, [c_terms, s_terms, alpha, beta], protect=False,
                   hint="it must take (content_losses, style_losses, content_weight, style_weight)")
        got = scalar(got, expected, reduce_hint="add everything up into one number")
        mean = lambda v: sum(v) / len(v)  # noqa: E731
        compare(got, expected, inputs=(content, style), mistakes=[
            (lambda c, s: beta * sum(c) + alpha * sum(s), "the weights are swapped: content_weight (α) multiplies "
                                                          "the content losses, style_weight (β) the style losses"),
            (lambda c, s: alpha * mean(c) + beta * mean(s), "averaged the layers' losses: add them up"),
            (lambda c, s: sum(c) + sum(s), "forgot the weights: α·Σ content + β·Σ style"),
            (lambda c, s: alpha * sum(c), "left out the style losses: add β·Σ style"),
            (lambda c, s: beta * sum(s), "left out the content losses: add α·Σ content"),
            (lambda c, s: alpha * c[0] + beta * s[0], "uses only the first loss of each list: add up all of them"),
            (lambda c, s: alpha * c[-1] + beta * s[-1], "uses only the last loss of each list: add up all of them "
                                                        "(+=, not =, in a loop)"),
        ])
        if not got.requires_grad:
            raise Wrong("no gradient can flow through it: build the total from the loss tensors with + and *")
        got.backward()
        if any(t.grad is None for t in c_terms + s_terms):
            raise Wrong("not every layer's loss takes part in the total's gradient: add up the tensors themselves")
    return "α·Σ content + β·Σ style, with every layer's loss in its gradient"


# deeplearning.ai's total-cost checks: (J_content, J_style, alpha, beta) and the J its notebook expects. They use
# NumPy's seeded generator, so they are reproducible without TensorFlow (its other expected values are not: they
# come from TensorFlow's seeded random tensors).
_DLAI_TOTAL_COSTS = (
    ("TF2 test: J(0.2, 0.8)", lambda: (0.2, 0.8, 10.0, 40.0), "34"),
    ("TF2 test: J(0.3, 0.5, alpha=3, beta=8)", lambda: (0.3, 0.5, 3.0, 8.0), "4.9"),
    ("TF2 print, np.random.seed(1), two uniform draws", "uniform", "32.9832"),
    ("TF1 print, np.random.seed(3), two randn draws", "randn", "35.34667875478276"),
)


def _dlai_inputs(how) -> tuple:
    import numpy as np

    if callable(how):
        return how()
    np.random.seed(1 if how == "uniform" else 3)
    draw = (lambda: np.random.uniform(0, 1)) if how == "uniform" else np.random.randn
    first = draw()
    return first, draw(), 10.0, 40.0


@_check("deeplearning_ai_total_cost")
def deeplearning_ai_total_cost(fn: Callable) -> str:
    """Check ``fn(content_losses, style_losses, content_weight, style_weight)`` (Exercise 3's ``my_total_loss``)
    against the total costs deeplearning.ai's Neural Style Transfer assignment expects (alpha = 10, beta = 40 by
    default): J = 34, 4.9 and the printed 32.9832 (TensorFlow 2 version), 35.34667875478276 (TensorFlow 1)."""
    got_values = []
    for label, how, printed in _DLAI_TOTAL_COSTS:
        j_content, j_style, alpha, beta = _dlai_inputs(how)
        c, s = torch.tensor(j_content, dtype=torch.float64), torch.tensor(j_style, dtype=torch.float64)
        got = call(fn, [[c], [s], alpha, beta], protect=False,
                   hint="it must take (content_losses, style_losses, content_weight, style_weight)")
        got = float(scalar(got, c, reduce_hint="add everything up into one number"))
        digits = len(printed.split(".")[1]) if "." in printed else 0
        if f"{got:.{digits}f}" != f"{float(printed):.{digits}f}":
            raise Wrong(f"{label}: J = {got:.{digits}f}, the assignment expects {printed}")
        got_values.append(f"{got:.{digits}f}")
    return "J = " + ", ".join(got_values) + ": the values the assignment expects"


@_check("total_variation_loss")
def total_variation_loss(fn: Callable) -> str:
    """Check ``fn(image)``: mean of the squared horizontal neighbour differences plus mean of the squared vertical
    ones, as :func:`nstutil.total_variation_loss` (``p=2``)."""
    image = seeded((1, 3, 7, 9), seed=11)
    expected = losses.total_variation_loss(image)
    got = scalar(call(fn, [image], hint="it must take a 1×3×H×W image"), expected,
                 reduce_hint="the mean of each direction's squared differences, added, is one number")
    dx = lambda x: x[..., :, 1:] - x[..., :, :-1]  # noqa: E731
    dy = lambda x: x[..., 1:, :] - x[..., :-1, :]  # noqa: E731
    compare(got, expected, inputs=image, mistakes=[
        (lambda x: dx(x).abs().mean() + dy(x).abs().mean(), "absolute differences: square them (p = 2)"),
        (lambda x: 0.5 * (dx(x).abs().mean() + dy(x).abs().mean()), "½(mean|dx| + mean|dy|) is d2l's version: "
                                                                    "here square the differences and add the means"),
        (lambda x: dx(x).pow(2).sum() + dy(x).pow(2).sum(), "summed: take the mean of each direction's squares"),
        (lambda x: torch.cat([dx(x).pow(2).flatten(), dy(x).pow(2).flatten()]).mean(),
         "averaged both directions together: take each direction's mean, then add the two"),
        (lambda x: dx(x).pow(2).mean(), "only horizontal differences (along W): add the vertical ones (along H)"),
        (lambda x: dy(x).pow(2).mean(), "only vertical differences (along H): add the horizontal ones (along W)"),
        (lambda x: (x - x.roll(1, -1)).pow(2).mean() + (x - x.roll(1, -2)).pow(2).mean(),
         "torch.roll wraps the last column round to the first: take differences of neighbours inside the image"),
    ])
    gradients(fn, [image], losses.total_variation_loss)
    return "same value and gradient as nstutil.total_variation_loss"


# -------------------------------------------------------------------------------- lesson 5: optimisation

def _lbfgs_path(x: torch.Tensor, make: Callable) -> torch.Tensor:
    """Where 4 L-BFGS iterations take ``x``, with the closure ``make(x, optimizer)`` returns."""
    optimizer = torch.optim.LBFGS([x], max_iter=4, history_size=5)
    optimizer.step(make(x, optimizer))
    return x.detach()


@_check("closure")
def closure(fn: Callable) -> str:
    """Check ``fn(x, optimizer, loss_fn)``, which must return the closure ``optimizer.step`` calls: each call
    zeroes the gradients, computes ``loss = loss_fn(x)`` once, runs ``loss.backward()``, returns ``loss`` and leaves
    ``x`` alone, as :func:`nstutil.style_transfer`'s closure does; then L-BFGS must take the same steps with it."""
    g = torch.Generator().manual_seed(12)
    target, style, start = (torch.rand(1, 3, 8, 8, generator=g) for _ in range(3))
    calls: List[int] = [0]

    def loss_fn(v: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        return losses.content_loss(v, target) + 10.0 * losses.style_loss(v, style)

    v = start.clone().requires_grad_(True)
    true_loss = loss_fn(v)
    true_grad, = torch.autograd.grad(true_loss, v)
    x = start.clone().requires_grad_(True)
    optimizer = torch.optim.SGD([x], lr=0.1)  # any optimizer: its zero_grad is what counts
    calls[0] = 0
    student = call(fn, [x, optimizer, loss_fn], protect=False,
                   hint="it must take (x, optimizer, loss_fn) and return the closure")
    if not callable(student):
        raise Wrong(f"returns {type(student).__name__}, not a function: end with 'return closure' (no brackets)")
    made = calls[0]
    stale = torch.full_like(x, 7.0)
    x.grad = stale.clone()
    loss = call(student, [], protect=False, hint="the closure takes no arguments")
    evaluations = calls[0] - made
    if not torch.equal(x.detach(), start):
        raise Wrong("changes x inside the closure (clamp_, an in-place update): only the optimizer may change x; "
                    "L-BFGS's line search relies on it")
    if evaluations == 0:
        raise Wrong("computes the loss when the closure is made, not each time it is called: call loss_fn(x) "
                    "inside the closure" if made else "never calls loss_fn: compute loss = loss_fn(x) in the closure")
    if evaluations > 1:
        raise Wrong(f"computes the loss {evaluations} times per call: once is enough (each is a forward pass)")
    if loss is None:
        raise Wrong("returns None: return the loss, the optimizer needs its value")
    if not isinstance(loss, (torch.Tensor, float)) or (isinstance(loss, torch.Tensor) and loss.numel() != 1):
        raise Wrong(f"returns {type(loss).__name__}: return the loss, one number")
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else loss
    if not close(torch.tensor(value), true_loss):
        raise Wrong(f"returns {value:.6g}, not the loss at x ({true_loss.item():.6g}): return loss_fn(x)")
    grad = x.grad
    if grad is None or torch.equal(grad, stale):
        raise Wrong("x has no new gradient: call loss.backward() in the closure")
    if close(grad, true_grad + stale):
        raise Wrong("forgets optimizer.zero_grad(): the gradients of successive calls add up")
    if close(grad, 2 * true_grad):
        raise Wrong("runs backward twice: call loss.backward() once per call")
    if not close(grad, true_grad):
        raise Wrong("leaves a gradient on x that is not the loss's: compute loss = loss_fn(x), then loss.backward()")
    ours = call(_lbfgs_path, [start.clone().requires_grad_(True), lambda y, opt: fn(y, opt, loss_fn)],
                protect=False, hint="")
    reference = _lbfgs_path(start.clone().requires_grad_(True), lambda y, opt: _reference(y, opt, loss_fn))
    if not close(ours, reference):
        raise Wrong("L-BFGS steps differently with this closure than with nstutil's: compute the loss inside it, "
                    "at every call")
    return "zeroes the gradient, computes the loss once, backward, returns it; L-BFGS takes nstutil's steps"


def _reference(x: torch.Tensor, optimizer: torch.optim.Optimizer, loss_fn: Callable) -> Callable[[], torch.Tensor]:
    """The closure of :func:`nstutil.style_transfer`, reduced to its four steps."""
    def reference() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn(x)
        loss.backward()
        return loss
    return reference


# ------------------------------------------------------------------------------- lesson 6: feature maps

@_check("average_feature_map")
def average_feature_map(fn: Callable) -> str:
    """Check ``fn(image, layer, model)``: the mean over channels of one layer's activation, an H×W map, as
    :func:`nstutil.feature_maps.average_feature_map`; layer names in both schemes (on random weights)."""
    model = load_vgg19("random")
    image = seeded((1, 3, 40, 36), seed=13)
    for layer, other in (("relu2_1", "conv_5"), ("conv_5", "relu2_1")):
        expected = feature_maps.average_feature_map(image, layer, model)
        h, w = expected.shape
        with torch.no_grad():
            activation = model(image, [layer])[layer]
            twice = model(model.normalize(image), [layer])[layer][0].mean(dim=0)
            elsewhere = model(image, [other])[other][0].mean(dim=0)
        c = activation.shape[1]
        got = call(fn, [image, layer, model], hint="it must take (image, layer, model)")
        got = tensor_result(got, expected, {
            (1, h, w): "keeps the batch dimension: return an H×W map (take [0])",
            (c, h, w): "that is every channel: average them (mean over the channel dimension)",
            (1, c, h, w): "that is the whole activation: average over the channels (dim 1 of 1×C×H×W)",
            elsewhere.shape: f"that is the size of {other}'s map: use the layer argument",
        }, generic_shape_hint="the mean over channels of the 1×C×H×W activation is .mean(dim=1)[0]").detach()
        compare(got, expected, f"at {layer}", inputs=activation, mistakes=[
            (lambda a: a[0].sum(dim=0), f"summed the channels: take the mean (divide by C = {c})"),
            (lambda a: a[0].amax(dim=0), "took the largest channel: take the mean over channels"),
            (lambda a: twice, "normalises the image itself: the model already normalises its input (lesson 1)"),
        ])
    return "same maps as nstutil's average_feature_map at relu2_1 and conv_5 (= conv3_1)"


# ------------------------------------------------------------------------- lesson 10: a network in one pass

def _instance_norm(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.instance_norm(x, eps=1e-5)


@_check("instance_norm")
def instance_norm(fn: Callable) -> str:
    """Check ``fn(x)``: instance normalisation of a B×C×H×W batch, each image's each channel brought to mean 0 and
    variance 1 over its H×W positions, ``(x − μ) / √(σ² + 1e-5)`` with the biased variance, as
    ``torch.nn.functional.instance_norm`` (Ulyanov et al. 2016)."""
    x = seeded((3, 4, 5, 6), seed=21) * 3 + seeded((3, 4, 1, 1), seed=22) * 5  # channels with different means
    expected = _instance_norm(x)
    got = tensor_result(call(fn, [x], hint="it must take one B×C×H×W tensor"), expected, {
        (3, 4): "that is one number per image and channel: normalise the map, do not reduce it"})

    def by(dims, unbiased=False, eps=1e-5):
        return lambda t: (t - t.mean(dim=dims, keepdim=True)) / (t.var(dim=dims, keepdim=True, unbiased=unbiased)
                                                                 + eps).sqrt()

    compare(got, expected, "on a 3×4×5×6 batch", inputs=x, mistakes=[
        (by((0, 2, 3)), "that is batch normalisation (statistics over the batch too): take the mean and variance "
                        "of each image's channel alone, over H and W (dim=(2, 3))"),
        (by((1, 2, 3)), "that normalises over the channels too (layer normalisation): take each channel alone, "
                        "over H and W (dim=(2, 3))"),
        (by((2, 3), unbiased=True), "used the unbiased variance (÷ (H·W − 1)): use unbiased=False (÷ H·W)"),
        (lambda t: (t - t.mean(dim=(2, 3), keepdim=True)) / t.std(dim=(2, 3), keepdim=True, unbiased=False),
         "no ε: divide by √(σ² + 1e-5), so that a flat channel does not divide by zero"),
        (lambda t: t - t.mean(dim=(2, 3), keepdim=True), "only subtracted the mean: also divide by √(σ² + 1e-5)"),
    ])
    gradients(fn, [x], _instance_norm)
    return "same values and gradient as torch.nn.functional.instance_norm on a 3×4×5×6 batch"


@_check("residual_block")
def residual_block(fn: Callable) -> str:
    """Check ``fn(x, body)``: a residual block's output, the input plus what ``body`` (the block's layers) makes of
    it, ``x + body(x)``, with no ReLU after the sum (Johnson et al.'s supplementary material)."""
    torch.manual_seed(23)
    body = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(4, 4, 3, padding=1))
    x = seeded((2, 4, 6, 6), seed=24) - 0.5
    expected = x + body(x)
    got = tensor_result(call(fn, [x, body], hint="it must take (x, body)"), expected, {})
    compare(got, expected, inputs=x, mistakes=[
        (body, "returns body(x) alone: add the input, x + body(x) (the skip connection)"),
        (lambda t: torch.relu(t + body(t)), "a ReLU after the sum: Johnson et al.'s block returns x + body(x) as it "
                                            "is"),
        (lambda t: t, "returns x alone: add what body makes of it"),
        (lambda t: t + body(body(t)), "applied body twice: x + body(x)"),
    ])
    gradients(fn, [x, body], lambda t, b: t + b(t))
    return "x + body(x), with the gradient flowing through both paths"
