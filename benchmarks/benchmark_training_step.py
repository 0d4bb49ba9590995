"""Seconds per training step at ActivityNet scale, with every seen-class prompt and with a sampled subset.

Input: a batch of 2 videos of 192 units (ActionFormer's resized ActivityNet length) with 512-d TSP localization and
512-d CLIP features, 150 seen-class prompts of 16 tokens (the 75/25 setting), default `ZeetadConfig` (CLIP
ViT-B/16-sized text encoder with bottleneck adapters, random weights). A step is forward + backward + an AdamW
update, as in `zeetad_hf.training.train`; "sampled" keeps the batch's annotated classes plus random negatives up to
`--prompts_per_step` prompts (`ZeetadTrainingArguments.prompts_per_step`, through
`zeetad_hf.training.sample_training_prompts`).

Usage: python benchmarks/benchmark_training_step.py [--prompts_per_step 32] [--repeats 3] [--threads 2]
"""

import argparse

import numpy as np
import torch
from timing import timings_after_warm_up

from zeetad_hf import ZeetadConfig, ZeetadForTemporalActionDetection
from zeetad_hf.training import sample_training_prompts


NUM_UNITS = 192
FEATURE_DIM = 512
NUM_SEEN_PROMPTS = 150
PROMPT_LENGTH = 16
BATCH_SIZE = 2


def training_inputs(model: ZeetadForTemporalActionDetection) -> dict:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, 49406, (NUM_SEEN_PROMPTS, PROMPT_LENGTH), generator=generator)
    input_ids[:, -1] = model.config.text_config.eos_token_id
    return {
        "input_features": torch.randn(BATCH_SIZE, NUM_UNITS, FEATURE_DIM, generator=generator),
        "clip_features": torch.randn(BATCH_SIZE, NUM_UNITS, FEATURE_DIM, generator=generator),
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        # ActivityNet videos mostly hold one or two instances of one class
        "labels": [
            {"class_labels": torch.tensor([7, 7]), "segments": torch.tensor([[0.3, 0.2], [0.7, 0.1]])},
            {"class_labels": torch.tensor([42]), "segments": torch.tensor([[0.5, 0.6]])},
        ],
    }


def seconds_per_step(prompts_per_step: int | None, repeats: int) -> float:
    torch.manual_seed(0)
    model = ZeetadForTemporalActionDetection(ZeetadConfig(localization_feature_dim=FEATURE_DIM)).train()
    optimizer = torch.optim.AdamW([parameter for _, parameter in model.named_trainable_parameters()], lr=1e-4)
    inputs = training_inputs(model)
    generator = np.random.default_rng(0)

    def step():
        step_inputs = inputs
        if prompts_per_step is not None:
            prompts = {key: inputs[key] for key in ("input_ids", "attention_mask")}
            step_inputs = {**inputs, **sample_training_prompts(inputs["labels"], prompts, prompts_per_step, generator)}
        model(**step_inputs).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return float(np.median(timings_after_warm_up(step, repeats)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts_per_step", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads; batch {BATCH_SIZE} x {NUM_UNITS} units\n")
    print("| prompts per step | seconds per step |")
    print("|---|---|")
    everything = seconds_per_step(None, args.repeats)
    print(f"| all {NUM_SEEN_PROMPTS} | {everything:.2f} |")
    sampled = seconds_per_step(args.prompts_per_step, args.repeats)
    print(f"| {args.prompts_per_step} (sampled) | {sampled:.2f} |")
    print(f"\nsampled / all = {sampled / everything:.2f}")


if __name__ == "__main__":
    main()
