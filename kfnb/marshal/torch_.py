"""PyTorch values as ``.pt`` files written by ``torch.save`` with cloudpickle.

Accepted only when torch is already imported: tensors (and Parameters), ``nn.Module``s,
optimizers, LR schedulers, and dicts/lists/tuples that hold one of those within three levels
(state dicts, optimizer state dicts, ``{"model": m, "opt": o}`` checkpoints); the scan looks at
the first 256 items of each container only, so a huge list of floats costs nothing.

``torch.save(..., pickle_module=cloudpickle)`` pickles notebook-defined ``nn.Module`` subclasses
by value, so the model loads in the fresh kernel of the next step, which never ran the cell that
defined the class; storages are still written in torch's own zip format, not through pickle.

Loading uses ``torch.load(weights_only=False)`` (these files come from the same pipeline, not
from strangers) with a ``map_location`` that keeps each storage on the device it was saved from
when that device exists here, maps ``cuda:N`` to the current CUDA device when there are fewer
GPUs than N + 1 (a step may see other GPUs than its producer), and leaves it on the CPU when
the device type is not available at all, so a CPU-only step can read a GPU step's tensors.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

from .serializer import Serializer

_SCAN_DEPTH = 3
_SCAN_ITEMS = 256


class TorchSerializer(Serializer):
    name = "torch"
    suffix = ".pt"

    def accepts(self, value: object) -> bool:
        torch = sys.modules.get("torch")
        return torch is not None and _holds_torch(value, _torch_types(torch), _SCAN_DEPTH)

    def dump(self, value: object, path: Path) -> None:
        import cloudpickle
        import torch

        torch.save(value, str(path), pickle_module=cloudpickle)

    def load(self, path: Path) -> object:
        import torch

        return torch.load(str(path), weights_only=False, map_location=restore_location)


def restore_location(storage: Any, location: str) -> Any:
    """``map_location`` for ``torch.load``: the saved device if present, else a fallback."""
    import torch

    device, _, index = location.partition(":")
    if device == "cpu" or not _device_available(torch, device):
        return storage  # torch hands the storage over on the CPU: keep it there
    if device == "cuda" and index and int(index) >= torch.cuda.device_count():
        location = "cuda"
    return torch.serialization.default_restore_location(storage, location)


def _device_available(torch: Any, device: str) -> bool:
    if device == "mps":
        return bool(torch.backends.mps.is_available())
    is_available = getattr(getattr(torch, device, None), "is_available", None)
    return bool(is_available is not None and is_available())


def _torch_types(torch: Any) -> tuple[type, ...]:
    types: list[type] = [torch.Tensor, torch.nn.Module, torch.optim.Optimizer]
    scheduler = getattr(torch.optim.lr_scheduler, "LRScheduler", None)
    if scheduler is not None:
        types.append(scheduler)
    return tuple(types)


def _holds_torch(value: object, types: tuple[type, ...], depth: int) -> bool:
    if isinstance(value, types):
        return True
    if depth == 0:
        return False
    if isinstance(value, dict):
        items: Any = value.values()
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        return False
    return any(
        _holds_torch(item, types, depth - 1) for item in itertools.islice(items, _SCAN_ITEMS)
    )
