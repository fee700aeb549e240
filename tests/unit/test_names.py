"""Static name analysis of step code: kfnb.notebook.names."""

from __future__ import annotations

import copy
import sys
from typing import Any

import pytest

from kfnb.errors import SourceError
from kfnb.notebook.names import BUILTINS, Names, analyze, transform

# Fields compared in every case; a case lists only the non-empty ones.
FIELDS = ("reads", "deferred_reads", "writes", "mutates", "deletes", "conditional", "imports")


def case(case_id: str, sources: str | list[str], **expected: Any) -> Any:
    return pytest.param([sources] if isinstance(sources, str) else sources, expected, id=case_id)


def check(names: Names, expected: dict[str, Any]) -> None:
    for name in (*FIELDS, *(k for k in expected if k not in FIELDS)):
        want = expected.get(name, {} if name == "imports" else set())
        got = getattr(names, name)
        assert (dict(got) if name == "imports" else set(got)) == (
            want if name == "imports" else set(want)
        ), name


ASSIGNMENT = [
    case("read-modify-write", "x = x + 1", reads={"x"}, writes={"x"}),
    case("read-before-bind", "print(y); y = 2", reads={"y"}, writes={"y"}),
    case("bind-before-read", "y = 2; print(y)", writes={"y"}),
    case("chained", "a = b = c", reads={"c"}, writes={"a", "b"}),
    case("tuple-starred", "a, (b, *c) = d", reads={"d"}, writes={"a", "b", "c"}),
    case("list-target", "[a, b] = 1, 2", writes={"a", "b"}),
    case("augmented", "n += 1", reads={"n"}, writes={"n"}),
    case("augmented-after-bind", "n = 0\nn += 1", writes={"n"}),
    case("annotated-value", "x: Foo = 1", reads={"Foo"}, writes={"x"}),
    case(
        "annotated-no-value",
        "x: int",
    ),
    case(
        "annotated-future", "from __future__ import annotations\nx: Foo = 1\ny: Bar", writes={"x"}
    ),
    case("walrus", "if (n := len(a)) > 1: pass\nprint(n)", reads={"a"}, writes={"n"}),
    case("walrus-in-or", "ok = a or (b := 1)", reads={"a"}, writes={"ok", "b"}, conditional={"b"}),
    case(
        "walrus-in-ifexp",
        "v = (w := 1) if c else 2",
        reads={"c"},
        writes={"v", "w"},
        conditional={"w"},
    ),
    case("builtins-excluded", "print(len(x))", reads={"x"}, builtin_reads={"print", "len"}),
    case("builtin-shadowed", "n = list(x)\nlist = [1]", reads={"x", "list"}, writes={"n", "list"}),
    case("ipython-names", "print(_, In, Out, get_ipython, display)"),
]

IMPORTS = [
    case("plain", "import os", writes={"os"}, imports={"os": "import os"}),
    case("alias", "import numpy as np", writes={"np"}, imports={"np": "import numpy as np"}),
    case("dotted", "import os.path", writes={"os"}, imports={"os": "import os.path"}),
    case(
        "dotted-alias",
        "import os.path as osp",
        writes={"osp"},
        imports={"osp": "import os.path as osp"},
    ),
    case(
        "dotted-merge",
        "import os\nimport os.path, os",
        writes={"os"},
        imports={"os": "import os, os.path"},
    ),
    case(
        "several",
        "import os, sys",
        writes={"os", "sys"},
        imports={"os": "import os", "sys": "import sys"},
    ),
    case("from", "from os import path", writes={"path"}, imports={"path": "from os import path"}),
    case(
        "from-alias",
        "from os import path as p",
        writes={"p"},
        imports={"p": "from os import path as p"},
    ),
    case(
        "relative",
        "from . import util\nfrom ..pkg.mod import f as g",
        writes={"util", "g"},
        imports={"util": "from . import util", "g": "from ..pkg.mod import f as g"},
    ),
    case("star", "from os.path import *\nprint(join)", reads={"join"}),
    case("rebound", "import json\njson = 1", writes={"json"}),
    case(
        "rebound-to-import",
        "json = 1\nimport json",
        writes={"json"},
        imports={"json": "import json"},
    ),
    case(
        "conditional-import",
        "if c:\n    import torch",
        reads={"c"},
        writes={"torch"},
        conditional={"torch"},
    ),
    case(
        "fallback-import",
        "try:\n    import ujson as json\nexcept ImportError:\n    import json",
        writes={"json"},
    ),
    case(
        "retry-import",
        "try:\n    import torch\nexcept ImportError:\n    !pip install torch\n    import torch",
        writes={"torch"},
        imports={"torch": "import torch"},
    ),
    case("imported-in-function", "def f():\n    import os\n    return os", writes={"f"}),
    case(
        "mutated-module-kept",
        "import sys\nsys.path.append('..')",
        writes={"sys"},
        imports={"sys": "import sys"},
    ),
    case(
        "mutated-from-import",
        "from lib import registry\nregistry.append(1)",
        writes={"registry"},
        mutates={"registry"},
    ),
]

