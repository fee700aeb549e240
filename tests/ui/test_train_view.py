"""A training job in the side panel, in a real JupyterLab and Chromium: it is listed with the
runs of the notebook that launched it, and its detail shows what it asked for, one row per rank
with the failing rank's error, and each rank's log; no DAG and no executed notebooks."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from lab_pages import Lab, open_lab, open_notebook, open_panel, save_screenshot
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

JOB = """
def train(shards: int = 2):
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    print(f"hello from rank {rank} of {shards}", flush=True)
    if rank == 1:
        raise ValueError("bad shard 1")
    dist.barrier()
"""


def launch(lab: Lab, tmp_path: Path, notebook: str) -> str:
    """A 2-rank job started as a notebook's kernel would (its session names the notebook)."""
    (tmp_path / "jobs.py").write_text(textwrap.dedent(JOB))
    code = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "import kfnb\nfrom jobs import train\n"
        "job = kfnb.train(train, procs_per_node=2)\n"
        "print(job.id, job.wait(120), flush=True)\n"
    )
    env = {**os.environ, "KFNB_HOME": str(lab.home), "JPY_SESSION_NAME": notebook}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=lab.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    run_id, status = done.stdout.split()
    assert status == "FAILED"
    return run_id


def test_a_training_job_shows_its_ranks_in_the_panel(
    page: Page, lab: Lab, lab_url: str, tmp_path: Path, page_errors: list[str]
) -> None:
    run_id = launch(lab, tmp_path, "fanout.ipynb")
    open_lab(page, lab_url)
    open_notebook(page, "fanout.ipynb")
    panel = open_panel(page)
    item = panel.locator(f'.kfnb-RunItem[data-run-id="{run_id}"]')
    expect(item).to_have_attribute("data-kind", "train")
    item.locator(".kfnb-RunItem-main").click()
    detail = panel.locator(".kfnb-RunDetail")
    expect(detail.locator(".kfnb-KindBadge")).to_have_text("train")
    expect(detail.locator(".kfnb-RunDetail-error")).to_have_text(
        "rank 1 failed: ValueError: bad shard 1"
    )
    expect(detail.locator(".kfnb-TrainRun-summary")).to_have_text(
        "2 processes × 1 node · no GPUs · local"  # noqa: RUF001
    )
    rows = detail.locator(".kfnb-StepRow")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_attribute("data-step", "rank-0")
    expect(detail.locator('.kfnb-StepRow[data-step="rank-1"] .kfnb-StepRow-error')).to_have_text(
        "ValueError: bad shard 1"
    )
    expect(detail.locator(".kfnb-StepRow-notebook")).to_have_count(0)
    expect(detail.locator(".kfnb-DagViewport")).to_have_count(0)
    detail.locator('.kfnb-StepRow[data-step="rank-0"] .kfnb-StepRow-log').click()
    expect(detail.locator(".kfnb-Log")).to_contain_text("hello from rank 0 of 2")
    detail.locator('.kfnb-StepRow[data-step="rank-1"] .kfnb-StepRow-log').click()
    expect(detail.locator(".kfnb-Log")).to_contain_text(re.compile(r"ValueError: bad shard 1"))
    save_screenshot(page, tmp_path, "panel-train-run.png")
    assert page_errors == []
