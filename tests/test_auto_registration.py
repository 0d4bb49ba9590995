"""`import zeetad_hf` registers the model type with transformers' Auto classes."""

import subprocess
import sys

from transformers import AutoConfig, AutoModel

from zeetad_hf import ZeetadConfig, ZeetadForTemporalActionDetection


def test_auto_config_and_auto_model_resolve_zeetad(make_config):
    assert isinstance(AutoConfig.for_model("zeetad"), ZeetadConfig)
    model = AutoModel.from_config(make_config())
    assert type(model) is ZeetadForTemporalActionDetection


def test_registration_happens_at_import_in_a_fresh_process():
    code = (
        "from transformers import AutoConfig\nimport zeetad_hf\nprint(type(AutoConfig.for_model('zeetad')).__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "ZeetadConfig"
