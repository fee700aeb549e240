"""``Launcher``: a form for a notebook's pipeline parameters, a backend and its options, and a
Run button that starts the run and shows a ``RunWidget`` for it below.

The options form is built from the chosen backend's ``options()`` (a typed input per option,
hidden ones left out), never from its name; ``kfnb.run`` gets only the options the user changed,
so the environment and the config file decide the rest as everywhere else.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from ..backends import Option, get_backend
from ..errors import KfnbError
from ..jsonio import dumps
from ..settings import Settings
from ..tracking import Store


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
    # list, dict, any: text, read as the command line reads it (JSON/YAML)
    return widgets.Text(value=dumps(default), description=name, placeholder="JSON", style=style)


def option_field(option: Option) -> Any:
    """The input widget for one backend option, typed after it. An option without a default
    (``None``: the backend decides) is a text box left empty, its help as the placeholder."""
    style = {"description_width": "initial"}
    common: dict[str, Any] = {"description": option.name, "style": style}
    default = option.default
    if option.type == "bool" and isinstance(default, bool):
        return widgets.Checkbox(value=default, indent=False, description=option.name)
    if option.type == "bool":
        return widgets.Dropdown(options=[("default", None), ("yes", True), ("no", False)], **common)
    if option.type == "int" and isinstance(default, int):
        return widgets.IntText(value=default, **common)
    if option.type == "float" and isinstance(default, (int, float)):
        return widgets.FloatText(value=float(default), **common)
    if option.type == "list" and default:
        return widgets.Text(value=", ".join(map(str, default)), **common)
    text = "" if default is None or option.type == "list" else str(default)
    return widgets.Text(value=text, placeholder="default", **common)


def form_values(
    fields: dict[str, Any], types: dict[str, str]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The parameter values in a form: typed values (numbers, flags, text), and the
    ``(name, text)`` of list, dict and untyped parameters, which are read as the command line's
    ``-p NAME VALUE`` is read (one rule for both). An empty text is left out (a required
    argument then says it is missing)."""
    typed: dict[str, Any] = {}
    texts: list[tuple[str, str]] = []
    for name, w in fields.items():
        if types[name] in ("list", "dict", "any") and isinstance(w.value, str):
            if w.value.strip():
                texts.append((name, w.value))
        else:
            typed[name] = w.value
    return typed, texts


def error_html(err: BaseException | str) -> str:
    """An error as the forms show it: the message (where first), then its fix."""
    if isinstance(err, KfnbError):
        text = f"{err.where}: {err.message}" if err.where else err.message
        detail = (
            f'<div class="kfnb-error-fix"><b>Fix:</b> {html.escape(err.fix)}</div>'
            if err.fix
            else ""
        )
    else:
        text, detail = str(err), ""
    return (
        f'<div class="kfnb-error" style="color:#c62828;white-space:pre-wrap">'
        f"{html.escape(text, quote=False)}{detail}</div>"
    )


class OptionsForm(widgets.VBox):
    """The options of one backend; ``changed()`` -> only those the user changed."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.fields: dict[str, Any] = {}
        self.initial: dict[str, Any] = {}
        for option in get_backend(backend).options():
            if option.hidden:
                continue
            field = option_field(option)
            field.tooltip = option.help
            field.add_class(f"kfnb-Launcher-option-{option.name}")
            self.fields[option.name] = field
            self.initial[option.name] = field.value
        super().__init__(list(self.fields.values()))
        self.add_class("kfnb-Launcher-options")

    def changed(self) -> dict[str, Any]:
        """Option name -> value, for the options whose input differs from how it started
        (the backend types text values: ``Option.parse``)."""
        return {
            name: field.value
            for name, field in self.fields.items()
            if field.value != self.initial[name]
        }


class Launcher(widgets.VBox):
    """Run a notebook's pipeline from a form: ``Launcher(notebook_path)``."""

    def __init__(
        self,
        notebook: str | Path,
        store: Store | None = None,
        settings: Settings | None = None,
        **kwargs: Any,
    ) -> None:
        from .. import backends as registry
        from ..dag import Pipeline

        self.notebook = str(Path(notebook).resolve())
        self.store = store
        self.settings = settings
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
        self.options = OptionsForm(self.backend.value)
        self.options_box = widgets.VBox([self.options])
        self.backend.observe(self._on_backend, names="value")
        self.run_button = widgets.Button(
            description="Run", icon="play", button_style="primary", disabled=self.pipeline is None
        )
        self.run_button.add_class("kfnb-Launcher-run")
        self.run_button.on_click(lambda _b: self.start())
        self.output = widgets.Output()
        self.output.add_class("kfnb-Launcher-output")
        children += [
            self.params_box,
            widgets.HBox([self.backend, self.run_button]),
            self.options_box,
            self.error,
            self.output,
        ]
        super().__init__(children=children, **kwargs)
        self.add_class("kfnb-Launcher")

    def _on_backend(self, change: dict[str, Any]) -> None:
        self.options = OptionsForm(change["new"])
        self.options_box.children = [self.options]

    def _show_error(self, err: BaseException | str) -> None:
        self.error.value = error_html(err)

    def values(self) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        return form_values(self.fields, self.types)

    def start(self) -> Any:
        """What the Run button does: start the run, show it below; the ``PipelineRun`` or None
        (the error is shown in the form)."""
        from IPython.display import display

        from ..api import run
        from .run import RunWidget

        self.error.value = ""
        typed, texts = self.values()
        try:
            started = run(
                self.notebook,
                typed,
                param_strings=texts,
                backend=self.backend.value,
                wait=False,
                store=self.store,
                settings=self.settings,
                **self.options.changed(),
            )
        except KfnbError as err:
            self._show_error(err)
            return None
        self.run = started
        if self.run_widget is not None:
            self.run_widget.close()
        self.run_widget = RunWidget(started, settings=self.settings)
        self.output.clear_output()
        with self.output:
            display(self.run_widget)
        return started
