"""kfnb.marshal: typed serializers for the values that flow between steps.

Round trips per value type and the serializer each one gets, the copy-on-write mmap of numpy
arrays, Arrow's fallbacks to pickle, notebook-defined code going through cloudpickle (proved
across fresh processes), error messages, and the registry with its entry points.
"""

from __future__ import annotations

import datetime as dt
import decimal
import fractions
import functools
import importlib.metadata
import json
import os
import pickle
import socket
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.testing as npt
import pandas as pd
import pandas.testing as tm
import pyarrow as pa
import pytest

import kfnb.marshal
from kfnb.errors import KfnbError, MarshalError
from kfnb.marshal import (
    ENTRY_POINT_GROUP,
    Decline,
    Registry,
    Serializer,
    UnknownSerializerError,
    get,
    load,
    load_all,
    register,
    register_entry_points,
    save,
    save_all,
    serializers,
    unregister,
)
from kfnb.marshal import registry as registry_module
from kfnb.marshal.pickle_ import PickleSerializer

REPO_ROOT = Path(kfnb.marshal.__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """Every test works on a copy of the default registry; the original is restored after."""
    copy = registry_module.default_registry.copy()
    monkeypatch.setattr(registry_module, "default_registry", copy)
    return copy


def assert_same(actual: Any, expected: Any) -> None:
    assert type(actual) is type(expected)
    if isinstance(expected, pd.DataFrame):
        tm.assert_frame_equal(
            actual, expected, check_exact=True, check_index_type=True, check_column_type=True
        )
        assert actual.attrs == expected.attrs
    elif isinstance(expected, pd.Series):
        tm.assert_series_equal(actual, expected, check_exact=True, check_index_type=True)
        assert actual.attrs == expected.attrs
    elif isinstance(expected, np.ma.MaskedArray):
        npt.assert_array_equal(actual.mask, expected.mask)
        npt.assert_array_equal(actual.data, expected.data, strict=True)
    elif isinstance(expected, np.ndarray):
        npt.assert_array_equal(actual, expected, strict=True)
    else:
        assert actual == expected


def run_python(code: str, *args: str) -> str:
    """Run ``code`` as ``python -c`` in a fresh interpreter that imports this checkout's kfnb."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- round trips -----------------------------------------------------------------------------


def _frame_with_dtypes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "int": [1, 2, 3],
            "float": [1.5, np.nan, -0.0],
            "bool": [True, False, True],
            "str": ["a", None, "c"],
            "category": pd.Categorical(["lo", "hi", "lo"], categories=["lo", "hi"], ordered=True),
            "when": pd.to_datetime(["2024-01-01", "2024-06-01", None]).tz_localize("Europe/Paris"),
            "naive_ns": pd.to_datetime(["2024-01-01", "2024-06-01", "2025-01-01"]).as_unit("ns"),
            "delta": pd.to_timedelta([1, 2, 3], unit="s"),
            "Int64": pd.array([1, None, 3], dtype="Int64"),
            "boolean": pd.array([True, None, False], dtype="boolean"),
            "Float64": pd.array([0.5, None, 1.5], dtype="Float64"),
            "string": pd.array(["x", None, "z"], dtype="string"),
            "int8": np.array([1, 2, 3], dtype=np.int8),
            "uint64": np.array([1, 2, 2**63], dtype=np.uint64),
            "float16": np.array([1, 2, 3], dtype=np.float16),
            "period": pd.period_range("2024-01", periods=3, freq="M"),
            "interval": pd.interval_range(0, 3),
        }
    )


def _with_attrs(frame: pd.DataFrame) -> pd.DataFrame:
    frame.attrs = {"source": "sensor", "version": 2}
    frame.columns.name = "field"
    return frame


def _series_with_attrs() -> pd.Series:
    series = pd.Series([1.0, 2.0], name="s")
    series.attrs = {"unit": "m"}
    return series


ARROW_CASES = [
    pytest.param(_frame_with_dtypes, id="all-dtypes"),
    pytest.param(lambda: pd.DataFrame({"a": [1.0, 2.0]}, index=["r1", "r2"]), id="unnamed-index"),
    pytest.param(
        lambda: pd.DataFrame({"a": [1, 2]}, index=pd.Index(["r1", "r2"], name="row")),
        id="named-index",
    ),
    pytest.param(
        lambda: pd.DataFrame({"a": [1, 2, 3]}, index=pd.RangeIndex(10, 16, 2, name="r")),
        id="rangeindex",
    ),
    pytest.param(
        lambda: pd.DataFrame({"a": range(4)}, index=pd.date_range("2024", periods=4, freq="D")),
        id="datetimeindex-freq",
    ),
    pytest.param(
        lambda: pd.DataFrame(
            {"a": range(3)},
            index=pd.date_range("2024", periods=3, freq="h", tz="UTC", name="t"),
        ),
        id="datetimeindex-tz",
    ),
    pytest.param(
        lambda: pd.DataFrame(
            {"a": range(3)}, index=pd.DatetimeIndex(["2024-01-02", "2024-01-01", "2024-01-05"])
        ),
        id="datetimeindex-no-freq",
    ),
    pytest.param(
        lambda: pd.DataFrame(
            {"v": [1, 2]}, index=pd.MultiIndex.from_tuples([("a", 1), ("b", 2)], names=["k", "n"])
        ),
        id="multiindex-rows",
    ),
    pytest.param(
        lambda: pd.DataFrame({"a": [1, 2]}, index=pd.CategoricalIndex(["x", "y"])),
        id="categoricalindex",
    ),
    pytest.param(
        lambda: _with_attrs(pd.DataFrame({"a": [1], "b": ["x"]})), id="attrs-and-columns-name"
    ),
    pytest.param(
        lambda: pd.DataFrame(
            {
                "bytes": pd.Series([b"x", None], dtype=object),
                "date": pd.Series([dt.date(2024, 1, 1), None], dtype=object),
                "decimal": pd.Series([decimal.Decimal("1.5"), decimal.Decimal("2.25")]),
            }
        ),
        id="exact-object-columns",
    ),
    pytest.param(lambda: pd.DataFrame({"a": pd.Series([], dtype="float64")}), id="no-rows"),
    pytest.param(lambda: pd.Series([1.0, 2.0], name="s"), id="series-named"),
    pytest.param(lambda: pd.Series(["a", "b"]), id="series-unnamed"),
    pytest.param(lambda: pd.Series(pd.Categorical(["a", "b", "a"]), name="c"), id="series-cat"),
    pytest.param(
        lambda: pd.Series(range(3), index=pd.date_range("2024", periods=3, freq="W"), name="w"),
        id="series-freq",
    ),
    pytest.param(_series_with_attrs, id="series-attrs"),
]


@pytest.mark.parametrize("make", ARROW_CASES)
def test_pandas_values_round_trip_through_arrow(tmp_path: Path, make: Callable[[], Any]) -> None:
    value = make()
    path = save(value, tmp_path, "v", step="prep")
    assert path == tmp_path / "v.arrow"
    assert_same(load(tmp_path, "v", step="train"), value)


PICKLE_FALLBACK_FRAMES = [
    pytest.param(lambda: pd.DataFrame({"a": pd.Series([1, "a"], dtype=object)}), id="mixed-object"),
    pytest.param(lambda: pd.DataFrame({"a": pd.Series(["x", "y"], dtype=object)}), id="object-str"),
    pytest.param(lambda: pd.DataFrame({"a": pd.Series([[1], [2, 3]])}), id="object-lists"),
    pytest.param(
        lambda: pd.DataFrame({"a": pd.Series([b"x", np.nan], dtype=object)}), id="object-nan"
    ),
    pytest.param(lambda: pd.DataFrame(np.eye(2)), id="int-column-labels"),
    pytest.param(lambda: pd.DataFrame([[1, 2]], columns=["a", "a"]), id="duplicate-columns"),
    pytest.param(
        lambda: pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")])),
        id="multiindex-columns",
    ),
    pytest.param(
        lambda: pd.DataFrame({"a": [1]}, index=pd.Index([7], name=3)), id="int-index-name"
    ),
    pytest.param(
        lambda: pd.DataFrame({"a": [1]}, index=pd.Index(["x"], dtype=object)), id="object-index"
    ),
    pytest.param(lambda: pd.DataFrame({"a": [1 + 2j]}), id="complex"),
    pytest.param(lambda: pd.DataFrame({"a": pd.arrays.SparseArray([0, 1, 0])}), id="sparse"),
    pytest.param(
        lambda: pd.DataFrame(
            {"a": pd.array([[1], [2]], dtype=pd.ArrowDtype(pa.list_(pa.int64())))}
        ),
        id="arrow-list-dtype-unreadable",
    ),
    pytest.param(lambda: pd.Series([1, 2], name=("a", 1)), id="series-tuple-name"),
    pytest.param(pd.DataFrame, id="empty-rangeindex-columns"),
]


@pytest.mark.parametrize("make", PICKLE_FALLBACK_FRAMES)
def test_frames_arrow_cannot_represent_exactly_fall_back_to_pickle(
    tmp_path: Path, make: Callable[[], Any]
) -> None:
    value = make()
    assert save(value, tmp_path, "v").suffix == ".pkl"
    assert_same(load(tmp_path, "v"), value)


def test_frame_attrs_that_json_would_change_fall_back_to_pickle(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1]})
    frame.attrs = {"key": (1, 2)}  # JSON turns the tuple into a list
    assert save(frame, tmp_path, "v").suffix == ".pkl"
    assert load(tmp_path, "v").attrs == {"key": (1, 2)}  # type: ignore[attr-defined]


def test_without_pyarrow_frames_are_pickled_and_arrow_files_name_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = pd.DataFrame({"a": [1, 2]})
    save(frame, tmp_path, "arrow_written")
    monkeypatch.setitem(sys.modules, "pyarrow.feather", None)  # "import pyarrow.feather" fails
    assert save(frame, tmp_path, "v").suffix == ".pkl"
    assert_same(load(tmp_path, "v"), frame)
    with pytest.raises(MarshalError, match=r"pip install 'kfnb\[data\]'"):
        load(tmp_path, "arrow_written", step="train")


def test_arrow_file_is_plain_feather_with_kfnb_metadata(tmp_path: Path) -> None:
    import pyarrow.feather as feather

    series = pd.Series([1, 2], name="n", index=pd.date_range("2024", periods=2, freq="D"))
    table = feather.read_table(save(series, tmp_path, "s"))
    assert json.loads(table.schema.metadata[b"kfnb"]) == {
        "kind": "series",
        "name": "n",
        "freq": "D",
    }
    assert b"pandas" in table.schema.metadata


NUMPY_CASES = [
    pytest.param(lambda: np.arange(12.0).reshape(3, 4), id="float64-2d"),
    pytest.param(lambda: np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)), id="F"),
    pytest.param(lambda: np.array(3.5), id="0-d"),
    pytest.param(lambda: np.zeros((0, 3)), id="empty"),
    pytest.param(lambda: np.array([True, False]), id="bool"),
    pytest.param(lambda: np.array(["ab", "c"]), id="unicode"),
    pytest.param(lambda: np.array(["2024-01-01", "NaT"], dtype="datetime64[D]"), id="datetime64"),
    pytest.param(lambda: np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]), id="structured"),
    pytest.param(lambda: np.arange(10)[::3], id="non-contiguous"),
]


@pytest.mark.parametrize("make", NUMPY_CASES)
def test_numpy_arrays_round_trip_through_npy(tmp_path: Path, make: Callable[[], Any]) -> None:
    value = make()
    assert save(value, tmp_path, "a").suffix == ".npy"
    assert_same(load(tmp_path, "a"), value)


class Pair:
    """An importable class: plain pickle carries its instances by reference."""

    def __init__(self, a: int, b: int) -> None:
        self.a, self.b = a, b

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pair) and (self.a, self.b) == (other.a, other.b)


PICKLE_CASES = [
    pytest.param(lambda: {"a": [1, 2.5, "x"], "b": (None, True), "c": {1, 2}}, id="builtins"),
    pytest.param(lambda: 42, id="int"),
    pytest.param(lambda: "text", id="str"),
    pytest.param(lambda: None, id="none"),
    pytest.param(lambda: dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), id="datetime"),
    pytest.param(lambda: decimal.Decimal("1.10"), id="decimal"),
    pytest.param(lambda: fractions.Fraction(1, 3), id="fraction"),
    pytest.param(lambda: Counter("hello"), id="counter"),
    pytest.param(lambda: Path("/data/x.csv"), id="path"),
    pytest.param(lambda: Pair(1, 2), id="importable-class-instance"),
    pytest.param(lambda: np.float64(1.5), id="numpy-scalar"),
    pytest.param(lambda: np.array([1, "a", None], dtype=object), id="object-array"),
    pytest.param(
        lambda: np.ma.masked_array([1, 2, 3], mask=[False, True, False]), id="masked-array"
    ),
    pytest.param(lambda: {"w": np.ones(3), "b": np.zeros(2)}, id="dict-of-arrays"),
    pytest.param(lambda: [pd.DataFrame({"a": [1]}), pd.DataFrame({"b": [2]})], id="list-of-frames"),
]


def _assert_same_nested(actual: Any, expected: Any) -> None:
    if isinstance(expected, dict):
        assert type(actual) is type(expected) and actual.keys() == expected.keys()
        for key in expected:
            _assert_same_nested(actual[key], expected[key])
    elif isinstance(expected, list):
        assert type(actual) is list and len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            _assert_same_nested(a, e)
    else:
        assert_same(actual, expected)


@pytest.mark.parametrize("make", PICKLE_CASES)
def test_other_values_round_trip_through_pickle(tmp_path: Path, make: Callable[[], Any]) -> None:
    value = make()
    assert save(value, tmp_path, "v").suffix == ".pkl"
    _assert_same_nested(load(tmp_path, "v"), value)


def test_save_all_reports_the_serializer_of_each_value(tmp_path: Path) -> None:
    values = {
        "frame": pd.DataFrame({"a": [1]}),
        "array": np.arange(3),
        "config": {"lr": 0.1},
        "fn": lambda x: x + 1,
    }
    used = save_all(values, tmp_path, step="prep")
    assert used == {"frame": "arrow", "array": "npy", "config": "pickle", "fn": "cloudpickle"}
    loaded = load_all(tmp_path, ["frame", "array", "config", "fn"], step="train")
    assert list(loaded) == ["frame", "array", "config", "fn"]
    assert_same(loaded["frame"], values["frame"])
    assert loaded["fn"](1) == 2  # type: ignore[operator]


def test_saving_again_replaces_the_file_of_another_type(tmp_path: Path) -> None:
    save(pd.DataFrame({"a": [1]}), tmp_path, "x")
    save({"now": "a dict"}, tmp_path, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pkl"]
    assert load(tmp_path, "x") == {"now": "a dict"}
    save(np.arange(3), tmp_path, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy"]


def test_variables_with_a_common_prefix_do_not_clash(tmp_path: Path) -> None:
    save(1, tmp_path, "x")
    save(2, tmp_path, "x_1")
    save(3, tmp_path, "x")
    assert load_all(tmp_path, ["x", "x_1"]) == {"x": 3, "x_1": 2}


# -- numpy's copy-on-write memory map ---------------------------------------------------------


def test_loaded_array_is_a_private_copy_on_write_map(tmp_path: Path) -> None:
    original = np.arange(12.0).reshape(3, 4)
    path = save(original, tmp_path, "x")
    on_disk = path.read_bytes()
    x: Any = load(tmp_path, "x")
    assert type(x) is np.ndarray and x.flags.writeable and not x.flags.owndata
    assert isinstance(x.base, np.memmap) and x.base.mode == "c"  # zero-copy, lazily paged

    for op in (
        lambda a: a + 1,
        lambda a: a.sum(axis=0),
        lambda a: a.T @ a,
        lambda a: a[a > 5],
        lambda a: a[1:, ::2],
        lambda a: np.sort(a, axis=None)[::-1],
        lambda a: np.concatenate([a, a]),
        lambda a: a.astype(np.float32).reshape(-1),
        lambda a: pd.DataFrame(a).mean().to_numpy(),
    ):
        npt.assert_array_equal(op(x), op(original), strict=True)

    x[0, 0] = 100.0
    x *= 2
    assert x[0, 0] == 200.0
    assert path.read_bytes() == on_disk  # writes stay private
    npt.assert_array_equal(load(tmp_path, "x"), original)

    unpickled = pickle.loads(pickle.dumps(x))
    assert type(unpickled) is np.ndarray
    npt.assert_array_equal(unpickled, x)


def test_resaving_a_mapped_array_over_its_own_file(tmp_path: Path) -> None:
    save(np.arange(5.0), tmp_path, "x")
    x: Any = load(tmp_path, "x")
    other_reader = load(tmp_path, "x")
    x[0] = -1.0
    save(x, tmp_path, "x")  # atomic replace: a new file, the old mapping stays valid
    npt.assert_array_equal(load(tmp_path, "x"), [-1.0, 1, 2, 3, 4])
    npt.assert_array_equal(other_reader, np.arange(5.0))
    npt.assert_array_equal(x, [-1.0, 1, 2, 3, 4])


# -- notebook-defined code goes through cloudpickle ---------------------------------------------


def _defined_in_main() -> dict[str, Any]:
    """Code whose ``__module__`` is ``__main__``, like a notebook cell's."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(
        textwrap.dedent(
            """
            def double(x):
                return 2 * x

            class Point:
                def __init__(self, x, y):
                    self.x, self.y = x, y
                def norm2(self):
                    return self.x ** 2 + self.y ** 2
            """
        ),
        namespace,
    )
    return namespace


