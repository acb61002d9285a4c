"""mmbook.distributed: two processes under torchrun give the one-process gradient (Chapter 13)."""

from __future__ import annotations

import re
import subprocess
import sys

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "mmbook.distributed"]


def _run(*args: str) -> tuple[int, str, float]:
    done = subprocess.run([*TORCHRUN, *args], capture_output=True, text=True, timeout=300)
    found = re.search(r"processes, \d+ steps of \d+ pairs: largest gradient difference ([0-9.e+-]+)", done.stdout)
    assert found, f"no summary line in:\n{done.stdout}\n{done.stderr[-2000:]}"
    return done.returncode, done.stdout, float(found.group(1))


def test_two_processes_give_the_one_process_gradient() -> None:
    code, out, gap = _run("--steps", "2")
    assert code == 0, out
    assert gap <= 1e-5
    assert "weights equal on every rank: True" in out


def test_a_gather_without_gradient_is_caught() -> None:
    code, _, gap = _run("--steps", "1", "--plain-gather")
    assert code != 0 and gap > 1e-2  # the other ranks' terms of the gradient are missing


def test_without_torchrun_it_says_how_to_launch() -> None:
    done = subprocess.run([sys.executable, "-m", "mmbook.distributed"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "torchrun --standalone --nproc-per-node 2 -m mmbook.distributed" in done.stderr


def test_training_memory_follows_the_zero_paper() -> None:
    from mmbook.distributed import training_memory

    psi = 7_500_000_000  # the ZeRO paper's 7.5B example: 120 GB replicated, 1.9 GB per GPU at stage 3 on 64
    assert training_memory(psi)["total"] == 16 * psi
    assert abs(training_memory(psi, 64, 1)["total"] / 1e9 - 31.4) < 0.1
    assert abs(training_memory(psi, 64, 2)["total"] / 1e9 - 16.6) < 0.1
    assert abs(training_memory(psi, 64, 3)["total"] / 1e9 - 1.875) < 1e-9
    assert training_memory(psi, 1, 3) == training_memory(psi, 1, 0)  # one process: nothing to shard


def test_training_memory_rejects_a_wrong_stage() -> None:
    import pytest
    from mmbook.distributed import training_memory

    with pytest.raises(ValueError, match="ZeRO stage must be 0, 1, 2 or 3"):
        training_memory(10, 2, 4)
    with pytest.raises(ValueError, match="at least 1 process"):
        training_memory(10, 0, 1)
