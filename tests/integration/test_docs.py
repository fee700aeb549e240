"""The guide's code blocks run, so the guide cannot rot (docs/guide/*.md).

Every fenced block of a page is taken in document order, in one workspace per page: a temporary
folder holding copies of ``examples/*.ipynb``, with ``KFNB_HOME`` inside it (``home/``).

- ``python``: executed, in this process, in one namespace per page (so a page's blocks build on
  each other), with the workspace as the working directory.
- ``console``: each ``$ COMMAND`` line runs in ``bash`` in the workspace (``$ export NAME=VALUE``
  sets a variable for the page's later commands); the lines below it, up to the next ``$``, are
  output that must appear (see :func:`match_output`). A command must exit 0 unless its shown
  output has a ``kfnb: error:`` line or the block says ``test:fails``, then it must fail.
- ``yaml``, ``json``, ``toml``: parsed. ``ipython`` blocks starting with ``%%step`` have their
  header parsed by kfnb's own ``%%step`` parser. Other fences (``text``, none) are prose.

The info string carries options after the language: ``file=NAME`` writes the block into the
workspace (after parsing it) instead of running it; ``test:skip reason="..."`` skips the block,
and the reason is reported (``-rs``).
"""

from __future__ import annotations

import json
import linecache
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guide"
EXAMPLES = ROOT / "examples"
COMMAND_TIMEOUT = 120

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>```+|~~~+)(?P<info>[^`]*)$")
RUN_ID = r"\d{8}-\d{6}(?:-[0-9a-f]{6})?"
STAMP = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"
DURATION = r"\d+(?:\.\d+)?(?:ms|s|m|h)"


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    options: dict[str, str]
    text: str

    @property
    def where(self) -> str:
        return f"docs/guide/{self.page}:{self.line}"


def parse_info(info: str) -> tuple[str, dict[str, str]]:
    """``python test:skip reason="needs a cluster"`` -> ``("python", {"test:skip": "", ...})``."""
    words = shlex.split(info)
    if not words:
        return "", {}
    options: dict[str, str] = {}
    for word in words[1:]:
        key, _, value = word.partition("=")
        options[key] = value
    return words[0].lower(), options


def blocks_of(path: Path) -> list[Block]:
    """The fenced code blocks of one markdown page, in order."""
    out: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, start = m["fence"], i
        lang, options = parse_info(m["info"].strip())
        body: list[str] = []
        i += 1
        while i < len(lines) and not re.match(
            rf"^ {{0,3}}{fence[0]}{{{len(fence)},}}\s*$", lines[i]
        ):
            body.append(lines[i])
            i += 1
        if i >= len(lines):
            raise AssertionError(f"{path.name}:{start + 1}: unclosed code fence")
        i += 1
        out.append(Block(path.name, start + 1, lang, options, "\n".join(body) + "\n"))
    return out


PAGES = sorted(p.name for p in GUIDE.glob("*.md"))


# -- matching a command's output against the lines the guide shows -----------------------------


@dataclass
class Ids:
    """Run ids as the guide writes them -> the ids this test's runs got."""

    seen: dict[str, str] = field(default_factory=dict)

    def learn(self, shown: str, actual: str) -> None:
        self.seen.setdefault(shown, actual)

    def substitute(self, command: str) -> str:
        """Replace the guide's run ids (or their ``YYYYMMDD-HHMMSS`` prefix) in a command."""

        def swap(m: re.Match[str]) -> str:
            word = m.group(0)
            for shown, actual in self.seen.items():
                if shown == word or shown.startswith(word):
                    return actual
            return word

        return re.sub(RUN_ID, swap, command)


