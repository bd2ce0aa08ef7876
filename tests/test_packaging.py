"""Every package folder is listed in setup.cfg, so a non-editable install ships it."""
from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_setup_cfg():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
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


def test_runtime_never_imports_torch():
    for source in (ROOT / "runtime").rglob("*.py"):
        text = source.read_text()
        assert "import torch" not in text and "from torch" not in text, source
