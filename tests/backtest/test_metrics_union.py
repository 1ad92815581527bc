"""backtest.metrics' sortedness shortcuts give what ``np.unique`` gives, sorted input or not."""

from __future__ import annotations

import numpy as np

from backtest.metrics import _days, union_times


def test_union_times_is_np_unique_of_the_concatenation() -> None:
    rng = np.random.default_rng(13)
    for _ in range(300):
        columns = []
        for _ in range(int(rng.integers(1, 4))):
            col = rng.integers(0, 60, int(rng.integers(0, 30)))
            columns.append(np.sort(col) if rng.random() < 0.8 else col)
        got = union_times(columns)
        want = np.unique(np.concatenate(columns))
        assert got.dtype == want.dtype
        assert np.array_equal(got, want)


def test_days_counts_distinct_china_days_sorted_or_not() -> None:
    rng = np.random.default_rng(7)
    hour = 3_600_000
    for _ in range(300):
        times = rng.integers(0, 24 * 20, int(rng.integers(0, 40))) * hour
        if rng.random() < 0.7:
            times = np.sort(times)
        want = np.unique((times + 8 * hour) // 86_400_000).size
        assert _days(times) == want
    assert _days(np.zeros(0, dtype=np.int64)) == 0
