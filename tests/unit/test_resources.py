"""The local pool: quantities, GPU detection and slot accounting (no kernels)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kfnb.backends import BackendError, open_backend
from kfnb.backends.local.resources import Pool, Request, detect_gpus, quantity
from kfnb.dag import Step
from kfnb.settings import Settings


@pytest.mark.parametrize(
    ("text", "value"),
    [("2", 2), ("500m", 0.5), ("4Gi", 4 * 2**30), ("1G", 1e9), ("1.5", 1.5), ("256Mi", 2**28)],
)
def test_quantity(text: str, value: float) -> None:
    assert quantity(text) == value


def step(name: str, **res: str) -> Step:
    names = {"gpu": "nvidia.com/gpu"}
    return Step(name, resources={names.get(k, k): v for k, v in res.items()})


def pool(**kw: object) -> Pool:
    args: dict = {"max_parallel": 4, "cpus": 4.0, "memory": 8 * 2**30, "gpus": ["0", "1", "2"]}
    args.update(kw)
    return Pool(**args)


def test_gpu_assignment_uses_distinct_ids_and_returns_them() -> None:
    p = pool()
    a = p.acquire(step("a", gpu="2"))
    assert a is not None and a.gpus == ["0", "1"]
    assert p.acquire(step("b", gpu="2")) is None  # only one GPU left
    c = p.acquire(step("c", gpu="1"))
    assert c is not None and c.gpus == ["2"]
    p.release(a)
    b = p.acquire(step("b", gpu="2"))
    assert b is not None and b.gpus == ["0", "1"]


def test_slots_cpu_and_memory() -> None:
    p = pool(max_parallel=2)
    assert p.acquire(step("a")) and p.acquire(step("b"))
    assert p.acquire(step("c")) is None
    q = pool()
    big = q.acquire(step("a", cpu="3", memory="6Gi"))
    assert big is not None
    assert q.acquire(step("b", cpu="2")) is None
    assert q.acquire(step("b", memory="4Gi")) is None
    assert q.acquire(step("b", cpu="500m", memory="1Gi")) is not None
    q.release(big)
    assert q.acquire(step("d", cpu="3")) is not None


@pytest.mark.parametrize(
    ("res", "message"),
    [
        ({"gpu": "4"}, "asks for 4 GPUs, but this machine has 3 (GPU ids: 0, 1, 2)"),
        ({"cpu": "8"}, "asks for 8 CPUs, but this machine has 4"),
        ({"memory": "16Gi"}, "asks for 16.0 GiB of memory, but this machine has 8.0 GiB"),
    ],
)
def test_steps_that_can_never_fit_fail_at_submit(res: dict[str, str], message: str) -> None:
    with pytest.raises(BackendError, match=re.escape(message)):
        pool().check(step("big", **res))


def test_no_gpus_message_names_the_fix() -> None:
    with pytest.raises(BackendError, match=r"has 0 .*KFNB_GPUS.*--backend kfp"):
        pool(gpus=[]).check(step("t", gpu="1"))


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"KFNB_GPUS": "3,5"}, ["3", "5"]),
        ({"KFNB_GPUS": ""}, []),
        ({"CUDA_VISIBLE_DEVICES": "1,2"}, ["1", "2"]),
        ({"CUDA_VISIBLE_DEVICES": "-1"}, []),
    ],
)
def test_gpus_from_the_environment(
    tmp_path: Path, env: dict[str, str], expected: list[str]
) -> None:
    settings = Settings.load(env={"KFNB_HOME": str(tmp_path), **env})
    local = open_backend("local", settings)
    assert local.config.pool(settings.env).gpus == expected
    if "KFNB_GPUS" not in env:
        assert detect_gpus(settings.env) == expected


def test_request_of_step() -> None:
    assert Request.of(step("s", cpu="250m", memory="1Gi", gpu="1")) == Request(0.25, 2**30, 1)
