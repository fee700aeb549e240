"""How a run shows itself in a notebook: the live ``kfnb.widgets.RunWidget`` in a kernel with
ipywidgets (under a display id, so the saved notebook keeps its final state), plain text
elsewhere. One mixin for every run object a user holds (``PipelineRun``, ``TrainJob``), so they
display alike. Nothing here imports ipywidgets until a widget is made."""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tracking import Run
    from .widgets import RunWidget


class RunDisplay:
    """Mixed into a ``RunView``: ``widget()``, ``_repr_mimebundle_``, ``_ipython_display_``."""

    record: Run

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """In a notebook kernel with ipywidgets: the live ``RunWidget`` (widget view, a static
        HTML snapshot, text); elsewhere the run as text."""
        if widgets_usable():
            return self.widget().bundle()
        from .format import run_lines as render

        return {"text/plain": "\n".join(render(self.record))}

    def _ipython_display_(self) -> None:
        """``display(run)`` or a bare ``run`` in a cell: the live widget under a display id, so
        the saved notebook keeps the final state; plain text elsewhere."""
        if widgets_usable():
            self.widget().display()
            return
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)

    def widget(self, poll: float = 0.5) -> RunWidget:
        """A ``kfnb.widgets.RunWidget`` following this run."""
        from .widgets import RunWidget

        return RunWidget(self, poll=poll)  # type: ignore[arg-type]


def widgets_usable() -> bool:
    """Whether this process is a notebook kernel (IPython with a kernel) with ipywidgets."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    return importlib.util.find_spec("ipywidgets") is not None