def _local_function() -> Callable[[int], int]:
    offset = 10

    def shift(x: int) -> int:
        return x + offset

    return shift


CLOUDPICKLE_CASES = [
    pytest.param(lambda: _defined_in_main()["double"], lambda f: f(21) == 42, id="main-function"),
    pytest.param(
        lambda: _defined_in_main()["Point"], lambda cls: cls(3, 4).norm2() == 25, id="main-class"
    ),
    pytest.param(
        lambda: _defined_in_main()["Point"](3, 4), lambda p: p.norm2() == 25, id="main-instance"
    ),
    pytest.param(lambda: lambda x: x * x, lambda f: f(3) == 9, id="lambda"),
    pytest.param(_local_function, lambda f: f(1) == 11, id="local-function"),
    pytest.param(
        lambda: {"data": np.ones(3), "transforms": [str.upper, lambda s: s + "!"]},
        lambda d: d["transforms"][1]("a") == "a!" and d["data"].sum() == 3,
        id="container-holding-lambda",
    ),
    pytest.param(
        lambda: functools.partial(_local_function(), 5), lambda f: f() == 15, id="partial"
    ),
]


@pytest.mark.parametrize(("make", "works"), CLOUDPICKLE_CASES)
def test_values_referencing_notebook_code_use_cloudpickle(
    tmp_path: Path, make: Callable[[], Any], works: Callable[[Any], bool]
) -> None:
    assert save(make(), tmp_path, "v").suffix == ".cloudpkl"
    assert works(load(tmp_path, "v"))


