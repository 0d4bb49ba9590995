# Copyright 2026 The zeetad_hf authors. Licensed under the MIT license.
"""Smallest offline end-to-end run: tiny CLIP -> ZEETAD -> train on seen classes -> detect an unseen class in seconds.

Nothing is downloaded. A tiny random CLIP is built and saved to a temporary folder (removed afterwards), then loaded
with the real `ZeetadForTemporalActionDetection.from_clip` code path. Synthetic "videos" are sequences of CLIP frame
embeddings in which an action of class `c` shows as frames close to CLIP's text embedding of `c` (what a CLIP image
tower produces for frames of that action). The model trains on two seen classes only (16 videos with 1-2 random actions
each) and is then asked, zero-shot, to find an unseen class in a new video. The text encoder stays frozen without
adapters: a random CLIP holds no language knowledge that adapters could refine.

Usage: python examples/tiny_zero_shot_example.py [--steps 150] [--seed 0]
"""

import argparse
import tempfile

import torch

from zeetad_hf import ZeetadForTemporalActionDetection, post_process_temporal_action_detection
from zeetad_hf.clip_pretraining import ClipPretrainingConfig, build_small_clip


SEEN_CLASSES = ["jumping", "running"]
UNSEEN_CLASS = "diving"
TEMPLATE = "a video of a person {}"
NUM_UNITS = 64
NUM_TRAIN_VIDEOS = 16
UNITS_PER_SECOND = 2.0  # CLIP frame embeddings sampled at 2 fps: one unit = one frame (stride 1, window 1)


def build_tiny_clip(folder: str):
    """A random CLIP with a 16-d joint space and its offline tokenizer, saved like any Hub checkpoint; CLIP's own
    `quick_gelu` activation, as in the checkpoints it stands in for."""
    sizes = ClipPretrainingConfig(
        text_hidden_size=32, vision_hidden_size=32, vision_layers=1, projection_dim=16, hidden_act="quick_gelu"
    )
    vocabulary = TEMPLATE.format("").split() + SEEN_CLASSES + [UNSEEN_CLASS]
    clip, tokenizer = build_small_clip(vocabulary, sizes, image_size=32)
    clip.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return tokenizer


def synthetic_video(class_embeddings: torch.Tensor, actions: list[tuple[int, int, int]], generator) -> torch.Tensor:
    """`(NUM_UNITS, dim)` frame embeddings: noise, plus the class embedding inside each `(class, start, end)` action."""
    frames = 0.3 * torch.randn(NUM_UNITS, class_embeddings.shape[1], generator=generator)
    for class_index, start, end in actions:
        frames[start:end] += class_embeddings[class_index]
    return frames


def random_actions(num_classes: int, generator, max_actions: int = 2) -> list[tuple[int, int, int]]:
    """1 or 2 non-overlapping `(class, start, end)` actions of 8-20 units in a video of `NUM_UNITS` units."""
    actions, start = [], int(torch.randint(0, 8, (1,), generator=generator))
    for _ in range(int(torch.randint(1, max_actions + 1, (1,), generator=generator))):
        length = int(torch.randint(8, 21, (1,), generator=generator))
        if start + length > NUM_UNITS:
            break
        actions.append((int(torch.randint(0, num_classes, (1,), generator=generator)), start, start + length))
        start += length + int(torch.randint(4, 16, (1,), generator=generator))
    return actions


def to_labels(actions: list[tuple[int, int, int]]) -> dict:
    """Unit-index actions -> normalised `(center, width)` targets (unit `t` spans `[t / T, (t + 1) / T]`)."""
    segments = torch.tensor([[(start + end) / 2 / NUM_UNITS, (end - start) / NUM_UNITS] for _, start, end in actions])
    return {"class_labels": torch.tensor([class_index for class_index, _, _ in actions]), "segments": segments}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)

    # 1. A tiny CLIP checkpoint on disk, loaded through the real from_clip path (CLIP-only features); the folder is
    # removed once the model and tokenizer are in memory
    with tempfile.TemporaryDirectory(prefix="tiny-clip-") as clip_folder:
        tokenizer = build_tiny_clip(clip_folder)
        model = ZeetadForTemporalActionDetection.from_clip(
            clip_folder, d_model=32, num_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=8,
            num_feature_levels=3, encoder_layers=1, decoder_layers=2, semantic_adapter_dim=8, text_adapter_type=None,
            dropout=0.0,
        )  # fmt: skip
    all_classes = SEEN_CLASSES + [UNSEEN_CLASS]
    prompts = tokenizer([TEMPLATE.format(name) for name in all_classes], padding=True, return_tensors="pt")
    with torch.no_grad():
        class_embeddings = model.get_text_features(prompts["input_ids"], prompts["attention_mask"]).pooler_output

    # 2. Training videos contain only seen classes; prompts are the seen-class names only.
    train_actions = [random_actions(len(SEEN_CLASSES), generator) for _ in range(NUM_TRAIN_VIDEOS)]
    train_videos = torch.stack([synthetic_video(class_embeddings, actions, generator) for actions in train_actions])
    train_labels = [to_labels(actions) for actions in train_actions]
    seen_prompts = {key: value[: len(SEEN_CLASSES)] for key, value in prompts.items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for step in range(args.steps):
        loss = model(input_features=train_videos, labels=train_labels, **seen_prompts).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.3f}")

    # 3. Zero-shot: a new video with the unseen class, candidate labels include it.
    test_actions = [(2, 20, 36)]
    test_video = synthetic_video(class_embeddings, test_actions, generator)[None]
    model.eval()
    with torch.no_grad():
        outputs = model(input_features=test_video, **prompts)
    timing = {"fps": UNITS_PER_SECOND, "feature_stride": 1, "window_size": 1, "duration": NUM_UNITS / UNITS_PER_SECOND}
    (detections,) = post_process_temporal_action_detection(
        outputs, [timing], text_labels=all_classes, threshold=0.0, max_segments=5
    )
    _, start, end = test_actions[0]
    print(
        f"\nground truth: {UNSEEN_CLASS} {start / UNITS_PER_SECOND:.1f}-{end / UNITS_PER_SECOND:.1f} s (unseen class)"
    )
    print("detections (score, label, start s, end s):")
    for score, label, (start, end) in zip(detections["scores"], detections["text_labels"], detections["segments"]):
        print(f"  {score:.3f}  {label:8s}  {start:6.2f}  {end:6.2f}")


if __name__ == "__main__":
    main()
