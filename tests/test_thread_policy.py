"""The thread policy of the entry points (README "Threads"): OpenMP's workers sleep instead of spinning.

What is checked is libgomp's own state: with `OMP_DISPLAY_ENV=verbose` it prints its settings when torch loads, and
`GOMP_SPINCOUNT` is 0 under `OMP_WAIT_POLICY=PASSIVE` (300,000 by default, far more with ACTIVE).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
ZEETAD = str(Path(sys.executable).parent / "zeetad")


def spin_count(command: list[str], **env: str) -> tuple[int, str]:
    """libgomp's spin count in a run of `command` (without the caller's `OMP_WAIT_POLICY`), and the run's stdout."""
    environment = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    environment.update(OMP_DISPLAY_ENV="verbose", **env)
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert completed.returncode == 0, completed.stderr[-2000:]
    match = re.search(r"GOMP_SPINCOUNT = '(\d+)'", completed.stderr)
    if match is None:
        pytest.skip("torch does not use libgomp here (no OMP_DISPLAY_ENV report)")
    return int(match[1]), completed.stdout


@pytest.mark.parametrize(
    "command",
    [
        [ZEETAD, "detect", "--help"],
        [sys.executable, "examples/train.py", "--help"],
        # the same first import as train.py (`zeetad_hf` before torch); each costs a process start (~7 s): RUN_SLOW=1
        pytest.param([sys.executable, "examples/evaluate.py", "--help"], marks=pytest.mark.slow),
        pytest.param([sys.executable, "examples/extract_features.py", "--help"], marks=pytest.mark.slow),
    ],
    ids=["zeetad", "train.py", "evaluate.py", "extract_features.py"],
)
def test_entry_points_let_openmp_workers_sleep(command):
    assert spin_count(command)[0] == 0


def test_a_policy_set_by_the_user_is_kept():
    # the same `setdefault` in `zeetad_hf/__init__.py` serves every entry point: one of them shows it
    assert spin_count([ZEETAD, "detect", "--help"], OMP_WAIT_POLICY="ACTIVE")[0] > 300_000


def test_torch_loaded_first_keeps_libgomp_defaults():
    # libgomp reads its settings once, when torch loads: importing zeetad_hf afterwards changes nothing, and says so
    # by leaving the variable unset
    code = "import torch, zeetad_hf, os; torch.ones(1); print(os.environ.get('OMP_WAIT_POLICY'))"
    count, printed = spin_count([sys.executable, "-c", code])
    assert count == 300_000 and printed.strip() == "None"
