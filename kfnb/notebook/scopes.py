"""Scopes: the state of a namespace walked in order, and a pass over code with a scope of its own.

A :class:`Flow` is the state of the module (or a class body) at one point of the flow-sensitive
walk in :mod:`.analyzer`: the names definitely bound, the names possibly bound and the import
behind each binding; branches copy it and :meth:`Flow.merge` joins them.

Function and lambda bodies run when called, so the order of their statements does not matter:
like :mod:`symtable`, :class:`ScopeVisitor` collects each scope's loads, stores,
``global``/``nonlocal`` declarations and in-place changes and resolves them to the scope's
:class:`Free` names, read (or mutated) when it runs or only later by nested functions. Class
bodies and comprehensions inside run at once; nested scopes skip a class namespace; a walrus in a
comprehension binds in the enclosing function, or escapes to the module (``walrus_out``). Names
declared ``global`` are collected over all scopes (``global_reads``, ``global_writes``,
``global_mutates``).

Both walks share the syntactic rules here: what counts as an in-place change
(:func:`call_mutations`, :data:`MUTATING_METHODS`, :data:`MUTATING_FUNCTIONS`), which parts of a
signature run at definition time (:func:`signature`) and which tests and ``match`` cases are
decided statically (:func:`static_truth`, :func:`irrefutable`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .ipython import ipython_call, magic_expansions

#: Methods that change their receiver in place (lists, dicts, sets, deques, arrays, estimators,
#: torch modules and optimisers). Also mutating: ``set_*``, ``add_*`` and ``name_`` methods.
MUTATING_METHODS: frozenset[str] = frozenset(
    {
        "append",
        "appendleft",
        "extend",
        "extendleft",
        "insert",
        "pop",
        "popleft",
        "popitem",
        "remove",
        "clear",
        "update",
        "setdefault",
        "sort",
        "reverse",
        "rotate",
        "add",
        "discard",
        "difference_update",
        "intersection_update",
        "symmetric_difference_update",
        "__setitem__",
        "__delitem__",
        "fill",
        "resize",
        "put",
        "itemset",
        "setflags",
        "fit",
        "partial_fit",
        "fit_transform",
        "fit_predict",
        "set_params",
        "load_state_dict",
        "load_weights",
        "zero_grad",
        "train",
        "eval",
        "to",
        "cuda",
        "cpu",
        "step",
        "register_buffer",
        "register_parameter",
        "add_module",
    }
)

#: Functions (by their last name: ``np.random.shuffle``, ``heapq.heappush``) that change their
#: first argument in place.
MUTATING_FUNCTIONS: frozenset[str] = frozenset(
    {
        "shuffle",
        "heappush",
        "heappop",
        "heapify",
        "heappushpop",
        "heapreplace",
        "insort",
        "insort_left",
        "insort_right",
        "setattr",
        "delattr",
        "copyto",
        "fill_diagonal",
        "putmask",
        "place",
    }
)

_Function = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
Comprehension = ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp


# -- flow state -------------------------------------------------------------------------------
@dataclass
class Flow:
    """Module (or class body) state at one program point."""

    bound: set[str] = field(default_factory=set)  # on every path
    possible: set[str] = field(default_factory=set)  # on some path, by this code
    origin: dict[str, str | None] = field(default_factory=dict)  # import text, or None
    dead: bool = False  # no path reaches this point

    def copy(self, dead: bool = False) -> Flow:
        return Flow(set(self.bound), set(self.possible), dict(self.origin), dead)

    @staticmethod
    def merge(flows: Iterable[Flow]) -> Flow:
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
                    if name in out.origin
                    and name in other.origin
                    and out.origin[name] == other.origin[name]
                    else None
                    for name in out.origin.keys() | other.origin.keys()
                }
        return out


# -- helpers shared with the module walk ------------------------------------------------------
def root_name(expr: ast.expr, through_calls: bool) -> str | None:
    """The variable at the base of ``a.b[c].d`` (through ``x.get(k)`` calls if asked)."""
    while True:
        if isinstance(expr, ast.Name):
            return expr.id
        if isinstance(expr, (ast.Attribute, ast.Subscript, ast.Starred)):
            expr = expr.value
        elif through_calls and isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
            expr = expr.func.value
        else:
            return None


def _is_mutating_method(name: str) -> bool:
    return (
        name in MUTATING_METHODS
        or name.startswith(("set_", "add_"))
        or (name.endswith("_") and not name.startswith("_"))
    )


def call_mutations(node: ast.Call) -> list[str]:
    """Root names a call changes in place."""
    roots: list[ast.expr] = []
    func = node.func
    if isinstance(func, ast.Attribute) and (
        _is_mutating_method(func.attr)
        or any(
            kw.arg == "inplace" and isinstance(kw.value, ast.Constant) and kw.value.value is True
            for kw in node.keywords
        )
    ):
        roots.append(func.value)
    last = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if last in MUTATING_FUNCTIONS and node.args:
        roots.append(node.args[0])
    roots.extend(kw.value for kw in node.keywords if kw.arg == "out")
    return [name for expr in roots if (name := root_name(expr, through_calls=False))]


def signature(args: ast.arguments, annotations: bool) -> list[ast.expr]:
    """Expressions of a def/lambda signature evaluated at definition time."""
    exprs: list[ast.expr] = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
    if annotations:
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        exprs.extend(a.annotation for a in every if a is not None and a.annotation is not None)
    return exprs


def _params(args: ast.arguments) -> set[str]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    return {a.arg for a in every if a is not None}


def static_truth(test: ast.expr) -> bool | None:
    if isinstance(test, ast.Constant):
        return bool(test.value)
    if (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Eq)
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    ):
        return True
    return None


def irrefutable(case: ast.match_case) -> bool:
    def always(p: ast.pattern) -> bool:
        return (isinstance(p, ast.MatchAs) and p.pattern is None) or (
            isinstance(p, ast.MatchOr) and any(always(q) for q in p.patterns)
        )

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
class Free:
    """Free names of a scope: read (or mutated) when it runs, or later by nested functions."""

    now: set[str]
    later: set[str]
    mut_now: set[str]
    mut_later: set[str]


class ScopeVisitor(ast.NodeVisitor):
    """Flow-insensitive free-name analysis of code with its own scope (like :mod:`symtable`)."""

    def __init__(self) -> None:
        self.stack: list[_Scope] = []
        self.walrus_out: set[str] = set()  # walrus targets that escape to the module scope
        self.global_reads: set[str] = set()  # loads of names declared `global`
        self.global_writes: set[str] = set()
        self.global_mutates: set[str] = set()

    def function(self, node: _Function) -> Free:
        body = node.body if isinstance(node.body, list) else [node.body]
        return self._run(_Scope("function", params=_params(node.args)), body)

    def body(self, stmts: Sequence[ast.AST]) -> Free:
        return self._run(_Scope("function"), stmts)

    def comprehension(self, node: Comprehension) -> Free:
        """Everything but the first iterable, which the enclosing scope evaluates."""
        scope = _Scope("comprehension")
        self.stack.append(scope)
        for i, gen in enumerate(node.generators):
            self.visit(gen.target)
            if i:
                self.visit(gen.iter)
            for cond in gen.ifs:
                self.visit(cond)
        for elt in [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]:
            self.visit(elt)
        self.stack.pop()
        return self._resolve(scope)

    def _run(self, scope: _Scope, stmts: Sequence[ast.AST]) -> Free:
        self.stack.append(scope)
        for stmt in stmts:
            self.visit(stmt)
        self.stack.pop()
        return self._resolve(scope)

    def _resolve(self, s: _Scope) -> Free:
        self.global_reads |= s.loads & s.globals
        self.global_writes |= s.stores & s.globals
        self.global_mutates |= s.mutated & s.globals
        if s.kind == "class":  # nested scopes skip the class namespace
            local = s.stores - s.globals
            return Free(
                (s.loads - local) | s.child_now,
                set(s.child_later),
                (s.mutated - local) | s.child_mut_now,
                set(s.child_mut_later),
            )
        local = (s.stores | s.params) - s.globals - s.nonlocals
        return Free(
            ((s.loads - s.globals) | s.child_now) - local,
            s.child_later - local,
            ((s.mutated - s.globals) | s.child_mut_now) - local,
            s.child_mut_later - local,
        )

    def _child(self, free: Free, runs_now: bool) -> None:
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
        for expr in [*node.decorator_list, *signature(node.args, True), *returns]:
            self.visit(expr)
        self.stack[-1].stores.add(node.name)
        self._child(self.function(node), runs_now=False)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for expr in signature(node.args, False):
            self.visit(expr)
        self._child(self.function(node), runs_now=False)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expr)
        self.stack[-1].stores.add(node.name)
        self._child(self._run(_Scope("class"), node.body), runs_now=True)

    def _comprehension(self, node: Comprehension) -> None:
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
        if not isinstance(node.ctx, ast.Load) and (root := root_name(node.value, True)):
            self.stack[-1].mutated.add(root)
        self.generic_visit(node)

    visit_Subscript = visit_Attribute

    def visit_Call(self, node: ast.Call) -> None:
        magic = ipython_call(node)
        if magic is not None:
            self.stack[-1].loads.update(magic_expansions(*magic))
        self.stack[-1].mutated.update(call_mutations(node))
        self.generic_visit(node)