PRODUCER = """
    import sys
    from kfnb.marshal import save

    def double(x):
        return 2 * x

    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y
        def norm2(self):
            return self.x ** 2 + self.y ** 2

    values = {
        "double": double,
        "Point": Point,
        "point": Point(3, 4),
        "fns": [double, lambda x: x * x],
        "plain": {"k": [1, 2]},
    }
    for name, value in values.items():
        print(name, save(value, sys.argv[1], name, step="producer").suffix)
"""

CONSUMER = """
    import sys
    from kfnb.marshal import load

    d = sys.argv[1]
    print(load(d, "double")(21), load(d, "point").norm2(), load(d, "Point")(1, 2).norm2(),
          [f(3) for f in load(d, "fns")], load(d, "plain"))
"""


def test_notebook_code_loads_in_a_fresh_process(tmp_path: Path) -> None:
    produced = run_python(PRODUCER, str(tmp_path)).split("\n")
    assert produced[:5] == [
        "double .cloudpkl",
        "Point .cloudpkl",
        "point .cloudpkl",
        "fns .cloudpkl",
        "plain .pkl",
    ]
    assert run_python(CONSUMER, str(tmp_path)).strip() == "42 25 5 [6, 9] {'k': [1, 2]}"


def test_plain_pickle_of_notebook_code_fails_in_a_fresh_process(tmp_path: Path) -> None:
    """The reason for cloudpickle: pickle writes ``__main__.double`` by name only."""
    run_python(
        """
        import pickle, sys
        def double(x):
            return 2 * x
        with open(sys.argv[1], "wb") as f:
            pickle.dump(double, f)
        """,
        str(tmp_path / "double.pkl"),
    )
    with pytest.raises(AssertionError, match="Can't get attribute 'double'"):
        run_python(
            "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))", str(tmp_path / "double.pkl")
        )


