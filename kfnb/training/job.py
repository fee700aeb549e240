"""A training job as its caller holds it: a run of kind ``train`` followed through the store,
from the process that launched it or any other (``kfnb.training.attach(run_id)``)."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from ..backends import LOG_PAGE, LogPage, StoreRunHandle
from ..backends.base import read_log_file
from ..display import RunDisplay
from ..tracking import TERMINAL_RUN
from .supervise import MERGED_LOG


class TrainJob(RunDisplay, StoreRunHandle):
    """``wait()``, ``cancel()``, ``status``; ``metrics`` (name -> values in order),
    ``logs(rank=None)``: one rank's log, or all ranks merged with ``[rank N]`` prefixes."""

    @property
    def handle(self) -> TrainJob:
        """Its own handle (the widget's Stop cancels through it)."""
        return self

    @property
    def metrics(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for m in self.store.metrics(self.id):
            out.setdefault(m.name, []).append(m.value)
        return out

    @property
    def error(self) -> str | None:
        return self.record.error

    def logs(self, rank: int | str | None = None) -> str:  # type: ignore[override]
        """The log of ``rank`` (0, 1... or ``"rank-1"``) so far; ``None``: every rank merged."""
        if rank is None:
            return self.read_merged(0, None).text
        return super().logs(rank if isinstance(rank, str) else f"rank-{rank}")

    def read_merged(self, offset: int = 0, limit: int | None = LOG_PAGE) -> LogPage:
        path = Path(self.record.artifacts_dir) / MERGED_LOG
        return read_log_file(str(path), offset, limit, self.status in TERMINAL_RUN)

    def follow(self, out: TextIO) -> str:
        """Print the merged log to ``out`` as it grows until the job ends (Ctrl-C cancels it);
        return the final status."""
        offset = 0
        try:
            while True:
                ended = self.done
                page = self.read_merged(offset, None)
                offset = page.offset
                print(page.text, end="", file=out, flush=True)
                if ended:
                    return self.status
                self.wait(timeout=0.3)
        except KeyboardInterrupt:
            print("\nkfnb: cancelling the job...", file=out, flush=True)
            self.cancel()
            return self.wait()

    def __repr__(self) -> str:
        return f"<TrainJob {self.id} {self.status}>"
