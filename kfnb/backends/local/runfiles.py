"""A local run's files and the disk space it holds back.

``RunPaths`` names the folders of a run's artifacts (``KFNB_HOME/runs/<id>/``): the step
notebooks, the executed notebooks, the step logs, the values that flow between steps (``data``)
and a private ``.work`` folder. ``Reserve`` is a small file in ``.work`` that the scheduler gives
up when the disk fills, so that the run's end can still be recorded. ``disk_error`` tells a
failure to write those files (a full disk, a quota, a read-only mount, permissions) from the
rest, as a ``RunFilesError`` that says where and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ...errors import KfnbError
from ...tracking.errors import StoreDiskFull

RESERVE_BYTES = 256 * 1024  # disk space held back to record a run's end on a full disk
_ERRNO = re.compile(r"\[Errno (\d+)\]")


class RunFilesError(KfnbError):
    """A run's files (step notebooks, logs, the values steps pass on) could not be written."""


#: errno -> (what it means for the folder, what to do); ``{folder}`` is filled in
_DISK_ERRORS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: (
        "the disk that holds {folder} is full",
        "free space on that disk (at {folder}), or set KFNB_HOME to a folder on another disk",
    ),
    errno.EDQUOT: (
        "this user's disk quota on {folder} is used up",
        "free space within the quota, or set KFNB_HOME to a folder on another disk",
    ),
    errno.EROFS: (
        "the file system that holds {folder} is mounted read-only",
        "remount it read-write, or set KFNB_HOME to a folder on a writable file system",
    ),
    errno.EACCES: (
        "this user may not write in {folder}",
        "make {folder} writable by this user, or set KFNB_HOME to a writable folder",
    ),
}


def _chain(err: BaseException | str | None) -> list[BaseException | str]:
    """An error and the ones it was raised from (or a text alone)."""
    chain: list[BaseException | str] = []
    while isinstance(err, BaseException) and all(err is not seen for seen in chain):
        chain.append(err)
        err = err.__cause__ or err.__context__
    if isinstance(err, str):
        chain.append(err)
    return chain


def disk_errno(err: BaseException | str | None) -> int | None:
    """The errno of a failure to write a file: an ``OSError`` (or one it was raised from), the
    text of one as a step's outcome carries it (``[Errno 28] No space left on device``), or the
    store's full disk (SQLite says so without an errno)."""
    chain = _chain(err)
    for each in chain:
        if isinstance(each, OSError) and each.errno in _DISK_ERRORS:
            return each.errno
        if isinstance(each, StoreDiskFull):
            return errno.ENOSPC
    for found in _ERRNO.findall("\n".join(map(str, chain))):
        if int(found) in _DISK_ERRORS:
            return int(found)
    return None


def disk_error(err: BaseException | str | None, folder: Path, what: str) -> RunFilesError | None:
    """``what`` (e.g. "step 'b' could not write its notebook") failed because files cannot be
    written in ``folder`` (a run's artifacts folder): the error that says why and what to do,
    the system's words in brackets. None for any other failure."""
    number = disk_errno(err)
    if number is None:
        return None
    text = "\n".join(str(each) for each in _chain(err))
    if number in (errno.EACCES, errno.EROFS) and str(folder) not in text:
        return None  # a file elsewhere (the full disk and the quota name none)
    problem, fix = _DISK_ERRORS[number]
    return RunFilesError(
        f"{what}: {problem.format(folder=folder)} ([Errno {number}] {os.strerror(number)})",
        fix=fix.format(folder=folder),
    )


@dataclass
class RunPaths:
    """Where a run keeps its files (inside its artifacts directory)."""

    root: Path

    @property
    def steps(self) -> Path:
        return self.root / "steps"

    @property
    def executed(self) -> Path:
        return self.root / "executed"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def work(self) -> Path:
        return self.root / ".work"

    def make(self) -> None:
        try:
            for p in (self.steps, self.executed, self.logs, self.data, self.work):
                p.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise disk_error(err, self.root, "cannot create the run's folders") or RunFilesError(
                f"cannot create the run's folders: {err}",
                fix="make the run store folder writable, or set KFNB_HOME to another folder",
                where=str(self.root),
            ) from err


class Reserve:
    """A file of ``size`` bytes allocated next to a run's files while it runs, given up when the
    disk fills, so that the store (usually on the same disk) can still record how the run
    ended. Best effort: where it cannot be allocated, there is none."""

    def __init__(self, path: Path, size: int = RESERVE_BYTES) -> None:
        self.path = path
        self.size = size
        self.held = False

    def hold(self) -> None:
        try:
            with open(self.path, "wb") as f:
                os.posix_fallocate(f.fileno(), 0, self.size)
            self.held = True
        except OSError:
            self.release()

    def release(self) -> bool:
        """Give the space back; whether there was any to give."""
        held, self.held = self.held, False
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
        return held

    def disk_full(self) -> bool:
        """Whether less than the reserve's size is left free on its disk."""
        try:
            return shutil.disk_usage(self.path.parent).free < self.size
        except OSError:
            return False
