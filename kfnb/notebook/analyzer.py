"""The flow-sensitive walk of module-level code: which names are bound at each point.

:class:`Analyzer` visits a step's cells in execution order, keeping the module's
:class:`~.scopes.Flow`, and records reads of names not yet definitely bound, bindings, deletions
and in-place changes. Branches copy the flow and merge it afterwards; paths that raise, return,
break or continue drop out. A class body gets a flow of its own. Function and lambda bodies go
to :class:`~.scopes.ScopeVisitor` and count as deferred. Magics, as :mod:`.ipython` reads them,
are walked as code, bind names or are opaque. :func:`~.names.analyze` turns what was recorded
into :class:`~.names.Names`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

from ..errors import SourceError
from .ipython import (
    NAMESPACE_CELL_MAGICS,
    VALUED_OPTIONS,
    ipython_call,
    magic_expansions,
    magic_targets,
    parse,
    split_cell_magic,
    strip_options,
)
from .scopes import (
    Comprehension,
    Flow,
    Free,
    ScopeVisitor,
    call_mutations,
    irrefutable,
    root_name,
    signature,
    static_truth,
)


class Analyzer(ast.NodeVisitor):
    """Walks cells in execution order, keeping the module's :class:`Flow`."""

    def __init__(self, deferred_mutations: bool) -> None:
        self.flow = Flow()
        self._module: Flow | None = None  # the module's flow while inside a class body
        self._class_globals: list[set[str]] = []
        self._loops: list[tuple[list[Flow], list[Flow]]] = []  # (breaks, continues)
        self._raises: list[list[Flow]] = []  # states at `raise` inside each enclosing try
        self._cond = 0  # > 0 inside the lazily evaluated part of `a if c else b`, `a and b`
        self._lazy_annotations = False
        self._deferred_mutations = deferred_mutations
        self._cell = 0
        self._offset = 0  # line in the cell = line in the code being walked + offset
        # what :func:`~.names.analyze` reports from
        self.scopes = ScopeVisitor()
        self.reads: set[str] = set()
        self.deferred: set[str] = set()
        self.mutates: set[str] = set()
        self.deleted: set[str] = set()
        self.ever: set[str] = set()  # every name bound at module level

    # -- entry points
    def cell(self, index: int, source: str) -> None:
        self._cell = index
        try:
            self._code(source, 0)
        except RecursionError as err:
            raise SourceError("code nested too deeply to analyse", cell=index, lineno=None) from err
        self.flow.dead = False  # the next cell runs even if this one always raises

    def _code(self, source: str, offset: int) -> None:
        saved = self._offset
        self._offset = offset
        magic = split_cell_magic(source)
        if magic is not None:
            name, line, body, lineno = magic
            self._ipython(lineno, "run_cell_magic", [name, line, body])
        else:
            self._block(parse(source, self._cell, offset).body)
        self._offset = saved

    # -- names
    def _read(self, name: str, skip_class: bool = False) -> None:
        if self._module is None:
            if name in self.flow.bound:
                return
        elif (not skip_class and name in self.flow.bound) or name in self._module.bound:
            return
        self.reads.add(name)

    def _bind(self, name: str, origin: str | None = None, conditional: bool = False) -> None:
        flow = self.flow
        if self._module is not None:
            if name not in self._class_globals[-1]:
                flow.bound.add(name)
                flow.possible.add(name)
                return
            flow, conditional = self._module, True  # `global` in a class body: rare
        self.ever.add(name)
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
            self.deleted.add(name)

    def _mutate(self, name: str, skip_class: bool = False) -> None:
        if self._module is not None and not skip_class and name in self.flow.possible:
            return  # a class-body local
        module = self.flow if self._module is None else self._module
        origin = module.origin.get(name)
        if origin and origin.startswith("import "):
            return  # a module: its state does not travel between kernels
        if origin:
            module.origin[name] = None  # re-running the import would not recreate the value
        self.mutates.add(name)

    def _defer(self, free: Free) -> None:
        self.deferred |= free.now | free.later
        if self._deferred_mutations:
            for name in free.mut_now | free.mut_later:
                self._mutate(name, skip_class=True)

    def _run_now(self, free: Free) -> None:
        """A nested scope that runs at once (comprehension, ``%timeit`` code)."""
        for name in free.now:
            self._read(name, skip_class=True)  # nested scopes skip the class namespace
        for name in free.mut_now:
            self._mutate(name, skip_class=True)
        self._defer(Free(set(), free.later, set(), free.mut_later))

    # -- control flow
    def _block(self, stmts: Iterable[ast.stmt]) -> None:
        for stmt in stmts:
            if self.flow.dead:
                return
            self.visit(stmt)

    def _stop(self, sink: list[Flow] | None = None) -> None:
        if sink is not None:
            sink.append(self.flow)
        self.flow = self.flow.copy(dead=True)

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        truth, entry, ends = static_truth(node.test), self.flow, []
        for taken, stmts in ((True, node.body), (False, node.orelse)):
            if truth is None or truth == taken:
                self.flow = entry.copy()
                self._block(stmts)
                ends.append(self.flow)
        self.flow = Flow.merge(ends)

    def _loop(
        self, target: ast.expr | None, node: ast.For | ast.AsyncFor | ast.While, endless: bool
    ) -> None:
        entry = self.flow
        self.flow = entry.copy()
        breaks: list[Flow] = []
        continues: list[Flow] = []
        self._loops.append((breaks, continues))
        if target is not None:
            self.visit(target)
        self._block(node.body)
        self._loops.pop()
        self.flow = Flow.merge(
            [self.flow.copy(dead=True)] if endless else [entry, self.flow, *continues]
        )
        self._block(node.orelse)
        self.flow = Flow.merge([self.flow, *breaks])

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._loop(node.target, node, endless=False)

    visit_AsyncFor = visit_For

    def visit_While(self, node: ast.While) -> None:
        self.visit(node.test)
        self._loop(None, node, endless=bool(static_truth(node.test)))

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
        raised: list[Flow] = []
        self._raises.append(raised)
        self.flow, caught = entry.copy(), entry  # caught: where a handler may start
        for stmt in node.body:
            if self.flow.dead:
                break
            self.visit(stmt)
            caught = Flow.merge([caught, self.flow])
        self._raises.pop()
        caught, body_end, ends = Flow.merge([caught, *raised]), self.flow, []
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
        after = Flow.merge([self.flow, *ends])
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
        if not any(irrefutable(case) for case in node.cases):
            ends.append(entry)
        self.flow = Flow.merge(ends)

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
        if not isinstance(node.ctx, ast.Load) and (root := root_name(node.value, True)):
            self._mutate(root)
        self.generic_visit(node)

    visit_Subscript = visit_Attribute

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            name = alias.asname or alias.name.split(".")[0]
            text = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
            previous = self.flow.origin.get(name) if name in self.flow.bound else None
            if (
                not alias.asname
                and previous
                and previous.startswith("import ")
                and all(
                    part.split(".")[0] == name and " " not in part
                    for part in previous[len("import ") :].split(", ")
                )
            ):
                parts = previous[len("import ") :].split(", ")  # import a.b, then import a.c
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
            self._bind(
                alias.asname or alias.name, text + (f" as {alias.asname}" if alias.asname else "")
            )

    def visit_Global(self, node: ast.Global) -> None:
        if self._class_globals:
            self._class_globals[-1].update(node.names)

    # -- nested scopes
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        lazy = self._lazy_annotations
        for expr in [*node.decorator_list, *signature(node.args, not lazy)]:
            self.visit(expr)
        if node.returns is not None and not lazy:
            self.visit(node.returns)
        self._defer(self.scopes.function(node))
        self._bind(node.name)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for expr in signature(node.args, False):
            self.visit(expr)
        self._defer(self.scopes.function(node))

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
            self.visit(expr)
        saved = self.flow, self._module, self._loops, self._raises
        self._module = self.flow if self._module is None else self._module
        self.flow, self._loops, self._raises = Flow(), [], []
        self._class_globals.append(set())
        self._block(node.body)
        self._class_globals.pop()
        self.flow, self._module, self._loops, self._raises = saved
        self._bind(node.name)

    def _comprehension(self, node: Comprehension) -> None:
        self.visit(node.generators[0].iter)
        self.scopes.walrus_out = set()
        self._run_now(self.scopes.comprehension(node))
        for name in self.scopes.walrus_out:
            self._bind(name, conditional=True)

    visit_ListComp = visit_SetComp = visit_GeneratorExp = visit_DictComp = _comprehension

    def visit_TypeAlias(self, node: ast.AST) -> None:  # Python 3.12+: `type X = ...`
        value, name = getattr(node, "value", None), getattr(node, "name", None)
        if isinstance(value, ast.expr):
            self._defer(self.scopes.body([ast.Expr(value)]))
        if isinstance(name, ast.Name):
            self._bind(name.id)

    # -- calls and IPython
    def visit_Call(self, node: ast.Call) -> None:
        magic = ipython_call(node)
        if magic is not None:
            self._ipython(node.lineno, *magic)
            return
        self.generic_visit(node)
        for name in call_mutations(node):
            self._mutate(name)

    def _ipython(self, lineno: int, method: str, args: list[str]) -> None:
        """A ``get_ipython().method(...)`` call that IPython's transforms made of a magic."""
        for name in magic_expansions(method, args):
            self._read(name)
        if method == "run_line_magic" and len(args) >= 2 and args[0] in VALUED_OPTIONS:
            name, code = args[0], strip_options(args[1], VALUED_OPTIONS[args[0]])
            offset = self._offset + lineno - 1
            if name == "timeit":
                self._timeit([(code, offset)])
            else:
                self._code(code, offset)
        elif method == "run_cell_magic" and len(args) >= 3:
            name, line, body = args[:3]
            offset = self._offset + lineno  # the body starts on the line after the header
            if name in NAMESPACE_CELL_MAGICS:
                self._code(body, offset)
            elif name == "timeit":
                self._timeit([(strip_options(line, "nrpv"), offset - 1), (body, offset)])
            for target in magic_targets(name, line):
                self._bind(target)

    def _timeit(self, parts: list[tuple[str, int]]) -> None:
        """``%timeit`` code runs inside a function: its free names are read, nothing bound."""
        stmts: list[ast.stmt] = []
        for code, offset in parts:
            stmts.extend(parse(code, self._cell, offset).body)
        self._run_now(self.scopes.body(stmts))
