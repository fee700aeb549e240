"""Typed serializers for the values that flow between pipeline steps.

The step that defines a variable saves it, the steps that use it load it, each in its own kernel:

    from kfnb.marshal import save_all, load_all
    save_all({"df": df, "model": model}, "/run/prep/out", step="prep")   # in step "prep"
    values = load_all("/run/prep/out", ["df", "model"], step="train")   # in step "train"

The format is chosen by the value's type, through a registry like papermill's engines; in
default lookup order:

- ``torch`` (``.pt``): tensors, modules, optimizers, state dicts, when torch is already imported;
- ``arrow`` (``.arrow``): pandas DataFrames and Series that Arrow gives back exactly;
- ``npy`` (``.npy``): numpy arrays of non-object dtype, loaded as a copy-on-write memory map;
- ``pickle`` (``.pkl``): everything else, protocol 5;
- ``cloudpickle`` (``.cloudpkl``): what pickle declines because it references functions or
  classes defined in the notebook, which a fresh kernel could not import by name.

Module objects are never saved: a step that needs a module imports it again.

Modules: ``serializer`` (the ``Serializer`` ABC and ``Decline``), ``registry`` (lookup order,
entry points), ``store`` (files, atomic writes, error messages), and one module per format family:
``numpy_``, ``arrow``, ``torch_``, ``pickle_``. Nothing here imports numpy, pandas, pyarrow or torch
until a value of theirs is saved or a file of theirs is loaded.
"""

from __future__ import annotations

from .registry import (
    ENTRY_POINT_GROUP,
    Registry,
    UnknownSerializerError,
    get,
    register,
    register_entry_points,
    serializers,
    unregister,
)
from .serializer import Decline, Serializer
from .store import load, load_all, load_folder, save, save_all

__all__ = [
    "ENTRY_POINT_GROUP",
    "Decline",
    "Registry",
    "Serializer",
    "UnknownSerializerError",
    "get",
    "load",
    "load_all",
    "load_folder",
    "register",
    "register_entry_points",
    "save",
    "save_all",
    "serializers",
    "unregister",
]
