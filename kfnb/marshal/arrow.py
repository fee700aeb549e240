"""pandas DataFrames and Series as uncompressed Arrow IPC (Feather v2) files.

Writing converts with ``pyarrow.Table.from_pandas`` (pandas metadata keeps the index, dtypes,
categoricals, tz-aware datetimes, nullable ``Int64``/``boolean``/``Float64``, pandas 3's ``str``
dtype, ``attrs`` and the column names) and writes without compression, so reading is a memory map
(``pyarrow.feather.read_table(path, memory_map=True).to_pandas()``): no decompression, and
Arrow-backed columns such as strings can stay zero-copy. What Arrow's pandas metadata does not
keep, kfnb keeps in a ``kfnb`` schema metadata entry: that the value was a Series (and its name),
and the ``freq`` of a DatetimeIndex/TimedeltaIndex.

A frame goes to pickle instead (``Decline``) when Arrow cannot give it back exactly. Cheap checks
catch the known cases before any data is converted:

- column labels that are not all strings (ints, tuples, MultiIndex columns) or not unique;
- index level names that are neither ``None`` nor strings (Arrow stringifies them);
- object-dtype columns or index levels, unless they hold only ``bytes``, ``datetime.date`` or
  ``decimal.Decimal`` values with ``None`` as the only missing value; everything else in an
  object column changes type on the way back (str -> ``str`` dtype, ints -> ``int64``, lists ->
  arrays) or fails (mixed types);
- ``attrs`` that JSON would not give back unchanged; a Series whose name is not a string.

Then conversion is tried (complex, sparse and other unsupported dtypes raise and decline), and
as a safety net a zero-row slice of the table is converted back and its columns, dtypes and index
compared with the original, which catches dtype changes and metadata Arrow cannot read back
without touching the data. A frame without pyarrow installed also goes to pickle.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .serializer import Decline, Serializer, require

_META_KEY = b"kfnb"
_SERIES_COLUMN = "__kfnb_series__"
_EXACT_OBJECT_KINDS = frozenset({"bytes", "date", "decimal", "empty"})


class ArrowSerializer(Serializer):
    name = "arrow"
    suffix = ".arrow"

    def accepts(self, value: object) -> bool:
        pd = sys.modules.get("pandas")
        return pd is not None and type(value) in (pd.DataFrame, pd.Series)

    def dump(self, value: object, path: Path) -> None:
        try:
            import pyarrow as pa
            import pyarrow.feather as feather
        except ImportError as err:
            raise Decline("pyarrow is not installed") from err
        frame, meta = _as_frame(value)
        _check_representable(frame)
        try:
            table = pa.Table.from_pandas(frame, preserve_index=None)
        except (pa.ArrowException, TypeError, ValueError) as err:
            raise Decline(f"Arrow cannot convert it: {err}") from err
        _check_schema_round_trip(table, frame)
        freq = getattr(frame.index, "freqstr", None)
        if freq is not None:
            meta["freq"] = freq
        metadata = dict(table.schema.metadata or {})
        metadata[_META_KEY] = json.dumps(meta).encode()
        feather.write_feather(
            table.replace_schema_metadata(metadata), str(path), compression="uncompressed"
        )

    def load(self, path: Path) -> object:
        require("pandas", "data", "Loading a DataFrame")
        feather = require("pyarrow.feather", "data", "Loading a DataFrame saved as Arrow")
        table = feather.read_table(str(path), memory_map=True)
        meta = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
        frame = table.to_pandas()
        if meta.get("freq") is not None:
            frame.index = type(frame.index)(frame.index, freq=meta["freq"])
        if meta.get("kind") != "series":
            return frame
        series = frame.iloc[:, 0]
        series.name = meta.get("name")
        return series


def _as_frame(value: Any) -> tuple[Any, dict[str, Any]]:
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return value, {"kind": "frame"}
    name = value.name
    if name is not None and not isinstance(name, str):
        raise Decline(f"the Series name {name!r} is not a string")
    return value.to_frame(name=_SERIES_COLUMN if name is None else name), {
        "kind": "series",
        "name": name,
    }


def _check_representable(frame: Any) -> None:
    import pandas as pd

    columns = frame.columns
    if isinstance(columns, pd.MultiIndex):
        raise Decline("it has MultiIndex columns")
    if not all(isinstance(label, str) for label in columns):
        raise Decline("not all column labels are strings")
    if not columns.is_unique:
        raise Decline("its column labels are not unique")
    if not all(name is None or isinstance(name, str) for name in frame.index.names):
        raise Decline("an index level name is not a string")
    is_object = pd.api.types.is_object_dtype
    for label, dtype in frame.dtypes.items():
        if is_object(dtype):
            _check_object_values(frame[label], f"column {label!r}")
    for level, dtype in enumerate(_level_dtypes(frame.index)):
        if is_object(dtype):
            _check_object_values(frame.index.get_level_values(level), f"index level {level}")
    if frame.attrs:
        try:
            exact = json.loads(json.dumps(frame.attrs)) == frame.attrs
        except (TypeError, ValueError):
            exact = False
        if not exact:
            raise Decline("its attrs do not survive JSON")


def _check_object_values(values: Any, what: str) -> None:
    import pandas as pd

    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind not in _EXACT_OBJECT_KINDS:
        raise Decline(f"{what} has object dtype holding {kind} values")
    missing = values[pd.isna(values)]
    if any(item is not None for item in missing):
        raise Decline(f"{what} has object dtype with NaN, which Arrow turns into None")


def _check_schema_round_trip(table: Any, frame: Any) -> None:
    try:
        empty = table.slice(0, 0).to_pandas()
    except Exception as err:
        raise Decline(f"Arrow cannot read it back: {err}") from err
    same = (
        type(empty.columns) is type(frame.columns)
        and list(empty.columns) == list(frame.columns)
        and empty.columns.dtype == frame.columns.dtype
        and list(empty.dtypes) == list(frame.dtypes)
        and _index_signature(empty.index) == _index_signature(frame.index)
    )
    if not same:
        raise Decline("Arrow would change its columns, dtypes or index")


def _index_signature(index: Any) -> tuple[Any, ...]:
    import pandas as pd

    if isinstance(index, pd.RangeIndex):  # kept as metadata, which a zero-row slice drops
        return (pd.RangeIndex,)
    return (type(index), list(index.names), _level_dtypes(index))


def _level_dtypes(index: Any) -> list[Any]:
    levels = getattr(index, "levels", None)
    return [level.dtype for level in levels] if levels is not None else [index.dtype]
