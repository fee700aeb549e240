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
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import SourceError

#: Methods that change their receiver in place (lists, dicts, sets, deques, arrays, estimators,
#: torch modules and optimisers). Also mutating: ``set_*``, ``add_*`` and ``name_`` methods.
MUTATING_METHODS: frozenset[str] = frozenset({
    "append", "appendleft", "extend", "extendleft", "insert", "pop", "popleft", "popitem",
    "remove", "clear", "update", "setdefault", "sort", "reverse", "rotate", "add", "discard",
    "difference_update", "intersection_update", "symmetric_difference_update",
    "__setitem__", "__delitem__", "fill", "resize", "put", "itemset", "setflags",
    "fit", "partial_fit", "fit_transform", "fit_predict", "set_params", "load_state_dict",
    "load_weights", "zero_grad", "train", "eval", "to", "cuda", "cpu", "step",
    "register_buffer", "register_parameter", "add_module",
})

#: Functions (by their last name: ``np.random.shuffle``, ``heapq.heappush``) that change their
#: first argument in place.
MUTATING_FUNCTIONS: frozenset[str] = frozenset({
    "shuffle", "heappush", "heappop", "heapify", "heappushpop", "heapreplace", "insort",
    "insort_left", "insort_right", "setattr", "delattr", "copyto", "fill_diagonal", "putmask",
    "place",
})

#: Names always available in an IPython kernel without being defined.
BUILTINS: frozenset[str] = frozenset(dir(builtins)) | frozenset({
    "get_ipython", "display", "In", "Out", "exit", "quit", "_", "__", "___", "_i", "_ii",
    "_iii", "_ih", "_oh", "_dh", "__IPYTHON__", "__builtin__", "__builtins__", "__name__",
    "__doc__", "__package__", "__loader__", "__spec__",
})

_NAMESPACE_CELL_MAGICS = frozenset({"time", "prun", "capture", "step", "kfnb"})
_SCRIPT_MAGICS = frozenset({"bash", "sh", "script", "perl", "ruby", "python", "python2",
                            "python3", "pypy"})
_NO_VAR_EXPAND = frozenset({"time", "timeit", "prun"})
_VALUED_OPTIONS = {"time": "", "timeit": "nrpv", "prun": "DlsT"}
_ESCAPED = re.compile(r"^\s*([%!?/,;]|[\w.,\s*()\[\]]*=\s*[%!])|\?\s*$")
_DOLLAR = re.compile(r"(?<!\$)\$([A-Za-z_]\w*)")
_BRACES = re.compile(r"(?<!\{)\{([^{}]+)\}(?!\})")

_Function = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
_Comprehension = ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp


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
    analyzer = _Analyzer(deferred_mutations)
    for index, source in enumerate(sources):
        analyzer.cell(index, source)
    return analyzer.result()


def transform(source: str) -> str:
    """Turn IPython syntax (magics, ``!`` escapes, ``obj?``) into Python, keeping line numbers."""
    return "\n" * _blank_lines(source) + _transformer().transform_cell(source)


def _blank_lines(source: str) -> int:
    """How many leading blank lines IPython drops before transforming a cell."""
    text = source.lstrip("\n \t\r")
    return source[: len(source) - len(text)].count("\n") if text else 0


def _transform_lines(source: str) -> str | None:
    """Transform only the lines that look like IPython syntax, one by one, or None if none do.

    IPython tokenizes the whole cell several times, which is slow for long cells; a line taken
    out of its context may be transformed wrongly, but then the result fails to parse (and the
    caller falls back to :func:`transform`) or differs only inside a string literal.
    """
    lines = source.splitlines()
    changed = False
    for i, line in enumerate(lines):
        if _ESCAPED.search(line):
            try:
                new = _transformer().transform_cell(line).rstrip("\n")
            except Exception:
                return None
            if "\n" in new:
                return None
            lines[i], changed = line[: len(line) - len(line.lstrip())] + new, True
    return "\n".join(lines) if changed else None


