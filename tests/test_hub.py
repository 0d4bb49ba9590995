"""Hub round trip through the real huggingface_hub client against a local stand-in Hub (tests/fakehub.py).

huggingface_hub reads `HF_ENDPOINT` and `HF_HUB_OFFLINE` at import time and this test process is offline (conftest),
so the client side runs in child processes: `python tests/test_hub.py push WORKDIR` builds a tiny model, pushes model,
processor (with the tokenizer) and model card, and stores reference outputs; `python tests/test_hub.py pull WORKDIR`
then downloads everything by repo id into a fresh `HF_HOME` and compares. Each child prints a JSON report as its last
stdout line.
"""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from fakehub import serve_in_subprocess


REPO_ID = "user/tiny-zeetad"
TRAINED_REPO_ID = "user/tiny-zeetad-trained"
MISSING_REPO_ID = "user/does-not-exist"
TASK = "zero-shot-temporal-action-detection"
LABELS = ["jumping", "running", "diving"]
NUM_UNITS = 20


@pytest.fixture(scope="module")
def hub_endpoint():
    """tests/fakehub.py on a free port of 127.0.0.1: its URL."""
    with serve_in_subprocess() as endpoint:
        yield endpoint


def run_child(command: str, workdir: Path, endpoint: str, hf_home: Path, without_package: bool = False) -> dict:
    """Run `python tests/test_hub.py COMMAND WORKDIR` against the stand-in Hub; `without_package` runs it where
    `zeetad_hf` cannot be imported (`-S` skips the editable install's import hook; the dependencies stay importable
    through PYTHONPATH)."""
    env = dict(os.environ)
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("TRANSFORMERS_OFFLINE", None)
    interpreter = [sys.executable]
    if without_package:
        env["PYTHONPATH"] = sysconfig.get_paths()["purelib"]
        interpreter.append("-S")
    env.update(
        HF_ENDPOINT=endpoint,
        HF_TOKEN="hf_fake_token",
        HF_HUB_DISABLE_XET="1",
        HF_HOME=str(hf_home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )
    completed = subprocess.run(
        [*interpreter, __file__, command, str(workdir)], env=env, capture_output=True, text=True, timeout=180
    )
    if completed.returncode != 0 or not completed.stdout.strip():
        raise AssertionError(f"`{command}` child failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def round_trip(hub_endpoint, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hub-round-trip")
    pushed = run_child("push", workdir, hub_endpoint, workdir / "push-home")
    pulled = run_child("pull", workdir, hub_endpoint, workdir / "pull-home")
    return pushed, pulled


def test_push_uploads_model_processor_and_card(round_trip):
    pushed, _ = round_trip
    files = set(pushed["repo_files"])
    assert {"config.json", "model.safetensors", "README.md", "processor_config.json", "tokenizer.json"} <= files
    assert pushed["num_reference_detections"] > 0


def test_download_into_fresh_cache_is_bit_identical(round_trip):
    _, pulled = round_trip
    assert pulled["model_class"] == "ZeetadForTemporalActionDetection"
    assert pulled["differing_files"] == []
    assert pulled["outputs_identical"], pulled
    assert pulled["max_diff_to_in_memory_model"] < 1e-4
    assert pulled["input_ids_identical"]
    assert pulled["pipeline_identical"], pulled
    # The pull side started from an empty HF_HOME: these files came from the stand-in Hub.
    assert {"config.json", "model.safetensors", "processor_config.json"} <= set(pulled["cached_files"])


def test_pushed_model_card(round_trip):
    _, pulled = round_trip
    card = pulled["card"]
    assert card["library_name"] == "transformers"
    assert "zero-shot-temporal-action-detection" in card["tags"]
    assert "pipeline_tag" not in card and "model-index" not in card
    assert card["says_not_evaluated"]


@pytest.fixture(scope="module")
def trained_round_trip(hub_endpoint, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hub-trained")
    pushed = run_child("push_trained", workdir, hub_endpoint, workdir / "push-home")
    pulled = run_child("pull_without_package", workdir, hub_endpoint, workdir / "pull-home", without_package=True)
    return pushed, pulled


def test_a_trained_and_pushed_model_runs_where_zeetad_hf_is_not_installed(trained_round_trip):
    pushed, pulled = trained_round_trip
    # what training pushes carries its code, so the Hub's "use this model" snippet works without the package
    assert {"configuration_zeetad.py", "modeling_zeetad.py", "pipeline_zeetad.py"} <= set(pushed["repo_files"])
    assert pulled["zeetad_hf_importable"] is False
    assert pulled["model_module"].startswith("transformers_modules.")
    assert pulled["pipeline_module"].startswith("transformers_modules.")
    assert pulled["detections"] == pushed["detections"] and len(pushed["detections"]) > 0


def test_missing_repo_raises_the_usual_oserror(round_trip):
    _, pulled = round_trip
    assert pulled["missing_repo_error"]["type"] == "OSError"
    assert MISSING_REPO_ID in pulled["missing_repo_error"]["message"]


# Child side: everything below runs in a subprocess whose environment points huggingface_hub at the stand-in Hub.


def model_outputs(model, processor, clip_features):
    import torch

    inputs = processor(text=LABELS)
    with torch.no_grad():
        outputs = model(
            input_features=clip_features[None], input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
        )
    return {"input_ids": inputs["input_ids"], "logits": outputs.logits, "pred_segments": outputs.pred_segments}


def detect(detector, clip_features) -> list[dict]:
    return detect_with_features(detector, {"clip_features": clip_features})


def push(workdir: Path) -> dict:
    import torch
    from huggingface_hub import HfApi

    # Imported here, after the environment points at the stand-in Hub (tiny_models imports transformers).
    from tiny_models import PROMPT_WORDS, tiny_zeetad_config
    from transformers import AutoModel, pipeline

    from zeetad_hf import (
        ZeetadFeatureExtractor,
        ZeetadForTemporalActionDetection,
        ZeetadProcessor,
        build_clip_tokenizer,
    )
    from zeetad_hf.modelcard import build_model_card

    torch.manual_seed(0)
    tokenizer = build_clip_tokenizer(PROMPT_WORDS, model_max_length=16)
    # CLIP-only: the pipeline then runs on `{"clip_features", "fps", "feature_stride"}` alone.
    model = ZeetadForTemporalActionDetection(tiny_zeetad_config(tokenizer, localization_feature_dim=None)).eval()
    processor = ZeetadProcessor(feature_extractor=ZeetadFeatureExtractor(), tokenizer=tokenizer)
    clip_features = torch.randn(NUM_UNITS, model.config.clip_embedding_dim)

    model.push_to_hub(REPO_ID)
    # The processor writes the tokenizer files too.
    processor.push_to_hub(REPO_ID)
    card = build_model_card(
        model_name="tiny-zeetad",
        base_model=None,
        dataset_name="thumos14",
        split_setting="75_25",
        split_indices=[0],
        features="random 16-d CLIP-like frame embeddings (test model)",
        results=None,
        training_hyperparameters={},
        repo_id=REPO_ID,
    )
    # Goes through /api/validate-yaml first, like any card push.
    card.push_to_hub(REPO_ID)

    # The reference is the original checkpoint loaded the standard way. `from_pretrained` keeps the weights as views
    # into the memory-mapped safetensors file; at its unaligned offsets the CPU kernels sum in another order than on
    # the freshly allocated tensors of `model`, so `model` itself agrees with any loaded copy only to ~1e-5.
    original = workdir / "original"
    model.save_pretrained(original)
    processor.save_pretrained(original)
    reference = model_outputs(AutoModel.from_pretrained(original).eval(), processor, clip_features)
    in_memory = model_outputs(model, processor, clip_features)
    torch.save(
        {"clip_features": clip_features, "in_memory_logits": in_memory["logits"], **reference},
        workdir / "reference.pt",
    )
    detections = detect(pipeline(TASK, model=str(original)), clip_features)
    (workdir / "detections.json").write_text(json.dumps(detections))
    return {"repo_files": HfApi().list_repo_files(REPO_ID), "num_reference_detections": len(detections)}


def pull(workdir: Path) -> dict:
    import torch
    from huggingface_hub import ModelCard, hf_hub_download, scan_cache_dir
    from transformers import AutoModel, AutoProcessor, pipeline

    import zeetad_hf  # noqa: F401  (registers the model type and the pipeline task)

    reference = torch.load(workdir / "reference.pt", weights_only=True)
    model = AutoModel.from_pretrained(REPO_ID).eval()
    processor = AutoProcessor.from_pretrained(REPO_ID)
    downloaded = model_outputs(model, processor, reference["clip_features"])
    detections = detect(pipeline(TASK, model=REPO_ID), reference["clip_features"])
    # Already in the cache: these calls only resolve the paths of the downloaded copies.
    differing_files = [
        name
        for name in ("model.safetensors", "config.json", "tokenizer.json", "processor_config.json")
        if Path(hf_hub_download(REPO_ID, name)).read_bytes() != (workdir / "original" / name).read_bytes()
    ]
    card = ModelCard.load(REPO_ID)
    try:
        AutoModel.from_pretrained(MISSING_REPO_ID)
        missing_repo_error = None
    except Exception as error:
        missing_repo_error = {"type": type(error).__name__, "message": str(error)}
    cached_files = [
        file.file_name
        for repo in scan_cache_dir().repos
        if repo.repo_id == REPO_ID
        for revision in repo.revisions
        for file in revision.files
    ]
    return {
        "model_class": type(model).__name__,
        "differing_files": differing_files,
        "outputs_identical": all(torch.equal(downloaded[key], reference[key]) for key in ("logits", "pred_segments")),
        "max_diff_to_in_memory_model": (downloaded["logits"] - reference["in_memory_logits"]).abs().max().item(),
        "input_ids_identical": torch.equal(downloaded["input_ids"], reference["input_ids"]),
        "pipeline_identical": detections == json.loads((workdir / "detections.json").read_text()),
        "card": {**card.data.to_dict(), "says_not_evaluated": "Evaluation was not run" in card.text},
        "missing_repo_error": missing_repo_error,
        "cached_files": cached_files,
    }


def push_trained(workdir: Path) -> dict:
    """Train a tiny model for one epoch with `push_to_hub=True`, as examples/train.py does, and detect with the
    installed pipeline on the trained folder."""
    import torch
    from huggingface_hub import HfApi
    from test_training import SEEN, UNSEEN, synthetic_datasets, tiny_model_and_processor
    from tiny_models import PROMPT_WORDS
    from transformers import pipeline

    from zeetad_hf import build_clip_tokenizer
    from zeetad_hf.training import ZeetadTrainingArguments, train

    tokenizer = build_clip_tokenizer(PROMPT_WORDS, model_max_length=16)
    train_dataset, eval_dataset = synthetic_datasets(workdir / "data", num_train=2, num_eval=2)
    model, processor = tiny_model_and_processor(tokenizer)
    arguments = ZeetadTrainingArguments(
        output_dir=str(workdir / "run"),
        per_device_train_batch_size=2,
        num_train_epochs=1,
        use_cpu=True,
        push_to_hub=True,
        hub_model_id=TRAINED_REPO_ID,
    )
    train(model, processor, train_dataset, eval_dataset, SEEN, UNSEEN, arguments)
    generator = torch.Generator().manual_seed(0)
    features = {
        "input_features": torch.randn(NUM_UNITS, model.config.localization_feature_dim, generator=generator),
        "clip_features": torch.randn(NUM_UNITS, model.config.clip_embedding_dim, generator=generator),
    }
    torch.save(features, workdir / "features.pt")
    detections = detect_with_features(pipeline(TASK, model=str(workdir / "run")), features)
    return {"repo_files": HfApi().list_repo_files(TRAINED_REPO_ID), "detections": detections}


def detect_with_features(detector, features: dict) -> list[dict]:
    return detector({**features, "fps": 10.0, "feature_stride": 1}, candidate_labels=LABELS, threshold=0.0)


def pull_without_package(workdir: Path) -> dict:
    """Download the trained model by repo id where `zeetad_hf` is not installed, with remote code."""
    import importlib.util

    # inference needs only what the remote code declares: scipy is for training only
    sys.modules["scipy"] = None
    import torch
    from transformers import AutoModel, pipeline

    model = AutoModel.from_pretrained(TRAINED_REPO_ID, trust_remote_code=True)
    detector = pipeline(TASK, model=TRAINED_REPO_ID, trust_remote_code=True)
    features = torch.load(workdir / "features.pt", weights_only=True)
    return {
        "zeetad_hf_importable": importlib.util.find_spec("zeetad_hf") is not None,
        "model_module": type(model).__module__,
        "pipeline_module": type(detector).__module__,
        "detections": detect_with_features(detector, features),
    }


if __name__ == "__main__":
    import torch

    # Tiny models gain nothing from threads, and two test processes may share the 2 cores.
    torch.set_num_threads(1)
    command, workdir = sys.argv[1], Path(sys.argv[2])
    commands = {"push": push, "pull": pull, "push_trained": push_trained, "pull_without_package": pull_without_package}
    print(json.dumps(commands[command](workdir)))
