"""A bounded, deterministic fuzz of the command line's inputs.

Hostile values (oversized, non-finite, deeply nested, very long paths, odd unicode, invalid
UTF-8 in files) go to ``kfnb run/describe/compile/show/batch/tune/train`` through the CLI's own
``main(argv)`` in this process, and a few through a real ``python -m kfnb.cli``. Whatever the
input, the CLI must answer with exit status 0, 1 or 2 (refused inputs: 1 or 2), never a
traceback, and an error on one (short) line. Nothing long runs: a run, batch, tune or train that
gets past its checks is stopped where it would start (``Accepted``), so every case is a
command line's checks only. Seeded: the same inputs every time, in well under a minute.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kfnb.cli import main
from kfnb.errors import KfnbError

SEED = 20261207
ROOT = Path(__file__).resolve().parents[2]
MAX_ERROR_CHARS = 1200  # one readable line, not a dump of the input


class Accepted(KfnbError):
    """Raised where an accepted command would start its run: the fuzz runs checks only."""


def _notebook(path: Path, cells: list[tuple[list[str], str]], **metadata: Any) -> Path:
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
            **metadata,
        },
        "cells": [
            {
                "cell_type": "code",
                "id": f"c{i}",
                "metadata": {"tags": tags},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
            for i, (tags, source) in enumerate(cells)
        ],
    }
    path.write_text(json.dumps(nb))
    return path


PARAMS = "x = 1\nf = 0.5\ns = 'a'\nl = [1, 2]\nd = {'a': 1}\nb = True"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A tiny notebook, and inputs that are wrong in every way a file can be."""
    out = {
        "nb": _notebook(
            tmp_path / "nb.ipynb",
            [(["pipeline-parameters"], PARAMS), (["step:a"], "y = x + f"), (["step:b"], "z = y")],
        ),
        "space": tmp_path / "space.yaml",
        "grid": tmp_path / "grid.yaml",
    }
    out["space"].write_text("f: {float: [0.1, 0.9]}\n")
    out["grid"].write_text("x: [1, 2]\n")
    hostile: dict[str, bytes] = {
        "bad_utf8": b"x: '\xff\xfe'\n",
        "nul": b"x: 1\x00\n",
        "shadow": b"root:$6$salt$hash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
        "deep": b"l: " + b"[" * 5000 + b"]" * 5000 + b"\n",
        "huge": b"s: '" + b"a" * (200 * 1024) + b"'\n",
        "nan": b"f: .nan\n",
        "inf": b"f: 1e999\n",
        "rtl": "s: '\u202egnp.exe'\nx: \U0001f600\n".encode(),
        "list": b"- 1\n- 2\n",
        "badyaml": b"x: 1\n  secret: [unclosed\n",
        "tag": b"x: !!python/object:os.system 'echo pwned'\n",
        "alias_bomb": b"a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        b"l: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
        "empty": b"",
    }
    for name, data in hostile.items():
        path = tmp_path / f"{name}.yaml"
        path.write_bytes(data)
        out[name] = path
    out["dir"] = tmp_path
    return out


