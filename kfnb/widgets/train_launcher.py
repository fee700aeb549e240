"""``TrainLauncher(train)``: a form for a training function's arguments (typed from its
signature), the training backend, nodes, processes, GPUs and image, with Train (start the job,
show it live below) and, for cluster backends, Show YAML (the manifest, nothing sent)."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from ..errors import KfnbError
from .launcher import error_html, field_for, form_values


class TrainLauncher(widgets.VBox):
    """Train ``fn`` from a form: ``TrainLauncher(train)``."""

    def __init__(self, fn: Any, **kwargs: Any) -> None:
        from ..training import BACKENDS
        from ..training.program import signature_parameters

        self.fn = fn
        self.job: Any = None  # the last TrainJob started
        self.job_widget: Any = None
        self.fields: dict[str, Any] = {}
        self.types: dict[str, str] = {}
        self.error = widgets.HTML()
        self.error.add_class("kfnb-TrainLauncher-error")
        self.title = widgets.HTML()
        try:
            parameters, required = signature_parameters(fn)
        except KfnbError as err:
            parameters, required = {}, ()
            self.error.value = error_html(err)
        self.title.value = f"<b>{html.escape(getattr(fn, '__name__', 'train'))}()</b>"
        for name, p in parameters.items():
            if name in required:  # no default: typed in as text, read by its type on Train
                self.types[name] = "any"
                field = widgets.Text(
                    value="",
                    description=name,
                    placeholder=f"required ({p.type})",
                    style={"description_width": "initial"},
                )
            else:
                self.types[name] = p.type
                field = field_for(name, p.type, p.default)
            field.add_class(f"kfnb-TrainLauncher-arg-{name}")
            self.fields[name] = field
        style = {"description_width": "initial"}
        self.backend = widgets.Dropdown(
            options=list(BACKENDS), value="local", description="backend"
        )
        self.nodes = widgets.BoundedIntText(
            value=1, min=1, max=4096, description="nodes", style=style
        )
        self.procs = widgets.BoundedIntText(
            value=1, min=1, max=1024, description="processes per node", style=style
        )
        self.gpus = widgets.BoundedIntText(
            value=0, min=0, max=1024, description="GPUs per node", style=style
        )
        self.image = widgets.Text(
            description="image", placeholder="cluster backends: registry/name:tag", style=style
        )
        self.train_button = widgets.Button(description="Train", icon="play", button_style="primary")
        self.train_button.add_class("kfnb-TrainLauncher-train")
        self.train_button.on_click(lambda _b: self.start())
        self.yaml_button = widgets.Button(description="Show YAML", icon="file-code-o")
        self.yaml_button.add_class("kfnb-TrainLauncher-yaml")
        self.yaml_button.on_click(lambda _b: self.manifest())
        self.backend.observe(lambda _c: self._sync(), names="value")
        self.output = widgets.Output()
        self._sync()
        super().__init__(
            children=[
                self.title,
                widgets.VBox(list(self.fields.values())),
                widgets.HBox([self.backend, self.nodes]),
                widgets.HBox([self.procs, self.gpus]),
                self.image,
                widgets.HBox([self.train_button, self.yaml_button]),
                self.error,
                self.output,
            ],
            **kwargs,
        )
        self.add_class("kfnb-TrainLauncher")

    def _sync(self) -> None:
        cluster = self.backend.value != "local"
        self.nodes.disabled = not cluster
        self.image.disabled = not cluster
        self.yaml_button.disabled = not cluster
        if not cluster:
            self.nodes.value = 1

    def _how(self) -> dict[str, Any]:
        return {
            "backend": self.backend.value,
            "nodes": self.nodes.value,
            "procs_per_node": self.procs.value,
            "gpus_per_node": self.gpus.value,
            "image": self.image.value.strip() or None,
        }

    def _program(self) -> Any:
        from ..training import Program

        typed, texts = form_values(self.fields, self.types)
        return Program.from_function(self.fn, typed, texts)

    def start(self) -> Any:
        """What Train does: the job (shown live below), or None (the error is shown)."""
        from IPython.display import display

        from ..training import submit

        self.error.value = ""
        try:
            job = submit(self._program(), **self._how())
        except KfnbError as err:
            self.error.value = error_html(err)
            return None
        self.job = job
        if self.job_widget is not None:
            self.job_widget.close()
        self.job_widget = job.widget()
        self.output.clear_output()
        with self.output:
            display(self.job_widget)
        return job

    def manifest(self) -> str | None:
        """What Show YAML does: the cluster manifest as YAML (shown below), nothing sent."""
        import yaml
        from IPython.display import Markdown, display

        from ..training import submit

        self.error.value = ""
        try:
            text = yaml.safe_dump(
                submit(self._program(), dry_run=True, **self._how()), sort_keys=False
            )
        except KfnbError as err:
            self.error.value = error_html(err)
            return None
        self.output.clear_output()
        with self.output:
            display(Markdown(f"```yaml\n{text}```"))
        return text
