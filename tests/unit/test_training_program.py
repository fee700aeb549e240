"""A notebook function made into a training program (``kfnb.training.program``): what travels
with it, how its arguments are typed, and that the module runs on its own."""

from __future__ import annotations

import json
import os.path as osp
import subprocess
import sys
from json import dumps as to_json
from pathlib import Path

import pytest

from kfnb.params import ParameterError
from kfnb.training.program import Program, ProgramError

SETTINGS = {"width": 4}
ROWS = [1, 2, 3]


class Scaler:
    def __init__(self, k: float) -> None:
        self.k = k

    def __call__(self, v: float) -> float:
        return v * self.k * SETTINGS["width"]


def helper(v: float) -> float:
    return Scaler(2.0)(v) + len(osp.sep)


def fit(lr: float = 0.5, epochs: int = 2, name: str = "run", tags: list | None = None) -> None:
    total = sum(helper(r) for r in ROWS) * lr * epochs
    print(to_json({"total": total, "name": name, "tags": tags}))


def needs_seed(seed: int, lr: float = 0.1) -> None:
    print(seed, lr)


def uses_undefined() -> None:
    print(NOT_DEFINED)  # type: ignore[name-defined]  # noqa: F821


def positional(a: int, /) -> None:
    print(a)


def test_the_program_carries_imports_code_and_values() -> None:
    program = Program.from_function(fit)
    source = program.source
    assert f"import {osp.__name__} as osp" in source  # posixpath: what os.path is here
    assert "from json import dumps as to_json" in source
    # notebook code: what fit uses, what that uses, before fit; each once
    assert source.index("class Scaler") < source.index("def helper") < source.index("def fit")
    assert source.count("def helper") == 1
    assert set(program.values) == {"SETTINGS", "ROWS"}
    assert "_kfnb_load_values(__file__, ['ROWS', 'SETTINGS'])" in source
    assert "print" not in program.values and "sum" not in program.values  # builtins


def test_arguments_are_typed_by_the_signature() -> None:
    program = Program.from_function(fit, {"lr": 1}, [("epochs", "3"), ("tags", "[a, b]")])
    assert program.args == {"lr": 1.0, "epochs": 3, "name": "run", "tags": ["a", "b"]}
    assert isinstance(program.args["lr"], float)
    assert {n: p.type for n, p in program.parameters.items()} == {
        "lr": "float",
        "epochs": "int",
        "name": "str",
        "tags": "any",  # `list | None`: any value
    }


@pytest.mark.parametrize(
    ("args", "strings", "message"),
    [
        (
            {"lr": "fast"},
            [],
            "argument 'lr' of fit() is a float (default 0.5), not a str ('fast'). "
            "Fix: pass a float",
        ),
        ({"lrr": 0.1}, [], "fit() has no argument 'lrr'. Fix: did you mean 'lr'?"),
        (
            {},
            [("epochs", "two")],
            "argument 'epochs' of fit() is an int (default 2); 'two' is not an int. "
            "Fix: pass e.g. -p epochs 7",
        ),
        ({"epochs": float("nan")}, [], "argument 'epochs' of fit() is an int"),
    ],
)
def test_a_bad_argument_names_itself_its_type_and_the_value(
    args: dict, strings: list, message: str
) -> None:
    with pytest.raises(ParameterError) as err:
        Program.from_function(fit, args, strings)
    assert str(err.value).startswith(message)


def test_a_required_argument_must_be_given() -> None:
    with pytest.raises(ParameterError) as err:
        Program.from_function(needs_seed)
    assert str(err.value) == (
        "needs_seed() needs a value for 'seed'. Fix: pass it in args, e.g. args={'seed': ...}"
    )
    assert Program.from_function(needs_seed, {"seed": 3}).args == {"seed": 3, "lr": 0.1}


def test_what_cannot_be_shipped_is_refused_with_a_fix() -> None:
    with pytest.raises(ProgramError) as err:
        Program.from_function(uses_undefined)
    assert str(err.value) == (
        "uses_undefined() uses 'NOT_DEFINED', which is not defined where it was defined. "
        "Fix: define 'NOT_DEFINED' (run the cell that does), or pass it as an argument"
    )
    with pytest.raises(ProgramError, match="cannot ship a lambda"):
        Program.from_function(lambda: None)
    with pytest.raises(ProgramError, match="positional-only argument 'a'"):
        Program.from_function(positional)
    with pytest.raises(ProgramError, match="needs a function defined with def, not int"):
        Program.from_function(3)


def test_the_written_program_runs_on_its_own(tmp_path: Path) -> None:
    program = Program.from_function(fit, {"name": "solo"}, [("tags", "[x]")])
    path = program.write(tmp_path / "program")
    done = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    # (2*4*(1+2+3) + 3 * len(os.sep)) * 0.5 * 2 = 51
    assert json.loads(done.stdout) == {"total": 51.0, "name": "solo", "tags": ["x"]}
    sizes = program.value_bytes(tmp_path / "program")
    assert set(sizes) == {"SETTINGS", "ROWS"} and all(size > 0 for size in sizes.values())


def test_a_cell_runs_at_the_top_level_after_what_it_uses(tmp_path: Path) -> None:
    # the namespace the notebook code was defined in (a kernel's is __main__)
    namespace = {"__name__": __name__, "ROWS": [1, 2], "to_json": to_json, "helper": helper}
    cell = "total = sum(helper(r) for r in ROWS)\nprint(to_json({'total': total}))\n"
    program = Program.from_cell(cell, namespace)
    assert set(program.values) == {"ROWS", "SETTINGS"}  # SETTINGS: what Scaler reads
    assert "from json import dumps as to_json" in program.source
    assert "def helper" in program.source and "class Scaler" in program.source
    path = program.write(tmp_path / "program")
    assert (tmp_path / "program" / "cell.py").read_text() == cell
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"total": 2 * 4 * 3 + 2 * len(osp.sep)}


def test_a_cell_with_ipython_syntax_is_refused() -> None:
    with pytest.raises(ProgramError) as err:
        Program.from_cell("x = 1\n!nvidia-smi\n", {"__name__": "__main__"})
    assert str(err.value).startswith("line 2 of the cell is IPython syntax")


def test_a_script_runs_as_main_with_its_arguments_and_neighbours(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "shapes.py").write_text("SIDES = 4\n")
    script = tmp_path / "src" / "train.py"
    script.write_text(
        "import sys\nfrom shapes import SIDES\n"
        "if __name__ == '__main__':\n    print(SIDES, sys.argv[1:])\n"
    )
    program = Program.from_script(script, ["--epochs", "3"])
    assert program.name == "train"
    path = program.write(tmp_path / "job")
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "4 ['--epochs', '3']\n"
    with pytest.raises(ProgramError, match="cannot read the script"):
        Program.from_script(tmp_path / "missing.py")
