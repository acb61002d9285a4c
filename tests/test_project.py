"""The project's set-up files agree with each other."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import mmbook
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
    pip_names = {_name(line) for line in pip_section if not line.startswith("-")}  # not -e, --extra-index-url
    assert conda | pip_names == wanted, f"differs: {sorted((conda | pip_names) ^ wanted)}"
    assert "torchvision" not in conda | pip_names
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip_section, "torch's CPU build"


def test_environment_yml_pins_the_python_ci_tests() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python == "python={}.{}".format(*sys.version_info[:2]), f"{python}, but the tests run on {sys.version}"


def test_release_tag_and_published_address_follow_the_repository() -> None:
    """_config.yml: the tag the setup cell installs is the package's version; the book's address is the
    repository's GitHub Pages."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    version = tomllib.loads((ROOT / "code" / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert config["repository"]["release"] == f"v{version}", "bump the release tag with the version"
    assert config["repository"]["release"] == f"v{mmbook.__version__}"
    owner, name = config["repository"]["url"].removeprefix("https://github.com/").strip("/").split("/")
    assert config["html"]["baseurl"] == f"https://{owner}.github.io/{name}/"


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


def _make_setup(python: Path | str, venv: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", str(ROOT), "setup", f"PYTHON={python}", f"VENV={venv}"],
                          capture_output=True, text=True)


def test_make_refuses_a_venv_without_pip(tmp_path) -> None:
    """A .venv left by a failed `python3 -m venv` (no python3-venv) is explained, never used."""
    broken = tmp_path / "venv"
    (broken / "bin").mkdir(parents=True)
    (broken / "bin" / "python").write_text("#!/bin/sh\necho 'No module named pip' >&2\nexit 1\n")
    (broken / "bin" / "python").chmod(0o755)
    out = _make_setup(sys.executable, broken)
    assert out.returncode != 0
    assert "is broken: it has no working pip" in out.stdout + out.stderr and f"rm -rf {broken}" in out.stdout
    assert broken.exists(), "make never deletes a venv it did not make"


def test_make_says_what_to_install_when_venv_fails(tmp_path) -> None:
    """Debian without python3-venv: `python3 -m venv` leaves a venv without pip and fails."""
    python = tmp_path / "python3"
    python.write_text(
        "#!/bin/sh\n"
        "if [ \"$1\" = -m ] && [ \"$2\" = venv ]; then\n"
        "  mkdir -p \"$3/bin\" && printf '#!/bin/sh\\nexit 1\\n' > \"$3/bin/python\" && chmod +x \"$3/bin/python\"\n"
        "  echo 'The virtual environment was not created successfully because ensurepip is not available.'\n"
        "  exit 1\n"
        "fi\n"
        "exit 0\n"
    )
    python.chmod(0o755)
    out = _make_setup(python, tmp_path / "venv")
    assert out.returncode != 0
    assert "sudo apt install python3-venv" in out.stdout
    assert not (tmp_path / "venv").exists(), "the half-made venv is removed"


def test_make_test_stops_without_chromium_unless_told_to_skip() -> None:
    # not what an enclosing `make SKIP_BROWSER=1 test` passes down
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "SKIP_BROWSER"}}
    env["MMBOOK_CHROMIUM"] = "/nonexistent/chromium"
    check = ["make", "-C", str(ROOT), "-o", ".venv/.mmbook-setup", "-o", "_vendor/.stamp", "browser"]
    out = subprocess.run(check, capture_output=True, text=True, env=env)
    assert out.returncode != 0 and "make test needs Chromium" in out.stdout
    assert "make SKIP_BROWSER=1 test" in out.stdout
    assert subprocess.run([*check, "SKIP_BROWSER=1"], capture_output=True, text=True, env=env).returncode == 0


def test_workflows_build_publish_and_check_drift() -> None:
    workflows = ROOT / ".github" / "workflows"
    book = yaml.safe_load((workflows / "book.yml").read_text(encoding="utf-8"))
    steps = book["jobs"]["build"]["steps"]
    assert any(step.get("run") == "make book" for step in steps)
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html"
    assert book["jobs"]["deploy"]["steps"][0]["uses"].startswith("actions/deploy-pages")
    weekly = yaml.safe_load((workflows / "weekly.yml").read_text(encoding="utf-8"))
    assert "schedule" in weekly[True]  # YAML 1.1 reads the key `on` as True
    runs = [step.get("run") for job in weekly["jobs"].values() for step in job["steps"]]
    assert "make UNPINNED=1 OFFLINE=0 test" in runs


def test_gitignore_keeps_outputs_out() -> None:
    ignored = (ROOT / ".gitignore").read_text().split()
    for entry in (".venv/", "_build/", "node_modules/", "_vendor/"):
        assert entry in ignored
