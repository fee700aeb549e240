"""The kernel pool and its fork server: fresh kernels, no shared state, nothing left behind."""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from jupyter_core.utils import run_sync
from procs import alive, processes_of, wait_for

import kfnb
from kfnb.kernels import KernelPool, PoolConfig, WarmKernel
from kfnb.tracking import Store

Write = Callable[..., Path]


def ask(
    kernel: WarmKernel,
    expression: str,
    *,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> Any:
    """Evaluate ``expression`` in ``kernel`` (assigning no user variable); its JSON value."""
    kc = kernel.connect(cwd=cwd or os.getcwd(), env=env or {})
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    try:
        reply = run_sync(kc.execute_interactive)(
            f"print(__import__('json').dumps({expression}))", output_hook=hook, timeout=30
        )
    finally:
        kc.stop_channels()
    assert reply["content"]["status"] == "ok", "".join(out)
    return json.loads("".join(out))


@pytest.fixture
def make_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., KernelPool]]:
    """``make_pool(size=2, ...)``: a started pool of the test's own, shut down afterwards."""
    monkeypatch.delenv("KFNB_FORK_SERVER", raising=False)  # the config decides
    pools: list[KernelPool] = []

    def make(**config: Any) -> KernelPool:
        pool = KernelPool(PoolConfig(**config)).start()
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.shutdown()


def fill(pool: KernelPool, ready: int) -> None:
    wait_for(
        lambda: pool.stats()["ready"] >= ready and pool.stats()["starting"] == 0,
        f"{ready} ready kernels",
    )


def test_every_step_runs_in_a_fresh_kernel(write_notebook: Write, store: Store) -> None:
    path = write_notebook(
        "fresh",
        (
            "step:a",
            "import builtins, os\nbuiltins.leaked = 1\nglobals()['hidden'] = 2\n"
            "x = 1\npid_a = os.getpid()",
        ),
        (
            "step:b",
            "import builtins, os\nb_leaked = hasattr(builtins, 'leaked')\n"
            "b_hidden = 'hidden' in globals()\nx_in_b = x\npid_b = os.getpid()",
        ),
        (
            "step:c",
            "import builtins, os\nupstream = (pid_a, pid_b, b_leaked, b_hidden, x_in_b)\n"
            "c_leaked = hasattr(builtins, 'leaked')\npid_c = os.getpid()",
        ),
        ("pipeline-metrics", "print(pid_c)\nprint(c_leaked)"),  # so that c saves them
    )
    run = kfnb.run(path, store=store, pool_size=0)
    assert run.status == "SUCCEEDED", run.record.to_dict()
    a, b, c = run.outputs("a"), run.outputs("b"), run.outputs("c")
    assert b["x_in_b"] == 1  # what the analyzer sees flowing arrives
    assert (b["b_leaked"], b["b_hidden"], c["c_leaked"]) == (False, False, False)  # nothing else
    assert "hidden" not in a and "leaked" not in a
    assert len({a["pid_a"], b["pid_b"], c["pid_c"], os.getpid()}) == 4


def test_forked_kernels_do_not_share_random_state(make_pool: Callable[..., KernelPool]) -> None:
    # numpy imports numpy.random lazily: preload it, so that its global generator's state is
    # in the fork server and copied into every kernel forked from it
    pool = make_pool(size=2, preload=("numpy", "numpy.random"), fork_server=True)
    fill(pool, 2)
    assert pool.stats()["fork_server"]
    first, second = pool.acquire(), pool.acquire()
    draws = []
    for kernel in (first, second):
        assert psutil.Process(kernel.pid).ppid() in pool.pids()  # forked by the server
        inherited, np_value, py_value = ask(
            kernel,
            "['numpy.random' in __import__('sys').modules, "
            "__import__('numpy').random.rand(), __import__('random').random()]",
        )
        assert inherited  # imported before the fork, not by this kernel
        draws.append((np_value, py_value))
        pool.discard(kernel)
    assert draws[0][0] != draws[1][0]
    assert draws[0][1] != draws[1][1]


