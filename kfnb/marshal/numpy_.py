"""NumPy arrays as ``.npy`` files, read back through a copy-on-write memory map.

Writing uses ``numpy.save(..., allow_pickle=False)``, so only arrays of plain dtypes come here
(numeric, bool, datetime, fixed-width strings, structured dtypes without object fields); arrays
that hold Python objects, and ndarray subclasses other than ``numpy.memmap`` (``np.matrix``,
masked arrays), go to pickle, which keeps their type.

Reading maps the file with ``mmap_mode="c"`` (copy-on-write, ``MAP_PRIVATE``): the load is
zero-copy, pages are read lazily, and the array is writable, with writes landing in private memory
and never in the file. A read-only map (``mmap_mode="r"``) would make ``x[0] = 1`` raise in user
code, which surprises people. The result is returned as a plain ``numpy.ndarray`` view of the map
(``np.asarray``), so ``type(x) is np.ndarray`` holds; it pickles and saves like any array. Its
one difference from a freshly allocated array is that it does not own its data, so the rare
in-place ``x.resize(...)`` raises (``x = x.copy()`` first). The store replaces files atomically
(a new inode), so re-saving a variable never changes an array that is still mapped.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .serializer import Serializer, require


class NumpySerializer(Serializer):
    name = "npy"
    suffix = ".npy"

    def accepts(self, value: object) -> bool:
        np = sys.modules.get("numpy")
        if np is None or type(value) not in (np.ndarray, np.memmap):
            return False
        return not value.dtype.hasobject  # type: ignore[attr-defined]

    def dump(self, value: Any, path: Path) -> None:
        import numpy as np

        with open(path, "wb") as file:
            np.save(file, value, allow_pickle=False)

    def load(self, path: Path) -> object:
        np = require("numpy", "data", "Loading a numpy array")
        return np.asarray(np.load(path, mmap_mode="c", allow_pickle=False))
