"""The ``kfp`` backend: compile the pipeline for Kubeflow Pipelines v2 and run it on a cluster.

``submit`` compiles the pipeline (``compiler``), connects (``connect``: host, namespace and
credentials from flags, environment, config file or the notebook pod), finds or creates the
experiment, creates the run through ``kfp.Client`` and records it in the run store as a remote
run (KFP run id, UI link, host, namespace, the task name of each step; no local runner). The
handle polls KFP and brings the run's and the steps' statuses into the store (``sync``), so
``kfnb runs``/``show``, the widgets and the side panel show it like a local run; ``cancel``
terminates it on the cluster. Importing this module does not import the ``kfp`` SDK.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...dag import GPU, Pipeline
from ...errors import KfnbError
from ...spec import pipeline_spec
from ...tracking import Store
from .. import Availability, Backend, RunHandle, option
from . import connect, sync
from .compiler import Compiled, CompileOptions, compile_pipeline
from .connect import Endpoint, KfpError

if TYPE_CHECKING:
    from ...settings import Settings

__all__ = ["KfpBackend", "KfpConfig", "KfpError", "KfpRunHandle"]
MAX_FAILED_POLLS = 3


@dataclass
class KfpConfig:
    """Settings of the ``kfp`` backend; each from a flag, its environment variable, or the config
    file's ``kfp`` section (in that order); ``None`` means "not set"."""

    host: str | None = option(
        None,
        "the KFP API URL (default: the in-cluster service inside a Kubeflow notebook pod)",
        env=("KFNB_KFP_HOST", "KF_PIPELINES_ENDPOINT"),
    )
    namespace: str | None = option(
        None, "the Kubeflow profile namespace to run in", env="KFNB_KFP_NAMESPACE"
    )
    experiment: str | None = option(
        None,
        "the experiment (created if missing; default: the notebook's, else the pipeline name)",
        env="KFNB_KFP_EXPERIMENT",
    )
    token: str | None = option(None, "a bearer token", env="KFNB_KFP_TOKEN", hidden=True)
    cookies: str | None = option(
        None, "session cookies (authservice_session=...)", env="KFNB_KFP_COOKIES", hidden=True
    )
    image: str | None = option(None, "base image of steps that name none", env="KFNB_KFP_IMAGE")
    accelerator: str | None = option(
        None, "what a GPU count asks for (default nvidia.com/gpu)", env="KFNB_KFP_ACCELERATOR"
    )
    packages: tuple[str, ...] = option(
        (),
        "pip-installed when a step's pod starts (default: none, the image holds them)",
        env="KFNB_KFP_PACKAGES",
    )
    cache: bool | None = option(
        None, "let KFP reuse a step's cached result (default: yes)", env="KFNB_KFP_CACHE"
    )
    service_account: str | None = option(
        None, "the Kubernetes service account of the run", env="KFNB_KFP_SERVICE_ACCOUNT"
    )
    poll_interval: float | None = option(
        None,
        "seconds between status requests (default: 5)",
        env="KFNB_KFP_POLL_INTERVAL",
        hidden=True,
    )
    run_name: str | None = option(
        None, "the run's name on KFP (default: pipeline and time)", env="KFNB_KFP_RUN_NAME"
    )
    # the environment the settings were read from: where a Kubeflow notebook pod is detected
    env: dict[str, str] | None = field(
        default=None, repr=False, compare=False, metadata={"internal": True}
    )

    @property
    def interval(self) -> float:
        return 5.0 if self.poll_interval is None else float(self.poll_interval)

    def compile_options(self) -> CompileOptions:
        return CompileOptions(
            image=self.image,
            accelerator=self.accelerator or GPU,
            packages=tuple(self.packages),
            cache=self.cache is not False,
        )

    def endpoint(self, host: str | None = None, namespace: str | None = None) -> Endpoint:
        return connect.resolve(
            host or self.host,
            namespace or self.namespace,
            self.token,
            self.cookies,
            env=self.env or {},
        )


