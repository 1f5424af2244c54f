"""Photos to train a style network on: a folder read recursively, a held-out split, seeded random crops.

Introduced in lesson 10. Johnson et al. (2016) train on COCO (about 80,000 photos, resized to 256×256); a class has
a laptop, so the default set is the photos bundled with nstutil (:data:`BUNDLED_PHOTOS`), and a teacher points
:func:`find_photos` at any folder (COCO or the class's own pictures).

Batches are a pure function of the step number and the seed (:meth:`PhotoCrops.batch`): step ``k`` always gives the
same crops, whoever asks and whenever. That is what makes training deterministic, lets a run resumed from a
checkpoint see exactly the batches the uninterrupted run would have seen, and lets several processes
(:mod:`nstutil.training` under ``torchrun``) each take their part of the same batch.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from PIL import Image

from .errors import NSTError
from .images import IMAGES_DIR, load_image, resize_image

__all__ = ["PhotoSet", "PhotoCrops", "find_photos", "split_photos", "BUNDLED_PHOTOS", "BUNDLED_HELD_OUT",
           "PHOTO_SUFFIXES",
           "MIN_PHOTO_SIDE"]

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
# Smaller pictures (icons, thumbnails) teach a network little and cannot give a crop of a useful size.
MIN_PHOTO_SIDE = 64
# The bundled photos; the two generated paintings and the brick texture are not photos.
BUNDLED_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "grace_hopper.jpg", "hubble_deep_field.jpg",
                  "rocket.jpg")
# Held out of the bundled set (never trained on): the course's default content photo and one more, so lesson 10
# can style the cat it styled by optimisation and show what the network does on photos it never saw.
BUNDLED_HELD_OUT = ("chelsea.png", "coffee.png")
# How much larger than the crop a photo is resized before cropping (its shorter side), drawn per crop: larger
# factors show the network finer detail, 1 shows whole photos.
DEFAULT_ZOOM = (1.0, 2.0)


@dataclass
class PhotoSet:
    """The photos found in a folder: ``paths`` (sorted) and ``skipped``, a reason for each file left out."""

    folder: Path
    paths: List[Path]
    skipped: Dict[Path, str] = field(default_factory=dict)
    bundled: bool = False

    def split(self, held_out: Union[int, float] = 0.2, *, seed: int = 0) -> Tuple[List[Path], List[Path]]:
        """``(training, held_out)`` photos: for the bundled set always :data:`BUNDLED_HELD_OUT` held out, for a
        folder :func:`split_photos`."""
        if self.bundled:
            return ([p for p in self.paths if p.name not in BUNDLED_HELD_OUT],
                    [p for p in self.paths if p.name in BUNDLED_HELD_OUT])
        return split_photos(self.paths, held_out, seed=seed)

    def summary(self) -> str:
        """One line: how many photos were found and how many files were skipped, and why (counted)."""
        reasons: Dict[str, int] = {}
        for reason in self.skipped.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        skipped = "; ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
        return f"{len(self.paths)} photos in {self.folder}" + (f" (skipped {skipped})" if skipped else "")


def _check(path: Path, min_side: int) -> Optional[str]:
    """Why ``path`` cannot be a training photo, or None if it can (reads the header only, not the pixels)."""
    try:
        if path.stat().st_size == 0:
            return "empty"
        with Image.open(path) as img:
            width, height = img.size
            img.verify()  # cheap structural check; a truncated body is caught when the photo is loaded
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return "unreadable"
    if min(width, height) < min_side:
        return f"smaller than {min_side} px"
    return None


def find_photos(folder: Union[None, str, os.PathLike] = None, *, min_side: int = MIN_PHOTO_SIDE) -> PhotoSet:
    """The JPEG and PNG photos under ``folder`` (recursively; hidden folders skipped), sorted by path.

    ``None`` gives the bundled photos (:data:`BUNDLED_PHOTOS`). Files that are empty, unreadable or smaller than
    ``min_side`` on a side are skipped and counted in :attr:`PhotoSet.skipped`. A missing folder, or one without a
    usable photo, is an :class:`NSTError`.
    """
    if folder is None:
        return PhotoSet(IMAGES_DIR, [IMAGES_DIR / name for name in BUNDLED_PHOTOS], bundled=True)
    root = Path(folder).expanduser()
    if not root.exists():
        raise NSTError(f"photo folder {str(root)!r} does not exist: check the path")
    if not root.is_dir():
        raise NSTError(f"photo folder {str(root)!r} is a file: give the folder that holds the training photos")
    paths, skipped = [], {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            path = Path(dirpath) / name
            if name.startswith(".") or path.suffix.lower() not in PHOTO_SUFFIXES:
                continue
            reason = _check(path, min_side)
            if reason is None:
                paths.append(path)
            else:
                skipped[path] = reason
    photos = PhotoSet(root, sorted(paths), skipped)
    if not photos.paths:
        why = f" ({photos.summary().split('(', 1)[1]}" if skipped else ""
        raise NSTError(f"photo folder {str(root)!r} has no usable JPEG or PNG photo{why}: add photos of at least "
                       f"{min_side} px a side")
    return photos


def split_photos(paths: Sequence[Path], held_out: Union[int, float] = 0.2, *,
                 seed: int = 0) -> Tuple[List[Path], List[Path]]:
    """``(training, held_out)``: a seeded random choice of photos kept out of training, to measure what the network
    does on photos it never saw. ``held_out`` is a count or a fraction (at least one photo is held out, and at least
    one is left for training, when there are two or more)."""
    paths = sorted(paths)
    if len(paths) < 2:
        return list(paths), []
    count = int(held_out) if isinstance(held_out, int) else round(float(held_out) * len(paths))
    count = min(max(count, 1 if held_out else 0), len(paths) - 1)
    order = list(range(len(paths)))
    random.Random(seed).shuffle(order)
    out = set(order[:count])
    return [p for k, p in enumerate(paths) if k not in out], [p for k, p in enumerate(paths) if k in out]


class PhotoCrops:
    """Seeded random square crops of ``size`` px from ``paths``, with random horizontal flips.

    Each crop picks a photo, resizes it so its shorter side is ``size`` times a factor drawn from ``zoom``, takes a
    random ``size``×``size`` window and flips it half of the time — all drawn from a generator seeded by
    ``(seed, step)``, so :meth:`batch` is a pure function of the step. Decoded photos are kept in memory when there
    are at most ``cache`` of them (the bundled set); a large folder is read from disk for every crop.
    """

    def __init__(self, paths: Sequence[Path], size: int, *, seed: int = 0, zoom: Tuple[float, float] = DEFAULT_ZOOM,
                 cache: int = 64) -> None:
        if not paths:
            raise NSTError("no training photos: give a folder with JPEG or PNG photos")
        if int(size) < 1:
            raise NSTError(f"crop size {size!r}: give a positive number of pixels")
        self.paths = list(paths)
        self.size = int(size)
        self.seed = int(seed)
        self.zoom = (float(zoom[0]), float(zoom[1]))
        self._cache: Optional[Dict[int, torch.Tensor]] = {} if len(self.paths) <= cache else None

    def _photo(self, index: int) -> torch.Tensor:
        """Photo ``index``, shrunk once so its shorter side is at most the largest zoom needs (resizing a 4000 px
        photo for every 256 px crop would cost more than the training step)."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        photo = load_image(self.paths[index], role="training photo")
        largest = math.ceil(self.size * max(self.zoom))
        height, width = photo.shape[-2:]
        if min(height, width) > largest:
            scale = largest / min(height, width)
            photo = resize_image(photo, (max(largest, round(height * scale)), max(largest, round(width * scale))),
                                 role="training photo")
        if self._cache is not None:
            self._cache[index] = photo
        return photo

    def crop(self, generator: torch.Generator) -> torch.Tensor:
        """One random crop (1×3×size×size) drawn with ``generator``."""
        index = int(torch.randint(len(self.paths), (1,), generator=generator))
        lo, hi = self.zoom
        factor = lo + (hi - lo) * float(torch.rand((), generator=generator))
        photo = self._photo(index)
        height, width = photo.shape[-2:]
        shorter = max(self.size, round(self.size * factor))
        scale = shorter / min(height, width)
        shape = (max(self.size, round(height * scale)), max(self.size, round(width * scale)))
        resized = resize_image(photo, shape, role="training photo") if shape != (height, width) else photo
        top = int(torch.randint(shape[0] - self.size + 1, (1,), generator=generator))
        left = int(torch.randint(shape[1] - self.size + 1, (1,), generator=generator))
        crop = resized[..., top:top + self.size, left:left + self.size]
        if float(torch.rand((), generator=generator)) < 0.5:
            crop = crop.flip(-1)
        return crop.contiguous()

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        """The ``batch_size``×3×size×size batch of step ``step`` (the same every time it is asked for)."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(step))
        return torch.cat([self.crop(generator) for _ in range(int(batch_size))])

    def fixed(self, count: Optional[int] = None) -> torch.Tensor:
        """A fixed evaluation batch: the centre ``size``×``size`` square of each photo (the first ``count``)."""
        crops = []
        for index in range(len(self.paths) if count is None else min(count, len(self.paths))):
            photo = self._photo(index)
            height, width = photo.shape[-2:]
            scale = self.size / min(height, width)
            shape = (max(self.size, round(height * scale)), max(self.size, round(width * scale)))
            resized = resize_image(photo, shape, role="held-out photo")
            top, left = (shape[0] - self.size) // 2, (shape[1] - self.size) // 2
            crops.append(resized[..., top:top + self.size, left:left + self.size])
        return torch.cat(crops).contiguous()