FUNCTIONS = [
    case(
        "def",
        "def f(a, *b, c=d, **e):\n    return a + b + c + e + g",
        reads={"d"},
        deferred_reads={"g"},
        writes={"f"},
    ),
    case(
        "def-bound-later",
        "def f():\n    return g()\ndef g():\n    return h",
        deferred_reads={"h"},
        writes={"f", "g"},
    ),
    case(
        "decorator-annotations",
        "@deco(k)\ndef f(a: A) -> R:\n    pass",
        reads={"deco", "k", "A", "R"},
        writes={"f"},
    ),
    case("lambda", "f = lambda a, b=d: a + g", reads={"d"}, deferred_reads={"g"}, writes={"f"}),
    case(
        "locals-not-free", "def f(x):\n    y = x\n    for i in y: z = i\n    return z", writes={"f"}
    ),
    case(
        "nested-closure",
        "def f():\n    a = 1\n    def g():\n        return a + b\n    return g",
        deferred_reads={"b"},
        writes={"f"},
    ),
    case(
        "nonlocal",
        "def f():\n    a = 1\n    def g():\n        nonlocal a\n        a += k\n    return g",
        deferred_reads={"k"},
        writes={"f"},
    ),
    case(
        "global-write",
        "def f():\n    global counter\n    counter += 1",
        deferred_reads={"counter"},
        writes={"f", "counter"},
        conditional={"counter"},
    ),
    case(
        "global-mutate",
        "def f():\n    global cache\n    cache.append(1)",
        deferred_reads={"cache"},
        writes={"f"},
        mutates={"cache"},
    ),
    case(
        "free-mutate-not-counted",
        "def f():\n    cache.append(1)",
        deferred_reads={"cache"},
        writes={"f"},
    ),
    case("local-mutate", "def f(self):\n    self.x = 1\n    self.items.append(2)", writes={"f"}),
    case(
        "comprehension-in-function",
        "def f():\n    return [x for x in y]\n",
        deferred_reads={"y"},
        writes={"f"},
    ),
    case(
        "class-in-function",
        "def f():\n    class A:\n        a = 1\n        b = a + c\n    return A",
        deferred_reads={"c"},
        writes={"f"},
    ),
    case(
        "async-def",
        "async def f():\n    async with a as b:\n        await b(c)",
        deferred_reads={"a", "c"},
        writes={"f"},
    ),
]

CLASSES = [
    case(
        "class",
        "class A(Base, metaclass=M):\n    x = 1\n    y = x + z\n"
        "    def m(self):\n        return x + self.y\n",
        reads={"Base", "M", "z"},
        deferred_reads={"x"},
        writes={"A"},
    ),
    case(
        "class-comprehension-skips-class",
        "class A:\n    n = 2\n    v = [n * i for i in r]",
        reads={"n", "r"},
        writes={"A"},
    ),
    case(
        "class-first-iterable-sees-class",
        "class A:\n    r = [1]\n    v = [i for i in r]",
        writes={"A"},
    ),
    case(
        "class-local-mutation",
        "class A:\n    items = []\n    items.append(1)\n    reg.append(2)",
        reads={"reg"},
        mutates={"reg"},
        writes={"A"},
    ),
    case(
        "class-decorator", "@dataclass\nclass A:\n    x: int = 0", reads={"dataclass"}, writes={"A"}
    ),
]

