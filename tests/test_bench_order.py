"""The benchmark's order of targets (`bench/run.py` `alternate`): over one cycle of
repetitions each target runs in each position equally often and directly after each other
target equally often, so the machine's drift and what one target leaves behind for the next
(caches, a warm CPU, Restate's state) weigh on every target alike."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest

from bench.run import alternate


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_a_cycle_of_orders_balances_positions_and_predecessors(n: int) -> None:
    targets = [f"t{i}" for i in range(n)]
    cycle = n if n % 2 == 0 else 2 * n
    orders = [alternate(targets, rep) for rep in range(cycle)]
    assert all(sorted(order) == targets for order in orders), orders
    # Each target in each position `cycle / n` times.
    positions = Counter((position, t) for order in orders for position, t in enumerate(order))
    assert positions == {(p, t): cycle // n for p in range(n) for t in targets}, orders
    # Each ordered pair (a directly before b, a != b) `cycle / n` times: n - 1 pairs a row.
    pairs = Counter(pair for order in orders for pair in pairwise(order))
    assert pairs == {(a, b): cycle // n for a in targets for b in targets if a != b}, orders
    # The next cycle repeats it.
    assert [alternate(targets, cycle + rep) for rep in range(cycle)] == orders
