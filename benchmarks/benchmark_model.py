"""CPU latency and peak memory of ZEETAD at THUMOS14 scale (Soft-NMS has its own benchmark: benchmark_nms.py).

THUMOS-scale input: 2304 temporal units, 2048-d I3D localization features + 512-d CLIP features, 20 class prompts,
default `ZeetadConfig` (CLIP ViT-B/16-sized text encoder with bottleneck adapters, random weights), 2 torch threads.
Every (batch size, mode) case runs in a fresh subprocess so that its peak RSS is its own.

Usage: python benchmarks/benchmark_model.py [--repeats 3] [--threads 2]
"""

import argparse
import json
import subprocess
import sys

from memory import peak_rss_mib
from timing import timings_after_warm_up


NUM_UNITS = 2304
LOCALIZATION_DIM = 2048
CLIP_DIM = 512
NUM_PROMPTS = 20
PROMPT_LENGTH = 16


def run_case(batch_size: int, mode: str, repeats: int, threads: int) -> dict:
    """Time one case in this process and return latency and peak RSS."""
    import torch

    from zeetad_hf import ZeetadConfig, ZeetadForTemporalActionDetection

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = ZeetadForTemporalActionDetection(ZeetadConfig(localization_feature_dim=LOCALIZATION_DIM))
    inputs = {
        "input_features": torch.randn(batch_size, NUM_UNITS, LOCALIZATION_DIM),
        "clip_features": torch.randn(batch_size, NUM_UNITS, CLIP_DIM),
        "feature_attention_mask": torch.ones(batch_size, NUM_UNITS, dtype=torch.long),
        "input_ids": torch.randint(0, 49406, (NUM_PROMPTS, PROMPT_LENGTH)),
    }
    inputs["input_ids"][:, -1] = model.config.text_config.eos_token_id
    labels = [
        {"class_labels": torch.tensor([0, 3, 7]), "segments": torch.tensor([[0.2, 0.05], [0.5, 0.1], [0.8, 0.02]])}
    ] * batch_size

    def step():
        if mode == "forward":
            model.eval()
            with torch.inference_mode():
                model(**inputs)
        else:
            model.train()
            model.zero_grad(set_to_none=True)
            model(**inputs, labels=labels).loss.backward()

    timings = timings_after_warm_up(step, repeats)
    peak_mib = peak_rss_mib()
    return {"batch_size": batch_size, "mode": mode, "seconds": min(timings), "peak_rss_mib": peak_mib}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.case:
        batch_size, mode = args.case.split(":")
        print(json.dumps(run_case(int(batch_size), mode, args.repeats, args.threads)))
        return

    import torch
    import transformers

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, threads {args.threads}")
    print(f"input: {NUM_UNITS} units, {LOCALIZATION_DIM}-d + {CLIP_DIM}-d features, {NUM_PROMPTS} prompts\n")
    print("| batch | pass | latency (s) | per video (s) | peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    for batch_size in (1, 8):
        for mode in ("forward", "forward+backward"):
            command = [sys.executable, __file__, "--case", f"{batch_size}:{mode}", "--repeats", str(args.repeats)]
            command += ["--threads", str(args.threads)]
            result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            print(
                f"| {batch_size} | {mode} | {result['seconds']:.2f} | {result['seconds'] / batch_size:.2f} "
                f"| {result['peak_rss_mib']:.0f} |"
            )


if __name__ == "__main__":
    main()