COMPREHENSIONS = [
    case("list", "v = [x * k for x in xs if x]", reads={"k", "xs"}, writes={"v"}),
    case(
        "set-dict-gen",
        "a = {x for x in s}\nb = {k: v for k, v in d}\nc = (y for y in g)",
        reads={"s", "d", "g"},
        writes={"a", "b", "c"},
    ),
    case(
        "nested",
        "m = [[i + j for j in row] for i, row in enumerate(rows)]",
        reads={"rows"},
        writes={"m"},
        builtin_reads={"enumerate"},
    ),
    case(
        "variable-does-not-leak", "v = [x for x in xs]\nprint(x)", reads={"x", "xs"}, writes={"v"}
    ),
    case(
        "walrus-escapes",
        "v = [y := f(x) for x in xs]\nprint(y)",
        reads={"f", "xs", "y"},
        writes={"v", "y"},
        conditional={"y"},
    ),
    case(
        "lambda-inside",
        "fs = [lambda: i + k for i in r]",
        reads={"r"},
        deferred_reads={"k"},
        writes={"fs"},
    ),
    case("mutation-inside", "[out.append(i) for i in r]", reads={"out", "r"}, mutates={"out"}),
]

MUTATION = [
    case("subscript", "df['x'] = 1", reads={"df"}, mutates={"df"}),
    case("loc", "df.loc[:, 'a'] = 1", reads={"df"}, mutates={"df"}),
    case("attribute-chain", "a.b.c = 1", reads={"a"}, mutates={"a"}),
    case("aug-subscript", "x[k] += 1\ny.a += 1", reads={"x", "k", "y"}, mutates={"x", "y"}),
    case("through-method", "d.setdefault(k, [])[0] = 1", reads={"d", "k"}, mutates={"d"}),
    case("call-result", "f(x)[0] = 1", reads={"f", "x"}),
    case(
        "methods",
        "a.append(1)\nb.sort()\nm.fit(X, y)\nn.a.update({})\nt.add_(1)\nax.set_title('t')",
        reads={"a", "b", "m", "X", "y", "n", "t", "ax"},
        mutates={"a", "b", "m", "n", "t", "ax"},
    ),
    case("not-mutating", "a.copy()\nb.get(1)\nplt.gca().set_title('t')", reads={"a", "b", "plt"}),
    case(
        "inplace",
        "df.drop(columns=['a'], inplace=True)\ndf2.drop(columns=['a'])",
        reads={"df", "df2"},
        mutates={"df"},
    ),
    case(
        "functions",
        "random.shuffle(a)\nheapq.heappush(h, 1)\nnp.multiply(x, 2, out=o)",
        reads={"random", "a", "heapq", "h", "np", "x", "o"},
        mutates={"a", "h", "o"},
    ),
    # A module imported elsewhere looks like any object: the caller drops names it imports.
    case(
        "module-imported-elsewhere",
        "v = np.append(a, 1)",
        reads={"np", "a"},
        writes={"v"},
        mutates={"np"},
    ),
    case("del-subscript", "del d[k]\ndel o.attr", reads={"d", "k", "o"}, mutates={"d", "o"}),
    case("written-and-mutated", "x = []\nx.append(1)", writes={"x"}, mutates={"x"}),
    case(
        "deferred-mutations-off",
        "def f():\n    cache.append(1)",
        deferred_reads={"cache"},
        writes={"f"},
    ),
]

DELETE = [
    case("del-name", "del x", reads={"x"}, deletes={"x"}),
    case("del-own", "tmp = 1\ndel tmp", deletes={"tmp"}),
    case("del-then-rebind", "del x\nx = 2", reads={"x"}, writes={"x"}),
    case(
        "del-maybe",
        "x = 1\nif c:\n    del x",
        reads={"c"},
        writes={"x"},
        deletes={"x"},
        conditional={"x"},
    ),
    case("del-tuple", "a = b = 1\ndel a, b", deletes={"a", "b"}),
]

