"""Packaging and layering: every package folder is listed in setup.cfg, and the import contracts hold."""
from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _setup_cfg() -> configparser.ConfigParser:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def test_every_package_folder_is_listed_in_setup_cfg():
    config = _setup_cfg()
    listed = set(config["options"]["packages"].split())
    mapping = dict(
        line.split("=", 1) for line in config["options"]["package_dir"].strip().splitlines()
    )
    mapping = {name.strip(): folder.strip() for name, folder in mapping.items()}
    found = set()
    for name, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *relative.parts]))
    assert found == listed, f"unlisted: {sorted(found - listed)}, missing: {sorted(listed - found)}"


def test_layering_contracts_hold():
    """import-linter's contracts (.importlinter): the runtime imports no torch, onnx or other layer,
    training no export/benchmarks/app, export no benchmarks/app; imports inside functions count too."""
    pytest.importorskip("importlinter", reason="import-linter is not installed (pip install -e '.[dev]')")
    command = Path(sys.executable).with_name("lint-imports")
    assert command.is_file(), f"{command} missing: import-linter's console script"
    result = subprocess.run([str(command), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout


def test_every_contract_names_packages_that_exist():
    """A contract about a misspelt module would pass for ever: every bonemarrow module it names is real."""
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    mapping = dict(line.split("=", 1) for line in _setup_cfg()["options"]["package_dir"].strip().splitlines())
    packages = {name.strip() for name in mapping}
    named = set()
    for section in config.sections():
        for key in ("root_packages", "source_modules", "forbidden_modules"):
            named.update(config[section].get(key, "").split())
    ours = {name for name in named if name.startswith("bonemarrow")}
    assert ours and ours <= packages, sorted(ours - packages)


def test_the_test_commands_show_progress_and_check_the_layering_first():
    """Issue 13 item 27: visible steps; lint-imports before pytest; a fast torch-free path that CI runs first."""
    full = (ROOT / "scripts" / "test.sh").read_text()
    fast = (ROOT / "scripts" / "test_runtime.sh").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for script in (full, fast):
        assert "set -euo pipefail" in script
        assert script.index("lint-imports") < script.index("python -m pytest")
        assert 'echo "[$1/' in script  # step lines: [1/5] ..., [2/5] ...
    assert '".[cpu,dev]"' in fast and "torch" in fast
    assert ci.index("scripts/test_runtime.sh") < ci.index("scripts/test.sh")
    assert "import-linter" in _setup_cfg()["options.extras_require"]["dev"]


def test_readme_says_what_torch_costs_and_where_a_cpu_build_lives():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "download.pytorch.org" in readme and "6.4 GB" in readme
    assert "torch==2.14.1" in _setup_cfg()["options.extras_require"]["train"]
    assert "torchvision==0.29.1" in _setup_cfg()["options.extras_require"]["export"]
    assert "scripts/test_runtime.sh" in readme
