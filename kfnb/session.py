"""Which notebook a kernel belongs to: the surfaces that run in a kernel (``%kfnb``, ``%%train``,
``kfnb.train``) ask here, so a run or a job records the notebook it came from."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import KfnbError

__all__ = ["SESSION_ENV", "notebook_path"]

SESSION_ENV = "JPY_SESSION_NAME"  # jupyter-server: the notebook's path (ipykernel: __session__)


def notebook_path(
    given: str | Path | None,
    user_ns: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> Path:
    """The notebook a command is about: ``given``, else the one this kernel belongs to
    (``$JPY_SESSION_NAME``, else ipykernel's ``__session__``), found from the kernel's cwd."""
    cwd = Path(cwd if cwd is not None else os.getcwd())
    if given is not None:
        path = cwd / Path(given).expanduser()
        if not path.is_file():
            raise KfnbError(
                f"no notebook at {str(given)!r}",
                fix=f"check the path (relative paths start at the kernel's folder, {cwd})",
            )
        return path
    env = os.environ if environ is None else environ
    session = env.get(SESSION_ENV) or str((user_ns or {}).get("__session__") or "")
    if not session.endswith(".ipynb"):
        raise KfnbError(
            "cannot tell which notebook this kernel belongs to"
            + (f" (its session is {session!r})" if session else ""),
            fix="pass the notebook's path, e.g. `%kfnb run my_notebook.ipynb`",
        )
    raw = Path(session).expanduser()
    for candidate in [raw] if raw.is_absolute() else [cwd / raw, cwd / raw.name]:
        if candidate.is_file():
            return candidate
    raise KfnbError(
        f"this kernel's notebook {session!r} is not in {cwd} (not saved yet?)",
        fix="save it, or pass its path, e.g. `%kfnb run my_notebook.ipynb`",
    )
