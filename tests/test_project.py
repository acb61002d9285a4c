"""The project's set-up files agree with each other."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;@]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "code" / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted |= {_name(r) for r in extra}
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip", "nodejs"}
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert any("code" in line for line in pip_section), "the pip section must install code/"
    pip_names = {_name(line) for line in pip_section if not line.startswith("-e")}
    assert conda | pip_names == wanted, f"differs: {sorted((conda | pip_names) ^ wanted)}"
    assert "torchvision" not in conda | pip_names


def test_constraints_pin_every_direct_dependency() -> None:
    project = tomllib.loads((ROOT / "code" / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pinned = {
        _name(line) for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    direct = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        direct |= {_name(r) for r in extra}
    assert direct <= pinned, f"not pinned: {sorted(direct - pinned)}"
    assert "torchvision" not in pinned


def test_make_refuses_an_old_python(tmp_path) -> None:
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'Python 3.9.0'; exit 0; fi\nexit 1\n")
    old.chmod(0o755)
    out = subprocess.run(
        ["make", "-C", str(ROOT), "setup", f"PYTHON={old}", f"VENV={tmp_path}/venv"],
        capture_output=True, text=True,
    )
    assert out.returncode != 0
    assert "Python >= 3.11 is needed" in out.stdout + out.stderr


def test_gitignore_keeps_outputs_out() -> None:
    ignored = (ROOT / ".gitignore").read_text().split()
    for entry in (".venv/", "_build/", "node_modules/", "_vendor/"):
        assert entry in ignored
