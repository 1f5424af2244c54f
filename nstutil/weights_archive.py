"""Reading a weights file's container before ``torch.load`` does: damage called damage, and bounded work.

``torch.save`` writes a zip archive whose entries are *stored*, not compressed. A download cut short or garbled is
not a zip at all, or not a whole one; a file whose entries are compressed was not written by ``torch.save`` and could
inflate to any size when loaded (a "zip bomb"). :func:`check_archive` reads only the archive's directory and refuses
both with one line, before anything is inflated; :func:`diagnose_load_error` tells pickled code (refused on purpose)
from damage when ``torch.load`` fails.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from .errors import NSTError

__all__ = ["check_archive", "diagnose_load_error", "MAX_ENTRIES"]

# A VGG19 state dict has 38 tensors (full model) plus a few bookkeeping entries.
MAX_ENTRIES = 1000
_REDOWNLOAD = "download or copy it again (compare its SHA-256 with the original's)"


def check_archive(path: Path, what: str) -> None:
    """Raise :class:`NSTError` if ``path`` is a zip archive (torch.save's format) that is damaged, cut short or
    holds compressed entries. Files in torch's older, non-zip format pass through to ``torch.load``."""
    try:
        with open(path, "rb") as stream:
            magic = stream.read(4)
    except OSError:
        return  # torch.load says what is wrong (missing, a folder, ...)
    if magic[:2] != b"PK":
        return
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise NSTError(f"{what} {str(path)!r} is damaged or truncated (not a complete archive: {exc}): "
                       f"{_REDOWNLOAD}") from None
    if len(entries) > MAX_ENTRIES:
        raise NSTError(f"{what} {str(path)!r} holds {len(entries):,} entries, not a state dict's few dozen: it is "
                       f"damaged or not a PyTorch weights file; {_REDOWNLOAD}")
    compressed = [entry for entry in entries if entry.compress_type != zipfile.ZIP_STORED]
    if compressed:
        packed, inflated = (sum(e.compress_size for e in compressed), sum(e.file_size for e in compressed))
        raise NSTError(f"{what} {str(path)!r} has compressed entries ({packed:,} bytes that would inflate to "
                       f"{inflated:,}), which torch.save never writes: it is damaged or repacked; {_REDOWNLOAD}")


def diagnose_load_error(exc: BaseException, path: Path, what: str) -> NSTError:
    """The one-line error for a failed ``torch.load(path, weights_only=True)``: pickled code only when the
    unpickler refused a global (a function or class to call), otherwise a damaged file."""
    text = str(exc)
    if "GLOBAL" in text or "Unsupported global" in text or "unsupported global" in text:
        return NSTError(f"{what} {str(path)!r} holds pickled code, which nstutil refuses to run: save plain "
                        f"tensors with torch.save(model.state_dict(), path)")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # torch's weights-only message begins with advice that does not apply; its last specific line is the reason.
    specific = [line for line in lines if "WeightsUnpickler" not in line and "weights_only" not in line
                and not line.startswith(("Check the documentation", "Please file"))]
    reason = (specific or lines or [type(exc).__name__])[0][:120]
    return NSTError(f"{what} {str(path)!r} is damaged or truncated, or not a PyTorch state dict ({reason}): "
                    f"{_REDOWNLOAD}, or save one with torch.save(model.state_dict(), path)")