@contextlib.contextmanager
def stop_before_running(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every command that gets past its checks stops where its run would start."""
    import kfnb.api
    import kfnb.backends
    import kfnb.params
    import kfnb.tuning

    real = kfnb.params.resolve_params

    def resolved(*args: Any, **kwargs: Any) -> dict[str, Any]:
        values = real(*args, **kwargs)
        if os.environ.get("KFNB_FUZZ_STOP") == "params":
            raise Accepted("accepted")
        return values

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise Accepted("accepted")

    class Tuner:
        def __getattr__(self, name: str) -> Callable[..., Any]:
            return refuse

    monkeypatch.setattr(kfnb.params, "resolve_params", resolved)
    monkeypatch.setattr(kfnb.api, "resolve_params", resolved)
    monkeypatch.setattr(kfnb.backends, "open_backend", refuse)  # batch, lazily imported
    monkeypatch.setattr(kfnb.tuning, "get_tuner", lambda name: Tuner())
    yield


def call(argv: list[str], stop: str = "params") -> tuple[int, str, str]:
    """``kfnb ARGV`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    os.environ["KFNB_FUZZ_STOP"] = stop
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse: a bad command line
                code = exc.code if isinstance(exc.code, int) else 2
            except Exception:  # what a user would see as a traceback
                code = 99
                print(traceback.format_exc(), file=sys.stderr)
    finally:
        os.environ.pop("KFNB_FUZZ_STOP", None)
    return code, out.getvalue(), err.getvalue()


# -- the hostile values ---------------------------------------------------------------------
def _nested(rng: random.Random, depth: int) -> str:
    text = "0"
    for _ in range(depth):
        text = f'{{"k": {text}}}' if rng.random() < 0.5 else f"[{text}]"
    return text


def hostile_values(rng: random.Random) -> list[str]:
    values = [
        "nan",
        "NaN",
        "-nan",
        "inf",
        "-inf",
        "Infinity",
        "1e999",
        "-1e999",
        "9" * 5000,
        "1" + "0" * 400,
        "[nan]",
        "{a: .inf}",
        "[1e999, 2]",
        "",
        " ",
        "\x00",
        "a\x00b",
        "\u202eevil",
        "\U0001f600" * 50,
        "\ud800",
        "[" * 100000,
        "[" * 40 + "]" * 40,
        "{" * 3000 + "}" * 3000,
        "+".join(["1"] * 20000),
        "a" * (1024 * 1024),
        "[" + ",".join(["1"] * 30000) + "]",
        "!!python/object/apply:os.system ['echo pwned']",
        "&a [*a]",
        "---\n---",
        "'unclosed",
        "{a: 1, a: 2}",
        "0x10",
        "1_000",
        "true",
        "yes",
        "-1",
        "--",
    ]
    values += [_nested(rng, rng.choice([5, 31, 33, 64, 500, 2000])) for _ in range(8)]
    alphabet = "ab01[]{}:,'\" \t\n\\\x00\u202e\U0001f600\ud800.eE+-"
    values += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(30)]
    return values


def hostile_paths(tmp: Path) -> list[str]:
    return [
        "",
        "\x00",
        "nb\x00.ipynb",
        "a" * 5000 + ".ipynb",
        str(tmp / ("d" * 300) / "nb.ipynb"),
        "/".join(["x"] * 3000) + ".ipynb",
        "\u202enb.ipynb",
        "\U0001f600.ipynb",
        "\ud800.ipynb",
        str(tmp),
        "/dev/null",
        "/etc/shadow",
        "-",
        "nb.ipynb; rm -rf ~",
    ]


IMAGES = [
    "a b",
    'a"b',
    "a'b",
    "$(id)",
    "x;rm -rf /",
    "a\nb",
    "a\x00b",
    "\u202eimg",
    "UPPER/case",
    "a" * 5000,
    "python:" + "1" * 200,
    "python@sha256:zz",
    "",
    ":",
    "/",
    "python:3.11",
    "ghcr.io/org/app:1.2",
    "localhost:5000/a/b@sha256:" + "a" * 64,
]

NUMBERS = ["99999999999", "-1", "0", "nan", "inf", "1e999", "9" * 400, "1.5", "", "\x00", "0x10"]


def cases(files: dict[str, Path], rng: random.Random) -> list[tuple[list[str], str]]:
    """(argv, where it stops) for every hostile input."""
    nb = str(files["nb"])
    out: list[tuple[list[str], str]] = []
    values = hostile_values(rng)
    for value in values:
        name = rng.choice("xfsldb")
        out.append((["run", nb, "-p", name, value], "params"))
    for name in "xfsldb":  # every parameter type gets every value class once
        for value in values[:30]:
            out.append((["run", nb, "-p", name, value], "params"))
    for value in rng.sample(values, 10):
        out.append((["batch", nb, "--grid", str(files["grid"]), "-p", "f", value], "open"))
        out.append((["tune", nb, "--space", str(files["space"]), "-p", "x", value], "open"))
        out.append((["compile", nb, "-o", str(files["dir"] / "o.yaml"), "-p", "x", value], ""))
        out.append((["train", nb, "--step", "a", "-p", "x", value], "params"))
    out += [(["run", nb, "-p", "x", "1", "-p", "x", "2"], "params")]
    out += [(["run", nb, "-p", value, "1"], "params") for value in values[:25]]
    for key in [k for k in files if k.endswith("") and files[k].suffix == ".yaml"]:
        out.append((["run", nb, "-f", str(files[key])], "params"))
        out.append((["tune", nb, "--space", str(files["space"]), "-f", str(files[key])], "open"))
        out.append((["batch", nb, "--grid", str(files[key])], "open"))
        out.append((["tune", nb, "--space", str(files[key]), "--objective", "m"], "open"))
    for path in hostile_paths(files["dir"]):
        for command in (
            ["describe", path],
            ["describe", path, "--json"],
            ["compile", path, "-o", str(files["dir"] / "o.yaml")],
            ["compile", nb, "-o", path],
            ["run", path],
            ["run", nb, "-f", path],
            ["batch", nb, "--grid", path],
            ["batch", nb, "--sets", path],
            ["tune", nb, "--space", path],
            ["show", path],
            ["logs", path],
            ["cancel", path],
            ["materialize", path, "-o", str(files["dir"] / "m")],
        ):
            out.append((command, "params"))
    for image in IMAGES:
        out.append((["compile", nb, "-o", str(files["dir"] / "o.yaml"), "--image", image], ""))
        out.append((["run", nb, "--backend", "kfp", "--image", image], "params"))
        out.append((["run", nb, "--backend", "kfp", "-O", f"image={image}"], "params"))
        out.append((["tune", nb, "--backend", "katib", "--dry-run", "--image", image], "open"))
    for number in NUMBERS:
        out.append((["run", nb, "--max-parallel", number], "params"))
        out.append((["run", nb, "-O", f"max_parallel={number}"], "params"))
        out.append((["run", nb, "-O", f"pool_size={number}"], "params"))
        out.append((["run", nb, "-O", f"cpus={number}"], "params"))
        out.append((["tune", nb, "--space", str(files["space"]), "--trials", number], "open"))
        out.append((["tune", nb, "--space", str(files["space"]), "--parallel", number], "open"))
        out.append((["batch", nb, "--grid", str(files["grid"]), "--max-parallel", number], "open"))
        out.append((["train", nb, "--step", "a", "--gpus", number], "params"))
        out.append((["runs", "--limit", number], ""))
    out += [(["run", nb, "-O", item], "params") for item in ["=", "x", "=1", "\x00=1", "a" * 5000]]
    return out


def _notebooks_with_hostile_tags(tmp: Path) -> list[Path]:
    notebooks = []
    for i, tags in enumerate(
        [
            ["step:a", "retries:99999999999"],
            ["step:a", "retries:-1"],
            ["step:a", "timeout:99999999999h"],
            ["step:a", "timeout:nan"],
            ["step:a", "limit:gpu:99999999999"],
            ["step:a", "limit:cpu:1e999"],
            ["step:a", "limit:memory:99999999Ei"],
            ["step:a", 'image:a"b'],
            ["step:a", "image:" + "a" * 5000],
            ["step:a", "image:a\x00b"],
            ["step:a", "label:" + "k" * 5000 + ":v"],
            ["step:" + "s" * 5000],
            ["step:\u202eevil"],
            ["step:a", "env:" + "E" * 5000 + ":1"],
        ]
    ):
        notebooks.append(
            _notebook(tmp / f"tags{i}.ipynb", [(["pipeline-parameters"], "x = 1"), (tags, "y = x")])
        )
    for i, header in enumerate(
        [
            "%%step a --retries 99999999999",
            "%%step a --image 'a b'",
            "%%step a --gpus 99999999999",
            "%%step a --timeout 1e999",
            "%%step a --image " + "a" * 5000,
            "%%step a --memory 0",
            '%%step a --image "x;rm -rf /"',
        ]
    ):
        notebooks.append(
            _notebook(
                tmp / f"magic{i}.ipynb",
                [(["pipeline-parameters"], "x = 1"), ([], header + "\ny = x")],
            )
        )
    for i, params in enumerate(
        [
            "x = " + "+".join(["1"] * 20000),
            "x = " + "+".join(["1"] * 500),
            "x = " + "[" * 5000 + "]" * 5000,
            "x = " + "[" * 40 + "]" * 40,
            "x = '" + "a" * (2 * 1024 * 1024) + "'",
            "x = float('nan')",
            "x = 1e999",
            "x = " + "(" * 300 + "1" + ")" * 300,
            "x = -" * 5000 + "1",
            "x = not " * 5000 + "True",
        ]
    ):
        notebooks.append(
            _notebook(
                tmp / f"params{i}.ipynb",
                [(["pipeline-parameters"], params), (["step:a"], "y = x")],
            )
        )
    for i, meta in enumerate(
        [
            {"kfnb": {"image": "a b"}},
            {"kfnb": {"image": "a" * 5000}},
            {"kubeflow_notebook": {"docker_image": "$(id)"}},
            {"kfnb": {"steps_defaults": ["retries:99999999999"]}},
            {"kfnb": {"steps_defaults": ["image:x;y"]}},
            {"kfnb": {"image": ["a"]}},
        ]
    ):
        notebooks.append(
            _notebook(
                tmp / f"meta{i}.ipynb",
                [(["pipeline-parameters"], "x = 1"), (["step:a"], "y = x")],
                **meta,
            )
        )
    return notebooks


def _check(argv: list[str], code: int, out: str, err: str, failures: list[str]) -> bool:
    shown = repr([a[:40] for a in argv])[:200]
    if code not in (0, 1, 2):
        failures.append(f"{shown}: exit status {code}")
    if "Traceback" in err or "Traceback" in out:
        last = (err or out).strip().splitlines()[-1][:300]
        failures.append(f"{shown}: a traceback: {last}")
    if code in (1, 2) and err:
        message = err.strip().splitlines()[-1] if err.strip() else ""
        if len(message) > MAX_ERROR_CHARS:
            failures.append(f"{shown}: an error of {len(message)} chars: {message[:200]}...")
    return code in (1, 2)


def test_cli_fuzz_in_process(
    tmp_path: Path, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(SEED)
    failures: list[str] = []
    total = refused = accepted = 0
    all_cases = cases(files, rng)
    tag_notebooks = _notebooks_with_hostile_tags(tmp_path)
    for path in tag_notebooks:
        all_cases += [
            (["describe", str(path)], ""),
            (["compile", str(path), "-o", str(tmp_path / "o.yaml")], ""),
            (["run", str(path)], "params"),
        ]
    with stop_before_running(monkeypatch):
        for argv, stop in all_cases:
            code, out, err = call(argv, stop)
            total += 1
            if _check(argv, code, out, err, failures):
                accepted += err.strip().endswith("kfnb: error: accepted")
                refused += not err.strip().endswith("kfnb: error: accepted")
        # every hostile notebook is refused, with a one-line reason
        for path in tag_notebooks:
            code, _, err = call(["describe", str(path)])
            if code != 2 or "kfnb: error:" not in err:
                failures.append(f"describe {path.name} was accepted: {err[-300:]!r}")
    print(
        f"cli fuzz: {total} inputs, {refused} refused, {accepted} accepted (stopped before "
        f"running), {len(failures)} failures, 0 tracebacks"
        if not failures
        else f"cli fuzz: {total} inputs, {len(failures)} failures"
    )
    assert not failures, "\n".join(failures[:60])


def test_cli_fuzz_show_truncates_long_params(
    kfnb_home: Path, store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run recorded with a huge value (before the limit existed) is shown cut short."""
    run = store.create_run(
        kind="pipeline",
        name="big",
        backend="local",
        notebook=None,
        notebook_hash=None,
        params={"s": "a" * (10 * 1024 * 1024), "l": list(range(100000)), "u": "\u202e\x00"},
    )
    assert main(["show", run.id]) == 0
    out = capsys.readouterr().out
    assert len(out) < 5000
    assert "... (a str of 10485760 chars)" in out and "(a list of 100000 items)" in out


def _subprocess(args: list[str | bytes], tmp: Path) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KFNB_HOME": str(tmp / "home")}
    return subprocess.run(
        [sys.executable, "-m", "kfnb.cli", *args],
        capture_output=True,
        env=env,
        timeout=60,
        cwd=tmp,
    )


def test_cli_fuzz_real_processes(tmp_path: Path, files: dict[str, Path]) -> None:
    """Real invocations: argv bytes that are no UTF-8, a file of such bytes, a terminal's
    encoding; the exit status and stderr as a shell sees them."""
    nb = str(files["nb"])
    out = str(tmp_path / "o.yaml")
    runs = [
        ["describe", b"\xff\xfe.ipynb"],
        ["compile", nb, "-o", out, "--image", b"img\xff"],
        ["run", nb, "-p", "s", b"\xff" * 10, "-p", "x", "nan"],
        ["run", nb, "-f", str(files["bad_utf8"])],
        ["run", nb, "-f", str(files["shadow"])],
        ["run", nb, "-p", "x", "1", "-p", "x", "2"],
        ["run", nb, "-p", "l", "[" * 100000],
        ["describe", "a" * 5000],
    ]
    secret = b"$6$salt$hash"
    for args in runs:
        done = _subprocess(args, tmp_path)
        assert done.returncode in (1, 2), (args, done.returncode, done.stderr[-2000:])
        assert b"Traceback" not in done.stderr, (args, done.stderr[-3000:])
        assert secret not in done.stderr
        assert len(done.stderr.strip().splitlines()[-1]) <= MAX_ERROR_CHARS
    # a file name that is a shell command stays one word in the printed hint
    evil = tmp_path / "x;touch pwned.ipynb"
    evil.write_bytes(files["nb"].read_bytes())
    done = _subprocess(["compile", str(evil), "-o", out], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    hint = next(line for line in done.stdout.decode().splitlines() if "submit it" in line)
    assert f"'{evil}'" in hint
    print(f"cli fuzz: {len(runs) + 1} real processes, 0 tracebacks")


def test_cli_in_a_deleted_folder(tmp_path: Path, files: dict[str, Path]) -> None:
    """A shell left in a folder that was deleted: `kfnb run` of a notebook elsewhere says so in
    one line (it was a FileNotFoundError traceback from every kernel that tried to start)."""
    gone = tmp_path / "gone"
    gone.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KFNB_HOME": str(tmp_path / "home")}
    script = (
        "import os, sys, runpy; os.chdir(sys.argv[1]); os.rmdir(sys.argv[1]); "
        "sys.argv = ['kfnb', *sys.argv[2:]]; runpy.run_module('kfnb.cli', run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(gone), "run", str(files["nb"])],
        capture_output=True,
        env=env,
        timeout=60,
        cwd=tmp_path,
    )
    err = done.stderr.decode()
    assert done.returncode == 2, err[-2000:]
    assert "Traceback" not in err and "did not start" not in err, err[-2000:]
    assert err.strip().splitlines() == [
        "kfnb: error: the current folder cannot be used (No such file or directory): it was "
        "deleted or moved away, or cannot be read. Fix: cd to a folder that exists and run again"
    ]
