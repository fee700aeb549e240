"""Which notebook a kernel belongs to: the surfaces that run in a kernel (``%kfnb``, ``%%train``,
``kfnb.train``) ask here, so a run or a job records the notebook it came from; and whether the
kernel is headless (no frontend renders widgets: papermill).

In Jupyter the server tells the kernel its notebook (``$JPY_SESSION_NAME``). Papermill tells it
nothing (no environment variable, no session name; the input path only goes into the output
notebook's metadata), so a kernel finds the papermill process that started it among its
ancestors (``/proc`` on Linux) and reads the input path from that process's command line,
relative to that process's folder (``papermill_input``). Anything else that runs notebooks
headless can say which file it runs with ``$KFNB_NOTEBOOK`` (papermill's Python API too: the
kernel inherits the environment), and ``$KFNB_HEADLESS=1`` that nobody renders widgets.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import KfnbError

__all__ = [
    "HEADLESS_ENV",
    "NOTEBOOK_ENV",
    "SESSION_ENV",
    "headless",
    "notebook_path",
    "papermill_input",
]

SESSION_ENV = "JPY_SESSION_NAME"  # jupyter-server: the notebook's path (ipykernel: __session__)
NOTEBOOK_ENV = "KFNB_NOTEBOOK"  # set by whoever runs a notebook headless: its path
HEADLESS_ENV = "KFNB_HEADLESS"  # 1: no frontend renders widgets (0: there is one)
_ANCESTORS = 4  # papermill -> kernel, or papermill -> a launcher -> kernel


def notebook_path(
    given: str | Path | None,
    user_ns: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> Path:
    """The notebook a command is about: ``given``, else the one this kernel belongs to
    (``$KFNB_NOTEBOOK``, ``$JPY_SESSION_NAME``, ipykernel's ``__session__``, else the input of
    the papermill that runs this kernel), found from the kernel's cwd."""
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
    session = (
        env.get(NOTEBOOK_ENV)
        or env.get(SESSION_ENV)
        or str((user_ns or {}).get("__session__") or "")
    )
    if not session.endswith(".ipynb"):
        found = papermill_input(user_ns, cwd)
        if found is not None:
            return found
    if not session.endswith(".ipynb"):
        raise KfnbError(
            "cannot tell which notebook this kernel belongs to"
            + (f" (its session is {session!r})" if session else ""),
            fix="pass the notebook's path, e.g. `%kfnb run my_notebook.ipynb` (or set "
            f"${NOTEBOOK_ENV} for the kernel)",
        )
    raw = Path(session).expanduser()
    for candidate in [raw] if raw.is_absolute() else [cwd / raw, cwd / raw.name]:
        if candidate.is_file():
            return candidate
    raise KfnbError(
        f"this kernel's notebook {session!r} is not in {cwd} (not saved yet?)",
        fix="save it, or pass its path, e.g. `%kfnb run my_notebook.ipynb`",
    )


def headless(environ: Mapping[str, str] | None = None) -> bool:
    """Whether no frontend shows this kernel's output live (``$KFNB_HEADLESS``, else: papermill
    runs it): widgets would be models nobody renders, so runs show their state as static HTML
    and text, and ``%kfnb run`` waits for its run (the kernel ends with the notebook)."""
    env = os.environ if environ is None else environ
    flag = env.get(HEADLESS_ENV, "").strip().lower()
    if flag:
        return flag not in ("0", "false", "no", "off")
    return _papermill_argv() is not None


def papermill_input(
    user_ns: Mapping[str, Any] | None = None, cwd: str | Path | None = None
) -> Path | None:
    """The input notebook of the papermill process that runs this kernel (an ancestor of this
    process), when it is a local file; None elsewhere (not under papermill, no ``/proc``).
    ``PAPERMILL_INPUT_PATH`` in ``user_ns`` (``papermill --inject-input-path``) comes first."""
    found = _papermill_argv()
    injected = str((user_ns or {}).get("PAPERMILL_INPUT_PATH") or "")
    if found is None and not injected:
        return None
    argv, now = found if found is not None else ((), str(cwd or os.getcwd()))
    given = injected or _input_argument(argv)
    if not given or given == "-" or "://" in given:
        return None  # read from stdin, or a remote notebook (s3://...)
    path = Path(given).expanduser()
    if path.is_absolute():
        return path if path.is_file() else None
    for folder in _launch_folders(argv, Path(now)):
        if (folder / path).is_file():
            return folder / path
    return None


def _launch_folders(argv: Sequence[str], now: Path) -> list[Path]:
    """Where papermill may have been started: it moves into ``--cwd DIR`` before it starts the
    kernel, so its folder now is DIR; a relative input path is relative to the folder it
    started in, the ancestor A of DIR with A/DIR == DIR (else ``$PWD``, DIR, this folder)."""
    folders: list[Path] = []
    option = _option(argv, "--cwd")
    if option and not Path(option).is_absolute():
        target = now.resolve()
        for above in [now, *now.parents]:
            if (above / option).resolve() == target:
                folders.append(above)
                break
    pwd = os.environ.get("PWD")
    folders += [now] + ([Path(pwd)] if pwd else []) + [Path.cwd()]
    return folders


def _option(argv: Sequence[str], name: str) -> str | None:
    for i, word in enumerate(argv):
        if word == name and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


@functools.lru_cache(maxsize=1)
def _papermill_argv() -> tuple[tuple[str, ...], str] | None:
    """(command line after the program, cwd) of the nearest ancestor that is papermill."""
    pid = os.getppid()
    for _ in range(_ANCESTORS):
        if pid <= 1:
            return None
        proc = Path("/proc") / str(pid)
        try:
            argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            argv = [a for a in argv if a]
            cwd = os.readlink(proc / "cwd")
            stat = (proc / "stat").read_text()
        except OSError:
            return None
        rest = _after_papermill(argv)
        if rest is not None:
            return tuple(rest), cwd
        try:
            pid = int(stat.rsplit(")", 1)[1].split()[1])  # field 4: the parent's pid
        except (IndexError, ValueError):
            return None
    return None


def _after_papermill(argv: Sequence[str]) -> list[str] | None:
    """The arguments of papermill's command line (``papermill IN OUT ...``,
    ``python -m papermill IN OUT ...``); None for another program."""
    for i, word in enumerate(argv[:3]):
        if Path(word).name == "papermill":
            return list(argv[i + 1 :])
        if word == "-m" and i + 1 < len(argv) and argv[i + 1] == "papermill":
            return list(argv[i + 2 :])
    return None


def _input_argument(args: Sequence[str]) -> str | None:
    """NOTEBOOK_PATH of papermill's arguments: parsed by papermill's own command when it can be
    imported here, else the first argument that names a notebook."""
    try:
        from papermill.cli import papermill as command

        ctx = command.make_context("papermill", list(args), resilient_parsing=True)
        value = ctx.params.get("notebook_path")
        return str(value) if value else None
    except Exception:  # papermill missing here, or a command line it refuses
        pass
    words = [w for w in args if w.endswith(".ipynb") and not w.startswith("-")]
    return words[0] if words else None
