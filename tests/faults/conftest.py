"""The fault and hostile-input suite: each case injects a fault (a full disk, a read-only or
corrupt store, kill -9 of a process kfnb runs) or feeds bad input (REST bodies, CLI arguments)
and checks what every case must keep: the run reaches a terminal state with its cause recorded,
nothing recorded before is lost, no process outlives its owner, no 500, no traceback on a
user's screen. ``tests/integration/procs.py`` (waiting, finding a run's processes) is shared."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from kfnb.tracking import Store


@pytest.fixture(autouse=True)
def kfnb_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the user's ~/.kfnb: every case gets its own KFNB_HOME."""
    home = tmp_path / "kfnb-home"
    monkeypatch.setenv("KFNB_HOME", str(home))
    return home


@pytest.fixture
def store(kfnb_home: Path) -> Store:
    return Store(kfnb_home)
