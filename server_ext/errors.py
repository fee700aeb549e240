"""The REST API's own error kinds; ``handlers.ERROR_STATUS`` maps them (and kfnb's) to statuses.

They say what went wrong with the request itself; errors of the notebook, the parameters or
the run store come from ``kfnb`` and keep their own types.
"""

from __future__ import annotations


class BadRequest(ValueError):
    """The request is malformed: a missing or mistyped field, a folder where a notebook goes."""


class NotFound(LookupError):
    """No such file inside the server root (paths leading outside it are reported the same)."""


class Conflict(RuntimeError):
    """The state of a run forbids it: cancel an ended run, the notebook of a step that never ran."""
