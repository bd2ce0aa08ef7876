"""bm-app: the launcher hands the model and limits to `streamlit run` and refuses a missing model."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("streamlit", reason="streamlit is not installed (pip install 'bonemarrow-seg[app]')")
from bonemarrow.app import cli  # noqa: E402


@pytest.fixture
def launched(monkeypatch):
    """Capture the exec instead of replacing the test process with Streamlit."""
    seen = {}

    def fake_execve(path, argv, env):
        seen.update(path=path, argv=argv, env=env)

    monkeypatch.setattr(cli.os, "execve", fake_execve)
    return seen


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_model_and_limits_reach_the_page(launched, model_path, monkeypatch):
    monkeypatch.delenv("BONEMARROW_MODEL", raising=False)
    result = CliRunner().invoke(cli.main, ["--model", str(model_path), "--port", "8765", "--address", "127.0.0.1",
                                           "--max-pixels", "5000", "--max-upload-mb", "7"])
    assert result.exit_code == 0, result.output
    argv = launched["argv"]
    assert argv[1:4] == ["-m", "streamlit", "run"] and Path(argv[4]) == cli.APP_SCRIPT and cli.APP_SCRIPT.is_file()
    assert option(argv, "--server.headless") == "true"
    assert option(argv, "--server.port") == "8765" and option(argv, "--server.address") == "127.0.0.1"
    assert option(argv, "--server.maxUploadSize") == "7"
    assert option(argv, "--browser.gatherUsageStats") == "false"
    assert launched["env"]["BONEMARROW_MODEL"] == str(model_path.resolve())
    assert launched["env"]["BONEMARROW_MAX_PIXELS"] == "5000"
    assert "http://127.0.0.1:8765" in result.output


def test_missing_model_is_a_usage_error(launched, tmp_path):
    result = CliRunner().invoke(cli.main, ["--model", str(tmp_path / "nope.onnx")])
    assert result.exit_code == 2
    assert "nope.onnx: no such file" in result.output
    assert not launched  # Streamlit was not started


def test_no_default_model_warns_and_starts_anyway(launched, tmp_path, monkeypatch):
    monkeypatch.setenv("BONEMARROW_MODEL", str(tmp_path / "gone.onnx"))
    result = CliRunner().invoke(cli.main, [])
    assert result.exit_code == 0
    assert "warning: $BONEMARROW_MODEL points to" in result.output
    assert launched["argv"][2:4] == ["streamlit", "run"]


def test_threads_and_quiet_follow_the_shared_conventions(launched, model_path, monkeypatch):
    from bonemarrow.app.analysis import THREADS_ENV, app_threads

    result = CliRunner().invoke(cli.main, ["--model", str(model_path), "--threads", "3", "-q"])
    assert result.exit_code == 0, result.output
    assert launched["env"][THREADS_ENV] == "3"
    assert option(launched["argv"], "--logger.level") == "error"
    assert result.output == ""  # -q: no notes
    monkeypatch.setenv(THREADS_ENV, "3")
    assert app_threads() == 3
    monkeypatch.setenv(THREADS_ENV, "0")
    with pytest.raises(ValueError, match="positive integer"):
        app_threads()


def test_a_bad_option_is_a_usage_error_in_the_shared_format(launched):
    result = CliRunner().invoke(cli.main, ["--threads", "0"])
    assert result.exit_code == 2 and "--threads" in result.output
    assert not launched
