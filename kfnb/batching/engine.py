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

The local backend runs each step with papermill too, through an engine it registers under the
same name (``kfnb.backends.local.execute``); a call that carries that engine's arguments
(``kfnb_kernel``) is handed to it, so either registration serves both callers.
"""

from __future__ import annotations

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
        from .papermill_run import execute

        return execute(nb_man, kernel_name, engine=cls, **kwargs)
