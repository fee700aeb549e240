"""The user's config file: ``$KFNB_CONFIG``, else ``<KFNB_HOME>/config.yaml``.

One section per backend, each key an option of that backend (``kfnb backends`` lists them),
e.g.::

    local:
      max_parallel: 4
      preload: [numpy, pandas]
    kfp:
      host: https://kubeflow.example.org/pipeline
      namespace: alice
      image: registry.example.org/team/kfnb-runtime:0.1.0

The file is read once, by ``kfnb.settings.Settings.load`` at an entry point; what a user passes
explicitly (a CLI flag, a keyword argument, a REST field) wins over the environment, which wins
over this file. A missing file is an empty configuration; a malformed one, an unknown section or
an unknown key is an error naming the file and the nearest known name.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import KfnbError

CONFIG_ENV = "KFNB_CONFIG"


class ConfigError(KfnbError):
    """The configuration file cannot be read or holds something kfnb cannot use."""


def read_file(path: Path) -> dict[str, dict[str, Any]]:
    """The sections of the config file at ``path`` (``{}`` when it does not exist)."""
    if not path.exists():
        return {}
    import yaml  # only when there is a file: every command reads the settings (~20 ms)

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(
            f"cannot read the kfnb configuration: {err}",
            where=str(path),
            fix=f"correct the file or point {CONFIG_ENV} elsewhere",
        ) from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"the kfnb configuration must be a mapping of sections, not a {type(data).__name__}",
            where=str(path),
            fix="write one section per backend, e.g. `kfp: {host: URL}`",
        )
    sections: dict[str, dict[str, Any]] = {}
    for name, found in data.items():
        if found is None:
            found = {}
        if not isinstance(found, dict):
            raise ConfigError(
                f"section {name!r} must be a mapping of settings",
                where=str(path),
                fix=f"write `{name}:` followed by indented `key: value` lines",
            )
        sections[str(name)] = dict(found)
    return sections


def nearest(name: str, known: Iterable[str]) -> str:
    """``"did you mean 'x'? "`` for the closest of ``known``, or ``""``."""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def check_keys(
    section: str, values: Mapping[str, Any], known: Iterable[str], path: Path | None
) -> None:
    """Refuse a key of ``section`` that is not one of ``known``, naming the nearest."""
    names = sorted(known)
    for key in values:
        if key not in names:
            raise ConfigError(
                f"unknown setting {key!r} in section {section}",
                where=str(path) if path else None,
                fix=f"{nearest(key, names)}use one of: {', '.join(names)}",
            )
