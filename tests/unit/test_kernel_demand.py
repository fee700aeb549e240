"""A run asks its kernel pool for the kernels of the steps that can start now, and for the rest
once those steps have taken theirs (kfnb.backends.local.demand)."""

from __future__ import annotations

from kfnb.backends.local.demand import KernelDemand


class Pool:
    def __init__(self) -> None:
        self.asked: list[int] = []

    def want(self, n: int) -> None:
        self.asked.append(n)

    @property
    def demand(self) -> int:
        return sum(self.asked)


def test_a_fan_out_asks_for_the_join_once_its_branches_have_kernels() -> None:
    pool = Pool()
    demand = KernelDemand(pool, pending=9, now=8)  # 8 branches, then a join
    assert pool.asked == [8]
    for _ in range(8):
        demand.launched()
    for _ in range(7):
        demand.took()
    assert pool.asked == [8]  # the join's kernel would share the CPU with the branches' start
    demand.took()
    assert pool.asked == [8, 1]
    demand.launched()  # the join starts: its acquire takes the kernel asked for
    demand.took()
    demand.release()
    assert pool.demand == 9 and pool.asked == [8, 1]  # nothing left over


def test_a_step_that_starts_before_its_kernel_was_asked_for_is_not_asked_for_twice() -> None:
    pool = Pool()
    demand = KernelDemand(pool, pending=4, now=2)
    demand.launched()
    demand.launched()
    demand.took()  # the first step ended at once: its successor starts before the second took
    demand.launched()  # (it acquires on demand)
    demand.took()
    demand.took()  # the first two have taken theirs: the one step left is asked for
    assert pool.asked == [2, 1]
    demand.release()
    assert pool.asked == [2, 1, -1]  # it never started: given back


def test_a_run_that_ends_early_gives_back_what_it_asked_and_asks_no_more() -> None:
    pool = Pool()
    demand = KernelDemand(pool, pending=5, now=3)
    demand.launched()
    demand.release()  # cancelled: two kernels asked for and never taken
    assert pool.asked == [3, -2]
    demand.took()  # the step that was running takes its kernel late
    demand.took()
    demand.took()
    assert pool.asked == [3, -2]


def test_nothing_ready_now_asks_for_every_step() -> None:
    pool = Pool()
    KernelDemand(pool, pending=3, now=0)
    assert pool.asked == [3]
    KernelDemand(pool, pending=0, now=0)
    assert pool.asked == [3]
