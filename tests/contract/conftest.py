"""Contract tests against a validating mock of the official KFP v2beta1 REST API (kfp_mock.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kfp_mock import KfpApiMock


@pytest.fixture
def kfp_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KfpApiMock]:
    """A fresh mock KFP API server on ``kfp_api.url``; see kfp_mock.py for the knobs.

    kfp.Client reads (and in multi-user mode writes) ``~/.config/kfp/context.json`` and reads
    ``KF_PIPELINES_*`` variables; both are isolated here so a developer's setup cannot leak in.
    """
    from kfp.client import client as kfp_client

    monkeypatch.setattr(kfp_client.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "context.json"))
    for name in [
        kfp_client.KF_PIPELINES_ENDPOINT_ENV,
        kfp_client.KF_PIPELINES_UI_ENDPOINT_ENV,
        kfp_client.KF_PIPELINES_DEFAULT_EXPERIMENT_NAME,
        kfp_client.KF_PIPELINES_OVERRIDE_EXPERIMENT_NAME,
        kfp_client.KF_PIPELINES_IAP_OAUTH2_CLIENT_ID_ENV,
        kfp_client.KF_PIPELINES_APP_OAUTH2_CLIENT_ID_ENV,
        kfp_client.KF_PIPELINES_APP_OAUTH2_CLIENT_SECRET_ENV,
    ]:
        monkeypatch.delenv(name, raising=False)
    with KfpApiMock() as mock:
        yield mock


@pytest.fixture(autouse=True)
def kfnb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own KFNB_HOME and config file; no KFP endpoint or pod leaks in."""
    home = tmp_path / "kfnb-home"
    monkeypatch.setenv("KFNB_HOME", str(home))
    monkeypatch.setenv("KFNB_CONFIG", str(tmp_path / "kfnb-config.yaml"))
    for name in (
        "KFNB_KFP_HOST",
        "KFNB_KFP_NAMESPACE",
        "KFNB_KFP_TOKEN",
        "KFNB_KFP_COOKIES",
        "KF_PIPELINES_ENDPOINT",
        "KF_PIPELINES_SA_TOKEN_PATH",
        "KUBERNETES_SERVICE_HOST",
        "KFNB_DEBUG",
    ):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def fanout_notebook(tmp_path: Path) -> Path:
    """make -> (double, square) -> total, with parameters ``n = 3``, ``name = "x"``."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    cells = [
        ("pipeline-parameters", 'n = 3\nname = "x"'),
        ("step:make", "values = list(range(n))"),
        ("step:double", "doubled = [v * 2 for v in values]"),
        ("step:square", "squared = [v * v for v in values]"),
        ("step:total", "total = sum(doubled) + sum(squared)"),
        ("pipeline-metrics", "print(total)"),
    ]
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}
        }
    )
    nb.cells = [new_code_cell(source, metadata={"tags": [tag]}) for tag, source in cells]
    path = tmp_path / "project" / "fanout.ipynb"
    path.parent.mkdir(exist_ok=True)
    nbformat.write(nb, path)
    return path