CONTROL = [
    case(
        "if-one-branch",
        "if c:\n    x = 1\nprint(x)",
        reads={"c", "x"},
        writes={"x"},
        conditional={"x"},
    ),
    case(
        "if-both-branches",
        "if c:\n    x = 1\nelse:\n    x = 2\nprint(x)",
        reads={"c"},
        writes={"x"},
    ),
    case(
        "elif-chain",
        "if a:\n    x = 1\nelif b:\n    x = 2\nelse:\n    x = 3",
        reads={"a", "b"},
        writes={"x"},
    ),
    case(
        "if-raise",
        "if c:\n    x = 1\nelse:\n    raise ValueError\nprint(x)",
        reads={"c"},
        writes={"x"},
    ),
    case("if-true", "if True:\n    x = 1", writes={"x"}),
    case("main-guard", "if __name__ == '__main__':\n    x = 1", writes={"x"}),
    case(
        "for",
        "for i in r:\n    acc = i\nprint(i, acc)",
        reads={"r", "i", "acc"},
        writes={"i", "acc"},
        conditional={"i", "acc"},
    ),
    case(
        "for-tuple-target",
        "for k, v in d.items():\n    pass",
        reads={"d"},
        writes={"k", "v"},
        conditional={"k", "v"},
    ),
    case("for-attribute-target", "for o.x in r:\n    pass", reads={"o", "r"}, mutates={"o"}),
    case(
        "for-else-break",
        "for i in r:\n    if i:\n        found = i\n        break\n"
        "else:\n    found = None\nprint(found)",
        reads={"r"},
        writes={"i", "found"},
        conditional={"i"},
    ),
    case(
        "while",
        "while n:\n    n -= 1\n    last = n",
        reads={"n"},
        writes={"n", "last"},
        conditional={"n", "last"},
    ),
    case(
        "while-true-break",
        "while True:\n    x = f()\n    if x:\n        break",
        reads={"f"},
        writes={"x"},
    ),
    case("while-walrus", "while (line := f.readline()):\n    pass", reads={"f"}, writes={"line"}),
    case(
        "with",
        "with open(p) as fh, lock:\n    data = fh.read()",
        reads={"p", "lock"},
        writes={"fh", "data"},
    ),
    case(
        "try-body-conditional",
        "try:\n    x = f()\nexcept E:\n    pass",
        reads={"f", "E"},
        writes={"x"},
        conditional={"x"},
    ),
    case(
        "try-every-handler",
        "try:\n    x = f()\nexcept E:\n    x = None",
        reads={"f", "E"},
        writes={"x"},
    ),
    case(
        "try-handler-raises",
        "try:\n    x = f()\nexcept E:\n    raise",
        reads={"f", "E"},
        writes={"x"},
    ),
    case(
        "try-else-finally",
        "try:\n    a = f()\nexcept E:\n    a = 0\nelse:\n    b = a\nfinally:\n    c = 1",
        reads={"f", "E"},
        writes={"a", "b", "c"},
        conditional={"b"},
    ),
    case(
        "try-handler-sees-partial",
        "try:\n    x = 1\n    f()\nexcept E:\n    print(x)",
        reads={"f", "E", "x"},
        writes={"x"},
        conditional={"x"},
    ),
    case(
        "except-as-unbound",
        "try:\n    f()\nexcept E as err:\n    print(err)\nprint(err)",
        reads={"f", "E", "err"},
    ),
    case(
        "try-star", "try:\n    x = f()\nexcept* E as g:\n    x = g", reads={"f", "E"}, writes={"x"}
    ),
    case(
        "match",
        "match cmd:\n    case Point(x=0, y=yy):\n        v = yy\n"
        "    case [a, *rest]:\n        v = a\n    case {'k': kv, **others}:\n        v = kv",
        reads={"cmd", "Point"},
        writes={"yy", "a", "rest", "kv", "others", "v"},
        conditional={"yy", "a", "rest", "kv", "others", "v"},
    ),
    case(
        "match-irrefutable",
        "match cmd:\n    case 1:\n        v = 1\n    case other:\n        v = other",
        reads={"cmd"},
        writes={"v", "other"},
        conditional={"other"},
    ),
    case(
        "match-value-pattern",
        "match c:\n    case Color.RED | Color.BLUE:\n        pass",
        reads={"c", "Color"},
    ),
    case(
        "unreachable-after-raise",
        "raise SystemExit\nx = y",
    ),
]

