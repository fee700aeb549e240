"""Settings of the kfnb server extension, configurable like any Jupyter server option.

Set them in ``jupyter_server_config.py`` (``c.KfnbServerSettings.home = "/data/kfnb"``) or on the
command line (``--KfnbServerSettings.home=/data/kfnb``). The loaded instance lives in
``web_app.settings["kfnb"]`` so handlers read it without globals.
"""

from __future__ import annotations

from traitlets import Float, Integer, List, Unicode
from traitlets.config import Configurable

from kfnb.settings import Settings


class KfnbServerSettings(Configurable):
    """What the kfnb REST handlers need to know about this server."""

    home = Unicode(
        None,
        allow_none=True,
        help=(
            "Directory of the kfnb run store that the server shows (the KFNB_HOME of the kernels "
            "and the CLI). None: kfnb's default (the KFNB_HOME environment variable, else ~/.kfnb)."
        ),
    ).tag(config=True)

    pool_size = Integer(
        2,
        help=(
            "Fresh kernels kept ready in the server for runs started from JupyterLab, so that "
            "their first steps start at once (each kernel still serves one step only). 0: none."
        ),
    ).tag(config=True)

    preload = List(
        Unicode(),
        default_value=[],
        help=(
            "Modules the kernel fork server imports once for every pooled kernel, e.g. "
            "['numpy', 'pandas']: steps that import them start faster."
        ),
    ).tag(config=True)

    executed_dir = Unicode(
        "kfnb-runs",
        help=(
            "Folder inside the server root where read-only copies of executed step notebooks "
            "go (<executed_dir>/<run id>/<step>.ipynb) so that JupyterLab can open them. A "
            "hidden folder (e.g. '.kfnb/runs') works only with ContentsManager.allow_hidden."
        ),
    ).tag(config=True)

    refresh_interval = Float(
        5.0,
        help=(
            "Seconds between refreshes of open remote runs (Kubeflow Pipelines) from their "
            "cluster, so that their events reach the open JupyterLab views. 0: never."
        ),
    ).tag(config=True)

    gc_keep_last = Integer(
        None,
        allow_none=True,
        help=(
            "Automatic retention (kfnb gc, run by the server every gc_interval seconds): keep "
            "the N newest top-level runs, remove older ones with their records and artifacts "
            "folders. None: no such limit. With no gc_* criterion set (the default) the server "
            "removes nothing."
        ),
    ).tag(config=True)

    gc_older_than = Unicode(
        "",
        help=(
            "Automatic retention: only remove runs that ended over this long ago, e.g. '30d', "
            "'12h'. Empty: any age."
        ),
    ).tag(config=True)

    gc_status = Unicode(
        "",
        help=(
            "Automatic retention: only remove runs that ended so, e.g. 'FAILED,CANCELED'. "
            "Empty: any ending."
        ),
    ).tag(config=True)

    gc_kind = Unicode(
        "",
        help="Automatic retention: only remove runs of these kinds, e.g. 'pipeline'. Empty: any.",
    ).tag(config=True)

    gc_interval = Float(
        3600.0,
        help=(
            "Seconds between rounds of the automatic retention policy (gc_keep_last, "
            "gc_older_than, gc_status, gc_kind), run in a worker thread. 0: never."
        ),
    ).tag(config=True)

    def settings(self) -> Settings:
        """kfnb's settings for this server: read once (environment, config file) at the first
        call, with ``home`` from this object when set."""
        loaded: Settings | None = getattr(self, "_kfnb_settings", None)
        if loaded is None:
            loaded = Settings.load(home=self.home)
            self._kfnb_settings = loaded
        return loaded
