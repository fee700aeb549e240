"""What the browser tests do with JupyterLab's page: open it, open a notebook, open and widen
the kfnb panel, read a cell's tags, save screenshots.

Screenshots go to the folder a test gives (the ``screenshots`` fixture); with
``KFNB_UPDATE_DOCS_IMAGES=1`` they are also copied to ``docs/images/`` for the README (not on
every run: the pictures hold times and would change the tracked files each time).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

PANEL = "#kfnb-panel"
PANEL_TAB = '.jp-SideBar [data-id="kfnb-panel"]'
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


@dataclass(frozen=True)
class Lab:
    """A running ``jupyter lab``: its base URL (ending in ``/``), token, log file, root folder
    and run store folder (``KFNB_HOME``)."""

    url: str
    token: str
    log: Path
    root: Path
    home: Path

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


#: Every screenshot saved in this test session (the conftest lists them at the end).
SAVED_SCREENSHOTS: list[Path] = []


def save_screenshot(page: Page, folder: Path, name: str) -> Path:
    """Save the page as ``folder/name`` (and as ``docs/images/name`` when asked to)."""
    path = folder / name
    page.screenshot(path=str(path), animations="disabled")
    SAVED_SCREENSHOTS.append(path)
    if os.environ.get("KFNB_UPDATE_DOCS_IMAGES") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMAGES / name)
        SAVED_SCREENSHOTS.append(DOCS_IMAGES / name)
    return path


def open_lab(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_function("() => window.jupyterapp !== undefined")
    page.evaluate("() => window.jupyterapp.restored")


def open_panel(page: Page) -> Locator:
    tab = page.locator(PANEL_TAB)
    expect(tab, "the kfnb tab is missing from the left side bar").to_be_visible()
    expect(tab).to_have_attribute("title", "Kubeflow Notebook (kfnb)")
    if "lm-mod-current" not in (tab.get_attribute("class") or ""):
        tab.click()
    panel = page.locator(PANEL)
    expect(panel).to_be_visible()
    return panel


def open_notebook(page: Page, path: str) -> Locator:
    """Open the notebook at contents path ``path`` in the main area; its panel's locator."""
    page.evaluate(
        "async path => { await window.jupyterapp.commands.execute('docmanager:open', {path}); }",
        path,
    )
    notebook = page.locator(".jp-NotebookPanel:visible")
    expect(notebook.locator(".jp-Cell").first).to_be_visible()
    page.wait_for_function(
        "path => window.jupyterapp.shell.currentWidget?.context?.path === path", arg=path
    )
    return notebook


def widen_panel(page: Page, width: int) -> None:
    """Drag the handle between the left side area and the main area to make the panel wider."""
    panel = page.locator(PANEL).bounding_box()
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    box = handle.bounding_box()
    assert panel is not None and box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(panel["x"] + width, y, steps=8)
    page.mouse.up()


def cell(page: Page, index: int) -> Locator:
    """The notebook cell at ``index`` of the current notebook."""
    return page.locator(".jp-NotebookPanel:visible .jp-Notebook .jp-Cell").nth(index)


def cell_tags(page: Page, index: int) -> list[str]:
    """The tags of cell ``index`` of the current notebook, read from its model."""
    tags: list[str] = page.evaluate(
        """index => {
            const nb = window.jupyterapp.shell.currentWidget.content;
            return nb.widgets[index].model.getMetadata('tags') ?? [];
        }""",
        index,
    )
    return tags


def active_cell_index(page: Page) -> int:
    index: int = page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.activeCellIndex"
    )
    return index


def wait_until(page: Page, predicate: str, timeout_s: float = 15) -> None:
    """Evaluate the (maybe async) JS ``predicate`` until it is true. ``wait_for_function`` does
    not await a promise: it would take the promise itself for a true answer."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout_s}s: {predicate}")
        page.wait_for_timeout(200)  # poll interval; the loop is bounded by `deadline`


def cell_source(page: Page, index: int) -> str:
    """The source of cell ``index`` of the current notebook, read from its model."""
    source: str = page.evaluate(
        """index => {
            const nb = window.jupyterapp.shell.currentWidget.content;
            return nb.widgets[index].model.sharedModel.getSource();
        }""",
        index,
    )
    return source


def boxes(locator: Locator) -> list[dict[str, float]]:
    """The bounding boxes of every element ``locator`` matches (visible ones)."""
    found = []
    for element in locator.all():
        box = element.bounding_box()
        assert box is not None, "an element has no box (hidden?)"
        found.append(box)
    return found


def inside(box: dict[str, float], frame: dict[str, float], slack: float = 0.5) -> bool:
    """Whether ``box`` lies wholly within ``frame`` (bounding boxes of the page)."""
    return (
        box["x"] >= frame["x"] - slack
        and box["y"] >= frame["y"] - slack
        and box["x"] + box["width"] <= frame["x"] + frame["width"] + slack
        and box["y"] + box["height"] <= frame["y"] + frame["height"] + slack
    )
