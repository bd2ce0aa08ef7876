"""Issue 13 item 25: a --quick run never writes over the published results (torch-free: no run here)."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bonemarrow.benchmarks.cli import DEFAULT_OUT, QUICK_OUT, BenchConfig, main, output_location, quick_config


def test_quick_runs_go_elsewhere_under_a_distinct_name():
    assert output_location(BenchConfig(), "intel-xeon-2c") == (DEFAULT_OUT, "intel-xeon-2c")
    folder, stem = output_location(quick_config(), "intel-xeon-2c")
    assert stem == "intel-xeon-2c_quick" and folder == QUICK_OUT
    assert not Path(folder).resolve().is_relative_to(DEFAULT_OUT.resolve())


def test_even_a_quick_run_into_the_results_folder_keeps_the_published_names():
    folder, stem = output_location(quick_config(out=DEFAULT_OUT), "intel-xeon-2c")
    assert folder == DEFAULT_OUT and stem != "intel-xeon-2c"


def test_the_published_results_are_not_quick_runs():
    results = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    assert not list(results.glob("*_quick*"))


def test_help_names_where_quick_runs_go():
    text = " ".join(CliRunner().invoke(main, ["--help"]).output.split())
    assert "MACHINE_quick" in text and str(QUICK_OUT) in text
