"""Settings of the kfnb server extension, configurable like any Jupyter server option.

Set them in ``jupyter_server_config.py`` (``c.KfnbServerSettings.home = "/data/kfnb"``) or on the
command line (``--KfnbServerSettings.home=/data/kfnb``). The loaded instance lives in
``web_app.settings["kfnb"]`` so handlers read it without globals.
"""

from __future__ import annotations

from traitlets import Unicode
from traitlets.config import Configurable


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
