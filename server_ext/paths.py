"""Jupyter contents paths <-> files on disk, never leaving the server's root folder.

A contents path is relative to the root, ``/``-separated, as JupyterLab's document manager
uses it. ``..`` parts, absolute paths and symlinks whose target lies outside the root are
reported as 404, like files that do not exist, so the API tells nothing about the disk outside
the root. Hidden files are 404 too unless the contents manager serves them (``allow_hidden``).
"""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_core.paths import is_hidden

from .errors import BadRequest, NotFound

NOTEBOOK_SUFFIX = ".ipynb"


class ContentsPaths:
    """The files of one server root (``ContentsManager.root_dir``)."""

    def __init__(self, root_dir: str, *, allow_hidden: bool = False) -> None:
        self.root = os.path.realpath(root_dir)
        self.allow_hidden = allow_hidden

    def resolve(self, path: object) -> Path:
        """The real file ``path`` names (it may not exist); ``NotFound`` when outside the root."""
        if not isinstance(path, str) or not path.strip():
            raise BadRequest(
                "a contents path is required",
                fix="give a path relative to the server root, e.g. 'examples/churn.ipynb'",
            )
        outside = NotFound(f"{path!r} is not a path inside the Jupyter server's root folder")
        if (
            "\0" in path
            or path.startswith(("/", "\\"))
            or os.path.isabs(path)
            or os.path.splitdrive(path)[0]
        ):
            raise outside
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise outside
        joined = os.path.join(self.root, *parts)
        real = os.path.realpath(joined)
        if not self.inside(real):
            raise outside
        if not self.allow_hidden and is_hidden(joined, self.root):
            raise NotFound(f"no file at {path!r} (hidden files are not served by this server)")
        return Path(real)

    def notebook(self, path: object, *, must_exist: bool = True) -> Path:
        """The notebook file at ``path``: 404 if missing or outside, 400 if not a notebook."""
        real = self.resolve(path)
        if real.is_dir():
            raise BadRequest(
                f"{path!r} is a folder, not a notebook",
                fix=f"give the path of an {NOTEBOOK_SUFFIX} file",
            )
        if real.suffix != NOTEBOOK_SUFFIX:
            raise BadRequest(
                f"{path!r} is not a notebook", fix=f"give the path of an {NOTEBOOK_SUFFIX} file"
            )
        if must_exist and not real.is_file():
            raise NotFound(f"no notebook at {path!r}")
        return real

    def inside(self, os_path: str | Path) -> bool:
        real = os.path.realpath(os_path)
        return real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep)

    def contents_path(self, os_path: str | Path | None) -> str | None:
        """``os_path`` as a contents path, or None when it lies outside the root."""
        if not os_path:
            return None
        real = os.path.realpath(os_path)
        if not self.inside(real):
            return None
        return "/".join(Path(os.path.relpath(real, self.root)).parts) if real != self.root else ""