IPYTHON = [
    case("line-magic", "%matplotlib inline\nx = 1", writes={"x"}),
    case(
        "shell",
        "!pip install numpy",
    ),
    case(
        "shell-expansion",
        "!pip install {pkg}=={ver.strip()} $extra $$HOME",
        reads={"pkg", "ver", "extra"},
    ),
    case("getoutput", "files = !ls {folder}", reads={"folder"}, writes={"files"}),
    case("help", "obj?\nx = 1", writes={"x"}),
    case("time-line", "%time y = f(a)", reads={"f", "a"}, writes={"y"}),
    case("time-value", "r = %time f(a)", reads={"f", "a"}, writes={"r"}),
    case("timeit-line", "%timeit -n 10 -r 2 y = f(a)", reads={"f", "a"}),
    case("prun-line", "%prun -s cumulative y = g()", reads={"g"}, writes={"y"}),
    case("time-cell", "%%time\nx = f()\ny = x", reads={"f"}, writes={"x", "y"}),
    case(
        "timeit-cell",
        "%%timeit -n 2 s = init()\nt = s + u\nacc.append(t)",
        reads={"init", "u", "acc"},
        mutates={"acc"},
    ),
    case("capture", "%%capture --no-stderr out\nx = 1", writes={"x", "out"}),
    case("capture-no-var", "%%capture\nx = 1", writes={"x"}),
    case(
        "bash-opaque",
        "%%bash\nx=1\necho $x",
    ),
    case("bash-out", "%%bash --out o --err e\nls", writes={"o", "e"}),
    case("writefile-opaque", "%%writefile {name}.py\nimport os\nx = 1", reads={"name"}),
    case(
        "html-opaque",
        "%%html\n<b>{x}</b>",
    ),
    case(
        "unknown-opaque",
        "%%sql\nSELECT * FROM t",
    ),
    case(
        "step-header",
        "%%step train --after prep\nmodel.fit(X)\nscore = 1",
        reads={"model", "X"},
        mutates={"model"},
        writes={"score"},
    ),
    case("kfnb-header", "%%kfnb something\nz = 1", writes={"z"}),
    case("nested-cell-magics", "%%time\n%%capture out\nx = 1", writes={"x", "out"}),
    case("magics-inside-capture", "%%capture\n!ls\nz = !pwd", writes={"z"}),
    case("shell-in-function", "def f():\n    !ls {where}", deferred_reads={"where"}, writes={"f"}),
    case("indented-cell", "  x = 1\n  y = x", writes={"x", "y"}),
]

SEQUENCE = [
    case(
        "bound-in-earlier-cell",
        ["import pandas as pd", "df = pd.read_csv(p)", "df.head()"],
        reads={"p"},
        writes={"pd", "df"},
        imports={"pd": "import pandas as pd"},
    ),
    case("read-before-later-cell", ["print(x)", "x = 1"], reads={"x"}, writes={"x"}),
    case(
        "conditional-then-read",
        ["if c:\n    x = 1", "print(x)"],
        reads={"c", "x"},
        writes={"x"},
        conditional={"x"},
    ),
    case("cell-that-raises", ["x = 1\nraise RuntimeError", "y = x"], writes={"x", "y"}),
]


@pytest.mark.parametrize(
    ("sources", "expected"),
    ASSIGNMENT
    + IMPORTS
    + FUNCTIONS
    + CLASSES
    + COMPREHENSIONS
    + MUTATION
    + DELETE
    + CONTROL
    + IPYTHON
    + SEQUENCE,
)
def test_analyze(sources: list[str], expected: dict[str, Any]) -> None:
    check(analyze(sources), expected)


def test_deferred_mutations_option() -> None:
    names = analyze(["def f(v):\n    cache.append(v)\n    v.x = 1"], deferred_mutations=True)
    assert names.mutates == {"cache"}


@pytest.mark.parametrize(
    ("sources", "cell", "lineno"),
    [
        pytest.param(["x = 1", "y = (\n"], 1, 1, id="second-cell"),
        pytest.param(["x = 1\n\ny = )"], 0, 3, id="line"),
        pytest.param(["\n\nfor\n"], 0, 3, id="leading-blank-lines"),
        pytest.param(["%matplotlib inline\nx = (\n"], 0, 2, id="with-magic"),
        pytest.param(["ok = 1", "\n%%time\na = 1\nb = )"], 1, 4, id="cell-magic-body"),
        pytest.param(["a = 1\n%time b = )"], 0, 2, id="line-magic-code"),
    ],
)
def test_syntax_error(sources: list[str], cell: int, lineno: int) -> None:
    with pytest.raises(SourceError) as info:
        analyze(sources)
    assert (info.value.cell, info.value.lineno) == (cell, lineno)


def test_bash_body_is_not_parsed() -> None:
    assert analyze(["%%bash\nif [ -f x ]; then echo )(; fi"]) == Names()


def test_transform_keeps_line_numbers() -> None:
    out = transform("\n\n%matplotlib inline\nx = 1\n")
    assert out.splitlines()[3] == "x = 1"


def test_builtins() -> None:
    assert {"print", "len", "get_ipython", "display", "In", "Out", "_", "_ih"} <= BUILTINS
    assert "x" not in BUILTINS


def test_names_is_immutable() -> None:
    names = analyze(["import os"])
    with pytest.raises(TypeError):
        names.imports["os"] = "import sys"  # type: ignore[index]


