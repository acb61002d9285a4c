"""mmbook.env: hygiene, offline detection, seeds, device."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import torch
from mmbook import env


def test_hygiene_is_set_before_gradio_is_imported() -> None:
    code = (
        "import os\n"
        "os.environ.pop('GRADIO_ANALYTICS_ENABLED', None)\n"
        "os.environ.pop('HF_HUB_DISABLE_TELEMETRY', None)\n"
        "import mmbook, sys\n"
        "assert 'gradio' not in sys.modules and 'huggingface_hub' not in sys.modules\n"
        "print(os.environ['GRADIO_ANALYTICS_ENABLED'], os.environ['HF_HUB_DISABLE_TELEMETRY'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "1"]


def test_user_settings_are_kept(monkeypatch) -> None:
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "True")
    env.apply_hygiene()
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "True"


def test_offline_flags(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert env.is_offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("MMBOOK_OFFLINE", "yes")
    assert env.is_offline()


def test_seed_everything_reproduces() -> None:
    env.seed_everything(3)
    a = (np.random.rand(3), torch.rand(3))
    env.seed_everything(3)
    b = (np.random.rand(3), torch.rand(3))
    assert np.array_equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_device_and_colab() -> None:
    assert env.device() in {"cpu", "cuda", "mps"}
    assert env.is_colab() is False


def test_cache_dir_follows_variable(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("MMBOOK_CACHE", str(tmp_path / "c"))
    assert env.cache_dir() == str(tmp_path / "c") and (tmp_path / "c").is_dir()


def test_setup_reports_where_it_runs(capsys) -> None:
    assert env.setup(seed=1) in {"cpu", "cuda", "mps"}
    line = capsys.readouterr().out
    assert "offline" in line and "seed=1" in line


def test_torch_threads_sets_and_restores_the_thread_count() -> None:
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with env.torch_threads(other):
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with env.torch_threads(None):
        assert torch.get_num_threads() == before
    try:
        with env.torch_threads(other):
            raise KeyError("inside")
    except KeyError:
        pass
    assert torch.get_num_threads() == before
