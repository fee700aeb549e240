"""Settings, read once at each entry point and passed down.

An entry point (the CLI's ``main``, the Python API functions, the magics, the Jupyter server
extension's load) builds one ``Settings`` from the process environment and the config file
(``kfnb.config``); from there on nothing below reads ``os.environ`` or the file again. Backends
get their typed config from ``kfnb.backends.configure(name, settings, options)``, which applies
one precedence for every option of every backend::

    explicit option (CLI flag, keyword argument, REST field)
      > environment variable (each option names its own, e.g. KFNB_MAX_PARALLEL)
      > the config file's section for the backend
      > the option's default

The environment kept here is a snapshot: a test (or a server) builds ``Settings.load(env=...)``
with whatever environment it wants to model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import CONFIG_ENV, ConfigError, read_file
from .errors import KfnbError

if TYPE_CHECKING:
    from .tracking import Store

HOME_ENV = "KFNB_HOME"
DEBUG_ENV = "KFNB_DEBUG"


@dataclass(frozen=True)
class Settings:
    """Where kfnb keeps its runs, what the config file says, and the environment it ran in."""

    home: Path
    config_file: Path
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    debug: bool = False

    @classmethod
    def load(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        home: str | Path | None = None,
        config_file: str | Path | None = None,
    ) -> Settings:
        """Read the environment (``os.environ`` by default) and the config file once."""
        working_folder()
        env = dict(os.environ if env is None else env)
        raw_home = str(home) if home is not None else env.get(HOME_ENV, "").strip()
        home_path = Path(raw_home or "~/.kfnb").expanduser().resolve()
        raw_cfg = str(config_file) if config_file is not None else env.get(CONFIG_ENV, "").strip()
        cfg = Path(raw_cfg).expanduser() if raw_cfg else home_path / "config.yaml"
        return cls(
            home=home_path,
            config_file=cfg,
            sections=read_file(cfg),
            env=env,
            debug=env.get(DEBUG_ENV, "").strip() not in ("", "0"),
        )

    def section(self, name: str) -> dict[str, Any]:
        """The config file's settings under ``name`` (``{}`` when missing)."""
        return dict(self.sections.get(name) or {})

    def getenv(self, name: str) -> str | None:
        """An environment variable as it was when these settings were loaded ("" is unset)."""
        value = self.env.get(name)
        return value if value not in (None, "") else None

    def check_sections(self, known: list[str]) -> None:
        """Refuse a section of the config file that names nothing kfnb knows."""
        from .config import nearest

        for name in self.sections:
            if name not in known:
                raise ConfigError(
                    f"unknown section {name!r}",
                    where=str(self.config_file),
                    fix=f"{nearest(name, known)}sections are backend names: {', '.join(known)}",
                )

    def store(self) -> Store:
        """The run store in ``home``."""
        from .tracking import Store

        return Store(self.home)


def working_folder() -> Path:
    """This process's current folder. One that was deleted (or moved away) under a shell is an
    error here, at the entry point, not a ``FileNotFoundError`` from each kernel that starts."""
    try:
        return Path(os.getcwd())
    except OSError as err:
        raise KfnbError(
            f"the current folder cannot be used ({err.strerror or err}): it was deleted or "
            "moved away, or cannot be read",
            fix="cd to a folder that exists and run again",
        ) from err
