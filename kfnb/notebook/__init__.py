"""Reading notebooks: cell tags, ``%%step`` magics, parameters, metrics and settings.

``read_pipeline(path)`` and ``parse_notebook(nb)`` return the pipeline IR (``kfnb.dag``).
"""

from __future__ import annotations

from .parser import parse_notebook, read_pipeline

__all__ = ["parse_notebook", "read_pipeline"]
