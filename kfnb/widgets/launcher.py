"""``Launcher``: a form for a notebook's pipeline parameters, a backend, and a Run button that
starts the run and shows a ``RunWidget`` for it below."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from ..errors import KfnbError
from ..params import ParameterError
from ..tracking import Store

JSON_EXAMPLES = {"list": "[1, 2]", "dict": '{"a": 1}'}


def field_for(name: str, type_: str, default: Any) -> Any:
    """The input widget for one parameter, typed after its default."""
    style = {"description_width": "initial"}
    if type_ == "bool":
        return widgets.Checkbox(value=bool(default), description=name, indent=False)
    if type_ == "int":
        return widgets.IntText(value=int(default), description=name, style=style)
    if type_ == "float":
        return widgets.FloatText(value=float(default), description=name, style=style)
    if type_ == "str":
        return widgets.Text(value=str(default), description=name, style=style)
    # list, dict, any: JSON text
    try:
        text = json.dumps(default)
    except (TypeError, ValueError):
        text = repr(default)
    return widgets.Text(value=text, description=name, placeholder="JSON", style=style)


class Launcher(widgets.VBox):
    """Run a notebook's pipeline from a form: ``Launcher(notebook_path)``."""

    def __init__(self, notebook: str | Path, store: Store | None = None, **kwargs: Any) -> None:
        from .. import backends as registry
        from ..dag import Pipeline

        self.notebook = str(Path(notebook).resolve())
        self.store = store
        self.run: Any = None  # the last PipelineRun started
        self.run_widget: Any = None
        self.fields: dict[str, Any] = {}
        self.types: dict[str, str] = {}
        self.error = widgets.HTML()
        self.error.add_class("kfnb-Launcher-error")
        self.title = widgets.HTML()
        self.title.add_class("kfnb-Launcher-title")
        children: list[Any] = [self.title]
        try:
            self.pipeline: Any = Pipeline.from_notebook(self.notebook)
        except (KfnbError, OSError, ValueError) as err:
            self.pipeline = None
            self._show_error(err)
        if self.pipeline is not None:
            self.title.value = (
                f"<b>{html.escape(self.pipeline.name)}</b> ({len(self.pipeline.steps)} steps)"
            )
            for name, p in self.pipeline.parameters.items():
                self.types[name] = p.type
                self.fields[name] = field_for(name, p.type, p.default)
                self.fields[name].add_class(f"kfnb-Launcher-param-{name}")
        self.params_box = widgets.VBox(list(self.fields.values()))
        self.params_box.add_class("kfnb-Launcher-params")
        names = registry.backends()
        self.backend = widgets.Dropdown(
            options=names, value="local" if "local" in names else names[0], description="backend"
        )
        self.backend.add_class("kfnb-Launcher-backend")
        self.max_parallel = widgets.BoundedIntText(
            value=0,
            min=0,
            max=4096,
            description="max parallel (0 = default)",
            style={"description_width": "initial"},
        )
        self.max_parallel.add_class("kfnb-Launcher-max-parallel")
        self.run_button = widgets.Button(
            description="Run", icon="play", button_style="primary", disabled=self.pipeline is None
        )
        self.run_button.add_class("kfnb-Launcher-run")
        self.run_button.on_click(lambda _b: self.start())
        self.output = widgets.Output()
        self.output.add_class("kfnb-Launcher-output")
        children += [
            self.params_box,
            widgets.HBox([self.backend, self.max_parallel, self.run_button]),
            self.error,
            self.output,
        ]
        super().__init__(children=children, **kwargs)
        self.add_class("kfnb-Launcher")

    def _show_error(self, err: BaseException | str) -> None:
        self.error.value = (
            f'<div class="kfnb-error" style="color:#c62828;white-space:pre-wrap">'
            f"{html.escape(str(err), quote=False)}</div>"
        )

    def values(self) -> dict[str, Any]:
        """The parameter values in the form (list, dict and untyped ones read as JSON)."""
        out: dict[str, Any] = {}
        for name, w in self.fields.items():
            kind, value = self.types[name], w.value
            if kind in ("list", "dict", "any") and isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError as err:
                    if kind != "any":
                        raise ParameterError(
                            f"parameter {name!r} takes a {kind} written as JSON; {value!r} is "
                            f"not valid JSON ({err}). Fix: e.g. {JSON_EXAMPLES[kind]}"
                        ) from None
            out[name] = value
        return out

    def start(self) -> Any:
        """What the Run button does: start the run, show it below; the ``PipelineRun`` or None
        (the error is shown in the form)."""
        from IPython.display import display

        from ..api import run
        from .run import RunWidget

        self.error.value = ""
        backend = self.backend.value
        options: dict[str, Any] = {}
        if backend == "local" and self.max_parallel.value > 0:
            options["max_parallel"] = int(self.max_parallel.value)
        try:
            started = run(
                self.notebook,
                self.values(),
                backend=backend,
                wait=False,
                store=self.store,
                **options,
            )
        except KfnbError as err:
            self._show_error(err)
            return None
        self.run = started
        if self.run_widget is not None:
            self.run_widget.close()
        self.run_widget = RunWidget(started)
        self.output.clear_output()
        with self.output:
            display(self.run_widget)
        return started