def test_marshal_imports_no_heavy_library_for_plain_values(tmp_path: Path) -> None:
    out = run_python(
        """
        import sys
        import kfnb
        heavy = {"numpy", "pandas", "pyarrow", "torch", "cloudpickle"}
        before = heavy & set(sys.modules)
        from kfnb.marshal import load, save
        save({"a": [1, 2]}, sys.argv[1], "a")
        assert load(sys.argv[1], "a") == {"a": [1, 2]}
        print(sorted((heavy & set(sys.modules)) - before))
        """,
        str(tmp_path),
    )
    assert out.strip() == "[]"


# -- errors ------------------------------------------------------------------------------------


UNSERIALIZABLE = [
    pytest.param(lambda: (i for i in range(3)), "generator", "list(", id="generator"),
    pytest.param(lambda: {"a": 1}.keys(), "dict_keys", "list(", id="dict-keys"),
    pytest.param(
        lambda: open(__file__),  # noqa: SIM115 - closed by the test
        "_io.TextIOWrapper",
        "file's path",
        id="open-file",
    ),
    pytest.param(socket.socket, "socket.socket", "recreate it", id="socket"),
    pytest.param(threading.Lock, "_thread.lock", "recreate it", id="lock"),
    pytest.param(
        lambda: {"lock": threading.Lock()}, "dict", "save it to a file yourself", id="nested-lock"
    ),
    pytest.param(
        lambda: {"f": lambda: 1, "lock": threading.RLock()},
        "dict",
        "recreate it",
        id="lock-next-to-lambda",
    ),
]


