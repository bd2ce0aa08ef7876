"""Medians with spreads, unit conversions, machine naming."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bonemarrow.benchmarks.machine import machine_name, matmul_peak, sanitise
from bonemarrow.benchmarks.stats import SUMMARY_KEYS, fmt, inverse, scaled, summarize, time_call


def test_summary_of_known_values():
    s = summarize([4.0, 1.0, 3.0, 2.0, 100.0], "s")
    assert set(s) == set(SUMMARY_KEYS)
    assert (s["median"], s["min"], s["max"], s["n"], s["unit"]) == (3.0, 1.0, 100.0, 5, "s")
    assert (s["q1"], s["q3"]) == (2.0, 4.0)


@given(st.lists(st.floats(0.001, 1e6), min_size=1, max_size=30))
def test_summary_is_ordered_and_inverse_keeps_order(values):
    s = summarize(values, "s")
    assert s["min"] <= s["q1"] <= s["median"] <= s["q3"] <= s["max"]
    t = inverse(s, 10.0, "1/s")
    assert t["min"] <= t["q1"] <= t["median"] <= t["q3"] <= t["max"]
    assert t["median"] == pytest.approx(10.0 / s["median"])
    ms = scaled(s, 1000.0, "ms")
    assert ms["median"] == pytest.approx(1000 * s["median"]) and ms["unit"] == "ms"


def test_summarize_refuses_no_values_and_scaled_refuses_negative():
    with pytest.raises(ValueError):
        summarize([], "s")
    with pytest.raises(ValueError):
        scaled(summarize([1.0], "s"), -1.0, "x")


def test_time_call_discards_warmup():
    calls = []
    times = time_call(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(times) == 3 and len(calls) == 5 and all(t >= 0 for t in times)


def test_fmt_shows_extremes_for_few_runs_and_quartiles_for_many():
    assert fmt(summarize([1.0, 2.0, 3.0], "s")) == "2 [1-3]"
    assert fmt(summarize([1, 2, 3, 4, 5], "s")) == "3 [2-4]"
    assert fmt(None) == "-"


def test_machine_names_are_file_safe():
    assert sanitise("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz") == "intel-xeon-platinum-8375c-2-90ghz"
    name = machine_name()
    assert name and all(c.isalnum() or c == "-" for c in name) and name.endswith("c")
    assert machine_name("My Host.local") == "my-host-local"


def test_matmul_peak_is_a_summary_in_gflops():
    peak = matmul_peak(size=128, repeats=2)
    assert peak["unit"] == "GFLOP/s" and peak["n"] == 2 and peak["median"] > 0