@pytest.mark.parametrize("fork_server", [True, False], ids=["forked", "spawned"])
def test_a_kernel_starts_empty_with_the_given_cwd_and_env(
    make_pool: Callable[..., KernelPool], tmp_path: Path, fork_server: bool
) -> None:
    pool = make_pool(size=1, fork_server=fork_server)
    kernel = pool.acquire()
    assert pool.stats()["fork_server"] is fork_server
    work = tmp_path / "work"
    work.mkdir()
    token = uuid.uuid4().hex
    got = ask(
        kernel,
        "{'who': get_ipython().run_line_magic('who_ls', ''), "
        "'cwd': __import__('os').getcwd(), "
        "'env': __import__('os').environ.get('KFNB_TEST_VALUE'), "
        "'path': __import__('sys').path}",
        cwd=str(work),
        env={"KFNB_TEST_VALUE": token},
    )
    pool.discard(kernel)
    assert got["who"] == []  # no user variable, not even kfnb's set-up's
    assert Path(got["cwd"]) == work
    assert got["env"] == token
    assert str(work) in got["path"]  # the step's folder imports like the notebook's


OWNER = """
import json, sys, time
import kfnb
pool = kfnb.warm(2)
deadline = time.monotonic() + 120
while pool.stats()["ready"] < 2:
    assert time.monotonic() < deadline, pool.stats()
    time.sleep(0.05)
print(json.dumps({"pids": pool.pids(), "fork_server": pool.stats()["fork_server"]}), flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("fork_server", [True, False], ids=["forked", "spawned"])
def test_no_kernel_outlives_the_pools_owner(tmp_path: Path, fork_server: bool) -> None:
    mark = uuid.uuid4().hex
    env = {**os.environ, "KFNB_TEST_MARK": mark}
    env.pop("KFNB_FORK_SERVER", None)
    if not fork_server:
        env["KFNB_FORK_SERVER"] = "0"
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER],
        env=env,
        cwd=tmp_path,
        text=True,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert owner.stdout is not None
        readable, _, _ = select.select([owner.stdout], [], [], 120)
        assert readable, "the pool never filled"
        line = owner.stdout.readline()
        assert line, f"the owner exited with {owner.wait()}"
        report = json.loads(line)
        assert report["fork_server"] is fork_server
        pids = report["pids"]
        assert len(pids) == (3 if fork_server else 2)  # two kernels (and the fork server)
        assert all(alive(p) for p in pids)
        assert set(processes_of(mark)) >= set(pids)
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        wait_for(lambda: not any(alive(p) for p in pids), "the kernels to die with their owner", 20)
        wait_for(lambda: not processes_of(mark), "every process of the owner to end", 5)
    finally:
        owner.kill()
        owner.wait()
        for pid in processes_of(mark):  # on failure: leave nothing behind
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("fork_server", [True, False], ids=["forked", "spawned"])
def test_shutdown_kills_ready_and_used_kernels_and_the_server(
    make_pool: Callable[..., KernelPool], fork_server: bool
) -> None:
    pool = make_pool(size=1, fork_server=fork_server)
    used = pool.acquire()
    kc = used.connect(cwd=os.getcwd(), env={})  # in use: a step's client is connected
    fill(pool, 1)
    pids = pool.pids()
    assert used.pid in pids
    assert len(pids) == (3 if fork_server else 2)
    assert all(alive(p) for p in pids)
    try:
        pool.shutdown()
    finally:
        kc.stop_channels()
    assert [p for p in pids if alive(p)] == []
    assert not used.alive()
    assert pool.closed
    with pytest.raises(RuntimeError, match="shut down"):
        pool.acquire(timeout=1)


def test_an_idle_pool_uses_no_cpu(make_pool: Callable[..., KernelPool]) -> None:
    pool = make_pool(size=2, fork_server=True)
    fill(pool, 2)
    processes = [psutil.Process(p) for p in pool.pids()]
    assert len(processes) == 3  # the fork server and its two kernels

    def cpu() -> float:
        return sum(p.cpu_times().user + p.cpu_times().system for p in processes)

    before = cpu()
    time.sleep(2)
    used = cpu() - before
    assert used < 0.2, f"an idle pool used {used:.2f} s of CPU in 2 s"
    assert pool.stats()["ready"] == 2 and pool.stats()["started"] == 2  # nothing restarted


def ask_a_forked_kernel(make_pool: Callable[..., KernelPool], expression: str) -> Any:
    """``expression``'s value in a fresh kernel of a pool that forks them."""
    pool = make_pool(size=1, fork_server=True)
    kernel = pool.acquire()
    assert pool.stats()["fork_server"]
    try:
        return ask(kernel, expression)
    finally:
        pool.discard(kernel)


@pytest.mark.skipif(importlib.util.find_spec("debugpy") is None, reason="debugpy is not installed")
def test_forked_kernels_skip_the_debugger_but_steps_may_import_debugpy(
    make_pool: Callable[..., KernelPool],
) -> None:
    got = ask_a_forked_kernel(
        make_pool, "['debugpy' in __import__('sys').modules, __import__('debugpy').__name__]"
    )
    assert got == [False, "debugpy"]  # ipykernel did not load it; a step still can


