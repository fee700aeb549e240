"""The kfnb Jupyter server extension: REST handlers under ``<base_url>/kfnb/api/``.

Shipped inside the wheel as ``kfnb.server_ext`` (top-level ``server_ext/`` in the source tree).
Jupyter loads it because ``kfnb._jupyter_server_extension_points()`` names this module and the
``jupyter_server_config.d/kfnb.json`` file installed with the package enables ``kfnb``.

The module keeps to wiring: settings go into ``web_app.settings["kfnb"]``, the routes come
from :mod:`kfnb.server_ext.routes` (one module per group: ``handshake``, ``pipelines``,
``backends``, ``runs``, ``events``, each built on ``base`` alone; ``paths`` maps contents paths
to files), ``remote`` refreshes open remote runs in the background, and ``gc`` applies the
automatic retention policy (``KfnbServerSettings.gc_*``, off unless set) periodically.
Handlers stay thin; the logic they call lives in ``kfnb``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kfnb import __version__

from .config import KfnbServerSettings
from .gc import Collector, server_policy
from .remote import Refresher
from .routes import setup_handlers

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

__all__ = ["KfnbServerSettings"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "kfnb.server_ext"}]


def _load_jupyter_server_extension(server_app: ServerApp) -> None:
    """Register kfnb's settings and REST handlers with the running Jupyter server."""
    web_app = server_app.web_app
    settings = KfnbServerSettings(parent=server_app)
    web_app.settings["kfnb"] = settings
    prefix = setup_handlers(web_app)
    refresher = Refresher(web_app.settings, settings.refresh_interval)
    web_app.settings["kfnb_refresher"] = refresher
    refresher.start()
    collector = Collector(web_app.settings, server_policy(settings), settings.gc_interval)
    web_app.settings["kfnb_collector"] = collector
    collector.start()
    server_app.log.info("kfnb %s server extension serves %s", __version__, prefix)
    if settings.pool_size > 0:  # starts in the background: the server does not wait for it
        from kfnb.api import warm

        pool = warm(
            settings.pool_size, preload=tuple(settings.preload), settings=settings.settings()
        )
        server_app.log.info(
            "kfnb keeps %d fresh kernels ready (fork server: %s)",
            settings.pool_size,
            pool.stats()["fork_server"],
        )


def _unload_jupyter_server_extension(server_app: ServerApp) -> None:
    """Stop the refresher and the retention rounds, end the event streams, and stop the warm
    kernels with the server."""
    from kfnb.kernels import shutdown_shared_pools

    from .events import close_streams

    settings = server_app.web_app.settings
    refresher = settings.pop("kfnb_refresher", None)
    if refresher is not None:
        refresher.stop()
    collector = settings.pop("kfnb_collector", None)
    if collector is not None:
        collector.stop()
    close_streams(settings)
    shutdown_shared_pools()
