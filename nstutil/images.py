"""Images in and out: loading any picture as a 1×3×H×W tensor in [0, 1], saving safely, showing side by side.

Introduced in lesson 1 (Images).
"""

from __future__ import annotations

import glob
import os
import warnings
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import NSTError
from .output_files import check_image_format, check_output, write_atomically

__all__ = [
    "IMAGES_DIR",
    "DEFAULT_CONTENT",
    "DEFAULT_STYLE",
    "MAX_PIXELS",
    "image_path",
    "load_image",
    "resize_image",
    "save_image",
    "check_writable",
    "write_atomically",
    "to_pil",
    "show_images",
]

# An installed wheel (or `pip install .`) carries the bundled images inside the package (pyproject.toml maps the
# repository's images/ folder to nstutil/bundled_images); a checkout, editable install or PYTHONPATH uses the
# repository's images/ folder itself.
_PACKAGED_IMAGES = Path(__file__).resolve().parent / "bundled_images"
IMAGES_DIR = _PACKAGED_IMAGES if _PACKAGED_IMAGES.is_dir() else Path(__file__).resolve().parent.parent / "images"
DEFAULT_CONTENT = IMAGES_DIR / "chelsea.png"
DEFAULT_STYLE = IMAGES_DIR / "mosaic.png"
# Larger pictures are refused before they are decoded: 40 megapixels is already ~0.5 GB as float tensors.
MAX_PIXELS = 40_000_000

ImageLike = Union[str, os.PathLike, torch.Tensor]
Size = Union[int, Tuple[int, int], None]