def line_pattern(shown: str) -> tuple[re.Pattern[str], list[str]]:
    """A regex for one shown output line, and the run ids it shows (one group each).

    Run ids, timestamps and durations may differ; ``...`` stands for anything; ``~/.kfnb`` is
    wherever ``KFNB_HOME`` is; runs of spaces (table columns) match any run of spaces.
    """
    ids: list[str] = []
    token = re.compile(
        rf"(?P<id>{RUN_ID})|(?P<stamp>{STAMP})|(?P<dur>{DURATION})|(?P<dots>\.\.\.)"
        r"|(?P<home>~/\.kfnb)|(?P<space>\s+)"
    )
    parts: list[str] = []
    pos = 0
    for m in token.finditer(shown):
        parts.append(re.escape(shown[pos : m.start()]))
        pos = m.end()
        if m["id"]:
            ids.append(m["id"])
            parts.append(f"({RUN_ID})")
        elif m["stamp"]:
            parts.append(STAMP)
        elif m["dur"]:
            before = shown[m.start() - 1] if m.start() else " "
            parts.append(DURATION if not (before.isalnum() or before == "_") else re.escape(m[0]))
        elif m["dots"] or m["home"]:
            parts.append(".*")
        else:
            parts.append(r"\s+")
    parts.append(re.escape(shown[pos:]))
    return re.compile("".join(parts).strip()), ids


def match_output(shown: list[str], actual: str, ids: Ids) -> list[str]:
    """The shown lines that no actual line matches (empty: all matched).

    Each shown line must match a distinct line of the output, in any order (steps that run in
    parallel finish in either order); a line that is only ``...`` elides any number of lines.
    """
    actual_lines = [a.strip() for a in actual.splitlines()]
    used: set[int] = set()
    missing: list[str] = []
    for line in shown:
        if not line.strip() or line.strip() == "...":
            continue
        pattern, shown_ids = line_pattern(line.strip())
        for k, candidate in enumerate(actual_lines):
            if k in used:
                continue
            m = pattern.fullmatch(candidate)
            if m:
                used.add(k)
                for shown_id, actual_id in zip(shown_ids, m.groups(), strict=True):
                    ids.learn(shown_id, actual_id)
                break
        else:
            missing.append(line)
    return missing


# -- running one page ------------------------------------------------------------------------


@dataclass
class Workspace:
    root: Path
    env: dict[str, str]
    monkeypatch: pytest.MonkeyPatch
    namespace: dict[str, Any] = field(default_factory=dict)
    ids: Ids = field(default_factory=Ids)


def commands_of(block: Block) -> list[tuple[str, list[str]]]:
    """``[(command, shown output lines)]`` of a console block."""
    out: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        elif out:
            out[-1][1].append(line)
    return out