@pytest.mark.parametrize(("make", "type_name", "advice"), UNSERIALIZABLE)
def test_unserializable_value_names_variable_type_step_and_fix(
    tmp_path: Path, make: Callable[[], Any], type_name: str, advice: str
) -> None:
    value = make()
    try:
        with pytest.raises(MarshalError) as caught:
            save(value, tmp_path, "thing", step="prep")
    finally:
        if hasattr(value, "close"):
            value.close()
    message = str(caught.value)
    assert "'thing'" in message and f"({type_name})" in message and "step 'prep'" in message
    assert "Fix:" in message and advice in message
    assert caught.value.__cause__ is not None
    assert list(tmp_path.iterdir()) == []  # no partial or temporary file left behind


def test_modules_are_not_marshalled(tmp_path: Path) -> None:
    with pytest.raises(MarshalError, match=r"variable 'np' of step 'prep' is the module 'numpy'"):
        save(np, tmp_path, "np", step="prep")
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_the_previous_value(tmp_path: Path) -> None:
    save([1, 2], tmp_path, "x")
    with pytest.raises(MarshalError):
        save(threading.Lock(), tmp_path, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pkl"]
    assert load(tmp_path, "x") == [1, 2]


@pytest.mark.parametrize("name", ["", "a.b", "../x", "a/b"])
def test_invalid_variable_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(MarshalError, match="invalid variable name"):
        save(1, tmp_path, name)


@pytest.mark.parametrize("exists", [True, False], ids=["empty-dir", "no-dir"])
def test_missing_variable_names_variable_step_and_directory(tmp_path: Path, exists: bool) -> None:
    directory = tmp_path / "prep"
    if exists:
        directory.mkdir()
    with pytest.raises(MarshalError) as caught:
        load(directory, "model", step="train")
    message = str(caught.value)
    assert "'model'" in message and "step 'train'" in message and str(directory) in message


def test_file_of_an_unregistered_serializer(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_bytes(b"")
    with pytest.raises(MarshalError, match=r"suffix \.parquet, which no registered serializer"):
        load(tmp_path, "x", step="train")


def test_corrupt_file_is_reported_with_its_cause(tmp_path: Path) -> None:
    (tmp_path / "x.pkl").write_bytes(b"not a pickle")
    with pytest.raises(MarshalError, match=r"cannot load variable 'x' needed by step 'train'"):
        load(tmp_path, "x", step="train")


# -- the registry ------------------------------------------------------------------------------


class JsonSerializer(Serializer):
    """A test serializer for JSON-able dicts; declines anything JSON cannot write."""

    name = "json"
    suffix = ".json"

    def accepts(self, value: object) -> bool:
        return type(value) is dict

    def dump(self, value: object, path: Path) -> None:
        try:
            text = json.dumps(value)
        except TypeError as err:
            raise Decline(str(err)) from err
        path.write_text(text)

    def load(self, path: Path) -> object:
        return json.loads(path.read_text())


class CatchAllSerializer(Serializer):
    name = "repr"
    suffix = ".repr"

    def accepts(self, value: object) -> bool:
        return True

    def dump(self, value: object, path: Path) -> None:
        path.write_text(repr(value))

    def load(self, path: Path) -> object:
        return path.read_text()


class HalfWriteSerializer(Serializer):
    """Writes part of a file, then fails (or declines)."""

    name = "half"
    suffix = ".half"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def accepts(self, value: object) -> bool:
        return isinstance(value, int)

    def dump(self, value: object, path: Path) -> None:
        path.write_text("partial")
        raise self.error

    def load(self, path: Path) -> object:
        raise AssertionError("never written")


def test_default_lookup_order() -> None:
    assert [s.name for s in serializers()] == ["torch", "arrow", "npy", "pickle", "cloudpickle"]
    assert [s.suffix for s in serializers()] == [".pt", ".arrow", ".npy", ".pkl", ".cloudpkl"]


def test_registered_serializer_wins_for_the_values_it_accepts(tmp_path: Path) -> None:
    register(JsonSerializer())
    assert serializers()[0].name == "json"
    assert save({"a": 1}, tmp_path, "d").suffix == ".json"
    assert save({"a": {1, 2}}, tmp_path, "s").suffix == ".pkl"  # declined: next in line
    assert save([1], tmp_path, "l").suffix == ".pkl"  # not accepted
    assert load(tmp_path, "d") == {"a": 1}
    unregister("json")
    assert save({"a": 1}, tmp_path, "d").suffix == ".pkl"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.pkl", "l.pkl", "s.pkl"]


def test_register_last_goes_before_the_pickle_fallbacks(tmp_path: Path) -> None:
    register(CatchAllSerializer(), first=False)
    assert [s.name for s in serializers()][-3:] == ["repr", "pickle", "cloudpickle"]
    assert save(7, tmp_path, "n").suffix == ".repr"
    assert save(np.arange(2), tmp_path, "a").suffix == ".npy"  # earlier serializers still win


def test_registering_a_known_name_replaces_it() -> None:
    register(JsonSerializer())
    register(JsonSerializer(), first=False)
    assert [s.name for s in serializers()].count("json") == 1
    assert [s.name for s in serializers()][-3] == "json"


def test_suffix_must_be_unique() -> None:
    class OtherNpy(JsonSerializer):
        name = "other"
        suffix = ".npy"

    with pytest.raises(KfnbError, match=r"suffix '\.npy' is already used by serializer 'npy'"):
        register(OtherNpy())


def test_registry_is_restored_between_tests() -> None:
    """Runs after the tests above registered 'json' and 'repr': the fixture undid that."""
    assert "json" not in [s.name for s in serializers()]
    assert "repr" not in [s.name for s in serializers()]


@pytest.mark.parametrize("lookup", [get, unregister], ids=["get", "unregister"])
def test_unknown_name_lists_known_serializers(lookup: Callable[[str], Any]) -> None:
    with pytest.raises(UnknownSerializerError) as caught:
        lookup("parquet")
    assert isinstance(caught.value, KfnbError)
    assert str(caught.value) == (
        "no serializer named 'parquet'; known serializers: arrow, cloudpickle, npy, pickle, torch"
    )


def test_get_returns_the_registered_instance() -> None:
    assert isinstance(get("pickle"), PickleSerializer)


@pytest.mark.parametrize(
    "error", [OSError("disk full"), Decline("not for me")], ids=["failure", "decline"]
)
def test_half_written_file_is_removed(tmp_path: Path, error: Exception) -> None:
    register(HalfWriteSerializer(error))
    if isinstance(error, Decline):
        assert save(5, tmp_path, "n").suffix == ".pkl"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["n.pkl"]
    else:
        with pytest.raises(MarshalError, match="'n' \\(int\\) with the 'half' serializer: disk"):
            save(5, tmp_path, "n")
        assert list(tmp_path.iterdir()) == []


@dataclass
class FakeEntryPoint:
    """The slice of ``importlib.metadata.EntryPoint`` that the registry uses."""

    name: str
    target: object
    value: str = "fake_pkg.serializers:Thing"

    def load(self) -> object:
        if isinstance(self.target, Exception):
            raise self.target
        return self.target


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, *points: FakeEntryPoint) -> None:
    def entry_points(*, group: str) -> list[FakeEntryPoint]:
        return list(points) if group == ENTRY_POINT_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


@pytest.mark.parametrize("target", [JsonSerializer, JsonSerializer()], ids=["class", "instance"])
def test_entry_point_serializer_is_registered_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, target: object
) -> None:
    fake_entry_points(monkeypatch, FakeEntryPoint("json", target))
    assert register_entry_points() == ["json"]
    assert serializers()[0].name == "json"
    assert save({"a": 1}, tmp_path, "d").suffix == ".json"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (dict, "is neither a kfnb.marshal.Serializer subclass nor an instance"),
        (ImportError("No module named 'fake_pkg'"), "cannot load entry point 'bad'"),
    ],
    ids=["not-a-serializer", "import-error"],
)
def test_broken_entry_point(monkeypatch: pytest.MonkeyPatch, target: object, message: str) -> None:
    fake_entry_points(monkeypatch, FakeEntryPoint("bad", target))
    with pytest.raises(KfnbError, match=message):
        register_entry_points()


