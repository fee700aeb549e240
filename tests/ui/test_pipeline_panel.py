"""The kfnb panel at work in a real JupyterLab and Chromium, against the real server extension:
it draws the active notebook's DAG, tags cells, runs the pipeline and follows the run live,
and takes the user to the cell a problem is about.

The notebooks are written by the ``lab`` fixture (see ``conftest.NOTEBOOKS``); runs go to the
fixture's own run store.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
import pytest
from lab_pages import (
    Lab,
    active_cell_index,
    cell,
    cell_tags,
    open_lab,
    open_notebook,
    open_panel,
    save_screenshot,
    wait_until,
    widen_panel,
)
from nbformat.v4 import new_code_cell, new_notebook
from playwright.sync_api import Page, Route, expect

pytestmark = pytest.mark.browser

STEPS = ["load", "squares", "roots", "report"]
RUN_TIMEOUT_MS = 90_000


def test_panel_draws_the_notebooks_dag(
    page: Page, lab_url: str, screenshots: Path, page_errors: list[str]
) -> None:
    open_lab(page, lab_url)
    open_notebook(page, "fanout.ipynb")
    panel = open_panel(page)
    widen_panel(page, 440)

    nodes = panel.locator(".kfnb-Dag .kfnb-Node")
    expect(nodes).to_have_count(4)
    for step in STEPS:
        expect(panel.locator(f'.kfnb-Node[data-step="{step}"] .kfnb-Node-name')).to_have_text(step)
    # the fan-out: load feeds squares and roots, both feed report
    label = panel.locator('.kfnb-EdgeLabel[data-source="load"][data-target="squares"] text')
    expect(label).to_have_text("numbers")
    label = panel.locator('.kfnb-EdgeLabel[data-source="squares"][data-target="report"] text')
    expect(label).to_have_text("squares")
    expect(panel.locator('.kfnb-Edge[data-source="roots"][data-target="report"]')).to_have_count(1)
    report_cells = panel.locator('.kfnb-Node[data-step="report"] .kfnb-Node-cells')
    expect(report_cells).to_have_text("cells 6-7")
    # parameters and metrics
    expect(panel.locator('.kfnb-ParamList [data-param="n"]')).to_have_text("n = 5")
    expect(panel.locator('.kfnb-MetricList [data-metric="total"]')).to_be_visible()
    scale = panel.locator('.kfnb-RunForm .kfnb-Param[data-param="scale"] input')
    expect(scale).to_have_value("2.0")
    # the badges on the cells that start steps
    expect(cell(page, 3).locator(".kfnb-CellBadge")).to_have_text("load")
    expect(cell(page, 2).locator(".kfnb-CellBadge")).to_have_text("parameters")
    expect(cell(page, 7).locator(".kfnb-CellBadge")).to_have_count(0)

    # the backends: local is there; what is not available is disabled and says why
    backend = panel.locator(".kfnb-RunForm-backend")
    expect(backend).to_have_value("local")
    for option in backend.locator("option[disabled]").all():
        expect(option).to_contain_text("unavailable: ")

    cell(page, 4).click()  # the cell tools follow the active cell; the DAG shows its step
    expect(panel.locator(".kfnb-CellTools-name")).to_have_value("squares")
    expect(panel.locator('.kfnb-Node[data-step="squares"]')).to_have_class(
        re.compile(r"kfnb-Node--selected")
    )
    expect(page.locator(".jp-StatusBar-Widget").filter(has_text="| Idle")).to_be_visible()
    save_screenshot(page, screenshots, "panel-dag.png")
    assert page_errors == []


def test_cell_tools_make_a_cell_a_step(page: Page, lab_url: str, page_errors: list[str]) -> None:
    open_lab(page, lab_url)
    open_notebook(page, "tagging.ipynb")
    panel = open_panel(page)
    expect(panel.locator(".kfnb-Dag .kfnb-Node")).to_have_count(4)

    cell(page, 7).click()
    tools = panel.locator(".kfnb-CellTools")
    expect(tools.locator(".kfnb-CellTools-status")).to_contain_text("continues step “report”")
    tools.locator(".kfnb-CellTools-name").fill("summary")
    tools.locator('.kfnb-CellTools-prev input[value="report"]').check()
    tools.locator(".kfnb-CellTools-gpus").fill("1")
    tools.locator(".kfnb-CellTools-apply").click()

    # the server answers the cell's new tags; the badge comes from the next description
    expect(cell(page, 7).locator(".kfnb-CellBadge")).to_have_text("summary")
    assert cell_tags(page, 7) == ["step:summary", "prev:report", "limit:nvidia.com/gpu:1"]
    expect(tools.locator(".kfnb-CellTools-status")).to_contain_text("starts step “summary”")
    # the DAG follows the edit (described again from the live, unsaved model)
    summary = panel.locator('.kfnb-Node[data-step="summary"]')
    expect(summary).to_be_visible()
    expect(summary.locator(".kfnb-Badge--gpu text")).to_have_text("GPU 1")
    label = panel.locator('.kfnb-EdgeLabel[data-source="report"][data-target="summary"] text')
    expect(label).to_have_text("total")
    expect(panel.locator('.kfnb-Node[data-step="report"] .kfnb-Node-cells')).to_have_text("cell 6")

    # a name another cell uses is refused, and nothing is written
    cell(page, 5).click()
    tools.locator(".kfnb-CellTools-name").fill("load")
    tools.locator(".kfnb-CellTools-apply").click()
    error = tools.locator(".kfnb-CellTools-error")
    expect(error).to_contain_text("step 'load' is already defined at cell 3")
    expect(error).to_contain_text("give this cell its own step name")
    assert cell_tags(page, 5) == ["step:roots"]
    assert page_errors == []


def test_run_from_the_panel(
    page: Page, lab_url: str, screenshots: Path, page_errors: list[str]
) -> None:
    open_lab(page, lab_url)
    open_notebook(page, "fanout.ipynb")
    panel = open_panel(page)
    widen_panel(page, 440)
    expect(panel.locator(".kfnb-Dag .kfnb-Node")).to_have_count(4)

    panel.locator('.kfnb-RunForm .kfnb-Param[data-param="n"] input').fill("6")
    run_button = panel.locator(".kfnb-RunForm-run")
    expect(run_button).to_be_enabled()
    run_button.click()

    # the new run is listed and selected at once, and its steps go green without a reload
    item = panel.locator(".kfnb-RunItem").first
    expect(item).to_have_class(re.compile(r"kfnb-RunItem--selected"))
    detail = panel.locator(".kfnb-RunDetail")
    for step in STEPS:
        expect(detail.locator(f'.kfnb-Node[data-step="{step}"]')).to_have_class(
            re.compile(r"kfnb-Node--SUCCEEDED"), timeout=RUN_TIMEOUT_MS
        )
    # the notebook's own DAG is not coloured by a run
    expect(panel.locator(".kfnb-PipelineView .kfnb-Node--SUCCEEDED")).to_have_count(0)
    expect(item).to_have_class(re.compile(r"kfnb-RunItem--SUCCEEDED"))
    expect(detail.locator(".kfnb-RunDetail-status")).to_have_text("succeeded")
    expect(detail.locator(".kfnb-RunDetail-params")).to_contain_text("n=6")
    metric = detail.locator('.kfnb-Metrics tr[data-metric="total"] .kfnb-Metrics-value')
    expect(metric).to_be_visible()

    # a step's log
    detail.locator('.kfnb-StepRow[data-step="load"] .kfnb-StepRow-log').click()
    expect(detail.locator('.kfnb-Log[data-step="load"]')).to_contain_text("loaded 6 numbers")
    expect(detail.locator('.kfnb-Node[data-step="load"]')).to_have_class(
        re.compile(r"kfnb-Node--selected")
    )
    run_id = item.get_attribute("data-run-id")
    assert run_id
    # the picture: fold the cell tools and the run form, as one does to watch a run
    panel.locator(".kfnb-Section--cell > summary").click()
    panel.locator(".kfnb-Section--run > summary").click()
    expect(panel.locator(".kfnb-RunForm")).to_be_hidden()
    save_screenshot(page, screenshots, "panel-run.png")

    # a step's executed notebook opens in a new tab
    detail.locator('.kfnb-StepRow[data-step="report"] .kfnb-StepRow-notebook').click()
    page.wait_for_function(
        "suffix => (window.jupyterapp.shell.currentWidget?.context?.path ?? '').endsWith(suffix)",
        arg=f"{run_id}/report.ipynb",
    )
    executed = page.locator(".jp-NotebookPanel:visible")
    expect(executed).to_contain_text("total = ")
    opened = page.evaluate("() => window.jupyterapp.shell.currentWidget.context.path")
    assert opened != "fanout.ipynb" and opened.endswith(f"{run_id}/report.ipynb")
    assert page_errors == []


def test_a_problem_click_goes_to_its_cell(page: Page, lab_url: str, page_errors: list[str]) -> None:
    open_lab(page, lab_url)
    open_notebook(page, "broken.ipynb")
    panel = open_panel(page)

    problem = panel.locator(".kfnb-Problem").first
    expect(problem).to_contain_text("undefined_thing")
    expect(problem).to_have_attribute("data-cell-index", "2")
    expect(panel.locator(".kfnb-RunForm-run")).to_be_disabled()

    cell(page, 0).click()
    assert active_cell_index(page) == 0
    problem.click()
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.content.activeCellIndex === 2"
    )
    expect(cell(page, 2)).to_have_class(re.compile(r"jp-mod-active"))
    expect(cell(page, 2)).to_be_in_viewport()
    assert page_errors == []


def test_a_running_step_streams_its_log_and_can_be_canceled(
    page: Page, lab_url: str, page_errors: list[str]
) -> None:
    open_lab(page, lab_url)
    open_notebook(page, "slow.ipynb")
    panel = open_panel(page)
    expect(panel.locator(".kfnb-Dag .kfnb-Node")).to_have_count(2)
    panel.locator(".kfnb-RunForm-run").click()

    detail = panel.locator(".kfnb-RunDetail")
    sleeping = detail.locator('.kfnb-Node[data-step="sleep"]')
    expect(sleeping).to_have_class(re.compile(r"kfnb-Node--RUNNING"), timeout=RUN_TIMEOUT_MS)
    expect(detail.locator('.kfnb-Node[data-step="prepare"]')).to_have_class(
        re.compile(r"kfnb-Node--SUCCEEDED")
    )
    # the detail follows the running step: its log streams while it runs
    expect(detail.locator('.kfnb-Log[data-step="sleep"]')).to_contain_text("sleeping")
    item = panel.locator(".kfnb-RunItem").first
    expect(item).to_have_class(re.compile(r"kfnb-RunItem--RUNNING"))
    # durations tick while the run goes on
    duration = item.locator(".kfnb-RunItem-duration")
    before = duration.text_content()
    expect(duration).not_to_have_text(before or "", timeout=5000)

    detail.locator(".kfnb-RunDetail-cancel").click()
    expect(item).to_have_class(re.compile(r"kfnb-RunItem--CANCELED"), timeout=30_000)
    expect(sleeping).to_have_class(re.compile(r"kfnb-Node--CANCELED"))
    expect(detail.locator(".kfnb-RunDetail-cancel")).to_have_count(0)
    assert page_errors == []


def test_runs_update_by_polling_and_reuse_cached_results(
    page: Page, lab_url: str, page_errors: list[str]
) -> None:
    """With the event stream refused, the panel polls the JSON form of `events` and still
    follows runs; a second run of the same notebook takes every step from the cache."""
    asked: list[str] = []

    def no_streams(route: Route) -> None:
        asked.append(route.request.url)
        if "wait=0" in route.request.url:
            route.continue_()
        else:
            route.fulfill(status=503, content_type="text/plain", body="no streams here")

    page.route(re.compile(r"/kfnb/api/events\?"), no_streams)
    open_lab(page, lab_url)
    open_notebook(page, "fanout.ipynb")
    panel = open_panel(page)
    expect(panel.locator(".kfnb-Dag .kfnb-Node")).to_have_count(4)
    panel.locator('.kfnb-RunForm .kfnb-Param[data-param="n"] input').fill("3")

    ids = []
    for _ in range(2):
        with page.expect_response(
            lambda r: r.request.method == "POST" and re.search(r"/kfnb/api/runs(\?|$)", r.url)
        ) as started:
            panel.locator(".kfnb-RunForm-run").click()
        run_id = started.value.json()["id"]
        item = panel.locator(f'.kfnb-RunItem[data-run-id="{run_id}"]')
        expect(item).to_have_class(re.compile(r"kfnb-RunItem--selected"))
        expect(item).to_have_class(
            re.compile(r"kfnb-RunItem--(SUCCEEDED|FAILED)"), timeout=RUN_TIMEOUT_MS
        )
        expect(item).to_have_class(re.compile(r"kfnb-RunItem--SUCCEEDED"))
        ids.append(run_id)
    # newest first; the second run reused every step
    expect(panel.locator(".kfnb-RunItem").first).to_have_attribute("data-run-id", ids[1])
    expect(panel.locator(".kfnb-RunItem").first.locator(".kfnb-RunItem-cached")).to_be_visible()
    detail = panel.locator(".kfnb-RunDetail")
    for step in STEPS:
        expect(detail.locator(f'.kfnb-Node[data-step="{step}"]')).to_have_class(
            re.compile(r"kfnb-Node--CACHED")
        )
    expect(detail.locator(".kfnb-StepRow-cached")).to_have_count(4)
    streams = [url for url in asked if "wait=0" not in url]
    polls = [url for url in asked if "wait=0" in url]
    assert len(streams) >= 2, asked  # refused each time: polled meanwhile, tried again
    assert len(polls) >= 2, asked
    assert page_errors == []


FAKE_KFP_RUN = {
    "id": "kfp-run-1",
    "kind": "pipeline",
    "name": "fanout",
    "status": "RUNNING",
    "backend": "kfp",
    "notebook": "/somewhere/fanout.ipynb",
    "notebook_path": "fanout.ipynb",
    "params": {"n": 5},
    "metrics": {},
    "created_at": 1_700_000_000.0,
    "started_at": 1_700_000_001.0,
    "finished_at": None,
    "error": None,
    "parent_id": None,
    "child_count": 0,
    "remote": {"run_id": "abc", "url": "https://kfp.example.com/#/runs/details/abc"},
    "spec": {"source": "/somewhere/fanout.ipynb"},
    "pipeline": None,  # set below: the pipeline as the server describes fanout.ipynb
    "steps": [
        {
            "run_id": "kfp-run-1",
            "name": name,
            "status": status,
            "attempt": 0 if status == "PENDING" else 1,
            "started_at": None,
            "finished_at": None,
            "output_notebook": None,
            "log": None,
            "error": None,
            "gpus": [],
            "hash": None,
            "cached_from": None,
        }
        for name, status in [
            ("load", "SUCCEEDED"),
            ("squares", "RUNNING"),
            ("roots", "RUNNING"),
            ("report", "PENDING"),
        ]
    ],
}


def test_a_kfp_run_links_to_the_kfp_ui(
    page: Page, lab: Lab, lab_url: str, page_errors: list[str]
) -> None:
    """A remote run (answers of the server faked here: no cluster) shows its KFP link, its
    step states on the DAG and a Cancel button."""
    fake_run = {**FAKE_KFP_RUN, "pipeline": describe(lab, "fanout.ipynb")}

    def fake(route: Route) -> None:
        url = route.request.url
        if route.request.method != "GET":
            route.continue_()
        elif re.search(r"/kfnb/api/runs\?", url):
            route.fulfill(json={"runs": [fake_run], "total": 1})
        elif re.search(r"/kfnb/api/runs/kfp-run-1/metrics", url):
            route.fulfill(json={"metrics": []})
        elif re.search(r"/kfnb/api/runs/kfp-run-1/steps/[^/]+/log", url):
            route.fulfill(json={"text": "", "offset": 0, "done": False})
        elif re.search(r"/kfnb/api/runs/kfp-run-1(\?|$)", url):
            route.fulfill(json=fake_run)
        else:
            route.continue_()

    page.route(re.compile(r"/kfnb/api/runs"), fake)
    open_lab(page, lab_url)
    open_notebook(page, "fanout.ipynb")
    panel = open_panel(page)
    expect(panel.locator(".kfnb-Dag .kfnb-Node")).to_have_count(4)

    panel.locator('.kfnb-RunItem[data-run-id="kfp-run-1"]').click()
    link = panel.locator(".kfnb-RunDetail-remote")
    expect(link).to_have_attribute("href", "https://kfp.example.com/#/runs/details/abc")
    expect(link).to_have_attribute("target", "_blank")
    expect(panel.locator(".kfnb-RunDetail-cancel")).to_be_enabled()
    detail = panel.locator(".kfnb-RunDetail")
    expect(detail.locator('.kfnb-Node[data-step="squares"]')).to_have_class(
        re.compile(r"kfnb-Node--RUNNING")
    )
    expect(detail.locator('.kfnb-Node[data-step="report"]')).to_have_class(
        re.compile(r"kfnb-Node--PENDING")
    )
    expect(panel.locator(".kfnb-RunItem-backend").first).to_have_text("kfp")
    assert page_errors == []


def test_the_panel_works_when_restored_open(
    page: Page, lab: Lab, lab_url: str, page_errors: list[str]
) -> None:
    """After a reload JupyterLab restores the panel open (no "shown" event): it still loads
    the backends and follows the restored notebook."""
    open_lab(page, lab_url)
    open_notebook(page, "fanout.ipynb")
    open_panel(page)
    # the workspace is saved to the server a moment after the layout changes
    wait_until(
        page,
        """async () => {
            const ws = await window.jupyterapp.serviceManager.workspaces.fetch('default');
            const left = ws.data['layout-restorer:data']?.left;
            return left?.current === 'kfnb-panel' && !left?.collapsed;
        }""",
    )
    open_lab(page, f"{lab.url}lab?token={lab.token}")
    panel = page.locator("#kfnb-panel")
    expect(panel).to_be_visible()
    expect(panel.locator(".kfnb-Dag .kfnb-Node")).to_have_count(4)
    expect(panel.locator(".kfnb-RunForm-backend")).to_have_value("local")
    expect(panel.locator(".kfnb-RunForm-run")).to_be_enabled()
    assert page_errors == []


def describe(lab: Lab, path: str) -> dict[str, Any]:
    """The server's pipeline of the saved notebook at ``path`` (``GET pipeline``)."""
    url = f"{lab.url}kfnb/api/pipeline?path={urllib.parse.quote(path)}"
    request = urllib.request.Request(url, headers={"Authorization": f"token {lab.token}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        view: dict[str, Any] = json.loads(answer.read())
    return view["pipeline"]


EDIT_NOTEBOOK = """async () => {
    const panel = window.jupyterapp.shell.currentWidget;
    const model = panel.content.model;
    const last = model.cells.get(model.cells.length - 1);
    last.setMetadata('tags', ['step:summary']);       // the step `report` is renamed
    model.sharedModel.insertCell(model.cells.length, {
        cell_type: 'code', source: 'print(total)', metadata: {tags: ['step:extra']}
    });                                               // and a step is added after it
    await panel.context.save();
    return true;
}"""


def test_a_run_is_drawn_as_it_ran_after_the_notebook_changes(
    page: Page, lab: Lab, lab_url: str, page_errors: list[str]
) -> None:
    """Run a notebook, rename a step and add one (saved), open the old run: its DAG shows the
    steps as they ran, while the pipeline section shows the notebook as it is now."""
    write_ran_notebook(lab.root / "ran.ipynb")
    open_lab(page, lab_url)
    open_notebook(page, "ran.ipynb")
    panel = open_panel(page)
    expect(panel.locator(".kfnb-PipelineView .kfnb-Node")).to_have_count(2)
    panel.locator(".kfnb-RunForm-run").click()
    item = panel.locator(".kfnb-RunItem").first
    expect(item).to_have_class(re.compile(r"kfnb-RunItem--SUCCEEDED"), timeout=RUN_TIMEOUT_MS)
    run_id = item.get_attribute("data-run-id")

    wait_until(page, EDIT_NOTEBOOK)
    live = panel.locator(".kfnb-PipelineView .kfnb-Node")
    expect(live).to_have_count(3)
    expect(panel.locator('.kfnb-PipelineView .kfnb-Node[data-step="summary"]')).to_be_visible()

    open_lab(page, lab_url)  # a fresh page: everything read again from the server
    open_notebook(page, "ran.ipynb")
    panel = open_panel(page)
    expect(panel.locator(".kfnb-PipelineView .kfnb-Node")).to_have_count(3)
    panel.locator(f'.kfnb-RunItem[data-run-id="{run_id}"]').click()
    drawn = panel.locator(".kfnb-RunDetail-dag .kfnb-Node")
    expect(drawn).to_have_count(2)
    assert [n.get_attribute("data-step") for n in drawn.all()] == ["make", "report"]
    for step in ("make", "report"):
        node = panel.locator(f'.kfnb-RunDetail-dag .kfnb-Node[data-step="{step}"]')
        expect(node).to_have_class(re.compile(r"kfnb-Node--SUCCEEDED"))
    edge = panel.locator('.kfnb-RunDetail-dag .kfnb-EdgeLabel[data-source="make"] text')
    expect(edge).to_have_text("xs")
    assert page_errors == []


def write_ran_notebook(path: Path) -> None:
    """Two quick steps, ``make`` -> ``report`` (``xs`` flows on the edge)."""
    nb = new_notebook(
        cells=[
            new_code_cell("xs = [1, 2]", metadata={"tags": ["step:make"]}),
            new_code_cell("total = sum(xs)", metadata={"tags": ["step:report"]}),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    nbformat.write(nb, path)
