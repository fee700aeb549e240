"""``GET version`` and ``GET pool``: who the server is, for the frontend's handshake, and the
warm kernels it keeps ready for runs."""

from __future__ import annotations

import tornado.web
from jupyter_server.auth.decorator import authorized

import kfnb

from .base import API_VERSION, KfnbHandler


class VersionHandler(KfnbHandler):
    """``GET /kfnb/api/version``: the installed kfnb version and the REST contract version."""

    @tornado.web.authenticated
    @authorized
    def get(self) -> None:
        self.reply({"version": kfnb.__version__, "api": API_VERSION})


class PoolHandler(KfnbHandler):
    """``GET /kfnb/api/pool``: the warm kernel pool of this server."""

    @tornado.web.authenticated
    @authorized
    def get(self) -> None:
        from kfnb.kernels import shared_pool_stats

        self.reply(shared_pool_stats())
