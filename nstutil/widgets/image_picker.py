"""The image picker: a bundled image from a drop-down, or the student's own through an upload button."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Optional, Union

import ipywidgets as widgets

from ..errors import NSTError
from ..images import IMAGES_DIR, load_image
from ._common import bundled_images, one_line, png, show_message


class ImagePicker(widgets.HBox):
    """A bundled image from a drop-down, or the student's own through an upload button.

    ``.path`` is the chosen file. An upload is written to a private temporary directory and checked by loading
    it; a file that is not an image gives a one-line message in ``message_widget`` and changes nothing.
    """

    def __init__(self, role: str, default: Optional[Union[str, os.PathLike]] = None, *,
                 message_widget: Optional[widgets.HTML] = None, thumbnail: bool = True) -> None:
        self.role = role
        self.message = message_widget if message_widget is not None else widgets.HTML()
        self._upload_dir: Optional[Path] = None
        options = [(name, path) for name, path in bundled_images().items()]
        default_path = None
        if default is not None:
            from ..images import image_path

            # A path, or a bundled image's name ("waves" or "waves.png"); a wrong one is a one-line NSTError.
            default_path = image_path(default, role=f"{role} image").resolve()
        if default_path is not None and all(p != default_path for _, p in options):
            options.append((default_path.name, default_path))
        if not options:
            raise NSTError(f"no {role} image: images/ has no pictures; pass a path")
        self.dropdown = widgets.Dropdown(options=options, description=role.capitalize(),
                                         layout=widgets.Layout(width="260px"))
        if default_path is not None:
            self.dropdown.value = default_path
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload",
                                         layout=widgets.Layout(width="110px"))
        self.dropdown.add_class(f"nst-{role}-choice")
        self.upload.add_class(f"nst-{role}-upload")
        self.thumbnail = widgets.Image(format="png", layout=widgets.Layout(height="48px", width="auto"))
        self.upload.observe(self._on_upload, names="value")
        self.dropdown.observe(lambda _: self._show_thumbnail(), names="value")
        self._with_thumbnail = thumbnail
        super().__init__([self.dropdown, self.upload] + ([self.thumbnail] if thumbnail else []))
        self._show_thumbnail()

    @property
    def path(self) -> Path:
        """The chosen image file."""
        return Path(self.dropdown.value)

    @property
    def is_bundled(self) -> bool:
        """True when the chosen image is one of the bundled examples."""
        return self.path.parent == IMAGES_DIR

    def source(self) -> str:
        """Python source for this image in a pasted call."""
        if self.is_bundled:
            return f"nstutil.image_path({self.path.name!r})"
        return repr(str(self.path))

    def add_upload(self, name: str, content: bytes) -> bool:
        """Take an uploaded file: True and selected when it is an image, False with a message otherwise."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name or "upload").name).strip("._") or "upload"
        if self._upload_dir is None:
            self._upload_dir = Path(tempfile.mkdtemp(prefix="nstutil_upload_"))
        target = self._upload_dir / safe
        stem, suffix, i = target.stem, target.suffix, 1
        while target.exists():
            target = self._upload_dir / f"{stem}_{i}{suffix}"
            i += 1
        try:
            target.write_bytes(bytes(content))
            load_image(target, 32, role=self.role)
        except Exception as exc:  # noqa: BLE001 - any bad file becomes one line, never a traceback
            target.unlink(missing_ok=True)
            show_message(self.message, f"{self.role} upload {name!r} was not used: {one_line(exc)}", "error")
            return False
        label = f"upload: {safe}"
        self.dropdown.options = [o for o in self.dropdown.options if o[0] != label] + [(label, target)]
        self.dropdown.value = target
        show_message(self.message, f"{self.role} image: uploaded {name}", "ok")
        return True

    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        item = files[-1]
        name = item.get("name", "upload") if isinstance(item, dict) else getattr(item, "name", "upload")
        content = item.get("content", b"") if isinstance(item, dict) else getattr(item, "content", b"")
        self.add_upload(name, bytes(content))
        try:
            self.upload.value = ()  # ready for the next file, and no copy kept in the widget state
        except Exception:  # pragma: no cover - older ipywidgets refuse; harmless
            pass

    def _show_thumbnail(self) -> None:
        if not self._with_thumbnail:
            return
        try:
            self.thumbnail.value = png(load_image(self.path, 64, role=self.role))
        except Exception as exc:  # noqa: BLE001
            show_message(self.message, f"{self.role} image {self.path.name!r}: {one_line(exc)}", "error")