@functools.lru_cache(maxsize=1)
def _transformer() -> Any:
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager()


# -- flow state -------------------------------------------------------------------------------
@dataclass
class _Flow:
    """Module (or class body) state at one program point."""

    bound: set[str] = field(default_factory=set)  # on every path
    possible: set[str] = field(default_factory=set)  # on some path, by this code
    origin: dict[str, str | None] = field(default_factory=dict)  # import text, or None
    dead: bool = False  # no path reaches this point

    def copy(self, dead: bool = False) -> _Flow:
        return _Flow(set(self.bound), set(self.possible), dict(self.origin), dead)

    @staticmethod
    def merge(flows: Iterable[_Flow]) -> _Flow:
        flows = list(flows)
        live = [f for f in flows if not f.dead]
        if not live:
            return flows[0].copy(dead=True)
        out = live[0].copy()
        for other in live[1:]:
            out.bound &= other.bound
            out.possible |= other.possible
            if out.origin != other.origin:
                out.origin = {
                    name: out.origin.get(name)
                    if name in out.origin and name in other.origin
                    and out.origin[name] == other.origin[name] else None
                    for name in out.origin.keys() | other.origin.keys()
                }
        return out


# -- helpers shared by both visitors ----------------------------------------------------------
def _root(expr: ast.expr, through_calls: bool) -> str | None:
    """The variable at the base of ``a.b[c].d`` (through ``x.get(k)`` calls if asked)."""
    while True:
        if isinstance(expr, ast.Name):
            return expr.id
        if isinstance(expr, (ast.Attribute, ast.Subscript, ast.Starred)):
            expr = expr.value
        elif (through_calls and isinstance(expr, ast.Call)
              and isinstance(expr.func, ast.Attribute)):
            expr = expr.func.value
        else:
            return None


def _is_mutating_method(name: str) -> bool:
    return (name in MUTATING_METHODS or name.startswith(("set_", "add_"))
            or (name.endswith("_") and not name.startswith("_")))


def _call_mutations(node: ast.Call) -> list[str]:
    """Root names a call changes in place."""
    roots: list[ast.expr] = []
    func = node.func
    if isinstance(func, ast.Attribute) and (_is_mutating_method(func.attr) or any(
            kw.arg == "inplace" and isinstance(kw.value, ast.Constant) and kw.value.value is True
            for kw in node.keywords)):
        roots.append(func.value)
    last = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if last in MUTATING_FUNCTIONS and node.args:
        roots.append(node.args[0])
    roots.extend(kw.value for kw in node.keywords if kw.arg == "out")
    return [name for expr in roots if (name := _root(expr, through_calls=False))]


def _split_cell_magic(source: str) -> tuple[str, str, str, int] | None:
    """(name, line, body, header line) of a ``%%magic`` cell, as IPython's ``cell_magic`` splits
    it (done here because the transformer tokenizes the whole body first, which is slow)."""
    lines = source.splitlines(keepends=True)
    first = next((i for i, line in enumerate(lines) if line and not line.isspace()), None)
    if first is None or not lines[first].startswith("%%") or re.match(r"%%\w+\?", lines[first]):
        return None
    name, _, line = lines[first][2:].rstrip().partition(" ")
    return name, line, "".join(lines[first + 1:]), first + 1