def test_large_notebook() -> None:
    # Speed is measured by benchmarks, not asserted here (about 0.2 s for these 500 cells).
    cell = (
        "import numpy as np\nx = [i * k for i in range(10)]\n"
        "def f(a):\n    return a + x\n"
        "if x:\n    y = f(1)\nelse:\n    y = 0\n"
        "try:\n    z = y / 2\nexcept ZeroDivisionError as e:\n    z = None\n"
    )
    sources = [cell, "%matplotlib inline\n!ls\n" + cell] * 250
    names = analyze(sources)
    assert names.reads == {"k"}
    assert {"np", "x", "f", "y", "z"} <= names.writes
    assert names.imports["np"] == "import numpy as np"


# -- property: running the code split in two, with the reported inputs handed over, gives the
# same values as running it whole. (Aliasing between two names is not tracked, so the
# programs keep one name per object.)
PROGRAMS = [
    ["a = 1", "b = a + 1", "a += b", "c = [a, b]", "c.append(a)", "del b"],
    ["xs = [3, 1, 2]", "xs.sort()", "d = {}", "d['k'] = list(xs)", "d['k'][0] = 9", "n = len(d)"],
    ["flag = True", "if flag:\n    v = 1", "w = v if flag else 0", "v = [v, w]"],
    [
        "total = 0",
        "for i in range(3):\n    total += i",
        "sq = [i * i for i in range(total)]",
        "m = max(sq)",
        "try:\n    q = 1 / (m - m)\nexcept ZeroDivisionError as err:\n    q = -1",
    ],
    ["s = {1}", "s.add(2)", "t = {k: k + 1 for k in s}", "while s:\n    s.pop()", "u = t"],
    [
        "class P:\n    base = 2\n    sq = base ** 2",
        "p = P.sq + 1",
        "if (r := p) > 1:\n    r = r * 2",
        "l = [r] * 2",
    ],
]


def _run(sources: list[str], namespace: dict[str, Any]) -> dict[str, Any]:
    for source in sources:
        exec(compile(source, "<cell>", "exec"), namespace)
    return {k: v for k, v in namespace.items() if k != "__builtins__"}


def _splits() -> list[Any]:
    return [
        pytest.param(program, k, id=f"program{i}-split{k}")
        for i, program in enumerate(PROGRAMS)
        for k in range(1, len(program))
    ]


@pytest.mark.parametrize(("program", "split"), _splits())
def test_split_run_matches_whole_run(program: list[str], split: int) -> None:
    whole = _run(program, {})
    first = _run(program[:split], {})
    second_facts = analyze(program[split:])
    handed = {k: copy.deepcopy(first[k]) for k in second_facts.reads if k in first}
    second = _run(program[split:], dict(handed))
    changed = set(second_facts.writes) | set(second_facts.mutates) | set(second_facts.deletes)
    merged = {k: v for k, v in first.items() if k not in changed} | {
        k: second[k] for k in changed if k in second
    }
    assert {k: v for k, v in merged.items() if not isinstance(v, type)} == {
        k: v for k, v in whole.items() if not isinstance(v, type)
    }


EXTRA = [
    case(
        "global-skips-enclosing-function",
        "def outer():\n    x = 1\n    def inner():\n"
        "        global x\n        return x\n    return inner",
        deferred_reads={"x"},
        writes={"outer"},
    ),
    case(
        "global-in-class-body",
        "class A:\n    global g\n    g = 1",
        writes={"A", "g"},
        conditional={"g"},
    ),
    case("assert-message-only-on-failure", "assert ok, (m := 1)\nprint(m)", reads={"ok", "m"}),
    case(
        "magic-like-line-in-string",
        "s = '''\n%not a magic\n'''\n%matplotlib inline\nt = s",
        writes={"s", "t"},
    ),
    case(
        "line-magic-in-block",
        "for f in fs:\n    !rm {f}\n    %time n = g(f)",
        reads={"fs", "g"},
        writes={"f", "n"},
        conditional={"f", "n"},
    ),
    case("continued-magic", "out = !ls \\\n  -l {d}\nz = out", reads={"d"}, writes={"out", "z"}),
]


@pytest.mark.parametrize(("sources", "expected"), EXTRA)
def test_analyze_more(sources: list[str], expected: dict[str, Any]) -> None:
    check(analyze(sources), expected)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="`type` statements need Python 3.12")
def test_type_alias() -> None:
    check(analyze(["type Vec = list[Scalar]"]), {"writes": {"Vec"}, "deferred_reads": {"Scalar"}})
