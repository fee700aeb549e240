"""A tuning study in the side panel, in a real JupyterLab and Chromium: it is listed with the
runs of its notebook, and its detail shows the trials per state, the best trial, the server's
two plots and one row per trial (pruned ones too) that opens the trial; a study running in the
server takes more trials and stops from the panel."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import nbformat
import pytest
from lab_pages import Lab, open_lab, open_notebook, open_panel, save_screenshot, widen_panel
from nbformat.v4 import new_code_cell, new_notebook
from playwright.sync_api import Locator, Page, expect

from kfnb.tracking import Store

pytestmark = pytest.mark.browser

STUDY = {
    "space": {"x": {"float": [0.0, 1.0]}, "opt": {"choice": ["adam", "sgd"]}},
    "objective": "loss",
    "direction": "minimize",
    "algorithm": "tpe",
    "trials": 4,
    "parallel": 1,
    "prune": {"name": "median", "startup_trials": 1, "warmup_steps": 0},
    "seed": None,
    "max_failed": None,
    "fixed": {},
    "target": {},
}
#: number -> (status, params, intermediate losses, final loss, error)
TRIALS: dict[int, tuple[str, dict[str, Any], list[float], float | None, str | None]] = {
    0: ("SUCCEEDED", {"x": 0.31, "opt": "adam"}, [1.2, 0.6, 0.4], 0.0121, None),
    1: ("PRUNED", {"x": 0.9, "opt": "sgd"}, [1.9], None, None),
    2: ("FAILED", {"x": 0.5, "opt": "adam"}, [], None, "step 'fit' failed: ValueError: nope"),
    3: ("SUCCEEDED", {"x": 0.42, "opt": "sgd"}, [1.1, 0.5, 0.3], 0.0144, None),
}


def record_study(lab: Lab, notebook: str) -> tuple[str, dict[int, str], str]:
    """A finished study of ``notebook`` written into the lab's run store as a local runner
    records one: trials under it, a pipeline run under trial 0. (study id, trial ids, the
    pipeline run's id)"""
    store = Store(lab.home)
    path = str((lab.root / notebook).resolve())
    study = store.create_run(
        kind="tune",
        name="fanout",
        backend="local",
        notebook=path,
        notebook_hash=None,
        params={},
        spec={"study": STUDY},
    )
    store.set_run_status(study.id, "RUNNING")
    trial_ids: dict[int, str] = {}
    pipeline_id = ""
    for number, (status, params, curve, final, error) in TRIALS.items():
        trial = store.create_run(
            kind="trial",
            name=f"trial-{number}",
            backend="local",
            notebook=path,
            notebook_hash=None,
            params=params,
            parent_id=study.id,
            spec={"trial": {"number": number}},
        )
        trial_ids[number] = trial.id
        store.set_run_status(trial.id, "RUNNING")
        if number == 0:
            run = store.create_run(
                kind="pipeline",
                name="fanout",
                backend="local",
                notebook=path,
                notebook_hash=None,
                params=params,
                parent_id=trial.id,
            )
            store.set_run_status(run.id, "RUNNING")
            store.set_run_status(run.id, "SUCCEEDED")
            pipeline_id = run.id
        for step, value in enumerate(curve):
            store.log_metric(trial.id, "loss", value, step=step)
        if final is not None:
            store.log_metric(trial.id, "loss", final)
        store.set_run_status(trial.id, status, error=error)  # type: ignore[arg-type]
    store.set_run_status(study.id, "SUCCEEDED")
    return study.id, trial_ids, pipeline_id


def open_study(page: Page, lab_url: str, notebook: str, study_id: str) -> Locator:
    open_lab(page, lab_url)
    open_notebook(page, notebook)
    panel = open_panel(page)
    item = panel.locator(f'.kfnb-RunItem[data-run-id="{study_id}"]')
    expect(item).to_have_attribute("data-kind", "tune")
    item.locator(".kfnb-RunItem-main").click()
    detail = panel.locator(".kfnb-RunDetail")
    expect(detail.locator(".kfnb-KindBadge").first).to_have_text("tune")
    expect(detail.locator(".kfnb-StudyRun")).to_be_visible()
    return detail


def test_a_recorded_study_shows_its_trials_best_and_plots(
    page: Page, lab: Lab, lab_url: str, tmp_path: Path, page_errors: list[str]
) -> None:
    study_id, trial_ids, pipeline_id = record_study(lab, "fanout.ipynb")
    detail = open_study(page, lab_url, "fanout.ipynb", study_id)
    study = detail.locator(".kfnb-StudyRun")
    expect(study.locator(".kfnb-StudyRun-summary")).to_have_text(
        "loss (minimize) · tpe · 4 of 4 trials · median pruning · local"
    )
    for state, count in (("SUCCEEDED", "2"), ("PRUNED", "1"), ("FAILED", "1")):
        expect(
            study.locator(f'.kfnb-StudyRun-count[data-state="{state}"] .kfnb-StudyRun-countValue')
        ).to_have_text(count)
    expect(study.locator('.kfnb-StudyRun-count[data-state="RUNNING"]')).to_have_count(0)
    expect(study.locator(".kfnb-StudyRun-bestValue")).to_have_text("0.0121")
    expect(study.locator(".kfnb-StudyRun-bestTrial")).to_have_text("trial 0")
    expect(study.locator(".kfnb-StudyRun-bestParams")).to_have_text("x=0.31, opt='adam'")

    rows = study.locator("tr.kfnb-StudyTrial")
    expect(rows).to_have_count(4)
    for number, (status, _, _, _, _) in TRIALS.items():
        expect(rows.nth(number)).to_have_attribute("data-status", status)
        expect(rows.nth(number)).to_have_attribute("data-trial-id", trial_ids[number])
    pruned = rows.nth(1)
    expect(pruned.locator(".kfnb-StudyTrial-state")).to_have_text("pruned")
    expect(pruned.locator(".kfnb-StatusIcon.kfnb-Status--PRUNED svg")).to_have_count(1)
    expect(pruned.locator(".kfnb-StudyTrial-params")).to_have_text("x=0.9, opt='sgd'")
    expect(rows.nth(0)).to_have_class("kfnb-StudyTrial kfnb-StudyTrial--best")
    expect(rows.nth(3).locator(".kfnb-StudyTrial-value")).to_have_text("0.0144")
    expect(study.locator(".kfnb-StudyTrial-error")).to_have_text(
        "step 'fit' failed: ValueError: nope"
    )

    # both plots, as the server drew them (matplotlib SVG), inside the page
    for kind in ("history", "parallel"):
        svg = study.locator(f'figure.kfnb-StudyRun-plot[data-kind="{kind}"] > svg')
        expect(svg).to_have_count(1)
        expect(svg).to_have_attribute("data-kind", kind)
        box = svg.bounding_box()
        assert box is not None and box["width"] > 150 and box["height"] > 60
    expect(study.locator("#kfnb-history-trial-1-pruned")).to_have_count(1)
    expect(study.locator("#kfnb-history-trial-2-failed")).to_have_count(1)
    expect(study.locator("#kfnb-parallel-trial-0-succeeded-best")).to_have_count(1)
    expect(study.locator("#kfnb-parallel-trial-3-succeeded")).to_have_count(1)
    colorbar = study.locator('figure.kfnb-StudyRun-plot[data-kind="parallel"] image').first
    href = colorbar.get_attribute("xlink:href") or colorbar.get_attribute("href") or ""
    assert href.startswith("data:image/png;base64,")  # the inline colour bar is kept
    widen_panel(page, 560)
    for kind in ("history", "parallel"):  # the plots scale with the panel
        box = study.locator(f'figure[data-kind="{kind}"] > svg').bounding_box()
        assert box is not None and box["width"] > 450
    study.locator(".kfnb-StudyRun-plots").scroll_into_view_if_needed()
    save_screenshot(page, tmp_path, "panel-study-run.png")

    # a trial opens in the detail; its run button opens the pipeline run it ran
    rows.nth(1).click()
    expect(detail.locator(".kfnb-RunDetail-id")).to_have_text(trial_ids[1])
    expect(detail.locator(".kfnb-KindBadge").first).to_have_text("trial")
    expect(detail.locator(".kfnb-RunDetail-status")).to_have_text("pruned")
    detail.locator(".kfnb-RunDetail-parent").click()
    expect(detail.locator(".kfnb-RunDetail-id")).to_have_text(study_id)
    detail.locator('tr.kfnb-StudyTrial[data-trial="0"] .kfnb-StudyTrial-run').click()
    expect(detail.locator(".kfnb-RunDetail-id")).to_have_text(pipeline_id)
    expect(detail.locator(".kfnb-KindBadge").first).to_have_text("pipeline")
    assert page_errors == []


def slow_notebook() -> nbformat.NotebookNode:
    """One parameter to tune and a step that sleeps far longer than the test runs."""
    return new_notebook(
        cells=[
            new_code_cell("x = 0.5", metadata={"tags": ["pipeline-parameters"]}),
            new_code_cell(
                "import time\ntime.sleep(600)\nloss = x", metadata={"tags": ["step:fit"]}
            ),
            new_code_cell("print(loss)", metadata={"tags": ["pipeline-metrics"]}),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )


def post(lab: Lab, route: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{lab.url}kfnb/api/{route}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"token {lab.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 201
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def test_a_running_study_takes_more_trials_and_stops_from_the_panel(
    page: Page, lab: Lab, lab_url: str, page_errors: list[str]
) -> None:
    nbformat.write(slow_notebook(), lab.root / "tune_slow.ipynb")
    study_id = post(
        lab,
        "studies",
        {
            "notebook": "tune_slow.ipynb",
            "space": {"x": {"float": [0.0, 1.0]}},
            "objective": "loss",
            "trials": 2,
        },
    )["id"]
    detail = open_study(page, lab_url, "tune_slow.ipynb", study_id)
    study = detail.locator(".kfnb-StudyRun")
    # the trial's start reaches the panel through the event feed
    running = study.locator('tr.kfnb-StudyTrial[data-status="RUNNING"]')
    expect(running).to_have_count(1)
    expect(running.locator(".kfnb-Spinner")).to_have_count(1)
    expect(study.locator(".kfnb-StudyRun-best")).to_have_text("No trial has succeeded yet.")

    study.locator(".kfnb-StudyRun-addCount").fill("3")
    study.locator(".kfnb-StudyRun-add").click()
    expect(study.locator(".kfnb-StudyRun-summary")).to_have_text(
        "loss (minimize) · tpe · 0 of 5 trials · local"
    )
    store = Store(lab.home)
    assert (store.get_run(study_id).spec or {})["study"]["trials"] == 5

    detail.locator(".kfnb-RunDetail-cancel").click()  # the Cancel every running run has
    expect(detail.locator(".kfnb-RunDetail-status")).to_have_text("canceled", timeout=60_000)
    expect(study.locator('tr.kfnb-StudyTrial[data-status="CANCELED"]')).to_have_count(1)
    expect(detail.locator(".kfnb-RunDetail-cancel")).to_have_count(0)
    assert store.get_run(study_id).status == "CANCELED"
    [trial] = store.children(study_id)
    [pipeline] = store.children(trial.id)
    assert (trial.status, pipeline.status) == ("CANCELED", "CANCELED")
    assert page_errors == []
