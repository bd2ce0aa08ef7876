"""One set of conventions in every bm-* command outside the runtime: lazy heavy imports, one-line
errors naming the extra to install, the shared options, registries instead of repeated lists.

Everything runs in subprocesses where a module is hidden (sys.modules[name] = None makes its
import fail like a missing install), so these tests need neither torch nor its absence.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]

#: Command -> its click entry point.
COMMANDS = {
    "bm-synth": "bonemarrow.training.cli_synth",
    "bm-prepare": "bonemarrow.training.cli_prepare",
    "bm-train": "bonemarrow.training.cli_train",
    "bm-export": "bonemarrow.export.cli",
    "bm-bench": "bonemarrow.benchmarks.cli",
    "bm-app": "bonemarrow.app.cli",
}
HEAVY = ("torch", "torchvision", "onnx", "onnxsim", "psd_tools", "matplotlib", "streamlit")


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def invoke(module: str, argv: list[str], monkeypatch, hide: tuple[str, ...] = ()):
    """Run a command's main() in this process with `hide` modules made unimportable."""
    import importlib

    main = importlib.import_module(module).main
    for name in hide:
        monkeypatch.setitem(sys.modules, name, None)
    return CliRunner().invoke(main, argv, prog_name="cli")


def test_importing_the_commands_imports_no_heavy_library():
    """bm-train --help took 13 s because torch was imported at module level: every CLI imports lazily."""
    code = ("import importlib, json, sys\n"
            f"heavy = {list(HEAVY)!r}\n"
            "found = {}\n"
            f"for command, module in {COMMANDS!r}.items():\n"
            "    importlib.import_module(module)\n"
            "    found[command] = [m for m in heavy if m in sys.modules]\n"
            "print(json.dumps(found))")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {command: [] for command in COMMANDS}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_works_without_the_heavy_libraries_and_names_the_exit_codes(command, monkeypatch):
    result = invoke(COMMANDS[command], ["-h"], monkeypatch, hide=HEAVY)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "Exit codes" in text and "2 usage error" in text, text
    assert "-q, --quiet" in text and "-h, --help" in text


@pytest.mark.parametrize("command", ["bm-train", "bm-export", "bm-bench", "bm-app"])
def test_commands_that_run_models_take_threads(command, monkeypatch):
    assert "--threads INTEGER RANGE" in invoke(COMMANDS[command], ["--help"], monkeypatch).stdout


@pytest.fixture(scope="module")
def psd_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("psd")
    (folder / "scan.psd").write_bytes(b"8BPS")  # never opened: the missing extra is reported first
    return folder


@pytest.mark.parametrize("command, argv, hidden, extra, needs", [
    ("bm-train", ["DATA", "-o", "RUN"], "torch", "train", ()),
    ("bm-train", ["DATA", "-o", "RUN"], "torchvision", "train", ("torch",)),
    ("bm-export", ["ckpt.pt", "-o", "OUT/m.onnx"], "torch", "export", ()),
    ("bm-bench", ["--quick", "--out", "OUT"], "torch", "export", ()),
    ("bm-bench", ["--quick", "--out", "OUT"], "matplotlib", "eval",
     ("torch", "torchvision", "onnx", "onnxsim", "onnxruntime")),
    ("bm-synth", ["-o", "OUT", "--psd", "--count", "1", "--size", "64x64"], "psd_tools", "train", ()),
    ("bm-prepare", ["PSD", "-o", "OUT"], "psd_tools", "train", ()),
    ("bm-app", [], "streamlit", "app", ()),
])
def test_a_missing_extra_is_one_line_naming_it_and_exit_2(tmp_path, psd_folder, monkeypatch, command, argv, hidden,
                                                          extra, needs):
    for module in needs:  # the extras checked before the hidden one must be there (not in the torch-free venv)
        pytest.importorskip(module)
    argv = [str(psd_folder) if a == "PSD" else str(tmp_path / a) if a.isupper() or "/" in a else a for a in argv]
    result = invoke(COMMANDS[command], argv, monkeypatch, hide=(hidden,))
    assert result.exit_code == 2, result.output[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and not result.stdout.strip(), result.output[-2000:]
    assert lines[0].startswith(f"error: {hidden} is not installed")
    assert f"pip install 'bonemarrow-seg[{extra}]'" in lines[0]
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert not (tmp_path / "OUT").exists() and not (tmp_path / "RUN").exists()  # nothing was written


def test_choices_come_from_the_registries():
    from bonemarrow.export.cli import main as bm_export
    from bonemarrow.runtime.contract import PRECISIONS
    from bonemarrow.training.cli_train import main as bm_train
    from bonemarrow.training.models import BACKBONE_NAMES, PRESETS
    from bonemarrow.training.settings import DEVICES, MODES

    def choices(command, name):
        (param,) = [p for p in command.params if p.name == name]
        return list(param.type.choices)

    assert choices(bm_export, "precision") == list(PRECISIONS)
    assert choices(bm_export, "preset") == sorted(PRESETS)
    assert choices(bm_train, "preset") == sorted(PRESETS)
    assert choices(bm_train, "backbone") == list(BACKBONE_NAMES)
    assert choices(bm_train, "mode") == list(MODES) and choices(bm_train, "device") == list(DEVICES)


def test_bm_train_defaults_live_in_train_settings_alone():
    import bonemarrow.training.cli_train as cli_train
    from bonemarrow.training.settings import DEFAULTS

    assert not hasattr(cli_train, "_SETTING_DEFAULTS")
    params = {p.name: p for p in cli_train.main.params}
    for name in cli_train.SETTING_OPTIONS:
        assert params[name].default == getattr(DEFAULTS, name), name


def test_one_first_line_helper_one_tile_default_one_precisions_list():
    """What the import linter cannot see: helpers and constants defined twice outside the runtime."""
    sources = [p for folder in ("training", "export", "benchmarks", "app") for p in (ROOT / folder).rglob("*.py")]
    assert sources
    for path in sources:
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(ROOT)
        assert not re.search(r"^def _?first_line\(", text, re.M), f"{where}: use bonemarrow.runtime.errors.first_line"
        assert not re.search(r"^DEFAULT_TILE\s*=", text, re.M) or where.as_posix() == "training/models/registry.py", where
        assert not re.search(r"^PRECISIONS\s*=", text, re.M), f"{where}: use bonemarrow.runtime.contract.PRECISIONS"
        assert not re.search(r"json\.dump\(|write_text(_atomic)?\([^\n]*json\.dumps", text), \
            f"{where}: write JSON files with bonemarrow.runtime.json_io.write_json_atomic"


def test_the_superseded_runtime_bench_is_gone():
    assert not (ROOT / "benchmarks" / "bench_runtime.py").exists()
    assert not (ROOT / "benchmarks" / "results" / "bench_runtime.json").exists()
    assert "bench_runtime" not in (ROOT / "README.md").read_text(encoding="utf-8")


def test_bm_synth_shares_the_size_type_and_error_format(tmp_path):
    from bonemarrow.training.cli_synth import main as bm_synth

    result = CliRunner().invoke(bm_synth, ["-o", str(tmp_path / "out"), "--size", "12x40"])
    assert result.exit_code == 2 and "each side must be 64.." in result.output
