"""The backend contract: what every backend implements and what every surface may ask of it.

A backend runs work somewhere. Surfaces (CLI, magics, widgets, REST, panel) never branch on a
backend's name: what they need is a method here.

- ``options()``: the typed options (from the config dataclass, ``kfnb.backends.options``);
- ``configure(settings, given)``: the config from explicit values > environment > config file;
- ``available(settings)``: whether it can run here, and why not (for the UI);
- ``detached``: whether its runs outlive the process that submits them;
- ``submit(pipeline, params, store)``: record a run (with its spec) and start it;
- ``attach(store, run_id)``: a handle on a run it started earlier, from any process;
- handles are ``RunView``s: ``read_log(step, offset, limit)`` pages a step's log, UTF-8 safe,
  for the CLI, the widgets and REST alike.
"""

from __future__ import annotations

import abc
import codecs
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..tracking import TERMINAL_RUN, TERMINAL_STEP, Run, Store
from . import options as _options
from .options import Option

if TYPE_CHECKING:
    from ..dag import Pipeline
    from ..settings import Settings

#: The most a log page holds unless asked for less (64 KiB); ``read_log`` with ``limit=None``
#: reads to the end.
LOG_PAGE = 65536


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here; ``detail`` says where it runs, or what to fix."""

    name: str
    available: bool
    detail: str
    fix: str | None = None  # what makes an unavailable backend available

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "available": self.available,
            "detail": self.detail,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class LogPage:
    """A page of a step's log: ``text`` from byte ``start`` up to byte ``offset`` (where the
    next page starts); ``done`` once the step ended and nothing is left to read."""

    text: str
    offset: int
    done: bool
    start: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "offset": self.offset, "done": self.done}


def read_log_file(path: str | None, offset: int, limit: int | None, ended: bool) -> LogPage:
    """Up to ``limit`` bytes of the file at ``path`` from byte ``offset``. A UTF-8 character cut
    by the page's end is left for the next page (unless the step ended and this is the end); a
    limit smaller than the character at ``offset`` reads that whole character, so paging always
    moves on."""
    data = b""
    size = 0
    if path:
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(offset)
                data = f.read() if limit is None else f.read(limit)
                if limit is not None and data and _cut_only(data):
                    data += f.read(4 - len(data))  # a page always holds a whole character
        except FileNotFoundError:
            pass
    end = offset + len(data)
    last = ended and end >= size
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data, final=last)
    pending = len(decoder.getstate()[0])
    if pending and not last:
        end -= pending
    return LogPage(text=text, offset=end, done=last and end >= size, start=offset)


def _cut_only(data: bytes) -> bool:
    """Whether ``data`` is nothing but the start of one UTF-8 character (a page too small)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return decoder.decode(data) == "" and len(data) < 4


class RunView:
    """A run as the run store records it: what every backend and every surface reads."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store = store
        self.id = run_id

    @property
    def record(self) -> Run:
        return self.store.get_run(self.id)

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_RUN

    @property
    def pipeline(self) -> dict[str, Any] | None:
        """The pipeline the run ran, as stored with it (``kfnb.spec``)."""
        return self.record.pipeline

    def children(self) -> list[Run]:
        """The runs under this one (a study's trials, a sweep's runs), oldest first."""
        return self.store.children(self.id)

    def read_log(self, step: str, offset: int = 0, limit: int | None = LOG_PAGE) -> LogPage:
        """A page of ``step``'s log from byte ``offset`` (``limit`` ``None``: to the end)."""
        found = self.record.step(step)
        return read_log_file(found.log, offset, limit, found.status in TERMINAL_STEP)

    def logs(self, step: str) -> str:
        """The log of one step so far."""
        return self.read_log(step, 0, None).text


class RunHandle(RunView, abc.ABC):
    """A submitted run, as its backend follows it."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> str:
        """Block until the run ends (or ``timeout`` seconds pass); return its status."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Ask the run to stop; ``wait()`` returns once it has."""

    def refresh(self) -> str:
        """Bring what the backend knows of the run into the store (a remote run's status);
        return the status. Runs driven by a process of this machine are always up to date."""
        return self.status


class RunnerHandle(RunHandle):
    """A parent run (a study, a batch) that a runner thread of this process drives: the
    runner sets ``finished`` when it returns and polls the store for a cancel request;
    ``stop()`` wakes it at once."""

    def __init__(self, store: Store, run_id: str, runner: Any) -> None:
        super().__init__(store, run_id)
        self.runner = runner

    def wait(self, timeout: float | None = None) -> str:
        self.runner.finished.wait(timeout)
        return self.status

    def cancel(self) -> None:
        self.store.request_cancel(self.id)
        self.runner.stop()


class StoreRunHandle(RunHandle):
    """A run followed through the store alone: another process (a runner) drives it."""

    poll = 0.2

    def wait(self, timeout: float | None = None) -> str:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            time.sleep(self.poll if left is None else min(self.poll, left))
        return self.status

    def cancel(self) -> None:
        self.store.request_cancel(self.id)


class Backend(abc.ABC):
    """Runs pipelines somewhere. Subclasses set ``name``, ``config_class`` (a dataclass whose
    fields are declared with ``kfnb.backends.options.option``) and ``description``."""

    name: ClassVar[str]
    config_class: ClassVar[type]
    description: ClassVar[str] = ""
    #: whether its runs go on without the process that submitted them (a cluster drives them),
    #: so a surface may submit and return (``kfnb run --detach``)
    detached: ClassVar[bool] = False

    def __init__(self, config: Any = None, settings: Settings | None = None) -> None:
        from ..settings import Settings

        self.settings = settings if settings is not None else Settings.load()
        self.config = config if config is not None else self.configure(self.settings, {})

    # -- what surfaces ask --------------------------------------------------------------------
    @classmethod
    def options(cls) -> list[Option]:
        """The typed options of this backend (CLI flags, REST fields and forms come from here)."""
        return _options.options(cls.config_class)

    @classmethod
    def configure(cls, settings: Settings, given: Mapping[str, Any]) -> Any:
        """The config: ``given`` (explicit values) > environment > config file > defaults. An
        unknown option is a ``BackendError`` naming the nearest known one."""
        return _options.build(
            cls.name,
            cls.config_class,
            given,
            env=settings.env,
            file=settings.section(cls.name),
            file_path=settings.config_file,
        )

    @classmethod
    def available(cls, settings: Settings) -> Availability:
        """Whether this backend can run here, and why not. Answers at once (no network)."""
        return Availability(cls.name, True, cls.description or "registered by an installed package")

    # -- what a backend does --------------------------------------------------------------------
    @abc.abstractmethod
    def submit(
        self,
        pipeline: Pipeline,
        params: Mapping[str, Any],
        store: Store,
        *,
        parent_id: str | None = None,
    ) -> RunHandle:
        """Check the pipeline fits this backend, record a run (with ``kfnb.spec``) and start it;
        ``parent_id``: the run it belongs to (a study's trial, a sweep), recorded as its parent."""

    def attach(self, store: Store, run_id: str) -> RunHandle:
        """A handle on a run this backend started earlier, maybe in another process."""
        return StoreRunHandle(store, store.resolve_id(run_id))
