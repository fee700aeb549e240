"""The run widget of `%kfnb run` at work in a real JupyterLab and Chromium: run all the cells of
examples/magics_pipeline.ipynb (the ``lab`` fixture serves a copy), the `%%step` cells run
interactively, and the last cell's RunWidget (an ipywidgets view, no custom JavaScript) shows
the run at once and follows it to the end from the kernel's background thread, while the
kernel is idle and nobody touches the page.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_pages import (
    Lab,
    cell,
    open_lab,
    open_notebook,
    open_panel,
    save_screenshot,
    wait_until,
)
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

NOTEBOOK = "magics_pipeline.ipynb"
STEPS = ["load", "squares", "cubes", "report"]
RUN_CELL = 10  # `%kfnb run -p n 4`
REPORT_CELL = 7
RUN_TIMEOUT_MS = 90_000
WIDGET = ".kfnb-RunWidget"

# Every status each DAG node of the run widget has shown, recorded in the page by a
# MutationObserver from before the cells run: a check from Python could miss a short state.
WATCH_STATUSES = """() => {
    window.__kfnbSeen = {};
    const record = () => {
        for (const node of document.querySelectorAll(
                '.kfnb-RunWidget .kfnb-RunWidget-dag g.kfnb-dag-node')) {
            const step = node.getAttribute('data-step');
            const seen = (window.__kfnbSeen[step] ??= []);
            const status = node.getAttribute('data-status');
            if (seen[seen.length - 1] !== status) seen.push(status);
        }
    };
    new MutationObserver(record).observe(document.body, {
        subtree: true, childList: true, attributes: true, characterData: true,
    });
}"""


def _kernels(lab: Lab) -> list[dict[str, object]]:
    request = urllib.request.Request(
        f"{lab.url}api/kernels", headers={"Authorization": f"token {lab.token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        kernels: list[dict[str, object]] = json.load(response)
        return kernels


@pytest.fixture
def notebook_page(page: Page, lab: Lab, lab_url: str) -> Iterator[Page]:
    """The page with the magics notebook open; its kernel is shut down afterwards (the steps
    ran in that kernel's process and its warm kernel pool)."""
    open_lab(page, lab_url)
    open_notebook(page, NOTEBOOK)
    # JupyterLab may ask which kernel to start: the notebook's own, Python 3
    dialog = page.locator(".jp-Dialog")
    wait_until(
        page,
        """() => document.querySelector('.jp-Dialog') !== null
            || window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel != null""",
        timeout_s=30,
    )
    if dialog.count():
        expect(dialog).to_contain_text("Select Kernel")
        dialog.locator(".jp-Dialog-button.jp-mod-accept").click()
    expect(page.locator(".jp-StatusBar-Widget").filter(has_text="| Idle")).to_be_visible()
    try:
        yield page
    finally:
        page.evaluate(
            """async () => {
                const app = window.jupyterapp;
                await app.serviceManager.sessions.refreshRunning();
                for (const s of [...app.serviceManager.sessions.running()]) {
                    await app.serviceManager.sessions.shutdown(s.id);
                }
            }"""
        )
        assert _kernels(lab) == []


def test_kfnb_run_shows_a_live_run_widget(
    notebook_page: Page, screenshots: Path, page_errors: list[str]
) -> None:
    page = notebook_page
    page.evaluate(WATCH_STATUSES)
    # not awaited: the command's promise ends with the last cell
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

    # the `%%step` cells ran here, as plain cells (n = 3: 1+4+9 + 1+8+27)
    expect(cell(page, REPORT_CELL).locator(".jp-OutputArea-output")).to_have_text(
        "total = 50", timeout=60_000
    )
    expect(cell(page, 5).locator(".jp-OutputArea-output")).to_have_text("squares [1, 4, 9]")

    # the run cell shows the widget view at once (not the static HTML or text fallback)
    output = cell(page, RUN_CELL).locator(".jp-OutputArea-output")
    widget = output.locator(WIDGET)
    expect(widget).to_be_visible(timeout=60_000)
    expect(output.locator(".kfnb-run-snapshot")).to_have_count(0)
    nodes = widget.locator(".kfnb-RunWidget-dag svg.kfnb-dag g.kfnb-dag-node")
    expect(nodes).to_have_count(len(STEPS))
    for step in STEPS:
        expect(widget.locator(f'g.kfnb-dag-node[data-step="{step}"]')).to_have_count(1)
    expect(widget.locator(".kfnb-RunWidget-header")).to_contain_text("magics_pipeline")
    first: dict[str, list[str]] = page.evaluate("() => window.__kfnbSeen")
    assert set(first) == set(STEPS), first
    assert any(seen[0] != "SUCCEEDED" for seen in first.values()), first  # load sleeps 2 s

    # ... and follows the run to its end by itself: every node goes green
    for step in STEPS:
        expect(widget.locator(f'g.kfnb-dag-node[data-step="{step}"]')).to_have_class(
            re.compile(r"\bkfnb-step-SUCCEEDED\b"), timeout=RUN_TIMEOUT_MS
        )
    seen: dict[str, list[str]] = page.evaluate("() => window.__kfnbSeen")
    assert seen["load"][0] != "SUCCEEDED" and seen["load"][-1] == "SUCCEEDED", seen
    assert "RUNNING" in seen["load"], seen  # the widget showed the step running
    header = widget.locator(".kfnb-RunWidget-header")
    expect(header.locator(".kfnb-status")).to_have_text("SUCCEEDED", timeout=10_000)
    progress = widget.locator(".kfnb-RunWidget-progress")
    expect(progress).to_contain_text(f"{len(STEPS)}/{len(STEPS)} steps")
    expect(progress.locator(".progress-bar")).to_have_attribute(
        "style", re.compile(r"width:\s*100%")
    )
    expect(widget.locator("button.kfnb-RunWidget-cancel")).to_be_disabled()
    metric = widget.locator('.kfnb-RunWidget-metrics tr[data-metric="total"] td').nth(1)
    expect(metric).to_have_text("130")  # n = 4: 30 + 100

    # a step's log, chosen in the select
    select = widget.locator(".kfnb-RunWidget-step-select select")
    log = widget.locator(".kfnb-RunWidget-log")
    select.select_option("cubes")
    expect(log).to_contain_text("cubes [1, 8, 27, 64]")
    select.select_option("load")
    expect(log).to_contain_text("loaded [1, 2, 3, 4]")
    expect(log).not_to_contain_text("cubes [")

    # the side panel draws the same pipeline with the same layers and order (one layout,
    # computed by the server, drawn by both)
    panel = open_panel(page)
    panel_nodes = panel.locator(".kfnb-PipelineView .kfnb-Node")
    expect(panel_nodes).to_have_count(len(STEPS))
    drawn_in_widget = {
        node.get_attribute("data-step"): (
            node.get_attribute("data-layer"),
            node.get_attribute("data-order"),
        )
        for node in nodes.all()
    }
    drawn_in_panel = {
        node.get_attribute("data-step"): (
            node.get_attribute("data-layer"),
            node.get_attribute("data-order"),
        )
        for node in panel_nodes.all()
    }
    assert drawn_in_widget == drawn_in_panel, (drawn_in_widget, drawn_in_panel)
    assert drawn_in_widget["load"] == ("0", "0")
    assert drawn_in_widget["squares"][0] == drawn_in_widget["cubes"][0] == "1"

    # the picture: the finished widget in the notebook, the side area folded away
    page.evaluate(
        "async () => { await window.jupyterapp.commands.execute('application:toggle-left-area'); }"
    )
    expect(page.locator("#jp-left-stack")).to_be_hidden()
    # the markdown cell before the run cell at the top, then the command and its widget
    cell(page, RUN_CELL - 1).evaluate("node => node.scrollIntoView({block: 'start'})")
    expect(widget).to_be_in_viewport(ratio=1)
    expect(page.locator(".jp-StatusBar-Widget").filter(has_text="| Idle")).to_be_visible()
    save_screenshot(page, screenshots, "run-widget.png")
    assert page_errors == []
