"""Errors carry message, fix and where as attributes; ``str`` renders them once."""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path

import pytest

import kfnb
from kfnb.errors import KfnbError, MissingDependencyError, NotebookError
from kfnb.tracking import RunNotFound


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (KfnbError("no such thing"), "no such thing"),
        (KfnbError("no such thing", fix="add it"), "no such thing. Fix: add it"),
        (KfnbError("no such thing.", fix="add it"), "no such thing. Fix: add it"),
        (KfnbError("it matches a, b...", fix="type more"), "it matches a, b... Fix: type more"),
        (KfnbError("bad", where="config.yaml", fix="edit"), "config.yaml: bad. Fix: edit"),
        (
            NotebookError("x is undefined", cell_index=3, cell_line="y = x", path="nb.ipynb"),
            "nb.ipynb, cell 3 ('y = x'): x is undefined",
        ),
        (
            MissingDependencyError("kfp", "kfp", "compiling"),
            "compiling needs the Python package 'kfp', which is not installed. "
            "Fix: pip install 'kfnb[kfp]'",
        ),
    ],
)
def test_rendered_once(error: KfnbError, text: str) -> None:
    assert str(error) == text
    assert "Fix:" not in error.message


def test_attributes_travel_as_data_and_through_pickle() -> None:
    err = NotebookError("bad tag", cell_index=2, cell_line="x = 1", fix="use step:NAME")
    assert err.to_dict() == {
        "message": "bad tag",
        "fix": "use step:NAME",
        "where": "cell 2 ('x = 1')",
        "cell_index": 2,
        "cell_line": "x = 1",
        "path": None,
    }
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), back.to_dict(), str(back)) == (NotebookError, err.to_dict(), str(err))
    missing = pickle.loads(pickle.dumps(RunNotFound("abc")))
    assert missing.run_id == "abc" and missing.fix and str(missing) == str(RunNotFound("abc"))


#: "... went wrong. Fix: do this" (or a literal that starts with the fix): the old string protocol;
#: a label in rendered HTML ("<b>Fix:</b>") is no message
EMBEDDED_FIX = re.compile(r"(^|[.;:)]\s+)Fix: ")


def test_no_error_embeds_its_fix_in_the_message() -> None:
    """The fix is an attribute (``fix=``): a literal "Fix:" in the sources is the old string
    protocol coming back (docstrings and the renderer aside). The pattern is checked on a
    literal of the old protocol too, so the test can fail."""
    assert EMBEDDED_FIX.search("the host has no scheme. Fix: write https://")
    root = Path(kfnb.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "errors.py" and path.parent == root:
            continue  # the renderer itself
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and EMBEDDED_FIX.search(node.value)
                and id(node) not in docstrings
            ):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert found == [], "embed the fix as fix=..., not in the text: " + ", ".join(found)