def _ipython_call(node: ast.Call) -> tuple[str, list[str]] | None:
    """``get_ipython().method('literal', ...)`` as (method, args), as IPython's transforms emit."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call)
            and isinstance(func.value.func, ast.Name) and func.value.func.id == "get_ipython"):
        return None
    args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return (func.attr, args) if len(args) == len(node.args) else None


def _expansion_names(text: str) -> set[str]:
    """Names IPython substitutes into a shell or magic line: ``$name`` and ``{expr}``."""
    names = set(_DOLLAR.findall(text))
    for expr in _BRACES.findall(text):
        try:
            tree = ast.parse(expr.strip(), mode="eval")
        except (SyntaxError, ValueError):
            continue
        names.update(n.id for n in ast.walk(tree)
                     if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load))
    return names


def _magic_expansions(method: str, args: list[str]) -> set[str]:
    if method in ("system", "getoutput") and args:
        return _expansion_names(args[0])
    if method in ("run_line_magic", "run_cell_magic") and len(args) >= 2:
        return set() if args[0] in _NO_VAR_EXPAND else _expansion_names(args[1])
    return set()


def _strip_options(line: str, valued: str) -> str:
    """Drop leading ``-x``/``-n 10``/``--long`` options from a magic line, leaving the code."""
    rest = line.lstrip()
    while rest.startswith("-") and (match := re.match(r"(\S+)\s*", rest)):
        token, rest = match.group(1), rest[match.end():]
        if token == "--":
            break
        flags = "" if token.startswith("--") else token[1:]
        for i, flag in enumerate(flags):
            if flag in valued:
                if i == len(flags) - 1:
                    rest = re.sub(r"^\S+\s*", "", rest, count=1)
                break
    return rest


def _magic_targets(name: str, line: str) -> list[str]:
    """Names a cell magic binds from its line: ``%%capture var``, ``%%bash --out var``."""
    words = line.split()
    if name == "capture":
        plain = [w for w in words if not w.startswith("-")]
        return plain[-1:] if plain and plain[-1].isidentifier() else []
    if name not in _SCRIPT_MAGICS:
        return []
    found = []
    for i, word in enumerate(words):
        option, _, value = word.partition("=")
        if option in ("--out", "--err", "--proc"):
            value = value or (words[i + 1] if i + 1 < len(words) else "")
            if value.isidentifier():
                found.append(value)
    return found


def _signature(args: ast.arguments, annotations: bool) -> list[ast.expr]:
    """Expressions of a def/lambda signature evaluated at definition time."""
    exprs: list[ast.expr] = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
    if annotations:
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        exprs.extend(a.annotation for a in every if a is not None and a.annotation is not None)
    return exprs


def _params(args: ast.arguments) -> set[str]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    return {a.arg for a in every if a is not None}


def _static_truth(test: ast.expr) -> bool | None:
    if isinstance(test, ast.Constant):
        return bool(test.value)
    if (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__" and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq) and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__"):
        return True
    return None


def _irrefutable(case: ast.match_case) -> bool:
    def always(p: ast.pattern) -> bool:
        return ((isinstance(p, ast.MatchAs) and p.pattern is None)
                or (isinstance(p, ast.MatchOr) and any(always(q) for q in p.patterns)))
    return case.guard is None and always(case.pattern)


# -- deferred and nested scopes ---------------------------------------------------------------
@dataclass
class _Scope:
    kind: str  # "function", "class" or "comprehension"
    params: set[str] = field(default_factory=set)
    loads: set[str] = field(default_factory=set)
    stores: set[str] = field(default_factory=set)
    globals: set[str] = field(default_factory=set)
    nonlocals: set[str] = field(default_factory=set)
    mutated: set[str] = field(default_factory=set)
    child_now: set[str] = field(default_factory=set)  # free in nested scopes run right away
    child_later: set[str] = field(default_factory=set)  # free in nested function bodies
    child_mut_now: set[str] = field(default_factory=set)
    child_mut_later: set[str] = field(default_factory=set)


@dataclass
class _Free:
    """Free names of a scope: read (or mutated) when it runs, or later by nested functions."""

    now: set[str]
    later: set[str]
    mut_now: set[str]
    mut_later: set[str]


class _ScopeVisitor(ast.NodeVisitor):
    """Flow-insensitive free-name analysis of code with its own scope (like :mod:`symtable`)."""

    def __init__(self) -> None:
        self.stack: list[_Scope] = []
        self.walrus_out: set[str] = set()  # walrus targets that escape to the module scope
        self.global_reads: set[str] = set()  # loads of names declared `global`
        self.global_writes: set[str] = set()
        self.global_mutates: set[str] = set()

    def function(self, node: _Function) -> _Free:
        body = node.body if isinstance(node.body, list) else [node.body]
        return self._run(_Scope("function", params=_params(node.args)), body)

    def body(self, stmts: Sequence[ast.AST]) -> _Free:
        return self._run(_Scope("function"), stmts)

    def comprehension(self, node: _Comprehension) -> _Free:
        """Everything but the first iterable, which the enclosing scope evaluates."""
        scope = _Scope("comprehension")
        self.stack.append(scope)
        for i, gen in enumerate(node.generators):
            self.visit(gen.target)
            if i:
                self.visit(gen.iter)
            for cond in gen.ifs:
                self.visit(cond)
        for elt in ([node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]):
            self.visit(elt)
        self.stack.pop()
        return self._resolve(scope)

    def _run(self, scope: _Scope, stmts: Sequence[ast.AST]) -> _Free:
        self.stack.append(scope)
        for stmt in stmts:
            self.visit(stmt)
        self.stack.pop()
        return self._resolve(scope)

    def _resolve(self, s: _Scope) -> _Free:
        self.global_reads |= s.loads & s.globals
        self.global_writes |= s.stores & s.globals
        self.global_mutates |= s.mutated & s.globals
        if s.kind == "class":  # nested scopes skip the class namespace
            local = s.stores - s.globals
            return _Free((s.loads - local) | s.child_now, set(s.child_later),
                         (s.mutated - local) | s.child_mut_now, set(s.child_mut_later))
        local = (s.stores | s.params) - s.globals - s.nonlocals
        return _Free(((s.loads - s.globals) | s.child_now) - local, s.child_later - local,
                     ((s.mutated - s.globals) | s.child_mut_now) - local,
                     s.child_mut_later - local)

    def _child(self, free: _Free, runs_now: bool) -> None:
        top = self.stack[-1]
        if runs_now:
            top.child_now |= free.now
            top.child_mut_now |= free.mut_now
        else:
            top.child_later |= free.now
            top.child_mut_later |= free.mut_now
        top.child_later |= free.later
        top.child_mut_later |= free.mut_later

    def visit_Name(self, node: ast.Name) -> None:
        top = self.stack[-1]
        (top.loads if isinstance(node.ctx, ast.Load) else top.stores).add(node.id)

    def visit_Global(self, node: ast.Global) -> None:
        self.stack[-1].globals.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.stack[-1].nonlocals.update(node.names)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        returns = [node.returns] if node.returns is not None else []
        for expr in [*node.decorator_list, *_signature(node.args, True), *returns]:
            self.visit(expr)
        self.stack[-1].stores.add(node.name)
        self._child(self.function(node), runs_now=False)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for expr in _signature(node.args, False):
            self.visit(expr)
        self._child(self.function(node), runs_now=False)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expr)
        self.stack[-1].stores.add(node.name)
        self._child(self._run(_Scope("class"), node.body), runs_now=True)

    def _comprehension(self, node: _Comprehension) -> None:
        self.visit(node.generators[0].iter)
        self._child(self.comprehension(node), runs_now=True)

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        for scope in reversed(self.stack):
            if scope.kind != "comprehension":
                scope.stores.add(node.target.id)
                return
        self.walrus_out.add(node.target.id)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self.stack[-1].stores.add(alias.asname or alias.name.split(".")[0])

    visit_ImportFrom = visit_Import

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.stack[-1].stores.add(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.MatchAs | ast.MatchStar) -> None:
        if node.name:
            self.stack[-1].stores.add(node.name)
        self.generic_visit(node)

    visit_MatchStar = visit_MatchAs

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.stack[-1].stores.add(node.rest)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):
            self.stack[-1].loads.add(node.target.id)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute | ast.Subscript) -> None:
        if not isinstance(node.ctx, ast.Load) and (root := _root(node.value, True)):
            self.stack[-1].mutated.add(root)
        self.generic_visit(node)

    visit_Subscript = visit_Attribute

    def visit_Call(self, node: ast.Call) -> None:
        magic = _ipython_call(node)
        if magic is not None:
            self.stack[-1].loads.update(_magic_expansions(*magic))
        self.stack[-1].mutated.update(_call_mutations(node))
        self.generic_visit(node)


# -- the module-level, flow-sensitive walk ----------------------------------------------------
class _Analyzer(ast.NodeVisitor):
    """Walks cells in execution order, keeping the module's :class:`_Flow`."""

    def __init__(self, deferred_mutations: bool) -> None:
        self.flow = _Flow()
        self._module: _Flow | None = None  # the module's flow while inside a class body
        self._class_globals: list[set[str]] = []
        self._loops: list[tuple[list[_Flow], list[_Flow]]] = []  # (breaks, continues)
        self._raises: list[list[_Flow]] = []  # states at `raise` inside each enclosing try
        self._cond = 0  # > 0 inside the lazily evaluated part of `a if c else b`, `a and b`
        self._lazy_annotations = False
        self._deferred_mutations = deferred_mutations
        self._cell = 0
        self._offset = 0  # line in the cell = line in the code being walked + offset
        self._scopes = _ScopeVisitor()
        self._reads: set[str] = set()
        self._deferred: set[str] = set()
        self._mutates: set[str] = set()
        self._deleted: set[str] = set()
        self._ever: set[str] = set()  # every name bound at module level

    # -- entry points
    def cell(self, index: int, source: str) -> None:
        self._cell = index
        try:
            self._code(source, 0)
        except RecursionError as err:
            raise SourceError("code nested too deeply to analyse", cell=index,
                              lineno=None) from err
        self.flow.dead = False  # the next cell runs even if this one always raises

    def result(self) -> Names:
        end = self.flow
        global_writes = self._scopes.global_writes
        writes = end.possible | global_writes
        deferred = self._deferred | self._scopes.global_reads
        shown = {n for n in self._reads | deferred if n not in BUILTINS or n in self._ever}
        return Names(
            reads=frozenset(self._reads & shown),
            deferred_reads=frozenset((deferred & shown) - self._ever),
            writes=frozenset(writes),
            mutates=frozenset(self._mutates | self._scopes.global_mutates),
            deletes=frozenset(self._deleted - end.bound),
            conditional=frozenset(writes - end.bound),
            imports=MappingProxyType({
                name: text for name, text in sorted(end.origin.items())
                if text is not None and name in end.bound and name not in global_writes}),
            builtin_reads=frozenset(self._reads | deferred) - shown,
        )

    def _code(self, source: str, offset: int) -> None:
        saved = self._offset
        self._offset = offset
        magic = _split_cell_magic(source)
        if magic is not None:
            name, line, body, lineno = magic
            self._ipython(lineno, "run_cell_magic", [name, line, body])
        else:
            self._block(self._parse(source).body)
        self._offset = saved

    def _parse(self, source: str) -> ast.Module:
        with contextlib.suppress(SyntaxError, ValueError):
            return ast.parse(source)  # plain Python: the common case, and fast
        quick = _transform_lines(source)
        if quick is not None:
            with contextlib.suppress(SyntaxError, ValueError):
                return ast.parse(quick)
        try:
            return ast.parse(transform(source))
        except SyntaxError as err:  # from the parser, or from IPython's tokenizer
            lineno = err.lineno
            if lineno and "<tokenize>" in str(err):
                lineno += _blank_lines(source)
            raise SourceError(err.msg, cell=self._cell,
                              lineno=lineno + self._offset if lineno else None) from err
        except Exception as err:  # ValueError (null bytes), or the transformer failed
            raise SourceError(f"cannot read the code: {err}", cell=self._cell,
                              lineno=None) from err

    # -- names
    def _read(self, name: str, skip_class: bool = False) -> None:
        if self._module is None:
            if name in self.flow.bound:
                return
        elif (not skip_class and name in self.flow.bound) or name in self._module.bound:
            return
        self._reads.add(name)

    def _bind(self, name: str, origin: str | None = None, conditional: bool = False) -> None:
        flow = self.flow
        if self._module is not None:
            if name not in self._class_globals[-1]:
                flow.bound.add(name)
                flow.possible.add(name)
                return
            flow, conditional = self._module, True  # `global` in a class body: rare
        self._ever.add(name)
        flow.possible.add(name)
        if conditional or self._cond:
            flow.origin[name] = None
        else:
            flow.bound.add(name)
            flow.origin[name] = origin

    def _unbind(self, name: str) -> None:
        self.flow.bound.discard(name)
        self.flow.possible.discard(name)
        self.flow.origin.pop(name, None)

    def _delete(self, name: str) -> None:
        self._read(name)
        self._unbind(name)
        if self._module is None:
            self._deleted.add(name)

    def _mutate(self, name: str, skip_class: bool = False) -> None:
        if self._module is not None and not skip_class and name in self.flow.possible:
            return  # a class-body local
        module = self.flow if self._module is None else self._module
        origin = module.origin.get(name)
        if origin and origin.startswith("import "):
            return  # a module: its state does not travel between kernels
        if origin:
            module.origin[name] = None  # re-running the import would not recreate the value
        self._mutates.add(name)

    def _defer(self, free: _Free) -> None:
        self._deferred |= free.now | free.later
        if self._deferred_mutations:
            for name in free.mut_now | free.mut_later:
                self._mutate(name, skip_class=True)

    def _run_now(self, free: _Free) -> None:
        """A nested scope that runs at once (comprehension, ``%timeit`` code)."""
        for name in free.now:
            self._read(name, skip_class=True)  # nested scopes skip the class namespace
        for name in free.mut_now:
            self._mutate(name, skip_class=True)
        self._defer(_Free(set(), free.later, set(), free.mut_later))

    # -- control flow
    def _block(self, stmts: Iterable[ast.stmt]) -> None:
        for stmt in stmts:
            if self.flow.dead:
                return
            self.visit(stmt)

    def _stop(self, sink: list[_Flow] | None = None) -> None:
        if sink is not None:
            sink.append(self.flow)
        self.flow = self.flow.copy(dead=True)

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        truth, entry, ends = _static_truth(node.test), self.flow, []
        for taken, stmts in ((True, node.body), (False, node.orelse)):
            if truth is None or truth == taken:
                self.flow = entry.copy()
                self._block(stmts)
                ends.append(self.flow)
        self.flow = _Flow.merge(ends)

    def _loop(self, target: ast.expr | None, node: ast.For | ast.AsyncFor | ast.While,
              endless: bool) -> None:
        entry = self.flow
        self.flow = entry.copy()
        breaks: list[_Flow] = []
        continues: list[_Flow] = []
        self._loops.append((breaks, continues))
        if target is not None:
            self.visit(target)
        self._block(node.body)
        self._loops.pop()
        self.flow = _Flow.merge([self.flow.copy(dead=True)] if endless
                                else [entry, self.flow, *continues])
        self._block(node.orelse)
        self.flow = _Flow.merge([self.flow, *breaks])

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._loop(node.target, node, endless=False)

    visit_AsyncFor = visit_For

    def visit_While(self, node: ast.While) -> None:
        self.visit(node.test)
        self._loop(None, node, endless=bool(_static_truth(node.test)))

    def visit_Break(self, node: ast.Break) -> None:
        self._stop(self._loops[-1][0] if self._loops else None)

    def visit_Continue(self, node: ast.Continue) -> None:
        self._stop(self._loops[-1][1] if self._loops else None)

    def visit_Return(self, node: ast.Return) -> None:
        self.generic_visit(node)
        self._stop()

    def visit_Raise(self, node: ast.Raise) -> None:
        self.generic_visit(node)
        self._stop(self._raises[-1] if self._raises else None)

    def visit_Try(self, node: ast.Try) -> None:
        entry = self.flow
        raised: list[_Flow] = []
        self._raises.append(raised)
        self.flow, caught = entry.copy(), entry  # caught: where a handler may start
        for stmt in node.body:
            if self.flow.dead:
                break
            self.visit(stmt)
            caught = _Flow.merge([caught, self.flow])
        self._raises.pop()
        caught, body_end, ends = _Flow.merge([caught, *raised]), self.flow, []
        for handler in node.handlers:
            self.flow = caught.copy()
            if handler.type is not None:
                self.visit(handler.type)
            if handler.name:
                self._bind(handler.name)
            self._block(handler.body)
            if handler.name and not self.flow.dead:
                self._unbind(handler.name)  # Python deletes it after the handler
            ends.append(self.flow)
        self.flow = body_end
        self._block(node.orelse)
        after = _Flow.merge([self.flow, *ends])
        if node.finalbody:
            self.flow = caught.copy() if after.dead else after
            self._block(node.finalbody)
            after = self.flow.copy(dead=after.dead or self.flow.dead)
        self.flow = after

    visit_TryStar = visit_Try

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self.visit(item.optional_vars)
        self._block(node.body)

    visit_AsyncWith = visit_With

    def visit_Match(self, node: ast.Match) -> None:
        self.visit(node.subject)
        entry, ends = self.flow, []
        for case in node.cases:
            self.flow = entry.copy()
            self.visit(case.pattern)
            if case.guard is not None:
                self.visit(case.guard)
            self._block(case.body)
            ends.append(self.flow)
        if not any(_irrefutable(case) for case in node.cases):
            ends.append(entry)
        self.flow = _Flow.merge(ends)

    def visit_MatchAs(self, node: ast.MatchAs | ast.MatchStar) -> None:
        self.generic_visit(node)
        if node.name:
            self._bind(node.name)

    visit_MatchStar = visit_MatchAs

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        self.generic_visit(node)
        if node.rest:
            self._bind(node.rest)

    def visit_Assert(self, node: ast.Assert) -> None:
        self.visit(node.test)
        if node.msg is not None:  # evaluated only on the failing path, which raises
            self.flow, saved = self.flow.copy(), self.flow
            self.visit(node.msg)
            self.flow = saved

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self.visit(node.test)
        self._cond += 1
        self.visit(node.body)
        self.visit(node.orelse)
        self._cond -= 1

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        self.visit(node.values[0])
        self._cond += 1
        for value in node.values[1:]:
            self.visit(value)
        self._cond -= 1

    # -- bindings
    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._read(node.id)
        elif isinstance(node.ctx, ast.Store):
            self._bind(node.id)
        else:
            self._delete(node.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):
            self._read(node.target.id)
            self.visit(node.value)
            self._bind(node.target.id)
        else:
            self.visit(node.target)
            self.visit(node.value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        if not self._lazy_annotations:
            self.visit(node.annotation)
        if node.value is not None:
            self.visit(node.target)
        elif isinstance(node.target, (ast.Attribute, ast.Subscript)):
            self.visit(node.target.value)  # evaluated, but nothing is stored

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self._bind(node.target.id)

    def visit_Attribute(self, node: ast.Attribute | ast.Subscript) -> None:
        if not isinstance(node.ctx, ast.Load) and (root := _root(node.value, True)):
            self._mutate(root)
        self.generic_visit(node)

    visit_Subscript = visit_Attribute

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            name = alias.asname or alias.name.split(".")[0]
            text = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
            previous = self.flow.origin.get(name) if name in self.flow.bound else None
            if not alias.asname and previous and previous.startswith("import ") and all(
                    part.split(".")[0] == name and " " not in part
                    for part in previous[len("import "):].split(", ")):
                parts = previous[len("import "):].split(", ")  # import a.b, then import a.c
                text = previous if alias.name in parts else f"{previous}, {alias.name}"
            self._bind(name, text)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = "." * node.level + (node.module or "")
        if module == "__future__":
            names = {alias.name for alias in node.names}
            self._lazy_annotations = self._lazy_annotations or "annotations" in names
            return
        for alias in node.names:
            if alias.name == "*":
                continue  # the names cannot be known
            text = f"from {module} import {alias.name}"
            self._bind(alias.asname or alias.name,
                       text + (f" as {alias.asname}" if alias.asname else ""))

    def visit_Global(self, node: ast.Global) -> None:
        if self._class_globals:
            self._class_globals[-1].update(node.names)

    # -- nested scopes
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        lazy = self._lazy_annotations
        for expr in [*node.decorator_list, *_signature(node.args, not lazy)]:
            self.visit(expr)
        if node.returns is not None and not lazy:
            self.visit(node.returns)
        self._defer(self._scopes.function(node))
        self._bind(node.name)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for expr in _signature(node.args, False):
            self.visit(expr)
        self._defer(self._scopes.function(node))

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expr)
        saved = self.flow, self._module, self._loops, self._raises
        self._module = self.flow if self._module is None else self._module
        self.flow, self._loops, self._raises = _Flow(), [], []
        self._class_globals.append(set())
        self._block(node.body)
        self._class_globals.pop()
        self.flow, self._module, self._loops, self._raises = saved
        self._bind(node.name)

    def _comprehension(self, node: _Comprehension) -> None:
        self.visit(node.generators[0].iter)
        self._scopes.walrus_out = set()
        self._run_now(self._scopes.comprehension(node))
        for name in self._scopes.walrus_out:
            self._bind(name, conditional=True)

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension

    def visit_TypeAlias(self, node: ast.AST) -> None:  # Python 3.12+: `type X = ...`
        value, name = getattr(node, "value", None), getattr(node, "name", None)
        if isinstance(value, ast.expr):
            self._defer(self._scopes.body([ast.Expr(value)]))
        if isinstance(name, ast.Name):
            self._bind(name.id)

    # -- calls and IPython
    def visit_Call(self, node: ast.Call) -> None:
        magic = _ipython_call(node)
        if magic is not None:
            self._ipython(node.lineno, *magic)
            return
        self.generic_visit(node)
        for name in _call_mutations(node):
            self._mutate(name)

    def _ipython(self, lineno: int, method: str, args: list[str]) -> None:
        """A ``get_ipython().method(...)`` call that IPython's transforms made of a magic."""
        for name in _magic_expansions(method, args):
            self._read(name)
        if method == "run_line_magic" and len(args) >= 2 and args[0] in _VALUED_OPTIONS:
            name, code = args[0], _strip_options(args[1], _VALUED_OPTIONS[args[0]])
            offset = self._offset + lineno - 1
            if name == "timeit":
                self._timeit([(code, offset)])
            else:
                self._code(code, offset)
        elif method == "run_cell_magic" and len(args) >= 3:
            name, line, body = args[:3]
            offset = self._offset + lineno  # the body starts on the line after the header
            if name in _NAMESPACE_CELL_MAGICS:
                self._code(body, offset)
            elif name == "timeit":
                self._timeit([(_strip_options(line, "nrpv"), offset - 1), (body, offset)])
            for target in _magic_targets(name, line):
                self._bind(target)

    def _timeit(self, parts: list[tuple[str, int]]) -> None:
        """``%timeit`` code runs inside a function: its free names are read, nothing bound."""
        stmts: list[ast.stmt] = []
        for code, offset in parts:
            saved, self._offset = self._offset, offset
            stmts.extend(self._parse(code).body)
            self._offset = saved
        self._run_now(self._scopes.body(stmts))
