"""Start-up cost of kfnb's own processes (the CLI, which runs papermill), never user kernels.

nbformat imports jsonschema, whose format checkers import every optional helper installed. One
of them, ``rfc3987_syntax`` (pulled in by jupyter-events), builds a grammar at import: 0.8-1.2 s
on these machines, paid by every ``kfnb`` command. jsonschema imports it under
``suppress(ImportError)`` and uses it only to check the ``iri`` string format, which notebook
schemas do not use; kfnb's processes (not the kernel fork server) therefore mark it
unavailable before anything imports it.
"""

from __future__ import annotations

import sys

SLOW_OPTIONAL_MODULES = ("rfc3987_syntax",)


def skip_slow_optional_imports() -> None:
    for name in SLOW_OPTIONAL_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: "not installed"
