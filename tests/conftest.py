"""Hermetic test set-up: offline Hub, a throw-away HF cache, and the `slow` marker driven by RUN_SLOW."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple


# Set before anything imports huggingface_hub / transformers: both read these at import time.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="zeetad-hf-home-")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from tiny_models import PROMPT_WORDS, tiny_zeetad_config  # noqa: E402

from zeetad_hf import build_clip_tokenizer  # noqa: E402


# Tiny models gain nothing from intra-op threads, and on a 2-core box a second busy process makes 2 threads
# ~10x slower than 1 (measured: 0.22 s vs 0.019 s per training step).
torch.set_num_threads(1)


# Markers of transformers' common tests (tests/test_transformers_common.py), registered for --strict-markers.
TRANSFORMERS_MARKERS = (
    "accelerate_tests",
    "flash_attn_test",
    "flash_attn_3_test",
    "flash_attn_4_test",
    "torch_compile_test",
)


def pytest_configure(config):
    for marker in TRANSFORMERS_MARKERS:
        config.addinivalue_line("markers", f"{marker}: marker of transformers' common model tests")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("RUN_SLOW", "").lower() in ("1", "true", "yes", "on"):
        return
    skip_slow = pytest.mark.skip(reason="slow test: set RUN_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tokenizer():
    return build_clip_tokenizer(PROMPT_WORDS, model_max_length=16)


@pytest.fixture
def make_config(tokenizer):
    """Factory of tiny ZEETAD configs: `make_config(text_adapter_type="lora", ...)`."""
    return lambda **overrides: tiny_zeetad_config(tokenizer, **overrides)


class QuickstartRun(NamedTuple):
    """A finished `zeetad quickstart` run: its `--output_dir`, and what it printed (the table, then the summary)."""

    output_dir: Path
    stdout: str


@pytest.fixture(scope="session")
def quickstart_fast_run(tmp_path_factory) -> QuickstartRun:
    """One `zeetad quickstart --fast` (under a minute on 2 cores) through the installed console script, as a user runs it
    (offline, one OpenMP thread): its `--output_dir` and what it printed on stdout."""
    output_dir = tmp_path_factory.mktemp("quickstart")
    command = [
        os.path.join(os.path.dirname(sys.executable), "zeetad"),
        "quickstart",
        "--fast",
        "--output_dir",
        output_dir,
    ]
    completed = subprocess.run(
        command,
        env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return QuickstartRun(output_dir, completed.stdout)
