"""The image picker: a bundled image from a drop-down, or the student's own through an upload button.

Uploads are kept in a visible folder next to the notebook (``uploads/`` by default), not in a temporary one: the
code box can then name them as a student can read and paste (``'uploads/my_photo.png'``), and they are still
there after a kernel restart. A file is checked before it is kept, so only images land there.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Union

import ipywidgets as widgets

from ..errors import NSTError
from ..images import IMAGES_DIR, load_image
from ._common import bundled_images, one_line, png, show_message


class ImagePicker(widgets.HBox):
    """A bundled image from a drop-down, or the student's own through an upload button.

    ``.path`` is the chosen file. An upload is checked by loading it, then kept in ``upload_dir`` (relative to
    the working folder, made when the first image arrives) under its own name; a file that is not an image gives
    a one-line message naming it in ``message_widget`` and changes nothing. ``description`` labels the drop-down
    (default: the role, capitalised).
    """

    def __init__(self, role: str, default: Optional[Union[str, os.PathLike]] = None, *,
                 message_widget: Optional[widgets.HTML] = None, thumbnail: bool = True,
                 upload_dir: Union[str, os.PathLike] = "uploads", description: Optional[str] = None) -> None:
        self.role = role
        self.message = message_widget if message_widget is not None else widgets.HTML()
        self.upload_dir = Path(upload_dir)
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
        # Wide enough for long uploaded names: the drop-down grows with its longest entry.
        self.dropdown = widgets.Dropdown(options=options,
                                         description=role.capitalize() if description is None else description,
                                         layout=widgets.Layout(width="max-content", min_width="260px"))
        if default_path is not None:
            self.dropdown.value = default_path
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload",
                                         layout=widgets.Layout(width="110px"))
        slug = role.replace(" ", "-")
        self.dropdown.add_class(f"nst-{slug}-choice")
        self.upload.add_class(f"nst-{slug}-upload")
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
        """Python source for this image in a pasted call: a bundled image by name, a file inside the working
        folder by its relative path (e.g. ``'uploads/my_photo.png'``), any other by its full path."""
        if self.is_bundled:
            return f"nstutil.image_path({self.path.name!r})"
        try:
            return repr(self.path.resolve().relative_to(Path.cwd().resolve()).as_posix())
        except ValueError:
            return repr(str(self.path))

    def add_upload(self, name: str, content: bytes) -> bool:
        """Take an uploaded file: True and selected when it is an image, False with a message otherwise."""
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name or "upload").name).strip("._") or "upload"
        shown = Path(name or "upload").name
        with tempfile.TemporaryDirectory(prefix="nstutil_upload_") as folder:
            checked = Path(folder) / safe
            try:
                checked.write_bytes(bytes(content))
                load_image(checked, 32, role=self.role)
                target = self._keep(checked)
            except Exception as exc:  # noqa: BLE001 - any bad file becomes one line, never a traceback
                # The student knows the file by its own name, not by the temporary copy's path.
                reason = one_line(exc).replace(repr(str(checked)), repr(shown)).replace(str(checked), shown)
                show_message(self.message, f"{self.role} upload {shown!r} was not used: {reason}", "error")
                return False
        label = f"{target.name} (uploaded)"
        self.dropdown.options = [o for o in self.dropdown.options if o[1] != target] + [(label, target)]
        self.dropdown.value = target
        show_message(self.message, f"{self.role} image: uploaded {shown}, kept as {self.source()}", "ok")
        return True

    def _keep(self, checked: Path) -> Path:
        """Copy a checked upload into the upload folder; the same picture uploaded again is not copied twice."""
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        target, k = self.upload_dir / checked.name, 2
        while target.exists() and not filecmp.cmp(target, checked, shallow=False):
            target = self.upload_dir / f"{checked.stem}-{k}{checked.suffix}"
            k += 1
        if not target.exists():
            shutil.copyfile(checked, target)
        return target.resolve()

    def _on_upload(self, change) -> None:
        files = change["new"]
        if not files:
            return
        item = files[-1]
        name = item.get("name", "upload") if isinstance(item, dict) else getattr(item, "name", "upload")
        content = item.get("content", b"") if isinstance(item, dict) else getattr(item, "content", b"")
        if not self.add_upload(name, bytes(content)):
            # The button counts the files it holds: "(0)" again after a file that was not used, "(1)" after one
            # that was (clearing it then made "Upload (0)" look like a failed upload).
            self.upload.value = ()

    def _show_thumbnail(self) -> None:
        if not self._with_thumbnail:
            return
        try:
            self.thumbnail.value = png(load_image(self.path, 64, role=self.role))
        except Exception as exc:  # noqa: BLE001
            show_message(self.message, f"{self.role} image {self.path.name!r}: {one_line(exc)}", "error")
