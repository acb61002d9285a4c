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
