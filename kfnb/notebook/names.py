"""Which module-level names a pipeline step needs from outside, and which it binds or changes.

A step is a sequence of notebook cell sources run top to bottom in one namespace (the kernel's
``__main__``). :func:`analyze` walks their ASTs once, in execution order, and answers with
:class:`Names`. The caller turns that into variable flow: a step's inputs are names it reads that
an upstream step writes, mutates or deletes; its outputs are what downstream steps read.

The model
---------
* **Flow state.** For the module scope the walk keeps the names *definitely* bound at this point,
  the names *possibly* bound by this code, and for each name whether its latest binding is an
  import statement (and which one). Branches copy the state and merge it afterwards: a name is
  definitely bound after ``if``/``for``/``while``/``try``/``match`` only if it is on every path
  that reaches the end; paths ending in ``raise``, ``return``, ``break`` or ``continue`` do not.
  ``if True``/``while True`` and ``if __name__ == "__main__"`` are taken at face value. Loop
  bodies may run zero times; a ``try`` handler may start after any statement of the body;
  ``with`` bodies are treated as always completing; ``match`` without an irrefutable case may
  match nothing.
* **Reads** are loads of a name that is not definitely bound at that point, so the value may have
  to come from outside (``x = x + 1``, ``del x`` and ``x += 1`` read ``x``).
* **Deferred code.** Function and lambda bodies run when called: a flow-insensitive scope pass
  (like :mod:`symtable`) finds their free names, reported as ``deferred_reads`` unless this code
  binds them at module level. Decorators, defaults and annotations are evaluated at once.
  Class bodies run at once in their own namespace (flow-sensitive, like the module); methods
  inside skip the class namespace. Comprehensions have their own scope: the first iterable is
  read in the enclosing scope, their other free names are read at once, and a walrus inside
  binds in the enclosing scope (conditionally: the loop may run zero times).
* **Mutation** of an existing object is recognised syntactically: assignment, augmented
  assignment or ``del`` through an attribute or subscript (``df.loc[:, "a"] = 1`` mutates
  ``df``), a call of a method in :data:`MUTATING_METHODS` (or named ``set_*``/``add_*``, or with
  a trailing underscore like torch's ``x.add_(1)``), any method call with ``inplace=True``, a
  call of a function in :data:`MUTATING_FUNCTIONS` (its first argument) and an ``out=`` argument.
  Names bound by a plain ``import`` statement are never reported (module state cannot be handed
  between kernels; the downstream import recreates the module); a ``from`` import that is
  mutated is no longer reported in ``imports``. Inside function bodies only ``global`` names
  count, unless ``analyze(..., deferred_mutations=True)``. Aliasing is not tracked.
* **Builtins** (:data:`BUILTINS`) are left out of ``reads`` and ``deferred_reads`` unless this code
  binds that name at module level somewhere; ``builtin_reads`` lists the ones left out, so a
  caller can still take them from an upstream step that shadows a builtin (``input = ...``).
* **IPython.** A cell that is not plain Python is transformed like IPython does (:func:`transform`;
  the lines that look like magics first, the whole cell if that does not parse). ``%time``/``%prun``
  statements and the bodies of ``%%time``, ``%%prun``, ``%%capture``, ``%%step`` and ``%%kfnb``
  are analysed as code run in the namespace; ``%timeit``/``%%timeit`` code runs in its own
  function scope (reads and mutations count, bindings do not). ``%%capture var`` and
  ``%%bash --out var`` (and ``--err``/``--proc`` of the script magics) bind ``var``. Other cell
  magics are opaque. ``$name`` and ``{expr}`` in shell escapes and magic lines are reads
  (IPython expands them from the namespace). ``%run``, ``%store -r`` and star imports bind names
  that cannot be known: they bind nothing here.

The code
--------
This module holds the result (:class:`Names`) and turns the walk's findings into it;
:mod:`.analyzer` walks module-level code in order, :mod:`.scopes` holds the flow state, the pass
over function bodies and the mutation rules, and :mod:`.ipython` reads IPython syntax.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from .analyzer import Analyzer
from .ipython import transform
from .scopes import MUTATING_FUNCTIONS, MUTATING_METHODS

__all__ = [
    "BUILTINS",
    "MUTATING_FUNCTIONS",
    "MUTATING_METHODS",
    "Names",
    "analyze",
    "transform",
]

#: Names always available in an IPython kernel without being defined.
BUILTINS: frozenset[str] = frozenset(dir(builtins)) | frozenset(
    {
        "get_ipython",
        "display",
        "In",
        "Out",
        "exit",
        "quit",
        "_",
        "__",
        "___",
        "_i",
        "_ii",
        "_iii",
        "_ih",
        "_oh",
        "_dh",
        "__IPYTHON__",
        "__builtin__",
        "__builtins__",
        "__name__",
        "__doc__",
        "__package__",
        "__loader__",
        "__spec__",
    }
)


@dataclass(frozen=True)
class Names:
    """What one step's code needs from outside and what it leaves behind (see module doc)."""

    #: Names read at module level before this code definitely binds them.
    reads: frozenset[str] = frozenset()
    #: Free global names of function/lambda bodies defined here, not bound at module level here.
    deferred_reads: frozenset[str] = frozenset()
    #: Names this code binds at module level that may still be bound at its end (including
    #: ``global`` names assigned in functions defined here).
    writes: frozenset[str] = frozenset()
    #: Names whose object may be changed in place.
    mutates: frozenset[str] = frozenset()
    #: Names removed by ``del name`` that may be unbound at the end.
    deletes: frozenset[str] = frozenset()
    #: The part of ``writes`` not bound on every path.
    conditional: frozenset[str] = frozenset()
    #: Name -> the import statement that recreates its final binding (same on every path).
    imports: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: Builtins read (now or in deferred code) that this code does not bind, left out of
    #: ``reads``/``deferred_reads``: an upstream step that shadows one must provide it.
    builtin_reads: frozenset[str] = frozenset()


def analyze(sources: Sequence[str], *, deferred_mutations: bool = False) -> Names:
    """Analyse cell ``sources`` run in order in one namespace.

    ``deferred_mutations`` also counts in-place changes that function bodies make to free global
    names (``def add(v): cache.append(v)`` mutates ``cache``), whether or not they are called.
    Raises :class:`~kfnb.errors.SourceError` naming the cell and line of a syntax error.
    """
    analyzer = Analyzer(deferred_mutations)
    for index, source in enumerate(sources):
        analyzer.cell(index, source)
    return _result(analyzer)


def _result(analyzer: Analyzer) -> Names:
    """What the walk recorded, as :class:`Names`: builtins left out, imports that still hold."""
    end = analyzer.flow
    global_writes = analyzer.scopes.global_writes
    writes = end.possible | global_writes
    deferred = analyzer.deferred | analyzer.scopes.global_reads
    shown = {n for n in analyzer.reads | deferred if n not in BUILTINS or n in analyzer.ever}
    return Names(
        reads=frozenset(analyzer.reads & shown),
        deferred_reads=frozenset((deferred & shown) - analyzer.ever),
        writes=frozenset(writes),
        mutates=frozenset(analyzer.mutates | analyzer.scopes.global_mutates),
        deletes=frozenset(analyzer.deleted - end.bound),
        conditional=frozenset(writes - end.bound),
        imports=MappingProxyType(
            {
                name: text
                for name, text in sorted(end.origin.items())
                if text is not None and name in end.bound and name not in global_writes
            }
        ),
        builtin_reads=frozenset(analyzer.reads | deferred) - shown,
    )