def run_console(block: Block, ws: Workspace) -> None:
    for command, shown in commands_of(block):
        export = re.fullmatch(r"export ([A-Za-z_][A-Za-z0-9_]*)=(\S*)(\s+#.*)?", command.strip())
        if export:
            ws.env[export[1]] = os.path.expandvars(export[2])
            ws.monkeypatch.setenv(export[1], ws.env[export[1]])  # for the python blocks
            continue
        real = ws.ids.substitute(command)
        proc = subprocess.run(
            ["bash", "-c", real],
            cwd=ws.root,
            env=ws.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
        output = proc.stdout + "\n" + proc.stderr
        context = f"{block.where}: $ {real}\n--- exit {proc.returncode}, output:\n{output}"
        expect_failure = "test:fails" in block.options or any(
            line.startswith("kfnb: error:") for line in shown
        )
        if expect_failure:
            assert proc.returncode != 0, f"expected the command to fail\n{context}"
        else:
            assert proc.returncode == 0, f"the command failed\n{context}"
        missing = match_output(shown, output, ws.ids)
        assert not missing, "shown output not found:\n  " + "\n  ".join(missing) + f"\n{context}"


def run_python(block: Block, ws: Workspace) -> None:
    filename = f"<{block.where}>"
    # inspect.getsource finds the block's functions (kfnb.train ships a function's source)
    linecache.cache[filename] = (len(block.text), None, block.text.splitlines(True), filename)
    code = compile(block.text, filename, "exec")
    before = os.getcwd()
    os.chdir(ws.root)
    try:
        exec(code, ws.namespace)
    finally:
        os.chdir(before)


def check_step_header(block: Block) -> None:
    from kfnb.notebook.magic import parse_header

    first = block.text.lstrip().splitlines()[0]
    if first.startswith("%%step"):
        parse_header(first)


def parse_data(block: Block) -> None:
    if block.lang == "yaml":
        list(yaml.safe_load_all(block.text))
    elif block.lang == "json":
        json.loads(block.text)
    elif block.lang == "toml":
        import tomllib  # Python 3.11+

        tomllib.loads(block.text)


def run_block(block: Block, ws: Workspace) -> None:
    if "file" in block.options:
        parse_data(block)
        if block.lang == "python":
            compile(block.text, block.where, "exec")
        target = ws.root / block.options["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.text, encoding="utf-8")
    elif block.lang == "python":
        run_python(block, ws)
    elif block.lang == "console":
        run_console(block, ws)
    elif block.lang == "ipython":
        check_step_header(block)
    else:
        parse_data(block)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    root = tmp_path / "ws"
    root.mkdir()
    for nb in EXAMPLES.glob("*.ipynb"):
        shutil.copy(nb, root / nb.name)
    home = root / "home"
    monkeypatch.setenv("KFNB_HOME", str(home))
    for name in ("KFNB_CONFIG", "KFNB_KFP_HOST", "KF_PIPELINES_ENDPOINT", "KFNB_GPUS"):
        monkeypatch.delenv(name, raising=False)
    env = dict(os.environ)
    env["KFNB_HOME"] = str(home)
    env["KFNB_GPUS"] = ""  # a machine's GPUs never change what the guide shows
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.pop("COLUMNS", None)
    saved = dict(os.environ)
    ws = Workspace(root, env, monkeypatch)
    yield ws
    # what a page's python blocks started (a server) stops with the page
    for value in ws.namespace.values():
        if isinstance(value, subprocess.Popen) and value.poll() is None:
            value.terminate()
            try:
                value.wait(timeout=30)
            except subprocess.TimeoutExpired:
                value.kill()
    if ws.namespace:  # python blocks ran kfnb in this process: no kernel outlives the page
        from kfnb.kernels import shutdown_shared_pools

        shutdown_shared_pools()
    os.environ.clear()
    os.environ.update(saved)


def test_the_guide_has_its_pages() -> None:
    expected = {
        "README.md",
        "tags-and-magics.md",
        "backends.md",
        "training.md",
        "tuning.md",
        "batch.md",
        "configuration.md",
        "rest-api.md",
        "troubleshooting.md",
    }
    assert expected <= set(PAGES)
    index = (GUIDE / "README.md").read_text(encoding="utf-8")
    for page in expected - {"README.md"}:
        assert f"({page})" in index, f"docs/guide/README.md does not link {page}"


@pytest.mark.parametrize("page", PAGES)
def test_page(page: str, workspace: Workspace) -> None:
    skipped: list[str] = []
    for block in blocks_of(GUIDE / page):
        if "test:skip" in block.options:
            reason = block.options.get("reason", "")
            assert reason, f'{block.where}: test:skip needs reason="..."'
            skipped.append(f"{block.where} ({block.lang}): {reason}")
            continue
        try:
            run_block(block, workspace)
        except AssertionError:
            raise
        except Exception as exc:
            raise AssertionError(f"{block.where} ({block.lang}): {exc!r}") from exc
    if skipped:
        pytest.skip(f"ran all but {len(skipped)} block(s): " + "; ".join(skipped))


# -- the matcher itself ------------------------------------------------------------------------


def test_matcher_allows_ids_times_and_elisions() -> None:
    ids = Ids()
    shown = [
        "[   0.3s] load running",
        "fanout: succeeded in 1.0s (run 20261206-052641-3f7007)",
        "...",
        "  artifacts: ~/.kfnb/runs/20261206-052641-3f7007",
    ]
    actual = (
        "[  12.5s] load running\n[  13.0s] load succeeded\n"
        "fanout: succeeded in 13.2s (run 20270101-000000-abcdef)\n"
        "  artifacts: /tmp/x/home/runs/20270101-000000-abcdef\n"
    )
    assert match_output(shown, actual, ids) == []
    assert ids.substitute("kfnb show 20261206-052641") == "kfnb show 20270101-000000-abcdef"
    assert match_output(["fanout: failed"], actual, ids) == ["fanout: failed"]
    # a metric's digits are not a duration to be ignored
    assert match_output(["metrics: total=42.29"], "metrics: total=42.30", ids)
