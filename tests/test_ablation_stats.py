"""The ablation's paired bootstrap of AUC differences: no difference for identical arms, a clear one for a
better arm, bins kept apart."""

from __future__ import annotations

import numpy as np

from benchmarks.ablation import bootstrap_auc_delta


def _pairs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    same = rng.random(n) < 0.5
    bin_of = np.where(rng.random(n) < 0.5, "0-15", "30-45").astype(object)
    return same, bin_of


def test_identical_arms_differ_by_zero_and_the_interval_holds_zero() -> None:
    rng = np.random.default_rng(0)
    same, bin_of = _pairs(400, rng)
    noisy = [same + rng.normal(0, 1.0, same.size) for _ in range(2)]
    out = bootstrap_auc_delta({"rgb": noisy, "copy": [s.copy() for s in noisy]}, same, bin_of, "rgb", draws=50)
    for entry in out["copy"].values():
        assert entry["delta"] == 0.0 and entry["low"] == 0.0 and entry["high"] == 0.0


def test_a_better_arm_has_an_interval_above_zero_in_the_bin_where_it_is_better() -> None:
    rng = np.random.default_rng(1)
    same, bin_of = _pairs(1000, rng)
    base = [same + rng.normal(0, 1.5, same.size) for _ in range(2)]
    hard = bin_of == "30-45"
    better = [np.where(hard, same + rng.normal(0, 0.5, same.size), b) for b in base]
    out = bootstrap_auc_delta({"rgb": base, "better": better}, same, bin_of, "rgb", draws=200)["better"]
    assert out["30-45"]["low"] > 0.05
    assert out["0-15"]["delta"] == 0.0
    assert out["all"]["low"] > 0.0
    assert out["30-45"]["pairs"] + out["0-15"]["pairs"] == out["all"]["pairs"] == 1000
    assert "45-60" not in out                     # no pairs there: no entry, not a made-up number
