"""The step engine's throttled saves of a step's output notebook
(``kfnb.backends.local.execute``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from kfnb.backends.local.execute import SAVE_EVERY, _throttled


class Manager:
    """The part of papermill's ``NotebookExecutionManager`` the throttle reads."""

    def __init__(self) -> None:
        self.clock = datetime(2026, 1, 1, tzinfo=timezone.utc)
        self.last_save_time = self.clock
        self.saved: list[datetime] = []

    def now(self) -> datetime:
        return self.clock

    def save(self, **kwargs: object) -> None:
        self.saved.append(self.clock)
        self.last_save_time = self.clock


def test_saves_at_most_once_a_period_while_cells_run() -> None:
    man = Manager()
    save = _throttled(man.save, man)
    step = SAVE_EVERY / 4
    for _ in range(12):  # cell starts and ends, 4 a period
        man.clock += step
        save()
    assert len(man.saved) == 3
    assert all(b - a >= SAVE_EVERY for a, b in zip(man.saved, man.saved[1:], strict=False))


def test_a_cell_after_a_quiet_period_is_saved_at_once() -> None:
    man = Manager()
    save = _throttled(man.save, man)
    man.clock += SAVE_EVERY + timedelta(milliseconds=1)
    save()
    assert man.saved == [man.clock]