def image_path(name: Union[str, os.PathLike], *, role: str = "image") -> Path:
    """The path of a bundled image (``"chelsea"`` or ``"chelsea.png"``), or ``name`` itself if it is a path."""
    path = Path(name).expanduser()
    if path.exists():
        return path
    if path.name != str(name):  # a path, not a bundled image's name
        raise NSTError(f"{role} {str(name)!r} does not exist: check the path")
    for candidate in [IMAGES_DIR / path.name, *sorted(IMAGES_DIR.glob(f"{glob.escape(path.name)}.*"))]:
        if candidate.is_file() and candidate.suffix.lower() != ".md":
            return candidate
    bundled = sorted(p.name for p in IMAGES_DIR.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    raise NSTError(f"{role} {str(name)!r} does not exist: give a file path or a bundled image "
                   f"({', '.join(bundled)})")


def _to_rgb(img: Image.Image, background: Tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """H×W×3 float32 in [0, 1] for any mode Pillow opens; transparency is composed over ``background``."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit greyscale: convert("RGB") would clip at 255, so scale by the 16-bit range instead.
        grey = np.asarray(img, dtype=np.float32) / 65535.0
        return np.repeat(np.clip(grey, 0.0, 1.0)[..., None], 3, axis=2)
    if img.mode == "F":
        grey = np.asarray(img, dtype=np.float32)
        return np.repeat(np.clip(grey, 0.0, 1.0)[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (*background, 255)), rgba)
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _target_size(width: int, height: int, size: Size, role: str) -> Tuple[int, int]:
    """(width, height) after resizing: ``size`` is the longer side, or an exact ``(height, width)``."""
    if isinstance(size, (tuple, list)):
        if len(size) != 2 or any(int(s) < 1 for s in size):
            raise NSTError(f"size {size!r} for the {role}: give one positive number (the longer side) or (height, width)")
        return int(size[1]), int(size[0])
    if int(size) < 1:
        raise NSTError(f"size {size!r} for the {role}: give a positive number of pixels for the longer side")
    height, width = scaled_shape((height, width), int(size))
    return width, height


def scaled_shape(shape: Tuple[int, int], longer: int) -> Tuple[int, int]:
    """(H, W) of an image of shape ``shape`` = (H, W) resized so that its longer side is ``longer`` px: the one
    size rule of nstutil (loading, coarse-to-fine scales, the estimate)."""
    height, width = shape
    factor = longer / max(height, width)
    return max(1, round(height * factor)), max(1, round(width * factor))


def load_image(path: Union[str, os.PathLike], size: Size = None, *, role: str = "image",
               max_pixels: int = MAX_PIXELS, background: Tuple[int, int, int] = (255, 255, 255)) -> torch.Tensor:
    """Load a picture as a float32 tensor of shape 1×3×H×W with values in [0, 1].

    Any mode Pillow opens (grey, RGBA, palette, CMYK, 16-bit) becomes RGB, transparent parts composed over
    ``background`` (white; masks use black: transparent means "not here"); the EXIF
    orientation is applied. ``size`` resizes keeping the aspect ratio so that the **longer** side has ``size``
    pixels (as jcjohnson's ``-image_size``); a pair ``(height, width)`` resizes to exactly that. Pictures over
    ``max_pixels`` are refused before decoding (decompression bombs). ``role`` ("content image", "style image")
    only words the error messages. Every problem raises :class:`NSTError` naming the file.
    """
    path = Path(path).expanduser()
    label = f"{role} {str(path)!r}"
    if not path.exists():
        raise NSTError(f"{label} does not exist: check the path")
    if path.is_dir():
        raise NSTError(f"{label} is a directory: give an image file inside it")
    if path.stat().st_size == 0:
        raise NSTError(f"{label} is an empty file: give a real image (PNG, JPEG, ...)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise NSTError(f"{label} is {width}×{height} = {width * height:,} pixels, over the limit of "
                                   f"{max_pixels:,}: shrink it first or pass a larger max_pixels")
                img.load()
                img = ImageOps.exif_transpose(img)
                pixels = _to_rgb(img, background)
    except NSTError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise NSTError(f"{label} is too many pixels for Pillow's decompression-bomb guard: shrink it first") from None
    except UnidentifiedImageError:
        raise NSTError(f"{label} is not an image Pillow can read: give a PNG, JPEG, BMP, TIFF, WebP or GIF") from None
    except (OSError, ValueError, SyntaxError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NSTError(f"{label} is damaged or truncated ({reason}): re-save or re-download it") from None
    tensor = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).unsqueeze(0)
    return tensor.contiguous() if size is None else resize_image(tensor, size, role=role)


def resize_image(image: torch.Tensor, size: Size, *, role: str = "image") -> torch.Tensor:
    """``image`` (N×C×H×W in [0, 1]) resized as :func:`load_image` resizes: ``size`` is the longer side (aspect
    ratio kept) or an exact ``(height, width)``; antialiased bicubic, clamped to [0, 1]. Introduced in lesson 8."""
    new_w, new_h = _target_size(image.shape[-1], image.shape[-2], size, role)
    if new_w * new_h > MAX_PIXELS:  # e.g. a style scale of 1e6: refuse before allocating petabytes
        raise NSTError(f"the {role} would be resized to {new_w:,}×{new_h:,} = {new_w * new_h:,} pixels, over the "
                       f"limit of {MAX_PIXELS:,}: give a smaller size (or --style-scale / style_scale)")
    if (new_w, new_h) == (image.shape[-1], image.shape[-2]):
        return image.contiguous()
    return torch.nn.functional.interpolate(image, size=(new_h, new_w), mode="bicubic", align_corners=False,
                                           antialias=True).clamp_(0.0, 1.0).contiguous()


def _as_image_tensor(image: torch.Tensor, what: str = "image") -> torch.Tensor:
    """A 3×H×W float tensor in [0, 1] on the CPU, from 1×3×H×W, 3×H×W or H×W."""
    if not isinstance(image, torch.Tensor):
        raise NSTError(f"{what} is a {type(image).__name__}, not a tensor: pass the 1×3×H×W tensor from load_image")
    t = image.detach().to("cpu", torch.float32)
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise NSTError(f"{what} has a batch of {t.shape[0]} images: pass one (1×3×H×W)")
        t = t[0]
    if t.dim() == 2:
        t = t.unsqueeze(0).expand(3, -1, -1)
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise NSTError(f"{what} has shape {tuple(image.shape)}: nstutil expects 1×3×H×W (RGB in [0, 1])")
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    return t.clamp(0.0, 1.0)


def to_pil(image: torch.Tensor) -> Image.Image:
    """An 8-bit RGB Pillow image from a 1×3×H×W (or 3×H×W) tensor in [0, 1]."""
    array = (_as_image_tensor(image).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(array, "RGB")


def save_image(image: torch.Tensor, path: Union[str, os.PathLike],
               *, protect: Iterable[Union[str, os.PathLike]] = (), force: bool = False) -> Path:
    """Write an image tensor to ``path`` (format from the extension) and return the path.

    The write is atomic: the picture goes to a temporary file beside the target which is then renamed over it,
    so there is never a half-written file. Paths in ``protect`` (the inputs of a run) are never overwritten; an
    existing read-only file only with ``force``, and a replaced file keeps its permissions. Missing parent
    folders are created. See :mod:`nstutil.output_files`.
    """
    path = check_writable(path, protect=protect, force=force)
    extension = path.suffix.lower()
    fmt = check_image_format(path)
    picture = to_pil(image)
    return write_atomically(path, lambda stream: picture.save(stream, format=fmt), suffix=extension)


def check_writable(path: Union[str, os.PathLike], *, protect: Iterable[Union[str, os.PathLike]] = (),
                   force: bool = False) -> Path:
    """Fail now, not after a long run, if ``save_image`` could not write ``path`` (an input, a folder, a format
    Pillow cannot write, a name too long, a read-only file without ``force``); nothing is left behind."""
    return check_output(path, protect=protect, force=force)


MAX_FIGURE_WIDTH = 10.0  # inches: what a notebook shows at full size on a laptop (see show_images)


def show_images(images: Sequence[ImageLike], titles: Optional[Sequence[str]] = None, *,
                ncols: Optional[int] = None, figsize: Optional[Tuple[float, float]] = None,
                suptitle: Optional[str] = None):
    """A matplotlib figure with the images (tensors or paths) side by side, each under its title."""
    import matplotlib.pyplot as plt

    pictures: List[torch.Tensor] = [
        load_image(image_path(i)) if isinstance(i, (str, os.PathLike)) else i for i in images
    ]
    if titles is not None and len(titles) != len(pictures):
        raise NSTError(f"show_images got {len(pictures)} images but {len(titles)} titles: give one title per image")
    n = len(pictures)
    ncols = ncols or min(n, 4)
    nrows = (n + ncols - 1) // ncols
    # At most 10 inches wide: JupyterLab shows a wider figure shrunk to the notebook's width (about 9.5 in at 100 dpi
    # in a 1366-px window with the file browser open), and its 10-pt titles with it.
    panel = min(3.2, MAX_FIGURE_WIDTH / ncols)
    figsize = figsize or (panel * ncols, panel * nrows + (0.4 if suptitle else 0.0))
    fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(_as_image_tensor(pictures[k], f"image {k}").permute(1, 2, 0).numpy())
            if titles is not None:
                ax.set_title(titles[k], fontsize=10)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
