"""``GET /kfnb/api/backends``: where this server can run pipelines, and why not where it cannot.

``local`` is always there (this machine; the detail counts its CPUs and GPUs). ``kfp`` is there
when the ``kfp`` package imports and a Kubeflow Pipelines host can be resolved (flags aside, the
same places the CLI looks: environment, config file, the Kubeflow notebook pod); it is not
probed over the network, so the list answers at once. Backends other packages register are
listed as available.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized

from kfnb.backends import backends
from kfnb.errors import KfnbError

from .handlers import KfnbHandler

_kfp_import_error: list[str | None] = []  # cached: importing kfp takes a second


def local_backend() -> dict[str, Any]:
    from kfnb.backends.local.resources import detect_gpus

    cpus = os.cpu_count() or 1
    gpus = detect_gpus()
    ids = f" ({', '.join(gpus)})" if gpus else ""
    return {
        "name": "local",
        "available": True,
        "detail": f"this machine: {cpus} CPU{'s' * (cpus != 1)}, {len(gpus)} "
        f"GPU{'s' * (len(gpus) != 1)}{ids}",
    }


def kfp_backend() -> dict[str, Any]:
    if not _kfp_import_error:
        try:
            importlib.import_module("kfp")
            _kfp_import_error.append(None)
        except Exception as err:  # ImportError, or a broken install of its dependencies
            _kfp_import_error.append(f"{type(err).__name__}: {err}")
    if _kfp_import_error[0] is not None:
        return {
            "name": "kfp",
            "available": False,
            "detail": f"the kfp package does not import ({_kfp_import_error[0]}). "
            "Fix: pip install 'kfnb[kfp]' in the Jupyter server's environment",
        }
    from kfnb.backends.kfp import connect
    from kfnb.config import section

    try:
        endpoint = connect.resolve(settings=section("kfp"))
    except KfnbError as err:
        return {"name": "kfp", "available": False, "detail": str(err)}
    where = f" (namespace {endpoint.namespace})" if endpoint.namespace else ""
    return {
        "name": "kfp",
        "available": True,
        "detail": f"Kubeflow Pipelines at {endpoint.host}{where}",
    }


def all_backends() -> list[dict[str, Any]]:
    found = [local_backend(), kfp_backend()]
    for name in backends():
        if name not in ("local", "kfp"):
            found.append(
                {"name": name, "available": True, "detail": "registered by an installed package"}
            )
    return found


class BackendsHandler(KfnbHandler):
    """``GET backends`` -> ``[{"name", "available", "detail"}]``."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.blocking(all_backends))
