"""The machine-wide GPU lease (``kfnb.gpus``): lock files in KFNB_HOME, shared by every process
and thread, freed when the holder dies; and the local pool taking its GPUs from it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from kfnb.backends.local.resources import Pool
from kfnb.dag import Step
from kfnb.gpus import GpuLease


def gpu_step(name: str, gpus: int = 1) -> Step:
    return Step(name, resources={"nvidia.com/gpu": str(gpus)})


def test_takes_all_or_nothing_and_says_who_holds(tmp_path: Path) -> None:
    lease = GpuLease(tmp_path / "gpus")
    first = lease.take(["0", "1", "2"], 2, "run A step train")
    assert first is not None and first.gpus == ["0", "1"]
    # two asked, one free: nothing is taken, so nothing blocks others
    assert lease.take(["0", "1", "2"], 2, "run B") is None
    holders = lease.holders(["0", "1", "2"])
    assert set(holders) == {"0", "1"}
    assert holders["0"] == f"run A step train (pid {os.getpid()})"
    third = lease.take(["0", "1", "2"], 1, "run C")
    assert third is not None and third.gpus == ["2"]
    first.release()
    assert lease.holders(["0", "1", "2"]) == {"2": f"run C (pid {os.getpid()})"}
    again = lease.take(["0", "1", "2"], 2, "run B")
    assert again is not None and again.gpus == ["0", "1"]
    again.release()
    third.release()
    assert lease.holders(["0", "1", "2"]) == {}


def test_two_leases_on_one_folder_exclude_each_other(tmp_path: Path) -> None:
    """Two runs in one process (a Jupyter server's) each open the folder on their own."""
    a, b = GpuLease(tmp_path), GpuLease(tmp_path)
    held = a.take(["0"], 1, "a")
    assert held is not None
    assert b.take(["0"], 1, "b") is None
    held.release()
    assert b.take(["0"], 1, "b") is not None


def test_odd_gpu_ids_make_safe_file_names(tmp_path: Path) -> None:
    lease = GpuLease(tmp_path)
    mig = "MIG-GPU-5c89/1/0"
    held = lease.take([mig], 1, "x")
    assert held is not None and held.gpus == [mig]
    assert [p.name for p in tmp_path.iterdir()] == ["gpu-MIG-GPU-5c89_1_0.lock"]
    assert lease.holders([mig]) == {mig: f"x (pid {os.getpid()})"}


def test_a_holder_killed_by_sigkill_frees_its_gpus(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from kfnb.gpus import GpuLease
                held = GpuLease({str(tmp_path)!r}).take(["0", "1"], 2, "job J")
                print("held" if held else "refused", flush=True)
                time.sleep(120)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        lease = GpuLease(tmp_path)
        assert lease.take(["0", "1"], 1, "me") is None
        assert lease.holders(["0"]) == {"0": f"job J (pid {holder.pid})"}
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        held = lease.take(["0", "1"], 2, "me")
        assert held is not None and held.gpus == ["0", "1"]
    finally:
        holder.kill()
        holder.wait()


def test_the_pool_takes_its_gpus_from_the_machine_lease(tmp_path: Path) -> None:
    """Two pools (two processes' runs) over one fake GPU: one step at a time holds it; the
    other waits and can say for whom."""
    mine = Pool(max_parallel=4, cpus=4, memory=2**33, gpus=["0"], lease=GpuLease(tmp_path))
    theirs = Pool(max_parallel=4, cpus=4, memory=2**33, gpus=["0"], lease=GpuLease(tmp_path))
    grant = theirs.acquire(gpu_step("train"), "run R1 step train")
    assert grant is not None and grant.gpus == ["0"]
    assert mine.acquire(gpu_step("fit"), "run R2 step fit") is None
    assert mine.gpu_wait("fit") == f"GPU 0 is held by run R1 step train (pid {os.getpid()})"
    # a step without GPUs is not held back by the lease
    assert mine.acquire(Step("prep")) is not None
    theirs.release(grant)
    again = mine.acquire(gpu_step("fit"), "run R2 step fit")
    assert again is not None and again.gpus == ["0"]
    assert mine.gpu_wait("fit") is None
    assert theirs.acquire(gpu_step("train"), "run R1 step train") is None
    mine.release(again)
