"""Start-up and exit cost of the processes that run one kfnb job and end: ``kfnb``'s command
line, and papermill's command line running the ``kfnb`` engine. Never user kernels, never a
long-lived process that imports kfnb (a notebook's kernel, the Jupyter server).

nbformat imports jsonschema, whose format checkers import every optional helper installed. One
of them, ``rfc3987_syntax`` (pulled in by jupyter-events), builds a grammar at import: 0.8-1.2 s
on these machines, paid by every ``kfnb`` command. jsonschema imports it under
``suppress(ImportError)`` and uses it only to check the ``iri`` string format, which notebook
schemas do not use; kfnb's processes (not the kernel fork server) therefore mark it
unavailable before anything imports it (``skip_slow_optional_imports``). papermill's command
line imports it before any engine loads: there it stays.

papermill's command line holds ~180k objects that the garbage collector tracks once papermill is
imported (nbformat, jsonschema, jupyter_client, tornado, the grammar above...), alive until it
exits. A full collection walks all of them (one took 67 ms in the middle of a run's start), and
so does the interpreter's exit (0.25-0.3 s of every papermill command). ``freeze_imports``
moves them to the collector's permanent generation (``gc.freeze``), never walked again. What the
process makes afterwards is collected as usual, at exit too: an object that becomes garbage only
then (a file left open in a reference cycle) is still finalized, its data written.
"""

from __future__ import annotations

import gc
import sys

SLOW_OPTIONAL_MODULES = ("rfc3987_syntax",)


def skip_slow_optional_imports() -> None:
    for name in SLOW_OPTIONAL_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: "not installed"


def freeze_imports() -> None:
    """Freeze what the collector tracks now, for a process that ends with its one job: cyclic
    garbage already made then is kept until exit, which is near."""
    gc.freeze()
