"""How a live widget shows itself: under a display id, with a static HTML snapshot and text
beside the widget view, the static part replaced by the final state when what it follows ends
(so a saved notebook shows the result without a kernel). One mixin for ``RunWidget`` and
``StudyWidget``; each says what its static part is (``static()``)."""

from __future__ import annotations

import threading
from typing import Any

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class LiveDisplay:
    """Mixed into an ipywidgets widget that sets ``_lock`` and ``display_handle``."""

    _lock: threading.RLock | threading.Lock
    display_handle: Any
    comm: Any

    def static(self) -> tuple[str, str]:
        """(HTML snapshot, text) of the current state; called under ``_lock``."""
        raise NotImplementedError

    def bundle(self, widget_view: bool = True) -> dict[str, Any]:
        """The mime bundle: widget view, static HTML snapshot and text."""
        data: dict[str, Any] = {}
        model_id = self.comm.comm_id if widget_view and self.comm is not None else None
        if model_id:
            data[WIDGET_MIME] = {"version_major": 2, "version_minor": 0, "model_id": model_id}
        with self._lock:
            data["text/html"], data["text/plain"] = self.static()
        return data

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return self.bundle()

    def _ipython_display_(self) -> None:
        self.display()

    def display(self) -> None:
        """Show the widget under a display id; when what it follows ends, its static part is
        replaced by the final state."""
        from IPython.display import display

        with self._lock:  # the follower's last update waits, so it sees this handle
            self.display_handle = display(self.bundle(), raw=True, display_id=True)

    def _on_end(self, record: Any) -> None:
        with self._lock:
            if self.display_handle is not None:
                self.display_handle.update(self.bundle(), raw=True)
