import json

from zeetad_hf.cli import main
from zeetad_hf.quickstart import VARIANTS, run_quickstart


def test_fast_quickstart_beats_chance_and_reuses_its_stages(tmp_path, capsys):
    results = run_quickstart(tmp_path, fast=True)
    for name in ("world/annotations.json", "world/split.json", "clip/model.safetensors", "results.md"):
        assert (tmp_path / name).exists(), name
    demo = json.loads((tmp_path / "detections.json").read_text())
    assert demo["candidate_labels"] == results["unseen"] and demo["ground_truth"]
    assert all(detection["label"] in results["unseen"] for detection in demo["detections"])
    assert (tmp_path / "timeline.png").read_bytes().startswith(b"\x89PNG")
    saved = json.loads((tmp_path / "results.json").read_text())
    assert set(saved["variants"]) == set(VARIANTS)
    chance = saved["variants"]["random_text"]["eval_unseen_average_mAP"]
    assert saved["variants"]["bottleneck"]["eval_unseen_average_mAP"] > chance
    assert saved["table"] == results["table"]

    # a second run, through `zeetad quickstart`, reuses every stage (nothing is rebuilt) and prints the table
    stamps = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("stage_settings.json")}
    capsys.readouterr()
    assert main(["quickstart", "--fast", "--output_dir", str(tmp_path)]) == 0
    assert stamps == {path: path.stat().st_mtime_ns for path in tmp_path.rglob("stage_settings.json")}
    assert results["table"] in capsys.readouterr().out
