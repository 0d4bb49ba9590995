# Copyright 2026 The zeetad_hf authors. Licensed under the MIT license.
"""Extract CLIP frame embeddings for a folder of videos: one `<video>.npy` + `<video>.json` (timing) per video.

Resumable (finished videos are skipped; files are written atomically, so a killed run never leaves a half-written
feature file behind) and split across processes when launched with Accelerate:

    python examples/extract_features.py --videos_dir videos/ --output_dir clip_features/ --clip_model openai/clip-vit-base-patch16
    accelerate launch --multi_gpu --num_processes 4 --main_process_port 0 examples/extract_features.py ...

On a CPU-only machine use `--multi_gpu` too (the `--cpu` launcher silently runs one process); the script then builds
its state with `cpu=True`.

Errors are one line on stderr (`extract_features.py: error: ...`), exit status 2 for the command line, 1 for anything
else (a missing folder, a corrupt CLIP checkpoint, a broken video, a full disk); `--debug` adds the traceback. The
output folder and the CLIP folder are checked before any video is decoded.
"""

# First, before anything loads torch: `import zeetad_hf` sets the package's thread policy (README "Threads").
import zeetad_hf  # noqa: F401


# isort: split
import os
import sys
from dataclasses import dataclass, field

import torch
from accelerate import PartialState
from tqdm.auto import tqdm
from transformers import CLIPVisionModelWithProjection

from zeetad_hf import ZeetadFeatureExtractor
from zeetad_hf.cli_errors import CommandLineHfArgumentParser, run_command
from zeetad_hf.file_utils import check_model_folder, check_writable_directory, remove_interrupted_writes
from zeetad_hf.frame_embedding import extract_video_features
from zeetad_hf.video_utils import validate_sampling_fps


VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")


@dataclass
class ExtractionArguments:
    videos_dir: str = field(metadata={"help": "Folder of videos (searched recursively)."})
    output_dir: str = field(metadata={"help": "Folder for the <video>.npy / <video>.json files."})
    clip_model: str = field(
        default="openai/clip-vit-base-patch16", metadata={"help": "CLIP checkpoint (Hub id or folder)."}
    )
    sampling_fps: float = field(default=1.0, metadata={"help": "Sampled frames (temporal units) per second."})
    frame_batch_size: int = field(default=32, metadata={"help": "Frames per vision-tower call."})

    def __post_init__(self):
        validate_sampling_fps(self.sampling_fps)
        if self.frame_batch_size < 1:
            raise ValueError(f"`frame_batch_size` must be at least 1, got {self.frame_batch_size}.")


def list_videos(videos_dir: str) -> list[str]:
    """Every video file below `videos_dir`, sorted so that all processes see the same list."""
    if not os.path.isdir(videos_dir):
        raise FileNotFoundError(f"--videos_dir {videos_dir!r} is not a folder.")
    return sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(videos_dir)
        for name in names
        if name.lower().endswith(VIDEO_EXTENSIONS)
    )


def main(argv: list[str] | None = None):
    # 1. Arguments and process state (CPU-only machines need cpu=True for a real multi-process launch), then what can
    # be checked before any decoding: the videos folder, a writable output folder, a complete CLIP folder. Temporary
    # files of a killed run are removed (by the main process, before any other writes).
    (args,) = CommandLineHfArgumentParser(ExtractionArguments).parse_args_into_dataclasses(argv)
    videos = list_videos(args.videos_dir)
    check_writable_directory(args.output_dir, "--output_dir")
    check_model_folder(args.clip_model, "--clip_model", required_files=())
    state = PartialState(cpu=not torch.cuda.is_available())
    if state.is_main_process:
        remove_interrupted_writes(args.output_dir)
    state.wait_for_everyone()

    # 2. The CLIP vision tower and its preprocessing (crop = the tower's input size).
    vision = (
        CLIPVisionModelWithProjection.from_pretrained(args.clip_model, dtype=torch.float32).to(state.device).eval()
    )
    image_size = vision.config.image_size
    feature_extractor = ZeetadFeatureExtractor(
        sampling_fps=args.sampling_fps,
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )

    # 3. This process's share of the videos; the progress bar counts frames on the main process.
    progress = tqdm(unit="frame", disable=not state.is_local_main_process)
    with state.split_between_processes(videos) as own_videos, progress:
        processed = extract_video_features(
            own_videos,
            args.output_dir,
            feature_extractor,
            lambda pixels: vision(pixel_values=pixels.to(state.device)).image_embeds,
            frame_batch_size=args.frame_batch_size,
            progress_callback=progress.update,
        )
    print(f"process {state.process_index}: {len(processed)} extracted, {len(own_videos) - len(processed)} skipped")
    state.wait_for_everyone()


if __name__ == "__main__":
    sys.exit(run_command(main, "extract_features.py"))
