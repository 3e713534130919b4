"""Error metrics (exhaustive) and hardware cost (yosys) of multipliers."""

from __future__ import annotations

import numpy as np
import pytest

from axc.arith.metrics import KEYS, error_metrics
from axc.arith.multipliers import builtin


def test_exact_multiplier_has_no_error() -> None:
    metrics = error_metrics(builtin("exact"))
    assert all(metrics[k] == 0 for k in KEYS)
    assert all(metrics[f"{k}_percent"] == 0 for k in KEYS)


def test_metrics_follow_their_definitions() -> None:
    m = builtin("perforated", 0, 2)  # error = -(a mod 4) * b exactly
    a = np.arange(256)[:, None].astype(np.float64)
    b = np.arange(256)[None, :].astype(np.float64)
    e = -(a.astype(np.int64) & 3) * b
    exact = a * b
    got = error_metrics(m)
    assert got["mae"] == pytest.approx(np.abs(e).mean())
    assert got["wce"] == 3 * 255
    assert got["bias"] == pytest.approx(e.mean())
    assert got["mse"] == pytest.approx((e * e).mean())
    assert got["ep"] == pytest.approx((e != 0).mean())
    assert got["mre"] == pytest.approx((np.abs(e) / np.maximum(1, exact)).mean())
    assert got["mae_percent"] == pytest.approx(got["mae"] / 65536 * 100)
    assert got["wce_percent"] == pytest.approx(765 / 65536 * 100)


def test_truncation_error_grows_with_k() -> None:
    maes = [error_metrics(builtin("trunc", k))["mae"] for k in (2, 4, 6, 8)]
    assert maes == sorted(maes) and maes[0] > 0
    assert error_metrics(builtin("trunc", 4))["wce"] == 49


@pytest.mark.tools
def test_synthesis_counts_luts_and_caches_by_hash_and_version(tmp_path, monkeypatch) -> None:
    from axc.hw.synth import synthesize, yosys_version

    monkeypatch.setenv("AXC_CACHE_DIR", str(tmp_path))
    exact, trunc = builtin("exact"), builtin("trunc", 6)
    first = synthesize(exact.verilog(), exact.identifier())
    assert first.luts > 50 and first.yosys == yosys_version() and not first.cached
    again = synthesize(exact.verilog(), exact.identifier())
    assert again.cached and again.luts == first.luts
    assert len(list((tmp_path / "synth").glob("*.json"))) == 1
    cheaper = synthesize(trunc.verilog(), trunc.identifier())
    assert cheaper.luts < first.luts  # dropping 6 columns saves logic
