"""The REST API's own error kinds; ``base.ERROR_STATUS`` maps them (and kfnb's) to statuses.

They say what went wrong with the request itself; errors of the notebook, the parameters or
the run store come from ``kfnb`` and keep their own types. They are ``KfnbError``s, so they
carry ``fix`` and ``where`` as attributes like every other error the API reports.
"""

from __future__ import annotations

from kfnb.errors import KfnbError


class BadRequest(KfnbError, ValueError):
    """The request is malformed: a missing or mistyped field, a folder where a notebook goes."""


class Forbidden(KfnbError):
    """The server refuses on purpose: a file it may not read, a copy that would land (or come
    from) outside its root."""


class NotFound(KfnbError, LookupError):
    """No such file inside the server root (paths leading outside it are reported the same)."""


class Conflict(KfnbError, RuntimeError):
    """The state of a run forbids it: cancel an ended run, the notebook of a step that never ran."""
