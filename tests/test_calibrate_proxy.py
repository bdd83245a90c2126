"""benchmarks/calibrate_proxy.py: the pre-registered choice of the proxy SD (PREREGISTERED_PROXY in bench_ranking.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks import calibrate_proxy as cp  # noqa: E402


def _row(task: str, hit: bool, stays: dict[float, float], best: bool = False) -> dict:
    # an SD not given keeps the value of the largest SD given below it
    full = {s: stays[max(g for g in stays if g <= s)] for s in cp.GRID}
    return {"task": task, "seed": 0, "pick_or_tied": hit, "is_best": best, "stays": full}


def test_the_grid_and_bar_are_the_preregistered_ones():
    assert cp.GRID == (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
    assert cp.TOP_BUCKET[0] == 0.9 and cp.MIN_ROWS == 3 and cp.TARGET == 0.85


def test_the_smallest_qualifying_sd_is_chosen_else_the_largest():
    # at SD 0 and 0.02 four rows say >= 90 %, one of them wrong (75 %); at SD 0.05 it drops below 90 %: 3 of 3
    rows = [_row("a", True, {0.0: 0.99, 0.05: 0.95, 0.1: 0.5}), _row("b", True, {0.0: 0.97, 0.05: 0.93, 0.1: 0.5}),
            _row("c", True, {0.0: 0.95, 0.05: 0.91, 0.1: 0.5}), _row("d", False, {0.0: 0.95, 0.02: 0.92, 0.05: 0.6})]
    assert not cp.qualifies(rows, 0.0) and not cp.qualifies(rows, 0.02) and cp.qualifies(rows, 0.05)
    assert cp.choose(rows) == 0.05
    # leaving one good task out leaves 2 rows in the bucket: nothing qualifies, the largest SD
    assert cp.choose([r for r in rows if r["task"] != "a"]) == 0.3
    t = cp.table(rows, lambda r: r["stays"][0.0])
    assert (t["top_n"], t["top_hits"]) == (4, 3) and abs(t["share_top"] - 1.0) < 1e-12
    assert abs(t["brier"] - sum((r["stays"][0.0] - 0.0) ** 2 for r in rows) / 4) < 1e-12
