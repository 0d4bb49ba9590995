"""Choose the classification head, the coupling of classification into localization, the score fusion
(`actionness_weight`) and the Soft-NMS sigma on held-out videos of *seen* classes only.

The defaults of `ZeetadConfig.classification_head`, `ZeetadConfig.classification_segment_gradient` and of
`post_process_temporal_action_detection` come from this script. Nothing in it reads an unseen class or a validation
video of the quickstart world:

1. A finished `zeetad quickstart --seed 1 --output_dir DIR` gives the tuning world: world seed 1, the seed the
   quickstart's settings were tuned on (seed 0 is the one reported, seed 2 is only ever run with fixed settings).
2. The world's *seen* classes are split again, with a seeded draw: two thirds stay training classes, one third become
   pseudo-unseen classes that no training prompt names.
3. The world's *training* videos are split: 80% train the model, 20% are held out. Their unseen-class annotations are
   dropped before anything else, so they are never read.
4. The quickstart's bottleneck model is trained, once per classification head and coupling setting, on the train
   videos with the training classes, with the quickstart's settings. Then every setting of the grid is scored on the held-out videos with the
   pseudo-unseen classes as candidates: average mAP (tIoU 0.3:0.1:0.7) over *every* held-out video, as the quickstart
   scores every validation video, so proposals of training classes must be left unlabelled to score well.

Run: `python benchmarks/tune_score_fusion.py DIR` (about 2 minutes on 2 cores after the quickstart run). It prints
one table per model, the pseudo-unseen average mAP in % per post-processing setting.
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from zeetad_hf import ZeetadForTemporalActionDetection
from zeetad_hf.data import THUMOS14_TIOU_THRESHOLDS, filter_to_classes, load_activitynet_style, to_ground_truth
from zeetad_hf.evaluation import score_predictions
from zeetad_hf.quickstart import QuickstartSettings, processor_for_world, with_seed
from zeetad_hf.training import ZeetadDataCollator, ZeetadTrainingArguments, encode_class_prompts, predict, train


ACTIONNESS_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
NMS_SIGMAS = (0.3, 0.5, 0.75)
# (classification_head, classification_segment_gradient) of every model trained
MODELS = (("sigmoid", False), ("sigmoid", True), ("softmax", False), ("softmax", True))


def tuning_split(quickstart_dir: Path, settings: QuickstartSettings, seed: int):
    """Training classes, pseudo-unseen classes, the training set and the held-out set (seen classes only)."""
    split = json.loads((quickstart_dir / "world" / "split.json").read_text())
    seen, unseen = split["seen"], split["unseen"]
    rng = np.random.default_rng([seed, 7])
    pseudo_unseen = sorted(rng.choice(seen, size=len(seen) // 3, replace=False).tolist())
    training_classes = [name for name in seen if name not in pseudo_unseen]
    datasets = load_activitynet_style(
        quickstart_dir / "world" / "annotations.json",
        quickstart_dir / "features",
        fps=settings.sampling_fps,
        feature_stride=1,
        window_size=1,
    )
    # unseen-class annotations are dropped first: nothing below reads them
    videos = filter_to_classes(datasets["training"], seen, drop_empty=False, excluded_classes=unseen)
    parts = videos.train_test_split(test_size=0.2, seed=seed, shuffle=True)
    train_set = filter_to_classes(parts["train"], training_classes, drop_empty=True, excluded_classes=pseudo_unseen)
    return training_classes, pseudo_unseen, train_set, parts["test"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("quickstart_dir", help="output folder of `zeetad quickstart --seed 1`")
    parser.add_argument("--seed", type=int, default=1, help="the seed of that quickstart run (default: 1)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    quickstart_dir = Path(args.quickstart_dir)
    settings = with_seed(QuickstartSettings(), args.seed)
    training_classes, pseudo_unseen, train_set, heldout = tuning_split(quickstart_dir, settings, args.seed)
    print(
        f"world seed {args.seed}: {len(training_classes)} training classes, {len(pseudo_unseen)} pseudo-unseen "
        f"({', '.join(pseudo_unseen)}); {len(train_set)} training videos, {len(heldout)} held-out videos"
    )
    ground_truth = to_ground_truth(heldout)
    processor = processor_for_world(quickstart_dir / "clip", settings.world, settings.sampling_fps)
    for head, coupled in MODELS:
        torch.manual_seed(settings.training["seed"])
        model = ZeetadForTemporalActionDetection.from_clip(
            str(quickstart_dir / "clip"),
            load_vision=True,
            **settings.model_overrides,
            text_adapter_type="bottleneck",
            classification_head=head,
            classification_segment_gradient=coupled,
        )
        with tempfile.TemporaryDirectory() as output_dir:
            training = {**settings.training, "open_vocabulary_evaluation": False}
            train_arguments = ZeetadTrainingArguments(output_dir=output_dir, **training)
            train(model, processor, train_set, heldout, training_classes, pseudo_unseen, train_arguments)
        accelerator = Accelerator(cpu=True)
        loader = accelerator.prepare(DataLoader(heldout, batch_size=1, collate_fn=ZeetadDataCollator()))
        prompts = encode_class_prompts(processor, pseudo_unseen, accelerator.device)
        rows = []
        for weight in ACTIONNESS_WEIGHTS:
            cells = []
            for sigma in NMS_SIGMAS:
                post_processing = {"actionness_weight": weight, "nms_sigma": sigma, "max_segments": 200}
                results = predict(model, loader, pseudo_unseen, prompts, accelerator, post_processing)
                metrics = score_predictions(ground_truth, results, pseudo_unseen, THUMOS14_TIOU_THRESHOLDS)
                cells.append(f"{100 * metrics['average_mAP']:.1f}")
            rows.append(f"| {weight:g} | " + " | ".join(cells) + " |")
        coupling = "classification gradients reach localization" if coupled else "localization detached"
        print(f"\n{head} head, {coupling}: pseudo-unseen average mAP (%) on the held-out videos")
        print("| actionness_weight | " + " | ".join(f"nms_sigma {sigma:g}" for sigma in NMS_SIGMAS) + " |")
        print("|---" * (len(NMS_SIGMAS) + 1) + "|")
        print("\n".join(rows))


if __name__ == "__main__":
    main()
