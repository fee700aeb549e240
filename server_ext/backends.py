"""``GET /kfnb/api/backends``: where this server can run pipelines, why not where it cannot, and
each backend's typed options (what the run form offers).

Everything comes from the backends themselves (``kfnb.backends.describe``: ``available``,
``detached``, ``options``), the same listing ``kfnb backends --json`` prints: this handler knows
no backend by name. Nothing is probed over the network, so it answers at once.
"""

from __future__ import annotations

import tornado.web
from jupyter_server.auth.decorator import authorized

from kfnb.backends import describe

from .base import KfnbHandler


class BackendsHandler(KfnbHandler):
    """``GET backends`` -> ``[{"name", "available", "detail", "fix", "detached", "options"}]``,
    in registration order (``local``, the default, first)."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.blocking(describe, self.kfnb_settings.settings()))