def test_entry_points_load_on_first_use_and_broken_ones_only_warn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_entry_points(
        monkeypatch, FakeEntryPoint("json", JsonSerializer), FakeEntryPoint("bad", dict)
    )
    registry = Registry([PickleSerializer()], autoload_entry_points=True)
    with pytest.warns(UserWarning, match="skipping serializer entry point"):
        names = [s.name for s in registry.serializers()]
    assert names == ["json", "pickle"]


def test_entry_points_read_ahead_are_not_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernels' fork server reads them once for every kernel it forks."""
    fake_entry_points(monkeypatch)  # none installed: the usual case
    registry = Registry([PickleSerializer()], autoload_entry_points=True)
    assert registry.load_entry_points_ahead()
    fake_entry_points(monkeypatch, FakeEntryPoint("json", JsonSerializer))  # not read again
    assert [s.name for s in registry.serializers()] == ["pickle"]


def test_installed_plugins_load_on_first_use_not_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin's code runs in the kernel that uses it, never in the fork server (an import
    there that starts a thread would meet the fork); a broken one warns in that kernel."""
    fake_entry_points(
        monkeypatch, FakeEntryPoint("json", JsonSerializer), FakeEntryPoint("bad", dict)
    )
    registry = Registry([PickleSerializer()], autoload_entry_points=True)
    assert not registry.load_entry_points_ahead()
    with pytest.warns(UserWarning, match="skipping serializer entry point"):
        names = [s.name for s in registry.serializers()]
    assert names == ["json", "pickle"]


# -- torch -------------------------------------------------------------------------------------


def _assert_same_torch(actual: Any, expected: Any) -> None:
    torch = pytest.importorskip("torch")
    assert type(actual) is type(expected)
    if isinstance(expected, torch.Tensor):
        assert actual.dtype == expected.dtype and actual.device.type == "cpu"
        assert torch.equal(actual, expected)
    elif isinstance(expected, (torch.nn.Module, torch.optim.Optimizer)):
        _assert_same_torch(actual.state_dict(), expected.state_dict())
    elif isinstance(expected, dict):
        assert list(actual) == list(expected)
        for key in expected:
            _assert_same_torch(actual[key], expected[key])
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            _assert_same_torch(a, e)
    else:
        assert actual == expected


def _trained() -> tuple[Any, Any]:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(8, 4)).sum().backward()
    optimizer.step()
    return model, optimizer


TORCH_CASES = [
    pytest.param(lambda t: t.arange(6.0).reshape(2, 3), id="tensor"),
    pytest.param(lambda t: t.tensor([1, 2], dtype=t.int16), id="int-tensor"),
    pytest.param(lambda t: t.nn.Parameter(t.ones(2)), id="parameter"),
    pytest.param(lambda t: _trained()[0], id="module"),
    pytest.param(lambda t: _trained()[0].state_dict(), id="state-dict"),
    pytest.param(lambda t: _trained()[1], id="optimizer"),
    pytest.param(lambda t: _trained()[1].state_dict(), id="optimizer-state-dict"),
    pytest.param(
        lambda t: {"model": _trained()[0], "epoch": 3, "losses": [0.5, 0.25]}, id="checkpoint"
    ),
    pytest.param(lambda t: [t.zeros(2), t.ones(2)], id="list-of-tensors"),
]


@pytest.mark.parametrize("make", TORCH_CASES)
def test_torch_values_round_trip_through_pt(tmp_path: Path, make: Callable[[Any], Any]) -> None:
    torch = pytest.importorskip("torch")
    value = make(torch)
    assert save(value, tmp_path, "v").suffix == ".pt"
    _assert_same_torch(load(tmp_path, "v"), value)


def test_plain_values_skip_torch_even_when_it_is_imported(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    assert save({"w": np.ones(3), "n": list(range(1000))}, tmp_path, "d").suffix == ".pkl"


def test_cuda_tensors_load_on_a_machine_without_cuda(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    with monkeypatch.context() as patch:  # make torch.save record the storages as cuda:0
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        path = save({"w": torch.arange(3.0)}, tmp_path, "w")
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(path, weights_only=False)  # what a plain torch.load would do
    loaded = load(tmp_path, "w")
    assert loaded["w"].device.type == "cpu"  # type: ignore[index]
    assert torch.equal(loaded["w"], torch.arange(3.0))  # type: ignore[index]


def test_notebook_defined_module_loads_in_a_fresh_process(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    expected = run_python(
        """
        import sys, torch
        from kfnb.marshal import save

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(2, 1)
            def forward(self, x):
                return self.fc(x) * 2

        torch.manual_seed(0)
        net = Net()
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        print(save({"net": net, "opt": opt}, sys.argv[1], "ckpt", step="train").suffix)
        print(net(torch.ones(1, 2)).item())
        """,
        str(tmp_path),
    ).split()
    assert expected[0] == ".pt"
    got = run_python(
        """
        import sys, torch
        from kfnb.marshal import load
        ckpt = load(sys.argv[1], "ckpt", step="evaluate")
        print(type(ckpt["net"]).__name__, ckpt["net"](torch.ones(1, 2)).item())
        """,
        str(tmp_path),
    ).split()
    assert got == ["Net", expected[1]]
