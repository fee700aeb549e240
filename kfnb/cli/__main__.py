"""``python -m kfnb.cli``: the ``kfnb`` command."""

import sys

from . import main

sys.exit(main())
