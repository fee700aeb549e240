"""The kfnb side panel in a real JupyterLab and Chromium: it shows the server's kfnb version
and warns when the frontend and the server versions differ (the handshake)."""

from __future__ import annotations

import json
import re

import pytest
from lab_pages import PANEL, open_lab, open_panel
from playwright.sync_api import Page, Route, expect

import kfnb
from kfnb.server_ext.base import API_VERSION

pytestmark = pytest.mark.browser


def test_panel_shows_server_version(page: Page, lab_url: str) -> None:
    open_lab(page, lab_url)
    open_panel(page)

    expect(page.locator(f"{PANEL} .kfnb-Panel-version")).to_have_text(f"kfnb {kfnb.__version__}")
    expect(page.locator(f"{PANEL} .kfnb-Panel-warning")).to_be_hidden()


def test_panel_warns_when_versions_differ(page: Page, lab_url: str) -> None:
    def other_server(route: Route) -> None:
        route.fulfill(
            status=200,
            content_type="application/json",
            body=json.dumps({"version": "99.0.0", "api": 1}),
        )

    page.route(re.compile(r"/kfnb/api/version(\?|$)"), other_server)
    open_lab(page, lab_url)
    open_panel(page)

    expect(page.locator(f"{PANEL} .kfnb-Panel-version")).to_have_text("kfnb 99.0.0")
    warning = page.locator(f"{PANEL} .kfnb-Panel-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text(f"frontend is {kfnb.__version__}")
    expect(warning).to_contain_text("server runs kfnb 99.0.0")
    # the frontend speaks the contract version this server does
    expect(warning).to_contain_text(f"speaks REST API 1; this frontend expects {API_VERSION}")