def test_forked_kernels_have_the_serializers_loaded_by_the_server(
    make_pool: Callable[..., KernelPool],
) -> None:
    """Reading the installed packages' entry points (~18 ms) is done once, in the fork server,
    not by every step at its first value saved or loaded."""
    got = ask_a_forked_kernel(
        make_pool,
        "[not __import__('kfnb.marshal').marshal.registry.default_registry._autoload, "
        "__import__('IPython').get_ipython().history_manager.hist_file]",
    )
    assert got == [True, ":memory:"]  # loaded ahead; the kernel's own command line still read


@pytest.mark.parametrize("fork_server", [True, False], ids=["forked", "spawned"])
def test_forked_kernels_start_all_at_once_spawned_ones_a_core_each(
    make_pool: Callable[..., KernelPool], fork_server: bool
) -> None:
    pool = make_pool(size=0, fork_server=fork_server)
    pool.want(8)  # a run of 8 parallel steps
    starting = pool.stats()["starting"]  # a kernel takes >0.1 s: none is ready yet
    assert starting == (8 if fork_server else min(8, max(2, os.cpu_count() or 2)))
    fill(pool, 8)


@pytest.mark.skipif(
    importlib.util.find_spec("rfc3987_syntax") is None, reason="rfc3987_syntax is not installed"
)
def test_forked_kernels_keep_every_optional_import(
    make_pool: Callable[..., KernelPool], monkeypatch: pytest.MonkeyPatch
) -> None:
    # kfnb's own processes (the CLI) skip jsonschema's slow optional rfc3987_syntax import; the
    # kernels of their pool must not inherit that.
    monkeypatch.setitem(sys.modules, "rfc3987_syntax", None)  # as the CLI's process has it
    got = ask_a_forked_kernel(
        make_pool,
        "[__import__('jsonschema') is not None, "
        "__import__('sys').modules.get('rfc3987_syntax') is not None]",
    )
    assert got == [True, True]


def test_a_shut_down_pool_leaves_no_file_descriptors() -> None:
    """Pools come and go in a long-lived process (settings change, tests): each one's event
    loop, zmq contexts and pipes are released with it."""

    def a_pool_used_and_shut_down() -> int:
        pool = KernelPool(PoolConfig(size=1)).start()
        pool.discard(pool.acquire())
        assert pool.wait_idle(timeout=30)
        pool.acquire()  # one in use and one starting at shutdown
        pool.shutdown()
        gc.collect()  # a start cut short leaves objects in reference cycles: collectable
        return len(os.listdir("/proc/self/fd"))

    first = a_pool_used_and_shut_down()
    for _ in range(3):
        last = a_pool_used_and_shut_down()
    assert last - first <= 2, f"{last - first} file descriptors more after 3 pools"


def test_a_client_closed_as_soon_as_it_opened_leaves_its_kernels_context_usable(
    make_pool: Callable[..., KernelPool], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool's handshake client is closed a few milliseconds after it opened; on a busy
    machine that is before a heartbeat thread would have started, and jupyter_client's then
    spins on its kernel manager's zmq context until "Too many open files" (one cycle in five
    here), which the step's client, sharing that context, met next. kfnb's clients have no
    heartbeat thread."""
    from kfnb.kernels.kernel import open_client

    errors: list[BaseException | None] = []
    monkeypatch.setattr("threading.excepthook", lambda args: errors.append(args.exc_value))
    pool = make_pool(size=1)
    kernel = pool.acquire()
    for _ in range(100):
        open_client(kernel.km).stop_channels()
    client = kernel.connect(cwd=os.getcwd(), env={})
    client.stop_channels()
    pool.discard(kernel)
    assert errors == []


def test_a_cause_that_stops_every_start_is_said_once(
    make_pool: Callable[..., KernelPool], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING", logger="kfnb.kernels")
    pool = make_pool(size=0, kernel_name="no-such-kernel-kfnb")
    pool.want(4)
    with pytest.raises(Exception, match="no-such-kernel-kfnb"):
        pool.acquire(timeout=30)
    wait_for(lambda: pool.stats()["starting"] == 0, "the failed starts to end")
    said = [r.getMessage() for r in caplog.records if "did not start" in r.getMessage()]
    assert len(said) == 1, said
    assert "no-such-kernel-kfnb" in said[0]
