"""The ``kfnb`` papermill engine: ``papermill --engine kfnb in.ipynb out.ipynb -p n 5``.

papermill loads every registered engine while ``import papermill`` runs, so this module stays
light: it imports papermill's ``Engine`` base (already defined when papermill loads its entry
points) and nothing of kfnb's run machinery, which ``execute_managed_notebook`` imports on use
(``kfnb.batching.papermill_run``). If papermill's base cannot be imported, the class still
exists, so loading the entry point never breaks ``import papermill``.

The engine runs the (already parameterized) notebook as a kfnb pipeline through ``kfnb.run`` on
the local backend: steps in parallel on warm kernels, the step cache, a run in the store. The
output notebook is the input notebook with every cell's outputs, execution counts and
papermill metadata, collected from the steps' executed notebooks (``papermill_run``).

When the process is papermill's command line asked for ``--engine kfnb`` (``IN_PAPERMILL_CLI``),
importing this module also starts the kernels' fork server (``_start_kernels_ahead``): it imports
ipykernel while papermill finishes importing; and the engine, when it runs, freezes what
papermill's import made for the collector (``kfnb._startup.freeze_imports``: 0.3 s of
papermill's exit). No other process starts or changes anything here.

The local backend runs each step with papermill too, through an engine it registers under the
same name (``kfnb.backends.local.execute``); a call that carries that engine's arguments
(``kfnb_kernel``) is handed to it, so either registration serves both callers.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

try:
    from papermill.engines import Engine as _Base
except Exception:  # pragma: no cover - papermill missing or broken: keep the class importable
    _Base = object  # type: ignore[assignment,misc]

ENGINE_NAME = "kfnb"
__all__ = ["ENGINE_NAME", "KfnbEngine"]


class KfnbEngine(_Base):  # type: ignore[misc,valid-type]
    """Run a notebook as a kfnb pipeline and write one papermill output notebook."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        if "kfnb_kernel" in kwargs:  # a step of a kfnb run, on its pre-started kernel
            from ..backends.local.execute import WarmKernelEngine

            return WarmKernelEngine.execute_managed_notebook(nb_man, kernel_name, **kwargs)
        if IN_PAPERMILL_CLI:  # the process ends with this notebook
            from .._startup import freeze_imports

            freeze_imports()
        from .papermill_run import execute

        return execute(nb_man, kernel_name, engine=cls, **kwargs)


def _papermill_cli_asks_for_kfnb(argv: list[str]) -> bool:
    """Whether ``argv`` is papermill's command line with ``--engine kfnb``."""
    program = Path(argv[0]) if argv else Path()
    cli = program.name == "papermill" or program.parts[-2:] == ("papermill", "__main__.py")
    args = argv[1:]
    asked = any(
        (a == "--engine" and args[i + 1 : i + 2] == [ENGINE_NAME]) or a == "--engine=kfnb"
        for i, a in enumerate(args)
    )
    return cli and asked


def _start_kernels_ahead(argv: list[str], env: dict[str, str] | os._Environ[str]) -> bool:
    """papermill imports every engine while ``import papermill`` runs. When this process is
    papermill's command line asked for ``--engine kfnb``, start the kernels' fork server now:
    it imports ipykernel (~0.3 s) while papermill finishes importing and reads the notebook, and
    the run's kernel pool takes it (``kfnb.kernels.forked.take``; unused, it is stopped at
    exit). Any other process that imports papermill starts nothing. Never raises."""
    try:
        if not _papermill_cli_asks_for_kfnb(argv):
            return False
        if env.get("KFNB_FORK_SERVER", "").strip().lower() in ("0", "false", "no", "off"):
            return False
        from ..kernels.forked import start_ahead

        start_ahead([m.strip() for m in env.get("KFNB_PRELOAD", "").split(",") if m.strip()])
        return True
    except Exception:  # an optimisation: papermill's import must never suffer from it
        return False


try:
    IN_PAPERMILL_CLI = _papermill_cli_asks_for_kfnb(list(getattr(sys, "argv", [])))
except Exception:  # pragma: no cover - an odd embedding: papermill's import must not suffer
    IN_PAPERMILL_CLI = False
_start_kernels_ahead(sys.argv, os.environ)
