"""How a run shows itself in a notebook: the live ``kfnb.widgets.RunWidget`` in a kernel with
ipywidgets (under a display id, so the saved notebook keeps its final state), plain text
elsewhere. One mixin for every run object a user holds (``PipelineRun``, ``TrainJob``,
``Study``, ``Batch``), so they display alike. Nothing here imports ipywidgets until a widget is
made.

A headless kernel (papermill running a driver notebook: ``kfnb.session.headless``) has
ipywidgets but no frontend, so a widget would be a model nobody renders and whose updates
nobody saves: there a run shows the static HTML snapshot and text of its state when displayed
(``display_mode() == "static"``). A driver waits for its runs (``wait=True``, ``.wait()``)
before it shows them, so the output notebook holds their final state.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .tracking import Run
    from .widgets import RunWidget

DisplayMode = Literal["widget", "static", "text"]


class RunDisplay:
    """Mixed into a ``RunView``: ``widget()``, ``_repr_mimebundle_``, ``_ipython_display_``."""

    record: Run

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """In a notebook kernel with ipywidgets: the live ``RunWidget`` (widget view, a static
        HTML snapshot, text), in a headless one the snapshot and text; elsewhere text."""
        mode = display_mode()
        if mode == "widget":
            return self.widget().bundle()
        if mode == "static":
            return self.static_bundle()
        from .format import run_lines as render

        return {"text/plain": "\n".join(render(self.record))}

    def _ipython_display_(self) -> None:
        """``display(run)`` or a bare ``run`` in a cell: the live widget under a display id, so
        the saved notebook keeps the final state; in a headless kernel the static HTML snapshot
        and text of the state now; plain text elsewhere."""
        from IPython.display import display

        mode = display_mode()
        if mode == "widget":
            self.widget().display()
        elif mode == "static":
            display(self.static_bundle(), raw=True)
        else:
            display(self._repr_mimebundle_(), raw=True)

    def widget(self, poll: float = 0.5) -> RunWidget:
        """A ``kfnb.widgets.RunWidget`` following this run."""
        from .widgets import RunWidget

        return RunWidget(self, poll=poll)  # type: ignore[arg-type]

    def static_bundle(self) -> dict[str, Any]:
        """The widget's static part (HTML snapshot, text) of the state now, without a widget
        view: what a headless kernel shows (the widget made for it is closed at once)."""
        shown = self.widget()
        try:
            data: dict[str, Any] = shown.bundle(widget_view=False)
            return data
        finally:
            shown.close()


def display_mode() -> DisplayMode:
    """How runs show in this process: ``widget`` in a notebook kernel with ipywidgets and a
    frontend, ``static`` in a headless kernel with ipywidgets (papermill), else ``text``."""
    if "IPython" not in sys.modules:
        return "text"
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return "text"
    if importlib.util.find_spec("ipywidgets") is None:
        return "text"
    from .session import headless

    return "static" if headless() else "widget"


def widgets_usable() -> bool:
    """Whether this process is a notebook kernel (IPython with a kernel) with ipywidgets and
    a frontend to render them (not a headless kernel: ``display_mode``)."""
    return display_mode() == "widget"