class KfpRunHandle(RunHandle):
    """A run on Kubeflow Pipelines, followed by polling its API into the store."""

    def __init__(
        self, store: Store, run_id: str, client: Any, endpoint: Endpoint, poll_interval: float = 5.0
    ) -> None:
        super().__init__(store, run_id)
        self.client = client
        self.endpoint = endpoint
        self.poll_interval = poll_interval
        self._last_poll = 0.0
        self._failed_polls = 0

    @property
    def remote(self) -> dict[str, Any]:
        return self.record.remote or {}

    def refresh(self) -> str:
        remote = self.remote
        with connect.calling(self.endpoint, f"read the state of run {remote.get('id')}"):
            kfp_run = self.client.get_run(remote["id"])
        self._last_poll = time.monotonic()
        return sync.apply(self.store, self.id, kfp_run, remote.get("tasks", {}))

    def wait(self, timeout: float | None = None) -> str:
        """Poll KFP until the run ends (or ``timeout``). A failed poll is retried: only
        ``MAX_FAILED_POLLS`` failures in a row raise (the run goes on on the cluster anyway)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            due = self._last_poll + self.poll_interval - time.monotonic()
            if due <= 0:
                if self._poll() in ("SUCCEEDED", "FAILED", "CANCELED"):
                    return self.status
                due = self.poll_interval
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return self.status
            time.sleep(due if left is None else min(due, left))

    def _poll(self) -> str:
        try:
            status = self.refresh()
        except KfpError as err:
            self._failed_polls += 1
            self._last_poll = time.monotonic()
            if self._failed_polls >= MAX_FAILED_POLLS:
                raise
            self.store.event(self.id, "warning", {"message": f"{err} (will retry)"})
            return self.status
        self._failed_polls = 0
        return status

    def cancel(self) -> None:
        remote = self.remote
        with connect.calling(self.endpoint, f"terminate run {remote.get('id')}"):
            self.client.terminate_run(remote["id"])
        self.store.request_cancel(self.id)
        self._last_poll = 0.0  # the next wait() asks at once


class KfpBackend(Backend):
    name = "kfp"
    config_class = KfpConfig
    config: KfpConfig
    description = "Kubeflow Pipelines"
    detached = True

    @classmethod
    def configure(cls, settings: Settings, given: Mapping[str, Any]) -> KfpConfig:
        cfg: KfpConfig = super().configure(settings, given)
        cfg.env = dict(settings.env)
        return cfg

    @classmethod
    def available(cls, settings: Settings) -> Availability:
        """Available when the kfp SDK imports and a host can be resolved (no network)."""
        problem = _kfp_import_problem()
        if problem is not None:
            return Availability(
                cls.name,
                False,
                f"the kfp package does not import ({problem})",
                fix="pip install 'kfnb[kfp]' in this environment",
            )
        try:
            endpoint = cls.configure(settings, {}).endpoint()
        except KfnbError as err:
            return Availability(cls.name, False, err.message, fix=err.fix)
        where = f" (namespace {endpoint.namespace})" if endpoint.namespace else ""
        return Availability(cls.name, True, f"Kubeflow Pipelines at {endpoint.host}{where}")

    def submit(
        self,
        pipeline: Pipeline,
        params: Mapping[str, Any],
        store: Store,
        *,
        parent_id: str | None = None,
    ) -> RunHandle:
        cfg = self.config
        endpoint = cfg.endpoint()
        with tempfile.TemporaryDirectory(prefix="kfnb-kfp-") as tmp:
            compiled = compile_pipeline(
                pipeline, Path(tmp) / "pipeline.yaml", cfg.compile_options()
            )
            client = connect.client(endpoint)
            experiment = cfg.experiment or pipeline.experiment or compiled.name
            run_name = cfg.run_name or f"{pipeline.name} {time.strftime('%Y-%m-%d %H:%M:%S')}"
            kfp_run_id, experiment_id = _create_run(
                client, endpoint, compiled, dict(params), experiment, run_name, cfg
            )
            source = Path(pipeline.source).resolve() if pipeline.source else None
            run = store.create_run(
                kind="pipeline",
                parent_id=parent_id,
                name=pipeline.name,
                backend=self.name,
                notebook=str(source) if source else None,
                notebook_hash=None,
                params=dict(params),
                steps=[s.name for s in pipeline.steps],
                spec=pipeline_spec(pipeline),
                remote={
                    "id": kfp_run_id,
                    "url": _run_url(client, endpoint, kfp_run_id),
                    "host": endpoint.host,
                    "namespace": endpoint.namespace,
                    "experiment": experiment,
                    "experiment_id": experiment_id,
                    "tasks": compiled.tasks,
                },
            )
            saved = Path(run.artifacts_dir) / "pipeline.yaml"
            shutil.copyfile(compiled.path, saved)
        store.add_artifact(run.id, "pipeline.yaml", saved)
        store.event(
            run.id,
            "submitted",
            {"backend": self.name, "host": endpoint.host, "kfp_run_id": kfp_run_id},
        )
        return KfpRunHandle(store, run.id, client, endpoint, cfg.interval)

    def attach(self, store: Store, run_id: str) -> RunHandle:
        record = store.get_run(run_id)
        remote = record.remote or {}
        if not remote.get("id"):
            raise KfpError(
                f"run {record.id} was not submitted to Kubeflow Pipelines "
                f"(backend {record.backend})"
            )
        cfg = self.config
        endpoint = cfg.endpoint(remote.get("host"), remote.get("namespace"))
        return KfpRunHandle(store, record.id, connect.client(endpoint), endpoint, cfg.interval)


_kfp_import: list[str | None] = []  # cached: importing kfp takes a second


def _kfp_import_problem() -> str | None:
    if not _kfp_import:
        try:
            importlib.import_module("kfp")
            _kfp_import.append(None)
        except Exception as err:  # ImportError, or a broken install of its dependencies
            _kfp_import.append(f"{type(err).__name__}: {err}")
    return _kfp_import[0]


def _create_run(
    client: Any,
    endpoint: Endpoint,
    compiled: Compiled,
    params: dict[str, Any],
    experiment: str,
    run_name: str,
    cfg: KfpConfig,
) -> tuple[str, str]:
    quiet = contextlib.redirect_stdout(io.StringIO())  # the SDK prints links; kfnb shows them
    with connect.calling(endpoint, f"find or create experiment {experiment!r}"), quiet:
        exp = client.create_experiment(experiment, namespace=endpoint.namespace)
    with connect.calling(endpoint, "create the run"), contextlib.redirect_stdout(io.StringIO()):
        result = client.create_run_from_pipeline_package(
            str(compiled.path),
            arguments=params,
            run_name=run_name,
            experiment_id=exp.experiment_id,
            service_account=cfg.service_account,
        )
    return str(result.run_id), str(exp.experiment_id)


def _run_url(client: Any, endpoint: Endpoint, run_id: str) -> str:
    try:
        prefix = client._get_url_prefix()  # what the SDK itself links to (UI host rules)
    except Exception:
        prefix = endpoint.host
    return f"{prefix or endpoint.host}/#/runs/details/{run_id}"
