"""Jupyter contents paths <-> files on disk, never leaving the server's root folder.

A contents path is relative to the root, ``/``-separated, as JupyterLab's document manager
uses it. ``..`` parts, absolute paths and symlinks whose target lies outside the root are
reported as 404, like files that do not exist, so the API tells nothing about the disk outside
the root. Hidden files are 404 too unless the contents manager serves them (``allow_hidden``).
A path the operating system cannot take (a part over ``NAME_MAX`` bytes, a whole path over
``PATH_MAX``, text that is no file name) is a 400 saying so before any file is looked at; a
folder the server may not read is a 403; a symlink loop is a 404 like a missing file.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from jupyter_core.paths import is_hidden

from .errors import BadRequest, Forbidden, NotFound

NOTEBOOK_SUFFIX = ".ipynb"
#: The longest file name (one part of a path) and whole path, in bytes of UTF-8, that Linux and
#: macOS take (``NAME_MAX``, ``PATH_MAX``): a longer one fails in the OS (ENAMETOOLONG).
NAME_MAX = 255
PATH_MAX = 4096
#: Paths longer than this are shortened in messages (a message never repeats a 6 kB path).
SHOWN = 80


def shown(path: str) -> str:
    """``path`` quoted for a message, its middle cut out when it is long."""
    text = repr(path)
    return text if len(text) <= SHOWN else f"{text[: SHOWN // 2]}...{text[-SHOWN // 2 :]}"


def _os_error(path: str, err: OSError) -> Exception:
    """What the user is told about an OS error on the file a contents path names; ``err``
    itself is raised again when it is none of the path's doing."""
    if err.errno == errno.ENAMETOOLONG:
        return _too_long(path, f"the operating system refuses it ({err.strerror})")
    if err.errno == errno.ELOOP:
        return NotFound(f"no file at {shown(path)} (a symlink in it leads round in a loop)")
    if err.errno in (errno.EACCES, errno.EPERM):
        return Forbidden(
            f"the Jupyter server may not read {shown(path)} (permission denied)",
            fix="give the server's user read access to it, or use another path",
        )
    raise err


def _too_long(path: str, why: str) -> BadRequest:
    return BadRequest(
        f"the contents path {shown(path)} is too long: {why}",
        fix=f"use a path of at most {PATH_MAX} bytes with file and folder names of at most "
        f"{NAME_MAX} bytes each",
    )


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
        self._check_text(path)
        outside = NotFound(f"{shown(path)} is not a path inside the Jupyter server's root folder")
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
        if len(os.fsencode(joined)) >= PATH_MAX:
            raise _too_long(path, f"inside the server root it is over {PATH_MAX} bytes")
        try:
            real = os.path.realpath(joined)
            if not self.inside(real):
                raise outside
            if not self.allow_hidden and is_hidden(joined, self.root):
                raise NotFound(
                    f"no file at {shown(path)} (hidden files are not served by this server)"
                )
        except OSError as err:
            raise _os_error(path, err) from err
        return Path(real)

    @staticmethod
    def _check_text(path: str) -> None:
        """A path the OS can take: UTF-8 text, parts of at most ``NAME_MAX`` bytes."""
        try:
            encoded = path.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest(
                f"the contents path {shown(path)} is not valid text (it holds a lone UTF-16 "
                "surrogate, which no file name can)",
                fix="send the path as JupyterLab shows it, in UTF-8",
            ) from None
        longest = max(len(part) for part in encoded.split(b"/"))
        if longest > NAME_MAX:
            raise _too_long(path, f"a name in it is {longest} bytes, over {NAME_MAX}")

    def notebook(self, path: object, *, must_exist: bool = True) -> Path:
        """The notebook file at ``path``: 404 if missing or outside, 400 if not a notebook."""
        real = self.resolve(path)
        assert isinstance(path, str)  # resolve() refuses anything else
        try:
            is_dir, is_file = real.is_dir(), real.is_file()
        except OSError as err:
            raise _os_error(path, err) from err
        if is_dir:
            raise BadRequest(
                f"{shown(path)} is a folder, not a notebook",
                fix=f"give the path of an {NOTEBOOK_SUFFIX} file",
            )
        if real.suffix != NOTEBOOK_SUFFIX:
            raise BadRequest(
                f"{shown(path)} is not a notebook",
                fix=f"give the path of an {NOTEBOOK_SUFFIX} file",
            )
        if must_exist and not is_file:
            raise NotFound(f"no notebook at {shown(path)}")
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
