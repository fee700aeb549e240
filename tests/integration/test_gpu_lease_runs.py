"""Two `kfnb run` processes over one (fake) GPU: their GPU steps never hold it at once; the one
that waits says whom it waits for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from kfnb.tracking import Store

KFNB = str(Path(sys.executable).with_name("kfnb"))


def test_runs_of_two_processes_never_share_a_gpu(
    write_notebook: Callable[..., Path], store: Store, tmp_path: Path
) -> None:
    record = tmp_path / "gpu-use.jsonl"
    code = (
        "import json, os, time\n"
        "start = time.time()\n"
        "time.sleep(3)\n"
        f"with open({str(record)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'gpus': os.environ.get('CUDA_VISIBLE_DEVICES'),"
        " 'start': start, 'end': time.time()}) + '\\n')\n"
    )
    paths = [
        write_notebook(name, (["step:train", "limit:nvidia.com/gpu:1"], code))
        for name in ("first", "second")
    ]
    env = {**os.environ, "KFNB_GPUS": "0"}
    runs = [
        subprocess.Popen(
            [KFNB, "run", str(path), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for path in paths
    ]
    outcomes = [run.communicate(timeout=240) for run in runs]
    for run, (out, err) in zip(runs, outcomes, strict=True):
        assert run.returncode == 0, err
        assert json.loads(out)["status"] == "SUCCEEDED"

    uses = sorted(
        (json.loads(line) for line in record.read_text().splitlines()), key=lambda u: u["start"]
    )
    assert [u["gpus"] for u in uses] == ["0", "0"]
    assert uses[0]["end"] <= uses[1]["start"], uses  # one after the other, never together

    warnings = [
        e.data["message"]
        for r in store.list_runs()
        for e in store.events(r.id)
        if e.kind == "warning"
    ]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("waiting for GPUs: GPU 0 is held by run "), warnings
    assert " step train (pid " in warnings[0]
