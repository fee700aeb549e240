"""``GET /kfnb/api/backends``: where this server can run pipelines, why not where it cannot, and
each backend's typed options (what the run form offers).

Everything comes from the backends themselves (``Backend.available`` and ``Backend.options``):
this handler knows no backend by name. Nothing is probed over the network, so it answers at once.
"""

from __future__ import annotations

from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized

from kfnb.backends import availability, get_backend
from kfnb.settings import Settings

from .base import KfnbHandler


def all_backends(settings: Settings) -> list[dict[str, Any]]:
    found = []
    for entry in availability(settings):
        options = [o.to_dict() for o in get_backend(entry.name).options() if not o.hidden]
        found.append({**entry.to_dict(), "options": options})
    return found


class BackendsHandler(KfnbHandler):
    """``GET backends`` -> ``[{"name", "available", "detail", "options"}]``."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.blocking(all_backends, self.kfnb_settings.settings()))
