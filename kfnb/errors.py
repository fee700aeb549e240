"""The one exception root of kfnb and its meaningful subclasses.

Every error a user can cause says what went wrong, where (which notebook cell, which step,
which variable) and how to fix it. Third-party errors are wrapped at the boundary with
``raise ... from err`` so the cause stays visible.
"""

from __future__ import annotations


class KfnbError(Exception):
    """Root of every error kfnb raises on purpose."""


class NotebookError(KfnbError):
    """A problem in the user's notebook, located at one cell.

    ``cell_index`` is the 0-based index of the cell in the notebook as Jupyter shows it (all cells
    counted, markdown included); ``cell_line`` is the cell's first non-empty line, so a person can
    find it without counting cells.
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
        self.message = message
        self.cell_index = cell_index
        self.cell_line = cell_line
        self.fix = fix
        self.path = path
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.path:
            where.append(self.path)
        if self.cell_index is not None:
            first = (self.cell_line or "").strip()
            if len(first) > 60:
                first = first[:57] + "..."
            where.append(f"cell {self.cell_index}" + (f" ({first!r})" if first else ""))
        text = ": ".join([", ".join(where), self.message]) if where else self.message
        if self.fix:
            text += f". Fix: {self.fix}"
        return text


class PipelineError(KfnbError):
    """The pipeline as a whole is invalid: cycles, unknown dependencies, undefined variables."""


class MarshalError(KfnbError):
    """A value could not be saved or loaded between steps."""


class MissingDependencyError(KfnbError, ImportError):
    """An optional dependency is missing; the message names the pip extra that brings it."""

    def __init__(self, package: str, extra: str, feature: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{feature} needs the Python package {package!r}, which is not installed. "
            f"Fix: pip install 'kfnb[{extra}]'"
        )


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
        super().__init__(f"line {lineno}: {message}" if lineno else message)
