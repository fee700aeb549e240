"""The DAG in the side panel at any width, the cell tools on `%%step` cells, and the event feed
coming back, in a real JupyterLab and Chromium against the real server extension.

- A pipeline of ten steps with a five-way fan-out (``wide.ipynb``, shaped like Kale's Titanic
  example) shows every node inside the panel at its default width right after load; zoom and
  pan move the drawing and "fit" brings it all back.
- A cell that starts with `%%step` gets its badge from the server's reading, and the cell tools
  edit its header instead of adding tags beside it.
- After the event stream fails and the panel falls back to polling, it goes back to streaming
  once the server serves the stream again.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lab_pages import (
    boxes,
    cell,
    cell_source,
    cell_tags,
    inside,
    open_lab,
    open_notebook,
    open_panel,
    save_screenshot,
    wait_until,
)
from playwright.sync_api import Page, Route, expect

pytestmark = pytest.mark.browser

WIDE_STEPS = [
    "load_data",
    "clean_data",
    "engineer_features",
    "naive_bayes",
    "logistic_regression",
    "random_forest",
    "svm",
    "decision_tree",
    "results",
    "report",
    "summary",
]
MODELS = WIDE_STEPS[3:8]
SUMMARY_CELL = 12


SCALE = "Number(document.querySelector('#kfnb-panel .kfnb-PipelineView .kfnb-Dag').dataset.scale)"


def _scale(page: Page) -> float:
    value = page.locator("#kfnb-panel .kfnb-PipelineView .kfnb-Dag").get_attribute("data-scale")
    assert value is not None
    return float(value)


def test_a_wide_pipeline_fits_the_panel_and_zooms_and_pans(
    page: Page, lab_url: str, screenshots: Path, page_errors: list[str]
) -> None:
    open_lab(page, lab_url)
    open_notebook(page, "wide.ipynb")
    panel = open_panel(page)  # at its default width: no widening
    dag = panel.locator(".kfnb-PipelineView .kfnb-Dag")
    nodes = dag.locator(".kfnb-Node")
    expect(nodes).to_have_count(len(WIDE_STEPS))
    for step in WIDE_STEPS:
        expect(dag.locator(f'.kfnb-Node[data-step="{step}"]')).to_have_count(1)

    # every node inside the visible drawing, which is inside the panel and the window
    frame = dag.bounding_box()
    panel_box = panel.bounding_box()
    assert frame is not None and panel_box is not None
    window = {"x": 0, "y": 0, **page.viewport_size}  # type: ignore[dict-item]
    assert inside(frame, panel_box), (frame, panel_box)
    for step, box in zip(WIDE_STEPS, boxes(nodes), strict=True):
        assert inside(box, frame), (step, box, frame)
        assert inside(box, window), (step, box, window)
    # the five models: a wide layer wraps onto rows the server laid out (never more than
    # max_row side by side); every model hangs off engineer_features
    layers = {
        step: int(dag.locator(f'.kfnb-Node[data-step="{step}"]').get_attribute("data-layer") or -1)
        for step in WIDE_STEPS
    }
    assert min(layers[m] for m in MODELS) > layers["engineer_features"]
    assert max(layers[m] for m in MODELS) < layers["results"]
    for model in MODELS:
        expect(
            dag.locator(f'.kfnb-Edge[data-source="engineer_features"][data-target="{model}"]')
        ).to_have_count(1)
    # fitted to the width: 10 steps three abreast are ~770 wide, the panel's drawing ~220
    fitted = _scale(page)
    assert 0.2 < fitted < 1, fitted
    save_screenshot(page, screenshots, "panel-wide-dag.png")

    # zoom in with the button: bigger nodes; the drawing no longer fits
    first = nodes.first.bounding_box()
    assert first is not None
    panel.locator(".kfnb-PipelineView .kfnb-DagViewport-zoomIn").click()
    wait_until(
        page,
        f"() => {SCALE} > {fitted * 1.2}",
    )
    bigger = nodes.first.bounding_box()
    assert bigger is not None and bigger["width"] > first["width"] * 1.2

    # pan: drag the empty background; every node moves by the drag
    before = boxes(nodes)
    start = (frame["x"] + 6, frame["y"] + frame["height"] - 6)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + 40, start[1] - 30, steps=6)
    page.mouse.up()
    after = boxes(nodes)
    for b, a in zip(before, after, strict=True):
        assert abs((a["x"] - b["x"]) - 40) < 2 and abs((a["y"] - b["y"]) + 30) < 2, (b, a)

    # Ctrl + wheel zooms about the pointer (a trackpad pinch sends the same)
    zoomed = _scale(page)
    page.mouse.move(frame["x"] + frame["width"] / 2, frame["y"] + frame["height"] / 2)
    page.keyboard.down("Control")
    page.mouse.wheel(0, 120)
    page.keyboard.up("Control")
    wait_until(
        page,
        f"() => {SCALE} < {zoomed - 0.01}",
    )

    # fit to view: everything inside again, at the fitted scale
    panel.locator(".kfnb-PipelineView .kfnb-DagViewport-fit").click()
    wait_until(
        page,
        f"() => Math.abs({SCALE} - {fitted}) < 0.01",
    )
    for box in boxes(nodes):
        assert inside(box, frame), (box, frame)
    # a click on a node still selects its step (a drag is no click)
    dag.locator('.kfnb-Node[data-step="svm"]').click()
    expect(dag.locator('.kfnb-Node[data-step="svm"]')).to_have_class(
        re.compile(r"kfnb-Node--selected")
    )

    # too small to read in the panel: open it in a tab, where it is drawn full size
    panel.locator(".kfnb-PipelineView .kfnb-DagViewport-open").click()
    tab = page.locator("#kfnb-dag-tab")
    expect(tab).to_be_visible()
    expect(page.locator(".lm-TabBar-tab", has_text="Pipeline: wide.ipynb")).to_have_count(1)
    big = tab.locator(".kfnb-Dag")
    expect(big.locator(".kfnb-Node")).to_have_count(len(WIDE_STEPS))
    # beside the notebook (split right) at 1280x800 the tab is ~470 px wide: twice the scale
    tab_scale = "Number(document.querySelector('#kfnb-dag-tab .kfnb-Dag').dataset.scale)"
    wait_until(page, f"() => {tab_scale} > {max(0.5, 1.8 * fitted)}")
    tab_box = big.bounding_box()
    assert tab_box is not None
    for step, box in zip(WIDE_STEPS, boxes(big.locator(".kfnb-Node")), strict=True):
        assert inside(box, tab_box), (step, box, tab_box)
    expect(big.locator('.kfnb-Node[data-step="svm"]')).to_have_class(
        re.compile(r"kfnb-Node--selected")
    )
    save_screenshot(page, screenshots, "panel-dag-tab.png")
    # a click on a node there goes to the step's first cell in the notebook
    big.locator('.kfnb-Node[data-step="report"]').click()
    wait_until(page, "() => window.jupyterapp.shell.currentWidget?.content?.activeCellIndex === 11")
    expect(dag.locator('.kfnb-Node[data-step="report"]')).to_have_class(
        re.compile(r"kfnb-Node--selected")
    )
    assert page_errors == []


def test_a_step_magic_cell_gets_its_badge_and_the_tools_edit_its_header(
    page: Page, lab_url: str, page_errors: list[str]
) -> None:
    open_lab(page, lab_url)
    open_notebook(page, "wide_tools.ipynb")
    panel = open_panel(page)
    expect(panel.locator(".kfnb-PipelineView .kfnb-Node")).to_have_count(len(WIDE_STEPS))

    # the badge comes from the server's reading of the `%%step` line (the cell has no tags)
    badge = cell(page, SUMMARY_CELL).locator(".kfnb-CellBadge")
    expect(badge).to_have_text("summary")
    expect(badge).to_have_attribute("title", re.compile(r"%%step line"))
    expect(cell(page, 1).locator(".kfnb-CellBadge")).to_have_text("imports")
    assert cell_tags(page, SUMMARY_CELL) == []

    cell(page, SUMMARY_CELL).click()
    tools = panel.locator(".kfnb-CellTools")
    expect(tools.locator(".kfnb-CellTools-status")).to_contain_text(
        "starts step “summary” (its %%step line)"
    )
    expect(tools.locator(".kfnb-CellTools-name")).to_have_value("summary")
    expect(tools.locator('.kfnb-CellTools-prev input[value="report"]')).to_be_checked()
    tools.locator(".kfnb-CellTools-name").fill("wrap_up")
    tools.locator(".kfnb-CellTools-gpus").fill("1")
    tools.locator(".kfnb-CellTools-apply").click()

    # the header was rewritten (its other options kept), no tag was added
    wait_until(
        page,
        """() => window.jupyterapp.shell.currentWidget.content.widgets[12]
            .model.sharedModel.getSource().startsWith('%%step wrap_up')""",
    )
    header = cell_source(page, SUMMARY_CELL).split("\n")[0]
    assert header.startswith("%%step wrap_up"), header
    assert "--gpus 1" in header and "--cpu 2" in header and "report" in header, header
    assert cell_source(page, SUMMARY_CELL).endswith("print('done')")
    assert cell_tags(page, SUMMARY_CELL) == []
    expect(badge).to_have_text("wrap_up")
    node = panel.locator('.kfnb-PipelineView .kfnb-Node[data-step="wrap_up"]')
    expect(node.locator(".kfnb-Badge--gpu text")).to_have_text("GPU 1")

    # a name another cell declares is refused by the server; nothing is written
    tools.locator(".kfnb-CellTools-name").fill("svm")
    tools.locator(".kfnb-CellTools-apply").click()
    expect(tools.locator(".kfnb-CellTools-error")).to_contain_text("svm")
    assert cell_source(page, SUMMARY_CELL).startswith("%%step wrap_up")

    # Clear: the header goes, the cell continues the step above
    tools.locator(".kfnb-CellTools-clear").click()
    wait_until(
        page,
        """() => !window.jupyterapp.shell.currentWidget.content.widgets[12]
            .model.sharedModel.getSource().startsWith('%%step')""",
    )
    expect(badge).to_have_count(0)
    expect(tools.locator(".kfnb-CellTools-status")).to_contain_text("continues step “report”")
    assert page_errors == []


def test_the_panel_goes_back_to_streaming_when_the_server_returns(
    page: Page, lab_url: str, page_errors: list[str]
) -> None:
    down = {"streams": True}
    asked: list[str] = []

    def flaky_streams(route: Route) -> None:
        asked.append(route.request.url)
        if "wait=0" in route.request.url or not down["streams"]:
            route.continue_()
        else:
            route.fulfill(status=503, content_type="text/plain", body="down for a moment")

    page.route(re.compile(r"/kfnb/api/events\?"), flaky_streams)
    open_lab(page, lab_url)
    open_notebook(page, "fanout.ipynb")
    panel = open_panel(page)
    expect(panel.locator(".kfnb-PipelineView .kfnb-Node")).to_have_count(4)
    expect(panel).to_have_attribute("data-feed", "poll", timeout=30_000)

    down["streams"] = False
    expect(panel).to_have_attribute("data-feed", "stream", timeout=60_000)
    streams = [url for url in asked if "wait=0" not in url]
    assert len(streams) >= 3, asked  # refused at least twice, then served
    assert page_errors == []
