"""Pipeline settings kept in the notebook's metadata.

kfnb's own key ``kfnb`` wins over Kale's ``kubeflow_notebook``; both may be present::

    "kfnb": {"name": "churn", "description": "...", "experiment": "churn-dev",
             "image": "python:3.11", "steps_defaults": ["limit:memory:2Gi", "label:team:ml"],
             "files": ["data/*.csv"]}
    "kubeflow_notebook": {"pipeline_name": "churn", "pipeline_description": "...",
                          "experiment_name": "churn-dev", "experiment": {"name": "..."},
                          "base_image": "...", "docker_image": "...", "enable_caching": false,
                          "steps_defaults": ["label:team:ml", "cache:disabled"]}

``files`` lists the data files the steps read (globs relative to the notebook's folder): a
compiled pipeline carries them to its pods. ``steps_defaults`` use the tag language
(``limit:``, ``label:``, ``annotation:``, ``image:``,
``retries:``, ``timeout:``, ``cache:``, ``env:``, ``node-selector:``, ``toleration:``) and apply
to every step unless the step sets its own; a step's env, node selector and labels are merged
over the defaults key by key, its tolerations added to the defaults'. The object form Kale's UI
stores holds ``limits``, ``labels``, ``annotations``, ``env``, ``node_selector`` (objects) and
``tolerations`` (a list of ``KEY=VALUE:EFFECT`` strings), and Kale's own parsed keys
``base_image`` and ``enable_caching``. Kale's ``enable_caching: false`` turns caching off for
every step that does not say ``cache:on``. What kfnb does with Kale's other keys (``volumes``,
``katib_metadata``, ``autosnapshot``, ...) is in docs/kale.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import NotebookError
from .images import IMAGE_FIX, image_problem, short_ref
from .tags import Directive, TagError, parse_tags

KFNB_KEY = "kfnb"
KALE_KEY = "kubeflow_notebook"


@dataclass
class Settings:
    name: str | None = None
    description: str = ""
    experiment: str | None = None
    image: str | None = None
    files: list[str] = field(default_factory=list)
    defaults: Directive = field(default_factory=Directive)


def read_settings(metadata: Mapping[str, Any], path: str | None = None) -> Settings:
    kale = metadata.get(KALE_KEY) or {}
    own = metadata.get(KFNB_KEY) or {}
    for key, value in ((KALE_KEY, kale), (KFNB_KEY, own)):
        if not isinstance(value, Mapping):
            raise NotebookError(
                f"notebook metadata {key!r} must be an object, not {type(value).__name__}",
                fix="correct the notebook metadata",
                path=path,
            )
    kale_experiment = kale.get("experiment")
    if isinstance(kale_experiment, Mapping):
        kale_experiment = kale_experiment.get("name")
    settings = Settings(
        name=own.get("name") or kale.get("pipeline_name") or None,
        description=own.get("description") or kale.get("pipeline_description") or "",
        experiment=own.get("experiment") or kale.get("experiment_name") or kale_experiment or None,
        image=_image(own, kale, path),
        files=_files(own.get("files"), path),
    )
    defaults = Directive(cache=_kale_caching(kale, path))
    for key, source in ((KALE_KEY, kale), (KFNB_KEY, own)):
        tags = source.get("steps_defaults") or []
        try:
            if isinstance(tags, Mapping):  # Kale's UI stores the parsed form at times
                tags = _flatten(tags)
            parsed = parse_tags(tags)
        except TagError as err:
            raise NotebookError(
                f"notebook metadata {key}.steps_defaults: {err.message}", fix=err.fix, path=path
            ) from err
        if parsed.role is not None or parsed.prev:
            raise NotebookError(
                f"notebook metadata {key}.steps_defaults may only hold limit:, "
                "label:, annotation:, image:, retries:, timeout:, cache:, env:, "
                "node-selector: and toleration: entries",
                fix="move step and prev tags onto cells",
                path=path,
            )
        defaults = defaults.merge(parsed)
    settings.defaults = defaults
    return settings


def _image(own: Mapping[str, Any], kale: Mapping[str, Any], path: str | None) -> str | None:
    """The notebook's base image (kfnb's ``image``, else Kale's ``base_image``/``docker_image``),
    checked like every image reference."""
    for source, key in ((own, "image"), (kale, "base_image"), (kale, "docker_image")):
        ref = source.get(key)
        if not ref:
            continue
        problem = image_problem(ref)
        if problem is not None:
            name = KFNB_KEY if source is own else KALE_KEY
            raise NotebookError(
                f"notebook metadata {name}.{key} {short_ref(ref)}: {problem}",
                fix=IMAGE_FIX,
                path=path,
            )
        return str(ref)
    return None


def _kale_caching(kale: Mapping[str, Any], path: str | None) -> bool | None:
    """Kale's pipeline-wide ``enable_caching`` (default on): off turns caching off for every
    step that does not say ``cache:on`` itself."""
    value = kale.get("enable_caching")
    if value is None or isinstance(value, bool):
        return value
    raise NotebookError(
        f"notebook metadata {KALE_KEY}.enable_caching must be true or false, not {value!r}",
        fix="correct the notebook metadata",
        path=path,
    )


def _files(value: Any, path: str | None) -> list[str]:
    """``kfnb.files``: globs of data files relative to the notebook's folder, inside it."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise NotebookError(
            "notebook metadata kfnb.files must be a list of file patterns",
            fix='write e.g. "files": ["data/*.csv", "lookup.json"]',
            path=path,
        )
    for pattern in value:
        parts = pattern.replace("\\", "/").split("/")
        if pattern.startswith(("/", "~")) or ".." in parts:
            raise NotebookError(
                f"notebook metadata kfnb.files: {pattern!r} leaves the notebook's folder",
                fix="list files in the notebook's folder "
                "or below it, relative to it (e.g. data/sales.csv)",
                path=path,
            )
    return [v.strip() for v in value]


def _flatten(parsed: Mapping[str, Any]) -> list[str]:
    tags = []
    for kind, prefix in (
        ("limits", "limit"),
        ("labels", "label"),
        ("annotations", "annotation"),
        ("env", "env"),
        ("node_selector", "node-selector"),
    ):
        for key, value in (parsed.get(kind) or {}).items():
            tags.append(f"{prefix}:{key}:{value}")
    tolerations = parsed.get("tolerations") or []
    if not isinstance(tolerations, list) or not all(isinstance(t, str) for t in tolerations):
        raise TagError(
            f"tolerations must be a list of strings, not {tolerations!r}",
            'write e.g. "tolerations": ["nvidia.com/gpu=present:NoSchedule"]',
        )
    tags += [f"toleration:{spec}" for spec in tolerations]
    if parsed.get("base_image"):  # Kale's parsed form of image: and cache: defaults
        tags.append(f"image:{parsed['base_image']}")
    if isinstance(parsed.get("enable_caching"), bool):
        tags.append("cache:on" if parsed["enable_caching"] else "cache:off")
    return tags
