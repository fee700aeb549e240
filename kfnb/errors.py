"""The one exception root of kfnb and its meaningful subclasses.

Every error a user can cause says what went wrong (``message``), where (``where``: a notebook
cell, a step, a file, a run) and how to fix it (``fix``). These are attributes: ``str(err)``
renders them once as ``"WHERE: MESSAGE. Fix: FIX"`` for a terminal, and the REST API, the
widgets and the magics read the attributes (``to_dict()``), never the text. Third-party errors
are wrapped at the boundary with ``raise ... from err`` so the cause stays visible.
"""

from __future__ import annotations

from typing import Any


class KfnbError(Exception):
    """Root of every error kfnb raises on purpose.

    ``KfnbError("no such backend 'x'", fix="use one of: local, kfp", where="kfnb.toml")``
    """

    def __init__(
        self, message: str = "", *, fix: str | None = None, where: str | None = None
    ) -> None:
        self.message = message
        self.fix = fix
        self.where = where
        super().__init__(self.render())

    def render(self) -> str:
        """The error as one line of text: ``WHERE: MESSAGE. Fix: FIX``."""
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.fix:
            text = text.rstrip(" ")
            if not text.endswith("..."):
                text = text.removesuffix(".") + "."
            text += f" Fix: {self.fix}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """``{"message", "fix", "where"}``: what every surface shows, without parsing text."""
        return {"message": self.message, "fix": self.fix, "where": self.where}

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes, attributes kept
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[KfnbError], state: dict[str, Any]) -> KfnbError:
    err = cls.__new__(cls)
    err.__dict__.update(state)
    Exception.__init__(err, err.render())
    return err


class NotebookError(KfnbError):
    """A problem in the user's notebook, located at one cell.

    ``cell_index`` is the 0-based index of the cell in the notebook as Jupyter shows it (all cells
    counted, markdown included); ``cell_line`` is the cell's first non-empty line, so a person can
    find it without counting cells. ``where`` is rendered from the path and the cell.
    """

    def __init__(
        self,
        message: str,
        *,
        cell_index: int | None = None,
        cell_line: str | None = None,
        fix: str | None = None,
        path: str | None = None,
    ) -> None:
        self.cell_index = cell_index
        self.cell_line = cell_line
        self.path = path
        super().__init__(message, fix=fix, where=self._where())

    def _where(self) -> str | None:
        where = []
        if self.path:
            where.append(self.path)
        if self.cell_index is not None:
            first = (self.cell_line or "").strip()
            if len(first) > 60:
                first = first[:57] + "..."
            where.append(f"cell {self.cell_index}" + (f" ({first!r})" if first else ""))
        return ", ".join(where) or None

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "cell_index": self.cell_index,
            "cell_line": self.cell_line,
            "path": self.path,
        }


class PipelineError(KfnbError):
    """The pipeline as a whole is invalid: cycles, unknown dependencies, undefined variables."""


class MarshalError(KfnbError):
    """A value could not be saved or loaded between steps."""


class MissingDependencyError(KfnbError, ImportError):
    """An optional dependency is missing; the fix names the pip extra that brings it."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        self.package = package
        self.extra = extra
        KfnbError.__init__(
            self,
            f"{feature} needs the Python package {package!r}, which is not installed",
            fix=f"pip install 'kfnb[{extra}]'",
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.__dict__.copy()))


class SourceError(KfnbError):
    """Code that cannot be parsed as (IPython-flavoured) Python.

    ``cell`` is the position of the offending source in the sequence that was analysed and
    ``lineno`` the 1-based line inside it; callers turn this into a ``NotebookError`` that names
    the notebook cell.
    """

    def __init__(self, message: str, *, cell: int, lineno: int | None) -> None:
        self.cell = cell
        self.lineno = lineno
        self.msg = message
        super().__init__(message, where=f"line {lineno}" if lineno else None)


class NotResumable(KfnbError):
    """A study or batch that cannot go on from here: still running, or tuning a function this
    process does not hold, or gone from its cluster."""
