"""The window grid: one pure home for time <-> window index, ranges and run cuts."""

from __future__ import annotations

import math

import pytest

from heron.errors import TimeRangeError
from heron.pipeline.windows import WindowGrid, check_time_range

GRID = WindowGrid(fps=1.0, frames=4)  # 4-s windows


def test_index_and_start_round_trip():
    assert GRID.window_s == 4.0
    assert [GRID.index_at(t) for t in (0.0, 3.99, 4.0, 4.5, 8.0)] == [0, 0, 1, 1, 2]
    assert [GRID.start_of(i) for i in range(3)] == [0.0, 4.0, 8.0]
    assert GRID.first(None) == 0 and GRID.first(4.5) == 1


def test_align_widens_to_whole_windows():
    assert GRID.align(4.5, 7.0) == (4.0, 8.0)
    assert GRID.align(None, None) == (None, None)
    assert GRID.align(4.0, 8.0) == (4.0, 8.0)  # already on the grid: unchanged


def test_indices_of_a_request():
    assert GRID.indices(None, None, 10.0) == range(0, 3)
    assert GRID.indices(4.5, 7.0, 10.0) == range(1, 2)
    assert GRID.indices(None, 6.0, None) == range(0, 2)  # the end alone bounds it
    assert GRID.indices(None, None, None) is None  # unbounded: unknown
    assert GRID.indices(12.0, None, 10.0) == range(3, 4)  # past the end still names its first window
    assert GRID.count(0.0, 7.0, 100.0) == 2


def test_float_rounding_does_not_add_a_window():
    """fps 12.5 with 8-frame windows: 4.48 s / 0.64 s = 7.000000000000001 is where window 7 starts."""
    grid = WindowGrid(fps=12.5, frames=8)
    assert 4.48 / grid.window_s > 7
    assert grid.indices(None, 4.48, 60.0) == range(0, 7)
    assert grid.align(None, 4.48)[1] == pytest.approx(4.48)
    assert grid.index_at(grid.start_of(7)) == 7


def test_runs_cut_on_the_grid():
    assert GRID.runs(None, None, 10.0, 3) == [(None, 4.0), (4.0, 8.0), (8.0, None)]
    assert GRID.runs(4.5, None, 10.0, 3) == [(4.5, 8.0), (8.0, None)]  # 2 windows, 2 runs
    assert GRID.runs(0.0, 7.0, 10.0, 3) == [(0.0, 4.0), (4.0, 7.0)]
    assert GRID.runs(None, None, None, 3) == [(None, None)]  # unknown length: one run
    assert GRID.runs(None, None, 10.0, 1) == [(None, None)]
    cuts = GRID.runs(None, None, 400.0, 7)
    assert len(cuts) == 7 and cuts[0][0] is None and cuts[-1][1] is None
    assert all(a[1] == b[0] and b[0] % 4.0 == 0 for a, b in zip(cuts, cuts[1:]))


@pytest.mark.parametrize("start, end", [(-1, None), (None, -0.5), (5, 5), (9, 3), (math.nan, None), (None, math.inf)])
def test_bad_time_ranges_are_typed_errors(start, end):
    with pytest.raises(TimeRangeError):
        check_time_range(start, end)


def test_good_time_ranges_come_back_as_floats():
    assert check_time_range(1, 3) == (1.0, 3.0) and check_time_range(None, None) == (None, None)
