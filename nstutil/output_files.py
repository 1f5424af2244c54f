"""Writing result files safely: every check before a long run, never a half-written or wrongly replaced file.

:func:`check_output` finds now, not after a run of minutes, everything that would stop the write: an input image
as the output, a folder, an extension Pillow cannot *write* (it reads ``.psd`` but cannot save it), a name too
long for the file system, no folder to write in, and an existing file its owner made read-only (refused as ``cp``
refuses it, unless ``force``). :func:`write_atomically` writes beside the target and renames over it, so there is
never a half-written file; a replaced file keeps its permission bits (a private 0600 file stays private).
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Union

from PIL import Image

from .errors import NSTError

__all__ = ["check_output", "check_image_format", "write_atomically", "temporary_prefix", "same_file"]

PathLike = Union[str, os.PathLike]
# mkstemp adds this many random characters between the prefix and the suffix.
_RANDOM_CHARACTERS = 8
_DEFAULT_NAME_MAX = 255


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file: the same absolute path after following links and ``..`` (also for a
    file not made yet), or the same file on disk (a hard link)."""
    a, b = Path(a).expanduser(), Path(b).expanduser()
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # not on this system (Windows) or not for this folder
        return _DEFAULT_NAME_MAX


def _exists(path: Path) -> bool:
    try:
        os.stat(path)
        return True
    except (OSError, ValueError):  # missing, or a name too long to look up
        return False


def _existing_folder(path: Path) -> Path:
    """The nearest folder above ``path`` that exists (its missing folders are made when writing)."""
    folder = path.parent
    while not _exists(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def temporary_prefix(path: Path, suffix: str = "") -> str:
    """The prefix of the temporary file written beside ``path``: ``.NAME-``, shortened so that the temporary name
    (prefix, 8 random characters, ``suffix``) fits the file system's name limit even when ``path``'s name does."""
    room = _name_max(_existing_folder(path)) - _RANDOM_CHARACTERS - len(suffix.encode()) - 2
    stem = path.stem.encode()[:max(room, 0)].decode(errors="ignore")
    return f".{stem}-"


def check_image_format(path: Path) -> str:
    """The Pillow format that writes ``path``'s extension; :class:`NSTError` if there is none (``.xyz``) or Pillow
    can only read it (``.psd``) or cannot write an RGB picture in it."""
    extension = path.suffix.lower()
    fmt = Image.registered_extensions().get(extension)
    if fmt is None:
        raise NSTError(f"output {str(path)!r} has no image extension Pillow knows: end it in .png or .jpg")
    try:
        if fmt not in Image.SAVE:
            raise OSError(f"no writer for {fmt}")
        Image.new("RGB", (1, 1)).save(io.BytesIO(), format=fmt)
    except (OSError, ValueError, KeyError) as exc:
        raise NSTError(f"output {str(path)!r}: Pillow can read {extension} files but cannot write them "
                       f"({exc}): end it in .png or .jpg") from None
    return fmt


def _read_only(path: Path) -> bool:
    # The permission bits, not os.access alone: root may write anything, but a file whose owner took every write
    # permission away is protected by intent (cp refuses it for everyone else).
    mode = path.stat().st_mode
    return (mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) == 0 or not os.access(path, os.W_OK)


def check_output(path: PathLike, *, protect: Iterable[PathLike] = (), force: bool = False,
                 image: bool = True) -> Path:
    """Fail now, not after a long run, if ``path`` could not or should not be written; nothing is left behind.

    Refused with one line (:class:`NSTError`): a path in ``protect`` (the run's inputs) by any spelling; for an
    ``image`` an extension Pillow cannot write; a folder; a name longer than the file system allows; a parent
    that is a file or a folder where no file can be made; an existing read-only file unless ``force``.
    """
    path = Path(path).expanduser()
    for other in protect:
        if other is not None and same_file(path, other):
            raise NSTError(f"output {str(path)!r} is one of the input images: choose another output path")
    if image:
        check_image_format(path)
    folder = _existing_folder(path)
    limit = _name_max(folder)
    for part in path.parts[len(folder.parts):]:  # the missing folders are made, so they must fit too
        if len(part.encode()) > limit:
            raise NSTError(f"output {str(path)!r}: the name {part[:20]!r}... is {len(part.encode())} bytes, over "
                           f"this file system's limit of {limit}: choose a shorter name")
    if path.is_dir():
        raise NSTError(f"output {str(path)!r} is a directory: give a file name such as {str(path / 'result.png')!r}")
    if not folder.is_dir():
        raise NSTError(f"output {str(path)!r} cannot be written ({str(folder)!r} is a file, not a folder): "
                       f"choose a writable folder")
    if path.exists() and not force and _read_only(path):
        raise NSTError(f"output {str(path)!r} exists and is read-only: choose another name, make it writable "
                       f"(chmod u+w) or force the replacement (--force)")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise NSTError(f"output {str(path)!r} cannot be written ({exc.strerror or exc} in {str(folder)!r}): "
                       f"choose a writable folder") from None
    return path


def write_atomically(path: Path, write: Callable[[BinaryIO], None], *, suffix: str = "") -> Path:
    """Call ``write(stream)`` on a temporary file beside ``path``, then rename it over ``path``.

    There is never a half-written ``path``: on any error the temporary file is removed. A new file is readable by
    all (0644); a replaced file keeps its permission bits. OS errors become :class:`NSTError`. Used by
    :func:`nstutil.save_image` and the weights export (:mod:`nstutil.weights`).
    """
    path = Path(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode) if path.is_file() else 0o644
    except OSError:
        mode = 0o644
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=temporary_prefix(path, suffix), suffix=suffix, dir=path.parent)
    except OSError as exc:
        raise NSTError(f"output {str(path)!r} cannot be written ({exc.strerror or exc}): choose a writable "
                       f"folder") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.chmod(temporary, mode)  # mkstemp makes it private
        os.replace(temporary, path)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise NSTError(f"output {str(path)!r} cannot be written ({exc.strerror or exc}): choose a writable "
                           f"folder") from None
        raise
    return path
