"""User settings kept in a YAML file: ``$KFNB_CONFIG``, else ``<KFNB_HOME>/config.yaml``.

One section per backend, each key a field of that backend's config dataclass, e.g.::

    kfp:
      host: https://kubeflow.example.org/pipeline
      namespace: alice
      image: registry.example.org/team/kfnb-runtime:0.1.0

What a user passes explicitly (a CLI flag, a keyword argument) wins over the environment, which
wins over this file. A missing file is an empty configuration; a malformed one is an error
naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .errors import KfnbError

CONFIG_ENV = "KFNB_CONFIG"


class ConfigError(KfnbError):
    """The configuration file cannot be read or holds something kfnb cannot use."""


def config_path() -> Path:
    raw = os.environ.get(CONFIG_ENV, "").strip()
    if raw:
        return Path(raw).expanduser()
    from .tracking import default_home

    return default_home() / "config.yaml"


def section(name: str) -> dict[str, Any]:
    """The settings under ``name`` (``{}`` when the file or the section is missing)."""
    path = config_path()
    try:
        data = yaml.safe_load(path.read_text()) if path.exists() else None
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(
            f"cannot read the kfnb configuration {path}: {err}. Fix: correct the "
            f"file or point {CONFIG_ENV} elsewhere"
        ) from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"the kfnb configuration {path} must be a mapping of sections, not a "
            f"{type(data).__name__}"
        )
    found = data.get(name) or {}
    if not isinstance(found, dict):
        raise ConfigError(f"section {name!r} of {path} must be a mapping of settings")
    return dict(found)
