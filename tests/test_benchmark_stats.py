"""The seed-level comparison the study reports print (benchmarks/_common.py), checked against scipy."""

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _common import seed_level_comparison  # noqa: E402


def _runs(gains, success=0.5):
    return [{"gain": g, "success_rate": success, "backbone_success": 0.4} for g in gains]


def test_welch_columns_match_scipy():
    a, b = [20.1, 7.4, 14.3], [-2.8, -5.9, -30.7, 3.0]
    text = seed_level_comparison({"lpds@1": _runs(a), "dsrl@1": _runs(b)}, success=True)
    ref = stats.ttest_ind(b, a, equal_var=False)  # pairs are in sorted order: dsrl − lpds
    row = next(line for line in text.splitlines() if line.startswith("| dsrl@1 − lpds@1"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    diff, se = (float(x) for x in cells[1].split("±"))
    assert diff == pytest.approx(np.mean(b) - np.mean(a), abs=0.05)
    assert se == pytest.approx(np.hypot(np.std(a, ddof=1) / 3**0.5, np.std(b, ddof=1) / 2), abs=0.05)
    assert float(cells[2]) == pytest.approx(ref.statistic, abs=0.005)
    assert float(cells[3]) == pytest.approx(ref.df, abs=0.05)
    assert float(cells[4]) == pytest.approx(ref.pvalue, abs=0.0005)
    assert "| lpds@1 | 3 | +13.9 ± 3.7 | +0.100 |" in text


def test_nothing_to_compare_gives_no_table():
    assert seed_level_comparison({"lpds@1": _runs([1.0])}) == ""
    text = seed_level_comparison({"lpds@1": _runs([1.0, 2.0]), "dsrl@1": _runs([0.0])})
    assert "Per variant" in text and "Welch" not in text
